//! A running (or exited) sandbox, as the runtime hands it out.
//!
//! ```text
//!  launch() --> Running --wait()/try_wait()/kill()--> Exited --destroy()--> gone
//!                  \-------------- destroy() / drop ---------------------/
//! ```
//! On exit the cgroup's statistics and OOM counter are read into the
//! [`ExitRecord`], leftovers are killed and the cgroup is removed, so an
//! exited container holds no kernel state.

use super::cgroups::{Cgroup, ResourceStats};
use super::sys;
use super::RuntimeError;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

/// How the sandbox's main process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum ExitStatus {
    Exited(i32),
    Signaled(i32),
}

impl ExitStatus {
    /// The shell convention: the exit code, or 128 + the signal number.
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Exited(c) => c,
            ExitStatus::Signaled(s) => 128 + s,
        }
    }
}

/// What the runtime knows about a sandbox that ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ExitRecord {
    pub status: ExitStatus,
    /// The OOM killer killed a process of the sandbox.
    pub oom_killed: bool,
    /// Usage at the end (peaks, totals, limit hits).
    pub stats: ResourceStats,
}

/// A sandbox started by [`super::Runtime::launch`].
#[derive(Debug)]
pub struct Container {
    pub(super) id: String,
    pub(super) pid: Pid,
    pub(super) pidfd: Option<OwnedFd>,
    pub(super) cgroup: Option<Cgroup>,
    pub(super) exit: Option<ExitRecord>,
}

impl Container {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The pid of the sandbox's main process, in the host's pid namespace.
    pub fn pid(&self) -> i32 {
        self.pid.as_raw()
    }

    /// A pidfd of the main process (readable when it exits), for event
    /// loops; `None` on kernels before 5.3.
    pub fn pidfd(&self) -> Option<BorrowedFd<'_>> {
        self.pidfd.as_ref().map(|f| f.as_fd())
    }

    /// The exit record, once the container has been waited for.
    pub fn exit_record(&self) -> Option<ExitRecord> {
        self.exit
    }

    /// Current resource usage (zeros once the container has exited).
    pub fn stats(&self) -> ResourceStats {
        self.cgroup.as_ref().map(Cgroup::stats).unwrap_or_default()
    }

    /// Sends a signal to the main process. A signal to an exited container
    /// is not an error.
    pub fn signal(&self, signal: Signal) -> Result<(), RuntimeError> {
        if self.exit.is_some() {
            return Ok(());
        }
        let r = match &self.pidfd {
            Some(fd) => sys::pidfd_send_signal(fd.as_fd(), signal as i32),
            None => nix::sys::signal::kill(self.pid, signal).map_err(std::io::Error::from),
        };
        match r {
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
            other => other.map_err(|source| self.io_err("signal", source)),
        }
    }

    /// Waits for the main process to exit, then releases the cgroup.
    pub fn wait(&mut self) -> Result<ExitRecord, RuntimeError> {
        loop {
            if let Some(r) = self.exit {
                return Ok(r);
            }
            self.reap(WaitPidFlag::empty())?;
        }
    }

    /// Like [`Container::wait`] but returns `None` at once if still running.
    pub fn try_wait(&mut self) -> Result<Option<ExitRecord>, RuntimeError> {
        if self.exit.is_none() {
            self.reap(WaitPidFlag::WNOHANG)?;
        }
        Ok(self.exit)
    }

    /// Waits up to `timeout` for the exit.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<ExitRecord>, RuntimeError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(r) = self.try_wait()? {
                return Ok(Some(r));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            match &self.pidfd {
                Some(fd) => {
                    let mut fds = [nix::poll::PollFd::new(
                        fd.as_fd(),
                        nix::poll::PollFlags::POLLIN,
                    )];
                    let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
                    let _ = nix::poll::poll(
                        &mut fds,
                        nix::poll::PollTimeout::try_from(ms).unwrap_or(nix::poll::PollTimeout::MAX),
                    );
                }
                None => std::thread::sleep(left.min(Duration::from_millis(5))),
            }
        }
    }

    /// Stops the container gracefully: SIGTERM, then SIGKILL once `grace`
    /// has passed. Returns the exit record.
    pub fn kill(&mut self, grace: Duration) -> Result<ExitRecord, RuntimeError> {
        if !grace.is_zero() {
            self.signal(Signal::SIGTERM)?;
            if let Some(r) = self.wait_timeout(grace)? {
                return Ok(r);
            }
        }
        self.signal(Signal::SIGKILL)?;
        self.wait()
    }

    /// Kills everything in the container and removes all its state.
    pub fn destroy(mut self) -> Result<ExitRecord, RuntimeError> {
        self.kill(Duration::ZERO)
    }

    fn reap(&mut self, flags: WaitPidFlag) -> Result<(), RuntimeError> {
        let status = match waitpid(self.pid, Some(flags | WaitPidFlag::__WALL)) {
            Ok(WaitStatus::Exited(_, code)) => ExitStatus::Exited(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => ExitStatus::Signaled(sig as i32),
            Ok(_) => return Ok(()),
            Err(nix::Error::EINTR) => return Ok(()),
            Err(e) => return Err(self.io_err("wait", e.into())),
        };
        let (stats, cleanup) = self.release();
        self.exit = Some(ExitRecord {
            status,
            oom_killed: stats.oom_kills > 0,
            stats,
        });
        cleanup
    }

    /// Reads the final statistics, kills stragglers, removes the cgroup.
    fn release(&mut self) -> (ResourceStats, Result<(), RuntimeError>) {
        let Some(mut cg) = self.cgroup.take() else {
            return (ResourceStats::default(), Ok(()));
        };
        let stats = cg.stats();
        let r = cg
            .kill_all(Duration::from_secs(5))
            .and_then(|()| cg.remove())
            .map_err(RuntimeError::from);
        (stats, r)
    }

    fn io_err(&self, op: &'static str, source: std::io::Error) -> RuntimeError {
        RuntimeError::Io {
            id: self.id.clone(),
            op,
            source,
        }
    }
}

impl Drop for Container {
    /// A container dropped while running is killed and cleaned up: nothing
    /// may outlive its handle.
    fn drop(&mut self) {
        if self.exit.is_none() {
            let _ = self.signal(Signal::SIGKILL);
            let _ = self.wait();
        }
    }
}
