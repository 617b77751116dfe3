//! The streaming calls of the v1 operator API, as Mesos 1.11 serves them
//! (its I/O switchboard behind the agent):
//!
//! - `LAUNCH_NESTED_CONTAINER_SESSION` and `ATTACH_CONTAINER_OUTPUT`
//!   answer 200 with a stream of `ProcessIO` records (RecordIO framing):
//!   `DATA` `STDOUT`/`STDERR` (only `STDOUT` on a terminal), and a
//!   `CONTROL` `HEARTBEAT` after [`HEARTBEAT_INTERVAL`] without output, until
//!   the process's output ends. `Accept: application/recordio` gives
//!   `Content-Type: application/recordio` with the records' encoding named
//!   by `Message-Content-Type`, as `Message-Accept` picks it (JSON first);
//!   `Accept` of JSON or protobuf gives those records under that
//!   `Content-Type`, as Mesos does for old clients.
//! - `ATTACH_CONTAINER_INPUT` is a streaming *request*: `Content-Type:
//!   application/recordio`, `Message-Content-Type` JSON or protobuf; the
//!   first record is the call naming the container (`type: CONTAINER_ID`),
//!   every later one a `PROCESS_IO` call carrying `DATA` `STDIN` (empty:
//!   end of input), `CONTROL` `TTY_INFO` (the window size) or `CONTROL`
//!   `HEARTBEAT`. It is answered 200, empty, once the request ends.
//!
//! The first record must arrive within [`super::BODY_TIMEOUT`]; later ones
//! may take as long as the client likes (a terminal can be idle). Records
//! are at most [`MAX_INPUT_RECORD`] bytes and go to the agent one at a time
//! through a bounded channel: a fast client waits for the process.

use super::{decode_call, validate, Valid, BODY_TIMEOUT};
use crate::api::executor::media::{header_accepts, APPLICATION_JSON, APPLICATION_PROTOBUF};
use crate::api::executor::ContentType;
use crate::api::recordio;
use crate::api::{bad_request, text};
use crate::proto::mesos::v1::agent::{call, process_io, ProcessIo};
use crate::proto::mesos::v1::{CommandInfo, ContainerId, DurationInfo};
use bytes::{Buf, Bytes};
use http_body_util::{BodyExt, Empty};
use hyper::body::Frame;
use hyper::header::{HeaderMap, HeaderValue, ACCEPT, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use prost::Message as _;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::mpsc;

use super::super::{Body, OperatorApi};

/// RecordIO, the streaming media type.
pub const APPLICATION_RECORDIO: &str = "application/recordio";
pub(super) const MESSAGE_CONTENT_TYPE: &str = "message-content-type";
pub(super) const MESSAGE_ACCEPT: &str = "message-accept";

/// How long an output stream stays silent before a heartbeat record.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(30);

/// The largest input record (a call with a chunk of stdin).
pub const MAX_INPUT_RECORD: usize = super::MAX_CALL_BYTES;

/// A piece of a process's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputChunk {
    Stdout(Bytes),
    Stderr(Bytes),
}

/// A process's output for one client: chunks until the output ends. The
/// guard is dropped when the response ends or the client goes away (a
/// session's guard then kills its container, as Mesos does).
pub struct OutputStream {
    pub chunks: mpsc::Receiver<OutputChunk>,
    pub guard: Box<dyn Send + Sync>,
}

/// One record of an input stream, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputRecord {
    /// Bytes for the process's stdin.
    Stdin(Bytes),
    /// An empty `DATA`: the end of stdin.
    Eof,
    /// `CONTROL` `TTY_INFO`: the terminal's new size.
    WindowSize {
        rows: u16,
        cols: u16,
    },
    Heartbeat,
}

/// Where an input stream's records go; the guard is dropped when the
/// request ends (the container then takes input from another client).
pub struct InputSink {
    pub records: mpsc::Sender<InputRecord>,
    pub guard: Box<dyn Send + Sync>,
}

/// A validated `LAUNCH_NESTED_CONTAINER_SESSION`.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionLaunch {
    /// The new container (its `parent` set).
    pub container_id: ContainerId,
    pub command: CommandInfo,
    /// `container.tty_info`: a terminal of this size (0 when not given).
    pub tty: Option<(u16, u16)>,
}

/// Why a response's media types are refused.
type Refusal = (StatusCode, String);

