//! Linux sandboxes: a process in new pid, mount, uts and ipc namespaces
//! (and optionally net), limited by cgroups, with a reduced capability set,
//! optionally on its own root filesystem. Knows nothing of Mesos.
//!
//! [`Runtime::launch`] creates the cgroup, clones a child into the new
//! namespaces (directly into the cgroup on v2) that re-executes this binary
//! as the single-threaded launch helper (`butte launch`, see `helper`),
//! sends it the [`SandboxSpec`], and waits until the helper has exec'd the
//! task or reported the failed step. On v1 the helper moves itself into
//! the cgroup before any other step (see `cgroups::join_self` for why not
//! the parent). Failures leave no cgroup, mount or process behind.

mod caps;
mod cgroups;
mod channel;
mod container;
mod enter;
mod helper;
mod init;
mod join;
mod mounts;
mod netns;
mod program;
pub mod seccomp;
mod setup;
mod spec;
#[allow(unsafe_code)]
mod sys;
mod user;

pub use cgroups::{
    CgroupError, Delegation, NotDelegated, Pressure, ResourceStats, Version as CgroupVersion,
};
pub use channel::{FailureKind, HelperFailure};
pub use container::{adopt, main_pid, Adopted, AdoptedExit, Container, ExitRecord, ExitStatus};
pub use enter::{enter_main, network_files, EnterArgs};
pub use init::recorded_status;
pub use join::{set_window_size, window_size, JoinIo, JoinSpec, Joined};
pub use netns::{create_netns, netns_pinned, remove_netns};
pub use setup::RLIMIT_NAMES;
pub use spec::{
    default_device_rules, DeviceKind, DeviceRule, Devices, Limits, Network, Rlimit, RlimitResource,
    Rootfs, SandboxSpec, SpecError, User, DEFAULT_PATH,
};

/// Runs the launch helper (`butte launch`); returns its exit code on
/// failure.
pub fn helper_main() -> i32 {
    helper::main()
}

/// The capability mask of the default set, as /proc/<pid>/status shows it.
pub fn default_capability_mask() -> u64 {
    caps::mask(caps::DEFAULT)
}

/// Every capability this process's bounding set holds, by name: all a
/// privileged sandbox can be given (root may lack some, e.g.
/// `CAP_SYS_RESOURCE` in a container).
pub fn bounding_capabilities() -> Vec<String> {
    ::caps::all()
        .into_iter()
        .filter(|c| ::caps::has_cap(None, ::caps::CapSet::Bounding, *c).unwrap_or(false))
        .map(|c| c.to_string())
        .collect()
}

/// The names of the default set (`CAP_CHOWN`, ...), Docker's.
pub fn default_capabilities() -> Vec<String> {
    caps::DEFAULT.iter().map(|c| c.to_string()).collect()
}

use channel::{Frame, FromHelper, ToHelper};
use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow};
use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

/// Failures of the runtime.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("invalid sandbox spec: {0}")]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error("launch {id}: {failure}")]
    Launch { id: String, failure: HelperFailure },
    #[error("launch {id}: start launch helper {helper}: {source}")]
    Spawn {
        id: String,
        helper: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("container {id}: {op}: {source}")]
    Io {
        id: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },
}

impl RuntimeError {
    /// The failure class when the helper reported one.
    pub fn failure_kind(&self) -> Option<FailureKind> {
        match self {
            RuntimeError::Launch { failure, .. } => Some(failure.kind),
            _ => None,
        }
    }
}

/// Starts the launch helper in new namespaces. A single-threaded caller
/// (`butte run`) forks and runs the helper's code directly; a
/// multi-threaded one (the agent, test harnesses) clones and re-executes
/// the butte binary, since only async-signal-safe code may run in the
/// child of a threaded process.
fn clone_helper(req: &sys::SpawnRequest) -> io::Result<sys::Spawned> {
    match sys::fork_into(req.namespaces, req.cgroup, req.fds) {
        Ok(sys::Forked::Parent(spawned)) => Ok(spawned),
        // Only 0..=3 reached the child: everything else was closed.
        Ok(sys::Forked::Child) => sys::exit_now(helper::main()),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => sys::spawn(req),
        Err(e) => Err(e),
    }
}

/// Where the runtime puts things and how it finds itself.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// The cgroup root (`/sys/fs/cgroup`).
    pub cgroup_root: PathBuf,
    /// The group every sandbox is nested under (`butte`), relative to
    /// `cgroup_root`, or to `cgroup_unit` when that is set.
    pub cgroup_parent: String,
    /// cgroup v2 under systemd with `DelegateSubgroup=`: the unit's cgroup
    /// (relative to `cgroup_root`), delegated to butte, which holds the
    /// sandboxes' groups next to the agent's own leaf (see
    /// [`RuntimeConfig::delegate_cgroups`]). `None`: under the root.
    pub cgroup_unit: Option<String>,
    /// The butte binary, re-executed as the launch helper.
    pub helper: PathBuf,
}

