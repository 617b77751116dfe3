//! The v1 operator API against a fake agent, as a client sees it: status
//! codes, encodings, validation, files, authentication.

use super::*;
use crate::proto::mesos::v1::agent::{response, Response as AgentResponse};
use crate::proto::mesos::v1::Flag;
use base64::Engine as _;
use hyper::header::{ACCEPT, AUTHORIZATION};
use serde_json::{json, Value};

/// Answers GET_FLAGS with one flag and records SET_LOGGING_LEVEL.
struct Fake {
    sandbox: std::path::PathBuf,
    calls: std::sync::Mutex<Vec<AgentCall>>,
    /// Sessions launched, and whether each one's stream was dropped.
    sessions: std::sync::Mutex<Vec<(SessionLaunch, Arc<std::sync::atomic::AtomicBool>)>>,
    /// Input records received, by container.
    inputs: Arc<std::sync::Mutex<Vec<(String, InputRecord)>>>,
}

/// Sets the flag when dropped.
struct Dropped(Arc<std::sync::atomic::AtomicBool>);

impl Drop for Dropped {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// `out\n` on stdout, `err\n` on stderr, then the end.
fn output(flag: Arc<std::sync::atomic::AtomicBool>) -> OutputStream {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.try_send(OutputChunk::Stdout(Bytes::from_static(b"out\n")))
        .unwrap();
    tx.try_send(OutputChunk::Stderr(Bytes::from_static(b"err\n")))
        .unwrap();
    OutputStream {
        chunks: rx,
        guard: Box::new(Dropped(flag)),
    }
}

impl OperatorApi for Fake {
    fn view(
        &self,
        _: super::super::View,
    ) -> super::super::BoxFuture<'_, Result<Bytes, OperatorError>> {
        Box::pin(async { Err(OperatorError::Internal("no views here".into())) })
    }

    fn attached(
        &self,
    ) -> super::super::BoxFuture<'_, Result<super::super::Attached, OperatorError>> {
        let mut a = super::super::Attached::new();
        a.insert("/sandbox".into(), self.sandbox.clone());
        Box::pin(async move { Ok(a) })
    }

    fn call(&self, call: AgentCall) -> super::super::BoxFuture<'_, Result<Answer, OperatorError>> {
        self.calls.lock().unwrap().push(call.clone());
        Box::pin(async move {
            Ok(match call {
                AgentCall::SetLoggingLevel { .. } => Answer::Ok,
                AgentCall::LaunchContainer(c) if c.container_id.value == "dup" => Answer::Accepted,
                AgentCall::LaunchContainer(_)
                | AgentCall::KillContainer { .. }
                | AgentCall::LaunchNested(_)
                | AgentCall::RemoveNested(_) => Answer::Ok,
                AgentCall::WaitContainer(id) => {
                    return Err(OperatorError::Missing(format!(
                        "Container {id} cannot be found"
                    )))
                }
                AgentCall::Executors => {
                    let mut lists = Lists::new(response::Type::GetExecutors);
                    let info = crate::proto::mesos::v1::ExecutorInfo {
                        executor_id: crate::proto::mesos::v1::ExecutorId { value: "e".into() },
                        name: Some("caf\u{e9} \"x\"".into()),
                        ..Default::default()
                    };
                    lists.push(List::CompletedExecutors, |b| info.encode_raw(b));
                    Answer::Lists(Box::new(lists))
                }
                _ => Answer::Response(Box::new(AgentResponse {
                    r#type: Some(response::Type::GetFlags as i32),
                    get_flags: Some(response::GetFlags {
                        flags: vec![Flag {
                            name: "work_dir".into(),
                            value: Some("/var/lib/butte".into()),
                        }],
                    }),
                    ..Default::default()
                })),
            })
        })
    }

    fn launch_session(
        &self,
        launch: SessionLaunch,
    ) -> super::super::BoxFuture<'_, Result<OutputStream, OperatorError>> {
        let flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
        self.sessions.lock().unwrap().push((launch, flag.clone()));
        Box::pin(async move { Ok(output(flag)) })
    }

    fn attach_output(
        &self,
        id: ContainerId,
    ) -> super::super::BoxFuture<'_, Result<OutputStream, OperatorError>> {
        Box::pin(async move {
            if id.value == "gone" {
                return Err(OperatorError::Missing(format!(
                    "Container {} cannot be found",
                    id.value
                )));
            }
            Ok(output(Arc::default()))
        })
    }

    fn attach_input(
        &self,
        id: ContainerId,
    ) -> super::super::BoxFuture<'_, Result<InputSink, OperatorError>> {
        let inputs = self.inputs.clone();
        Box::pin(async move {
            if id.value == "busy" {
                return Err(OperatorError::Conflict(
                    "Multiple input connections are not allowed".into(),
                ));
            }
            let (tx, mut rx) = tokio::sync::mpsc::channel(1);
            tokio::spawn(async move {
                while let Some(r) = rx.recv().await {
                    inputs.lock().unwrap().push((id.value.clone(), r));
                }
            });
            Ok(InputSink {
                records: tx,
                guard: Box::new(()),
            })
        })
    }
}

