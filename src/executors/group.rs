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
//!
//! Under butte's agent (`BUTTE_NESTED_CONTAINERS=1`) each task runs instead
//! as a nested container of the executor's, launched, waited for, killed
//! and removed through the agent's operator API (`nested`), each in its
//! own image if it names one; its sandbox is the agent's
//! `containers/<container id>/`, linked from `tasks/<task id>`, and its
//! updates carry its container id. Elsewhere (under a Mesos agent) tasks
//! are processes as above.

use super::checks::{empty_check_status, ProbeContext, TaskChecks};
use super::command::{
    policy_grace, terminal_state, AFTER_SHUTDOWN, DEFAULT_KILL_GRACE, TERMINAL_ACK_TIMEOUT,
};
use super::exit::{command_message, Exit};
use super::launch::{self, Place};
use super::nested::{self, Agent, Ending, Report};
use super::probe::Outcome;
use super::process::{Escalation, Group};
use super::session::{Behavior, ProbeKind, Session};
use crate::proto::mesos::v1::executor::{event, Event};
use crate::proto::mesos::v1::{
    CommandInfo, ContainerId, ContainerStatus, KillPolicy, TaskGroupInfo, TaskInfo, TaskState,
    TaskStatus,
};
use nix::sys::signal::Signal;
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

/// Links `tasks/<task id>` in the executor's sandbox `directory` to the
/// nested container's sandbox `containers/<container>`, where UIs and
/// tools look for a task's files. The link is relative (Mesos' default
/// executor makes an absolute one): the agent's `/files` resolves paths
/// beneath the sandbox and follows only links that stay there, and a
/// relative link also survives the sandbox being moved or mounted
/// elsewhere. Returns the link.
pub fn link_task(directory: &Path, task_id: &str, container: &str) -> Result<PathBuf, String> {
    let name = launch::task_dir_name(task_id).map_err(|e| e.to_string())?;
    let container = launch::task_dir_name(container).map_err(|e| e.to_string())?;
    let tasks = directory.join("tasks");
    let link = tasks.join(name);
    let target = Path::new("..").join("containers").join(container);
    let fail = |e: std::io::Error| {
        format!(
            "cannot link {} to {}: {e}",
            link.display(),
            target.display()
        )
    };
    match std::fs::symlink_metadata(&tasks) {
        Ok(m) if !m.is_dir() => return Err(fail(std::io::ErrorKind::AlreadyExists.into())),
        Ok(_) => {}
        Err(_) => std::fs::create_dir(&tasks).map_err(fail)?,
    }
    std::os::unix::fs::symlink(&target, &link).map_err(fail)?;
    Ok(link)
}

/// A task's nested container and the kill in progress.
#[derive(Debug)]
struct NestedRun {
    agent: Agent,
    id: ContainerId,
    /// What it was launched with.
    command: CommandInfo,
    /// The agent answered its launch with 200.
    launched: bool,
    /// A kill asked for before the launch answered: its grace period.
    pending_grace: Option<Duration>,
    escalation: Option<Escalation>,
    sigkilled: bool,
}

impl NestedRun {
    fn new(agent: Agent, id: ContainerId, command: CommandInfo) -> Self {
        NestedRun {
            agent,
            id,
            command,
            launched: false,
            pending_grace: None,
            escalation: None,
            sigkilled: false,
        }
    }

    /// Starts a kill (`KILL_CONTAINER` SIGTERM now, SIGKILL after
    /// `grace`) or shortens the one in progress; before the launch
    /// answered, only remembers it.
    fn kill(&mut self, now: Instant, grace: Duration) {
        if !self.launched {
            self.pending_grace = Some(self.pending_grace.map_or(grace, |g| g.min(grace)));
            return;
        }
        match &mut self.escalation {
            Some(e) => {
                e.shorten(now, grace);
            }
            None => {
                eprintln!(
                    "butte executor: sending SIGTERM to container {}",
                    nested::display(&self.id)
                );
                self.agent
                    .kill_in_background(self.id.clone(), Signal::SIGTERM as i32);
                self.escalation = Some(Escalation::new(now, grace));
            }
        }
        self.escalate(now);
    }

