//! What garbage collection of sandboxes needs from the disk: the work
//! dir's usage, the age limit it allows (Mesos' formula), modification
//! times, and removal of whole trees; and the policy for `butte run`'s
//! standalone sandboxes, applied when `butte run` starts.
//!
//! A directory on its way out is first renamed into `gc/` under the work
//! dir (one `rename`, so nobody sees it half-removed under its own name),
//! then removed there; what a crash leaves in `gc/` is removed at the
//! next start.

use super::paths::WorkDir;
use super::StateError;
use nix::fcntl::{Flock, FlockArg};
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// The fraction (0.0 to 1.0) of the filesystem holding `path` that is
/// used, as Mesos' `fs::usage` counts it: `(blocks - free) / blocks`.
pub fn disk_usage(path: &Path) -> Result<f64, StateError> {
    let st = nix::sys::statvfs::statvfs(path)
        .map_err(|e| StateError::io("statvfs", path, io::Error::from(e)))?;
    let blocks = st.blocks() as f64;
    if blocks == 0.0 {
        return Ok(0.0);
    }
    Ok(((blocks - st.blocks_free() as f64) / blocks).clamp(0.0, 1.0))
}

/// How old a directory scheduled for removal may get at disk `usage`:
/// `delay * max(0, 1 - headroom - usage)`, as the Mesos agent computes it.
pub fn max_age(delay: Duration, headroom: f64, usage: f64) -> Duration {
    let factor = (1.0 - headroom - usage).max(0.0);
    delay.mul_f64(factor.min(1.0))
}

/// The modification time of `path` itself (a symlink is not followed).
pub fn mtime(path: &Path) -> io::Result<SystemTime> {
    fs::symlink_metadata(path)?.modified()
}

/// Sets the modification time of directory `path` to now, as Mesos does
/// when it schedules a directory: after a restart, its age counts from
/// the moment its executor or framework ended.
pub fn touch(path: &Path) -> io::Result<()> {
    File::open(path)?.set_modified(SystemTime::now())
}

/// `gc/`: where directories are renamed before they are removed.
pub fn trash(work: &WorkDir) -> PathBuf {
    work.root().join("gc")
}

/// Takes `path` out of its place at once: renamed into `trash`, whose new
/// name is returned for [`remove_tree`]. A path that is gone gives
/// `Ok(None)`. Across filesystems (a separately mounted `slaves/`) it
/// stays where it is and is returned as is.
pub fn take_away(trash: &Path, path: &Path) -> Result<Option<PathBuf>, StateError> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    match fs::symlink_metadata(path) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StateError::io("stat", path, e)),
    }
    fs::create_dir_all(trash).map_err(|e| StateError::io("create directory", trash, e))?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let target = trash.join(format!(
        "{}.{}.{name}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    match fs::rename(path, &target) {
        Ok(()) => Ok(Some(target)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) if e.raw_os_error() == Some(nix::libc::EXDEV) => Ok(Some(path.to_path_buf())),
        Err(e) => Err(StateError::io("rename into the gc directory", path, e)),
    }
}

/// Removes a whole tree (a file or symlink alone); one that is already
/// gone is fine. Blocking: call it off the event loop.
pub fn remove_tree(path: &Path) -> Result<(), StateError> {
    let result = match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StateError::io("remove", path, e)),
    }
}

/// Empties the trash a previous run left. Blocking.
pub fn empty_trash(work: &WorkDir) -> Result<usize, StateError> {
    let trash = trash(work);
    let entries = match fs::read_dir(&trash) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(StateError::io("read directory", &trash, e)),
    };
    let mut n = 0;
    for entry in entries {
        let entry = entry.map_err(|e| StateError::io("read directory", &trash, e))?;
        remove_tree(&entry.path())?;
        n += 1;
    }
    Ok(n)
}

