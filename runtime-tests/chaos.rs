//! Issue 18: a burst of launches while the agent is killed with SIGKILL and
//! restarted again and again. A checkpointing framework launches
//! `CHAOS_TASKS` (30) short command tasks in `CHAOS_KILLS + 1` (4 + 1)
//! bursts; between bursts the agent is SIGKILLed at a random moment
//! (`CHAOS_SEED` fixes the moments) and restarted, and the master answers
//! its re-registration, followed by the `CheckpointResourcesMessage` a
//! Mesos master sends then; now and then the framework kills one of the
//! tasks the agent reported. Every update is acknowledged as it arrives.
//! At the end, the invariants the master and the host can check:
//! - every task the agent knew has exactly one terminal update, and it is
//!   the true one: a task whose command ran to its end (it prints a marker
//!   to its sandbox's stdout) is TASK_FINISHED, any other is not (a task
//!   the framework killed may be TASK_KILLED though it ran);
//! - a task the agent did not report at a re-registration (its RunTask was
//!   still unread at the kill: the master drops it) never gets an update;
//! - no acknowledged update is sent again, unless the agent was killed
//!   between the ack and the resend (it may not have logged the ack: such
//!   resends are counted in the figures);
//! - once every task ended, no process is left in the test's cgroups, and
//!   `master::finish` finds no cgroup, process or mount;
//! - the agent never drops a message of the master as unknown.
//!
//! `bench/chaos.sh` runs the same test with larger numbers.

use crate::support::master::{
    self, describe, framework, resources, shell, task_and_state, AgentProcess, FakeMaster,
};
use crate::support::{enabled, processes_in_cgroup, Fixture};
use butte::proto::mesos::internal::{CheckpointResourcesMessage, StatusUpdate};
use butte::proto::mesos::{FrameworkInfo, TaskId, TaskInfo, TaskState};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::time::{Duration, Instant};

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

