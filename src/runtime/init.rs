//! The sandbox's init: with [`SandboxSpec::status_file`] set, the launch
//! helper does not become the task. It forks the task off and stays behind
//! as pid 1 of the sandbox's pid namespace, as Mesos' `mesos-containerizer
//! launch` does when it checkpoints a container's status:
//!
//! - signals sent to it (by the agent, from outside the namespace) go on
//!   to the task, so a SIGTERM reaches a task that installed no handler;
//!   SIGKILL ends it, and the kernel then kills the whole namespace;
//! - it reaps whatever is orphaned in the namespace;
//! - when the task ends, it writes the task's wait status to the status
//!   file, opened on the host before the mounts, and exits with the
//!   task's code (128 + the signal number for a signal, since an init
//!   cannot die of its own signal). The file is what tells the status to
//!   a launcher that restarted meanwhile ([`recorded_status`]).
//!
//! It keeps only `CAP_KILL` (to signal a task of another user) and is not
//! dumpable, so the task cannot trace it or read its memory.
//!
//! [`SandboxSpec::status_file`]: super::SandboxSpec::status_file

use super::channel::{FailureKind, HelperFailure};
use super::container::ExitStatus;
use super::program::{errno, phrase};
use super::sys;
use ::caps::{CapSet, Capability, CapsHashSet};
use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;

/// Opens (and empties) the status file: in the helper, before the mounts.
pub(super) fn open_status(path: &Path) -> Result<File, HelperFailure> {
    File::options()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| failure(format!("open the status file {}", path.display()), &e))
}

/// Forks the task's process off the helper. Returns in the new process,
/// which goes on to become the task (its fds are 0-3 only, the channel
/// on 3); the helper becomes the sandbox's init and never returns.
/// `tasks`: the helper's `/proc/self/task`, opened before the mounts.
pub(super) fn split(tasks: OwnedFd, status: File, chan: &UnixStream) -> Result<(), HelperFailure> {
    // Blocked before the fork, so that nothing sent to the init between
    // the fork and its wait kills it; the task unblocks them.
    let mut old = SigSet::empty();
    sigprocmask(
        SigmaskHow::SIG_SETMASK,
        Some(&SigSet::all()),
        Some(&mut old),
    )
    .map_err(|e| failure("block signals".into(), &errno(e)))?;
    let (stdin, stdout, stderr) = (io::stdin(), io::stdout(), io::stderr());
    let fds = [
        (stdin.as_fd(), 0),
        (stdout.as_fd(), 1),
        (stderr.as_fd(), 2),
        (chan.as_fd(), sys::CHANNEL_FD),
    ];
    match sys::fork_counted(tasks, 0, None, &fds) {
        Ok(sys::Forked::Child) => {
            // The status file's fd was closed by the fork's fd mapping:
            // its `File` must never close that number again.
            std::mem::forget(status);
            // dup2 cleared close-on-exec on the channel's copy.
            nix::fcntl::fcntl(
                sys::CHANNEL_FD,
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
            )
            .map_err(|e| failure("set close-on-exec on the channel".into(), &errno(e)))?;
            sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
                .map_err(|e| failure("unblock signals".into(), &errno(e)))?;
            Ok(())
        }
        Ok(sys::Forked::Parent(task)) => run(Pid::from_raw(task.pid), status),
        Err(e) => {
            let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
            Err(failure(
                "start the task under the sandbox's init".into(),
                &e,
            ))
        }
    }
}

fn failure(step: String, e: &io::Error) -> HelperFailure {
    HelperFailure {
        step,
        message: phrase(e),
        kind: FailureKind::Setup,
    }
}

/// The init's life: forwards signals to `task`, reaps, and when `task`
/// ends records its status and exits.
fn run(task: Pid, mut status: File) -> ! {
    // The channel is the task's now: the launcher sees its end when the
    // task execs. The standard streams are the task's too.
    for fd in [sys::CHANNEL_FD, 0, 1, 2] {
        let _ = nix::unistd::close(fd);
    }
    let _ = nix::sys::prctl::set_dumpable(false);
    let keep: CapsHashSet = [Capability::CAP_KILL].into_iter().collect();
    let _ = ::caps::set(None, CapSet::Inheritable, &CapsHashSet::new());
    let _ = ::caps::set(None, CapSet::Effective, &keep);
    let _ = ::caps::set(None, CapSet::Permitted, &keep);
    loop {
        match sys::wait_signal() {
            Ok(libc::SIGCHLD) => {
                if let Some(ended) = reap(task) {
                    let _ = status.write_all(format!("{}\n", encode(ended)).as_bytes());
                    sys::exit_now(match ended {
                        Some(s) => s.code(),
                        None => 125,
                    });
                }
            }
            Ok(sig) => {
                let _ = sys::send_signal(task.as_raw(), sig);
            }
            Err(_) => {}
        }
    }
}

/// Reaps every child that has ended. `Some` once `task` has: its status,
/// or `None` if it can no longer be known (no child left to wait for).
fn reap(task: Pid) -> Option<Option<ExitStatus>> {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL)) {
            Ok(WaitStatus::Exited(pid, code)) if pid == task => {
                return Some(Some(ExitStatus::Exited(code)))
            }
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid == task => {
                return Some(Some(ExitStatus::Signaled(sig as i32)))
            }
            Ok(WaitStatus::StillAlive) => return None,
            Ok(_) | Err(nix::Error::EINTR) => {}
            Err(_) => return Some(None),
        }
    }
}

/// The wait(2) status word of STATUS, as written to the status file.
fn encode(status: Option<ExitStatus>) -> i32 {
    // -1, a word no exit produces: unknown.
    status.map_or(-1, ExitStatus::wait_word)
}

/// The task's status as a sandbox's init recorded it in its status file
/// (a wait(2) status word in decimal); `None` when the file is missing,
/// empty (the init was killed before the task ended) or not a status.
pub fn recorded_status(path: &Path) -> Option<ExitStatus> {
    decode(std::fs::read_to_string(path).ok()?.trim())
}

fn decode(text: &str) -> Option<ExitStatus> {
    ExitStatus::from_wait_word(text.parse().ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_round_trips_through_its_wait_word() {
        for s in [
            ExitStatus::Exited(0),
            ExitStatus::Exited(3),
            ExitStatus::Exited(255),
            ExitStatus::Signaled(9),
            ExitStatus::Signaled(15),
        ] {
            assert_eq!(decode(&encode(Some(s)).to_string()), Some(s));
        }
        // The words the kernel gives: 0x0300 is exit 3, 0x8b is SIGSEGV
        // with a core dump.
        assert_eq!(decode("768"), Some(ExitStatus::Exited(3)));
        assert_eq!(decode("139"), Some(ExitStatus::Signaled(11)));
    }

    #[test]
    fn an_unknown_or_damaged_status_is_none() {
        assert_eq!(decode(&encode(None).to_string()), None);
        assert_eq!(decode(""), None);
        assert_eq!(decode("exited"), None);
        assert_eq!(decode("70000"), None);
        // A stopped child's word is not an end.
        assert_eq!(decode("4991"), None);
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(recorded_status(&dir.path().join("status")), None);
        std::fs::write(dir.path().join("status"), "256\n").unwrap();
        assert_eq!(
            recorded_status(&dir.path().join("status")),
            Some(ExitStatus::Exited(1))
        );
    }
}
