//! Putting fetched files into a sandbox, beneath it and nowhere else.
//!
//! Destination paths are walked from a descriptor of the sandbox one
//! component at a time and never through a symlink, so a link planted by an
//! earlier artifact cannot send a later one out of the sandbox. An entry in
//! the way is replaced, as tar does, except that a directory is never
//! replaced by a file. Files are moved (from a staging directory on the same
//! file system), hard-linked (from the cache) or, where neither works across
//! file systems, copied.

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// How a file gets into the sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum How {
    /// Renamed out of a staging directory (the staging copy disappears).
    Move,
    /// Hard-linked from the cache (shared, read-only).
    Link,
    /// Copied.
    Copy,
}

/// A sandbox to place files in.
pub(crate) struct Placer {
    root: OwnedFd,
    /// Owner for the directories this creates (moved trees are chowned
    /// by the caller first, linked files stay as the cache has them).
    owner: Option<(u32, u32)>,
}

const DIR_FLAGS: OFlags = OFlags::PATH
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

impl Placer {
    pub(crate) fn open(sandbox: &Path, owner: Option<(u32, u32)>) -> io::Result<Placer> {
        let root = rfs::open(
            sandbox,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Placer { root, owner })
    }

    /// The directory `rel` beneath the sandbox, created (0755) as needed.
    fn dir(&self, rel: &Path) -> io::Result<OwnedFd> {
        let mut fd = rfs::openat(&self.root, ".", DIR_FLAGS, Mode::empty())?;
        for part in rel.iter() {
            fd = self.child_dir(fd.as_fd(), part, 0o755)?.0;
        }
        Ok(fd)
    }

    /// Opens or creates the directory `name` in `parent`; a file or symlink
    /// in the way is replaced. Returns whether it was created.
    fn child_dir(
        &self,
        parent: BorrowedFd<'_>,
        name: &OsStr,
        mode: u32,
    ) -> io::Result<(OwnedFd, bool)> {
        match rfs::openat(parent, name, DIR_FLAGS, Mode::empty()) {
            Ok(fd) => return Ok((fd, false)),
            Err(Errno::NOENT) => {}
            Err(Errno::NOTDIR | Errno::LOOP) => rfs::unlinkat(parent, name, AtFlags::empty())?,
            Err(e) => return Err(e.into()),
        }
        rfs::mkdirat(parent, name, Mode::from_raw_mode(mode | 0o700))?;
        if let Some((uid, gid)) = self.owner {
            chown_at(parent, name, uid, gid)?;
        }
        Ok((rfs::openat(parent, name, DIR_FLAGS, Mode::empty())?, true))
    }

    /// Puts the file `src` at `rel` in the sandbox, then gives it `mode`
    /// if set (not for links: the inode is the cache's).
    pub(crate) fn file(
        &self,
        src: &Path,
        rel: &Path,
        how: How,
        mode: Option<u32>,
    ) -> io::Result<()> {
        let parent = self.dir(rel.parent().unwrap_or(Path::new("")))?;
        let name = rel
            .file_name()
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        let src_dir = rfs::open(
            src.parent().unwrap_or(Path::new(".")),
            DIR_FLAGS,
            Mode::empty(),
        )?;
        let src_name = src
            .file_name()
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        self.put(
            src_dir.as_fd(),
            src_name,
            FileType::RegularFile,
            parent.as_fd(),
            name,
            how,
        )?;
        if let Some(mode) = mode.filter(|_| how != How::Link) {
            rfs::chmodat(&parent, name, Mode::from_raw_mode(mode), AtFlags::empty())?;
        }
        Ok(())
    }

