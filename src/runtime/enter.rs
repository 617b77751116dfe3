//! `butte enter`: runs a task of a built-in executor inside a root
//! filesystem the containerizer mounted in the executor's mount namespace.
//!
//! Two phases. *Prepare*: new mount namespace, `/` private, the runtime's
//! rootfs plan (rootfs bound onto itself, sandbox tree cloned,
//! `pivot_root`, `/proc`, `/dev`, `/sys`, the sandbox at
//! `/mnt/mesos/sandbox`); this needs `CAP_SYS_ADMIN`. *Run* ([`run`], the
//! one path to exec): user looked up in the image's `/etc/passwd`, working
//! directory, capability bounding set reduced to the default (Docker's)
//! set, user switch, permitted and effective sets (empty for a non-root
//! user), exec.
//!
//! Modes:
//! - `enter --rootfs R --sandbox S -- CMD`: both phases at once, the
//!   environment passed on as is (plus `HOME` when missing).
//! - `enter --prepare --rootfs R --sandbox S`: what the built-in executors
//!   start for each image task before they talk to the agent, while they
//!   still hold `CAP_SYS_ADMIN`. It prepares, reduces every capability set
//!   to the default one, says [`Prepared`] on its stdin (a socket to the
//!   executor; the task gets the host's `/dev/null` instead), then waits
//!   for the task's [`Run`] (the LAUNCH) and runs it: the executor's child
//!   is the task itself. End of file before a command: exit 0.
//! - `enter --serve --rootfs R --sandbox S`: prepared the same way, then
//!   runs each [`Run`] it is sent (the task's COMMAND checks) as a child
//!   (user, environment and program as [`run`] finds them), answering
//!   with how it [`Finished`], killing it at its timeout.
//!
//! Every mode marks itself not dumpable at once, so the executor's tasks,
//! which share its pid namespace, cannot open `/proc/<pid>/exe` (the host
//! binary) or `/proc/<pid>/mem` of a butte process; the final exec makes
//! the task dumpable again.
//!
//! `--setup BASE64` (a [`Setup`] in JSON, what a Docker task asks for; see
//! `setup`) changes each mode: the sandbox's place, bind and tmpfs mounts
//! after the network files, the size of `/dev/shm`, a read-only root
//! filesystem (remounted last: the sandbox, the binds not asked to be
//! read-only, the tmpfs mounts, `/dev` and `/proc` stay writable), the
//! capability set kept instead of the default one (prepared processes
//! reduce to it already), and resource limits set right before the exec
//! (for `--serve`: once prepared, so every check runs under them).
//!
//! Exit codes when the task could not be started: 125 for a failed setup
//! step, 126 for a command that cannot be executed, 127 for a command that
//! is not found; the step is named on stderr.

use super::caps;
use super::mounts;
use super::program::{self, errno, phrase};
use super::setup::{self as task_setup, Checked};
use super::spec::{Rootfs, SandboxSpec, User, DEFAULT_PATH};
use super::user;
use crate::mount::Mount;
use crate::support::prepared::{self, Finished, Prepared, Run, Setup};
use ::caps::{CapSet, Capability, CapsHashSet};
use mounts::Step;
use nix::mount::MsFlags;
use nix::sys::resource::Resource;
use std::ffi::{CString, OsString};
use std::fs;
use std::io::{self, BufReader};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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
    /// Prepare the root filesystem, then run the one command the executor
    /// sends on stdin (a socket).
    #[arg(long, conflicts_with_all = ["serve", "cwd", "user", "argv"])]
    pub prepare: bool,
    /// Prepare the root filesystem, then run each command the executor
    /// sends on stdin (a socket), answering how it ended.
    #[arg(long, conflicts_with_all = ["cwd", "user", "argv"])]
    pub serve: bool,
    /// A seccomp program (base64 of the raw BPF the agent compiled),
    /// installed right before the task's exec; with `--serve`, once the
    /// root filesystem is prepared, so every check command runs under it.
    #[arg(long, value_name = "BASE64")]
    pub seccomp: Option<String>,
    /// Settings beyond the defaults (base64 of a JSON `Setup`: sandbox
    /// place, binds, tmpfs, /dev/shm size, read-only root, capabilities,
    /// resource limits).
    #[arg(long, value_name = "BASE64")]
    pub setup: Option<String>,
    /// The command.
    #[arg(last = true, required_unless_present_any = ["prepare", "serve"])]
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

