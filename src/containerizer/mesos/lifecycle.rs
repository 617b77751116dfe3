//! A launched container's life: waiting for its end (async, on the
//! executor's pidfd), limitations, destroy, and taking over a container
//! after an agent restart.

use super::disk::DiskQuota;
use super::error::ContainerizerError;
use super::handle::{Exit, Handle};
use super::images;
use super::limitation::{self, Limitation, Termination};
use super::{Inner, MesosContainerizer};
use crate::containerizer::provisioner;
use crate::proto::mesos::network_info::{IpAddress, Protocol};
use crate::proto::mesos::{ContainerId, ContainerStatus, NetworkInfo};
use crate::runtime::{self, Container, ExitStatus, ResourceStats, RuntimeError};
use nix::sys::signal::Signal;
use std::net::IpAddr;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// How often `wait` reads the cgroup's OOM counter.
const LIMITATION_INTERVAL: Duration = Duration::from_secs(1);
/// How often `wait` looks for the exit where there is no pidfd (Linux
/// before 5.3).
const EXIT_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// One container's bookkeeping.
pub struct Entry {
    id: String,
    /// A std `Mutex`, never held across an await: `wait` takes it only
    /// between polls, and reaps on a blocking thread.
    state: Mutex<State>,
}

struct State {
    /// `None` once the container has ended.
    handle: Option<Handle>,
    /// Store leases of the container's root filesystems.
    leases: Vec<String>,
    /// A limitation seen while running (the container was then killed).
    limitation: Option<Limitation>,
    termination: Option<Termination>,
    /// The usage at the end.
    last_stats: ResourceStats,
    /// The sandbox's disk quota, measured while the container runs.
    disk: Option<DiskQuota>,
}

impl Entry {
    pub fn launched(id: String, container: Container, leases: Vec<String>) -> Entry {
        Entry::new(id, Some(Handle::Launched(container)), leases, None)
    }

    fn new(
        id: String,
        handle: Option<Handle>,
        leases: Vec<String>,
        termination: Option<Termination>,
    ) -> Entry {
        Entry {
            id,
            state: Mutex::new(State {
                handle,
                leases,
                limitation: None,
                termination,
                last_stats: ResourceStats::default(),
                disk: None,
            }),
        }
    }

    /// Gives the container a disk quota for the watcher to enforce.
    pub fn with_disk(self, disk: Option<DiskQuota>) -> Entry {
        self.set_disk(disk);
        self
    }

    pub(super) fn set_disk(&self, disk: Option<DiskQuota>) {
        self.lock().disk = disk;
    }

    /// What the disk watcher measures, while the container runs and has a
    /// quota: the quota and sandbox, and the leases (overlay upper dirs).
    pub(super) fn disk_watch(&self) -> Option<(DiskQuota, Vec<String>)> {
        let st = self.lock();
        if st.handle.is_none() || st.limitation.is_some() || st.termination.is_some() {
            return None;
        }
        Some((st.disk.clone()?, st.leases.clone()))
    }

