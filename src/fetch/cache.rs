//! The agent-wide fetcher cache, `<work_dir>/fetch-cache/`.
//!
//! ```text
//! fetch-cache/                 0700: tasks reach entries only through links
//! |-- .lock                    held exclusively to add an entry (and evict)
//! |-- <key>.lock               one per entry, flock(2): shared while the entry
//! |                            is placed in a sandbox, exclusive while it is
//! |                            downloaded or removed
//! |-- <key>/meta.json          uri, user, form, size; its mtime is the last use
//! |-- <key>/data              the artifact, or its unpacked tree; files are
//! |                            read-only, as they are hard-linked into sandboxes
//! `-- tmp/<pid>-<id>/          downloads in progress, entries being removed
//! ```
//!
//! The key is a hash of the user, the URI and the form (file, or a tree
//! unpacked from a named archive). An entry appears whole, by rename, once
//! the total of all entries' sizes with it stays under the limit: least
//! recently used entries are evicted first, and an entry in use (its lock
//! held) is never evicted. An entry that cannot fit is not kept.
//!
//! The locks are flock(2) locks, so they hold between threads and between
//! processes (several `butte fetch` at once). A lock file can be removed
//! while someone waits on it; a locker checks, once it holds the lock, that
//! the file it locked is still the one at the path, and starts over if not.

use super::place::{remove_tree, walk};
use super::FetchError;
use crate::support::random_uuid;
use rustix::fs::{self as rfs, FlockOperation};
use rustix::io::Errno;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

const META: &str = "meta.json";
const DATA: &str = "data";
const VERSION: u32 = 1;

/// What an entry records about itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Meta {
    pub version: u32,
    pub uri: String,
    pub user: Option<String>,
    /// `file`, or `tree:<archive name>`.
    pub form: String,
    /// Bytes of file content.
    pub size: u64,
}

impl Meta {
    pub(crate) fn new(uri: &str, user: Option<&str>, form: &str, size: u64) -> Meta {
        Meta {
            version: VERSION,
            uri: uri.to_string(),
            user: user.map(str::to_string),
            form: form.to_string(),
            size,
        }
    }
}

/// A held flock; released when dropped.
#[derive(Debug)]
pub(crate) struct Lock {
    _file: File,
}

#[derive(Debug, Clone)]
pub(crate) struct Cache {
    dir: PathBuf,
    limit: u64,
}

impl Cache {
    pub(crate) fn new(dir: PathBuf, limit: u64) -> Cache {
        Cache { dir, limit }
    }

    pub(crate) fn key(user: Option<&str>, uri: &str, form: &str) -> String {
        let mut h = Sha256::new();
        h.update(b"butte-fetch-cache-v1\0");
        match user {
            Some(u) => {
                h.update(b"user\0");
                h.update(u.as_bytes());
            }
            None => h.update(b"nouser"),
        }
        for part in [uri, form] {
            h.update(b"\0");
            h.update(part.as_bytes());
        }
        hex::encode(h.finalize())
    }

