//! A minimal blocking HTTP/1.1 client over `std::net::TcpStream`: enough to
//! POST calls to the agent (Content-Length bodies, keep-alive), to read a
//! streamed SUBSCRIBE response (chunked, decoded incrementally), and to GET
//! a URL for an HTTP health check. No TLS, no redirects, no proxies.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// The longest status or header line accepted.
const MAX_LINE: usize = 16 << 10;
/// The most header lines accepted in one response.
const MAX_HEADERS: usize = 128;
/// The largest non-streamed response body kept.
const MAX_BODY: usize = 4 << 20;

/// Why an HTTP exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("connect to {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: io::Error,
    },
    #[error("{op} {addr}: {source}")]
    Io {
        op: &'static str,
        addr: String,
        #[source]
        source: io::Error,
    },
    #[error("malformed response from {addr}: {what}")]
    Malformed { addr: String, what: String },
}

/// The status line and headers of a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    pub reason: String,
    /// Header names lower-cased, values trimmed, in order.
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// The first value of a header (name in lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn is_chunked(&self) -> bool {
        self.header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    }

    fn content_length(&self) -> Option<usize> {
        self.header("content-length").and_then(|v| v.parse().ok())
    }

    fn keeps_alive(&self) -> bool {
        !self
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

/// A complete response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub head: Head,
    pub body: Vec<u8>,
}

/// Reads the status line and headers.
pub fn read_head(r: &mut impl BufRead, addr: &str) -> Result<Head, HttpError> {
    let malformed = |what: &str| HttpError::Malformed {
        addr: addr.to_string(),
        what: what.to_string(),
    };
    let line = read_line(r, addr)?.ok_or_else(|| HttpError::Io {
        op: "read response from",
        addr: addr.to_string(),
        source: io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed"),
    })?;
    let mut parts = line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(malformed(&format!("status line {line:?}")));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .filter(|s| (100..1000).contains(s))
        .ok_or_else(|| malformed(&format!("status line {line:?}")))?;
    let reason = parts.next().unwrap_or_default().to_string();
    let mut headers = Vec::new();
    loop {
        let line = read_line(r, addr)?.ok_or_else(|| malformed("connection closed in headers"))?;
        if line.is_empty() {
            break;
        }
        if headers.len() == MAX_HEADERS {
            return Err(malformed("too many headers"));
        }
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| malformed(&format!("header line {line:?}")))?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    Ok(Head {
        status,
        reason,
        headers,
    })
}

/// One CRLF- (or LF-) terminated line, without the terminator; `None` at
/// end of stream before any byte.
fn read_line(r: &mut impl BufRead, addr: &str) -> Result<Option<String>, HttpError> {
    let mut buf = Vec::new();
    let n = r
        .by_ref()
        .take(MAX_LINE as u64 + 2)
        .read_until(b'\n', &mut buf)
        .map_err(|source| HttpError::Io {
            op: "read response from",
            addr: addr.to_string(),
            source,
        })?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() != Some(&b'\n') {
        return Err(HttpError::Malformed {
            addr: addr.to_string(),
            what: if buf.len() > MAX_LINE {
                "line too long".into()
            } else {
                "connection closed mid-line".into()
            },
        });
    }
    buf.pop();
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    String::from_utf8(buf)
        .map(Some)
        .map_err(|_| HttpError::Malformed {
            addr: addr.to_string(),
            what: "line is not UTF-8".into(),
        })
}

/// Decodes a chunked body incrementally: feed it bytes as they arrive and
/// it appends the payload to `out`.
#[derive(Debug, Default)]
pub struct ChunkedDecoder {
    state: ChunkState,
    line: Vec<u8>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Reading a chunk-size line (with optional extensions).
    #[default]
    Size,
    /// Inside chunk data, this many bytes left.
    Data(u64),
    /// Expecting the CRLF after chunk data.
    DataEnd,
    /// After the last chunk: trailer lines until an empty one.
    Trailer,
    Done,
}

/// Why a chunked body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("invalid chunk size line {0:?}")]
    Size(String),
    #[error("chunk data not followed by CRLF")]
    MissingCrlf,
    #[error("chunk header line too long")]
    LineTooLong,
}

