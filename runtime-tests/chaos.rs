//! Issue 18: a burst of launches while the agent is killed with SIGKILL and
//! restarted again and again. A checkpointing framework launches
//! `CHAOS_TASKS` (50) tasks of mixed kinds in `CHAOS_KILLS + 1` (5 + 1)
//! bursts: short commands (most), long ones the framework kills at the end,
//! tasks in a busybox image pulled from a local registry, tasks with a
//! health check, tasks with a URI to fetch, and task groups of two under
//! the default executor. Between bursts the agent is SIGKILLed at a random
//! moment (mid-burst, during launches, pulls and fetches, between updates
//! and their acks; `CHAOS_SEED` fixes the moments) and restarted, and the
//! master answers its re-registration, followed by the
//! `CheckpointResourcesMessage` a Mesos master sends then. Half the
//! restarted agents (all but the last) are armed with a crash point
//! (`BUTTE_CRASH_AT`, `support::crash`): they SIGKILL themselves at the
//! N-th pass of a random one of them (a checkpoint before its rename, a
//! half-written update record, between a fork and its pid's checkpoint,
//! between an update sent and its ack), if they get there before the
//! test's own kill. After each
//! re-registration the framework now and then kills a task, and the test
//! SIGKILLs an executor or a task's process. Every update is acknowledged
//! as it arrives. At the end, the invariants the master and the host can
//! check:
//! - every task the agent knew has exactly one terminal update, and it is
//!   the true one: a task whose command ran to its end (it prints a marker
//!   to its sandbox's stdout) is TASK_FINISHED, any other is not (a task
//!   the framework killed, or whose executor or process the test killed,
//!   may end otherwise though it ran: the kill can land after its last
//!   word);
//! - a task the agent did not report at a re-registration (its RunTask was
//!   still unread at the kill: the master drops it) never gets an update;
//! - no acknowledged update is sent again, unless the agent was killed
//!   between the ack and the resend (it may not have logged the ack: such
//!   resends are counted in the figures);
//! - once every task ended, no process is left in the test's cgroups, the
//!   agent's `meta/` marks every run it recorded as completed (its view
//!   agrees with the processes: nothing runs), and `master::finish` finds no
//!   cgroup, process or mount;
//! - the agent never drops a message of the master as unknown.
//!
//! `bench/chaos.sh` runs the same test with larger numbers.

use crate::support::master::{
    self, describe, executor, executor_pids, framework, image_container, resources, shell,
    task_and_state, AgentProcess, FakeMaster,
};
use crate::support::registry::Registry;
use crate::support::{busybox_oci, enabled, processes_in_cgroup, Fixture};
use butte::proto::mesos::internal::{CheckpointResourcesMessage, StatusUpdate};
use butte::proto::mesos::{
    command_info, health_check, FrameworkInfo, HealthCheck, TaskId, TaskInfo, TaskState,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::time::{Duration, Instant};

/// The agent's crash points (`BUTTE_CRASH_AT`), each named once.
const CRASH_POINTS: &[(&str, &str)] = butte::support::crash::POINTS;

/// What a task prints as its last act; its presence in the sandbox's
/// stdout proves the command ran to exit 0.
const MARKER: &str = "chaos-task-done";

/// How long after an acknowledgement a resend may still arrive (already on
/// the wire when the ack left).
const GRACE: Duration = Duration::from_millis(500);

/// A small xorshift generator: reproducible from `CHAOS_SEED`.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }

    fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.below(hi - lo))
    }
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The kinds of task in the mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// `sleep 1..3; echo MARKER`.
    Short,
    /// `sleep 600; echo MARKER`: the framework kills it at the end.
    Long,
    /// A short command in the busybox image.
    Image,
    /// A short command with a command health check every second.
    Health,
    /// A short command that first reads a fetched file.
    Fetch,
    /// One of the two short tasks of a task group (default executor).
    Group,
}

impl Kind {
    /// Draws a kind: mostly short commands, then a bit of everything.
    fn draw(rng: &mut Rng) -> Kind {
        match rng.below(20) {
            0 => Kind::Long,
            1 | 2 => Kind::Image,
            3 => Kind::Health,
            4 => Kind::Fetch,
            5 | 6 => Kind::Group,
            _ => Kind::Short,
        }
    }
}

