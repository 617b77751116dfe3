//! A scripted Mesos master for the agent tests, and the `butte agent` child
//! it talks to.
//!
//! [`FakeMaster`] is a libprocess peer on loopback, written from the
//! libprocess sources (`encoder.hpp`'s `MessageEncoder`, `process.cpp`'s
//! `ProcessManager::handle`) with plain `std::net`, never with
//! `butte::wire`, so that it checks the agent's bytes on its own:
//!
//! - It is the process `master@127.0.0.1:PORT`. The agent opens its own
//!   connection and POSTs `/master/<message name>`; the master reads each
//!   request, checks the request line, the `Libprocess-From` header and
//!   the `User-Agent: libprocess/...` one when sent, and records anything
//!   off as a violation ([`FakeMaster::violations`]). Like libprocess it
//!   answers `202 Accepted` only to senders that are not libprocess (no
//!   `libprocess/` User-Agent), and it never closes those connections.
//! - It sends by opening its own connection to the address in the agent's
//!   `Libprocess-From` and writing exactly what `MessageEncoder` writes
//!   (chunked body, `User-Agent` and `Libprocess-From` of the sending
//!   process: `master`, or `slave-observer(1)` for pings).
//! - [`FakeMaster::stop`] closes the listener and every connection; a master
//!   failover is `stop` and a new [`FakeMaster::start`] on the same port.
//!
//! Received messages wait in a queue; `expect*` take the first that matches
//! and leave the others, and [`FakeMaster::history`] keeps everything in
//! arrival order (to count duplicates).
//!
//! [`AgentProcess`] runs `butte agent` with the test flags: work and
//! runtime dirs in the fixture's work dir, cgroups under the fixture's
//! parent (`--cgroups_root`), a fixed port kept across restarts; its log
//! is shown when a test fails. [`finish`] ends a test (SIGUSR1, unregister,
//! `Fixture::finish`).

use super::{processes_in_cgroup, Fixture, BUTTE};
use butte::proto::mesos::internal::{
    KillTaskMessage, MasterSlaveConnection, PingSlaveMessage, PongSlaveMessage,
    RegisterSlaveMessage, ReregisterSlaveMessage, RunTaskGroupMessage, RunTaskMessage,
    SlaveRegisteredMessage, SlaveReregisteredMessage, StatusUpdate,
    StatusUpdateAcknowledgementMessage, StatusUpdateMessage, UnregisterSlaveMessage,
};
use butte::proto::mesos::{
    container_info, executor_info, image, resource, task_status, value, CommandInfo, ContainerInfo,
    DurationInfo, ExecutorId, ExecutorInfo, FrameworkId, FrameworkInfo, Image, KillPolicy,
    Resource, SlaveId, TaskGroupInfo, TaskId, TaskInfo, TaskState, TaskStatus,
};
use prost::{Message as _, Name as _};
use std::collections::{HashMap, VecDeque};
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long the helpers wait for the agent unless told otherwise.
pub const WAIT: Duration = Duration::from_secs(30);

/// Longest request line or header line accepted from the agent.
const MAX_LINE: usize = 16 << 10;
/// Largest message body accepted from the agent.
const MAX_BODY: usize = 64 << 20;

/// One libprocess message the master received.
#[derive(Debug, Clone)]
pub struct Received {
    /// The sender's UPID (`id@ip:port`).
    pub from: String,
    /// The local process it was addressed to (`master`, `slave-observer(1)`).
    pub to: String,
    /// The message name, e.g. `mesos.internal.RegisterSlaveMessage`.
    pub name: String,
    pub body: Vec<u8>,
    pub at: Instant,
}