impl ChunkedDecoder {
    /// True once the terminating zero-size chunk and trailers are read.
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Consumes `data`, appending payload bytes to `out`. Returns how many
    /// bytes of `data` were used: all of them unless the body ended.
    pub fn feed(&mut self, mut data: &[u8], out: &mut Vec<u8>) -> Result<usize, ChunkError> {
        let total = data.len();
        while !data.is_empty() {
            match self.state {
                ChunkState::Done => break,
                ChunkState::Data(left) => {
                    let n = (left.min(data.len() as u64)) as usize;
                    out.extend_from_slice(&data[..n]);
                    data = &data[n..];
                    self.state = if left == n as u64 {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left - n as u64)
                    };
                }
                ChunkState::Size | ChunkState::DataEnd | ChunkState::Trailer => {
                    let Some(line) = self.take_line(&mut data)? else {
                        break;
                    };
                    self.state = self.after_line(&line)?;
                }
            }
        }
        Ok(total - data.len())
    }

    /// Accumulates bytes up to and including a `\n`; returns the line
    /// without its terminator once complete.
    fn take_line(&mut self, data: &mut &[u8]) -> Result<Option<Vec<u8>>, ChunkError> {
        match data.iter().position(|b| *b == b'\n') {
            Some(i) => {
                self.line.extend_from_slice(&data[..i]);
                *data = &data[i + 1..];
                let mut line = std::mem::take(&mut self.line);
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                Ok(Some(line))
            }
            None => {
                self.line.extend_from_slice(data);
                *data = &[];
                if self.line.len() > MAX_LINE {
                    return Err(ChunkError::LineTooLong);
                }
                Ok(None)
            }
        }
    }

    fn after_line(&self, line: &[u8]) -> Result<ChunkState, ChunkError> {
        match self.state {
            ChunkState::DataEnd if line.is_empty() => Ok(ChunkState::Size),
            ChunkState::DataEnd => Err(ChunkError::MissingCrlf),
            ChunkState::Trailer if line.is_empty() => Ok(ChunkState::Done),
            ChunkState::Trailer => Ok(ChunkState::Trailer),
            _ => {
                let text = String::from_utf8_lossy(line);
                let hex = text.split(';').next().unwrap_or_default().trim();
                let size = u64::from_str_radix(hex, 16)
                    .ok()
                    .filter(|_| !hex.is_empty() && hex.len() <= 16)
                    .ok_or_else(|| ChunkError::Size(text.chars().take(40).collect()))?;
                Ok(if size == 0 {
                    ChunkState::Trailer
                } else {
                    ChunkState::Data(size)
                })
            }
        }
    }
}

/// Opens a TCP connection to `host:port`, trying each address in turn.
pub fn connect(addr: &str, timeout: Duration) -> Result<TcpStream, HttpError> {
    let err = |source| HttpError::Connect {
        addr: addr.to_string(),
        source,
    };
    let addrs: Vec<SocketAddr> = addr.to_socket_addrs().map_err(err)?.collect();
    let mut last = io::Error::new(io::ErrorKind::InvalidInput, "no address");
    for a in addrs {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) => last = e,
        }
    }
    Err(err(last))
}