/// The directories of a directory (symlinks such as `latest` and files
/// left out), sorted; none when it does not exist.
pub fn subdirs(dir: &Path) -> Result<Vec<PathBuf>, StateError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StateError::io("read directory", dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| StateError::io("read directory", dir, e))?;
        let kind = entry
            .file_type()
            .map_err(|e| StateError::io("stat", &entry.path(), e))?;
        if kind.is_dir() {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

/// A standalone sandbox held by the `butte run` that uses it (an
/// exclusive `flock` on the directory, released when the process ends,
/// however it ends), so that another `butte run`'s GC leaves it alone.
pub struct SandboxLock {
    _lock: Flock<File>,
}

/// Locks standalone sandbox `dir` for as long as the result lives.
pub fn lock_sandbox(dir: &Path) -> Result<SandboxLock, StateError> {
    let file = File::open(dir).map_err(|e| StateError::io("open", dir, e))?;
    let lock = Flock::lock(file, FlockArg::LockExclusiveNonblock)
        .map_err(|(_, e)| StateError::io("lock", dir, io::Error::from(e)))?;
    Ok(SandboxLock { _lock: lock })
}

/// `butte run`'s GC: removes the standalone sandboxes under `containers/`
/// that no running `butte run` holds and that are older (by modification
/// time, set when their task ended) than the agent's age limit for the
/// work dir's current usage. Returns the sandboxes removed. Blocking.
pub fn prune_standalone(
    work: &WorkDir,
    delay: Duration,
    headroom: f64,
) -> Result<Vec<PathBuf>, StateError> {
    let dir = work.containers();
    let sandboxes = subdirs(&dir)?;
    if sandboxes.is_empty() {
        return Ok(Vec::new());
    }
    let usage = disk_usage(&dir)?;
    let limit = max_age(delay, headroom, usage);
    let now = SystemTime::now();
    let mut removed = Vec::new();
    for sandbox in sandboxes {
        let Ok(modified) = mtime(&sandbox) else {
            continue;
        };
        if now.duration_since(modified).unwrap_or_default() < limit {
            continue;
        }
        // Held by a running `butte run`: not finished, whatever its age.
        let Ok(_held) = lock_sandbox(&sandbox) else {
            continue;
        };
        remove_tree(&sandbox)?;
        removed.push(sandbox);
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_limit_shrinks_with_usage_as_in_mesos() {
        let week = Duration::from_secs(7 * 86400);
        assert_eq!(max_age(week, 0.1, 0.0), week.mul_f64(0.9));
        assert_eq!(max_age(week, 0.1, 0.5), week.mul_f64(0.4));
        assert_eq!(max_age(week, 0.1, 0.9), Duration::ZERO);
        assert_eq!(max_age(week, 0.1, 0.99), Duration::ZERO);
        assert_eq!(max_age(week, 0.0, 0.0), week);
    }

    #[test]
    fn usage_is_a_fraction_of_the_filesystem() {
        let u = disk_usage(Path::new("/")).unwrap();
        assert!((0.0..=1.0).contains(&u), "{u}");
        assert!(disk_usage(Path::new("/no/such/dir")).is_err());
    }

    #[test]
    fn take_away_renames_into_the_trash_and_remove_tree_finishes() {
        let dir = tempfile::tempdir().unwrap();
        let work = WorkDir::new(dir.path());
        let victim = dir.path().join("slaves/S/frameworks/F");
        fs::create_dir_all(victim.join("executors/E/runs/C")).unwrap();
        fs::write(victim.join("executors/E/runs/C/stdout"), "x").unwrap();
        let gone = take_away(&trash(&work), &victim).unwrap().unwrap();
        assert!(!victim.exists());
        assert!(gone.starts_with(trash(&work)));
        assert!(gone.join("executors/E/runs/C/stdout").exists());
        remove_tree(&gone).unwrap();
        assert!(!gone.exists());
        assert_eq!(take_away(&trash(&work), &victim).unwrap(), None);
        remove_tree(&gone).unwrap();
        // What a crash left in the trash goes at the next start.
        fs::create_dir_all(trash(&work).join("left/over")).unwrap();
        assert_eq!(empty_trash(&work).unwrap(), 1);
        assert_eq!(subdirs(&trash(&work)).unwrap(), Vec::<PathBuf>::new());
    }

    #[test]
    fn touch_makes_a_directory_young_again() {
        let dir = tempfile::tempdir().unwrap();
        let old = SystemTime::now() - Duration::from_secs(3600);
        File::open(dir.path()).unwrap().set_modified(old).unwrap();
        assert!(mtime(dir.path()).unwrap() <= old + Duration::from_secs(1));
        touch(dir.path()).unwrap();
        assert!(
            SystemTime::now()
                .duration_since(mtime(dir.path()).unwrap())
                .unwrap()
                < Duration::from_secs(60)
        );
    }

    #[test]
    fn standalone_prune_keeps_young_and_held_sandboxes() {
        let dir = tempfile::tempdir().unwrap();
        let work = WorkDir::new(dir.path());
        let day = Duration::from_secs(86400);
        let old = SystemTime::now() - 2 * day;
        let mk = |name: &str, age: Option<SystemTime>| {
            let p = work.container_sandbox(name);
            fs::create_dir_all(&p).unwrap();
            fs::write(p.join("stdout"), "out").unwrap();
            if let Some(t) = age {
                File::open(&p).unwrap().set_modified(t).unwrap();
            }
            p
        };
        let finished = mk("finished", Some(old));
        let young = mk("young", None);
        let running = mk("running", Some(old));
        let held = lock_sandbox(&running).unwrap();
        // Nothing is that full here: headroom 0 keeps the limit near 1 day
        // times the free fraction, and 2 days is older than any of it.
        let removed = prune_standalone(&work, day, 0.0).unwrap();
        assert_eq!(removed, vec![finished.clone()]);
        assert!(!finished.exists() && young.exists() && running.exists());
        drop(held);
        let removed = prune_standalone(&work, day, 0.0).unwrap();
        assert_eq!(removed, vec![running]);
        assert!(young.exists());
        // A missing containers/ dir is nothing to do.
        let empty = tempfile::tempdir().unwrap();
        assert!(prune_standalone(&WorkDir::new(empty.path()), day, 0.1)
            .unwrap()
            .is_empty());
    }
}