/// One parsed HTTP/1.1 request.
#[derive(Debug)]
pub struct Request {
    pub method: String,
    pub target: String,
    pub version: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The first header named NAME (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What the listener threads share with the master.
struct Shared {
    stopping: AtomicBool,
    /// Every accepted connection, to close them on `stop`.
    accepted: Mutex<Vec<TcpStream>>,
    violations: Mutex<Vec<String>>,
}

impl Shared {
    fn violation(&self, what: String) {
        eprintln!("fake master: violation: {what}");
        lock(&self.violations).push(what);
    }
}

/// A connection the master opened to a peer, with a thread draining it.
struct Outbound {
    stream: TcpStream,
    closed: Arc<AtomicBool>,
}

/// The scripted master (see the module doc).
pub struct FakeMaster {
    addr: SocketAddr,
    shared: Arc<Shared>,
    inbox: Mutex<Receiver<Received>>,
    pending: Mutex<VecDeque<Received>>,
    history: Mutex<Vec<Received>>,
    outbound: Mutex<HashMap<SocketAddr, Outbound>>,
    acceptor: Mutex<Option<JoinHandle<()>>>,
    /// The agent's UPID and id, once it (re)registered.
    agent: Mutex<Option<(String, SlaveId)>>,
    /// When each update uuid was acknowledged.
    acks: Mutex<HashMap<Vec<u8>, Instant>>,
    /// Messages that cannot reach the agent (it is down) are lost, as
    /// with a real master, instead of failing the test.
    lossy: AtomicBool,
    /// `--authenticate_agents`: a (re-)registration from an agent pid that
    /// did not authenticate is a violation.
    require_auth: AtomicBool,
    /// The agent pids that authenticated.
    authenticated: Mutex<Vec<String>>,
}

/// Locks M, ignoring poisoning (a panicking test still wants its state).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl FakeMaster {
    /// Listens on 127.0.0.1:PORT (0: any free port). Std sets SO_REUSEADDR,
    /// so a new master can take over the port of a stopped one at once.
    pub fn start(port: u16) -> FakeMaster {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("fake master: bind 127.0.0.1:{port}: {e}"));
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            stopping: AtomicBool::new(false),
            accepted: Mutex::new(Vec::new()),
            violations: Mutex::new(Vec::new()),
        });
        let (tx, rx) = mpsc::channel();
        let acceptor = {
            let shared = shared.clone();
            thread::spawn(move || accept_loop(listener, shared, tx))
        };
        FakeMaster {
            addr,
            shared,
            inbox: Mutex::new(rx),
            pending: Mutex::new(VecDeque::new()),
            history: Mutex::new(Vec::new()),
            outbound: Mutex::new(HashMap::new()),
            acceptor: Mutex::new(Some(acceptor)),
            agent: Mutex::new(None),
            acks: Mutex::new(HashMap::new()),
            lossy: AtomicBool::new(false),
            require_auth: AtomicBool::new(false),
            authenticated: Mutex::new(Vec::new()),
        }
    }

    /// From now on, a message the agent cannot take (it is down) is lost
    /// instead of failing the test, as with a real master.
    pub fn set_lossy(&self) {
        self.lossy.store(true, Ordering::SeqCst);
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `master@127.0.0.1:PORT`
    pub fn pid(&self) -> String {
        self.upid("master")
    }

    fn upid(&self, id: &str) -> String {
        format!("{id}@{}", self.addr)
    }

    /// Closes the listener and every connection, both ways.
    pub fn stop(&self) {
        if self.shared.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        // Wakes the acceptor, which then drops the listener.
        let _ = TcpStream::connect(self.addr);
        if let Some(h) = lock(&self.acceptor).take() {
            let _ = h.join();
        }
        for s in lock(&self.shared.accepted).drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
        for (_, o) in lock(&self.outbound).drain() {
            let _ = o.stream.shutdown(Shutdown::Both);
        }
    }

    /// What the agent sent that libprocess would not have.
    pub fn violations(&self) -> Vec<String> {
        lock(&self.shared.violations).clone()
    }

    /// Panics if the agent ever sent bytes off the libprocess format.
    pub fn assert_clean(&self) {
        let v = self.violations();
        assert!(v.is_empty(), "the agent's libprocess traffic: {v:#?}");
    }

    /// Every message received so far, in arrival order (also the ones
    /// `expect` took).
    pub fn history(&self) -> Vec<Received> {
        self.pump(Duration::ZERO);
        lock(&self.history).clone()
    }

    /// Receives for DURATION without taking anything.
    pub fn settle(&self, duration: Duration) {
        let deadline = Instant::now() + duration;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            if left.is_zero() || !self.pump(left) {
                break;
            }
        }
    }

    /// Moves one message (waiting up to TIMEOUT) from the listener threads
    /// to the queue, then whatever else is ready. False when none came.
    fn pump(&self, timeout: Duration) -> bool {
        let rx = lock(&self.inbox);
        let first = if timeout.is_zero() {
            rx.try_recv().ok()
        } else {
            rx.recv_timeout(timeout).ok()
        };
        let Some(first) = first else { return false };
        let mut got = vec![first];
        got.extend(rx.try_iter());
        drop(rx);
        lock(&self.history).extend(got.iter().cloned());
        lock(&self.pending).extend(got);
        true
    }

    /// Takes the first queued message that PRED accepts, waiting up to
    /// TIMEOUT for one.
    pub fn take(&self, timeout: Duration, pred: impl Fn(&Received) -> bool) -> Option<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let mut pending = lock(&self.pending);
                if let Some(i) = pending.iter().position(&pred) {
                    return pending.remove(i);
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.pump(left);
        }
    }

    /// The next message of type M (others stay queued); panics after TIMEOUT.
    pub fn expect<M: prost::Message + prost::Name + Default>(
        &self,
        timeout: Duration,
    ) -> (String, M) {
        let name = M::full_name();
        let r = self.take(timeout, |r| r.name == name).unwrap_or_else(|| {
            panic!(
                "fake master: no {name} within {timeout:?}; {}",
                self.summary()
            )
        });
        let m = M::decode(&r.body[..])
            .unwrap_or_else(|e| panic!("fake master: {name} from {} does not decode: {e}", r.from));
        (r.from, m)
    }

    /// The names of what arrived, for failure messages.
    pub fn summary(&self) -> String {
        let names: Vec<String> = lock(&self.history)
            .iter()
            .map(|r| format!("{} -> {}", short(&r.name), r.to))
            .collect();
        format!("received so far: {names:?}")
    }

    /// Sends M to the process TO (a UPID) as the local process FROM_ID.
    pub fn send<M: prost::Message + prost::Name>(&self, to: &str, from_id: &str, msg: &M) {
        match self.send_raw(to, from_id, &M::full_name(), &msg.encode_to_vec()) {
            Ok(()) => {}
            Err(e) if self.lossy.load(Ordering::SeqCst) => {
                eprintln!("fake master: lost {} to {to}: {e}", M::full_name())
            }
            Err(e) => panic!("fake master: send {} to {to}: {e}", M::full_name()),
        }
    }

    /// Sends a message by name, body as given, over the master's own
    /// connection to TO's address (opened again if the last one closed).
    pub fn send_raw(&self, to: &str, from_id: &str, name: &str, body: &[u8]) -> io::Result<()> {
        let (id, addr) = parse_upid(to).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("bad upid {to:?}"))
        })?;
        let bytes = encode_message(&id, name, &self.upid(from_id), body);
        let mut out = lock(&self.outbound);
        for attempt in 0..2 {
            let stale = out
                .get(&addr)
                .map_or(true, |o| o.closed.load(Ordering::SeqCst));
            if stale {
                out.insert(addr, connect(addr)?);
            }
            let o = out.get_mut(&addr).expect("connection just made");
            match o.stream.write_all(&bytes) {
                Ok(()) => return Ok(()),
                Err(e) if attempt == 1 => return Err(e),
                Err(_) => {
                    out.remove(&addr);
                }
            }
        }
        unreachable!()
    }
}

impl Drop for FakeMaster {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("fake master {}: {}", self.addr, self.summary());
        }
        self.stop();
    }
}

/// `id@ip:port` -> (id, address).
pub fn parse_upid(s: &str) -> Option<(String, SocketAddr)> {
    let (id, addr) = s.trim().split_once('@')?;
    if id.is_empty() {
        return None;
    }
    Some((id.to_string(), addr.parse().ok()?))
}

/// The bytes libprocess' `MessageEncoder` writes for one message.
pub fn encode_message(to_id: &str, name: &str, from: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "POST /{to_id}/{name} HTTP/1.1\r\n\
         User-Agent: libprocess/{from}\r\n\
         Libprocess-From: {from}\r\n\
         Connection: Keep-Alive\r\n\
         Host: \r\n"
    )
    .into_bytes();
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

