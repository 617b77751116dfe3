//! Checkpoints under `meta/` (the layout is drawn in `paths`): how one
//! record is written and read, the format version, and the `latest`
//! symlinks.
//!
//! A protobuf checkpoint is framed as Mesos frames it: a 4-byte
//! little-endian length, then the encoded message. Text checkpoints
//! (`framework.pid`, `forked.pid`, `boot_id`) are plain bytes. Every file is
//! written whole or not at all: a temporary file in the same directory,
//! fsync, rename over the target, fsync of the directory. Temporary files
//! and symlinks have names starting with `.butte-tmp.`, so that one left by
//! a crash is not mistaken for an entry by recovery.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::paths::{WorkDir, LATEST};
pub use super::StateError;
use crate::proto::mesos::{DrainConfig, ExecutorInfo, FrameworkInfo, SlaveInfo, Task};

mod recover;

pub use recover::{recover, AgentState, ExecutorState, FrameworkState, RunState, TaskState};

/// The content of `meta/version`.
pub const META_VERSION: &str = "butte-meta 1";

/// How temporary files and symlinks are named; recovery skips such names
/// and no id may start with it.
pub(crate) const TEMP_PREFIX: &str = ".butte-tmp.";

/// Where the kernel tells the current boot's id.
const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";

/// `meta/version`.
pub fn version_path(work: &WorkDir) -> PathBuf {
    work.meta().join("version")
}

/// Writes `meta/version` if it is absent, and checks it if it is present:
/// a work directory written by a format this butte does not know is an
/// error, never silently reused.
pub fn ensure_version(work: &WorkDir) -> Result<(), StateError> {
    let path = version_path(work);
    match read_text(&path)? {
        Some(found) => check_version(&path, &found),
        None => checkpoint_text(&path, &format!("{META_VERSION}\n")),
    }
}

fn check_version(path: &Path, found: &str) -> Result<(), StateError> {
    if found == META_VERSION {
        Ok(())
    } else {
        Err(StateError::Version {
            path: path.to_path_buf(),
            found: found.to_string(),
        })
    }
}

/// Checks `meta/version` before recovery. `Ok(false)`: there is nothing to
/// recover (no `meta/`, or a `meta/` without a version and without an
/// agent). Checkpoints without a version file are an error.
pub(crate) fn check_recoverable(work: &WorkDir) -> Result<bool, StateError> {
    let meta = work.meta();
    if !exists(&meta)? {
        return Ok(false);
    }
    let path = version_path(work);
    match read_text(&path)? {
        Some(found) => check_version(&path, &found).map(|()| true),
        None if exists(&work.meta_agents().join(LATEST))? => Err(StateError::Version {
            path,
            found: "no version file".to_string(),
        }),
        None => Ok(false),
    }
}

/// The id of the running kernel's boot.
pub fn boot_id() -> Result<String, StateError> {
    let path = Path::new(BOOT_ID);
    let text = fs::read_to_string(path).map_err(|e| StateError::io("read", path, e))?;
    Ok(text.trim().to_string())
}

/// Records the current boot id in `meta/boot_id`.
pub fn checkpoint_boot_id(work: &WorkDir) -> Result<(), StateError> {
    ensure_version(work)?;
    checkpoint_text(&work.boot_id(), &format!("{}\n", boot_id()?))
}

/// Whether the host has rebooted since `meta/boot_id` was written (false if
/// it never was).
pub fn rebooted(work: &WorkDir) -> Result<bool, StateError> {
    match read_text(&work.boot_id())? {
        Some(recorded) => Ok(recorded != boot_id()?),
        None => Ok(false),
    }
}

/// Checkpoints the agent's `slave.info` (writing `meta/version` first if
/// this is the work directory's first checkpoint).
pub fn checkpoint_agent_info(
    work: &WorkDir,
    agent: &str,
    info: &SlaveInfo,
) -> Result<(), StateError> {
    ensure_version(work)?;
    valid_ids(&[("agent", agent)])?;
    checkpoint_entry(&work.agent_info(agent), info)
}

/// Points `meta/slaves/latest` at `agent`: the agent recovery will pick.
pub fn set_latest_agent(work: &WorkDir, agent: &str) -> Result<(), StateError> {
    ensure_version(work)?;
    valid_ids(&[("agent", agent)])?;
    set_latest(&work.meta_agents().join(LATEST), agent)
}

