//! The command executor: runs the one task of its `TaskInfo` as Mesos'
//! `mesos-executor` does.
//!
//! ```text
//! LAUNCH -> TASK_STARTING -> (process started) TASK_RUNNING
//!   [TASK_RUNNING again on health or check changes]
//! KILL / SHUTDOWN / failed health / max_completion_time
//!   -> [TASK_KILLING] -> SIGTERM to the group -> grace -> SIGKILL
//! exit -> TASK_FINISHED | TASK_FAILED | TASK_KILLED ("Command exited with
//!   status N") -> ACK of it -> exit 0 (no ACK in 60s: exit 1)
//! ```

use super::checks::{empty_check_status, ProbeContext, TaskChecks};
use super::exit::{command_message, Exit};
use super::launch::{self, Place};
use super::probe::Outcome;
use super::process::Group;
use super::session::{Behavior, ProbeKind, Session};
use crate::proto::mesos::v1::executor::{event, Event};
use crate::proto::mesos::v1::{task_status, KillPolicy, TaskInfo, TaskState, TaskStatus};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The grace period of a kill when neither the task nor the KILL gives one.
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(3);
/// How long to wait for the agent to acknowledge the terminal update.
pub const TERMINAL_ACK_TIMEOUT: Duration = Duration::from_secs(60);
/// After a SHUTDOWN, how long the executor stays once its last update is
/// sent: an agent shutting down a framework acknowledges nothing more
/// (Mesos' agent drops the updates of a terminating framework), so waiting
/// for the acknowledgement would only wait for the agent's SIGKILL.
/// Mesos' executors leave about a second after their last update.
pub const AFTER_SHUTDOWN: Duration = Duration::from_secs(1);

/// The grace period a kill policy gives, if any.
pub fn policy_grace(policy: Option<&KillPolicy>) -> Option<Duration> {
    let ns = policy?.grace_period.as_ref()?.nanoseconds;
    Some(Duration::from_nanos(ns.max(0) as u64))
}

/// The terminal state of a task's process, as both executors decide it.
pub fn terminal_state(
    exit: Exit,
    killed: bool,
    max_completion: bool,
) -> (TaskState, Option<task_status::Reason>) {
    if max_completion {
        (
            TaskState::TaskFailed,
            Some(task_status::Reason::MaxCompletionTimeReached),
        )
    } else if killed {
        (TaskState::TaskKilled, None)
    } else if exit.succeeded() {
        (TaskState::TaskFinished, None)
    } else {
        (TaskState::TaskFailed, None)
    }
}

/// True for the states after which a task never changes.
pub fn is_terminal(state: i32) -> bool {
    [
        TaskState::TaskFinished,
        TaskState::TaskFailed,
        TaskState::TaskKilled,
        TaskState::TaskError,
        TaskState::TaskLost,
        TaskState::TaskDropped,
        TaskState::TaskGone,
        TaskState::TaskGoneByOperator,
    ]
    .iter()
    .any(|s| *s as i32 == state)
}

/// The command executor's state.
#[derive(Debug, Default)]
pub struct CommandExecutor {
    task: Option<TaskInfo>,
    /// An update of the task was acknowledged.
    acknowledged: bool,
    launched: bool,
    killed: bool,
    killed_by_health_check: bool,
    killed_by_max_completion: bool,
    terminated: bool,
    group: Option<Group>,
    checks: TaskChecks,
    last_status: Option<TaskStatus>,
    max_completion_at: Option<Instant>,
    terminal_sent_at: Option<Instant>,
    /// A SHUTDOWN was received (see [`AFTER_SHUTDOWN`]).
    shutting_down: bool,
    exit: Option<i32>,
    /// A Docker task's grace when no kill policy gives one (the agent's
    /// `--docker_stop_timeout`, as Mesos' Docker executor uses it).
    docker_stop: Option<Duration>,
}

impl CommandExecutor {
    pub fn new() -> Self {
        Self::default()
    }

    fn task_id(&self) -> Option<&str> {
        self.task.as_ref().map(|t| t.task_id.value.as_str())
    }

