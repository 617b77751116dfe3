//! The calls to the agent against a fake operator API on 127.0.0.1 that
//! answers canned responses and hands each request to the test (its
//! protobuf body in Mesos' JSON form, for reading).

use super::*;
use crate::proto::mesos::v1::{container_info, image, value, ContainerInfo, Image, Resource};
use prost::Message;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};

/// A canned answer of the fake agent.
pub(crate) enum Reply {
    /// A whole response: a JSON `agent::Response`, sent as protobuf, or a
    /// text.
    Answer(u16, String),
    /// Closes the connection without answering (an agent going away).
    Close,
    /// Writes these bytes, then closes.
    Raw(Vec<u8>),
    /// Writes these bytes, then keeps the connection open this long.
    Hold(Vec<u8>, Duration),
}

/// A request the fake agent received.
#[derive(Debug)]
pub(crate) struct Request {
    pub path: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    /// The `agent::Call`, as JSON.
    pub body: Value,
}

/// An answer's body: a JSON `agent::Response` encoded as protobuf, any
/// other text as it is.
pub(crate) fn answer_body(text: &str) -> Vec<u8> {
    if text.starts_with('{') {
        crate::proto::from_json::<Response>(text.as_bytes())
            .expect("a JSON agent::Response")
            .encode_to_vec()
    } else {
        text.as_bytes().to_vec()
    }
}

/// A request body (an `agent::Call` in protobuf) as JSON.
pub(crate) fn call_json(body: &[u8]) -> Value {
    crate::proto::to_json(&Call::decode(body).expect("a protobuf agent::Call"))
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

pub(crate) struct Fake {
    pub addr: String,
    pub requests: Receiver<Request>,
}

impl Fake {
    pub fn next(&self) -> Request {
        self.requests
            .recv_timeout(Duration::from_secs(10))
            .expect("the fake agent got a request")
    }
}

fn read_request(r: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut first = String::new();
    if r.read_line(&mut first).ok()? == 0 {
        return None;
    }
    let path = first.split(' ').nth(1)?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (k, v) = line.split_once(':')?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some(Request {
        path,
        headers,
        body: call_json(&body),
    })
}

/// A fake agent answering its requests, in the order they come, with
/// `replies`.
pub(crate) fn fake(replies: Vec<Reply>) -> Fake {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let replies = Arc::new(Mutex::new(VecDeque::from(replies)));
    let (tx, requests) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            let (replies, tx) = (replies.clone(), tx.clone());
            std::thread::spawn(move || {
                let mut r = BufReader::new(conn);
                while let Some(request) = read_request(&mut r) {
                    let _ = tx.send(request);
                    let reply = replies.lock().unwrap().pop_front();
                    let w = r.get_mut();
                    match reply {
                        Some(Reply::Answer(status, text)) => {
                            let body = answer_body(&text);
                            let head = format!(
                                "HTTP/1.1 {status} X\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}\r\n\r\n",
                                body.len()
                            );
                            let _ = w.write_all(head.as_bytes());
                            let _ = w.write_all(&body);
                        }
                        Some(Reply::Raw(bytes)) => {
                            let _ = w.write_all(&bytes);
                            return;
                        }
                        Some(Reply::Hold(bytes, time)) => {
                            let _ = w.write_all(&bytes);
                            std::thread::sleep(time);
                            return;
                        }
                        Some(Reply::Close) | None => return,
                    }
                }
            });
        }
    });
    Fake { addr, requests }
}

fn id(value: &str, parent: Option<ContainerId>) -> ContainerId {
    ContainerId {
        value: value.into(),
        parent: parent.map(Box::new),
    }
}

fn task_id() -> ContainerId {
    id("task-c", Some(id("exec-c", None)))
}

fn id_json() -> Value {
    json!({"value": "task-c", "parent": {"value": "exec-c"}})
}