/// Writes a request with a Content-Length body.
pub fn write_request(
    w: &mut impl Write,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<()> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
    for (k, v) in headers {
        head.push_str(k);
        head.push_str(": ");
        head.push_str(v);
        head.push_str("\r\n");
    }
    if method != "GET" || !body.is_empty() {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut buf = head.into_bytes();
    buf.extend_from_slice(body);
    w.write_all(&buf)?;
    w.flush()
}

/// Reads a whole (non-streamed) body: Content-Length, chunked, or until the
/// connection closes. Returns the body and whether the connection may be
/// reused.
pub fn read_body(
    r: &mut impl BufRead,
    head: &Head,
    addr: &str,
) -> Result<(Vec<u8>, bool), HttpError> {
    let io_err = |source| HttpError::Io {
        op: "read response from",
        addr: addr.to_string(),
        source,
    };
    let too_big = || HttpError::Malformed {
        addr: addr.to_string(),
        what: format!("body larger than {MAX_BODY} bytes"),
    };
    if head.status == 204 || head.status == 304 || (100..200).contains(&head.status) {
        return Ok((Vec::new(), head.keeps_alive()));
    }
    if head.is_chunked() {
        let mut decoder = ChunkedDecoder::default();
        let mut body = Vec::new();
        while !decoder.is_done() {
            let buf = r.fill_buf().map_err(io_err)?;
            if buf.is_empty() {
                return Err(io_err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed inside a chunked body",
                )));
            }
            let used = decoder
                .feed(buf, &mut body)
                .map_err(|e| HttpError::Malformed {
                    addr: addr.to_string(),
                    what: e.to_string(),
                })?;
            r.consume(used);
            if body.len() > MAX_BODY {
                return Err(too_big());
            }
        }
        return Ok((body, head.keeps_alive()));
    }
    if let Some(len) = head.content_length() {
        if len > MAX_BODY {
            return Err(too_big());
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body).map_err(io_err)?;
        return Ok((body, head.keeps_alive()));
    }
    let mut body = Vec::new();
    r.take(MAX_BODY as u64 + 1)
        .read_to_end(&mut body)
        .map_err(io_err)?;
    if body.len() > MAX_BODY {
        return Err(too_big());
    }
    Ok((body, false))
}

/// A keep-alive connection to one server, reopened when it breaks.
#[derive(Debug)]
pub struct Client {
    addr: String,
    timeout: Duration,
    /// Bounds each read; `None` for a long poll.
    read_timeout: Option<Duration>,
    conn: Option<BufReader<TcpStream>>,
}

impl Client {
    /// A client for `host:port`; `timeout` bounds connecting and each read
    /// or write.
    pub fn new(addr: impl Into<String>, timeout: Duration) -> Self {
        Client {
            addr: addr.into(),
            timeout,
            read_timeout: Some(timeout),
            conn: None,
        }
    }

    /// The same client waiting as long as it takes for each answer (a long
    /// poll such as `WAIT_CONTAINER`, a launch that provisions an image):
    /// `timeout` then bounds connecting and writing only.
    pub fn long_poll(mut self) -> Self {
        self.read_timeout = None;
        self
    }

    /// Sends a request and reads the whole response. A reused connection
    /// that turns out to be closed is reopened once.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Response, HttpError> {
        let reused = self.conn.is_some();
        match self.try_request(method, path, headers, body) {
            Err(HttpError::Io { .. }) if reused => {
                self.conn = None;
                self.try_request(method, path, headers, body)
            }
            other => other,
        }
    }

    fn try_request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Response, HttpError> {
        let io_err = |op, source| HttpError::Io {
            op,
            addr: self.addr.clone(),
            source,
        };
        let mut conn = match self.conn.take() {
            Some(c) => c,
            None => {
                let s = connect(&self.addr, self.timeout)?;
                s.set_read_timeout(self.read_timeout)
                    .and_then(|()| s.set_write_timeout(Some(self.timeout)))
                    .map_err(|e| io_err("configure connection to", e))?;
                BufReader::new(s)
            }
        };
        write_request(conn.get_mut(), method, &self.addr, path, headers, body)
            .map_err(|e| io_err("send request to", e))?;
        let head = read_head(&mut conn, &self.addr)?;
        let (body, reusable) = read_body(&mut conn, &head, &self.addr)?;
        if reusable {
            self.conn = Some(conn);
        }
        Ok(Response { head, body })
    }
}

/// A streamed response body, de-chunked as it is read.
#[derive(Debug)]
pub struct BodyStream {
    conn: BufReader<TcpStream>,
    addr: String,
    chunked: Option<ChunkedDecoder>,
    /// Bytes left when the body has a Content-Length.
    left: Option<u64>,
}

