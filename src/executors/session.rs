//! What both built-in executors share: the subscription to the agent (with
//! Mesos' reconnection rules), unacknowledged status updates, status
//! construction, starting task processes, and the event loop that feeds a
//! [`Behavior`] its inputs and timers.
//!
//! Connection states:
//! ```text
//! Subscribing --SUBSCRIBED--> Subscribed --stream ends--> Waiting (backoff)
//!      ^  \--refused/unreachable--> Waiting --retry time--> Subscribing
//!      |                               \--recovery timeout, or no
//!      |                                  checkpointing after a
//!      |                                  subscription--> Lost
//! ```

use super::config::Config;
use super::exit::Exit;
use super::flags::MesosFlags;
use super::launch::{self, Plan};
use super::link::Link;
use super::logger;
use super::nested::Report;
use super::prepared::{PrepareError, PreparedTasks, TaskRoot};
use super::probe::Outcome;
use super::reaper::Reaper;
use crate::proto::launch::{LaunchInfos, TaskLaunchInfo};
use crate::proto::mesos::v1::executor::{call, event, Call, Event};
use crate::proto::mesos::v1::{
    framework_info, task_status, AgentId, ExecutorId, FrameworkId, FrameworkInfo, TaskId, TaskInfo,
    TaskState, TaskStatus,
};
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Which kind of check a probe result belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    Health,
    Check,
}

/// Everything the executor's loop reacts to.
#[derive(Debug)]
pub enum Input {
    Event(Box<Event>),
    /// A SUBSCRIBE was refused or could not be sent.
    SubscribeFailed(String),
    /// An accepted subscription ended.
    Disconnected(String),
    Exited {
        task_id: String,
        exit: Exit,
    },
    Probe {
        task_id: String,
        kind: ProbeKind,
        outcome: Outcome,
    },
    /// A nested container's launch or wait answered (default executor).
    Nested(Report),
}

/// An executor's reactions (the command executor, the default executor).
pub trait Behavior {
    /// An event from the agent (SUBSCRIBED already recorded).
    fn event(&mut self, s: &mut Session, event: Event);
    /// A task's process ended.
    fn exited(&mut self, s: &mut Session, task_id: &str, exit: Exit);
    /// A nested container's launch or wait answered.
    fn nested(&mut self, _s: &mut Session, report: Report) {
        eprintln!("butte executor: ignoring {report:?}: no nested containers here");
    }
    /// A check or health check result.
    fn probe(&mut self, s: &mut Session, task_id: &str, kind: ProbeKind, outcome: Outcome);
    /// Time passed: escalate kills, fire timers.
    fn tick(&mut self, s: &mut Session, now: Instant);
    /// The next time `tick` must run.
    fn deadline(&self) -> Option<Instant>;
    /// The agent is gone for good: kill the tasks and leave.
    fn connection_lost(&mut self, s: &mut Session);
    /// Tasks the agent has not acknowledged any update of.
    fn unacknowledged_tasks(&self) -> Vec<TaskInfo>;
    /// `Some(code)` once the executor is done.
    fn exit_code(&self) -> Option<i32>;
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Conn {
    Subscribing,
    Subscribed,
    Waiting { retry_at: Instant },
    Lost,
}

/// The executor's link to the agent and its bookkeeping.
pub struct Session {
    pub config: Config,
    /// The executor's environment, inherited by its tasks.
    pub env: Vec<(String, String)>,
    pub reaper: Reaper,
    pub inputs: Sender<Input>,
    launch_info: Option<PathBuf>,
    /// Image tasks' processes prepared at the start, until their launch.
    prepared: PreparedTasks,
    link: Link,
    unacked: Vec<(Vec<u8>, call::Update)>,
    /// The updates the last SUBSCRIBE carried.
    in_subscribe: Vec<Vec<u8>>,
    framework: Option<FrameworkInfo>,
    agent_id: Option<AgentId>,
    conn: Conn,
    /// Since when we have been without a subscription.
    lost_at: Option<Instant>,
    /// Failed attempts since the last subscription (the backoff grows).
    attempts: u32,
    ever_subscribed: bool,
    seed: u64,
    /// The rotated output's pipes, when the agent asked for rotation.
    output: Option<logger::Watch>,
    /// Mesos' executor flags, when a Mesos agent started us.
    pub mesos: MesosFlags,
}

/// What the connection state asks of the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Nothing,
    Subscribe,
    GiveUp,
}

