//! `butte run`: one sandboxed task in the foreground, with no master.
//!
//! A fresh sandbox directory `<work_dir>/containers/<id>/` receives the
//! task's `stdout` and `stderr` while they are also streamed to this
//! process's own. SIGINT, SIGTERM and SIGHUP stop the task gracefully
//! (SIGTERM, then SIGKILL after the grace period; a second signal kills at
//! once). The outcome carries the exit code to return (128 + signal when
//! killed) and a one-line reason when the kernel stopped the task
//! (OOM killer, pids limit).

use super::network::{self, CniConfig, NetRequest, NetworkError};
use super::provisioner::{self, Prepared, ProvisionError};
use super::security::{SeccompChoice, SeccompProfiles, SecurityError};
use crate::fetch::{FetchConfig, FetchError, FetchUser, Fetcher, UriSpec};
use crate::image::PullOptions;
use crate::mount::Mount;
use crate::runtime::{
    Container, ExitRecord, ExitStatus, Limits, Network, Rlimit, Runtime, RuntimeConfig,
    RuntimeError, SandboxSpec, Stdio, User, DEFAULT_PATH,
};
use crate::state::gc;
use crate::state::paths::{RuntimeDir, WorkDir, SANDBOX_MOUNT};
use crate::support::{format_size, random_uuid};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What `butte run` was asked to do.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub command: Vec<String>,
    /// An unpacked root filesystem directory or an image reference; `None`
    /// runs in the host filesystem with the sandbox as working directory.
    pub image: Option<String>,
    /// How to pull an image that is not in the store yet.
    pub pull: PullOptions,
    pub limits: Limits,
    pub env: Vec<(String, String)>,
    pub user: Option<User>,
    pub hostname: Option<String>,
    /// `host` or `none`; ignored when `networks` names any.
    pub network: Network,
    /// CNI networks to attach the task to (`bridge`: the config of that
    /// name, else the built-in default bridge), in a network namespace
    /// of its own.
    pub networks: Vec<String>,
    /// Host ports mapped to the task's: `(host, container, protocol)`.
    pub ports: Vec<(u32, u32, String)>,
    pub cni: CniConfig,
    /// Where the task's network namespace is pinned while it runs.
    pub runtime_dir: PathBuf,
    /// Working directory inside the sandbox.
    pub cwd: Option<PathBuf>,
    pub mounts: Vec<Mount>,
    pub rlimits: Vec<Rlimit>,
    pub readonly_rootfs: bool,
    /// Every device, every capability, no seccomp, no masked paths.
    pub privileged: bool,
    /// The capabilities kept instead of the default set (`--cap-add`,
    /// `--cap-drop`); ignored when privileged.
    pub capabilities: Option<Vec<String>>,
    /// Docker's `--entrypoint`: replaces the image's entrypoint and drops
    /// its cmd (`""` clears it).
    pub entrypoint: Option<String>,
    /// The seccomp profile (ignored when privileged).
    pub seccomp: SeccompChoice,
    pub work_dir: PathBuf,
    /// Time between SIGTERM and SIGKILL when stopping the task.
    pub grace: Duration,
    /// Remove the sandbox directory once the task has ended.
    pub remove: bool,
    /// `--gc-delay`: before the task starts, remove the sandboxes of
    /// finished runs older than this (shortened as the disk fills, as the
    /// agent's `--gc_delay`); `None`: keep them.
    pub gc_delay: Option<Duration>,
    /// Give the task this process's stdin (otherwise /dev/null).
    pub interactive: bool,
    pub runtime: RuntimeConfig,
    /// Fetched into the sandbox, in order, before the task starts.
    pub uris: Vec<UriSpec>,
    pub fetcher: FetchConfig,
}

/// How a run ended.
#[derive(Debug)]
pub struct RunOutcome {
    pub id: String,
    pub sandbox: PathBuf,
    pub record: ExitRecord,
    /// The code `butte run` exits with.
    pub exit_code: i32,
    /// Why the kernel or butte stopped the task, for one line on stderr.
    pub reason: Option<String>,
}