struct Reply {
    status: StatusCode,
    headers: hyper::HeaderMap,
    body: Bytes,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Value {
        assert_eq!(self.status, StatusCode::OK, "{}", self.text());
        assert_eq!(self.headers[CONTENT_TYPE], "application/json");
        serde_json::from_slice(&self.body).unwrap()
    }
}

fn fake() -> (tempfile::TempDir, Arc<Fake>) {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("stdout"), "hello from lab\n").unwrap();
    let fake = Arc::new(Fake {
        sandbox: tmp.path().to_path_buf(),
        calls: Default::default(),
        sessions: Default::default(),
        inputs: Default::default(),
    });
    (tmp, fake)
}

async fn send(
    api: Arc<Fake>,
    auth: &Authenticator,
    method: Method,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Reply {
    let mut req = Request::builder().method(method).uri(PATH);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(body.into())).unwrap();
    let r = handle(api, auth, req).await;
    let status = r.status();
    let headers = r.headers().clone();
    let body = r.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        body,
    }
}

async fn post(api: Arc<Fake>, body: &str) -> Reply {
    send(
        api,
        &Authenticator::default(),
        Method::POST,
        &[("content-type", "application/json")],
        body.to_string(),
    )
    .await
}

#[tokio::test]
async fn health_is_answered_in_json_like_mesos() {
    let (_tmp, api) = fake();
    let r = post(api, r#"{"type":"GET_HEALTH"}"#).await;
    assert_eq!(
        r.json(),
        json!({"type": "GET_HEALTH", "get_health": {"healthy": true}})
    );
}

/// An answer the agent gives as encoded lists (GET_EXECUTORS here) comes
/// out in either encoding, every list there in JSON.
#[tokio::test]
async fn answers_given_as_lists_come_in_json_and_protobuf() {
    let (_tmp, api) = fake();
    let r = post(api.clone(), r#"{"type":"GET_EXECUTORS"}"#).await;
    assert_eq!(
        r.text(),
        r#"{"type":"GET_EXECUTORS","get_executors":{"executors":[],"completed_executors":[{"executor_info":{"executor_id":{"value":"e"},"name":"café \"x\""}}]}}"#
    );
    assert_eq!(r.headers[CONTENT_TYPE], "application/json");
    let call = Call {
        r#type: Some(call::Type::GetExecutors as i32),
        ..Default::default()
    };
    let r = send(
        api,
        &Authenticator::default(),
        Method::POST,
        &[
            ("content-type", "application/x-protobuf"),
            ("accept", "application/x-protobuf"),
        ],
        call.encode_to_vec(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers[CONTENT_TYPE], "application/x-protobuf");
    let decoded = AgentResponse::decode(r.body.as_ref()).unwrap();
    assert_eq!(decoded.r#type, Some(response::Type::GetExecutors as i32));
    let executors = decoded.get_executors.unwrap();
    assert!(executors.executors.is_empty());
    assert_eq!(
        executors.completed_executors[0].executor_info.name(),
        "café \"x\""
    );
}

#[tokio::test]
async fn protobuf_in_and_out_when_accept_asks_for_it() {
    let (_tmp, api) = fake();
    let call = Call {
        r#type: Some(call::Type::GetFlags as i32),
        ..Default::default()
    };
    let r = send(
        api.clone(),
        &Authenticator::default(),
        Method::POST,
        &[
            ("content-type", "application/x-protobuf"),
            ("accept", "application/x-protobuf"),
        ],
        call.encode_to_vec(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers[CONTENT_TYPE], "application/x-protobuf");
    let decoded = AgentResponse::decode(r.body.as_ref()).unwrap();
    assert_eq!(decoded.get_flags.unwrap().flags[0].name, "work_dir");
    // JSON is preferred whenever allowed; neither allowed is a 406.
    let r = send(
        api.clone(),
        &Authenticator::default(),
        Method::POST,
        &[
            ("content-type", "application/x-protobuf"),
            (ACCEPT.as_str(), "*/*"),
        ],
        call.encode_to_vec(),
    )
    .await;
    assert_eq!(r.json()["get_flags"]["flags"][0]["value"], "/var/lib/butte");
    let r = send(
        api,
        &Authenticator::default(),
        Method::POST,
        &[
            ("content-type", "application/x-protobuf"),
            ("accept", "text/html"),
        ],
        call.encode_to_vec(),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_ACCEPTABLE, "{}", r.text());
}

#[tokio::test]
async fn bad_requests_get_mesos_status_codes_with_a_message() {
    let (_tmp, api) = fake();
    let auth = Authenticator::default();
    let r = send(api.clone(), &auth, Method::GET, &[], "").await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.headers[hyper::header::ALLOW], "POST");
    let r = send(api.clone(), &auth, Method::POST, &[], "{}").await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (
            StatusCode::BAD_REQUEST,
            "Expecting 'Content-Type' to be present"
        )
    );
    let r = send(
        api.clone(),
        &auth,
        Method::POST,
        &[("content-type", "text/plain")],
        "{}",
    )
    .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    for (body, status, says) in [
        ("{not json", 400, "Failed to parse body into JSON"),
        (
            r#"{"type":"GET_EVERYTHING"}"#,
            400,
            "Failed to convert JSON into Call protobuf",
        ),
        (r#"{"type":"GET_HEALTH","bogus":1}"#, 400, "bogus"),
        ("{}", 400, "Expecting 'type' to be present"),
        (
            r#"{"type":"GET_METRICS"}"#,
            400,
            "Expecting 'get_metrics' to be present",
        ),
        (
            r#"{"type":"READ_FILE","read_file":{"path":"/x"}}"#,
            400,
            "offset",
        ),
        (
            r#"{"type":"LAUNCH_CONTAINER"}"#,
            400,
            "Expecting 'launch_container' to be present",
        ),
        (
            r#"{"type":"WAIT_CONTAINER","wait_container":{"container_id":{"value":"a.b"}}}"#,
            400,
            "contains invalid characters",
        ),
        (r#"{"type":"UNKNOWN"}"#, 501, "UNKNOWN"),
        (
            r#"{"type":"LAUNCH_NESTED_CONTAINER_SESSION","launch_nested_container_session":{"container_id":{"value":"c","parent":{"value":"p"}}}}"#,
            400,
            "Expecting 'launch_nested_container_session.command' to be present",
        ),
    ] {
        let r = post(api.clone(), body).await;
        assert_eq!(r.status.as_u16(), status, "{body}: {}", r.text());
        assert!(r.text().contains(says), "{body}: {}", r.text());
    }
    let r = send(
        api.clone(),
        &auth,
        Method::POST,
        &[("content-type", "application/x-protobuf")],
        vec![0xff, 0xff, 0xff],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.text()
            .starts_with("Failed to parse body into Call protobuf"),
        "{}",
        r.text()
    );
    // An enum number the enum lacks is no type, as for a proto2 parser.
    let r = send(
        api.clone(),
        &auth,
        Method::POST,
        &[("content-type", "application/x-protobuf")],
        vec![0x08, 99],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    let r = send(
        api.clone(),
        &auth,
        Method::POST,
        &[("content-type", "application/json")],
        vec![b' '; MAX_CALL_BYTES + 1],
    )
    .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(api.calls.lock().unwrap().is_empty());
}

#[tokio::test]
async fn files_are_listed_and_read_through_the_confinement() {
    let (tmp, api) = fake();
    std::os::unix::fs::symlink("/etc/passwd", tmp.path().join("passwd")).unwrap();
    let r = post(
        api.clone(),
        r#"{"type":"LIST_FILES","list_files":{"path":"/sandbox"}}"#,
    )
    .await
    .json();
    let infos = r["list_files"]["file_infos"].as_array().unwrap();
    let stdout = infos
        .iter()
        .find(|f| f["path"] == "/sandbox/stdout")
        .unwrap();
    assert_eq!(stdout["size"], 15);
    assert_eq!(stdout["mode"].as_u64().unwrap() & 0o170000, 0o100000);
    assert!(stdout["mtime"]["nanoseconds"].as_i64().unwrap() > 0);

    let r = post(
        api.clone(),
        r#"{"type":"READ_FILE","read_file":{"path":"/sandbox/stdout","offset":6,"length":4}}"#,
    )
    .await
    .json();
    let data = base64::engine::general_purpose::STANDARD
        .decode(r["read_file"]["data"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        (r["read_file"]["size"].as_u64(), data.as_slice()),
        (Some(15), &b"from"[..])
    );
    // A huge length is capped (as Mesos caps it), not an error.
    let big = "x".repeat(200 * 1024);
    std::fs::write(tmp.path().join("big"), &big).unwrap();
    let r = post(
        api.clone(),
        &format!(
            r#"{{"type":"READ_FILE","read_file":{{"path":"/sandbox/big","offset":0,"length":{}}}}}"#,
            u64::MAX
        ),
    )
    .await
    .json();
    let data = base64::engine::general_purpose::STANDARD
        .decode(r["read_file"]["data"].as_str().unwrap())
        .unwrap();
    assert_eq!(data.len() as u64, files::MAX_READ);
    // A length beyond 64 bits, a link out, `..`, an unattached path.
    for (body, status) in [
        (
            r#"{"type":"READ_FILE","read_file":{"path":"/sandbox/big","offset":0,"length":99999999999999999999999}}"#,
            400,
        ),
        (
            r#"{"type":"READ_FILE","read_file":{"path":"/sandbox/passwd","offset":0}}"#,
            400,
        ),
        (
            r#"{"type":"READ_FILE","read_file":{"path":"/sandbox/../../etc/passwd","offset":0}}"#,
            400,
        ),
        (
            r#"{"type":"READ_FILE","read_file":{"path":"/etc/passwd","offset":0}}"#,
            404,
        ),
        (r#"{"type":"LIST_FILES","list_files":{"path":"/etc"}}"#, 404),
    ] {
        let r = post(api.clone(), body).await;
        assert_eq!(r.status.as_u16(), status, "{body}: {}", r.text());
        assert!(!r.text().contains("root:"), "{body}");
    }
}

#[tokio::test]
async fn set_logging_level_is_an_empty_200_and_reaches_the_agent() {
    let (_tmp, api) = fake();
    let r = post(
        api.clone(),
        r#"{"type":"SET_LOGGING_LEVEL","set_logging_level":{"level":1,"duration":{"nanoseconds":2000000000}}}"#,
    )
    .await;
    assert_eq!((r.status, r.body.len()), (StatusCode::OK, 0));
    assert_eq!(
        api.calls.lock().unwrap().as_slice(),
        [AgentCall::SetLoggingLevel {
            level: 1,
            duration: Duration::from_secs(2)
        }]
    );
}

#[tokio::test]
async fn the_whole_api_is_in_the_read_write_realm() {
    let (_tmp, api) = fake();
    let creds = vec![super::super::Credential {
        principal: "ops".into(),
        secret: "s3cret".into(),
    }];
    let rw = Authenticator::new(false, true, creds.clone()).unwrap();
    let json = [("content-type", "application/json")];
    let r = send(
        api.clone(),
        &rw,
        Method::POST,
        &json,
        r#"{"type":"GET_HEALTH"}"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.headers[WWW_AUTHENTICATE],
        "Basic realm=\"mesos-agent-readwrite\""
    );
    let token = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("ops:s3cret")
    );
    let with = [json[0], (AUTHORIZATION.as_str(), token.as_str())];
    let r = send(
        api.clone(),
        &rw,
        Method::POST,
        &with,
        r#"{"type":"GET_HEALTH"}"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    // Read-only authentication alone leaves /api/v1 open, as in Mesos.
    let ro = Authenticator::new(true, false, creds).unwrap();
    let r = send(api, &ro, Method::POST, &json, r#"{"type":"GET_HEALTH"}"#).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[test]
fn fuzz_entry_holds_on_samples() {
    for sample in [
        &b"application/json\n{\"type\":\"GET_HEALTH\"}"[..],
        b"application/json\n{\"type\":\"READ_FILE\",\"read_file\":{\"path\":\"/x\",\"offset\":1}}",
        b"application/x-protobuf\n\x08\x63",
        b"application/x-protobuf\n\x08\x01",
        b"application/json\n{\"type\":99}",
    ] {
        fuzz::call(sample);
    }
}

#[test]
fn lists_mesos_writes_itself_are_always_there() {
    let r = AgentResponse {
        r#type: Some(response::Type::GetState as i32),
        get_state: Some(response::GetState {
            get_tasks: Some(Default::default()),
            get_executors: Some(Default::default()),
            get_frameworks: Some(Default::default()),
        }),
        ..Default::default()
    };
    assert_eq!(
        to_json(&r),
        json!({"type": "GET_STATE", "get_state": {
            "get_tasks": {"pending_tasks": [], "queued_tasks": [], "launched_tasks": [],
                          "terminated_tasks": [], "completed_tasks": []},
            "get_executors": {"executors": [], "completed_executors": []},
            "get_frameworks": {"frameworks": [], "completed_frameworks": []}}})
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&json_bytes(&r)).unwrap(),
        to_json(&r)
    );
}

#[test]
fn the_list_writer_writes_what_the_json_mapping_gives() {
    use crate::proto::mesos::v1::{self as m, agent::response::get_frameworks};
    let task = |id: &str| m::Task {
        name: id.into(),
        task_id: m::TaskId { value: id.into() },
        framework_id: m::FrameworkId { value: "f".into() },
        agent_id: m::AgentId { value: "a".into() },
        state: m::TaskState::TaskRunning as i32,
        statuses: vec![m::TaskStatus {
            task_id: m::TaskId { value: id.into() },
            state: m::TaskState::TaskRunning as i32,
            timestamp: Some(1.5),
            uuid: Some(vec![1, 2, 3]),
            ..Default::default()
        }],
        ..Default::default()
    };
    let tasks = response::GetTasks {
        launched_tasks: vec![task("t1"), task("t2")],
        completed_tasks: vec![task("t0")],
        ..Default::default()
    };
    let frameworks = response::GetFrameworks {
        frameworks: vec![get_frameworks::Framework {
            framework_info: m::FrameworkInfo {
                user: "root".into(),
                name: "fw".into(),
                failover_timeout: Some(0.0),
                ..Default::default()
            },
        }],
        ..Default::default()
    };
    for r in [
        AgentResponse {
            r#type: Some(response::Type::GetState as i32),
            get_state: Some(response::GetState {
                get_tasks: Some(tasks.clone()),
                get_executors: None,
                get_frameworks: Some(frameworks.clone()),
            }),
            ..Default::default()
        },
        AgentResponse {
            r#type: Some(response::Type::GetTasks as i32),
            get_tasks: Some(tasks),
            ..Default::default()
        },
        AgentResponse {
            r#type: Some(response::Type::GetFrameworks as i32),
            get_frameworks: Some(frameworks),
            ..Default::default()
        },
    ] {
        let written: Value = serde_json::from_slice(&json_bytes(&r)).unwrap();
        assert_eq!(written, to_json(&r));
    }
}

#[tokio::test]
async fn standalone_and_nested_container_calls_reach_the_agent() {
    let (_dir, api) = fake();
    let launch = r#"{"type":"LAUNCH_CONTAINER","launch_container":{"container_id":{"value":"c1"},"command":{"value":"true"},"resources":[{"name":"mem","type":"SCALAR","scalar":{"value":64}}]}}"#;
    let r = post(api.clone(), launch).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.body.is_empty());
    let dup = r#"{"type":"LAUNCH_CONTAINER","launch_container":{"container_id":{"value":"dup"}}}"#;
    assert_eq!(post(api.clone(), dup).await.status, StatusCode::ACCEPTED);
    let kill = r#"{"type":"KILL_CONTAINER","kill_container":{"container_id":{"value":"c1"}}}"#;
    assert_eq!(post(api.clone(), kill).await.status, StatusCode::OK);
    let wait = r#"{"type":"WAIT_CONTAINER","wait_container":{"container_id":{"value":"nope"}}}"#;
    let r = post(api.clone(), wait).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.text(), "Container nope cannot be found");
    let calls = api.calls.lock().unwrap().clone();
    assert!(calls.contains(&AgentCall::KillContainer {
        container_id: "c1".into(),
        signal: 9
    }));
    for (body, status, says) in [
        (
            r#"{"type":"LAUNCH_CONTAINER","launch_container":{"container_id":{"value":"c","parent":{"value":"p"}}}}"#,
            200,
            "",
        ),
        (
            r#"{"type":"REMOVE_CONTAINER","remove_container":{"container_id":{"value":"c","parent":{"value":"p"}}}}"#,
            200,
            "",
        ),
        (
            r#"{"type":"LAUNCH_NESTED_CONTAINER","launch_nested_container":{"container_id":{"value":"c"}}}"#,
            400,
            "Expecting 'launch_nested_container.container_id.parent' to be present",
        ),
        (
            r#"{"type":"LAUNCH_NESTED_CONTAINER","launch_nested_container":{"container_id":{"value":"c","parent":{"value":"p.q"}}}}"#,
            400,
            "contains invalid characters",
        ),
        (
            r#"{"type":"LAUNCH_CONTAINER","launch_container":{"container_id":{"value":"c"},"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":1},"reservations":[{"type":"STATIC","role":"r"}]}]}}"#,
            400,
            "'launch_container.resources' must be unreserved",
        ),
        (
            r#"{"type":"LAUNCH_CONTAINER","launch_container":{"container_id":{"value":"c"},"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":1},"revocable":{}}]}}"#,
            400,
            "'launch_container.resources' must be non-revocable",
        ),
        (
            r#"{"type":"LAUNCH_CONTAINER","launch_container":{"container_id":{"value":"c"},"container":{"type":"MESOS","linux_info":{"share_cgroups":true}}}}"#,
            400,
            "containers without a parent cannot set 'share_cgroups' to 'true'",
        ),
        (
            r#"{"type":"KILL_CONTAINER","kill_container":{}}"#,
            400,
            "Missing required fields",
        ),
    ] {
        let r = post(api.clone(), body).await;
        assert_eq!(r.status.as_u16(), status, "{body}: {}", r.text());
        assert!(r.text().contains(says), "{body}: {}", r.text());
    }
    let calls = api.calls.lock().unwrap().clone();
    let nested = ContainerId {
        value: "c".into(),
        parent: Some(Box::new(ContainerId {
            value: "p".into(),
            parent: None,
        })),
    };
    assert!(calls.contains(&AgentCall::RemoveNested(nested.clone())));
    assert!(calls
        .iter()
        .any(|c| matches!(c, AgentCall::LaunchNested(l) if l.container_id == nested)));
}

#[tokio::test]
async fn an_executor_token_reaches_only_containers_nested_in_its_own() {
    use crate::support::jwt::{self, executor_claims, Key};
    let (_tmp, api) = fake();
    let creds = vec![super::super::Credential {
        principal: "ops".into(),
        secret: "s3cret".into(),
    }];
    let key = Key::new(b"0123456789abcdef0123456789abcdef".to_vec()).unwrap();
    let token = jwt::encode(&executor_claims::claims("F", "E", "exec1"), &key);
    let rw = Authenticator::new(false, true, creds)
        .unwrap()
        .with_executor_key(key);
    let bearer = format!("Bearer {token}");
    let headers = [
        ("content-type", "application/json"),
        (AUTHORIZATION.as_str(), bearer.as_str()),
    ];
    for (body, status) in [
        (
            r#"{"type":"LAUNCH_NESTED_CONTAINER","launch_nested_container":{"container_id":{"value":"t1","parent":{"value":"exec1"}}}}"#,
            200,
        ),
        (
            r#"{"type":"REMOVE_NESTED_CONTAINER","remove_nested_container":{"container_id":{"value":"chk","parent":{"value":"t1","parent":{"value":"exec1"}}}}}"#,
            200,
        ),
        (
            r#"{"type":"LAUNCH_NESTED_CONTAINER","launch_nested_container":{"container_id":{"value":"t1","parent":{"value":"exec2"}}}}"#,
            403,
        ),
        (
            r#"{"type":"LAUNCH_CONTAINER","launch_container":{"container_id":{"value":"exec1"}}}"#,
            403,
        ),
        (r#"{"type":"GET_STATE"}"#, 403),
        (
            r#"{"type":"ATTACH_CONTAINER_OUTPUT","attach_container_output":{"container_id":{"value":"t1","parent":{"value":"exec1"}}}}"#,
            403,
        ),
    ] {
        let r = send(api.clone(), &rw, Method::POST, &headers, body).await;
        assert_eq!(r.status.as_u16(), status, "{body}: {}", r.text());
    }
    // A token the key did not sign is no executor's: 401, as any bad
    // credential.
    let other = Key::new(b"another key, another key, another".to_vec()).unwrap();
    let forged = format!(
        "Bearer {}",
        jwt::encode(&executor_claims::claims("F", "E", "exec1"), &other)
    );
    let headers = [
        ("content-type", "application/json"),
        (AUTHORIZATION.as_str(), forged.as_str()),
    ];
    let body = r#"{"type":"LAUNCH_NESTED_CONTAINER","launch_nested_container":{"container_id":{"value":"t1","parent":{"value":"exec1"}}}}"#;
    let r = send(api.clone(), &rw, Method::POST, &headers, body).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text());
    // Its COMMAND checks: a session under one of its containers passes
    // authorization (whatever the agent then answers); elsewhere not.
    let headers = [
        ("content-type", "application/json"),
        (ACCEPT.as_str(), "application/recordio"),
        ("message-accept", "application/json"),
        (AUTHORIZATION.as_str(), bearer.as_str()),
    ];
    for (parent, allowed) in [("exec1", true), ("exec2", false)] {
        let body = format!(
            r#"{{"type":"LAUNCH_NESTED_CONTAINER_SESSION","launch_nested_container_session":{{"container_id":{{"value":"chk","parent":{{"value":"t1","parent":{{"value":"{parent}"}}}}}},"command":{{"value":"true"}}}}}}"#
        );
        let r = send(api.clone(), &rw, Method::POST, &headers, body).await;
        assert_eq!(r.status == StatusCode::FORBIDDEN, !allowed, "{}", r.text());
    }
}

/// The records of a RecordIO body, as JSON.
fn json_records(body: &[u8]) -> Vec<Value> {
    let mut d = crate::api::recordio::Decoder::new(1 << 20);
    let records = d.feed(body).unwrap();
    d.finish().unwrap();
    records
        .iter()
        .map(|r| serde_json::from_slice(r).unwrap())
        .collect()
}

const SESSION: &str = r#"{"type":"LAUNCH_NESTED_CONTAINER_SESSION",
    "launch_nested_container_session":{
      "container_id":{"value":"debug","parent":{"value":"exec"}},
      "command":{"shell":false,"value":"sh","arguments":["sh"]},
      "container":{"type":"MESOS","tty_info":{"window_size":{"rows":24,"columns":80}}}}}"#;

#[tokio::test]
async fn a_session_streams_its_output_as_recordio_and_ends_with_it() {
    let (_tmp, api) = fake();
    let r = send(
        api.clone(),
        &Authenticator::default(),
        Method::POST,
        &[
            ("content-type", "application/json"),
            ("accept", "application/recordio"),
            ("message-accept", "application/json"),
        ],
        SESSION,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.headers["content-type"], "application/recordio");
    assert_eq!(r.headers["message-content-type"], "application/json");
    let records = json_records(&r.body);
    assert_eq!(
        records,
        [
            json!({"type": "DATA", "data": {"type": "STDOUT", "data": "b3V0Cg=="}}),
            json!({"type": "DATA", "data": {"type": "STDERR", "data": "ZXJyCg=="}}),
        ]
    );
    let sessions = api.sessions.lock().unwrap();
    let (launch, dropped) = &sessions[0];
    assert_eq!(launch.container_id.value, "debug");
    assert_eq!(launch.tty, Some((24, 80)));
    assert_eq!(launch.command.value.as_deref(), Some("sh"));
    // The stream's end released its guard (the agent's kills the container).
    assert!(dropped.load(std::sync::atomic::Ordering::SeqCst));
}

#[tokio::test]
async fn a_session_in_an_image_is_not_served_and_recordio_is_for_streams_only() {
    let (_tmp, api) = fake();
    let image = SESSION.replace(
        r#""type":"MESOS","#,
        r#""type":"MESOS","mesos":{"image":{"type":"DOCKER","docker":{"name":"alpine"}}},"#,
    );
    let r = post(api.clone(), &image).await;
    assert_eq!(r.status, StatusCode::NOT_IMPLEMENTED, "{}", r.text());
    assert!(r.text().contains("debug containers only"), "{}", r.text());
    let no_command = SESSION.replace(
        r#""command":{"shell":false,"value":"sh","arguments":["sh"]},"#,
        "",
    );
    let r = post(api.clone(), &no_command).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(r.text().contains("command"), "{}", r.text());
    // A call with a single answer cannot be streamed.
    let r = send(
        api.clone(),
        &Authenticator::default(),
        Method::POST,
        &[
            ("content-type", "application/json"),
            ("accept", "application/recordio"),
        ],
        r#"{"type":"GET_HEALTH"}"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_ACCEPTABLE, "{}", r.text());
    // Output of a container the agent does not know.
    let r = post(
        api.clone(),
        r#"{"type":"ATTACH_CONTAINER_OUTPUT","attach_container_output":{"container_id":{"value":"gone"}}}"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // An old client's Accept: the same records, under application/json.
    let r = post(
        api,
        r#"{"type":"ATTACH_CONTAINER_OUTPUT","attach_container_output":{"container_id":{"value":"c"}}}"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(json_records(&r.body).len(), 2);
}

fn input_record(json: &str) -> String {
    format!("{}\n{json}", json.len())
}

#[tokio::test]
async fn an_input_stream_reaches_the_container_and_is_answered_at_its_end() {
    let (_tmp, api) = fake();
    let first = input_record(
        r#"{"type":"ATTACH_CONTAINER_INPUT","attach_container_input":{"type":"CONTAINER_ID","container_id":{"value":"debug","parent":{"value":"exec"}}}}"#,
    );
    let data = input_record(
        r#"{"type":"ATTACH_CONTAINER_INPUT","attach_container_input":{"type":"PROCESS_IO","process_io":{"type":"DATA","data":{"type":"STDIN","data":"bHMK"}}}}"#,
    );
    let size = input_record(
        r#"{"type":"ATTACH_CONTAINER_INPUT","attach_container_input":{"type":"PROCESS_IO","process_io":{"type":"CONTROL","control":{"type":"TTY_INFO","tty_info":{"window_size":{"rows":50,"columns":132}}}}}}"#,
    );
    let eof = input_record(
        r#"{"type":"ATTACH_CONTAINER_INPUT","attach_container_input":{"type":"PROCESS_IO","process_io":{"type":"DATA","data":{"type":"STDIN","data":""}}}}"#,
    );
    let streaming = [
        ("content-type", "application/recordio"),
        ("message-content-type", "application/json"),
    ];
    let auth = Authenticator::default();
    let body = format!("{first}{data}{size}{eof}");
    let r = send(api.clone(), &auth, Method::POST, &streaming, body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(
        *api.inputs.lock().unwrap(),
        [
            (
                "debug".to_string(),
                InputRecord::Stdin(Bytes::from_static(b"ls\n"))
            ),
            (
                "debug".into(),
                InputRecord::WindowSize {
                    rows: 50,
                    cols: 132
                }
            ),
            ("debug".into(), InputRecord::Eof),
        ]
    );
    // Without Message-Content-Type; with an unknown one.
    let r = send(
        api.clone(),
        &auth,
        Method::POST,
        &streaming[..1],
        first.clone(),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = send(
        api.clone(),
        &auth,
        Method::POST,
        &[streaming[0], ("message-content-type", "text/plain")],
        first.clone(),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Another call streamed; the input call not streamed; an empty stream.
    let health = input_record(r#"{"type":"GET_HEALTH"}"#);
    let r = send(api.clone(), &auth, Method::POST, &streaming, health).await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", r.text());
    assert!(r.text().contains("GET_HEALTH"), "{}", r.text());
    let plain = first.split_once('\n').unwrap().1.to_string();
    let r = post(api.clone(), &plain).await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", r.text());
    let r = send(api.clone(), &auth, Method::POST, &streaming, "").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("EOF"), "{}", r.text());
    // Data before the container id; a second input client.
    let r = send(api.clone(), &auth, Method::POST, &streaming, data.clone()).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    let busy = input_record(
        r#"{"type":"ATTACH_CONTAINER_INPUT","attach_container_input":{"type":"CONTAINER_ID","container_id":{"value":"busy","parent":{"value":"exec"}}}}"#,
    );
    let r = send(api.clone(), &auth, Method::POST, &streaming, busy).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text());
    // Bad framing mid-stream.
    let r = send(api, &auth, Method::POST, &streaming, format!("{first}x\n")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
}
