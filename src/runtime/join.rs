//! Joining a running sandbox: a new process in the namespaces (mount, pid,
//! network, uts, ipc; not user) and cgroups of a running process, what
//! Mesos calls a DEBUG container and `nsenter` does for a shell.
//!
//! ```text
//! runtime (agent)               helper (butte launch)        process
//!  | pidfd of the target            |                            |
//!  | -- clone+exec, fds 0-2,3,4 --> |                            |
//!  | -- ToHelper::Join -----------> | joins the target's cgroups |
//!  |                                | setns(pidfd, mnt|pid|net|uts|ipc)
//!  |                                | chroot to the target's root|
//!  |                                | clone(CLONE_PARENT) -----> | (a member of the
//!  | <-- FromHelper::Started{pid} - | exits                      |  target's pid ns,
//!  |                                                             |  the runtime's child)
//!  |                                   waits for the helper's end
//!  |                                   setsid, controlling tty, cwd, user,
//!  | <-- FromHelper::Exec / Failed ------------------------------| caps, no_new_privs,
//!  | <-- EOF (exec) ---------------------------------------------| seccomp, exec
//! ```
//! A pid namespace applies to the children of the process that joins it,
//! and a mount namespace can only be joined by a single-threaded process:
//! hence the helper and its one child. `CLONE_PARENT` makes the new process
//! a child of the runtime's process, so that [`Container::wait`] reaps it
//! and no waiter process stays in between. The target's cgroups are joined
//! by the helper (its child inherits them) but not owned: the [`Container`]
//! has no cgroup of its own to remove. The process leads a session of its
//! own; when it ends, every other process of that session is killed (what
//! a cgroup kill does for a sandbox).

use super::channel::{self, FailureKind, Frame, FromHelper, HelperFailure, ToHelper};
use super::program::{errno, phrase as message};
use super::spec::User;
use super::sys;
use super::{Container, Runtime, RuntimeError, Stdio};
use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

/// The fd number the helper finds the target's pidfd on.
const PIDFD_FD: RawFd = 4;
/// The fd number the joined process finds the helper's pipe on (end of
/// file once the helper has reported the process's pid).
const GO_FD: RawFd = 4;

/// A process to start inside a running sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinSpec {
    /// A name for errors and logs (the debug container's id).
    pub id: String,
    /// The running process whose namespaces and cgroups are joined (its
    /// pid in this process's pid namespace).
    pub target: i32,
    pub argv: Vec<String>,
    /// The complete environment (nothing is inherited).
    pub env: Vec<(String, String)>,
    /// Working directory, inside the target's root filesystem (default `/`).
    pub cwd: Option<PathBuf>,
    /// Looked up in the target's `/etc/passwd` (default: root).
    pub user: Option<User>,
    /// The capabilities kept; `None`: the default set.
    pub capabilities: Option<Vec<String>>,
    /// A compiled seccomp program, installed right before the exec.
    pub seccomp: Option<Vec<u8>>,
}

/// The standard streams of a joined process.
#[derive(Debug)]
pub enum JoinIo {
    /// The caller's pipes or files.
    Stdio(Stdio),
    /// A new pseudo-terminal of this size: its slave is the process's
    /// stdin, stdout, stderr and controlling terminal; its master comes
    /// back in [`Joined::pty`].
    Tty { rows: u16, cols: u16 },
}

/// A started joined process.
#[derive(Debug)]
pub struct Joined {
    /// The process (no cgroup of its own: waiting for it reaps it,
    /// killing it kills it alone).
    pub container: Container,
    /// The pty's master, with [`JoinIo::Tty`].
    pub pty: Option<OwnedFd>,
}

/// Sets the window size of a pty (through its master or slave).
pub fn set_window_size(fd: std::os::fd::BorrowedFd, rows: u16, cols: u16) -> io::Result<()> {
    sys::set_window_size(fd, rows, cols)
}

