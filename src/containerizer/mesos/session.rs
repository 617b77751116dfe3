//! Debug containers: what Mesos starts for a `LAUNCH_NESTED_CONTAINER_SESSION`
//! without an image. The command joins every namespace (mount, pid,
//! network, uts, ipc) and the cgroups of its parent's first process
//! (`runtime::Runtime::join`), with the parent's environment under the
//! command's, the parent's `MESOS_SANDBOX` as its working directory, and
//! the parent's user unless the command names one, the default capability
//! set and the agent's default seccomp profile. Its stdin, stdout and
//! stderr are pipes, or one pty, whose other ends the caller holds.
//!
//! It is kept in the containerizer's table under `<parent key>.<id>`, so
//! that `wait`, `kill` and `destroy` work on it as on any container; it has
//! no cgroup, sandbox or runtime directory of its own, and ends with its
//! parent (a kill of the parent's pid namespace).

use super::error::ContainerizerError;
use super::lifecycle::Entry;
use super::MesosContainerizer;
use crate::containerizer::security::SeccompChoice;
use crate::runtime::{JoinIo, JoinSpec, Stdio, User};
use std::os::fd::OwnedFd;
use std::sync::Arc;

/// A debug container to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebugLaunch {
    /// The key of the container whose first process is joined.
    pub parent: String,
    /// The new container's key (`<parent>.<id>`).
    pub key: String,
    pub argv: Vec<String>,
    /// The command's environment, over the parent's.
    pub env: Vec<(String, String)>,
    /// `CommandInfo.user`; `None`: the parent's user.
    pub user: Option<String>,
    /// A terminal of this size (rows, columns) instead of pipes.
    pub tty: Option<(u16, u16)>,
}

/// The caller's ends of a debug container's standard streams.
#[derive(Debug)]
pub enum DebugIo {
    Pipes {
        /// Write end of the process's stdin.
        stdin: OwnedFd,
        /// Read ends of its stdout and stderr.
        stdout: OwnedFd,
        stderr: OwnedFd,
    },
    /// The pty's master: its output, its input, its window size.
    Tty { master: OwnedFd },
}

impl MesosContainerizer {
    /// Starts a debug container (blocking; see the module doc). Fails for a
    /// key already known and for a parent that is unknown or has ended.
    pub fn launch_debug(&self, req: &DebugLaunch) -> Result<DebugIo, ContainerizerError> {
        let invalid = |what: &str, reason: String| ContainerizerError::Invalid {
            id: req.key.clone(),
            what: what.into(),
            reason,
        };
        if req.argv.is_empty() {
            return Err(invalid("command", "no command to run".into()));
        }
        if self.knows(&req.key) {
            return Err(ContainerizerError::Exists(req.key.clone()));
        }
        // The command's process: its environment and user are the
        // session's (an init has neither).
        let target = self
            .command_pid(&req.parent)
            .ok_or_else(|| ContainerizerError::Unknown(req.parent.clone()))?;
        let parent_env = read_environ(target);
        let mut env = parent_env.clone();
        for (k, v) in &req.env {
            env.retain(|(key, _)| key != k);
            env.push((k.clone(), v.clone()));
        }
        let cwd = parent_env
            .iter()
            .find(|(k, _)| k == "MESOS_SANDBOX")
            .map(|(_, v)| std::path::PathBuf::from(v))
            .filter(|p| p.is_absolute());
        let user = match &req.user {
            Some(name) => Some(User::Name(name.clone())),
            None => process_user(target),
        };
        let spec = JoinSpec {
            id: req.key.clone(),
            target,
            argv: req.argv.clone(),
            env,
            cwd,
            user,
            capabilities: None,
            seccomp: self.debug_seccomp(&req.key)?,
        };
        let io_err = |source| ContainerizerError::Runtime {
            id: req.key.clone(),
            step: "make the session's pipes",
            source: crate::runtime::RuntimeError::Io {
                id: req.key.clone(),
                op: "pipe",
                source,
            },
        };
        let (io, ours) = match req.tty {
            Some((rows, cols)) => (JoinIo::Tty { rows, cols }, None),
            None => {
                let pipe = || {
                    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
                        .map_err(|e| io_err(std::io::Error::from(e)))
                };
                let (in_r, in_w) = pipe()?;
                let (out_r, out_w) = pipe()?;
                let (err_r, err_w) = pipe()?;
                let stdio = Stdio {
                    stdin: in_r,
                    stdout: out_w,
                    stderr: err_w,
                };
                (JoinIo::Stdio(stdio), Some((in_w, out_r, err_r)))
            }
        };
        let joined =
            self.inner
                .runtime
                .join(&spec, io)
                .map_err(|source| ContainerizerError::Runtime {
                    id: req.key.clone(),
                    step: "join the parent container",
                    source,
                })?;
        let io = match (ours, joined.pty) {
            (Some((stdin, stdout, stderr)), _) => DebugIo::Pipes {
                stdin,
                stdout,
                stderr,
            },
            (None, Some(master)) => DebugIo::Tty { master },
            (None, None) => unreachable!("a tty join returns its master"),
        };
        let entry = Arc::new(Entry::launched(req.key.clone(), joined.container, vec![]));
        self.inner.table().containers.insert(req.key.clone(), entry);
        tracing::info!(container = %req.key, parent = %req.parent, pid = target, "debug container started");
        Ok(io)
    }
}

impl MesosContainerizer {
    /// The agent's default seccomp program (for the default capability
    /// set), which a debug container runs under as any container does.
    fn debug_seccomp(&self, key: &str) -> Result<Option<Vec<u8>>, ContainerizerError> {
        let caps = crate::runtime::default_capabilities();
        self.inner
            .config
            .seccomp
            .program(&SeccompChoice::Default, &caps)
            .map(|p| p.map(|p| p.to_vec()))
            .map_err(|e| ContainerizerError::Invalid {
                id: key.to_string(),
                what: "seccomp profile".into(),
                reason: e.to_string(),
            })
    }
}

/// A process's environment (`/proc/<pid>/environ`), in order.
fn read_environ(pid: i32) -> Vec<(String, String)> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    parse_environ(&raw)
}

fn parse_environ(raw: &[u8]) -> Vec<(String, String)> {
    raw.split(|b| *b == 0)
        .filter_map(|kv| {
            let kv = std::str::from_utf8(kv).ok()?;
            let (k, v) = kv.split_once('=')?;
            (!k.is_empty()).then(|| (k.to_string(), v.to_string()))
        })
        .collect()
}

/// The real uid and gid of a process (`/proc/<pid>/status`).
fn process_user(pid: i32) -> Option<User> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_ids(&status)
}

fn parse_ids(status: &str) -> Option<User> {
    let field = |name: &str| -> Option<u32> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    Some(User::Id {
        uid: field("Uid:")?,
        gid: field("Gid:"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_and_ids_of_the_parent_process() {
        let env = parse_environ(
            b"PATH=/bin\0MESOS_SANDBOX=/mnt/mesos/sandbox\0A=b=c\0broken\0=x\0\xff=1\0",
        );
        assert_eq!(
            env,
            [
                ("PATH".to_string(), "/bin".to_string()),
                ("MESOS_SANDBOX".into(), "/mnt/mesos/sandbox".into()),
                ("A".into(), "b=c".into()),
            ]
        );
        let status = "Name:\tsh\nUid:\t1000\t1000\t1000\t1000\nGid:\t100\t100\t100\t100\n";
        assert_eq!(
            parse_ids(status),
            Some(User::Id {
                uid: 1000,
                gid: Some(100)
            })
        );
        assert_eq!(parse_ids("Name:\tsh\n"), None);
    }
}