/// Removes `meta/slaves/latest` (if there is one): the next start recovers
/// nothing and registers as a new agent, as after `--recover=cleanup`.
pub fn remove_latest_agent(work: &WorkDir) -> Result<(), StateError> {
    let link = work.meta_agents().join(LATEST);
    match fs::remove_file(&link) {
        Ok(()) => sync_dir(parent(&link)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StateError::io("remove", &link, e)),
    }
}

/// Checkpoints the drain the master asked for (`drain.config`), so that
/// it survives a restart of the agent.
pub fn checkpoint_drain_config(
    work: &WorkDir,
    agent: &str,
    config: &DrainConfig,
) -> Result<(), StateError> {
    valid_ids(&[("agent", agent)])?;
    checkpoint(&work.drain_config(agent), config)
}

/// Removes `drain.config`: the drain is over (or there was none).
pub fn remove_drain_config(work: &WorkDir, agent: &str) -> Result<(), StateError> {
    valid_ids(&[("agent", agent)])?;
    let path = work.drain_config(agent);
    match fs::remove_file(&path) {
        Ok(()) => sync_dir(parent(&path)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StateError::io("remove", &path, e)),
    }
}

/// Checkpoints `framework.info` and, for a framework with a libprocess
/// pid (a scheduler driver; HTTP frameworks have none), `framework.pid`.
pub fn checkpoint_framework(
    work: &WorkDir,
    agent: &str,
    framework: &str,
    info: &FrameworkInfo,
    pid: Option<&str>,
) -> Result<(), StateError> {
    valid_ids(&[("agent", agent), ("framework", framework)])?;
    checkpoint_entry(&work.framework_info(agent, framework), info)?;
    match pid {
        Some(pid) => checkpoint_text(&work.framework_pid(agent, framework), pid),
        None => Ok(()),
    }
}

/// Checkpoints `executor.info`.
pub fn checkpoint_executor(
    work: &WorkDir,
    agent: &str,
    framework: &str,
    executor: &str,
    info: &ExecutorInfo,
) -> Result<(), StateError> {
    valid_ids(&[
        ("agent", agent),
        ("framework", framework),
        ("executor", executor),
    ])?;
    checkpoint_entry(&work.executor_info(agent, framework, executor), info)
}

/// Checkpoints one run (container) of an executor: creates its directory,
/// points `runs/latest` at it, and records what is given: the pid of the
/// executor's process once forked, and `http: true` once the executor
/// subscribed over the v1 HTTP API. Call it at launch, after the fork and
/// at subscription; what is not given is left as it is.
pub fn checkpoint_run(
    work: &WorkDir,
    agent: &str,
    framework: &str,
    executor: &str,
    container: &str,
    forked_pid: Option<i32>,
    http: bool,
) -> Result<(), StateError> {
    valid_ids(&[
        ("agent", agent),
        ("framework", framework),
        ("executor", executor),
        ("container", container),
    ])?;
    create_dirs(&work.meta_run(agent, framework, executor, container))?;
    let latest = work
        .meta_executor(agent, framework, executor)
        .join("runs")
        .join(LATEST);
    if read_latest(&latest)?.as_deref() != Some(container) {
        set_latest(&latest, container)?;
    }
    if let Some(pid) = forked_pid {
        let path = work.forked_pid(agent, framework, executor, container);
        checkpoint_text(&path, &pid.to_string())?;
    }
    if http {
        // Written once: a re-subscription (200 of them after a restart)
        // costs no fsync.
        let marker = work.http_marker(agent, framework, executor, container);
        if !exists(&marker)? {
            checkpoint_text(&marker, "")?;
        }
    }
    Ok(())
}

/// Checkpoints `task.info` (the task's id is taken from `task`).
pub fn checkpoint_task(
    work: &WorkDir,
    agent: &str,
    framework: &str,
    executor: &str,
    container: &str,
    task: &Task,
) -> Result<(), StateError> {
    let id = task.task_id.value.as_str();
    valid_ids(&[
        ("agent", agent),
        ("framework", framework),
        ("executor", executor),
        ("container", container),
        ("task", id),
    ])?;
    checkpoint_entry(
        &work.task_info(agent, framework, executor, container, id),
        task,
    )
}

