//! The fuzz entry for operator API calls (see `fuzz/`, target
//! `agent_call`): a request's `Content-Type` and body go through the
//! decoding and validation the agent makes. A call that is taken must come
//! back unchanged through protobuf and through JSON, and must be judged
//! the same way after either trip.

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
