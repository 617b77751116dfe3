//! The `butte` command line. The only place that uses `anyhow` and the one
//! place that maps errors to exit codes.

use anyhow::{bail, Context};
use butte::containerizer::security::SeccompChoice;
use butte::containerizer::standalone::{self, RunOptions, StandaloneError};
use butte::fetch::{FetchConfig, FetchUser, Fetcher, UriSpec};
use butte::image::PullOptions;
use butte::mount::Mount;
use butte::runtime::{
    self, FailureKind, Limits, Network, Rlimit, RuntimeConfig, RuntimeError, User,
};
use butte::state::paths::DEFAULT_WORK_DIR;
use butte::support::{parse_duration, parse_size};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

mod cli;

#[derive(Parser)]
#[command(
    name = "butte",
    version,
    propagate_version = true,
    about = "A Mesos agent and container runtime"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one command in a sandbox, in the foreground, with no master.
    Run(Box<RunArgs>),
    /// Pull, import, list, inspect and remove container images.
    #[command(subcommand)]
    Image(image_cli::ImageCommand),
    /// Fetch URIs into a sandbox directory, as before a task starts.
    Fetch(FetchArgs),
    /// Run as a Mesos agent: register with a master and run its tasks.
    Agent(Box<agent_cli::AgentArgs>),
    /// The built-in executor, started by the agent in an executor's container.
    Executor(Box<butte::executors::ExecutorArgs>),
    /// Runs a task in a root filesystem mounted in the executor's container.
    #[command(hide = true)]
    Enter(butte::runtime::EnterArgs),
    /// List an agent's tasks and standalone containers.
    Ps(cli::PsArgs),
    /// Print (or follow) a task's stdout or stderr.
    Logs(cli::LogsArgs),
    /// Show the CPU, memory and processes of an agent's containers, live.
    Stats(cli::StatsArgs),
    /// Kill a task (its executor's container) or a standalone container.
    Kill(cli::KillArgs),
    /// Run a command inside a running task's container (-i: stdin, -t: a
    /// terminal).
    Exec(cli::ExecArgs),
}

#[derive(clap::Args)]
struct RunArgs {
    /// An image reference (pulled if not in the store) or an unpacked root
    /// filesystem directory (default: the host filesystem, with the sandbox
    /// directory as working directory).
    #[arg(long, value_name = "REF|DIR")]
    image: Option<String>,
    #[command(flatten)]
    registry: RegistryArgs,
    /// CPU limit, in cpus (e.g. 0.5): shares and a hard CFS quota.
    #[arg(long, allow_negative_numbers = true)]
    cpus: Option<f64>,
    /// Memory limit (e.g. 128M, 1G); swap is not allowed.
    #[arg(long, short = 'm', alias = "memory", value_parser = parse_size_arg)]
    mem: Option<u64>,
    /// Maximum number of processes and threads.
    #[arg(long, allow_negative_numbers = true)]
    pids: Option<i64>,
    /// Set an environment variable (repeatable).
    #[arg(short, long = "env", value_name = "KEY=VALUE", value_parser = parse_env)]
    env: Vec<(String, String)>,
    /// Run as NAME, UID or UID:GID (looked up in the sandbox's /etc/passwd).
    #[arg(short, long)]
    user: Option<String>,
    /// Hostname in the sandbox (default: the first 12 hex digits of its id).
    #[arg(long)]
    hostname: Option<String>,
    /// Network: `host` (default), `none` (a new, empty network namespace),
    /// or a CNI network by name: `bridge` is the config of that name in
    /// `--cni-config-dir`, else a built-in bridge (10.87.0.0/16 on butte0).
    #[arg(long, alias = "network", default_value = "host")]
    net: String,
    /// Publish a host port to the task's: HOST:CONTAINER[/tcp|udp]
    /// (repeatable; needs a CNI network, e.g. `--net bridge`).
    #[arg(short = 'p', long = "publish", value_name = "HOST:CONTAINER[/PROTO]", value_parser = parse_publish)]
    publish: Vec<(u32, u32, String)>,
    /// CNI network configurations for `--net NAME`.
    #[arg(long, value_name = "DIR", default_value = "/etc/cni/net.d")]
    cni_config_dir: PathBuf,
    /// CNI plugin directories (`:`-separated).
    #[arg(long, value_name = "DIRS", default_value = "/usr/lib/cni:/opt/cni/bin")]
    cni_plugins_dir: String,
    /// Where the task's network namespace is pinned while it runs.
    #[arg(long, value_name = "DIR", default_value = butte::state::paths::DEFAULT_RUNTIME_DIR)]
    runtime_dir: PathBuf,
    /// Working directory in the sandbox (default: the image's, else the
    /// sandbox directory).
    #[arg(long, short = 'w', alias = "workdir", value_name = "DIR")]
    cwd: Option<PathBuf>,
    /// Bind mount a host path: SRC:DST[:ro] (repeatable; Docker's -v).
    #[arg(long = "mount", short = 'v', alias = "volume", value_name = "SRC:DST[:ro]", value_parser = parse_mount)]
    mounts: Vec<Mount>,
    /// Replace the image's entrypoint (and drop its command), as Docker's
    /// --entrypoint; "" clears it.
    #[arg(long, value_name = "CMD")]
    entrypoint: Option<String>,
    /// Keep a capability beyond Docker's default set (repeatable; ALL).
    #[arg(long = "cap-add", value_name = "CAP")]
    cap_add: Vec<String>,
    /// Drop a capability of Docker's default set (repeatable; ALL).
    #[arg(long = "cap-drop", value_name = "CAP")]
    cap_drop: Vec<String>,
    /// Resource limit NAME=SOFT[:HARD], e.g. nofile=1024:4096 (repeatable).
    #[arg(long = "ulimit", value_name = "NAME=SOFT[:HARD]", value_parser = parse_ulimit)]
    ulimits: Vec<Rlimit>,
    /// Mount the root filesystem read-only.
    #[arg(long)]
    read_only: bool,
    /// Give the task every device and capability, with no seccomp filter
    /// and no masked paths (as Docker's --privileged).
    #[arg(long)]
    privileged: bool,
    /// Seccomp profile (Docker's JSON format) instead of the built-in
    /// default (Docker's), or `unconfined`.
    #[arg(long, value_name = "FILE|unconfined")]
    seccomp_profile: Option<String>,
    /// Time between SIGTERM and SIGKILL when the task is stopped.
    #[arg(long, default_value = "3s", value_parser = parse_duration_arg)]
    grace_period: std::time::Duration,
    /// Remove the sandbox directory when the task ends.
    #[arg(long)]
    rm: bool,
    /// Before the task starts, remove the sandboxes of finished runs older
    /// than this (sooner as the disk fills, as the agent's --gc_delay).
    #[arg(long, default_value = "1weeks", value_parser = parse_duration_arg)]
    gc_delay: std::time::Duration,
    /// Connect this terminal's stdin to the task.
    #[arg(short, long)]
    interactive: bool,
    /// Where sandboxes live.
    #[arg(long, alias = "work_dir", env = "BUTTE_WORK_DIR", default_value = DEFAULT_WORK_DIR)]
    work_dir: PathBuf,
    /// cgroup group all sandboxes are nested under.
    #[arg(long, hide = true, default_value = "butte")]
    cgroup_parent: String,
    /// Fetch a URI into the sandbox before the command runs (repeatable):
    /// URL[,extract|noextract][,executable][,cache][,output_file=NAME].
    #[arg(long = "uri", value_name = "URL[,OPTIONS]")]
    uris: Vec<UriSpec>,
    #[command(flatten)]
    fetcher: FetcherArgs,
    /// The command and its arguments (with --image REF: the arguments to
    /// the image's entrypoint; default its command).
    #[arg(last = true, required_unless_present = "image", value_name = "CMD")]
    command: Vec<String>,
}

