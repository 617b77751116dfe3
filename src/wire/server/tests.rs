//! The server against raw TCP clients on 127.0.0.1, with the bytes a Mesos
//! master writes (fixtures from libprocess' MessageEncoder) and broken ones.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
use tokio::task::JoinHandle;
use tokio::time::timeout;

use super::*;
use crate::wire::{Message, Upid};

const WAIT: Duration = Duration::from_secs(5);

/// Answers every plain request with its method and path.
struct Echo;

impl HttpHandler for Echo {
    fn handle(&self, req: Request<Incoming>) -> ResponseFuture {
        let text = format!("handled {} {}", req.method(), req.uri().path());
        Box::pin(async move { Response::new(full(text)) })
    }
}

struct Agent {
    addr: SocketAddr,
    inbox: UnboundedReceiver<WireEvent>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

async fn agent(limit: usize) -> Agent {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (inbox_tx, inbox) = unbounded_channel();
    let (shutdown, rx) = watch::channel(false);
    let port = Port {
        local_id: "slave(1)".to_string(),
        inbox: inbox_tx,
        handler: Arc::new(Echo),
        limit,
    };
    let task = tokio::spawn(port.serve(listener, rx));
    Agent {
        addr,
        inbox,
        shutdown,
        task,
    }
}

impl Agent {
    async fn connect(&self) -> Conn {
        Conn {
            stream: TcpStream::connect(self.addr).await.unwrap(),
            buf: Vec::new(),
        }
    }

