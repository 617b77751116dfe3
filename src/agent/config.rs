//! The agent's configuration: what `butte agent`'s flags (Mesos' names)
//! resolve to.

use super::AgentError;
use crate::fetch::FetchConfig;
use crate::image::PullOptions;
use crate::runtime::RuntimeConfig;
use crate::support::jwt::{JwtError, Key};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// Everything the agent needs to start.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The master, `HOST:PORT` (a `zk://` URL is refused for now).
    pub master: String,
    /// The address to listen on.
    pub listen: SocketAddr,
    /// The address to advertise to the master (default: the listen IP, or
    /// the first non-loopback address when listening on 0.0.0.0).
    pub advertise_ip: Option<IpAddr>,
    /// The port to advertise (default: the bound port).
    pub advertise_port: Option<u16>,
    pub hostname: String,
    /// `--resources`: `name(role):value;...` or a JSON array; what is not
    /// given is detected.
    pub resources: Option<String>,
    /// `--attributes`: `name:value;...`.
    pub attributes: Option<String>,
    pub work_dir: PathBuf,
    pub runtime_dir: PathBuf,
    pub runtime: RuntimeConfig,
    pub fetcher: FetchConfig,
    pub pull: PullOptions,
    /// Registry for image names without one (`--docker_registry`).
    pub docker_registry: Option<String>,
    pub executor_registration_timeout: Duration,
    pub executor_reregistration_timeout: Duration,
    pub executor_shutdown_grace_period: Duration,
    pub recovery_timeout: Duration,
    pub registration_backoff_factor: Duration,
    pub status_update_retry_interval: Duration,
    /// How often the executor API sends HEARTBEAT events.
    pub executor_heartbeat_interval: Duration,
    /// `--recover`: `reconnect` (default) or `cleanup`.
    pub recover: RecoverMode,
    /// `--isolation`, kept for compatibility and reported in /flags.
    pub isolation: String,
    /// `--seccomp_config_dir`, `--seccomp_profile_name`: compiled profiles.
    pub seccomp: std::sync::Arc<crate::containerizer::security::SeccompProfiles>,
    /// `--authenticate_http_executors`: every executor API call must carry
    /// the executor's token (butte's default: true; Mesos': false).
    pub authenticate_http_executors: bool,
    /// `--executor_secret_key`: the file whose bytes sign executor tokens.
    /// `None`: [`EXECUTOR_SECRET_KEY_FILE`] in the work dir, generated at
    /// the first start and kept, so executors recovered after a restart
    /// still authenticate.
    pub executor_secret_key: Option<PathBuf>,
}

/// The generated executor key's file name, in the work dir (mode 0600).
pub const EXECUTOR_SECRET_KEY_FILE: &str = "executor_secret_key";

impl AgentConfig {
    /// The key executor tokens are signed and checked with: the
    /// `--executor_secret_key` file, else the work dir's (generated at the
    /// first start). Tokens are given to executors even with
    /// authentication off, so that it can be turned on later without
    /// restarting them, as Mesos' upgrade path does.
    pub fn executor_key(&self) -> Result<Key, AgentError> {
        if let Some(path) = &self.executor_secret_key {
            return Key::load(path).map_err(AgentError::SecretKey);
        }
        std::fs::create_dir_all(&self.work_dir).map_err(|source| {
            AgentError::SecretKey(JwtError::KeyWrite {
                path: self.work_dir.clone(),
                source,
            })
        })?;
        let path = self.work_dir.join(EXECUTOR_SECRET_KEY_FILE);
        let (key, created) = Key::load_or_create(&path).map_err(AgentError::SecretKey)?;
        if created {
            tracing::info!(path = %path.display(), "generated the executor secret key");
        }
        Ok(key)
    }
}

/// What to do with the checkpointed state at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoverMode {
    /// Reconnect with the executors that still run.
    Reconnect,
    /// Kill whatever the previous run left and start afresh.
    Cleanup,
}

/// The agent's registration backoff ceiling (Mesos: 1 min).
pub const REGISTRATION_BACKOFF_MAX: Duration = Duration::from_secs(60);

/// The status update retry ceiling (Mesos: 10 min).
pub const STATUS_UPDATE_RETRY_MAX: Duration = Duration::from_secs(600);

/// The Mesos version reported to the master; masters ignore agents older
/// than 1.0.0.
pub const MESOS_VERSION: &str = "1.11.0";

/// The longest an executor waits between attempts to re-subscribe to a
/// restarted agent (`MESOS_SUBSCRIPTION_BACKOFF_MAX`).
pub const SUBSCRIPTION_BACKOFF_MAX: Duration = Duration::from_secs(2);
