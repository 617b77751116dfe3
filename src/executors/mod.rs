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
//! `privileges` (the executor's own capabilities), `process` (signals and
//! kill escalation), `reaper` (child exits), `checks`, `probe` and
//! `health` (checks and health checks), `config` (the `MESOS_*`
//! environment), `exit` (status message texts).

mod checks;
mod command;
mod config;
mod exit;
mod group;
mod health;
mod http;
mod launch;
mod link;
mod prepared;
mod privileges;
mod probe;
mod process;
mod reaper;
mod session;
#[cfg(test)]
mod tests;

pub use config::{Config, ConfigError};

use std::path::PathBuf;
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
}

impl ExecutorArgs {
    /// Reads `[--default] [--launch-info FILE]` (the arguments after
    /// `executor`) without clap, so that `main` can start the executor
    /// before building its whole command line: less code touched, less
    /// memory. `None` for anything else (clap then explains the mistake).
    pub fn from_args(args: impl IntoIterator<Item = std::ffi::OsString>) -> Option<Self> {
        let mut parsed = ExecutorArgs {
            default: false,
            launch_info: None,
        };
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let text = arg.to_str()?;
            if text == "--default" && !parsed.default {
                parsed.default = true;
            } else if text == "--launch-info" && parsed.launch_info.is_none() {
                parsed.launch_info = Some(PathBuf::from(args.next()?));
            } else if let Some(v) = text.strip_prefix("--launch-info=") {
                if parsed.launch_info.is_some() || v.is_empty() {
                    return None;
                }
                parsed.launch_info = Some(PathBuf::from(v));
            } else {
                return None;
            }
        }
        Some(parsed)
    }
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
    let config = match Config::from_env(env.iter().cloned()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("butte executor: {e}");
            return 1;
        }
    };
    // The token is the executor's alone: its tasks do not inherit it (the
    // Mesos executor library erases it from its environment).
    let env = env
        .into_iter()
        .filter(|(k, _)| k != config::AUTHENTICATION_TOKEN)
        .collect();
    // Tasks share our pid namespace: keep them out of /proc/<pid>/exe,
    // mem, fd and environ of the executor (see `butte enter`).
    let _ = nix::sys::prctl::set_dumpable(false);
    let options = Options {
        default: args.default,
        launch_info: args.launch_info,
        self_exe: PathBuf::from("/proc/self/exe"),
        reap_all: std::process::id() == 1,
    };
    run(config, env, options)
}

#[cfg(test)]
mod args_tests {
    use super::*;

    fn parse(args: &[&str]) -> Option<(bool, Option<PathBuf>)> {
        ExecutorArgs::from_args(args.iter().map(Into::into)).map(|a| (a.default, a.launch_info))
    }

    #[test]
    fn fast_argument_parsing_accepts_only_the_executor_flags() {
        assert_eq!(parse(&[]), Some((false, None)));
        assert_eq!(
            parse(&["--default", "--launch-info", "/x.json"]),
            Some((true, Some("/x.json".into())))
        );
        assert_eq!(
            parse(&["--launch-info=/x.json"]),
            Some((false, Some("/x.json".into())))
        );
        assert_eq!(parse(&["--launch-info"]), None);
        assert_eq!(parse(&["--help"]), None);
        assert_eq!(parse(&["--default", "--default"]), None);
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
}

/// Runs an executor with explicit settings and environment (the tasks'
/// base environment); returns its exit code.
///
/// Before anything else (no thread, no agent): the image tasks of the
/// launch info get their prepared processes, then the executor reduces its
/// capabilities to the default set (`privileges`). Only then the reaper's
/// and the link's threads start.
pub fn run(config: Config, env: Vec<(String, String)>, options: Options) -> i32 {
    let prepared = prepare(&config, &options);
    if let Err(e) = privileges::drop_to_default() {
        eprintln!("butte executor: cannot give up capabilities beyond the default set: {e}");
        return 1;
    }
    let (tx, rx) = mpsc::channel();
    let reaper = reaper::Reaper::new(options.reap_all);
    prepared.adopt(&reaper, &tx);
    let s = session::Session::new(config, env, options.launch_info, reaper, tx, prepared);
    if options.default {
        session::run(s, &mut group::DefaultExecutor::new(), &rx)
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
            })
        })
        .collect();
    prepared::PreparedTasks::start(&options.self_exe, tasks)
}
