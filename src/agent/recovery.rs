//! Checkpointing (for frameworks that ask for it) and recovery after a
//! restart: the agent id, frameworks, executors, tasks and their pending
//! status updates come back from `meta/`; executors that still run are
//! adopted and given time to re-subscribe.

use super::config::RecoverMode;
use super::core::{Agent, Timer};
use super::state::{Executor, ExecutorState, Framework};
use super::status::is_terminal;
use super::AgentError;
use crate::containerizer::mesos::{ExecutorKind, Termination};
use crate::proto::mesos::{executor_info, ExecutorInfo, SlaveId, TaskInfo};
use crate::state::meta;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

impl Agent {
    pub fn checkpoint_agent(&self) -> Result<(), crate::state::StateError> {
        let Some(id) = &self.id else {
            return Ok(());
        };
        // On disk as Mesos' agent checkpoints it (`downgradeResources`).
        let mut info = self.info.clone();
        info.resources
            .iter_mut()
            .for_each(super::resources::downgrade);
        meta::checkpoint_agent_info(&self.work, id, &info)?;
        meta::set_latest_agent(&self.work, id)?;
        meta::checkpoint_boot_id(&self.work)
    }

    /// The ids that name a framework's checkpoint directory, when it
    /// checkpoints.
    fn checkpointing(&self, fw_id: &str) -> Option<(&str, &Framework)> {
        let id = self.id.as_deref()?;
        let fw = self.frameworks.get(fw_id)?;
        fw.checkpoint().then_some((id, fw))
    }

    pub fn checkpoint_framework(&self, fw_id: &str) -> Result<(), crate::state::StateError> {
        let Some((agent, fw)) = self.checkpointing(fw_id) else {
            return Ok(());
        };
        let pid = fw.pid.as_ref().map(|p| p.to_string());
        meta::checkpoint_framework(&self.work, agent, fw_id, &fw.info, pid.as_deref())
    }

    pub fn checkpoint_executor(&self, fw_id: &str, ex_id: &str) {
        let Some((agent, fw)) = self.checkpointing(fw_id) else {
            return;
        };
        let Some(ex) = fw.executors.get(ex_id) else {
            return;
        };
        let result =
            meta::checkpoint_executor(&self.work, agent, fw_id, ex_id, &ex.info).and_then(|()| {
                meta::checkpoint_run(
                    &self.work,
                    agent,
                    fw_id,
                    ex_id,
                    &ex.container_id,
                    None,
                    false,
                )
            });
        if let Err(e) = result {
            tracing::error!(framework = fw_id, executor = ex_id, "checkpoint: {e}");
        }
    }

    pub fn checkpoint_task(&self, fw_id: &str, ex_id: &str, container: &str, task: &TaskInfo) {
        let Some((agent, fw)) = self.checkpointing(fw_id) else {
            return;
        };
        let Some(ex) = fw.executors.get(ex_id) else {
            return;
        };
        let record = super::tasks::make_task(task, fw_id, ex, Some(agent));
        if let Err(e) = meta::checkpoint_task(&self.work, agent, fw_id, ex_id, container, &record) {
            tracing::error!(framework = fw_id, executor = ex_id, "checkpoint: {e}");
        }
    }

    pub fn checkpoint_run(&self, fw_id: &str, ex_id: &str, container: &str, pid: i32) {
        let Some((agent, _)) = self.checkpointing(fw_id) else {
            return;
        };
        if let Err(e) =
            meta::checkpoint_run(&self.work, agent, fw_id, ex_id, container, Some(pid), false)
        {
            tracing::error!(framework = fw_id, executor = ex_id, "checkpoint: {e}");
        }
    }

    pub fn checkpoint_http(&self, fw_id: &str, ex_id: &str, container: &str) {
        let Some((agent, _)) = self.checkpointing(fw_id) else {
            return;
        };
        if let Err(e) = meta::checkpoint_run(&self.work, agent, fw_id, ex_id, container, None, true)
        {
            tracing::error!(framework = fw_id, executor = ex_id, "checkpoint: {e}");
        }
    }

    pub fn mark_run_completed(&self, fw_id: &str, ex_id: &str, container: &str) {
        let Some((agent, _)) = self.checkpointing(fw_id) else {
            return;
        };
        if let Err(e) = meta::mark_run_completed(&self.work, agent, fw_id, ex_id, container) {
            tracing::error!(framework = fw_id, executor = ex_id, "checkpoint: {e}");
        }
    }