impl Session {
    pub fn new(
        config: Config,
        env: Vec<(String, String)>,
        launch_info: Option<PathBuf>,
        reaper: Reaper,
        inputs: Sender<Input>,
        prepared: PreparedTasks,
    ) -> Session {
        let link = Link::start(
            &config.agent_endpoint,
            config.auth_token.as_deref(),
            inputs.clone(),
        );
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id()).rotate_left(32);
        Session {
            config,
            env,
            reaper,
            inputs,
            launch_info,
            prepared,
            link,
            unacked: Vec::new(),
            in_subscribe: Vec::new(),
            framework: None,
            agent_id: None,
            conn: Conn::Subscribing,
            lost_at: Some(Instant::now()),
            attempts: 0,
            ever_subscribed: false,
            seed: seed | 1,
            output: None,
            mesos: MesosFlags::default(),
        }
    }

    /// Lets the session wait, at each task's exit, for the rotated output
    /// to reach the files.
    pub fn watch_output(&mut self, output: Option<logger::Watch>) {
        self.output = output;
    }

    /// True while subscribed.
    pub fn subscribed(&self) -> bool {
        self.conn == Conn::Subscribed
    }

    /// True once the agent is given up on.
    pub fn gave_up(&self) -> bool {
        self.conn == Conn::Lost
    }

    /// True when the framework understands TASK_KILLING.
    pub fn task_killing_state(&self) -> bool {
        self.framework.as_ref().is_some_and(|f| {
            f.capabilities.iter().any(|c| {
                c.r#type == Some(framework_info::capability::Type::TaskKillingState as i32)
            })
        })
    }

    /// What the containerizer prepared for a task (nothing for a task
    /// without an image, or when no launch info file was given).
    pub fn launch_info(&self, task_id: &str) -> Result<TaskLaunchInfo, String> {
        let infos = read_launch_infos(self.launch_info.as_deref())?;
        Ok(infos.get(task_id).cloned().unwrap_or_default())
    }

    /// Takes the processes prepared for a task at the executor's start.
    pub fn take_prepared(&mut self, task_id: &str) -> Option<TaskRoot> {
        self.prepared.take(task_id)
    }

    /// Starts a task's process: a host task's own, or, for a task with a
    /// root filesystem, its prepared process (`root`), which execs it.
    /// Its exit arrives as [`Input::Exited`]. Returns the pid.
    pub fn start_task(
        &self,
        task_id: &str,
        plan: &Plan,
        root: Option<&mut TaskRoot>,
    ) -> Result<u32, String> {
        match launch::prepared_run(plan) {
            Some(run) => root
                .ok_or(PrepareError::NotPrepared)
                .and_then(|r| r.launch(&run))
                .map_err(|e| e.to_string()),
            None => {
                let mut cmd = launch::command(plan).map_err(|e| e.to_string())?;
                self.spawn_task(task_id, &mut cmd)
                    .map_err(|e| format!("{}: {e}", plan.program))
            }
        }
    }

    /// Starts a host task's process; its exit arrives as [`Input::Exited`].
    fn spawn_task(&self, task_id: &str, cmd: &mut Command) -> io::Result<u32> {
        let inputs = self.inputs.clone();
        let task_id = task_id.to_string();
        self.reaper.spawn(
            cmd,
            Box::new(move |exit| {
                let _ = inputs.send(Input::Exited { task_id, exit });
            }),
        )
    }

    /// A new status of a task, as the executor sends it: fresh uuid,
    /// timestamp, source, executor and agent ids.
    pub fn status(&self, task_id: &TaskId, state: TaskState) -> TaskStatus {
        TaskStatus {
            task_id: task_id.clone(),
            state: state as i32,
            source: Some(task_status::Source::Executor as i32),
            executor_id: Some(ExecutorId {
                value: self.config.executor_id.clone(),
            }),
            agent_id: self.agent_id.clone(),
            ..self.refresh(&TaskStatus::default())
        }
    }

    /// A copy of an earlier status with a fresh uuid and timestamp, for an
    /// update that changes only a detail (health, check result).
    pub fn refresh(&self, last: &TaskStatus) -> TaskStatus {
        TaskStatus {
            uuid: Some(new_uuid()),
            timestamp: Some(
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64()),
            ),
            ..last.clone()
        }
    }

    fn call(&self, kind: call::Type) -> Call {
        Call {
            executor_id: ExecutorId {
                value: self.config.executor_id.clone(),
            },
            framework_id: FrameworkId {
                value: self.config.framework_id.clone(),
            },
            r#type: Some(kind as i32),
            ..Default::default()
        }
    }

    /// Sends a status update (when subscribed: otherwise it goes with the
    /// next SUBSCRIBE) and keeps it until acknowledged.
    pub fn forward(&mut self, status: TaskStatus) {
        let update = call::Update { status };
        let uuid = update.status.uuid.clone().unwrap_or_default();
        if self.subscribed() {
            let mut call = self.call(call::Type::Update);
            call.update = Some(update.clone());
            self.link.send(&call);
        }
        self.unacked.push((uuid, update));
    }

    /// Records an acknowledgement; returns the acknowledged status.
    pub fn acknowledge(&mut self, uuid: &[u8]) -> Option<TaskStatus> {
        let i = self.unacked.iter().position(|(u, _)| u == uuid)?;
        Some(self.unacked.remove(i).1.status)
    }

    /// True when every update sent was acknowledged.
    pub fn all_acknowledged(&self) -> bool {
        self.unacked.is_empty()
    }

    fn subscribe(&mut self, tasks: Vec<TaskInfo>) {
        let mut call = self.call(call::Type::Subscribe);
        call.subscribe = Some(call::Subscribe {
            unacknowledged_tasks: tasks,
            unacknowledged_updates: self.unacked.iter().map(|(_, u)| u.clone()).collect(),
        });
        self.in_subscribe = self.unacked.iter().map(|(u, _)| u.clone()).collect();
        self.conn = Conn::Subscribing;
        self.link.subscribe(&call);
    }

    fn on_subscribed(&mut self, s: &event::Subscribed) {
        self.framework = Some(s.framework_info.clone());
        if s.agent_info.id.is_some() {
            self.agent_id = s.agent_info.id.clone();
        }
        self.conn = Conn::Subscribed;
        self.lost_at = None;
        self.attempts = 0;
        self.ever_subscribed = true;
        // Updates made while the SUBSCRIBE was on its way go now.
        let late: Vec<call::Update> = self
            .unacked
            .iter()
            .filter(|(u, _)| !self.in_subscribe.contains(u))
            .map(|(_, update)| update.clone())
            .collect();
        for update in late {
            let mut call = self.call(call::Type::Update);
            call.update = Some(update);
            self.link.send(&call);
        }
    }

    /// A subscription failed or ended: back off and retry, or give up.
    fn on_lost(&mut self, now: Instant) -> Step {
        if self.conn == Conn::Lost {
            return Step::Nothing;
        }
        let lost_at = *self.lost_at.get_or_insert(now);
        let retry = (self.config.checkpoint || !self.ever_subscribed)
            && now < lost_at + self.config.recovery_timeout;
        if !retry {
            self.conn = Conn::Lost;
            return Step::GiveUp;
        }
        let ceiling = backoff_ceiling(self.attempts, self.config.subscription_backoff_max);
        self.attempts = self.attempts.saturating_add(1);
        let wait = ceiling.mul_f64(0.5 + 0.5 * self.random_fraction());
        self.conn = Conn::Waiting {
            retry_at: now + wait,
        };
        Step::Nothing
    }

    fn step(&mut self, now: Instant) -> Step {
        match self.conn {
            Conn::Waiting { retry_at } => {
                let lost_at = self.lost_at.unwrap_or(now);
                if now >= lost_at + self.config.recovery_timeout {
                    self.conn = Conn::Lost;
                    Step::GiveUp
                } else if now >= retry_at {
                    Step::Subscribe
                } else {
                    Step::Nothing
                }
            }
            _ => Step::Nothing,
        }
    }

    fn deadline(&self) -> Option<Instant> {
        match self.conn {
            Conn::Waiting { retry_at } => Some(
                self.lost_at
                    .map_or(retry_at, |l| retry_at.min(l + self.config.recovery_timeout)),
            ),
            _ => None,
        }
    }

    /// A number in [0, 1) (xorshift; only spreads retries apart).
    fn random_fraction(&mut self) -> f64 {
        let mut x = self.seed;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.seed = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The longest wait before the next SUBSCRIBE after ATTEMPTS failures:
/// 10 ms, growing by half each time, up to `MESOS_SUBSCRIPTION_BACKOFF_MAX`
/// (the wait itself is drawn from the upper half). A restarted agent is
/// back within a few hundred milliseconds (its port queues connections
/// while it recovers): its executors find it within about half its
/// absence, instead of after up to the whole maximum as with a single
/// draw in [0, max), while retries still spread apart.
fn backoff_ceiling(attempts: u32, max: Duration) -> Duration {
    let micros = (10_000.0 * 1.5f64.powi(attempts.min(64) as i32)).round();
    Duration::from_micros(micros.min(u64::MAX as f64) as u64)
        .min(max)
        .max(Duration::from_millis(1))
}

/// The launch info file (empty without one, or when it is missing).
pub fn read_launch_infos(path: Option<&Path>) -> Result<LaunchInfos, String> {
    let Some(path) = path else {
        return Ok(LaunchInfos::default());
    };
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(LaunchInfos::default()),
        Err(e) => return Err(format!("cannot read launch info {}: {e}", path.display())),
    };
    serde_json::from_slice(&text)
        .map_err(|e| format!("cannot parse launch info {}: {e}", path.display()))
}