    fn err(&self, step: &'static str) -> impl FnOnce(io::Error) -> FetchError + '_ {
        FetchError::cache(step, &self.dir)
    }

    /// Creates the cache (0700) and its `tmp/`; parents get the usual mode.
    fn ensure(&self) -> Result<(), FetchError> {
        if let Some(parent) = self.dir.parent() {
            fs::create_dir_all(parent).map_err(self.err("create"))?;
        }
        for dir in [self.dir.clone(), self.dir.join("tmp")] {
            match fs::DirBuilder::new().mode(0o700).create(&dir) {
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                    return Err(FetchError::cache("create", &dir)(e))
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Locks the entry `key`, shared or exclusive, waiting as long as it takes.
    pub(crate) fn lock(&self, key: &str, exclusive: bool) -> Result<Lock, FetchError> {
        self.ensure()?;
        let op = if exclusive {
            FlockOperation::LockExclusive
        } else {
            FlockOperation::LockShared
        };
        let path = self.dir.join(format!("{key}.lock"));
        lock_file(&path, op)
            .map_err(FetchError::cache("lock", &path))?
            .ok_or_else(|| FetchError::cache("lock", &path)(Errno::WOULDBLOCK.into()))
    }

    /// The entry's data if it is complete; marks it as just used.
    pub(crate) fn lookup(&self, key: &str) -> Option<PathBuf> {
        let entry = self.dir.join(key);
        let meta: Meta = serde_json::from_slice(&fs::read(entry.join(META)).ok()?).ok()?;
        let data = entry.join(DATA);
        if meta.version != VERSION || fs::symlink_metadata(&data).is_err() {
            return None;
        }
        touch(&entry.join(META));
        Some(data)
    }

    /// A new staging directory for a download.
    pub(crate) fn staging(&self) -> Result<PathBuf, FetchError> {
        self.ensure()?;
        let id = random_uuid().map_err(self.err("create staging directory"))?;
        let path = self
            .dir
            .join("tmp")
            .join(format!("{}-{id}", std::process::id()));
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(FetchError::cache("create staging directory", &path))?;
        Ok(path)
    }

    /// Adds `staging/data` as the entry `key` (whose lock the caller holds
    /// exclusively), evicting least recently used entries to make room.
    /// Returns the entry's data, or `None` (and keeps nothing) if it
    /// cannot fit.
    pub(crate) fn commit(
        &self,
        key: &str,
        staging: &Path,
        meta: &Meta,
    ) -> Result<Option<PathBuf>, FetchError> {
        let global = self.dir.join(".lock");
        let _global = lock_file(&global, FlockOperation::LockExclusive)
            .map_err(FetchError::cache("lock", &global))?;
        self.sweep();
        if meta.size > self.limit {
            return Ok(None);
        }
        let mut entries = self.entries();
        entries.retain(|e| e.key != key);
        let mut total: u64 = entries.iter().map(|e| e.size).sum();
        entries.sort_by_key(|e| e.used);
        for e in &entries {
            if total + meta.size <= self.limit {
                break;
            }
            if self.evict(&e.key)? {
                total -= e.size;
            }
        }
        if total + meta.size > self.limit {
            return Ok(None);
        }
        let data = staging.join(DATA);
        seal(&data).map_err(FetchError::cache("make read-only", &data))?;
        let meta_path = staging.join(META);
        let text = serde_json::to_vec_pretty(meta).map_err(io::Error::from);
        text.and_then(|t| fs::write(&meta_path, t))
            .map_err(FetchError::cache("write", &meta_path))?;
        let entry = self.dir.join(key);
        if entry.exists() {
            // An unusable leftover under our own exclusive lock.
            remove_tree(&entry).map_err(FetchError::cache("remove", &entry))?;
        }
        fs::rename(staging, &entry).map_err(FetchError::cache("add entry", &entry))?;
        tracing::info!(uri = %meta.uri, key, size = meta.size, total = total + meta.size, "cached");
        Ok(Some(entry.join(DATA)))
    }

    /// Removes the entry `key` unless it is in use. Caller holds the global lock.
    fn evict(&self, key: &str) -> Result<bool, FetchError> {
        let lock_path = self.dir.join(format!("{key}.lock"));
        let Some(lock) = lock_file(&lock_path, FlockOperation::NonBlockingLockExclusive)
            .map_err(FetchError::cache("lock", &lock_path))?
        else {
            tracing::debug!(key, "cache entry in use, not evicted");
            return Ok(false);
        };
        let entry = self.dir.join(key);
        let trash = self.trash_path();
        fs::rename(&entry, &trash).map_err(FetchError::cache("evict", &entry))?;
        let _ = fs::remove_file(&lock_path);
        drop(lock);
        tracing::info!(key, "evicted from the fetcher cache");
        remove_tree(&trash).map_err(FetchError::cache("remove", &trash))?;
        Ok(true)
    }

    fn trash_path(&self) -> PathBuf {
        let id = random_uuid().unwrap_or_else(|_| format!("{:?}", SystemTime::now()));
        self.dir
            .join("tmp")
            .join(format!("{}-{id}-removed", std::process::id()))
    }

    /// Removes staging directories of processes that are gone, and lock
    /// files of entries that do not exist and are not locked.
    fn sweep(&self) {
        if let Ok(rd) = fs::read_dir(self.dir.join("tmp")) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let pid = name.split('-').next().unwrap_or("");
                let alive = !pid.is_empty() && Path::new("/proc").join(pid).exists();
                if !alive {
                    let _ = remove_tree(&e.path());
                }
            }
        }
        if let Ok(rd) = fs::read_dir(&self.dir) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let Some(key) = name.strip_suffix(".lock").filter(|k| is_key(k)) else {
                    continue;
                };
                if self.dir.join(key).exists() {
                    continue;
                }
                let path = e.path();
                if let Ok(Some(_held)) = lock_file(&path, FlockOperation::NonBlockingLockExclusive)
                {
                    if !self.dir.join(key).exists() {
                        let _ = fs::remove_file(&path);
                    }
                }
            }
        }
    }

    fn entries(&self) -> Vec<Entry> {
        let Ok(rd) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        rd.flatten()
            .filter_map(|e| {
                let key = e.file_name().to_str().filter(|k| is_key(k))?.to_string();
                let meta_path = e.path().join(META);
                let parsed = fs::read(&meta_path)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Meta>(&b).ok());
                // An entry without a readable record goes first.
                let (size, used) = match (parsed, fs::metadata(&meta_path)) {
                    (Some(m), Ok(st)) => (m.size, st.modified().unwrap_or(SystemTime::UNIX_EPOCH)),
                    _ => (0, SystemTime::UNIX_EPOCH),
                };
                Some(Entry { key, size, used })
            })
            .collect()
    }

    /// The total size of all entries.
    #[cfg(test)]
    pub(crate) fn usage(&self) -> u64 {
        self.entries().iter().map(|e| e.size).sum()
    }
}

struct Entry {
    key: String,
    size: u64,
    used: SystemTime,
}

