//! The agent's side of the executor API calls: subscriptions (and
//! re-subscriptions after a disconnection or an agent restart), updates,
//! messages for the framework.

use super::core::{Agent, ApiCall};
use super::state::{ExecutorState, Queued};
use super::tasks::{launch_events, task_id};
use super::updates::now_secs;
use crate::api::executor::{CallError, EventStream, Principal};
use crate::containerizer::mesos::ExecutorKind;
use crate::proto::mesos::internal::{ExecutorToFrameworkMessage, StatusUpdate};
use crate::proto::mesos::task_status::Source;
use crate::proto::mesos::v1::executor::call::Subscribe;
use crate::proto::mesos::v1::executor::{event, Event};
use crate::proto::mesos::{ExecutorId, FrameworkId, SlaveId, TaskInfo, TaskState, TaskStatus};
use crate::proto::{devolve, evolve};
use std::sync::Arc;
use tokio::sync::mpsc;

impl Agent {
    pub fn handle_api(&mut self, call: ApiCall) {
        match call {
            ApiCall::Subscribe {
                principal,
                framework_id,
                executor_id,
                subscribe,
                reply,
            } => {
                let r = self.subscribe(
                    principal.as_ref(),
                    &framework_id.value,
                    &executor_id.value,
                    *subscribe,
                );
                let _ = reply.send(r);
            }
            ApiCall::Update {
                principal,
                framework_id,
                executor_id,
                status,
                reply,
            } => {
                let r = self
                    .authorize(principal.as_ref(), &framework_id.value, &executor_id.value)
                    .and_then(|()| {
                        self.executor_update(
                            &framework_id.value,
                            &executor_id.value,
                            devolve(status.as_ref()),
                        )
                    });
                let _ = reply.send(r);
            }
            ApiCall::Message {
                principal,
                framework_id,
                executor_id,
                data,
                reply,
            } => {
                let r = self
                    .authorize(principal.as_ref(), &framework_id.value, &executor_id.value)
                    .and_then(|()| {
                        self.executor_message(&framework_id.value, &executor_id.value, data)
                    });
                let _ = reply.send(r);
            }
            ApiCall::Heartbeat { reply, .. } => {
                let _ = reply.send(Ok(()));
            }
        }
    }

    /// Checks an authenticated caller's claims against the executor it
    /// calls for (Mesos: after the framework and executor are found, before
    /// anything else). Unknown frameworks and executors are left to the
    /// call's own 400.
    fn authorize(
        &self,
        principal: Option<&Principal>,
        fw_id: &str,
        ex_id: &str,
    ) -> Result<(), CallError> {
        match (principal, self.executor_of(fw_id, ex_id)) {
            (Some(p), Some(ex)) => p
                .authorize(fw_id, ex_id, &ex.container_id)
                .inspect_err(|e| {
                    tracing::warn!(framework = fw_id, executor = ex_id, "{e}");
                }),
            _ => Ok(()),
        }
    }

