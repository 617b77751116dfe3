//! `--master=zk://...` against a real ZooKeeper (Debian's package, a
//! standalone server on loopback per test) and scripted masters that join
//! its group as Mesos masters do (issue 15): the agent registers with the
//! leader, follows a failover to another master on another port with its
//! tasks and held updates, recovers from an expired session, reads a group
//! guarded by digest ACLs with `user:pass@`, and waits out a ZooKeeper
//! that is down at start. Also `bench_failover` (bench/failover.sh).

use crate::support::master::{
    self, command_task, framework, task_and_state, AgentProcess, FakeMaster, WAIT,
};
use crate::support::zookeeper::{Contender, ZkServer};
use crate::support::{enabled, Fixture};
use butte::proto::mesos::internal::{PingSlaveMessage, PongSlaveMessage};
use butte::proto::mesos::TaskState;
use prost::Name as _;
use std::collections::HashMap;
use std::time::{Duration, Instant};

const PATH: &str = "/mesos";

/// Waits until the agent's log contains NEEDLE.
fn wait_for_log(agent: &AgentProcess, needle: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if agent.log().contains(needle) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "{needle:?} not in the agent's log within {timeout:?}:\n{}",
        agent.log_tail(40)
    );
}

/// Issue 15: two masters in ZooKeeper, the agent registers with the
/// leader (the lowest sequence); the leader goes (its node deleted, its
/// process stopped); the agent re-registers with the other master, on
/// another port, listing its live task and framework, and delivers there
/// the updates the first master never acknowledged, in order. A ping from
/// a process that is not the leader gets no pong.
#[test]
fn agent_follows_the_zookeeper_leader_to_another_master_with_its_tasks() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let zk = ZkServer::start(fx.work.path());
    let a = FakeMaster::start(0);
    let b = FakeMaster::start(0);
    assert_ne!(a.port(), b.port());
    let mut a_member = Contender::join(&zk.hostport(), PATH, a.addr(), None);
    let _b_member = Contender::join(&zk.hostport(), PATH, b.addr(), None);
    let agent = AgentProcess::start_with_master(&fx, &zk.url(None, PATH), &[]);
    a.register();
    a.ping(true);

    let fw = framework("zk-failover");
    let long = command_task("long", "sleep 60");
    a.run_task(&fw, &long);
    a.expect_ack("long", TaskState::TaskStarting);
    a.expect_ack("long", TaskState::TaskRunning);
    // Its updates are never acknowledged by the first master.
    a.run_task(&fw, &command_task("short", "sleep 2; exit 0"));
    a.expect_status("short", TaskState::TaskStarting, WAIT);

    a_member.withdraw();
    a.stop();
    let rereg = b.reregister();
    let tasks: HashMap<String, i32> = rereg
        .tasks
        .iter()
        .map(|t| (t.task_id.value.clone(), t.state))
        .collect();
    assert_eq!(
        tasks.get("long"),
        Some(&(TaskState::TaskRunning as i32)),
        "tasks: {tasks:?}"
    );
    assert!(tasks.contains_key("short"), "tasks: {tasks:?}");
    assert!(
        rereg.frameworks.iter().any(|f| f.id == fw.id),
        "framework missing: {:?}",
        rereg.frameworks
    );
    b.ping(true);
    for state in [
        TaskState::TaskStarting,
        TaskState::TaskRunning,
        TaskState::TaskFinished,
    ] {
        b.expect_ack("short", state);
    }

    // Pings from anyone but the leader are not answered.
    let stranger = FakeMaster::start(0);
    stranger.send(
        &b.agent_pid(),
        "slave-observer(1)",
        &PingSlaveMessage { connected: true },
    );
    let pong = PongSlaveMessage::full_name();
    assert!(
        stranger
            .take(Duration::from_secs(2), |r| r.name == pong)
            .is_none(),
        "the agent answered a ping from a master that does not lead"
    );
    assert!(agent.log().contains("not the current master"));

    b.kill_task(&fw, "long", None);
    b.expect_ack("long", TaskState::TaskKilled);
    let short: Vec<TaskState> = b
        .statuses()
        .iter()
        .filter(|u| task_and_state(u).0 == "short")
        .map(|u| task_and_state(u).1)
        .collect();
    assert_eq!(
        short.first(),
        Some(&TaskState::TaskStarting),
        "held updates out of order: {short:?}"
    );
    a.assert_clean();
    master::finish(fx, b, agent);
    drop(zk);
}

