//! The default executor: runs task groups, each task as its own process
//! group in its own sandbox `tasks/<task id>/` (and, with an image, its own
//! mount namespace, prepared at the executor's start), all sharing the executor's
//! network. As Mesos' default executor:
//!
//! - LAUNCH_GROUP: TASK_STARTING for each task, then TASK_RUNNING for each
//!   one started (TASK_FAILED for one that could not be);
//! - a task that fails or is killed kills the rest of its group (3s grace),
//!   and those report TASK_KILLED;
//! - the executor exits once no task is left and every update is
//!   acknowledged (or 60s after its last task ended).

use super::checks::{empty_check_status, ProbeContext, TaskChecks};
use super::command::{
    policy_grace, terminal_state, AFTER_SHUTDOWN, DEFAULT_KILL_GRACE, TERMINAL_ACK_TIMEOUT,
};
use super::exit::{command_message, Exit};
use super::launch::{self, Place};
use super::probe::Outcome;
use super::process::Group;
use super::session::{Behavior, ProbeKind, Session};
use crate::proto::mesos::v1::executor::{event, Event};
use crate::proto::mesos::v1::{
    task_status, KillPolicy, TaskGroupInfo, TaskInfo, TaskState, TaskStatus,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The host directory of a task's sandbox, `tasks/<task id>/` in the
/// executor's, created if missing.
pub fn task_sandbox(directory: &Path, task_id: &str) -> Result<PathBuf, String> {
    let name = launch::task_dir_name(task_id).map_err(|e| e.to_string())?;
    let tasks = directory.join("tasks");
    let dir = tasks.join(name);
    let fail = |e: std::io::Error| format!("cannot create the task sandbox {}: {e}", dir.display());
    // Tasks of the group may write in the executor's sandbox: never
    // follow a link someone planted in place of a directory.
    match std::fs::symlink_metadata(&tasks) {
        Ok(m) if !m.is_dir() => return Err(fail(std::io::ErrorKind::AlreadyExists.into())),
        Ok(_) => {}
        Err(_) => std::fs::create_dir(&tasks).map_err(fail)?,
    }
    match std::fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let m = std::fs::symlink_metadata(&dir).map_err(fail)?;
            if !m.is_dir() {
                return Err(fail(e));
            }
        }
        Err(e) => return Err(fail(e)),
    }
    Ok(dir)
}

/// One task of a group.
#[derive(Debug)]
struct Container {
    task: TaskInfo,
    /// The ids of every task of its group.
    group: Vec<String>,
    process: Option<Group>,
    checks: TaskChecks,
    last_status: Option<TaskStatus>,
    acknowledged: bool,
    killing: bool,
    killing_group: bool,
    killed_by_completion: bool,
    max_completion_at: Option<Instant>,
}

/// The default executor's state.
#[derive(Debug, Default)]
pub struct DefaultExecutor {
    /// Active tasks, in launch order.
    containers: Vec<(String, Container)>,
    shutting_down: bool,
    /// Some task was reported unhealthy and killed for it.
    unhealthy: bool,
    /// When to leave even without every acknowledgement.
    leave_at: Option<Instant>,
    exit: Option<i32>,
}

impl DefaultExecutor {
    pub fn new() -> Self {
        Self::default()
    }

    fn get(&mut self, task_id: &str) -> Option<&mut Container> {
        self.containers
            .iter_mut()
            .find(|(id, _)| id == task_id)
            .map(|(_, c)| c)
    }

    fn status(s: &Session, task: &TaskInfo, state: TaskState) -> TaskStatus {
        let mut st = s.status(&task.task_id, state);
        st.check_status = task.check.as_ref().map(empty_check_status);
        st
    }

    fn forward(&mut self, s: &mut Session, status: TaskStatus) {
        let id = status.task_id.value.clone();
        if let Some(c) = self.get(&id) {
            c.last_status = Some(status.clone());
        }
        s.forward(status);
    }

    /// Starts one task; returns its process or why it could not start.
    fn start(s: &mut Session, task: &TaskInfo) -> Result<(Group, TaskChecks), String> {
        let task_id = task.task_id.value.as_str();
        // Dropped unless used: a prepared process not needed ends.
        let mut root = s.take_prepared(task_id);
        let info = s.launch_info(task_id)?;
        let sandbox = task_sandbox(&s.config.directory, task_id)?;
        let place = Place {
            env: &s.env,
            sandbox: &sandbox,
            own_sandbox: true,
        };
        let plan = launch::plan(task, &info, &place).map_err(|e| e.to_string())?;
        if let (Some(user), None) = (&plan.user, &plan.rootfs) {
            // The task's sandbox belongs to the user it runs as.
            let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
            if let Some((uid, gid)) = launch::lookup_user(&passwd, user) {
                // lchown: the directory was checked not to be a link.
                let _ = std::os::unix::fs::lchown(&sandbox, Some(uid), Some(gid));
            }
        }
        let pid = s.start_task(task_id, &plan, root.as_mut())?;
        eprintln!("butte executor: started task {task_id} as pid {pid}");
        let ctx = ProbeContext {
            server: plan
                .rootfs
                .is_some()
                .then(|| root.map(|r| Arc::new(r.checks())))
                .flatten(),
            task: plan,
        };
        let checks = TaskChecks::start(
            task_id,
            task.health_check.as_ref(),
            task.check.as_ref(),
            &ctx,
            &s.reaper,
            &s.inputs,
        );
        Ok((Group::new(pid), checks))
    }