/// Opens a connection and a thread that drains (ignores) what comes back,
/// marking the connection closed when the peer closes it.
fn connect(addr: SocketAddr) -> io::Result<Outbound> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_nodelay(true)?;
    let closed = Arc::new(AtomicBool::new(false));
    let mut reader = stream.try_clone()?;
    let flag = closed.clone();
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while matches!(reader.read(&mut buf), Ok(n) if n > 0) {}
        flag.store(true, Ordering::SeqCst);
    });
    Ok(Outbound { stream, closed })
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>, tx: Sender<Received>) {
    for conn in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = conn else { continue };
        let _ = stream.set_nodelay(true);
        if let Ok(clone) = stream.try_clone() {
            lock(&shared.accepted).push(clone);
        }
        let shared = shared.clone();
        let tx = tx.clone();
        thread::spawn(move || serve_connection(stream, shared, tx));
    }
}

/// Reads libprocess messages off one inbound connection until it closes.
fn serve_connection(stream: TcpStream, shared: Arc<Shared>, tx: Sender<Received>) {
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let mut writer = match stream.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut reader = BufReader::new(stream);
    loop {
        let req = match read_request(&mut reader) {
            Ok(Some(req)) => req,
            Ok(None) => return,
            Err(e) => {
                if !shared.stopping.load(Ordering::SeqCst) {
                    shared.violation(format!("connection from {peer}: {e}"));
                }
                return;
            }
        };
        match check_message(&req) {
            Ok(mut msg) => {
                let ua = req.header("User-Agent").unwrap_or("");
                if !ua.contains("libprocess/") {
                    let _ = writer.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n");
                }
                msg.at = Instant::now();
                if tx.send(msg).is_err() {
                    return;
                }
            }
            Err(e) => {
                shared.violation(format!("request from {peer}: {e}"));
                let _ = writer.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
            }
        }
    }
}

/// A request as libprocess writes a message, or what is off about it.
fn check_message(req: &Request) -> Result<Received, String> {
    let line = format!("{} {} {}", req.method, req.target, req.version);
    if req.method != "POST" || req.version != "HTTP/1.1" {
        return Err(format!("{line:?} is not a libprocess POST"));
    }
    let from = req
        .header("Libprocess-From")
        .ok_or_else(|| format!("{line:?} has no Libprocess-From"))?;
    if parse_upid(from).is_none() {
        return Err(format!(
            "{line:?}: Libprocess-From {from:?} is not id@ip:port"
        ));
    }
    // libprocess peers send both headers; other senders may omit the agent.
    if let Some(ua) = req
        .header("User-Agent")
        .filter(|ua| ua.contains("libprocess/"))
    {
        if ua != format!("libprocess/{from}") {
            return Err(format!(
                "{line:?}: User-Agent {ua:?} is not libprocess/{from}"
            ));
        }
    }
    let (to, name) = req
        .target
        .strip_prefix('/')
        .and_then(|p| p.split_once('/'))
        .filter(|(to, name)| !to.is_empty() && !name.is_empty() && !name.contains('/'))
        .ok_or_else(|| format!("{line:?}: the path is not /<process>/<message>"))?;
    Ok(Received {
        from: from.to_string(),
        to: to.to_string(),
        name: name.to_string(),
        body: req.body.clone(),
        at: Instant::now(),
    })
}

/// Reads one CRLF-terminated line (without it). `None` at a clean EOF.
fn read_line(r: &mut impl BufRead) -> io::Result<Option<String>> {
    let mut buf = Vec::new();
    let n = r
        .by_ref()
        .take(MAX_LINE as u64 + 2)
        .read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Ok(None);
    }
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    if !buf.ends_with(b"\r\n") {
        return Err(bad(if buf.ends_with(b"\n") {
            "a line ends in a bare LF"
        } else {
            "a line is too long or cut short"
        }));
    }
    buf.truncate(buf.len() - 2);
    String::from_utf8(buf)
        .map(Some)
        .map_err(|_| bad("a line is not UTF-8"))
}

/// Reads one HTTP/1.1 request; `None` when the peer closed between requests.
pub fn read_request(r: &mut impl BufRead) -> io::Result<Option<Request>> {
    let bad = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
    let Some(line) = read_line(r)? else {
        return Ok(None);
    };
    let mut parts = line.splitn(3, ' ');
    let (method, target, version) = match (parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(t), Some(v)) => (m.to_string(), t.to_string(), v.to_string()),
        _ => return Err(bad(format!("bad request line {line:?}"))),
    };
    let mut headers = Vec::new();
    loop {
        let line = read_line(r)?.ok_or_else(|| bad("EOF in the headers".into()))?;
        if line.is_empty() {
            break;
        }
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| bad(format!("bad header line {line:?}")))?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let mut req = Request {
        method,
        target,
        version,
        headers,
        body: Vec::new(),
    };
    if req
        .header("Transfer-Encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let line = read_line(r)?.ok_or_else(|| bad("EOF in a chunk size".into()))?;
            let hex = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(hex, 16)
                .map_err(|_| bad(format!("bad chunk size {line:?}")))?;
            if size == 0 {
                // Trailers, up to the empty line.
                while !read_line(r)?
                    .ok_or_else(|| bad("EOF in the trailers".into()))?
                    .is_empty()
                {}
                break;
            }
            if req.body.len() + size > MAX_BODY {
                return Err(bad(format!("body over {MAX_BODY} bytes")));
            }
            let start = req.body.len();
            req.body.resize(start + size, 0);
            r.read_exact(&mut req.body[start..])?;
            if read_line(r)?.as_deref() != Some("") {
                return Err(bad("a chunk does not end in CRLF".into()));
            }
        }
    } else if let Some(len) = req.header("Content-Length") {
        let len: usize = len
            .parse()
            .map_err(|_| bad(format!("bad Content-Length {len:?}")))?;
        if len > MAX_BODY {
            return Err(bad(format!("Content-Length {len} over {MAX_BODY}")));
        }
        req.body.resize(len, 0);
        r.read_exact(&mut req.body)?;
    }
    Ok(Some(req))
}

