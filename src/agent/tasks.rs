//! Tasks and executors: launching, killing, shutting down, and what
//! happens when an executor's container ends.

use super::core::{Agent, Input, Timer};
use super::state::{Executor, ExecutorState, Framework, Queued};
use crate::containerizer::mesos::{
    command_executor_info, ExecutorEnv, ExecutorKind, LaunchRequest, Termination,
};
use crate::proto::mesos::internal::{
    ExitedExecutorMessage, KillTaskMessage, RunTaskGroupMessage, RunTaskMessage,
    StatusUpdateAcknowledgementMessage, UnregisterSlaveMessage,
};
use crate::proto::mesos::task_status::Reason;
use crate::proto::mesos::v1::executor::{event, Event};
use crate::proto::mesos::{
    executor_info, ExecutorInfo, FrameworkId, FrameworkInfo, SlaveId, Task, TaskInfo, TaskState,
};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

impl Agent {
    /// What the agent tells the executors it starts.
    pub(super) fn executor_env(&self, checkpoint: bool) -> ExecutorEnv {
        ExecutorEnv {
            agent_endpoint: self.self_pid.addr,
            agent_pid: self.self_pid.to_string(),
            checkpoint,
            recovery_timeout: self.config.recovery_timeout,
            subscription_backoff_max: super::config::SUBSCRIPTION_BACKOFF_MAX,
            shutdown_grace_period: self.config.executor_shutdown_grace_period,
        }
    }
}

impl Agent {
    pub fn run_task(&mut self, msg: RunTaskMessage) {
        let framework = msg.framework;
        let task = msg.task;
        let fw_id = framework
            .id
            .clone()
            .or(msg.framework_id)
            .map(|f| f.value)
            .unwrap_or_default();
        let (executor, kind) = match &task.executor {
            Some(e) => (e.clone(), kind_of(e)),
            None => (
                command_executor_info(&fw_id, &task, &self.config.runtime.helper),
                ExecutorKind::Command,
            ),
        };
        self.launch(
            fw_id,
            framework,
            msg.pid,
            executor,
            kind,
            Queued {
                tasks: vec![task],
                group: false,
            },
            msg.launch_executor,
        );
    }

    pub fn run_task_group(&mut self, msg: RunTaskGroupMessage) {
        let (framework, executor, group) = (msg.framework, msg.executor, msg.task_group);
        let fw_id = framework
            .id
            .as_ref()
            .map(|f| f.value.clone())
            .unwrap_or_default();
        let kind = kind_of(&executor);
        self.launch(
            fw_id,
            framework,
            None,
            executor,
            kind,
            Queued {
                tasks: group.tasks,
                group: true,
            },
            msg.launch_executor,
        );
    }