/// How to reach registries.
#[derive(clap::Args, Clone)]
struct RegistryArgs {
    /// Speak plain http to this registry (HOST[:PORT]; repeatable).
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    insecure_registry: Vec<String>,
    /// Docker-style config.json with registry credentials (default:
    /// $DOCKER_CONFIG/config.json, else ~/.docker/config.json).
    #[arg(long, value_name = "FILE")]
    registry_config: Option<PathBuf>,
    /// Refuse layers larger than this once uncompressed.
    #[arg(long, value_parser = parse_size_arg, default_value = "32G")]
    max_layer_size: u64,
}

impl RegistryArgs {
    fn pull_options(&self) -> PullOptions {
        PullOptions {
            insecure: self.insecure_registry.clone(),
            registry_config: self.registry_config.clone(),
            max_layer_size: self.max_layer_size,
            ..PullOptions::default()
        }
    }
}

/// How the fetcher behaves (the Mesos agent's `--fetcher_*` flags).
#[derive(clap::Args, Clone)]
struct FetcherArgs {
    /// Limit of the fetcher cache under the work dir; 0 disables it.
    #[arg(long, alias = "fetcher_cache_size", value_parser = parse_size_arg, default_value = "2G")]
    fetcher_cache_size: u64,
    /// Fail a download when the server sends nothing for this long.
    #[arg(long, alias = "fetcher_stall_timeout", value_parser = parse_duration_arg, default_value = "60s")]
    fetcher_stall_timeout: std::time::Duration,
    /// Refuse an artifact larger than this, downloaded or unpacked.
    #[arg(long, value_parser = parse_size_arg, default_value = "10G")]
    fetcher_max_size: u64,
}

impl FetcherArgs {
    fn config(&self, work_dir: &std::path::Path) -> FetchConfig {
        let mut c = FetchConfig::new(work_dir);
        c.cache_size = self.fetcher_cache_size;
        c.http.read_timeout = self.fetcher_stall_timeout;
        c.max_size = self.fetcher_max_size;
        c
    }
}

#[derive(clap::Args)]
struct FetchArgs {
    /// The directory to fetch into (created if missing).
    #[arg(long, value_name = "DIR")]
    sandbox: PathBuf,
    /// Fetch for this host user: a cache of its own, files owned by it,
    /// local paths only if it can read them.
    #[arg(long)]
    user: Option<String>,
    /// The agent's work directory, which holds the fetcher cache.
    #[arg(long, alias = "work_dir", env = "BUTTE_WORK_DIR", default_value = DEFAULT_WORK_DIR)]
    work_dir: PathBuf,
    #[command(flatten)]
    fetcher: FetcherArgs,
    /// URL[,extract|noextract][,executable][,cache][,output_file=NAME]
    #[arg(required = true, value_name = "URI")]
    uris: Vec<UriSpec>,
}

fn fetch(args: FetchArgs) -> anyhow::Result<ExitCode> {
    let user = match &args.user {
        Some(name) => FetchUser::lookup(name)?,
        None => FetchUser::default(),
    };
    std::fs::create_dir_all(&args.sandbox)
        .with_context(|| format!("create sandbox {}", args.sandbox.display()))?;
    let fetcher = Fetcher::new(args.fetcher.config(&args.work_dir));
    let started = std::time::Instant::now();
    for f in fetcher.fetch(&args.uris, &args.sandbox, &user)? {
        let how = if f.from_cache {
            "from the cache"
        } else {
            "downloaded"
        };
        eprintln!("{} -> {} ({how})", f.uri, f.path.display());
    }
    eprintln!(
        "fetched {} uris in {:.2?}",
        args.uris.len(),
        started.elapsed()
    );
    Ok(ExitCode::SUCCESS)
}

fn parse_size_arg(s: &str) -> Result<u64, String> {
    parse_size(s).map_err(|e| e.to_string())
}

fn parse_duration_arg(s: &str) -> Result<std::time::Duration, String> {
    parse_duration(s).map_err(|e| e.to_string())
}

/// `-p HOST:CONTAINER[/PROTO]`.
fn parse_publish(s: &str) -> Result<(u32, u32, String), String> {
    let (ports, proto) = s.split_once('/').unwrap_or((s, "tcp"));
    if !matches!(proto, "tcp" | "udp" | "sctp") {
        return Err(format!("protocol {proto:?}: must be tcp, udp or sctp"));
    }
    let (host, container) = ports
        .split_once(':')
        .ok_or_else(|| format!("{s:?}: expected HOST:CONTAINER"))?;
    let port = |p: &str| match p.parse::<u32>() {
        Ok(n) if (1..=65535).contains(&n) => Ok(n),
        _ => Err(format!("port {p:?}: must be 1 to 65535")),
    };
    Ok((port(host)?, port(container)?, proto.to_string()))
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{s:?} is not KEY=VALUE")),
    }
}

fn parse_mount(s: &str) -> Result<Mount, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let (src, dst, ro) = match parts.as_slice() {
        [src, dst] => (*src, *dst, false),
        [src, dst, "ro"] => (*src, *dst, true),
        [src, dst, "rw"] => (*src, *dst, false),
        _ => return Err(format!("{s:?} is not SRC:DST[:ro]")),
    };
    let src = std::fs::canonicalize(src).map_err(|e| format!("mount source {src}: {e}"))?;
    Ok(Mount::bind(src, dst, ro))
}

fn parse_ulimit(s: &str) -> Result<Rlimit, String> {
    let bad = || {
        format!("{s:?} is not NAME=SOFT[:HARD] (names: nofile, nproc, core, fsize, stack, memlock)")
    };
    let (name, limits) = s.split_once('=').ok_or_else(bad)?;
    let resource = name.parse().map_err(|()| bad())?;
    let num = |v: &str| -> Result<u64, String> {
        if v == "unlimited" {
            Ok(u64::MAX)
        } else {
            v.parse().map_err(|_| bad())
        }
    };
    let (soft, hard) = match limits.split_once(':') {
        Some((a, b)) => (num(a)?, num(b)?),
        None => (num(limits)?, num(limits)?),
    };
    Ok(Rlimit {
        resource,
        soft,
        hard,
    })
}

fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let pids = match args.pids {
        Some(p) if p < 1 => bail!("invalid pids limit {p}: must be at least 1"),
        Some(p) => Some(p as u64),
        None => None,
    };
    let user = args.user.as_deref().map(str::parse::<User>).transpose()?;
    let mut runtime = RuntimeConfig::new().context("find the butte binary")?;
    runtime.cgroup_parent = args.cgroup_parent;
    let fetcher = args.fetcher.config(&args.work_dir);
    let opts = RunOptions {
        command: args.command,
        image: args.image,
        pull: args.registry.pull_options(),
        limits: Limits {
            cpus: args.cpus,
            memory: args.mem,
            pids,
        },
        env: args.env,
        user,
        hostname: args.hostname,
        network: if args.net == "none" {
            Network::None
        } else {
            Network::Host
        },
        networks: match args.net.as_str() {
            "host" | "none" => Vec::new(),
            name => vec![name.to_string()],
        },
        ports: args.publish,
        cni: butte::containerizer::network::CniConfig {
            config_dir: Some(args.cni_config_dir),
            plugin_dirs: args
                .cni_plugins_dir
                .split(':')
                .filter(|d| !d.is_empty())
                .map(PathBuf::from)
                .collect(),
            persist_dir: None,
        },
        runtime_dir: args.runtime_dir,
        cwd: args.cwd,
        mounts: args.mounts,
        rlimits: args.ulimits,
        readonly_rootfs: args.read_only,
        privileged: args.privileged,
        capabilities: butte::containerizer::docker::kept_capabilities(
            &args.cap_add,
            &args.cap_drop,
        )?,
        entrypoint: args.entrypoint,
        seccomp: match args.seccomp_profile.as_deref() {
            None => SeccompChoice::Default,
            Some("unconfined") => SeccompChoice::Unconfined,
            Some(file) => SeccompChoice::File(file.into()),
        },
        work_dir: args.work_dir,
        grace: args.grace_period,
        remove: args.rm,
        gc_delay: Some(args.gc_delay),
        interactive: args.interactive,
        runtime,
        uris: args.uris,
        fetcher,
    };
    let outcome = standalone::run(&opts)?;
    if let Some(reason) = &outcome.reason {
        eprintln!("butte: {reason}");
    }
    Ok(ExitCode::from(outcome.exit_code.clamp(0, 255) as u8))
}