    fn launch_group(&mut self, s: &mut Session, group: TaskGroupInfo) {
        if self.shutting_down {
            eprintln!("butte executor: ignoring a task group: shutting down");
            return;
        }
        let ids: Vec<String> = group
            .tasks
            .iter()
            .map(|t| t.task_id.value.clone())
            .collect();
        let mut failed = Vec::new();
        for task in &group.tasks {
            let id = task.task_id.value.clone();
            self.containers.push((
                id.clone(),
                Container {
                    task: task.clone(),
                    group: ids.clone(),
                    process: None,
                    checks: TaskChecks::default(),
                    last_status: None,
                    acknowledged: false,
                    killing: false,
                    killing_group: false,
                    killed_by_completion: false,
                    max_completion_at: None,
                },
            ));
            let st = Self::status(s, task, TaskState::TaskStarting);
            self.forward(s, st);
            match Self::start(s, task) {
                Ok((process, checks)) => {
                    if let Some(c) = self.get(&id) {
                        c.process = Some(process);
                        c.checks = checks;
                        c.max_completion_at = task
                            .max_completion_time
                            .as_ref()
                            .filter(|d| d.nanoseconds > 0)
                            .map(|d| Instant::now() + Duration::from_nanos(d.nanoseconds as u64));
                    }
                }
                Err(why) => failed.push((id, why)),
            }
        }
        for task in &group.tasks {
            let id = &task.task_id.value;
            if !failed.iter().any(|(f, _)| f == id) {
                let st = Self::status(s, task, TaskState::TaskRunning);
                self.forward(s, st);
            }
        }
        for (id, why) in failed {
            eprintln!("butte executor: task {id}: {why}");
            self.terminated(s, &id, TaskState::TaskFailed, None, why);
        }
    }

    /// Kills one task: TASK_KILLING if the framework wants it, SIGTERM,
    /// SIGKILL after the grace period (3s unless given).
    fn kill(&mut self, s: &mut Session, task_id: &str, grace: Option<Duration>) {
        let killing_state = s.task_killing_state();
        let Some(c) = self.get(task_id) else { return };
        if c.process.is_none() || c.killing {
            return;
        }
        c.max_completion_at = None;
        c.killing = true;
        c.checks.stop();
        let by_completion = c.killed_by_completion;
        let task = c.task.clone();
        if !by_completion && killing_state {
            let st = Self::status(s, &task, TaskState::TaskKilling);
            self.forward(s, st);
        }
        if let Some(p) = self.get(task_id).and_then(|c| c.process.as_mut()) {
            // The task's own kill policy when no grace was given.
            let grace = grace
                .or_else(|| super::command::policy_grace(task.kill_policy.as_ref()))
                .unwrap_or(DEFAULT_KILL_GRACE);
            p.kill(Instant::now(), grace);
        }
    }

    /// A KILL from the scheduler: the event's policy, else the task's.
    fn kill_task(&mut self, s: &mut Session, task_id: &str, over: Option<&KillPolicy>) {
        if self.shutting_down {
            eprintln!("butte executor: ignoring kill of task {task_id}: shutting down");
            return;
        }
        let Some(c) = self.get(task_id) else {
            eprintln!("butte executor: ignoring kill of task {task_id}: it is no longer active");
            return;
        };
        if c.killing {
            return;
        }
        let grace = policy_grace(over).or_else(|| policy_grace(c.task.kill_policy.as_ref()));
        self.kill(s, task_id, grace);
    }

    /// A task ended: report it, kill the rest of its group if it failed or
    /// was killed, forget it.
    fn terminated(
        &mut self,
        s: &mut Session,
        task_id: &str,
        state: TaskState,
        reason: Option<task_status::Reason>,
        message: String,
    ) {
        let unhealthy = self.unhealthy;
        let Some(c) = self.get(task_id) else { return };
        c.checks.stop();
        let (task, group, killing_group) = (c.task.clone(), c.group.clone(), c.killing_group);
        let mut st = Self::status(s, &task, state);
        st.reason = reason.map(|r| r as i32);
        st.message = Some(message);
        if unhealthy {
            st.healthy = Some(false);
        }
        self.forward(s, st);
        if !self.shutting_down
            && !killing_group
            && matches!(state, TaskState::TaskFailed | TaskState::TaskKilled)
        {
            eprintln!("butte executor: killing task group {group:?}");
            for other in group.iter().filter(|o| *o != task_id) {
                let Some(oc) = self.get(other) else { continue };
                oc.killing_group = true;
                if !oc.killing {
                    self.kill(s, other, None);
                }
            }
        }
        self.containers.retain(|(id, _)| id != task_id);
        if self.containers.is_empty() {
            self.finish(s);
        }
    }

