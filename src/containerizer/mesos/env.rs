//! The executor's environment, named and formatted as the Mesos agent's
//! `executorEnvironment()` and Mesos containerizer make it: `PATH`, then
//! the agent's `--executor_environment_variables`, then the `MESOS_*`
//! variables, then the executor's own `CommandInfo.environment` (which
//! wins). Durations are written as Mesos writes them (`5secs`), because
//! executors parse them with Mesos' parser. Last comes the executor's
//! token ([`authenticate`]), which nothing overrides.

use crate::proto::mesos::environment::variable::Type as VariableType;
use crate::proto::mesos::{Environment, ExecutorInfo};
use crate::runtime::DEFAULT_PATH;
use crate::support::format_duration;
use crate::support::jwt::{self, executor_claims, Key};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// What the agent tells every executor it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutorEnv {
    /// The agent's address, where the executor API is served
    /// (`MESOS_AGENT_ENDPOINT`, `ip:port`).
    pub agent_endpoint: SocketAddr,
    /// The agent's libprocess pid, `slave(1)@ip:port` (`MESOS_SLAVE_PID`).
    pub agent_pid: String,
    /// Whether the framework checkpoints (`MESOS_CHECKPOINT`); with it come
    /// `MESOS_RECOVERY_TIMEOUT` and `MESOS_SUBSCRIPTION_BACKOFF_MAX`.
    pub checkpoint: bool,
    /// `--recovery_timeout` (Mesos: 15mins).
    pub recovery_timeout: Duration,
    /// How long an executor waits at most between resubscription attempts
    /// (Mesos: 15secs).
    pub subscription_backoff_max: Duration,
    /// `--executor_shutdown_grace_period` (Mesos: 5secs); an
    /// `ExecutorInfo.shutdown_grace_period` overrides it.
    pub shutdown_grace_period: Duration,
}

/// Where the executor runs, for the path variables.
pub struct Paths<'a> {
    /// The sandbox on the host (`MESOS_DIRECTORY`).
    pub directory: &'a Path,
    /// The sandbox as the executor sees it (`MESOS_SANDBOX`): the host path,
    /// or `/mnt/mesos/sandbox` in an image's root filesystem.
    pub sandbox: &'a Path,
}

/// Why an environment cannot be built.
#[derive(Debug, PartialEq, Eq)]
pub enum EnvError {
    /// A `SECRET` variable: butte has no secret resolver.
    Secret(String),
}

/// The variable that holds the executor's token for the executor API.
pub const AUTHENTICATION_TOKEN: &str = "MESOS_EXECUTOR_AUTHENTICATION_TOKEN";

/// Gives the executor its token: a JWT (HS256, signed with `key`) whose
/// claims name its framework, executor and container, as the Mesos agent's
/// executor principal does, with no expiry (an executor may run for
/// months, and recovers with the same token).
pub fn authenticate(
    env: &mut Vec<(String, String)>,
    key: &Key,
    framework_id: &str,
    executor_id: &str,
    container_id: &str,
) {
    let claims = executor_claims::claims(framework_id, executor_id, container_id);
    set(env, AUTHENTICATION_TOKEN, jwt::encode(&claims, key));
}

/// Appends `(key, value)`, replacing an earlier value of `key`.
pub fn set(env: &mut Vec<(String, String)>, key: &str, value: impl Into<String>) {
    env.retain(|(k, _)| k != key);
    env.push((key.to_string(), value.into()));
}

/// The environment of an executor. `base` (an image's `Env`, then the
/// agent's `--executor_environment_variables`) sits below the `MESOS_*`
/// variables. `MESOS_HTTP_COMMAND_EXECUTOR` is always `1`: butte's command
/// executor speaks only the v1 HTTP API (Mesos with
/// `--http_command_executor`).
pub fn environment(
    agent: &ExecutorEnv,
    executor: &ExecutorInfo,
    framework_id: &str,
    agent_id: &str,
    paths: &Paths<'_>,
    base: &[(String, String)],
) -> Result<Vec<(String, String)>, EnvError> {
    let mut env = with_base(base);
    let grace = executor
        .shutdown_grace_period
        .as_ref()
        .map(|d| Duration::from_nanos(d.nanoseconds.max(0) as u64))
        .unwrap_or(agent.shutdown_grace_period);
    let executor_id = executor.executor_id.value.clone();
    let mesos = [
        ("MESOS_FRAMEWORK_ID", framework_id.to_string()),
        ("MESOS_EXECUTOR_ID", executor_id),
        ("MESOS_DIRECTORY", paths.directory.display().to_string()),
        ("MESOS_SANDBOX", paths.sandbox.display().to_string()),
        ("MESOS_SLAVE_ID", agent_id.to_string()),
        ("MESOS_SLAVE_PID", agent.agent_pid.clone()),
        ("MESOS_AGENT_ENDPOINT", agent.agent_endpoint.to_string()),
        ("MESOS_CHECKPOINT", bit(agent.checkpoint)),
        ("MESOS_HTTP_COMMAND_EXECUTOR", "1".to_string()),
        (
            "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD",
            format_duration(grace),
        ),
    ];
    for (k, v) in mesos {
        set(&mut env, k, v);
    }
    if agent.checkpoint {
        set(
            &mut env,
            "MESOS_RECOVERY_TIMEOUT",
            format_duration(agent.recovery_timeout),
        );
        set(
            &mut env,
            "MESOS_SUBSCRIPTION_BACKOFF_MAX",
            format_duration(agent.subscription_backoff_max),
        );
    }
    if let Some(vars) = executor
        .command
        .as_ref()
        .and_then(|c| c.environment.as_ref())
    {
        command_env(&mut env, vars)?;
    }
    Ok(env)
}