    /// The watcher found the container over its disk quota: records the
    /// limitation and kills the container (its exit then arrives through
    /// `wait`, which reports the limitation).
    pub(super) fn exceeded_disk(&self, used: u64, quota: u64) {
        let mut st = self.lock();
        if st.limitation.is_some() || st.termination.is_some() {
            return;
        }
        let Some(handle) = st.handle.as_ref() else {
            return;
        };
        let limit = limitation::disk(used, quota);
        tracing::warn!(
            container = self.id,
            "{}: killing the container",
            limit.message
        );
        if let Err(e) = handle.signal(Signal::SIGKILL) {
            tracing::warn!(container = self.id, error = %e, "kill after the disk quota");
        }
        st.limitation = Some(limit);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn usage(&self) -> ResourceStats {
        let st = self.lock();
        st.handle.as_ref().map_or(st.last_stats, Handle::stats)
    }

    /// The first process, while the container runs.
    pub fn pid(&self) -> Option<i32> {
        self.running(Handle::pid)
    }

    /// The command's process (under an init, the init's child), while the
    /// container runs.
    pub fn command_pid(&self) -> Option<i32> {
        self.running(Handle::command_pid)
    }

    fn running(&self, pid: impl FnOnce(&Handle) -> i32) -> Option<i32> {
        let st = self.lock();
        if st.termination.is_some() {
            return None;
        }
        st.handle.as_ref().map(pid)
    }
}

impl MesosContainerizer {
    /// Resolves when the container's executor has exited (everything in
    /// the container then dies with its pid namespace) and its cgroup,
    /// root filesystems and runtime directory are gone. Kills the
    /// container when the cgroup reports an OOM kill, as Mesos does.
    /// Resolves at once for a container that already ended. Several
    /// waiters may wait for the same container.
    pub async fn wait(&self, container_id: &str) -> Result<Termination, ContainerizerError> {
        let entry = self
            .inner
            .entry(container_id)
            .ok_or_else(|| ContainerizerError::Unknown(container_id.to_string()))?;
        let wait_err = |source| ContainerizerError::Wait {
            id: container_id.to_string(),
            source,
        };
        let pidfd: Option<OwnedFd> = {
            let st = entry.lock();
            if let Some(t) = &st.termination {
                return Ok(t.clone());
            }
            st.handle
                .as_ref()
                .and_then(Handle::pidfd)
                .map(|fd| fd.try_clone_to_owned())
                .transpose()
                .map_err(wait_err)?
        };
        // `with_interest` is deprecated because it cannot know that the fd
        // stays open while registered; an `OwnedFd` moved into the
        // `AsyncFd` does, so this use is sound (and needs no `unsafe`).
        #[allow(deprecated)]
        let pidfd = pidfd
            .map(|fd| AsyncFd::with_interest(fd, Interest::READABLE))
            .transpose()
            .map_err(wait_err)?;
        let mut ticks = tokio::time::interval(match pidfd {
            Some(_) => LIMITATION_INTERVAL,
            None => EXIT_POLL_INTERVAL,
        });
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            let readable = tokio::select! {
                r = readable(pidfd.as_ref()) => { r.map_err(wait_err)?; true }
                _ = ticks.tick() => false,
            };
            if !readable {
                entry.enforce_limits(self.inner.config.pids_limit);
                if pidfd.is_some() {
                    continue;
                }
            }
            // Reaping removes the cgroup and the root filesystems: off the
            // reactor.
            let (inner, e) = (self.inner.clone(), entry.clone());
            let reaped = tokio::task::spawn_blocking(move || inner.reap(&e))
                .await
                .map_err(|j| wait_err(std::io::Error::other(j.to_string())))??;
            if let Some(t) = reaped {
                return Ok(t);
            }
        }
    }

    /// The limitation the container has hit so far, if any, without
    /// waiting: an OOM kill in its cgroup (REASON_CONTAINER_LIMITATION_MEMORY),
    /// or forks refused at the pids limit (REASON_CONTAINER_LIMITATION).
    pub fn limitation(&self, container_id: &str) -> Option<Limitation> {
        let entry = self.inner.entry(container_id)?;
        let st = entry.lock();
        if let Some(t) = &st.termination {
            return t.limitation.clone();
        }
        if let Some(l) = &st.limitation {
            return Some(l.clone());
        }
        let stats = st.handle.as_ref()?.stats();
        limitation::seen(&stats, self.inner.config.pids_limit, true)
    }

    /// What Mesos reports of a container in `TaskStatus.container_status`:
    /// its id and its networks with their addresses; a container on the
    /// host's network has one unnamed network with `agent_ip`, as Mesos'
    /// agent reports it. (Mesos' containerizer leaves `executor_pid` and
    /// `cgroup_info` unset: the latter is the `net_cls` isolator's.)
    pub fn container_status(&self, container_id: &str, agent_ip: IpAddr) -> ContainerStatus {
        let mut network_infos = self.network_infos(container_id);
        if network_infos.is_empty() {
            network_infos.push(NetworkInfo {
                ip_addresses: vec![IpAddress {
                    protocol: Some(if agent_ip.is_ipv6() {
                        Protocol::IPv6 as i32
                    } else {
                        Protocol::IPv4 as i32
                    }),
                    ip_address: Some(agent_ip.to_string()),
                }],
                ..Default::default()
            });
        }
        ContainerStatus {
            container_id: Some(ContainerId {
                value: container_id.to_string(),
                parent: None,
            }),
            network_infos,
            ..Default::default()
        }
    }

