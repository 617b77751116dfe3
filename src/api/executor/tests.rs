//! The HTTP behaviour an executor sees, against a fake agent that records
//! the calls it gets.

use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{ACCEPT, ALLOW, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use prost::Message as _;
use tokio::sync::mpsc;

use super::*;
use crate::api::recordio::Decoder;
use crate::proto::mesos::v1::{task_status, TaskId, TaskState};

const JSON: &str = "application/json";
const PROTOBUF: &str = "application/x-protobuf";
const HOUR: Duration = Duration::from_secs(3600);
/// A version 4 UUID, as an executor's status update carries.
const UUID: [u8; 16] = [
    0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0x4d, 0xef, 0x80, 0, 0, 0, 0, 0, 0, 1,
];

/// A fake agent: records every call; refuses all with `refuse` if set.
#[derive(Default)]
struct Fake {
    calls: Mutex<Vec<String>>,
    updates: Mutex<Vec<TaskStatus>>,
    /// The sender of the latest subscription.
    sender: Mutex<Option<mpsc::UnboundedSender<Event>>>,
    refuse: Option<CallError>,
}

impl Fake {
    fn refusing(e: CallError) -> Self {
        Fake {
            refuse: Some(e),
            ..Default::default()
        }
    }

    fn record(&self, what: String) -> Result<(), CallError> {
        self.calls.lock().unwrap().push(what);
        self.refuse.clone().map_or(Ok(()), Err)
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    /// What the agent does with an authenticated caller: its executor
    /// `ex` of `fw` runs in container [`CONTAINER`].
    fn authorize(
        &self,
        principal: Option<Principal>,
        framework_id: &FrameworkId,
        executor_id: &ExecutorId,
    ) -> Result<(), CallError> {
        match principal {
            Some(p) => p.authorize(&framework_id.value, &executor_id.value, CONTAINER),
            None => Ok(()),
        }
    }
}

/// The container of the fake agent's executor.
const CONTAINER: &str = "C1";

impl ExecutorApi for Fake {
    fn subscribe(
        &self,
        principal: Option<Principal>,
        framework_id: FrameworkId,
        executor_id: ExecutorId,
        _subscribe: call::Subscribe,
    ) -> BoxFuture<'_, Result<EventStream, CallError>> {
        Box::pin(async move {
            self.authorize(principal, &framework_id, &executor_id)?;
            self.record(format!(
                "subscribe {} {}",
                framework_id.value, executor_id.value
            ))?;
            let (tx, rx) = mpsc::unbounded_channel();
            let subscribed = Event {
                r#type: Some(event::Type::Subscribed as i32),
                ..Default::default()
            };
            tx.send(subscribed).unwrap();
            *self.sender.lock().unwrap() = Some(tx);
            Ok(rx)
        })
    }

    fn update(
        &self,
        principal: Option<Principal>,
        framework_id: FrameworkId,
        executor_id: ExecutorId,
        status: TaskStatus,
    ) -> BoxFuture<'_, Result<(), CallError>> {
        Box::pin(async move {
            self.authorize(principal, &framework_id, &executor_id)?;
            self.record(format!(
                "update {} {}",
                framework_id.value, executor_id.value
            ))?;
            self.updates.lock().unwrap().push(status);
            Ok(())
        })
    }

    fn message(
        &self,
        principal: Option<Principal>,
        framework_id: FrameworkId,
        executor_id: ExecutorId,
        data: Vec<u8>,
    ) -> BoxFuture<'_, Result<(), CallError>> {
        let data = String::from_utf8_lossy(&data).into_owned();
        Box::pin(async move {
            self.authorize(principal, &framework_id, &executor_id)?;
            self.record(format!(
                "message {} {} {data}",
                framework_id.value, executor_id.value
            ))
        })
    }

    fn heartbeat(
        &self,
        framework_id: FrameworkId,
        executor_id: ExecutorId,
    ) -> BoxFuture<'_, Result<(), CallError>> {
        Box::pin(async move {
            self.record(format!(
                "heartbeat {} {}",
                framework_id.value, executor_id.value
            ))
        })
    }
}

