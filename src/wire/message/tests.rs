use super::*;

fn upid(s: &str) -> Upid {
    s.parse().unwrap()
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(*k, HeaderValue::from_str(v).unwrap());
    }
    h
}

// Fixtures written by hand from libprocess' MessageEncoder: request line,
// then User-Agent, Libprocess-From, Connection, Host, then the body as one
// chunk with its length in lower-case hex.

#[test]
fn encodes_a_message_byte_for_byte_as_libprocess() {
    let bytes = encode_message(
        &upid("slave(1)@10.0.0.2:5051"),
        &upid("master@10.0.0.1:5050"),
        "mesos.internal.RegisterSlaveMessage",
        b"abcdefghijklmnopqrstuvwxyz",
    );
    let expected: &[u8] = b"POST /master/mesos.internal.RegisterSlaveMessage HTTP/1.1\r\n\
User-Agent: libprocess/slave(1)@10.0.0.2:5051\r\n\
Libprocess-From: slave(1)@10.0.0.2:5051\r\n\
Connection: Keep-Alive\r\n\
Host: 10.0.0.1:5050\r\n\
Transfer-Encoding: chunked\r\n\
\r\n\
1a\r\n\
abcdefghijklmnopqrstuvwxyz\r\n\
0\r\n\
\r\n";
    assert_eq!(
        String::from_utf8_lossy(&bytes),
        String::from_utf8_lossy(expected)
    );
    assert_eq!(bytes, expected);
}

#[test]
fn an_empty_body_has_no_length_header_and_ends_after_the_headers() {
    let bytes = encode_message(
        &upid("slave(1)@127.0.0.1:5051"),
        &upid("master@127.0.0.1:5050"),
        "mesos.internal.PongSlaveMessage",
        b"",
    );
    let expected: &[u8] = b"POST /master/mesos.internal.PongSlaveMessage HTTP/1.1\r\n\
User-Agent: libprocess/slave(1)@127.0.0.1:5051\r\n\
Libprocess-From: slave(1)@127.0.0.1:5051\r\n\
Connection: Keep-Alive\r\n\
Host: 127.0.0.1:5050\r\n\
\r\n";
    assert_eq!(bytes, expected);
}

#[test]
fn an_empty_receiver_id_gives_a_single_slash() {
    let bytes = encode_message(&upid("a@1.2.3.4:1"), &upid("@5.6.7.8:2"), "hello", b"");
    assert!(bytes.starts_with(b"POST /hello HTTP/1.1\r\n"), "{bytes:?}");
}

#[test]
fn binary_bodies_are_written_raw_with_a_lower_case_hex_length() {
    let body: Vec<u8> = (0..=254u8).collect(); // 255 bytes, NULs included
    let bytes = encode_message(&upid("a@1.2.3.4:1"), &upid("b@5.6.7.8:2"), "n", &body);
    let mut tail = b"Transfer-Encoding: chunked\r\n\r\nff\r\n".to_vec();
    tail.extend_from_slice(&body);
    tail.extend_from_slice(b"\r\n0\r\n\r\n");
    assert!(bytes.ends_with(&tail));
}

#[test]
fn parses_a_message_from_libprocess_from() {
    let h = headers(&[
        ("user-agent", "libprocess/master@10.0.0.1:5050"),
        ("libprocess-from", "master@10.0.0.1:5050"),
    ]);
    assert!(is_message(&Method::POST, &h));
    let m = parse_message(
        &Method::POST,
        "/slave(1)/mesos.internal.PingSlaveMessage",
        &h,
        Bytes::from_static(b"\x08\x01"),
    )
    .unwrap();
    assert_eq!(m.from, upid("master@10.0.0.1:5050"));
    assert_eq!(m.to, "slave(1)");
    assert_eq!(m.name, "mesos.internal.PingSlaveMessage");
    assert_eq!(&m.body[..], b"\x08\x01");
}

#[test]
fn libprocess_from_wins_over_the_user_agent_and_is_trimmed() {
    let h = headers(&[
        ("user-agent", "libprocess/other@1.1.1.1:1"),
        ("libprocess-from", "  master@10.0.0.1:5050 "),
    ]);
    let m = parse_message(&Method::POST, "/slave(1)/x", &h, Bytes::new()).unwrap();
    assert_eq!(m.from, upid("master@10.0.0.1:5050"));
}

