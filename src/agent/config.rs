//! The agent's configuration: what `butte agent`'s flags (Mesos' names)
//! resolve to.

use super::AgentError;
use crate::containerizer::mesos::{ContainerLogger, ImageGcConfig};
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
    /// The master: `HOST:PORT`, `zk://...` or `file:///...` (see
    /// `wire::detector`).
    pub master: String,
    /// `--zk_session_timeout` (Mesos: 10secs).
    pub zk_session_timeout: Duration,
    /// `--credential`: the file with the principal and secret the agent
    /// authenticates to the master with (none: no authentication).
    pub credential: Option<PathBuf>,
    /// `--authenticatee`: only `crammd5`, Mesos' built-in one.
    pub authenticatee: String,
    /// `--authentication_backoff_factor` (Mesos: 1secs): the first
    /// attempt's timeout range is [min, min + 2 * factor].
    pub authentication_backoff_factor: Duration,
    /// `--authentication_timeout_min` (Mesos: 5secs).
    pub authentication_timeout_min: Duration,
    /// `--authentication_timeout_max` (Mesos: 1mins): each retry doubles
    /// the range's width up to this.
    pub authentication_timeout_max: Duration,
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
    /// `--default_role` (Mesos: `*`): the role of resources that name none
    /// in `--resources`, and of detected ones; any other role than `*`
    /// reserves them statically.
    pub default_role: String,
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
    /// `--reconfiguration_policy`: which changes of resources, attributes,
    /// hostname or port an agent may make across a restart and keep its
    /// id (`equal`, the default, or `additive`).
    pub reconfiguration_policy: super::ReconfigurationPolicy,
    /// `--isolation`, kept for compatibility and reported in /flags.
    pub isolation: String,
    /// `--seccomp_config_dir`, `--seccomp_profile_name`: compiled profiles.
    pub seccomp: std::sync::Arc<crate::containerizer::security::SeccompProfiles>,
    /// `--authenticate_http_executors`: every executor API call must carry
    /// the executor's token (butte's default: true; Mesos': false).
    pub authenticate_http_executors: bool,
    /// `--switch_user` (Mesos: true): run executors as the task's or
    /// framework's user; false: as the agent's user.
    pub switch_user: bool,
    /// `--task_group_nested_containers`: the default executor runs its
    /// tasks as nested containers.
    pub task_group_nested_containers: bool,
    /// `--executor_environment_variables`: the variables every executor
    /// starts with (below the `MESOS_*` ones), instead of a default `PATH`.
    pub executor_environment_variables: Vec<(String, String)>,
    /// `--executor_secret_key`: the file whose bytes sign executor tokens.
    /// `None`: [`EXECUTOR_SECRET_KEY_FILE`] in the work dir, generated at
    /// the first start and kept, so executors recovered after a restart
    /// still authenticate.
    pub executor_secret_key: Option<PathBuf>,
    // operator: http auth
    /// `--authenticate_http_readonly`: the read-only operator endpoints
    /// (`/state`, `/flags`, `/metrics/snapshot`, `/files/*`, ...) need HTTP
    /// Basic credentials (realm `mesos-agent-readonly`). Mesos' default: off.
    pub authenticate_http_readonly: bool,
    /// `--authenticate_http_readwrite`: the same for endpoints that change
    /// things (realm `mesos-agent-readwrite`). Mesos' default: off.
    pub authenticate_http_readwrite: bool,
    /// `--http_credentials`: the principals and secrets Basic credentials
    /// are checked against (`{"credentials":[{"principal":..,"secret":..}]}`).
    pub http_credentials: Option<PathBuf>,
    // logs: rotation and image GC
    /// `--container_logger` with `--logrotate_max_stdout_size`,
    /// `--logrotate_stdout_options`, `--logrotate_max_stderr_size`,
    /// `--logrotate_stderr_options`: plain or rotated `stdout`/`stderr`.
    pub container_logger: ContainerLogger,
    /// `--network_cni_config_dir`, `--network_cni_plugins_dir`.
    pub cni: crate::containerizer::mesos::CniConfig,
    /// DOCKER containers: `--containerizers`, `--sandbox_directory`,
    /// `--allow_privileged`, `--docker_bridge_network`,
    /// `--docker_stop_timeout`.
    pub docker: crate::containerizer::mesos::DockerConfig,
    /// `--image_gc_config`: automatic image garbage collection (`None`: off).
    pub image_gc: Option<ImageGcConfig>,
    // disk: GC and quota
    /// `--gc_delay`, `--disk_watch_interval`, `--gc_disk_headroom`,
    /// `--enforce_container_disk_quota`, `--container_disk_watch_interval`.
    pub disk: DiskConfig,
    /// Flags `/flags` shows as given (name, value): the Mesos flags butte
    /// accepts without using them (see `agent::flags`), and those kept as
    /// text (`--container_logger`, `--image_gc_config`, ...).
    pub given_flags: Vec<(String, String)>,
}

