//! One run of a check: a command (in the task's root filesystem when it has
//! one, through the check server prepared for it; in a nested container's
//! namespaces through the agent, see `nested`), an HTTP GET or a TCP
//! connect to the task on 127.0.0.1, bounded by the check's timeout.

use super::exit::Exit;
use super::http;
use super::launch::{self, Plan};
use super::nested::Agent;
use super::prepared::CheckServer;
use super::reaper::Reaper;
use crate::proto::mesos::v1::{CommandInfo, ContainerId};
use crate::support::format_duration;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::process::Stdio;
use std::sync::{mpsc, Arc};
use std::time::Duration;

/// What a probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The command exited with this code.
    Command(i32),
    /// The server answered with this status.
    Http(u16),
    /// Whether the connection was accepted.
    Tcp(bool),
    /// The probe could not be performed (timed out, no answer, ...).
    Error(String),
}

/// A probe to run repeatedly.
#[derive(Debug, Clone)]
pub enum Probe {
    /// A command; with a root filesystem, run by the task's check server.
    Command {
        plan: Box<Plan>,
        server: Option<Arc<CheckServer>>,
    },
    Http {
        addr: String,
        path: String,
    },
    Tcp {
        addr: SocketAddr,
    },
    /// A command in a new DEBUG container under the task's nested
    /// container, launched by the agent.
    Nested {
        agent: Agent,
        task: ContainerId,
        command: Box<CommandInfo>,
    },
}

impl Probe {
    /// Runs once, within `timeout` (zero: no limit). `None`: no result this
    /// time (a nested check the agent could not run), as Mesos discards one.
    pub fn run(&self, timeout: Duration, reaper: &Reaper) -> Option<Outcome> {
        let limit = if timeout.is_zero() {
            Duration::from_secs(365 * 86400)
        } else {
            timeout
        };
        Some(match self {
            Probe::Nested {
                agent,
                task,
                command,
            } => return agent.command_check(task, command, limit),
            Probe::Command { plan, server } => match launch::prepared_run(plan) {
                Some(run) => match server {
                    Some(server) => server.run(&run, limit),
                    None => Outcome::Error(
                        "the task's checks cannot run in its root filesystem: no check process"
                            .into(),
                    ),
                },
                None => run_command(plan, limit, reaper),
            },
            Probe::Http { addr, path } => match http::get_status(addr, path, limit) {
                Ok(status) => Outcome::Http(status),
                Err(e) => Outcome::Error(e.to_string()),
            },
            Probe::Tcp { addr } => Outcome::Tcp(TcpStream::connect_timeout(addr, limit).is_ok()),
        })
    }
}

fn run_command(plan: &Plan, limit: Duration, reaper: &Reaper) -> Outcome {
    let mut cmd = match launch::command(plan) {
        Ok(c) => c,
        Err(e) => return Outcome::Error(e.to_string()),
    };
    // Its output goes to the executor's stderr, as Mesos does.
    let stderr = || {
        std::io::stderr()
            .as_fd()
            .try_clone_to_owned()
            .map(Stdio::from)
            .unwrap_or_else(|_| Stdio::null())
    };
    cmd.stdin(Stdio::null()).stdout(stderr()).stderr(stderr());
    let (tx, rx) = mpsc::channel();
    let pid = match reaper.spawn(
        &mut cmd,
        Box::new(move |exit| {
            let _ = tx.send(exit);
        }),
    ) {
        Ok(pid) => pid,
        Err(e) => return Outcome::Error(format!("failed to launch the check command: {e}")),
    };
    match rx.recv_timeout(limit) {
        Ok(Exit::Code(code)) => Outcome::Command(code),
        Ok(exit @ Exit::Signal(_)) => Outcome::Error(format!("Command {exit}")),
        Err(_) => {
            let pid = nix::unistd::Pid::from_raw(pid as i32);
            let _ = nix::sys::signal::killpg(pid, nix::sys::signal::SIGKILL);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::SIGKILL);
            let _ = rx.recv();
            Outcome::Error(format!(
                "Command timed out after {}",
                format_duration(limit)
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    fn shell(script: &str) -> Probe {
        Probe::Command {
            plan: Box::new(Plan {
                program: "/bin/sh".into(),
                argv: vec!["sh".into(), "-c".into(), script.into()],
                env: vec![("PATH".into(), "/bin:/usr/bin".into())],
                cwd: "/".into(),
                user: None,
                rootfs: None,
            }),
            server: None,
        }
    }

    #[test]
    fn command_probes_report_exit_codes_and_timeouts() {
        let reaper = Reaper::new(false);
        let t = Duration::from_secs(10);
        assert_eq!(shell("exit 0").run(t, &reaper), Some(Outcome::Command(0)));
        assert_eq!(shell("exit 7").run(t, &reaper), Some(Outcome::Command(7)));
        assert_eq!(
            shell("sleep 5").run(Duration::from_millis(200), &reaper),
            Some(Outcome::Error("Command timed out after 200ms".into()))
        );
    }

    #[test]
    fn http_and_tcp_probes() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = [0u8; 1024];
            let n = s.read(&mut buf).unwrap();
            let req = String::from_utf8_lossy(&buf[..n]).to_string();
            s.write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
                .unwrap();
            req
        });
        let reaper = Reaper::new(false);
        let probe = Probe::Http {
            addr: addr.to_string(),
            path: "/health".into(),
        };
        assert_eq!(
            probe.run(Duration::from_secs(5), &reaper),
            Some(Outcome::Http(503))
        );
        assert!(server
            .join()
            .unwrap()
            .starts_with("GET /health HTTP/1.1\r\n"));
        // Port 1 (tcpmux) has no listener here; a port freed by this test
        // could be taken again by a test running beside it.
        let closed: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert_eq!(
            Probe::Tcp { addr: closed }.run(Duration::from_secs(5), &reaper),
            Some(Outcome::Tcp(false))
        );
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let probe = Probe::Tcp {
            addr: l.local_addr().unwrap(),
        };
        assert_eq!(
            probe.run(Duration::from_secs(5), &reaper),
            Some(Outcome::Tcp(true))
        );
        let probe = Probe::Http {
            addr: closed.to_string(),
            path: "/".into(),
        };
        assert!(matches!(
            probe.run(Duration::from_secs(5), &reaper),
            Some(Outcome::Error(_))
        ));
    }
}