#[test]
fn parses_the_legacy_user_agent_form() {
    let h = headers(&[("user-agent", "libprocess/master@10.0.0.1:5050")]);
    assert!(is_message(&Method::POST, &h));
    let m = parse_message(
        &Method::POST,
        "/slave(1)/mesos.internal.X",
        &h,
        Bytes::new(),
    )
    .unwrap();
    assert_eq!(m.from, upid("master@10.0.0.1:5050"));
    assert_eq!(m.name, "mesos.internal.X");
}

#[test]
fn the_receiver_id_is_percent_decoded_and_the_name_is_not() {
    let h = headers(&[("libprocess-from", "m@1.2.3.4:5")]);
    let m = parse_message(&Method::POST, "/slave%281%29/a%20b/c", &h, Bytes::new()).unwrap();
    assert_eq!(m.to, "slave(1)");
    assert_eq!(m.name, "a%20b/c");
    let plus = parse_message(&Method::POST, "/a+b/n", &h, Bytes::new()).unwrap();
    assert_eq!(plus.to, "a b");
}

#[test]
fn plain_http_requests_are_not_messages() {
    let none = HeaderMap::new();
    assert!(!is_message(&Method::POST, &none));
    let ua = headers(&[("user-agent", "curl/8.0 libprocess/x@1.2.3.4:5")]);
    assert!(
        !is_message(&Method::POST, &ua),
        "the prefix must start the agent"
    );
    let from = headers(&[("libprocess-from", "m@1.2.3.4:5")]);
    assert!(!is_message(&Method::GET, &from));
    assert_eq!(
        parse_message(&Method::GET, "/slave(1)/x", &from, Bytes::new()),
        Err(WireError::NotAMessage {
            reason: "method is not POST"
        })
    );
    assert!(matches!(
        parse_message(&Method::POST, "/slave(1)/x", &none, Bytes::new()),
        Err(WireError::NotAMessage { .. })
    ));
}

#[test]
fn rejects_bad_paths() {
    let h = headers(&[("libprocess-from", "m@1.2.3.4:5")]);
    let reason = |path: &str| match parse_message(&Method::POST, path, &h, Bytes::new()) {
        Err(WireError::Path { reason, .. }) => reason,
        other => panic!("{path:?} gave {other:?}"),
    };
    assert_eq!(reason("slave(1)/x"), "does not start with '/'");
    assert_eq!(reason(""), "does not start with '/'");
    assert_eq!(reason("/slave(1)"), "missing message name");
    assert_eq!(reason("/slave(1)/"), "missing message name");
    assert_eq!(reason("/sl%2/x"), "malformed % escape in the process id");
    assert_eq!(reason("/sl%zz/x"), "malformed % escape in the process id");
    assert_eq!(reason("/%ff/x"), "process id is not UTF-8");
}

#[test]
fn rejects_unparseable_senders_naming_the_header() {
    let header_of = |h: &HeaderMap| match parse_message(&Method::POST, "/s/x", h, Bytes::new()) {
        Err(WireError::Sender { header, .. }) => header,
        other => panic!("gave {other:?}"),
    };
    assert_eq!(
        header_of(&headers(&[("libprocess-from", "garbage")])),
        "Libprocess-From"
    );
    assert_eq!(
        header_of(&headers(&[("libprocess-from", "")])),
        "Libprocess-From"
    );
    assert_eq!(
        header_of(&headers(&[("user-agent", "libprocess/")])),
        "User-Agent"
    );
    assert_eq!(
        header_of(&headers(&[("user-agent", "libprocess/m@host:5050")])),
        "User-Agent"
    );
    let mut h = HeaderMap::new();
    h.insert(
        "libprocess-from",
        HeaderValue::from_bytes(b"m\xff@1.2.3.4:5").unwrap(),
    );
    assert_eq!(header_of(&h), "Libprocess-From");
}

#[test]
fn percent_decoding_matches_libprocess() {
    assert_eq!(percent_decode("a%41%2fb").as_deref(), Some(&b"aA/b"[..]));
    assert_eq!(percent_decode("%").as_deref(), None);
    assert_eq!(percent_decode("%4").as_deref(), None);
    assert_eq!(percent_decode("%+1").as_deref(), None);
    assert_eq!(percent_decode("").as_deref(), Some(&b""[..]));
}
