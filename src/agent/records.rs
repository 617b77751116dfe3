//! The records of the containers the operator API launches (standalone
//! ones in `meta/standalone/<id>`, nested ones in `meta/nested/<key>`),
//! through which a restarted agent knows them again:
//!
//! ```text
//!  ""  --launched--> "<pid>" --ended--> {"status": <wait word>, ...}
//!   (written first)                       (kept until REMOVE)
//! ```
//!
//! A running container's pid lets the agent take it over; its init's
//! status file (see `runtime::init`) then tells how it ended. Once it has
//! ended, the record holds how, so that WAIT answers the same after a
//! restart until REMOVE forgets the container.

use super::standalone::internal;
use crate::api::operator::OperatorError;
use crate::containerizer::mesos::{
    ContainerizerError, LaunchRequest, Launched, Limitation, MesosContainerizer, Recovered,
    Termination,
};
use crate::proto::mesos::task_status::Reason;
use crate::runtime::ExitStatus;
use crate::support::atomic_write;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

/// How a container ended, as its record keeps it.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Ended {
    /// The wait(2) status word; `None`: unknown.
    status: Option<i32>,
    /// The limitation's `TaskStatus.Reason` and message, if one ended it.
    reason: Option<i32>,
    message: Option<String>,
}

impl From<&Termination> for Ended {
    fn from(t: &Termination) -> Self {
        Ended {
            status: t.status.map(ExitStatus::wait_word),
            reason: t.limitation.as_ref().map(|l| l.reason as i32),
            message: t.limitation.as_ref().map(|l| l.message.clone()),
        }
    }
}

/// What a record says.
#[derive(Debug)]
enum Record {
    /// Launched (or launching, without a pid yet).
    Running(Option<i32>),
    Ended(Termination),
}

fn read(path: &Path) -> Record {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let text = text.trim();
    if !text.starts_with('{') {
        return Record::Running(text.parse().ok());
    }
    match serde_json::from_str::<Ended>(text) {
        Ok(e) => {
            let limitation = e.message.map(|message| Limitation {
                reason: e
                    .reason
                    .and_then(|r| Reason::try_from(r).ok())
                    .unwrap_or(Reason::ContainerLimitation),
                message,
            });
            let status = e.status.and_then(ExitStatus::from_wait_word);
            Record::Ended(Termination::new(status, limitation))
        }
        // Damaged: what a record of an unknown end would say.
        Err(_) => Record::Ended(Termination::new(None, None)),
    }
}

/// Launches a container whose pid is checkpointed in `record` (a file in
/// `meta/`, written empty first: an agent that dies during the launch finds
/// the container through its cgroup when it restarts). A failed launch
/// takes a record it wrote away again. The outer error: the record could
/// not be written, or the launch thread failed.
pub(super) async fn launch_recorded(
    containerizer: &Arc<MesosContainerizer>,
    record: &Path,
    request: LaunchRequest,
) -> Result<Result<Launched, ContainerizerError>, OperatorError> {
    let had_record = record.exists();
    record
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| match had_record {
            true => Ok(()),
            false => atomic_write(record, b""),
        })
        .map_err(|e| internal(&format!("checkpointing to {}", record.display()), e))?;
    let id = request.container_id.clone();
    let containerizer = containerizer.clone();
    let launched = tokio::task::spawn_blocking(move || containerizer.launch(request))
        .await
        .map_err(|e| internal("launching the container failed", e))?;
    match &launched {
        Ok(l) => {
            if let Err(e) = atomic_write(record, l.pid.to_string().as_bytes()) {
                // The empty record still lets a restarted agent find it.
                tracing::warn!(container = id, path = %record.display(), error = %e, "pid not checkpointed");
            }
        }
        Err(ContainerizerError::Exists(_)) => {}
        Err(_) => {
            if !had_record {
                let _ = std::fs::remove_file(record);
            }
        }
    }
    Ok(launched)
}

/// Held while a record's end is written and while a record is removed:
/// the end is written only for a container the containerizer still knows,
/// and a record is removed only after its container was forgotten, so a
/// REMOVE and the write of the end it raced with never leave a record
/// behind, nor miss one.
static WRITES: Mutex<()> = Mutex::new(());

fn writes() -> MutexGuard<'static, ()> {
    WRITES.lock().unwrap_or_else(|e| e.into_inner())
}

/// The container `key` ended as `t`: its record now says so, while the
/// containerizer still knows it (a container removed meanwhile has no
/// record left to write).
pub(super) fn record_end(
    containerizer: &MesosContainerizer,
    key: &str,
    record: &Path,
    t: &Termination,
) {
    let _writes = writes();
    if !containerizer.knows(key) {
        log_removal(record, remove_file(record));
        return;
    }
    let json = serde_json::to_vec(&Ended::from(t)).expect("a record serializes");
    if let Err(e) = atomic_write(record, &json) {
        tracing::warn!(container = key, path = %record.display(), error = %e, "end of a container not recorded");
    }
}

/// After a restart: makes the containerizer know container `key` again as
/// its record says (taken over, or ended as recorded).
pub(super) fn recover(
    containerizer: &MesosContainerizer,
    key: &str,
    record: &Path,
) -> Result<Recovered, ContainerizerError> {
    match read(record) {
        Record::Running(pid) => containerizer.recover(key, pid),
        Record::Ended(t) => containerizer
            .recover_ended(key, t)
            .map(|()| Recovered::Ended),
    }
}

/// After a restart: forgets container `key` (it is destroyed, its record
/// removed) for the reason WHY.
pub(super) fn forget(containerizer: &MesosContainerizer, key: &str, record: &Path, why: &str) {
    tracing::info!(container = key, "forgetting a container: {why}");
    if let Err(e) = containerizer.destroy(key) {
        tracing::warn!(container = key, "container not destroyed: {e}");
    }
    log_removal(record, remove(record));
}

/// Removes the record of a container the containerizer no longer knows
/// (destroyed before); one already gone is no error.
pub(super) fn remove(record: &Path) -> std::io::Result<()> {
    let _writes = writes();
    remove_file(record)
}

fn remove_file(record: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(record) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Logs a failed removal where no caller can be told.
pub(super) fn log_removal(record: &Path, removed: std::io::Result<()>) {
    if let Err(e) = removed {
        tracing::warn!(path = %record.display(), error = %e, "record of a forgotten container not removed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_says_the_pid_then_how_the_container_ended() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c");
        assert!(matches!(read(&path), Record::Running(None)));
        std::fs::write(&path, "").unwrap();
        assert!(matches!(read(&path), Record::Running(None)));
        std::fs::write(&path, "4242").unwrap();
        assert!(matches!(read(&path), Record::Running(Some(4242))));
        let oom = Limitation {
            reason: Reason::ContainerLimitationMemory,
            message: "Memory limit exceeded".into(),
        };
        for t in [
            Termination::new(Some(ExitStatus::Exited(3)), None),
            Termination::new(Some(ExitStatus::Signaled(9)), Some(oom)),
            Termination::new(None, None),
        ] {
            std::fs::write(&path, serde_json::to_vec(&Ended::from(&t)).unwrap()).unwrap();
            match read(&path) {
                Record::Ended(back) => assert_eq!(back, t),
                other => panic!("{other:?}"),
            }
        }
        std::fs::write(&path, "{damaged").unwrap();
        assert!(matches!(read(&path), Record::Ended(t) if t.status.is_none()));
    }
}
