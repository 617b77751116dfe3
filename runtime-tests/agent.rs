//! `butte agent` against a scripted master (`support::master`): registration,
//! launch and kill, master failover with re-registration, status updates
//! held while the master is away and resent until acknowledged, an agent
//! SIGKILL that loses no update, hostile bytes on the agent's port,
//! tasks that cannot launch, and the executor key (issue 11). Also the fake master's own self-test (no root
//! needed) and the `bench_status` driver of bench/status.sh.

use crate::support::master::{
    self, command_task, describe, executor, framework, status, task_and_state, vm_rss_kib,
    AgentProcess, FakeMaster, WAIT,
};
use crate::support::{enabled, processes_in_cgroup, Fixture};
use butte::proto::mesos::internal::{
    MasterSlaveConnection, PingSlaveMessage, PongSlaveMessage, RegisterSlaveMessage,
    ReregisterSlaveMessage, RunTaskMessage, SlaveRegisteredMessage, SlaveReregisteredMessage,
    StatusUpdate, StatusUpdateAcknowledgementMessage, StatusUpdateMessage,
};
use butte::proto::mesos::{task_status, FrameworkId, SlaveInfo, TaskId, TaskState, TaskStatus};
use prost::{Message as _, Name as _};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

// --- the fake master's self-test --------------------------------------------------

/// The bytes a libprocess peer writes for one message, spelled out here
/// independently of the master's own encoder.
fn libprocess_post(to_id: &str, name: &str, from: &str, body: &[u8]) -> Vec<u8> {
    let mut b = format!(
        "POST /{to_id}/{name} HTTP/1.1\r\nUser-Agent: libprocess/{from}\r\n\
         Libprocess-From: {from}\r\nConnection: Keep-Alive\r\nHost: \r\n"
    )
    .into_bytes();
    if body.is_empty() {
        b.extend_from_slice(b"\r\n");
    } else {
        b.extend_from_slice(
            format!("Transfer-Encoding: chunked\r\n\r\n{:x}\r\n", body.len()).as_bytes(),
        );
        b.extend_from_slice(body);
        b.extend_from_slice(b"\r\n0\r\n\r\n");
    }
    b
}

/// Reads exactly as many bytes as EXPECTED has and compares.
fn read_expecting(conn: &mut TcpStream, expected: &[u8]) {
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = vec![0u8; expected.len()];
    conn.read_exact(&mut got)
        .unwrap_or_else(|e| panic!("reading {} bytes: {e}", expected.len()));
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(expected),
        "the master's bytes"
    );
}

/// True when nothing arrives on CONN within 300 ms (and it stays open).
fn silent(conn: &mut TcpStream) -> bool {
    conn.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut b = [0u8; 64];
    matches!(conn.read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut)
}

fn closed(conn: &mut TcpStream) -> bool {
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut b = [0u8; 64];
    matches!(conn.read(&mut b), Ok(0) | Err(_))
}

fn update(task: &str, state: TaskState, uuid: &[u8]) -> StatusUpdate {
    StatusUpdate {
        framework_id: FrameworkId { value: "fw".into() },
        status: TaskStatus {
            task_id: TaskId { value: task.into() },
            state: state as i32,
            source: Some(task_status::Source::Executor as i32),
            uuid: Some(uuid.to_vec()),
            ..Default::default()
        },
        timestamp: 1.0,
        uuid: Some(uuid.to_vec()),
        ..Default::default()
    }
}

