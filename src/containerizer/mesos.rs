//! The Mesos containerizer: runs the agent's executors, each in a
//! container of its own, with the sandbox, environment, limits and
//! limitations of Apache Mesos' Mesos containerizer (see `docs/agent.md`).
//!
//! ```text
//!  launch() --> running --(exit)--> terminated --destroy()--> forgotten
//!     |            |  \--(OOM kill seen: SIGKILL)--/             ^
//!     |            \------------- destroy() ---------------------/
//!     \-- error: leases, mounts, cgroup, runtime dir removed; sandbox kept
//!  recover(pid) --> running (adopted) | terminated (pid gone)
//! ```
//!
//! A launch (blocking; the agent runs it on a blocking thread) creates the
//! sandbox `slaves/<agent>/frameworks/<fw>/executors/<ex>/runs/<container>`
//! and `runs/latest`, fetches the URIs as the executor's user, provisions
//! images, and starts the executor through the runtime: new pid and mount
//! namespaces, the host's network and hostname, limits of the executor's
//! and tasks' resources, `stdout`/`stderr` appended to files in the sandbox.
//!
//! - custom executor: `CommandInfo` as the Mesos launcher runs it; an image
//!   in its `ContainerInfo` becomes its root filesystem, with the sandbox at
//!   `/mnt/mesos/sandbox`;
//! - command executor (one task) and default executor (a task group):
//!   `butte executor [--default] --launch-info FILE` on the host
//!   filesystem; each task's image is mounted in the executor's mount
//!   namespace at `<runtime_dir>/containers/<id>/tasks/<task>/rootfs` and
//!   named, with the image's config, in the `LaunchInfos` JSON `FILE`.
//!
//! The executor runs as `CommandInfo.user` or the framework's user (with
//! `switch_user`; the user must exist on the host, and gets the sandbox
//! and fetched files), except a built-in executor whose tasks have images:
//! it stays root to mount and enter them, as Mesos' command executor does.
//!
//! [`MesosContainerizer::wait`] is async and needs no thread per container:
//! it polls a duplicate of the executor's pidfd on the tokio reactor, and
//! the cgroup's OOM counter once a second (an OOM kill anywhere in the
//! container ends it, as Mesos' memory isolator does).
//!
//! An agent that exits (drops the containerizer) leaves its executors
//! running; a new agent takes them over with [`MesosContainerizer::recover`]
//! and the checkpointed pid.

mod disk;
mod docker;
mod env;
mod error;
mod executor_info;
mod handle;
mod image_gc;
mod images;
mod launch;
mod lifecycle;
mod limitation;
mod logger;
mod network;
mod plan;
mod resources;
mod sandbox;
mod session;

pub use crate::containerizer::docker::DockerConfig;
pub use crate::containerizer::network::CniConfig;
pub use disk::usage as sandbox_disk_usage;
pub use env::{ExecutorEnv, AUTHENTICATION_TOKEN};
pub use error::ContainerizerError;
pub use executor_info::{command_executor_info, COMMAND_EXECUTOR_CPUS, COMMAND_EXECUTOR_MEM_MB};
pub use image_gc::{ImageGcConfig, ImageGcError};
pub use lifecycle::Recovered;
pub use limitation::{Limitation, Termination};
pub use logger::{
    ContainerLogger, LoggerError, LogrotateFlags, DEFAULT_MAX_SIZE, LOGROTATE_LOGGER,
    SANDBOX_LOGGER,
};
pub use plan::LAUNCH_INFO;
pub use resources::{MIN_CPUS, MIN_MEMORY};
pub use session::{DebugIo, DebugLaunch};

use crate::containerizer::security::SeccompProfiles;
use crate::fetch::{FetchConfig, Fetcher};
use crate::image::PullOptions;
use crate::proto::mesos::{ExecutorInfo, FrameworkInfo, TaskInfo};
use crate::runtime::{ResourceStats, Runtime, RuntimeConfig};
use crate::state::paths::{RuntimeDir, WorkDir};
use crate::support::jwt::Key;
use lifecycle::Entry;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