/// A task sent, and where its output lands.
struct Sent {
    kind: Kind,
    executor: String,
}

/// TASK's command: a random 1 to 3 s (or 600 s) sleep, then `MARKER TASK`
/// (a fetching task first checks its fetched file).
fn chaos_command(task: &str, kind: Kind, rng: &mut Rng) -> String {
    let secs = if kind == Kind::Long {
        600
    } else {
        1 + rng.below(3)
    };
    match kind {
        Kind::Fetch => format!("grep -q chaos payload && sleep {secs} && echo {MARKER} {task}"),
        _ => format!("sleep {secs}; echo {MARKER} {task}"),
    }
}

/// `sleep S; echo MARKER ID`: 1 to 3 s, cpus 0.01, mem 4 MB.
fn chaos_task(id: &str, rng: &mut Rng) -> TaskInfo {
    task_of(id, Kind::Short, rng, "")
}

fn task_of(id: &str, kind: Kind, rng: &mut Rng, payload: &str) -> TaskInfo {
    let mut command = shell(&chaos_command(id, kind, rng));
    if kind == Kind::Fetch {
        command.uris.push(command_info::Uri {
            value: payload.to_string(),
            extract: Some(false),
            output_file: Some("payload".into()),
            ..Default::default()
        });
    }
    let mut task = TaskInfo {
        name: id.into(),
        task_id: TaskId { value: id.into() },
        resources: resources(0.01, 4.0),
        command: Some(command),
        ..Default::default()
    };
    match kind {
        Kind::Image => task.container = Some(image_container("library/busybox:1")),
        Kind::Health => {
            task.health_check = Some(HealthCheck {
                r#type: Some(health_check::Type::Command as i32),
                command: Some(shell("true")),
                delay_seconds: Some(0.0),
                interval_seconds: Some(1.0),
                timeout_seconds: Some(5.0),
                grace_period_seconds: Some(0.0),
                consecutive_failures: Some(3),
                ..Default::default()
            })
        }
        _ => {}
    }
    task
}

/// Everything the master saw, per task.
#[derive(Default)]
struct Ledger {
    /// Every update received, with its arrival time.
    updates: BTreeMap<String, Vec<(Instant, StatusUpdate)>>,
    /// When each uuid was acknowledged.
    acked: HashMap<Vec<u8>, Instant>,
}

impl Ledger {
    /// Receives and acknowledges updates for DURATION.
    fn drain(&mut self, master: &FakeMaster, duration: Duration) {
        let deadline = Instant::now() + duration;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(u) = master.next_status(left.min(Duration::from_millis(50))) else {
                if left.is_zero() {
                    return;
                }
                continue;
            };
            let uuid = u.uuid.clone().expect("an update without uuid");
            let now = Instant::now();
            self.updates
                .entry(task_and_state(&u).0)
                .or_default()
                .push((now, u.clone()));
            master.ack(&u);
            self.acked.entry(uuid).or_insert(now);
        }
    }

    /// The distinct terminal updates of TASK (by uuid).
    fn terminals(&self, task: &str) -> Vec<&StatusUpdate> {
        let mut seen = BTreeSet::new();
        self.updates
            .get(task)
            .into_iter()
            .flatten()
            .map(|(_, u)| u)
            .filter(|u| is_terminal(task_and_state(u).1))
            .filter(|u| seen.insert(u.uuid.clone()))
            .collect()
    }

    fn has_terminal(&self, task: &str) -> bool {
        !self.terminals(task).is_empty()
    }
}

pub(crate) fn is_terminal(s: TaskState) -> bool {
    matches!(
        s,
        TaskState::TaskFinished
            | TaskState::TaskFailed
            | TaskState::TaskKilled
            | TaskState::TaskLost
            | TaskState::TaskError
            | TaskState::TaskDropped
            | TaskState::TaskGone
            | TaskState::TaskGoneByOperator
    )
}