/// `mesos.internal.RunTaskMessage` -> `RunTaskMessage`.
fn short(name: &str) -> &str {
    name.rsplit('.').next().unwrap_or(name)
}

// --- Mesos messages ------------------------------------------------------------

/// The states after which a task never changes again.
pub const TERMINAL: [TaskState; 8] = [
    TaskState::TaskFinished,
    TaskState::TaskFailed,
    TaskState::TaskKilled,
    TaskState::TaskError,
    TaskState::TaskLost,
    TaskState::TaskDropped,
    TaskState::TaskGone,
    TaskState::TaskGoneByOperator,
];

/// The update a StatusUpdateMessage carries, if it is one.
pub fn decode_update(r: &Received) -> Option<StatusUpdate> {
    if r.name != StatusUpdateMessage::full_name() {
        return None;
    }
    Some(StatusUpdateMessage::decode(&r.body[..]).ok()?.update)
}

/// The task id and state of an update.
pub fn task_and_state(u: &StatusUpdate) -> (String, TaskState) {
    let s = &u.status;
    (
        s.task_id.value.clone(),
        TaskState::try_from(s.state).unwrap_or(TaskState::TaskUnknown),
    )
}

/// `task T TASK_FAILED (SOURCE_SLAVE, REASON_..., healthy ...): message`
pub fn describe(u: &StatusUpdate) -> String {
    let (id, state) = task_and_state(u);
    let s = &u.status;
    let source = s
        .source
        .and_then(|v| task_status::Source::try_from(v).ok())
        .map_or("no source", |v| v.as_str_name());
    let reason = s
        .reason
        .and_then(|v| task_status::Reason::try_from(v).ok())
        .map_or("no reason", |v| v.as_str_name());
    format!(
        "task {id} {} ({source}, {reason}, healthy {:?}): {:?}",
        state.as_str_name(),
        s.healthy,
        s.message.as_deref().unwrap_or("")
    )
}

/// Checks the `version` an agent (re)registers with: 1.0.0 or later.
fn check_version(version: Option<&str>) {
    let v = version.unwrap_or_else(|| panic!("the agent sent no version"));
    let major: u32 = v
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("the agent's version {v:?} is not x.y.z"));
    assert!(major >= 1, "the agent's version {v:?} is older than 1.0.0");
}

/// How long a real master waits for pongs (the default, 15 s * 5).
const PING_TIMEOUT_SECONDS: f64 = 75.0;

impl FakeMaster {
    /// Expects a RegisterSlaveMessage (version >= 1.0.0) and accepts it with
    /// a fresh agent id; returns the agent's UPID and that id.
    pub fn register(&self) -> (String, SlaveId) {
        let (from, msg) = self.expect::<RegisterSlaveMessage>(WAIT);
        self.accept_registration(from, msg)
    }

    /// As [`register`](Self::register), `None` when no registration came
    /// within TIMEOUT.
    pub fn try_register(&self, timeout: Duration) -> Option<(String, SlaveId)> {
        let name = RegisterSlaveMessage::full_name();
        let r = self.take(timeout, |r| r.name == name)?;
        let msg = RegisterSlaveMessage::decode(&r.body[..])
            .unwrap_or_else(|e| panic!("fake master: {name} from {} does not decode: {e}", r.from));
        Some(self.accept_registration(r.from, msg))
    }

    /// Drops, unanswered, the (re-)registrations queued from an agent
    /// process that is gone (its retries sent before an answer reached
    /// it), reading for 50 ms what it left in flight.
    pub fn discard_registrations(&self) {
        let names = [
            RegisterSlaveMessage::full_name(),
            ReregisterSlaveMessage::full_name(),
        ];
        while self
            .take(Duration::from_millis(50), |r| names.contains(&r.name))
            .is_some()
        {}
    }

    fn accept_registration(&self, from: String, msg: RegisterSlaveMessage) -> (String, SlaveId) {
        check_version(msg.version.as_deref());
        self.check_authenticated(&from);
        assert!(!msg.slave.hostname.is_empty(), "the agent sent no hostname");
        let id = SlaveId {
            value: format!("{}-S0", butte::support::random_uuid().unwrap()),
        };
        *lock(&self.agent) = Some((from.clone(), id.clone()));
        self.send(
            &from,
            "master",
            &SlaveRegisteredMessage {
                slave_id: id.clone(),
                connection: Some(MasterSlaveConnection {
                    total_ping_timeout_seconds: Some(PING_TIMEOUT_SECONDS),
                }),
            },
        );
        (from, id)
    }

    /// Expects a ReregisterSlaveMessage (version >= 1.0.0, with the agent's
    /// id) and accepts it; returns the message. A re-registration the
    /// agent retried before the previous answer reached it may still be
    /// queued from an agent process that is gone: when nothing listens at
    /// its address the answer cannot be delivered, and the live agent's
    /// next attempt is taken instead; when a new agent listens there, the
    /// caller must have discarded it ([`Self::discard_registrations`]).
    pub fn reregister(&self) -> ReregisterSlaveMessage {
        self.try_reregister(WAIT).unwrap_or_else(|| {
            panic!(
                "fake master: no ReregisterSlaveMessage within {WAIT:?}; {}",
                self.summary()
            )
        })
    }

