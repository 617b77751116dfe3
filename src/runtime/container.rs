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
use std::path::{Path, PathBuf};
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

    /// The wait(2) status word (Mesos' `exit_status`).
    pub fn wait_word(self) -> i32 {
        match self {
            ExitStatus::Exited(code) => (code & 0xff) << 8,
            ExitStatus::Signaled(sig) => sig & 0x7f,
        }
    }

    /// The end a wait(2) status word tells; `None` for a word that tells
    /// none (a stopped or continued child, or not a status word).
    pub fn from_wait_word(word: i32) -> Option<Self> {
        match (word & 0x7f, word) {
            (_, w) if !(0..=0xffff).contains(&w) => None,
            (0, w) => Some(ExitStatus::Exited((w >> 8) & 0xff)),
            (0x7f, _) => None,
            (sig, _) => Some(ExitStatus::Signaled(sig)),
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
    /// A joined process (see `join`), leader of its own session: with no
    /// cgroup of its own, what it started in the session is killed when
    /// it ends, so that nothing of it outlives it.
    pub(super) session_leader: bool,
    /// Where the sandbox's init records the task's status (see `init`):
    /// the status that counts, since the init itself cannot die of a
    /// signal.
    pub(super) status_file: Option<PathBuf>,
}

impl Container {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The pid of the sandbox's main process, in the host's pid namespace.
    pub fn pid(&self) -> i32 {
        self.pid.as_raw()
    }

    /// The pid of the sandbox's command: the main process, or under an
    /// init (a sandbox with a status file) the init's child while it runs.
    pub fn command_pid(&self) -> i32 {
        command_pid(self.pid, self.status_file.is_some())
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
        if self.session_leader {
            kill_session(self.pid.as_raw());
        }
        // Killed before the task ended (SIGKILL to the init), the init
        // recorded nothing: what waitpid says is then right.
        let status = self
            .status_file
            .as_deref()
            .and_then(super::recorded_status)
            .unwrap_or(status);
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

impl Container {
    /// Lets go of the container without stopping it: the process keeps
    /// running with its cgroup, and a later butte process can take it over
    /// with [`adopt`] (an agent that exits leaves its executors running,
    /// as Mesos does). Returns the pid.
    pub fn detach(self) -> i32 {
        let mut this = std::mem::ManuallyDrop::new(self);
        let pid = this.pid.as_raw();
        drop(this.pidfd.take());
        drop(this.cgroup.take());
        drop(this.status_file.take());
        drop(std::mem::take(&mut this.id));
        pid
    }
}

/// The command of the sandbox whose main process is MAIN: MAIN itself, or
/// with an init its first child (`/proc/<pid>/task/<pid>/children`).
fn command_pid(main: Pid, init: bool) -> i32 {
    let main = main.as_raw();
    if !init {
        return main;
    }
    std::fs::read_to_string(format!("/proc/{main}/task/{main}/children"))
        .ok()
        .and_then(|c| c.split_whitespace().next()?.parse().ok())
        .unwrap_or(main)
}

/// Kills every process of session SID (its leader has just been reaped, or
/// is a zombie): what a joined process left behind, background jobs
/// included (they keep the session unless they start their own).
fn kill_session(sid: i32) {
    // A few rounds: a member may fork while the others are killed.
    for _ in 0..5 {
        let members = session_members(sid, |pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()
        });
        if members.is_empty() {
            return;
        }
        for pid in members {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The processes (other than SID itself) whose session is SID, read from
/// `/proc/<pid>/stat` (by STAT).
fn session_members(sid: i32, stat: impl Fn(i32) -> Option<String>) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != sid)
        .filter(|&pid| stat(pid).and_then(|t| session_of(&t)) == Some(sid))
        .collect()
}

/// The session id (field 6) of a `/proc/<pid>/stat` line.
fn session_of(stat: &str) -> Option<i32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(3)?.parse().ok()
}

/// What is known about an adopted sandbox that ended. Its exit status
/// only if its init recorded it (see [`super::SandboxSpec::status_file`]):
/// only its parent, long gone, could have reaped it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct AdoptedExit {
    pub status: Option<ExitStatus>,
    pub oom_killed: bool,
    pub stats: ResourceStats,
}

/// A sandbox started by an earlier butte process (the agent before a
/// restart), taken over by pid with [`adopt`]. Like [`Container`], except
/// that it is not our child: its end is seen through a pidfd, and its exit
/// status is known only from its init's status file.
///
/// ```text
///  adopt() --> Running --try_wait()/wait_timeout()/kill()--> Exited
///                 \------------ destroy() / drop -------------/
/// ```
#[derive(Debug)]
pub struct Adopted {
    id: String,
    pid: Pid,
    /// Always `Some` but in [`Adopted::detach`].
    pidfd: Option<OwnedFd>,
    cgroup: Option<Cgroup>,
    exit: Option<AdoptedExit>,
    status_file: Option<PathBuf>,
}

/// Takes over sandbox `id`, whose main process was checkpointed as `pid`;
/// `status_file` is the one it was launched with, if any (its main process
/// is then an init). `Ok(None)` when
/// that process is gone, or when `pid` now belongs to a process outside
/// the sandbox's cgroup (a recycled pid); the sandbox's leftover cgroup, if
/// any, is then removed (its status file, if any, may still tell how it
/// ended: [`super::recorded_status`]).
pub fn adopt(
    config: &super::RuntimeConfig,
    id: &str,
    pid: i32,
    status_file: Option<&Path>,
) -> Result<Option<Adopted>, RuntimeError> {
    let io_err = |op, source| RuntimeError::Io {
        id: id.to_string(),
        op,
        source,
    };
    let gone = || -> Result<Option<Adopted>, RuntimeError> {
        if let Some(mut cg) = leftover_cgroup(config, id)? {
            cg.kill_all(Duration::from_secs(5))?;
            cg.remove()?;
        }
        Ok(None)
    };
    if pid <= 0 {
        return gone();
    }
    let pidfd = match sys::pidfd_open(pid) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return gone(),
        Err(e) => return Err(io_err("open pidfd", e)),
    };
    // The pidfd pins the process: if it is still in the sandbox's cgroup
    // and alive after this check, it is the sandbox's main process.
    let cgroups = match std::fs::read_to_string(format!("/proc/{pid}/cgroup")) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return gone(),
        Err(e) => return Err(io_err("read /proc/<pid>/cgroup", e)),
    };
    if !in_cgroup(&cgroups, &config.cgroup_parent, id) {
        return gone();
    }
    match sys::pidfd_send_signal(pidfd.as_fd(), 0) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return gone(),
        Err(e) => return Err(io_err("signal", e)),
    }
    Ok(Some(Adopted {
        id: id.to_string(),
        pid: Pid::from_raw(pid),
        pidfd: Some(pidfd),
        cgroup: leftover_cgroup(config, id)?,
        exit: None,
        status_file: status_file.map(Path::to_path_buf),
    }))
}

