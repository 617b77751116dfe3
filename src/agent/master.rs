//! The master link: registration with Mesos' randomized backoff,
//! re-registration with everything the agent runs, pings, and the
//! dispatch of the master's messages.

use super::config::{MESOS_VERSION, REGISTRATION_BACKOFF_MAX};
use super::core::{Agent, Link, Timer};
use super::messages::{decode, Incoming};
use super::resources::downgrade;
use crate::proto::mesos::internal::{
    PongSlaveMessage, RegisterSlaveMessage, ReregisterSlaveMessage, UpdateFrameworkMessage,
};
use crate::proto::mesos::slave_info::{capability, Capability};
use crate::proto::mesos::{SlaveId, Task, Uuid};
use crate::wire::{Message, Upid};
use std::time::Duration;

/// Mesos' default: 5 missed pings of 15 s.
pub const DEFAULT_PING_TIMEOUT: Duration = Duration::from_secs(75);

impl Agent {
    /// The detector says which master leads now. A new leader gets a
    /// (re-)registration after a random delay in [0, factor], as Mesos
    /// spreads a cluster's agents over a failover; with no leader the agent
    /// waits, its status updates held back.
    pub fn detected(&mut self, leader: Option<Upid>) {
        match leader {
            None => {
                tracing::warn!(previous = ?self.master.as_ref().map(ToString::to_string), "lost the leading master; waiting for a new one");
                self.master = None;
                self.cancel_authentication();
                self.link = Link::Registering;
                self.ping_generation += 1;
                self.registration_generation += 1;
                self.updates.pause();
            }
            Some(pid) => {
                if self.master.as_ref() == Some(&pid) && self.link == Link::Running {
                    return;
                }
                tracing::info!(master = %pid, "new master detected");
                self.master = Some(pid);
                if self.shutting_down {
                    return;
                }
                self.start_registration(true);
            }
        }
    }

    /// Starts (or restarts) registering: the first attempt after a random
    /// delay in [0, factor], as Mesos does to spread a cluster's agents.
    pub fn start_registration(&mut self, first: bool) {
        self.link = Link::Registering;
        self.ping_generation += 1;
        self.updates.pause();
        self.backoff = self.config.registration_backoff_factor;
        self.registration_generation += 1;
        let delay = if first {
            jitter(self.config.registration_backoff_factor)
        } else {
            Duration::ZERO
        };
        if self.credential.is_some() {
            // Authenticated again before every (re-)registration.
            self.start_authentication(delay);
            return;
        }
        self.after(delay, Timer::Registration(self.registration_generation));
    }

    /// Registers at once (authentication just completed), retrying with
    /// the usual backoff.
    pub(super) fn register_now(&mut self) {
        self.backoff = self.config.registration_backoff_factor;
        self.registration_generation += 1;
        self.retry_registration();
    }

    /// Sends a (re-)registration and arms the next retry: uniform in
    /// [0, b], b doubling up to one minute.
    pub fn retry_registration(&mut self) {
        if self.link != Link::Registering || self.shutting_down || self.master.is_none() {
            return;
        }
        if self.credential.is_some() && !self.auth.authenticated {
            tracing::debug!("not registering: not authenticated");
            return;
        }
        self.send_registration();
        self.backoff = (self.backoff * 2).min(REGISTRATION_BACKOFF_MAX);
        self.registration_generation += 1;
        self.after(
            jitter(self.backoff),
            Timer::Registration(self.registration_generation),
        );
    }

    fn send_registration(&self) {
        let mut slave = self.info.clone();
        let capabilities = capabilities();
        let resource_version_uuid = Some(Uuid {
            value: self.resource_version.clone(),
        });
        match &self.id {
            None => {
                tracing::info!(master = ?self.master_name(), "registering");
                let mut msg = RegisterSlaveMessage {
                    slave,
                    version: Some(MESOS_VERSION.to_string()),
                    agent_capabilities: capabilities,
                    resource_version_uuid,
                    ..Default::default()
                };
                // As Mesos' agent sends them: see `resources::downgrade`.
                msg.slave.resources.iter_mut().for_each(downgrade);
                self.send_master(&msg);
            }
            Some(id) => {
                slave.id = Some(SlaveId { value: id.clone() });
                let mut msg = ReregisterSlaveMessage {
                    slave,
                    version: Some(MESOS_VERSION.to_string()),
                    agent_capabilities: capabilities,
                    resource_version_uuid,
                    ..Default::default()
                };
                for fw in self.frameworks.values() {
                    msg.frameworks.push(fw.info.clone());
                    for ex in fw.executors.values() {
                        // Command executors are the agent's own, and ended
                        // executors use nothing: the master keeps neither.
                        if ex.kind != crate::containerizer::mesos::ExecutorKind::Command
                            && ex.state != super::state::ExecutorState::Terminated
                        {
                            msg.executor_infos.push((*ex.info).clone());
                        }
                        msg.tasks.extend(self.reported_tasks(ex));
                    }
                }
                // Every resource in the message as Mesos' agent sends it:
                // tasks' and executors' keep their allocation and
                // reservations, in the format of `resources::downgrade`.
                msg.slave.resources.iter_mut().for_each(downgrade);
                for task in &mut msg.tasks {
                    task.resources.iter_mut().for_each(downgrade);
                }
                for ex in &mut msg.executor_infos {
                    ex.resources.iter_mut().for_each(downgrade);
                }
                tracing::info!(master = ?self.master_name(), id, tasks = msg.tasks.len(), "re-registering");
                self.send_master(&msg);
            }
        }
    }