    /// As [`reregister`](Self::reregister), `None` when no re-registration
    /// came within TIMEOUT.
    pub fn try_reregister(&self, timeout: Duration) -> Option<ReregisterSlaveMessage> {
        let deadline = Instant::now() + timeout;
        let name = ReregisterSlaveMessage::full_name();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let r = self.take(left, |r| r.name == name)?;
            let from = r.from.clone();
            let msg = ReregisterSlaveMessage::decode(&r.body[..])
                .unwrap_or_else(|e| panic!("fake master: {name} from {from} does not decode: {e}"));
            check_version(msg.version.as_deref());
            self.check_authenticated(&from);
            let id = msg
                .slave
                .id
                .clone()
                .expect("ReregisterSlaveMessage without the agent's id");
            let reply = SlaveReregisteredMessage {
                slave_id: id.clone(),
                reconciliations: Vec::new(),
                connection: Some(MasterSlaveConnection {
                    total_ping_timeout_seconds: Some(PING_TIMEOUT_SECONDS),
                }),
            };
            let sent = self.send_raw(
                &from,
                "master",
                &SlaveReregisteredMessage::full_name(),
                &reply.encode_to_vec(),
            );
            match sent {
                Ok(()) => {
                    *lock(&self.agent) = Some((from, id));
                    return Some(msg);
                }
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
                Err(e) => panic!("fake master: answer the re-registration of {from}: {e}"),
            }
        }
    }

    /// The registered agent's UPID.
    pub fn agent_pid(&self) -> String {
        lock(&self.agent)
            .as_ref()
            .expect("no agent registered")
            .0
            .clone()
    }

    /// The registered agent's id.
    pub fn slave_id(&self) -> SlaveId {
        lock(&self.agent)
            .as_ref()
            .expect("no agent registered")
            .1
            .clone()
    }

    /// Launches TASK (its slave_id filled in) as the master does.
    pub fn run_task(&self, framework: &FrameworkInfo, task: &TaskInfo) {
        let mut task = task.clone();
        task.slave_id = self.slave_id();
        let msg = RunTaskMessage {
            framework_id: framework.id.clone(),
            framework: framework.clone(),
            task,
            resource_version_uuids: Vec::new(),
            pid: None,
            launch_executor: Some(true),
        };
        self.send(&self.agent_pid(), "master", &msg);
    }

    /// Launches TASKS as one group on EXECUTOR.
    pub fn run_task_group(
        &self,
        framework: &FrameworkInfo,
        executor: &ExecutorInfo,
        tasks: &[TaskInfo],
    ) {
        let tasks = tasks
            .iter()
            .map(|t| {
                let mut t = t.clone();
                t.slave_id = self.slave_id();
                t
            })
            .collect();
        let msg = RunTaskGroupMessage {
            framework: framework.clone(),
            executor: executor.clone(),
            task_group: TaskGroupInfo { tasks },
            resource_version_uuids: Vec::new(),
            launch_executor: Some(true),
        };
        self.send(&self.agent_pid(), "master", &msg);
    }

    pub fn kill_task(
        &self,
        framework: &FrameworkInfo,
        task_id: &str,
        kill_policy: Option<KillPolicy>,
    ) {
        let msg = KillTaskMessage {
            framework_id: framework.id.clone().expect("framework id"),
            task_id: TaskId {
                value: task_id.to_string(),
            },
            kill_policy,
        };
        self.send(&self.agent_pid(), "master", &msg);
    }

    /// The next status update, in arrival order (other messages stay queued).
    pub fn next_status(&self, timeout: Duration) -> Option<StatusUpdate> {
        let name = StatusUpdateMessage::full_name();
        let r = self.take(timeout, |r| r.name == name)?;
        Some(decode_update(&r).unwrap_or_else(|| {
            panic!("a StatusUpdateMessage that does not decode from {}", r.from)
        }))
    }

    /// Takes the first update of TASK_ID with STATE; panics at once if a
    /// different terminal update for the task is queued, and after TIMEOUT.
    pub fn expect_status(
        &self,
        task_id: &str,
        state: TaskState,
        timeout: Duration,
    ) -> StatusUpdate {
        let deadline = Instant::now() + timeout;
        let is = |r: &Received| {
            decode_update(r).is_some_and(|u| task_and_state(&u) == (task_id.to_string(), state))
        };
        loop {
            if let Some(r) = self.take(Duration::ZERO, is) {
                return decode_update(&r).expect("decoded above");
            }
            let wrong = lock(&self.pending)
                .iter()
                .filter_map(decode_update)
                .find(|u| {
                    let (id, s) = task_and_state(u);
                    id == task_id && s != state && TERMINAL.contains(&s)
                });
            if let Some(u) = wrong {
                panic!(
                    "waiting for {} of task {task_id}, got {}",
                    state.as_str_name(),
                    describe(&u)
                );
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let seen: Vec<String> = self.statuses().iter().map(describe).collect();
                panic!(
                    "no {} for task {task_id} within {timeout:?}; updates so far: {seen:#?}",
                    state.as_str_name()
                );
            }
            self.pump(left.min(Duration::from_millis(100)));
        }
    }

    /// Acknowledges U to the agent, as the master relays a framework's ack.
    pub fn ack(&self, u: &StatusUpdate) {
        let (task_id, _) = task_and_state(u);
        let msg = StatusUpdateAcknowledgementMessage {
            slave_id: self.slave_id(),
            framework_id: u.framework_id.clone(),
            task_id: TaskId { value: task_id },
            uuid: u.uuid.clone().expect("an update to acknowledge has a uuid"),
        };
        lock(&self.acks).insert(msg.uuid.clone(), Instant::now());
        self.send(&self.agent_pid(), "master", &msg);
    }

    /// When the update with UUID was acknowledged, if it was.
    pub fn acked_at(&self, uuid: &[u8]) -> Option<Instant> {
        lock(&self.acks).get(uuid).copied()
    }

    /// Every status update received so far with its arrival time.
    pub fn update_arrivals(&self) -> Vec<(Instant, StatusUpdate)> {
        self.history()
            .iter()
            .filter_map(|r| Some((r.at, decode_update(r)?)))
            .collect()
    }

    /// Takes the first update that PRED accepts; panics after TIMEOUT
    /// naming WHAT.
    pub fn expect_update(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&StatusUpdate) -> bool,
    ) -> StatusUpdate {
        let r = self
            .take(timeout, |r| decode_update(r).is_some_and(|u| pred(&u)))
            .unwrap_or_else(|| {
                let seen: Vec<String> = self.statuses().iter().map(describe).collect();
                panic!("no update {what} within {timeout:?}; updates so far: {seen:#?}")
            });
        decode_update(&r).expect("decoded above")
    }

    /// `expect_status` then `ack`.
    /// Acknowledges every update of `task_id` until one in `state`
    /// arrives (a Mesos master acknowledges whatever it is sent, resends
    /// of updates whose acknowledgement was lost included).
    pub fn ack_until(&self, task_id: &str, state: TaskState) -> StatusUpdate {
        loop {
            let u = self.expect_update(
                &format!("{} of {task_id}", state.as_str_name()),
                WAIT,
                |u| task_and_state(u).0 == task_id,
            );
            self.ack(&u);
            if task_and_state(&u).1 == state {
                return u;
            }
        }
    }

    pub fn expect_ack(&self, task_id: &str, state: TaskState) -> StatusUpdate {
        let u = self.expect_status(task_id, state, WAIT);
        self.ack(&u);
        u
    }

    /// Pings from `slave-observer(1)` and expects the pong back to it.
    pub fn ping(&self, connected: bool) {
        self.send(
            &self.agent_pid(),
            "slave-observer(1)",
            &PingSlaveMessage { connected },
        );
        let name = PongSlaveMessage::full_name();
        self.take(WAIT, |r| r.name == name && r.to == "slave-observer(1)")
            .unwrap_or_else(|| panic!("no pong to slave-observer(1); {}", self.summary()));
    }

    /// Every status update received so far, in arrival order.
    pub fn statuses(&self) -> Vec<StatusUpdate> {
        self.history().iter().filter_map(decode_update).collect()
    }
}