impl BodyStream {
    /// Opens a streamed POST: sends the request and reads the head. The
    /// body is read with [`BodyStream::next_bytes`].
    pub fn post(
        addr: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        connect_timeout: Duration,
    ) -> Result<(Head, BodyStream), HttpError> {
        let mut s = connect(addr, connect_timeout)?;
        let io_err = |op, source| HttpError::Io {
            op,
            addr: addr.to_string(),
            source,
        };
        // Bounded while the request is sent and the head read; the stream
        // itself may stay quiet between heartbeats.
        s.set_read_timeout(Some(connect_timeout.max(Duration::from_secs(1))))
            .map_err(|e| io_err("configure connection to", e))?;
        write_request(&mut s, "POST", addr, path, headers, body)
            .map_err(|e| io_err("send request to", e))?;
        let mut conn = BufReader::new(s);
        let head = read_head(&mut conn, addr)?;
        conn.get_ref()
            .set_read_timeout(None)
            .map_err(|e| io_err("configure connection to", e))?;
        let stream = BodyStream {
            conn,
            addr: addr.to_string(),
            chunked: head.is_chunked().then(ChunkedDecoder::default),
            left: if head.is_chunked() {
                None
            } else {
                head.content_length().map(|n| n as u64)
            },
        };
        Ok((head, stream))
    }

    /// Bounds each later read of the body (`None`: no bound); a read past
    /// it fails with `WouldBlock` or `TimedOut`.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> Result<(), HttpError> {
        self.conn
            .get_ref()
            .set_read_timeout(timeout)
            .map_err(|source| HttpError::Io {
                op: "configure connection to",
                addr: self.addr.clone(),
                source,
            })
    }

    /// The remaining body, read whole (for error responses).
    pub fn read_rest(mut self, head: &Head) -> Vec<u8> {
        read_body(&mut self.conn, head, &self.addr)
            .map(|(b, _)| b)
            .unwrap_or_default()
    }

    /// Blocks until more body bytes arrive and appends them to `out`.
    /// Returns `false` at the end of the body.
    pub fn next_bytes(&mut self, out: &mut Vec<u8>) -> Result<bool, HttpError> {
        let addr = &self.addr;
        loop {
            if self.chunked.as_ref().is_some_and(ChunkedDecoder::is_done) || self.left == Some(0) {
                return Ok(false);
            }
            let buf = self.conn.fill_buf().map_err(|source| HttpError::Io {
                op: "read events from",
                addr: addr.clone(),
                source,
            })?;
            if buf.is_empty() {
                if self.chunked.is_some() || self.left.is_some() {
                    return Err(HttpError::Io {
                        op: "read events from",
                        addr: addr.clone(),
                        source: io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "connection closed inside the body",
                        ),
                    });
                }
                return Ok(false);
            }
            let before = out.len();
            let used = match &mut self.chunked {
                Some(d) => d.feed(buf, out).map_err(|e| HttpError::Malformed {
                    addr: addr.clone(),
                    what: e.to_string(),
                })?,
                None => {
                    let n = self
                        .left
                        .map_or(buf.len(), |l| (l.min(buf.len() as u64)) as usize);
                    out.extend_from_slice(&buf[..n]);
                    if let Some(l) = &mut self.left {
                        *l -= n as u64;
                    }
                    n
                }
            };
            self.conn.consume(used);
            if out.len() > before {
                return Ok(true);
            }
        }
    }
}

