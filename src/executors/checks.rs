//! A task's `HealthCheck` and `CheckInfo`: validated, turned into probes,
//! run on their own threads (after `delay_seconds`, then every
//! `interval_seconds` after each result), and their results judged for the
//! executor's status updates.

use super::exit::{command_message, Exit};
use super::health::{CheckState, HealthPolicy, HealthReport, HealthState};
use super::launch::{self, Plan};
use super::nested::Agent;
use super::prepared::CheckServer;
use super::probe::{Outcome, Probe};
use super::reaper::Reaper;
use super::session::{Input, ProbeKind};
use crate::proto::mesos::v1::{
    check_info, check_status_info, environment, health_check, network_info,
};
use crate::proto::mesos::v1::{
    task_status, CheckInfo, CheckStatusInfo, CommandInfo, ContainerId, Environment, HealthCheck,
    TaskStatus,
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why a check cannot be run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    #[error("{0} check has no type")]
    NoType(&'static str),
    #[error("{what} check of type {kind} has no {kind} settings")]
    Missing {
        what: &'static str,
        kind: &'static str,
    },
    #[error("{0} check: invalid {1}: must be a non-negative number of seconds")]
    Seconds(&'static str, &'static str),
    #[error("{0} check: the scheme {1:?} is not supported (only http)")]
    Scheme(&'static str, String),
    #[error("{0} check: the path {1:?} must start with '/'")]
    Path(&'static str, String),
    #[error("{0} check: port {1} is out of range")]
    Port(&'static str, u32),
    #[error("{0} check: {1}")]
    Command(&'static str, String),
}

/// When a probe runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    pub delay: Duration,
    pub interval: Duration,
    pub timeout: Duration,
}

/// What command probes need to start like the task: its plan's
/// environment and root filesystem.
#[derive(Debug, Clone)]
pub struct ProbeContext {
    /// The task's plan (environment, sandbox, root filesystem).
    pub task: Plan,
    /// Runs commands in the task's root filesystem (tasks with one); closed
    /// once no probe holds it.
    pub server: Option<Arc<CheckServer>>,
    /// A nested task: command probes run through the agent, in a DEBUG
    /// container under the task's container.
    pub nested: Option<(Agent, ContainerId)>,
}

fn seconds(what: &'static str, name: &'static str, v: f64) -> Result<Duration, CheckError> {
    if !(v.is_finite() && v >= 0.0) {
        return Err(CheckError::Seconds(what, name));
    }
    Duration::try_from_secs_f64(v).map_err(|_| CheckError::Seconds(what, name))
}

fn port(what: &'static str, p: u32) -> Result<u16, CheckError> {
    u16::try_from(p)
        .ok()
        .filter(|p| *p != 0)
        .ok_or(CheckError::Port(what, p))
}

fn local(ipv6: bool, port: u16) -> SocketAddr {
    let ip = if ipv6 {
        IpAddr::V6(Ipv6Addr::LOCALHOST)
    } else {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    };
    SocketAddr::new(ip, port)
}

fn http_path(what: &'static str, path: Option<&str>) -> Result<String, CheckError> {
    match path.filter(|p| !p.is_empty()) {
        None => Ok("/".into()),
        Some(p) if p.starts_with('/') => Ok(p.into()),
        Some(p) => Err(CheckError::Path(what, p.into())),
    }
}

fn command_probe(
    what: &'static str,
    command: &CommandInfo,
    ctx: &ProbeContext,
) -> Result<Probe, CheckError> {
    let (program, argv) = launch::command_line(command, None)
        .map_err(|e| CheckError::Command(what, e.to_string()))?;
    let mut env = ctx.task.env.clone();
    launch::apply_environment(&mut env, command.environment.as_ref())
        .map_err(|e| CheckError::Command(what, e.to_string()))?;
    if let Some((agent, task)) = &ctx.nested {
        // The task's environment, then the check's, as for a task process
        // (the DEBUG container shares the task's filesystem and user).
        let mut command = command.clone();
        command.environment = Some(Environment {
            variables: env
                .into_iter()
                .map(|(name, value)| environment::Variable {
                    name,
                    r#type: Some(environment::variable::Type::Value as i32),
                    value: Some(value),
                    secret: None,
                })
                .collect(),
        });
        return Ok(Probe::Nested {
            agent: agent.clone(),
            task: task.clone(),
            command: Box::new(command),
        });
    }
    Ok(Probe::Command {
        plan: Box::new(Plan {
            program,
            argv,
            env,
            cwd: ctx.task.cwd.clone(),
            // Checks run as the task's user, in the task's filesystem.
            user: ctx.task.user.clone(),
            rootfs: ctx.task.rootfs.clone(),
        }),
        server: ctx.server.clone(),
    })
}

/// The probe, schedule and policy of a `HealthCheck`.
pub fn health_probe(
    h: &HealthCheck,
    ctx: &ProbeContext,
) -> Result<(Probe, Schedule, HealthPolicy), CheckError> {
    const WHAT: &str = "health";
    let schedule = Schedule {
        delay: seconds(WHAT, "delay_seconds", h.delay_seconds())?,
        interval: seconds(WHAT, "interval_seconds", h.interval_seconds())?,
        timeout: seconds(WHAT, "timeout_seconds", h.timeout_seconds())?,
    };
    let policy = HealthPolicy {
        consecutive_failures: h.consecutive_failures(),
        grace_period: seconds(WHAT, "grace_period_seconds", h.grace_period_seconds())?,
    };
    let ipv6 = |p: Option<i32>| p == Some(network_info::Protocol::IPv6 as i32);
    let probe = match h.r#type.map(health_check::Type::try_from) {
        Some(Ok(health_check::Type::Command)) => {
            let c = h.command.as_ref().ok_or(CheckError::Missing {
                what: WHAT,
                kind: "COMMAND",
            })?;
            command_probe(WHAT, c, ctx)?
        }
        Some(Ok(health_check::Type::Http)) => {
            let http = h.http.as_ref().ok_or(CheckError::Missing {
                what: WHAT,
                kind: "HTTP",
            })?;
            if let Some(s) = http.scheme.as_deref().filter(|s| *s != "http") {
                return Err(CheckError::Scheme(WHAT, s.into()));
            }
            Probe::Http {
                addr: local(ipv6(http.protocol), port(WHAT, http.port)?).to_string(),
                path: http_path(WHAT, http.path.as_deref())?,
            }
        }
        Some(Ok(health_check::Type::Tcp)) => {
            let tcp = h.tcp.as_ref().ok_or(CheckError::Missing {
                what: WHAT,
                kind: "TCP",
            })?;
            Probe::Tcp {
                addr: local(ipv6(tcp.protocol), port(WHAT, tcp.port)?),
            }
        }
        _ => return Err(CheckError::NoType(WHAT)),
    };
    Ok((probe, schedule, policy))
}

/// The probe and schedule of a `CheckInfo`.
pub fn check_probe(c: &CheckInfo, ctx: &ProbeContext) -> Result<(Probe, Schedule), CheckError> {
    const WHAT: &str = "general";
    let schedule = Schedule {
        delay: seconds(WHAT, "delay_seconds", c.delay_seconds())?,
        interval: seconds(WHAT, "interval_seconds", c.interval_seconds())?,
        timeout: seconds(WHAT, "timeout_seconds", c.timeout_seconds())?,
    };
    let probe = match c.r#type.map(check_info::Type::try_from) {
        Some(Ok(check_info::Type::Command)) => {
            let cmd = c.command.as_ref().ok_or(CheckError::Missing {
                what: WHAT,
                kind: "COMMAND",
            })?;
            command_probe(WHAT, &cmd.command, ctx)?
        }
        Some(Ok(check_info::Type::Http)) => {
            let http = c.http.as_ref().ok_or(CheckError::Missing {
                what: WHAT,
                kind: "HTTP",
            })?;
            Probe::Http {
                addr: local(false, port(WHAT, http.port)?).to_string(),
                path: http_path(WHAT, http.path.as_deref())?,
            }
        }
        Some(Ok(check_info::Type::Tcp)) => {
            let tcp = c.tcp.as_ref().ok_or(CheckError::Missing {
                what: WHAT,
                kind: "TCP",
            })?;
            Probe::Tcp {
                addr: local(false, port(WHAT, tcp.port)?),
            }
        }
        _ => return Err(CheckError::NoType(WHAT)),
    };
    Ok((probe, schedule))
}

/// True when a health probe's outcome counts as healthy: exit code 0, an
/// HTTP status from 200 to 399, an accepted connection.
pub fn is_healthy(outcome: &Outcome) -> Result<(), String> {
    match outcome {
        Outcome::Command(0) | Outcome::Tcp(true) => Ok(()),
        Outcome::Http(s) if (200..400).contains(s) => Ok(()),
        Outcome::Command(c) => Err(command_message(Exit::Code(*c))),
        Outcome::Http(s) => Err(format!("Unexpected HTTP response code: {s}")),
        Outcome::Tcp(false) => Err("TCP connection failed".into()),
        Outcome::Error(e) => Err(e.clone()),
    }
}

/// The `check_status` every update of a task with a check carries before
/// any result: the type, with its (empty) result message.
pub fn empty_check_status(check: &CheckInfo) -> CheckStatusInfo {
    let mut s = CheckStatusInfo {
        r#type: check.r#type,
        ..Default::default()
    };
    match check.r#type.map(check_info::Type::try_from) {
        Some(Ok(check_info::Type::Command)) => {
            s.command = Some(check_status_info::Command::default())
        }
        Some(Ok(check_info::Type::Http)) => s.http = Some(check_status_info::Http::default()),
        Some(Ok(check_info::Type::Tcp)) => s.tcp = Some(check_status_info::Tcp::default()),
        _ => {}
    }
    s
}

/// A general check's result as a `CheckStatusInfo`; a probe that could not
/// run gives the empty one.
pub fn check_status(check: &CheckInfo, outcome: &Outcome) -> CheckStatusInfo {
    let mut s = empty_check_status(check);
    match outcome {
        Outcome::Command(c) => {
            s.command = Some(check_status_info::Command {
                exit_code: Some(*c),
            })
        }
        Outcome::Http(code) => {
            s.http = Some(check_status_info::Http {
                status_code: Some(u32::from(*code)),
            })
        }
        Outcome::Tcp(ok) => {
            s.tcp = Some(check_status_info::Tcp {
                succeeded: Some(*ok),
            })
        }
        Outcome::Error(_) => {}
    }
    s
}

/// Runs `probe` on a thread until `stop` is set, sending each outcome.
fn spawn_prober(
    task_id: String,
    kind: ProbeKind,
    probe: Probe,
    schedule: Schedule,
    reaper: Reaper,
    stop: Arc<AtomicBool>,
    inputs: Sender<Input>,
) {
    // A nested command check calls the agent (see `nested`).
    let stack = if matches!(probe, Probe::Nested { .. }) {
        super::nested::CALL_STACK
    } else {
        256 << 10
    };
    let spawned = std::thread::Builder::new()
        .name("check".into())
        .stack_size(stack)
        .spawn(move || {
            std::thread::sleep(schedule.delay);
            while !stop.load(Ordering::Relaxed) {
                let outcome = probe.run(schedule.timeout, &reaper);
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let Some(outcome) = outcome else {
                    std::thread::sleep(schedule.interval);
                    continue;
                };
                let input = Input::Probe {
                    task_id: task_id.clone(),
                    kind,
                    outcome,
                };
                if inputs.send(input).is_err() {
                    return;
                }
                std::thread::sleep(schedule.interval);
            }
        });
    if let Err(e) = spawned {
        eprintln!("butte executor: cannot start a {kind:?} check thread: {e}");
    }
}

/// The checks of one task and their state.
#[derive(Debug, Default)]
pub struct TaskChecks {
    health: Option<HealthState>,
    check: Option<(CheckInfo, CheckState<CheckStatusInfo>)>,
    stop: Arc<AtomicBool>,
}

impl TaskChecks {
    /// Starts the task's checks. A check that cannot run is reported on
    /// stderr and skipped, as Mesos does.
    pub fn start(
        task_id: &str,
        health: Option<&HealthCheck>,
        check: Option<&CheckInfo>,
        ctx: &ProbeContext,
        reaper: &Reaper,
        inputs: &Sender<Input>,
    ) -> TaskChecks {
        let mut checks = TaskChecks::default();
        let now = Instant::now();
        if let Some(c) = check {
            match check_probe(c, ctx) {
                Ok((probe, schedule)) => {
                    checks.check = Some((c.clone(), CheckState::new(empty_check_status(c))));
                    spawn_prober(
                        task_id.into(),
                        ProbeKind::Check,
                        probe,
                        schedule,
                        reaper.clone(),
                        checks.stop.clone(),
                        inputs.clone(),
                    );
                }
                Err(e) => {
                    eprintln!("butte executor: task {task_id}: failed to create checker: {e}")
                }
            }
        }
        if let Some(h) = health {
            match health_probe(h, ctx) {
                Ok((probe, schedule, policy)) => {
                    checks.health = Some(HealthState::new(policy, now));
                    spawn_prober(
                        task_id.into(),
                        ProbeKind::Health,
                        probe,
                        schedule,
                        reaper.clone(),
                        checks.stop.clone(),
                        inputs.clone(),
                    );
                }
                Err(e) => eprintln!(
                    "butte executor: task {task_id}: failed to create health checker: {e}"
                ),
            }
        }
        checks
    }

    /// Stops probing; later results are ignored.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.health = None;
        self.check = None;
    }

    /// Judges a health probe's outcome.
    pub fn health_result(&mut self, outcome: &Outcome, now: Instant) -> Option<HealthReport> {
        let h = self.health.as_mut()?;
        match is_healthy(outcome) {
            Ok(()) => h.success(),
            Err(why) => {
                eprintln!("butte executor: health check failed: {why}");
                h.failure(now)
            }
        }
    }

    /// Judges a general check's outcome: the new status when it changed.
    pub fn check_result(&mut self, outcome: &Outcome) -> Option<CheckStatusInfo> {
        let (info, state) = self.check.as_mut()?;
        state.update(check_status(info, outcome))
    }

    /// What a probe's outcome changes for the task, as Mesos reports it:
    /// a TASK_RUNNING-like refresh of `last` (from `refresh`, which makes
    /// a new update) carrying `healthy` or `check_status`, and whether the
    /// health policy now wants the task killed. `None`: nothing to say.
    pub fn probe_update(
        &mut self,
        kind: ProbeKind,
        outcome: &Outcome,
        refresh: impl FnOnce() -> TaskStatus,
    ) -> Option<(TaskStatus, bool)> {
        match kind {
            ProbeKind::Health => {
                let report = self.health_result(outcome, Instant::now())?;
                let mut st = refresh();
                st.reason = Some(task_status::Reason::TaskHealthCheckStatusUpdated as i32);
                st.healthy = Some(report.healthy);
                Some((st, report.kill_task))
            }
            ProbeKind::Check => {
                let check = self.check_result(outcome)?;
                let mut st = refresh();
                st.reason = Some(task_status::Reason::TaskCheckStatusUpdated as i32);
                st.check_status = Some(check);
                Some((st, false))
            }
        }
    }
}

