//! A local image registry for pull tests.
//!
//! [`Registry`] runs Debian's `docker-registry` (distribution 2.8) on a
//! loopback port with its storage in a temp dir, and pushes OCI layouts into
//! it with skopeo without changing a byte (the manifest digest stays the one
//! in the layout's index.json). [`AuthProxy`] fronts it with Docker token
//! auth (401 + `WWW-Authenticate: Bearer`, a `/token` endpoint behind basic
//! auth) and can answer blob GETs with a 307 to the registry itself, the way
//! registries hand blobs to a CDN. It logs every request for assertions.

use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// Accept header that covers every manifest and index type.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
     application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.list.v2+json";

/// A `docker-registry serve` child on `127.0.0.1:PORT` (no TLS, no auth).
pub struct Registry {
    /// "127.0.0.1:PORT"
    pub addr: String,
    child: Child,
    dir: tempfile::TempDir,
}

impl Registry {
    /// Starts a registry with empty storage; installs `docker-registry` with
    /// apt-get when it is missing. Panics when it does not answer `GET /v2/`
    /// within 10 s.
    pub fn start() -> Registry {
        if !Path::new(REGISTRY_BIN).exists() {
            apt_install("docker-registry");
        }
        let dir = tempfile::Builder::new()
            .prefix("butte-registry-")
            .tempdir()
            .expect("registry temp dir");
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let storage = dir.path().join("storage");
        fs::create_dir(&storage).unwrap();
        let config = dir.path().join("config.yml");
        fs::write(
            &config,
            format!(
                "version: 0.1\n\
                 log:\n  level: warn\n  accesslog:\n    disabled: true\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                 http:\n  addr: {addr}\n",
                storage.display()
            ),
        )
        .unwrap();
        let log = fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn docker-registry");
        let mut registry = Registry { addr, child, dir };
        registry.wait_ready();
        registry
    }

