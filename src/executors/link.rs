//! The executor's two connections to the agent's `/api/v1/executor`: the
//! SUBSCRIBE stream, read on its own thread (RecordIO of protobuf events),
//! and calls (UPDATE, MESSAGE) POSTed in order on another, over a
//! keep-alive connection. Both report to the executor's input channel.

use super::http::{BodyStream, Client};
use super::session::Input;
use crate::api::recordio;
use crate::proto::mesos::v1::executor::{Call, Event};
use prost::Message;
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::Duration;

/// The endpoint's path on the agent.
pub const EXECUTOR_API: &str = "/api/v1/executor";
/// The content type of calls and events.
pub const PROTOBUF: &str = "application/x-protobuf";
/// Bounds connecting and each read or write of a call.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends subscriptions and calls to the agent.
#[derive(Debug, Clone)]
pub struct Link {
    subscribe: Sender<Vec<u8>>,
    calls: Sender<Vec<u8>>,
}

impl Link {
    /// Starts the subscriber and sender threads for the agent at
    /// `endpoint` (`ip:port`).
    pub fn start(endpoint: &str, token: Option<&str>, inputs: Sender<Input>) -> Link {
        let auth = token.map(|t| format!("Bearer {t}"));
        let (subscribe, subscribe_rx) = mpsc::channel::<Vec<u8>>();
        let (calls, calls_rx) = mpsc::channel::<Vec<u8>>();
        let (ep, a) = (endpoint.to_string(), auth.clone());
        let spawned = std::thread::Builder::new()
            .name("subscriber".into())
            .stack_size(256 << 10)
            .spawn(move || subscriber(&ep, a.as_deref(), &subscribe_rx, &inputs));
        if let Err(e) = spawned {
            eprintln!("butte executor: cannot start the subscriber thread: {e}");
        }
        let ep = endpoint.to_string();
        let spawned = std::thread::Builder::new()
            .name("sender".into())
            .stack_size(256 << 10)
            .spawn(move || sender(&ep, auth.as_deref(), &calls_rx));
        if let Err(e) = spawned {
            eprintln!("butte executor: cannot start the sender thread: {e}");
        }
        Link { subscribe, calls }
    }

    /// Opens a new subscription with this SUBSCRIBE call.
    pub fn subscribe(&self, call: &Call) {
        let _ = self.subscribe.send(call.encode_to_vec());
    }

    /// Sends a call (not SUBSCRIBE); failures are logged, never retried:
    /// unacknowledged updates go again with the next SUBSCRIBE.
    pub fn send(&self, call: &Call) {
        let _ = self.calls.send(call.encode_to_vec());
    }
}

fn headers(auth: Option<&str>) -> Vec<(&str, &str)> {
    let mut h = vec![
        ("Content-Type", PROTOBUF),
        ("Accept", PROTOBUF),
        ("Connection", "keep-alive"),
    ];
    if let Some(a) = auth {
        h.push(("Authorization", a));
    }
    h
}

fn subscriber(
    endpoint: &str,
    auth: Option<&str>,
    requests: &Receiver<Vec<u8>>,
    inputs: &Sender<Input>,
) {
    while let Ok(body) = requests.recv() {
        let input = match subscribe_once(endpoint, auth, &body, inputs) {
            Ok(reason) => Input::Disconnected(reason),
            Err(reason) => Input::SubscribeFailed(reason),
        };
        if inputs.send(input).is_err() {
            return;
        }
    }
}

/// One subscription: `Err` when it was refused, `Ok` with the reason once
/// an accepted stream ends.
fn subscribe_once(
    endpoint: &str,
    auth: Option<&str>,
    body: &[u8],
    inputs: &Sender<Input>,
) -> Result<String, String> {
    let (head, mut stream) =
        BodyStream::post(endpoint, EXECUTOR_API, &headers(auth), body, CALL_TIMEOUT)
            .map_err(|e| e.to_string())?;
    if head.status != 200 {
        let text = stream.read_rest(&head);
        return Err(format!(
            "agent answered SUBSCRIBE with {} {}: {}",
            head.status,
            head.reason,
            String::from_utf8_lossy(&text).trim()
        ));
    }
    let mut decoder = recordio::Decoder::default();
    let mut buf = Vec::with_capacity(4096);
    loop {
        buf.clear();
        match stream.next_bytes(&mut buf) {
            Ok(true) => {}
            Ok(false) => return Ok("the agent closed the event stream".into()),
            Err(e) => return Ok(e.to_string()),
        }
        let records = match decoder.feed(&buf) {
            Ok(r) => r,
            Err(e) => return Ok(format!("bad event stream: {e}")),
        };
        for record in records {
            match Event::decode(record.as_slice()) {
                Ok(event) => {
                    if inputs.send(Input::Event(Box::new(event))).is_err() {
                        return Ok("executor stopped".into());
                    }
                }
                Err(e) => eprintln!("butte executor: ignoring an event that does not decode: {e}"),
            }
        }
    }
}

fn sender(endpoint: &str, auth: Option<&str>, calls: &Receiver<Vec<u8>>) {
    let mut client = Client::new(endpoint, CALL_TIMEOUT);
    let headers = headers(auth);
    while let Ok(body) = calls.recv() {
        match client.request("POST", EXECUTOR_API, &headers, &body) {
            Ok(r) if r.head.status == 202 || r.head.status == 200 => {}
            Ok(r) => eprintln!(
                "butte executor: agent refused a call: {} {}: {}",
                r.head.status,
                r.head.reason,
                String::from_utf8_lossy(&r.body).trim()
            ),
            Err(e) => eprintln!("butte executor: cannot send a call to the agent: {e}"),
        }
    }
}