fn is_key(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Opens (creating) and flocks `path`; `None` if a non-blocking lock is
/// held elsewhere. Retries if the file was replaced while waiting.
fn lock_file(path: &Path, op: FlockOperation) -> io::Result<Option<Lock>> {
    loop {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)?;
        match rfs::flock(&file, op) {
            Ok(()) => {}
            Err(Errno::WOULDBLOCK) => return Ok(None),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
        let held = file.metadata()?;
        match fs::metadata(path) {
            Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => {
                return Ok(Some(Lock { _file: file }))
            }
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Marks `path` as just used.
fn touch(path: &Path) {
    if let Ok(f) = OpenOptions::new().write(true).open(path) {
        let _ = f.set_modified(SystemTime::now());
    }
}

/// Takes every write bit off the files beneath `root`: they are about to be
/// hard-linked into sandboxes.
fn seal(root: &Path) -> io::Result<()> {
    walk(root, &mut |p, m| {
        if m.is_file() && m.permissions().mode() & 0o222 != 0 {
            let mode = m.permissions().mode() & 0o7555;
            fs::set_permissions(p, fs::Permissions::from_mode(mode))?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    fn add(c: &Cache, key: &str, size: usize) -> Option<PathBuf> {
        let _l = c.lock(key, true).unwrap();
        let s = c.staging().unwrap();
        fs::write(s.join(DATA), vec![0u8; size]).unwrap();
        let meta = Meta::new(&format!("http://h/{key}"), None, "file", size as u64);
        let r = c.commit(key, &s, &meta).unwrap();
        let _ = remove_tree(&s);
        r
    }

    fn k(n: u8) -> String {
        Cache::key(None, &format!("http://h/{n}"), "file")
    }

    #[test]
    fn keys_separate_users_uris_and_forms() {
        let a = Cache::key(None, "http://h/a", "file");
        assert!(is_key(&a));
        assert_ne!(a, Cache::key(Some(""), "http://h/a", "file"));
        assert_ne!(a, Cache::key(Some("bob"), "http://h/a", "file"));
        assert_ne!(a, Cache::key(None, "http://h/b", "file"));
        assert_ne!(a, Cache::key(None, "http://h/a", "tree:a"));
        assert_eq!(a, Cache::key(None, "http://h/a", "file"));
    }

    #[test]
    fn entries_are_read_only_and_found_again() {
        let d = tempfile::tempdir().unwrap();
        let c = Cache::new(d.path().join("fc"), 1000);
        assert!(c.lookup(&k(1)).is_none());
        let data = add(&c, &k(1), 10).unwrap();
        assert_eq!(c.lookup(&k(1)), Some(data.clone()));
        assert_eq!(fs::metadata(&data).unwrap().permissions().mode() & 0o222, 0);
        assert_eq!(c.usage(), 10);
        let tmp: Vec<_> = fs::read_dir(d.path().join("fc/tmp")).unwrap().collect();
        assert!(tmp.is_empty(), "staging left: {tmp:?}");
    }

    #[test]
    fn least_recently_used_entries_go_first_and_in_use_ones_stay() {
        let d = tempfile::tempdir().unwrap();
        let c = Cache::new(d.path().join("fc"), 250);
        add(&c, &k(1), 100).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        add(&c, &k(2), 100).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert!(c.lookup(&k(1)).is_some()); // 1 is now the most recent
        add(&c, &k(3), 100).unwrap();
        assert!(c.lookup(&k(1)).is_some());
        assert!(c.lookup(&k(2)).is_none(), "2 was least recently used");
        assert!(!d.path().join("fc").join(format!("{}.lock", k(2))).exists());
        assert!(c.usage() <= 250);

        // In use: not evicted, so a new entry that needs its room is not kept.
        let _reader = c.lock(&k(1), false).unwrap();
        let _reader3 = c.lock(&k(3), false).unwrap();
        assert!(add(&c, &k(4), 100).is_none());
        assert!(c.lookup(&k(1)).is_some() && c.lookup(&k(3)).is_some());
        // Too large for the cache at all.
        assert!(add(&c, &k(5), 300).is_none());
        assert!(c.usage() <= 250);
    }

    #[test]
    fn exclusive_locks_exclude_across_threads() {
        let d = tempfile::tempdir().unwrap();
        let c = Arc::new(Cache::new(d.path().join("fc"), 1000));
        let inside = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (c, inside, most) = (c.clone(), inside.clone(), most.clone());
                std::thread::spawn(move || {
                    for _ in 0..10 {
                        let _l = c.lock(&k(1), true).unwrap();
                        let n = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(n, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(1));
                        inside.fetch_sub(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn stale_staging_of_dead_processes_is_swept() {
        let d = tempfile::tempdir().unwrap();
        let c = Cache::new(d.path().join("fc"), 1000);
        c.ensure().unwrap();
        let stale = d.path().join("fc/tmp/999999999-x");
        fs::create_dir_all(stale.join("data")).unwrap();
        add(&c, &k(1), 1).unwrap();
        assert!(!stale.exists());
    }
}
