//! One container's runtime handle, launched by this process or adopted
//! after an agent restart, behind one interface.

use crate::runtime::{Adopted, Container, ExitStatus, ResourceStats, RuntimeError};
use nix::sys::signal::Signal;
use std::os::fd::BorrowedFd;
use std::time::Duration;

pub enum Handle {
    Launched(Container),
    Adopted(Adopted),
}

/// How the executor's process ended, as far as it can be known.
#[derive(Debug, Clone, Copy)]
pub struct Exit {
    pub status: Option<ExitStatus>,
    /// The usage at the end (with the OOM and pids counters).
    pub stats: ResourceStats,
}

impl Handle {
    pub fn pid(&self) -> i32 {
        match self {
            Handle::Launched(c) => c.pid(),
            Handle::Adopted(a) => a.pid(),
        }
    }

    /// The command's pid (under an init, the init's child).
    pub fn command_pid(&self) -> i32 {
        match self {
            Handle::Launched(c) => c.command_pid(),
            Handle::Adopted(a) => a.command_pid(),
        }
    }

    pub fn pidfd(&self) -> Option<BorrowedFd<'_>> {
        match self {
            Handle::Launched(c) => c.pidfd(),
            Handle::Adopted(a) => a.pidfd(),
        }
    }

    /// Whether the first process has exited (its pidfd is readable),
    /// without reaping it; false where there is no pidfd.
    pub fn exited(&self) -> bool {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let Some(fd) = self.pidfd() else {
            return false;
        };
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
        matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
    }

    pub fn stats(&self) -> ResourceStats {
        match self {
            Handle::Launched(c) => c.stats(),
            Handle::Adopted(a) => a.stats(),
        }
    }

    pub fn signal(&self, signal: Signal) -> Result<(), RuntimeError> {
        match self {
            Handle::Launched(c) => c.signal(signal),
            Handle::Adopted(a) => a.signal(signal),
        }
    }

    /// The exit, if the process has ended (the runtime then releases the
    /// cgroup); `None` while it runs.
    pub fn try_wait(&mut self) -> Result<Option<Exit>, RuntimeError> {
        Ok(match self {
            Handle::Launched(c) => c.try_wait()?.map(|r| Exit {
                status: Some(r.status),
                stats: r.stats,
            }),
            Handle::Adopted(a) => a.try_wait()?.map(|r| Exit {
                status: r.status,
                stats: r.stats,
            }),
        })
    }

    /// SIGKILL (which ends the container's pid namespace), then the exit.
    pub fn kill(&mut self) -> Result<Exit, RuntimeError> {
        Ok(match self {
            Handle::Launched(c) => {
                let r = c.kill(Duration::ZERO)?;
                Exit {
                    status: Some(r.status),
                    stats: r.stats,
                }
            }
            Handle::Adopted(a) => {
                let r = a.kill()?;
                Exit {
                    status: r.status,
                    stats: r.stats,
                }
            }
        })
    }

    /// Lets the container run on without this process.
    pub fn detach(self) -> i32 {
        match self {
            Handle::Launched(c) => c.detach(),
            Handle::Adopted(a) => a.detach(),
        }
    }
}