/// Failures of `butte run` before or around the task.
#[derive(Debug, thiserror::Error)]
pub enum StandaloneError {
    #[error("sandbox {path}: {source}")]
    Sandbox {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Provision(#[from] ProvisionError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Security(#[from] SecurityError),
    #[error(transparent)]
    Network(#[from] NetworkError),
    #[error("{op}: {source}")]
    Io {
        op: &'static str,
        #[source]
        source: io::Error,
    },
}

/// The agent's `--gc_disk_headroom` default, which `butte run`'s GC uses.
pub const GC_DISK_HEADROOM: f64 = 0.1;

/// Runs the task to completion.
pub fn run(opts: &RunOptions) -> Result<RunOutcome, StandaloneError> {
    let runtime = Runtime::new(&opts.runtime)?;
    if let Some(delay) = opts.gc_delay {
        let work = WorkDir::new(&opts.work_dir);
        match gc::prune_standalone(&work, delay, GC_DISK_HEADROOM) {
            Ok(removed) if !removed.is_empty() => {
                tracing::info!(sandboxes = removed.len(), "removed finished sandboxes")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("garbage collection of finished sandboxes: {e}"),
        }
    }
    let id = random_uuid().map_err(|source| StandaloneError::Io {
        op: "generate container id",
        source,
    })?;
    let sandbox = WorkDir::new(&opts.work_dir).container_sandbox(&id);
    let prepared = match &opts.image {
        Some(image) => Some(provisioner::prepare(
            image,
            &opts.work_dir,
            &id,
            &opts.pull,
            opts.readonly_rootfs,
        )?),
        None => None,
    };
    let result = run_prepared(opts, &runtime, &id, &sandbox, prepared.as_ref());
    if let Some(p) = prepared {
        p.release();
    }
    result
}

fn run_prepared(
    opts: &RunOptions,
    runtime: &Runtime,
    id: &str,
    sandbox: &Path,
    prepared: Option<&Prepared>,
) -> Result<RunOutcome, StandaloneError> {
    let id = id.to_string();
    let sandbox = sandbox.to_path_buf();
    let spec = build_spec(opts, &id, &sandbox, prepared)?;
    spec.validate().map_err(RuntimeError::from)?;

    let sandbox_err = |source| StandaloneError::Sandbox {
        path: sandbox.clone(),
        source,
    };
    if let Some(parent) = sandbox.parent() {
        fs::create_dir_all(parent).map_err(sandbox_err)?;
    }
    fs::create_dir(&sandbox).map_err(sandbox_err)?;
    // Held while the task runs: another `butte run`'s GC leaves it alone.
    let lock = gc::lock_sandbox(&sandbox);
    let run_dir = RuntimeDir::new(&opts.runtime_dir).container(&id);
    let mut spec = spec;
    let result = fetch(opts, &sandbox)
        .and_then(|()| attach(opts, &id, &run_dir, &mut spec))
        .and_then(|()| run_in(opts, runtime, &spec, &sandbox));
    if !opts.networks.is_empty() {
        network::teardown(&opts.cni, &run_dir);
        let _ = fs::remove_dir_all(&run_dir);
    }
    if result.is_err() || opts.remove {
        let _ = fs::remove_dir_all(&sandbox);
    } else {
        // Its age for the GC counts from the task's end.
        let _ = gc::touch(&sandbox);
    }
    drop(lock);
    result.map(|(record, reason)| RunOutcome {
        id,
        sandbox,
        exit_code: record.status.code(),
        record,
        reason,
    })
}

/// Attaches the task to its CNI networks, if any: a network namespace of
/// its own, pinned in `run_dir`, and its own `/etc` files.
fn attach(
    opts: &RunOptions,
    id: &str,
    run_dir: &Path,
    spec: &mut SandboxSpec,
) -> Result<(), StandaloneError> {
    if opts.networks.is_empty() {
        if !opts.ports.is_empty() {
            return Err(NetworkError::Invalid {
                name: "host".into(),
                reason: "ports can only be published on a cni network (--net bridge)".into(),
            }
            .into());
        }
        return Ok(());
    }
    let mut requests = Vec::new();
    for name in &opts.networks {
        let config = match opts.cni.find(name) {
            Ok(c) => c,
            Err(_) if name == "bridge" => {
                network::default_bridge(&opts.work_dir.join("cni").join("networks"))
            }
            Err(e) => return Err(e.into()),
        };
        requests.push(NetRequest {
            config,
            runtime_config: network::port_mappings(&opts.ports),
            args: Default::default(),
            info: serde_json::Value::Null,
        });
    }
    fs::create_dir_all(run_dir).map_err(|source| StandaloneError::Io {
        op: "create the runtime dir",
        source,
    })?;
    let attached = network::setup(&opts.cni, run_dir, id, &spec.hostname(), requests)?;
    spec.network = Network::Join(attached.netns);
    spec.mounts.extend(attached.mounts);
    Ok(())
}

/// Fetches the run's URIs into its sandbox. The cache is keyed by the
/// `--user` given; files stay root's (the task's user is only known inside
/// the sandbox).
fn fetch(opts: &RunOptions, sandbox: &Path) -> Result<(), StandaloneError> {
    if opts.uris.is_empty() {
        return Ok(());
    }
    let user = match &opts.user {
        None => FetchUser::default(),
        Some(User::Name(n)) => FetchUser::named(n.clone()),
        Some(User::Id { uid, gid: None }) => FetchUser::named(uid.to_string()),
        Some(User::Id { uid, gid: Some(g) }) => FetchUser::named(format!("{uid}:{g}")),
    };
    Fetcher::new(opts.fetcher.clone()).fetch(&opts.uris, sandbox, &user)?;
    Ok(())
}

/// The sandbox spec for a run.
pub fn build_spec(
    opts: &RunOptions,
    id: &str,
    sandbox: &Path,
    prepared: Option<&Prepared>,
) -> Result<SandboxSpec, StandaloneError> {
    let mut config = prepared.map(|p| p.config.clone()).unwrap_or_default();
    if let Some(e) = &opts.entrypoint {
        config.entrypoint = Some(match e.as_str() {
            "" => Vec::new(),
            e => vec![e.to_string()],
        });
        config.cmd = None;
    }
    let mut spec = SandboxSpec::new(id, provisioner::command(&opts.command, &config));
    spec.limits = opts.limits;
    spec.user = match (&opts.user, config.user.as_deref().filter(|u| !u.is_empty())) {
        (Some(u), _) => Some(u.clone()),
        (None, Some(u)) => Some(u.parse::<User>().map_err(RuntimeError::from)?),
        (None, None) => None,
    };
    spec.hostname = opts.hostname.clone();
    spec.network = opts.network.clone();
    spec.rlimits = opts.rlimits.clone();
    let sandbox_in_task = match prepared {
        Some(p) => {
            spec.rootfs = Some(p.rootfs.clone());
            spec.mounts.push(Mount::bind(sandbox, SANDBOX_MOUNT, false));
            PathBuf::from(SANDBOX_MOUNT)
        }
        None => sandbox.to_path_buf(),
    };
    spec.mounts.extend(opts.mounts.iter().cloned());
    let image_cwd = config
        .working_dir
        .as_deref()
        .filter(|d| !d.is_empty())
        .map(PathBuf::from);
    spec.cwd = Some(
        opts.cwd
            .clone()
            .or(image_cwd)
            .unwrap_or_else(|| sandbox_in_task.clone()),
    );
    if opts.privileged {
        spec.make_privileged();
    } else {
        if let Some(caps) = &opts.capabilities {
            spec.capabilities = Some(caps.clone());
        }
        let cache = WorkDir::new(&opts.work_dir).seccomp_cache();
        SeccompProfiles::new(None, None, Some(cache)).apply(&mut spec, &opts.seccomp)?;
    }
    spec.env = vec![("PATH".into(), DEFAULT_PATH.into())];
    let sandbox_var = (
        "MESOS_SANDBOX".to_string(),
        sandbox_in_task.to_string_lossy().into_owned(),
    );
    for (k, v) in provisioner::env(&config)
        .iter()
        .chain([&sandbox_var])
        .chain(&opts.env)
    {
        spec.env.retain(|(x, _)| x != k);
        spec.env.push((k.clone(), v.clone()));
    }
    Ok(spec)
}

/// The signals that stop the task.
fn stop_signals() -> SigSet {
    let mut set = SigSet::empty();
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        set.add(s);
    }
    set
}

fn run_in(
    opts: &RunOptions,
    runtime: &Runtime,
    spec: &SandboxSpec,
    sandbox: &Path,
) -> Result<(ExitRecord, Option<String>), StandaloneError> {
    let io_err = |op| move |source| StandaloneError::Io { op, source };
    let pipe = || {
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| io_err("create pipe")(e.into()))
    };
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let stdin: OwnedFd = if opts.interactive {
        io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .map_err(io_err("duplicate stdin"))?
    } else {
        File::open("/dev/null")
            .map_err(io_err("open /dev/null"))?
            .into()
    };
    let files = |name: &str| {
        File::create(sandbox.join(name)).map_err(|source| StandaloneError::Sandbox {
            path: sandbox.join(name),
            source,
        })
    };
    let mut streams = [
        Stream {
            pipe: Some(File::from(out_r)),
            file: files("stdout")?,
            terminal: Box::new(io::stdout()),
        },
        Stream {
            pipe: Some(File::from(err_r)),
            file: files("stderr")?,
            terminal: Box::new(io::stderr()),
        },
    ];
    // Stop signals are read from a signalfd; the helper clears its mask.
    let signals = stop_signals();
    signals
        .thread_block()
        .map_err(|e| io_err("block signals")(e.into()))?;
    let sigfd = SignalFd::with_flags(&signals, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(|e| io_err("create signalfd")(e.into()))?;

    let container = runtime.launch(
        spec,
        Stdio {
            stdin,
            stdout: out_w,
            stderr: err_w,
        },
    );
    let result = container
        .map_err(StandaloneError::from)
        .and_then(|mut c| supervise(&mut c, &mut streams, &sigfd, opts.grace));
    let _ = signals.thread_unblock();
    result
}

/// One output stream of the task: pipe -> (file, terminal).
struct Stream {
    pipe: Option<File>,
    file: File,
    terminal: Box<dyn Write>,
}

impl Stream {
    /// Copies what is available; closes the pipe at EOF.
    fn pump(&mut self, buf: &mut [u8]) {
        let Some(p) = &mut self.pipe else { return };
        match p.read(buf) {
            Ok(0) | Err(_) => self.pipe = None,
            Ok(n) => {
                let _ = self.file.write_all(&buf[..n]);
                // A closed terminal (EPIPE) must not stop the task or the file copy.
                let _ = self
                    .terminal
                    .write_all(&buf[..n])
                    .and_then(|()| self.terminal.flush());
            }
        }
    }
}

fn supervise(
    c: &mut Container,
    streams: &mut [Stream; 2],
    sigfd: &SignalFd,
    grace: Duration,
) -> Result<(ExitRecord, Option<String>), StandaloneError> {
    let mut buf = vec![0u8; 64 << 10];
    // The signal that asked us to stop, and when SIGKILL is due (None once
    // it has been sent).
    let mut stopped_by: Option<Signal> = None;
    let mut kill_at: Option<Instant> = None;
    let mut record = None;
    loop {
        let open: Vec<usize> = (0..2).filter(|i| streams[*i].pipe.is_some()).collect();
        if record.is_some() && open.is_empty() {
            break;
        }
        let mut fds: Vec<PollFd> = open
            .iter()
            .map(|i| {
                PollFd::new(
                    streams[*i].pipe.as_ref().unwrap().as_fd(),
                    PollFlags::POLLIN,
                )
            })
            .collect();
        let mut waits_pidfd = false;
        if record.is_none() {
            fds.push(PollFd::new(sigfd.as_fd(), PollFlags::POLLIN));
            if let Some(p) = c.pidfd() {
                fds.push(PollFd::new(p, PollFlags::POLLIN));
                waits_pidfd = true;
            }
        }
        // Without a pidfd (old kernels) poll for the exit; wake up when a
        // SIGKILL is due; after the exit, wait a while for the output.
        let mut timeout_ms: Option<u128> = None;
        if record.is_some() {
            timeout_ms = Some(1000);
        } else {
            if !waits_pidfd {
                timeout_ms = Some(20);
            }
            if let Some(at) = kill_at {
                let left = at.saturating_duration_since(Instant::now()).as_millis();
                timeout_ms = Some(timeout_ms.map_or(left, |t| t.min(left)));
            }
        }
        let timeout = timeout_ms.map_or(PollTimeout::NONE, |ms| {
            PollTimeout::from(ms.min(1000) as u16)
        });
        let ready: Vec<bool> = match poll(&mut fds, timeout) {
            Ok(0) if record.is_some() => {
                // Output still held open after exit (cannot normally happen:
                // every process died with the pid namespace). Stop waiting.
                break;
            }
            Ok(_) => fds
                .iter()
                .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
                .collect(),
            Err(nix::Error::EINTR) => continue,
            Err(e) => {
                return Err(StandaloneError::Io {
                    op: "poll",
                    source: e.into(),
                })
            }
        };
        drop(fds);
        for (k, i) in open.iter().enumerate() {
            if ready[k] {
                streams[*i].pump(&mut buf);
            }
        }
        if record.is_none() {
            if ready.get(open.len()) == Some(&true) {
                while let Ok(Some(info)) = sigfd.read_signal() {
                    let sig = Signal::try_from(info.ssi_signo as i32).unwrap_or(Signal::SIGTERM);
                    // The first signal asks politely; a second one kills.
                    if stopped_by.is_none() && !grace.is_zero() {
                        c.signal(Signal::SIGTERM)?;
                        kill_at = Some(Instant::now() + grace);
                    } else {
                        kill_at = Some(Instant::now());
                    }
                    stopped_by.get_or_insert(sig);
                }
            }
            if kill_at.is_some_and(|at| Instant::now() >= at) {
                c.signal(Signal::SIGKILL)?;
                kill_at = None;
            }
            record = c.try_wait()?;
        }
    }
    let record = record.expect("loop ends after exit");
    Ok((record, reason(&record, stopped_by)))
}

/// The one-line explanation printed when the task did not simply exit.
fn reason(r: &ExitRecord, stopped_by: Option<Signal>) -> Option<String> {
    if r.oom_killed {
        let limit = r.stats.memory_limit;
        let peak = if r.stats.memory_peak > 0 {
            format!(", peak {}", format_size(r.stats.memory_peak))
        } else {
            String::new()
        };
        return Some(format!(
            "task killed by the OOM killer: memory limit {} reached{peak}",
            format_size(limit)
        ));
    }
    if let Some(sig) = stopped_by {
        return Some(format!("task stopped on {sig}: {}", describe(r.status)));
    }
    if r.stats.pids_limit_hits > 0 && r.status != ExitStatus::Exited(0) {
        return Some(format!(
            "{} forks failed at the pids limit; {}",
            r.stats.pids_limit_hits,
            describe(r.status)
        ));
    }
    None
}

fn describe(s: ExitStatus) -> String {
    match s {
        ExitStatus::Exited(c) => format!("exited with status {c}"),
        ExitStatus::Signaled(n) => match Signal::try_from(n) {
            Ok(sig) => format!("killed by {sig}"),
            Err(_) => format!("killed by signal {n}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::ResourceStats;

    fn opts() -> RunOptions {
        RunOptions {
            command: vec!["sh".into(), "-c".into(), "true".into()],
            image: None,
            pull: PullOptions::default(),
            limits: Limits::default(),
            env: vec![("PATH".into(), "/opt/bin".into()), ("A".into(), "1".into())],
            user: None,
            hostname: None,
            network: Network::Host,
            networks: Vec::new(),
            ports: Vec::new(),
            cni: CniConfig::default(),
            runtime_dir: "/r".into(),
            cwd: None,
            mounts: vec![],
            rlimits: vec![],
            readonly_rootfs: false,
            privileged: false,
            capabilities: None,
            entrypoint: None,
            seccomp: SeccompChoice::Default,
            work_dir: "/w".into(),
            grace: Duration::from_secs(3),
            remove: false,
            gc_delay: None,
            interactive: false,
            runtime: RuntimeConfig {
                cgroup_root: "/x".into(),
                cgroup_parent: "b".into(),
                cgroup_unit: None,
                helper: "/b".into(),
            },
            uris: vec![],
            fetcher: FetchConfig::new(Path::new("/w")),
        }
    }

    #[test]
    fn host_spec_runs_in_the_sandbox() {
        let s = build_spec(&opts(), "id1", Path::new("/w/containers/id1"), None).unwrap();
        assert_eq!(s.cwd.as_deref(), Some(Path::new("/w/containers/id1")));
        assert_eq!(s.env_var("MESOS_SANDBOX"), Some("/w/containers/id1"));
        assert_eq!(s.env_var("PATH"), Some("/opt/bin"));
        assert_eq!(s.env.iter().filter(|(k, _)| k == "PATH").count(), 1);
        assert!(s.rootfs.is_none() && s.mounts.is_empty());
    }

    #[test]
    fn image_spec_mounts_the_sandbox_like_mesos() {
        let dir = tempfile::tempdir().unwrap();
        let o = opts();
        let p = provisioner::prepare(
            dir.path().to_str().unwrap(),
            dir.path(),
            "id1",
            &o.pull,
            false,
        )
        .unwrap();
        let s = build_spec(&o, "id1", Path::new("/w/containers/id1"), Some(&p)).unwrap();
        assert_eq!(s.cwd.as_deref(), Some(Path::new(SANDBOX_MOUNT)));
        assert_eq!(s.env_var("MESOS_SANDBOX"), Some(SANDBOX_MOUNT));
        assert_eq!(
            s.mounts,
            vec![Mount::bind("/w/containers/id1", SANDBOX_MOUNT, false)]
        );
    }

    #[test]
    fn reasons() {
        let mut r = ExitRecord {
            status: ExitStatus::Signaled(9),
            oom_killed: true,
            stats: ResourceStats {
                memory_limit: 32 << 20,
                memory_peak: 32 << 20,
                ..Default::default()
            },
        };
        assert_eq!(
            reason(&r, None).unwrap(),
            "task killed by the OOM killer: memory limit 32.0 MiB reached, peak 32.0 MiB"
        );
        r.oom_killed = false;
        assert_eq!(
            reason(&r, Some(Signal::SIGINT)).unwrap(),
            "task stopped on SIGINT: killed by SIGKILL"
        );
        assert_eq!(reason(&r, None), None);
    }
}