    /// A status from scratch (no health or check result attached yet).
    fn status(
        &self,
        s: &Session,
        state: TaskState,
        reason: Option<task_status::Reason>,
        message: Option<String>,
    ) -> Option<TaskStatus> {
        let task = self.task.as_ref()?;
        let mut status = s.status(&task.task_id, state);
        status.reason = reason.map(|r| r as i32);
        status.message = message;
        status.check_status = task.check.as_ref().map(empty_check_status);
        Some(status)
    }

    fn forward(&mut self, s: &mut Session, status: TaskStatus) {
        if is_terminal(status.state) {
            self.terminal_sent_at = Some(Instant::now());
            if s.gave_up() {
                self.exit = Some(1);
            }
        }
        self.last_status = Some(status.clone());
        s.forward(status);
    }

    fn fail(&mut self, s: &mut Session, message: String) {
        eprintln!(
            "butte executor: task {}: {message}",
            self.task_id().unwrap_or("?")
        );
        self.terminated = true;
        if let Some(st) = self.status(s, TaskState::TaskFailed, None, Some(message)) {
            self.forward(s, st);
        }
    }

    fn launch(&mut self, s: &mut Session, task: TaskInfo) {
        if self.task.is_some() {
            let mut st = s.status(&task.task_id, TaskState::TaskFailed);
            st.message =
                Some("Attempted to run multiple tasks using a \"command\" executor".into());
            s.forward(st);
            return;
        }
        let task_id = task.task_id.value.clone();
        self.task = Some(task.clone());
        if let Some(st) = self.status(s, TaskState::TaskStarting, None, None) {
            self.forward(s, st);
        }
        // Dropped unless used: a prepared process not needed ends.
        let mut root = s.take_prepared(&task_id);
        let info = match s.launch_info(&task_id) {
            Ok(i) => i,
            Err(e) => return self.fail(s, e),
        };
        self.docker_stop = info
            .docker
            .as_ref()
            .map(|d| Duration::from_millis(d.stop_timeout_ms));
        // Under a Mesos agent: what its flags ask (see `flags`).
        if let Some(why) = s.mesos.unsupported() {
            return self.fail(
                s,
                format!("Failed to launch task: butte-executor cannot apply {why}"),
            );
        }
        let mut task = task;
        if let Some(command) = &s.mesos.task_command {
            task.command = Some(command.clone());
        }
        let mut env = s.env.clone();
        if let Err(e) = launch::apply_environment(&mut env, s.mesos.task_environment.as_ref()) {
            return self.fail(s, format!("Failed to launch task: --task_environment: {e}"));
        }
        let place = Place {
            env: &env,
            sandbox: &s.config.directory,
            own_sandbox: false,
        };
        let mut plan = match launch::plan(&task, &info, &place) {
            Ok(p) => p,
            Err(e) => return self.fail(s, format!("Failed to launch task: {e}")),
        };
        if let Some(user) = &s.mesos.user {
            plan.user = Some(user.clone());
        }
        let pid = match s.start_task(&task_id, &plan, root.as_mut()) {
            Ok(pid) => pid,
            Err(e) => return self.fail(s, format!("Failed to launch task: {e}")),
        };
        eprintln!("butte executor: started task {task_id} as pid {pid}");
        self.group = Some(Group::new(pid));
        let ctx = ProbeContext {
            server: plan
                .rootfs
                .is_some()
                .then(|| root.map(|r| Arc::new(r.checks())))
                .flatten(),
            task: plan,
            nested: None,
        };
        self.checks = TaskChecks::start(
            &task_id,
            task.health_check.as_ref(),
            task.check.as_ref(),
            &ctx,
            &s.reaper,
            &s.inputs,
        );
        if let Some(d) = task
            .max_completion_time
            .as_ref()
            .filter(|d| d.nanoseconds > 0)
        {
            self.max_completion_at =
                Some(Instant::now() + Duration::from_nanos(d.nanoseconds as u64));
        }
        if let Some(st) = self.status(s, TaskState::TaskRunning, None, None) {
            self.forward(s, st);
        }
        self.launched = true;
    }

