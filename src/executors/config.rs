//! What the agent tells an executor through its environment (the `MESOS_*`
//! variables of the executor HTTP API).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

/// The executor's settings, read once at start.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub framework_id: String,
    pub executor_id: String,
    /// `ip:port` of the agent.
    pub agent_endpoint: String,
    /// The sandbox on the host filesystem (`MESOS_DIRECTORY`).
    pub directory: PathBuf,
    /// The sandbox as the executor's tasks see it (`MESOS_SANDBOX`).
    pub sandbox: PathBuf,
    /// Framework checkpointing: reconnect after a disconnection.
    pub checkpoint: bool,
    /// How long to keep trying to resubscribe after a disconnection.
    pub recovery_timeout: Duration,
    /// The longest wait between two subscription attempts.
    pub subscription_backoff_max: Duration,
    /// How long the agent waits after SHUTDOWN before destroying us.
    pub shutdown_grace_period: Duration,
    /// `Bearer` token for the agent, when it authenticates executors.
    pub auth_token: Option<String>,
}

/// The variable holding the executor's token for the agent's executor API.
pub const AUTHENTICATION_TOKEN: &str = "MESOS_EXECUTOR_AUTHENTICATION_TOKEN";

/// The agent's defaults, used when a variable is missing.
pub const DEFAULT_RECOVERY_TIMEOUT: Duration = Duration::from_secs(15 * 60);
pub const DEFAULT_SUBSCRIPTION_BACKOFF_MAX: Duration = Duration::from_secs(2);
pub const DEFAULT_SHUTDOWN_GRACE_PERIOD: Duration = Duration::from_secs(5);

/// A missing or unreadable variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("expecting {0} to be set in the environment")]
    Missing(&'static str),
    #[error("invalid {name} {value:?}: expected a duration such as 5secs, 100ms or 15mins")]
    Duration { name: &'static str, value: String },
}

impl Config {
    /// Reads the settings from environment variables.
    pub fn from_env(vars: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        let env: HashMap<String, String> = vars.into_iter().collect();
        let required = |name: &'static str| {
            env.get(name)
                .filter(|v| !v.is_empty())
                .cloned()
                .ok_or(ConfigError::Missing(name))
        };
        let duration = |name: &'static str, default: Duration| match env.get(name) {
            None => Ok(default),
            Some(v) => {
                crate::support::parse_duration(v)
                    .ok()
                    .ok_or_else(|| ConfigError::Duration {
                        name,
                        value: v.clone(),
                    })
            }
        };
        let directory = env
            .get("MESOS_DIRECTORY")
            .or_else(|| env.get("MESOS_SANDBOX"))
            .map(PathBuf::from)
            .or_else(|| std::env::current_dir().ok())
            .ok_or(ConfigError::Missing("MESOS_DIRECTORY"))?;
        Ok(Config {
            framework_id: required("MESOS_FRAMEWORK_ID")?,
            executor_id: required("MESOS_EXECUTOR_ID")?,
            agent_endpoint: required("MESOS_AGENT_ENDPOINT").map(|e| {
                e.trim_start_matches("http://")
                    .trim_end_matches('/')
                    .to_string()
            })?,
            sandbox: env
                .get("MESOS_SANDBOX")
                .map(PathBuf::from)
                .unwrap_or_else(|| directory.clone()),
            directory,
            checkpoint: env
                .get("MESOS_CHECKPOINT")
                .is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true")),
            recovery_timeout: duration("MESOS_RECOVERY_TIMEOUT", DEFAULT_RECOVERY_TIMEOUT)?,
            subscription_backoff_max: duration(
                "MESOS_SUBSCRIPTION_BACKOFF_MAX",
                DEFAULT_SUBSCRIPTION_BACKOFF_MAX,
            )?,
            shutdown_grace_period: duration(
                "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD",
                DEFAULT_SHUTDOWN_GRACE_PERIOD,
            )?,
            auth_token: env
                .get(AUTHENTICATION_TOKEN)
                .filter(|v| !v.is_empty())
                .cloned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn reads_the_agent_variables() {
        let c = Config::from_env(vars(&[
            ("MESOS_FRAMEWORK_ID", "fw"),
            ("MESOS_EXECUTOR_ID", "ex"),
            ("MESOS_AGENT_ENDPOINT", "http://127.0.0.1:5051/"),
            ("MESOS_DIRECTORY", "/var/sb"),
            ("MESOS_SANDBOX", "/mnt/mesos/sandbox"),
            ("MESOS_CHECKPOINT", "1"),
            ("MESOS_RECOVERY_TIMEOUT", "15mins"),
            ("MESOS_SUBSCRIPTION_BACKOFF_MAX", "250ms"),
            ("MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD", "5secs"),
        ]))
        .unwrap();
        assert_eq!(c.agent_endpoint, "127.0.0.1:5051");
        assert_eq!(c.directory, PathBuf::from("/var/sb"));
        assert_eq!(c.sandbox, PathBuf::from("/mnt/mesos/sandbox"));
        assert!(c.checkpoint);
        assert_eq!(c.recovery_timeout, Duration::from_secs(900));
        assert_eq!(c.subscription_backoff_max, Duration::from_millis(250));
        assert_eq!(c.shutdown_grace_period, Duration::from_secs(5));
    }

    #[test]
    fn missing_and_bad_variables_are_named() {
        assert_eq!(
            Config::from_env(vars(&[("MESOS_EXECUTOR_ID", "ex")])).unwrap_err(),
            ConfigError::Missing("MESOS_FRAMEWORK_ID")
        );
        let e = Config::from_env(vars(&[
            ("MESOS_FRAMEWORK_ID", "fw"),
            ("MESOS_EXECUTOR_ID", "ex"),
            ("MESOS_AGENT_ENDPOINT", "a:1"),
            ("MESOS_DIRECTORY", "/x"),
            ("MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD", "soon"),
        ]))
        .unwrap_err();
        assert!(e
            .to_string()
            .contains("MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD"));
    }
}