    fn deadline(&self) -> Option<Instant> {
        match self.escalation {
            Some(e) if !self.sigkilled => Some(e.deadline()),
            _ => None,
        }
    }

    fn escalate(&mut self, now: Instant) {
        if self.deadline().is_some_and(|d| now >= d) {
            eprintln!(
                "butte executor: container {} outlived its grace period: sending SIGKILL",
                nested::display(&self.id)
            );
            self.agent
                .kill_in_background(self.id.clone(), Signal::SIGKILL as i32);
            self.sigkilled = true;
        }
    }
}

/// What runs a task: its own process group, or a nested container.
#[derive(Debug)]
enum Runner {
    Process(Group),
    Nested(Box<NestedRun>),
}

impl Runner {
    fn kill(&mut self, now: Instant, grace: Duration) {
        match self {
            Runner::Process(p) => p.kill(now, grace),
            Runner::Nested(n) => n.kill(now, grace),
        }
    }

    fn escalate(&mut self, now: Instant) {
        match self {
            Runner::Process(p) => p.escalate(now),
            Runner::Nested(n) => n.escalate(now),
        }
    }

    fn deadline(&self) -> Option<Instant> {
        match self {
            Runner::Process(p) => p.deadline(),
            Runner::Nested(n) => n.deadline(),
        }
    }

    fn launched(&self) -> bool {
        match self {
            Runner::Process(_) => true,
            Runner::Nested(n) => n.launched,
        }
    }

    fn container_id(&self) -> Option<&ContainerId> {
        match self {
            Runner::Process(_) => None,
            Runner::Nested(n) => Some(&n.id),
        }
    }
}

/// One task of a group.
#[derive(Debug)]
struct Container {
    task: TaskInfo,
    /// The ids of every task of its group.
    group: Vec<String>,
    process: Option<Runner>,
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
    /// Run tasks as nested containers through this agent.
    nested: Option<Agent>,
    /// The executor's own container (SUBSCRIBED's), parent of the tasks'.
    container_id: Option<ContainerId>,
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
    /// The default executor; with `nested`, its tasks run as nested
    /// containers launched by that agent.
    pub fn new(nested: Option<Agent>) -> Self {
        DefaultExecutor {
            nested,
            ..Self::default()
        }
    }

    fn get(&mut self, task_id: &str) -> Option<&mut Container> {
        self.containers
            .iter_mut()
            .find(|(id, _)| id == task_id)
            .map(|(_, c)| c)
    }

    /// A status from scratch: no check result yet, the task's nested
    /// container id when it has one.
    fn status(
        s: &Session,
        task: &TaskInfo,
        container: Option<&ContainerId>,
        state: TaskState,
    ) -> TaskStatus {
        let mut st = s.status(&task.task_id, state);
        st.check_status = task.check.as_ref().map(empty_check_status);
        st.container_status = container.map(|id| ContainerStatus {
            container_id: Some(id.clone()),
            ..Default::default()
        });
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
    fn start(s: &mut Session, task: &TaskInfo) -> Result<(Runner, TaskChecks), String> {
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
            nested: None,
        };
        let checks = TaskChecks::start(
            task_id,
            task.health_check.as_ref(),
            task.check.as_ref(),
            &ctx,
            &s.reaper,
            &s.inputs,
        );
        Ok((Runner::Process(Group::new(pid)), checks))
    }

