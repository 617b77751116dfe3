//! A tiny HTTP/1.1 server on 127.0.0.1:0 for the fetcher's unit tests: fixed
//! routes, request counts, and misbehaviour on demand (errors, redirects,
//! stalls, bodies without a length).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

#[derive(Debug, Clone)]
pub(crate) struct Reply {
    status: u16,
    body: Vec<u8>,
    location: Option<String>,
    with_length: bool,
    /// Send this many body bytes, then nothing more until the server stops.
    stall_after: Option<usize>,
    /// Answer the first N requests with 503.
    fail_first: usize,
}

impl Reply {
    pub(crate) fn ok(body: Vec<u8>) -> Reply {
        Reply {
            status: 200,
            body,
            location: None,
            with_length: true,
            stall_after: None,
            fail_first: 0,
        }
    }

    pub(crate) fn status(code: u16) -> Reply {
        Reply {
            status: code,
            ..Reply::ok(Vec::new())
        }
    }

    pub(crate) fn redirect(to: &str) -> Reply {
        Reply {
            status: 302,
            location: Some(to.to_string()),
            ..Reply::ok(Vec::new())
        }
    }

    pub(crate) fn without_length(mut self) -> Reply {
        self.with_length = false;
        self
    }

    pub(crate) fn stall_after(mut self, bytes: usize) -> Reply {
        self.stall_after = Some(bytes);
        self
    }

    pub(crate) fn fail_first(mut self, n: usize) -> Reply {
        self.fail_first = n;
        self
    }
}

#[derive(Default)]
struct State {
    routes: HashMap<String, Reply>,
    hits: HashMap<String, usize>,
}

pub(crate) struct Server {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl Server {
    pub(crate) fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (st, sp) = (st.clone(), sp.clone());
                thread::spawn(move || serve(conn, &st, &sp));
            }
        });
        Server { addr, state, stop }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub(crate) fn route(&self, path: &str, reply: Reply) {
        let mut s = self.state.lock().unwrap();
        s.routes.insert(path.to_string(), reply);
    }

    /// Requests seen for `path`.
    pub(crate) fn hits(&self, path: &str) -> usize {
        let s = self.state.lock().unwrap();
        s.hits.get(path).copied().unwrap_or(0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve(conn: TcpStream, state: &Mutex<State>, stop: &AtomicBool) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    loop {
        let mut h = String::new();
        match reader.read_line(&mut h) {
            Ok(0) | Err(_) => return,
            Ok(_) if h == "\r\n" => break,
            Ok(_) => {}
        }
    }
    let reply = {
        let mut s = state.lock().unwrap();
        let n = s.hits.entry(path.clone()).or_insert(0);
        *n += 1;
        let n = *n;
        match s.routes.get(&path) {
            Some(r) if n <= r.fail_first => Reply::status(503),
            Some(r) => r.clone(),
            None => Reply::status(404),
        }
    };
    let mut out = conn;
    let reason = match reply.status {
        200 => "OK",
        302 => "Found",
        404 => "Not Found",
        503 => "Service Unavailable",
        _ => "Whatever",
    };
    let mut head = format!(
        "HTTP/1.1 {} {reason}\r\nConnection: close\r\n",
        reply.status
    );
    if let Some(l) = &reply.location {
        head.push_str(&format!("Location: {l}\r\n"));
    }
    if reply.with_length {
        head.push_str(&format!("Content-Length: {}\r\n", reply.body.len()));
    }
    head.push_str("\r\n");
    if out.write_all(head.as_bytes()).is_err() {
        return;
    }
    let send = reply
        .stall_after
        .unwrap_or(reply.body.len())
        .min(reply.body.len());
    let _ = out.write_all(&reply.body[..send]);
    let _ = out.flush();
    if reply.stall_after.is_some() {
        while !stop.load(Ordering::SeqCst) {
            thread::sleep(Duration::from_millis(20));
        }
    }
}
