//! Image tasks prepared at the executor's start, so that the executor can
//! give up `CAP_SYS_ADMIN` before it talks to the agent.
//!
//! For each task of the launch info with a root filesystem, two children,
//! each in a new mount namespace pivoted into the task's root filesystem
//! and holding no capability beyond the default set once ready
//! (`support::prepared` has the messages):
//!
//! ```text
//! start:  butte enter --prepare  -> Ready | Failed   (the task's process)
//!         butte enter --serve    -> Ready | Failed   (its COMMAND checks)
//! LAUNCH: Run -> --prepare execs the task: the executor's child is the
//!         task (its exit, signals and kill grace as for a host task)
//! check:  Run (with a timeout) -> --serve -> Finished
//! ```
//!
//! A task launched without its prepared process fails with a message that
//! says why (it failed to prepare, died, or was not known at the start);
//! closing a channel ends the process at the other side, so nothing waits
//! forever. A check server nobody needs is closed at the task's launch.

use super::exit::Exit;
use super::probe::Outcome;
use super::reaper::Reaper;
use super::session::Input;
use crate::support::format_duration;
use crate::support::prepared::{self, Finished, Prepared, Run, Setup};
use std::collections::HashMap;
use std::io::{self, BufReader};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Sender;
use std::sync::Mutex;
use std::time::Duration;

/// How long preparing a root filesystem may take.
pub const PREPARE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a check server may take beyond a check's own timeout.
const ANSWER_MARGIN: Duration = Duration::from_secs(10);

/// Why a task's prepared process cannot run it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrepareError {
    #[error("cannot create the task's sandbox: {0}")]
    Sandbox(String),
    #[error("cannot start `butte enter --{mode}`: {message}")]
    Start { mode: &'static str, message: String },
    #[error("cannot prepare the task's root filesystem: {0}")]
    Failed(String),
    #[error("the task's root filesystem was not prepared when the executor started")]
    NotPrepared,
    #[error("the process prepared for the task is gone: {0}")]
    Gone(String),
}

/// A running `enter --prepare` or `--serve`.
struct Started {
    pid: u32,
    tx: UnixStream,
    rx: BufReader<UnixStream>,
}

/// A task's prepared processes, until its launch.
pub struct TaskRoot {
    task: Result<Started, PrepareError>,
    checks: Result<Started, PrepareError>,
}

/// One image task to prepare: its id, root filesystem and sandbox.
pub struct ToPrepare {
    pub task_id: String,
    pub rootfs: PathBuf,
    pub sandbox: Result<PathBuf, String>,
    /// The task's seccomp program (`butte enter --seccomp`).
    pub seccomp: Option<Vec<u8>>,
    /// A Docker task's settings (`butte enter --setup`).
    pub setup: Option<Setup>,
}

/// Every task's prepared processes, by task id.
#[derive(Default)]
pub struct PreparedTasks {
    roots: HashMap<String, TaskRoot>,
}

impl std::fmt::Debug for PreparedTasks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.roots.keys()).finish()
    }
}

/// The executor's stderr, for a child's stdout.
fn stderr() -> Stdio {
    io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null())
}

fn spawn(
    self_exe: &Path,
    mode: &'static str,
    rootfs: &Path,
    sandbox: &Path,
    seccomp: Option<&[u8]>,
    setup: Option<&Setup>,
) -> Result<(Child, UnixStream), PrepareError> {
    let start = |e: io::Error| PrepareError::Start {
        mode,
        message: e.to_string(),
    };
    let (ours, theirs) = UnixStream::pair().map_err(start)?;
    let mut cmd = Command::new(self_exe);
    cmd.arg0("butte")
        .arg("enter")
        .arg(format!("--{mode}"))
        .arg("--rootfs")
        .arg(rootfs)
        .arg("--sandbox")
        .arg(sandbox)
        .current_dir(sandbox)
        .env_clear()
        .stdin(Stdio::from(OwnedFd::from(theirs)))
        .process_group(0);
    if let Some(prog) = seccomp {
        use base64::Engine;
        cmd.arg("--seccomp")
            .arg(base64::engine::general_purpose::STANDARD.encode(prog));
    }
    if let Some(setup) = setup {
        cmd.arg("--setup").arg(setup.to_arg());
    }
    if mode == "serve" {
        // Checks' output goes to the executor's stderr, as Mesos does.
        cmd.stdout(stderr());
    }
    let child = cmd.spawn().map_err(start)?;
    Ok((child, ours))
}

