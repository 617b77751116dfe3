//! Property tests standing in for a fuzz target: the parsers of untrusted
//! bytes on the agent's port (message path, sender headers, pids) never
//! panic, and agree with the encoder.

use bytes::Bytes;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::Method;
use proptest::prelude::*;

use super::{encode_message, is_message, parse_message, Upid, WireError};

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        Just(Method::POST),
        Just(Method::GET),
        Just(Method::PUT),
        Just(Method::HEAD),
    ]
}

/// Paths hyper could hand over: anything, and anything shaped like a
/// message path.
fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[/%+a-zA-Z0-9()@.:]{0,40}",
        ("[%+a-z0-9()]{0,12}", "[%+a-zA-Z0-9./]{0,20}")
            .prop_map(|(to, name)| format!("/{to}/{name}")),
    ]
}

/// Header values: arbitrary bytes, and pid-shaped text.
fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..40),
        "[ a-z()]{0,6}@[0-9.a-z]{0,16}:[0-9-]{0,7} ?".prop_map(String::into_bytes),
        "libprocess/[ a-z()]{0,6}@[0-9.]{0,16}:[0-9]{0,6}".prop_map(String::into_bytes),
    ]
}

fn headers() -> impl Strategy<Value = HeaderMap> {
    let name = prop_oneof![
        Just("libprocess-from"),
        Just("user-agent"),
        Just("content-type"),
        Just("host"),
    ];
    proptest::collection::vec((name, value()), 0..4).prop_map(|pairs| {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            if let Ok(value) = HeaderValue::from_bytes(&value) {
                map.append(HeaderName::from_static(name), value);
            }
        }
        map
    })
}

fn pid() -> impl Strategy<Value = Upid> {
    ("[a-z()0-9_.-]{0,12}", any::<[u8; 4]>(), any::<u16>())
        .prop_map(|(id, ip, port)| Upid::new(id, (std::net::Ipv4Addr::from(ip), port).into()))
}

proptest! {
    #[test]
    fn parse_message_never_panics(
        method in method(),
        path in path(),
        headers in headers(),
        body in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let parsed = parse_message(&method, &path, &headers, Bytes::from(body.clone()));
        if !is_message(&method, &headers) {
            let not_a_message = matches!(parsed, Err(WireError::NotAMessage { .. }));
            prop_assert!(not_a_message, "{:?}", parsed);
        }
        if let Ok(m) = parsed {
            prop_assert_eq!(&m.body[..], &body[..]);
            prop_assert!(!m.name.is_empty());
        }
    }

    #[test]
    fn upid_parsing_never_panics(text in any::<String>()) {
        let _ = text.parse::<Upid>();
    }

    #[test]
    fn upids_round_trip_through_text(pid in pid()) {
        prop_assert_eq!(pid.to_string().parse::<Upid>(), Ok(pid));
    }

    #[test]
    fn what_the_encoder_writes_the_parser_reads(
        from in pid(),
        to in pid(),
        name in "[A-Za-z][A-Za-z0-9._]{0,40}",
        body in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let bytes = encode_message(&from, &to, &name, &body);
        // Split the request by hand: request line, headers, chunked body.
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let (head, _) = text.split_once("\r\n\r\n").unwrap();
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap();
        let path = request_line
            .strip_prefix("POST ")
            .and_then(|l| l.strip_suffix(" HTTP/1.1"))
            .unwrap();
        let mut headers = HeaderMap::new();
        for line in lines {
            let (k, v) = line.split_once(": ").unwrap_or((line.trim_end_matches(':'), ""));
            headers.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        prop_assert!(is_message(&Method::POST, &headers));
        let m = parse_message(&Method::POST, path, &headers, Bytes::from(body.clone()));
        if to.id.is_empty() {
            // `POST /<name>`: libprocess reads the name as the process id.
            prop_assert!(m.is_err());
        } else {
            let m = m.unwrap();
            prop_assert_eq!(m.from, from);
            prop_assert_eq!(m.to, to.id);
            prop_assert_eq!(m.name, name);
        }
    }
}
