//! A libprocess message and its HTTP form, both ways.
//!
//! Facts from libprocess (`MessageEncoder`, `ProcessManager::handle`):
//! - A message is the request `POST /<to id>/<name> HTTP/1.1` (just
//!   `POST /<name>` when the receiver's id is empty) with the headers
//!   `User-Agent: libprocess/<from>`, `Libprocess-From: <from>`,
//!   `Connection: Keep-Alive` and `Host: <to ip:port>` in that order, then,
//!   for a non-empty body, `Transfer-Encoding: chunked` and the whole body as
//!   one chunk (length in lower-case hex) followed by the last chunk `0`.
//!   An empty body has no length header at all.
//! - A receiver treats a request as a message when it is a POST and either
//!   carries `Libprocess-From` or has a `User-Agent` starting with
//!   `libprocess/` (the legacy form). The sender comes from
//!   `Libprocess-From` (trimmed) when present, else from what follows
//!   `libprocess/` in the User-Agent.
//! - The receiver id is the path up to the second `/`, percent-decoded
//!   (`+` reads as a space); the name is the rest of the path, not decoded.

use bytes::Bytes;
use hyper::header::{HeaderMap, HeaderValue, USER_AGENT};
use hyper::Method;

use super::error::WireError;
use super::upid::Upid;

/// The header naming the sender of a message.
pub const LIBPROCESS_FROM: &str = "libprocess-from";
/// The User-Agent prefix of the legacy form; the sender's pid follows it.
pub const LIBPROCESS_AGENT: &str = "libprocess/";

/// One message received from a libprocess peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The sender, as it says itself: where replies go.
    pub from: Upid,
    /// The local process the message is for (percent-decoded), e.g.
    /// `slave(1)`.
    pub to: String,
    /// The message name, e.g. `mesos.internal.RunTaskMessage`.
    pub name: String,
    /// The serialized protobuf, as sent.
    pub body: Bytes,
}

/// The exact bytes libprocess writes on its connection to send `body` as
/// message `name` from `from` to `to`.
///
/// `to.id` and `name` are written as they are (libprocess does not encode
/// them); pids parsed by [`Upid::from_str`](std::str::FromStr) cannot hold
/// whitespace, and message names are protobuf type names.
pub fn encode_message(from: &Upid, to: &Upid, name: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(192 + to.id.len() + name.len() + body.len());
    out.extend_from_slice(b"POST ");
    if !to.id.is_empty() {
        out.push(b'/');
        out.extend_from_slice(to.id.as_bytes());
    }
    let head = format!(
        "/{name} HTTP/1.1\r\n\
         User-Agent: libprocess/{from}\r\n\
         Libprocess-From: {from}\r\n\
         Connection: Keep-Alive\r\n\
         Host: {host}\r\n",
        host = to.addr,
    );
    out.extend_from_slice(head.as_bytes());
    if body.is_empty() {
        out.extend_from_slice(b"\r\n");
    } else {
        out.extend_from_slice(
            format!("Transfer-Encoding: chunked\r\n\r\n{:x}\r\n", body.len()).as_bytes(),
        );
        out.extend_from_slice(body);
        out.extend_from_slice(b"\r\n0\r\n\r\n");
    }
    out
}

/// Whether a request is a libprocess message (whatever its path): a POST
/// with `Libprocess-From`, or with a User-Agent starting `libprocess/`.
/// Everything else is a plain HTTP request.
pub fn is_message(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::POST
        && (headers.contains_key(LIBPROCESS_FROM)
            || headers
                .get(USER_AGENT)
                .is_some_and(|ua| ua.as_bytes().starts_with(LIBPROCESS_AGENT.as_bytes())))
}

/// Parses a request already read in full into a [`Message`]. Pure: the
/// caller checks `to` against its own id. `path` is the URI's path, without
/// the query.
pub fn parse_message(
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Message, WireError> {
    if method != Method::POST {
        return Err(WireError::NotAMessage {
            reason: "method is not POST",
        });
    }
    let from = sender(headers)?;
    let (to, name) = split_path(path)?;
    Ok(Message {
        from,
        to,
        name,
        body,
    })
}

/// The sender: `Libprocess-From` when present, else the legacy User-Agent.
fn sender(headers: &HeaderMap) -> Result<Upid, WireError> {
    let parse = |header: &'static str, value: &HeaderValue, skip: usize| {
        let text = value
            .to_str()
            .map_err(|_| WireError::upid("<not ASCII>", "header value is not visible ASCII"))
            .and_then(|text| text.get(skip..).unwrap_or("").trim().parse());
        text.map_err(|e| WireError::Sender {
            header,
            source: Box::new(e),
        })
    };
    if let Some(value) = headers.get(LIBPROCESS_FROM) {
        return parse("Libprocess-From", value, 0);
    }
    match headers.get(USER_AGENT) {
        Some(ua) if ua.as_bytes().starts_with(LIBPROCESS_AGENT.as_bytes()) => {
            parse("User-Agent", ua, LIBPROCESS_AGENT.len())
        }
        _ => Err(WireError::NotAMessage {
            reason: "neither Libprocess-From nor a libprocess/ User-Agent",
        }),
    }
}

/// `/<to>/<name>` -> (decoded `to`, `name`).
fn split_path(path: &str) -> Result<(String, String), WireError> {
    let rest = path
        .strip_prefix('/')
        .ok_or_else(|| WireError::path(path, "does not start with '/'"))?;
    let (to, name) = rest
        .split_once('/')
        .ok_or_else(|| WireError::path(path, "missing message name"))?;
    if name.is_empty() {
        return Err(WireError::path(path, "missing message name"));
    }
    let to = percent_decode(to)
        .ok_or_else(|| WireError::path(path, "malformed % escape in the process id"))?;
    let to = String::from_utf8(to).map_err(|_| WireError::path(path, "process id is not UTF-8"))?;
    Ok((to, name.to_string()))
}

/// libprocess' `http::decode`: `%XX` to a byte, `+` to a space; `None` on
/// a `%` not followed by two hex digits.
fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                if !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
                    return None;
                }
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests;