/// How the containerizer is set up (the agent's flags).
#[derive(Debug, Clone)]
pub struct MesosConfig {
    /// `--work_dir`: sandboxes, the image store, provisioned filesystems.
    pub work_dir: PathBuf,
    /// `--runtime_dir`: per-container mount points and launch-info files.
    pub runtime_dir: PathBuf,
    /// Where cgroups go (`cgroup_parent`) and the launch helper.
    pub runtime: RuntimeConfig,
    pub fetcher: FetchConfig,
    pub pull: PullOptions,
    /// The butte binary, run as `butte executor`.
    pub butte: PathBuf,
    /// `--docker_registry`: the registry of image names without one.
    pub docker_registry: Option<String>,
    /// `--switch_user` (Mesos' default: true): run executors as
    /// `CommandInfo.user` or `FrameworkInfo.user`, which must then exist on
    /// this host; otherwise as the agent's user.
    pub switch_user: bool,
    /// A pids limit for every container (`None`: unlimited, as in Mesos).
    pub pids_limit: Option<u64>,
    /// `--executor_environment_variables`: the base of every executor's
    /// environment (below the `MESOS_*` variables).
    pub executor_env: Vec<(String, String)>,
    /// `--seccomp_config_dir` and `--seccomp_profile_name`, compiled once.
    pub seccomp: Arc<SeccompProfiles>,
    /// The key each executor's `MESOS_EXECUTOR_AUTHENTICATION_TOKEN` is
    /// signed with (`None`: executors get no token).
    pub executor_secret: Option<Key>,
    /// `--container_logger`: plain or rotated `stdout`/`stderr`.
    pub container_logger: ContainerLogger,
    /// `--network_cni_config_dir`, `--network_cni_plugins_dir`.
    pub cni: CniConfig,
    /// `--containerizers`, `--docker_sandbox_directory`,
    /// `--allow_privileged`, `--docker_bridge_network`.
    pub docker: DockerConfig,
    /// The default executor runs its tasks as nested containers (through
    /// the operator API, each provisioned then): it is told so by
    /// [`crate::proto::launch::NESTED_CONTAINERS_ENV`], and the group's
    /// images are not provisioned at its launch.
    pub nested_task_groups: bool,
}

impl MesosConfig {
    /// The defaults for a work and runtime directory, with `butte` as both
    /// the launch helper and the executor.
    pub fn new(
        work_dir: PathBuf,
        runtime_dir: PathBuf,
        runtime: RuntimeConfig,
        butte: PathBuf,
    ) -> MesosConfig {
        MesosConfig {
            fetcher: FetchConfig::new(&work_dir),
            work_dir,
            runtime_dir,
            runtime,
            pull: PullOptions::default(),
            butte,
            docker_registry: None,
            switch_user: true,
            pids_limit: None,
            executor_env: Vec::new(),
            seccomp: Arc::default(),
            executor_secret: None,
            container_logger: ContainerLogger::Sandbox,
            cni: CniConfig::default(),
            docker: DockerConfig::default(),
            nested_task_groups: false,
        }
    }
}

/// Which executor runs the tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExecutorKind {
    /// butte's command executor, for one task given with a `CommandInfo`.
    Command,
    /// butte's default executor, for task groups.
    Default,
    /// The framework's own executor, run from its `CommandInfo`.
    Custom,
}

/// One executor container to launch.
#[derive(Debug, Clone)]
pub struct LaunchRequest {
    /// The new container's id (a UUID; it names the sandbox and cgroup).
    pub container_id: String,
    pub agent_id: String,
    pub framework: FrameworkInfo,
    /// For [`ExecutorKind::Command`], from [`command_executor_info`].
    pub executor: ExecutorInfo,
    pub kind: ExecutorKind,
    /// Command: the one task; Default: the group; Custom: the first
    /// task(s) (only their resources are used).
    pub tasks: Vec<TaskInfo>,
    pub env: ExecutorEnv,
    /// A standalone container (the operator API's `LAUNCH_CONTAINER`): no
    /// framework, agent or task; `executor` carries its command, image and
    /// resources (with `kind` [`ExecutorKind::Custom`]); the sandbox is
    /// `<work_dir>/containers/<id>`, as Mesos' `getContainerPath`; the
    /// environment has no `MESOS_*` executor variables but
    /// `MESOS_SANDBOX`, and no executor token.
    pub standalone: bool,
    /// A nested container (the operator API's `LAUNCH_NESTED_CONTAINER`,
    /// or `LAUNCH_CONTAINER` with a parent), launched as a standalone one
    /// (`standalone` is true) but under a running parent: its
    /// `container_id` is its key, the parent's key and its own id joined
    /// with `.` ([`nested_key`]).
    pub nested: Option<NestedParent>,
}

/// Where a nested container goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NestedParent {
    /// The parent's key (an executor's or standalone container's id, or a
    /// nested container's key).
    pub key: String,
    /// The new container's sandbox on the host:
    /// `<parent's sandbox>/containers/<id>`, as Mesos lays it out.
    pub sandbox: PathBuf,
}

/// The containerizer's key of a nested container: its ids from the top,
/// joined with `.` (which no container id may hold), as Mesos shows a
/// nested `ContainerID`.
pub fn nested_key(parent: &str, id: &str) -> String {
    format!("{parent}.{id}")
}