/// The main process of sandbox `id`, found through its cgroup: for a
/// sandbox whose pid was never recorded (its launcher died between the
/// launch and writing the pid down). That is the oldest process in the
/// sandbox's own cgroup: the launch helper joins it first and becomes the
/// main process by exec; whatever else is there descends from it.
/// `Ok(None)`: no cgroup, or no process in it.
pub fn main_pid(config: &super::RuntimeConfig, id: &str) -> Result<Option<i32>, RuntimeError> {
    let Some(cg) = leftover_cgroup(config, id)? else {
        return Ok(None);
    };
    Ok(oldest(&cg.procs()?, |pid| {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()
    }))
}

/// The pid among PIDS whose `/proc/<pid>/stat` (read by STAT) has the
/// earliest start time; a process that vanished is skipped.
fn oldest(pids: &[i32], stat: impl Fn(i32) -> Option<String>) -> Option<i32> {
    pids.iter()
        .filter_map(|&pid| {
            let text = stat(pid)?;
            // Field 22, counted after the command name in parentheses
            // (which may itself hold spaces and parentheses).
            let rest = &text[text.rfind(')')? + 1..];
            let start: u64 = rest.split_whitespace().nth(19)?.parse().ok()?;
            Some((start, pid))
        })
        .min()
        .map(|(_, pid)| pid)
}

/// The existing cgroup of sandbox `id`, to read and remove.
fn leftover_cgroup(
    config: &super::RuntimeConfig,
    id: &str,
) -> Result<Option<Cgroup>, RuntimeError> {
    Ok(config.hierarchy()?.open(id))
}

/// Whether a `/proc/<pid>/cgroup` text places the process in the cgroup of
/// sandbox `id` under `parent` (any hierarchy, v1 or v2).
fn in_cgroup(text: &str, parent: &str, id: &str) -> bool {
    let parent = parent.trim_matches('/');
    let want = if parent.is_empty() {
        format!("/{id}")
    } else {
        format!("/{parent}/{id}")
    };
    text.lines()
        .filter_map(|l| l.splitn(3, ':').nth(2))
        .any(|path| path == want || path.ends_with(&want))
}

impl Adopted {
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn pid(&self) -> i32 {
        self.pid.as_raw()
    }

    /// See [`Container::command_pid`].
    pub fn command_pid(&self) -> i32 {
        command_pid(self.pid, self.status_file.is_some())
    }