/// A hand-written libprocess peer registers with the fake master, gets
/// exactly libprocess' bytes back on a connection the master opens, is
/// pinged, has updates acknowledged, and re-registers after a failover on
/// the same port. Needs no root and no agent.
#[test]
fn fake_master_speaks_libprocess_to_a_hand_written_peer() {
    let master = FakeMaster::start(0);
    let mpid = master.pid();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let peer = format!("slave(1)@{}", listener.local_addr().unwrap());
    let mut out = TcpStream::connect(master.addr()).unwrap();

    // Registration: the master answers on its own connection to the peer.
    let reg = RegisterSlaveMessage {
        slave: SlaveInfo {
            hostname: "peer".into(),
            ..Default::default()
        },
        version: Some("1.11.0".into()),
        ..Default::default()
    };
    out.write_all(&libprocess_post(
        "master",
        &RegisterSlaveMessage::full_name(),
        &peer,
        &reg.encode_to_vec(),
    ))
    .unwrap();
    let (agent_pid, slave_id) = master.register();
    assert_eq!(agent_pid, peer);
    let (mut conn, _) = listener.accept().unwrap();
    let registered = SlaveRegisteredMessage {
        slave_id: slave_id.clone(),
        connection: Some(MasterSlaveConnection {
            total_ping_timeout_seconds: Some(75.0),
        }),
    };
    read_expecting(
        &mut conn,
        &libprocess_post(
            "slave(1)",
            &SlaveRegisteredMessage::full_name(),
            &mpid,
            &registered.encode_to_vec(),
        ),
    );
    // Like libprocess, no response to a libprocess sender ...
    assert!(silent(&mut out), "the master answered a libprocess POST");
    // ... and 202 to others, on a connection it keeps open.
    let mut plain = TcpStream::connect(master.addr()).unwrap();
    let pong = format!(
        "POST /slave-observer(1)/{} HTTP/1.1\r\nLibprocess-From: {peer}\r\nContent-Length: 0\r\n\r\n",
        PongSlaveMessage::full_name()
    );
    for _ in 0..2 {
        plain.write_all(pong.as_bytes()).unwrap();
        read_expecting(
            &mut plain,
            b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n",
        );
    }
    // Pings come from slave-observer(1), on the same master connection.
    master.send(
        &peer,
        "slave-observer(1)",
        &PingSlaveMessage { connected: true },
    );
    read_expecting(
        &mut conn,
        &libprocess_post(
            "slave(1)",
            &PingSlaveMessage::full_name(),
            &format!("slave-observer(1)@{}", master.addr()),
            &PingSlaveMessage { connected: true }.encode_to_vec(),
        ),
    );
    out.write_all(&libprocess_post(
        "slave-observer(1)",
        &PongSlaveMessage::full_name(),
        &peer,
        &[],
    ))
    .unwrap();
    let pongs = |m: &FakeMaster| {
        m.history()
            .iter()
            .filter(|r| r.name == PongSlaveMessage::full_name() && r.to == "slave-observer(1)")
            .count()
    };
    master.settle(Duration::from_millis(200));
    assert_eq!(pongs(&master), 3);

    // Status updates are taken by task and state; acks carry the uuid.
    for (task, state, uuid) in [
        ("t1", TaskState::TaskStarting, [1u8; 16]),
        ("t2", TaskState::TaskFailed, [2u8; 16]),
    ] {
        let msg = StatusUpdateMessage {
            update: update(task, state, &uuid),
            pid: Some(peer.clone()),
        };
        out.write_all(&libprocess_post(
            "master",
            &StatusUpdateMessage::full_name(),
            &peer,
            &msg.encode_to_vec(),
        ))
        .unwrap();
    }
    let u = master.expect_status("t1", TaskState::TaskStarting, WAIT);
    master.ack(&u);
    let ack = StatusUpdateAcknowledgementMessage {
        slave_id: slave_id.clone(),
        framework_id: FrameworkId { value: "fw".into() },
        task_id: TaskId { value: "t1".into() },
        uuid: vec![1u8; 16],
    };
    read_expecting(
        &mut conn,
        &libprocess_post(
            "slave(1)",
            &StatusUpdateAcknowledgementMessage::full_name(),
            &mpid,
            &ack.encode_to_vec(),
        ),
    );
    assert!(master.acked_at(&[1u8; 16]).is_some());
    // Waiting for a state the task can no longer reach fails at once.
    let t = Instant::now();
    let waited = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        master.expect_status("t2", TaskState::TaskRunning, WAIT)
    }));
    assert!(waited.is_err() && t.elapsed() < Duration::from_secs(5));
    assert!(master.violations().is_empty(), "{:?}", master.violations());

    // Bytes off the format are recorded as violations.
    let mut bad = TcpStream::connect(master.addr()).unwrap();
    bad.write_all(format!("POST /master/x HTTP/1.1\nLibprocess-From: {peer}\n\n").as_bytes())
        .unwrap();
    let mut bad2 = TcpStream::connect(master.addr()).unwrap();
    bad2.write_all(format!("POST /master/x HTTP/1.1\r\nLibprocess-From: {peer}\r\nUser-Agent: libprocess/other@127.0.0.1:1\r\n\r\n").as_bytes())
        .unwrap();
    master.settle(Duration::from_millis(300));
    let v = master.violations();
    assert_eq!(v.len(), 2, "{v:?}");
    assert!(v.iter().any(|v| v.contains("bare LF")), "{v:?}");
    assert!(v.iter().any(|v| v.contains("User-Agent")), "{v:?}");

    // Failover: every connection closes; a new master takes the same port.
    let port = master.port();
    master.stop();
    assert!(closed(&mut conn), "the master->peer connection stayed open");
    assert!(closed(&mut out), "the peer->master connection stayed open");
    let m2 = FakeMaster::start(port);
    let mut out = TcpStream::connect(m2.addr()).unwrap();
    let rereg = ReregisterSlaveMessage {
        slave: SlaveInfo {
            hostname: "peer".into(),
            id: Some(slave_id.clone()),
            ..Default::default()
        },
        version: Some("1.11.0".into()),
        ..Default::default()
    };
    out.write_all(&libprocess_post(
        "master",
        &ReregisterSlaveMessage::full_name(),
        &peer,
        &rereg.encode_to_vec(),
    ))
    .unwrap();
    let got = m2.reregister();
    assert_eq!(got.slave.id.as_ref(), Some(&slave_id));
    let (mut conn, _) = listener.accept().unwrap();
    let rereged = SlaveReregisteredMessage {
        slave_id,
        reconciliations: Vec::new(),
        connection: Some(MasterSlaveConnection {
            total_ping_timeout_seconds: Some(75.0),
        }),
    };
    read_expecting(
        &mut conn,
        &libprocess_post(
            "slave(1)",
            &SlaveReregisteredMessage::full_name(),
            &mpid,
            &rereged.encode_to_vec(),
        ),
    );
    m2.assert_clean();
}