/// Runs `butte enter`; returns the exit code (when it did not exec).
pub fn enter_main(args: EnterArgs) -> i32 {
    // Before anything a task could watch: see the module doc.
    let _ = nix::sys::prctl::set_dumpable(false);
    let result = seccomp_program(&args).and_then(|filter| {
        let filter = filter.as_deref();
        if args.prepare {
            prepare_then_run(&args, filter)
        } else if args.serve {
            serve(&args, filter)
        } else {
            let settings = read_setup(&args)?;
            prepare(&args, &settings)
                .and_then(|()| run(&Task::from_args(&args), &settings, filter))
                .map(|never| match never {})
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("butte enter: {e}");
            e.exit_code()
        }
    }
}

enum Never {}

/// The `--seccomp` program, decoded.
fn seccomp_program(args: &EnterArgs) -> Result<Option<Vec<u8>>, EnterError> {
    use base64::Engine;
    let Some(text) = &args.seccomp else {
        return Ok(None);
    };
    match base64::engine::general_purpose::STANDARD.decode(text) {
        Ok(p) if !p.is_empty() && p.len() % 8 == 0 => Ok(Some(p)),
        _ => Err(EnterError::Setup {
            step: "read --seccomp".into(),
            message: "not the base64 of whole 8-byte BPF instructions".into(),
        }),
    }
}

/// The `--setup` settings, checked (the defaults without one).
fn read_setup(args: &EnterArgs) -> Result<Checked, EnterError> {
    let bad = |message: String| EnterError::Setup {
        step: "read --setup".into(),
        message,
    };
    let wanted = match &args.setup {
        Some(text) => Setup::from_arg(text).map_err(bad)?,
        None => Setup::default(),
    };
    task_setup::check(&wanted).map_err(|e| bad(e.to_string()))
}

/// Installs the seccomp filter (under no_new_privs: the caller no longer
/// holds CAP_SYS_ADMIN). Filters stack: this one narrows whatever the
/// executor's container was given.
fn install_seccomp(filter: Option<&[u8]>) -> Result<(), EnterError> {
    let Some(prog) = filter else {
        return Ok(());
    };
    nix::sys::prctl::set_no_new_privs().map_err(|e| setup("set no_new_privs")(errno(e)))?;
    super::seccomp::install(prog).map_err(setup("install the seccomp filter"))
}

/// What [`run`] starts.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Task {
    /// The program (looked up in `PATH`) and its arguments.
    argv: Vec<String>,
    env: Vec<(OsString, OsString)>,
    cwd: Option<PathBuf>,
    user: Option<String>,
}

impl Task {
    /// The command line's task, with our own environment.
    fn from_args(args: &EnterArgs) -> Task {
        Task {
            argv: args.argv.clone(),
            env: std::env::vars_os().collect(),
            cwd: args.cwd.clone(),
            user: args.user.clone(),
        }
    }

    /// The task an executor sent.
    fn from_run(run: Run) -> Task {
        Task {
            argv: run.argv,
            env: run
                .env
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            cwd: run.cwd.filter(|c| !c.is_empty()).map(PathBuf::from),
            user: run.user.filter(|u| !u.is_empty()),
        }
    }
}

/// The prepare phase: a new mount namespace with the root filesystem
/// pivoted into and the sandbox mounted.
fn prepare(args: &EnterArgs, settings: &Checked) -> Result<(), EnterError> {
    let sandbox = fs::canonicalize(&args.sandbox)
        .map_err(setup(format!("open sandbox {}", args.sandbox.display())))?;
    if let Some(pin) = &settings.netns {
        let step = || format!("join network namespace {}", pin.display());
        let ns = fs::File::open(pin).map_err(setup(step()))?;
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| setup(step())(errno(e)))?;
    }
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .map_err(|e| setup("unshare mount namespace")(errno(e)))?;
    let none: Option<&str> = None;
    nix::mount::mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none)
        .map_err(|e| setup("make / private")(errno(e)))?;
    let etc = network_files();
    mounts::execute(&plan(&args.rootfs, &sandbox, &etc, settings)).map_err(|e| EnterError::Setup {
        step: e.step,
        message: phrase(&e.source),
    })
}