/// Marks an executor run as over (`executor.sentinel`): recovery will not
/// try to reconnect to it.
pub fn mark_run_completed(
    work: &WorkDir,
    agent: &str,
    framework: &str,
    executor: &str,
    container: &str,
) -> Result<(), StateError> {
    valid_ids(&[
        ("agent", agent),
        ("framework", framework),
        ("executor", executor),
        ("container", container),
    ])?;
    checkpoint_text(
        &work.executor_sentinel(agent, framework, executor, container),
        "",
    )
}

/// Checks that each `(kind, id)` can name a directory under `meta/`: not
/// empty, not `.` or `..`, no `/` or NUL, not a temporary file's name, and
/// (for agents and containers, which have `latest` siblings) not `latest`.
pub fn valid_ids(ids: &[(&'static str, &str)]) -> Result<(), StateError> {
    for &(what, id) in ids {
        let bad = id.is_empty()
            || id == "."
            || id == ".."
            || id.contains(['/', '\0'])
            || id.starts_with(TEMP_PREFIX)
            || (id == LATEST && matches!(what, "agent" | "container"));
        if bad {
            return Err(StateError::InvalidId {
                what,
                id: id.to_string(),
            });
        }
    }
    Ok(())
}

/// Writes `msg` to `path` atomically, framed with its length, creating
/// the parent directories.
pub fn checkpoint<M: prost::Message>(path: &Path, msg: &M) -> Result<(), StateError> {
    let framed = frame(path, msg)?;
    write_atomic(path, |f| f.write_all(&framed))
}

/// Writes the info file `path` of an entry (an agent, framework, executor
/// or task directory) so that the entry never exists without it: a new
/// entry is built under a temporary name, info file included, and renamed
/// into place whole. Recovery then never meets a half-created entry it
/// must skip; a crash leaves at most a temporary directory, which it
/// ignores. An existing entry has its info file replaced atomically.
pub fn checkpoint_entry<M: prost::Message>(path: &Path, msg: &M) -> Result<(), StateError> {
    let entry = parent(path);
    if exists(entry)? {
        return checkpoint(path, msg);
    }
    let file = path.file_name().unwrap_or_default();
    let above = parent(entry);
    create_dirs(above)?;
    let tmp = temp_name(entry);
    fs::create_dir(&tmp).map_err(|e| StateError::io("create directory", &tmp, e))?;
    let built = checkpoint(&tmp.join(file), msg).and_then(|()| {
        crate::support::crash::point("entry");
        fs::rename(&tmp, entry).map_err(|e| StateError::io("rename into place", entry, e))
    });
    match built {
        Ok(()) => sync_dir(above),
        Err(e) => {
            let _ = fs::remove_dir_all(&tmp);
            // Someone made the entry meanwhile: write into it.
            if exists(entry)? {
                checkpoint(path, msg)
            } else {
                Err(e)
            }
        }
    }
}

/// Writes `text` to `path` atomically, creating the parent directories.
pub fn checkpoint_text(path: &Path, text: &str) -> Result<(), StateError> {
    write_atomic(path, |f| f.write_all(text.as_bytes()))
}

/// Reads a checkpoint written by [`checkpoint`]. `Ok(None)`: the file does
/// not exist. A file that is there but does not hold exactly one framed
/// message (an empty one included: checkpoints are renamed into place
/// whole) is an error naming it.
pub fn read<M: prost::Message + Default>(path: &Path) -> Result<Option<M>, StateError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StateError::io("read", path, e)),
    };
    let corrupt = |cause: String| StateError::Corrupt {
        path: path.to_path_buf(),
        cause,
    };
    let Some((size, body)) = bytes.split_first_chunk::<4>() else {
        return Err(corrupt(format!(
            "{} bytes, too short for a record",
            bytes.len()
        )));
    };
    let size = u32::from_le_bytes(*size) as usize;
    if size != body.len() {
        return Err(corrupt(format!(
            "length prefix says {size} bytes but {} follow",
            body.len()
        )));
    }
    M::decode(body)
        .map(Some)
        .map_err(|source| StateError::Decode {
            path: path.to_path_buf(),
            source,
        })
}

/// Reads a text checkpoint, trimmed. `Ok(None)`: missing or blank.
pub fn read_text(path: &Path) -> Result<Option<String>, StateError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StateError::io("read", path, e)),
    };
    let text = String::from_utf8(bytes).map_err(|_| StateError::Corrupt {
        path: path.to_path_buf(),
        cause: "not UTF-8 text".to_string(),
    })?;
    let text = text.trim();
    Ok((!text.is_empty()).then(|| text.to_string()))
}

