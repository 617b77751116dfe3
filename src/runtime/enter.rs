//! `butte enter`: runs a task of an executor inside a root filesystem the
//! containerizer mounted in the executor's mount namespace.
//!
//! Order: new mount namespace, `/` private, the runtime's rootfs plan
//! (rootfs bound onto itself, sandbox tree cloned, `pivot_root`, `/proc`,
//! `/dev`, `/sys`, the sandbox at `/mnt/mesos/sandbox`), user looked up in
//! the image's `/etc/passwd`, working directory, capability bounding set
//! reduced to the default (Docker's) set, user switch, permitted and
//! effective sets (empty for a non-root user), exec. The executor may hold
//! more capabilities than its tasks get (it needs `CAP_SYS_ADMIN` to do
//! this). The executor's environment is passed on as is (plus `HOME` when
//! missing).
//!
//! Exit codes when the task could not be started: 125 for a failed setup
//! step, 126 for a command that cannot be executed, 127 for a command that
//! is not found; the step is named on stderr.

use super::caps;
use super::mounts;
use super::program::{self, errno, phrase};
use super::spec::{Rootfs, SandboxSpec, User, DEFAULT_PATH};
use super::user;
use crate::mount::Mount;
use ::caps::{CapSet, CapsHashSet};
use nix::mount::MsFlags;
use std::ffi::{CString, OsString};
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Where the sandbox appears inside the task's root filesystem, as Mesos
/// mounts it (`--sandbox_directory`).
pub const SANDBOX_TARGET: &str = "/mnt/mesos/sandbox";

/// The arguments of `butte enter`.
#[derive(clap::Args, Debug, Clone)]
pub struct EnterArgs {
    /// The root filesystem to pivot into.
    #[arg(long)]
    pub rootfs: PathBuf,
    /// The host path of the sandbox, mounted at /mnt/mesos/sandbox.
    #[arg(long)]
    pub sandbox: PathBuf,
    /// Working directory inside the root filesystem.
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// User (name or uid[:gid]) to run as.
    #[arg(long)]
    pub user: Option<String>,
    /// The command.
    #[arg(last = true, required = true)]
    pub argv: Vec<String>,
}

/// Why `butte enter` could not start the task.
#[derive(Debug, thiserror::Error)]
enum EnterError {
    #[error("{step}: {message}")]
    Setup { step: String, message: String },
    #[error("exec {program}: {message}")]
    NotExecutable { program: String, message: String },
    #[error("exec {program}: {message}")]
    NotFound { program: String, message: String },
}

impl EnterError {
    fn exit_code(&self) -> i32 {
        match self {
            EnterError::Setup { .. } => 125,
            EnterError::NotExecutable { .. } => 126,
            EnterError::NotFound { .. } => 127,
        }
    }
}

fn setup(step: impl Into<String>) -> impl FnOnce(io::Error) -> EnterError {
    let step = step.into();
    move |e| EnterError::Setup {
        step,
        message: phrase(&e),
    }
}

/// Runs `butte enter`; returns an exit code only on failure.
pub fn enter_main(args: EnterArgs) -> i32 {
    let e = match enter(&args) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    eprintln!("butte enter: {e}");
    e.exit_code()
}

enum Never {}

