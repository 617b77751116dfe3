//! The agent's view of its frameworks, executors and tasks.
//!
//! ```text
//! executor:  Launching --launched--> Registering --SUBSCRIBE--> Running
//!                |                        |                        |
//!                |          registration timeout / exit     shutdown / exit
//!                v                        v                        v
//!            Terminated <------------- Terminating <---------------'
//!
//! task:  queued (sent to the executor once it subscribes) -> launched
//!        (state from its updates) -> terminal (kept until the master
//!        acknowledges the terminal update, then forgotten)
//! ```

use crate::containerizer::mesos::ExecutorKind;
use crate::proto::mesos::v1::executor::Event;
use crate::proto::mesos::{ExecutorInfo, FrameworkInfo, Task, TaskInfo, TaskState};
use crate::wire::Upid;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::mpsc::UnboundedSender;

/// One framework with work on this agent.
pub struct Framework {
    pub id: String,
    pub info: FrameworkInfo,
    /// The scheduler's libprocess pid (absent for HTTP schedulers).
    pub pid: Option<Upid>,
    pub executors: BTreeMap<String, Executor>,
    /// Shut down by the master: its updates are no longer sent, and its
    /// executors are forgotten as soon as they end.
    pub terminating: bool,
}

impl Framework {
    pub fn checkpoint(&self) -> bool {
        self.info.checkpoint()
    }

    /// The state of a task the agent does not have, for this framework.
    pub fn lost_state(&self) -> TaskState {
        lost_state(&self.info)
    }

    /// The executor running (or about to run) `task_id`.
    pub fn executor_of(&self, task_id: &str) -> Option<&Executor> {
        self.executors.values().find(|e| e.has_task(task_id))
    }
}

/// The life of an executor; see the module doc.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutorState {
    Launching,
    Registering,
    Running,
    Terminating,
    Terminated,
}

/// One executor run (one container).
///
/// Its info and tasks sit behind `Arc`s: the operator views copy them on
/// the event loop for every `/state` (1000 tasks are a pointer each, not a
/// deep copy each); a change to a task a view still holds copies it
/// (`Arc::make_mut`).
pub struct Executor {
    pub id: String,
    pub framework_id: String,
    pub info: Arc<ExecutorInfo>,
    pub kind: ExecutorKind,
    pub container_id: String,
    pub state: ExecutorState,
    /// Tasks waiting for the executor to subscribe, as launched together
    /// (a task group is one entry).
    pub queued: Vec<Queued>,
    /// What this agent process sent in LAUNCH events, kept while a task of
    /// it is still STAGING: an executor that re-subscribes without knowing
    /// such a task never got its LAUNCH (the stream broke first, e.g. its
    /// SUBSCRIBE timed out on a busy agent), and gets it again. Tasks
    /// recovered after a restart are not here: those are reported lost,
    /// as in Mesos.
    pub sent: Vec<Queued>,
    /// Tasks given to the executor and not yet terminal.
    pub launched: BTreeMap<String, Arc<Task>>,
    /// Terminal tasks whose terminal update the master has not yet
    /// acknowledged.
    pub terminated: BTreeMap<String, Arc<Task>>,
    /// Tasks a kill was asked for (their end is reported as TASK_KILLED
    /// when the executor dies first).
    pub killing: Vec<String>,
    /// The SUBSCRIBE stream, while one is open.
    pub events: Option<UnboundedSender<Event>>,
    /// Why the agent is ending this executor, if it is.
    pub termination_reason: Option<i32>,
    /// Bumped on every state change that arms a timer, so stale timers
    /// are recognised.
    pub generation: u64,
}

/// Tasks launched together, waiting for their executor.
#[derive(Debug, Clone, Default)]
pub struct Queued {
    pub tasks: Vec<TaskInfo>,
    /// They came as a task group (`RunTaskGroupMessage`): the executor,
    /// default or custom, gets them in one LAUNCH_GROUP, as in Mesos.
    pub group: bool,
}

impl std::ops::Deref for Queued {
    type Target = Vec<TaskInfo>;
    fn deref(&self) -> &Vec<TaskInfo> {
        &self.tasks
    }
}

impl std::ops::DerefMut for Queued {
    fn deref_mut(&mut self) -> &mut Vec<TaskInfo> {
        &mut self.tasks
    }
}

impl<'a> IntoIterator for &'a Queued {
    type Item = &'a TaskInfo;
    type IntoIter = std::slice::Iter<'a, TaskInfo>;
    fn into_iter(self) -> Self::IntoIter {
        self.tasks.iter()
    }
}

impl Executor {
    pub fn has_task(&self, task_id: &str) -> bool {
        self.launched.contains_key(task_id)
            || self.terminated.contains_key(task_id)
            || self.queued_task(task_id).is_some()
    }

    pub fn queued_task(&self, task_id: &str) -> Option<&TaskInfo> {
        self.queued
            .iter()
            .flatten()
            .find(|t| t.task_id.value == task_id)
    }

    /// Whether nothing is left to report for this executor.
    pub fn idle(&self) -> bool {
        self.queued.is_empty() && self.launched.is_empty() && self.terminated.is_empty()
    }

    /// Every task not yet terminal, queued or launched.
    pub fn live_task_ids(&self) -> Vec<String> {
        let queued = self
            .queued
            .iter()
            .flatten()
            .map(|t| t.task_id.value.clone());
        self.launched.keys().cloned().chain(queued).collect()
    }
}

/// The state of a task the agent does not have (never launched, or lost
/// in a restart): TASK_DROPPED for frameworks that understand it
/// (PARTITION_AWARE), TASK_LOST for the others, as Mesos chooses.
pub fn lost_state(info: &FrameworkInfo) -> TaskState {
    use crate::proto::mesos::framework_info::capability::Type;
    if info
        .capabilities
        .iter()
        .any(|c| c.r#type() == Type::PartitionAware)
    {
        TaskState::TaskDropped
    } else {
        TaskState::TaskLost
    }
}
