//! The fuzz entry for what arrives on the agent's libprocess port (see
//! `fuzz/`), and property tests of the same parsers.
//!
//! [`request`] takes the bytes of one HTTP/1.1 request as a libprocess peer
//! writes it (request line, headers, blank line, body, chunked or not),
//! hands what hyper would hand over to [`parse_message`], and checks what
//! it gets: a request that is not a message is refused as such, a message
//! keeps its body, its sender prints as a pid that parses back to itself,
//! and encoding the message again reads back the same message.

use bytes::Bytes;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, TRANSFER_ENCODING};
use hyper::{Method, Uri};

use super::error::clip;
use super::{encode_message, is_message, parse_message, Message, Upid, WireError};

/// One request from the network through the message parser; the message
/// when it is one. Panics when an invariant breaks.
pub fn request(data: &[u8]) -> Option<Message> {
    let (method, path, headers, body) = split_request(data)?;
    for value in headers.values() {
        if let Ok(text) = value.to_str() {
            upid_round_trips(text);
            upid_round_trips(text.get(super::LIBPROCESS_AGENT.len()..).unwrap_or(""));
        }
    }
    let parsed = parse_message(&method, &path, &headers, body.clone());
    if !is_message(&method, &headers) {
        assert!(
            matches!(parsed, Err(WireError::NotAMessage { .. })),
            "{parsed:?}"
        );
    }
    let message = match parsed {
        Ok(m) => m,
        Err(e) => {
            // What the server logs and answers.
            let _ = (e.to_string(), clip(&path));
            return None;
        }
    };
    assert_eq!(message.body, body);
    assert!(!message.name.is_empty());
    assert_eq!(
        message.from.to_string().parse::<Upid>(),
        Ok(message.from.clone())
    );
    // Encoding writes the receiver id and name as they are, so only names
    // that need no escaping in a request line come back unchanged.
    let plain = |s: &str| {
        !s.bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control() || b"%+?#".contains(&b))
    };
    if !message.to.is_empty()
        && !message.to.contains('/')
        && plain(&message.to)
        && plain(&message.name)
    {
        let to = Upid::new(message.to.clone(), message.from.addr);
        let bytes = encode_message(&message.from, &to, &message.name, &message.body);
        let (m2, p2, h2, b2) = split_request(&bytes).expect("an encoded message is a request");
        let again = parse_message(&m2, &p2, &h2, b2).expect("an encoded message parses");
        assert_eq!(again, message);
    }
    Some(message)
}

/// Whether a pid that parses prints as text that parses back to it.
fn upid_round_trips(text: &str) {
    if let Ok(pid) = text.parse::<Upid>() {
        assert_eq!(pid.to_string().parse::<Upid>(), Ok(pid));
    }
}

/// What hyper hands the server for `data`: method, the URI's path, headers
/// and the whole body; `None` where hyper would refuse the request itself.
/// A test harness, not a parser butte serves with.
fn split_request(data: &[u8]) -> Option<(Method, String, HeaderMap, Bytes)> {
    let mut rest = data;
    let mut line = || {
        let end = rest.iter().position(|&b| b == b'\n')?;
        let l = &rest[..end];
        rest = &rest[end + 1..];
        Some(l.strip_suffix(b"\r").unwrap_or(l))
    };
    let request_line = std::str::from_utf8(line()?).ok()?;
    let mut words = request_line.split(' ');
    let method = Method::from_bytes(words.next()?.as_bytes()).ok()?;
    let uri: Uri = words.next()?.parse().ok()?;
    let mut headers = HeaderMap::new();
    loop {
        let l = line()?;
        if l.is_empty() {
            break;
        }
        let colon = l.iter().position(|&b| b == b':')?;
        let name = HeaderName::from_bytes(&l[..colon]).ok()?;
        let value = HeaderValue::from_bytes(l[colon + 1..].trim_ascii()).ok()?;
        headers.append(name, value);
    }
    let chunked = headers
        .get(TRANSFER_ENCODING)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"chunked"));
    let body = if chunked {
        dechunk(rest)?
    } else {
        rest.to_vec()
    };
    Some((method, uri.path().to_string(), headers, Bytes::from(body)))
}

/// A chunked body's bytes (hex length line, bytes, CRLF; a 0 chunk ends).
fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let end = data.windows(2).position(|w| w == b"\r\n")?;
        let size = std::str::from_utf8(&data[..end]).ok()?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        data = &data[end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size..)?.strip_prefix(b"\r\n")?;
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;
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
}
