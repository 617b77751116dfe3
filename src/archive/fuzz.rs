//! Fuzz entries for archive extraction (see `fuzz/`). Each run extracts
//! into `root/` of a fresh directory that also holds `outside/` (a file, a
//! directory) and checks afterwards that nothing outside `root/` changed:
//! no entry was created, removed, written, linked to, chmod'ed or
//! re-timed there, whatever the archive holds. Panics when that breaks.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, BufReader, Cursor, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::{decompress, unpack_tar, unpack_zip, Compression, Devices, Options, Whiteouts};

/// A tar stream. The first byte picks the options: bits 0-1 whiteouts
/// (keep, overlay, apply), bit 2 reject devices, bit 3 keep owners, bit 4
/// xattrs, bit 5 decompress by magic first (as for image layers).
pub fn tar(data: &[u8]) {
    let Some((&flags, archive)) = data.split_first() else {
        return;
    };
    let opts = Options {
        whiteouts: match flags & 3 {
            0 => Whiteouts::Keep,
            1 => Whiteouts::Overlay,
            _ => Whiteouts::Apply,
        },
        devices: if flags & 4 != 0 {
            Devices::Reject
        } else {
            Devices::Skip
        },
        same_owner: flags & 8 != 0,
        xattrs: flags & 16 != 0,
        ..limits()
    };
    confined(|root| {
        if flags & 32 != 0 {
            let mut reader = BufReader::new(archive);
            let Ok(kind) = Compression::sniff(&mut reader) else {
                return;
            };
            let Ok(stream) = decompress(reader, kind) else {
                return;
            };
            let _ = unpack_tar(stream.take(8 << 20), root, &opts);
        } else {
            let _ = unpack_tar(archive, root, &opts);
        }
    });
}

/// A zip archive.
pub fn zip(data: &[u8]) {
    confined(|root| {
        let _ = unpack_zip(Cursor::new(data), root, &limits());
    });
}

/// Small caps, so that a run stays fast.
fn limits() -> Options {
    Options {
        max_bytes: 1 << 20,
        max_entries: 1024,
        ..Options::default()
    }
}

/// Runs `extract` on `root/` of a fresh directory and checks that
/// everything beside `root/` is as it was.
fn confined(extract: impl FnOnce(&Path)) {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let base = Path::new("/dev/shm");
    let base = if base.is_dir() {
        base.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let n = RUNS.fetch_add(1, Ordering::Relaxed);
    let top = base.join(format!("butte-fuzz-{}-{n}", std::process::id()));
    let _ = remove(&top);
    let root = top.join("root");
    let outside = top.join("outside");
    fs::create_dir_all(&root).expect("create the extraction root");
    fs::create_dir_all(outside.join("dir")).expect("create the outside directory");
    fs::write(outside.join("file"), b"outside").expect("create the outside file");
    let before = snapshot(&top, &root);
    extract(&root);
    let after = snapshot(&top, &root);
    remove(&top).expect("remove the fuzz directory");
    if before != after {
        let changed: Vec<_> = before
            .keys()
            .chain(after.keys())
            .filter(|p| before.get(*p) != after.get(*p))
            .collect();
        panic!("extraction changed what lies outside its root: {changed:?}");
    }
}

/// What can be seen of each entry under `top`, except beneath `skip`.
fn snapshot(top: &Path, skip: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut todo = vec![top.to_path_buf()];
    while let Some(p) = todo.pop() {
        if p.starts_with(skip) {
            continue;
        }
        let Ok(m) = fs::symlink_metadata(&p) else {
            continue;
        };
        let content = if m.is_file() {
            fs::read(&p).unwrap_or_default()
        } else {
            fs::read_link(&p)
                .map(|t| t.into_os_string().into_encoded_bytes())
                .unwrap_or_default()
        };
        out.insert(
            p.clone(),
            format!(
                "{:o} {}:{} links {} ino {} mtime {}.{} {:?}",
                m.mode(),
                m.uid(),
                m.gid(),
                m.nlink(),
                m.ino(),
                m.mtime(),
                m.mtime_nsec(),
                content
            ),
        );
        if m.is_dir() {
            if let Ok(entries) = fs::read_dir(&p) {
                todo.extend(entries.flatten().map(|e| e.path()));
            }
        }
    }
    out
}

/// Removes `path`, making directories that an archive left unreadable or
/// unwritable removable first.
fn remove(path: &Path) -> io::Result<()> {
    let mut todo = vec![path.to_path_buf()];
    while let Some(p) = todo.pop() {
        if fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
            fs::set_permissions(&p, fs::Permissions::from_mode(0o700))?;
            todo.extend(fs::read_dir(&p)?.flatten().map(|e| e.path()));
        }
    }
    fs::remove_dir_all(path)
}