    /// Reads the checkpoints back. Executors whose process still runs are
    /// adopted and wait for their re-subscription; the others end, and
    /// their tasks get the update Mesos sends for a lost executor.
    pub async fn recover(&mut self) -> Result<(), AgentError> {
        let state = meta::recover(&self.work).map_err(|source| AgentError::Recover {
            path: self.work.meta(),
            source,
        })?;
        let Some(state) = state else {
            return Ok(());
        };
        let Some(previous) = &state.info else {
            return Ok(());
        };
        // `--reconfiguration_policy`: may this configuration run under the
        // recovered id? (`--recover=cleanup` forgets the id anyway.)
        let mut current = self.info.clone();
        current.id = Some(SlaveId {
            value: state.id.clone(),
        });
        if self.config.recover == RecoverMode::Reconnect {
            if let Err(message) =
                super::compatibility::check(self.config.reconfiguration_policy, previous, &current)
            {
                if !state.rebooted {
                    return Err(AgentError::Reconfigured {
                        id: state.id.clone(),
                        message,
                        latest: self.work.meta_agents().join(crate::state::paths::LATEST),
                    });
                }
                // As Mesos does after a reboot: no executor survived it,
                // so the agent starts as a new one rather than fail.
                tracing::warn!(
                    id = state.id,
                    "the configuration changed across the reboot; starting as a new agent: {message}"
                );
                meta::remove_latest_agent(&self.work)?;
                return Ok(());
            }
            // Checkpointed once the master takes it (re-registration).
            // (Compared as it is checkpointed: see `checkpoint_agent`.)
            current
                .resources
                .iter_mut()
                .for_each(super::resources::downgrade);
            self.reconfigured = *previous != current;
        }
        tracing::info!(
            id = state.id,
            frameworks = state.frameworks.len(),
            rebooted = state.rebooted,
            "recovering"
        );
        self.id = Some(state.id.clone());
        self.info.id = Some(SlaveId {
            value: state.id.clone(),
        });
        if let Some(config) = state.drain_config {
            tracing::info!(?config, "recovered a drain under way");
            self.drain = Some(super::drain::Drain {
                config,
                started: super::updates::now_secs(),
            });
        }
        let mut gone = Vec::new();
        for fw in state.frameworks {
            let Some(info) = fw.info else { continue };
            let mut framework = Framework {
                id: fw.id.clone(),
                info,
                pid: fw.pid.as_deref().and_then(|p| p.parse().ok()),
                executors: BTreeMap::new(),
                terminating: false,
            };
            for ex in fw.executors {
                // A run that is not the latest and not marked completed: the
                // agent died between creating it and pointing `runs/latest`
                // at it, before anything was launched in it.
                for stale in ex
                    .runs
                    .iter()
                    .filter(|r| !r.completed && ex.latest.as_ref() != Some(&r.container_id))
                {
                    self.forget_stale_run(&state.id, &fw.id, &ex.id, &stale.container_id);
                }
                let Some(ex_info) = ex.info else { continue };
                // As in Mesos, only the latest run can have work left: a run
                // is marked completed once all its updates are acknowledged.
                let Some(run) = ex
                    .latest
                    .as_ref()
                    .and_then(|l| ex.runs.iter().find(|r| &r.container_id == l))
                    .filter(|r| !r.completed)
                else {
                    continue;
                };
                for task in &run.tasks {
                    if task.updates.is_empty() {
                        continue;
                    }
                    let log = self.work.task_updates(
                        &state.id,
                        &fw.id,
                        &ex.id,
                        &run.container_id,
                        &task.id,
                    );
                    if let Err(e) =
                        self.updates
                            .recover(&fw.id, &task.id, log, &task.updates, &task.acks)
                    {
                        tracing::warn!(
                            framework = fw.id,
                            task = task.id,
                            "cannot recover its updates: {e}"
                        );
                    }
                }
                let mut executor = Executor {
                    id: ex.id.clone(),
                    framework_id: fw.id.clone(),
                    kind: kind_of(&ex_info),
                    info: Arc::new(ex_info),
                    container_id: run.container_id.clone(),
                    state: ExecutorState::Registering,
                    queued: Vec::new(),
                    sent: Vec::new(),
                    launched: BTreeMap::new(),
                    terminated: BTreeMap::new(),
                    killing: Vec::new(),
                    events: None,
                    termination_reason: None,
                    generation: 1,
                };
                for task in &run.tasks {
                    let Some(mut record) = task.info.clone() else {
                        continue;
                    };
                    let acked_all = task
                        .updates
                        .iter()
                        .all(|u| u.uuid.as_ref().is_some_and(|id| task.acks.contains(id)));
                    if let Some(last) = task.updates.last() {
                        record.state = last.status.state;
                        record.statuses = task.updates.iter().map(|u| u.status.clone()).collect();
                    }
                    if is_terminal(record.state) {
                        if !acked_all {
                            executor
                                .terminated
                                .insert(task.id.clone(), Arc::new(record));
                        }
                    } else {
                        executor.launched.insert(task.id.clone(), Arc::new(record));
                    }
                }
                // Adopted even in cleanup mode, so that it can be killed.
                // Without a checkpointed pid (the agent died between the
                // launch and that checkpoint) the containerizer looks for
                // the executor in the container's cgroup, and removes the
                // cgroup if nothing runs there: an executor is never left
                // running unowned, nor reported dead while it runs.
                // After a reboot the checkpointed pid may name an unrelated
                // process: only the cgroup is looked at (it cannot hold the
                // old executor), so that the run's stale state (cgroup,
                // runtime directory, image leases) is removed.
                let pid = if state.rebooted { None } else { run.forked_pid };
                let adopted = self
                    .containerizer
                    .recover(&run.container_id, pid)
                    .map_err(|e| tracing::warn!(container = run.container_id, "cannot adopt: {e}"))
                    .is_ok();
                let alive =
                    adopted && !state.rebooted && self.config.recover == RecoverMode::Reconnect;
                // Not taken over (the containerizer said why, above) and
                // nothing to report: left for the next start to try again.
                if !alive && !adopted && executor.idle() {
                    continue;
                }
                gone.extend(
                    (!alive).then(|| (fw.id.clone(), ex.id.clone(), run.container_id.clone())),
                );
                framework.executors.insert(ex.id.clone(), executor);
            }
            if !framework.executors.is_empty() {
                self.frameworks.insert(fw.id.clone(), framework);
            }
        }
        let gone_message = if state.rebooted {
            "Executor did not survive the reboot of the agent's host"
        } else {
            "Executor did not survive the agent's restart"
        };
        let timeout = self.config.executor_reregistration_timeout;
        let adopted: Vec<(String, String, String)> = self
            .frameworks
            .values()
            .flat_map(|f| {
                f.executors
                    .values()
                    .map(|e| (f.id.clone(), e.id.clone(), e.container_id.clone()))
            })
            .filter(|k| !gone.contains(k))
            .collect();
        for (fw, ex, container) in adopted {
            tracing::info!(
                framework = fw,
                executor = ex,
                container,
                "waiting for the executor to re-subscribe"
            );
            self.watch(&fw, &ex, &container);
            self.after(
                timeout,
                Timer::ExecutorRegistration {
                    framework_id: fw,
                    executor_id: ex,
                    generation: 1,
                },
            );
        }
        for (fw, ex, container) in gone {
            self.terminated(
                &fw,
                &ex,
                &container,
                Termination {
                    status: None,
                    limitation: None,
                    message: gone_message.to_string(),
                },
            );
        }
        // Nothing left to drain: the drain is over.
        self.check_drained();
        Ok(())
    }