    /// Whether the containerizer knows the container (launching, running,
    /// or ended and not yet destroyed).
    pub fn knows(&self, container_id: &str) -> bool {
        let table = self.inner.table();
        table.containers.contains_key(container_id) || table.launching.contains(container_id)
    }

    /// Whether the container has ended (`None`: unknown).
    pub fn ended(&self, container_id: &str) -> Option<bool> {
        let entry = self.inner.entry(container_id)?;
        let ended = entry.lock().termination.is_some();
        Some(ended)
    }

    /// Sends `signal` to the container's first process, as Mesos'
    /// `kill(containerId, signal)`: false for a container that is unknown
    /// or has already ended. Its end then arrives through [`Self::wait`].
    pub fn kill(&self, container_id: &str, signal: i32) -> Result<bool, ContainerizerError> {
        let Some(entry) = self.inner.entry(container_id) else {
            return Ok(false);
        };
        let st = entry.lock();
        let Some(handle) = st.handle.as_ref().filter(|_| st.termination.is_none()) else {
            return Ok(false);
        };
        let signal = Signal::try_from(signal).map_err(|_| ContainerizerError::Invalid {
            id: container_id.to_string(),
            what: "signal".into(),
            reason: format!("{signal} is not a signal number"),
        })?;
        handle
            .signal(signal)
            .map_err(|source| ContainerizerError::Runtime {
                id: container_id.to_string(),
                step: "send a signal",
                source,
            })?;
        Ok(true)
    }

    /// Kills everything in the container (SIGKILL), waits for it, releases
    /// its root filesystems, cgroup and runtime directory, keeps the
    /// sandbox, and forgets the container. Returns how it ended; `None` for
    /// an unknown (or already destroyed) container. Blocking.
    pub fn destroy(&self, container_id: &str) -> Result<Option<Termination>, ContainerizerError> {
        // A nested container never outlives its parent.
        self.inner.destroy_nested(container_id);
        self.inner.destroy_one(container_id)
    }

    /// After an agent restart: takes over container `container_id`, whose
    /// executor was checkpointed with `pid`, so that `wait`, `limitation`,
    /// `usage` and `destroy` work on it. Without a checkpointed pid (the
    /// agent died between the launch and its checkpoint), the executor is
    /// found through the container's cgroup, as Mesos' launcher recovers
    /// containers from the cgroup hierarchy. If that process is gone (or
    /// the pid now belongs to another process), the container's leftovers
    /// (its whole cgroup included) are removed and it is known as
    /// terminated, with the status its init recorded (a nested or
    /// standalone container) or an unknown one. Says which of these it
    /// found.
    pub fn recover(
        &self,
        container_id: &str,
        pid: Option<i32>,
    ) -> Result<Recovered, ContainerizerError> {
        let inner = &self.inner;
        let id = container_id.to_string();
        if id.is_empty() || id == "." || id == ".." || id.contains(['/', '\0']) {
            return Err(ContainerizerError::Invalid {
                id: id.clone(),
                what: "container id".into(),
                reason: format!("{id:?} is not usable as a path component"),
            });
        }
        if inner.table().containers.contains_key(&id) {
            return Err(ContainerizerError::Exists(id));
        }
        let leases = provisioner::provisioned(&inner.config.work_dir, &id);
        let checkpointed = pid;
        let pid = match pid {
            Some(pid) => pid,
            None => {
                let found = runtime::main_pid(&inner.config.runtime, &super::runtime_id(&id))
                    .map_err(|source| ContainerizerError::Runtime {
                        id: id.clone(),
                        step: "find the executor through its cgroup",
                        source,
                    })?;
                if let Some(pid) = found {
                    tracing::info!(container = id, pid, "found the executor through its cgroup");
                }
                // 0: nothing to take over; the leftovers are removed.
                found.unwrap_or(0)
            }
        };
        let status_file = inner.run_dirs.container(&id).join(super::plan::STATUS);
        let adopted = runtime::adopt(
            &inner.config.runtime,
            &super::runtime_id(&id),
            pid,
            Some(status_file.as_path()).filter(|p| p.exists()),
        )
        .map_err(|source| ContainerizerError::Runtime {
            id: id.clone(),
            step: "take over the executor",
            source,
        })?;
        // An init opens its status file first thing: without it, no pid
        // and no process, the container's task never started.
        let unstarted = checkpointed.is_none() && !status_file.exists();
        let (entry, recovered) = match adopted {
            Some(a) => {
                tracing::info!(container = id, pid, "recovered a running executor");
                let entry = Entry::new(id.clone(), Some(Handle::Adopted(a)), leases, None);
                (entry, Recovered::Running)
            }
            None => {
                tracing::info!(
                    container = id,
                    pid,
                    "executor gone while the agent was down"
                );
                // A nested or standalone container's init recorded how
                // its task ended.
                let status = runtime::recorded_status(&status_file);
                images::release(&inner.config.work_dir, &leases);
                inner.remove_run_dir(&id);
                let mut t = Termination::new(status, None);
                if status.is_none() {
                    t.message = match checkpointed {
                        Some(pid) => {
                            format!("executor (pid {pid}) was gone when the agent recovered")
                        }
                        None => "executor was gone when the agent recovered (no pid \
                                 checkpointed, no process in its cgroup)"
                            .to_string(),
                    };
                }
                let entry = Entry::new(id.clone(), None, Vec::new(), Some(t));
                let recovered = match unstarted {
                    true => Recovered::Unstarted,
                    false => Recovered::Ended,
                };
                (entry, recovered)
            }
        };
        self.inner.insert(id, entry)?;
        Ok(recovered)
    }