fn enter(args: &EnterArgs) -> Result<Never, EnterError> {
    let user = match &args.user {
        Some(u) => Some(u.parse::<User>().map_err(|e| EnterError::Setup {
            step: "parse user".into(),
            message: e.to_string(),
        })?),
        None => None,
    };
    let sandbox = fs::canonicalize(&args.sandbox)
        .map_err(setup(format!("open sandbox {}", args.sandbox.display())))?;
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .map_err(|e| setup("unshare mount namespace")(errno(e)))?;
    let none: Option<&str> = None;
    nix::mount::mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none)
        .map_err(|e| setup("make / private")(errno(e)))?;
    mounts::execute(&mounts::plan(&plan_spec(args, &sandbox))).map_err(|e| EnterError::Setup {
        step: e.step,
        message: phrase(&e.source),
    })?;
    let who = resolve_user(user.as_ref())?;
    let cwd = args.cwd.clone().unwrap_or_else(|| PathBuf::from("/"));
    nix::unistd::chdir(&cwd).map_err(|e| setup(format!("chdir {}", cwd.display()))(errno(e)))?;
    drop_capabilities(who.as_ref())?;

    let mut env: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    if !env.iter().any(|(k, _)| k == "HOME") {
        let home = who.as_ref().map_or("/", |w| w.home.as_str());
        env.push(("HOME".into(), home.into()));
    }
    let path_var = env
        .iter()
        .rev()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.to_string_lossy().into_owned())
        .unwrap_or_else(|| DEFAULT_PATH.to_string());
    let program = find_program(&args.argv[0], &path_var)?;

    let nul = |what: &str| EnterError::Setup {
        step: format!("exec {}", args.argv[0]),
        message: format!("{what} contains a NUL byte"),
    };
    let argv: Vec<CString> = args
        .argv
        .iter()
        .map(|a| CString::new(a.as_bytes()).map_err(|_| nul("an argument")))
        .collect::<Result<_, _>>()?;
    let envp: Vec<CString> = env
        .iter()
        .map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).map_err(|_| nul("the environment"))
        })
        .collect::<Result<_, _>>()?;
    let path = CString::new(program.as_os_str().as_bytes()).map_err(|_| nul("the command"))?;
    let e = match nix::unistd::execve(&path, &argv, &envp) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let message = phrase(&errno(e));
    Err(if e == nix::Error::ENOENT {
        EnterError::NotFound {
            program: args.argv[0].clone(),
            message,
        }
    } else {
        EnterError::NotExecutable {
            program: args.argv[0].clone(),
            message,
        }
    })
}

/// The runtime's plan for a sandbox on `rootfs` with the sandbox directory
/// bound at [`SANDBOX_TARGET`].
fn plan_spec(args: &EnterArgs, sandbox: &Path) -> SandboxSpec {
    let mut spec = SandboxSpec::new("enter", args.argv.clone());
    spec.rootfs = Some(Rootfs {
        path: args.rootfs.clone(),
        mount: None,
        readonly: false,
    });
    spec.mounts = vec![Mount::bind(sandbox, SANDBOX_TARGET, false)];
    spec
}

/// Looks the user up in the root filesystem's own /etc/passwd (we are past
/// the pivot). `None` when no user was asked for: the task keeps ours.
fn resolve_user(u: Option<&User>) -> Result<Option<user::Resolved>, EnterError> {
    let Some(u) = u else { return Ok(None) };
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    let group = fs::read_to_string("/etc/group").unwrap_or_default();
    let (name, uid, gid) = match u {
        User::Name(n) => (Some(n.as_str()), None, None),
        User::Id { uid, gid } => (None, Some(*uid), *gid),
    };
    user::resolve(&passwd, &group, name, uid, gid)
        .map(Some)
        .ok_or_else(|| EnterError::Setup {
            step: "look up user".into(),
            message: format!(
                "no user {:?} in the root filesystem's /etc/passwd",
                name.unwrap_or("?")
            ),
        })
}

/// Reduces the capabilities to the default set (those of them we hold),
/// switching user on the way: a non-root user ends with none.
fn drop_capabilities(who: Option<&user::Resolved>) -> Result<(), EnterError> {
    let cap_err = |step: &'static str| {
        move |e: ::caps::errors::CapsError| EnterError::Setup {
            step: step.into(),
            message: e.to_string(),
        }
    };
    let held = ::caps::read(None, CapSet::Permitted).map_err(cap_err("read capabilities"))?;
    let keep: CapsHashSet = caps::DEFAULT
        .iter()
        .copied()
        .filter(|c| held.contains(c))
        .collect();
    for cap in ::caps::all() {
        if keep.contains(&cap) {
            continue;
        }
        // Capabilities the kernel does not know cannot be dropped: skip.
        if let Err(e) = ::caps::drop(None, CapSet::Bounding, cap) {
            if ::caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(false) {
                return Err(cap_err("drop bounding capabilities")(e));
            }
        }
    }
    ::caps::clear(None, CapSet::Ambient).map_err(cap_err("clear ambient capabilities"))?;
    let root = who.map_or(true, |w| w.uid == 0);
    let inheritable = if root {
        keep.clone()
    } else {
        CapsHashSet::new()
    };
    ::caps::set(None, CapSet::Inheritable, &inheritable)
        .map_err(cap_err("set inheritable capabilities"))?;
    if let Some(who) = who {
        switch_user(who)?;
    }
    if root {
        ::caps::set(None, CapSet::Effective, &keep)
            .map_err(cap_err("set effective capabilities"))?;
        ::caps::set(None, CapSet::Permitted, &keep)
            .map_err(cap_err("set permitted capabilities"))?;
    }
    Ok(())
}