/// Whether the task's command ran to its end: its marker line is in its
/// stdout (in a task group, its nested container's, reached through
/// `tasks/<id>` in the executor's sandbox).
fn ran_to_end(
    agent: &AgentProcess,
    master: &FakeMaster,
    fw: &FrameworkInfo,
    task: &str,
    sent: &Sent,
) -> bool {
    let sandbox = agent.sandbox(&master.slave_id(), fw, &sent.executor);
    [
        sandbox.join("tasks").join(task).join("stdout"),
        sandbox.join("stdout"),
    ]
    .into_iter()
    .any(|stdout| {
        fs::read_to_string(stdout).is_ok_and(|s| s.lines().any(|l| l == format!("{MARKER} {task}")))
    })
}

/// The host pids in the container of EXECUTOR's latest run.
fn container_pids(
    fx: &Fixture,
    agent: &AgentProcess,
    master: &FakeMaster,
    fw: &FrameworkInfo,
    executor: &str,
) -> Vec<i32> {
    let Ok(run) = fs::read_link(agent.sandbox(&master.slave_id(), fw, executor)) else {
        return Vec::new();
    };
    let Some(container) = run.file_name().and_then(|n| n.to_str()) else {
        return Vec::new();
    };
    processes_in_cgroup(&format!("{}/{container}", fx.parent))
}

/// What the test did to a task from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Disturbance {
    /// The framework asked for a kill.
    Framework,
    /// SIGKILL to its executor.
    ExecutorSigkill,
    /// SIGKILL to its command's shell.
    TaskSigkill,
}

impl Disturbance {
    fn label(self) -> &'static str {
        match self {
            Disturbance::Framework => "framework kill",
            Disturbance::ExecutorSigkill => "executor SIGKILL",
            Disturbance::TaskSigkill => "task SIGKILL",
        }
    }
}

/// SIGKILL to the executor, or to the shell of the command, of a live task:
/// returns what was done, if there was a process to kill.
fn sigkill_one(
    fx: &Fixture,
    agent: &AgentProcess,
    master: &FakeMaster,
    fw: &FrameworkInfo,
    sent: &Sent,
    executor_too: bool,
) -> Option<Disturbance> {
    let pids = container_pids(fx, agent, master, fw, &sent.executor);
    let executors = executor_pids(&fx.parent);
    let victim = if executor_too {
        pids.iter().find(|p| executors.contains(p)).copied()
    } else {
        // The shell running the command names the marker in its argv.
        pids.iter()
            .find(|p| {
                let cmdline = fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
                !executors.contains(p) && String::from_utf8_lossy(&cmdline).contains(MARKER)
            })
            .copied()
    }?;
    eprintln!(
        "chaos: SIGKILL to {} {victim} of executor {}",
        if executor_too {
            "the executor"
        } else {
            "the task's shell"
        },
        sent.executor
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(victim),
        nix::sys::signal::Signal::SIGKILL,
    )
    .ok()?;
    Some(if executor_too {
        Disturbance::ExecutorSigkill
    } else {
        Disturbance::TaskSigkill
    })
}