/// The response's types: its `Content-Type` and its records' encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Accepts {
    /// The records' (or the whole answer's) encoding.
    pub message: ContentType,
    /// `Accept` chose `application/recordio` (only streaming calls take it).
    pub streaming: bool,
}

impl Accepts {
    fn content_type(self) -> &'static str {
        if self.streaming {
            APPLICATION_RECORDIO
        } else {
            self.message.as_str()
        }
    }
}

/// The agent's negotiation of `Accept` and `Message-Accept`: JSON, then
/// protobuf, then RecordIO (whose records are JSON or protobuf, as
/// `Message-Accept` allows, JSON first).
pub(super) fn accepts(headers: &HeaderMap) -> Result<Accepts, Refusal> {
    let allows = |m| header_accepts(headers, ACCEPT.as_str(), m);
    let streaming = if allows(APPLICATION_JSON) || allows(APPLICATION_PROTOBUF) {
        false
    } else if allows(APPLICATION_RECORDIO) {
        true
    } else {
        return Err((
            StatusCode::NOT_ACCEPTABLE,
            format!(
                "Expecting 'Accept' to allow {APPLICATION_JSON} or {APPLICATION_PROTOBUF} \
                 or {APPLICATION_RECORDIO}"
            ),
        ));
    };
    if !streaming {
        if headers.contains_key(MESSAGE_ACCEPT) {
            return Err((
                StatusCode::NOT_ACCEPTABLE,
                "Expecting 'Message-Accept' to be not set for non-streaming responses".into(),
            ));
        }
        let message = if allows(APPLICATION_JSON) {
            ContentType::Json
        } else {
            ContentType::Protobuf
        };
        return Ok(Accepts { message, streaming });
    }
    let message_allows = |m| header_accepts(headers, MESSAGE_ACCEPT, m);
    let message = if message_allows(APPLICATION_JSON) {
        ContentType::Json
    } else if message_allows(APPLICATION_PROTOBUF) {
        ContentType::Protobuf
    } else {
        return Err((
            StatusCode::NOT_ACCEPTABLE,
            format!(
                "Expecting 'Message-Accept' to allow {APPLICATION_JSON} or {APPLICATION_PROTOBUF}"
            ),
        ));
    };
    Ok(Accepts { message, streaming })
}

/// Whether the request's `Content-Type` is RecordIO (a streaming request).
pub(super) fn is_streaming_request(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == APPLICATION_RECORDIO.as_bytes())
}

/// 200 with the records of `stream`.
pub(super) fn output_response(stream: OutputStream, accepts: Accepts) -> Response<Body> {
    output_with(stream, accepts, HEARTBEAT_INTERVAL)
}

fn output_with(stream: OutputStream, accepts: Accepts, heartbeat: Duration) -> Response<Body> {
    let start = tokio::time::Instant::now() + heartbeat;
    let body = OutputBody {
        stream,
        message: accepts.message,
        every: heartbeat,
        heartbeat: tokio::time::interval_at(start, heartbeat),
    };
    let mut r = Response::new(body.boxed());
    let h = r.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(accepts.content_type()),
    );
    if accepts.streaming {
        h.insert(
            MESSAGE_CONTENT_TYPE,
            HeaderValue::from_static(accepts.message.as_str()),
        );
    }
    r
}

/// Encodes one record in `message`, RecordIO-framed.
pub fn encode_record(record: &ProcessIo, message: ContentType) -> Bytes {
    let body = match message {
        ContentType::Protobuf => record.encode_to_vec(),
        ContentType::Json => serde_json::to_vec(&crate::proto::to_json(record)).unwrap_or_default(),
    };
    Bytes::from(recordio::encode(&body))
}

/// A `DATA` record.
pub fn data_record(kind: process_io::data::Type, bytes: &[u8]) -> ProcessIo {
    ProcessIo {
        r#type: Some(process_io::Type::Data as i32),
        data: Some(process_io::Data {
            r#type: Some(kind as i32),
            data: Some(bytes.to_vec()),
        }),
        control: None,
    }
}

/// A `CONTROL` `HEARTBEAT` record with the interval.
pub fn heartbeat_record(interval: Duration) -> ProcessIo {
    ProcessIo {
        r#type: Some(process_io::Type::Control as i32),
        data: None,
        control: Some(process_io::Control {
            r#type: Some(process_io::control::Type::Heartbeat as i32),
            tty_info: None,
            heartbeat: Some(process_io::control::Heartbeat {
                interval: Some(DurationInfo {
                    nanoseconds: i64::try_from(interval.as_nanos()).unwrap_or(i64::MAX),
                }),
            }),
        }),
    }
}