/// The window size (rows, columns) of the terminal open on `fd`.
pub fn window_size(fd: std::os::fd::BorrowedFd) -> io::Result<(u16, u16)> {
    sys::window_size(fd)
}

/// The files a process writes `0` to in order to join the cgroups that
/// `proc_cgroup` (a `/proc/<pid>/cgroup`) lists, found through the cgroup
/// mounts of `mountinfo` (a `/proc/self/mountinfo`): `tasks` on v1 (a
/// thread moving itself takes no global lock), `cgroup.procs` on v2.
/// Hierarchies without a mount here are skipped.
pub(crate) fn cgroup_join_files(proc_cgroup: &str, mountinfo: &str) -> Vec<PathBuf> {
    struct CgMount<'a> {
        v2: bool,
        root: &'a str,
        point: &'a str,
        options: Vec<&'a str>,
    }
    let mounts: Vec<CgMount> = mountinfo
        .lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let fields: Vec<&str> = left.split(' ').collect();
            let mut r = right.split(' ');
            let fstype = r.next()?;
            let options = r.nth(1).unwrap_or("").split(',').collect();
            let v2 = match fstype {
                "cgroup2" => true,
                "cgroup" => false,
                _ => return None,
            };
            Some(CgMount {
                v2,
                root: fields.get(3)?,
                point: fields.get(4)?,
                options,
            })
        })
        .collect();
    let mut out = Vec::new();
    for line in proc_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let v2 = controllers.is_empty();
        let wanted: Vec<&str> = controllers.split(',').filter(|c| !c.is_empty()).collect();
        let found = mounts.iter().find(|m| {
            m.v2 == v2
                && (v2 || wanted.iter().all(|c| m.options.contains(c)))
                && (m.root == "/" || path == m.root || path.starts_with(&format!("{}/", m.root)))
        });
        let Some(m) = found else { continue };
        let rel = if m.root == "/" {
            path
        } else {
            &path[m.root.len()..]
        };
        let dir = Path::new(m.point).join(rel.trim_start_matches('/'));
        out.push(dir.join(if v2 { "cgroup.procs" } else { "tasks" }));
    }
    out
}