/// A framework with a fresh id that checkpoints (so its tasks survive an
/// agent restart).
pub fn framework(name: &str) -> FrameworkInfo {
    FrameworkInfo {
        user: "root".into(),
        name: name.into(),
        id: Some(FrameworkId {
            value: format!("{}-0000", butte::support::random_uuid().unwrap()),
        }),
        checkpoint: Some(true),
        role: Some("*".into()),
        ..Default::default()
    }
}

/// A scalar resource allocated to role `*`.
pub fn scalar(name: &str, value: f64) -> Resource {
    Resource {
        name: name.into(),
        r#type: value::Type::Scalar as i32,
        scalar: Some(value::Scalar { value }),
        allocation_info: Some(resource::AllocationInfo {
            role: Some("*".into()),
        }),
        ..Default::default()
    }
}

/// `cpus` and `mem` (MB).
pub fn resources(cpus: f64, mem: f64) -> Vec<Resource> {
    vec![scalar("cpus", cpus), scalar("mem", mem)]
}

/// A shell command.
pub fn shell(cmd: &str) -> CommandInfo {
    CommandInfo {
        value: Some(cmd.into()),
        shell: Some(true),
        ..Default::default()
    }
}

/// A command task (no executor: the agent's command executor runs it) with
/// 0.1 cpus and 32 MB.
pub fn command_task(id: &str, cmd: &str) -> TaskInfo {
    TaskInfo {
        name: id.into(),
        task_id: TaskId { value: id.into() },
        resources: resources(0.1, 32.0),
        command: Some(shell(cmd)),
        ..Default::default()
    }
}

/// An executor of FRAMEWORK: `DEFAULT` without a command, else `CUSTOM`.
pub fn executor(id: &str, framework: &FrameworkInfo, command: Option<CommandInfo>) -> ExecutorInfo {
    let kind = if command.is_some() {
        executor_info::Type::Custom
    } else {
        executor_info::Type::Default
    };
    ExecutorInfo {
        r#type: Some(kind as i32),
        executor_id: ExecutorId { value: id.into() },
        framework_id: framework.id.clone(),
        command,
        resources: resources(0.1, 32.0),
        ..Default::default()
    }
}