impl Drop for TaskChecks {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::mesos::v1::health_check::{HttpCheckInfo, TcpCheckInfo};
    use std::path::PathBuf;

    fn ctx() -> ProbeContext {
        ProbeContext {
            task: Plan {
                program: "/bin/true".into(),
                argv: vec!["true".into()],
                env: vec![("PATH".into(), "/bin".into())],
                cwd: "/sb".into(),
                user: Some("nobody".into()),
                rootfs: None,
            },
            server: None,
            nested: None,
        }
    }

    #[test]
    fn health_checks_take_mesos_defaults() {
        let h = HealthCheck {
            r#type: Some(health_check::Type::Tcp as i32),
            tcp: Some(TcpCheckInfo {
                port: 8080,
                protocol: None,
            }),
            ..Default::default()
        };
        let (probe, schedule, policy) = health_probe(&h, &ctx()).unwrap();
        assert!(matches!(probe, Probe::Tcp { addr } if addr.to_string() == "127.0.0.1:8080"));
        assert_eq!(schedule.delay, Duration::from_secs(15));
        assert_eq!(schedule.interval, Duration::from_secs(10));
        assert_eq!(schedule.timeout, Duration::from_secs(20));
        assert_eq!(policy.consecutive_failures, 3);
        assert_eq!(policy.grace_period, Duration::from_secs(10));
    }