impl RuntimeConfig {
    /// The defaults, with this very binary as the helper.
    pub fn new() -> io::Result<Self> {
        Ok(RuntimeConfig {
            cgroup_root: "/sys/fs/cgroup".into(),
            cgroup_parent: "butte".into(),
            cgroup_unit: None,
            helper: std::env::current_exe()?,
        })
    }

    /// The hierarchy these settings describe.
    pub(crate) fn hierarchy(&self) -> Result<cgroups::Hierarchy, cgroups::CgroupError> {
        cgroups::Hierarchy::detect_in(
            &self.cgroup_root,
            self.cgroup_unit.as_deref(),
            &self.cgroup_parent,
        )
    }

    /// For the agent under systemd: when this process runs in a leaf of a
    /// cgroup v2 subtree delegated to it (`Delegate=yes` with
    /// `DelegateSubgroup=`, systemd >= 254), puts sandboxes inside that
    /// subtree (`<unit>/<cgroup_parent>/<id>`) and enables the cpu, io,
    /// memory and pids controllers in the unit's cgroup. Otherwise, or if
    /// enabling fails, changes nothing and says why: sandboxes stay under
    /// the root. Sandboxes an agent left under the root are found either
    /// way.
    pub fn delegate_cgroups(&mut self) -> Result<cgroups::Delegation, DelegationError> {
        let text =
            std::fs::read_to_string("/proc/self/cgroup").map_err(DelegationError::ReadOwn)?;
        let found = cgroups::delegation::detect(
            &self.cgroup_root,
            &text,
            &self.cgroup_parent,
            &cgroups::delegation::read_xattr,
        )?;
        // The unit's own cgroup.subtree_control only: the groups below
        // come with the first sandbox.
        cgroups::Hierarchy::detect_in(&self.cgroup_root, Some(&found.unit), "")?
            .enable_v2_controllers()?;
        self.cgroup_unit = Some(found.unit.clone());
        Ok(found)
    }
}