    /// Asks the agent for a task's nested container (the answer comes as
    /// [`Report::Launched`]); returns it, or why it cannot be asked for.
    fn start_nested(&self, s: &Session, agent: &Agent, task: &TaskInfo) -> Result<Runner, String> {
        let parent = self.container_id.as_ref().ok_or(
            "the agent gave the executor no container id: cannot launch nested containers",
        )?;
        let id = nested::child_id(parent, "").map_err(|e| e.to_string())?;
        let command = launch::nested_command(task, &s.env, &[nested::NESTED_CONTAINERS_ENV])
            .map_err(|e| e.to_string())?;
        eprintln!(
            "butte executor: launching task {} in container {}",
            task.task_id.value,
            nested::display(&id)
        );
        agent.launch_in_background(id.clone(), task.clone(), command.clone(), s.inputs.clone());
        Ok(Runner::Nested(Box::new(NestedRun::new(
            agent.clone(),
            id,
            command,
        ))))
    }

    /// A task's nested container runs (or could not be launched).
    fn launched(&mut self, s: &mut Session, task_id: &str, result: Result<(), String>) {
        let Some(c) = self.get(task_id) else { return };
        let Some(Runner::Nested(n)) = &mut c.process else {
            return;
        };
        if let Err(why) = result {
            eprintln!("butte executor: task {task_id}: {why}");
            let state = if c.killing {
                TaskState::TaskKilled
            } else {
                TaskState::TaskFailed
            };
            let end = Ending {
                state,
                reason: None,
                message: Some(why),
                limitation: None,
            };
            return self.terminated(s, task_id, end);
        }
        n.launched = true;
        let (id, agent) = (n.id.clone(), n.agent.clone());
        let command = n.command.clone();
        let pending = n.pending_grace.take();
        let (task, killing) = (c.task.clone(), c.killing);
        match link_task(&s.config.directory, task_id, &id.value) {
            Ok(link) => eprintln!(
                "butte executor: task {task_id} runs in container {}; its sandbox is {}",
                nested::display(&id),
                link.display()
            ),
            Err(e) => eprintln!("butte executor: task {task_id}: {e}"),
        }
        agent.wait_in_background(task_id.to_string(), id.clone(), s.inputs.clone());
        if killing {
            // Killed while launching: the kill goes now.
            let grace = pending.unwrap_or(DEFAULT_KILL_GRACE);
            if let Some(r) = self.get(task_id).and_then(|c| c.process.as_mut()) {
                r.kill(Instant::now(), grace);
            }
            return;
        }
        let sandbox = s.config.directory.join("containers").join(&id.value);
        // The environment the task was launched with, for its COMMAND
        // checks.
        let env = command
            .environment
            .iter()
            .flat_map(|e| &e.variables)
            .map(|v| (v.name.clone(), v.value.clone().unwrap_or_default()))
            .collect();
        let ctx = ProbeContext {
            // The task's environment and sandbox (its command runs in the
            // container: no program here).
            task: launch::Plan {
                program: String::new(),
                argv: Vec::new(),
                env,
                cwd: sandbox,
                user: command.user.clone(),
                rootfs: None,
            },
            server: None,
            nested: Some((agent, id.clone())),
        };
        let checks = TaskChecks::start(
            task_id,
            task.health_check.as_ref(),
            task.check.as_ref(),
            &ctx,
            &s.reaper,
            &s.inputs,
        );
        if let Some(c) = self.get(task_id) {
            c.checks = checks;
            c.max_completion_at = max_completion_at(&task);
        }
        let st = Self::status(s, &task, Some(&id), TaskState::TaskRunning);
        self.forward(s, st);
    }