    /// A pidfd of the main process, readable once it has exited.
    pub fn pidfd(&self) -> Option<BorrowedFd<'_>> {
        self.pidfd.as_ref().map(|f| f.as_fd())
    }

    pub fn exit_record(&self) -> Option<AdoptedExit> {
        self.exit
    }

    /// Current resource usage (zeros once ended, or without a cgroup).
    pub fn stats(&self) -> ResourceStats {
        self.cgroup.as_ref().map(Cgroup::stats).unwrap_or_default()
    }

    /// Sends a signal to the main process; not an error once it ended.
    pub fn signal(&self, signal: Signal) -> Result<(), RuntimeError> {
        let Some(fd) = self.pidfd.as_ref().filter(|_| self.exit.is_none()) else {
            return Ok(());
        };
        match sys::pidfd_send_signal(fd.as_fd(), signal as i32) {
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
            other => other.map_err(|source| RuntimeError::Io {
                id: self.id.clone(),
                op: "signal",
                source,
            }),
        }
    }

    /// Returns the exit record if the main process has ended (and then
    /// releases the cgroup), `None` while it runs.
    pub fn try_wait(&mut self) -> Result<Option<AdoptedExit>, RuntimeError> {
        self.wait_timeout(Duration::ZERO)
    }

    /// Waits up to `timeout` for the end of the main process.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<AdoptedExit>, RuntimeError> {
        let Some(pidfd) = self.pidfd.as_ref().filter(|_| self.exit.is_none()) else {
            return Ok(self.exit);
        };
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let ms = left.as_millis().min(i32::MAX as u128) as i32;
            let mut fds = [nix::poll::PollFd::new(
                pidfd.as_fd(),
                nix::poll::PollFlags::POLLIN,
            )];
            match nix::poll::poll(
                &mut fds,
                nix::poll::PollTimeout::try_from(ms).unwrap_or(nix::poll::PollTimeout::MAX),
            ) {
                Ok(0) => return Ok(None),
                Ok(_) => break,
                Err(nix::Error::EINTR) if Instant::now() < deadline => continue,
                Err(nix::Error::EINTR) => return Ok(None),
                Err(e) => {
                    return Err(RuntimeError::Io {
                        id: self.id.clone(),
                        op: "wait",
                        source: e.into(),
                    })
                }
            }
        }
        let (stats, cleanup) = match self.cgroup.take() {
            None => (ResourceStats::default(), Ok(())),
            Some(mut cg) => {
                let stats = cg.stats();
                let r = cg
                    .kill_all(Duration::from_secs(5))
                    .and_then(|()| cg.remove())
                    .map_err(RuntimeError::from);
                (stats, r)
            }
        };
        self.exit = Some(AdoptedExit {
            status: self.status_file.as_deref().and_then(super::recorded_status),
            oom_killed: stats.oom_kills > 0,
            stats,
        });
        cleanup.map(|()| self.exit)
    }

    /// Kills the sandbox (SIGKILL to its main process ends its pid
    /// namespace) and waits for the end.
    pub fn kill(&mut self) -> Result<AdoptedExit, RuntimeError> {
        self.signal(Signal::SIGKILL)?;
        loop {
            if let Some(r) = self.wait_timeout(Duration::from_secs(1))? {
                return Ok(r);
            }
        }
    }

    /// Kills everything in the sandbox and removes all its state.
    pub fn destroy(mut self) -> Result<AdoptedExit, RuntimeError> {
        self.kill()
    }

    /// Lets go without stopping it (see [`Container::detach`]).
    pub fn detach(self) -> i32 {
        let mut this = std::mem::ManuallyDrop::new(self);
        let pid = this.pid.as_raw();
        drop(this.pidfd.take());
        drop(this.cgroup.take());
        drop(this.status_file.take());
        drop(std::mem::take(&mut this.id));
        pid
    }
}

impl Drop for Adopted {
    /// Like a [`Container`], an adopted sandbox dropped while running is
    /// killed: use [`Adopted::detach`] to let it go.
    fn drop(&mut self) {
        if self.exit.is_none() {
            let _ = self.kill();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{in_cgroup, oldest};

    #[test]
    fn cgroup_membership_from_proc() {
        let v1 = "12:pids:/butte/c1\n4:memory:/butte/c1\n0::/\n";
        assert!(in_cgroup(v1, "butte", "c1"));
        assert!(!in_cgroup(v1, "butte", "c2"));
        assert!(!in_cgroup(v1, "other", "c1"));
        let v2 = "0::/system.slice/butte/c1\n";
        assert!(in_cgroup(v2, "/butte/", "c1"));
        assert!(!in_cgroup("0::/butte/c10\n", "butte", "c1"));
        assert!(!in_cgroup("0::/user.slice\n", "butte", "c1"));
    }

    #[test]
    fn a_process_session_is_read_from_its_stat_line() {
        use super::session_of;
        assert_eq!(
            session_of("42 (sh) S 1 42 42 34816 42 4194560 0 0"),
            Some(42)
        );
        assert_eq!(session_of("43 (a) b) S 42 43 42 0 -1 0"), Some(42));
        assert_eq!(session_of("44 (x"), None);
    }

    #[test]
    fn main_process_is_the_oldest_in_the_cgroup() {
        // pid 7 started at tick 100, 8 at 90 (its name has ") " in it),
        // 9 vanished; 10's stat is garbage.
        let stat = |pid: i32| match pid {
            7 => Some("7 (butte-executor) S 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 100 0 0".into()),
            8 => Some("8 (a) b) S 1 8 8 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 90 0 0".into()),
            10 => Some("10 (x".into()),
            _ => None,
        };
        assert_eq!(oldest(&[7, 8, 9, 10], stat), Some(8));
        assert_eq!(oldest(&[7, 9], stat), Some(7));
        assert_eq!(oldest(&[9, 10], stat), None);
        assert_eq!(oldest(&[], stat), None);
    }
}