    /// No task left: leave once everything is acknowledged.
    fn finish(&mut self, s: &Session) {
        if s.all_acknowledged() || s.gave_up() {
            self.exit = Some(if s.gave_up() { 1 } else { 0 });
        } else {
            // After a SHUTDOWN, no acknowledgement may come (see
            // `AFTER_SHUTDOWN`).
            let wait = if self.shutting_down {
                AFTER_SHUTDOWN
            } else {
                TERMINAL_ACK_TIMEOUT
            };
            let at = Instant::now() + wait;
            self.leave_at = Some(self.leave_at.map_or(at, |l| l.min(at)));
        }
    }

    fn shutdown(&mut self, s: &mut Session) {
        if self.shutting_down {
            return;
        }
        eprintln!("butte executor: shutting down");
        self.shutting_down = true;
        if self.containers.is_empty() {
            self.finish(s);
            return;
        }
        let ids: Vec<String> = self.containers.iter().map(|(id, _)| id.clone()).collect();
        for id in ids {
            self.kill(s, &id, None);
        }
    }
}

impl Behavior for DefaultExecutor {
    fn event(&mut self, s: &mut Session, event: Event) {
        use crate::proto::mesos::v1::executor::event::Type;
        match event.r#type.map(Type::try_from) {
            Some(Ok(Type::Subscribed)) => {}
            Some(Ok(Type::Launch)) => {
                eprintln!("butte executor: LAUNCH event is not supported");
                self.shutdown(s);
            }
            Some(Ok(Type::LaunchGroup)) => {
                if let Some(event::LaunchGroup { task_group }) = event.launch_group {
                    self.launch_group(s, task_group);
                }
            }
            Some(Ok(Type::Kill)) => {
                if let Some(kill) = event.kill {
                    self.kill_task(s, &kill.task_id.value, kill.kill_policy.as_ref());
                }
            }
            Some(Ok(Type::Acknowledged)) => {
                let Some(ack) = event.acknowledged else {
                    return;
                };
                if s.acknowledge(&ack.uuid).is_none() {
                    eprintln!(
                        "butte executor: acknowledgement for an unknown status update of task {}",
                        ack.task_id.value
                    );
                    return;
                }
                if let Some(c) = self.get(&ack.task_id.value) {
                    c.acknowledged = true;
                }
                if self.containers.is_empty() && s.all_acknowledged() {
                    self.exit = Some(0);
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
        let Some(c) = self.get(task_id) else { return };
        let (state, reason) = terminal_state(exit, c.killing, c.killed_by_completion);
        let message = command_message(exit);
        eprintln!("butte executor: task {task_id}: {message}");
        self.terminated(s, task_id, state, reason, message);
    }

    fn probe(&mut self, s: &mut Session, task_id: &str, kind: ProbeKind, outcome: Outcome) {
        if !s.subscribed() {
            return;
        }
        let Some(c) = self.get(task_id) else { return };
        if c.killing {
            return;
        }
        let Some(last) = c.last_status.clone() else {
            return;
        };
        let Some((st, kill)) = c.checks.probe_update(kind, &outcome, || s.refresh(&last)) else {
            return;
        };
        self.forward(s, st);
        if kill {
            self.unhealthy = true;
            self.kill_task(s, task_id, None);
        }
    }

    fn tick(&mut self, s: &mut Session, now: Instant) {
        let mut expired = Vec::new();
        for (id, c) in &mut self.containers {
            if let Some(p) = &mut c.process {
                p.escalate(now);
            }
            if c.max_completion_at.is_some_and(|t| now >= t) && !c.killing {
                c.max_completion_at = None;
                c.killed_by_completion = true;
                expired.push(id.clone());
            }
        }
        for id in expired {
            eprintln!("butte executor: task {id} exceeded its maximum completion time");
            self.kill(s, &id, Some(Duration::ZERO));
        }
        if self.leave_at.is_some_and(|t| now >= t) && self.exit.is_none() {
            eprintln!("butte executor: leaving without every acknowledgement");
            self.exit = Some(0);
        }
    }

    fn deadline(&self) -> Option<Instant> {
        self.containers
            .iter()
            .flat_map(|(_, c)| {
                [
                    c.process.as_ref().and_then(Group::deadline),
                    c.max_completion_at.filter(|_| !c.killing),
                ]
            })
            .chain([self.leave_at])
            .flatten()
            .min()
    }

    fn connection_lost(&mut self, s: &mut Session) {
        self.shutdown(s);
        if self.containers.is_empty() {
            self.exit = Some(1);
        }
    }

    fn unacknowledged_tasks(&self) -> Vec<TaskInfo> {
        self.containers
            .iter()
            .filter(|(_, c)| c.process.is_some() && !c.acknowledged)
            .map(|(_, c)| c.task.clone())
            .collect()
    }

    fn exit_code(&self) -> Option<i32> {
        self.exit
    }
}
