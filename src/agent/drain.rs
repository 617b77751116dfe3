//! Draining, as the Mesos 1.11 agent does it (`DrainSlaveMessage`, sent by
//! the master for the operator's `DRAIN_AGENT` call to agents that
//! advertise `AGENT_DRAINING`):
//!
//! - the `DrainConfig` is checkpointed (`meta/slaves/<id>/drain.config`)
//!   and every task is killed: pending ones at once, launched ones by the
//!   executor, with a kill policy whose grace period is the task's own
//!   capped at `max_grace_period` (the cap itself when the task has none);
//! - while draining, TASK_KILLING and TASK_KILLED updates carry the reason
//!   REASON_SLAVE_DRAINING, and with `mark_gone` a TASK_KILLED becomes
//!   TASK_GONE_BY_OPERATOR (the master then removes the agent for good);
//!   these updates are checkpointed as changed;
//! - new tasks are refused (TASK_DROPPED, TASK_LOST for frameworks that are
//!   not partition-aware, reason REASON_SLAVE_DRAINING);
//! - the drain ends once no framework is left on the agent (every task
//!   terminal and its updates acknowledged): the checkpoint is removed.
//!
//! An agent that restarts mid-drain recovers the checkpoint and drains on:
//! an executor that re-subscribes has its tasks not yet being killed
//! killed again, and the master sends `DrainSlaveMessage` again after the
//! re-registration. A drain with nothing on the agent is complete at once
//! and checkpoints nothing.

use super::core::Agent;
use super::status::is_terminal;
use crate::proto::mesos::internal::{DrainSlaveMessage, KillTaskMessage};
use crate::proto::mesos::task_status::Reason;
use crate::proto::mesos::{
    DrainConfig, DurationInfo, FrameworkId, KillPolicy, TaskId, TaskState, TaskStatus,
};
use crate::state::meta;

/// A drain under way.
#[derive(Debug, Clone, PartialEq)]
pub struct Drain {
    pub config: DrainConfig,
    /// When it started (or, after a restart, was recovered), in seconds
    /// since the epoch: `/state`'s `estimated_drain_start_time_seconds`.
    pub started: f64,
}

impl Agent {
    /// `DrainSlaveMessage`: start (or restart, with the new config) the
    /// drain.
    pub fn drain(&mut self, msg: DrainSlaveMessage) {
        let config = msg.config;
        if self.frameworks.is_empty() {
            tracing::info!(
                ?config,
                "asked to drain with no framework or task on this agent: already drained"
            );
            return;
        }
        if let Some(id) = &self.id {
            if let Err(e) = meta::checkpoint_drain_config(&self.work, id, &config) {
                tracing::error!("checkpoint the drain: {e}");
            }
        }
        tracing::info!(
            ?config,
            previous = ?self.drain.as_ref().map(|d| &d.config),
            "draining: killing every task"
        );
        self.drain = Some(Drain {
            config,
            started: super::updates::now_secs(),
        });
        let kills = self.drain_kills(None, false);
        for kill in kills {
            self.kill_task(kill);
        }
        self.check_drained();
    }

    /// An executor subscribed again while the agent drains (the agent
    /// restarted mid-drain): its tasks not already being killed are.
    pub fn drain_resubscribed(&mut self, fw_id: &str, ex_id: &str) {
        if self.drain.is_none() {
            return;
        }
        let kills = self.drain_kills(Some((fw_id, ex_id)), true);
        if !kills.is_empty() {
            tracing::info!(
                framework = fw_id,
                executor = ex_id,
                tasks = kills.len(),
                "draining: killing the tasks of a re-subscribed executor"
            );
        }
        for kill in kills {
            self.kill_task(kill);
        }
    }

    /// The kills a drain sends: every task not yet terminal of every
    /// framework not shutting down (of one executor when `only` says
    /// which), skipping tasks already TASK_KILLING when `unless_killing`.
    fn drain_kills(
        &self,
        only: Option<(&str, &str)>,
        unless_killing: bool,
    ) -> Vec<KillTaskMessage> {
        let Some(drain) = &self.drain else {
            return Vec::new();
        };
        let cap = drain.config.max_grace_period.as_ref();
        let mut kills = Vec::new();
        for fw in self.frameworks.values().filter(|f| !f.terminating) {
            for ex in fw.executors.values() {
                if only.is_some_and(|(f, e)| f != fw.id || e != ex.id) {
                    continue;
                }
                let launched = ex
                    .launched
                    .values()
                    .filter(|t| !is_terminal(t.state))
                    .filter(|t| !(unless_killing && t.state == TaskState::TaskKilling as i32))
                    .map(|t| (t.task_id.value.clone(), t.kill_policy));
                let queued = ex
                    .queued
                    .iter()
                    .flatten()
                    .map(|t| (t.task_id.value.clone(), t.kill_policy));
                for (task, policy) in launched.chain(queued) {
                    kills.push(KillTaskMessage {
                        framework_id: FrameworkId {
                            value: fw.id.clone(),
                        },
                        task_id: TaskId { value: task },
                        kill_policy: drain_kill_policy(policy.as_ref(), cap),
                    });
                }
            }
        }
        kills
    }

