//! The launch helper: `butte launch`, re-executed by the runtime into new
//! namespaces. Single-threaded, it receives the spec, builds the sandbox
//! and execs the task, reporting the failing step if any.
//!
//! Order: signal mask cleared, spec received, cgroup joined, network
//! namespace joined (`Network::Join`), new session, hostname (or the UTS
//! namespace joined),
//! mounts (see `mounts`), user looked up, working directory, rlimits,
//! command resolved, capability bounding set, user switch, capability
//! sets, no_new_privs, seccomp filter, `FromHelper::Exec`, execve. With a
//! status file, the helper forks after the rlimits and stays as the
//! sandbox's init (see `init`) while its child goes on to exec. The
//! device allowlist is the cgroup's (made by the parent), masked and
//! read-only paths are the last steps of the mount plan.

use super::caps;
use super::cgroups;
use super::channel::{self, FailureKind, Frame, FromHelper, HelperFailure, ToHelper};
use super::init;
use super::mounts;
use super::program::{errno, find_program, phrase as message};
use super::seccomp;
use super::spec::{Network, RlimitResource, SandboxSpec, User, DEFAULT_PATH};
use super::sys;
use super::user;
use ::caps::CapSet;
use nix::sys::resource::{setrlimit, Resource};
use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow};
use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

/// Entry point of `butte launch`. Returns the process exit code on failure
/// (on success it never returns: the task replaces it).
pub fn main() -> i32 {
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    let mut chan = match sys::adopt_channel_fd() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("butte launch: {e}");
            return 125;
        }
    };
    let (spec, join) = match channel::recv::<ToHelper>(&mut chan) {
        Ok(Frame::Message(ToHelper::Launch { spec, join_cgroup })) => (spec, join_cgroup),
        Ok(Frame::Message(ToHelper::Join { spec, join_cgroup })) => {
            return match super::join::helper(&spec, &join_cgroup, &mut chan) {
                Ok(()) => 0,
                Err(failure) => {
                    let _ = channel::send(&mut chan, &FromHelper::Failed(failure));
                    125
                }
            };
        }
        // The parent went away or sent garbage: nothing to report to.
        _ => return 125,
    };
    // Into the cgroup before anything else: nothing of the sandbox runs
    // outside its limits.
    let joined = cgroups::join_self(&join).map_err(|e| HelperFailure {
        step: "join cgroup".into(),
        message: e.to_string(),
        kind: FailureKind::Setup,
    });
    let failure = match joined.and_then(|()| launch(&spec, &mut chan)) {
        Ok(never) => match never {},
        Err(f) => f,
    };
    let _ = channel::send(&mut chan, &FromHelper::Failed(failure));
    125
}

fn setup_err(step: impl Into<String>) -> impl FnOnce(io::Error) -> HelperFailure {
    let step = step.into();
    move |e| HelperFailure {
        step,
        message: message(&e),
        kind: FailureKind::Setup,
    }
}

enum Never {}

fn launch(spec: &SandboxSpec, chan: &mut UnixStream) -> Result<Never, HelperFailure> {
    nix::fcntl::fcntl(
        std::os::fd::AsRawFd::as_raw_fd(chan),
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .map_err(|e| setup_err("set close-on-exec on the channel")(errno(e)))?;
    if let Network::Join(pin) = &spec.network {
        let step = || format!("join network namespace {}", pin.display());
        let ns = fs::File::open(pin).map_err(setup_err(step()))?;
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| setup_err(step())(errno(e)))?;
    }
    nix::unistd::setsid().map_err(|e| setup_err("setsid")(errno(e)))?;
    match &spec.join_uts {
        Some(ns) => {
            let step = || format!("join UTS namespace {}", ns.display());
            let ns = fs::File::open(ns).map_err(setup_err(step()))?;
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWUTS)
                .map_err(|e| setup_err(step())(errno(e)))?;
        }
        None => nix::unistd::sethostname(spec.hostname())
            .map_err(|e| setup_err("set hostname")(errno(e)))?,
    }
    // The sandbox's init (see `init`): its status file and, for the fork
    // that makes the task, this process's thread list, both on the host's
    // paths, before the mounts.
    let init = match &spec.status_file {
        Some(path) => {
            let status = init::open_status(path)?;
            let tasks =
                fs::File::open("/proc/self/task").map_err(setup_err("open /proc/self/task"))?;
            Some((tasks, status))
        }
        None => None,
    };

    mounts::execute(&mounts::plan(spec)).map_err(|e| HelperFailure {
        step: e.step,
        message: message(&e.source),
        kind: FailureKind::Setup,
    })?;

    let who = resolve_user(spec.user.as_ref())?;
    let cwd = spec.cwd.clone().unwrap_or_else(|| PathBuf::from("/"));
    nix::unistd::chdir(&cwd)
        .map_err(|e| setup_err(format!("chdir {}", cwd.display()))(errno(e)))?;
    for r in &spec.rlimits {
        setrlimit(resource(r.resource), r.soft, r.hard)
            .map_err(|e| setup_err(format!("setrlimit {:?}", r.resource))(errno(e)))?;
    }
    if let Some((tasks, status)) = init {
        // Only the task's process returns.
        init::split(tasks.into(), status, chan)?;
    }

    let failure = exec(
        &Exec {
            argv: &spec.argv,
            env: &spec.env,
            capabilities: spec.capabilities.as_deref(),
            seccomp: spec.seccomp.as_deref(),
        },
        &who,
        chan,
    );
    Err(failure)
}