/// Waits for a started process to say how preparing went.
fn ready(mut child: Child, chan: UnixStream) -> Result<Started, PrepareError> {
    let rx = chan
        .try_clone()
        .and_then(|rx| rx.set_read_timeout(Some(PREPARE_TIMEOUT)).map(|()| rx));
    let said = match rx {
        Ok(rx) => {
            let mut rx = BufReader::new(rx);
            prepared::recv::<Prepared, _>(&mut rx).map(|said| (said, rx))
        }
        Err(e) => Err(e),
    };
    let failed = match said {
        Ok((Some(Prepared::Ready), rx)) => {
            if let Err(e) = rx.get_ref().set_read_timeout(None) {
                PrepareError::Gone(e.to_string())
            } else {
                // Its exit is the reaper's from now on.
                return Ok(Started {
                    pid: child.id(),
                    tx: chan,
                    rx,
                });
            }
        }
        Ok((Some(Prepared::Failed(why)), _)) => PrepareError::Failed(why),
        Ok((None, _)) => PrepareError::Failed("it exited without a word".into()),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            PrepareError::Failed(format!(
                "not ready after {}",
                format_duration(PREPARE_TIMEOUT)
            ))
        }
        Err(e) => PrepareError::Failed(e.to_string()),
    };
    let _ = child.kill();
    let _ = child.wait();
    Err(failed)
}

impl PreparedTasks {
    /// Starts both processes of every task, then waits until each has
    /// said how preparing went (they work side by side).
    pub fn start(self_exe: &Path, tasks: Vec<ToPrepare>) -> PreparedTasks {
        let mut started = Vec::new();
        for t in tasks {
            let pair = match &t.sandbox {
                Ok(sandbox) => {
                    let start = |mode| {
                        spawn(
                            self_exe,
                            mode,
                            &t.rootfs,
                            sandbox,
                            t.seccomp.as_deref(),
                            t.setup.as_ref(),
                        )
                    };
                    (start("prepare"), start("serve"))
                }
                Err(e) => (
                    Err(PrepareError::Sandbox(e.clone())),
                    Err(PrepareError::Sandbox(e.clone())),
                ),
            };
            started.push((t.task_id, pair));
        }
        let roots = started
            .into_iter()
            .map(|(id, (task, checks))| {
                let root = TaskRoot {
                    task: task.and_then(|(c, chan)| ready(c, chan)),
                    checks: checks.and_then(|(c, chan)| ready(c, chan)),
                };
                if let Err(e) = &root.task {
                    eprintln!("butte executor: task {id}: {e}");
                }
                (id, root)
            })
            .collect();
        PreparedTasks { roots }
    }

    /// Hands the processes' exits to the reaper: a task process's exit is
    /// the task's ([`Input::Exited`]); a check server's is nobody's.
    pub fn adopt(&self, reaper: &Reaper, inputs: &Sender<Input>) {
        for (id, root) in &self.roots {
            if let Ok(p) = &root.task {
                let (inputs, task_id) = (inputs.clone(), id.clone());
                let on_exit = Box::new(move |exit: Exit| {
                    let _ = inputs.send(Input::Exited { task_id, exit });
                });
                if let Err(e) = reaper.adopt(p.pid, on_exit) {
                    eprintln!("butte executor: task {id}: cannot watch its process: {e}");
                }
            }
            if let Ok(p) = &root.checks {
                if let Err(e) = reaper.adopt(p.pid, Box::new(|_| {})) {
                    eprintln!("butte executor: task {id}: cannot watch its check process: {e}");
                }
            }
        }
    }

    /// Takes a task's prepared processes (at its launch).
    pub fn take(&mut self, task_id: &str) -> Option<TaskRoot> {
        self.roots.remove(task_id)
    }
}

impl TaskRoot {
    /// Sends the task its command; the prepared process execs it. Returns
    /// the task's pid.
    pub fn launch(&mut self, run: &Run) -> Result<u32, PrepareError> {
        let p = std::mem::replace(&mut self.task, Err(PrepareError::NotPrepared));
        let mut p = p?;
        prepared::send(&mut p.tx, run)
            .map_err(|e| PrepareError::Gone(format!("cannot send it the task's command: {e}")))?;
        Ok(p.pid)
    }

    /// The task's check server (or why it has none).
    pub fn checks(self) -> CheckServer {
        let chan = match self.checks {
            Ok(p) => Ok((p.tx, p.rx)),
            Err(e) => Err(format!(
                "the task's checks cannot run in its root filesystem: {e}"
            )),
        };
        CheckServer {
            chan: Mutex::new(chan),
        }
    }
}

/// Runs a task's COMMAND checks inside its root filesystem, one at a time.
pub struct CheckServer {
    /// The channel, or why there is none.
    chan: Mutex<Result<(UnixStream, BufReader<UnixStream>), String>>,
}

impl std::fmt::Debug for CheckServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CheckServer")
    }
}

impl CheckServer {
    /// Runs one check command within `limit`.
    pub fn run(&self, run: &Run, limit: Duration) -> Outcome {
        let mut run = run.clone();
        run.timeout_ms = Some(u64::try_from(limit.as_millis()).unwrap_or(u64::MAX));
        // A std Mutex: nothing awaits under it; checks of a task take turns.
        let mut chan = self.chan.lock().unwrap_or_else(|e| e.into_inner());
        let answer = match &mut *chan {
            Ok((tx, rx)) => exchange(tx, rx, &run, limit),
            Err(why) => return Outcome::Error(why.clone()),
        };
        match answer {
            Ok(Finished::Code(code)) => Outcome::Command(code),
            Ok(Finished::Signal(signal)) => {
                Outcome::Error(format!("Command {}", Exit::Signal(signal)))
            }
            Ok(Finished::TimedOut) => Outcome::Error(format!(
                "Command timed out after {}",
                format_duration(limit)
            )),
            Ok(Finished::Error(e)) => {
                Outcome::Error(format!("failed to launch the check command: {e}"))
            }
            Err(e) => {
                let why = format!("the process that runs the task's checks is gone: {e}");
                *chan = Err(why.clone());
                Outcome::Error(why)
            }
        }
    }
}