/// Exit codes of `butte run` itself, as Docker and Podman use them:
/// 125 butte failed, 126 the command cannot be executed, 127 not found.
fn exit_code(err: &anyhow::Error) -> u8 {
    let kind = err
        .downcast_ref::<StandaloneError>()
        .and_then(|e| match e {
            StandaloneError::Runtime(r) => r.failure_kind(),
            _ => None,
        })
        .or_else(|| {
            err.downcast_ref::<RuntimeError>()
                .and_then(RuntimeError::failure_kind)
        });
    match kind {
        Some(FailureKind::NotFound) => 127,
        Some(FailureKind::NotExecutable) => 126,
        _ => 125,
    }
}

/// The error and its causes on one line, skipping a cause whose text the
/// message before it already includes (our errors name their cause).
fn describe(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out
}

mod image_cli {
    //! `butte image ...`.

    use super::{parse_size_arg, RegistryArgs};
    use anyhow::Context;
    use butte::image::{self, Digest, Progress, Quiet, Reference, Store};
    use butte::state::paths::DEFAULT_WORK_DIR;
    use butte::support::format_size;
    use std::collections::HashMap;
    use std::io::IsTerminal;
    use std::path::PathBuf;
    use std::process::ExitCode;
    use std::sync::Mutex;

    #[derive(clap::Subcommand)]
    pub enum ImageCommand {
        /// Pull an image from a registry into the store.
        Pull {
            reference: String,
            #[command(flatten)]
            registry: RegistryArgs,
            #[command(flatten)]
            store: StoreArgs,
        },
        /// List the images in the store.
        #[command(alias = "list")]
        Ls {
            #[command(flatten)]
            store: StoreArgs,
        },
        /// Print an image's digest, config and layers as JSON.
        Inspect {
            reference: String,
            #[command(flatten)]
            store: StoreArgs,
        },
        /// Import an OCI image layout directory or a `docker save` tarball.
        Import {
            path: PathBuf,
            /// Name for the images (required for an OCI layout's bare tags).
            #[arg(long)]
            name: Option<String>,
            #[arg(long, value_parser = parse_size_arg, default_value = "32G")]
            max_layer_size: u64,
            #[command(flatten)]
            store: StoreArgs,
        },
        /// Remove a reference and whatever only it used.
        Rm {
            reference: String,
            #[command(flatten)]
            store: StoreArgs,
        },
        /// Delete blobs and layers that no reference or container uses.
        Prune {
            #[command(flatten)]
            store: StoreArgs,
        },
    }

    #[derive(clap::Args)]
    pub struct StoreArgs {
        /// The agent's work directory, which holds the image store.
        #[arg(long, alias = "work_dir", env = "BUTTE_WORK_DIR", default_value = DEFAULT_WORK_DIR)]
        work_dir: PathBuf,
    }

    impl StoreArgs {
        fn open(&self) -> anyhow::Result<Store> {
            Ok(Store::open(&self.work_dir)?)
        }
    }

    fn parse(reference: &str) -> anyhow::Result<Reference> {
        Reference::parse(reference).map_err(anyhow::Error::msg)
    }

    fn find(store: &Store, reference: &str) -> anyhow::Result<image::Image> {
        let r = parse(reference)?;
        store
            .image(&r)?
            .with_context(|| format!("image {r} is not in the store"))
    }