/// 16 random bytes: a UUID v4, as Mesos gives each status update.
pub fn new_uuid() -> Vec<u8> {
    crate::support::random_uuid()
        .ok()
        .and_then(|s| hex::decode(s.replace('-', "")).ok())
        .unwrap_or_else(|| {
            let t = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            (t ^ (u128::from(std::process::id()) << 96))
                .to_be_bytes()
                .to_vec()
        })
}

/// Runs an executor until it is done; returns its exit code.
pub fn run(mut s: Session, b: &mut dyn Behavior, inputs: &Receiver<Input>) -> i32 {
    let tasks = b.unacknowledged_tasks();
    s.subscribe(tasks);
    loop {
        if let Some(code) = b.exit_code() {
            return code;
        }
        let deadline = [b.deadline(), s.deadline()].into_iter().flatten().min();
        let input = match deadline {
            Some(d) => inputs.recv_timeout(d.saturating_duration_since(Instant::now())),
            None => inputs.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match input {
            Ok(Input::Event(event)) => {
                if let Some(sub) = &event.subscribed {
                    s.on_subscribed(sub);
                }
                b.event(&mut s, *event);
            }
            Ok(Input::SubscribeFailed(why)) | Ok(Input::Disconnected(why)) => {
                eprintln!("butte executor: disconnected from the agent: {why}");
                if s.on_lost(Instant::now()) == Step::GiveUp {
                    eprintln!("butte executor: giving up on the agent; shutting down");
                    b.connection_lost(&mut s);
                }
            }
            Ok(Input::Exited { task_id, exit }) => {
                // The task's last bytes reach its files before its
                // terminal update goes out.
                if let Some(w) = &s.output {
                    w.settle();
                }
                b.exited(&mut s, &task_id, exit)
            }
            Ok(Input::Probe {
                task_id,
                kind,
                outcome,
            }) => b.probe(&mut s, &task_id, kind, outcome),
            Ok(Input::Nested(report)) => b.nested(&mut s, report),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return 1,
        }
        let now = Instant::now();
        match s.step(now) {
            Step::Subscribe => {
                let tasks = b.unacknowledged_tasks();
                s.subscribe(tasks);
            }
            Step::GiveUp => {
                eprintln!("butte executor: could not resubscribe within the recovery timeout");
                b.connection_lost(&mut s);
            }
            Step::Nothing => {}
        }
        b.tick(&mut s, now);
    }
}

#[cfg(test)]
mod tests {
    use super::backoff_ceiling;
    use std::time::Duration;

    #[test]
    fn resubscription_backoff_grows_up_to_the_maximum() {
        let max = Duration::from_secs(2);
        let us = |n| backoff_ceiling(n, max).as_micros();
        assert_eq!(
            [us(0), us(1), us(2), us(3)],
            [10_000, 15_000, 22_500, 33_750]
        );
        assert_eq!(us(13), 1_946_195);
        assert_eq!(us(14), 2_000_000);
        assert_eq!(us(u32::MAX), 2_000_000);
        assert_eq!(
            backoff_ceiling(5, Duration::from_millis(50)),
            Duration::from_millis(50)
        );
    }
}