/// The environment of a standalone container: `PATH`, `base`, then
/// `MESOS_SANDBOX` (as Mesos' containerizer gives every container), then
/// its `CommandInfo.environment`. No executor variables: nothing of the
/// agent's executor API is meant for it.
pub fn standalone(
    executor: &ExecutorInfo,
    paths: &Paths<'_>,
    base: &[(String, String)],
) -> Result<Vec<(String, String)>, EnvError> {
    let mut env = with_base(base);
    set(
        &mut env,
        "MESOS_SANDBOX",
        paths.sandbox.display().to_string(),
    );
    if let Some(vars) = executor
        .command
        .as_ref()
        .and_then(|c| c.environment.as_ref())
    {
        command_env(&mut env, vars)?;
    }
    Ok(env)
}

/// `PATH` (the default), then `base` over it.
fn with_base(base: &[(String, String)]) -> Vec<(String, String)> {
    let mut env = Vec::new();
    set(&mut env, "PATH", DEFAULT_PATH);
    for (k, v) in base {
        set(&mut env, k, v.clone());
    }
    env
}

/// Applies a `CommandInfo.environment` on top of `env`.
pub fn command_env(env: &mut Vec<(String, String)>, vars: &Environment) -> Result<(), EnvError> {
    for v in &vars.variables {
        match v.r#type() {
            VariableType::Secret => return Err(EnvError::Secret(v.name.clone())),
            _ => set(env, &v.name, v.value().to_string()),
        }
    }
    Ok(())
}