    fn kill_with_policy(&mut self, s: &mut Session, task_id: &str, over: Option<&KillPolicy>) {
        if self.task_id() != Some(task_id) {
            eprintln!("butte executor: ignoring kill of unknown task {task_id}");
            return;
        }
        self.max_completion_at = None;
        let policy = self.task.as_ref().and_then(|t| t.kill_policy.as_ref());
        let grace = policy_grace(over)
            .or_else(|| policy_grace(policy))
            .or(self.docker_stop)
            .unwrap_or(DEFAULT_KILL_GRACE);
        eprintln!("butte executor: killing task {task_id} with a grace period of {grace:?}");
        self.kill(s, grace);
    }

    fn kill(&mut self, s: &mut Session, grace: Duration) {
        if self.terminated {
            return;
        }
        let Some(group) = &mut self.group else { return };
        let now = Instant::now();
        if self.killed {
            group.kill(now, grace);
            return;
        }
        self.killed = true;
        self.checks.stop();
        if !self.killed_by_max_completion && s.task_killing_state() {
            if let Some(st) = self.status(s, TaskState::TaskKilling, None, None) {
                self.forward(s, st);
            }
        }
        if let Some(group) = &mut self.group {
            group.kill(now, grace);
        }
    }

    /// How long the terminal update's acknowledgement is waited for.
    fn ack_wait(&self) -> Duration {
        if self.shutting_down {
            AFTER_SHUTDOWN
        } else {
            TERMINAL_ACK_TIMEOUT
        }
    }

    fn shutdown(&mut self, s: &mut Session) {
        eprintln!("butte executor: shutting down");
        self.shutting_down = true;
        if !self.launched {
            if self.terminated && !s.gave_up() {
                // A failed launch: its update was sent; leave shortly.
                return;
            }
            self.exit = Some(0);
            return;
        }
        // Leave time to send TASK_KILLED before the agent destroys us.
        let grace = s
            .config
            .shutdown_grace_period
            .saturating_sub(Duration::from_secs(2));
        self.kill(s, grace);
    }
}

