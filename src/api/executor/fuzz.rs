//! The fuzz entry for executor calls (see `fuzz/`): a request's
//! `Content-Type` and `Accept` values and its body go through the checks
//! and decoding the agent makes, in its order. A call that is taken must
//! come back unchanged through protobuf and through JSON, and must pass or
//! fail validation the same way after either trip.

use hyper::header::{HeaderMap, HeaderValue, ACCEPT, CONTENT_TYPE};
use prost::Message as _;

use super::media::{negotiate_events, request_content_type};
use super::validate::validate;
use super::{decode_call, ContentType};

/// `Content-Type` value, newline, `Accept` value (none when empty),
/// newline, body. Panics when an invariant breaks.
pub fn call(data: &[u8]) {
    let mut parts = data.splitn(3, |&b| b == b'\n');
    let (Some(content_type), Some(accept), Some(body)) = (parts.next(), parts.next(), parts.next())
    else {
        return;
    };
    let mut headers = HeaderMap::new();
    let (Ok(content_type), Ok(accept)) = (
        HeaderValue::from_bytes(content_type),
        HeaderValue::from_bytes(accept),
    ) else {
        return;
    };
    headers.insert(CONTENT_TYPE, content_type);
    if !accept.is_empty() {
        headers.insert(ACCEPT, accept);
    }
    let _ = negotiate_events(&headers);
    let Ok(content_type) = request_content_type(&headers) else {
        return;
    };
    let Ok(call) = decode_call(content_type, body) else {
        return;
    };
    let bytes = call.encode_to_vec();
    let valid = validate(call.clone()).is_ok();

    let again = decode_call(ContentType::Protobuf, &bytes)
        .unwrap_or_else(|e| panic!("a taken call does not decode once re-encoded: {e}"));
    assert_eq!(again.encode_to_vec(), bytes);
    assert_eq!(validate(again).is_ok(), valid);

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
    assert_eq!(validate(again).is_ok(), valid);
}