/// Why sandboxes stay under the cgroup root
/// ([`RuntimeConfig::delegate_cgroups`]).
#[derive(Debug, thiserror::Error)]
pub enum DelegationError {
    #[error("read /proc/self/cgroup: {0}")]
    ReadOwn(#[source] io::Error),
    #[error("not a delegated cgroup: {0}")]
    Not(#[from] cgroups::NotDelegated),
    #[error("the delegated cgroup: {0}")]
    Cgroup(#[from] cgroups::CgroupError),
}

/// The standard streams of a sandboxed process.
#[derive(Debug)]
pub struct Stdio {
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

impl Stdio {
    /// `/dev/null` for all three.
    pub fn null() -> io::Result<Self> {
        let open = || -> io::Result<OwnedFd> {
            Ok(File::options()
                .read(true)
                .write(true)
                .open("/dev/null")?
                .into())
        };
        Ok(Stdio {
            stdin: open()?,
            stdout: open()?,
            stderr: open()?,
        })
    }
}

/// Starts sandboxes.
#[derive(Debug)]
pub struct Runtime {
    hierarchy: cgroups::Hierarchy,
    helper: PathBuf,
    helper_c: CString,
    argv: [CString; 2],
}

impl Runtime {
    pub fn new(config: &RuntimeConfig) -> Result<Self, RuntimeError> {
        let hierarchy = config.hierarchy()?;
        let helper_c =
            CString::new(config.helper.as_os_str().as_encoded_bytes()).map_err(|_| {
                RuntimeError::Spawn {
                    id: String::new(),
                    helper: config.helper.clone(),
                    source: io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"),
                }
            })?;
        Ok(Runtime {
            hierarchy,
            helper: config.helper.clone(),
            helper_c,
            argv: [c"butte".to_owned(), c"launch".to_owned()],
        })
    }

    /// The cgroup version in use.
    pub fn cgroup_version(&self) -> CgroupVersion {
        self.hierarchy.version()
    }

    /// Changes the cgroup limits of running sandbox `id` (the ones `limits`
    /// sets). An unknown sandbox is an error.
    pub fn update_limits(&self, id: &str, limits: &Limits) -> Result<(), RuntimeError> {
        limits.validate()?;
        let cgroup = self.hierarchy.open(id).ok_or_else(|| RuntimeError::Io {
            id: id.to_string(),
            op: "update limits",
            source: io::Error::new(io::ErrorKind::NotFound, "no cgroup"),
        })?;
        Ok(cgroup.update(limits)?)
    }

    /// Starts a sandbox. Returns once the task has been exec'd; on error
    /// nothing is left behind.
    pub fn launch(&self, spec: &SandboxSpec, stdio: Stdio) -> Result<Container, RuntimeError> {
        spec.validate()?;
        let mut cgroup = self
            .hierarchy
            .create(&spec.id, &spec.limits, &spec.devices)?;
        let spawned = match self.spawn(spec, &stdio, &cgroup) {
            Ok(s) => s,
            Err(e) => {
                let _ = cgroup.remove();
                return Err(e);
            }
        };
        drop(stdio);
        let (mut parent, child, in_cgroup) = spawned;
        let join_cgroup = if in_cgroup {
            Vec::new()
        } else {
            cgroup.join_files()
        };
        // From here on, dropping `container` kills and cleans up.
        let mut container = Container {
            id: spec.id.clone(),
            pid: nix::unistd::Pid::from_raw(child.pid),
            pidfd: child.pidfd,
            cgroup: Some(cgroup),
            exit: None,
            session_leader: false,
            status_file: spec.status_file.clone(),
        };
        let io_err = |source| RuntimeError::Io {
            id: spec.id.clone(),
            op: "send spec to launch helper",
            source,
        };
        let msg = ToHelper::Launch {
            spec: Box::new(spec.clone()),
            join_cgroup,
        };
        channel::send(&mut parent, &msg).map_err(io_err)?;
        let mut execing = false;
        loop {
            match channel::recv::<FromHelper>(&mut parent) {
                Ok(Frame::Message(FromHelper::Exec)) => execing = true,
                // Only a join's helper reports a pid; the sandbox's task is
                // the helper itself.
                Ok(Frame::Message(FromHelper::Started { .. })) => {}
                Ok(Frame::Message(FromHelper::Failed(failure))) => {
                    return Err(RuntimeError::Launch {
                        id: spec.id.clone(),
                        failure,
                    })
                }
                Ok(Frame::ExecFailed(errno)) => {
                    return Err(RuntimeError::Spawn {
                        id: spec.id.clone(),
                        helper: self.helper.clone(),
                        source: io::Error::from_raw_os_error(errno),
                    })
                }
                Ok(Frame::Eof) if execing => return Ok(container),
                Ok(Frame::Eof) => {
                    let status = container.wait().map(|r| r.status);
                    return Err(RuntimeError::Launch {
                        id: spec.id.clone(),
                        failure: HelperFailure {
                            step: "launch helper".into(),
                            message: format!("exited before starting the task: {status:?}"),
                            kind: FailureKind::Setup,
                        },
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(RuntimeError::Io {
                        id: spec.id.clone(),
                        op: "read from launch helper",
                        source,
                    })
                }
            }
        }
    }

    /// Clones the helper. Returns the parent's end of the channel, the
    /// child, and whether it was cloned straight into the cgroup.
    fn spawn(
        &self,
        spec: &SandboxSpec,
        stdio: &Stdio,
        cgroup: &cgroups::Cgroup,
    ) -> Result<(UnixStream, sys::Spawned, bool), RuntimeError> {
        let err = |source| RuntimeError::Spawn {
            id: spec.id.clone(),
            helper: self.helper.clone(),
            source,
        };
        let (parent, child) = UnixStream::pair().map_err(err)?;
        let mut namespaces =
            libc::CLONE_NEWPID | libc::CLONE_NEWNS | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC;
        // `Network::Join`: the helper joins the pinned namespace itself.
        if spec.network == Network::None {
            namespaces |= libc::CLONE_NEWNET;
        }
        let cgroup_dir = match cgroup.version() {
            CgroupVersion::V2 => cgroup.paths().next().and_then(|p| {
                File::options()
                    .read(true)
                    .custom_flags(libc::O_DIRECTORY)
                    .open(p)
                    .ok()
            }),
            CgroupVersion::V1 => None,
        };
        let fds = [
            (stdio.stdin.as_fd(), 0),
            (stdio.stdout.as_fd(), 1),
            (stdio.stderr.as_fd(), 2),
            (child.as_fd(), sys::CHANNEL_FD),
        ];
        let mut req = sys::SpawnRequest {
            program: &self.helper_c,
            argv: &self.argv,
            fds: &fds,
            namespaces,
            cgroup: cgroup_dir.as_ref().map(|f| f.as_fd()),
        };
        // Block signals so that no handler of this process runs in the
        // child before exec; the helper clears its mask.
        let mut old = SigSet::empty();
        let _ = pthread_sigmask(
            SigmaskHow::SIG_SETMASK,
            Some(&SigSet::all()),
            Some(&mut old),
        );
        let mut result = clone_helper(&req);
        if req.cgroup.is_some()
            && matches!(&result, Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::E2BIG)))
        {
            req.cgroup = None;
            result = clone_helper(&req);
        }
        let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
        Ok((parent, result.map_err(err)?, req.cgroup.is_some()))
    }
}