    /// Destroys whatever the cgroup of a stale run holds (nothing, unless
    /// the checkpoints lie) and marks the run completed, so that no later
    /// start looks at it again.
    fn forget_stale_run(&self, agent: &str, fw: &str, ex: &str, container: &str) {
        tracing::info!(
            framework = fw,
            executor = ex,
            container,
            "a run created but never launched: removing it"
        );
        match self.containerizer.recover(container, None) {
            Ok(_) => {
                if let Err(e) = self.containerizer.destroy(container) {
                    tracing::warn!(container, "destroy a stale run: {e}");
                }
            }
            Err(e) => tracing::warn!(container, "recover a stale run: {e}"),
        }
        if let Err(e) = meta::mark_run_completed(&self.work, agent, fw, ex, container) {
            tracing::warn!(container, "checkpoint: {e}");
        }
    }

    /// `--recover=cleanup`, as the Mesos agent does it: the executors
    /// recovery found were killed (their tasks' updates are logged), so
    /// this waits until every container is destroyed, removes
    /// `meta/slaves/latest` so that the next start registers as a new
    /// agent, and returns: the agent exits without registering.
    pub async fn finish_cleanup(&mut self) -> Result<(), AgentError> {
        let waited = Instant::now();
        loop {
            let left = self.containerizer.containers();
            if left.is_empty() && self.destroying.load(Ordering::SeqCst) == 0 {
                break;
            }
            if waited.elapsed() >= CLEANUP_TIMEOUT {
                return Err(AgentError::Cleanup {
                    left: left.len(),
                    waited: CLEANUP_TIMEOUT,
                    ids: left.join(", "),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        meta::remove_latest_agent(&self.work)?;
        tracing::info!(
            took = ?waited.elapsed(),
            "--recover=cleanup: every old executor is gone; the next start registers as a new agent"
        );
        Ok(())
    }
}

/// How long `--recover=cleanup` waits for the old containers to be
/// destroyed (each is a SIGKILL of its cgroup and an unmount or two).
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(60);

/// The kind of a recovered executor.
fn kind_of(info: &ExecutorInfo) -> ExecutorKind {
    if info.r#type() == executor_info::Type::Default {
        ExecutorKind::Default
    } else if info
        .name
        .as_deref()
        .is_some_and(|n| n.starts_with("Command Executor"))
    {
        ExecutorKind::Command
    } else {
        ExecutorKind::Custom
    }
}