/// A Mesos container with the Docker image NAME.
pub fn image_container(name: &str) -> ContainerInfo {
    ContainerInfo {
        r#type: container_info::Type::Mesos as i32,
        mesos: Some(container_info::MesosInfo {
            image: Some(Image {
                r#type: image::Type::Docker as i32,
                docker: Some(image::Docker {
                    name: name.into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        }),
        ..Default::default()
    }
}

/// A grace period for KillTaskMessage / TaskInfo.
pub fn kill_policy(grace: Duration) -> KillPolicy {
    KillPolicy {
        grace_period: Some(DurationInfo {
            nanoseconds: grace.as_nanos() as i64,
        }),
    }
}

/// Waits up to 30 s for `done`; fails naming `what`, with the agent's log.
pub fn wait_for(what: &str, agent: &AgentProcess, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "{what}; {}", agent.log_tail(40));
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The status of U.
pub fn status(u: &StatusUpdate) -> &TaskStatus {
    &u.status
}

// --- the agent -------------------------------------------------------------------

/// A `butte agent` child run against a [`FakeMaster`], with its stderr
/// (RUST_LOG=debug) in a file that survives restarts.
pub struct AgentProcess {
    child: Option<Child>,
    args: Vec<String>,
    pub work_dir: PathBuf,
    pub runtime_dir: PathBuf,
    pub port: u16,
    log: PathBuf,
}

/// A port nobody listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl AgentProcess {
    /// Starts `butte agent` with the test flags, its work and runtime dirs in
    /// the fixture's work dir and its cgroups under the fixture's parent, on
    /// a fixed free port (a restart keeps it: executors reconnect to it).
    /// EXTRA flags are appended.
    pub fn start(fx: &Fixture, master: &FakeMaster, extra: &[&str]) -> AgentProcess {
        AgentProcess::start_with_master(fx, &master.addr().to_string(), extra)
    }

    /// As [`start`](Self::start), with `--master MASTER` (a `zk://` or
    /// `file://` value, or `HOST:PORT`).
    pub fn start_with_master(fx: &Fixture, master: &str, extra: &[&str]) -> AgentProcess {
        AgentProcess::start_with_env(fx, master, extra, &[])
    }

    /// As [`start_with_master`](Self::start_with_master), with the
    /// environment variables ENV added for the first start (e.g. a Mesos
    /// configuration as `MESOS_*` variables).
    pub fn start_with_env(
        fx: &Fixture,
        master: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> AgentProcess {
        let work_dir = fx.work.path().join("agent-work");
        let runtime_dir = fx.work.path().join("agent-run");
        let port = free_port();
        let mut args: Vec<String> = [
            "agent",
            "--master",
            master,
            "--ip",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--work_dir",
            work_dir.to_str().unwrap(),
            "--runtime_dir",
            runtime_dir.to_str().unwrap(),
            "--cgroups_root",
            &fx.parent,
            "--resources",
            "cpus:2;mem:2048;disk:4096;ports:[31000-32000]",
            "--registration_backoff_factor",
            "10ms",
            "--executor_registration_timeout",
            "30secs",
            "--status_update_retry_interval",
            "1secs",
            "--hostname",
            "localhost",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // An `--ip` in EXTRA replaces the default (an agent that containers
        // on a CNI network must reach listens on the bridge's address).
        if extra.contains(&"--ip") {
            args.drain(3..5);
        }
        // So does a `--resources=...` (reserved resources).
        if extra.iter().any(|a| a.starts_with("--resources=")) {
            let at = args.iter().position(|a| a == "--resources").unwrap();
            args.drain(at..at + 2);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut agent = AgentProcess {
            child: None,
            args,
            work_dir,
            runtime_dir,
            port,
            log: fx.work.path().join("agent.log"),
        };
        agent.spawn_with(env);
        agent
    }

    /// Starts the agent again with the environment variables ENV added for
    /// this start only (e.g. `BUTTE_CRASH_AT`).
    pub fn restart_with_env(&mut self, env: &[(&str, &str)]) {
        assert!(self.child.is_none(), "restart of a running agent");
        self.spawn_with(env);
    }

    fn spawn(&mut self) {
        self.spawn_with(&[]);
    }

    fn spawn_with(&mut self, env: &[(&str, &str)]) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("agent log");
        let child = Command::new(BUTTE)
            .args(&self.args)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "debug".into()),
            )
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn butte agent");
        self.child = Some(child);
    }

    /// The agent's HTTP address (`127.0.0.1:PORT`).
    pub fn endpoint(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("agent not running").id() as i32
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig)
            .unwrap_or_else(|e| panic!("signal {sig} to the agent: {e}"));
    }

    /// Waits up to TIMEOUT for the agent to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut()?;
        loop {
            if let Some(status) = child.try_wait().expect("wait for the agent") {
                self.child = None;
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, as a crash: nothing is cleaned up.
    pub fn kill(&mut self) {
        self.signal(nix::sys::signal::Signal::SIGKILL);
        self.wait_exit(Duration::from_secs(10))
            .expect("the agent survives SIGKILL");
    }

    /// SIGTERM: the agent exits and leaves its tasks running.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        self.wait_exit(Duration::from_secs(30))
            .unwrap_or_else(|| panic!("the agent did not exit on SIGTERM; {}", self.log_tail(40)))
    }

    /// Starts the agent again with the same flags (and port).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "restart of a running agent");
        self.spawn();
    }

    /// Starts the agent again with EXTRA flags for this start only.
    pub fn restart_with(&mut self, extra: &[&str]) {
        assert!(self.child.is_none(), "restart of a running agent");
        let flags = self.args.clone();
        self.args.extend(extra.iter().map(|s| s.to_string()));
        self.spawn();
        self.args = flags;
    }

    /// SIGUSR1: kill every executor, unregister, exit. Panics if the agent
    /// is still running after 60 s.
    pub fn shutdown(&mut self) -> std::process::ExitStatus {
        self.signal(nix::sys::signal::Signal::SIGUSR1);
        match self.wait_exit(Duration::from_secs(60)) {
            Some(status) => status,
            None => {
                let tail = self.log_tail(60);
                self.kill();
                panic!("the agent did not exit within 60 s of SIGUSR1; {tail}");
            }
        }
    }

    /// True while the child runs; panics with the log if it exited.
    pub fn assert_running(&mut self) {
        let child = self.child.as_mut().expect("agent not started");
        if let Some(status) = child.try_wait().unwrap() {
            self.child = None;
            panic!("the agent exited ({status}); {}", self.log_tail(60));
        }
    }

    /// Everything the agent logged (over all its runs).
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The log's first 40 warnings and errors and its last N lines, for
    /// failure messages.
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let alarms: Vec<&str> = lines
            .iter()
            .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
            .take(40)
            .copied()
            .collect();
        format!(
            "agent log ({}): warnings and errors:\n{}\nlast {n} lines:\n{}",
            self.log.display(),
            alarms.join("\n"),
            lines[lines.len().saturating_sub(n)..].join("\n")
        )
    }

    /// `slaves/S/frameworks/F/executors/E/runs/latest` under the work dir.
    pub fn sandbox(
        &self,
        slave_id: &SlaveId,
        framework: &FrameworkInfo,
        executor_id: &str,
    ) -> PathBuf {
        self.work_dir
            .join("slaves")
            .join(&slave_id.value)
            .join("frameworks")
            .join(&framework.id.as_ref().expect("framework id").value)
            .join("executors")
            .join(executor_id)
            .join("runs/latest")
    }
}

impl Drop for AgentProcess {
    /// Shows the log when the test failed; stops the agent (SIGUSR1, then
    /// SIGKILL) so that its executors do not outlive the test.
    fn drop(&mut self) {
        if self.child.is_none() {
            return;
        }
        if thread::panicking() {
            eprintln!("{}", self.log_tail(80));
        }
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid()),
            nix::sys::signal::Signal::SIGUSR1,
        );
        if self.wait_exit(Duration::from_secs(20)).is_none() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.pid()),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = self.wait_exit(Duration::from_secs(5));
        }
    }
}

/// VmRSS of PID in KiB.
pub fn vm_rss_kib(pid: i32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Pids of `butte executor` processes in the cgroups under PARENT.
pub fn executor_pids(parent: &str) -> Vec<i32> {
    processes_in_cgroup(parent)
        .into_iter()
        .filter(|pid| {
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            let program = Path::new(std::str::from_utf8(args[0]).unwrap_or(""));
            // `butte-executor`, or `butte executor` where it is missing.
            program.ends_with("butte-executor")
                || (args.len() > 1 && program.ends_with("butte") && args[1] == b"executor")
        })
        .collect()
}

/// Ends a test: SIGUSR1 to the agent, which must unregister and exit; the
/// master's byte checks; then `Fixture::finish` (no cgroup, process or
/// mount of the test left), showing the agent's log if that fails.
pub fn finish(fx: Fixture, master: FakeMaster, mut agent: AgentProcess) {
    agent.shutdown();
    let name = UnregisterSlaveMessage::full_name();
    if master
        .take(Duration::from_secs(5), |r| r.name == name)
        .is_none()
    {
        panic!(
            "no UnregisterSlaveMessage after SIGUSR1; {}",
            agent.log_tail(40)
        );
    }
    master.assert_clean();
    let log = agent.log_tail(100);
    drop(agent);
    drop(master);
    if let Err(e) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| fx.finish())) {
        eprintln!("{log}");
        std::panic::resume_unwind(e);
    }
}