    async fn next_message(&mut self) -> Message {
        match timeout(WAIT, self.inbox.recv()).await {
            Ok(Some(WireEvent::Message(m))) => m,
            other => panic!("expected a message, got {other:?}"),
        }
    }
}

/// The bytes a Mesos master's libprocess writes to send PingSlaveMessage
/// {connected: true} to `slave(1)` at `host`.
fn ping_from_master(host: SocketAddr) -> Vec<u8> {
    format!(
        "POST /slave(1)/mesos.internal.PingSlaveMessage HTTP/1.1\r\n\
         User-Agent: libprocess/master@127.0.0.1:5050\r\n\
         Libprocess-From: master@127.0.0.1:5050\r\n\
         Connection: Keep-Alive\r\n\
         Host: {host}\r\n\
         Transfer-Encoding: chunked\r\n\
         \r\n\
         2\r\n\
         \x08\x01\r\n\
         0\r\n\
         \r\n"
    )
    .into_bytes()
}

/// A raw client connection, keeping what it read past one response.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    async fn write(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Reads one response (head and Content-Length body).
    async fn response(&mut self) -> String {
        let read = async {
            loop {
                if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&self.buf[..end]).to_ascii_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .map_or(0, |v| v.trim().parse().unwrap());
                    if self.buf.len() >= end + 4 + len {
                        let rest = self.buf.split_off(end + 4 + len);
                        let one = std::mem::replace(&mut self.buf, rest);
                        return String::from_utf8_lossy(&one).into_owned();
                    }
                }
                let mut chunk = [0u8; 4096];
                let n = self.stream.read(&mut chunk).await.unwrap();
                assert!(
                    n > 0,
                    "connection closed; got {:?}",
                    String::from_utf8_lossy(&self.buf)
                );
                self.buf.extend_from_slice(&chunk[..n]);
            }
        };
        timeout(WAIT, read).await.expect("no response")
    }

    /// The server has nothing more to say and has not closed the connection.
    async fn assert_open(&mut self) {
        assert!(
            self.buf.is_empty(),
            "unread: {:?}",
            String::from_utf8_lossy(&self.buf)
        );
        let mut byte = [0u8; 1];
        let read = timeout(Duration::from_millis(200), self.stream.read(&mut byte)).await;
        assert!(
            read.is_err(),
            "expected an open, quiet connection, got {read:?}"
        );
    }

    /// Waits for the server to close the connection; returns what it sent.
    async fn wait_closed(&mut self) -> String {
        let read = async {
            let mut chunk = [0u8; 4096];
            loop {
                match self.stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                }
            }
        };
        timeout(WAIT, read)
            .await
            .expect("server kept the connection");
        String::from_utf8_lossy(&self.buf).into_owned()
    }

    async fn shutdown(&mut self) {
        self.stream.shutdown().await.unwrap();
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn master() -> Upid {
    "master@127.0.0.1:5050".parse().unwrap()
}

#[tokio::test]
async fn a_chunked_message_from_a_master_is_delivered_and_accepted() {
    let mut agent = agent(MAX_MESSAGE_BYTES).await;
    let mut conn = agent.connect().await;
    conn.write(&ping_from_master(agent.addr)).await;

    let m = agent.next_message().await;
    assert_eq!(m.from, master());
    assert_eq!(m.to, "slave(1)");
    assert_eq!(m.name, "mesos.internal.PingSlaveMessage");
    assert_eq!(&m.body[..], b"\x08\x01");
    let response = conn.response().await;
    assert!(
        response.starts_with("HTTP/1.1 202 Accepted\r\n"),
        "{response}"
    );
    assert!(
        response
            .to_ascii_lowercase()
            .contains("content-length: 0\r\n"),
        "{response}"
    );

    // The connection stays open and carries the next message: here the
    // older libprocess form, with an empty Host and no body.
    conn.assert_open().await;
    conn.write(
        b"POST /slave(1)/mesos.internal.ShutdownMessage HTTP/1.1\r\n\
          User-Agent: libprocess/master@127.0.0.1:5050\r\n\
          Libprocess-From: master@127.0.0.1:5050\r\n\
          Connection: Keep-Alive\r\n\
          Host: \r\n\
          \r\n",
    )
    .await;
    let m = agent.next_message().await;
    assert_eq!(m.name, "mesos.internal.ShutdownMessage");
    assert!(m.body.is_empty());
    assert!(conn.response().await.starts_with("HTTP/1.1 202"));
    conn.assert_open().await;
}

#[tokio::test]
async fn pipelined_messages_arrive_in_order() {
    let mut agent = agent(MAX_MESSAGE_BYTES).await;
    let mut conn = agent.connect().await;
    let from: Upid = master();
    let to: Upid = Upid::new("slave(1)", agent.addr);
    let mut burst = Vec::new();
    for i in 0..20u8 {
        burst.extend(crate::wire::encode_message(
            &from,
            &to,
            &format!("m{i}"),
            &[i; 3],
        ));
    }
    conn.write(&burst).await;
    for i in 0..20u8 {
        let m = agent.next_message().await;
        assert_eq!(
            (m.name.as_str(), &m.body[..]),
            (format!("m{i}").as_str(), &[i; 3][..])
        );
    }
    for _ in 0..20 {
        assert!(conn.response().await.starts_with("HTTP/1.1 202"));
    }
    conn.assert_open().await;
}

#[tokio::test]
async fn the_legacy_user_agent_form_is_a_message_and_is_answered() {
    let mut agent = agent(MAX_MESSAGE_BYTES).await;
    let mut conn = agent.connect().await;
    conn.write(
        b"POST /slave(1)/mesos.internal.X HTTP/1.1\r\n\
          User-Agent: libprocess/master@127.0.0.1:5050\r\n\
          Content-Length: 3\r\n\
          \r\n\
          abc",
    )
    .await;
    let m = agent.next_message().await;
    assert_eq!(
        (m.from, m.name.as_str(), &m.body[..]),
        (master(), "mesos.internal.X", &b"abc"[..])
    );
    assert!(conn.response().await.starts_with("HTTP/1.1 202 Accepted"));
}

#[tokio::test]
async fn libprocess_from_alone_is_a_message() {
    let mut agent = agent(MAX_MESSAGE_BYTES).await;
    let mut conn = agent.connect().await;
    conn.write(
        b"POST /slave(1)/mesos.internal.Y HTTP/1.1\r\n\
          Libprocess-From: master@127.0.0.1:5050\r\n\
          Content-Length: 0\r\n\
          \r\n",
    )
    .await;
    assert_eq!(agent.next_message().await.name, "mesos.internal.Y");
    assert!(conn.response().await.starts_with("HTTP/1.1 202 Accepted"));
}

#[tokio::test]
async fn other_requests_go_to_the_handler() {
    let agent = agent(MAX_MESSAGE_BYTES).await;
    let mut conn = agent.connect().await;
    conn.write(b"GET /slave(1)/state HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let r = conn.response().await;
    assert!(
        r.starts_with("HTTP/1.1 200 OK") && r.ends_with("handled GET /slave(1)/state"),
        "{r}"
    );
    conn.write(
        b"POST /slave(1)/api/v1/executor HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
    )
    .await;
    let r = conn.response().await;
    assert!(r.ends_with("handled POST /slave(1)/api/v1/executor"), "{r}");
}

#[tokio::test]
async fn garbage_bytes_are_refused_and_the_server_keeps_serving() {
    let mut agent = agent(MAX_MESSAGE_BYTES).await;
    let mut bad = agent.connect().await;
    bad.write(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http\r\n\r\n")
        .await;
    let said = bad.wait_closed().await;
    assert!(
        said.is_empty() || said.starts_with("HTTP/1.1 400"),
        "{said}"
    );

    let mut good = agent.connect().await;
    good.write(&ping_from_master(agent.addr)).await;
    assert_eq!(
        agent.next_message().await.name,
        "mesos.internal.PingSlaveMessage"
    );
}

#[tokio::test]
async fn a_truncated_body_is_dropped() {
    let mut agent = agent(MAX_MESSAGE_BYTES).await;
    for request in [
        &b"POST /slave(1)/mesos.internal.T HTTP/1.1\r\n\
           Libprocess-From: master@127.0.0.1:5050\r\n\
           Content-Length: 100\r\n\r\n0123456789"[..],
        &b"POST /slave(1)/mesos.internal.T HTTP/1.1\r\n\
           Libprocess-From: master@127.0.0.1:5050\r\n\
           Transfer-Encoding: chunked\r\n\r\n64\r\n0123456789"[..],
    ] {
        let mut bad = agent.connect().await;
        bad.write(request).await;
        bad.shutdown().await;
        bad.wait_closed().await;
    }
    let mut good = agent.connect().await;
    good.write(&ping_from_master(agent.addr)).await;
    // The first message in the inbox is the good one.
    assert_eq!(
        agent.next_message().await.name,
        "mesos.internal.PingSlaveMessage"
    );
}

#[tokio::test]
async fn a_huge_content_length_is_not_believed() {
    let mut agent = agent(MAX_MESSAGE_BYTES).await;
    let mut bad = agent.connect().await;
    bad.write(
        b"POST /slave(1)/mesos.internal.H HTTP/1.1\r\n\
          Libprocess-From: master@127.0.0.1:5050\r\n\
          Content-Length: 999999999999999\r\n\r\nsome bytes",
    )
    .await;
    // Nothing is allocated up front and nothing is delivered; the next
    // connection is served while this one is still open.
    let mut good = agent.connect().await;
    good.write(&ping_from_master(agent.addr)).await;
    assert_eq!(
        agent.next_message().await.name,
        "mesos.internal.PingSlaveMessage"
    );
    bad.shutdown().await;
    bad.wait_closed().await;
    assert!(agent.inbox.try_recv().is_err());
}

#[tokio::test]
async fn an_oversized_body_is_read_to_its_end_refused_and_the_connection_kept() {
    let mut agent = agent(1024).await;
    let mut conn = agent.connect().await;
    let to = Upid::new("slave(1)", agent.addr);
    let big = crate::wire::encode_message(&master(), &to, "mesos.internal.Big", &[7u8; 2000]);
    conn.write(&big).await;
    let r = conn.response().await;
    assert!(r.starts_with("HTTP/1.1 413"), "{r}");

    let fits = crate::wire::encode_message(&master(), &to, "mesos.internal.Fits", &[7u8; 1024]);
    conn.write(&fits).await;
    let m = agent.next_message().await;
    assert_eq!(
        (m.name.as_str(), m.body.len()),
        ("mesos.internal.Fits", 1024)
    );
    assert!(conn.response().await.starts_with("HTTP/1.1 202"));
    conn.assert_open().await;
}

#[tokio::test]
async fn an_unparseable_sender_is_refused_on_a_connection_that_stays_open() {
    let mut agent = agent(MAX_MESSAGE_BYTES).await;
    let mut conn = agent.connect().await;
    for from in ["nonsense", "master@somehost:5050", "master@127.0.0.1:99999"] {
        let request = format!(
            "POST /slave(1)/mesos.internal.Z HTTP/1.1\r\n\
             Libprocess-From: {from}\r\nContent-Length: 1\r\n\r\nz"
        );
        conn.write(request.as_bytes()).await;
        let r = conn.response().await;
        assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    }
    conn.write(&ping_from_master(agent.addr)).await;
    assert_eq!(
        agent.next_message().await.name,
        "mesos.internal.PingSlaveMessage"
    );
}

#[tokio::test]
async fn a_message_for_another_process_is_not_found() {
    let mut agent = agent(MAX_MESSAGE_BYTES).await;
    let mut conn = agent.connect().await;
    conn.write(
        b"POST /master/mesos.internal.X HTTP/1.1\r\n\
          Libprocess-From: master@127.0.0.1:5050\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    let r = conn.response().await;
    assert!(r.starts_with("HTTP/1.1 404"), "{r}");
    // A bad path for a message is refused, not passed to the handler.
    conn.write(
        b"POST /slave(1) HTTP/1.1\r\n\
          Libprocess-From: master@127.0.0.1:5050\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    let r = conn.response().await;
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    conn.write(&ping_from_master(agent.addr)).await;
    assert_eq!(
        agent.next_message().await.name,
        "mesos.internal.PingSlaveMessage"
    );
}

#[tokio::test]
async fn shutdown_stops_the_server_and_closes_idle_connections() {
    let agent = agent(MAX_MESSAGE_BYTES).await;
    let mut conn = agent.connect().await;
    conn.write(&ping_from_master(agent.addr)).await;
    conn.response().await;
    agent.shutdown.send(true).unwrap();
    timeout(WAIT, agent.task)
        .await
        .expect("serve did not return")
        .unwrap();
    conn.wait_closed().await;
}

#[tokio::test]
async fn dropping_the_shutdown_sender_stops_the_server() {
    let agent = agent(MAX_MESSAGE_BYTES).await;
    drop(agent.shutdown);
    timeout(WAIT, agent.task)
        .await
        .expect("serve did not return")
        .unwrap();
}

/// Log lines written while a test runs (the current thread's subscriber,
/// which the single-threaded test runtime's tasks share).
#[derive(Clone, Default)]
struct Logs(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn capture() -> (Logs, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// Waits until a line contains `needle`; returns every line so far.
    async fn wait_for(&self, needle: &str) -> String {
        let found = async {
            loop {
                let text = self.text();
                if text.contains(needle) {
                    return text;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        match timeout(WAIT, found).await {
            Ok(text) => text,
            Err(_) => panic!("no log line with {needle:?} in:\n{}", self.text()),
        }
    }
}

/// `/stream` answers a body that never ends (as SUBSCRIBE does); other
/// paths a short text.
struct Streams;

/// One chunk, then nothing more, ever.
struct Endless(bool);

impl hyper::body::Body for Endless {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.0 {
            return Poll::Pending;
        }
        self.0 = true;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"first event\n")))))
    }
}

impl HttpHandler for Streams {
    fn handle(&self, req: Request<Incoming>) -> ResponseFuture {
        let streaming = req.uri().path() == "/stream";
        Box::pin(async move {
            if streaming {
                Response::new(Endless(false).boxed())
            } else {
                Response::new(full("short"))
            }
        })
    }
}

async fn streaming_agent() -> (SocketAddr, watch::Sender<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (inbox, _) = unbounded_channel();
    let (shutdown, rx) = watch::channel(false);
    let port = Port {
        local_id: "slave(1)".to_string(),
        inbox,
        handler: Arc::new(Streams),
        limit: MAX_MESSAGE_BYTES,
    };
    tokio::spawn(port.serve(listener, rx));
    (addr, shutdown)
}

#[tokio::test]
async fn a_peer_leaving_a_streaming_response_is_not_malformed() {
    let (logs, _guard) = Logs::capture();
    let (addr, _shutdown) = streaming_agent().await;
    let mut conn = Conn {
        stream: TcpStream::connect(addr).await.unwrap(),
        buf: Vec::new(),
    };
    conn.write(b"POST /stream HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n{}{}")
        .await;
    let mut chunk = [0u8; 1024];
    let n = timeout(WAIT, conn.stream.read(&mut chunk))
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&chunk[..n]).contains("first event"));
    drop(conn);
    let text = logs.wait_for("the peer closed the connection").await;
    assert!(!text.contains("WARN"), "{text}");
}

#[tokio::test]
async fn a_peer_closing_an_idle_keep_alive_connection_is_not_malformed() {
    let (logs, _guard) = Logs::capture();
    let (addr, _shutdown) = streaming_agent().await;
    let mut conn = Conn {
        stream: TcpStream::connect(addr).await.unwrap(),
        buf: Vec::new(),
    };
    conn.write(b"GET /short HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(conn.response().await.ends_with("short"));
    drop(conn);
    let text = logs.wait_for("connection closed").await;
    assert!(!text.contains("WARN"), "{text}");
}

#[tokio::test]
async fn half_a_request_head_is_still_malformed() {
    let (logs, _guard) = Logs::capture();
    let (addr, _shutdown) = streaming_agent().await;
    let mut conn = Conn {
        stream: TcpStream::connect(addr).await.unwrap(),
        buf: Vec::new(),
    };
    conn.write(b"GET /short HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(conn.response().await.ends_with("short"));
    conn.write(b"GET /short HTTP/1.1\r\nHo").await;
    conn.shutdown().await;
    conn.wait_closed().await;
    let text = logs.wait_for("malformed HTTP").await;
    assert!(
        text.lines()
            .any(|l| l.contains("WARN") && l.contains("malformed HTTP")),
        "{text}"
    );
}

#[tokio::test]
async fn bytes_that_are_not_http_are_still_malformed() {
    let (logs, _guard) = Logs::capture();
    let (addr, _shutdown) = streaming_agent().await;
    let mut conn = Conn {
        stream: TcpStream::connect(addr).await.unwrap(),
        buf: Vec::new(),
    };
    conn.write(b"\x16\x03\x01 not http at all\r\n\r\n").await;
    conn.wait_closed().await;
    let text = logs.wait_for("malformed HTTP").await;
    assert!(text.contains("WARN"), "{text}");
}