impl Runtime {
    /// Starts a process inside the namespaces and cgroups of the running
    /// process `spec.target` (see the module doc). Returns once it has
    /// exec'd; on error nothing is left behind.
    pub fn join(&self, spec: &JoinSpec, io: JoinIo) -> Result<Joined, RuntimeError> {
        let io_err = |op: &'static str| {
            let id = spec.id.clone();
            move |source| RuntimeError::Io { id, op, source }
        };
        if spec.argv.is_empty() {
            return Err(RuntimeError::Io {
                id: spec.id.clone(),
                op: "join",
                source: io::Error::new(io::ErrorKind::InvalidInput, "no command"),
            });
        }
        let target = sys::pidfd_open(spec.target).map_err(io_err("open a pidfd of the target"))?;
        let proc_cgroup = std::fs::read_to_string(format!("/proc/{}/cgroup", spec.target))
            .map_err(io_err("read the target's /proc/<pid>/cgroup"))?;
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(io_err("read /proc/self/mountinfo"))?;
        let join_cgroup = cgroup_join_files(&proc_cgroup, &mountinfo);
        let (stdio, pty) = match io {
            JoinIo::Stdio(s) => (s, None),
            JoinIo::Tty { rows, cols } => {
                let size = nix::pty::Winsize {
                    ws_row: rows,
                    ws_col: cols,
                    ws_xpixel: 0,
                    ws_ypixel: 0,
                };
                let p = nix::pty::openpty(Some(&size), None)
                    .map_err(|e| io_err("open a pty")(e.into()))?;
                for fd in [&p.master, &p.slave] {
                    nix::fcntl::fcntl(
                        fd.as_raw_fd(),
                        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
                    )
                    .map_err(|e| io_err("set close-on-exec on the pty")(e.into()))?;
                }
                let dup = |f: &OwnedFd| f.try_clone().map_err(io_err("duplicate the pty"));
                let stdio = Stdio {
                    stdin: dup(&p.slave)?,
                    stdout: dup(&p.slave)?,
                    stderr: p.slave,
                };
                (stdio, Some(p.master))
            }
        };
        let (mut parent, helper) = self.spawn_joiner(spec, &stdio, &target)?;
        drop(stdio);
        let mut helper = HelperProcess(Some(helper.pid));
        channel::send(
            &mut parent,
            &ToHelper::Join {
                spec: Box::new(spec.clone()),
                join_cgroup,
            },
        )
        .map_err(io_err("send spec to launch helper"))?;
        let mut container: Option<Container> = None;
        let mut execing = false;
        let failed = |failure| RuntimeError::Launch {
            id: spec.id.clone(),
            failure,
        };
        loop {
            match channel::recv::<FromHelper>(&mut parent) {
                Ok(Frame::Message(FromHelper::Started { pid })) => {
                    helper.reap();
                    // Our child (CLONE_PARENT): its pid stays ours until
                    // we reap it, so the pidfd is of the right process.
                    let pidfd = sys::pidfd_open(pid).ok();
                    container = Some(Container {
                        id: spec.id.clone(),
                        pid: nix::unistd::Pid::from_raw(pid),
                        pidfd,
                        cgroup: None,
                        exit: None,
                        session_leader: true,
                        status_file: None,
                    });
                }
                Ok(Frame::Message(FromHelper::Exec)) => execing = true,
                Ok(Frame::Message(FromHelper::Failed(failure))) => return Err(failed(failure)),
                Ok(Frame::ExecFailed(errno)) => {
                    return Err(RuntimeError::Spawn {
                        id: spec.id.clone(),
                        helper: self.helper.clone(),
                        source: io::Error::from_raw_os_error(errno),
                    })
                }
                Ok(Frame::Eof) => match container.take() {
                    Some(c) if execing => return Ok(Joined { container: c, pty }),
                    other => {
                        let status = other.map(|mut c| c.wait().map(|r| r.status));
                        return Err(failed(HelperFailure {
                            step: "launch helper".into(),
                            message: format!("exited before starting the command: {status:?}"),
                            kind: FailureKind::Setup,
                        }));
                    }
                },
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => return Err(io_err("read from launch helper")(source)),
            }
        }
    }

    /// Starts the helper in this process's namespaces with the process's
    /// stdio, the channel (fd 3) and the target's pidfd (fd 4).
    fn spawn_joiner(
        &self,
        spec: &JoinSpec,
        stdio: &Stdio,
        target: &OwnedFd,
    ) -> Result<(UnixStream, sys::Spawned), RuntimeError> {
        let err = |source| RuntimeError::Spawn {
            id: spec.id.clone(),
            helper: self.helper.clone(),
            source,
        };
        let (parent, child) = UnixStream::pair().map_err(err)?;
        let fds = [
            (stdio.stdin.as_fd(), 0),
            (stdio.stdout.as_fd(), 1),
            (stdio.stderr.as_fd(), 2),
            (child.as_fd(), sys::CHANNEL_FD),
            (target.as_fd(), PIDFD_FD),
        ];
        let req = sys::SpawnRequest {
            program: &self.helper_c,
            argv: &self.argv,
            fds: &fds,
            namespaces: 0,
            cgroup: None,
        };
        let mut old = SigSet::empty();
        let _ = pthread_sigmask(
            SigmaskHow::SIG_SETMASK,
            Some(&SigSet::all()),
            Some(&mut old),
        );
        let result = super::clone_helper(&req);
        let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
        Ok((parent, result.map_err(err)?))
    }
}

/// The helper process, reaped at the latest when dropped (it exits right
/// after starting the joined process, or after a failed step).
struct HelperProcess(Option<i32>);