    /// After an agent restart: makes known again a container that had
    /// ended before it, as the agent recorded its end (so that WAIT still
    /// answers how until REMOVE forgets it).
    pub fn recover_ended(
        &self,
        container_id: &str,
        termination: Termination,
    ) -> Result<(), ContainerizerError> {
        let entry = Entry::new(
            container_id.to_string(),
            None,
            Vec::new(),
            Some(termination),
        );
        self.inner.insert(container_id.to_string(), entry)
    }
}

/// What [`MesosContainerizer::recover`] found of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovered {
    /// Its process runs: taken over.
    Running,
    /// It has ended (known as terminated).
    Ended,
    /// No pid was recorded, no process found and no status file: its
    /// task never started (the launcher died before). Known as terminated
    /// with an unknown status, like [`Recovered::Ended`]; a caller that can
    /// launch it again may forget it.
    Unstarted,
}

impl Inner {
    /// Adds a recovered container to the table, unless its id is taken.
    fn insert(&self, id: String, entry: Entry) -> Result<(), ContainerizerError> {
        let mut table = self.table();
        if table.containers.contains_key(&id) || table.launching.contains(&id) {
            return Err(ContainerizerError::Exists(id));
        }
        table.containers.insert(id, Arc::new(entry));
        Ok(())
    }
}

/// Resolves when the pidfd is readable (the process has exited); never
/// without one.
async fn readable(pidfd: Option<&AsyncFd<OwnedFd>>) -> std::io::Result<()> {
    match pidfd {
        Some(fd) => {
            let mut guard = fd.readable().await?;
            // A spurious wake-up then waits for the next edge.
            guard.clear_ready();
            Ok(())
        }
        None => std::future::pending().await,
    }
}

impl Entry {
    /// Reads the OOM counter of a running container; on an OOM kill,
    /// records the limitation and kills the container (its exit then
    /// arrives through the pidfd). Cheap: a few cgroup files.
    fn enforce_limits(&self, pids_limit: Option<u64>) {
        let mut st = self.lock();
        if st.limitation.is_some() || st.termination.is_some() {
            return;
        }
        let Some(handle) = st.handle.as_ref() else {
            return;
        };
        let stats = handle.stats();
        if stats.oom_kills == 0 {
            return;
        }
        let limit = limitation::seen(&stats, pids_limit, false);
        tracing::warn!(container = self.id, limitation = ?limit, "memory limit hit: killing the container");
        if let Err(e) = handle.signal(Signal::SIGKILL) {
            tracing::warn!(container = self.id, error = %e, "kill after the memory limit");
        }
        st.limitation = limit;
    }
}

