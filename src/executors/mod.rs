//! The built-in command and default executors (`butte executor`).
//!
//! A separate program at heart: it uses `proto`, `api::recordio` and
//! `support` only, speaks the v1 executor API to `MESOS_AGENT_ENDPOINT` with
//! blocking std I/O and a few threads (no async runtime: an idle executor
//! stays small), and starts its tasks as child processes. Tasks with a
//! container image run through processes prepared at the executor's start
//! (`butte enter --prepare`, see `prepared`), after which the executor
//! holds no capability beyond the default set (`privileges`).
//!
//! Files: `session` (subscription, updates, event loop), `link` (the two
//! HTTP connections), `http` (the HTTP/1.1 client), `command` and `group`
//! (the two executors), `launch` (argv, environment, user of a task),
//! `prepared` (image tasks' prepared processes and check servers),
//! `nested` (the default executor's tasks as nested containers, through
//! the agent's operator API, under butte's agent),
//! `privileges` (the executor's own capabilities), `process` (signals and
//! kill escalation), `reaper` (child exits), `checks`, `probe` and
//! `health` (checks and health checks), `config` (the `MESOS_*`
//! environment), `exit` (status message texts).

mod checks;
mod command;
mod config;
mod exit;
mod flags;
mod group;
mod health;
mod http;
mod launch;
mod link;
mod logger;
mod nested;
mod prepared;
mod privileges;
mod probe;
mod process;
mod reaper;
mod session;
#[cfg(test)]
mod tests;

pub use config::{Config, ConfigError};
pub use flags::MesosFlags;

use std::path::{Path, PathBuf};
use std::sync::mpsc;

/// `butte executor`: started by the agent inside the executor's container;
/// everything else comes from the `MESOS_*` environment.
#[derive(clap::Args, Debug, Clone)]
pub struct ExecutorArgs {
    /// Run the default executor (task groups) instead of the command executor.
    #[arg(long)]
    pub default: bool,
    /// A JSON file mapping task ids to what the agent prepared for them
    /// (`proto::launch::LaunchInfos`).
    #[arg(long, value_name = "FILE")]
    pub launch_info: Option<PathBuf>,
    /// The flags of Mesos' own executors (`--launcher_dir=...`), when a
    /// Mesos agent runs this one in their place (see `flags`).
    #[arg(skip)]
    pub mesos: MesosFlags,
}

/// The program names under which a Mesos agent starts its executors; the
/// default executor is chosen by its name, without `--default`.
pub const MESOS_EXECUTOR: &str = "mesos-executor";
pub const MESOS_DEFAULT_EXECUTOR: &str = "mesos-default-executor";

impl ExecutorArgs {
    /// Reads `[--default] [--launch-info FILE]` and the Mesos executors'
    /// `--name=value` flags (the arguments after the program or
    /// subcommand name) before building a whole command line: less code
    /// touched, less memory. PROGRAM is how the process was named
    /// (`argv[0]`): as `mesos-default-executor` it is the default executor.
    pub fn from_args(
        program: Option<&std::ffi::OsStr>,
        args: impl IntoIterator<Item = std::ffi::OsString>,
    ) -> Result<Self, ArgsError> {
        let by_name = program
            .and_then(|p| Path::new(p).file_name())
            .is_some_and(|n| n == MESOS_DEFAULT_EXECUTOR);
        let args: Vec<String> = args
            .into_iter()
            .map(|a| {
                a.into_string()
                    .map_err(|a| ArgsError::NotUtf8(a.to_string_lossy().into()))
            })
            .collect::<Result<_, _>>()?;
        let mut parsed = ExecutorArgs {
            default: by_name,
            launch_info: None,
            mesos: MesosFlags::default(),
        };
        let default = by_name || args.iter().any(|a| a == "--default");
        let mut args = args.into_iter();
        let mut default_given = false;
        while let Some(text) = args.next() {
            if text == "--default" && !default_given {
                default_given = true;
                parsed.default = true;
            } else if text == "--launch-info" && parsed.launch_info.is_none() {
                let file = args.next().ok_or(ArgsError::LaunchInfo)?;
                parsed.launch_info = Some(PathBuf::from(file));
            } else if let Some(v) = text.strip_prefix("--launch-info=") {
                if parsed.launch_info.is_some() || v.is_empty() {
                    return Err(ArgsError::LaunchInfo);
                }
                parsed.launch_info = Some(PathBuf::from(v));
            } else if text == "--default" || text == "--launch-info" {
                return Err(ArgsError::Twice(text));
            } else {
                parsed.mesos.add(&text, default)?;
            }
        }
        Ok(parsed)
    }
}