/// GETs `path` from `addr` on a fresh connection within `timeout` and
/// returns the status code (the body is read and dropped).
pub fn get_status(addr: &str, path: &str, timeout: Duration) -> Result<u16, HttpError> {
    let mut client = Client::new(addr, timeout);
    let response = client.request(
        "GET",
        path,
        &[("Connection", "close"), ("User-Agent", "butte-executor")],
        &[],
    )?;
    Ok(response.head.status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn decode_all(pieces: &[&[u8]]) -> Result<(Vec<u8>, bool), ChunkError> {
        let mut d = ChunkedDecoder::default();
        let mut out = Vec::new();
        for p in pieces {
            d.feed(p, &mut out)?;
        }
        Ok((out, d.is_done()))
    }

    #[test]
    fn chunked_body_decodes_across_any_split() {
        let wire: &[u8] = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-Trailer: 1\r\n\r\n";
        let want = b"Wikipedia in\r\n\r\nchunks.".to_vec();
        assert_eq!(decode_all(&[wire]).unwrap(), (want.clone(), true));
        for split in 1..wire.len() {
            let (a, b) = wire.split_at(split);
            assert_eq!(
                decode_all(&[a, b]).unwrap(),
                (want.clone(), true),
                "split {split}"
            );
        }
        let bytes: Vec<&[u8]> = wire.chunks(1).collect();
        assert_eq!(decode_all(&bytes).unwrap(), (want, true));
    }

    #[test]
    fn chunked_stream_yields_payload_before_the_end() {
        let (out, done) = decode_all(&[b"5\r\n3\nabc\r\n", b"3\r\n2\nx"]).unwrap();
        assert_eq!(out, b"3\nabc2\nx");
        assert!(!done);
    }

    #[test]
    fn chunked_errors_are_reported() {
        assert_eq!(
            decode_all(&[b"zz\r\n"]).unwrap_err(),
            ChunkError::Size("zz".into())
        );
        assert_eq!(
            decode_all(&[b"2\r\nabX\r\n"]).unwrap_err(),
            ChunkError::MissingCrlf
        );
        let long = vec![b'1'; MAX_LINE + 10];
        assert_eq!(decode_all(&[&long]).unwrap_err(), ChunkError::LineTooLong);
    }

    #[test]
    fn feed_stops_at_the_end_of_the_body() {
        let mut d = ChunkedDecoder::default();
        let mut out = Vec::new();
        let used = d
            .feed(b"1\r\na\r\n0\r\n\r\nHTTP/1.1 200", &mut out)
            .unwrap();
        assert_eq!(used, 11);
        assert!(d.is_done());
        assert_eq!(out, b"a");
    }

    #[test]
    fn heads_are_parsed() {
        let mut r: &[u8] = b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\nX-A:  b \r\n\r\nrest";
        let head = read_head(&mut r, "x").unwrap();
        assert_eq!(head.status, 202);
        assert_eq!(head.reason, "Accepted");
        assert_eq!(head.header("x-a"), Some("b"));
        assert_eq!(r, b"rest");
        let mut r: &[u8] = b"SSH-2.0\r\n\r\n";
        assert!(matches!(
            read_head(&mut r, "x"),
            Err(HttpError::Malformed { .. })
        ));
    }

    /// A server that answers each request on one connection with `reply`.
    fn serve(replies: Vec<&'static [u8]>) -> (String, std::thread::JoinHandle<Vec<String>>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let h = std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            let mut r = BufReader::new(s);
            let mut seen = Vec::new();
            for reply in replies {
                let head = {
                    let mut lines = Vec::new();
                    loop {
                        let mut line = String::new();
                        r.read_line(&mut line).unwrap();
                        if line == "\r\n" || line.is_empty() {
                            break;
                        }
                        lines.push(line.trim_end().to_string());
                    }
                    lines
                };
                let len: usize = head
                    .iter()
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .map_or(0, |v| v.parse().unwrap());
                let mut body = vec![0; len];
                r.read_exact(&mut body).unwrap();
                seen.push(format!("{} {}", head[0], String::from_utf8_lossy(&body)));
                r.get_mut().write_all(reply).unwrap();
            }
            seen
        });
        (addr, h)
    }

    #[test]
    fn client_reuses_its_connection() {
        let (addr, h) = serve(vec![
            b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nbad\r\n0\r\n\r\n",
        ]);
        let mut c = Client::new(addr, Duration::from_secs(5));
        let r = c.request("POST", "/api", &[], b"one").unwrap();
        assert_eq!(r.head.status, 202);
        let r = c.request("POST", "/api", &[], b"two").unwrap();
        assert_eq!((r.head.status, r.body), (400, b"bad".to_vec()));
        assert_eq!(
            h.join().unwrap(),
            vec!["POST /api HTTP/1.1 one", "POST /api HTTP/1.1 two"]
        );
    }

    #[test]
    fn streamed_body_arrives_piece_by_piece() {
        let (addr, _h) = serve(vec![
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n1\na\r\n3\r\n1\nb\r\n0\r\n\r\n",
        ]);
        let (head, mut body) =
            BodyStream::post(&addr, "/s", &[], b"sub", Duration::from_secs(5)).unwrap();
        assert_eq!(head.status, 200);
        let mut out = Vec::new();
        while body.next_bytes(&mut out).unwrap() {}
        assert_eq!(out, b"1\na1\nb");
    }
}
