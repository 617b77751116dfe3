//! Issue 15 item 5, end to end against the scripted master: draining
//! (`DrainSlaveMessage`) and `--reconfiguration_policy`.
//! - two long tasks, one that stops on SIGTERM after a while and one that
//!   ignores it (and asks for a longer grace period than the drain
//!   allows): both are reported killed, with the draining reason, within
//!   `max_grace_period` (the stubborn one by SIGKILL at its end); a task
//!   launched meanwhile is refused; the drain survives an agent restart;
//!   once the terminal updates are acknowledged the agent is drained
//!   (checkpoint gone, `/state` without `drain_config`) and takes tasks
//!   again;
//! - `mark_gone`: the killed task is reported TASK_GONE_BY_OPERATOR;
//! - an agent restarted with another configuration: refused under
//!   `equal`, taken under `additive` (same id, the task still running),
//!   and the new configuration is the one kept.

use crate::support::master::{
    self, command_task, describe, framework, kill_policy, status, task_and_state, AgentProcess,
    FakeMaster, WAIT,
};
use crate::support::{enabled, Fixture};
use butte::proto::mesos::framework_info::{capability, Capability};
use butte::proto::mesos::internal::{DrainSlaveMessage, RegisterSlaveMessage, StatusUpdate};
use butte::proto::mesos::slave_info::capability::Type as AgentCapability;
use butte::proto::mesos::{task_status, DrainConfig, DurationInfo, FrameworkInfo, TaskState};
use prost::{Message, Name};
use serde_json::Value;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn start(extra: &[&str]) -> (Fixture, FakeMaster, AgentProcess) {
    let fx = Fixture::new();
    let master = FakeMaster::start(0);
    let agent = AgentProcess::start(&fx, &master, extra);
    master.register();
    (fx, master, agent)
}

/// A checkpointing framework that understands TASK_DROPPED and
/// TASK_KILLING.
fn drained_framework(name: &str) -> FrameworkInfo {
    let mut fw = framework(name);
    for t in [
        capability::Type::PartitionAware,
        capability::Type::TaskKillingState,
    ] {
        fw.capabilities.push(Capability {
            r#type: Some(t as i32),
        });
    }
    fw
}

fn drain(master: &FakeMaster, grace: Option<Duration>, mark_gone: bool) {
    let msg = DrainSlaveMessage {
        config: DrainConfig {
            max_grace_period: grace.map(|g| DurationInfo {
                nanoseconds: g.as_nanos() as i64,
            }),
            mark_gone: Some(mark_gone),
        },
    };
    master.send(&master.agent_pid(), "master", &msg);
}

/// The agent's `/state`.
fn state(agent: &AgentProcess) -> Value {
    let url = format!("http://{}/state", agent.endpoint());
    let body = ureq::get(&url)
        .timeout(Duration::from_secs(10))
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}; {}", agent.log_tail(40)))
        .into_string()
        .unwrap();
    serde_json::from_str(&body).unwrap()
}

/// `meta/slaves/<id>/drain.config`.
fn drain_checkpoint(agent: &AgentProcess, master: &FakeMaster) -> PathBuf {
    agent
        .work_dir
        .join("meta/slaves")
        .join(&master.slave_id().value)
        .join("drain.config")
}

/// Takes the next update of TASK, acknowledging it when ACK.
fn next_of(master: &FakeMaster, task: &str, ack: bool) -> StatusUpdate {
    let u = master.expect_update(&format!("of {task}"), WAIT, |u| task_and_state(u).0 == task);
    if ack {
        master.ack(&u);
    }
    u
}

