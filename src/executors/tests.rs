//! End to end, without root: an executor on a thread against a fake agent
//! on 127.0.0.1 that speaks the protobuf form of the executor API.

use super::config::Config;
use super::{run, Options};
use crate::api::recordio;
use crate::proto::mesos::v1::executor::{call, event, Call, Event};
use crate::proto::mesos::v1::{
    environment, framework_info, health_check, task_status, AgentId, AgentInfo, CommandInfo,
    ContainerId, DurationInfo, Environment, ExecutorId, ExecutorInfo, FrameworkInfo, HealthCheck,
    KillPolicy, TaskGroupInfo, TaskId, TaskInfo, TaskState, TaskStatus,
};
use prost::Message;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

/// A call to the operator API (as JSON) and where its answer goes.
type OperatorCall = (serde_json::Value, Sender<(u16, String)>);

/// A fake agent: accepts SUBSCRIBE (answering SUBSCRIBED, then streaming
/// what the test pushes) and UPDATE calls (202, handed to the test), and
/// hands operator API calls to the test, which answers them.
struct FakeAgent {
    addr: String,
    /// `None` closes the current event stream.
    events: Sender<Option<Event>>,
    calls: Receiver<Call>,
    operator: Receiver<OperatorCall>,
    /// The `Authorization` header of every request, in order.
    authorizations: Arc<Mutex<Vec<Option<String>>>>,
}

/// A request's body and `Authorization` header, and whether it went to
/// the operator API rather than the executor API.
fn read_request(r: &mut BufReader<TcpStream>) -> Option<(Vec<u8>, Option<String>, bool)> {
    let mut len = 0usize;
    let mut first = true;
    let mut authorization = None;
    let mut operator = false;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if first {
            operator = line.starts_with("POST /api/v1 HTTP/1.1");
            assert!(
                operator || line.starts_with("POST /api/v1/executor HTTP/1.1"),
                "{line}"
            );
            first = false;
        }
        let l = line.to_ascii_lowercase();
        if let Some(v) = l.strip_prefix("content-length:") {
            len = v.trim().parse().ok()?;
        }
        if let Some(v) = l.strip_prefix("content-type:") {
            assert_eq!(v.trim(), "application/x-protobuf");
        }
        if l.starts_with("authorization:") {
            authorization = Some(line["authorization:".len()..].trim().to_string());
        }
        if line == "\r\n" {
            break;
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some((body, authorization, operator))
}

fn chunk(event: &Event) -> Vec<u8> {
    let record = recordio::encode(&event.encode_to_vec());
    let mut out = format!("{:x}\r\n", record.len()).into_bytes();
    out.extend_from_slice(&record);
    out.extend_from_slice(b"\r\n");
    out
}

fn subscribed(killing_capable: bool) -> Event {
    let mut framework = FrameworkInfo {
        user: "root".into(),
        name: "test".into(),
        ..Default::default()
    };
    if killing_capable {
        framework.capabilities.push(framework_info::Capability {
            r#type: Some(framework_info::capability::Type::TaskKillingState as i32),
        });
    }
    Event {
        r#type: Some(event::Type::Subscribed as i32),
        subscribed: Some(event::Subscribed {
            executor_info: ExecutorInfo {
                executor_id: ExecutorId { value: "ex".into() },
                ..Default::default()
            },
            framework_info: framework,
            agent_info: AgentInfo {
                hostname: "localhost".into(),
                id: Some(AgentId {
                    value: "agent-1".into(),
                }),
                ..Default::default()
            },
            container_id: Some(ContainerId {
                value: "exec-c".into(),
                parent: None,
            }),
        }),
        ..Default::default()
    }
}

impl FakeAgent {
    fn start(killing_capable: bool) -> FakeAgent {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (events, events_rx) = mpsc::channel::<Option<Event>>();
        let events_rx = Arc::new(Mutex::new(events_rx));
        let (calls_tx, calls) = mpsc::channel::<Call>();
        let (operator_tx, operator) = mpsc::channel::<OperatorCall>();
        let authorizations = Arc::new(Mutex::new(Vec::new()));
        let auths = authorizations.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let (events_rx, calls_tx) = (events_rx.clone(), calls_tx.clone());
                let operator_tx = operator_tx.clone();
                let auths = auths.clone();
                std::thread::spawn(move || {
                    let mut r = BufReader::new(conn);
                    while let Some((body, auth, operator)) = read_request(&mut r) {
                        auths.lock().unwrap().push(auth);
                        if operator {
                            let call = super::nested::tests::call_json(&body);
                            let (answer_tx, answer) = mpsc::channel();
                            if operator_tx.send((call, answer_tx)).is_err() {
                                return;
                            }
                            // Unanswered: the connection breaks.
                            let Ok((status, text)) = answer.recv() else {
                                return;
                            };
                            let body = super::nested::tests::answer_body(&text);
                            let head = format!(
                                "HTTP/1.1 {status} X\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}\r\n\r\n",
                                body.len()
                            );
                            let w = r.get_mut();
                            let _ = w.write_all(head.as_bytes());
                            let _ = w.write_all(&body);
                            continue;
                        }
                        let call = Call::decode(body.as_slice()).unwrap();
                        let subscribe = call.r#type == Some(call::Type::Subscribe as i32);
                        let _ = calls_tx.send(call);
                        let w = r.get_mut();
                        if !subscribe {
                            let _ =
                                w.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n");
                            continue;
                        }
                        let _ = w.write_all(
                            b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nTransfer-Encoding: chunked\r\n\r\n",
                        );
                        let _ = w.write_all(&chunk(&subscribed(killing_capable)));
                        let rx = events_rx.lock().unwrap();
                        while let Ok(Some(e)) = rx.recv() {
                            if w.write_all(&chunk(&e)).is_err() {
                                return;
                            }
                        }
                        let _ = w.shutdown(std::net::Shutdown::Both);
                        return;
                    }
                });
            }
        });
        FakeAgent {
            addr,
            events,
            calls,
            operator,
            authorizations,
        }
    }

    fn push(&self, event: Event) {
        self.events.send(Some(event)).unwrap();
    }

    /// Ends the current subscription, as an agent restart does.
    fn disconnect(&self) {
        self.events.send(None).unwrap();
    }

    /// The next UPDATE, not acknowledged.
    fn next_unacked_update(&self) -> TaskStatus {
        loop {
            if let Some(u) = self.next_call().update {
                return u.status;
            }
        }
    }

    /// The next operator API call (as JSON) and where to answer it.
    fn next_operator_call(&self) -> OperatorCall {
        self.operator
            .recv_timeout(WAIT)
            .expect("an operator API call from the executor")
    }

    fn next_call(&self) -> Call {
        self.calls
            .recv_timeout(WAIT)
            .expect("a call from the executor")
    }

    /// The next UPDATE, acknowledged.
    fn next_update(&self) -> TaskStatus {
        loop {
            let call = self.next_call();
            if let Some(u) = call.update {
                assert_eq!(call.executor_id.value, "ex");
                assert_eq!(call.framework_id.value, "fw");
                self.push(Event {
                    r#type: Some(event::Type::Acknowledged as i32),
                    acknowledged: Some(event::Acknowledged {
                        task_id: u.status.task_id.clone(),
                        uuid: u.status.uuid.clone().unwrap_or_default(),
                    }),
                    ..Default::default()
                });
                return u.status;
            }
        }
    }
}

