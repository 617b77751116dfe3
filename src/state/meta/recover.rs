//! Reading the `meta/` tree back after a restart.
//!
//! What a crash can leave is tolerated, as the Mesos agent tolerates it: a
//! directory whose info file was never written is kept with `info: None`
//! and nothing below it is read, with a warning (entries are now renamed
//! into place with their info file, `checkpoint_entry`, so only a tree
//! written by an older butte or by hand has one); a new entry's temporary
//! directory is skipped; a status update log cut short is trimmed to
//! its last whole record; temporary files are skipped. Checkpoints are
//! written whole (rename), so a complete file that does not decode is
//! corruption and an error naming it, never skipped.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::Path;

use super::{check_recoverable, exists, read, read_latest, read_text, rebooted, TEMP_PREFIX};
use crate::proto::mesos::internal::StatusUpdate;
use crate::proto::mesos::{DrainConfig, ExecutorInfo, FrameworkInfo, SlaveInfo, Task};
use crate::state::paths::{WorkDir, LATEST};
use crate::state::{updates, StateError};

/// The checkpointed agent named by `meta/slaves/latest`.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentState {
    pub id: String,
    /// `None`: the agent died before it checkpointed its info (then
    /// `frameworks` is empty).
    pub info: Option<SlaveInfo>,
    pub frameworks: Vec<FrameworkState>,
    /// `drain.config`: the agent was draining when it stopped.
    pub drain_config: Option<DrainConfig>,
    /// The host rebooted since `meta/boot_id` was written: every executor
    /// of the previous boot is gone.
    pub rebooted: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FrameworkState {
    pub id: String,
    /// `None`: half-created; `executors` is then empty.
    pub info: Option<FrameworkInfo>,
    /// The scheduler's libprocess pid, if it has one.
    pub pid: Option<String>,
    pub executors: Vec<ExecutorState>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExecutorState {
    pub id: String,
    /// `None`: half-created.
    pub info: Option<ExecutorInfo>,
    /// The container id `runs/latest` points to.
    pub latest: Option<String>,
    pub runs: Vec<RunState>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RunState {
    pub container_id: String,
    pub forked_pid: Option<i32>,
    /// The executor subscribed over the v1 HTTP API.
    pub http: bool,
    /// `executor.sentinel` exists: the run is over.
    pub completed: bool,
    pub tasks: Vec<TaskState>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TaskState {
    pub id: String,
    /// `None`: half-created; `updates` is then empty.
    pub info: Option<Task>,
    /// Every update in `task.updates`, in the order received.
    pub updates: Vec<StatusUpdate>,
    /// The uuids of the updates the master acknowledged.
    pub acks: HashSet<Vec<u8>>,
}

/// Reads back the agent `meta/slaves/latest` names. `Ok(None)`: nothing to
/// recover (a fresh work directory, or an agent that died before it first
/// registered). An unknown `meta/version` is an error.
pub fn recover(work: &WorkDir) -> Result<Option<AgentState>, StateError> {
    if !check_recoverable(work)? {
        return Ok(None);
    }
    let link = work.meta_agents().join(LATEST);
    let Some(id) = read_latest(&link)? else {
        tracing::info!(path = %link.display(), "no agent checkpointed yet");
        return Ok(None);
    };
    if !work.meta_agent(&id).is_dir() {
        return Err(StateError::Corrupt {
            path: link,
            cause: format!("points to agent {id}, which has no directory"),
        });
    }
    let rebooted = rebooted(work)?;
    let mut agent = AgentState {
        info: read(&work.agent_info(&id))?,
        id,
        frameworks: Vec::new(),
        drain_config: None,
        rebooted,
    };
    if agent.info.is_none() {
        half_created(&work.agent_info(&agent.id));
        return Ok(Some(agent));
    }
    let dir = work.meta_agent(&agent.id).join("frameworks");
    for fw in subdirs(&dir)? {
        agent
            .frameworks
            .push(recover_framework(work, &agent.id, fw)?);
    }
    agent.drain_config = read(&work.drain_config(&agent.id))?;
    Ok(Some(agent))
}

fn recover_framework(
    work: &WorkDir,
    agent: &str,
    id: String,
) -> Result<FrameworkState, StateError> {
    let mut state = FrameworkState {
        info: read(&work.framework_info(agent, &id))?,
        pid: read_text(&work.framework_pid(agent, &id))?,
        executors: Vec::new(),
        id,
    };
    if state.info.is_none() {
        half_created(&work.framework_info(agent, &state.id));
        return Ok(state);
    }
    let dir = work.meta_framework(agent, &state.id).join("executors");
    for ex in subdirs(&dir)? {
        state
            .executors
            .push(recover_executor(work, agent, &state.id, ex)?);
    }
    Ok(state)
}

fn recover_executor(
    work: &WorkDir,
    agent: &str,
    fw: &str,
    id: String,
) -> Result<ExecutorState, StateError> {
    let runs = work.meta_executor(agent, fw, &id).join("runs");
    let link = runs.join(LATEST);
    let latest = read_latest(&link)?;
    if let Some(c) = &latest {
        if !runs.join(c).is_dir() {
            return Err(StateError::Corrupt {
                path: link,
                cause: format!("points to run {c}, which has no directory"),
            });
        }
    }
    let mut state = ExecutorState {
        info: read(&work.executor_info(agent, fw, &id))?,
        latest,
        runs: Vec::new(),
        id,
    };
    if state.info.is_none() {
        half_created(&work.executor_info(agent, fw, &state.id));
    }
    for container in subdirs(&runs)? {
        state
            .runs
            .push(recover_run(work, agent, fw, &state.id, container)?);
    }
    Ok(state)
}

fn recover_run(
    work: &WorkDir,
    agent: &str,
    fw: &str,
    ex: &str,
    container: String,
) -> Result<RunState, StateError> {
    let c = container.as_str();
    let pid_path = work.forked_pid(agent, fw, ex, c);
    let forked_pid = match read_text(&pid_path)? {
        Some(text) => Some(text.parse::<i32>().map_err(|_| StateError::Corrupt {
            path: pid_path.clone(),
            cause: format!("{text:?} is not a pid"),
        })?),
        None => None,
    };
    let mut state = RunState {
        forked_pid,
        http: exists(&work.http_marker(agent, fw, ex, c))?,
        completed: exists(&work.executor_sentinel(agent, fw, ex, c))?,
        tasks: Vec::new(),
        container_id: container.clone(),
    };
    for task in subdirs(&work.meta_run(agent, fw, ex, c).join("tasks"))? {
        state
            .tasks
            .push(recover_task(work, agent, fw, ex, c, task)?);
    }
    Ok(state)
}

fn recover_task(
    work: &WorkDir,
    agent: &str,
    fw: &str,
    ex: &str,
    container: &str,
    id: String,
) -> Result<TaskState, StateError> {
    let mut state = TaskState {
        info: read(&work.task_info(agent, fw, ex, container, &id))?,
        updates: Vec::new(),
        acks: HashSet::new(),
        id,
    };
    if state.info.is_none() {
        half_created(&work.task_info(agent, fw, ex, container, &state.id));
        return Ok(state);
    }
    let log = work.task_updates(agent, fw, ex, container, &state.id);
    let replay = updates::replay(&log)?;
    state.updates = replay.updates;
    state.acks = replay.acks;
    Ok(state)
}

fn half_created(missing: &Path) {
    tracing::warn!(
        path = %missing.display(),
        "checkpoint missing (the agent died while creating this entry); skipping what is below it"
    );
}

/// The names of the directories in `dir`, sorted; none if `dir` does not
/// exist. Temporary files, symlinks (`latest`) and stray files are skipped.
fn subdirs(dir: &Path) -> Result<Vec<String>, StateError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StateError::io("list", dir, e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| StateError::io("list", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            tracing::warn!(path = %entry.path().display(), "skipping a name that is not UTF-8");
            continue;
        };
        if name.starts_with(TEMP_PREFIX) {
            continue;
        }
        let kind = entry
            .file_type()
            .map_err(|e| StateError::io("stat", &entry.path(), e))?;
        if kind.is_dir() {
            names.push(name.to_string());
        } else if !(kind.is_symlink() && name == LATEST) {
            tracing::warn!(path = %entry.path().display(), "skipping a stray entry");
        }
    }
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::mesos::internal::status_update_record::Type as RecordType;
    use crate::proto::mesos::internal::StatusUpdateRecord;
    use crate::proto::mesos::TaskId;
    use prost::Message;

    /// A record framed as Mesos frames it, built here rather than by the
    /// code under test.
    fn framed<M: Message>(msg: &M) -> Vec<u8> {
        let body = msg.encode_to_vec();
        let mut v = (body.len() as u32).to_le_bytes().to_vec();
        v.extend(body);
        v
    }

    fn put(path: &Path, bytes: &[u8]) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, bytes).unwrap();
    }

    fn update(task: &str, state: crate::proto::mesos::TaskState, uuid: u8) -> StatusUpdate {
        crate::state::test_update("F1", task, state, uuid)
    }

    fn task(id: &str) -> Task {
        Task {
            name: format!("task {id}"),
            task_id: TaskId {
                value: id.to_string(),
            },
            ..Default::default()
        }
    }

    /// The tree a crashed agent could leave, written by hand.
    fn write_tree(root: &Path) {
        let m = root.join("meta");
        put(&m.join("version"), b"butte-meta 1\n");
        fs::create_dir_all(m.join("slaves/S1")).unwrap();
        std::os::unix::fs::symlink("S1", m.join("slaves/latest")).unwrap();
        let s = m.join("slaves/S1");
        let info = SlaveInfo {
            hostname: "h1".to_string(),
            ..Default::default()
        };
        put(&s.join("slave.info"), &framed(&info));
        // A temporary file left by a crash mid-checkpoint.
        put(&s.join(".butte-tmp.slave.info.77.0"), b"junk");

        let f = s.join("frameworks/F1");
        let fw = FrameworkInfo {
            name: "marathon".to_string(),
            ..Default::default()
        };
        put(&f.join("framework.info"), &framed(&fw));
        put(&f.join("framework.pid"), b"scheduler-1@10.0.0.1:8080");
        // A framework directory created just before the crash.
        fs::create_dir_all(s.join("frameworks/F2")).unwrap();

        let e = f.join("executors/E1");
        put(&e.join("executor.info"), &framed(&ExecutorInfo::default()));
        let old = e.join("runs/C1");
        put(&old.join("executor.sentinel"), b"");
        put(&old.join("pids/forked.pid"), b"41");
        let run = e.join("runs/C2");
        put(&run.join("pids/forked.pid"), b"42\n");
        put(&run.join("pids/http.marker"), b"");
        std::os::unix::fs::symlink("C2", e.join("runs/latest")).unwrap();

        let t1 = run.join("tasks/T1");
        put(&t1.join("task.info"), &framed(&task("T1")));
        let mut log = Vec::new();
        for u in [
            update("T1", crate::proto::mesos::TaskState::TaskStarting, 1),
            update("T1", crate::proto::mesos::TaskState::TaskRunning, 2),
        ] {
            log.extend(framed(&StatusUpdateRecord {
                r#type: RecordType::Update as i32,
                update: Some(u),
                uuid: None,
            }));
        }
        log.extend(framed(&StatusUpdateRecord {
            r#type: RecordType::Ack as i32,
            update: None,
            uuid: Some(vec![1; 16]),
        }));
        // ... and half of a third record.
        let third = framed(&StatusUpdateRecord {
            r#type: RecordType::Update as i32,
            update: Some(update(
                "T1",
                crate::proto::mesos::TaskState::TaskFinished,
                3,
            )),
            uuid: None,
        });
        log.extend(&third[..third.len() / 2]);
        put(&t1.join("task.updates"), &log);
        // A task directory created just before the crash.
        fs::create_dir_all(run.join("tasks/T2")).unwrap();
    }

    /// `drain.config` as the Mesos agent writes it (framed DrainConfig)
    /// is read back; the drain's checkpoint helpers write and remove it.
    #[test]
    fn recovers_the_drain_under_way() {
        let dir = tempfile::tempdir().unwrap();
        write_tree(dir.path());
        let work = WorkDir::new(dir.path());
        assert_eq!(recover(&work).unwrap().unwrap().drain_config, None);
        let config = DrainConfig {
            max_grace_period: Some(crate::proto::mesos::DurationInfo {
                nanoseconds: 5_000_000_000,
            }),
            mark_gone: Some(true),
        };
        put(
            &dir.path().join("meta/slaves/S1/drain.config"),
            &framed(&config),
        );
        let agent = recover(&work).unwrap().unwrap();
        assert_eq!(agent.drain_config, Some(config));

        super::super::remove_drain_config(&work, "S1").unwrap();
        assert_eq!(recover(&work).unwrap().unwrap().drain_config, None);
        super::super::checkpoint_drain_config(&work, "S1", &config).unwrap();
        assert_eq!(
            fs::read(work.drain_config("S1")).unwrap(),
            framed(&config),
            "framed as Mesos frames it"
        );
        // Removing it twice is fine (a restart between the two).
        super::super::remove_drain_config(&work, "S1").unwrap();
        super::super::remove_drain_config(&work, "S1").unwrap();
    }

    #[test]
    fn recovers_a_tree_a_crash_left() {
        let dir = tempfile::tempdir().unwrap();
        write_tree(dir.path());
        let work = WorkDir::new(dir.path());
        let agent = recover(&work).unwrap().unwrap();

        assert_eq!(agent.id, "S1");
        assert_eq!(agent.info.as_ref().unwrap().hostname, "h1");
        assert!(!agent.rebooted);
        let ids: Vec<_> = agent.frameworks.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(ids, ["F1", "F2"]);
        let f2 = &agent.frameworks[1];
        assert!(f2.info.is_none() && f2.executors.is_empty());

        let f1 = &agent.frameworks[0];
        assert_eq!(f1.info.as_ref().unwrap().name, "marathon");
        assert_eq!(f1.pid.as_deref(), Some("scheduler-1@10.0.0.1:8080"));
        let e1 = &f1.executors[0];
        assert_eq!(e1.id, "E1");
        assert!(e1.info.is_some());
        assert_eq!(e1.latest.as_deref(), Some("C2"));
        let runs: Vec<_> = e1
            .runs
            .iter()
            .map(|r| (r.container_id.as_str(), r.forked_pid, r.http, r.completed))
            .collect();
        assert_eq!(
            runs,
            [("C1", Some(41), false, true), ("C2", Some(42), true, false)]
        );

        let tasks = &e1.runs[1].tasks;
        assert_eq!(tasks.len(), 2);
        let t1 = &tasks[0];
        assert_eq!(t1.info, Some(task("T1")));
        assert_eq!(t1.updates.len(), 2, "the torn third record is dropped");
        assert_eq!(t1.acks, HashSet::from([vec![1; 16]]));
        let t2 = &tasks[1];
        assert_eq!((t2.id.as_str(), t2.info.is_none()), ("T2", true));

        // The torn tail was cut off, so the log can be appended to.
        let log = work.task_updates("S1", "F1", "E1", "C2", "T1");
        let again = recover(&work).unwrap().unwrap();
        assert_eq!(again, agent);
        assert_eq!(
            updates::replay(&log).unwrap().updates.len(),
            2,
            "{}",
            log.display()
        );
    }

    #[test]
    fn corrupt_complete_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        write_tree(dir.path());
        let path = dir
            .path()
            .join("meta/slaves/S1/frameworks/F1/executors/E1/executor.info");
        fs::write(&path, b"\x03\0\0\0\xff\xff\xff").unwrap();
        let err = recover(&WorkDir::new(dir.path())).unwrap_err();
        assert!(err.to_string().contains("executor.info"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        write_tree(dir.path());
        let pid = dir
            .path()
            .join("meta/slaves/S1/frameworks/F1/executors/E1/runs/C2/pids/forked.pid");
        fs::write(&pid, b"forty-two").unwrap();
        let err = recover(&WorkDir::new(dir.path())).unwrap_err();
        assert!(err.to_string().contains("forked.pid"), "{err}");
    }

    #[test]
    fn nothing_to_recover() {
        let dir = tempfile::tempdir().unwrap();
        let work = WorkDir::new(dir.path().join("work"));
        assert_eq!(recover(&work).unwrap(), None);
        // Version written, agent never registered.
        super::super::ensure_version(&work).unwrap();
        assert_eq!(recover(&work).unwrap(), None);
    }

    #[test]
    fn unknown_or_missing_version_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        write_tree(dir.path());
        let version = dir.path().join("meta/version");
        fs::write(&version, "butte-meta 2\n").unwrap();
        let err = recover(&WorkDir::new(dir.path())).unwrap_err();
        assert!(matches!(err, StateError::Version { .. }), "{err}");
        assert!(err.to_string().contains("butte-meta 2"), "{err}");
        fs::remove_file(&version).unwrap();
        let err = recover(&WorkDir::new(dir.path())).unwrap_err();
        assert!(matches!(err, StateError::Version { .. }), "{err}");
    }

    #[test]
    fn helpers_write_what_recovery_reads() {
        use crate::state::meta::*;
        let dir = tempfile::tempdir().unwrap();
        let work = WorkDir::new(dir.path());
        checkpoint_boot_id(&work).unwrap();
        checkpoint_agent_info(&work, "S9", &SlaveInfo::default()).unwrap();
        set_latest_agent(&work, "S9").unwrap();
        checkpoint_framework(&work, "S9", "F", &FrameworkInfo::default(), None).unwrap();
        checkpoint_executor(&work, "S9", "F", "E", &ExecutorInfo::default()).unwrap();
        checkpoint_run(&work, "S9", "F", "E", "C1", Some(7), false).unwrap();
        mark_run_completed(&work, "S9", "F", "E", "C1").unwrap();
        checkpoint_run(&work, "S9", "F", "E", "C2", None, false).unwrap();
        checkpoint_run(&work, "S9", "F", "E", "C2", Some(8), false).unwrap();
        checkpoint_run(&work, "S9", "F", "E", "C2", None, true).unwrap();
        checkpoint_task(&work, "S9", "F", "E", "C2", &task("T")).unwrap();
        let (mut log, _) =
            updates::UpdateLog::open(&work.task_updates("S9", "F", "E", "C2", "T")).unwrap();
        log.append_update(&update("T", crate::proto::mesos::TaskState::TaskRunning, 5))
            .unwrap();

        let agent = recover(&work).unwrap().unwrap();
        assert_eq!(agent.id, "S9");
        assert!(!agent.rebooted);
        let fw = &agent.frameworks[0];
        assert_eq!(fw.pid, None);
        let ex = &fw.executors[0];
        assert_eq!(ex.latest.as_deref(), Some("C2"));
        let c2 = &ex.runs[1];
        assert_eq!(
            (c2.forked_pid, c2.http, c2.completed),
            (Some(8), true, false)
        );
        assert!(ex.runs[0].completed);
        assert_eq!(c2.tasks[0].updates.len(), 1);

        assert!(checkpoint_task(&work, "S9", "F", "E", "C2", &task("../x")).is_err());
        assert!(checkpoint_task(&work, "S9", "..", "E", "C2", &task("T")).is_err());
        assert!(checkpoint_run(&work, "S9", "F", "E", "latest", None, false).is_err());
        let err = set_latest_agent(&work, "").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid agent id \"\": not usable as a directory name"
        );
    }
}