/// `--executor_environment_variables`: a JSON object whose values are all
/// strings, as Mesos requires (`None`: no variables).
pub fn executor_environment_variables(
    json: Option<&str>,
) -> Result<Vec<(String, String)>, AgentError> {
    let Some(json) = json else {
        return Ok(Vec::new());
    };
    let bad = |message: String| AgentError::Flag {
        flag: "executor_environment_variables",
        message,
    };
    let object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(json).map_err(|e| bad(format!("not a JSON object: {e}")))?;
    object
        .into_iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => Ok((k, s)),
            other => Err(bad(format!("the value of {k:?} is {other}, not a string"))),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(|mut vars| {
            vars.sort();
            vars
        })
}

// disk: GC and quota
/// How sandboxes are garbage-collected and disk quotas enforced (Mesos'
/// flags and defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DiskConfig {
    /// `--gc_delay`: how long the directories of a terminated executor,
    /// run or framework are kept (Mesos: 1weeks).
    pub gc_delay: Duration,
    /// `--disk_watch_interval`: how often the work dir's disk usage is
    /// checked to shorten that delay (Mesos: 1mins).
    pub disk_watch_interval: Duration,
    /// `--gc_disk_headroom`: the age limit is
    /// `gc_delay * max(0, 1 - gc_disk_headroom - usage)` (Mesos: 0.1).
    pub gc_disk_headroom: f64,
    /// `--enforce_container_disk_quota`: kill a container whose sandbox
    /// outgrows its `disk` resource (Mesos: false).
    pub enforce_container_disk_quota: bool,
    /// `--container_disk_watch_interval`: how often sandboxes are measured
    /// (Mesos: 15secs).
    pub container_disk_watch_interval: Duration,
}

impl Default for DiskConfig {
    fn default() -> Self {
        DiskConfig {
            gc_delay: Duration::from_secs(7 * 24 * 3600),
            disk_watch_interval: Duration::from_secs(60),
            gc_disk_headroom: 0.1,
            enforce_container_disk_quota: false,
            container_disk_watch_interval: Duration::from_secs(15),
        }
    }
}

impl DiskConfig {
    /// Refuses values Mesos refuses: a headroom outside [0, 1], zero
    /// intervals.
    pub fn validate(&self) -> Result<(), AgentError> {
        let flag = |flag, message: &str| {
            Err(AgentError::Flag {
                flag,
                message: message.to_string(),
            })
        };
        if !(0.0..=1.0).contains(&self.gc_disk_headroom) {
            return flag("gc_disk_headroom", "must be a value between 0.0 and 1.0");
        }
        if self.disk_watch_interval.is_zero() {
            return flag("disk_watch_interval", "must be longer than zero");
        }
        if self.container_disk_watch_interval.is_zero() {
            return flag("container_disk_watch_interval", "must be longer than zero");
        }
        Ok(())
    }
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

impl AgentConfig {
    /// The `--credential`, read and checked at start (with
    /// `--authenticatee` and the timeouts).
    pub fn credential(
        &self,
    ) -> Result<Option<crate::wire::authentication::Credential>, AgentError> {
        if self.authenticatee != "crammd5" {
            return Err(AgentError::Flag {
                flag: "authenticatee",
                message: format!(
                    "{:?} is not available; butte has the built-in `crammd5` only",
                    self.authenticatee
                ),
            });
        }
        if self.authentication_timeout_min > self.authentication_timeout_max {
            return Err(AgentError::Flag {
                flag: "authentication_timeout_min",
                message: "must not be longer than --authentication_timeout_max".to_string(),
            });
        }
        let Some(path) = &self.credential else {
            return Ok(None);
        };
        crate::wire::authentication::Credential::load(path)
            .map(Some)
            .map_err(|e| AgentError::Flag {
                flag: "credential",
                message: e.to_string(),
            })
    }
}

impl AgentConfig {
    // operator: http auth
    /// The operator endpoints' authenticator; authentication without
    /// credentials is refused at start, as Mesos refuses it.
    pub fn operator_authenticator(
        &self,
    ) -> Result<crate::api::operator::Authenticator, AgentError> {
        use crate::api::operator::{auth, Authenticator};
        let flag = |e: auth::AuthError| AgentError::Flag {
            flag: "http_credentials",
            message: e.to_string(),
        };
        let credentials = match &self.http_credentials {
            Some(path) => auth::load_credentials(path).map_err(flag)?,
            None => Vec::new(),
        };
        Authenticator::new(
            self.authenticate_http_readonly,
            self.authenticate_http_readwrite,
            credentials,
        )
        .map_err(flag)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executor_environment_variables_are_a_json_object_of_strings() {
        let vars = executor_environment_variables(Some(r#"{"PATH": "/bin", "A": "1"}"#)).unwrap();
        assert_eq!(
            vars,
            [
                ("A".to_string(), "1".to_string()),
                ("PATH".into(), "/bin".into())
            ]
        );
        assert_eq!(executor_environment_variables(None).unwrap(), []);
        let err = executor_environment_variables(Some(r#"{"N": 1}"#)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--executor_environment_variables: the value of \"N\" is 1, not a string"
        );
        assert!(executor_environment_variables(Some("[]")).is_err());
    }
}