/// The socket to the executor on stdin, as a writer and a reader; stdin
/// itself becomes the host's `/dev/null` (what tasks get as stdin).
fn channel() -> Result<(UnixStream, BufReader<UnixStream>), EnterError> {
    let fd = io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map_err(setup("take the executor's channel"))?;
    let tx = UnixStream::from(fd);
    let rx = tx
        .try_clone()
        .map_err(setup("take the executor's channel"))?;
    let null = fs::File::open("/dev/null").map_err(setup("open /dev/null"))?;
    nix::unistd::dup2(null.as_raw_fd(), 0)
        .map_err(|e| setup("make /dev/null the standard input")(errno(e)))?;
    Ok((tx, BufReader::new(rx)))
}

/// Reads the setup, prepares, drops every capability beyond the setup's
/// (or the default) set, and tells the executor how that went.
fn prepare_and_report(args: &EnterArgs, tx: &mut UnixStream) -> Result<Checked, EnterError> {
    let ready = read_setup(args).and_then(|settings| {
        prepare(args, &settings)?;
        drop_capabilities(None, settings.capabilities.as_deref())?;
        Ok(settings)
    });
    let said = match &ready {
        Ok(_) => prepared::send(tx, &Prepared::Ready),
        Err(e) => prepared::send(tx, &Prepared::Failed(e.to_string())),
    };
    let settings = ready?;
    said.map_err(setup("tell the executor the root filesystem is ready"))?;
    Ok(settings)
}

/// `--prepare`: runs the one task the executor sends.
fn prepare_then_run(args: &EnterArgs, filter: Option<&[u8]>) -> Result<i32, EnterError> {
    let (mut tx, mut rx) = channel()?;
    let settings = prepare_and_report(args, &mut tx)?;
    let Some(message) =
        prepared::recv::<Run, _>(&mut rx).map_err(setup("read the task's command"))?
    else {
        // The executor ended, or will never launch this task.
        return Ok(0);
    };
    drop((tx, rx));
    run(&Task::from_run(message), &settings, filter).map(|never| match never {})
}

/// `--serve`: runs each command the executor sends, one at a time.
fn serve(args: &EnterArgs, filter: Option<&[u8]>) -> Result<i32, EnterError> {
    let (mut tx, mut rx) = channel()?;
    let settings = prepare_and_report(args, &mut tx)?;
    // Inherited by every check command, as the task gets them.
    set_rlimits(&settings.rlimits)?;
    install_seccomp(filter)?;
    loop {
        let Some(message) =
            prepared::recv::<Run, _>(&mut rx).map_err(setup("read a check command"))?
        else {
            return Ok(0);
        };
        if prepared::send(&mut tx, &run_one(&message)).is_err() {
            return Ok(0);
        }
    }
}

/// Runs one command for `--serve` and waits for it, killing its process
/// group at its timeout.
fn run_one(message: &Run) -> Finished {
    let task = Task::from_run(message.clone());
    let mut cmd = match check_command(&task) {
        Ok(cmd) => cmd,
        Err(e) => {
            eprintln!("butte enter: {e}");
            return match e {
                EnterError::Setup { .. } => Finished::Error(e.to_string()),
                _ => Finished::Code(e.exit_code()),
            };
        }
    };
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return Finished::Error(format!("start the command: {}", phrase(&e))),
    };
    let deadline = message
        .timeout_ms
        .map(|ms| Instant::now() + Duration::from_millis(ms));
    let mut pause = Duration::from_millis(1);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                return match (status.code(), status.signal()) {
                    (Some(code), _) => Finished::Code(code),
                    (None, Some(signal)) => Finished::Signal(signal),
                    (None, None) => Finished::Error(format!("the command ended with {status}")),
                }
            }
            Ok(None) => {}
            Err(e) => return Finished::Error(format!("wait for the command: {}", phrase(&e))),
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let group = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::SIGKILL);
            let _ = child.kill();
            let _ = child.wait();
            return Finished::TimedOut;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// A `--serve` command as [`run`] would exec it, started through std's