    pub fn main(cmd: ImageCommand) -> anyhow::Result<ExitCode> {
        match cmd {
            ImageCommand::Pull {
                reference,
                registry,
                store,
            } => {
                let store = store.open()?;
                let r = parse(&reference)?;
                let started = std::time::Instant::now();
                let img = if std::io::stderr().is_terminal() {
                    image::pull(&store, &r, &registry.pull_options(), &Bars::default())
                } else {
                    image::pull(&store, &r, &registry.pull_options(), &Quiet)
                }
                .with_context(|| format!("pull {r}"))?;
                let size: u64 = img.layers.iter().map(|l| l.2).sum();
                eprintln!(
                    "pulled {r} ({} in {:.2?})",
                    format_size(size),
                    started.elapsed()
                );
                println!("{}", img.digest);
            }
            ImageCommand::Ls { store } => {
                println!(
                    "{:<60} {:<14} {:>10} {:>6}",
                    "REFERENCE", "DIGEST", "SIZE", "LAYERS"
                );
                for img in store.open()?.images()? {
                    let size: u64 = img.layers.iter().map(|l| l.2).sum();
                    println!(
                        "{:<60} {:<14} {:>10} {:>6}",
                        img.reference,
                        img.digest.short(),
                        format_size(size),
                        img.layers.len()
                    );
                }
            }
            ImageCommand::Inspect { reference, store } => {
                let store = store.open()?;
                let img = find(&store, &reference)?;
                let config: serde_json::Value =
                    serde_json::from_slice(&store.read_blob(&img.config_digest)?)?;
                let layers: Vec<_> = img
                    .layers
                    .iter()
                    .map(|(d, diff, size)| serde_json::json!({"digest": d, "diff_id": diff, "size": size}))
                    .collect();
                let out = serde_json::json!({
                    "reference": img.reference,
                    "digest": img.digest,
                    "manifest": img.manifest,
                    "config_digest": img.config_digest,
                    "config": config,
                    "layers": layers,
                });
                println!("{}", serde_json::to_string_pretty(&out)?);
            }
            ImageCommand::Import {
                path,
                name,
                max_layer_size,
                store,
            } => {
                let store = store.open()?;
                let images = image::import(&store, &path, name.as_deref(), max_layer_size, &Quiet)
                    .with_context(|| format!("import {}", path.display()))?;
                for img in images {
                    println!("{} {}", img.reference, img.digest);
                }
            }
            ImageCommand::Rm { reference, store } => {
                let g = image::remove(&store.open()?, &parse(&reference)?)?;
                eprintln!(
                    "removed {reference}: {} blobs, {} layers, {} freed",
                    g.blobs,
                    g.layers,
                    format_size(g.bytes)
                );
            }
            ImageCommand::Prune { store } => {
                let g = image::prune(&store.open()?)?;
                eprintln!(
                    "pruned {} blobs, {} layers, {} freed",
                    g.blobs,
                    g.layers,
                    format_size(g.bytes)
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    }

    /// A progress bar per layer, on a terminal.
    #[derive(Default)]
    struct Bars {
        multi: indicatif::MultiProgress,
        /// A std mutex: nothing blocks while it is held.
        bars: Mutex<HashMap<Digest, indicatif::ProgressBar>>,
    }

    impl Bars {
        fn bar(&self, d: &Digest) -> Option<indicatif::ProgressBar> {
            self.bars
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(d)
                .cloned()
        }
    }

    impl Progress for Bars {
        fn layer_start(&self, d: &Digest, size: u64) {
            let bar = self.multi.add(indicatif::ProgressBar::new(size));
            let style = indicatif::ProgressStyle::with_template(
                "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
            )
            .expect("template")
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(d.short().to_string());
            self.bars
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(d.clone(), bar);
        }
        fn layer_bytes(&self, d: &Digest, n: u64) {
            if let Some(b) = self.bar(d) {
                b.inc(n);
            }
        }
        fn layer_done(&self, d: &Digest, status: &str) {
            if let Some(b) = self.bar(d) {
                b.finish_with_message(status.to_string());
            }
        }
    }
}

/// Logging to stderr at `BUTTE_LOG` (or `RUST_LOG`): error, warn, info,
/// debug or trace; `default` otherwise. The level sits behind a reload
/// layer the agent's SET_LOGGING_LEVEL call swaps.
fn init_logging(default: tracing::Level) {
    use tracing_subscriber::prelude::*;
    let var = std::env::var("BUTTE_LOG").or_else(|_| std::env::var("RUST_LOG"));
    let level = match var.as_deref() {
        Ok("trace") => tracing::Level::TRACE,
        Ok("debug") => tracing::Level::DEBUG,
        Ok("info") => tracing::Level::INFO,
        Ok("error") => tracing::Level::ERROR,
        Ok("warn") => tracing::Level::WARN,
        _ => default,
    };
    let base = tracing_subscriber::filter::LevelFilter::from_level(level);
    let (filter, handle) = tracing_subscriber::reload::Layer::new(base);
    // Under systemd: entries with structured fields (the Mesos ids) on the
    // journal's own socket; else, or when that socket is missing, lines on
    // stderr (which the journal, if it is one, stamps itself).
    let stream = std::env::var_os("JOURNAL_STREAM").is_some();
    let native = butte::support::journal::stderr_is_journal()
        .then(|| {
            butte::support::journal::JournalLayer::connect(
                std::path::Path::new(butte::support::journal::JOURNAL_SOCKET),
                "butte",
            )
            .ok()
        })
        .flatten();
    let lines = native.is_none();
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(native)
        .with((lines && stream).then(|| {
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .without_time()
        }))
        .with(
            (lines && !stream)
                .then(|| tracing_subscriber::fmt::layer().with_writer(std::io::stderr)),
        )
        .try_init();
    if installed.is_ok() {
        butte::agent::install_log_control(
            base,
            Box::new(move |f| {
                let _ = handle.reload(f);
            }),
        );
    }
}

/// An exit code from a subcommand that reports its own errors.
fn exit(code: i32) -> ExitCode {
    ExitCode::from(code.clamp(0, 255) as u8)
}

/// `butte agent`: the flags are the Mesos agent's, each also read from
/// `MESOS_<FLAG>`, so an existing agent configuration keeps working.
mod agent_cli {
    use super::{parse_duration_arg, parse_size_arg};
    use butte::agent::{AgentConfig, RecoverMode};
    use butte::fetch::FetchConfig;
    use butte::image::PullOptions;
    use butte::runtime::RuntimeConfig;
    use butte::state::paths::{DEFAULT_RUNTIME_DIR, DEFAULT_WORK_DIR};
    use std::ffi::OsString;
    use std::net::{IpAddr, SocketAddr};
    use std::path::PathBuf;
    use std::process::ExitCode;
    use std::time::Duration;

    #[derive(clap::Args)]
    pub struct AgentArgs {
        /// The master: HOST:PORT, zk://[user:pass@]host1:port1,host2:port2/path
        /// (the leader of the masters' group in ZooKeeper), or file:///path
        /// (a file holding either).
        #[arg(help_heading = "Master and registration", long, env = "MESOS_MASTER")]
        master: String,
        /// IP address to listen on (default: all).
        #[arg(help_heading = "Addresses", long, env = "MESOS_IP")]
        ip: Option<IpAddr>,
        /// Port to listen on; 0 picks a free one.
        #[arg(
            help_heading = "Addresses",
            long,
            env = "MESOS_PORT",
            default_value_t = 5051
        )]
        port: u16,
        /// IP address advertised to the master.
        #[arg(
            help_heading = "Addresses",
            long = "advertise_ip",
            alias = "advertise-ip",
            env = "MESOS_ADVERTISE_IP"
        )]
        advertise_ip: Option<IpAddr>,
        /// Port advertised to the master.
        #[arg(
            help_heading = "Addresses",
            long = "advertise_port",
            alias = "advertise-port",
            env = "MESOS_ADVERTISE_PORT"
        )]
        advertise_port: Option<u16>,
        /// Hostname reported to the master (default: the system's).
        #[arg(help_heading = "Addresses", long, env = "MESOS_HOSTNAME")]
        hostname: Option<String>,
        /// Total consumable resources: `cpus:4;mem:8192;disk:1000;ports:[31000-32000]`
        /// or a JSON array of Resource; what is missing is detected.
        #[arg(
            help_heading = "Resources and attributes",
            long,
            env = "MESOS_RESOURCES"
        )]
        resources: Option<String>,
        /// The role of resources `--resources` gives without one, and of
        /// detected ones (`*`: unreserved; another role reserves them).
        #[arg(
            help_heading = "Resources and attributes",
            long = "default_role",
            alias = "default-role",
            env = "MESOS_DEFAULT_ROLE",
            default_value = "*"
        )]
        default_role: String,
        /// Attributes of this machine: `rack:a;zone:2`.
        #[arg(
            help_heading = "Resources and attributes",
            long,
            env = "MESOS_ATTRIBUTES"
        )]
        attributes: Option<String>,
        /// Where checkpoints, sandboxes, images and the fetcher cache live.
        #[arg(help_heading = "Directories and recovery", long = "work_dir", alias = "work-dir", env = "MESOS_WORK_DIR", default_value = DEFAULT_WORK_DIR)]
        work_dir: PathBuf,
        /// Volatile state: mount points, launch files.
        #[arg(help_heading = "Directories and recovery", long = "runtime_dir", alias = "runtime-dir", env = "MESOS_RUNTIME_DIR", default_value = DEFAULT_RUNTIME_DIR)]
        runtime_dir: PathBuf,
        /// The cgroup every container is nested under: relative to the
        /// hierarchy's root, or, under systemd with DelegateSubgroup=
        /// (cgroup v2), to the unit's delegated cgroup.
        #[arg(
            help_heading = "Containers and isolation",
            long = "cgroups_root",
            alias = "cgroups-root",
            env = "MESOS_CGROUPS_ROOT",
            default_value = "butte"
        )]
        cgroups_root: String,
        /// Accepted for compatibility: namespaces and cgroups (cpu, memory,
        /// pids) are always used.
        #[arg(
            help_heading = "Containers and isolation",
            long,
            env = "MESOS_ISOLATION",
            default_value = "filesystem/linux,cgroups/cpu,cgroups/mem,cgroups/pids,namespaces/pid"
        )]
        isolation: String,
        /// How long an executor may take from its start to subscribing.
        #[arg(help_heading = "Executors", long = "executor_registration_timeout", alias = "executor-registration-timeout", env = "MESOS_EXECUTOR_REGISTRATION_TIMEOUT", default_value = "1mins", value_parser = parse_duration_arg)]
        executor_registration_timeout: Duration,
        /// After a restart, how long executors have to reconnect.
        #[arg(help_heading = "Executors", long = "executor_reregistration_timeout", alias = "executor-reregistration-timeout", env = "MESOS_EXECUTOR_REREGISTRATION_TIMEOUT", default_value = "5secs", value_parser = parse_duration_arg)]
        executor_reregistration_timeout: Duration,
        /// Time an executor gets to stop on its own before it is killed.
        #[arg(help_heading = "Executors", long = "executor_shutdown_grace_period", alias = "executor-shutdown-grace-period", env = "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD", default_value = "5secs", value_parser = parse_duration_arg)]
        executor_shutdown_grace_period: Duration,
        /// How long executors wait for a restarted agent before exiting.
        #[arg(help_heading = "Directories and recovery", long = "recovery_timeout", alias = "recovery-timeout", env = "MESOS_RECOVERY_TIMEOUT", default_value = "15mins", value_parser = parse_duration_arg)]
        recovery_timeout: Duration,
        /// `reconnect` to executors after a restart, or `cleanup`: kill them,
        /// forget the agent's id (the next start registers anew) and exit.
        #[arg(help_heading = "Directories and recovery", long, env = "MESOS_RECOVER", default_value = "reconnect", value_parser = ["reconnect", "cleanup"])]
        recover: String,
        /// Which changes of resources, attributes, hostname or port a
        /// restarted agent may make and keep its id: `equal` (none) or
        /// `additive` (resources and attributes may only be added to).
        #[arg(help_heading = "Directories and recovery", long = "reconfiguration_policy", alias = "reconfiguration-policy", env = "MESOS_RECONFIGURATION_POLICY", default_value = "equal", value_parser = ["equal", "additive"])]
        reconfiguration_policy: String,
        /// The ZooKeeper session timeout of zk:// master detection.
        #[arg(help_heading = "Master and registration", long = "zk_session_timeout", alias = "zk-session-timeout", env = "MESOS_ZK_SESSION_TIMEOUT", default_value = "10secs", value_parser = parse_duration_arg)]
        zk_session_timeout: Duration,
        /// A file with the principal and secret to authenticate to the master
        /// with: `principal secret` or {"principal": .., "secret": ..}.
        #[arg(
            help_heading = "Master and registration",
            long,
            env = "MESOS_CREDENTIAL"
        )]
        credential: Option<PathBuf>,
        /// The authentication mechanism: only `crammd5`.
        #[arg(
            help_heading = "Master and registration",
            long,
            env = "MESOS_AUTHENTICATEE",
            default_value = "crammd5"
        )]
        authenticatee: String,
        /// An authentication attempt's timeout is drawn from [min, min + 2 * factor],
        /// the range doubling at each retry.
        #[arg(help_heading = "Master and registration", long = "authentication_backoff_factor", alias = "authentication-backoff-factor", env = "MESOS_AUTHENTICATION_BACKOFF_FACTOR", default_value = "1secs", value_parser = parse_duration_arg)]
        authentication_backoff_factor: Duration,
        /// The shortest authentication attempt timeout.
        #[arg(help_heading = "Master and registration", long = "authentication_timeout_min", alias = "authentication-timeout-min", env = "MESOS_AUTHENTICATION_TIMEOUT_MIN", default_value = "5secs", value_parser = parse_duration_arg)]
        authentication_timeout_min: Duration,
        /// The longest authentication attempt timeout.
        #[arg(help_heading = "Master and registration", long = "authentication_timeout_max", alias = "authentication-timeout-max", env = "MESOS_AUTHENTICATION_TIMEOUT_MAX", default_value = "1mins", value_parser = parse_duration_arg)]
        authentication_timeout_max: Duration,
        /// Registration retries wait a random time up to this, doubling up to 1 min.
        #[arg(help_heading = "Master and registration", long = "registration_backoff_factor", alias = "registration-backoff-factor", env = "MESOS_REGISTRATION_BACKOFF_FACTOR", default_value = "1secs", value_parser = parse_duration_arg)]
        registration_backoff_factor: Duration,
        /// First retry of an unacknowledged status update (doubling up to 10 mins).
        #[arg(help_heading = "Executors", long = "status_update_retry_interval", alias = "status-update-retry-interval", env = "MESOS_STATUS_UPDATE_RETRY_INTERVAL", default_value = "10secs", value_parser = parse_duration_arg)]
        status_update_retry_interval: Duration,
        /// Interval of HEARTBEAT events on executor subscriptions (also
        /// `--executor_heartbeat_interval`, butte's older name).
        #[arg(help_heading = "Executors", long = "http_heartbeat_interval", aliases = ["http-heartbeat-interval", "executor_heartbeat_interval", "executor-heartbeat-interval"], env = "MESOS_HTTP_HEARTBEAT_INTERVAL", default_value = "30secs", value_parser = parse_duration_arg)]
        executor_heartbeat_interval: Duration,
        /// Default registry for image names without one; an `http://` URL
        /// makes it a plain-http registry.
        #[arg(
            help_heading = "Images and fetcher",
            long = "docker_registry",
            alias = "docker-registry",
            env = "MESOS_DOCKER_REGISTRY"
        )]
        docker_registry: Option<String>,
        /// Docker config.json with registry credentials.
        #[arg(
            help_heading = "Images and fetcher",
            long = "docker_config",
            alias = "docker-config",
            env = "MESOS_DOCKER_CONFIG"
        )]
        docker_config: Option<PathBuf>,
        /// Registries (HOST[:PORT]) spoken to over plain http.
        #[arg(
            help_heading = "Images and fetcher",
            long = "insecure_registries",
            alias = "insecure-registries",
            env = "MESOS_INSECURE_REGISTRIES",
            value_delimiter = ','
        )]
        insecure_registries: Vec<String>,
        /// Limit of the fetcher cache; 0 disables it.
        #[arg(help_heading = "Images and fetcher", long = "fetcher_cache_size", alias = "fetcher-cache-size", env = "MESOS_FETCHER_CACHE_SIZE", default_value = "2G", value_parser = parse_size_arg)]
        fetcher_cache_size: u64,
        /// Fail a download when the server sends nothing for this long.
        #[arg(help_heading = "Images and fetcher", long = "fetcher_stall_timeout", alias = "fetcher-stall-timeout", env = "MESOS_FETCHER_STALL_TIMEOUT", default_value = "60secs", value_parser = parse_duration_arg)]
        fetcher_stall_timeout: Duration,
        /// Directory of seccomp profiles (Docker's JSON format) that
        /// `--seccomp_profile_name` and tasks' `SeccompInfo.profile_name` name.
        #[arg(
            help_heading = "Containers and isolation",
            long = "seccomp_config_dir",
            alias = "seccomp-config-dir",
            env = "MESOS_SECCOMP_CONFIG_DIR"
        )]
        seccomp_config_dir: Option<PathBuf>,
        /// The default seccomp profile, a file in `--seccomp_config_dir`
        /// (default: the built-in profile, Docker's default).
        #[arg(
            help_heading = "Containers and isolation",
            long = "seccomp_profile_name",
            alias = "seccomp-profile-name",
            env = "MESOS_SECCOMP_PROFILE_NAME",
            requires = "seccomp_config_dir"
        )]
        seccomp_profile_name: Option<String>,
        /// Directory of CNI network configurations (`.conflist`, `.conf`)
        /// that `ContainerInfo.network_infos[].name` selects from.
        #[arg(
            help_heading = "Networking (CNI)",
            long = "network_cni_config_dir",
            alias = "network-cni-config-dir",
            env = "MESOS_NETWORK_CNI_CONFIG_DIR"
        )]
        network_cni_config_dir: Option<PathBuf>,
        /// Directory (or `:`-separated directories) of CNI plugin binaries.
        #[arg(
            help_heading = "Networking (CNI)",
            long = "network_cni_plugins_dir",
            alias = "network-cni-plugins-dir",
            env = "MESOS_NETWORK_CNI_PLUGINS_DIR",
            requires = "network_cni_config_dir"
        )]
        network_cni_plugins_dir: Option<String>,
        /// Keep what CNI DEL needs under the work dir (`<work_dir>/cni`)
        /// instead of the runtime dir, so that after a reboot the DEL of
        /// the containers the reboot ended still releases their addresses.
        #[arg(help_heading = "Networking (CNI)", 
            long = "network_cni_root_dir_persist",
            alias = "network-cni-root-dir-persist",
            env = "MESOS_NETWORK_CNI_ROOT_DIR_PERSIST",
            value_name = "BOOL",
            default_value = "false",
            default_missing_value = "true",
            num_args = 0..=1,
            require_equals = true,
            action = clap::ArgAction::Set
        )]
        network_cni_root_dir_persist: bool,
        /// Allow DOCKER containers with `privileged: true` (every device and
        /// capability, no seccomp filter, no masked paths); refused without it.
        #[arg(help_heading = "Docker tasks", long = "allow_privileged", alias = "allow-privileged", env = "MESOS_ALLOW_PRIVILEGED", value_name = "BOOL", default_value = "false", default_missing_value = "true", num_args = 0..=1, require_equals = true, action = clap::ArgAction::Set)]
        allow_privileged: bool,
        /// The CNI network of DOCKER containers in BRIDGE mode: the config of
        /// this name in --network_cni_config_dir, else butte's built-in
        /// bridge (butte0, 10.87.0.0/16, made by butte without CNI plugins, host
        /// ports through nftables).
        #[arg(
            help_heading = "Docker tasks",
            long = "docker_bridge_network",
            alias = "docker-bridge-network",
            env = "MESOS_DOCKER_BRIDGE_NETWORK",
            default_value = "bridge"
        )]
        docker_bridge_network: String,
        /// Every executor API call must carry the executor's token
        /// (`Authorization: Bearer`, from MESOS_EXECUTOR_AUTHENTICATION_TOKEN);
        /// `=false` lets old executors without one in.
        #[arg(help_heading = "Executors", 
            long = "authenticate_http_executors",
            alias = "authenticate-http-executors",
            env = "MESOS_AUTHENTICATE_HTTP_EXECUTORS",
            value_name = "BOOL",
            default_value = "true",
            default_missing_value = "true",
            num_args = 0..=1,
            require_equals = true,
            action = clap::ArgAction::Set,
            value_parser = parse_bool_arg
        )]
        authenticate_http_executors: bool,
        /// Run executors as the task's (or framework's) user, which must
        /// exist here; `--no-switch_user`: as the agent's user.
        #[arg(help_heading = "Executors",
            long = "switch_user",
            alias = "switch-user",
            env = "MESOS_SWITCH_USER",
            value_name = "BOOL",
            default_value = "true",
            default_missing_value = "true",
            num_args = 0..=1,
            require_equals = true,
            action = clap::ArgAction::Set,
            value_parser = parse_bool_arg
        )]
        switch_user: bool,
        /// Run the tasks of a group as nested containers of the default
        /// executor (each with its own cgroup, image and sandbox, launched
        /// through the operator API, as Mesos' default executor does);
        /// false: as processes of the executor (see docs/agent.md).
        #[arg(help_heading = "Executors",
            long = "task_group_nested_containers",
            alias = "task-group-nested-containers",
            env = "BUTTE_TASK_GROUP_NESTED_CONTAINERS",
            value_name = "BOOL",
            default_value = "true",
            default_missing_value = "true",
            num_args = 0..=1,
            require_equals = true,
            action = clap::ArgAction::Set,
            value_parser = parse_bool_arg
        )]
        task_group_nested_containers: bool,
        /// A JSON object of the variables every executor gets (with the
        /// MESOS_* ones), instead of the default PATH: `{"PATH": "/bin"}`.
        #[arg(
            help_heading = "Executors",
            long = "executor_environment_variables",
            alias = "executor-environment-variables",
            env = "MESOS_EXECUTOR_ENVIRONMENT_VARIABLES",
            value_name = "JSON"
        )]
        executor_environment_variables: Option<String>,
        /// A file whose bytes sign executor tokens (default: a random key
        /// generated into the work dir at the first start, mode 0600).
        #[arg(help_heading = "Executors", 
            long = "executor_secret_key",
            aliases = ["executor-secret-key", "jwt_secret_key", "jwt-secret-key"],
            env = "MESOS_EXECUTOR_SECRET_KEY",
            value_name = "PATH"
        )]
        executor_secret_key: Option<PathBuf>,
        // disk: GC and quota
        /// How long the sandboxes and checkpoints of finished executors,
        /// runs and frameworks are kept (shortened as the disk fills).
        #[arg(help_heading = "Disk: GC and quota", long = "gc_delay", alias = "gc-delay", env = "MESOS_GC_DELAY", default_value = "1weeks", value_parser = parse_duration_arg)]
        gc_delay: Duration,
        /// How often the work dir's disk usage is checked.
        #[arg(help_heading = "Disk: GC and quota", long = "disk_watch_interval", alias = "disk-watch-interval", env = "MESOS_DISK_WATCH_INTERVAL", default_value = "1mins", value_parser = parse_duration_arg)]
        disk_watch_interval: Duration,
        /// Directories older than gc_delay * max(0, 1 - HEADROOM - usage) are removed.
        #[arg(
            help_heading = "Disk: GC and quota",
            long = "gc_disk_headroom",
            alias = "gc-disk-headroom",
            env = "MESOS_GC_DISK_HEADROOM",
            default_value = "0.1"
        )]
        gc_disk_headroom: f64,
        /// Kill a container whose sandbox grows past its `disk` resource.
        #[arg(help_heading = "Disk: GC and quota", 
            long = "enforce_container_disk_quota",
            alias = "enforce-container-disk-quota",
            env = "MESOS_ENFORCE_CONTAINER_DISK_QUOTA",
            value_name = "BOOL",
            default_value = "false",
            default_missing_value = "true",
            num_args = 0..=1,
            require_equals = true,
            action = clap::ArgAction::Set,
            value_parser = parse_bool_arg
        )]
        enforce_container_disk_quota: bool,
        /// How often each container's sandbox is measured for the quota.
        #[arg(help_heading = "Disk: GC and quota", long = "container_disk_watch_interval", alias = "container-disk-watch-interval", env = "MESOS_CONTAINER_DISK_WATCH_INTERVAL", default_value = "15secs", value_parser = parse_duration_arg)]
        container_disk_watch_interval: Duration,
        // logs: rotation and image GC
        /// `org_apache_mesos_LogrotateContainerLogger` caps and rotates
        /// each container's stdout/stderr (built-in executors); the default,
        /// `org_apache_mesos_SandboxContainerLogger`, keeps plain files.
        #[arg(
            help_heading = "Container logs",
            long = "container_logger",
            alias = "container-logger",
            env = "MESOS_CONTAINER_LOGGER",
            default_value = ""
        )]
        container_logger: String,
        /// Logrotate logger: the most bytes of `stdout` before it is rotated.
        #[arg(help_heading = "Container logs", long = "logrotate_max_stdout_size", alias = "logrotate-max-stdout-size", env = "MESOS_LOGROTATE_MAX_STDOUT_SIZE", default_value = "10MB", value_parser = parse_size_arg)]
        logrotate_max_stdout_size: u64,
        /// Logrotate logger: logrotate options for `stdout` (`rotate N`: keep N files).
        #[arg(
            help_heading = "Container logs",
            long = "logrotate_stdout_options",
            alias = "logrotate-stdout-options",
            env = "MESOS_LOGROTATE_STDOUT_OPTIONS",
            default_value = ""
        )]
        logrotate_stdout_options: String,
        /// Logrotate logger: the most bytes of `stderr` before it is rotated.
        #[arg(help_heading = "Container logs", long = "logrotate_max_stderr_size", alias = "logrotate-max-stderr-size", env = "MESOS_LOGROTATE_MAX_STDERR_SIZE", default_value = "10MB", value_parser = parse_size_arg)]
        logrotate_max_stderr_size: u64,
        /// Logrotate logger: logrotate options for `stderr`.
        #[arg(
            help_heading = "Container logs",
            long = "logrotate_stderr_options",
            alias = "logrotate-stderr-options",
            env = "MESOS_LOGROTATE_STDERR_OPTIONS",
            default_value = ""
        )]
        logrotate_stderr_options: String,
        /// Automatic image GC: JSON (or a file of it) with
        /// `image_disk_headroom`, `image_disk_watch_interval` {"nanoseconds"}
        /// and `excluded_images`, as Mesos' ImageGcConfig.
        #[arg(
            help_heading = "Images and fetcher",
            long = "image_gc_config",
            alias = "image-gc-config",
            env = "MESOS_IMAGE_GC_CONFIG",
            value_name = "JSON"
        )]
        image_gc_config: Option<String>,
        // operator: http auth
        /// The read-only operator endpoints (/state, /flags,
        /// /metrics/snapshot, /files/...) need HTTP Basic credentials.
        #[arg(help_heading = "Operator HTTP API", 
            long = "authenticate_http_readonly",
            alias = "authenticate-http-readonly",
            env = "MESOS_AUTHENTICATE_HTTP_READONLY",
            value_name = "BOOL",
            default_value = "false",
            default_missing_value = "true",
            num_args = 0..=1,
            require_equals = true,
            action = clap::ArgAction::Set,
            value_parser = parse_bool_arg
        )]
        authenticate_http_readonly: bool,
        /// Operator endpoints that change things need HTTP Basic credentials.
        #[arg(help_heading = "Operator HTTP API", 
            long = "authenticate_http_readwrite",
            alias = "authenticate-http-readwrite",
            env = "MESOS_AUTHENTICATE_HTTP_READWRITE",
            value_name = "BOOL",
            default_value = "false",
            default_missing_value = "true",
            num_args = 0..=1,
            require_equals = true,
            action = clap::ArgAction::Set,
            value_parser = parse_bool_arg
        )]
        authenticate_http_readwrite: bool,
        /// JSON file of HTTP credentials:
        /// {"credentials":[{"principal":"..","secret":".."}]}.
        #[arg(
            help_heading = "Operator HTTP API",
            long = "http_credentials",
            alias = "http-credentials",
            env = "MESOS_HTTP_CREDENTIALS",
            value_name = "PATH"
        )]
        http_credentials: Option<PathBuf>,
        /// Run this command (`sh -c`) and listen on the IP address it prints
        /// (instead of `--ip`).
        #[arg(
            help_heading = "Addresses",
            long = "ip_discovery_command",
            alias = "ip-discovery-command",
            env = "MESOS_IP_DISCOVERY_COMMAND",
            conflicts_with = "ip"
        )]
        ip_discovery_command: Option<String>,
        /// Where the fetcher cache lives (default: `<work_dir>/fetch-cache`).
        #[arg(
            help_heading = "Images and fetcher",
            long = "fetcher_cache_dir",
            alias = "fetcher-cache-dir",
            env = "MESOS_FETCHER_CACHE_DIR"
        )]
        fetcher_cache_dir: Option<PathBuf>,
        /// The agent's log level: INFO, WARNING or ERROR (BUTTE_LOG or
        /// RUST_LOG, when set, win).
        #[arg(
            help_heading = "Logging",
            long = "logging_level",
            alias = "logging-level",
            env = "MESOS_LOGGING_LEVEL",
            default_value = "INFO",
            value_parser = ["INFO", "WARNING", "ERROR"]
        )]
        logging_level: String,
        /// A Mesosphere-style configuration directory (butte's own; repeatable):
        /// each file `DIR/<flag>` is `--<flag>=<its content>`, `DIR/?<flag>`
        /// is `--<flag>`, `DIR/?no-<flag>` is `--no-<flag>`, and `DIR/zk` (as
        /// `/etc/mesos/zk`) is `--master`. The command line wins over a
        /// file, a file over a MESOS_* variable.
        #[arg(
            help_heading = "Directories and recovery",
            long = "config_dir",
            alias = "config-dir",
            value_name = "DIR"
        )]
        config_dir: Vec<PathBuf>,
        /// Every other Mesos 1.11 agent flag: accepted and ignored (named in
        /// one line at start), or refused when ignoring it is unsafe.
        #[command(flatten)]
        others: butte::agent::flags::OtherFlags,
    }

    fn parse_bool_arg(s: &str) -> Result<bool, String> {
        butte::agent::flags::parse_bool(s)
    }

    impl AgentArgs {
        /// The log level `--logging_level` asks for.
        pub fn log_level(&self) -> tracing::Level {
            match self.logging_level.as_str() {
                "ERROR" => tracing::Level::ERROR,
                "WARNING" => tracing::Level::WARN,
                _ => tracing::Level::INFO,
            }
        }

        fn config(self) -> anyhow::Result<AgentConfig> {
            use butte::agent::flags;
            let ignored = self.others.review()?;
            if let Some(line) = flags::ignored_line(&ignored) {
                tracing::warn!("{line}");
            }
            flags::check_isolation(&self.isolation)?;
            let ip = match &self.ip_discovery_command {
                Some(c) => Some(flags::discover_ip(c)?),
                None => self.ip,
            };
            // Shown in /flags as given.
            let mut given_flags: Vec<(String, String)> = self
                .others
                .set
                .iter()
                .map(|(n, v)| (n.to_string(), v.clone()))
                .collect();
            given_flags.push(("logging_level".into(), self.logging_level.clone()));
            let text = [
                (
                    "container_logger",
                    Some(&self.container_logger).filter(|l| !l.is_empty()),
                ),
                ("image_gc_config", self.image_gc_config.as_ref()),
                ("ip_discovery_command", self.ip_discovery_command.as_ref()),
            ];
            for (name, value) in text {
                if let Some(v) = value {
                    given_flags.push((name.into(), v.clone()));
                }
            }
            if let Some(d) = &self.seccomp_config_dir {
                given_flags.push(("seccomp_config_dir".into(), d.display().to_string()));
            }
            if let Some(n) = &self.seccomp_profile_name {
                given_flags.push(("seccomp_profile_name".into(), n.clone()));
            }
            let mut runtime = RuntimeConfig::new()?;
            runtime.cgroup_parent = self.cgroups_root;
            let mut fetcher = FetchConfig::new(&self.work_dir);
            fetcher.cache_size = self.fetcher_cache_size;
            if let Some(dir) = self.fetcher_cache_dir {
                fetcher.cache_dir = dir;
            }
            fetcher.http.read_timeout = self.fetcher_stall_timeout;
            let mut pull = PullOptions {
                insecure: self.insecure_registries,
                registry_config: self.docker_config,
                ..PullOptions::default()
            };
            let mut docker_registry = self.docker_registry;
            if let Some(r) = docker_registry.as_mut() {
                if let Some(host) = r.strip_prefix("http://") {
                    pull.insecure.push(host.trim_end_matches('/').to_string());
                }
                *r = r
                    .trim_start_matches("http://")
                    .trim_start_matches("https://")
                    .trim_end_matches('/')
                    .to_string();
            }
            let hostname = match self.hostname {
                Some(h) => h,
                None => nix::unistd::gethostname()?.to_string_lossy().into_owned(),
            };
            let seccomp_cache = butte::state::paths::WorkDir::new(&self.work_dir).seccomp_cache();
            let containerizers = self
                .others
                .value("containerizers")
                .unwrap_or("mesos")
                .to_string();
            let sandbox_directory = self
                .others
                .value("sandbox_directory")
                .unwrap_or(butte::containerizer::docker::DEFAULT_SANDBOX_DIR)
                .to_string();
            let docker_stop_timeout = match self.others.value("docker_stop_timeout") {
                Some(v) => butte::support::parse_duration(v)?,
                None => Duration::ZERO,
            };
            let cni_persist_dir = self
                .network_cni_root_dir_persist
                .then(|| self.work_dir.join("cni"));
            Ok(AgentConfig {
                master: self.master,
                listen: SocketAddr::new(ip.unwrap_or(IpAddr::from([0, 0, 0, 0])), self.port),
                advertise_ip: self.advertise_ip,
                advertise_port: self.advertise_port,
                hostname,
                resources: self.resources,
                default_role: self.default_role,
                switch_user: self.switch_user,
                task_group_nested_containers: self.task_group_nested_containers,
                executor_environment_variables: butte::agent::executor_environment_variables(
                    self.executor_environment_variables.as_deref(),
                )?,
                attributes: self.attributes,
                work_dir: self.work_dir,
                runtime_dir: self.runtime_dir,
                runtime,
                fetcher,
                pull,
                docker_registry,
                executor_registration_timeout: self.executor_registration_timeout,
                executor_reregistration_timeout: self.executor_reregistration_timeout,
                executor_shutdown_grace_period: self.executor_shutdown_grace_period,
                recovery_timeout: self.recovery_timeout,
                registration_backoff_factor: self.registration_backoff_factor,
                zk_session_timeout: self.zk_session_timeout,
                credential: self.credential,
                authenticatee: self.authenticatee,
                authentication_backoff_factor: self.authentication_backoff_factor,
                authentication_timeout_min: self.authentication_timeout_min,
                authentication_timeout_max: self.authentication_timeout_max,
                status_update_retry_interval: self.status_update_retry_interval,
                executor_heartbeat_interval: self.executor_heartbeat_interval,
                recover: if self.recover == "cleanup" {
                    RecoverMode::Cleanup
                } else {
                    RecoverMode::Reconnect
                },
                reconfiguration_policy: self
                    .reconfiguration_policy
                    .parse()
                    .map_err(anyhow::Error::msg)?,
                isolation: self.isolation,
                seccomp: std::sync::Arc::new(
                    butte::containerizer::security::SeccompProfiles::checked(
                        self.seccomp_config_dir,
                        self.seccomp_profile_name,
                        Some(seccomp_cache),
                    )?,
                ),
                authenticate_http_executors: self.authenticate_http_executors,
                executor_secret_key: self.executor_secret_key,
                disk: butte::agent::DiskConfig {
                    gc_delay: self.gc_delay,
                    disk_watch_interval: self.disk_watch_interval,
                    gc_disk_headroom: self.gc_disk_headroom,
                    enforce_container_disk_quota: self.enforce_container_disk_quota,
                    container_disk_watch_interval: self.container_disk_watch_interval,
                },
                // logs: rotation and image GC
                cni: butte::containerizer::mesos::CniConfig {
                    config_dir: self.network_cni_config_dir,
                    plugin_dirs: self
                        .network_cni_plugins_dir
                        .iter()
                        .flat_map(|d| d.split(':'))
                        .filter(|d| !d.is_empty())
                        .map(PathBuf::from)
                        .collect(),
                    persist_dir: cni_persist_dir,
                },
                docker: butte::containerizer::mesos::DockerConfig {
                    containerizers,
                    sandbox_dir: sandbox_directory,
                    allow_privileged: self.allow_privileged,
                    bridge_network: self.docker_bridge_network,
                    stop_timeout: docker_stop_timeout,
                },
                container_logger: butte::containerizer::mesos::ContainerLogger::new(
                    &self.container_logger,
                    butte::containerizer::mesos::LogrotateFlags {
                        max_stdout_size: self.logrotate_max_stdout_size,
                        logrotate_stdout_options: self.logrotate_stdout_options,
                        max_stderr_size: self.logrotate_max_stderr_size,
                        logrotate_stderr_options: self.logrotate_stderr_options,
                    },
                )?,
                image_gc: self
                    .image_gc_config
                    .as_deref()
                    .map(butte::containerizer::mesos::ImageGcConfig::parse)
                    .transpose()?,
                authenticate_http_readonly: self.authenticate_http_readonly,
                authenticate_http_readwrite: self.authenticate_http_readwrite,
                http_credentials: self.http_credentials,
                given_flags,
            })
        }
    }

    /// The command line (ARGS, the program's) with `butte agent`'s
    /// arguments read as Mesos reads its flags (`agent::flags::prepare`).
    pub fn mesos_args(
        args: Vec<OsString>,
    ) -> Result<Vec<OsString>, butte::agent::flags::FlagsError> {
        if !args.get(1).is_some_and(|a| a == "agent") {
            return Ok(args);
        }
        let cmd = <super::Cli as clap::CommandFactory>::command();
        let agent = cmd
            .find_subcommand("agent")
            .expect("butte has an agent subcommand");
        let known = |name: &str| {
            agent.get_arguments().any(|a| {
                a.get_long() == Some(name)
                    || a.get_all_aliases().is_some_and(|al| al.contains(&name))
            })
        };
        let rest = butte::agent::flags::prepare(&args[2..], &known, &butte::agent::flags::System)?;
        Ok(args[..2].iter().cloned().chain(rest).collect())
    }

    pub fn main(args: AgentArgs) -> anyhow::Result<ExitCode> {
        let mut config = args.config()?;
        // Under systemd with DelegateSubgroup= (cgroup v2): containers'
        // cgroups go inside the unit's, next to the agent's leaf.
        let rt = &mut config.runtime;
        match rt.delegate_cgroups() {
            Ok(d) => tracing::info!(
                "containers' cgroups go under {}/{}/{} (the agent runs in {}/{}/{}, delegated{})",
                rt.cgroup_root.display(),
                d.unit,
                rt.cgroup_parent.trim_matches('/'),
                rt.cgroup_root.display(),
                d.unit,
                d.leaf,
                if d.marked { " and marked so" } else { "" }
            ),
            Err(why) => tracing::info!(
                "containers' cgroups go under {}/{}: {why}",
                rt.cgroup_root.display(),
                rt.cgroup_parent.trim_matches('/')
            ),
        }
        butte::agent::run(config)?;
        Ok(ExitCode::SUCCESS)
    }
}

