//! Zip extraction (the fetcher's `.zip` artifacts).

use super::root::{clean_path, split, Root};
use super::{ArchiveError, Budget, Options, Summary};
use rustix::fs::{self as rfs, Mode};
use std::io::{Read, Seek};
use std::path::Path;

const S_IFMT: u32 = 0o170000;
const S_IFLNK: u32 = 0o120000;

/// Extracts a zip archive into `dest` under the same rules as tar: no entry
/// leaves the destination, sizes and counts are capped. Unix modes recorded
/// in the archive are kept (set-id bits dropped); owners are not.
pub fn unpack_zip<R: Read + Seek>(
    reader: R,
    dest: &Path,
    opts: &Options,
) -> Result<Summary, ArchiveError> {
    let mut root = Root::destination(dest)?;
    let mut budget = Budget::new(opts);
    let mut zip = ::zip::ZipArchive::new(reader).map_err(ArchiveError::Zip)?;
    let mut dirs = Vec::new();
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(ArchiveError::Zip)?;
        let raw = entry.name_raw().to_vec();
        let name = String::from_utf8_lossy(&raw).into_owned();
        budget.entry()?;
        let path = clean_path(&raw).map_err(|r| ArchiveError::rejected(&name, r))?;
        if path.as_os_str().is_empty() {
            continue;
        }
        let (parent, file) = split(&path);
        let w = |step| {
            let name = &name;
            move |e| ArchiveError::write(name, step, e)
        };
        let unix = entry.unix_mode();
        if entry.is_dir() {
            root.create_dir(parent, file)
                .map_err(w("create directory"))?;
            dirs.push((path.clone(), name.clone(), unix.unwrap_or(0o755) & 0o777));
        } else if unix.is_some_and(|m| m & S_IFMT == S_IFLNK) {
            let mut target = Vec::new();
            let cap = 4096;
            (&mut entry)
                .take(cap + 1)
                .read_to_end(&mut target)
                .map_err(ArchiveError::Read)?;
            if target.len() as u64 > cap {
                return Err(ArchiveError::rejected(&name, "symlink target too long"));
            }
            root.symlink(parent, file, &target)
                .map_err(w("create symlink"))?;
        } else {
            let declared = entry.size();
            let mut out = root.create_file(parent, file).map_err(w("create file"))?;
            budget.copy(&name, declared, &mut entry, &mut out)?;
            let mode = unix.unwrap_or(0o644) & 0o777;
            rfs::fchmod(&out, Mode::from_raw_mode(mode)).map_err(|e| w("set mode")(e.into()))?;
        }
    }
    for (path, name, mode) in dirs.into_iter().rev() {
        let w = |e| ArchiveError::write(&name, "set directory mode", e);
        let dir = root.open_dir(&path).map_err(w)?;
        rfs::fchmod(&dir, Mode::from_raw_mode(mode)).map_err(|e| w(e.into()))?;
    }
    Ok(budget.summary)
}
