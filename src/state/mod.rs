//! The agent's state on disk: the work directory layout (`paths`), the
//! checkpoints under `meta/` and their recovery (`meta`), and the per-task
//! status update logs (`updates`), and what garbage collection of
//! sandboxes needs from the disk (`gc`).

pub mod gc;
pub mod meta;
pub mod paths;
pub mod updates;

use std::io;
use std::path::{Path, PathBuf};

/// Why a checkpoint could not be written, read or recovered.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{step} {path}: {source}")]
    Io {
        step: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("decode {path}: {source}")]
    Decode {
        path: PathBuf,
        #[source]
        source: prost::DecodeError,
    },
    #[error("corrupt checkpoint {path}: {cause}")]
    Corrupt { path: PathBuf, cause: String },
    #[error("checkpoint format {found:?} in {path} is not the one this butte reads ({expected:?}); move the work directory aside or use a matching butte", expected = meta::META_VERSION)]
    Version { path: PathBuf, found: String },
    #[error("invalid {what} id {id:?}: not usable as a directory name")]
    InvalidId { what: &'static str, id: String },
    #[error("write {path}: a record of {size} bytes does not fit a 4-byte length")]
    TooLarge { path: PathBuf, size: usize },
}

impl StateError {
    pub(crate) fn io(step: &'static str, path: &Path, source: io::Error) -> Self {
        StateError::Io {
            step,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// A minimal status update for tests: `task` of framework `fw` in
/// `state`, with a uuid of 16 `uuid` bytes.
#[cfg(test)]
pub(crate) fn test_update(
    fw: &str,
    task: &str,
    state: crate::proto::mesos::TaskState,
    uuid: u8,
) -> crate::proto::mesos::internal::StatusUpdate {
    use crate::proto::mesos::{FrameworkId, TaskId, TaskStatus};
    crate::proto::mesos::internal::StatusUpdate {
        framework_id: FrameworkId {
            value: fw.to_string(),
        },
        status: TaskStatus {
            task_id: TaskId {
                value: task.to_string(),
            },
            state: state as i32,
            ..Default::default()
        },
        uuid: Some(vec![uuid; 16]),
        ..Default::default()
    }
}