/// fork and exec: the butte binary cannot be executed again inside the
/// image (its ELF interpreter is the host's). We hold the default set
/// already; std switches to a non-root user (dropping every capability and
/// the supplementary groups).
fn check_command(task: &Task) -> Result<Command, EnterError> {
    let (arg0, who, env, program) = resolve(task)?;
    let cwd = task.cwd.clone().unwrap_or_else(|| PathBuf::from("/"));
    let mut cmd = Command::new(program);
    cmd.arg0(arg0)
        .args(&task.argv[1..])
        .env_clear()
        .envs(env)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .process_group(0);
    if let Some(who) = who {
        cmd.uid(who.uid).gid(who.gid);
    }
    Ok(cmd)
}

/// A task's program name, user (looked up in the root filesystem), complete
/// environment (`HOME` added when missing) and program found in its `PATH`.
#[allow(clippy::type_complexity)]
fn resolve(
    task: &Task,
) -> Result<
    (
        &str,
        Option<user::Resolved>,
        Vec<(OsString, OsString)>,
        PathBuf,
    ),
    EnterError,
> {
    let Some(arg0) = task.argv.first() else {
        return Err(EnterError::NotFound {
            program: String::new(),
            message: "empty command".into(),
        });
    };
    let user = match &task.user {
        Some(u) => Some(u.parse::<User>().map_err(|e| EnterError::Setup {
            step: "parse user".into(),
            message: e.to_string(),
        })?),
        None => None,
    };
    let who = resolve_user(user.as_ref())?;
    let mut env = task.env.clone();
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
    let program = find_program(arg0, &path_var)?;
    Ok((arg0, who, env, program))
}

/// The run phase, the one path to exec: user, working directory, resource
/// limits, capabilities, environment, exec.
fn run(task: &Task, settings: &Checked, filter: Option<&[u8]>) -> Result<Never, EnterError> {
    let (arg0, who, env, program) = resolve(task)?;
    let cwd = task.cwd.clone().unwrap_or_else(|| PathBuf::from("/"));
    nix::unistd::chdir(&cwd).map_err(|e| setup(format!("chdir {}", cwd.display()))(errno(e)))?;
    set_rlimits(&settings.rlimits)?;
    drop_capabilities(who.as_ref(), settings.capabilities.as_deref())?;

    let nul = |what: &str| EnterError::Setup {
        step: format!("exec {arg0}"),
        message: format!("{what} contains a NUL byte"),
    };
    let argv: Vec<CString> = task
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
    super::sys::reset_ignored_signals().map_err(setup("reset ignored signals"))?;
    // Last: from here on only the calls the task itself may make are left.
    install_seccomp(filter)?;
    let e = match nix::unistd::execve(&path, &argv, &envp) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let message = phrase(&errno(e));
    Err(if e == nix::Error::ENOENT {
        EnterError::NotFound {
            program: arg0.to_string(),
            message,
        }
    } else {
        EnterError::NotExecutable {
            program: arg0.to_string(),
            message,
        }
    })
}

/// Sets each resource limit (lowering needs no privilege; raising a hard
/// limit needs `CAP_SYS_RESOURCE`).
fn set_rlimits(limits: &[(Resource, u64, u64)]) -> Result<(), EnterError> {
    for (resource, soft, hard) in limits {
        nix::sys::resource::setrlimit(*resource, *soft, *hard).map_err(|e| {
            setup(format!("set resource limit {resource:?} to {soft}:{hard}"))(errno(e))
        })?;
    }
    Ok(())
}

/// The files of the executor's network identity that a task in a root
/// filesystem sees instead of its image's own, as Mesos' `network/cni`
/// isolator binds them: the container's own when it is on a CNI network
/// (the agent bound them over the executor's `/etc`), else the host's.
pub const NETWORK_FILES: [&str; 3] = ["/etc/hosts", "/etc/hostname", "/etc/resolv.conf"];