    /// Launches `tasks` on their executor, starting the executor when it
    /// is not running.
    #[allow(clippy::too_many_arguments)]
    fn launch(
        &mut self,
        fw_id: String,
        framework: FrameworkInfo,
        pid: Option<String>,
        executor: ExecutorInfo,
        kind: ExecutorKind,
        queued: Queued,
        launch_executor: Option<bool>,
    ) {
        let tasks = &queued.tasks;
        let ex_id = executor.executor_id.value.clone();
        let ids: Vec<String> = tasks.iter().map(task_id).collect();
        // One line per task, as Mesos logs it (and each with its id as a
        // journal field of its own).
        for task in &ids {
            tracing::info!(framework = fw_id, executor = ex_id, task, "launching task");
        }
        if fw_id.is_empty() && !self.shutting_down {
            tracing::warn!("dropping a launch without a framework id");
            return;
        }
        if let Some((message, reason)) = self.launch_refusal(&fw_id, &ex_id, &ids) {
            return self.drop_tasks(&fw_id, &ex_id, &framework, tasks, &message, reason);
        }
        let fw = self
            .frameworks
            .entry(fw_id.clone())
            .or_insert_with(|| Framework {
                id: fw_id.clone(),
                info: framework.clone(),
                pid: None,
                executors: BTreeMap::new(),
                terminating: false,
            });
        fw.info = framework.clone();
        if let Some(p) = pid.as_deref().filter(|p| !p.is_empty()) {
            fw.pid = p.parse().ok();
        }
        if let Err(e) = self.checkpoint_framework(&fw_id) {
            tracing::error!(framework = fw_id, "checkpoint: {e}");
        }
        let fw = self.frameworks.get_mut(&fw_id).expect("inserted above");
        if let Some(ex) = fw.executors.get_mut(&ex_id) {
            match ex.state {
                ExecutorState::Running => {
                    let events = ex.events.clone();
                    let new: Vec<Task> = tasks
                        .iter()
                        .map(|t| make_task(t, &fw_id, ex, self.id.as_deref()))
                        .collect();
                    for t in new {
                        ex.launched.insert(task_id_of(&t), Arc::new(t));
                    }
                    // The container grows to hold them, before they start.
                    let held: Vec<_> = ex
                        .info
                        .resources
                        .iter()
                        .chain(
                            ex.launched
                                .values()
                                .filter(|t| !super::status::is_terminal(t.state))
                                .flat_map(|t| &t.resources),
                        )
                        .cloned()
                        .collect();
                    if let Err(e) = self.containerizer.update(&ex.container_id, &held) {
                        tracing::warn!(
                            framework = fw_id,
                            executor = ex_id,
                            "limits not raised for the new tasks: {e}"
                        );
                    }
                    // Checkpointed before the executor hears of it, as in
                    // Mesos: an agent killed in between must still know
                    // the task whose updates the executor will send.
                    let container = ex.container_id.clone();
                    for t in tasks {
                        self.checkpoint_task(&fw_id, &ex_id, &container, t);
                    }
                    if let Some(events) = events {
                        for event in launch_events(kind, tasks, queued.group) {
                            let _ = events.send(event);
                        }
                    }
                }
                ExecutorState::Launching | ExecutorState::Registering => {
                    ex.queued.push(queued.clone());
                    let container = ex.container_id.clone();
                    for t in tasks {
                        self.checkpoint_task(&fw_id, &ex_id, &container, t);
                    }
                }
                ExecutorState::Terminating | ExecutorState::Terminated => {
                    let message = format!("executor {ex_id} is terminating");
                    self.drop_tasks(
                        &fw_id,
                        &ex_id,
                        &framework,
                        tasks,
                        &message,
                        Reason::ExecutorTerminated,
                    );
                }
            }
            return;
        }
        if launch_executor == Some(false) {
            let message =
                format!("executor {ex_id} is not running and the master asked not to launch it");
            return self.drop_tasks(
                &fw_id,
                &ex_id,
                &framework,
                tasks,
                &message,
                Reason::ExecutorTerminated,
            );
        }
        self.start_executor(fw_id, executor, kind, queued);
    }