fn bit(b: bool) -> String {
    if b { "1" } else { "0" }.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::mesos::environment::Variable;
    use crate::proto::mesos::{CommandInfo, DurationInfo, ExecutorId};

    fn agent(checkpoint: bool) -> ExecutorEnv {
        ExecutorEnv {
            agent_endpoint: "10.0.0.7:5051".parse().unwrap(),
            agent_pid: "slave(1)@10.0.0.7:5051".into(),
            checkpoint,
            recovery_timeout: Duration::from_secs(15 * 60),
            subscription_backoff_max: Duration::from_secs(2),
            shutdown_grace_period: Duration::from_secs(5),
        }
    }

    fn executor(vars: Vec<Variable>) -> ExecutorInfo {
        ExecutorInfo {
            executor_id: ExecutorId {
                value: "ex1".into(),
            },
            command: Some(CommandInfo {
                environment: Some(Environment { variables: vars }),
                ..CommandInfo::default()
            }),
            ..ExecutorInfo::default()
        }
    }

    fn var(name: &str, value: &str) -> Variable {
        Variable {
            name: name.into(),
            value: Some(value.into()),
            ..Variable::default()
        }
    }

    fn get<'a>(env: &'a [(String, String)], k: &str) -> Option<&'a str> {
        env.iter().find(|(x, _)| x == k).map(|(_, v)| v.as_str())
    }

    #[test]
    fn mesos_names_and_formats() {
        let paths = Paths {
            directory: Path::new("/w/slaves/S1/frameworks/F1/executors/ex1/runs/C1"),
            sandbox: Path::new("/mnt/mesos/sandbox"),
        };
        let env = environment(&agent(true), &executor(vec![]), "F1", "S1", &paths, &[]).unwrap();
        let want = [
            ("PATH", DEFAULT_PATH),
            ("MESOS_FRAMEWORK_ID", "F1"),
            ("MESOS_EXECUTOR_ID", "ex1"),
            (
                "MESOS_DIRECTORY",
                "/w/slaves/S1/frameworks/F1/executors/ex1/runs/C1",
            ),
            ("MESOS_SANDBOX", "/mnt/mesos/sandbox"),
            ("MESOS_SLAVE_ID", "S1"),
            ("MESOS_SLAVE_PID", "slave(1)@10.0.0.7:5051"),
            ("MESOS_AGENT_ENDPOINT", "10.0.0.7:5051"),
            ("MESOS_CHECKPOINT", "1"),
            ("MESOS_HTTP_COMMAND_EXECUTOR", "1"),
            ("MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD", "5secs"),
            ("MESOS_RECOVERY_TIMEOUT", "15mins"),
            ("MESOS_SUBSCRIPTION_BACKOFF_MAX", "2secs"),
        ];
        let got: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn without_checkpointing_no_recovery_variables() {
        let paths = Paths {
            directory: Path::new("/s"),
            sandbox: Path::new("/s"),
        };
        let env = environment(&agent(false), &executor(vec![]), "F1", "S1", &paths, &[]).unwrap();
        assert_eq!(get(&env, "MESOS_CHECKPOINT"), Some("0"));
        assert_eq!(get(&env, "MESOS_RECOVERY_TIMEOUT"), None);
        assert_eq!(get(&env, "MESOS_SUBSCRIPTION_BACKOFF_MAX"), None);
    }

    #[test]
    fn precedence_base_then_mesos_then_command() {
        let paths = Paths {
            directory: Path::new("/s"),
            sandbox: Path::new("/s"),
        };
        let mut ex = executor(vec![var("A", "from-command"), var("MESOS_SANDBOX", "/x")]);
        ex.shutdown_grace_period = Some(DurationInfo {
            nanoseconds: 1_500_000_000,
        });
        let base = [
            ("PATH".to_string(), "/image/bin".to_string()),
            ("A".to_string(), "from-image".to_string()),
            ("MESOS_SLAVE_ID".to_string(), "spoofed".to_string()),
        ];
        let env = environment(&agent(false), &ex, "F1", "S1", &paths, &base).unwrap();
        assert_eq!(get(&env, "PATH"), Some("/image/bin"));
        assert_eq!(get(&env, "A"), Some("from-command"));
        assert_eq!(get(&env, "MESOS_SLAVE_ID"), Some("S1"));
        assert_eq!(get(&env, "MESOS_SANDBOX"), Some("/x"));
        assert_eq!(
            get(&env, "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD"),
            Some("1500ms")
        );
        assert_eq!(env.iter().filter(|(k, _)| k == "A").count(), 1);
    }

    #[test]
    fn the_token_names_the_executor_container_and_comes_last() {
        let key = Key::new(b"k".to_vec()).unwrap();
        let mut env = vec![
            (
                AUTHENTICATION_TOKEN.to_string(),
                "from-the-framework".to_string(),
            ),
            ("A".to_string(), "1".to_string()),
        ];
        authenticate(&mut env, &key, "F1", "E1", "C1");
        assert_eq!(env[0], ("A".to_string(), "1".to_string()));
        assert_eq!(env.len(), 2);
        let (name, token) = &env[1];
        assert_eq!(name, "MESOS_EXECUTOR_AUTHENTICATION_TOKEN");
        let claims = jwt::decode(token, &key).unwrap();
        assert_eq!(claims, executor_claims::claims("F1", "E1", "C1"));
        assert!(!claims.contains_key("exp"));
    }

    #[test]
    fn secret_variables_are_refused() {
        let paths = Paths {
            directory: Path::new("/s"),
            sandbox: Path::new("/s"),
        };
        let secret = Variable {
            name: "TOKEN".into(),
            r#type: Some(VariableType::Secret as i32),
            ..Variable::default()
        };
        assert_eq!(
            environment(
                &agent(false),
                &executor(vec![secret]),
                "F",
                "S",
                &paths,
                &[]
            ),
            Err(EnvError::Secret("TOKEN".into()))
        );
    }

    #[test]
    fn a_standalone_container_gets_its_sandbox_and_command_environment_only() {
        let executor = ExecutorInfo {
            command: Some(crate::proto::mesos::CommandInfo {
                environment: Some(Environment {
                    variables: vec![crate::proto::mesos::environment::Variable {
                        name: "GREETING".into(),
                        value: Some("hi".into()),
                        ..Default::default()
                    }],
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let env = standalone(
            &executor,
            &Paths {
                directory: Path::new("/w/containers/c1"),
                sandbox: Path::new("/mnt/mesos/sandbox"),
            },
            &[("IMAGE_VAR".into(), "1".into())],
        )
        .unwrap();
        let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["PATH", "IMAGE_VAR", "MESOS_SANDBOX", "GREETING"]);
        assert_eq!(env[2].1, "/mnt/mesos/sandbox");
    }
}