/// The runtime's id of a container (it names the cgroup): a nested
/// container's cgroup is inside its parent's.
fn runtime_id(key: &str) -> String {
    key.replace('.', "/")
}

/// A started executor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launched {
    pub container_id: String,
    /// The executor's pid on the host (to checkpoint as `forked.pid`).
    pub pid: i32,
    /// The sandbox on the host.
    pub sandbox: PathBuf,
    /// How long its steps took.
    pub timings: LaunchTimings,
}

/// How long a launch's steps took: fetching the URIs (`None`: there were
/// none), provisioning images (pulls included; `None`: no image), and the
/// whole launch, to the executor's exec.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LaunchTimings {
    pub fetch: Option<std::time::Duration>,
    pub provision: Option<std::time::Duration>,
    pub total: std::time::Duration,
}

/// Runs executors. `Send + Sync`; share it in an `Arc`.
pub struct MesosContainerizer {
    inner: Arc<Inner>,
}

/// What the containerizer's operations share (also with the blocking
/// tasks `wait` hands its reaping to).
struct Inner {
    config: MesosConfig,
    runtime: Runtime,
    fetcher: Fetcher,
    work: WorkDir,
    run_dirs: RuntimeDir,
    /// This host's name, which executors keep (they share its network).
    hostname: Option<String>,
    /// Every container this process knows. A std `Mutex`: held only to
    /// look up, insert or remove an entry, never across an await, a launch
    /// or a kill (each entry has its own lock for that).
    table: Mutex<Table>,
    /// Held (read) by launches from looking for their images until their
    /// leases are written, and (write) by image garbage collection.
    image_gc: std::sync::RwLock<()>,
}

#[derive(Default)]
struct Table {
    containers: HashMap<String, Arc<Entry>>,
    /// Ids whose launch is under way.
    launching: HashSet<String>,
}

impl MesosContainerizer {
    pub fn new(config: MesosConfig) -> Result<Self, ContainerizerError> {
        let runtime = Runtime::new(&config.runtime).map_err(ContainerizerError::Setup)?;
        let hostname = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .filter(|h| !h.is_empty());
        Ok(MesosContainerizer {
            inner: Arc::new(Inner {
                fetcher: Fetcher::new(config.fetcher.clone()),
                work: WorkDir::new(&config.work_dir),
                run_dirs: RuntimeDir::new(&config.runtime_dir),
                runtime,
                hostname,
                config,
                table: Mutex::new(Table::default()),
                image_gc: std::sync::RwLock::new(()),
            }),
        })
    }

    /// The ids of the containers known (running or terminated and not yet
    /// destroyed).
    pub fn containers(&self) -> Vec<String> {
        self.inner.table().containers.keys().cloned().collect()
    }

    /// The networks a container is attached to, with its addresses (empty
    /// for one on the host's network or unknown).
    pub fn network_infos(&self, container_id: &str) -> Vec<crate::proto::mesos::NetworkInfo> {
        if container_id.is_empty()
            || container_id.contains(['/', '\0'])
            || container_id.starts_with('.')
        {
            return Vec::new();
        }
        network::network_infos(
            &self.inner.config.cni,
            &self.inner.run_dirs.container(container_id),
        )
    }

    /// Current resource usage of a running container (the final figures
    /// once it has ended); `None` for an unknown one.
    pub fn usage(&self, container_id: &str) -> Option<ResourceStats> {
        self.inner.entry(container_id).map(|e| e.usage())
    }

    /// Sets the cgroup limits of a running container to those of
    /// `resources` (an executor's and its live tasks'), as Mesos'
    /// containerizer `update` does when tasks join a running executor.
    pub fn update(
        &self,
        key: &str,
        resources: &[crate::proto::mesos::Resource],
    ) -> Result<(), ContainerizerError> {
        let mut limits = resources::limits(resources, self.inner.config.pids_limit);
        // The floors, as at launch; a limit none of them names stays.
        limits.pids = None;
        self.inner
            .runtime
            .update_limits(&runtime_id(key), &limits)
            .map_err(|source| ContainerizerError::Runtime {
                id: key.to_string(),
                step: "update the limits",
                source,
            })
    }

    /// The first process of a known container that still runs, on the
    /// host (`None`: unknown or ended).
    pub fn pid(&self, key: &str) -> Option<i32> {
        self.inner.entry(key)?.pid()
    }

    /// The process of a known, running container's command: its first
    /// process, or a nested or standalone container's init's child.
    pub fn command_pid(&self, key: &str) -> Option<i32> {
        self.inner.entry(key)?.command_pid()
    }
}

impl Inner {
    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn entry(&self, id: &str) -> Option<Arc<Entry>> {
        self.table().containers.get(id).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_containerizer_can_be_shared_between_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<MesosContainerizer>();
        shared::<LaunchRequest>();
    }
}