    /// Why tasks may not be launched now, if they may not.
    fn launch_refusal(&self, fw_id: &str, ex_id: &str, ids: &[String]) -> Option<(String, Reason)> {
        if self.shutting_down {
            return Some(("the agent is shutting down".into(), Reason::SlaveRestarted));
        }
        if self.drain.is_some() {
            return Some(("the agent is draining".into(), Reason::SlaveDraining));
        }
        // Ids name directories (sandboxes, checkpoints): the master refuses
        // ids with '/' and the like, and so does the agent.
        let mut named: Vec<(&'static str, &str)> = vec![("framework", fw_id), ("executor", ex_id)];
        named.extend(ids.iter().map(|t| ("task", t.as_str())));
        if let Err(e) = crate::state::meta::valid_ids(&named) {
            return Some((format!("cannot launch: {e}"), Reason::TaskInvalid));
        }
        let fw = self.frameworks.get(fw_id)?;
        if fw.terminating {
            return Some((
                format!("framework {fw_id} is shutting down"),
                Reason::FrameworkRemoved,
            ));
        }
        // A task id already in use on this agent is refused, never run twice.
        let dup = ids.iter().find(|t| fw.executor_of(t).is_some())?;
        Some((
            format!("task {dup} is already known to this agent"),
            Reason::TaskInvalid,
        ))
    }

    /// Answers tasks that cannot run with the update Mesos sends: TASK_DROPPED
    /// to partition-aware frameworks, TASK_LOST to the others.
    fn drop_tasks(
        &mut self,
        fw_id: &str,
        ex_id: &str,
        framework: &FrameworkInfo,
        tasks: &[TaskInfo],
        message: &str,
        reason: Reason,
    ) {
        let state = super::state::lost_state(framework);
        for t in tasks {
            tracing::warn!(framework = fw_id, task = task_id(t), "{message}");
            let update = self.agent_update(fw_id, Some(ex_id), &task_id(t), state, reason, message);
            self.report(update);
        }
    }

    fn start_executor(
        &mut self,
        fw_id: String,
        info: ExecutorInfo,
        kind: ExecutorKind,
        queued: Queued,
    ) {
        let tasks = &queued.tasks;
        let container_id = match crate::support::random_uuid() {
            Ok(id) => id,
            Err(e) => {
                tracing::error!("generate a container id: {e}");
                return;
            }
        };
        let ex_id = info.executor_id.value.clone();
        let agent_id = self.agent_id();
        let fw = self.frameworks.get_mut(&fw_id).expect("framework exists");
        let checkpoint = fw.checkpoint();
        let framework = fw.info.clone();
        fw.executors.insert(
            ex_id.clone(),
            Executor {
                id: ex_id.clone(),
                framework_id: fw_id.clone(),
                info: Arc::new(info.clone()),
                kind,
                container_id: container_id.clone(),
                state: ExecutorState::Launching,
                queued: vec![queued.clone()],
                sent: Vec::new(),
                launched: BTreeMap::new(),
                terminated: BTreeMap::new(),
                killing: Vec::new(),
                events: None,
                termination_reason: None,
                generation: 0,
            },
        );
        self.checkpoint_executor(&fw_id, &ex_id);
        for t in tasks {
            self.checkpoint_task(&fw_id, &ex_id, &container_id, t);
        }
        let request = LaunchRequest {
            container_id: container_id.clone(),
            agent_id,
            framework,
            executor: info,
            kind,
            tasks: tasks.clone(),
            env: self.executor_env(checkpoint),
            standalone: false,
            nested: None,
        };
        let containerizer = self.containerizer.clone();
        let tx = self.inputs.clone();
        tokio::task::spawn_blocking(move || {
            let launched = containerizer.launch(request);
            let timings = launched.as_ref().ok().map(|l| l.timings);
            let result = launched.map(|l| l.pid).map_err(|e| e.to_string());
            let _ = tx.send(Input::Launched {
                framework_id: fw_id,
                executor_id: ex_id,
                container_id,
                result,
                timings,
            });
        });
    }

    pub fn launched(
        &mut self,
        fw_id: &str,
        ex_id: &str,
        container_id: &str,
        result: Result<i32, String>,
    ) {
        let timeout = self.config.executor_registration_timeout;
        self.operator.launch(container_id, &result);
        let Some(ex) = self.executor_mut(fw_id, ex_id, container_id) else {
            return;
        };
        match result {
            Err(message) => {
                tracing::error!(
                    framework = fw_id,
                    executor = ex_id,
                    "launch failed: {message}"
                );
                ex.termination_reason = Some(Reason::ContainerLaunchFailed as i32);
                let termination = Termination {
                    status: None,
                    limitation: None,
                    message: format!("Failed to launch container: {message}"),
                };
                self.terminated(fw_id, ex_id, container_id, termination);
            }
            Ok(pid) => {
                tracing::info!(framework = fw_id, executor = ex_id, pid, "executor started");
                let terminating = ex.state == ExecutorState::Terminating;
                if ex.state == ExecutorState::Launching {
                    ex.state = ExecutorState::Registering;
                }
                ex.generation += 1;
                let generation = ex.generation;
                let container = container_id.to_string();
                crate::support::crash::point("forked");
                self.checkpoint_run(fw_id, ex_id, &container, pid);
                self.after(
                    timeout,
                    Timer::ExecutorRegistration {
                        framework_id: fw_id.to_string(),
                        executor_id: ex_id.to_string(),
                        generation,
                    },
                );
                if terminating {
                    // Shut down while it was starting: it gets the grace
                    // period from now, like any other.
                    let grace = self.config.executor_shutdown_grace_period;
                    self.after(
                        grace,
                        Timer::ExecutorShutdown {
                            framework_id: fw_id.to_string(),
                            executor_id: ex_id.to_string(),
                            generation,
                        },
                    );
                }
                self.watch(fw_id, ex_id, &container);
            }
        }
    }

    /// Waits for the container's end in the background.
    pub fn watch(&self, fw_id: &str, ex_id: &str, container_id: &str) {
        let containerizer = self.containerizer.clone();
        let tx = self.inputs.clone();
        let (framework_id, executor_id, container_id) = (
            fw_id.to_string(),
            ex_id.to_string(),
            container_id.to_string(),
        );
        tokio::spawn(async move {
            let termination = match containerizer.wait(&container_id).await {
                Ok(t) => t,
                Err(e) => Termination {
                    status: None,
                    limitation: None,
                    message: format!("Failed to wait for the container: {e}"),
                },
            };
            let _ = tx.send(Input::Terminated {
                framework_id,
                executor_id,
                container_id,
                termination,
            });
        });
    }

    pub fn executor_mut(
        &mut self,
        fw_id: &str,
        ex_id: &str,
        container_id: &str,
    ) -> Option<&mut Executor> {
        self.frameworks
            .get_mut(fw_id)?
            .executors
            .get_mut(ex_id)
            .filter(|e| e.container_id == container_id)
    }

    pub fn executor_registration_timeout(&mut self, fw_id: &str, ex_id: &str, generation: u64) {
        let timeout = self.config.executor_registration_timeout;
        let Some(ex) = self.executor_mut_of(fw_id, ex_id) else {
            return;
        };
        if ex.generation != generation || ex.state != ExecutorState::Registering {
            return;
        }
        tracing::warn!(
            framework = fw_id,
            executor = ex_id,
            ?timeout,
            "executor did not subscribe in time"
        );
        ex.termination_reason = Some(Reason::ExecutorRegistrationTimeout as i32);
        ex.state = ExecutorState::Terminating;
        self.destroy(fw_id, ex_id);
    }

    /// Kills the executor's container; its end arrives as `Terminated`.
    pub fn destroy(&self, fw_id: &str, ex_id: &str) {
        let Some(ex) = self.executor_of(fw_id, ex_id) else {
            return;
        };
        let containerizer = self.containerizer.clone();
        let container = ex.container_id.clone();
        let destroying = self.destroying.clone();
        destroying.fetch_add(1, Ordering::SeqCst);
        tokio::task::spawn_blocking(move || {
            if let Err(e) = containerizer.destroy(&container) {
                tracing::error!(container, "destroy: {e}");
            }
            destroying.fetch_sub(1, Ordering::SeqCst);
        });
    }

    /// The container ended: every task not yet terminal gets the update
    /// Mesos sends, and the executor is forgotten once nothing is left to
    /// acknowledge.
    pub fn terminated(
        &mut self,
        fw_id: &str,
        ex_id: &str,
        container_id: &str,
        termination: Termination,
    ) {
        let agent_id = self.agent_id();
        let Some(ex) = self.executor_mut(fw_id, ex_id, container_id) else {
            return;
        };
        if ex.state == ExecutorState::Terminated {
            return;
        }
        tracing::info!(framework = fw_id, executor = ex_id, status = ?termination.status, "executor terminated: {}", termination.message);
        ex.state = ExecutorState::Terminated;
        ex.events = None;
        let kind = ex.kind;
        let live = ex.live_task_ids();
        let killing = ex.killing.clone();
        let (reason, message) = match (&termination.limitation, ex.termination_reason) {
            (Some(l), _) => (l.reason as i32, l.message.clone()),
            (None, Some(r)) => (r, termination.message.clone()),
            (None, None) => (
                Reason::ExecutorTerminated as i32,
                if termination.message.is_empty() {
                    "Executor terminated".to_string()
                } else {
                    termination.message.clone()
                },
            ),
        };
        let reason = Reason::try_from(reason).unwrap_or(Reason::ExecutorTerminated);
        for task in live {
            let state = if killing.contains(&task) && termination.limitation.is_none() {
                TaskState::TaskKilled
            } else {
                TaskState::TaskFailed
            };
            let update = self.agent_update(fw_id, Some(ex_id), &task, state, reason, &message);
            self.report(update);
        }
        if kind != ExecutorKind::Command && !agent_id.is_empty() {
            self.send_master(&ExitedExecutorMessage {
                slave_id: SlaveId { value: agent_id },
                framework_id: FrameworkId {
                    value: fw_id.to_string(),
                },
                executor_id: crate::proto::mesos::ExecutorId {
                    value: ex_id.to_string(),
                },
                status: termination.status.map(|s| s.code()).unwrap_or(-1),
            });
        }
        // Clean up mounts, cgroups and leases even when the init exited on
        // its own.
        self.destroy(fw_id, ex_id);
        self.forget_if_idle(fw_id, ex_id);
    }

    /// Removes an executor that has ended and has nothing left to report,
    /// and a framework left without executors.
    pub fn forget_if_idle(&mut self, fw_id: &str, ex_id: &str) {
        let done = self
            .executor_of(fw_id, ex_id)
            .filter(|e| e.state == ExecutorState::Terminated)
            .filter(|e| e.idle() || self.frameworks.get(fw_id).is_some_and(|f| f.terminating))
            .map(|e| e.container_id.clone());
        if let Some(container) = &done {
            // Every update of the run is acknowledged: recovery may skip it.
            self.mark_run_completed(fw_id, ex_id, container);
            self.retire_executor(fw_id, ex_id);
        }
        let Some(fw) = self.frameworks.get_mut(fw_id) else {
            return;
        };
        if done.is_some() {
            fw.executors.remove(ex_id);
        }
        let fw_done = fw.executors.is_empty();
        if fw_done {
            if let Some(fw) = self.frameworks.remove(fw_id) {
                self.operator.framework_completed(fw_id, &fw.info);
            }
            self.updates.cleanup_framework(fw_id);
        }
        if let Some(container) = &done {
            self.gc_executor(fw_id, ex_id, container);
        }
        if fw_done {
            self.gc_framework(fw_id);
            self.check_drained();
        }
        if self.shutting_down
            && self.frameworks.values().all(|f| {
                f.executors
                    .values()
                    .all(|e| e.state == ExecutorState::Terminated)
            })
        {
            self.finish_shutdown();
        }
    }

    pub fn kill_task(&mut self, msg: KillTaskMessage) {
        let fw_id = msg.framework_id.value;
        let task = msg.task_id.value;
        let Some(fw) = self.frameworks.get_mut(&fw_id) else {
            tracing::warn!(
                framework = fw_id,
                task,
                "cannot kill a task of a framework that is not running here"
            );
            return;
        };
        let lost = fw.lost_state();
        let Some(ex) = fw.executors.values_mut().find(|e| e.has_task(&task)) else {
            // Never launched here: the master learns it is gone.
            let update = self.agent_update(
                &fw_id,
                None,
                &task,
                lost,
                Reason::TaskUnknown,
                "Cannot find the task on this agent",
            );
            self.report(update);
            return;
        };
        let ex_id = ex.id.clone();
        if !ex.killing.contains(&task) {
            ex.killing.push(task.clone());
        }
        if ex.queued_task(&task).is_some() {
            // Not yet given to the executor: it never starts, and neither
            // does the rest of its group. Each update moves its task from
            // the queue to the terminated ones (and into the log).
            let group: Vec<String> = ex
                .queued
                .iter()
                .find(|g| g.iter().any(|t| task_id(t) == task))
                .map(|g| g.iter().map(task_id).collect())
                .unwrap_or_default();
            for id in group {
                let update = self.agent_update(
                    &fw_id,
                    Some(&ex_id),
                    &id,
                    TaskState::TaskKilled,
                    Reason::TaskKilledDuringLaunch,
                    "Task killed before it was launched",
                );
                self.report(update);
            }
            let nothing_left = self
                .executor_of(&fw_id, &ex_id)
                .is_some_and(|e| e.queued.is_empty() && e.launched.is_empty());
            if nothing_left {
                self.shutdown_executor(&fw_id, &ex_id, None);
            }
            return;
        }
        if ex.launched.contains_key(&task) {
            match &ex.events {
                Some(events) => {
                    let _ = events.send(Event {
                        r#type: Some(event::Type::Kill as i32),
                        kill: Some(event::Kill {
                            task_id: crate::proto::mesos::v1::TaskId {
                                value: task.clone(),
                            },
                            kill_policy: msg.kill_policy.map(|k| crate::proto::evolve(&k)),
                        }),
                        ..Default::default()
                    });
                }
                None => {
                    // Not connected (recovering): end the executor.
                    self.shutdown_executor(&fw_id, &ex_id, None);
                }
            }
        }
    }

    pub fn shutdown_framework(&mut self, fw_id: &str) {
        let Some(fw) = self.frameworks.get(fw_id) else {
            return;
        };
        tracing::info!(framework = fw_id, "shutting down the framework");
        let ids: Vec<String> = fw.executors.keys().cloned().collect();
        if let Some(fw) = self.frameworks.get_mut(fw_id) {
            fw.terminating = true;
        }
        // The master has forgotten the framework: nothing of it is sent.
        self.updates.cleanup_framework(fw_id);
        for ex in &ids {
            self.shutdown_executor(fw_id, ex, Some(Reason::FrameworkRemoved));
        }
        for ex in &ids {
            self.forget_if_idle(fw_id, ex);
        }
    }

    /// Asks an executor to stop (SHUTDOWN event) and kills its container
    /// after the shutdown grace period.
    pub fn shutdown_executor(&mut self, fw_id: &str, ex_id: &str, reason: Option<Reason>) {
        let grace = self.config.executor_shutdown_grace_period;
        let Some(ex) = self.executor_mut_of(fw_id, ex_id) else {
            return;
        };
        if matches!(
            ex.state,
            ExecutorState::Terminating | ExecutorState::Terminated
        ) {
            return;
        }
        let live = ex.live_task_ids();
        ex.killing.extend(live);
        if let Some(r) = reason {
            ex.termination_reason = Some(r as i32);
        }
        let was_launching = ex.state == ExecutorState::Launching;
        ex.state = ExecutorState::Terminating;
        ex.generation += 1;
        let generation = ex.generation;
        if let Some(events) = ex.events.take() {
            let _ = events.send(Event {
                r#type: Some(event::Type::Shutdown as i32),
                ..Default::default()
            });
            // Keep the stream open: the executor still reports its tasks.
            ex.events = Some(events);
        }
        if was_launching {
            // The launch result decides; nothing to signal yet.
            return;
        }
        self.after(
            if self.frameworks[fw_id].executors[ex_id].events.is_some() {
                grace
            } else {
                std::time::Duration::ZERO
            },
            Timer::ExecutorShutdown {
                framework_id: fw_id.to_string(),
                executor_id: ex_id.to_string(),
                generation,
            },
        );
    }

    pub fn executor_shutdown_timeout(&mut self, fw_id: &str, ex_id: &str, generation: u64) {
        let Some(ex) = self.executor_of(fw_id, ex_id) else {
            return;
        };
        if ex.generation != generation || ex.state != ExecutorState::Terminating {
            return;
        }
        self.destroy(fw_id, ex_id);
    }

    pub fn acknowledged(&mut self, msg: StatusUpdateAcknowledgementMessage) {
        let fw_id = msg.framework_id.value;
        let task = msg.task_id.value;
        let now = std::time::Instant::now();
        let ack = match self.updates.acknowledge(&fw_id, &task, &msg.uuid, now) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(framework = fw_id, task, "ignoring acknowledgement: {e}");
                return;
            }
        };
        if let Some(next) = ack.next.clone() {
            self.forward(next);
        }
        let Some(fw) = self.frameworks.get_mut(&fw_id) else {
            return;
        };
        let Some(ex) = fw.executors.values_mut().find(|e| e.has_task(&task)) else {
            return;
        };
        // (The executor had its ACKNOWLEDGED when the agent took the update.)
        let ex_id = ex.id.clone();
        if ack.terminal {
            if let Some(t) = ex.terminated.remove(&task) {
                self.operator.task_completed(&fw_id, &ex_id, t);
            }
            self.forget_if_idle(&fw_id, &ex_id);
        }
    }

    pub fn framework_message(
        &mut self,
        msg: crate::proto::mesos::internal::FrameworkToExecutorMessage,
    ) {
        let fw_id = msg.framework_id.value;
        let ex_id = msg.executor_id.value;
        let Some(ex) = self.executor_of(&fw_id, &ex_id) else {
            tracing::warn!(
                framework = fw_id,
                executor = ex_id,
                "dropping a message for an unknown executor"
            );
            self.operator.framework_message(false);
            return;
        };
        let subscribed = ex.events.is_some();
        match &ex.events {
            Some(events) => {
                let _ = events.send(Event {
                    r#type: Some(event::Type::Message as i32),
                    message: Some(event::Message { data: msg.data }),
                    ..Default::default()
                });
            }
            None => tracing::warn!(
                framework = fw_id,
                executor = ex_id,
                "dropping a message for an executor that is not subscribed"
            ),
        }
        self.operator.framework_message(subscribed);
    }

    /// A full shutdown: every executor is asked to stop, then the agent
    /// unregisters and exits.
    pub fn shutdown(&mut self, why: &str) {
        if self.shutting_down {
            return;
        }
        tracing::info!("shutting down: {why}");
        self.shutting_down = true;
        let all: Vec<(String, String)> = self
            .frameworks
            .iter()
            .flat_map(|(f, fw)| fw.executors.keys().map(move |e| (f.clone(), e.clone())))
            .collect();
        for (f, e) in &all {
            self.shutdown_executor(f, e, Some(Reason::ExecutorTerminated));
        }
        let deadline =
            self.config.executor_shutdown_grace_period + std::time::Duration::from_secs(5);
        self.after(deadline, Timer::ShutdownDeadline);
        if all.is_empty()
            || self.frameworks.values().all(|f| {
                f.executors
                    .values()
                    .all(|e| e.state == ExecutorState::Terminated)
            })
        {
            self.finish_shutdown();
        }
    }

    pub fn finish_shutdown(&mut self) {
        if !self.shutting_down || self.exit {
            return;
        }
        // Anything still alive at the deadline is killed synchronously.
        for fw in self.frameworks.values() {
            for ex in fw.executors.values() {
                if ex.state != ExecutorState::Terminated {
                    if let Err(e) = self.containerizer.destroy(&ex.container_id) {
                        tracing::error!(container = ex.container_id, "destroy: {e}");
                    }
                }
            }
        }
        if let Some(id) = &self.id {
            self.send_master(&UnregisterSlaveMessage {
                slave_id: SlaveId { value: id.clone() },
            });
        }
        self.exit = true;
    }

    /// The Task record of a task given to an executor.
    pub fn new_task(&self, t: &TaskInfo, fw_id: &str, ex: &Executor) -> Task {
        make_task(t, fw_id, ex, self.id.as_deref())
    }
}

