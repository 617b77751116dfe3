//! Tar extraction (ustar, GNU, PAX; the stream already decompressed).

use super::root::{clean_path, split, Root};
use super::{ArchiveError, Budget, Devices, Options, Summary, Whiteouts};
use rustix::fs::{self as rfs, FileType, Mode, XattrFlags};
use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

const WHITEOUT: &[u8] = b".wh.";
const OPAQUE: &[u8] = b".wh..wh..opq";
const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// Metadata of a directory, applied after all entries are written so that
/// a read-only mode or an old mtime does not get in the way.
struct DirMeta {
    path: PathBuf,
    entry: String,
    owner: Option<(u32, u32)>,
    mode: u32,
    mtime: i64,
    xattrs: Vec<(String, Vec<u8>)>,
}

/// Extracts a tar stream into `dest` (an existing directory).
///
/// Reads the stream to its end, past the end-of-archive blocks, so that a
/// digest or checksum computed by a wrapping reader covers every byte.
pub fn unpack_tar<R: Read>(
    reader: R,
    dest: &Path,
    opts: &Options,
) -> Result<Summary, ArchiveError> {
    let mut root = Root::destination(dest)?;
    let mut state = State {
        root: &mut root,
        budget: Budget::new(opts),
        opts,
        dirs: Vec::new(),
        written: HashSet::new(),
        ids: (
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        ),
    };
    let mut archive = ::tar::Archive::new(reader);
    for entry in archive.entries().map_err(ArchiveError::Read)? {
        let mut entry = entry.map_err(ArchiveError::Read)?;
        state.entry(&mut entry)?;
    }
    io::copy(&mut archive.into_inner(), &mut io::sink()).map_err(ArchiveError::Read)?;
    state.finish_dirs()?;
    Ok(state.budget.summary)
}

struct State<'a> {
    root: &'a mut Root,
    budget: Budget<'a>,
    opts: &'a Options,
    dirs: Vec<DirMeta>,
    /// Paths this archive wrote, for opaque directories in `Apply` mode.
    written: HashSet<PathBuf>,
    /// Our own uid and gid: files already have them, no chown needed.
    ids: (u32, u32),
}