    /// The tasks of an executor as the master wants them in a
    /// re-registration, with the state of their latest update.
    fn reported_tasks(&self, ex: &super::state::Executor) -> Vec<Task> {
        let mut tasks: Vec<Task> = ex
            .launched
            .values()
            .chain(ex.terminated.values())
            .map(|t| (**t).clone())
            .collect();
        for group in &ex.queued {
            for t in group {
                tasks.push(self.new_task(t, &ex.framework_id, ex));
            }
        }
        for task in &mut tasks {
            let task_id = task.task_id.value.clone();
            if let Some(head) = self.updates.pending(&ex.framework_id, &task_id).first() {
                task.status_update_state = Some(head.status.state);
                task.status_update_uuid = head.uuid.clone();
            }
        }
        tasks
    }

    pub fn handle_message(&mut self, m: Message) {
        if crate::wire::authentication::is_authenticatee(&m.to) {
            self.authentication_message(m);
            return;
        }
        let name = m.name.as_str();
        tracing::debug!(from = %m.from, name, bytes = m.body.len(), "message");
        let msg = match decode(name, &m.body) {
            Ok(msg) => msg,
            Err(e) => {
                tracing::warn!(from = %m.from, "dropping a message: {e}");
                return;
            }
        };
        match msg {
            Incoming::Registered(r) => {
                self.registered(&m.from, r.slave_id.value, r.connection, false)
            }
            Incoming::Reregistered(r) => {
                self.registered(&m.from, r.slave_id.value, r.connection, true)
            }
            Incoming::Ping(p) => self.ping(&m.from, p.connected),
            // Scheduler drivers send these straight to the agent.
            Incoming::FrameworkToExecutor(f) => self.framework_message(f),
            _ if !self.is_master(&m.from) => {
                tracing::warn!(from = %m.from, name, "ignoring a message that is not from the master");
            }
            Incoming::RunTask(r) => self.run_task(*r),
            Incoming::RunTaskGroup(r) => self.run_task_group(*r),
            Incoming::KillTask(k) => self.kill_task(k),
            Incoming::Acknowledgement(a) => self.acknowledged(a),
            Incoming::ShutdownFramework(s) => self.shutdown_framework(&s.framework_id.value),
            Incoming::ShutdownExecutor(s) => {
                let fw = s.framework_id.map(|f| f.value).unwrap_or_default();
                let ex = s.executor_id.map(|e| e.value).unwrap_or_default();
                self.shutdown_executor(&fw, &ex, None);
            }
            Incoming::UpdateFramework(u) => self.update_framework(*u),
            Incoming::Drain(d) => self.drain(d),
            Incoming::Shutdown(s) => {
                let why = s.message.unwrap_or_default();
                self.shutdown(&format!("the master asked: {why}"));
            }
            // Sent after every (re)registration. This agent offers no
            // persistent volumes and keeps no dynamic reservations of its
            // own: an empty list (the usual case) needs nothing; anything
            // else is said loudly, since it is not applied.
            Incoming::CheckpointResources(c) if c.resources.is_empty() => {
                tracing::debug!("the master checkpoints no resources on this agent");
            }
            Incoming::CheckpointResources(c) => {
                tracing::warn!(
                    resources = c.resources.len(),
                    "the master asked to checkpoint reserved or persistent resources; \
                     this agent does not support them and does not apply them"
                );
            }
            Incoming::Ignored(name, why) => {
                tracing::warn!(from = %m.from, name, "not acting on a message: {why}");
            }
        }
    }

    fn is_master(&self, from: &Upid) -> bool {
        self.master.as_ref().is_some_and(|m| m.addr == from.addr)
    }

    /// The current master as text, for logs.
    fn master_name(&self) -> String {
        self.master
            .as_ref()
            .map_or_else(|| "none".to_string(), ToString::to_string)
    }