fn request(method: &str, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Request<Full<Bytes>> {
    let mut b = Request::builder().method(method).uri(PATH);
    for (name, value) in headers {
        b = b.header(*name, *value);
    }
    b.body(Full::new(body.into())).unwrap()
}

fn post_json(body: &serde_json::Value) -> Request<Full<Bytes>> {
    request("POST", &[("Content-Type", JSON)], body.to_string())
}

async fn send(api: &Fake, req: Request<Full<Bytes>>) -> Response<Body> {
    handle(api, req, HOUR, None).await
}

async fn text_of(r: Response<Body>) -> String {
    let bytes = r.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// Reads frames until one completes a record.
async fn next_record(body: &mut Body, decoder: &mut Decoder) -> Option<Vec<u8>> {
    let mut pending = std::collections::VecDeque::new();
    loop {
        if let Some(r) = pending.pop_front() {
            return Some(r);
        }
        let frame = body.frame().await?.unwrap();
        let data = frame.into_data().unwrap();
        pending.extend(decoder.feed(&data).unwrap());
    }
}

fn subscribe_json() -> serde_json::Value {
    serde_json::json!({
        "type": "SUBSCRIBE",
        "framework_id": {"value": "fw"},
        "executor_id": {"value": "ex"},
        "subscribe": {}
    })
}

fn update_json() -> serde_json::Value {
    use base64::Engine as _;
    serde_json::json!({
        "type": "UPDATE",
        "framework_id": {"value": "fw"},
        "executor_id": {"value": "ex"},
        "update": {"status": {
            "task_id": {"value": "t1"},
            "state": "TASK_RUNNING",
            "source": "SOURCE_EXECUTOR",
            "uuid": base64::engine::general_purpose::STANDARD.encode(UUID),
        }}
    })
}

fn call_of(kind: call::Type) -> Call {
    Call {
        executor_id: ExecutorId { value: "ex".into() },
        framework_id: FrameworkId { value: "fw".into() },
        r#type: Some(kind as i32),
        ..Default::default()
    }
}

#[tokio::test]
async fn only_post_is_allowed() {
    let fake = Fake::default();
    let r = send(&fake, request("GET", &[("Content-Type", JSON)], "")).await;
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.headers()[ALLOW], "POST");
    assert!(text_of(r).await.contains("but received 'GET'"));
    assert!(fake.calls().is_empty());
}

#[tokio::test]
async fn content_type_is_required_and_checked() {
    let fake = Fake::default();
    let body = subscribe_json().to_string();
    let r = send(&fake, request("POST", &[], body.clone())).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(text_of(r).await, "Expecting 'Content-Type' to be present");

    let r = send(
        &fake,
        request("POST", &[("Content-Type", "text/plain")], body),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        r.headers()[CONTENT_TYPE],
        "text/plain; charset=utf-8",
        "errors are plain text"
    );
    assert!(fake.calls().is_empty());
}

#[tokio::test]
async fn subscribe_that_accepts_neither_encoding_is_406() {
    let fake = Fake::default();
    let req = request(
        "POST",
        &[("Content-Type", JSON), ("Accept", "text/html")],
        subscribe_json().to_string(),
    );
    let r = send(&fake, req).await;
    assert_eq!(r.status(), StatusCode::NOT_ACCEPTABLE);
    assert!(text_of(r).await.contains("Expecting 'Accept' to allow"));
    assert!(fake.calls().is_empty(), "the agent never saw it");
}

#[tokio::test]
async fn invalid_json_is_400() {
    let fake = Fake::default();
    let r = send(
        &fake,
        request("POST", &[("Content-Type", JSON)], "{\"type\":"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(text_of(r)
        .await
        .starts_with("Failed to parse body into JSON: "));
}

#[tokio::test]
async fn unknown_json_field_is_400() {
    let fake = Fake::default();
    let mut body = subscribe_json();
    body["colour"] = "blue".into();
    let r = send(&fake, post_json(&body)).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let text = text_of(r).await;
    assert!(
        text.starts_with("Failed to convert JSON into Call protobuf: "),
        "{text}"
    );
    assert!(text.contains("colour"), "{text}");
}

#[tokio::test]
async fn missing_framework_id_is_400() {
    let fake = Fake::default();
    let mut body = subscribe_json();
    body.as_object_mut().unwrap().remove("framework_id");
    let r = send(&fake, post_json(&body)).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        text_of(r).await,
        "Failed to convert JSON into Call protobuf: Missing required fields: framework_id"
    );

    // The same call in protobuf (prost always writes required fields, so
    // by hand): executor_id {value: "ex"}, type SUBSCRIBE, subscribe {}.
    let bytes: &[u8] = &[0x0a, 0x04, 0x0a, 0x02, b'e', b'x', 0x18, 0x01, 0x22, 0x00];
    let req = request("POST", &[("Content-Type", PROTOBUF)], bytes.to_vec());
    let r = send(&fake, req).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let text = text_of(r).await;
    assert!(
        text.starts_with("Failed to parse body into Call protobuf"),
        "{text}"
    );
    assert!(text.contains("framework_id"), "{text}");
    assert!(fake.calls().is_empty());
}

#[tokio::test]
async fn missing_nested_required_field_is_named_by_path() {
    let fake = Fake::default();
    let mut body = update_json();
    body["update"]["status"]
        .as_object_mut()
        .unwrap()
        .remove("task_id");
    let r = send(&fake, post_json(&body)).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(text_of(r)
        .await
        .ends_with("Missing required fields: update.status.task_id"));
}

#[tokio::test]
async fn missing_type_or_sub_message_fails_validation() {
    let fake = Fake::default();
    let mut body = subscribe_json();
    body.as_object_mut().unwrap().remove("subscribe");
    let r = send(&fake, post_json(&body)).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        text_of(r).await,
        "Failed to validate Executor::Call: Expecting 'subscribe' to be present"
    );

    // An unrecognised type number is dropped, as proto2 does: no type.
    let mut call = call_of(call::Type::Subscribe);
    call.r#type = Some(42);
    let req = request("POST", &[("Content-Type", PROTOBUF)], call.encode_to_vec());
    let r = send(&fake, req).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        text_of(r).await,
        "Failed to validate Executor::Call: Expecting 'type' to be present"
    );
}