impl State<'_> {
    fn entry<R: Read>(&mut self, entry: &mut ::tar::Entry<'_, R>) -> Result<(), ArchiveError> {
        let raw = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw).into_owned();
        self.budget.entry()?;
        let path = clean_path(&raw).map_err(|r| ArchiveError::rejected(&name, r))?;
        let bad = |what: &str, e: io::Error| {
            ArchiveError::rejected(&name, format!("bad {what} in header: {e}"))
        };
        let xattrs = if self.opts.xattrs {
            pax_xattrs(entry).map_err(|e| bad("PAX extension", e))?
        } else {
            Vec::new()
        };
        let header = entry.header();
        let kind = header.entry_type();
        let mode = header.mode().map_err(|e| bad("mode", e))? & 0o7777;
        let owner = if self.opts.same_owner {
            let uid = header.uid().map_err(|e| bad("uid", e))?;
            let gid = header.gid().map_err(|e| bad("gid", e))?;
            let fit = |v: u64| {
                u32::try_from(v).map_err(|_| bad("owner", io::ErrorKind::InvalidData.into()))
            };
            Some((fit(uid)?, fit(gid)?))
        } else {
            None
        };
        let mtime = header.mtime().unwrap_or(0).min(i64::MAX as u64) as i64;

        if path.as_os_str().is_empty() {
            if kind.is_dir() {
                self.dirs.push(DirMeta {
                    path,
                    entry: name,
                    owner,
                    mode,
                    mtime,
                    xattrs,
                });
            }
            return Ok(());
        }
        let (parent, file) = split(&path);
        if self.opts.whiteouts != Whiteouts::Keep {
            if let Some(target) = file.as_bytes().strip_prefix(WHITEOUT) {
                return self.whiteout(&name, parent, file, target);
            }
        }
        let w = |step| {
            let name = &name;
            move |e| ArchiveError::write(name, step, e)
        };
        if kind.is_dir() {
            self.root
                .create_dir(parent, file)
                .map_err(w("create directory"))?;
            self.note(&path);
            self.dirs.push(DirMeta {
                path,
                entry: name.clone(),
                owner,
                mode,
                mtime,
                xattrs,
            });
        } else if kind.is_file() || kind.is_gnu_sparse() || kind == ::tar::EntryType::Continuous {
            let declared = entry.size();
            let mut out = self
                .root
                .create_file(parent, file)
                .map_err(w("create file"))?;
            self.budget.copy(&name, declared, entry, &mut out)?;
            self.file_meta(&out, owner, mode, mtime, &xattrs)
                .map_err(w("set metadata"))?;
            self.note(&path);
        } else if kind.is_symlink() {
            let target = entry
                .link_name_bytes()
                .ok_or_else(|| ArchiveError::rejected(&name, "symlink without a target"))?;
            self.root
                .symlink(parent, file, &target)
                .map_err(w("create symlink"))?;
            self.link_meta(parent, file, owner, mtime)
                .map_err(w("set metadata"))?;
            self.note(&path);
        } else if kind.is_hard_link() {
            let target = entry
                .link_name_bytes()
                .ok_or_else(|| ArchiveError::rejected(&name, "hard link without a target"))?;
            let target = clean_path(&target)
                .map_err(|r| ArchiveError::rejected(&name, format!("hard link target: {r}")))?;
            if target.as_os_str().is_empty() {
                return Err(ArchiveError::rejected(
                    &name,
                    "hard link to the destination itself",
                ));
            }
            if target != path {
                self.root.hardlink(parent, file, &target).map_err(|e| {
                    if e.kind() == io::ErrorKind::NotFound {
                        let t = target.display();
                        ArchiveError::rejected(
                            &name,
                            format!("hard link target {t} does not exist"),
                        )
                    } else {
                        w("create hard link")(e)
                    }
                })?;
                self.note(&path);
            }
        } else if kind.is_character_special() || kind.is_block_special() {
            match self.opts.devices {
                Devices::Skip => {
                    tracing::debug!(entry = %name, "device node skipped");
                    self.budget.summary.skipped_devices += 1;
                }
                Devices::Reject => return Err(ArchiveError::rejected(&name, "device node")),
                Devices::Create => {
                    let major = header.device_major().ok().flatten().unwrap_or(0);
                    let minor = header.device_minor().ok().flatten().unwrap_or(0);
                    let ft = if kind.is_block_special() {
                        FileType::BlockDevice
                    } else {
                        FileType::CharacterDevice
                    };
                    let dev = rfs::makedev(major, minor);
                    self.root
                        .mknod(parent, file, ft, mode, dev)
                        .map_err(w("create device"))?;
                    self.link_meta(parent, file, owner, mtime)
                        .map_err(w("set metadata"))?;
                    self.note(&path);
                }
            }
        } else if kind.is_fifo() {
            self.root
                .mknod(parent, file, FileType::Fifo, mode, 0)
                .map_err(w("create fifo"))?;
            self.link_meta(parent, file, owner, mtime)
                .map_err(w("set metadata"))?;
            self.note(&path);
        } else {
            tracing::debug!(entry = %name, ?kind, "tar entry of this type ignored");
        }
        Ok(())
    }

    fn note(&mut self, path: &Path) {
        if self.opts.whiteouts == Whiteouts::Apply {
            self.written.insert(path.to_path_buf());
        }
    }

    fn whiteout(
        &mut self,
        name: &str,
        parent: &Path,
        file: &OsStr,
        target: &[u8],
    ) -> Result<(), ArchiveError> {
        let w = |step| move |e| ArchiveError::write(name, step, e);
        if file.as_bytes() == OPAQUE {
            return match self.opts.whiteouts {
                Whiteouts::Overlay => {
                    self.root
                        .dir(parent)
                        .map_err(w("create opaque directory"))?;
                    let dir = self
                        .root
                        .open_dir(parent)
                        .map_err(w("open opaque directory"))?;
                    rfs::fsetxattr(&dir, OVERLAY_OPAQUE_XATTR, b"y", XattrFlags::empty())
                        .map_err(|e| w("mark directory opaque")(e.into()))
                }
                _ => {
                    let written = &self.written;
                    self.root
                        .remove_children(parent, |p| written.iter().any(|w| w.starts_with(p)))
                        .map_err(w("empty opaque directory"))
                }
            };
        }
        if target.is_empty() || target == b"." || target == b".." {
            return Err(ArchiveError::rejected(name, "whiteout of an invalid name"));
        }
        let target = OsStr::from_bytes(target);
        match self.opts.whiteouts {
            Whiteouts::Overlay => self
                .root
                .mknod(
                    parent,
                    target,
                    FileType::CharacterDevice,
                    0,
                    rfs::makedev(0, 0),
                )
                .map_err(w("create whiteout")),
            _ => self
                .root
                .remove(parent, target)
                .map_err(w("apply whiteout")),
        }
    }

    fn file_meta(
        &self,
        file: &File,
        owner: Option<(u32, u32)>,
        mode: u32,
        mtime: i64,
        xattrs: &[(String, Vec<u8>)],
    ) -> io::Result<()> {
        if let Some((uid, gid)) = owner.filter(|o| *o != self.ids) {
            rfs::fchown(
                file,
                Some(rfs::Uid::from_raw(uid)),
                Some(rfs::Gid::from_raw(gid)),
            )?;
        }
        // After the chown, which clears set-id bits.
        rfs::fchmod(file, Mode::from_raw_mode(mode))?;
        set_xattrs(file, xattrs);
        rfs::futimens(file, &timestamps(mtime))?;
        Ok(())
    }

    fn link_meta(
        &mut self,
        parent: &Path,
        file: &OsStr,
        owner: Option<(u32, u32)>,
        mtime: i64,
    ) -> io::Result<()> {
        if let Some((uid, gid)) = owner.filter(|o| *o != self.ids) {
            self.root.chown_nofollow(parent, file, uid, gid)?;
        }
        self.root.set_mtime_nofollow(parent, file, mtime)
    }

    fn finish_dirs(&mut self) -> Result<(), ArchiveError> {
        for d in std::mem::take(&mut self.dirs).into_iter().rev() {
            let w = |e| ArchiveError::write(&d.entry, "set directory metadata", e);
            let dir = self.root.open_dir(&d.path).map_err(w)?;
            self.file_meta(&dir, d.owner, d.mode, d.mtime, &d.xattrs)
                .map_err(w)?;
        }
        Ok(())
    }
}

fn timestamps(secs: i64) -> rfs::Timestamps {
    let t = rfs::Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    rfs::Timestamps {
        last_access: t,
        last_modification: t,
    }
}

/// Extended attributes from `SCHILY.xattr.*` PAX records.
fn pax_xattrs<R: Read>(entry: &mut ::tar::Entry<'_, R>) -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    if let Some(exts) = entry.pax_extensions()? {
        for ext in exts {
            let ext = ext?;
            if let Ok(key) = ext.key() {
                if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                    out.push((name.to_string(), ext.value_bytes().to_vec()));
                }
            }
        }
    }
    Ok(out)
}

/// Best effort, as tar does: a filesystem without xattrs, or a namespace we
/// may not write, loses the attribute with a log line.
fn set_xattrs(file: &File, xattrs: &[(String, Vec<u8>)]) {
    for (name, value) in xattrs {
        if let Err(e) = rfs::fsetxattr(file, name.as_str(), value, XattrFlags::empty()) {
            tracing::debug!(xattr = %name, error = %e, "extended attribute not restored");
        }
    }
}

#[cfg(test)]
mod tests;