/// The [`NETWORK_FILES`] this process has (the executor's, or the host's
/// for the agent), each resolved to the file it names (`/etc/resolv.conf`
/// is often a link into `/run`) and bound read-only at its path: a task on
/// the host network must not rewrite the host's files.
pub fn network_files() -> Vec<Mount> {
    NETWORK_FILES
        .iter()
        .filter_map(|f| Some((fs::canonicalize(f).ok()?, *f)))
        .filter(|(source, _)| source.is_file())
        .map(|(source, target)| Mount::bind(&source, target, true))
        .collect()
}

/// The runtime's plan for a sandbox on `rootfs` with the sandbox directory
/// bound at the setup's place ([`SANDBOX_TARGET`] by default), the
/// network files `etc` ([`network_files`]), then the setup's binds and
/// tmpfs mounts, `/dev/shm` of the setup's size, and the root remounted
/// read-only last when asked.
fn plan(rootfs: &Path, sandbox: &Path, etc: &[Mount], settings: &Checked) -> Vec<Step> {
    let mut spec = SandboxSpec::new("enter", vec!["enter".into()]);
    spec.rootfs = Some(Rootfs {
        path: rootfs.to_path_buf(),
        mount: None,
        readonly: settings.read_only,
    });
    spec.mounts = vec![Mount::bind(sandbox, &settings.sandbox_target, false)];
    spec.mounts.extend(etc.iter().cloned());
    spec.mounts.extend(settings.mounts.iter().cloned());
    let mut steps = mounts::plan(&spec);
    if let Some(size) = settings.shm_size {
        for step in &mut steps {
            if let Step::Mount { target, data, .. } = step {
                if target == Path::new("/dev/shm") {
                    *data = Some(format!("mode=1777,size={size}"));
                }
            }
        }
    }
    steps
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

/// Reduces the capabilities to `wanted` (every one of which we must hold),
/// or to the default set (those of them we hold), switching user on the
/// way: a non-root user ends with none.
fn drop_capabilities(
    who: Option<&user::Resolved>,
    wanted: Option<&[Capability]>,
) -> Result<(), EnterError> {
    let cap_err = |step: &'static str| {
        move |e: ::caps::errors::CapsError| EnterError::Setup {
            step: step.into(),
            message: e.to_string(),
        }
    };
    let held = ::caps::read(None, CapSet::Permitted).map_err(cap_err("read capabilities"))?;
    let keep = keep_set(&held, wanted)?;
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

/// The capabilities to keep: `wanted`, all held, or the default set's
/// held ones.
fn keep_set(held: &CapsHashSet, wanted: Option<&[Capability]>) -> Result<CapsHashSet, EnterError> {
    let Some(wanted) = wanted else {
        return Ok(caps::DEFAULT
            .iter()
            .copied()
            .filter(|c| held.contains(c))
            .collect());
    };
    match wanted.iter().find(|c| !held.contains(c)) {
        Some(missing) => Err(EnterError::Setup {
            step: format!("keep capability {missing}"),
            message: "the executor does not hold it".into(),
        }),
        None => Ok(wanted.iter().copied().collect()),
    }
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
    use crate::support::prepared::SetupBind;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn plan_pivots_into_the_rootfs_with_the_sandbox_mounted() {
        let etc = [Mount::bind("/run/net/hosts", "/etc/hosts", true)];
        let steps = plan(
            Path::new("/run/butte/rootfs"),
            Path::new("/var/sandbox"),
            &etc,
            &task_setup::check(&Setup::default()).unwrap(),
        );
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
            |s| matches!(s, Step::OpenSource { path, .. } if path == Path::new("/run/net/hosts"))
        ));
        assert!(steps.iter().any(
            |s| matches!(s, Step::BindSource { target, .. } if target == Path::new("/etc/hosts"))
        ));
        assert!(steps.iter().any(
            |s| matches!(s, Step::Mount { target, fstype, .. } if target == Path::new("/proc") && fstype.as_deref() == Some("proc"))
        ));
    }

    #[test]
    fn setup_moves_the_sandbox_and_mounts_after_the_network_files() {
        let etc = [Mount::bind("/run/net/hosts", "/etc/hosts", true)];
        let wanted = Setup {
            sandbox_dir: Some("/sandbox".into()),
            binds: vec![SetupBind {
                source: "/srv/data".into(),
                target: "/data".into(),
                read_only: true,
            }],
            tmpfs: vec![("/scratch".into(), "size=1m".into())],
            shm_size: Some(1 << 20),
            read_only: true,
            ..Default::default()
        };
        let steps = plan(
            Path::new("/r"),
            Path::new("/var/sandbox"),
            &etc,
            &task_setup::check(&wanted).unwrap(),
        );
        let pos = |f: &dyn Fn(&Step) -> bool| {
            steps
                .iter()
                .position(f)
                .unwrap_or_else(|| panic!("{steps:?}"))
        };
        let bind_at = |t: &'static str| move |s: &Step| matches!(s, Step::BindSource { target, .. } if target == Path::new(t));
        let sandbox = pos(&bind_at("/sandbox"));
        let hosts = pos(&bind_at("/etc/hosts"));
        let data = pos(&bind_at("/data"));
        let scratch = pos(&|s| {
            matches!(s, Step::Mount { target, fstype, flags, data, .. }
                if target == Path::new("/scratch") && fstype.as_deref() == Some("tmpfs")
                && flags.contains(MsFlags::MS_NOEXEC | MsFlags::MS_NOSUID | MsFlags::MS_NODEV)
                && data.as_deref() == Some("size=1m"))
        });
        assert!(
            sandbox < hosts && hosts < data && data < scratch,
            "{steps:?}"
        );
        assert!(!steps.iter().any(
            |s| matches!(s, Step::BindSource { target, .. } if target == Path::new(SANDBOX_TARGET))
        ));
        assert!(matches!(
            &steps[data],
            Step::BindSource { readonly: true, .. }
        ));
        assert!(steps.iter().any(|s| matches!(s, Step::Mount { target, data, .. }
            if target == Path::new("/dev/shm") && data.as_deref() == Some("mode=1777,size=1048576"))));
        assert_eq!(steps.last(), Some(&Step::RootReadonly));
    }

    #[test]
    fn a_bad_setup_fails_before_anything_is_done() {
        let args = |setup: &str| EnterArgs {
            rootfs: "/nonexistent".into(),
            sandbox: "/nonexistent".into(),
            cwd: None,
            user: None,
            prepare: false,
            serve: false,
            seccomp: None,
            setup: Some(setup.into()),
            argv: vec!["true".into()],
        };
        let e = read_setup(&args("!")).unwrap_err();
        assert_eq!(e.exit_code(), 125);
        assert!(e.to_string().starts_with("read --setup: not base64"), "{e}");
        let wanted = Setup {
            capabilities: Some(vec!["CAP_NET_ADMIN".into(), "CAP_TELEPORT".into()]),
            ..Default::default()
        };
        let e = read_setup(&args(&wanted.to_arg())).unwrap_err();
        assert_eq!(e.exit_code(), 125);
        assert_eq!(
            e.to_string(),
            "read --setup: unknown capability \"CAP_TELEPORT\""
        );
        let wanted = Setup {
            rlimits: vec![("open_files".into(), 1, 1)],
            ..Default::default()
        };
        let e = read_setup(&args(&wanted.to_arg())).unwrap_err();
        assert!(
            e.to_string()
                .contains("unknown resource limit \"open_files\""),
            "{e}"
        );
    }

    #[test]
    fn a_wanted_capability_must_be_held() {
        let held: CapsHashSet = [
            Capability::CAP_CHOWN,
            Capability::CAP_KILL,
            Capability::CAP_SYS_ADMIN,
        ]
        .into_iter()
        .collect();
        let default = keep_set(&held, None).unwrap();
        assert_eq!(
            default,
            [Capability::CAP_CHOWN, Capability::CAP_KILL]
                .into_iter()
                .collect()
        );
        let wanted = [Capability::CAP_KILL, Capability::CAP_SYS_ADMIN];
        assert_eq!(
            keep_set(&held, Some(&wanted)).unwrap(),
            wanted.into_iter().collect()
        );
        let e = keep_set(&held, Some(&[Capability::CAP_NET_ADMIN])).unwrap_err();
        assert_eq!(e.exit_code(), 125);
        assert_eq!(
            e.to_string(),
            "keep capability CAP_NET_ADMIN: the executor does not hold it"
        );
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