    /// A task's nested container ended (or is gone): its terminal update,
    /// then the container is removed.
    fn waited(&mut self, s: &mut Session, task_id: &str, waited: nested::Waited) {
        let Some(c) = self.get(task_id) else { return };
        let end = nested::ending(&waited, c.killing, c.killed_by_completion);
        let id = c.process.as_ref().and_then(Runner::container_id).cloned();
        eprintln!(
            "butte executor: task {task_id} ended: {:?} {}",
            end.state,
            end.message.as_deref().unwrap_or_default()
        );
        self.terminated(s, task_id, end);
        if let (Some(agent), Some(id)) = (&self.nested, id) {
            agent.remove_in_background(id);
        }
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
        let mut started = Vec::new();
        for task in &group.tasks {
            let id = task.task_id.value.clone();
            let runner = self
                .nested
                .as_ref()
                .map(|agent| self.start_nested(s, agent, task));
            let (runner, why) = match runner {
                Some(Ok(r)) => (Some(r), None),
                Some(Err(why)) => (None, Some(why)),
                None => (None, None),
            };
            let container_id = runner.as_ref().and_then(Runner::container_id).cloned();
            self.containers.push((
                id.clone(),
                Container {
                    task: task.clone(),
                    group: ids.clone(),
                    process: runner,
                    checks: TaskChecks::default(),
                    last_status: None,
                    acknowledged: false,
                    killing: false,
                    killing_group: false,
                    killed_by_completion: false,
                    max_completion_at: None,
                },
            ));
            let st = Self::status(s, task, container_id.as_ref(), TaskState::TaskStarting);
            self.forward(s, st);
            if let Some(why) = why {
                failed.push((id, why));
                continue;
            }
            if self.nested.is_some() {
                // TASK_RUNNING once the agent says it runs.
                continue;
            }
            match Self::start(s, task) {
                Ok((process, checks)) => {
                    if let Some(c) = self.get(&id) {
                        c.process = Some(process);
                        c.checks = checks;
                        c.max_completion_at = max_completion_at(task);
                    }
                    started.push(task);
                }
                Err(why) => failed.push((id, why)),
            }
        }
        for task in started {
            let st = Self::status(s, task, None, TaskState::TaskRunning);
            self.forward(s, st);
        }
        for (id, why) in failed {
            eprintln!("butte executor: task {id}: {why}");
            let end = Ending {
                state: TaskState::TaskFailed,
                reason: None,
                message: Some(why),
                limitation: None,
            };
            self.terminated(s, &id, end);
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
        let container_id = c.process.as_ref().and_then(Runner::container_id).cloned();
        if !by_completion && killing_state {
            let st = Self::status(s, &task, container_id.as_ref(), TaskState::TaskKilling);
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
    fn terminated(&mut self, s: &mut Session, task_id: &str, end: Ending) {
        let unhealthy = self.unhealthy;
        let Some(c) = self.get(task_id) else { return };
        c.checks.stop();
        let (task, group, killing_group) = (c.task.clone(), c.group.clone(), c.killing_group);
        let container_id = c.process.as_ref().and_then(Runner::container_id).cloned();
        let state = end.state;
        let mut st = Self::status(s, &task, container_id.as_ref(), state);
        st.reason = end.reason;
        st.message = end.message;
        st.limitation = end.limitation;
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
            Some(Ok(Type::Subscribed)) => {
                if let Some(sub) = &event.subscribed {
                    if sub.container_id.is_some() {
                        self.container_id = sub.container_id.clone();
                    }
                }
            }
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
        let end = Ending {
            state,
            reason: reason.map(|r| r as i32),
            message: Some(message),
            limitation: None,
        };
        self.terminated(s, task_id, end);
    }

    fn nested(&mut self, s: &mut Session, report: Report) {
        match report {
            Report::Launched { task_id, result } => self.launched(s, &task_id, result),
            Report::Waited { task_id, waited } => self.waited(s, &task_id, waited),
        }
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
                    c.process.as_ref().and_then(Runner::deadline),
                    c.max_completion_at.filter(|_| !c.killing),
                ]
            })
            .chain([self.leave_at])
            .flatten()
            .min()
    }