/// Issue 18: SIGKILL of the agent during launch bursts, K times, with
/// SIGKILLs of executors and tasks in between.
#[test]
fn tasks_survive_repeated_agent_sigkill_during_launch_bursts() {
    if !enabled() {
        return;
    }
    let tasks = env("CHAOS_TASKS", 50) as usize;
    let kills = env("CHAOS_KILLS", 5) as usize;
    let seed = env(
        "CHAOS_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    ) | 1;
    eprintln!("chaos: {tasks} tasks, {kills} kills, CHAOS_SEED={seed}");
    let mut rng = Rng(seed);
    let started = Instant::now();

    let fx = Fixture::new();
    let registry = Registry::start();
    registry.push(&busybox_oci(), "1", "library/busybox:1");
    let payload = fx.work.path().join("payload.txt");
    fs::write(&payload, "chaos payload\n").unwrap();
    let payload = payload.display().to_string();
    let master = FakeMaster::start(0);
    let mut agent = AgentProcess::start(
        &fx,
        &master,
        &[
            "--executor_reregistration_timeout",
            "5secs",
            "--docker_registry",
            &registry.url(),
        ],
    );
    master.register();
    // An armed agent may die while the master talks to it.
    master.set_lossy();
    let fw = framework("chaos");
    let mut ledger = Ledger::default();
    let mut order: Vec<String> = Vec::new();
    let mut sent: BTreeMap<String, Sent> = BTreeMap::new();
    let mut dropped: BTreeSet<String> = BTreeSet::new();
    let mut disturbed: BTreeMap<String, Disturbance> = BTreeMap::new();
    let mut kill_times: Vec<Instant> = Vec::new();
    let mut recovery = Vec::new();
    let mut injected: BTreeMap<String, usize> = BTreeMap::new();
    let per_burst = tasks.div_ceil(kills + 1);
    let mut next = 0usize;
    for round in 0..=kills {
        let last = ((round + 1) * per_burst).min(tasks);
        while next < last {
            let kind = Kind::draw(&mut rng);
            let id = format!("chaos-{next}");
            if kind == Kind::Group && next + 1 < last {
                let mate = format!("chaos-{}", next + 1);
                let exec = format!("group-{next}");
                let group = [
                    task_of(&id, kind, &mut rng, &payload),
                    task_of(&mate, kind, &mut rng, &payload),
                ];
                master.run_task_group(&fw, &executor(&exec, &fw, None), &group);
                for t in [&id, &mate] {
                    sent.insert(
                        t.clone(),
                        Sent {
                            kind,
                            executor: exec.clone(),
                        },
                    );
                    order.push(t.clone());
                }
                next += 2;
            } else {
                let kind = if kind == Kind::Group {
                    Kind::Short
                } else {
                    kind
                };
                master.run_task(&fw, &task_of(&id, kind, &mut rng, &payload));
                sent.insert(
                    id.clone(),
                    Sent {
                        kind,
                        executor: id.clone(),
                    },
                );
                order.push(id);
                next += 1;
            }
            if rng.below(4) == 0 {
                ledger.drain(&master, Duration::ZERO);
            }
        }
        if round == kills {
            break;
        }
        // Kill at a random moment: mid-burst, during the executors'
        // launches, pulls and fetches, or while updates and acks are in
        // flight.
        // Or the agent dies by itself at the crash point it was armed
        // with (`BUTTE_CRASH_AT`) at its start.
        ledger.drain(&master, rng.millis(0, 1500));
        if agent.wait_exit(Duration::ZERO).is_none() {
            agent.kill();
            *injected.entry("agent SIGKILL".into()).or_default() += 1;
        }
        kill_times.push(Instant::now());
        // What the dead agent sent to (re-)register and was not answered
        // is stale: the next agent listens at the same address, and an
        // answer to a stale message (listing the tasks of the time) would
        // reach it as if to its own.
        master.discard_registrations();
        std::thread::sleep(rng.millis(0, 200));
        let restart = Instant::now();
        // Not the agent that sees the run to its end.
        if round + 1 < kills && rng.below(2) == 0 {
            let (point, _) = CRASH_POINTS[rng.below(CRASH_POINTS.len() as u64) as usize];
            let at = format!("{point}:{}", 1 + rng.below(8));
            agent.restart_with_env(&[("BUTTE_CRASH_AT", &at)]);
        } else {
            agent.restart();
        }
        // An armed agent may die before it re-registers (a crash point in
        // its recovery): it is started again, unarmed.
        // An agent killed before it took in its first registration knows
        // no id: it registers anew, as a new agent (what it was sent under
        // the old id never reached it: the master drops it).
        let rereg = loop {
            if let Some(m) = master.try_reregister(Duration::from_millis(100)) {
                break Some(m);
            }
            if master.try_register(Duration::from_millis(100)).is_some() {
                *injected.entry("registered anew".into()).or_default() += 1;
                break None;
            }
            if agent.wait_exit(Duration::ZERO).is_some() {
                kill_times.push(Instant::now());
                master.discard_registrations();
                agent.restart();
            }
            assert!(
                restart.elapsed() < Duration::from_secs(60),
                "no re-registration: {}",
                master.summary()
            );
        };
        recovery.push(restart.elapsed());
        let reported: BTreeSet<&str> = rereg
            .iter()
            .flat_map(|m| m.tasks.iter())
            .map(|t| t.task_id.value.as_str())
            .collect();
        // As a Mesos master: a task it launched that the agent does not
        // report and that never got an update is dropped.
        for id in &order {
            if !reported.contains(id.as_str()) && !ledger.updates.contains_key(id) {
                dropped.insert(id.clone());
            }
        }
        master.send(
            &master.agent_pid(),
            "master",
            &CheckpointResourcesMessage {
                resources: Vec::new(),
            },
        );
        let live: Vec<String> = reported
            .iter()
            .filter(|t| !ledger.has_terminal(t) && !disturbed.contains_key(**t))
            .map(|t| t.to_string())
            .collect();
        if live.is_empty() {
            continue;
        }
        // The framework kills a live task now and then; the test SIGKILLs
        // an executor or a task's command.
        let victim = live[rng.below(live.len() as u64) as usize].clone();
        let what = match rng.below(6) {
            0..=1 => {
                master.kill_task(&fw, &victim, None);
                Some(Disturbance::Framework)
            }
            2 => sigkill_one(&fx, &agent, &master, &fw, &sent[&victim], true),
            3 => sigkill_one(&fx, &agent, &master, &fw, &sent[&victim], false),
            _ => None,
        };
        if let Some(what) = what {
            *injected.entry(what.label().into()).or_default() += 1;
            // A task group lives and dies as one.
            let exec = sent[&victim].executor.clone();
            for (id, s) in &sent {
                if s.executor == exec {
                    disturbed.entry(id.clone()).or_insert(what);
                }
            }
        }
    }
    // The long tasks end by the framework's kill.
    ledger.drain(&master, Duration::from_millis(500));
    for (id, s) in &sent {
        if s.kind == Kind::Long && !dropped.contains(id) && !ledger.has_terminal(id) {
            master.kill_task(&fw, id, None);
            disturbed
                .entry(id.clone())
                .or_insert(Disturbance::Framework);
        }
    }

    // Everything the agent knows must end.
    let deadline = Instant::now() + Duration::from_secs(90);
    while order
        .iter()
        .any(|t| !dropped.contains(t) && !ledger.has_terminal(t))
        && Instant::now() < deadline
    {
        ledger.drain(&master, Duration::from_millis(200));
        agent.assert_running();
    }
    // Late resends, if any, show up here.
    ledger.drain(&master, Duration::from_secs(3));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !processes_in_cgroup(&fx.parent).is_empty() && Instant::now() < deadline {
        ledger.drain(&master, Duration::from_millis(200));
    }
    let leaked = processes_in_cgroup(&fx.parent);

    let mut problems: Vec<String> = Vec::new();
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    let mut resent_across_kill = 0usize;
    // The messages of the terminal updates other than TASK_FINISHED.
    let mut messages: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for id in &order {
        let s = &sent[id];
        let terminals = ledger.terminals(id);
        if dropped.contains(id) {
            *outcomes.entry("dropped by the master".into()).or_default() += 1;
            if let Some((_, u)) = ledger.updates.get(id).and_then(|l| l.first()) {
                problems.push(format!(
                    "{id}: not reported at re-registration, yet updated: {}",
                    describe(u)
                ));
            }
            continue;
        }
        let ran = ran_to_end(&agent, &master, &fw, id, s);
        match terminals.as_slice() {
            [] => problems.push(format!("{id}: no terminal update")),
            [u] => {
                let state = task_and_state(u).1;
                let reason = u
                    .status
                    .reason
                    .and_then(|r| butte::proto::mesos::task_status::Reason::try_from(r).ok())
                    .map_or("no reason", |r| r.as_str_name());
                let cause = disturbed
                    .get(id)
                    .map_or(String::new(), |d| format!(", {}", d.label()));
                *outcomes
                    .entry(format!(
                        "{:?}: {} {reason} (ran to end: {ran}{cause})",
                        s.kind,
                        state.as_str_name()
                    ))
                    .or_default() += 1;
                if state != TaskState::TaskFinished {
                    let said = messages
                        .entry(format!("{} {reason}", state.as_str_name()))
                        .or_default();
                    if said.len() < 4 {
                        let text = u.status.message.clone().unwrap_or_default();
                        said.insert(text.chars().take(160).collect());
                    }
                }
                // A task disturbed from outside may also have been killed
                // after its last word.
                let true_state = if ran {
                    state == TaskState::TaskFinished || disturbed.contains_key(id)
                } else {
                    state != TaskState::TaskFinished
                };
                if !true_state {
                    problems.push(format!("{id}: ran to end: {ran}, but {}", describe(u)));
                }
            }
            many => problems.push(format!(
                "{id}: {} terminal updates: {:?}",
                many.len(),
                many.iter().map(|u| describe(u)).collect::<Vec<_>>()
            )),
        }
        for (at, u) in ledger.updates.get(id).into_iter().flatten() {
            let uuid = u.uuid.as_ref().expect("uuid");
            let Some(acked) = ledger.acked.get(uuid) else {
                continue;
            };
            if *at <= *acked + GRACE {
                continue;
            }
            // An ack the agent may not have logged before a kill between
            // it and the resend (under load, the restarted agent can take
            // longer than GRACE to get to it) is counted, not failed.
            if kill_times.iter().any(|k| *k >= *acked && *k <= *at) {
                resent_across_kill += 1;
            } else {
                problems.push(format!(
                    "{id}: {} sent again {:?} after its acknowledgement",
                    describe(u),
                    *at - *acked
                ));
            }
        }
    }
    if !leaked.is_empty() {
        let described: Vec<String> = leaked
            .iter()
            .map(|p| {
                let cmdline = fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
                let cgroup = fs::read_to_string(format!("/proc/{p}/cgroup")).unwrap_or_default();
                format!(
                    "{p} {:?} in {:?}",
                    String::from_utf8_lossy(&cmdline).replace('\0', " "),
                    cgroup
                        .lines()
                        .find(|l| l.contains(&fx.parent))
                        .unwrap_or("")
                )
            })
            .collect();
        problems.push(format!(
            "processes left in the test's cgroups: {described:?}"
        ));
    }
    // The agent's own view: every run it recorded is over and marked so.
    problems.extend(open_runs(&agent));
    let log = agent.log();
    let count = |needle: &str| log.lines().filter(|l| l.contains(needle)).count();
    for (point, _) in CRASH_POINTS {
        let n = count(&format!("BUTTE_CRASH_AT: crashing at {point}"));
        if n > 0 {
            *injected.entry(format!("crash at {point}")).or_default() += n;
        }
    }
    let unknown = count("unknown message");
    if unknown > 0 {
        problems.push(format!("{unknown} messages dropped as unknown"));
    }
    let figures = serde_json::json!({
        "tasks": tasks,
        "kills": kills,
        "injected": injected,
        "seed": seed.to_string(),
        "outcomes": outcomes,
        "messages": messages,
        "problems": problems.len(),
        "leaked_processes": leaked.len(),
        "resent_after_ack_across_a_kill": resent_across_kill,
        "restart_to_reregistered_ms": recovery.iter().map(|d| d.as_millis() as u64).collect::<Vec<_>>(),
        "log_checkpoint_missing": count("checkpoint missing"),
        "log_did_not_survive": count("did not survive"),
        "seconds": started.elapsed().as_secs_f64(),
    });
    println!("CHAOS {figures}");
    for id in &order {
        for u in ledger.terminals(id) {
            if task_and_state(u).1 != TaskState::TaskFinished {
                eprintln!("chaos: {}", describe(u));
            }
        }
    }
    // CHAOS_KEEP_LOG=1 keeps the log of a run without problems too, with
    // the executors' stderr of every task that did not finish.
    let keep_all = std::env::var_os("CHAOS_KEEP_LOG").is_some();
    if !problems.is_empty() || keep_all {
        // The agent's log, then the executors' stderr of the tasks with a
        // problem (their sandboxes go with the test's work dir).
        let mut kept = log.clone();
        for id in order.iter().filter(|id| {
            problems.iter().any(|p| p.starts_with(&format!("{id}:")))
                || (keep_all
                    && ledger
                        .terminals(id)
                        .iter()
                        .any(|u| task_and_state(u).1 != TaskState::TaskFinished))
        }) {
            let sandbox = agent.sandbox(&master.slave_id(), &fw, &sent[id].executor);
            let text = fs::read_to_string(sandbox.join("stderr")).unwrap_or_default();
            kept.push_str(&format!("\n=== executor stderr of {id} ===\n{text}"));
            let files = std::process::Command::new("find")
                .arg("-L")
                .arg(&sandbox)
                .arg("-maxdepth")
                .arg("3")
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            kept.push_str(&format!("=== its sandbox ===\n{files}"));
        }
        let keep = std::env::temp_dir().join(format!("butte-chaos-{seed}.log"));
        let _ = fs::write(&keep, &kept);
        eprintln!("chaos: the agent's log is kept in {}", keep.display());
    }
    assert!(
        problems.is_empty(),
        "CHAOS_SEED={seed}: {} problems:\n{}\n{}",
        problems.len(),
        problems.join("\n"),
        agent.log_tail(80)
    );
    master::finish(fx, master, agent);
}

/// The runs in the agent's `meta/` not marked completed (once every task
/// ended and was acknowledged, and nothing runs, there must be none).
fn open_runs(agent: &AgentProcess) -> Vec<String> {
    let work = butte::state::paths::WorkDir::new(&agent.work_dir);
    let state = match butte::state::meta::recover(&work) {
        Ok(Some(state)) => state,
        Ok(None) => return Vec::new(),
        Err(e) => return vec![format!("meta/ does not read back: {e}")],
    };
    let mut open = Vec::new();
    for fw in &state.frameworks {
        for ex in &fw.executors {
            for run in ex.runs.iter().filter(|r| !r.completed) {
                open.push(format!(
                    "meta/: executor {} run {} is not marked completed, yet nothing runs",
                    ex.id, run.container_id
                ));
            }
        }
    }
    open
}

/// The driver of `bench/chaos.sh recovery` (issue 18's speed target):
/// CHAOS_LIVE (200) `sleep 600` command tasks run; then CHAOS_RECOVERIES
/// (5) times the agent is SIGKILLed and restarted, timing the restart to
/// the re-registration and to the re-subscription of every executor (the
/// agent's `executor subscribed` log lines). Prints `RECOVERY {json}`.
#[test]
#[ignore]
fn bench_recovery() {
    assert!(
        enabled(),
        "bench_recovery needs BUTTE_RUNTIME_TESTS=1 and root"
    );
    let live = env("CHAOS_LIVE", 200) as usize;
    let runs = env("CHAOS_RECOVERIES", 5) as usize;
    let fx = Fixture::new();
    let master = FakeMaster::start(0);
    let mut agent = AgentProcess::start(&fx, &master, &[]);
    master.register();
    let fw = framework("recovery");
    let mut ledger = Ledger::default();
    for i in 0..live {
        let id = format!("live-{i}");
        let mut task = chaos_task(&id, &mut Rng(1));
        task.command = Some(shell("sleep 600"));
        master.run_task(&fw, &task);
        if i % 10 == 9 {
            ledger.drain(&master, Duration::ZERO);
        }
    }
    let running = |l: &Ledger| {
        l.updates
            .values()
            .filter(|us| {
                us.iter()
                    .any(|(_, u)| task_and_state(u).1 == TaskState::TaskRunning)
            })
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(300);
    while running(&ledger) < live {
        assert!(
            Instant::now() < deadline,
            "only {} of {live} tasks running",
            running(&ledger)
        );
        ledger.drain(&master, Duration::from_millis(200));
    }
    let mut reregistered = Vec::new();
    let mut resubscribed = Vec::new();
    for _ in 0..runs {
        ledger.drain(&master, Duration::from_millis(500));
        let before = agent.log().len();
        agent.kill();
        let start = Instant::now();
        agent.restart();
        master.reregister();
        reregistered.push(start.elapsed().as_secs_f64() * 1000.0);
        loop {
            let log = agent.log();
            let n = log[before.min(log.len())..]
                .matches("executor subscribed")
                .count();
            if n >= live {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "{n} of {live} executors re-subscribed"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        resubscribed.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let figures = serde_json::json!({
        "live_executors": live,
        "recoveries": runs,
        "restart_to_reregistered_ms": reregistered.clone(),
        "restart_to_all_resubscribed_ms": resubscribed.clone(),
        "median_reregistered_ms": median(&mut reregistered),
        "median_all_resubscribed_ms": median(&mut resubscribed),
    });
    println!("RECOVERY {figures}");
    if std::env::var_os("CHAOS_KEEP_LOG").is_some() {
        let keep = std::env::temp_dir().join("butte-recovery.log");
        let _ = fs::write(&keep, agent.log());
        eprintln!("chaos: the agent's log is kept in {}", keep.display());
    }
    master::finish(fx, master, agent);
}