fn exchange(
    tx: &mut UnixStream,
    rx: &mut BufReader<UnixStream>,
    run: &Run,
    limit: Duration,
) -> io::Result<Finished> {
    rx.get_ref()
        .set_read_timeout(Some(limit.saturating_add(ANSWER_MARGIN)))?;
    prepared::send(tx, run)?;
    prepared::recv::<Finished, _>(rx)?
        .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "it closed the channel"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_without_a_prepared_process_fails_clearly() {
        let mut tasks = PreparedTasks::start(
            Path::new("/proc/self/exe"),
            vec![ToPrepare {
                task_id: "t".into(),
                rootfs: "/nonexistent".into(),
                sandbox: Err("no space".into()),
                seccomp: None,
                setup: None,
            }],
        );
        let mut root = tasks.take("t").unwrap();
        let e = root.launch(&Run::default()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot create the task's sandbox: no space",
            "{e}"
        );
        assert!(tasks.take("t").is_none());
        let server = root.checks();
        let out = server.run(&Run::default(), Duration::from_secs(1));
        assert!(
            matches!(&out, Outcome::Error(e) if e.contains("cannot run in its root filesystem")),
            "{out:?}"
        );
    }

    #[test]
    fn a_docker_tasks_settings_reach_enter_as_one_argument() {
        // `sh enter ARGS` in the sandbox: a script named `enter` there
        // records the arguments (read by sh, not executed: no ETXTBSY).
        let dir = tempfile::tempdir().unwrap();
        let exe = Path::new("/bin/sh");
        let args = dir.path().join("args");
        std::fs::write(
            dir.path().join("enter"),
            format!("printf '%s\\n' \"$@\" >> {}\n", args.display()),
        )
        .unwrap();
        let setup = Setup {
            sandbox_dir: Some("/sandbox".into()),
            read_only: true,
            rlimits: vec![("nofile".into(), 100, 200)],
            ..Default::default()
        };
        let mut tasks = PreparedTasks::start(
            exe,
            vec![ToPrepare {
                task_id: "t".into(),
                rootfs: "/r".into(),
                sandbox: Ok(dir.path().to_path_buf()),
                seccomp: None,
                setup: Some(setup.clone()),
            }],
        );
        // It said nothing: not prepared, and said so.
        let e = tasks
            .take("t")
            .unwrap()
            .launch(&Run::default())
            .unwrap_err();
        assert!(e.to_string().contains("exited without a word"), "{e}");
        let text = std::fs::read_to_string(&args).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for mode in ["--prepare", "--serve"] {
            assert!(lines.contains(&mode), "{text}");
        }
        let sent: Vec<Setup> = lines
            .windows(2)
            .filter(|w| w[0] == "--setup")
            .map(|w| Setup::from_arg(w[1]).unwrap())
            .collect();
        assert_eq!(sent, [setup.clone(), setup], "{text}");
    }

    #[test]
    fn a_prepared_process_that_exits_is_a_failure_not_a_hang() {
        // `true` answers nothing and exits: end of file.
        let (child, chan) = {
            let (ours, theirs) = UnixStream::pair().unwrap();
            let child = Command::new("/bin/true")
                .stdin(Stdio::from(OwnedFd::from(theirs)))
                .spawn()
                .unwrap();
            (child, ours)
        };
        let e = ready(child, chan).err().unwrap();
        assert!(e.to_string().contains("exited without a word"), "{e}");
    }

    #[test]
    fn a_task_whose_prepared_process_died_fails_clearly() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        drop(theirs);
        let rx = BufReader::new(ours.try_clone().unwrap());
        let mut root = TaskRoot {
            task: Ok(Started {
                pid: 1,
                tx: ours,
                rx,
            }),
            checks: Err(PrepareError::NotPrepared),
        };
        let e = root.launch(&Run::default()).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("the process prepared for the task is gone"),
            "{e}"
        );
        // Only once: a second launch is refused, not sent.
        assert_eq!(
            root.launch(&Run::default()).unwrap_err(),
            PrepareError::NotPrepared
        );
    }

    #[test]
    fn a_dead_check_server_is_reported() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        drop(theirs);
        let rx = BufReader::new(ours.try_clone().unwrap());
        let server = CheckServer {
            chan: Mutex::new(Ok((ours, rx))),
        };
        let out = server.run(
            &Run {
                argv: vec!["true".into()],
                ..Default::default()
            },
            Duration::from_secs(1),
        );
        assert!(
            matches!(&out, Outcome::Error(e) if e.contains("is gone")),
            "{out:?}"
        );
        // And stays so, without another try.
        let again = server.run(&Run::default(), Duration::from_secs(1));
        assert_eq!(again, out);
    }
}