#[tokio::test]
async fn unknown_type_is_501() {
    let fake = Fake::default();
    let mut body = subscribe_json();
    body["type"] = "UNKNOWN".into();
    let r = send(&fake, post_json(&body)).await;
    assert_eq!(r.status(), StatusCode::NOT_IMPLEMENTED);
    assert!(fake.calls().is_empty());
}

#[tokio::test]
async fn update_with_bad_uuid_is_400() {
    let fake = Fake::default();
    let mut body = update_json();
    body["update"]["status"]["uuid"] = "aGVsbG8=".into();
    let r = send(&fake, post_json(&body)).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        text_of(r).await,
        "Failed to validate Executor::Call: Not a valid UUID"
    );
    assert!(fake.calls().is_empty());
}

#[tokio::test]
async fn agent_refusals_pass_through() {
    for (err, status) in [
        (
            CallError::Forbidden("Executor is not subscribed".into()),
            403,
        ),
        (
            CallError::BadRequest("Framework cannot be found".into()),
            400,
        ),
        (
            CallError::ServiceUnavailable("Agent has not finished recovery".into()),
            503,
        ),
        (CallError::Internal("disk full".into()), 500),
    ] {
        let fake = Fake::refusing(err.clone());
        let r = send(&fake, post_json(&update_json())).await;
        assert_eq!(r.status().as_u16(), status);
        assert_eq!(r.headers()[CONTENT_TYPE], "text/plain; charset=utf-8");
        let (CallError::BadRequest(m)
        | CallError::Forbidden(m)
        | CallError::ServiceUnavailable(m)
        | CallError::Internal(m)) = err;
        assert_eq!(text_of(r).await, m);
    }
    let fake = Fake::refusing(CallError::Forbidden("no".into()));
    let r = send(&fake, post_json(&subscribe_json())).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(fake.calls(), ["subscribe fw ex"]);
}

#[tokio::test]
async fn update_is_202_and_reaches_the_agent() {
    let fake = Fake::default();
    let r = send(&fake, post_json(&update_json())).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(text_of(r).await, "");
    assert_eq!(fake.calls(), ["update fw ex"]);
    let updates = fake.updates.lock().unwrap();
    assert_eq!(updates[0].task_id.value, "t1");
    assert_eq!(updates[0].state, TaskState::TaskRunning as i32);
    assert_eq!(
        updates[0].source,
        Some(task_status::Source::Executor as i32)
    );
    assert_eq!(updates[0].uuid.as_deref(), Some(&UUID[..]));
}