fn main() -> ExitCode {
    // The launch helper is re-executed by the runtime; it must start fast
    // and touch nothing else.
    if std::env::args_os().nth(1).is_some_and(|a| a == "launch") {
        return ExitCode::from(runtime::helper_main().clamp(0, 255) as u8);
    }
    // The executor stays small (its idle RSS is a promise): it skips
    // building the whole command line when its own arguments parse.
    if std::env::args_os().nth(1).is_some_and(|a| a == "executor") {
        if let Ok(args) =
            butte::executors::ExecutorArgs::from_args(None, std::env::args_os().skip(2))
        {
            return exit(butte::executors::main(args));
        }
    }
    let cli = match agent_cli::mesos_args(std::env::args_os().collect()) {
        Ok(args) => Cli::parse_from(args),
        Err(e) => {
            eprintln!("butte: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(match &cli.command {
        Command::Agent(a) => a.log_level(),
        _ => tracing::Level::WARN,
    });
    let result = match cli.command {
        Command::Run(args) => run(*args),
        Command::Image(cmd) => image_cli::main(cmd),
        Command::Fetch(args) => fetch(args),
        Command::Agent(args) => agent_cli::main(*args),
        Command::Executor(args) => Ok(exit(butte::executors::main(*args))),
        Command::Enter(args) => Ok(exit(butte::runtime::enter_main(args))),
        Command::Ps(args) => cli::ps(args),
        Command::Logs(args) => cli::logs(args),
        Command::Stats(args) => cli::stats(args),
        Command::Kill(args) => cli::kill(args),
        Command::Exec(args) => cli::exec(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("butte: {}", describe(&e));
            ExitCode::from(exit_code(&e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use butte::agent::flags::{Support, FLAGS};
    use clap::CommandFactory;

    fn agent() -> clap::Command {
        Cli::command().find_subcommand("agent").unwrap().clone()
    }

    #[test]
    fn the_agent_command_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_mesos_flag_is_an_argument_of_butte_agent() {
        let agent = agent();
        let names: Vec<String> = agent
            .get_arguments()
            .flat_map(|a| {
                a.get_long()
                    .into_iter()
                    .chain(a.get_all_aliases().unwrap_or_default())
                    .map(str::to_string)
            })
            .collect();
        for f in FLAGS {
            // clap's own, added to every subcommand when the command is built.
            if f.name == "version" {
                continue;
            }
            for name in std::iter::once(&f.name).chain(f.aliases) {
                assert!(names.iter().any(|n| n == name), "--{name} is missing");
            }
            if matches!(f.support, Support::Implemented) {
                let arg = agent
                    .get_arguments()
                    .find(|a| {
                        a.get_long() == Some(f.name)
                            || a.get_all_aliases().unwrap_or_default().contains(&f.name)
                    })
                    .unwrap();
                // Its MESOS_ variable is read: by clap, or by agent::flags for
                // a Mesos name that is an alias here.
                if arg.get_long() == Some(f.name) {
                    assert_eq!(
                        arg.get_env().map(|e| e.to_string_lossy().into_owned()),
                        Some(f.env()),
                        "--{}",
                        f.name
                    );
                }
            }
        }
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        let args: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
        Cli::try_parse_from(agent_cli::mesos_args(args).unwrap())
    }

    #[test]
    fn mesos_spellings_parse() {
        let cli = parse(&[
            "butte",
            "agent",
            "--master=zk://zk:2181/mesos",
            "--no-authenticate_http_executors",
            "--executor_heartbeat_interval=5secs",
            "--docker_socket=/var/run/docker.sock",
            "--quiet",
            "--no-switch_user",
            "--logging_level=WARNING",
        ])
        .unwrap();
        let Command::Agent(a) = cli.command else {
            panic!("not the agent")
        };
        assert_eq!(a.log_level(), tracing::Level::WARN);
        assert!(parse(&["butte", "agent", "--master=m", "--no_such_flag=1"]).is_err());
        assert!(parse(&["butte", "agent", "--master=m", "--gc_delay=soon"]).is_err());
    }
}