#[test]
fn launch_asks_for_a_nested_container_with_the_task_and_the_executors_token() {
    let f = fake(vec![
        Reply::Answer(200, String::new()),
        Reply::Answer(
            500,
            "Failed to launch container: image 'nope' not found".into(),
        ),
        // An agent going away mid-launch, then recovering, then knowing
        // the container it launched before it went.
        Reply::Close,
        Reply::Answer(503, "Agent has not finished recovery".into()),
        Reply::Answer(202, String::new()),
    ]);
    let agent = Agent::new(&f.addr, Some("secret-token"));
    let task = TaskInfo {
        name: "web".into(),
        task_id: crate::proto::mesos::v1::TaskId { value: "t1".into() },
        resources: vec![Resource {
            name: "cpus".into(),
            r#type: value::Type::Scalar as i32,
            scalar: Some(value::Scalar { value: 0.5 }),
            ..Default::default()
        }],
        container: Some(ContainerInfo {
            r#type: container_info::Type::Mesos as i32,
            mesos: Some(container_info::MesosInfo {
                image: Some(Image {
                    r#type: image::Type::Docker as i32,
                    docker: Some(image::Docker {
                        name: "busybox".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let command = CommandInfo {
        value: Some("echo hi".into()),
        ..Default::default()
    };
    let retry = Duration::from_millis(10);
    agent
        .launch(&task_id(), &task, command.clone(), retry)
        .unwrap();
    let r = f.next();
    assert_eq!(r.path, "/api/v1");
    assert_eq!(r.header("content-type"), Some("application/x-protobuf"));
    assert_eq!(r.header("accept"), Some("application/x-protobuf"));
    assert_eq!(r.header("authorization"), Some("Bearer secret-token"));
    assert_eq!(
        r.body,
        json!({
            "type": "LAUNCH_CONTAINER",
            "launch_container": {
                "container_id": id_json(),
                "command": {"value": "echo hi"},
                "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.5}}],
                "container": {
                    "type": "MESOS",
                    "mesos": {"image": {"type": "DOCKER", "docker": {"name": "busybox"}}}
                }
            }
        })
    );
    // A refused launch: the agent's words, for the task's TASK_FAILED.
    let e = agent
        .launch(&task_id(), &task, command.clone(), retry)
        .unwrap_err();
    assert_eq!(
        e.agent_message(),
        "Failed to launch container: image 'nope' not found"
    );
    assert!(!e.transient());
    // Sent again, with the same id, until the agent answers.
    let _ = f.next();
    agent.launch(&task_id(), &task, command, retry).unwrap();
    for _ in 0..3 {
        assert_eq!(f.next().body["launch_container"]["container_id"], id_json());
    }
}

#[test]
fn kill_and_remove_name_the_container_and_the_signal() {
    let f = fake(vec![
        Reply::Answer(200, String::new()),
        Reply::Answer(404, "Container not found".into()),
        Reply::Answer(200, String::new()),
    ]);
    let agent = Agent::new(&f.addr, None);
    agent.kill(&task_id(), 15).unwrap();
    let r = f.next();
    assert_eq!(r.header("authorization"), None);
    assert_eq!(
        r.body,
        json!({"type": "KILL_CONTAINER", "kill_container": {"container_id": id_json(), "signal": 15}})
    );
    assert!(matches!(
        agent.kill(&task_id(), 9),
        Err(NestedError::Refused { status: 404, .. })
    ));
    f.next();
    agent.remove(&task_id()).unwrap();
    assert_eq!(
        f.next().body,
        json!({"type": "REMOVE_CONTAINER", "remove_container": {"container_id": id_json()}})
    );
}

fn wait_answer(exit_status: i32) -> String {
    json!({"type": "WAIT_CONTAINER", "wait_container": {"exit_status": exit_status}}).to_string()
}

#[test]
fn a_broken_wait_is_made_again_until_the_agent_answers() {
    let f = fake(vec![
        // The agent goes away mid-wait (a restart) ...
        Reply::Close,
        // ... and is still recovering when asked again.
        Reply::Answer(503, "Agent has not finished recovery".into()),
        Reply::Answer(200, wait_answer(256)),
        Reply::Answer(404, "Container not found".into()),
    ]);
    let agent = Agent::new(&f.addr, None);
    let waited = agent.wait_until_answered(&task_id(), Duration::from_millis(10));
    assert_eq!(
        waited,
        Waited::Ended(response::WaitContainer {
            exit_status: Some(256),
            ..Default::default()
        })
    );
    for _ in 0..3 {
        assert_eq!(
            f.next().body,
            json!({"type": "WAIT_CONTAINER", "wait_container": {"container_id": id_json()}})
        );
    }
    // After a restart that lost the container: gone.
    assert_eq!(
        agent.wait_until_answered(&task_id(), Duration::from_millis(10)),
        Waited::Gone
    );
}

#[test]
fn a_wait_in_the_background_reports_to_the_executor() {
    let f = fake(vec![Reply::Answer(200, wait_answer(0))]);
    let agent = Agent::new(&f.addr, None);
    let (tx, rx) = mpsc::channel();
    agent.wait_in_background("t1".into(), task_id(), tx);
    match rx.recv_timeout(Duration::from_secs(10)).unwrap() {
        Input::Nested(Report::Waited { task_id, waited }) => {
            assert_eq!(task_id, "t1");
            assert!(matches!(waited, Waited::Ended(w) if w.exit_status == Some(0)));
        }
        other => panic!("unexpected {other:?}"),
    }
}

fn ended(w: response::WaitContainer) -> Waited {
    Waited::Ended(w)
}

fn exit(status: i32) -> response::WaitContainer {
    response::WaitContainer {
        exit_status: Some(status),
        ..Default::default()
    }
}

#[test]
fn wait_answers_become_the_terminal_updates_mesos_sends() {
    let e = ending(&ended(exit(0)), false, false);
    assert_eq!(
        (e.state, e.message.as_deref()),
        (
            TaskState::TaskFinished,
            Some("Command exited with status 0")
        )
    );
    let e = ending(&ended(exit(3 << 8)), false, false);
    assert_eq!(
        (e.state, e.message.as_deref()),
        (TaskState::TaskFailed, Some("Command exited with status 3"))
    );
    // Killed by the executor.
    let e = ending(&ended(exit(15)), true, false);
    assert_eq!(
        (e.state, e.message.as_deref()),
        (
            TaskState::TaskKilled,
            Some("Command terminated with signal Terminated")
        )
    );
    // Past its maximum completion time.
    let e = ending(&ended(exit(9)), true, true);
    assert_eq!(e.state, TaskState::TaskFailed);
    assert_eq!(
        e.reason,
        Some(task_status::Reason::MaxCompletionTimeReached as i32)
    );
    // Stopped by the agent: its state, reason, message and limitation win.
    let limitation = TaskResourceLimitation {
        resources: vec![Resource {
            name: "mem".into(),
            r#type: value::Type::Scalar as i32,
            scalar: Some(value::Scalar { value: 64.0 }),
            ..Default::default()
        }],
    };
    let e = ending(
        &ended(response::WaitContainer {
            exit_status: Some(9),
            state: Some(TaskState::TaskFailed as i32),
            reason: Some(task_status::Reason::ContainerLimitationMemory as i32),
            limitation: Some(limitation.clone()),
            message: Some("Memory limit exceeded: Requested: 64MB".into()),
        }),
        false,
        false,
    );
    assert_eq!(e.state, TaskState::TaskFailed);
    assert_eq!(
        e.reason,
        Some(task_status::Reason::ContainerLimitationMemory as i32)
    );
    assert_eq!(
        e.message.as_deref(),
        Some("Command terminated with signal Killed: Memory limit exceeded: Requested: 64MB")
    );
    assert_eq!(e.limitation, Some(limitation));
    let e = ending(&ended(response::WaitContainer::default()), false, false);
    assert_eq!(
        (e.state, e.message.as_deref()),
        (
            TaskState::TaskFailed,
            Some("Command terminated with unknown status")
        )
    );
    // A container the agent lost.
    let e = ending(&Waited::Gone, false, false);
    assert_eq!(
        (e.state, e.message.as_deref()),
        (
            TaskState::TaskFailed,
            Some("Unable to retrieve command's termination information")
        )
    );
    assert_eq!(
        ending(&Waited::Gone, true, false).state,
        TaskState::TaskKilled
    );
    assert_eq!(
        ending(&Waited::Failed("403 Forbidden".into()), false, false).state,
        TaskState::TaskFailed
    );
}

#[test]
fn wait_statuses_decode_as_exit_codes_and_signals() {
    assert_eq!(exit_of(0), Some(Exit::Code(0)));
    assert_eq!(exit_of(42 << 8), Some(Exit::Code(42)));
    assert_eq!(exit_of(9), Some(Exit::Signal(9)));
    assert_eq!(exit_of(0x80 | 11), Some(Exit::Signal(11)));
    assert_eq!(exit_of(0x137f), None);
    assert_eq!(display(&task_id()), "exec-c.task-c");
    let child = child_id(&task_id(), "check-").unwrap();
    assert!(child.value.starts_with("check-") && child.value.len() == 6 + 36);
    assert_eq!(child.parent.as_deref(), Some(&task_id()));
}

/// The head and the RecordIO body of a session whose command printed
/// something and exited.
fn session_stream(hold: bool) -> Vec<u8> {
    let mut out = b"HTTP/1.1 200 OK\r\nContent-Type: application/recordio\r\nMessage-Content-Type: application/x-protobuf\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    // (The records are not read: any bytes do.)
    let record = b"a ProcessIO record";
    let framed = format!("{}\n", record.len());
    let chunk_len = framed.len() + record.len();
    out.extend_from_slice(format!("{chunk_len:x}\r\n{framed}").as_bytes());
    out.extend_from_slice(record);
    out.extend_from_slice(b"\r\n");
    if !hold {
        out.extend_from_slice(b"0\r\n\r\n");
    }
    out
}

fn wait_nested_answer(exit_status: i32) -> Reply {
    Reply::Answer(
        200,
        json!({"type": "WAIT_NESTED_CONTAINER", "wait_nested_container": {"exit_status": exit_status}})
            .to_string(),
    )
}

#[test]
fn a_command_check_runs_in_a_debug_container_through_a_session() {
    let f = fake(vec![
        Reply::Raw(session_stream(false)),
        wait_nested_answer(3 << 8),
        Reply::Answer(200, String::new()),
    ]);
    let agent = Agent::new(&f.addr, Some("tok"));
    let command = CommandInfo {
        value: Some("test -f /ready".into()),
        ..Default::default()
    };
    let outcome = agent.command_check(&task_id(), &command, Duration::from_secs(10));
    assert_eq!(outcome, Some(Outcome::Command(3)));
    let launch = f.next();
    assert_eq!(launch.header("accept"), Some("application/recordio"));
    assert_eq!(
        launch.header("message-accept"),
        Some("application/x-protobuf")
    );
    assert_eq!(launch.header("authorization"), Some("Bearer tok"));
    assert_eq!(launch.body["type"], "LAUNCH_NESTED_CONTAINER_SESSION");
    let session = &launch.body["launch_nested_container_session"];
    // No ContainerInfo: a DEBUG container in the task's namespaces.
    assert_eq!(session.get("container"), None);
    assert_eq!(session["command"], json!({"value": "test -f /ready"}));
    let check_id = session["container_id"].clone();
    assert!(check_id["value"].as_str().unwrap().starts_with("check-"));
    assert_eq!(check_id["parent"], id_json());
    assert_eq!(
        f.next().body,
        json!({"type": "WAIT_NESTED_CONTAINER", "wait_nested_container": {"container_id": check_id}})
    );
    assert_eq!(
        f.next().body,
        json!({"type": "REMOVE_NESTED_CONTAINER", "remove_nested_container": {"container_id": check_id}})
    );
}

#[test]
fn a_check_past_its_timeout_is_closed_waited_for_and_removed() {
    let f = fake(vec![
        Reply::Hold(session_stream(true), Duration::from_secs(5)),
        wait_nested_answer(9),
        Reply::Answer(200, String::new()),
    ]);
    let agent = Agent::new(&f.addr, None);
    let command = CommandInfo {
        value: Some("sleep 100".into()),
        ..Default::default()
    };
    let started = Instant::now();
    let outcome = agent.command_check(&task_id(), &command, Duration::from_millis(300));
    assert!(started.elapsed() < Duration::from_secs(4));
    assert_eq!(
        outcome,
        Some(Outcome::Error("Command timed out after 300ms".into()))
    );
    for call in [
        "LAUNCH_NESTED_CONTAINER_SESSION",
        "WAIT_NESTED_CONTAINER",
        "REMOVE_NESTED_CONTAINER",
    ] {
        assert_eq!(f.next().body["type"], call);
    }
}

#[test]
fn checks_the_agent_could_not_run_give_no_result() {
    // The launch refused (the agent still recovering, say).
    let f = fake(vec![Reply::Answer(
        503,
        "Agent has not finished recovery".into(),
    )]);
    let agent = Agent::new(&f.addr, None);
    let command = CommandInfo {
        value: Some("true".into()),
        ..Default::default()
    };
    assert_eq!(
        agent.command_check(&task_id(), &command, Duration::from_secs(5)),
        None
    );
    // SIGKILLed, as when the task ended under it.
    let f = fake(vec![
        Reply::Raw(session_stream(false)),
        wait_nested_answer(9),
        Reply::Answer(200, String::new()),
    ]);
    let agent = Agent::new(&f.addr, None);
    assert_eq!(
        agent.command_check(&task_id(), &command, Duration::from_secs(5)),
        None
    );
    // No agent at all.
    let agent = Agent::new("127.0.0.1:1", None);
    assert_eq!(
        agent.command_check(&task_id(), &command, Duration::from_secs(5)),
        None
    );
}