impl Behavior for CommandExecutor {
    fn event(&mut self, s: &mut Session, event: Event) {
        use crate::proto::mesos::v1::executor::event::Type;
        match event.r#type.map(Type::try_from) {
            Some(Ok(Type::Subscribed)) => {}
            Some(Ok(Type::Launch)) => {
                if let Some(event::Launch { task }) = event.launch {
                    self.launch(s, task);
                }
            }
            Some(Ok(Type::LaunchGroup)) => {
                eprintln!("butte executor: LAUNCH_GROUP event is not supported");
                self.shutdown(s);
            }
            Some(Ok(Type::Kill)) => {
                let Some(kill) = event.kill else { return };
                if self.task.is_none() {
                    eprintln!(
                        "butte executor: terminating: kill of task {} received before any launch",
                        kill.task_id.value
                    );
                    self.exit = Some(1);
                    return;
                }
                self.kill_with_policy(s, &kill.task_id.value, kill.kill_policy.as_ref());
            }
            Some(Ok(Type::Acknowledged)) => {
                let Some(ack) = event.acknowledged else {
                    return;
                };
                match s.acknowledge(&ack.uuid) {
                    Some(status) => {
                        self.acknowledged = true;
                        if is_terminal(status.state) {
                            self.exit = Some(0);
                        }
                    }
                    None => eprintln!(
                        "butte executor: acknowledgement for an unknown status update of task {}",
                        ack.task_id.value
                    ),
                }
            }
            Some(Ok(Type::Shutdown)) => self.shutdown(s),
            Some(Ok(Type::Error)) => {
                let text = event.error.map(|e| e.message).unwrap_or_default();
                eprintln!("butte executor: error from the agent: {text}");
            }
            Some(Ok(Type::Message | Type::Heartbeat)) => {}
            _ => eprintln!("butte executor: ignoring an UNKNOWN event"),
        }
    }

    fn exited(&mut self, s: &mut Session, task_id: &str, exit: Exit) {
        if self.task_id() != Some(task_id) || self.terminated {
            return;
        }
        self.terminated = true;
        self.checks.stop();
        self.max_completion_at = None;
        let (state, reason) = terminal_state(exit, self.killed, self.killed_by_max_completion);
        // Mesos' Docker executor says "Container exited with status 3".
        let message = match self.docker_stop {
            Some(_) => command_message(exit).replacen("Command", "Container", 1),
            None => command_message(exit),
        };
        eprintln!("butte executor: {message}");
        if let Some(mut st) = self.status(s, state, reason, Some(message)) {
            if self.killed && self.killed_by_health_check {
                st.healthy = Some(false);
            }
            self.forward(s, st);
        }
    }

    fn probe(&mut self, s: &mut Session, _task_id: &str, kind: ProbeKind, outcome: Outcome) {
        if self.killed || self.terminated {
            return;
        }
        let Some(last) = self.last_status.clone() else {
            return;
        };
        let Some((st, kill)) = self
            .checks
            .probe_update(kind, &outcome, || s.refresh(&last))
        else {
            return;
        };
        self.forward(s, st);
        if kill {
            self.killed_by_health_check = true;
            let task_id = self.task_id().unwrap_or_default().to_string();
            self.kill_with_policy(s, &task_id, None);
        }
    }

    fn tick(&mut self, s: &mut Session, now: Instant) {
        if let Some(g) = &mut self.group {
            if !self.terminated {
                g.escalate(now);
            }
        }
        if self.max_completion_at.is_some_and(|t| now >= t) && !self.killed && !self.terminated {
            self.max_completion_at = None;
            self.killed_by_max_completion = true;
            eprintln!("butte executor: task exceeded its maximum completion time");
            self.kill(s, Duration::ZERO);
        }
        if self
            .terminal_sent_at
            .is_some_and(|t| now >= t + self.ack_wait())
            && self.exit.is_none()
        {
            if self.shutting_down {
                eprintln!("butte executor: shut down; leaving after the last update");
                self.exit = Some(0);
            } else {
                eprintln!(
                    "butte executor: did not receive ACK for the terminal status update from the agent"
                );
                self.exit = Some(1);
            }
        }
    }

    fn deadline(&self) -> Option<Instant> {
        let group = self
            .group
            .as_ref()
            .filter(|_| !self.terminated)
            .and_then(Group::deadline);
        [
            group,
            self.max_completion_at.filter(|_| !self.killed),
            self.terminal_sent_at.map(|t| t + self.ack_wait()),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn connection_lost(&mut self, s: &mut Session) {
        if self.terminated || !self.launched {
            self.exit = Some(1);
            return;
        }
        self.shutdown(s);
    }

    fn unacknowledged_tasks(&self) -> Vec<TaskInfo> {
        match &self.task {
            Some(t) if !self.acknowledged => vec![t.clone()],
            _ => Vec::new(),
        }
    }

    fn exit_code(&self) -> Option<i32> {
        self.exit
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::mesos::v1::DurationInfo;

    #[test]
    fn terminal_states_follow_mesos() {
        assert_eq!(
            terminal_state(Exit::Code(0), false, false),
            (TaskState::TaskFinished, None)
        );
        assert_eq!(
            terminal_state(Exit::Code(3), false, false),
            (TaskState::TaskFailed, None)
        );
        // Killed wins over the exit code, even a clean one.
        assert_eq!(
            terminal_state(Exit::Code(0), true, false),
            (TaskState::TaskKilled, None)
        );
        assert_eq!(
            terminal_state(Exit::Signal(9), true, true),
            (
                TaskState::TaskFailed,
                Some(task_status::Reason::MaxCompletionTimeReached)
            )
        );
    }

    #[test]
    fn kill_grace_comes_from_the_policy() {
        let p = KillPolicy {
            grace_period: Some(DurationInfo {
                nanoseconds: 1_500_000_000,
            }),
        };
        assert_eq!(policy_grace(Some(&p)), Some(Duration::from_millis(1500)));
        assert_eq!(policy_grace(Some(&KillPolicy::default())), None);
        assert_eq!(policy_grace(None), None);
    }

    #[test]
    fn terminal_states_are_recognised() {
        assert!(is_terminal(TaskState::TaskKilled as i32));
        assert!(is_terminal(TaskState::TaskFinished as i32));
        assert!(!is_terminal(TaskState::TaskRunning as i32));
        assert!(!is_terminal(TaskState::TaskKilling as i32));
    }
}
