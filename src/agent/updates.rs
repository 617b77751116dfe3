//! Status updates as the agent handles them: made by the agent itself or
//! received from an executor, applied to the task's state, made durable,
//! and handed to the status update manager for delivery.

use super::core::Agent;
use super::status::{is_terminal, StatusError};
use crate::proto::mesos::internal::StatusUpdate;
use crate::proto::mesos::task_status::{Reason, Source};
use crate::proto::mesos::{ExecutorId, FrameworkId, SlaveId, TaskId, TaskState, TaskStatus};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Seconds since the epoch, as Mesos stamps updates.
pub fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Agent {
    /// An update the agent itself sends (source SOURCE_SLAVE).
    pub fn agent_update(
        &self,
        fw_id: &str,
        ex_id: Option<&str>,
        task_id: &str,
        state: TaskState,
        reason: Reason,
        message: &str,
    ) -> StatusUpdate {
        let uuid = crate::support::random_uuid_bytes()
            .map(|b| b.to_vec())
            .unwrap_or_default();
        let now = now_secs();
        let agent = self.id.clone().map(|value| SlaveId { value });
        StatusUpdate {
            framework_id: FrameworkId {
                value: fw_id.to_string(),
            },
            executor_id: ex_id.map(|e| ExecutorId {
                value: e.to_string(),
            }),
            slave_id: agent.clone(),
            status: TaskStatus {
                task_id: TaskId {
                    value: task_id.to_string(),
                },
                state: state as i32,
                message: Some(message.to_string()),
                source: Some(Source::Slave as i32),
                reason: Some(reason as i32),
                slave_id: agent,
                executor_id: ex_id.map(|e| ExecutorId {
                    value: e.to_string(),
                }),
                timestamp: Some(now),
                uuid: Some(uuid.clone()),
                ..Default::default()
            },
            timestamp: now,
            uuid: Some(uuid),
            latest_state: None,
        }
    }

    /// An update the agent generated; a refusal is only logged. One that
    /// cannot be logged (a full work dir) still goes to the master, held
    /// in memory only, so that the master learns why the task ended.
    pub fn report(&mut self, update: StatusUpdate) {
        let task = update.status.task_id.value.clone();
        let fw_id = update.framework_id.value.clone();
        let taken = match self.take_update(update.clone(), None, true) {
            Ok(()) => true,
            Err(Refused::Log(e)) if self.updates.forget_empty(&fw_id, &task) => {
                tracing::warn!(
                    task,
                    "cannot log the status update ({e}); sending it unlogged"
                );
                match self.take_update(update, None, false) {
                    Ok(()) => true,
                    Err(Refused::Log(e) | Refused::Other(e)) => {
                        tracing::warn!(task, "status update refused: {e}");
                        false
                    }
                }
            }
            Err(Refused::Log(e) | Refused::Other(e)) => {
                tracing::warn!(task, "status update refused: {e}");
                false
            }
        };
        self.operator.status_update(taken);
    }

    /// Applies an update to its task, logs it durably (for checkpointing
    /// frameworks) and queues it for the master. Returns an error text
    /// when the update cannot be taken (the executor gets it as a 400).
    pub fn status_update(
        &mut self,
        update: StatusUpdate,
        from_executor: Option<&str>,
    ) -> Result<(), String> {
        let taken = self
            .take_update(update, from_executor, true)
            .map_err(|e| match e {
                Refused::Log(e) | Refused::Other(e) => e,
            });
        self.operator.status_update(taken.is_ok());
        taken
    }

    /// `status_update`, and with `logged` false, not logged even for a
    /// checkpointing framework.
    fn take_update(
        &mut self,
        mut update: StatusUpdate,
        from_executor: Option<&str>,
        logged: bool,
    ) -> Result<(), Refused> {
        // Changed before it is logged: the log holds what the master gets.
        self.drain_status(&mut update.status);
        let fw_id = update.framework_id.value.clone();
        let task = update.status.task_id.value.clone();
        // Where the task is, and where its updates are logged.
        let mut holder = None;
        let mut log = None;
        let mut terminating = false;
        if let Some(fw) = self.frameworks.get(&fw_id) {
            terminating = fw.terminating;
            match fw.executors.values().find(|e| e.has_task(&task)) {
                Some(ex) => {
                    if let Some(from) = from_executor.filter(|f| *f != ex.id) {
                        return Err(Refused::Other(format!(
                            "task {task} belongs to executor {}, not {from}",
                            ex.id
                        )));
                    }
                    if fw.checkpoint() && logged {
                        let agent = self.id.clone().unwrap_or_default();
                        log = Some(self.work.task_updates(
                            &agent,
                            &fw_id,
                            &ex.id,
                            &ex.container_id,
                            &task,
                        ));
                    }
                    holder = Some(ex.id.clone());
                }
                None => {
                    if let Some(from) = from_executor {
                        return Err(Refused::Other(format!(
                            "task {task} is not a task of executor {from}"
                        )));
                    }
                }
            }
        } else if from_executor.is_some() {
            return Err(Refused::Other(format!("unknown framework {fw_id}")));
        }
        // The manager first: the task's state moves only for an update it
        // took (durably). A framework being shut down sends nothing more.
        let forward = if terminating {
            None
        } else {
            self.updates
                .update(update.clone(), log.as_deref(), Instant::now())
                .map_err(|e| match e {
                    StatusError::Log { .. } => Refused::Log(e.to_string()),
                    e => Refused::Other(e.to_string()),
                })?
        };
        if let Some(ex_id) = holder {
            self.apply(&fw_id, &ex_id, &task, &update.status);
        }
        if let Some(u) = forward {
            self.forward(u);
        }
        Ok(())
    }

    /// Moves a task of an executor to the state an update reports.
    fn apply(
        &mut self,
        fw_id: &str,
        ex_id: &str,
        task: &str,
        status: &crate::proto::mesos::TaskStatus,
    ) {
        let agent_id = self.id.clone();
        let Some(ex) = self.executor_of(fw_id, ex_id) else {
            return;
        };
        let state = status.state();
        let ended =
            is_terminal(state as i32) && ex.has_task(task) && !ex.terminated.contains_key(task);
        if ended {
            self.operator.task_ended(state);
        }
        let Some(ex) = self.executor_mut_of(fw_id, ex_id) else {
            return;
        };
        if let Some(t) = ex.launched.get_mut(task) {
            let t = Arc::make_mut(t);
            t.state = state as i32;
            t.statuses.push(status.clone());
            if is_terminal(state as i32) {
                if let Some(t) = ex.launched.remove(task) {
                    ex.terminated.insert(task.to_string(), t);
                }
            }
        } else if is_terminal(state as i32) {
            if let Some(info) = ex.queued_task(task).cloned() {
                // Ended before it reached the executor.
                for group in &mut ex.queued {
                    group.retain(|t| t.task_id.value != task);
                }
                ex.queued.retain(|g| !g.is_empty());
                let mut t = super::tasks::make_task(&info, fw_id, ex, agent_id.as_deref());
                t.state = state as i32;
                t.statuses.push(status.clone());
                ex.terminated.insert(task.to_string(), Arc::new(t));
            }
        }
    }
}

/// Why an update was not taken: its log could not be written, or
/// anything else.
enum Refused {
    Log(String),
    Other(String),
}