/// Issue 15: ZooKeeper restarts with none of its sessions (every client's
/// session expires); the agent makes a new session, sees no leader, then
/// follows the master that joins the new group.
#[test]
fn zookeeper_session_expiry_is_recovered_and_the_new_leader_followed() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let mut zk = ZkServer::start(fx.work.path());
    let a = FakeMaster::start(0);
    let b = FakeMaster::start(0);
    let a_member = Contender::join(&zk.hostport(), PATH, a.addr(), None);
    let agent = AgentProcess::start_with_master(
        &fx,
        &zk.url(None, PATH),
        &["--zk_session_timeout", "2secs"],
    );
    a.register();
    let fw = framework("zk-expiry");
    a.run_task(&fw, &command_task("long", "sleep 60"));
    a.expect_ack("long", TaskState::TaskStarting);
    a.expect_ack("long", TaskState::TaskRunning);

    zk.restart_fresh();
    drop(a_member);
    a.stop();
    wait_for_log(&agent, "the ZooKeeper session expired", WAIT);
    wait_for_log(&agent, "no leading master is detected", WAIT);

    let _b_member = Contender::join(&zk.hostport(), PATH, b.addr(), None);
    let rereg = b.reregister();
    assert!(
        rereg.tasks.iter().any(|t| t.task_id.value == "long"),
        "{:?}",
        rereg.tasks
    );
    b.ping(true);
    b.kill_task(&fw, "long", None);
    b.expect_ack("long", TaskState::TaskKilled);
    master::finish(fx, b, agent);
    drop(zk);
}

/// Issue 15: a group whose nodes only the digest user `mesos` may read.
/// Without the right `user:pass@` the agent says it is not authorized and
/// registers nowhere; with it, it registers with the leader.
#[test]
fn zk_url_with_digest_credentials_reads_a_guarded_group() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let zk = ZkServer::start(fx.work.path());
    let a = FakeMaster::start(0);
    let _member = Contender::join(&zk.hostport(), PATH, a.addr(), Some("mesos:s3cret"));

    let mut wrong = AgentProcess::start_with_master(&fx, &zk.url(Some("mesos:nope"), PATH), &[]);
    wait_for_log(&wrong, "not authorized", WAIT);
    assert!(a.try_register(Duration::from_secs(1)).is_none());
    assert!(!wrong.log().contains("nope"), "the password is in the log");
    wrong.kill();
    drop(wrong);

    let agent = AgentProcess::start_with_master(&fx, &zk.url(Some("mesos:s3cret"), PATH), &[]);
    a.register();
    a.ping(true);
    assert!(
        !agent.log().contains("s3cret"),
        "the password is in the log"
    );
    master::finish(fx, a, agent);
    drop(zk);
}

/// Issue 15: ZooKeeper is down when the agent starts (its URL given as
/// `--master=file://...`, as `/etc/mesos/zk`): it keeps trying and
/// registers once ZooKeeper and a master are there.
#[test]
fn zookeeper_down_at_start_is_waited_for() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let mut zk = ZkServer::not_started(fx.work.path());
    let zk_file = fx.work.path().join("zk");
    std::fs::write(&zk_file, format!("{}\n", zk.url(None, PATH))).unwrap();
    let agent = AgentProcess::start_with_master(
        &fx,
        &format!("file://{}", zk_file.display()),
        &["--zk_session_timeout", "1secs"],
    );
    wait_for_log(&agent, "cannot make a ZooKeeper session", WAIT);
    zk.spawn();
    let a = FakeMaster::start(0);
    let _member = Contender::join(&zk.hostport(), PATH, a.addr(), None);
    a.register();
    a.ping(true);
    master::finish(fx, a, agent);
    drop(zk);
}

/// bench/failover.sh: 20 failovers between two masters in ZooKeeper; for
/// each, the time from the leader's node being deleted to the agent's
/// re-registration arriving at the new leader. Prints the median.
#[test]
#[ignore]
fn bench_failover() {
    if !enabled() {
        return;
    }
    let rounds: usize = std::env::var("FAILOVERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let fx = Fixture::new();
    let zk = ZkServer::start(fx.work.path());
    let mut masters = [FakeMaster::start(0), FakeMaster::start(0)];
    let mut leader = 0;
    let mut member = Contender::join(&zk.hostport(), PATH, masters[0].addr(), None);
    let mut follower = Contender::join(&zk.hostport(), PATH, masters[1].addr(), None);
    let agent = AgentProcess::start_with_master(&fx, &zk.url(None, PATH), &[]);
    masters[0].register();
    let mut times = Vec::new();
    for _ in 0..rounds {
        let next = 1 - leader;
        let t0 = Instant::now();
        member.withdraw();
        masters[next].reregister();
        times.push(t0.elapsed());
        // The old leader comes back as the follower, on a new port.
        masters[leader].stop();
        masters[leader] = FakeMaster::start(0);
        member = std::mem::replace(
            &mut follower,
            Contender::join(&zk.hostport(), PATH, masters[leader].addr(), None),
        );
        leader = next;
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "failover: leader node deleted -> re-registered at the new leader, {} failovers: \
         median {:.1} ms, min {:.1} ms, max {:.1} ms",
        times.len(),
        ms(times[times.len() / 2]),
        ms(times[0]),
        ms(times[times.len() - 1])
    );
    drop(follower);
    drop(member);
    let [m0, m1] = masters;
    let (live, other) = if leader == 0 { (m0, m1) } else { (m1, m0) };
    drop(other);
    master::finish(fx, live, agent);
    drop(zk);
}