    /// Merges the directory `src` into the sandbox's top level.
    pub(crate) fn tree(&self, src: &Path, how: How) -> io::Result<()> {
        let src = rfs::open(
            src,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let dst = rfs::openat(&self.root, ".", DIR_FLAGS, Mode::empty())?;
        self.merge(src, dst.as_fd(), how)
    }

    fn merge(&self, src: OwnedFd, dst: BorrowedFd<'_>, how: How) -> io::Result<()> {
        let mut dir = rfs::Dir::read_from(&src)?;
        while let Some(entry) = dir.read() {
            let entry = entry?;
            let name = OsStr::from_bytes(entry.file_name().to_bytes());
            if name == "." || name == ".." {
                continue;
            }
            let mut kind = entry.file_type();
            if kind == FileType::Unknown {
                kind = FileType::from_raw_mode(
                    rfs::statat(&src, name, AtFlags::SYMLINK_NOFOLLOW)?.st_mode,
                );
            }
            self.put(src.as_fd(), name, kind, dst, name, how)?;
        }
        Ok(())
    }

    /// Puts the entry `sname` of `sdir` (of type `kind`) at `name` in `dst`.
    fn put(
        &self,
        sdir: BorrowedFd<'_>,
        sname: &OsStr,
        kind: FileType,
        dst: BorrowedFd<'_>,
        name: &OsStr,
        how: How,
    ) -> io::Result<()> {
        if kind == FileType::Directory {
            let existing = rfs::statat(dst, name, AtFlags::SYMLINK_NOFOLLOW).ok();
            let is_dir = existing
                .as_ref()
                .map(|s| FileType::from_raw_mode(s.st_mode) == FileType::Directory);
            if how == How::Move && is_dir != Some(true) {
                if is_dir == Some(false) {
                    rfs::unlinkat(dst, name, AtFlags::empty())?;
                }
                match rfs::renameat(sdir, sname, dst, name) {
                    Ok(()) => return Ok(()),
                    Err(Errno::XDEV) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            let src = rfs::openat(
                sdir,
                sname,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            let mode = rfs::fstat(&src)?.st_mode & 0o7777;
            let (child, created) = self.child_dir(dst, name, mode)?;
            self.merge(src, child.as_fd(), how)?;
            if created && mode & 0o700 != 0o700 {
                rfs::chmodat(dst, name, Mode::from_raw_mode(mode), AtFlags::empty())?;
            }
            return Ok(());
        }
        let result = match (how, kind) {
            (How::Move, _) => rfs::renameat(sdir, sname, dst, name),
            (How::Link, FileType::RegularFile) => {
                rfs::linkat(sdir, sname, dst, name, AtFlags::empty())
            }
            (How::Link | How::Copy, FileType::Symlink) => {
                let target = rfs::readlinkat(sdir, sname, Vec::new())?;
                rfs::symlinkat(target.as_c_str(), dst, name)
            }
            (How::Copy, FileType::RegularFile) => Err(Errno::XDEV),
            (_, other) => {
                tracing::debug!(entry = ?sname, kind = ?other, "special file not placed");
                return Ok(());
            }
        };
        match result {
            Ok(()) => Ok(()),
            Err(Errno::EXIST) => {
                // Replace what is there (not a directory), then try again.
                rfs::unlinkat(dst, name, AtFlags::empty()).map_err(|e| {
                    if e == Errno::ISDIR {
                        io::Error::new(
                            io::ErrorKind::AlreadyExists,
                            format!("{} is a directory", name.to_string_lossy()),
                        )
                    } else {
                        e.into()
                    }
                })?;
                self.put(sdir, sname, kind, dst, name, how)
            }
            Err(Errno::ISDIR | Errno::NOTEMPTY) => Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} is a directory", name.to_string_lossy()),
            )),
            Err(Errno::XDEV | Errno::MLINK | Errno::PERM) if kind == FileType::RegularFile => {
                self.copy(sdir, sname, dst, name, how)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Copies a regular file (owner-writable in the sandbox).
    fn copy(
        &self,
        sdir: BorrowedFd<'_>,
        sname: &OsStr,
        dst: BorrowedFd<'_>,
        name: &OsStr,
        how: How,
    ) -> io::Result<()> {
        let src = File::from(rfs::openat(
            sdir,
            sname,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?);
        let mode = src.metadata()?.permissions().mode() & 0o7777 | 0o200;
        match rfs::unlinkat(dst, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(e) => return Err(e.into()),
        }
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mut out = File::from(rfs::openat(dst, name, flags, Mode::from_raw_mode(mode))?);
        io::copy(&mut &src, &mut out)?;
        rfs::fchmod(&out, Mode::from_raw_mode(mode))?;
        if how != How::Link {
            if let Some((uid, gid)) = self.owner {
                rfs::fchown(
                    &out,
                    Some(rfs::Uid::from_raw(uid)),
                    Some(rfs::Gid::from_raw(gid)),
                )?;
            }
        }
        if how == How::Move {
            rfs::unlinkat(sdir, sname, AtFlags::empty())?;
        }
        Ok(())
    }
}

fn chown_at(dir: BorrowedFd<'_>, name: &OsStr, uid: u32, gid: u32) -> io::Result<()> {
    Ok(rfs::chownat(
        dir,
        name,
        Some(rfs::Uid::from_raw(uid)),
        Some(rfs::Gid::from_raw(gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )?)
}

/// Calls `f` on `root` and everything beneath it, parents before children,
/// without following symlinks.
pub(crate) fn walk(
    root: &Path,
    f: &mut dyn FnMut(&Path, &fs::Metadata) -> io::Result<()>,
) -> io::Result<()> {
    let meta = fs::symlink_metadata(root)?;
    f(root, &meta)?;
    if meta.is_dir() {
        for e in fs::read_dir(root)? {
            walk(&e?.path(), f)?;
        }
    }
    Ok(())
}

/// Gives everything beneath `root` (a private staging directory) to `owner`.
pub(crate) fn chown_tree(root: &Path, uid: u32, gid: u32) -> io::Result<()> {
    walk(root, &mut |p, _| {
        std::os::unix::fs::lchown(p, Some(uid), Some(gid))
    })
}

/// Removes a tree (or a file; nothing is fine), making its directories
/// writable first if need be (an archive may have made them read-only).
pub(crate) fn remove_tree(root: &Path) -> io::Result<()> {
    match fs::symlink_metadata(root) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
        Ok(m) if !m.is_dir() => return fs::remove_file(root),
        Ok(_) => {}
    }
    match fs::remove_dir_all(root) {
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            walk(root, &mut |p, m| {
                if m.is_dir() {
                    fs::set_permissions(p, fs::Permissions::from_mode(0o700))?;
                }
                Ok(())
            })?;
            fs::remove_dir_all(root)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, MetadataExt};

    fn tree(root: &Path, files: &[(&str, &str)]) {
        for (p, data) in files {
            let p = root.join(p);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, data).unwrap();
        }
    }

    #[test]
    fn moves_merge_into_existing_directories_and_replace_files() {
        let d = tempfile::tempdir().unwrap();
        let (src, sb) = (d.path().join("src"), d.path().join("sb"));
        tree(
            &src,
            &[("app/a.txt", "new a"), ("app/lib/l.so", "l"), ("top", "t")],
        );
        tree(
            &sb,
            &[("app/a.txt", "old a"), ("app/keep", "k"), ("stdout", "")],
        );
        Placer::open(&sb, None)
            .unwrap()
            .tree(&src, How::Move)
            .unwrap();
        assert_eq!(fs::read_to_string(sb.join("app/a.txt")).unwrap(), "new a");
        assert_eq!(fs::read_to_string(sb.join("app/keep")).unwrap(), "k");
        assert_eq!(fs::read_to_string(sb.join("app/lib/l.so")).unwrap(), "l");
        assert!(sb.join("top").is_file() && sb.join("stdout").is_file());
        assert!(!src.join("app/lib").exists(), "moved, not copied");
    }

    #[test]
    fn links_share_the_inode_and_files_can_go_to_subdirectories() {
        let d = tempfile::tempdir().unwrap();
        let (src, sb) = (d.path().join("src"), d.path().join("sb"));
        tree(&src, &[("x/y.txt", "y")]);
        symlink("y.txt", src.join("x/link")).unwrap();
        fs::create_dir(&sb).unwrap();
        let p = Placer::open(&sb, None).unwrap();
        p.tree(&src, How::Link).unwrap();
        let a = fs::metadata(src.join("x/y.txt")).unwrap();
        let b = fs::metadata(sb.join("x/y.txt")).unwrap();
        assert_eq!(a.ino(), b.ino());
        assert_eq!(
            fs::read_link(sb.join("x/link")).unwrap(),
            Path::new("y.txt")
        );
        p.file(
            &src.join("x/y.txt"),
            Path::new("deep/er/z.txt"),
            How::Copy,
            Some(0o755),
        )
        .unwrap();
        let c = fs::metadata(sb.join("deep/er/z.txt")).unwrap();
        assert_ne!(c.ino(), a.ino());
        assert_eq!(c.permissions().mode() & 0o777, 0o755);
        // Linking again over the same names replaces them.
        p.tree(&src, How::Link).unwrap();
    }

    #[test]
    fn symlinks_in_the_sandbox_are_never_followed() {
        let d = tempfile::tempdir().unwrap();
        let (src, sb, outside) = (
            d.path().join("src"),
            d.path().join("sb"),
            d.path().join("outside"),
        );
        tree(&src, &[("lib/evil.txt", "x"), ("f.txt", "f")]);
        fs::create_dir_all(&outside).unwrap();
        fs::create_dir(&sb).unwrap();
        symlink(&outside, sb.join("lib")).unwrap();
        symlink(outside.join("target"), sb.join("f.txt")).unwrap();
        let p = Placer::open(&sb, None).unwrap();
        p.tree(&src, How::Link).unwrap();
        p.file(&src.join("f.txt"), Path::new("lib/g.txt"), How::Copy, None)
            .unwrap();
        assert_eq!(
            fs::read_dir(&outside).unwrap().count(),
            0,
            "nothing written outside"
        );
        assert!(fs::symlink_metadata(sb.join("lib")).unwrap().is_dir());
        assert!(fs::symlink_metadata(sb.join("f.txt")).unwrap().is_file());
    }

    #[test]
    fn a_directory_is_not_replaced_by_a_file() {
        let d = tempfile::tempdir().unwrap();
        let (src, sb) = (d.path().join("src"), d.path().join("sb"));
        tree(&src, &[("name", "file")]);
        tree(&sb, &[("name/inside", "x")]);
        let e = Placer::open(&sb, None)
            .unwrap()
            .tree(&src, How::Move)
            .unwrap_err();
        assert!(e.to_string().contains("name is a directory"), "{e}");
    }

    #[test]
    fn read_only_directories_are_filled_then_restored() {
        let d = tempfile::tempdir().unwrap();
        let (src, sb) = (d.path().join("src"), d.path().join("sb"));
        tree(&src, &[("ro/f", "f")]);
        fs::set_permissions(src.join("ro"), fs::Permissions::from_mode(0o555)).unwrap();
        fs::create_dir(&sb).unwrap();
        Placer::open(&sb, None)
            .unwrap()
            .tree(&src, How::Link)
            .unwrap();
        assert_eq!(
            fs::metadata(sb.join("ro")).unwrap().permissions().mode() & 0o777,
            0o555
        );
        assert!(sb.join("ro/f").is_file());
        remove_tree(&src).unwrap();
        assert!(!src.exists());
    }
}