#[tokio::test]
async fn message_and_heartbeat_are_202() {
    let fake = Fake::default();
    let mut call = call_of(call::Type::Message);
    call.message = Some(call::Message {
        data: b"hi".to_vec(),
    });
    let req = request("POST", &[("Content-Type", PROTOBUF)], call.encode_to_vec());
    assert_eq!(send(&fake, req).await.status(), StatusCode::ACCEPTED);
    let req = request(
        "POST",
        &[("Content-Type", PROTOBUF)],
        call_of(call::Type::Heartbeat).encode_to_vec(),
    );
    assert_eq!(send(&fake, req).await.status(), StatusCode::ACCEPTED);
    assert_eq!(fake.calls(), ["message fw ex hi", "heartbeat fw ex"]);
}

#[tokio::test]
async fn json_subscribe_streams_subscribed_then_heartbeats() {
    let fake = Fake::default();
    let req = request(
        "POST",
        &[("Content-Type", JSON), ("Accept", JSON)],
        subscribe_json().to_string(),
    );
    let r = handle(&fake, req, Duration::from_millis(20), None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()[CONTENT_TYPE], JSON);
    assert!(r.headers().get(hyper::header::CONTENT_LENGTH).is_none());
    assert_eq!(fake.calls(), ["subscribe fw ex"]);

    let mut body = r.into_body();
    let mut decoder = Decoder::default();
    let types: Vec<String> = {
        let mut out = Vec::new();
        for _ in 0..3 {
            let record = next_record(&mut body, &mut decoder).await.unwrap();
            let json: serde_json::Value = serde_json::from_slice(&record).unwrap();
            out.push(json["type"].as_str().unwrap().to_owned());
        }
        out
    };
    assert_eq!(types, ["SUBSCRIBED", "HEARTBEAT", "HEARTBEAT"]);
}

#[tokio::test]
async fn missing_accept_gets_json_like_mesos() {
    let fake = Fake::default();
    let mut call = call_of(call::Type::Subscribe);
    call.subscribe = Some(call::Subscribe::default());
    let req = request("POST", &[("Content-Type", PROTOBUF)], call.encode_to_vec());
    let r = send(&fake, req).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()[CONTENT_TYPE], JSON);
}

#[tokio::test]
async fn protobuf_subscribe_streams_protobuf_and_ends_with_the_sender() {
    let fake = Fake::default();
    let mut call = call_of(call::Type::Subscribe);
    call.subscribe = Some(call::Subscribe::default());
    let req = request(
        "POST",
        &[
            (CONTENT_TYPE.as_str(), PROTOBUF),
            (ACCEPT.as_str(), PROTOBUF),
        ],
        call.encode_to_vec(),
    );
    let r = send(&fake, req).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()[CONTENT_TYPE], PROTOBUF);

    let mut body = r.into_body();
    let mut decoder = Decoder::default();
    let record = next_record(&mut body, &mut decoder).await.unwrap();
    let event = Event::decode(record.as_slice()).unwrap();
    assert_eq!(event.r#type, Some(event::Type::Subscribed as i32));

    // The agent pushes one more event, then drops the sender: the body ends.
    let sender = fake.sender.lock().unwrap().take().unwrap();
    let kill = Event {
        r#type: Some(event::Type::Shutdown as i32),
        ..Default::default()
    };
    sender.send(kill).unwrap();
    drop(sender);
    let record = next_record(&mut body, &mut decoder).await.unwrap();
    assert_eq!(
        Event::decode(record.as_slice()).unwrap().r#type,
        Some(event::Type::Shutdown as i32)
    );
    assert!(next_record(&mut body, &mut decoder).await.is_none());
    assert!(decoder.finish().is_ok());
}

#[tokio::test]
async fn dropped_response_closes_the_agents_sender() {
    let fake = Fake::default();
    let r = send(&fake, post_json(&subscribe_json())).await;
    assert_eq!(r.status(), StatusCode::OK);
    let sender = fake.sender.lock().unwrap().clone().unwrap();
    assert!(!sender.is_closed());
    drop(r);
    assert!(sender.is_closed());
}