/// Points the symlink `link` at `target` (a name in the same directory),
/// atomically: a temporary symlink renamed over it.
pub fn set_latest(link: &Path, target: &str) -> Result<(), StateError> {
    let dir = parent(link);
    create_dirs(dir)?;
    let tmp = temp_name(link);
    if let Err(e) = std::os::unix::fs::symlink(target, &tmp) {
        return Err(StateError::io("create symlink", &tmp, e));
    }
    if let Err(e) = fs::rename(&tmp, link) {
        let _ = fs::remove_file(&tmp);
        return Err(StateError::io("rename symlink over", link, e));
    }
    sync_dir(dir)
}

/// The name a `latest` symlink points to (its last path component), or
/// `None` if there is no such symlink.
pub fn read_latest(link: &Path) -> Result<Option<String>, StateError> {
    let target = match fs::read_link(link) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StateError::io("read symlink", link, e)),
    };
    let name = target
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| StateError::Corrupt {
            path: link.to_path_buf(),
            cause: format!("points to {}, which names no entry", target.display()),
        })?;
    Ok(Some(name.to_string()))
}

/// Whether `path` exists (a dangling symlink counts).
pub(crate) fn exists(path: &Path) -> Result<bool, StateError> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(StateError::io("stat", path, e)),
    }
}

fn frame<M: prost::Message>(path: &Path, msg: &M) -> Result<Vec<u8>, StateError> {
    let body = msg.encode_to_vec();
    let size = u32::try_from(body.len()).map_err(|_| StateError::TooLarge {
        path: path.to_path_buf(),
        size: body.len(),
    })?;
    let mut framed = Vec::with_capacity(4 + body.len());
    framed.extend_from_slice(&size.to_le_bytes());
    framed.extend_from_slice(&body);
    Ok(framed)
}

/// The parent directory of `path` (`.` for a bare name).
fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// A fresh dot-named sibling of `path` for a temporary file or symlink.
fn temp_name(path: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    parent(path).join(format!("{TEMP_PREFIX}{name}.{}.{n}", std::process::id()))
}

/// Creates `path` from what `fill` writes to a temporary file in the same
/// directory, synced and renamed over `path`; the directory is synced
/// after. On any failure the old file (if any) is untouched and the
/// temporary file is removed.
pub(crate) fn write_atomic(
    path: &Path,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
) -> Result<(), StateError> {
    let dir = parent(path);
    create_dirs(dir)?;
    let tmp = temp_name(path);
    let written = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        fill(&mut f)?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(StateError::io("write", path, e));
    }
    crate::support::crash::point("checkpoint");
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(StateError::io("rename into place", path, e));
    }
    sync_dir(dir)
}

/// `mkdir -p`, syncing the parent of each directory it creates so that
/// the new entries survive a crash.
pub(crate) fn create_dirs(dir: &Path) -> Result<(), StateError> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut missing = Vec::new();
    let mut cur = dir;
    while !exists(cur)? {
        missing.push(cur);
        match cur.parent() {
            Some(p) if !p.as_os_str().is_empty() => cur = p,
            _ => break,
        }
    }
    for d in missing.into_iter().rev() {
        match fs::create_dir(d) {
            Ok(()) => sync_dir(parent(d))?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(StateError::io("create directory", d, e)),
        }
    }
    Ok(())
}