// --- the agent against the fake master -------------------------------------------

/// Starts a master and an agent, and registers it.
pub(crate) fn start(extra: &[&str]) -> (Fixture, FakeMaster, AgentProcess) {
    let fx = Fixture::new();
    let master = FakeMaster::start(0);
    let agent = AgentProcess::start(&fx, &master, extra);
    master.register();
    (fx, master, agent)
}

/// Launches TASK and acknowledges its TASK_STARTING and TASK_RUNNING.
fn launch_running(
    master: &FakeMaster,
    fw: &butte::proto::mesos::FrameworkInfo,
    task: &butte::proto::mesos::TaskInfo,
) {
    master.run_task(fw, task);
    let id = &task.task_id.value;
    let starting = master.expect_ack(id, TaskState::TaskStarting);
    assert_eq!(
        status(&starting).source,
        Some(task_status::Source::Executor as i32),
        "{}",
        describe(&starting)
    );
    master.expect_ack(id, TaskState::TaskRunning);
}

/// Checks the stream rules on everything that arrived: per task, updates
/// come in the order of their states, each new one only after the one
/// before was acknowledged, and none arrives again once acknowledged (a
/// retry already on the wire when the ack left may land up to GRACE later).
pub(crate) fn check_update_streams(master: &FakeMaster) {
    const GRACE: Duration = Duration::from_millis(500);
    let arrivals = master.update_arrivals();
    let mut by_task: HashMap<String, Vec<(Instant, StatusUpdate)>> = HashMap::new();
    for (at, u) in arrivals {
        by_task
            .entry(task_and_state(&u).0)
            .or_default()
            .push((at, u));
    }
    for (task, list) in by_task {
        let mut previous: Option<Vec<u8>> = None;
        for (at, u) in &list {
            let uuid = u.uuid.clone().expect("update without uuid");
            if let Some(acked) = master.acked_at(&uuid) {
                assert!(
                    *at <= acked + GRACE,
                    "task {task}: {} arrived {:?} after its ack",
                    describe(u),
                    *at - acked
                );
            }
            // A new update only once the one before it was acknowledged.
            if let Some(prev) = previous.as_ref().filter(|p| **p != uuid) {
                let acked = master.acked_at(prev);
                assert!(
                    acked.is_some_and(|a| a <= *at),
                    "task {task}: {} arrived before the update before it was acknowledged",
                    describe(u)
                );
            }
            previous = Some(uuid);
        }
    }
}

