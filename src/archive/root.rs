//! A directory that archive entries are written beneath, and nowhere else.
//!
//! Every path is resolved from a descriptor of the destination with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`: a symlink or `..` that
//! would leave the destination makes the kernel refuse with `EXDEV`, whatever
//! earlier entries planted. The last component of a path is never followed:
//! files are created with `O_EXCL | O_NOFOLLOW`, links and nodes with the
//! `*at` calls on the parent's descriptor, and an existing entry in the way
//! is removed first (a symlink replaced by a directory stays replaced).

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

const RESOLVE: ResolveFlags = ResolveFlags::BENEATH.union(ResolveFlags::NO_MAGICLINKS);

/// Why an entry's own path is unacceptable.
pub(crate) fn clean_path(raw: &[u8]) -> Result<PathBuf, &'static str> {
    if raw.contains(&0) {
        return Err("path contains a NUL byte");
    }
    if raw.first() == Some(&b'/') {
        return Err("absolute path");
    }
    let mut out = PathBuf::new();
    for part in raw.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return Err("path leaves the destination (`..`)"),
            name => out.push(OsStr::from_bytes(name)),
        }
    }
    Ok(out)
}

/// Splits a clean relative path into its parent and final name.
pub(crate) fn split(path: &Path) -> (&Path, &OsStr) {
    let name = path.file_name().unwrap_or_default();
    (path.parent().unwrap_or(Path::new("")), name)
}

pub(crate) struct Root {
    fd: OwnedFd,
    /// The most recent parent directory, reused while entries share it.
    /// Cleared whenever anything is removed, since that may be its path.
    last: Option<(PathBuf, OwnedFd)>,
}