/// Arguments the executor cannot start with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgsError {
    #[error(transparent)]
    Mesos(#[from] flags::FlagsError),
    #[error("--launch-info needs one FILE")]
    LaunchInfo,
    #[error("{0} is given twice")]
    Twice(String),
    #[error("argument {0:?} is not UTF-8")]
    NotUtf8(String),
}

/// The usage text (after a bad argument, or for `--help`).
pub fn usage(program: &str, default: bool) -> String {
    flags::usage(program, default)
}

/// Runs the executor; returns the process exit code.
pub fn main(args: ExecutorArgs) -> i32 {
    let env: Vec<(String, String)> = std::env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        })
        .collect();
    if args.mesos.help {
        println!("{}", usage("butte-executor", args.default));
        return 0;
    }
    let config = match Config::from_env(env.iter().cloned()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("butte executor: {e}");
            return 1;
        }
    };
    // The token is the executor's alone: its tasks do not inherit it (the
    // Mesos executor library erases it from its environment).
    // Nor do they see how their output is rotated.
    let logrotate = match env.iter().find(|(k, _)| k == logger::LOGROTATE_ENV) {
        Some((_, v)) => match serde_json::from_str(v) {
            Ok(l) => Some(l),
            Err(e) => {
                eprintln!("butte executor: {}: {e}", logger::LOGROTATE_ENV);
                return 1;
            }
        },
        None => None,
    };
    // Only butte's agent says its default executor may use nested
    // containers; the tasks are not told.
    let nested = env
        .iter()
        .any(|(k, v)| k == nested::NESTED_CONTAINERS_ENV && v == "1");
    let env = env
        .into_iter()
        .filter(|(k, _)| {
            k != config::AUTHENTICATION_TOKEN
                && k != logger::LOGROTATE_ENV
                && k != nested::NESTED_CONTAINERS_ENV
        })
        .collect();
    // Tasks share our pid namespace: keep them out of /proc/<pid>/exe,
    // mem, fd and environ of the executor (see `butte enter`).
    let _ = nix::sys::prctl::set_dumpable(false);
    let options = Options {
        default: args.default,
        launch_info: args.launch_info,
        mesos: args.mesos,
        self_exe: PathBuf::from("/proc/self/exe"),
        reap_all: std::process::id() == 1,
        logrotate,
        nested,
    };
    run(config, env, options)
}

#[cfg(test)]
mod args_tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<(bool, Option<PathBuf>), ArgsError> {
        ExecutorArgs::from_args(None, args.iter().map(Into::into))
            .map(|a| (a.default, a.launch_info))
    }

    #[test]
    fn fast_argument_parsing_accepts_the_executor_flags_and_mesos_ones() {
        assert_eq!(parse(&[]), Ok((false, None)));
        assert_eq!(
            parse(&["--default", "--launch-info", "/x.json"]),
            Ok((true, Some("/x.json".into())))
        );
        assert_eq!(
            parse(&["--launch-info=/x.json"]),
            Ok((false, Some("/x.json".into())))
        );
        assert_eq!(parse(&["--launch-info"]), Err(ArgsError::LaunchInfo));
        assert!(parse(&["--frobnicate"]).is_err());
        assert_eq!(
            parse(&["--default", "--default"]),
            Err(ArgsError::Twice("--default".into()))
        );
        // What a Mesos agent runs: `mesos-executor --launcher_dir=...`.
        let a = ExecutorArgs::from_args(
            Some("/usr/libexec/mesos/mesos-executor".as_ref()),
            ["--launcher_dir=/usr/libexec/mesos".into()],
        )
        .unwrap();
        assert!(!a.default);
        assert_eq!(a.mesos.launcher_dir.as_deref(), Some("/usr/libexec/mesos"));
        // The default executor is chosen by its name.
        let a = ExecutorArgs::from_args(
            Some("/usr/libexec/mesos/mesos-default-executor".as_ref()),
            ["--launcher_dir=/usr/libexec/mesos".into()],
        )
        .unwrap();
        assert!(a.default);
        // ... which takes no command executor flag.
        assert!(ExecutorArgs::from_args(
            Some("mesos-default-executor".as_ref()),
            ["--task_command={}".into()],
        )
        .is_err());
    }
}