    /// What a drain changes in an update the agent takes: the reason of
    /// TASK_KILLING and TASK_KILLED, and with `mark_gone`, TASK_KILLED
    /// itself.
    pub fn drain_status(&self, status: &mut TaskStatus) {
        if let Some(drain) = &self.drain {
            mark_drained(status, drain.config.mark_gone());
        }
    }

    /// Ends the drain once nothing is left on the agent.
    pub fn check_drained(&mut self) {
        if self.drain.is_none() || !self.frameworks.is_empty() {
            return;
        }
        if let Some(id) = &self.id {
            if let Err(e) = meta::remove_drain_config(&self.work, id) {
                // Kept for now: the next start drains an empty agent,
                // which ends the drain at once.
                tracing::error!("remove the drain checkpoint: {e}");
            }
        }
        tracing::info!("drained: no task is left on this agent");
        self.drain = None;
    }
}

/// The kill policy of a task killed by a drain: its own grace period
/// capped at `cap`, the cap when it has none; no cap: the task's own (no
/// override).
pub fn drain_kill_policy(
    task: Option<&KillPolicy>,
    cap: Option<&DurationInfo>,
) -> Option<KillPolicy> {
    let cap = cap?;
    let capped = KillPolicy {
        grace_period: Some(DurationInfo {
            nanoseconds: cap.nanoseconds.max(0),
        }),
    };
    match task.and_then(|p| p.grace_period.as_ref()) {
        Some(own) if own.nanoseconds < cap.nanoseconds => Some(KillPolicy {
            grace_period: Some(DurationInfo {
                nanoseconds: own.nanoseconds.max(0),
            }),
        }),
        _ => Some(capped),
    }
}

/// The change a drain makes to a status; see [`Agent::drain_status`].
fn mark_drained(status: &mut TaskStatus, mark_gone: bool) {
    match status.state() {
        TaskState::TaskKilling => status.reason = Some(Reason::SlaveDraining as i32),
        TaskState::TaskKilled => {
            status.reason = Some(Reason::SlaveDraining as i32);
            if mark_gone {
                status.state = TaskState::TaskGoneByOperator as i32;
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: i64) -> DurationInfo {
        DurationInfo {
            nanoseconds: s * 1_000_000_000,
        }
    }

    fn policy(s: i64) -> KillPolicy {
        KillPolicy {
            grace_period: Some(secs(s)),
        }
    }

    #[test]
    fn the_grace_period_is_the_tasks_capped_at_the_maximum() {
        // No maximum: the task's own policy applies (no override).
        assert_eq!(drain_kill_policy(Some(&policy(30)), None), None);
        assert_eq!(drain_kill_policy(None, None), None);
        // A longer one is capped; a shorter one kept.
        assert_eq!(
            drain_kill_policy(Some(&policy(30)), Some(&secs(5))),
            Some(policy(5))
        );
        assert_eq!(
            drain_kill_policy(Some(&policy(2)), Some(&secs(5))),
            Some(policy(2))
        );
        // None of its own: the maximum, even when longer than the
        // executor's default.
        assert_eq!(drain_kill_policy(None, Some(&secs(10))), Some(policy(10)));
        assert_eq!(
            drain_kill_policy(Some(&KillPolicy::default()), Some(&secs(10))),
            Some(policy(10))
        );
        // Zero: killed at once.
        assert_eq!(
            drain_kill_policy(Some(&policy(3)), Some(&secs(0))),
            Some(policy(0))
        );
    }

    fn status(state: TaskState, reason: Option<Reason>) -> TaskStatus {
        TaskStatus {
            state: state as i32,
            reason: reason.map(|r| r as i32),
            ..Default::default()
        }
    }

    #[test]
    fn killing_and_killed_carry_the_draining_reason() {
        for mark_gone in [false, true] {
            let mut s = status(TaskState::TaskKilling, None);
            mark_drained(&mut s, mark_gone);
            assert_eq!(
                s,
                status(TaskState::TaskKilling, Some(Reason::SlaveDraining))
            );
        }
        let mut s = status(TaskState::TaskKilled, Some(Reason::TaskKilledDuringLaunch));
        mark_drained(&mut s, false);
        assert_eq!(
            s,
            status(TaskState::TaskKilled, Some(Reason::SlaveDraining))
        );
        let mut s = status(TaskState::TaskKilled, None);
        mark_drained(&mut s, true);
        assert_eq!(
            s,
            status(TaskState::TaskGoneByOperator, Some(Reason::SlaveDraining))
        );
        // Other states pass unchanged.
        for state in [
            TaskState::TaskRunning,
            TaskState::TaskFinished,
            TaskState::TaskFailed,
            TaskState::TaskDropped,
        ] {
            let mut s = status(state, Some(Reason::CommandExecutorFailed));
            mark_drained(&mut s, true);
            assert_eq!(s, status(state, Some(Reason::CommandExecutorFailed)));
        }
    }
}