// --- CRAM-MD5 authentication (the master's side, as Mesos' authenticator) --------

/// The libprocess id the fake master's authenticator answers from.
pub const AUTHENTICATOR: &str = "crammd5-authenticator(1)";

/// How one authentication exchange ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthOutcome {
    /// The agent AGENT (the pid in its AuthenticateMessage) proved PRINCIPAL.
    Completed { agent: String, principal: String },
    /// The response did not match any credential: AuthenticationFailed.
    Refused { agent: String, response: String },
}

/// HMAC-MD5 of CHALLENGE keyed with SECRET, lowercase hex (RFC 2104 by hand
/// over the `md-5` digest, independent of the agent's code).
fn hmac_md5_hex(secret: &[u8], challenge: &[u8]) -> String {
    use md5::{Digest, Md5};
    let mut key = [0u8; 64];
    if secret.len() > 64 {
        key[..16].copy_from_slice(&Md5::digest(secret));
    } else {
        key[..secret.len()].copy_from_slice(secret);
    }
    let pad = |b: u8| key.iter().map(|k| k ^ b).collect::<Vec<u8>>();
    let inner = Md5::new()
        .chain_update(pad(0x36))
        .chain_update(challenge)
        .finalize();
    let outer = Md5::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize();
    outer.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn hmac_md5_matches_rfc_2195() {
    assert_eq!(
        hmac_md5_hex(
            b"tanstaaftanstaaf",
            b"<1896.697170952@postoffice.reston.mci.net>"
        ),
        "b913a602c7eda7a495b4e6e7334d3890"
    );
}

impl FakeMaster {
    /// From now on a (re-)registration from an agent that did not
    /// authenticate is a violation (Mesos' `--authenticate_agents`).
    pub fn require_authentication(&self) {
        self.require_auth.store(true, Ordering::SeqCst);
    }

    fn check_authenticated(&self, from: &str) {
        if self.require_auth.load(Ordering::SeqCst)
            && !lock(&self.authenticated).iter().any(|a| a == from)
        {
            self.shared.violation(format!(
                "registration from {from}, which did not authenticate"
            ));
        }
    }

    /// Runs the master's side of one CRAM-MD5 exchange (waiting up to
    /// TIMEOUT for the AuthenticateMessage) against CREDENTIALS
    /// (principal, secret); `None` if no attempt came.
    pub fn try_authenticate(
        &self,
        credentials: &[(&str, &str)],
        timeout: Duration,
    ) -> Option<AuthOutcome> {
        use butte::proto::mesos::{
            AuthenticateMessage, AuthenticationCompletedMessage, AuthenticationFailedMessage,
            AuthenticationMechanismsMessage, AuthenticationStartMessage, AuthenticationStepMessage,
        };
        let r = self.take(timeout, |r| r.name == AuthenticateMessage::full_name())?;
        assert_eq!(r.to, "master", "AuthenticateMessage sent to {}", r.to);
        let (from_id, _) = parse_upid(&r.from).expect("authenticatee pid");
        assert!(
            from_id.starts_with("crammd5-authenticatee(") && from_id.ends_with(')'),
            "the authenticatee is not its own process: {}",
            r.from
        );
        let agent = AuthenticateMessage::decode(&r.body[..])
            .expect("AuthenticateMessage decodes")
            .pid;
        assert!(
            agent.starts_with("slave(1)@"),
            "AuthenticateMessage.pid {agent:?}"
        );
        let who = r.from.clone();
        self.send(
            &who,
            AUTHENTICATOR,
            &AuthenticationMechanismsMessage {
                mechanisms: vec!["CRAM-MD5".into()],
            },
        );
        let from_who = |name: String| {
            let who = who.clone();
            move |r: &Received| r.name == name && r.to == AUTHENTICATOR && r.from == who
        };
        let start = self
            .take(WAIT, from_who(AuthenticationStartMessage::full_name()))
            .unwrap_or_else(|| panic!("no AuthenticationStartMessage; {}", self.summary()));
        let start = AuthenticationStartMessage::decode(&start.body[..]).unwrap();
        assert_eq!(start.mechanism, "CRAM-MD5");
        assert!(
            start.data.unwrap_or_default().is_empty(),
            "CRAM-MD5 has no initial response"
        );
        let challenge = format!(
            "<{}.{}@fake-master>",
            std::process::id(),
            butte::support::random_uuid().unwrap()
        );
        self.send(
            &who,
            AUTHENTICATOR,
            &AuthenticationStepMessage {
                data: challenge.clone().into_bytes(),
            },
        );
        let step = self
            .take(WAIT, from_who(AuthenticationStepMessage::full_name()))
            .unwrap_or_else(|| panic!("no response to the challenge; {}", self.summary()));
        let response = String::from_utf8(
            AuthenticationStepMessage::decode(&step.body[..])
                .unwrap()
                .data,
        )
        .expect("the response is text");
        let proved = response.split_once(' ').and_then(|(principal, digest)| {
            credentials
                .iter()
                .find(|(p, s)| {
                    *p == principal && hmac_md5_hex(s.as_bytes(), challenge.as_bytes()) == digest
                })
                .map(|(p, _)| p.to_string())
        });
        Some(match proved {
            Some(principal) => {
                lock(&self.authenticated).push(agent.clone());
                self.send(&who, AUTHENTICATOR, &AuthenticationCompletedMessage {});
                AuthOutcome::Completed { agent, principal }
            }
            None => {
                self.send(&who, AUTHENTICATOR, &AuthenticationFailedMessage {});
                AuthOutcome::Refused { agent, response }
            }
        })
    }
}