/// The output as a response body; dropping it (the client left) drops the
/// stream's guard.
struct OutputBody {
    stream: OutputStream,
    message: ContentType,
    every: Duration,
    heartbeat: tokio::time::Interval,
}

impl hyper::body::Body for OutputBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = &mut *self;
        match this.stream.chunks.poll_recv(cx) {
            Poll::Ready(Some(chunk)) => {
                this.heartbeat.reset();
                let record = match &chunk {
                    OutputChunk::Stdout(b) => data_record(process_io::data::Type::Stdout, b),
                    OutputChunk::Stderr(b) => data_record(process_io::data::Type::Stderr, b),
                };
                Poll::Ready(Some(Ok(Frame::data(encode_record(&record, this.message)))))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match this.heartbeat.poll_tick(cx) {
                Poll::Ready(_) => {
                    let record = heartbeat_record(this.every);
                    Poll::Ready(Some(Ok(Frame::data(encode_record(&record, this.message)))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

/// Checks a `ProcessIO` of an input stream as the switchboard does and
/// turns it into an [`InputRecord`].
pub(super) fn input_record(io: &ProcessIo) -> Result<InputRecord, String> {
    use process_io::Type as T;
    match io.r#type.and_then(|t| T::try_from(t).ok()) {
        Some(T::Data) => {
            let data = io
                .data
                .as_ref()
                .ok_or("Expecting 'process_io.data' to be present")?;
            if data.r#type != Some(process_io::data::Type::Stdin as i32) {
                return Err("Expecting 'process_io.data.type' to be 'STDIN'".into());
            }
            let bytes = data
                .data
                .as_ref()
                .ok_or("Expecting 'process_io.data.data' to be present")?;
            Ok(if bytes.is_empty() {
                InputRecord::Eof
            } else {
                InputRecord::Stdin(Bytes::copy_from_slice(bytes))
            })
        }
        Some(T::Control) => {
            use process_io::control::Type as C;
            let control = io
                .control
                .as_ref()
                .ok_or("Expecting 'process_io.control' to be present")?;
            match control.r#type.and_then(|t| C::try_from(t).ok()) {
                Some(C::TtyInfo) => {
                    let size = control
                        .tty_info
                        .as_ref()
                        .and_then(|t| t.window_size.as_ref())
                        .ok_or(
                            "Expecting 'process_io.control.tty_info.window_size' to be present",
                        )?;
                    let clamp = |v: u32| u16::try_from(v).unwrap_or(u16::MAX);
                    Ok(InputRecord::WindowSize {
                        rows: clamp(size.rows),
                        cols: clamp(size.columns),
                    })
                }
                Some(C::Heartbeat) => Ok(InputRecord::Heartbeat),
                _ => Err("Expecting 'process_io.control.type' to be present".into()),
            }
        }
        _ => Err("Expecting 'process_io.type' to be present".into()),
    }
}

/// The call of one input record, checked: `Ok(None)` for the first
/// record's container id is not here (see [`serve_input`]).
fn input_call(message: ContentType, record: &[u8]) -> Result<Valid, String> {
    let call = decode_call(message, record)?;
    validate(&call).map_err(|e| format!("Failed to validate agent::Call: {e}"))
}

/// Decodes a whole input stream body (the fuzz target's entry): every
/// record must hold a valid call; the records after the first must be
/// `PROCESS_IO`. Returns the records, or the refusal's message.
pub fn decode_input(message: ContentType, body: &[u8]) -> Result<Vec<InputRecord>, String> {
    let mut decoder = recordio::Decoder::new(MAX_INPUT_RECORD);
    let records = decoder.feed(body).map_err(|e| e.to_string())?;
    decoder.finish().map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for (i, r) in records.iter().enumerate() {
        match (i, input_call(message, r)?) {
            (0, Valid::AttachInput(AttachInput::ContainerId(_))) => {}
            (0, _) => return Err("the first record must name the container".into()),
            (_, Valid::AttachInput(AttachInput::ProcessIo(rec))) => out.push(rec),
            _ => return Err(NOT_PROCESS_IO.into()),
        }
    }
    Ok(out)
}

const NOT_PROCESS_IO: &str = "Expecting 'attach_container_input.type' to be PROCESS_IO";

/// What an `ATTACH_CONTAINER_INPUT` call carries.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum AttachInput {
    ContainerId(ContainerId),
    ProcessIo(InputRecord),
}

/// Mesos' validation of `ATTACH_CONTAINER_INPUT`.
pub(super) fn validate_attach_input(
    a: &call::AttachContainerInput,
    id: impl Fn(&ContainerId) -> Result<(), String>,
) -> Result<AttachInput, String> {
    use call::attach_container_input::Type as T;
    match a.r#type.and_then(|t| T::try_from(t).ok()) {
        Some(T::ContainerId) => {
            let c = a
                .container_id
                .as_ref()
                .ok_or("Expecting 'attach_container_input.container_id' to be present")?;
            id(c)?;
            Ok(AttachInput::ContainerId(c.clone()))
        }
        Some(T::ProcessIo) => {
            let io = a
                .process_io
                .as_ref()
                .ok_or("Expecting 'attach_container_input.process_io' to be present")?;
            Ok(AttachInput::ProcessIo(input_record(io)?))
        }
        _ => Err("Expecting 'attach_container_input.type' to be present".into()),
    }
}

/// Serves a streaming request (`Content-Type: application/recordio`):
/// only `ATTACH_CONTAINER_INPUT` takes one.
pub(super) async fn serve_input<B>(
    api: Arc<dyn OperatorApi>,
    headers: &HeaderMap,
    mut body: B,
) -> Result<Response<Body>, Response<Body>>
where
    B: hyper::body::Body + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let message = match headers.get(MESSAGE_CONTENT_TYPE).map(|v| v.as_bytes()) {
        None => {
            return Err(bad_request(
                "Expecting 'Message-Content-Type' to be set for streaming requests",
            ))
        }
        Some(b"application/json") => ContentType::Json,
        Some(b"application/x-protobuf") => ContentType::Protobuf,
        Some(_) => {
            return Err(text(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "Expecting 'Message-Content-Type' of {APPLICATION_JSON} or \
                     {APPLICATION_PROTOBUF}"
                ),
            ))
        }
    };
    accepts(headers).map_err(|(s, m)| text(s, m))?;
    let mut decoder = recordio::Decoder::new(MAX_INPUT_RECORD);
    let mut pending = std::collections::VecDeque::new();
    // The first record, within the body timeout.
    let first = tokio::time::timeout(
        BODY_TIMEOUT,
        next_record(&mut body, &mut decoder, &mut pending),
    )
    .await
    .map_err(|_| {
        text(
            StatusCode::REQUEST_TIMEOUT,
            format!("the first record did not arrive within {BODY_TIMEOUT:?}"),
        )
    })??
    .ok_or_else(|| bad_request("Received EOF while reading request body"))?;
    let call = decode_call(message, &first).map_err(bad_request)?;
    let valid =
        validate(&call).map_err(|e| bad_request(format!("Failed to validate agent::Call: {e}")))?;
    let container_id = match valid {
        Valid::AttachInput(AttachInput::ContainerId(c)) => c,
        Valid::AttachInput(AttachInput::ProcessIo(_)) => {
            return Err(bad_request(
                "Expecting 'attach_container_input.type' to be CONTAINER_ID",
            ))
        }
        _ => {
            let name = call
                .r#type
                .and_then(|t| call::Type::try_from(t).ok())
                .map_or("UNKNOWN", |t| t.as_str_name());
            return Err(text(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "Streaming 'Content-Type' {APPLICATION_RECORDIO} is not supported for \
                     {name} call"
                ),
            ));
        }
    };
    let sink = api.attach_input(container_id).await.map_err(super::error)?;
    while let Some(record) = next_record(&mut body, &mut decoder, &mut pending).await? {
        let valid = input_call(message, &record).map_err(bad_request)?;
        let Valid::AttachInput(AttachInput::ProcessIo(rec)) = valid else {
            return Err(bad_request(NOT_PROCESS_IO));
        };
        if sink.records.send(rec).await.is_err() {
            // The process is gone: nothing reads input any more.
            break;
        }
    }
    drop(sink);
    Ok(Response::new(Empty::new().boxed()))
}