fn switch_user(who: &user::Resolved) -> Result<(), EnterError> {
    user::switch_ids(who).map_err(|(step, e)| setup(step)(errno(e)))
}

/// Finds the program as `execvp` would, telling a missing command from one
/// that cannot be executed.
fn find_program(arg0: &str, path_var: &str) -> Result<PathBuf, EnterError> {
    if arg0.is_empty() {
        return Err(EnterError::NotFound {
            program: arg0.to_string(),
            message: "empty command".into(),
        });
    }
    program::find_program(arg0, path_var, "root filesystem").map_err(|e| {
        let program = arg0.to_string();
        if e.missing {
            EnterError::NotFound {
                program,
                message: e.message,
            }
        } else {
            EnterError::NotExecutable {
                program,
                message: e.message,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::mounts::Step;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn plan_pivots_into_the_rootfs_with_the_sandbox_mounted() {
        let args = EnterArgs {
            rootfs: "/run/butte/rootfs".into(),
            sandbox: "/var/sandbox".into(),
            cwd: None,
            user: None,
            argv: vec!["true".into()],
        };
        let steps = mounts::plan(&plan_spec(&args, Path::new("/var/sandbox")));
        let pivot = steps
            .iter()
            .position(|s| *s == Step::Pivot("/run/butte/rootfs".into()))
            .unwrap();
        let open = steps
            .iter()
            .position(
                |s| matches!(s, Step::OpenSource { path, .. } if path == Path::new("/var/sandbox")),
            )
            .unwrap();
        let bind = steps
            .iter()
            .position(|s| matches!(s, Step::BindSource { target, .. } if target == Path::new(SANDBOX_TARGET)))
            .unwrap();
        assert!(open < pivot && pivot < bind, "{steps:?}");
        assert!(steps.iter().any(
            |s| matches!(s, Step::Mount { target, fstype, .. } if target == Path::new("/proc") && fstype.as_deref() == Some("proc"))
        ));
    }

    #[test]
    fn finds_programs_and_names_the_failure() {
        assert_eq!(
            find_program("sh", "/nonexistent:/bin").unwrap(),
            PathBuf::from("/bin/sh")
        );
        let e = find_program("no-such-cmd-xyz", "/bin").unwrap_err();
        assert_eq!(e.exit_code(), 127);
        assert!(e.to_string().contains("command not found"), "{e}");
        let e = find_program("/tmp", "/bin").unwrap_err();
        assert_eq!(e.exit_code(), 126);
        assert!(e.to_string().contains("is a directory"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        fs::write(&plain, "x").unwrap();
        fs::set_permissions(&plain, fs::Permissions::from_mode(0o644)).unwrap();
        let e = find_program(plain.to_str().unwrap(), "/bin").unwrap_err();
        assert_eq!(e.exit_code(), 126);
        let e = find_program("/no/such/file", "/bin").unwrap_err();
        assert_eq!(e.exit_code(), 127);
    }

    #[test]
    fn setup_failures_exit_125_naming_the_step() {
        let e = setup("unshare mount namespace")(io::Error::from_raw_os_error(libc::EPERM));
        assert_eq!(e.exit_code(), 125);
        assert_eq!(
            e.to_string(),
            "unshare mount namespace: operation not permitted"
        );
    }
}