    #[test]
    fn invalid_checks_are_refused() {
        let http = |scheme: Option<&str>, path: Option<&str>| HealthCheck {
            r#type: Some(health_check::Type::Http as i32),
            http: Some(HttpCheckInfo {
                port: 80,
                scheme: scheme.map(Into::into),
                path: path.map(Into::into),
                ..Default::default()
            }),
            ..Default::default()
        };
        let (probe, ..) = health_probe(&http(None, None), &ctx()).unwrap();
        assert!(matches!(probe, Probe::Http { ref path, .. } if path == "/"));
        assert!(matches!(
            health_probe(&http(Some("https"), None), &ctx()),
            Err(CheckError::Scheme(..))
        ));
        assert!(matches!(
            health_probe(&http(None, Some("x")), &ctx()),
            Err(CheckError::Path(..))
        ));
        let mut h = http(None, None);
        h.delay_seconds = Some(-1.0);
        assert!(matches!(
            health_probe(&h, &ctx()),
            Err(CheckError::Seconds(..))
        ));
        assert!(matches!(
            health_probe(&HealthCheck::default(), &ctx()),
            Err(CheckError::NoType(_))
        ));
    }

    #[test]
    fn command_checks_run_as_the_task_user_with_the_task_environment() {
        let h = HealthCheck {
            r#type: Some(health_check::Type::Command as i32),
            command: Some(CommandInfo {
                value: Some("test -f ready".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let (probe, ..) = health_probe(&h, &ctx()).unwrap();
        let Probe::Command { plan, .. } = probe else {
            panic!("not a command probe")
        };
        assert_eq!(plan.argv, vec!["sh", "-c", "test -f ready"]);
        assert_eq!(plan.user.as_deref(), Some("nobody"));
        assert_eq!(plan.cwd, PathBuf::from("/sb"));
        assert!(plan.env.contains(&("PATH".into(), "/bin".into())));
    }

    #[test]
    fn health_outcomes_are_judged_as_mesos_does() {
        assert!(is_healthy(&Outcome::Command(0)).is_ok());
        assert_eq!(
            is_healthy(&Outcome::Command(1)).unwrap_err(),
            "Command exited with status 1"
        );
        assert!(is_healthy(&Outcome::Http(200)).is_ok());
        assert!(is_healthy(&Outcome::Http(399)).is_ok());
        assert!(is_healthy(&Outcome::Http(404)).is_err());
        assert!(is_healthy(&Outcome::Http(199)).is_err());
        assert!(is_healthy(&Outcome::Tcp(true)).is_ok());
        assert!(is_healthy(&Outcome::Tcp(false)).is_err());
        assert!(is_healthy(&Outcome::Error("timed out".into())).is_err());
    }

    #[test]
    fn check_results_are_reported_on_change() {
        let info = CheckInfo {
            r#type: Some(check_info::Type::Command as i32),
            ..Default::default()
        };
        let mut checks = TaskChecks::default();
        checks.check = Some((info.clone(), CheckState::new(empty_check_status(&info))));
        let s = checks.check_result(&Outcome::Command(0)).unwrap();
        assert_eq!(s.command.unwrap().exit_code, Some(0));
        assert_eq!(checks.check_result(&Outcome::Command(0)), None);
        let s = checks.check_result(&Outcome::Error("x".into())).unwrap();
        assert_eq!(s, empty_check_status(&info));
        checks.stop();
        assert_eq!(checks.check_result(&Outcome::Command(1)), None);
    }
}