/// Makes the entries of `dir` (creations, renames) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StateError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StateError::io("sync directory", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message without generated code: one string field.
    #[derive(Clone, PartialEq, prost::Message)]
    struct Note {
        #[prost(string, tag = "1")]
        text: String,
    }

    fn note(text: &str) -> Note {
        Note {
            text: text.to_string(),
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn checkpoint_round_trip_creates_dirs_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/record.info");
        checkpoint(&path, &note("one")).unwrap();
        checkpoint(&path, &note("two")).unwrap();
        assert_eq!(read::<Note>(&path).unwrap(), Some(note("two")));
        assert_eq!(names(&dir.path().join("a/b")), ["record.info"]);
        // Mesos framing: a 4-byte little-endian length, then the message.
        let bytes = fs::read(&path).unwrap();
        assert_eq!(&bytes[..4], &(bytes.len() as u32 - 4).to_le_bytes());
    }

    /// Issue 18: a new entry appears whole, its info file inside, with no
    /// temporary left; an existing entry gets its info file replaced and
    /// keeps what else it holds.
    #[test]
    fn new_entries_appear_with_their_info_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("executors/E1/executor.info");
        checkpoint_entry(&path, &note("one")).unwrap();
        assert_eq!(read::<Note>(&path).unwrap(), Some(note("one")));
        assert_eq!(names(&dir.path().join("executors")), ["E1"]);
        fs::create_dir(dir.path().join("executors/E1/runs")).unwrap();
        checkpoint_entry(&path, &note("two")).unwrap();
        assert_eq!(read::<Note>(&path).unwrap(), Some(note("two")));
        assert_eq!(
            names(&dir.path().join("executors/E1")),
            ["executor.info", "runs"]
        );
        // What a crash before the rename leaves: a temporary directory,
        // which is not an entry.
        let tmp = temp_name(&dir.path().join("executors/E2"));
        fs::create_dir(&tmp).unwrap();
        assert!(tmp
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(TEMP_PREFIX));
        checkpoint_entry(&dir.path().join("executors/E2/executor.info"), &note("e2")).unwrap();
        assert!(dir.path().join("executors/E2/executor.info").is_file());
    }

    #[test]
    fn failed_write_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("record.info");
        checkpoint(&path, &note("old")).unwrap();
        let err = write_atomic(&path, |f| {
            f.write_all(b"\x10\0\0\0partial")?;
            Err(io::Error::other("disk full"))
        })
        .unwrap_err();
        assert!(err.to_string().contains("record.info"), "{err}");
        assert!(err.to_string().contains("disk full"), "{err}");
        assert_eq!(read::<Note>(&path).unwrap(), Some(note("old")));
        assert_eq!(names(dir.path()), ["record.info"]);
    }

    #[test]
    fn missing_reads_as_none_but_corruption_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.info");
        assert_eq!(read::<Note>(&path).unwrap(), None);
        fs::write(&path, b"").unwrap();
        let err = read::<Note>(&path).unwrap_err();
        assert!(err.to_string().contains("x.info"), "{err}");

        fs::write(&path, b"\x05\0\0\0ab").unwrap();
        let err = read::<Note>(&path).unwrap_err();
        assert!(matches!(err, StateError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("x.info"), "{err}");

        // The right length, but not a message: field 1 as a varint.
        fs::write(&path, b"\x02\0\0\0\x0a\xff").unwrap();
        let err = read::<Note>(&path).unwrap_err();
        assert!(matches!(err, StateError::Decode { .. }), "{err}");
        assert!(err.to_string().contains("x.info"), "{err}");
    }

    #[test]
    fn text_checkpoints_are_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pids/forked.pid");
        assert_eq!(read_text(&path).unwrap(), None);
        checkpoint_text(&path, "1234\n").unwrap();
        assert_eq!(read_text(&path).unwrap().as_deref(), Some("1234"));
        checkpoint_text(&path, "").unwrap();
        assert_eq!(read_text(&path).unwrap(), None);
    }

    #[test]
    fn latest_symlink_is_replaced_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("runs/latest");
        assert_eq!(read_latest(&link).unwrap(), None);
        set_latest(&link, "c1").unwrap();
        set_latest(&link, "c2").unwrap();
        assert_eq!(read_latest(&link).unwrap().as_deref(), Some("c2"));
        assert_eq!(fs::read_link(&link).unwrap(), Path::new("c2"));
        assert_eq!(names(&dir.path().join("runs")), ["latest"]);
    }

    #[test]
    fn version_is_written_once_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let work = WorkDir::new(dir.path());
        assert!(!check_recoverable(&work).unwrap());
        ensure_version(&work).unwrap();
        ensure_version(&work).unwrap();
        assert_eq!(
            fs::read_to_string(version_path(&work)).unwrap(),
            "butte-meta 1\n"
        );
        assert!(check_recoverable(&work).unwrap());

        fs::write(version_path(&work), "butte-meta 7\n").unwrap();
        let err = ensure_version(&work).unwrap_err();
        assert!(err.to_string().contains("butte-meta 7"), "{err}");
        assert!(check_recoverable(&work).is_err());
    }

    #[test]
    fn boot_id_is_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let work = WorkDir::new(dir.path());
        assert!(!rebooted(&work).unwrap());
        checkpoint_boot_id(&work).unwrap();
        assert!(!rebooted(&work).unwrap());
        checkpoint_text(&work.boot_id(), "another-boot").unwrap();
        assert!(rebooted(&work).unwrap());
    }
}