impl HelperProcess {
    fn reap(&mut self) {
        if let Some(pid) = self.0.take() {
            let pid = nix::unistd::Pid::from_raw(pid);
            let wall = Some(nix::sys::wait::WaitPidFlag::__WALL);
            while let Err(nix::Error::EINTR) = nix::sys::wait::waitpid(pid, wall) {}
        }
    }
}

impl Drop for HelperProcess {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        self.reap();
    }
}

fn setup_err(step: impl Into<String>) -> impl FnOnce(io::Error) -> HelperFailure {
    let step = step.into();
    move |e| HelperFailure {
        step,
        message: message(&e),
        kind: FailureKind::Setup,
    }
}

/// The helper's side (`butte launch` given a `ToHelper::Join`): joins, then
/// starts the process. Returns the failure to report; on success the
/// helper exits 0 (the process reports its own exec).
pub(super) fn helper(
    spec: &JoinSpec,
    join_cgroup: &[PathBuf],
    chan: &mut UnixStream,
) -> Result<(), HelperFailure> {
    let target = sys::adopt_fd(PIDFD_FD).map_err(setup_err("take the target's pidfd"))?;
    super::cgroups::join_self(join_cgroup).map_err(|e| HelperFailure {
        step: "join the target's cgroups".into(),
        message: e.to_string(),
        kind: FailureKind::Setup,
    })?;
    // The target's root, opened before leaving this mount namespace; the
    // pidfd proves the pid was the target's while it was opened.
    let root = File::options()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(format!("/proc/{}/root", spec.target))
        .map_err(setup_err("open the target's root"))?;
    sys::pidfd_send_signal(target.as_fd(), 0).map_err(setup_err("find the target"))?;
    // The thread count is checked through this process's own /proc entry,
    // which the target's /proc does not have.
    let tasks = File::open("/proc/self/task").map_err(setup_err("open /proc/self/task"))?;
    use nix::sched::CloneFlags as F;
    let flags =
        F::CLONE_NEWNS | F::CLONE_NEWPID | F::CLONE_NEWNET | F::CLONE_NEWUTS | F::CLONE_NEWIPC;
    nix::sched::setns(&target, flags)
        .map_err(|e| setup_err("join the target's namespaces")(errno(e)))?;
    nix::unistd::fchdir(root.as_raw_fd())
        .map_err(|e| setup_err("enter the target's root")(errno(e)))?;
    nix::unistd::chroot(".").map_err(|e| setup_err("enter the target's root")(errno(e)))?;
    drop(root);
    drop(target);
    let (go_read, go_write) = nix::unistd::pipe().map_err(|e| setup_err("pipe")(errno(e)))?;
    let (stdin, stdout, stderr) = (io::stdin(), io::stdout(), io::stderr());
    let fds = [
        (stdin.as_fd(), 0),
        (stdout.as_fd(), 1),
        (stderr.as_fd(), 2),
        (chan.as_fd(), sys::CHANNEL_FD),
        (go_read.as_fd(), GO_FD),
    ];
    match sys::fork_counted(tasks.into(), libc::CLONE_PARENT, None, &fds) {
        Ok(sys::Forked::Parent(child)) => {
            drop(go_read);
            let sent = channel::send(chan, &FromHelper::Started { pid: child.pid });
            drop(go_write);
            sent.map_err(setup_err("report the pid"))
        }
        Ok(sys::Forked::Child) => {
            // In the joined process: fds 0-4 only (see `fork_into`).
            let failure = match child_main(spec) {
                Ok(never) => match never {},
                Err(f) => f,
            };
            let mut chan = match sys::adopt_channel_fd() {
                Ok(c) => c,
                Err(_) => sys::exit_now(125),
            };
            let _ = channel::send(&mut chan, &FromHelper::Failed(failure));
            sys::exit_now(125)
        }
        Err(e) => Err(setup_err("start the process")(e)),
    }
}

enum Never {}