/// Waits up to WAIT for COND, panicking with WHAT and the agent's log.
fn wait_for(agent: &AgentProcess, what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "{what}; {}", agent.log_tail(60));
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The done-when of issue 15 item 5: a drain with two long tasks.
#[test]
fn a_drain_kills_both_long_tasks_within_the_grace_period_and_ends_drained() {
    if !enabled() {
        return;
    }
    let (fx, master, mut agent) = start(&[]);
    // The master only drains agents that say they can.
    let registration = master
        .history()
        .into_iter()
        .find(|r| r.name == RegisterSlaveMessage::full_name())
        .map(|r| RegisterSlaveMessage::decode(&r.body[..]).unwrap())
        .unwrap();
    assert!(
        registration
            .agent_capabilities
            .iter()
            .any(|c| c.r#type() == AgentCapability::AgentDraining),
        "{:?}",
        registration.agent_capabilities
    );

    let fw = drained_framework("drain");
    let graceful = command_task(
        "graceful",
        "trap 'sleep 1; exit 0' TERM; while :; do sleep 0.1; done",
    );
    let mut stubborn = command_task("stubborn", "trap '' TERM; while :; do sleep 0.1; done");
    // Longer than the drain allows: capped.
    stubborn.kill_policy = Some(kill_policy(Duration::from_secs(60)));
    for t in [&graceful, &stubborn] {
        master.run_task(&fw, t);
    }
    master.ack_until("graceful", TaskState::TaskRunning);
    master.ack_until("stubborn", TaskState::TaskRunning);
    assert!(state(&agent).get("drain_config").is_none());

    let grace = Duration::from_secs(3);
    let drained_at = Instant::now();
    drain(&master, Some(grace), false);

    // Each is reported TASK_KILLING, then TASK_KILLED, with the draining
    // reason. The terminal updates are left unacknowledged for now.
    let mut killed_after = Vec::new();
    for task in ["graceful", "stubborn"] {
        let killing = next_of(&master, task, true);
        assert_eq!(
            task_and_state(&killing).1,
            TaskState::TaskKilling,
            "{}",
            describe(&killing)
        );
        assert_eq!(
            status(&killing).reason(),
            task_status::Reason::SlaveDraining
        );
        let killed = next_of(&master, task, false);
        killed_after.push(drained_at.elapsed());
        assert_eq!(
            task_and_state(&killed).1,
            TaskState::TaskKilled,
            "{}",
            describe(&killed)
        );
        assert_eq!(
            status(&killed).reason(),
            task_status::Reason::SlaveDraining,
            "{}",
            describe(&killed)
        );
    }
    assert!(
        killed_after[0] < grace,
        "the task that stops on SIGTERM took {:?}",
        killed_after[0]
    );
    assert!(
        killed_after[1] >= grace && killed_after[1] < grace + Duration::from_secs(5),
        "the task that ignores SIGTERM was killed after {:?} with a {grace:?} cap on its 60 s",
        killed_after[1]
    );

    // Draining: new tasks are refused, and /state says so.
    master.run_task(&fw, &command_task("late", "sleep 600"));
    let late = next_of(&master, "late", true);
    assert_eq!(
        task_and_state(&late).1,
        TaskState::TaskDropped,
        "{}",
        describe(&late)
    );
    assert_eq!(status(&late).reason(), task_status::Reason::SlaveDraining);
    let s = state(&agent);
    assert_eq!(
        s["drain_config"],
        serde_json::json!({"max_grace_period": {"nanoseconds": 3_000_000_000i64}, "mark_gone": false})
    );
    let started = s["estimated_drain_start_time_seconds"].as_i64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now - 60..=now).contains(&started), "{started} vs {now}");
    let checkpoint = drain_checkpoint(&agent, &master);
    assert!(checkpoint.exists(), "no {}", checkpoint.display());

    // A restart mid-drain: the drain is recovered. (The master sends the
    // drain again after the re-registration, as Mesos' does.)
    agent.terminate();
    agent.restart();
    master.reregister();
    drain(&master, Some(grace), false);
    assert_eq!(
        state(&agent)["drain_config"]["max_grace_period"]["nanoseconds"],
        3_000_000_000i64
    );

    // The terminal updates come again; once acknowledged, nothing is left
    // and the agent is drained.
    for task in ["graceful", "stubborn"] {
        let u = master.ack_until(task, TaskState::TaskKilled);
        assert_eq!(status(&u).reason(), task_status::Reason::SlaveDraining);
    }
    wait_for(&agent, "the drain checkpoint is still there", || {
        !checkpoint.exists()
    });
    let s = state(&agent);
    assert!(s.get("drain_config").is_none(), "{}", s["drain_config"]);
    assert!(s.get("estimated_drain_start_time_seconds").is_none());

    // Drained, it takes tasks again.
    master.run_task(&fw, &command_task("after", "sleep 600"));
    master.ack_until("after", TaskState::TaskRunning);
    master.kill_task(&fw, "after", None);
    let killed = master.ack_until("after", TaskState::TaskKilled);
    assert_ne!(status(&killed).reason(), task_status::Reason::SlaveDraining);
    master::finish(fx, master, agent);
}