impl Root {
    pub(crate) fn open(path: &Path) -> io::Result<Root> {
        let fd = rfs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Root { fd, last: None })
    }

    /// The root for extracting into `dest`, failing as the archive does.
    pub(crate) fn destination(dest: &Path) -> Result<Root, super::ArchiveError> {
        Root::open(dest).map_err(|source| super::ArchiveError::Destination {
            path: dest.to_path_buf(),
            source,
        })
    }

    /// An `O_PATH` descriptor of the directory at `rel`, which must exist.
    fn lookup(&self, rel: &Path) -> io::Result<OwnedFd> {
        let rel = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        Ok(rfs::openat2(
            &self.fd,
            rel,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            RESOLVE,
        )?)
    }

    /// The directory `rel`, created (0755, like tar) with any missing parents.
    pub(crate) fn dir(&mut self, rel: &Path) -> io::Result<BorrowedFd<'_>> {
        let hit = matches!(&self.last, Some((p, _)) if p == rel);
        if !hit {
            let fd = self.ensure(rel)?;
            self.last = Some((rel.to_path_buf(), fd));
        }
        Ok(self
            .last
            .as_ref()
            .map(|(_, fd)| fd.as_fd())
            .expect("cached"))
    }

    fn ensure(&self, rel: &Path) -> io::Result<OwnedFd> {
        match self.lookup(rel) {
            Err(e) if e.raw_os_error() == Some(Errno::NOENT.raw_os_error()) => {
                let (parent, name) = split(rel);
                if name.is_empty() {
                    return Err(e);
                }
                let pfd = self.ensure(parent)?;
                match rfs::mkdirat(&pfd, name, Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(e.into()),
                }
                self.lookup(rel)
            }
            other => other,
        }
    }

    /// A readable descriptor of the directory `rel` itself (not followed if
    /// it is a symlink), for metadata changes that `O_PATH` does not allow.
    pub(crate) fn open_dir(&self, rel: &Path) -> io::Result<File> {
        let rel = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        let fd = rfs::openat2(
            &self.fd,
            rel,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
            RESOLVE,
        )?;
        Ok(File::from(fd))
    }

    /// Creates `name` in `parent` as a new regular file, replacing whatever
    /// was there. The file starts at mode 0600; the caller sets the rest.
    pub(crate) fn create_file(&mut self, parent: &Path, name: &OsStr) -> io::Result<File> {
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mode = Mode::from_raw_mode(0o600);
        let pfd = self.dir(parent)?;
        match rfs::openat(pfd, name, flags, mode) {
            Ok(fd) => Ok(File::from(fd)),
            Err(Errno::EXIST) => {
                self.remove(parent, name)?;
                let pfd = self.dir(parent)?;
                Ok(File::from(rfs::openat(pfd, name, flags, mode)?))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Makes `name` in `parent` a directory: an existing directory is kept,
    /// anything else there is replaced.
    pub(crate) fn create_dir(&mut self, parent: &Path, name: &OsStr) -> io::Result<()> {
        let pfd = self.dir(parent)?;
        match rfs::mkdirat(pfd, name, Mode::from_raw_mode(0o755)) {
            Ok(()) => Ok(()),
            Err(Errno::EXIST) => {
                let st = rfs::statat(pfd, name, AtFlags::SYMLINK_NOFOLLOW)?;
                if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                    return Ok(());
                }
                self.remove(parent, name)?;
                let pfd = self.dir(parent)?;
                Ok(rfs::mkdirat(pfd, name, Mode::from_raw_mode(0o755))?)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Runs `make` on the parent's descriptor; if the name is taken, removes
    /// the old entry and tries once more.
    pub(crate) fn replace_with<F>(&mut self, parent: &Path, name: &OsStr, make: F) -> io::Result<()>
    where
        F: Fn(BorrowedFd<'_>) -> Result<(), Errno>,
    {
        match make(self.dir(parent)?) {
            Err(Errno::EXIST) => {
                self.remove(parent, name)?;
                Ok(make(self.dir(parent)?)?)
            }
            other => Ok(other?),
        }
    }

    pub(crate) fn symlink(&mut self, parent: &Path, name: &OsStr, target: &[u8]) -> io::Result<()> {
        let target = OsStr::from_bytes(target);
        self.replace_with(parent, name, |pfd| rfs::symlinkat(target, pfd, name))
    }

    /// Hard-links `name` in `parent` to the existing entry `target` (a clean
    /// path under the root); a symlink target is linked, not followed.
    pub(crate) fn hardlink(
        &mut self,
        parent: &Path,
        name: &OsStr,
        target: &Path,
    ) -> io::Result<()> {
        let (tparent, tname) = split(target);
        let tfd = self.lookup(tparent)?;
        self.replace_with(parent, name, |pfd| {
            rfs::linkat(&tfd, tname, pfd, name, AtFlags::empty())
        })
    }

    pub(crate) fn mknod(
        &mut self,
        parent: &Path,
        name: &OsStr,
        kind: FileType,
        mode: u32,
        dev: u64,
    ) -> io::Result<()> {
        let mode = Mode::from_raw_mode(mode & 0o7777);
        self.replace_with(parent, name, |pfd| rfs::mknodat(pfd, name, kind, mode, dev))
    }

    pub(crate) fn chown_nofollow(
        &mut self,
        parent: &Path,
        name: &OsStr,
        uid: u32,
        gid: u32,
    ) -> io::Result<()> {
        let pfd = self.dir(parent)?;
        let (uid, gid) = (rfs::Uid::from_raw(uid), rfs::Gid::from_raw(gid));
        Ok(rfs::chownat(
            pfd,
            name,
            Some(uid),
            Some(gid),
            AtFlags::SYMLINK_NOFOLLOW,
        )?)
    }

    pub(crate) fn set_mtime_nofollow(
        &mut self,
        parent: &Path,
        name: &OsStr,
        secs: i64,
    ) -> io::Result<()> {
        let pfd = self.dir(parent)?;
        let ts = rfs::Timestamps {
            last_access: rfs::Timespec {
                tv_sec: secs,
                tv_nsec: 0,
            },
            last_modification: rfs::Timespec {
                tv_sec: secs,
                tv_nsec: 0,
            },
        };
        Ok(rfs::utimensat(pfd, name, &ts, AtFlags::SYMLINK_NOFOLLOW)?)
    }

    /// Removes `name` in `parent` and, for a directory, all it holds.
    /// A missing entry is not an error.
    pub(crate) fn remove(&mut self, parent: &Path, name: &OsStr) -> io::Result<()> {
        self.last = None;
        let pfd = match self.lookup(parent) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(Errno::NOENT.raw_os_error()) => return Ok(()),
            Err(e) => return Err(e),
        };
        remove_all(pfd.as_fd(), name)
    }

    /// Removes every child of the directory `rel` for which `keep` is false.
    pub(crate) fn remove_children(
        &mut self,
        rel: &Path,
        keep: impl Fn(&Path) -> bool,
    ) -> io::Result<()> {
        self.last = None;
        let dir = match self.open_dir(rel) {
            Ok(d) => d,
            Err(e) if e.raw_os_error() == Some(Errno::NOENT.raw_os_error()) => return Ok(()),
            Err(e) => return Err(e),
        };
        for name in list(dir.as_fd())? {
            if !keep(&rel.join(&name)) {
                remove_all(dir.as_fd(), &name)?;
            }
        }
        Ok(())
    }
}

fn list(dir: BorrowedFd<'_>) -> io::Result<Vec<std::ffi::OsString>> {
    let mut names = Vec::new();
    let mut it = rfs::Dir::read_from(dir)?;
    while let Some(entry) = it.read() {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(OsStr::from_bytes(name).to_owned());
        }
    }
    Ok(names)
}

fn remove_all(parent: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let st = match rfs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        return Ok(rfs::unlinkat(parent, name, AtFlags::empty())?);
    }
    let fd = rfs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    for child in list(fd.as_fd())? {
        remove_all(fd.as_fd(), &child)?;
    }
    Ok(rfs::unlinkat(parent, name, AtFlags::REMOVEDIR)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_path_rejects_escapes_and_normalises_dots() {
        assert_eq!(clean_path(b"./a//b/./c").unwrap(), Path::new("a/b/c"));
        assert_eq!(clean_path(b"./").unwrap(), Path::new(""));
        assert!(clean_path(b"/etc/passwd").is_err());
        assert!(clean_path(b"a/../../b").is_err());
        assert!(clean_path(b"..").is_err());
        assert!(clean_path(b"a\0b").is_err());
    }

    #[test]
    fn symlink_escape_is_refused_by_the_kernel() {
        let dest = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let mut root = Root::open(dest.path()).unwrap();
        root.symlink(
            Path::new(""),
            OsStr::new("evil"),
            outside.path().as_os_str().as_bytes(),
        )
        .unwrap();
        root.symlink(Path::new(""), OsStr::new("up"), b"..")
            .unwrap();
        let err = root
            .create_file(Path::new("evil"), OsStr::new("x"))
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EXDEV));
        let err = root
            .create_file(Path::new("up/x"), OsStr::new("y"))
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EXDEV));
        assert_eq!(fs_count(outside.path()), 0);
        // A symlink replaced by a directory is really replaced.
        root.create_dir(Path::new(""), OsStr::new("evil")).unwrap();
        root.create_file(Path::new("evil"), OsStr::new("x"))
            .unwrap();
        assert!(dest.path().join("evil/x").is_file());
        assert_eq!(fs_count(outside.path()), 0);
    }

    fn fs_count(p: &Path) -> usize {
        std::fs::read_dir(p).unwrap().count()
    }
}