    fn subscribe(
        &mut self,
        principal: Option<&Principal>,
        fw_id: &str,
        ex_id: &str,
        sub: Subscribe,
    ) -> Result<EventStream, CallError> {
        self.authorize(principal, fw_id, ex_id)?;
        let agent_info = self.info.clone();
        let Some(fw) = self.frameworks.get_mut(fw_id) else {
            return Err(CallError::BadRequest(format!(
                "framework {fw_id} is not running on this agent"
            )));
        };
        let framework_info = fw.info.clone();
        let lost_state = fw.lost_state();
        let Some(ex) = fw.executors.get_mut(ex_id) else {
            return Err(CallError::BadRequest(format!(
                "executor {ex_id} of framework {fw_id} is not running on this agent"
            )));
        };
        if ex.state == ExecutorState::Terminated {
            return Err(CallError::Forbidden(format!(
                "executor {ex_id} has terminated"
            )));
        }
        tracing::info!(
            framework = fw_id,
            executor = ex_id,
            resubscribe = ex.events.is_some(),
            "executor subscribed"
        );
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = tx.send(Event {
            r#type: Some(event::Type::Subscribed as i32),
            subscribed: Some(event::Subscribed {
                executor_info: evolve(&*ex.info),
                framework_info: evolve(&framework_info),
                agent_info: evolve(&agent_info),
                container_id: Some(crate::proto::mesos::v1::ContainerId {
                    value: ex.container_id.clone(),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        });
        // Tasks the executor already has are not launched again.
        let known: Vec<String> = sub
            .unacknowledged_tasks
            .iter()
            .map(|t| t.task_id.value.clone())
            .collect();
        let unknown_staging = |id: &String, t: &Arc<crate::proto::mesos::Task>| {
            t.state() == TaskState::TaskStaging && !known.contains(id)
        };
        let mut stale: Vec<String> = ex
            .launched
            .iter()
            .filter(|(id, t)| unknown_staging(id, t))
            .map(|(id, _)| id.clone())
            .collect();
        let agent_id = self.id.clone();
        let mut launch = Vec::new();
        // LAUNCHes this process sent that never reached the executor: again.
        let mut sent = std::mem::take(&mut ex.sent);
        sent.retain(|q| {
            q.tasks.iter().any(|t| {
                ex.launched
                    .get(&task_id(t))
                    .is_some_and(|r| r.state() == TaskState::TaskStaging)
            })
        });
        for q in &sent {
            let again: Vec<TaskInfo> = q
                .tasks
                .iter()
                .filter(|t| {
                    let id = task_id(t);
                    ex.launched
                        .get(&id)
                        .is_some_and(|r| unknown_staging(&id, r))
                })
                .cloned()
                .collect();
            if again.is_empty() {
                continue;
            }
            tracing::info!(
                framework = fw_id,
                executor = ex_id,
                tasks = ?again.iter().map(task_id).collect::<Vec<_>>(),
                "launching again what the executor did not receive"
            );
            stale.retain(|id| !again.iter().any(|t| &task_id(t) == id));
            launch.extend(launch_events(ex.kind, &again, q.group));
        }
        for queued in std::mem::take(&mut ex.queued) {
            let (had, new): (Vec<_>, Vec<_>) = queued
                .tasks
                .into_iter()
                .partition(|t| known.contains(&task_id(t)));
            for t in had.iter().chain(new.iter()) {
                let record = super::tasks::make_task(t, fw_id, ex, agent_id.as_deref());
                ex.launched.insert(task_id(t), Arc::new(record));
            }
            if !new.is_empty() {
                launch.extend(launch_events(ex.kind, &new, queued.group));
                sent.push(Queued {
                    tasks: new,
                    group: queued.group,
                });
            }
        }
        ex.sent = sent;
        for event in launch {
            let _ = tx.send(event);
        }
        match ex.state {
            ExecutorState::Terminating => {
                let _ = tx.send(Event {
                    r#type: Some(event::Type::Shutdown as i32),
                    ..Default::default()
                });
            }
            _ => ex.state = ExecutorState::Running,
        }
        ex.generation += 1;
        ex.events = Some(tx);
        let container = ex.container_id.clone();
        self.checkpoint_http(fw_id, ex_id, &container);
        // Updates the executor sent while the agent was away (duplicates are
        // recognised by their uuid).
        for update in sub.unacknowledged_updates {
            let status: TaskStatus = devolve(&update.status);
            let task = status.task_id.value.clone();
            let uuid = status.uuid.clone().unwrap_or_default();
            let known = self
                .executor_of(fw_id, ex_id)
                .is_some_and(|e| e.has_task(&task));
            if !known {
                // Its terminal update was acknowledged and the task
                // forgotten: the executor may forget it too.
                self.acknowledge_executor(fw_id, ex_id, &task, uuid);
            } else if let Err(e) = self.executor_update(fw_id, ex_id, status) {
                tracing::warn!(
                    framework = fw_id,
                    executor = ex_id,
                    "unacknowledged update refused: {e}"
                );
            }
        }
        // STAGING tasks the executor does not know never reached it (the
        // agent stopped before it sent their LAUNCH): they are gone.
        for task in stale {
            let update = self.agent_update(
                fw_id,
                Some(ex_id),
                &task,
                lost_state,
                crate::proto::mesos::task_status::Reason::SlaveRestarted,
                "Task was not received by the executor before the agent restarted",
            );
            self.report(update);
        }
        // The built-in executors run the tasks they are given and nothing
        // else: one that knows no task while the agent has none live for it
        // (it never received its task or group, above, or a restart came
        // between that news and the shutdown) is shut down rather than left
        // idle and unowned. A custom executor may wait for tasks: it stays.
        let taskless = known.is_empty()
            && self.executor_of(fw_id, ex_id).is_some_and(|e| {
                matches!(e.kind, ExecutorKind::Command | ExecutorKind::Default)
                    && e.live_task_ids().is_empty()
            });
        if taskless {
            tracing::info!(
                framework = fw_id,
                executor = ex_id,
                "shutting down a built-in executor that has no task"
            );
            self.shutdown_executor(fw_id, ex_id, None);
        }
        self.drain_resubscribed(fw_id, ex_id);
        Ok(rx)
    }

    /// An UPDATE: becomes a StatusUpdate; a terminal one of a container
    /// that hit a limit reports the limit, as Mesos' containerizer does.
    fn executor_update(
        &mut self,
        fw_id: &str,
        ex_id: &str,
        mut status: TaskStatus,
    ) -> Result<(), CallError> {
        let Some(ex) = self.executor_of(fw_id, ex_id) else {
            return Err(CallError::BadRequest(format!(
                "executor {ex_id} of framework {fw_id} is not running on this agent"
            )));
        };
        if ex.events.is_none() {
            return Err(CallError::Forbidden(format!(
                "executor {ex_id} has not subscribed"
            )));
        }
        let task = status.task_id.value.clone();
        if !ex.has_task(&task) {
            return Err(CallError::BadRequest(format!(
                "task {task} is not a task of executor {ex_id}"
            )));
        }
        let Some(uuid) = status.uuid.clone() else {
            return Err(CallError::BadRequest("the status has no uuid".into()));
        };
        if matches!(
            status.state(),
            TaskState::TaskFailed | TaskState::TaskKilled
        ) {
            if let Some(limit) = self.containerizer.limitation(&ex.container_id) {
                status.state = TaskState::TaskFailed as i32;
                status.reason = Some(limit.reason as i32);
                status.source = Some(Source::Slave as i32);
                status.message = Some(limit.message);
            }
        }
        // As Mesos' agent: the container's id and networks (with their
        // addresses), in every update.
        let nested = status
            .container_status
            .as_ref()
            .and_then(|c| c.container_id.clone())
            .filter(|id| {
                let mut top = id;
                while let Some(p) = &top.parent {
                    top = p;
                }
                id.parent.is_some() && top.value == ex.container_id
            });
        let mut container_status = self
            .containerizer
            .container_status(&ex.container_id, self.self_pid.addr.ip());
        if nested.is_some() {
            container_status.container_id = nested;
        }
        status.container_status = Some(container_status);
        let agent = self.id.clone().map(|value| SlaveId { value });
        status.slave_id = agent.clone();
        status.executor_id = Some(ExecutorId {
            value: ex_id.to_string(),
        });
        let update = StatusUpdate {
            framework_id: FrameworkId {
                value: fw_id.to_string(),
            },
            executor_id: status.executor_id.clone(),
            slave_id: agent,
            status,
            timestamp: now_secs(),
            uuid: Some(uuid),
            latest_state: None,
        };
        let task = update.status.task_id.value.clone();
        let uuid = update.uuid.clone().unwrap_or_default();
        self.status_update(update, Some(ex_id))
            .map_err(CallError::BadRequest)?;
        // The update is the agent's now (on disk for checkpointing
        // frameworks): the executor may forget it, as with Mesos.
        self.acknowledge_executor(fw_id, ex_id, &task, uuid);
        Ok(()).map_err(CallError::BadRequest)
    }

    fn executor_message(
        &mut self,
        fw_id: &str,
        ex_id: &str,
        data: Vec<u8>,
    ) -> Result<(), CallError> {
        let Some(fw) = self.frameworks.get(fw_id) else {
            return Err(CallError::BadRequest(format!(
                "framework {fw_id} is not running on this agent"
            )));
        };
        let Some(ex) = fw.executors.get(ex_id) else {
            return Err(CallError::BadRequest(format!(
                "executor {ex_id} of framework {fw_id} is not running on this agent"
            )));
        };
        if ex.events.is_none() {
            return Err(CallError::Forbidden(format!(
                "executor {ex_id} has not subscribed"
            )));
        }
        let msg = ExecutorToFrameworkMessage {
            slave_id: SlaveId {
                value: self.agent_id(),
            },
            framework_id: FrameworkId {
                value: fw_id.to_string(),
            },
            executor_id: ExecutorId {
                value: ex_id.to_string(),
            },
            data,
        };
        match &fw.pid {
            Some(pid) => self.send_to(pid, &msg),
            None => self.send_master(&msg),
        }
        Ok(())
    }

    /// Sends ACKNOWLEDGED for one update to a subscribed executor.
    pub fn acknowledge_executor(&self, fw_id: &str, ex_id: &str, task: &str, uuid: Vec<u8>) {
        let Some(events) = self
            .executor_of(fw_id, ex_id)
            .and_then(|e| e.events.as_ref())
        else {
            return;
        };
        let _ = events.send(Event {
            r#type: Some(event::Type::Acknowledged as i32),
            acknowledged: Some(event::Acknowledged {
                task_id: crate::proto::mesos::v1::TaskId {
                    value: task.to_string(),
                },
                uuid,
            }),
            ..Default::default()
        });
    }

    /// Notices executors whose event stream was closed by the client.
    pub fn check_subscriptions(&mut self) {
        for fw in self.frameworks.values_mut() {
            for ex in fw.executors.values_mut() {
                if ex.events.as_ref().is_some_and(|e| e.is_closed()) {
                    tracing::warn!(
                        framework = fw.id,
                        executor = ex.id,
                        "executor disconnected; waiting for it to re-subscribe or exit"
                    );
                    ex.events = None;
                }
            }
        }
    }
}