fn config(agent: &FakeAgent, dir: &Path) -> Config {
    Config {
        framework_id: "fw".into(),
        executor_id: "ex".into(),
        agent_endpoint: agent.addr.clone(),
        directory: dir.to_path_buf(),
        sandbox: dir.to_path_buf(),
        checkpoint: false,
        recovery_timeout: Duration::from_secs(5),
        subscription_backoff_max: Duration::from_millis(100),
        shutdown_grace_period: Duration::from_secs(5),
        auth_token: None,
    }
}

fn start_executor(agent: &FakeAgent, dir: &Path, default: bool) -> JoinHandle<i32> {
    start_with(agent, config(agent, dir), default)
}

fn start_with(agent: &FakeAgent, config: Config, default: bool) -> JoinHandle<i32> {
    start_with_flags(agent, config, default, &[])
}

/// An executor started as a Mesos agent starts `mesos-executor`, with
/// these Mesos flags.
fn start_with_flags(
    agent: &FakeAgent,
    config: Config,
    default: bool,
    flags: &[&str],
) -> JoinHandle<i32> {
    let mut mesos = super::MesosFlags::default();
    for f in flags {
        mesos.add(f, default).unwrap();
    }
    let dir = config.directory.clone();
    let env = vec![
        ("PATH".to_string(), "/usr/bin:/bin".to_string()),
        (
            "MESOS_SANDBOX".to_string(),
            dir.to_string_lossy().into_owned(),
        ),
    ];
    let options = Options {
        default,
        launch_info: None,
        self_exe: "/proc/self/exe".into(),
        reap_all: false,
        logrotate: None,
        mesos,
        nested: false,
    };
    let h = std::thread::spawn(move || run(config, env, options));
    let sub = agent.next_call();
    assert_eq!(sub.r#type, Some(call::Type::Subscribe as i32));
    h
}

fn task(id: &str, shell: &str) -> TaskInfo {
    TaskInfo {
        name: id.into(),
        task_id: TaskId { value: id.into() },
        agent_id: AgentId {
            value: "agent-1".into(),
        },
        command: Some(CommandInfo {
            value: Some(shell.into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn launch(t: TaskInfo) -> Event {
    Event {
        r#type: Some(event::Type::Launch as i32),
        launch: Some(event::Launch { task: t }),
        ..Default::default()
    }
}

fn kill(id: &str, grace: Option<Duration>) -> Event {
    Event {
        r#type: Some(event::Type::Kill as i32),
        kill: Some(event::Kill {
            task_id: TaskId { value: id.into() },
            kill_policy: grace.map(|g| KillPolicy {
                grace_period: Some(DurationInfo {
                    nanoseconds: g.as_nanos() as i64,
                }),
            }),
        }),
        ..Default::default()
    }
}

fn join(h: JoinHandle<i32>) -> i32 {
    for _ in 0..200 {
        if h.is_finished() {
            return h.join().unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the executor did not exit");
}

/// Waits until a task has written `path`.
fn wait_for_file(path: &Path) {
    for _ in 0..1000 {
        if path.exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("{} never appeared", path.display());
}

fn state(s: &TaskStatus) -> TaskState {
    TaskState::try_from(s.state).unwrap()
}

#[test]
fn command_task_fails_with_its_exit_status() {
    let agent = FakeAgent::start(false);
    let dir = tempfile::tempdir().unwrap();
    let h = start_executor(&agent, dir.path(), false);
    agent.push(launch(task("t1", "echo hi > out; exit 3")));
    let starting = agent.next_update();
    assert_eq!(state(&starting), TaskState::TaskStarting);
    assert_eq!(starting.task_id.value, "t1");
    assert_eq!(starting.source, Some(task_status::Source::Executor as i32));
    assert_eq!(starting.executor_id.as_ref().unwrap().value, "ex");
    assert_eq!(starting.agent_id.as_ref().unwrap().value, "agent-1");
    assert_eq!(starting.uuid.as_ref().map(Vec::len), Some(16));
    assert!(starting.timestamp.unwrap() > 1e9);
    let running = agent.next_update();
    assert_eq!(state(&running), TaskState::TaskRunning);
    assert_ne!(running.uuid, starting.uuid);
    let failed = agent.next_update();
    assert_eq!(state(&failed), TaskState::TaskFailed);
    assert_eq!(
        failed.message.as_deref(),
        Some("Command exited with status 3")
    );
    assert_eq!(join(h), 0);
    // The task ran in the sandbox.
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out")).unwrap(),
        "hi\n"
    );
}

#[test]
fn killed_task_escalates_to_sigkill_and_reports_killed() {
    let agent = FakeAgent::start(true);
    let dir = tempfile::tempdir().unwrap();
    let h = start_executor(&agent, dir.path(), false);
    let mut t = task(
        "t2",
        "trap '' TERM; touch ready; while :; do sleep 0.05; done",
    );
    t.kill_policy = Some(KillPolicy {
        grace_period: Some(DurationInfo {
            nanoseconds: 60_000_000_000,
        }),
    });
    agent.push(launch(t));
    assert_eq!(state(&agent.next_update()), TaskState::TaskStarting);
    assert_eq!(state(&agent.next_update()), TaskState::TaskRunning);
    // Only once SIGTERM is ignored: it must take the SIGKILL.
    wait_for_file(&dir.path().join("ready"));
    // The KILL's policy overrides the task's 60s.
    agent.push(kill("t2", Some(Duration::from_millis(300))));
    assert_eq!(state(&agent.next_update()), TaskState::TaskKilling);
    let killed = agent.next_update();
    assert_eq!(state(&killed), TaskState::TaskKilled);
    assert_eq!(
        killed.message.as_deref(),
        Some("Command terminated with signal Killed")
    );
    assert_eq!(join(h), 0);
}

#[test]
fn failing_health_check_kills_the_task() {
    let agent = FakeAgent::start(false);
    let dir = tempfile::tempdir().unwrap();
    let h = start_executor(&agent, dir.path(), false);
    // Port 1 (tcpmux): nothing listens on it here.
    let port = 1u16;
    let mut t = task("t3", "sleep 30");
    t.health_check = Some(HealthCheck {
        r#type: Some(health_check::Type::Tcp as i32),
        tcp: Some(health_check::TcpCheckInfo {
            port: u32::from(port),
            protocol: None,
        }),
        delay_seconds: Some(0.0),
        interval_seconds: Some(0.05),
        timeout_seconds: Some(1.0),
        grace_period_seconds: Some(0.0),
        consecutive_failures: Some(2),
        ..Default::default()
    });
    agent.push(launch(t));
    assert_eq!(state(&agent.next_update()), TaskState::TaskStarting);
    assert_eq!(state(&agent.next_update()), TaskState::TaskRunning);
    for _ in 0..2 {
        let u = agent.next_update();
        assert_eq!(state(&u), TaskState::TaskRunning);
        assert_eq!(u.healthy, Some(false));
        assert_eq!(
            u.reason,
            Some(task_status::Reason::TaskHealthCheckStatusUpdated as i32)
        );
    }
    let killed = agent.next_update();
    assert_eq!(state(&killed), TaskState::TaskKilled);
    assert_eq!(killed.healthy, Some(false));
    assert_eq!(
        killed.message.as_deref(),
        Some("Command terminated with signal Terminated")
    );
    assert_eq!(join(h), 0);
}

#[test]
fn shutdown_before_launch_exits_at_once() {
    let agent = FakeAgent::start(false);
    let dir = tempfile::tempdir().unwrap();
    let h = start_executor(&agent, dir.path(), false);
    agent.push(Event {
        r#type: Some(event::Type::Shutdown as i32),
        ..Default::default()
    });
    assert_eq!(join(h), 0);
}

#[test]
fn mesos_task_command_and_environment_flags_are_applied() {
    let agent = FakeAgent::start(false);
    let dir = tempfile::tempdir().unwrap();
    let h = start_with_flags(
        &agent,
        config(&agent, dir.path()),
        false,
        &[
            "--launcher_dir=/usr/libexec/mesos",
            r#"--task_command={"shell":true,"value":"echo $FROM_FLAG $OWN > out"}"#,
            r#"--task_environment={"variables":[{"name":"FROM_FLAG","type":"VALUE","value":"flag"},{"name":"OWN","type":"VALUE","value":"flag"}]}"#,
        ],
    );
    // The task's own variables win over the flag's, as in Mesos.
    let mut t = task("t5", "echo not this one > out");
    t.command.as_mut().unwrap().environment = Some(Environment {
        variables: vec![environment::Variable {
            name: "OWN".into(),
            r#type: Some(environment::variable::Type::Value as i32),
            value: Some("task".into()),
            secret: None,
        }],
    });
    agent.push(launch(t));
    assert_eq!(state(&agent.next_update()), TaskState::TaskStarting);
    assert_eq!(state(&agent.next_update()), TaskState::TaskRunning);
    assert_eq!(state(&agent.next_update()), TaskState::TaskFinished);
    assert_eq!(join(h), 0);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out")).unwrap(),
        "flag flag\n"
    );
}

#[test]
fn a_mesos_flag_butte_cannot_apply_fails_the_task_naming_it() {
    let agent = FakeAgent::start(false);
    let dir = tempfile::tempdir().unwrap();
    let h = start_with_flags(
        &agent,
        config(&agent, dir.path()),
        false,
        &[
            "--rootfs=/somewhere",
            "--sandbox_directory=/mnt/mesos/sandbox",
        ],
    );
    agent.push(launch(task("t6", "touch ran")));
    assert_eq!(state(&agent.next_update()), TaskState::TaskStarting);
    let failed = agent.next_update();
    assert_eq!(state(&failed), TaskState::TaskFailed);
    let message = failed.message.unwrap_or_default();
    assert!(message.contains("--rootfs"), "{message}");
    assert_eq!(join(h), 0);
    assert!(!dir.path().join("ran").exists(), "the task ran on the host");
}

/// A Mesos agent shutting down a framework acknowledges no more updates:
/// the executor leaves about a second after its TASK_KILLED instead of
/// waiting for the agent's SIGKILL.
#[test]
fn after_shutdown_the_executor_leaves_a_second_after_its_last_update() {
    let agent = FakeAgent::start(false);
    let dir = tempfile::tempdir().unwrap();
    let h = start_executor(&agent, dir.path(), false);
    agent.push(launch(task("t7", "sleep 30")));
    assert_eq!(state(&agent.next_update()), TaskState::TaskStarting);
    assert_eq!(state(&agent.next_update()), TaskState::TaskRunning);
    agent.push(Event {
        r#type: Some(event::Type::Shutdown as i32),
        ..Default::default()
    });
    let killed = agent.next_unacked_update();
    let sent = std::time::Instant::now();
    assert_eq!(state(&killed), TaskState::TaskKilled);
    assert_eq!(join(h), 0);
    let stayed = sent.elapsed();
    assert!(
        stayed >= Duration::from_millis(900) && stayed < Duration::from_secs(5),
        "left {stayed:?} after TASK_KILLED"
    );
}

#[test]
fn default_executor_kills_the_group_when_a_task_fails() {
    let agent = FakeAgent::start(false);
    let dir = tempfile::tempdir().unwrap();
    let h = start_executor(&agent, dir.path(), true);
    let group = TaskGroupInfo {
        tasks: vec![
            task("long", "echo $MESOS_SANDBOX > where; exec sleep 30"),
            task("short", "sleep 0.3; exit 2"),
        ],
    };
    agent.push(Event {
        r#type: Some(event::Type::LaunchGroup as i32),
        launch_group: Some(event::LaunchGroup { task_group: group }),
        ..Default::default()
    });
    let mut seen: Vec<(String, TaskState, Option<String>)> = Vec::new();
    while seen
        .iter()
        .filter(|(_, s, _)| *s != TaskState::TaskStarting && *s != TaskState::TaskRunning)
        .count()
        < 2
    {
        let u = agent.next_update();
        seen.push((u.task_id.value.clone(), state(&u), u.message.clone()));
    }
    let of = |id: &str| -> Vec<TaskState> {
        seen.iter()
            .filter(|(t, ..)| t == id)
            .map(|(_, s, _)| *s)
            .collect()
    };
    assert_eq!(
        of("short"),
        vec![
            TaskState::TaskStarting,
            TaskState::TaskRunning,
            TaskState::TaskFailed
        ]
    );
    assert_eq!(
        of("long"),
        vec![
            TaskState::TaskStarting,
            TaskState::TaskRunning,
            TaskState::TaskKilled
        ]
    );
    let message = |id: &str, s: TaskState| {
        seen.iter()
            .find(|(t, st, _)| t == id && *st == s)
            .and_then(|(.., m)| m.clone())
    };
    assert_eq!(
        message("short", TaskState::TaskFailed).as_deref(),
        Some("Command exited with status 2")
    );
    assert_eq!(
        message("long", TaskState::TaskKilled).as_deref(),
        Some("Command terminated with signal Terminated")
    );
    assert_eq!(join(h), 0);
    let task_dir = dir.path().join("tasks/long");
    assert_eq!(
        std::fs::read_to_string(task_dir.join("where"))
            .unwrap()
            .trim(),
        task_dir.to_string_lossy()
    );
}

/// The default executor as butte's agent starts it: tasks as nested
/// containers.
fn start_nested(agent: &FakeAgent, dir: &Path) -> JoinHandle<i32> {
    let config = config(agent, dir);
    let env = vec![
        ("PATH".to_string(), "/usr/bin:/bin".to_string()),
        ("MESOS_FRAMEWORK_ID".to_string(), "fw".to_string()),
        (
            "MESOS_SANDBOX".to_string(),
            dir.to_string_lossy().into_owned(),
        ),
    ];
    let options = Options {
        default: true,
        launch_info: None,
        self_exe: "/proc/self/exe".into(),
        reap_all: false,
        logrotate: None,
        mesos: Default::default(),
        nested: true,
    };
    let h = std::thread::spawn(move || run(config, env, options));
    let sub = agent.next_call();
    assert_eq!(sub.r#type, Some(call::Type::Subscribe as i32));
    h
}

fn container_of(u: &TaskStatus) -> ContainerId {
    u.container_status
        .as_ref()
        .and_then(|c| c.container_id.clone())
        .expect("the update names the task's container")
}

#[test]
fn nested_default_executor_runs_its_group_through_the_agent() {
    let agent = FakeAgent::start(true);
    let dir = tempfile::tempdir().unwrap();
    let h = start_nested(&agent, dir.path());
    let group = TaskGroupInfo {
        tasks: vec![task("web", "exec httpd -f"), task("side", "exit 0")],
    };
    agent.push(Event {
        r#type: Some(event::Type::LaunchGroup as i32),
        launch_group: Some(event::LaunchGroup { task_group: group }),
        ..Default::default()
    });
    let mut containers = std::collections::HashMap::new();
    for _ in 0..2 {
        let u = agent.next_update();
        assert_eq!(state(&u), TaskState::TaskStarting);
        let id = container_of(&u);
        assert_eq!(id.parent.as_ref().unwrap().value, "exec-c");
        containers.insert(u.task_id.value.clone(), id);
    }
    // The launches: the task's command with the task's environment.
    let mut answers: Vec<(String, Sender<(u16, String)>)> = Vec::new();
    for _ in 0..2 {
        let (call, answer) = agent.next_operator_call();
        assert_eq!(call["type"], "LAUNCH_CONTAINER");
        let launch = &call["launch_container"];
        let value = launch["container_id"]["value"]
            .as_str()
            .unwrap()
            .to_string();
        let (task, _) = containers.iter().find(|(_, c)| c.value == value).unwrap();
        assert_eq!(launch["container_id"]["parent"]["value"], "exec-c");
        let env = launch["command"]["environment"]["variables"]
            .as_array()
            .unwrap();
        let names: Vec<&str> = env.iter().map(|v| v["name"].as_str().unwrap()).collect();
        assert!(names.contains(&"MESOS_FRAMEWORK_ID"), "{names:?}");
        assert!(!names.contains(&"MESOS_SANDBOX"), "{names:?}");
        answers.push((task.clone(), answer));
    }
    // The web task's launch succeeds first: it runs and is waited for.
    answers.sort_by_key(|(task, _)| task != "web");
    let (_, web_launch) = answers.remove(0);
    let (_, side_launch) = answers.remove(0);
    web_launch.send((200, String::new())).unwrap();
    let mut seen: Vec<(String, TaskState, Option<String>)> = Vec::new();
    let mut wait = None;
    let mut killed_with = None;
    // Updates and operator calls interleave: take whichever comes.
    let pump = |seen: &mut Vec<_>, wait: &mut Option<_>, killed_with: &mut Option<i64>| {
        if let Ok(c) = agent.calls.recv_timeout(Duration::from_millis(20)) {
            if let Some(u) = c.update {
                agent.push(Event {
                    r#type: Some(event::Type::Acknowledged as i32),
                    acknowledged: Some(event::Acknowledged {
                        task_id: u.status.task_id.clone(),
                        uuid: u.status.uuid.clone().unwrap_or_default(),
                    }),
                    ..Default::default()
                });
                assert_eq!(
                    &container_of(&u.status),
                    &containers[&u.status.task_id.value]
                );
                seen.push((
                    u.status.task_id.value.clone(),
                    state(&u.status),
                    u.status.message.clone(),
                ));
            }
        }
        if let Ok((call, answer)) = agent.operator.recv_timeout(Duration::from_millis(20)) {
            let web = &containers["web"].value;
            match call["type"].as_str().unwrap() {
                "WAIT_CONTAINER" => {
                    assert_eq!(call["wait_container"]["container_id"]["value"], *web);
                    *wait = Some(answer);
                }
                "KILL_CONTAINER" => {
                    assert_eq!(call["kill_container"]["container_id"]["value"], *web);
                    *killed_with = call["kill_container"]["signal"].as_i64();
                    answer.send((200, String::new())).unwrap();
                }
                other => panic!("unexpected call {other}"),
            }
        }
    };
    let has = |seen: &[(String, TaskState, Option<String>)], task: &str, s: TaskState| {
        seen.iter().any(|(t, st, _)| t == task && *st == s)
    };
    let deadline = std::time::Instant::now() + WAIT;
    while !(has(&seen, "web", TaskState::TaskRunning) && wait.is_some()) {
        assert!(std::time::Instant::now() < deadline, "{seen:?}");
        pump(&mut seen, &mut wait, &mut killed_with);
    }
    // The other launch fails.
    side_launch
        .send((500, "Failed to launch container: no such image".into()))
        .unwrap();
    while !(has(&seen, "side", TaskState::TaskFailed)
        && has(&seen, "web", TaskState::TaskKilling)
        && killed_with.is_some())
    {
        assert!(std::time::Instant::now() < deadline, "{seen:?}");
        pump(&mut seen, &mut wait, &mut killed_with);
    }
    // The failed launch fails its task with the agent's words, and its
    // group is killed: SIGTERM to the other task's container.
    assert_eq!(killed_with, Some(15));
    assert!(seen.contains(&(
        "side".into(),
        TaskState::TaskFailed,
        Some("Failed to launch container: no such image".into())
    )));
    assert!(seen
        .iter()
        .any(|(t, s, _)| t == "web" && *s == TaskState::TaskRunning));
    assert!(seen
        .iter()
        .any(|(t, s, _)| t == "web" && *s == TaskState::TaskKilling));
    assert_eq!(
        std::fs::read_link(dir.path().join("tasks/web")).unwrap(),
        Path::new("../containers").join(&containers["web"].value)
    );
    // The container ends: TASK_KILLED, then it is removed.
    wait.unwrap()
        .send((
            200,
            r#"{"type":"WAIT_CONTAINER","wait_container":{"exit_status":15}}"#.into(),
        ))
        .unwrap();
    let u = agent.next_update();
    assert_eq!(
        (u.task_id.value.as_str(), state(&u), u.message.as_deref()),
        (
            "web",
            TaskState::TaskKilled,
            Some("Command terminated with signal Terminated")
        )
    );
    let (call, answer) = agent.next_operator_call();
    assert_eq!(call["type"], "REMOVE_CONTAINER");
    assert_eq!(
        call["remove_container"]["container_id"]["value"],
        containers["web"].value
    );
    answer.send((200, String::new())).unwrap();
    assert_eq!(join(h), 0);
}

#[test]
fn checkpointed_executor_resubscribes_with_what_was_not_acknowledged() {
    let agent = FakeAgent::start(false);
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(&agent, dir.path());
    config.checkpoint = true;
    let h = start_with(&agent, config, false);
    agent.push(launch(task("t4", "sleep 30")));
    let starting = agent.next_unacked_update();
    let running = agent.next_unacked_update();
    assert_eq!(state(&running), TaskState::TaskRunning);
    agent.disconnect();
    let sub = agent.next_call();
    assert_eq!(sub.r#type, Some(call::Type::Subscribe as i32));
    let sub = sub.subscribe.unwrap();
    let uuids: Vec<_> = sub
        .unacknowledged_updates
        .iter()
        .map(|u| u.status.uuid.clone())
        .collect();
    assert_eq!(uuids, vec![starting.uuid.clone(), running.uuid.clone()]);
    assert_eq!(sub.unacknowledged_tasks.len(), 1);
    assert_eq!(sub.unacknowledged_tasks[0].task_id.value, "t4");
    // Still running, still answering.
    agent.push(kill("t4", Some(Duration::from_millis(100))));
    loop {
        let u = agent.next_update();
        if state(&u) == TaskState::TaskKilled {
            break;
        }
    }
    assert_eq!(join(h), 0);
}

#[test]
fn every_call_carries_the_token_and_a_resubscription_too() {
    let agent = FakeAgent::start(false);
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(&agent, dir.path());
    config.checkpoint = true;
    config.auth_token = Some("the.executor.token".into());
    let h = start_with(&agent, config, false);
    agent.push(launch(task("t6", "sleep 30")));
    agent.next_unacked_update();
    assert_eq!(state(&agent.next_unacked_update()), TaskState::TaskRunning);
    agent.disconnect();
    let sub = agent.next_call();
    assert_eq!(sub.r#type, Some(call::Type::Subscribe as i32));
    agent.push(kill("t6", Some(Duration::from_millis(100))));
    while state(&agent.next_update()) != TaskState::TaskKilled {}
    assert_eq!(join(h), 0);
    let auths = agent.authorizations.lock().unwrap().clone();
    assert!(auths.len() >= 4, "{auths:?}");
    assert!(
        auths
            .iter()
            .all(|a| a.as_deref() == Some("Bearer the.executor.token")),
        "{auths:?}"
    );
}

#[test]
fn without_a_token_no_authorization_is_sent() {
    let agent = FakeAgent::start(false);
    let dir = tempfile::tempdir().unwrap();
    let h = start_executor(&agent, dir.path(), false);
    agent.push(launch(task("t7", "true")));
    while state(&agent.next_update()) != TaskState::TaskFinished {}
    assert_eq!(join(h), 0);
    let auths = agent.authorizations.lock().unwrap().clone();
    assert!(
        !auths.is_empty() && auths.iter().all(Option::is_none),
        "{auths:?}"
    );
}

#[test]
fn without_checkpointing_a_lost_agent_ends_the_executor() {
    let agent = FakeAgent::start(false);
    let dir = tempfile::tempdir().unwrap();
    let h = start_executor(&agent, dir.path(), false);
    agent.push(launch(task(
        "t5",
        "echo $$ > pid.new; mv pid.new pid; exec sleep 30",
    )));
    assert_eq!(state(&agent.next_update()), TaskState::TaskStarting);
    assert_eq!(state(&agent.next_update()), TaskState::TaskRunning);
    wait_for_file(&dir.path().join("pid"));
    agent.disconnect();
    assert_eq!(join(h), 1);
    // The task was killed on the way out.
    let pid: i32 = std::fs::read_to_string(dir.path().join("pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let gone = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err();
    assert!(gone, "task {pid} still runs");
}

/// VmRSS of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Measures a real `butte executor` (BUTTE_BIN, default the debug build)
/// idle after SUBSCRIBED and with a running task: prints VmRSS (which
/// counts the shared pages of libc and of the binary too).
/// `BUTTE_BIN=target/release/butte cargo test --lib idle_rss -- --ignored --nocapture`
#[test]
#[ignore]
fn idle_rss() {
    let bin = std::env::var("BUTTE_BIN")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/target/debug/butte").into());
    let agent = FakeAgent::start(false);
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(&bin)
        .arg("executor")
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("MESOS_FRAMEWORK_ID", "fw")
        .env("MESOS_EXECUTOR_ID", "ex")
        .env("MESOS_AGENT_ENDPOINT", &agent.addr)
        .env("MESOS_DIRECTORY", dir.path())
        .env("MESOS_SANDBOX", dir.path())
        .current_dir(dir.path())
        .spawn()
        .unwrap();
    let sub = agent.next_call();
    assert_eq!(sub.r#type, Some(call::Type::Subscribe as i32));
    std::thread::sleep(Duration::from_millis(500));
    let idle = rss_kib(child.id());

    agent.push(launch(task("rss", "exec sleep 30")));
    assert_eq!(state(&agent.next_update()), TaskState::TaskStarting);
    assert_eq!(state(&agent.next_update()), TaskState::TaskRunning);
    std::thread::sleep(Duration::from_millis(500));
    let running = rss_kib(child.id());

    eprintln!("{bin}: VmRSS idle after SUBSCRIBED {idle} KiB, with a running task {running} KiB");
    agent.push(kill("rss", Some(Duration::from_millis(100))));
    while state(&agent.next_update()) != TaskState::TaskKilled {}
    assert!(child.wait().unwrap().success());
}

/// A task with a root filesystem goes through `butte enter` (root only:
/// BUTTE_ROOTFS names a directory with a static busybox as /bin/sh).
/// `BUTTE_ROOTFS=/tmp/rfs cargo test --lib rootfs_task -- --ignored`
#[test]
#[ignore]
fn rootfs_task_runs_in_its_image() {
    let rootfs = std::env::var("BUTTE_ROOTFS").expect("BUTTE_ROOTFS");
    let agent = FakeAgent::start(false);
    let dir = tempfile::tempdir().unwrap();
    let infos = dir.path().join("launch.json");
    let info = crate::proto::launch::TaskLaunchInfo {
        rootfs: Some(rootfs.into()),
        env: vec![
            ("PATH".into(), "/bin".into()),
            ("FROM_IMAGE".into(), "1".into()),
        ],
        working_dir: None,
        user: None,
        command: None,
        seccomp: None,
        docker: None,
    };
    let map: crate::proto::launch::LaunchInfos = [("img".to_string(), info)].into();
    std::fs::write(&infos, serde_json::to_vec(&map).unwrap()).unwrap();
    let options = Options {
        default: false,
        launch_info: Some(infos),
        self_exe: concat!(env!("CARGO_MANIFEST_DIR"), "/target/debug/butte").into(),
        reap_all: false,
        logrotate: None,
        mesos: Default::default(),
        nested: false,
    };
    let (config, env) = (
        config(&agent, dir.path()),
        vec![("PATH".to_string(), "/usr/bin:/bin".to_string())],
    );
    let h = std::thread::spawn(move || run(config, env, options));
    assert_eq!(agent.next_call().r#type, Some(call::Type::Subscribe as i32));
    let mut t = task(
        "img",
        "echo $FROM_IMAGE $MESOS_SANDBOX $(pwd) > out; test -f /etc/passwd",
    );
    t.health_check = Some(HealthCheck {
        r#type: Some(health_check::Type::Command as i32),
        command: Some(CommandInfo {
            value: Some("test -f /mnt/mesos/sandbox/out".into()),
            ..Default::default()
        }),
        delay_seconds: Some(0.0),
        interval_seconds: Some(60.0),
        ..Default::default()
    });
    agent.push(launch(t));
    assert_eq!(state(&agent.next_update()), TaskState::TaskStarting);
    assert_eq!(state(&agent.next_update()), TaskState::TaskRunning);
    loop {
        let u = agent.next_update();
        if state(&u) == TaskState::TaskRunning {
            continue;
        }
        assert_eq!(state(&u), TaskState::TaskFinished, "{:?}", u.message);
        break;
    }
    assert_eq!(join(h), 0);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out")).unwrap(),
        "1 /mnt/mesos/sandbox /mnt/mesos/sandbox\n"
    );
}

/// A Docker task through the executor and `butte enter` (root only, like
/// the test above; BUTTE_BIN names the butte binary when it is not in
/// ./target/debug): its argv, environment (not ours) and settings.
/// `BUTTE_ROOTFS=/tmp/rfs cargo test --lib docker_task_runs -- --ignored`
#[test]
#[ignore]
fn docker_task_runs_as_the_agent_computed_it() {
    use crate::proto::launch::{Bind, DockerTask, LaunchInfos, TaskLaunchInfo};
    let rootfs = std::env::var("BUTTE_ROOTFS").expect("BUTTE_ROOTFS");
    let agent = FakeAgent::start(false);
    let dir = tempfile::tempdir().unwrap();
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("hello"), "from the host").unwrap();
    let infos = dir.path().join("launch.json");
    let docker = DockerTask {
        argv: vec![
            "sh".into(),
            "-c".into(),
            "echo \"$FROM_AGENT ${PATH_FROM_EXECUTOR:-none} $(pwd) $(cat /host/hello) $(ulimit -n)\" > /sbx/out; \
             touch /x 2>/dev/null && echo root-writable >> /sbx/out; grep CapEff /proc/self/status >> /sbx/out"
                .into(),
        ],
        env: vec![
            ("PATH".into(), "/bin".into()),
            ("FROM_AGENT".into(), "agent".into()),
        ],
        user: None,
        working_dir: "/sbx".into(),
        sandbox_dir: "/sbx".into(),
        binds: vec![Bind {
            source: host.path().to_path_buf(),
            target: "/host".into(),
            read_only: true,
        }],
        tmpfs: vec![],
        shm_size: None,
        read_only: true,
        capabilities: Some(vec!["CAP_KILL".into()]),
        rlimits: vec![("nofile".into(), 64, 64)],
        ..Default::default()
    };
    let info = TaskLaunchInfo {
        rootfs: Some(rootfs.into()),
        docker: Some(docker),
        ..Default::default()
    };
    let map: LaunchInfos = [("dock".to_string(), info)].into();
    std::fs::write(&infos, serde_json::to_vec(&map).unwrap()).unwrap();
    let bin = std::env::var("BUTTE_BIN")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/target/debug/butte").into());
    let options = Options {
        default: false,
        launch_info: Some(infos),
        self_exe: bin.into(),
        reap_all: false,
        logrotate: None,
        mesos: Default::default(),
        nested: false,
    };
    let (config, env) = (
        config(&agent, dir.path()),
        vec![
            ("PATH".to_string(), "/usr/bin:/bin".to_string()),
            ("PATH_FROM_EXECUTOR".to_string(), "leaked".to_string()),
        ],
    );
    let h = std::thread::spawn(move || run(config, env, options));
    assert_eq!(agent.next_call().r#type, Some(call::Type::Subscribe as i32));
    // The CommandInfo is not consulted.
    agent.push(launch(task("dock", "exit 3")));
    assert_eq!(state(&agent.next_update()), TaskState::TaskStarting);
    assert_eq!(state(&agent.next_update()), TaskState::TaskRunning);
    let u = agent.next_update();
    assert_eq!(state(&u), TaskState::TaskFinished, "{:?}", u.message);
    assert_eq!(join(h), 0);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out")).unwrap(),
        format!(
            "agent none /sbx from the host 64\nCapEff:\t{:016x}\n",
            1u64 << 5
        )
    );
}