/// The program and its settings, for the last steps of a start.
pub(super) struct Exec<'a> {
    pub argv: &'a [String],
    /// The whole environment (`PATH` finds the program; `HOME` comes from
    /// the user when missing).
    pub env: &'a [(String, String)],
    /// The capabilities kept (`None`: the default set).
    pub capabilities: Option<&'a [String]>,
    /// A compiled seccomp program, installed last.
    pub seccomp: Option<&'a [u8]>,
}

/// The last steps of a start, shared by a sandbox's task and a process
/// joined to a running container, in order: the program looked up in
/// `PATH`, capabilities cut for `who`, no_new_privs, ignored signals reset,
/// the seccomp filter, `Exec` on the channel, execve. Returns only why it
/// failed.
pub(super) fn exec(e: &Exec, who: &user::Resolved, chan: &mut UnixStream) -> HelperFailure {
    match exec_steps(e, who, chan) {
        Ok(never) => match never {},
        Err(f) => f,
    }
}

fn exec_steps(
    e: &Exec,
    who: &user::Resolved,
    chan: &mut UnixStream,
) -> Result<Never, HelperFailure> {
    let var = |key: &str| {
        e.env
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let program = resolve_command(&e.argv[0], var("PATH").unwrap_or(DEFAULT_PATH))?;
    let keep: Vec<::caps::Capability> = match e.capabilities {
        Some(list) => list.iter().filter_map(|n| caps::parse(n)).collect(),
        None => caps::DEFAULT.to_vec(),
    };
    drop_capabilities(&keep, who)?;
    nix::sys::prctl::set_no_new_privs().map_err(|err| setup_err("set no_new_privs")(errno(err)))?;

    let c = |s: &str, what: &str| {
        CString::new(s).map_err(|_| HelperFailure {
            step: format!("exec {}", e.argv[0]),
            message: format!("{what} contains a NUL byte"),
            kind: FailureKind::Setup,
        })
    };
    let argv: Vec<CString> = e
        .argv
        .iter()
        .map(|a| c(a, "an argument"))
        .collect::<Result<_, _>>()?;
    let mut env: Vec<CString> = Vec::with_capacity(e.env.len() + 1);
    for (k, v) in e.env {
        env.push(c(&format!("{k}={v}"), "the environment")?);
    }
    if var("HOME").is_none() {
        env.push(c(&format!("HOME={}", who.home), "the environment")?);
    }
    let path = c(&program.to_string_lossy(), "the command")?;
    sys::reset_ignored_signals().map_err(setup_err("reset ignored signals"))?;
    // Last: from here on only the calls the task itself may make are left.
    if let Some(prog) = e.seccomp {
        seccomp::install(prog).map_err(setup_err("install the seccomp filter"))?;
    }
    let _ = channel::send(chan, &FromHelper::Exec);
    let err = nix::unistd::execve(&path, &argv, &env).unwrap_err();
    Err(HelperFailure {
        step: format!("exec {}", e.argv[0]),
        message: message(&io::Error::from(err)),
        kind: if err == nix::Error::ENOENT {
            FailureKind::NotFound
        } else {
            FailureKind::NotExecutable
        },
    })
}

fn resource(r: RlimitResource) -> Resource {
    match r {
        RlimitResource::Nofile => Resource::RLIMIT_NOFILE,
        RlimitResource::Nproc => Resource::RLIMIT_NPROC,
        RlimitResource::Core => Resource::RLIMIT_CORE,
        RlimitResource::Fsize => Resource::RLIMIT_FSIZE,
        RlimitResource::Stack => Resource::RLIMIT_STACK,
        RlimitResource::Memlock => Resource::RLIMIT_MEMLOCK,
    }
}

/// Looks the user up in the sandbox's own /etc/passwd (we are past the
/// pivot, so these are the image's files).
pub(super) fn resolve_user(u: Option<&User>) -> Result<user::Resolved, HelperFailure> {
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    let group = fs::read_to_string("/etc/group").unwrap_or_default();
    let (name, uid, gid) = match u {
        None => (None, Some(0), None),
        Some(User::Name(n)) => (Some(n.as_str()), None, None),
        Some(User::Id { uid, gid }) => (None, Some(*uid), *gid),
    };
    user::resolve(&passwd, &group, name, uid, gid).ok_or_else(|| HelperFailure {
        step: "look up user".into(),
        message: format!(
            "no user {:?} in the sandbox's /etc/passwd",
            name.unwrap_or("?")
        ),
        kind: FailureKind::Setup,
    })
}

/// Finds the program as `execvp` would, with clear errors for a missing
/// command, a directory and a file without execute permission.
pub(super) fn resolve_command(arg0: &str, path_var: &str) -> Result<PathBuf, HelperFailure> {
    find_program(arg0, path_var, "sandbox").map_err(|e| HelperFailure {
        step: format!("exec {arg0}"),
        message: e.message,
        kind: if e.missing {
            FailureKind::NotFound
        } else {
            FailureKind::NotExecutable
        },
    })
}

/// Reduces the bounding set to `keep`, switches user, then sets the
/// permitted, effective and inheritable sets (empty for a non-root user).
pub(super) fn drop_capabilities(
    keep: &[::caps::Capability],
    who: &user::Resolved,
) -> Result<(), HelperFailure> {
    let cap_err = |what: &'static str| {
        move |e: ::caps::errors::CapsError| HelperFailure {
            step: what.into(),
            message: e.to_string(),
            kind: FailureKind::Setup,
        }
    };
    let keep_set: ::caps::CapsHashSet = keep.iter().copied().collect();
    for cap in ::caps::all() {
        if !keep_set.contains(&cap) {
            // Capabilities the kernel does not know cannot be dropped: skip.
            if let Err(e) = ::caps::drop(None, CapSet::Bounding, cap) {
                if ::caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(false) {
                    return Err(cap_err("drop bounding capabilities")(e));
                }
            }
        }
    }
    ::caps::clear(None, CapSet::Ambient).map_err(cap_err("clear ambient capabilities"))?;
    let inheritable = if who.uid == 0 {
        keep_set.clone()
    } else {
        Default::default()
    };
    ::caps::set(None, CapSet::Inheritable, &inheritable)
        .map_err(cap_err("set inheritable capabilities"))?;
    user::switch_ids(who).map_err(|(step, e)| setup_err(step)(errno(e)))?;
    if who.uid == 0 {
        ::caps::set(None, CapSet::Effective, &keep_set)
            .map_err(cap_err("set effective capabilities"))?;
        ::caps::set(None, CapSet::Permitted, &keep_set)
            .map_err(cap_err("set permitted capabilities"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn resolves_commands_like_execvp() {
        assert_eq!(
            resolve_command("sh", "/nonexistent:/bin").unwrap(),
            PathBuf::from("/bin/sh")
        );
        let e = resolve_command("no-such-cmd-xyz", "/bin:/usr/bin").unwrap_err();
        assert_eq!(e.kind, FailureKind::NotFound);
        assert!(e.to_string().contains("command not found"), "{e}");
        let e = resolve_command("/tmp", "/bin").unwrap_err();
        assert_eq!(e.kind, FailureKind::NotExecutable);
        assert!(e.to_string().contains("is a directory"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        fs::write(&plain, "x").unwrap();
        fs::set_permissions(&plain, fs::Permissions::from_mode(0o644)).unwrap();
        let e = resolve_command(plain.to_str().unwrap(), "/bin").unwrap_err();
        assert_eq!(e.kind, FailureKind::NotExecutable);
        assert!(e.to_string().contains("not executable"), "{e}");
        let e = resolve_command("/no/such/file", "/bin").unwrap_err();
        assert_eq!(e.kind, FailureKind::NotFound);
    }
}