    fn wait_ready(&mut self) {
        let url = format!("{}/v2/", self.url());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(resp) = ureq::get(&url).timeout(Duration::from_secs(1)).call() {
                if resp.status() == 200 {
                    return;
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "docker-registry exited ({status}) before serving {url}: {}",
                    self.log()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "docker-registry did not answer GET {url} within 10 s: {}",
                    self.log()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// "http://127.0.0.1:PORT"
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What the registry wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Copies `oci:OCI_DIR:TAG` to `docker://ADDR/REPO_AND_TAG` ("repo:tag")
    /// byte for byte: blobs are not recompressed and the manifest keeps its
    /// digest. Panics with skopeo's stderr when the copy fails.
    pub fn push(&self, oci_dir: &Path, tag: &str, repo_and_tag: &str) {
        let out = Command::new("skopeo")
            .args([
                "--insecure-policy",
                "copy",
                "--quiet",
                "--dest-tls-verify=false",
                "--preserve-digests",
            ])
            .arg(format!("oci:{}:{tag}", oci_dir.display()))
            .arg(format!("docker://{}/{repo_and_tag}", self.addr))
            .output()
            .expect("run skopeo (apt-get install skopeo)");
        assert!(
            out.status.success(),
            "skopeo copy {}:{tag} to {repo_and_tag} failed: {}",
            oci_dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The digest of `REPO:TAG`'s manifest ("sha256:..."): the
    /// Docker-Content-Digest header, or the sha256 of the body without one.
    pub fn manifest_digest(&self, repo: &str, tag: &str) -> String {
        let url = format!("{}/v2/{repo}/manifests/{tag}", self.url());
        let resp = ureq::get(&url)
            .set("Accept", MANIFEST_ACCEPT)
            .call()
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let header = resp.header("Docker-Content-Digest").map(str::to_string);
        let mut body = Vec::new();
        resp.into_reader().read_to_end(&mut body).unwrap();
        header.unwrap_or_else(|| sha256_digest(&body))
    }

    /// Where the registry keeps blob DIGEST ("sha256:HEX") on disk, so a test
    /// can tamper with it.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        self.dir
            .path()
            .join("storage/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// The root of the registry's filesystem storage.
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// "sha256:HEX" of DATA.
pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// The manifest digest of TAG in the OCI layout OCI_DIR, from index.json.
pub fn layout_digest(oci_dir: &Path, tag: &str) -> String {
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(oci_dir.join("index.json")).unwrap()).unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap_or_else(|| panic!("no tag {tag} in {}", oci_dir.display()))["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

fn apt_install(package: &str) {
    let status = Command::new("apt-get")
        .args(["install", "-y", "--no-install-recommends", package])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .expect("run apt-get");
    assert!(status.success(), "apt-get install {package} failed");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn random_token() -> String {
    let mut bytes = [0u8; 16];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("read /dev/urandom");
    hex::encode(bytes)
}

/// An HTTP/1.1 front for a registry that demands Docker token auth.
pub struct AuthProxy {
    /// "127.0.0.1:PORT"
    pub addr: String,
    /// "METHOD target" of every request received, in order.
    pub requests: Arc<Mutex<Vec<String>>>,
    inner: Arc<Inner>,
    accept: Option<JoinHandle<()>>,
}

struct Inner {
    addr: String,
    upstream: String,
    credentials: String,
    redirect_blobs: bool,
    tokens: Mutex<HashSet<String>>,
    requests: Arc<Mutex<Vec<String>>>,
    stop: AtomicBool,
    /// Open client connections by number, to hang them up on drop.
    conns: Mutex<HashMap<u64, TcpStream>>,
}

impl AuthProxy {
    /// Serves on 127.0.0.1:0 in front of UPSTREAM ("127.0.0.1:PORT").
    /// `GET /token` takes basic auth USER:PASSWORD and issues bearer tokens;
    /// `/v2/...` needs one of them. With REDIRECT_BLOBS, blob GETs answer
    /// `307` to the same path on UPSTREAM instead of being forwarded.
    pub fn start(upstream: &str, user: &str, password: &str, redirect_blobs: bool) -> AuthProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind auth proxy");
        let addr = listener.local_addr().unwrap().to_string();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let inner = Arc::new(Inner {
            addr: addr.clone(),
            upstream: upstream.to_string(),
            credentials: format!("{user}:{password}"),
            redirect_blobs,
            tokens: Mutex::new(HashSet::new()),
            requests: requests.clone(),
            stop: AtomicBool::new(false),
            conns: Mutex::new(HashMap::new()),
        });
        let accept = {
            let inner = inner.clone();
            thread::spawn(move || {
                for (n, stream) in (0u64..).zip(listener.incoming()) {
                    if inner.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    if let Ok(clone) = stream.try_clone() {
                        inner.conns.lock().unwrap().insert(n, clone);
                    }
                    let inner = inner.clone();
                    thread::spawn(move || {
                        let _ = inner.serve(&stream);
                        // Also after an error: the clone in `conns` would
                        // keep the socket open.
                        let _ = stream.shutdown(Shutdown::Both);
                        inner.conns.lock().unwrap().remove(&n);
                    });
                }
            })
        };
        AuthProxy {
            addr,
            requests,
            inner,
            accept: Some(accept),
        }
    }

    /// "http://127.0.0.1:PORT"
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many logged requests ("METHOD target") contain NEEDLE.
    pub fn count(&self, needle: &str) -> usize {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.contains(needle))
            .count()
    }

    /// A copy of the request log.
    pub fn log(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for AuthProxy {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop, which then sees the flag.
        let _ = TcpStream::connect(&self.addr);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        // Ends the connection threads blocked on idle keep-alive clients.
        for (_, conn) in self.inner.conns.lock().unwrap().drain() {
            let _ = conn.shutdown(Shutdown::Both);
        }
    }
}

struct Request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    fn wants_close(&self) -> bool {
        self.header("Connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

/// Reads one request; None at a clean end of the connection.
fn read_request(reader: &mut impl BufRead) -> io::Result<Option<Request>> {
    // Clients that try TLS first (skopeo, containerd) send a binary
    // ClientHello without a newline: hang up at once so they fall back to
    // plain HTTP instead of waiting for their handshake timeout.
    match reader.fill_buf()?.first() {
        None => return Ok(None),
        Some(b) if !b.is_ascii_uppercase() => {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "not HTTP/1.1"))
        }
        Some(_) => {}
    }
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "bad request line",
        ));
    };
    let (method, target) = (method.to_string(), target.to_string());
    let headers = read_headers(reader)?;
    let mut req = Request {
        method,
        target,
        headers,
        body: Vec::new(),
    };
    if let Some(len) = req.header("Content-Length") {
        let len: usize = len
            .trim()
            .parse()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad Content-Length"))?;
        let mut body = vec![0; len];
        reader.read_exact(&mut body)?;
        req.body = body;
    }
    Ok(Some(req))
}

fn read_headers(reader: &mut impl BufRead) -> io::Result<Vec<(String, String)>> {
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            return Ok(headers);
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
}

/// The repository named in a `/v2/<repo>/(manifests|blobs|tags)/...` path.
fn repository(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/v2/")?;
    ["/manifests/", "/blobs/", "/tags/"]
        .iter()
        .filter_map(|kind| rest.rfind(kind))
        .min()
        .map(|end| &rest[..end])
}

fn is_hop_by_hop(name: &str) -> bool {
    [
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "upgrade",
    ]
    .iter()
    .any(|h| name.eq_ignore_ascii_case(h))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        307 => "Temporary Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        _ => "Status",
    }
}

/// Writes a complete response with a Content-Length body.
fn respond(
    out: &mut impl Write,
    status: u16,
    headers: &[(&str, String)],
    body: &[u8],
    head: bool,
) -> io::Result<()> {
    let mut msg = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (name, value) in headers {
        msg.push_str(&format!("{name}: {value}\r\n"));
    }
    msg.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    out.write_all(msg.as_bytes())?;
    if !head {
        out.write_all(body)?;
    }
    out.flush()
}

impl Inner {
    fn serve(&self, stream: &TcpStream) -> io::Result<()> {
        let mut out = stream.try_clone()?;
        let mut reader = BufReader::new(stream);
        while let Some(req) = read_request(&mut reader)? {
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
            self.requests
                .lock()
                .unwrap()
                .push(format!("{} {}", req.method, req.target));
            let keep_alive = self.handle(&req, &mut out)? && !req.wants_close();
            if !keep_alive {
                break;
            }
        }
        Ok(())
    }

    /// Answers one request; false when the connection must close after it.
    fn handle(&self, req: &Request, out: &mut TcpStream) -> io::Result<bool> {
        let head = req.method == "HEAD";
        let json = ("Content-Type", "application/json".to_string());
        let path = req.path();
        if path == "/token" {
            let basic = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(&self.credentials)
            );
            if req.header("Authorization") != Some(basic.as_str()) {
                let body = br#"{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials","detail":null}]}"#;
                let challenge = (
                    "WWW-Authenticate",
                    r#"Basic realm="butte-test""#.to_string(),
                );
                respond(out, 401, &[json, challenge], body, head)?;
                return Ok(true);
            }
            let token = random_token();
            self.tokens.lock().unwrap().insert(token.clone());
            let body = serde_json::json!({
                "token": token, "access_token": token, "expires_in": 300
            });
            respond(out, 200, &[json], body.to_string().as_bytes(), head)?;
            return Ok(true);
        }
        if path != "/v2" && !path.starts_with("/v2/") {
            let body = br#"{"errors":[{"code":"NOT_FOUND","message":"not found","detail":null}]}"#;
            respond(out, 404, &[json], body, head)?;
            return Ok(true);
        }
        let authorized = req
            .header("Authorization")
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| self.tokens.lock().unwrap().contains(t.trim()));
        if !authorized {
            let mut challenge = format!(
                r#"Bearer realm="http://{}/token",service="butte-test""#,
                self.addr
            );
            if let Some(repo) = repository(path) {
                challenge.push_str(&format!(r#",scope="repository:{repo}:pull""#));
            }
            let body = br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":null}]}"#;
            respond(
                out,
                401,
                &[
                    json,
                    ("WWW-Authenticate", challenge),
                    (
                        "Docker-Distribution-Api-Version",
                        "registry/2.0".to_string(),
                    ),
                ],
                body,
                head,
            )?;
            return Ok(true);
        }
        let blob_get = req.method == "GET"
            && repository(path)
                .is_some_and(|repo| path[4 + repo.len()..].starts_with("/blobs/sha256:"));
        if self.redirect_blobs && blob_get {
            let location = format!("http://{}{}", self.upstream, req.target);
            respond(out, 307, &[("Location", location)], b"", head)?;
            return Ok(true);
        }
        self.forward(req, out)
    }

    /// Sends REQ to the upstream on a fresh connection and streams the
    /// answer back; false when the client connection must close after it
    /// (a body delimited only by the end of the upstream connection).
    fn forward(&self, req: &Request, out: &mut TcpStream) -> io::Result<bool> {
        let upstream = TcpStream::connect(&self.upstream)?;
        let mut msg = format!("{} {} HTTP/1.1\r\n", req.method, req.target);
        for (name, value) in &req.headers {
            if is_hop_by_hop(name)
                || name.eq_ignore_ascii_case("Authorization")
                || name.eq_ignore_ascii_case("Content-Length")
            {
                continue;
            }
            msg.push_str(&format!("{name}: {value}\r\n"));
        }
        if !req.body.is_empty() || req.header("Content-Length").is_some() {
            msg.push_str(&format!("Content-Length: {}\r\n", req.body.len()));
        }
        msg.push_str("Connection: close\r\n\r\n");
        let mut up_out = upstream.try_clone()?;
        up_out.write_all(msg.as_bytes())?;
        up_out.write_all(&req.body)?;
        up_out.flush()?;

        let mut up = BufReader::new(upstream);
        let mut status_line = String::new();
        up.read_line(&mut status_line)?;
        let status: u16 = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad upstream status"))?;
        let headers = read_headers(&mut up)?;
        let find = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        let length: Option<u64> = find("Content-Length").and_then(|v| v.parse().ok());
        let chunked = find("Transfer-Encoding").is_some_and(|v| v.contains("chunked"));
        let no_body = req.method == "HEAD" || status == 204 || status == 304 || status < 200;
        // Without a length (chunked or read-to-close) the raw rest of the
        // upstream connection is the body: pass it through and close.
        let keep_alive = no_body || length.is_some();

        let mut head = format!("HTTP/1.1 {status} ");
        head.push_str(
            status_line
                .splitn(3, ' ')
                .nth(2)
                .unwrap_or("\r\n")
                .trim_end(),
        );
        head.push_str("\r\n");
        for (name, value) in &headers {
            if !is_hop_by_hop(name) {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        if !keep_alive {
            head.push_str("Connection: close\r\n");
        }
        head.push_str("\r\n");
        out.write_all(head.as_bytes())?;
        if !no_body {
            match length {
                Some(n) if !chunked => {
                    io::copy(&mut (&mut up).take(n), out)?;
                }
                _ => {
                    io::copy(&mut up, out)?;
                }
            }
        }
        out.flush()?;
        Ok(keep_alive)
    }
}