    fn connection_lost(&mut self, s: &mut Session) {
        if self.nested.is_some() {
            // Nothing can reach the containers without the agent: it
            // destroys them with the executor's container.
            eprintln!("butte executor: leaving the nested containers to the agent");
            self.exit = Some(1);
            return;
        }
        self.shutdown(s);
        if self.containers.is_empty() {
            self.exit = Some(1);
        }
    }

    fn unacknowledged_tasks(&self) -> Vec<TaskInfo> {
        self.containers
            .iter()
            .filter(|(_, c)| c.process.as_ref().is_some_and(Runner::launched) && !c.acknowledged)
            .map(|(_, c)| c.task.clone())
            .collect()
    }

    fn exit_code(&self) -> Option<i32> {
        self.exit
    }
}

/// When a task's `max_completion_time` runs out, if it has one.
fn max_completion_at(task: &TaskInfo) -> Option<Instant> {
    task.max_completion_time
        .as_ref()
        .filter(|d| d.nanoseconds > 0)
        .map(|d| Instant::now() + Duration::from_nanos(d.nanoseconds as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executors::nested::tests::{fake, Reply};

    #[test]
    fn tasks_link_to_their_nested_containers_sandbox() {
        let dir = tempfile::tempdir().unwrap();
        let link = link_task(dir.path(), "web", "c-1").unwrap();
        assert_eq!(link, dir.path().join("tasks/web"));
        assert_eq!(
            std::fs::read_link(&link).unwrap(),
            Path::new("../containers/c-1")
        );
        // The agent makes the sandbox; its stdout is then there.
        std::fs::create_dir_all(dir.path().join("containers/c-1")).unwrap();
        std::fs::write(dir.path().join("containers/c-1/stdout"), "hi\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("tasks/web/stdout")).unwrap(),
            "hi\n"
        );
        assert!(link_task(dir.path(), "web", "c-2").is_err());
        assert!(link_task(dir.path(), "../x", "c-3").is_err());
        // A link planted in place of `tasks/` is not followed.
        let other = tempfile::tempdir().unwrap();
        let planted = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(other.path(), planted.path().join("tasks")).unwrap();
        assert!(link_task(planted.path(), "web", "c-1").is_err());
        assert_eq!(std::fs::read_dir(other.path()).unwrap().count(), 0);
    }

    fn kill_signal(f: &crate::executors::nested::tests::Fake) -> i64 {
        let r = f.next();
        assert_eq!(r.body["type"], "KILL_CONTAINER");
        assert_eq!(r.body["kill_container"]["container_id"]["value"], "c-1");
        r.body["kill_container"]["signal"].as_i64().unwrap()
    }

    #[test]
    fn a_nested_task_is_terminated_then_killed_after_its_grace_period() {
        let f = fake(vec![
            Reply::Answer(200, String::new()),
            Reply::Answer(200, String::new()),
        ]);
        let id = ContainerId {
            value: "c-1".into(),
            parent: Some(Box::new(ContainerId {
                value: "exec".into(),
                parent: None,
            })),
        };
        let mut n = NestedRun::new(Agent::new(&f.addr, None), id, CommandInfo::default());
        let t0 = Instant::now();
        let s = Duration::from_secs;
        // Before the launch answered, the kill waits for it.
        n.kill(t0, s(60));
        assert_eq!((n.pending_grace, n.deadline()), (Some(s(60)), None));
        n.launched = true;
        let grace = n.pending_grace.take().unwrap();
        n.kill(t0, grace);
        assert_eq!(kill_signal(&f), 15);
        assert_eq!(n.deadline(), Some(t0 + s(60)));
        n.escalate(t0 + s(59));
        assert!(!n.sigkilled);
        // A later kill with a shorter grace period: SIGKILL now.
        n.kill(t0 + s(1), Duration::ZERO);
        assert_eq!(kill_signal(&f), 9);
        assert_eq!(n.deadline(), None);
        n.escalate(t0 + s(120));
        assert!(f.requests.recv_timeout(Duration::from_millis(300)).is_err());
    }
}