/// Issue 5: register; launch, run, kill; acknowledgements; the master goes
/// away while a task finishes; a new master on the same port gets a
/// re-registration listing the live task and its framework, then the held
/// updates in order, each resent only until acknowledged.
#[test]
fn agent_reregisters_after_master_failover_and_delivers_held_updates_in_order() {
    if !enabled() {
        return;
    }
    let (fx, master, agent) = start(&[]);
    master.ping(true);
    let fw = framework("failover");
    let long = command_task("long", "sleep 30");
    launch_running(&master, &fw, &long);
    let victim = command_task("victim", "sleep 30");
    launch_running(&master, &fw, &victim);
    master.kill_task(&fw, "victim", None);
    let killed = master.expect_ack("victim", TaskState::TaskKilled);
    assert_eq!(
        status(&killed).source,
        Some(task_status::Source::Executor as i32),
        "{}",
        describe(&killed)
    );

    // A task that finishes while the master is away; nothing of it acked.
    master.run_task(&fw, &command_task("short", "sleep 3; exit 0"));
    master.expect_status("short", TaskState::TaskStarting, WAIT);
    let port = master.port();
    master.stop();
    let down = Instant::now();
    std::thread::sleep(Duration::from_secs(5));
    agent_still_running(&agent);

    let master2 = FakeMaster::start(port);
    let rereg = master2.reregister();
    eprintln!(
        "re-registered {:?} after the master was down",
        down.elapsed()
    );
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
    assert!(
        tasks
            .get("victim")
            .map_or(true, |s| *s == TaskState::TaskKilled as i32),
        "the killed task is listed as live: {tasks:?}"
    );
    assert!(
        rereg.frameworks.iter().any(|f| f.id == fw.id),
        "framework missing from the re-registration: {:?}",
        rereg.frameworks
    );
    // Command executors are generated by the agent: Mesos leaves them out.
    assert!(
        rereg.executor_infos.is_empty(),
        "command executors in the re-registration: {:?}",
        rereg.executor_infos
    );
    master2.ping(true);

    // The held updates of "short", in order, then nothing more.
    for state in [
        TaskState::TaskStarting,
        TaskState::TaskRunning,
        TaskState::TaskFinished,
    ] {
        master2.expect_ack("short", state);
    }
    master2.kill_task(&fw, "long", None);
    master2.expect_ack("long", TaskState::TaskKilled);
    // Retries are 1 s apart: wait out a few.
    master2.settle(Duration::from_secs(4));
    // The first master's and the second's arrivals, checked per master.
    check_update_streams(&master);
    check_update_streams(&master2);
    let short: Vec<String> = master2
        .statuses()
        .iter()
        .filter(|u| task_and_state(u).0 == "short")
        .map(|u| task_and_state(u).1.as_str_name().to_string())
        .collect();
    eprintln!("updates of 'short' at the second master: {short:?}");
    master.assert_clean();
    drop(master);
    master::finish(fx, master2, agent);
}

fn agent_still_running(agent: &AgentProcess) {
    assert!(
        std::path::Path::new(&format!("/proc/{}", agent.pid())).exists(),
        "the agent died; {}",
        agent.log_tail(60)
    );
}