/// `mark_gone`: the agent is being decommissioned, its tasks are gone.
#[test]
fn a_drain_that_marks_the_agent_gone_reports_tasks_gone_by_operator() {
    if !enabled() {
        return;
    }
    let (fx, master, agent) = start(&[]);
    let fw = drained_framework("gone");
    master.run_task(&fw, &command_task("doomed", "sleep 600"));
    master.ack_until("doomed", TaskState::TaskRunning);
    drain(&master, None, true);
    let u = master.ack_until("doomed", TaskState::TaskGoneByOperator);
    assert_eq!(status(&u).reason(), task_status::Reason::SlaveDraining);
    wait_for(&agent, "the drain did not end", || {
        state(&agent).get("drain_config").is_none()
    });
    // A drain of an agent with nothing on it is complete at once.
    drain(&master, Some(Duration::ZERO), false);
    master.settle(Duration::from_millis(500));
    assert!(state(&agent).get("drain_config").is_none());
    assert!(!drain_checkpoint(&agent, &master).exists());
    master::finish(fx, master, agent);
}

/// `--reconfiguration_policy`: a restart with an attribute added is
/// refused under `equal`, with the remedy in the error; under `additive`
/// the agent keeps its id and its running task, and checkpoints the new
/// configuration.
#[test]
fn a_changed_configuration_is_refused_under_equal_and_taken_under_additive() {
    if !enabled() {
        return;
    }
    let (fx, master, mut agent) = start(&[]);
    let id = master.slave_id();
    let fw = framework("reconfigure");
    master.run_task(&fw, &command_task("steady", "sleep 600"));
    master.ack_until("steady", TaskState::TaskRunning);
    agent.terminate();

    agent.restart_with(&["--attributes", "rack:r1"]);
    let exit = agent
        .wait_exit(WAIT)
        .unwrap_or_else(|| panic!("still running; {}", agent.log_tail(40)));
    assert!(!exit.success());
    let log = agent.log();
    assert!(
        log.contains("incompatible agent info") && log.contains("--reconfiguration_policy"),
        "{}",
        agent.log_tail(20)
    );

    agent.restart_with(&[
        "--attributes",
        "rack:r1",
        "--reconfiguration_policy",
        "additive",
    ]);
    let rereg = master.reregister();
    assert_eq!(rereg.slave.id.as_ref(), Some(&id));
    assert!(
        rereg.slave.attributes.iter().any(|a| a.name == "rack"),
        "{:?}",
        rereg.slave.attributes
    );
    assert!(
        rereg.tasks.iter().any(|t| t.task_id.value == "steady"),
        "the running task was not recovered"
    );
    // The new configuration is now the agent's: `equal` takes it.
    master.settle(Duration::from_millis(500));
    agent.terminate();
    agent.restart_with(&["--attributes", "rack:r1"]);
    let rereg = master.reregister();
    assert_eq!(rereg.slave.id.as_ref(), Some(&id));
    master.kill_task(&fw, "steady", None);
    master.ack_until("steady", TaskState::TaskKilled);
    master::finish(fx, master, agent);
}