/// The kind of executor an ExecutorInfo asks for.
fn kind_of(e: &ExecutorInfo) -> ExecutorKind {
    match e.r#type() {
        executor_info::Type::Default => ExecutorKind::Default,
        _ => ExecutorKind::Custom,
    }
}

pub fn task_id(t: &TaskInfo) -> String {
    t.task_id.value.clone()
}

fn task_id_of(t: &Task) -> String {
    t.task_id.value.clone()
}

/// Mesos' `createTask`: the Task record the master keeps for a TaskInfo.
pub(super) fn make_task(t: &TaskInfo, fw_id: &str, ex: &Executor, agent_id: Option<&str>) -> Task {
    Task {
        name: t.name.clone(),
        task_id: t.task_id.clone(),
        framework_id: FrameworkId {
            value: fw_id.to_string(),
        },
        executor_id: (ex.kind != ExecutorKind::Command).then(|| ex.info.executor_id.clone()),
        slave_id: SlaveId {
            value: agent_id.unwrap_or_default().to_string(),
        },
        state: TaskState::TaskStaging as i32,
        resources: t.resources.clone(),
        labels: t.labels.clone(),
        discovery: t.discovery.clone(),
        container: t.container.clone(),
        health_check: t.health_check.clone(),
        kill_policy: t.kill_policy,
        user: t.command.as_ref().and_then(|c| c.user.clone()),
        ..Default::default()
    }
}

/// The events that give `tasks` to an executor: one LAUNCH_GROUP for
/// the default executor and for a task group (a custom executor gets one
/// too, as from Mesos' agent), a LAUNCH per task otherwise.
pub fn launch_events(kind: ExecutorKind, tasks: &[TaskInfo], group: bool) -> Vec<Event> {
    if kind == ExecutorKind::Default || group {
        let group = crate::proto::mesos::TaskGroupInfo {
            tasks: tasks.to_vec(),
        };
        return vec![Event {
            r#type: Some(event::Type::LaunchGroup as i32),
            launch_group: Some(event::LaunchGroup {
                task_group: crate::proto::evolve(&group),
            }),
            ..Default::default()
        }];
    }
    tasks
        .iter()
        .map(|t| Event {
            r#type: Some(event::Type::Launch as i32),
            launch: Some(event::Launch {
                task: crate::proto::evolve(t),
            }),
            ..Default::default()
        })
        .collect()
}