#[tokio::test]
async fn oversized_body_is_413() {
    let fake = Fake::default();
    let body = vec![b' '; MAX_CALL_BYTES + 1];
    let r = send(&fake, request("POST", &[("Content-Type", JSON)], body)).await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn required_fields_of_unacknowledged_updates_are_checked() {
    let fake = Fake::default();
    let mut body = subscribe_json();
    body["subscribe"] = serde_json::json!({
        "unacknowledged_updates": [{"status": {"task_id": {"value": "t"}}}]
    });
    let r = send(&fake, post_json(&body)).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let text = text_of(r).await;
    assert!(
        text.contains("Missing required fields: subscribe.unacknowledged_updates"),
        "{text}"
    );
    assert!(text.ends_with("status.state"), "{text}");

    // In protobuf: a required enum with a number its enum lacks is missing.
    let mut call = call_of(call::Type::Subscribe);
    call.subscribe = Some(call::Subscribe {
        unacknowledged_updates: vec![call::Update {
            status: TaskStatus {
                task_id: TaskId { value: "t".into() },
                state: 999,
                ..Default::default()
            },
        }],
        ..Default::default()
    });
    let req = request("POST", &[("Content-Type", PROTOBUF)], call.encode_to_vec());
    let r = send(&fake, req).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(text_of(r)
        .await
        .ends_with("subscribe.unacknowledged_updates[0].status.state"));
}

/// Over a real connection: the stream is chunked, and when the executor
/// hangs up the agent's sender reports closed.
#[tokio::test]
async fn served_over_tcp_streams_chunked_and_notices_the_client_leaving() {
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let fake = Arc::new(Fake::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let api = fake.clone();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let service = hyper::service::service_fn(move |req| {
            let api = api.clone();
            async move {
                let api: &dyn ExecutorApi = &*api;
                Ok::<_, std::convert::Infallible>(
                    handle(api, req, Duration::from_millis(20), None).await,
                )
            }
        });
        let io = hyper_util::rt::TokioIo::new(stream);
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(io, service)
            .await;
    });

    let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
    let body = subscribe_json().to_string();
    let head = format!(
        "POST {PATH} HTTP/1.1\r\nHost: agent\r\nContent-Type: {JSON}\r\nAccept: {JSON}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    client.write_all(head.as_bytes()).await.unwrap();
    client.write_all(body.as_bytes()).await.unwrap();

    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("HEARTBEAT") {
        let n = client.read(&mut buf).await.unwrap();
        assert!(n > 0, "connection closed early");
        seen.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&seen).to_lowercase();
    assert!(text.starts_with("http/1.1 200 ok\r\n"), "{text}");
    assert!(text.contains("transfer-encoding: chunked\r\n"), "{text}");
    assert!(
        text.contains("content-type: application/json\r\n"),
        "{text}"
    );
    assert!(text.contains("subscribed"), "{text}");

    let sender = fake.sender.lock().unwrap().clone().unwrap();
    assert!(!sender.is_closed());
    drop(client);
    tokio::time::timeout(Duration::from_secs(5), sender.closed())
        .await
        .expect("the agent learns that the executor went away");
}

mod authentication {
    //! With a key: every call needs a token; claims must match (401/403).

    use super::*;
    use crate::support::jwt::{self, executor_claims, Key};

    fn key() -> Key {
        Key::new(b"the agent's key".to_vec()).unwrap()
    }

    fn token(fw: &str, ex: &str, container: &str, key: &Key) -> String {
        jwt::encode(&executor_claims::claims(fw, ex, container), key)
    }

    fn with_token(body: &serde_json::Value, token: Option<&str>) -> Request<Full<Bytes>> {
        let bearer = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("Content-Type", JSON)];
        if let Some(b) = &bearer {
            headers.push(("Authorization", b.as_str()));
        }
        request("POST", &headers, body.to_string())
    }

    async fn send(fake: &Fake, req: Request<Full<Bytes>>) -> Response<Body> {
        handle(fake, req, HOUR, Some(&key())).await
    }

    fn message_json() -> serde_json::Value {
        serde_json::json!({
            "type": "MESSAGE",
            "framework_id": {"value": "fw"},
            "executor_id": {"value": "ex"},
            "message": {"data": "aGk="}
        })
    }

    fn heartbeat_json() -> serde_json::Value {
        serde_json::json!({
            "type": "HEARTBEAT",
            "framework_id": {"value": "fw"},
            "executor_id": {"value": "ex"}
        })
    }

    fn all_calls() -> Vec<serde_json::Value> {
        vec![
            subscribe_json(),
            update_json(),
            message_json(),
            heartbeat_json(),
        ]
    }

    #[tokio::test]
    async fn the_executor_own_token_is_accepted_for_every_call() {
        let fake = Fake::default();
        let good = token("fw", "ex", CONTAINER, &key());
        for call in all_calls() {
            let r = send(&fake, with_token(&call, Some(&good))).await;
            assert!(r.status().is_success(), "{call}: {}", r.status());
        }
        assert_eq!(
            fake.calls(),
            [
                "subscribe fw ex",
                "update fw ex",
                "message fw ex hi",
                "heartbeat fw ex"
            ]
        );
    }

    #[tokio::test]
    async fn no_token_is_401_with_a_bare_challenge() {
        let fake = Fake::default();
        for call in all_calls() {
            let r = send(&fake, with_token(&call, None)).await;
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{call}");
            assert_eq!(
                r.headers()[hyper::header::WWW_AUTHENTICATE],
                "Bearer realm=\"mesos-agent-executor\""
            );
        }
        assert!(fake.calls().is_empty());
    }

    #[tokio::test]
    async fn a_forged_or_garbled_token_is_401() {
        let fake = Fake::default();
        let forged = token("fw", "ex", CONTAINER, &Key::new(b"guess".to_vec()).unwrap());
        let good = token("fw", "ex", CONTAINER, &key());
        let cut = &good[..good.len() - 2];
        let unsigned = format!("{}.", &good[..good.rfind('.').unwrap()]);
        for (bad, why) in [
            (forged.as_str(), "token signature does not match"),
            (cut, "token signature is not unpadded base64url"),
            (unsigned.as_str(), "token signature does not match"),
            ("not-a-jwt", "expected 3 components in token, got 1"),
        ] {
            for call in all_calls() {
                let r = send(&fake, with_token(&call, Some(bad))).await;
                assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{call}");
                let challenge = r.headers()[hyper::header::WWW_AUTHENTICATE]
                    .to_str()
                    .unwrap()
                    .to_string();
                assert!(
                    challenge.starts_with(
                        "Bearer realm=\"mesos-agent-executor\", error=\"invalid_token\""
                    ),
                    "{challenge}"
                );
                assert!(challenge.contains(why), "{challenge}");
                assert!(text_of(r).await.contains(why));
            }
        }
        assert!(fake.calls().is_empty());
    }

    #[tokio::test]
    async fn authentication_comes_before_every_other_check() {
        let fake = Fake::default();
        let r = send(&fake, request("GET", &[], "")).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let r = send(&fake, with_token(&serde_json::json!({"x": 1}), None)).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn another_executor_token_is_403_and_changes_nothing() {
        let fake = Fake::default();
        for other in [
            token("fw", "other", CONTAINER, &key()),
            token("fw2", "ex", CONTAINER, &key()),
            token("fw", "ex", "an-older-container", &key()),
        ] {
            for call in [subscribe_json(), update_json(), message_json()] {
                let r = send(&fake, with_token(&call, Some(&other))).await;
                assert_eq!(r.status(), StatusCode::FORBIDDEN, "{call}");
                let text = text_of(r).await;
                assert!(text.starts_with("Authenticated principal '"), "{text}");
            }
        }
        assert!(fake.calls().is_empty());
        assert!(fake.updates.lock().unwrap().is_empty());
        // A heartbeat only needs a valid token (Mesos answers it before
        // looking at the ids).
        let other = token("fw", "other", CONTAINER, &key());
        let r = send(&fake, with_token(&heartbeat_json(), Some(&other))).await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
    }

    #[tokio::test]
    async fn without_a_key_no_token_is_needed_and_any_is_ignored() {
        let fake = Fake::default();
        let r = super::send(&fake, with_token(&update_json(), None)).await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        let r = super::send(&fake, with_token(&update_json(), Some("garbage"))).await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
    }
}