    fn registered(
        &mut self,
        from: &Upid,
        id: String,
        connection: Option<crate::proto::mesos::internal::MasterSlaveConnection>,
        reregistered: bool,
    ) {
        if self.master.as_ref() != Some(from) {
            tracing::warn!(%from, master = self.master_name(), "ignoring a registration from a process that is not the current master");
            return;
        }
        let Some(id) = Some(id).filter(|i| !i.is_empty()) else {
            tracing::warn!(%from, "ignoring a registration without an agent id");
            return;
        };
        if let Some(ours) = &self.id {
            if *ours != id {
                tracing::error!(master = %from, given = id, ours, "the master gave another agent id; shutting down");
                self.shutdown("registered under another id");
                return;
            }
        }
        if self.link == Link::Running {
            tracing::debug!("already registered");
            return;
        }
        if self.id.is_none() || self.reconfigured {
            self.id = Some(id.clone());
            self.info.id = Some(SlaveId { value: id.clone() });
            if let Err(e) = self.checkpoint_agent() {
                tracing::error!("checkpoint the agent info: {e}");
            }
            self.reconfigured = false;
        }
        self.link = Link::Running;
        self.registration_generation += 1;
        self.ping_timeout = connection
            .and_then(|c| c.total_ping_timeout_seconds)
            .filter(|s| s.is_finite() && *s > 0.0)
            .map(Duration::from_secs_f64)
            .unwrap_or(DEFAULT_PING_TIMEOUT);
        tracing::info!(id, reregistered, master = %from, "registered with the master");
        super::core::notify(&format!("STATUS=registered with {from} as {id}"));
        self.arm_ping_timer();
        let now = std::time::Instant::now();
        for update in self.updates.resume(now) {
            self.forward(update);
        }
    }

    fn arm_ping_timer(&mut self) {
        self.ping_generation += 1;
        self.after(self.ping_timeout, Timer::PingTimeout(self.ping_generation));
    }

    fn ping(&mut self, from: &Upid, connected: bool) {
        if !self.is_master(from) {
            tracing::warn!(%from, master = self.master_name(), "ignoring a ping from a process that is not the current master");
            return;
        }
        self.send_to(from, &PongSlaveMessage {});
        if self.link != Link::Running {
            return;
        }
        if !connected {
            tracing::warn!("the master says this agent is not connected; re-registering");
            self.start_registration(false);
            return;
        }
        self.arm_ping_timer();
    }

    pub fn ping_timed_out(&mut self) {
        if self.link == Link::Running {
            tracing::warn!(timeout = ?self.ping_timeout, "no ping from the master; re-registering");
            self.start_registration(false);
        }
    }

    /// The link to a peer broke.
    pub fn exited(&mut self, pid: &Upid) {
        if self.is_master(pid) && self.link == Link::Running {
            tracing::warn!(master = %pid, "lost the connection to the master; re-registering");
            self.start_registration(false);
        }
    }

    fn update_framework(&mut self, msg: UpdateFrameworkMessage) {
        let id = msg.framework_id.value;
        let Some(fw) = self.frameworks.get_mut(&id) else {
            tracing::warn!(framework = id, "ignoring an update of an unknown framework");
            return;
        };
        fw.pid = msg.pid.as_deref().and_then(|p| p.parse().ok());
        if let Some(info) = msg.framework_info {
            fw.info = info;
        }
        if let Err(e) = self.checkpoint_framework(&id) {
            tracing::error!(framework = id, "checkpoint: {e}");
        }
    }

    /// Sends a status update to the master (when registered).
    /// (The status update manager has set its `latest_state`.)
    pub fn forward(&self, update: crate::proto::mesos::internal::StatusUpdate) {
        if self.link != Link::Running {
            return;
        }
        self.send_master(&crate::proto::mesos::internal::StatusUpdateMessage {
            update,
            pid: Some(self.self_pid.to_string()),
        });
        if crate::support::crash::due("forwarded") {
            // Once the transport had time to put it on the wire.
            tokio::spawn(async {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                crate::support::crash::now("forwarded");
            });
        }
    }

    pub fn retry_updates(&mut self) {
        if self.link != Link::Running {
            return;
        }
        for update in self.updates.due(std::time::Instant::now()) {
            self.forward(update);
        }
    }
}

/// What the agent tells the master it can do.
pub(super) fn capabilities() -> Vec<Capability> {
    [
        capability::Type::MultiRole,
        capability::Type::HierarchicalRole,
        capability::Type::ReservationRefinement,
        capability::Type::AgentDraining,
    ]
    .into_iter()
    .map(|t| Capability {
        r#type: Some(t as i32),
    })
    .collect()
}

/// A uniformly random duration in [0, max].
pub(super) fn jitter(max: Duration) -> Duration {
    let bytes = crate::support::random_uuid_bytes().unwrap_or([0x80; 16]);
    let r = u64::from_le_bytes(bytes[..8].try_into().unwrap_or([0; 8]));
    max.mul_f64(r as f64 / u64::MAX as f64)
}