/// `sleep S; echo MARKER`: 1 to 3 s, cpus 0.01, mem 4 MB.
fn chaos_task(id: &str, rng: &mut Rng) -> TaskInfo {
    let secs = 1 + rng.below(3);
    TaskInfo {
        name: id.into(),
        task_id: TaskId { value: id.into() },
        resources: resources(0.01, 4.0),
        command: Some(shell(&format!("sleep {secs}; echo {MARKER}"))),
        ..Default::default()
    }
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

fn is_terminal(s: TaskState) -> bool {
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

/// Whether the task's command ran to its end, from its sandbox's stdout.
fn ran_to_end(agent: &AgentProcess, master: &FakeMaster, fw: &FrameworkInfo, task: &str) -> bool {
    let stdout = agent.sandbox(&master.slave_id(), fw, task).join("stdout");
    fs::read_to_string(stdout).is_ok_and(|s| s.contains(MARKER))
}

/// Issue 18: SIGKILL of the agent during launch bursts, K times.
#[test]
fn tasks_survive_repeated_agent_sigkill_during_launch_bursts() {
    if !enabled() {
        return;
    }
    let tasks = env("CHAOS_TASKS", 30) as usize;
    let kills = env("CHAOS_KILLS", 4) as usize;
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
    let master = FakeMaster::start(0);
    let mut agent = AgentProcess::start(
        &fx,
        &master,
        &["--executor_reregistration_timeout", "5secs"],
    );
    master.register();
    let fw = framework("chaos");
    let mut ledger = Ledger::default();
    let mut sent: Vec<String> = Vec::new();
    let mut dropped: BTreeSet<String> = BTreeSet::new();
    let mut killed: BTreeSet<String> = BTreeSet::new();
    let mut kill_times: Vec<Instant> = Vec::new();
    let mut recovery = Vec::new();
    let per_burst = tasks.div_ceil(kills + 1);
    for round in 0..=kills {
        let first = round * per_burst;
        for i in first..(first + per_burst).min(tasks) {
            let id = format!("chaos-{i}");
            master.run_task(&fw, &chaos_task(&id, &mut rng));
            sent.push(id);
            if rng.below(4) == 0 {
                ledger.drain(&master, Duration::ZERO);
            }
        }
        if round == kills {
            break;
        }
        // Kill at a random moment: mid-burst, during the executors'
        // launches, or while updates and acks are in flight.
        ledger.drain(&master, rng.millis(0, 1500));
        agent.kill();
        kill_times.push(Instant::now());
        std::thread::sleep(rng.millis(0, 200));
        let restart = Instant::now();
        agent.restart();
        let rereg = master.reregister();
        recovery.push(restart.elapsed());
        let reported: BTreeSet<&str> = rereg
            .tasks
            .iter()
            .map(|t| t.task_id.value.as_str())
            .collect();
        // As a Mesos master: a task it launched that the agent does not
        // report and that never got an update is dropped.
        for id in &sent {
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
        // The framework kills a live task now and then.
        let live: Vec<&str> = reported
            .iter()
            .copied()
            .filter(|t| !ledger.has_terminal(t) && !killed.contains(*t))
            .collect();
        if !live.is_empty() && rng.below(2) == 0 {
            let victim = live[rng.below(live.len() as u64) as usize].to_string();
            master.kill_task(&fw, &victim, None);
            killed.insert(victim);
        }
    }

    // Everything the agent knows must end.
    let deadline = Instant::now() + Duration::from_secs(60);
    while sent
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
    for id in &sent {
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
        let ran = ran_to_end(&agent, &master, &fw, id);
        match terminals.as_slice() {
            [] => problems.push(format!("{id}: no terminal update")),
            [u] => {
                let state = task_and_state(u).1;
                *outcomes
                    .entry(format!("{} (ran to end: {ran})", state.as_str_name()))
                    .or_default() += 1;
                // A task the framework killed may also have been killed
                // after its last word (then it is TASK_KILLED though it
                // ran to its end).
                let true_state = ran == (state == TaskState::TaskFinished)
                    || (killed.contains(id) && state == TaskState::TaskKilled);
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
        problems.push(format!("processes left in the test's cgroups: {leaked:?}"));
    }
    let log = agent.log();
    let count = |needle: &str| log.lines().filter(|l| l.contains(needle)).count();
    let unknown = count("unknown message");
    if unknown > 0 {
        problems.push(format!("{unknown} messages dropped as unknown"));
    }
    let figures = serde_json::json!({
        "tasks": tasks,
        "kills": kills,
        "framework_kills": killed.len(),
        "seed": seed.to_string(),
        "outcomes": outcomes,
        "problems": problems.len(),
        "leaked_processes": leaked.len(),
        "resent_after_ack_across_a_kill": resent_across_kill,
        "restart_to_reregistered_ms": recovery.iter().map(|d| d.as_millis() as u64).collect::<Vec<_>>(),
        "log_checkpoint_missing": count("checkpoint missing"),
        "log_did_not_survive": count("did not survive"),
        "seconds": started.elapsed().as_secs_f64(),
    });
    println!("CHAOS {figures}");
    for id in &sent {
        for u in ledger.terminals(id) {
            if task_and_state(u).1 != TaskState::TaskFinished {
                eprintln!("chaos: {}", describe(u));
            }
        }
    }
    if !problems.is_empty() {
        // The agent's log, then the executors' stderr of the tasks with a
        // problem (their sandboxes go with the test's work dir).
        let mut kept = log.clone();
        for id in sent
            .iter()
            .filter(|id| problems.iter().any(|p| p.starts_with(&format!("{id}:"))))
        {
            let stderr = agent.sandbox(&master.slave_id(), &fw, id).join("stderr");
            let text = fs::read_to_string(&stderr).unwrap_or_default();
            kept.push_str(&format!("\n=== executor stderr of {id} ===\n{text}"));
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
    master::finish(fx, master, agent);
}