/// How to run an executor (what `main` derives from its process).
#[derive(Debug, Clone)]
pub struct Options {
    /// The default executor instead of the command executor.
    pub default: bool,
    pub launch_info: Option<PathBuf>,
    /// The butte binary, for `butte enter --prepare` and `--serve`.
    pub self_exe: PathBuf,
    /// Reap every child (pid 1 of a pid namespace).
    pub reap_all: bool,
    /// Mesos' executor flags, when a Mesos agent started us.
    pub mesos: MesosFlags,
    /// Rotate the container's stdout and stderr (see `logger`).
    pub logrotate: Option<crate::proto::launch::Logrotate>,
    /// The default executor runs its tasks as nested containers
    /// (`BUTTE_NESTED_CONTAINERS=1`, set by butte's agent).
    pub nested: bool,
}

/// Runs an executor with explicit settings and environment (the tasks'
/// base environment); returns its exit code.
///
/// Before anything else (no thread, no agent): the image tasks of the
/// launch info get their prepared processes, then the executor reduces its
/// capabilities to the default set (`privileges`). Only then the reaper's
/// and the link's threads start.
pub fn run(config: Config, env: Vec<(String, String)>, options: Options) -> i32 {
    // The pipes first, so that every process started inherits them; their
    // threads once the capabilities are gone.
    let redirected = match &options.logrotate {
        Some(l) => match logger::redirect(&config.directory, l) {
            Ok(r) => Some(r),
            Err(e) => {
                eprintln!(
                    "butte executor: cannot rotate the output in {}: {e}",
                    config.directory.display()
                );
                return 1;
            }
        },
        None => None,
    };
    let prepared = prepare(&config, &options);
    let dropped = privileges::drop_to_default();
    let (logger, watch) = match redirected.map(logger::Redirected::start) {
        Some((l, w)) => (Some(l), Some(w)),
        None => (None, None),
    };
    let code = match dropped {
        Ok(()) => serve(config, env, options, prepared, watch),
        Err(e) => {
            eprintln!("butte executor: cannot give up capabilities beyond the default set: {e}");
            1
        }
    };
    if let Some(l) = logger {
        l.finish();
    }
    code
}

/// The executor proper, once set up.
fn serve(
    config: Config,
    env: Vec<(String, String)>,
    options: Options,
    prepared: prepared::PreparedTasks,
    output: Option<logger::Watch>,
) -> i32 {
    let (tx, rx) = mpsc::channel();
    let reaper = reaper::Reaper::new(options.reap_all);
    prepared.adopt(&reaper, &tx);
    let agent = options
        .nested
        .then(|| nested::Agent::new(&config.agent_endpoint, config.auth_token.as_deref()));
    let mut s = session::Session::new(config, env, options.launch_info, reaper, tx, prepared);
    s.watch_output(output);
    s.mesos = options.mesos;
    if options.default {
        session::run(s, &mut group::DefaultExecutor::new(agent), &rx)
    } else {
        session::run(s, &mut command::CommandExecutor::new(), &rx)
    }
}

/// Starts the prepared processes of the launch info's image tasks.
fn prepare(config: &Config, options: &Options) -> prepared::PreparedTasks {
    let infos = match session::read_launch_infos(options.launch_info.as_deref()) {
        Ok(infos) => infos,
        // Said again, as the task's failure, at its launch.
        Err(e) => {
            eprintln!("butte executor: {e}");
            return prepared::PreparedTasks::default();
        }
    };
    let tasks = infos
        .into_iter()
        .filter_map(|(task_id, info)| {
            let rootfs = info.rootfs?;
            let sandbox = if options.default {
                group::task_sandbox(&config.directory, &task_id)
            } else {
                Ok(config.directory.clone())
            };
            Some(prepared::ToPrepare {
                task_id,
                rootfs,
                sandbox,
                seccomp: info.seccomp,
                setup: info.docker.as_ref().map(launch::docker_setup),
            })
        })
        .collect();
    prepared::PreparedTasks::start(&options.self_exe, tasks)
}
