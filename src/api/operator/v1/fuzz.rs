//! The fuzz entry for operator API calls (see `fuzz/`, target
//! `agent_call`): a request's `Content-Type` and body go through the
//! decoding and validation the agent makes. A call that is taken must come
//! back unchanged through protobuf and through JSON, and must be judged
//! the same way after either trip.
//!
//! A `Content-Type` of `application/recordio` makes the next line the
//! `Message-Content-Type` and the rest an `ATTACH_CONTAINER_INPUT` stream
//! ([`super::stream::decode_input`]): a taken stream's records, written
//! back as a stream in either encoding, must decode to themselves.

use hyper::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use prost::Message as _;

use super::{decode_call, validate};
use crate::api::executor::media::request_content_type;
use crate::api::executor::ContentType;

/// `Content-Type` value, newline, body. Panics when an invariant breaks.
pub fn call(data: &[u8]) {
    let mut parts = data.splitn(2, |&b| b == b'\n');
    let (Some(content_type), Some(body)) = (parts.next(), parts.next()) else {
        return;
    };
    if content_type == b"application/recordio" {
        return input_stream(body);
    }
    let Ok(content_type) = HeaderValue::from_bytes(content_type) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, content_type);
    let Ok(content_type) = request_content_type(&headers) else {
        return;
    };
    let Ok(call) = decode_call(content_type, body) else {
        return;
    };
    let bytes = call.encode_to_vec();
    let judged = validate(&call);

    let again = decode_call(ContentType::Protobuf, &bytes)
        .unwrap_or_else(|e| panic!("a taken call does not decode once re-encoded: {e}"));
    assert_eq!(again.encode_to_vec(), bytes);
    assert_eq!(validate(&again), judged);

    let json = serde_json::to_vec(&crate::proto::to_json(&call)).expect("JSON is written");
    let again = decode_call(ContentType::Json, &json).unwrap_or_else(|e| {
        panic!(
            "a taken call does not parse from its own JSON {}: {e}",
            String::from_utf8_lossy(&json)
        )
    });
    assert_eq!(
        again.encode_to_vec(),
        bytes,
        "{}",
        String::from_utf8_lossy(&json)
    );
    assert_eq!(validate(&again), judged);
}

/// `Message-Content-Type`, newline, an input stream.
fn input_stream(data: &[u8]) {
    use super::stream::{data_record, decode_input, heartbeat_record, InputRecord};
    use crate::proto::mesos::v1::agent::{call, process_io, Call, ProcessIo};
    let mut parts = data.splitn(2, |&b| b == b'\n');
    let (Some(message), Some(body)) = (parts.next(), parts.next()) else {
        return;
    };
    let message = match message {
        b"application/json" => ContentType::Json,
        b"application/x-protobuf" => ContentType::Protobuf,
        _ => return,
    };
    let Ok(records) = decode_input(message, body) else {
        return;
    };
    let call = |io: Option<ProcessIo>| {
        use call::attach_container_input::Type as T;
        Call {
            r#type: Some(call::Type::AttachContainerInput as i32),
            attach_container_input: Some(call::AttachContainerInput {
                r#type: Some(if io.is_some() {
                    T::ProcessIo
                } else {
                    T::ContainerId
                } as i32),
                container_id: io.is_none().then(|| crate::proto::mesos::v1::ContainerId {
                    value: "c".into(),
                    parent: None,
                }),
                process_io: io,
            }),
            ..Default::default()
        }
    };
    for encoding in [ContentType::Protobuf, ContentType::Json] {
        let mut stream = Vec::new();
        let mut push = |c: Call| {
            let bytes = match encoding {
                ContentType::Protobuf => c.encode_to_vec(),
                ContentType::Json => {
                    serde_json::to_vec(&crate::proto::to_json(&c)).expect("JSON is written")
                }
            };
            stream.extend(crate::api::recordio::encode(&bytes));
        };
        push(call(None));
        for r in &records {
            let io = match r {
                InputRecord::Stdin(b) => data_record(process_io::data::Type::Stdin, b),
                InputRecord::Eof => data_record(process_io::data::Type::Stdin, b""),
                InputRecord::Heartbeat => heartbeat_record(std::time::Duration::from_secs(1)),
                InputRecord::WindowSize { rows, cols } => {
                    let mut io = heartbeat_record(std::time::Duration::ZERO);
                    let c = io.control.as_mut().expect("a control record");
                    c.r#type = Some(process_io::control::Type::TtyInfo as i32);
                    c.heartbeat = None;
                    c.tty_info = Some(crate::proto::mesos::v1::TtyInfo {
                        window_size: Some(crate::proto::mesos::v1::tty_info::WindowSize {
                            rows: u32::from(*rows),
                            columns: u32::from(*cols),
                        }),
                    });
                    io
                }
            };
            push(call(Some(io)));
        }
        let again = decode_input(encoding, &stream).unwrap_or_else(|e| {
            panic!("a taken input stream does not decode once re-encoded: {e}")
        });
        assert_eq!(again, records);
    }
}