/// The next complete record of the body; `None` at its end.
async fn next_record<B>(
    body: &mut B,
    decoder: &mut recordio::Decoder,
    pending: &mut std::collections::VecDeque<Vec<u8>>,
) -> Result<Option<Vec<u8>>, Response<Body>>
where
    B: hyper::body::Body + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    loop {
        if let Some(r) = pending.pop_front() {
            return Ok(Some(r));
        }
        match body.frame().await {
            None => {
                decoder
                    .finish()
                    .map_err(|e| bad_request(format!("Failed to decode the request: {e}")))?;
                return Ok(None);
            }
            Some(Err(e)) => {
                let e: Box<dyn std::error::Error + Send + Sync> = e.into();
                return Err(bad_request(format!("Failed to read request body: {e}")));
            }
            Some(Ok(frame)) => {
                if let Ok(mut data) = frame.into_data() {
                    let data = data.copy_to_bytes(data.remaining());
                    let records = decoder
                        .feed(&data)
                        .map_err(|e| bad_request(format!("Failed to decode the request: {e}")))?;
                    pending.extend(records);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::mesos::v1::agent::Call;

    fn input_call_bytes(rec: Option<ProcessIo>, container: Option<&str>) -> Vec<u8> {
        use call::attach_container_input::Type as T;
        let call = Call {
            r#type: Some(call::Type::AttachContainerInput as i32),
            attach_container_input: Some(call::AttachContainerInput {
                r#type: Some(if rec.is_some() {
                    T::ProcessIo
                } else {
                    T::ContainerId
                } as i32),
                container_id: container.map(|c| ContainerId {
                    value: c.into(),
                    parent: Some(Box::new(ContainerId {
                        value: "parent".into(),
                        parent: None,
                    })),
                }),
                process_io: rec,
            }),
            ..Default::default()
        };
        recordio::encode(&call.encode_to_vec())
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                hyper::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn accept_and_message_accept_as_the_agent_negotiates_them() {
        let a = accepts(&headers(&[])).unwrap();
        assert_eq!((a.message, a.streaming), (ContentType::Json, false));
        let a = accepts(&headers(&[("accept", "application/recordio")])).unwrap();
        assert_eq!((a.message, a.streaming), (ContentType::Json, true));
        assert_eq!(a.content_type(), "application/recordio");
        let a = accepts(&headers(&[
            ("accept", "application/recordio"),
            ("message-accept", "application/x-protobuf"),
        ]))
        .unwrap();
        assert_eq!((a.message, a.streaming), (ContentType::Protobuf, true));
        let a = accepts(&headers(&[("accept", "application/x-protobuf")])).unwrap();
        assert_eq!(a.content_type(), "application/x-protobuf");
        let e = accepts(&headers(&[
            ("accept", "application/recordio"),
            ("message-accept", "text/plain"),
        ]))
        .unwrap_err();
        assert_eq!(e.0, StatusCode::NOT_ACCEPTABLE);
        assert!(e.1.contains("Message-Accept"), "{e:?}");
        let e = accepts(&headers(&[
            ("accept", "application/json"),
            ("message-accept", "application/json"),
        ]))
        .unwrap_err();
        assert_eq!(e.0, StatusCode::NOT_ACCEPTABLE);
        assert!(e.1.contains("non-streaming"), "{e:?}");
        let e = accepts(&headers(&[("accept", "text/html")])).unwrap_err();
        assert!(e.1.contains("application/recordio"), "{e:?}");
    }

    #[test]
    fn output_records_are_framed_process_io_in_either_encoding() {
        let rec = data_record(process_io::data::Type::Stdout, b"hi\n");
        let framed = encode_record(&rec, ContentType::Protobuf);
        let mut d = recordio::Decoder::new(1 << 20);
        let records = d.feed(&framed).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(ProcessIo::decode(&records[0][..]).unwrap(), rec);
        let framed = encode_record(&rec, ContentType::Json);
        let text = String::from_utf8(framed.to_vec()).unwrap();
        let (len, json) = text.split_once('\n').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), json.len());
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(v["type"], "DATA");
        assert_eq!(v["data"]["type"], "STDOUT");
        // Bytes are base64 in JSON, as in Mesos.
        assert_eq!(v["data"]["data"], "aGkK");
        let hb = encode_record(&heartbeat_record(HEARTBEAT_INTERVAL), ContentType::Json);
        let text = String::from_utf8(hb.to_vec()).unwrap();
        assert!(
            text.contains("HEARTBEAT") && text.contains("30000000000"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_silent_output_gets_heartbeats_and_its_end_drops_the_guard() {
        struct Flag(Arc<std::sync::atomic::AtomicBool>);
        impl Drop for Flag {
            fn drop(&mut self) {
                self.0.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let dropped = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (tx, rx) = mpsc::channel(1);
        let accepts = Accepts {
            message: ContentType::Protobuf,
            streaming: true,
        };
        let every = Duration::from_millis(50);
        let mut body = output_with(
            OutputStream {
                chunks: rx,
                guard: Box::new(Flag(dropped.clone())),
            },
            accepts,
            every,
        )
        .into_body();
        let frame = body.frame().await.unwrap().unwrap().into_data().unwrap();
        let mut d = recordio::Decoder::new(1 << 20);
        let records = d.feed(&frame).unwrap();
        assert_eq!(
            ProcessIo::decode(&records[0][..]).unwrap(),
            heartbeat_record(every)
        );
        tx.send(OutputChunk::Stderr(Bytes::from_static(b"e")))
            .await
            .unwrap();
        drop(tx);
        let frame = body.frame().await.unwrap().unwrap().into_data().unwrap();
        let records = d.feed(&frame).unwrap();
        assert_eq!(
            ProcessIo::decode(&records[0][..]).unwrap(),
            data_record(process_io::data::Type::Stderr, b"e")
        );
        assert!(body.frame().await.is_none());
        drop(body);
        assert!(dropped.load(std::sync::atomic::Ordering::SeqCst));
    }

    #[test]
    fn an_input_stream_decodes_into_records() {
        let mut body = input_call_bytes(None, Some("debug"));
        body.extend(input_call_bytes(
            Some(data_record(process_io::data::Type::Stdin, b"ls\n")),
            None,
        ));
        let mut tty = heartbeat_record(Duration::from_secs(1));
        let control = tty.control.as_mut().unwrap();
        control.r#type = Some(process_io::control::Type::TtyInfo as i32);
        control.tty_info = Some(crate::proto::mesos::v1::TtyInfo {
            window_size: Some(crate::proto::mesos::v1::tty_info::WindowSize {
                rows: 40,
                columns: 100_000,
            }),
        });
        body.extend(input_call_bytes(Some(tty), None));
        body.extend(input_call_bytes(
            Some(heartbeat_record(Duration::from_secs(30))),
            None,
        ));
        body.extend(input_call_bytes(
            Some(data_record(process_io::data::Type::Stdin, b"")),
            None,
        ));
        assert_eq!(
            decode_input(ContentType::Protobuf, &body).unwrap(),
            [
                InputRecord::Stdin(Bytes::from_static(b"ls\n")),
                InputRecord::WindowSize {
                    rows: 40,
                    cols: u16::MAX
                },
                InputRecord::Heartbeat,
                InputRecord::Eof,
            ]
        );
    }

    #[test]
    fn input_streams_that_break_the_rules_are_refused() {
        let first = input_call_bytes(None, Some("debug"));
        // No container first.
        let io = input_call_bytes(Some(data_record(process_io::data::Type::Stdin, b"x")), None);
        assert!(decode_input(ContentType::Protobuf, &io).is_err());
        // A second container id.
        let twice = [first.clone(), first.clone()].concat();
        assert_eq!(
            decode_input(ContentType::Protobuf, &twice).unwrap_err(),
            NOT_PROCESS_IO
        );
        // Stdout is not input.
        let out = [
            first.clone(),
            input_call_bytes(
                Some(data_record(process_io::data::Type::Stdout, b"x")),
                None,
            ),
        ]
        .concat();
        assert!(decode_input(ContentType::Protobuf, &out)
            .unwrap_err()
            .contains("STDIN"));
        // A truncated record.
        let mut cut = [first.clone(), io.clone()].concat();
        cut.pop();
        assert!(decode_input(ContentType::Protobuf, &cut).is_err());
        // An invalid container id.
        let bad = input_call_bytes(None, Some("a.b"));
        assert!(decode_input(ContentType::Protobuf, &bad)
            .unwrap_err()
            .contains("invalid"));
        // Garbage.
        assert!(decode_input(ContentType::Json, b"3\n{x}").is_err());
    }
}