/// Writes BYTES on a fresh connection to ADDR and returns what comes back
/// within a second (empty when nothing does or the agent closes at once).
fn poke(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut conn = TcpStream::connect(addr).expect("connect to the agent");
    let _ = conn.write_all(bytes);
    conn.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = conn.read(&mut buf) {
        if n == 0 || got.len() > 64 << 10 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// The status code of the first response in TEXT, if any.
fn status_code(text: &str) -> Option<u16> {
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// Issue 5: garbage, a truncated protobuf, an unknown message, an oversized
/// Content-Length, a huge chunk, a header flood, an unparseable or foreign
/// sender and a message to another process: none launches anything or
/// harms the agent, which then runs a task normally.
#[test]
fn malformed_input_on_the_agent_port_is_rejected_and_changes_nothing() {
    if !enabled() {
        return;
    }
    let (fx, master, agent) = start(&[]);
    let addr = agent.endpoint();
    let pid = master.agent_pid();
    let (to_id, _) = master::parse_upid(&pid).unwrap();
    let fw = framework("malformed");
    let run = |task_id: &str| {
        let mut task = command_task(task_id, "sleep 30");
        task.slave_id = master.slave_id();
        RunTaskMessage {
            framework_id: fw.id.clone(),
            framework: fw.clone(),
            task,
            launch_executor: Some(true),
            ..Default::default()
        }
        .encode_to_vec()
    };
    let run_name = RunTaskMessage::full_name();
    let mpid = master.pid();
    let truncated = {
        let body = run("truncated");
        body[..body.len() / 2].to_vec()
    };
    let plain_post = |to: &str, from: &str, body: &[u8]| {
        let mut b = format!(
            "POST /{to}/{run_name} HTTP/1.1\r\nLibprocess-From: {from}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        b.extend_from_slice(body);
        b
    };
    let cases: Vec<(&str, Vec<u8>, bool)> = vec![
        ("garbage", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 \xff\xfe GARBAGE\r\n\r\n".to_vec(), true),
        ("truncated protobuf", libprocess_post(&to_id, &run_name, &mpid, &truncated), false),
        ("unknown message", libprocess_post(&to_id, "mesos.internal.NoSuchMessage", &mpid, b"\x08\x01"), false),
        (
            "oversized Content-Length",
            format!(
                "POST /{to_id}/{run_name} HTTP/1.1\r\nLibprocess-From: {mpid}\r\nContent-Length: 99999999999999\r\n\r\n0123456789"
            )
            .into_bytes(),
            true,
        ),
        (
            "huge chunk",
            format!(
                "POST /{to_id}/{run_name} HTTP/1.1\r\nLibprocess-From: {mpid}\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffff\r\n0123"
            )
            .into_bytes(),
            true,
        ),
        (
            "header flood",
            format!("POST /{to_id}/{run_name} HTTP/1.1\r\nX-Flood: {}\r\n\r\n", "a".repeat(1 << 20)).into_bytes(),
            true,
        ),
        ("unparseable Libprocess-From", plain_post(&to_id, "not a upid", &run("spoofed-1")), false),
        ("foreign master", plain_post(&to_id, "master@127.0.0.1:1", &run("spoofed-2")), false),
        ("another process", libprocess_post("nobody(7)", &run_name, &mpid, &run("misaddressed")), false),
    ];
    for (what, bytes, must_reject) in &cases {
        let reply = poke(addr, bytes);
        let code = status_code(&reply);
        eprintln!(
            "{what}: {:?}",
            reply.lines().next().unwrap_or("(nothing, or closed)")
        );
        assert!(
            code.map_or(true, |c| c < 500),
            "{what}: the agent answered {reply:?}"
        );
        if *must_reject {
            assert!(
                code.map_or(true, |c| c >= 400),
                "{what}: the agent accepted it: {reply:?}"
            );
        }
        agent_still_running(&agent);
    }
    let rss = vm_rss_kib(agent.pid()).unwrap_or(0);
    assert!(rss < 200 << 10, "the agent grew to {rss} KiB");
    // Still answers the master, and nothing above launched a task.
    master.ping(true);
    let task = command_task("after", "sleep 30");
    launch_running(&master, &fw, &task);
    master.settle(Duration::from_secs(1));
    let strays: Vec<String> = master
        .statuses()
        .iter()
        .filter(|u| task_and_state(u).0 != "after")
        .map(describe)
        .collect();
    assert!(
        strays.is_empty(),
        "updates for tasks that must not exist: {strays:#?}"
    );
    master.kill_task(&fw, "after", None);
    master.expect_ack("after", TaskState::TaskKilled);
    master::finish(fx, master, agent);
}

/// Issue 5: an update the master never acknowledged survives an agent
/// SIGKILL: the restarted agent re-registers and delivers it (same uuid).
/// Before that, a SIGTERM'd agent leaves its task running and gets it back.
#[test]
fn status_update_pending_at_an_agent_sigkill_is_delivered_after_restart() {
    if !enabled() {
        return;
    }
    let (fx, master, mut agent) = start(&[]);
    let fw = framework("restart");
    launch_running(&master, &fw, &command_task("survivor", "sleep 60"));

    // SIGTERM: the agent exits, the task keeps running, a restart recovers it.
    agent.terminate();
    agent.restart();
    let rereg = master.reregister();
    assert!(
        rereg
            .tasks
            .iter()
            .any(|t| t.task_id.value == "survivor" && t.state == TaskState::TaskRunning as i32),
        "survivor missing after a SIGTERM restart: {:?}",
        rereg
            .tasks
            .iter()
            .map(|t| (&t.task_id.value, t.state))
            .collect::<Vec<_>>()
    );

    // TASK_FINISHED reaches the agent, the master sees it and does not ack.
    master.run_task(&fw, &command_task("finisher", "sleep 1; exit 0"));
    master.expect_ack("finisher", TaskState::TaskStarting);
    master.expect_ack("finisher", TaskState::TaskRunning);
    let finished = master.expect_status("finisher", TaskState::TaskFinished, WAIT);
    agent.kill();
    agent.restart();
    let rereg = master.reregister();
    let ids: Vec<&str> = rereg
        .tasks
        .iter()
        .map(|t| t.task_id.value.as_str())
        .collect();
    assert!(
        ids.contains(&"survivor"),
        "survivor missing after SIGKILL: {ids:?}"
    );
    let again = master.expect_status("finisher", TaskState::TaskFinished, WAIT);
    assert_eq!(
        again.uuid, finished.uuid,
        "the resent update has a new uuid"
    );
    master.ack(&again);
    master.kill_task(&fw, "survivor", None);
    // The SIGTERM may have come before the agent logged the ack of
    // survivor's TASK_RUNNING: then that update is resent first.
    master.ack_until("survivor", TaskState::TaskKilled);
    master.settle(Duration::from_secs(3));
    check_update_streams(&master);
    // Both executors, reconnected after the restarts, end on their own once
    // their task's terminal update is acknowledged.
    let deadline = Instant::now() + Duration::from_secs(15);
    while !processes_in_cgroup(&fx.parent).is_empty() {
        assert!(
            Instant::now() < deadline,
            "executors still running after their tasks ended: {:?}; {}",
            processes_in_cgroup(&fx.parent),
            agent.log_tail(60)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    master::finish(fx, master, agent);
}

/// Issue 5: a task that cannot be launched gets a terminal update, never
/// silence: a custom executor that does not exist (TASK_FAILED from the
/// agent: executor terminated / launch failed), an image that cannot be
/// pulled (TASK_FAILED, container launch failed), a second task with a
/// running task's id (the command executor fails it, as Mesos'); a
/// RunTaskMessage without a framework id is ignored (Mesos logs and drops
/// it). The agent then runs a task normally.
#[test]
fn tasks_that_cannot_launch_get_a_terminal_update() {
    if !enabled() {
        return;
    }
    let nowhere = format!("http://127.0.0.1:{}", master::free_port());
    let (fx, master, agent) = start(&["--docker_registry", &nowhere]);
    let fw = framework("broken");
    let slave = task_status::Source::Slave;

    let mut task = command_task("no-executor", "true");
    task.command = None;
    task.executor = Some(executor(
        "ghost",
        &fw,
        Some(master::shell("/no/such/executor")),
    ));
    master.run_task(&fw, &task);
    let u = master.expect_status("no-executor", TaskState::TaskFailed, WAIT);
    master.ack(&u);
    let s = status(&u);
    assert_eq!(s.source, Some(slave as i32), "{}", describe(&u));
    assert!(
        [
            task_status::Reason::ExecutorTerminated,
            task_status::Reason::ContainerLaunchFailed
        ]
        .iter()
        .any(|r| s.reason == Some(*r as i32)),
        "{}",
        describe(&u)
    );
    assert!(
        !s.message.as_deref().unwrap_or("").is_empty(),
        "{}",
        describe(&u)
    );

    let mut task = command_task("no-image", "true");
    task.container = Some(master::image_container("library/nosuch:1"));
    master.run_task(&fw, &task);
    let u = master.expect_status("no-image", TaskState::TaskFailed, WAIT);
    master.ack(&u);
    let s = status(&u);
    assert_eq!(s.source, Some(slave as i32), "{}", describe(&u));
    assert_eq!(
        s.reason,
        Some(task_status::Reason::ContainerLaunchFailed as i32),
        "{}",
        describe(&u)
    );
    assert!(
        s.message.as_deref().unwrap_or("").contains("nosuch"),
        "{}",
        describe(&u)
    );

    launch_running(&master, &fw, &command_task("twin", "sleep 30"));
    master.run_task(&fw, &command_task("twin", "sleep 30"));
    let u = master.expect_update("for the duplicate 'twin'", WAIT, |u| {
        let (id, state) = task_and_state(u);
        id == "twin" && master::TERMINAL.contains(&state)
    });
    master.ack(&u);
    eprintln!("duplicate task id: {}", describe(&u));
    assert!(
        [
            TaskState::TaskFailed,
            TaskState::TaskError,
            TaskState::TaskDropped,
            TaskState::TaskLost
        ]
        .contains(&task_and_state(&u).1),
        "{}",
        describe(&u)
    );

    // An id that would name a path outside the sandboxes.
    master.run_task(&fw, &command_task("../../escape", "true"));
    let u = master.expect_update("for '../../escape'", WAIT, |u| {
        task_and_state(u).0 == "../../escape"
    });
    master.ack(&u);
    assert!(
        [TaskState::TaskDropped, TaskState::TaskLost].contains(&task_and_state(&u).1)
            && status(&u).reason == Some(task_status::Reason::TaskInvalid as i32),
        "{}",
        describe(&u)
    );
    assert!(
        !fx.work.path().join("slaves").join("escape").exists()
            && !fx.work.path().join("escape").exists(),
        "a sandbox was made outside the tree"
    );

    let mut anonymous = framework("anonymous");
    anonymous.id = None;
    master.run_task(&anonymous, &command_task("anonymous", "sleep 30"));
    launch_running(&master, &fw, &command_task("fine", "sleep 30"));
    assert!(
        !master
            .statuses()
            .iter()
            .any(|u| task_and_state(u) == ("anonymous".into(), TaskState::TaskRunning)),
        "a task without a framework id runs"
    );
    master::finish(fx, master, agent);
}

/// What one batch of `true` command tasks measured.
struct Batch {
    /// RunTaskMessage sent -> TASK_RUNNING received, sorted.
    latencies_ms: Vec<f64>,
    wall_s: f64,
    failed: usize,
}

impl Batch {
    /// The nearest-rank percentile P (0..=1) of the latencies.
    fn pct(&self, p: f64) -> f64 {
        let n = self.latencies_ms.len();
        let rank = ((n as f64 * p).ceil() as usize).clamp(1, n.max(1));
        self.latencies_ms.get(rank - 1).copied().unwrap_or(f64::NAN)
    }

    fn json(&self, tasks: usize, window: usize) -> serde_json::Value {
        serde_json::json!({
            "tasks": tasks,
            "in_flight": window,
            "failed": self.failed,
            "run_to_running_ms": {"median": self.pct(0.5), "p99": self.pct(0.99), "max": self.pct(1.0)},
            "wall_s": self.wall_s,
            "tasks_per_s": tasks as f64 / self.wall_s,
        })
    }
}

/// Runs N `true` command tasks named PREFIX-i, at most WINDOW in flight (a
/// task is in flight until its terminal update), acknowledging every update.
fn batch(
    master: &FakeMaster,
    agent: &AgentProcess,
    fw: &butte::proto::mesos::FrameworkInfo,
    prefix: &str,
    n: usize,
    window: usize,
) -> Batch {
    let update_name = StatusUpdateMessage::full_name();
    let mut sent: HashMap<String, Instant> = HashMap::new();
    let mut in_flight = std::collections::HashSet::new();
    let mut latencies_ms = Vec::with_capacity(n);
    let (mut next, mut done, mut failed) = (0, 0, 0);
    let begin = Instant::now();
    while done < n {
        while next < n && in_flight.len() < window {
            let id = format!("{prefix}-{next}");
            sent.insert(id.clone(), Instant::now());
            master.run_task(fw, &command_task(&id, "true"));
            in_flight.insert(id);
            next += 1;
        }
        let r = master
            .take(WAIT, |r| r.name == update_name)
            .unwrap_or_else(|| {
                panic!(
                    "no update within {WAIT:?}; {done} of {n} done; {}",
                    agent.log_tail(40)
                )
            });
        let u = master::decode_update(&r).expect("StatusUpdateMessage decodes");
        master.ack(&u);
        let (id, state) = task_and_state(&u);
        if state == TaskState::TaskRunning {
            if let Some(t) = sent.remove(&id) {
                latencies_ms.push((r.at - t).as_secs_f64() * 1000.0);
            }
        }
        if master::TERMINAL.contains(&state) && in_flight.remove(&id) {
            done += 1;
            if state != TaskState::TaskFinished {
                failed += 1;
                eprintln!("{}", describe(&u));
            }
        }
    }
    let wall_s = begin.elapsed().as_secs_f64();
    latencies_ms.sort_by(|a, b| a.total_cmp(b));
    Batch {
        latencies_ms,
        wall_s,
        failed,
    }
}

/// The driver of bench/status.sh. Prints one line `BENCH_STATUS {json}`:
/// the agent's VmRSS once registered and idle; an idle command executor's
/// (a `sleep 60` task); BUTTE_BENCH_SEQUENTIAL (100) `true` tasks one at a
/// time (launch latency of an idle agent); BUTTE_BENCH_TASKS (1000) `true`
/// tasks with at most 50 in flight (throughput, and latency under that
/// load). Every update is acknowledged.
#[test]
#[ignore]
fn bench_status() {
    assert!(
        enabled(),
        "bench_status needs BUTTE_RUNTIME_TESTS=1 and root"
    );
    let env = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (n, sequential) = (
        env("BUTTE_BENCH_TASKS", 1000),
        env("BUTTE_BENCH_SEQUENTIAL", 100),
    );
    const WINDOW: usize = 50;
    let (fx, master, agent) = start(&[]);
    std::thread::sleep(Duration::from_secs(1));
    let agent_rss = vm_rss_kib(agent.pid()).expect("agent VmRSS");

    let fw = framework("bench");
    launch_running(&master, &fw, &command_task("idle", "sleep 60"));
    std::thread::sleep(Duration::from_secs(1));
    let executor_rss = master::executor_pids(&fx.parent)
        .iter()
        .filter_map(|p| vm_rss_kib(*p))
        .max()
        .expect("no butte executor process found");
    master.kill_task(&fw, "idle", None);
    master.expect_ack("idle", TaskState::TaskKilled);

    let one = batch(&master, &agent, &fw, "seq", sequential, 1);
    let many = batch(&master, &agent, &fw, "bench", n, WINDOW);
    let json = serde_json::json!({
        "sequential": one.json(sequential, 1),
        "windowed": many.json(n, WINDOW),
        "agent_idle_rss_kib": agent_rss,
        "executor_idle_rss_kib": executor_rss,
    });
    println!("BENCH_STATUS {json}");
    master::finish(fx, master, agent);
    assert_eq!(one.failed + many.failed, 0, "tasks did not finish");
}

/// Issue 11: the executor key the agent generates (none given) is kept in
/// the work dir, mode 0600, and reused after a restart, so a recovered
/// executor re-subscribes with the token it was started with.
#[test]
fn recovered_executor_authenticates_with_its_token_after_a_restart() {
    if !enabled() {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let (fx, master, mut agent) = start(&[]);
    let key_file = agent.work_dir.join(butte::agent::EXECUTOR_SECRET_KEY_FILE);
    let key = std::fs::read(&key_file).expect("a generated key");
    assert!(key.len() >= 64, "key of {} bytes", key.len());
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "key file mode {mode:o}");
    let fw = framework("auth-restart");
    launch_running(&master, &fw, &command_task("kept", "sleep 60"));

    agent.terminate();
    agent.restart();
    master.reregister();
    assert_eq!(std::fs::read(&key_file).unwrap(), key, "the key changed");
    // The executor re-subscribes with the token it was started with...
    let deadline = Instant::now() + Duration::from_secs(20);
    let subscribed = |log: String| {
        log.lines()
            .filter(|l| l.contains("executor subscribed") && l.contains("executor=\"kept\""))
            .count()
    };
    while subscribed(agent.log()) < 2 {
        assert!(
            Instant::now() < deadline,
            "the executor did not re-subscribe; {}",
            agent.log_tail(40)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // ...and the kill reaches it through that subscription.
    master.kill_task(&fw, "kept", None);
    let killed = master.ack_until("kept", TaskState::TaskKilled);
    let stderr = std::fs::read_to_string(
        agent
            .sandbox(&master.slave_id(), &fw, "kept")
            .join("stderr"),
    )
    .unwrap_or_default();
    assert_eq!(
        status(&killed).source,
        Some(task_status::Source::Executor as i32),
        "{}\nexecutor stderr:\n{stderr}\n{}",
        describe(&killed),
        agent.log_tail(60)
    );
    assert!(!stderr.contains(" 401 "), "{stderr}");
    master::finish(fx, master, agent);
}

/// Issue 11: an `--executor_secret_key` that is empty or cannot be read
/// stops the agent at start with an error naming the file.
#[test]
fn unusable_executor_secret_key_is_a_startup_error() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let master = FakeMaster::start(0);
    let empty = fx.work.path().join("empty-key");
    std::fs::write(&empty, b"").unwrap();
    let missing = fx.work.path().join("missing-key");
    for (path, why) in [(&empty, "is empty"), (&missing, "No such file")] {
        let flag = format!("--executor_secret_key={}", path.display());
        let mut agent = AgentProcess::start(&fx, &master, &[&flag]);
        let status = agent
            .wait_exit(Duration::from_secs(20))
            .unwrap_or_else(|| panic!("the agent runs with {flag}"));
        assert!(!status.success());
        let log = agent.log();
        let named = |l: &&str| {
            l.contains("--executor_secret_key: ")
                && l.contains(&path.display().to_string())
                && l.contains(why)
        };
        assert!(log.lines().any(|l| named(&l)), "{log}");
    }
    drop(master);
    fx.finish();
}

/// Started by systemd as `Type=notify` with `WatchdogSec=`: the agent says
/// READY=1 once recovered, its registration in STATUS=, and WATCHDOG=1 from
/// its event loop at half the watchdog's timeout, again and again.
#[test]
fn agent_tells_systemd_it_is_ready_and_pings_the_watchdog() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let path = fx.work.path().join("notify");
    let systemd = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    systemd
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let master = FakeMaster::start(0);
    let agent = AgentProcess::start_with_env(
        &fx,
        &master.addr().to_string(),
        &[],
        &[
            ("NOTIFY_SOCKET", path.to_str().unwrap()),
            ("WATCHDOG_USEC", "1000000"),
        ],
    );
    master.register();
    let mut said: Vec<String> = Vec::new();
    let started = Instant::now();
    let mut buf = [0u8; 512];
    while said.iter().filter(|s| *s == "WATCHDOG=1").count() < 3 {
        let n = systemd.recv(&mut buf).unwrap_or_else(|e| {
            panic!(
                "no notification within 10 s ({e}); said {said:?}; {}",
                agent.log_tail(20)
            )
        });
        said.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    let elapsed = started.elapsed();
    assert!(said[0].starts_with("READY=1\nSTATUS="), "{said:?}");
    assert!(
        said.iter().any(|s| s.starts_with("STATUS=registered with")),
        "{said:?}"
    );
    // Three pings at about 0.5 s apart (the loop ticks at most every
    // second): not a burst, not a stall.
    assert!(
        elapsed >= Duration::from_millis(1000),
        "{elapsed:?}: {said:?}"
    );
    master::finish(fx, master, agent);
}