impl Inner {
    /// Blocking: if the executor has exited, reaps it and cleans up.
    fn reap(&self, entry: &Entry) -> Result<Option<Termination>, ContainerizerError> {
        let mut st = entry.lock();
        if let Some(t) = &st.termination {
            return Ok(Some(t.clone()));
        }
        let Some(handle) = st.handle.as_mut() else {
            return Ok(None);
        };
        // The parent ended: its nested containers go first (their cgroups
        // are inside its own).
        if handle.exited() && !self.nested_keys(&entry.id).is_empty() {
            drop(st);
            self.destroy_nested(&entry.id);
            st = entry.lock();
            if let Some(t) = &st.termination {
                return Ok(Some(t.clone()));
            }
        }
        let Some(handle) = st.handle.as_mut() else {
            return Ok(None);
        };
        let exit = match handle.try_wait() {
            Ok(Some(exit)) => exit,
            Ok(None) => return Ok(None),
            Err(e) => recorded_exit(&entry.id, handle, e).map_err(|source| {
                ContainerizerError::Runtime {
                    id: entry.id.clone(),
                    step: "reap the executor",
                    source,
                }
            })?,
        };
        Ok(Some(self.finish(&entry.id, &mut st, exit)))
    }

    /// The keys of the nested containers under `key` (all levels),
    /// deepest first.
    fn nested_keys(&self, key: &str) -> Vec<String> {
        let prefix = format!("{key}.");
        let mut keys: Vec<String> = self
            .table()
            .containers
            .keys()
            .filter(|k| k.starts_with(&prefix))
            .cloned()
            .collect();
        keys.sort_by_key(|k| std::cmp::Reverse(k.matches('.').count()));
        keys
    }

    /// Kills and forgets every nested container under `key`, deepest
    /// first (each keeps its sandbox).
    pub(super) fn destroy_nested(&self, key: &str) {
        for k in self.nested_keys(key) {
            match self.destroy_one(&k) {
                Ok(Some(t)) => tracing::info!(
                    container = k,
                    parent = key,
                    "nested container destroyed with its parent: {}",
                    t.message
                ),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(container = k, error = %e, "nested container not destroyed")
                }
            }
        }
    }

    /// Kills one container (SIGKILL), waits for it, releases what it held
    /// and forgets it; `None` for an unknown one. On failure it stays known.
    fn destroy_one(&self, id: &str) -> Result<Option<Termination>, ContainerizerError> {
        let Some(entry) = self.table().containers.remove(id) else {
            return Ok(None);
        };
        let mut st = entry.lock();
        if let Some(t) = &st.termination {
            return Ok(Some(t.clone()));
        }
        let Some(handle) = st.handle.as_mut() else {
            return Ok(None);
        };
        let exit = match handle.kill() {
            Ok(exit) => Ok(exit),
            Err(e) => recorded_exit(&entry.id, handle, e),
        };
        match exit {
            Ok(exit) => Ok(Some(self.finish(&entry.id, &mut st, exit))),
            Err(source) => {
                drop(st);
                self.table().containers.insert(id.to_string(), entry);
                Err(ContainerizerError::Runtime {
                    id: id.to_string(),
                    step: "destroy",
                    source,
                })
            }
        }
    }

    /// The container ended: releases what it held and records how.
    fn finish(&self, id: &str, st: &mut State, exit: Exit) -> Termination {
        st.handle = None;
        images::release(&self.config.work_dir, &std::mem::take(&mut st.leases));
        self.remove_run_dir(id);
        let pids_matter = exit.status != Some(ExitStatus::Exited(0));
        let limitation = st
            .limitation
            .take()
            .or_else(|| limitation::seen(&exit.stats, self.config.pids_limit, pids_matter));
        let t = Termination::new(exit.status, limitation);
        st.last_stats = exit.stats;
        st.termination = Some(t.clone());
        tracing::info!(container = id, status = ?exit.status, "container ended: {}", t.message);
        t
    }
}

/// The runtime records the exit before it cleans up; when the cleanup (the
/// cgroup's removal) failed, log that and take the recorded exit.
fn recorded_exit(id: &str, handle: &mut Handle, e: RuntimeError) -> Result<Exit, RuntimeError> {
    match handle.try_wait() {
        Ok(Some(exit)) => {
            tracing::warn!(container = id, error = %e, "container cleanup incomplete");
            Ok(exit)
        }
        _ => Err(e),
    }
}

impl Drop for Inner {
    /// An agent that goes away leaves its executors running, for the next
    /// one to recover, as Mesos does.
    fn drop(&mut self) {
        let table = std::mem::take(&mut *self.table());
        for (id, entry) in table.containers {
            let mut st = entry.lock();
            if let Some(h) = st.handle.take() {
                let pid = h.detach();
                tracing::info!(container = id, pid, "leaving the executor running");
            }
        }
    }
}