/// The joined process: waits until the helper has reported its pid, then
/// sets itself up as the launch helper does for a sandbox's task, and
/// execs.
fn child_main(spec: &JoinSpec) -> Result<Never, HelperFailure> {
    let mut go = File::from(sys::adopt_fd(GO_FD).map_err(setup_err("take the start pipe"))?);
    let mut byte = [0u8; 1];
    while let Err(e) = go.read(&mut byte) {
        if e.kind() != io::ErrorKind::Interrupted {
            break;
        }
    }
    drop(go);
    nix::fcntl::fcntl(
        sys::CHANNEL_FD,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .map_err(|e| setup_err("set close-on-exec on the channel")(errno(e)))?;
    nix::unistd::setsid().map_err(|e| setup_err("setsid")(errno(e)))?;
    let stdin = io::stdin();
    if nix::unistd::isatty(stdin.as_raw_fd()).unwrap_or(false) {
        sys::set_controlling_tty(stdin.as_fd())
            .map_err(setup_err("set the controlling terminal"))?;
    }
    let who = super::helper::resolve_user(spec.user.as_ref())?;
    let cwd = spec.cwd.clone().unwrap_or_else(|| PathBuf::from("/"));
    nix::unistd::chdir(&cwd)
        .map_err(|e| setup_err(format!("chdir {}", cwd.display()))(errno(e)))?;
    let mut chan = sys::adopt_channel_fd().map_err(setup_err("take the channel"))?;
    let failure = super::helper::exec(
        &super::helper::Exec {
            argv: &spec.argv,
            env: &spec.env,
            capabilities: spec.capabilities.as_deref(),
            seccomp: spec.seccomp.as_deref(),
        },
        &who,
        &mut chan,
    );
    // The channel must stay open to report this.
    std::mem::forget(chan);
    Err(failure)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
24 1 254:1 / / rw,relatime - ext4 /dev/vda1 rw
30 24 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw,nsdelegate
32 30 0:28 / /sys/fs/cgroup/systemd rw,nosuid - cgroup cgroup rw,xattr,name=systemd
35 30 0:31 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct
36 30 0:32 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory
37 30 0:33 /inner /mnt/memory rw,nosuid - cgroup cgroup rw,memory
";

    #[test]
    fn cgroup_files_of_a_v1_process_in_each_hierarchy() {
        let text = "5:memory:/butte/c1\n4:cpu,cpuacct:/butte/c1\n1:name=systemd:/init.scope\n0::/\n3:pids:/butte/c1\n";
        let files = cgroup_join_files(text, HYBRID);
        assert_eq!(
            files,
            [
                "/sys/fs/cgroup/memory/butte/c1/tasks",
                "/sys/fs/cgroup/cpu,cpuacct/butte/c1/tasks",
                "/sys/fs/cgroup/systemd/init.scope/tasks",
                "/sys/fs/cgroup/unified/cgroup.procs",
            ]
            .map(PathBuf::from)
        );
    }

    #[test]
    fn cgroup_files_of_a_v2_process_and_a_mount_of_a_subtree() {
        let v2 = "24 1 254:1 / / rw - ext4 /dev/vda1 rw\n\
                  30 24 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            cgroup_join_files("0::/system.slice/butte/c1\n", v2),
            [PathBuf::from(
                "/sys/fs/cgroup/system.slice/butte/c1/cgroup.procs"
            )]
        );
        // Only a mount of a subtree holding the path: /inner at /mnt/memory.
        let only_inner: String = HYBRID
            .lines()
            .filter(|l| !l.starts_with("36 "))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(
            cgroup_join_files("5:memory:/inner/c1\n", &only_inner),
            [PathBuf::from("/mnt/memory/c1/tasks")]
        );
        assert!(cgroup_join_files("5:memory:/other\n", &only_inner).is_empty());
        assert!(cgroup_join_files("garbage\n", HYBRID).is_empty());
    }
}
