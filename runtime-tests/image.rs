//! `butte image ...` and `butte run --image REF` end to end (issue 3): pulls
//! from a local registry by tag and by digest, token auth, tampered blobs and
//! manifests, a corpus of hostile layers, a pull killed halfway and two at
//! once, rm and prune, import of OCI layouts and `docker save` tarballs, and
//! the image config as the default command.
//!
//! Everything goes through the CLI, as a user would; the store is inspected
//! only where the contract fixes its layout (`W/store/{blobs,ingest,layers}`).
//! Hostile images are built here, entry by entry, with raw tar headers.

use crate::support::registry::{layout_digest, sha256_digest, AuthProxy, Registry};
use crate::support::{self, enabled, text, Fixture, BUTTE};
use base64::Engine as _;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};
use tar::EntryType;

/// No single command of these tests should take longer.
const LIMIT: Duration = Duration::from_secs(300);

fn unique() -> String {
    butte::support::random_uuid().unwrap()[..8].to_string()
}

fn hex(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

// --- running butte -------------------------------------------------------------

/// Waits for CHILD (spawned with piped output) at most LIMIT; kills it and
/// panics when it takes longer.
fn finish_within(mut child: Child, what: &str, limit: Duration) -> Output {
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let out = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what} still running after {limit:?}; stderr: {}",
                text(&err.join().unwrap())
            );
        }
        thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

fn spawn(cmd: &mut Command) -> Child {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn butte")
}

/// `butte image ARGS... --work-dir WORK`, blind to the host's Docker config.
fn image_cmd(work: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(BUTTE);
    cmd.arg("image")
        .args(args)
        .arg("--work-dir")
        .arg(work)
        .env("DOCKER_CONFIG", work.join("no-docker-config"));
    cmd
}

fn image(work: &Path, args: &[&str]) -> Output {
    finish_within(
        spawn(&mut image_cmd(work, args)),
        &format!("butte image {args:?}"),
        LIMIT,
    )
}

/// `butte image pull REFERENCE --insecure-registry REGISTRY EXTRA...`.
fn pull(work: &Path, reference: &str, registry: &str, extra: &[&str]) -> Output {
    let mut args = vec!["pull", reference, "--insecure-registry", registry];
    args.extend_from_slice(extra);
    image(work, &args)
}

/// `butte run` with the fixture's work dir and cgroup parent.
fn run(fx: &Fixture, args: &[&str]) -> Output {
    finish_within(
        spawn(&mut run_cmd(fx, args)),
        &format!("butte run {args:?}"),
        LIMIT,
    )
}

fn run_cmd(fx: &Fixture, args: &[&str]) -> Command {
    let mut cmd = Command::new(BUTTE);
    cmd.arg("run")
        .arg("--work-dir")
        .arg(fx.work.path())
        .arg("--cgroup-parent")
        .arg(&fx.parent)
        .args(args)
        .env("DOCKER_CONFIG", fx.work.path().join("no-docker-config"));
    cmd
}

/// Asserts that OUT succeeded; its stdout.
#[track_caller]
fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstderr: {}\nstdout: {}",
        out.status,
        text(&out.stderr),
        text(&out.stdout)
    );
    text(&out.stdout)
}

/// Asserts that OUT failed; its stderr.
#[track_caller]
fn fails(out: &Output, what: &str) -> String {
    assert!(
        !out.status.success(),
        "{what} succeeded but must fail:\nstdout: {}\nstderr: {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stderr)
}

/// The manifest digest a successful pull prints last.
#[track_caller]
fn pulled_digest(out: &Output, what: &str) -> String {
    let stdout = ok(out, what);
    stdout.lines().last().unwrap_or("").trim().to_string()
}

/// `butte image inspect REFERENCE` as JSON.
#[track_caller]
fn inspect(work: &Path, reference: &str) -> serde_json::Value {
    let out = image(work, &["inspect", reference]);
    let stdout = ok(&out, &format!("inspect {reference}"));
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("inspect {reference} printed no JSON ({e}): {stdout}"))
}

// --- the store ---------------------------------------------------------------

/// The parts of `W/store` the contract fixes.
struct Store {
    root: PathBuf,
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(rd) => rd.flatten().map(|e| e.path()).collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

/// Every path under DIR, symlinks not followed.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut all = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for p in entries(&d) {
            if fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
                todo.push(p.clone());
            }
            all.push(p);
        }
    }
    all
}

fn name_of(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

impl Store {
    fn new(work: &Path) -> Store {
        Store {
            root: work.join("store"),
        }
    }

    fn blob(&self, digest: &str) -> PathBuf {
        self.root.join("blobs/sha256").join(hex(digest))
    }

    fn partial(&self, digest: &str) -> PathBuf {
        self.root
            .join("ingest")
            .join(format!("sha256-{}.partial", hex(digest)))
    }

    fn layer(&self, diff_id: &str) -> PathBuf {
        self.root
            .join("layers")
            .join(format!("sha256-{}", hex(diff_id)))
    }

    fn partials(&self) -> Vec<PathBuf> {
        entries(&self.root.join("ingest"))
            .into_iter()
            .filter(|p| name_of(p).ends_with(".partial"))
            .collect()
    }

    fn tmp_dirs(&self) -> Vec<PathBuf> {
        entries(&self.root.join("layers"))
            .into_iter()
            .filter(|p| name_of(p).starts_with(".tmp-"))
            .collect()
    }

    fn blob_files(&self) -> Vec<PathBuf> {
        walk(&self.root.join("blobs"))
            .into_iter()
            .filter(|p| !p.is_dir())
            .collect()
    }

    fn layer_dirs(&self) -> Vec<PathBuf> {
        entries(&self.root.join("layers"))
    }

    /// No partial download and no unpacking directory is left.
    #[track_caller]
    fn assert_no_debris(&self, what: &str) {
        assert_eq!(
            self.partials(),
            Vec::<PathBuf>::new(),
            "{what}: partial blobs left"
        );
        assert_eq!(
            self.tmp_dirs(),
            Vec::<PathBuf>::new(),
            "{what}: .tmp-* left"
        );
    }

    /// Nothing of blob DIGEST (unpacked as DIFF_ID, if given) is in the store.
    #[track_caller]
    fn assert_nothing_of(&self, digest: &str, diff_id: Option<&str>, what: &str) {
        assert!(!self.blob(digest).exists(), "{what}: blob {digest} stored");
        assert!(
            !self.partial(digest).exists(),
            "{what}: partial of {digest} left"
        );
        if let Some(d) = diff_id {
            assert!(!self.layer(d).exists(), "{what}: layer {d} left");
        }
        self.assert_no_debris(what);
    }
}

// --- OCI layouts ---------------------------------------------------------------

/// An OCI layout's manifest and image config for TAG.
fn layout_json(dir: &Path, tag: &str) -> (serde_json::Value, serde_json::Value) {
    let read = |digest: &str| -> serde_json::Value {
        serde_json::from_slice(&fs::read(dir.join("blobs/sha256").join(hex(digest))).unwrap())
            .unwrap()
    };
    let manifest = read(&layout_digest(dir, tag));
    let config = read(manifest["config"]["digest"].as_str().unwrap());
    (manifest, config)
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// (layer digests, diff ids, config digest) of TAG in an OCI layout.
fn layout_parts(dir: &Path, tag: &str) -> (Vec<String>, Vec<String>, String) {
    let (manifest, config) = layout_json(dir, tag);
    let layers = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect();
    (
        layers,
        strings(&config["rootfs"]["diff_ids"]),
        manifest["config"]["digest"].as_str().unwrap().to_string(),
    )
}

/// One layer as it goes into a layout.
struct Layer {
    media_type: &'static str,
    blob: Vec<u8>,
    diff_id: String,
}

const GZIP_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

impl Layer {
    fn gzip(tar: &[u8]) -> Layer {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(tar).unwrap();
        Layer {
            media_type: GZIP_LAYER,
            blob: gz.finish().unwrap(),
            diff_id: sha256_digest(tar),
        }
    }

    /// The one layer of the busybox image (a shell for checks from inside).
    fn busybox() -> Layer {
        let oci = support::busybox_oci();
        let (layers, diff_ids, _) = layout_parts(&oci, "1");
        Layer {
            media_type: GZIP_LAYER,
            blob: fs::read(oci.join("blobs/sha256").join(hex(&layers[0]))).unwrap(),
            diff_id: diff_ids[0].clone(),
        }
    }
}

/// What [`write_layout`] wrote.
struct Built {
    dir: PathBuf,
    manifest: String,
    layers: Vec<String>,
    diff_ids: Vec<String>,
}

fn put_blob(dir: &Path, data: &[u8]) -> (String, usize) {
    let digest = sha256_digest(data);
    fs::write(dir.join("blobs/sha256").join(hex(&digest)), data).unwrap();
    (digest, data.len())
}

/// Writes an OCI layout at DIR holding one image, tagged TAG, of LAYERS with
/// CONFIG as the image config's "config" section.
fn write_layout(dir: &Path, tag: &str, layers: Vec<Layer>, config: serde_json::Value) -> Built {
    fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    let diff_ids: Vec<String> = layers.iter().map(|l| l.diff_id.clone()).collect();
    let image_config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": layers.iter().map(|_| serde_json::json!({"created_by": "runtime-tests/image.rs"})).collect::<Vec<_>>(),
    });
    let (config_digest, config_size) = put_blob(dir, image_config.to_string().as_bytes());
    let mut descriptors = Vec::new();
    let mut digests = Vec::new();
    for l in &layers {
        let (digest, size) = put_blob(dir, &l.blob);
        descriptors
            .push(serde_json::json!({"mediaType": l.media_type, "digest": digest, "size": size}));
        digests.push(digest);
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
        "layers": descriptors,
    });
    let (manifest_digest, manifest_size) = put_blob(dir, manifest.to_string().as_bytes());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest_size,
            "platform": {"architecture": "amd64", "os": "linux"},
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }],
    });
    fs::write(dir.join("index.json"), index.to_string()).unwrap();
    fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    Built {
        dir: dir.to_path_buf(),
        manifest: manifest_digest,
        layers: digests,
        diff_ids,
    }
}

/// A tar built entry by entry from raw headers, with the names and link
/// targets the `tar` crate's builder refuses.
struct Tar(Vec<u8>);

impl Tar {
    fn new() -> Tar {
        Tar(Vec::new())
    }

    fn header(path: &str, kind: EntryType, size: u64, mode: u32) -> tar::Header {
        assert!(path.len() < 100, "{path} too long for a plain header");
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(mode);
        h.set_mtime(1_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h
    }

    fn push(mut self, mut h: tar::Header, data: &[u8]) -> Tar {
        h.set_cksum();
        self.0.extend_from_slice(h.as_bytes());
        self.0.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.0.extend(std::iter::repeat(0).take(pad));
        self
    }

    fn file(self, path: &str, data: &[u8]) -> Tar {
        let h = Self::header(path, EntryType::Regular, data.len() as u64, 0o644);
        self.push(h, data)
    }

    fn dir(self, path: &str) -> Tar {
        let h = Self::header(path, EntryType::Directory, 0, 0o755);
        self.push(h, &[])
    }

    fn link(self, path: &str, kind: EntryType, target: &str) -> Tar {
        let mut h = Self::header(path, kind, 0, 0o777);
        h.as_old_mut().linkname[..target.len()].copy_from_slice(target.as_bytes());
        self.push(h, &[])
    }

    fn device(self, path: &str, kind: EntryType, major: u32, minor: u32) -> Tar {
        let mut h = Self::header(path, kind, 0, 0o666);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.push(h, &[])
    }

    fn finish(mut self) -> Vec<u8> {
        self.0.extend_from_slice(&[0; 1024]);
        self.0
    }
}

// --- a canary outside the work dir -----------------------------------------------

/// `/tmp/butte-canary-U/secret`: where hostile entries aim. It must stay as
/// it is, with one link.
struct Canary {
    dir: PathBuf,
    secret: PathBuf,
    tag: String,
}

impl Canary {
    fn new(tag: &str) -> Canary {
        let dir = std::env::temp_dir().join(format!("butte-canary-{tag}"));
        fs::create_dir_all(&dir).unwrap();
        let secret = dir.join("secret");
        fs::write(&secret, "canary\n").unwrap();
        Canary {
            dir,
            secret,
            tag: tag.to_string(),
        }
    }

    /// Nothing was added to, changed in or linked into the canary dir, and
    /// nothing named after this test appeared in /tmp.
    #[track_caller]
    fn assert_untouched(&self, what: &str) {
        assert_eq!(
            entries(&self.dir),
            vec![self.secret.clone()],
            "{what}: canary dir changed"
        );
        let meta = fs::symlink_metadata(&self.secret).unwrap();
        assert!(meta.is_file(), "{what}: canary replaced");
        assert_eq!(meta.nlink(), 1, "{what}: canary hard-linked");
        assert_eq!(fs::read_to_string(&self.secret).unwrap(), "canary\n");
        let strays: Vec<PathBuf> = entries(&std::env::temp_dir())
            .into_iter()
            .filter(|p| name_of(p).contains(&self.tag) && *p != self.dir)
            .collect();
        assert!(strays.is_empty(), "{what}: written into /tmp: {strays:?}");
    }
}

impl Drop for Canary {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

// --- small servers ---------------------------------------------------------------

/// Reads one HTTP request head; (method, target).
fn read_head(reader: &mut impl BufRead) -> Option<(String, String)> {
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next()?.to_string(), parts.next()?.to_string());
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            return None;
        }
        if h.trim_end().is_empty() {
            return Some((method, target));
        }
    }
}

/// Accepts on 127.0.0.1:0 and hands each connection to SERVE on its own
/// thread, until dropped.
struct Server {
    addr: String,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    accept: Option<JoinHandle<()>>,
}

impl Server {
    fn start(serve: impl Fn(TcpStream) + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let serve = Arc::new(serve);
        let accept = {
            let (stop, conns) = (stop.clone(), conns.clone());
            thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    if let Ok(clone) = stream.try_clone() {
                        conns.lock().unwrap().push(clone);
                    }
                    let serve = serve.clone();
                    thread::spawn(move || serve(stream));
                }
            })
        };
        Server {
            addr,
            stop,
            conns,
            accept: Some(accept),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
        if let Some(a) = self.accept.take() {
            let _ = a.join();
        }
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

/// A registry front that lies about one manifest: every manifest request
/// gets MANIFEST with a byte appended (still valid JSON, so a client that
/// does not verify would go on) and `Docker-Content-Digest: CLAIMED`; every
/// other `/v2/...` request is redirected to the real registry.
fn lying_registry(upstream: &str, manifest: Vec<u8>, claimed: &str) -> Server {
    let upstream = upstream.to_string();
    let claimed = claimed.to_string();
    let mut body = manifest;
    body.push(b'\n');
    Server::start(move |stream| {
        let mut out = match stream.try_clone() {
            Ok(s) => s,
            Err(_) => return,
        };
        let mut reader = BufReader::new(stream);
        let Some((method, target)) = read_head(&mut reader) else {
            return;
        };
        let path = target.split('?').next().unwrap_or("");
        let head = method == "HEAD";
        let reply = if path == "/v2/" || path == "/v2" {
            response("200 OK", "Content-Type: application/json\r\n", b"{}", head)
        } else if path.contains("/manifests/") {
            let headers = format!(
                "Content-Type: application/vnd.oci.image.manifest.v1+json\r\n\
                 Docker-Content-Digest: {claimed}\r\n"
            );
            response("200 OK", &headers, &body, head)
        } else {
            let location = format!("Location: http://{upstream}{target}\r\n");
            response("307 Temporary Redirect", &location, b"", head)
        };
        let _ = out.write_all(&reply);
        let _ = out.shutdown(Shutdown::Both);
    })
}

/// A whole HTTP/1.1 response that closes the connection.
fn response(status: &str, headers: &str, body: &[u8], head: bool) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 {status}\r\nDocker-Distribution-Api-Version: registry/2.0\r\n{headers}\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head {
        r.extend_from_slice(body);
    }
    r
}

/// A TCP proxy whose answers (upstream to client) share one byte rate; rate
/// 0 is unthrottled and can be set at any time.
struct Throttle {
    server: Server,
    rate: Arc<AtomicU64>,
}

impl Throttle {
    fn start(upstream: &str, bytes_per_s: u64) -> Throttle {
        let rate = Arc::new(AtomicU64::new(bytes_per_s));
        let next = Arc::new(Mutex::new(Instant::now()));
        let upstream = upstream.to_string();
        let server = {
            let rate = rate.clone();
            Server::start(move |client| {
                let Ok(up) = TcpStream::connect(&upstream) else {
                    return;
                };
                let (c2, u2) = (client.try_clone().unwrap(), up.try_clone().unwrap());
                let ahead = thread::spawn(move || pump(c2, u2, None));
                pump(up, client, Some((&*rate, &*next)));
                let _ = ahead.join();
            })
        };
        Throttle { server, rate }
    }

    fn addr(&self) -> &str {
        &self.server.addr
    }

    fn unthrottle(&self) {
        self.rate.store(0, Ordering::SeqCst);
    }
}

/// Copies FROM to TO; with PACE, no faster than its shared rate.
fn pump(mut from: TcpStream, mut to: TcpStream, pace: Option<(&AtomicU64, &Mutex<Instant>)>) {
    let mut buf = [0u8; 16 << 10];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some((rate, next)) = pace {
            let r = rate.load(Ordering::SeqCst);
            if r > 0 {
                let due = {
                    let mut next = next.lock().unwrap();
                    let start = (*next).max(Instant::now());
                    *next = start + Duration::from_secs_f64(n as f64 / r as f64);
                    *next
                };
                thread::sleep(due.saturating_duration_since(Instant::now()));
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// A Docker config.json with basic credentials for REGISTRY.
fn docker_config(path: &Path, registry: &str, user: &str, password: &str) {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(
        path,
        serde_json::json!({"auths": {registry: {"auth": auth}}}).to_string(),
    )
    .unwrap();
}

// --- the tests -----------------------------------------------------------------

#[test]
fn pulls_by_tag_and_digest_and_runs_python_on_the_layers() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let w = fx.work.path();
    let store = Store::new(w);
    let (bb, py) = (support::busybox_oci(), support::python_image());
    let registry = Registry::start();
    registry.push(&bb, "1", "library/busybox:1");
    registry.push(&py, "3.11", "library/python:3.11");
    let (bb_digest, py_digest) = (layout_digest(&bb, "1"), layout_digest(&py, "3.11"));
    let addr = registry.addr.as_str();
    let py_tag = format!("{addr}/library/python:3.11");
    let py_pinned = format!("{addr}/library/python@{py_digest}");
    let bb_tag = format!("{addr}/library/busybox:1");
    let bb_pinned = format!("{addr}/library/busybox@{bb_digest}");

    // By digest, then by tag (nothing new to fetch); busybox both ways.
    for (reference, digest) in [
        (&py_pinned, &py_digest),
        (&py_tag, &py_digest),
        (&bb_tag, &bb_digest),
        (&bb_pinned, &bb_digest),
    ] {
        let out = pull(w, reference, addr, &[]);
        assert_eq!(&pulled_digest(&out, reference), digest, "pull {reference}");
    }
    store.assert_no_debris("after the pulls");
    assert!(store.root.join("refs.json").is_file(), "no store/refs.json");
    let (py_layers, py_diff_ids, _) = layout_parts(&py, "3.11");
    assert!(py_layers.len() >= 3);
    for (layer, diff_id) in py_layers.iter().zip(&py_diff_ids) {
        assert!(store.blob(layer).is_file(), "blob {layer} not stored");
        assert!(
            store.layer(diff_id).is_dir(),
            "layer {diff_id} not unpacked"
        );
    }
    // Layers are kept in overlay form: layer 2's whiteout is a 0/0 char device.
    let whiteout = store.layer(&py_diff_ids[1]).join("etc/butte-deleted-later");
    let meta =
        fs::symlink_metadata(&whiteout).unwrap_or_else(|e| panic!("{}: {e}", whiteout.display()));
    assert!(
        meta.file_type().is_char_device() && meta.rdev() == 0,
        "{} is not a 0/0 whiteout device: {meta:?}",
        whiteout.display()
    );

    let ls = ok(&image(w, &["ls"]), "image ls");
    for want in ["library/python", "3.11", "library/busybox"] {
        assert!(ls.contains(want), "image ls lacks {want}: {ls}");
    }
    let info = inspect(w, &py_tag);
    assert_eq!(info["digest"], py_digest.as_str(), "{info}");
    assert_eq!(
        info["layers"].as_array().map(Vec::len),
        Some(py_layers.len())
    );
    assert_eq!(strings(&info["config"]["config"]["Cmd"]), ["python3"]);
    assert_eq!(strings(&info["config"]["rootfs"]["diff_ids"]), py_diff_ids);

    // Python runs on the overlay; its output is in the sandbox too.
    let out = run(
        &fx,
        &["--image", &py_tag, "--", "python3", "-c", "print(6*7)"],
    );
    assert_eq!(ok(&out, "python3 -c print(6*7)"), "42\n");
    let sandboxes = fx.sandboxes();
    assert_eq!(sandboxes.len(), 1, "{sandboxes:?}");
    assert_eq!(
        fs::read_to_string(sandboxes[0].join("stdout")).unwrap(),
        "42\n"
    );

    // Whiteout and opaque directory, as seen from inside.
    let out = run(
        &fx,
        &[
            "--rm",
            "--image",
            &py_pinned,
            "--",
            "sh",
            "-c",
            "test -e /etc/butte-deleted-later && echo deleted-file-present; \
             test -e /opt/opaque/old.txt && echo opaque-old-present; \
             test -e /opt/opaque/new.txt && echo new-present; ls /opt/opaque",
        ],
    );
    assert_eq!(ok(&out, "whiteout check"), "new-present\nnew.txt\n");

    // The image's Env and WorkingDir apply unless overridden.
    let env = "echo $LANG; pwd";
    let out = run(&fx, &["--rm", "--image", &py_tag, "--", "sh", "-c", env]);
    assert_eq!(ok(&out, "image env"), "C.UTF-8\n/\n");
    let out = run(
        &fx,
        &[
            "--rm", "--image", &py_tag, "-e", "LANG=C", "--cwd", "/tmp", "--", "sh", "-c", env,
        ],
    );
    assert_eq!(ok(&out, "overridden env"), "C\n/tmp\n");

    // No command: the image's Cmd, python3, reads the empty stdin and exits.
    let out = run(&fx, &["--rm", "--image", &py_tag]);
    assert_eq!(ok(&out, "image Cmd"), "");

    let out = run(&fx, &["--rm", "--image", &bb_pinned, "--", "echo", "hi"]);
    assert_eq!(ok(&out, "busybox by digest"), "hi\n");
    fx.finish();
}

#[test]
fn pulls_through_token_auth_with_credentials_from_a_docker_config() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let w = fx.work.path();
    let bb = support::busybox_oci();
    let digest = layout_digest(&bb, "1");
    let registry = Registry::start();
    registry.push(&bb, "1", "library/busybox:1");
    let password = format!("pw-{}", unique());
    let proxy = AuthProxy::start(&registry.addr, "alice", &password, false);
    let addr = proxy.addr.as_str();
    let reference = format!("{addr}/library/busybox:1");

    // No credentials anywhere (DOCKER_CONFIG points at an empty dir).
    let err = fails(&pull(w, &reference, addr, &[]), "pull without credentials");
    let lower = err.to_lowercase();
    assert!(
        lower.contains("401") || lower.contains("unauthorized"),
        "no 401/unauthorized in: {err}"
    );
    // Wrong password: refused, and the password is not echoed.
    let wrong = w.join("wrong/config.json");
    docker_config(&wrong, addr, "alice", "not-the-password");
    let args = ["--registry-config", wrong.to_str().unwrap()];
    let err = fails(
        &pull(w, &reference, addr, &args),
        "pull with a wrong password",
    );
    assert!(
        !err.contains("not-the-password"),
        "password in stderr: {err}"
    );
    Store::new(w).assert_no_debris("refused pulls");

    // Right credentials with --registry-config.
    let config = w.join("docker/config.json");
    docker_config(&config, addr, "alice", &password);
    let args = ["--registry-config", config.to_str().unwrap()];
    let out = pull(w, &reference, addr, &args);
    assert_eq!(pulled_digest(&out, "pull with credentials"), digest);
    assert!(proxy.count("GET /v2/library/busybox/blobs/sha256:") >= 1);
    assert!(!text(&out.stderr).contains(&password), "password in stderr");

    // The same config found through $DOCKER_CONFIG, into a fresh work dir.
    let w2 = w.join("w2");
    fs::create_dir(&w2).unwrap();
    let mut cmd = image_cmd(&w2, &["pull", &reference, "--insecure-registry", addr]);
    cmd.env("DOCKER_CONFIG", config.parent().unwrap());
    let out = finish_within(spawn(&mut cmd), "pull with $DOCKER_CONFIG", LIMIT);
    assert_eq!(pulled_digest(&out, "pull with $DOCKER_CONFIG"), digest);

    // Blobs redirected elsewhere (as to a CDN): followed, still verified.
    let redirecting = AuthProxy::start(&registry.addr, "alice", &password, true);
    let raddr = redirecting.addr.as_str();
    let rconfig = w.join("docker-r/config.json");
    docker_config(&rconfig, raddr, "alice", &password);
    let w3 = w.join("w3");
    fs::create_dir(&w3).unwrap();
    let rref = format!("{raddr}/library/busybox:1");
    let out = pull(
        &w3,
        &rref,
        raddr,
        &["--registry-config", rconfig.to_str().unwrap()],
    );
    assert_eq!(pulled_digest(&out, "pull with redirected blobs"), digest);
    assert!(redirecting.count("GET /v2/library/busybox/blobs/sha256:") >= 1);
    Store::new(&w3).assert_no_debris("redirected pull");

    let out = run(&fx, &["--rm", "--image", &reference, "--", "echo", "hi"]);
    assert_eq!(ok(&out, "run the authenticated pull"), "hi\n");
    fx.finish();
}

#[test]
fn tampered_blobs_fail_naming_the_digest_and_leave_nothing() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let w = fx.work.path();
    let store = Store::new(w);
    let bb = support::busybox_oci();
    let (layers, diff_ids, _) = layout_parts(&bb, "1");
    let (layer, diff_id) = (layers[0].clone(), diff_ids[0].clone());
    let registry = Registry::start();
    registry.push(&bb, "1", "library/busybox:1");
    let addr = registry.addr.as_str();
    let reference = format!("{addr}/library/busybox:1");
    let stored = registry.blob_path(&layer);
    let original = fs::read(&stored).unwrap();

    // (1) Only the gzip header's MTIME changes: still a valid gzip stream of
    // the same tar, so only the digest can tell. (2) Bytes in the middle of
    // the deflate stream flipped: the digest must still be what is named.
    let mut header_only = original.clone();
    for b in &mut header_only[4..8] {
        *b ^= 0x5a;
    }
    let mut middle = original.clone();
    let mid = middle.len() / 2;
    for b in &mut middle[mid..mid + 4] {
        *b ^= 0xff;
    }
    for (what, bytes, must_say_mismatch) in [
        ("gzip header changed", &header_only, true),
        ("deflate bytes flipped", &middle, false),
    ] {
        assert_eq!(bytes.len(), original.len());
        fs::write(&stored, bytes).unwrap();
        let err = fails(&pull(w, &reference, addr, &[]), what);
        assert!(err.contains(&layer), "{what}: {layer} not named in: {err}");
        if must_say_mismatch {
            assert!(
                err.to_lowercase().contains("mismatch"),
                "{what}: no 'mismatch' in: {err}"
            );
        }
        store.assert_nothing_of(&layer, Some(&diff_id), &format!("{what} ({err})"));
    }
    // With the blob restored the same store pulls it: nothing was poisoned.
    fs::write(&stored, &original).unwrap();
    let out = pull(w, &reference, addr, &[]);
    assert_eq!(
        pulled_digest(&out, "pull after restoring"),
        layout_digest(&bb, "1")
    );
    assert!(store.layer(&diff_id).is_dir());
    store.assert_no_debris("pull after restoring");

    fx.finish();
}

#[test]
fn a_manifest_that_does_not_match_its_pinned_digest_is_refused_by_digest() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let w = fx.work.path();
    let bb = support::busybox_oci();
    let (layers, diff_ids, _) = layout_parts(&bb, "1");
    let (layer, diff_id) = (layers[0].clone(), diff_ids[0].clone());
    let registry = Registry::start();
    registry.push(&bb, "1", "library/busybox:1");
    // The real manifest plus one byte, claimed to be the pinned digest;
    // blobs come from the real registry: refused by digest, nothing stored,
    // no reference recorded.
    let pinned = layout_digest(&bb, "1");
    let manifest = fs::read(bb.join("blobs/sha256").join(hex(&pinned))).unwrap();
    let liar = lying_registry(&registry.addr, manifest, &pinned);
    let store = Store::new(w);
    let lref = format!("{}/library/busybox@{pinned}", liar.addr);
    let err = fails(&pull(w, &lref, &liar.addr, &[]), "pull a lying manifest");
    eprintln!("lying manifest: {}", err.trim_end());
    assert!(err.contains(&pinned), "pinned digest not named in: {err}");
    assert!(
        err.to_lowercase().contains("mismatch"),
        "no 'mismatch' in: {err}"
    );
    store.assert_nothing_of(&pinned, None, "lying manifest");
    assert!(
        !store.blob(&layer).exists(),
        "layer fetched for a bad manifest"
    );
    assert!(!store.layer(&diff_id).exists());
    let ls = text(&image(w, &["ls"]).stdout);
    assert!(!ls.contains(&liar.addr), "refused image listed: {ls}");
    fails(&image(w, &["inspect", &lref]), "inspect a refused image");
    fx.finish();
}

/// One hostile layer: its name, the entry the error must name, the tar.
struct Hostile {
    case: &'static str,
    entry: String,
    tar: Vec<u8>,
    /// Either outcome is fine as long as nothing escapes (the entry may be
    /// contained rather than refused).
    may_succeed: bool,
}

fn hostile_corpus(canary: &Canary) -> Vec<Hostile> {
    let u = &canary.tag;
    let abs = canary.dir.to_str().unwrap().to_string();
    // Far more `..` than the layer is deep, then the canary's absolute path.
    let deep = format!("{}{}", "../".repeat(12), abs.trim_start_matches('/'));
    let reject = |case, entry: String, tar: Tar| Hostile {
        case,
        entry,
        tar: tar.finish(),
        may_succeed: false,
    };
    vec![
        reject(
            "traversal",
            format!("{deep}/traversal-{u}"),
            Tar::new().file(&format!("{deep}/traversal-{u}"), b"x"),
        ),
        reject(
            "traversal-short",
            format!("../../escape-{u}"),
            Tar::new().file(&format!("../../escape-{u}"), b"x"),
        ),
        reject(
            "absolute",
            format!("{abs}/absolute-{u}"),
            Tar::new().file(&format!("{abs}/absolute-{u}"), b"x"),
        ),
        reject(
            "symlink-absolute-then-write",
            format!("slink-{u}/through-{u}"),
            Tar::new()
                .link(&format!("slink-{u}"), EntryType::Symlink, &abs)
                .file(&format!("slink-{u}/through-{u}"), b"x"),
        ),
        reject(
            "symlink-relative-then-write",
            format!("rlink-{u}/through-{u}"),
            Tar::new()
                .link(&format!("rlink-{u}"), EntryType::Symlink, &deep)
                .file(&format!("rlink-{u}/through-{u}"), b"x"),
        ),
        Hostile {
            // A symlink to the canary file, then a regular file by the
            // symlink's name: the link may be replaced, never written through.
            case: "symlink-then-file-by-its-name",
            entry: format!("slink2-{u}"),
            tar: Tar::new()
                .link(
                    &format!("slink2-{u}"),
                    EntryType::Symlink,
                    &format!("{abs}/secret"),
                )
                .file(&format!("slink2-{u}"), b"overwritten")
                .finish(),
            may_succeed: true,
        },
        reject(
            "hardlink-relative",
            format!("hl-rel-{u}"),
            Tar::new().link(
                &format!("hl-rel-{u}"),
                EntryType::Link,
                &format!("{deep}/secret"),
            ),
        ),
        reject(
            "hardlink-absolute",
            format!("hl-abs-{u}"),
            Tar::new().link(
                &format!("hl-abs-{u}"),
                EntryType::Link,
                &format!("{abs}/secret"),
            ),
        ),
        reject(
            "hardlink-passwd",
            format!("hl-passwd-{u}"),
            Tar::new().link(&format!("hl-passwd-{u}"), EntryType::Link, "/etc/passwd"),
        ),
        reject(
            "hardlink-through-symlink",
            format!("hl-sym-{u}"),
            Tar::new()
                .link(&format!("hs-{u}"), EntryType::Symlink, &abs)
                .link(
                    &format!("hl-sym-{u}"),
                    EntryType::Link,
                    &format!("hs-{u}/secret"),
                ),
        ),
        reject(
            "whiteout-dotdot",
            ".wh...".to_string(),
            Tar::new().file(&format!("f-{u}"), b"x").file(".wh...", b""),
        ),
        reject(
            "whiteout-dotdot-nested",
            format!("d-{u}/.wh..."),
            Tar::new()
                .dir(&format!("d-{u}"))
                .file(&format!("d-{u}/.wh..."), b""),
        ),
        Hostile {
            case: "symlink-replaced-by-directory",
            entry: format!("sd-{u}"),
            tar: Tar::new()
                .link(&format!("sd-{u}"), EntryType::Symlink, &abs)
                .dir(&format!("sd-{u}"))
                .file(&format!("sd-{u}/replaced-{u}"), b"x")
                .finish(),
            may_succeed: true,
        },
    ]
}

#[test]
fn hostile_layers_are_refused_by_entry_and_nothing_escapes() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let w = fx.work.path();
    let store = Store::new(w);
    let u = unique();
    let canary = Canary::new(&u);
    let layouts = w.join("layouts");
    let store_names = |s: &Store| -> Vec<PathBuf> {
        walk(&s.root)
            .into_iter()
            .filter(|p| name_of(p).contains(&u))
            .collect()
    };

    for h in hostile_corpus(&canary) {
        let what = format!("hostile layer {}", h.case);
        let layer = Layer::gzip(&h.tar);
        let diff_id = layer.diff_id.clone();
        let built = write_layout(
            &layouts.join(h.case),
            "1",
            vec![layer],
            serde_json::json!({"Cmd": ["/x"]}),
        );
        let name = format!("hostile-{}-{u}", h.case);
        let out = image(w, &["import", built.dir.to_str().unwrap(), "--name", &name]);
        if h.may_succeed && out.status.success() {
            eprintln!("{what}: imported (contained)");
        }
        if !(h.may_succeed && out.status.success()) {
            let err = fails(&out, &what);
            eprintln!("{what}: {}", err.trim_end());
            assert!(
                err.contains(&h.entry),
                "{what}: entry {:?} not named in: {err}",
                h.entry
            );
            assert!(!store.layer(&diff_id).exists(), "{what}: layer dir left");
            let ls = text(&image(w, &["ls"]).stdout);
            assert!(!ls.contains(&name), "{what}: refused image listed: {ls}");
        } else {
            // Contained: whatever was made stays inside the layer.
            let layer_dir = store.layer(&diff_id);
            for p in walk(&layer_dir) {
                let m = fs::symlink_metadata(&p).unwrap();
                assert!(
                    m.is_dir() || m.is_file() || m.file_type().is_symlink(),
                    "{what}: odd file {}",
                    p.display()
                );
            }
            ok(
                &image(w, &["rm", &format!("{name}:1")]),
                "rm contained image",
            );
        }
        store.assert_no_debris(&what);
        canary.assert_untouched(&what);
        let strays: Vec<PathBuf> = store_names(&store)
            .into_iter()
            .filter(|p| !p.starts_with(store.layer(&diff_id)))
            .collect();
        assert!(
            strays.is_empty(),
            "{what}: written in the store: {strays:?}"
        );
        assert!(!w.join(format!("escape-{u}")).exists());
    }

    // Device nodes: skipped (the image works, the nodes are absent) or the
    // image is refused by entry; never created.
    let dev_tar = Tar::new()
        .device(&format!("mem-{u}"), EntryType::Char, 1, 1)
        .device(&format!("blk-{u}"), EntryType::Block, 8, 0)
        .file(&format!("after-devices-{u}"), b"ok\n")
        .finish();
    let dev_layer = Layer::gzip(&dev_tar);
    let dev = write_layout(
        &layouts.join("devices"),
        "1",
        vec![Layer::busybox(), dev_layer],
        serde_json::json!({"Cmd": ["/bin/sh"]}),
    );
    let name = format!("hostile-devices-{u}");
    let out = image(w, &["import", dev.dir.to_str().unwrap(), "--name", &name]);
    if out.status.success() {
        let script = format!(
            "test -e /mem-{u} && echo mem-created; test -e /blk-{u} && echo blk-created; \
             cat /after-devices-{u}"
        );
        let reference = format!("{name}:1");
        let out = run(
            &fx,
            &["--rm", "--image", &reference, "--", "sh", "-c", &script],
        );
        assert_eq!(ok(&out, "device image"), "ok\n");
        ok(&image(w, &["rm", &reference]), "rm device image");
    } else {
        let err = text(&out.stderr);
        assert!(
            err.contains(&format!("mem-{u}")) || err.contains(&format!("blk-{u}")),
            "device image refused without naming the entry: {err}"
        );
        assert!(!store.layer(&dev.diff_ids[1]).exists());
    }
    let devices: Vec<PathBuf> = walk(&store.root)
        .into_iter()
        .filter(|p| {
            let m = fs::symlink_metadata(p).unwrap();
            (m.file_type().is_block_device() || m.file_type().is_char_device()) && m.rdev() != 0
        })
        .collect();
    assert!(devices.is_empty(), "device nodes in the store: {devices:?}");
    store.assert_no_debris("device layer");
    canary.assert_untouched("device layer");

    // Size: a 1 GiB file of zeros (a ~1 MB gzip bomb), a header declaring
    // 10 GB, and a GNU sparse entry of 10 GB, pulled with a 64 MiB cap.
    let registry = Registry::start();
    let addr = registry.addr.clone();
    let cap = ["--max-layer-size", "64M"];
    let bomb = bomb_layer(&layouts, &format!("bomb-{u}"), 1 << 30);
    let huge = {
        let h = Tar::header(
            &format!("huge-{u}"),
            EntryType::Regular,
            10_000_000_000,
            0o644,
        );
        let mut t = Tar::new().push(h, &[]).0;
        t.extend_from_slice(&[0; 4096]);
        Layer::gzip(&t)
    };
    let sparse = {
        let mut h = Tar::header(&format!("sparse-{u}"), EntryType::GNUSparse, 512, 0o644);
        let gnu = h.as_gnu_mut().unwrap();
        gnu.sparse[0].set_offset(10_000_000_000 - 512);
        gnu.sparse[0].set_length(512);
        gnu.set_real_size(10_000_000_000);
        Layer::gzip(&Tar::new().push(h, &[7; 512]).finish())
    };
    for (case, entry, layer) in [
        ("bomb", format!("bomb-{u}"), bomb),
        ("huge", format!("huge-{u}"), huge),
        ("sparse", format!("sparse-{u}"), sparse),
    ] {
        let what = format!("{case} with a 64M cap");
        let built = write_layout(
            &layouts.join(case),
            "1",
            vec![layer],
            serde_json::json!({"Cmd": ["/x"]}),
        );
        registry.push(&built.dir, "1", &format!("hostile/{case}:1"));
        let reference = format!("{addr}/hostile/{case}:1");
        let err = fails(&pull(w, &reference, &addr, &cap), &what);
        eprintln!("{what}: {}", err.trim_end());
        assert!(
            err.contains(&entry) || err.contains(&built.layers[0]),
            "{what}: neither the entry nor the layer named in: {err}"
        );
        assert!(
            !store.layer(&built.diff_ids[0]).exists(),
            "{what}: layer left"
        );
        store.assert_no_debris(&what);
        canary.assert_untouched(&what);
    }
    // The cap does not stop an image within it.
    let bb = support::busybox_oci();
    registry.push(&bb, "1", "library/busybox:1");
    let reference = format!("{addr}/library/busybox:1");
    let out = pull(w, &reference, &addr, &cap);
    assert_eq!(
        pulled_digest(&out, "busybox under the cap"),
        layout_digest(&bb, "1")
    );
    fx.finish();
}

/// A gzip layer with one regular file NAME of SIZE zero bytes, made by
/// pigz (or gzip) from a stream, hashed by sha256sum.
fn bomb_layer(dir: &Path, name: &str, size: u64) -> Layer {
    fs::create_dir_all(dir).unwrap();
    let head = dir.join("bomb.head");
    let h = Tar::header(name, EntryType::Regular, size, 0o644);
    fs::write(&head, Tar::new().push(h, &[]).0).unwrap();
    let (sum, gz) = (dir.join("bomb.sum"), dir.join("bomb.gz"));
    let zip = if Path::new("/usr/bin/pigz").exists() {
        "pigz"
    } else {
        "gzip"
    };
    let script = format!(
        "set -euo pipefail; gen() {{ cat \"$1\"; head -c {size} /dev/zero; head -c 1024 /dev/zero; }}; \
         gen \"$1\" | sha256sum | cut -d' ' -f1 >\"$2\" & gen \"$1\" | {zip} -9 -n -c >\"$3\"; wait $!"
    );
    let status = Command::new("bash")
        .arg("-c")
        .arg(script)
        .arg("bomb")
        .args([&head, &sum, &gz])
        .status()
        .unwrap();
    assert!(status.success(), "building the bomb layer failed");
    let layer = Layer {
        media_type: GZIP_LAYER,
        blob: fs::read(&gz).unwrap(),
        diff_id: format!("sha256:{}", fs::read_to_string(&sum).unwrap().trim()),
    };
    assert!(
        layer.blob.len() < 8 << 20,
        "bomb is {} bytes",
        layer.blob.len()
    );
    layer
}

#[test]
fn a_killed_pull_resumes_and_concurrent_pulls_fetch_each_blob_once() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let w = fx.work.path();
    let store = Store::new(w);
    let py = support::python_image();
    let digest = layout_digest(&py, "3.11");
    let (layers, diff_ids, config) = layout_parts(&py, "3.11");
    let registry = Registry::start();
    registry.push(&py, "3.11", "library/python:3.11");
    let throttle = Throttle::start(&registry.addr, 10 << 20);
    let addr = throttle.addr().to_string();
    let reference = format!("{addr}/library/python:3.11");

    // Kill the pull once a partial blob of a few MB is in the ingest dir.
    let mut child = spawn(&mut image_cmd(
        w,
        &["pull", &reference, "--insecure-registry", &addr],
    ));
    let deadline = Instant::now() + Duration::from_secs(120);
    let partial = loop {
        if let Some(p) = store
            .partials()
            .into_iter()
            .find(|p| fs::metadata(p).is_ok_and(|m| m.len() >= 2 << 20))
        {
            break p;
        }
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            let _ = child.stderr.take().unwrap().read_to_string(&mut err);
            panic!("pull ended ({status}) before a 2 MiB .partial appeared in store/ingest: {err}");
        }
        assert!(Instant::now() < deadline, "no 2 MiB .partial within 120 s");
        thread::sleep(Duration::from_millis(10));
    };
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "{status}");
    eprintln!("killed the pull at {}", partial.display());

    throttle.unthrottle();
    let out = pull(w, &reference, &addr, &[]);
    assert_eq!(pulled_digest(&out, "pull after the kill"), digest);
    store.assert_no_debris("pull after the kill");
    for (layer, diff_id) in layers.iter().zip(&diff_ids) {
        assert!(store.blob(layer).is_file(), "blob {layer} missing");
        assert!(store.layer(diff_id).is_dir(), "layer {diff_id} missing");
    }
    let out = run(
        &fx,
        &[
            "--rm",
            "--image",
            &reference,
            "--",
            "python3",
            "-c",
            "print(6*7)",
        ],
    );
    assert_eq!(ok(&out, "python after the resumed pull"), "42\n");

    // Two pulls at once into a fresh work dir, counted by the auth proxy.
    let proxy = AuthProxy::start(&registry.addr, "bob", "hunter2", false);
    let config_json = w.join("docker/config.json");
    docker_config(&config_json, &proxy.addr, "bob", "hunter2");
    let w2 = w.join("concurrent");
    fs::create_dir(&w2).unwrap();
    let pref = format!("{}/library/python:3.11", proxy.addr);
    let args = [
        "pull",
        &pref,
        "--insecure-registry",
        &proxy.addr,
        "--registry-config",
        config_json.to_str().unwrap(),
    ];
    let children: Vec<Child> = (0..2).map(|_| spawn(&mut image_cmd(&w2, &args))).collect();
    for (i, c) in children.into_iter().enumerate() {
        let out = finish_within(c, &format!("concurrent pull {i}"), LIMIT);
        assert_eq!(pulled_digest(&out, &format!("concurrent pull {i}")), digest);
    }
    let store2 = Store::new(&w2);
    store2.assert_no_debris("concurrent pulls");
    for blob in layers.iter().chain([&config]) {
        let n = proxy.count(&format!("GET /v2/library/python/blobs/{blob}"));
        assert_eq!(n, 1, "blob {blob} fetched {n} times: {:#?}", proxy.log());
        assert!(store2.blob(blob).is_file(), "blob {blob} missing");
    }
    for diff_id in &diff_ids {
        assert!(store2.layer(diff_id).is_dir(), "layer {diff_id} missing");
    }
    fx.finish();
}

#[test]
fn rm_and_prune_free_the_store_but_not_under_a_running_container() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let w = fx.work.path();
    let store = Store::new(w);
    let u = unique();
    let (bb, py) = (support::busybox_oci(), support::python_image());
    let (bb_ref, py_ref) = (format!("bb-{u}:1"), format!("py-{u}:3.11"));
    ok(
        &image(
            w,
            &["import", bb.to_str().unwrap(), "--name", &format!("bb-{u}")],
        ),
        "import busybox",
    );
    ok(
        &image(
            w,
            &["import", py.to_str().unwrap(), "--name", &format!("py-{u}")],
        ),
        "import python",
    );
    let (_, bb_diff_ids, _) = layout_parts(&bb, "1");
    let (_, py_diff_ids, _) = layout_parts(&py, "3.11");
    for d in bb_diff_ids.iter().chain(&py_diff_ids) {
        assert!(store.layer(d).is_dir(), "layer {d} not unpacked by import");
    }

    // rm of one image keeps what the other uses.
    ok(&image(w, &["rm", &bb_ref]), "rm busybox");
    ok(&image(w, &["prune"]), "prune");
    let ls = ok(&image(w, &["ls"]), "ls");
    assert!(
        !ls.contains(&format!("bb-{u}")),
        "removed image listed: {ls}"
    );
    assert!(ls.contains(&format!("py-{u}")), "python gone from ls: {ls}");
    for d in &bb_diff_ids {
        assert!(
            !store.layer(d).exists(),
            "busybox layer {d} survived rm+prune"
        );
    }
    let out = run(
        &fx,
        &[
            "--rm",
            "--image",
            &py_ref,
            "--",
            "python3",
            "-c",
            "print(6*7)",
        ],
    );
    assert_eq!(ok(&out, "python after rm of busybox"), "42\n");

    // rm of the last reference, then prune: an empty store.
    ok(&image(w, &["rm", &py_ref]), "rm python");
    ok(&image(w, &["prune"]), "prune");
    assert_eq!(store.blob_files(), Vec::<PathBuf>::new(), "blobs left");
    assert_eq!(store.layer_dirs(), Vec::<PathBuf>::new(), "layers left");
    fails(&image(w, &["inspect", &py_ref]), "inspect a removed image");

    // A running container holds its layers through rm and prune.
    ok(
        &image(
            w,
            &["import", bb.to_str().unwrap(), "--name", &format!("bb-{u}")],
        ),
        "import busybox again",
    );
    let ctl = w.join("ctl");
    fs::create_dir(&ctl).unwrap();
    let mount = format!("{}:/ctl", ctl.display());
    let child = spawn(&mut run_cmd(
        &fx,
        &[
            "--rm",
            "--image",
            &bb_ref,
            "--mount",
            &mount,
            "--",
            "sh",
            "-c",
            "touch /ctl/up; while [ ! -e /ctl/go ]; do sleep 0.05; done; \
             /bin/busybox true && echo still-works",
        ],
    ));
    // Lets the container end even when an assertion below fails.
    struct Release(PathBuf);
    impl Drop for Release {
        fn drop(&mut self) {
            let _ = fs::write(&self.0, "");
        }
    }
    let release = Release(ctl.join("go"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ctl.join("up").exists() {
        assert!(Instant::now() < deadline, "container never started");
        thread::sleep(Duration::from_millis(20));
    }
    ok(&image(w, &["rm", &bb_ref]), "rm while running");
    ok(&image(w, &["prune"]), "prune while running");
    for d in &bb_diff_ids {
        assert!(
            store.layer(d).is_dir(),
            "layer {d} pruned under a running container"
        );
    }
    drop(release);
    let out = finish_within(child, "the running container", LIMIT);
    assert_eq!(ok(&out, "container across prune"), "still-works\n");
    ok(&image(w, &["prune"]), "prune after the container");
    assert_eq!(store.blob_files(), Vec::<PathBuf>::new(), "blobs left");
    assert_eq!(store.layer_dirs(), Vec::<PathBuf>::new(), "layers left");
    store.assert_no_debris("prune");
    fx.finish();
}

#[test]
fn imports_oci_layouts_and_docker_save_tarballs() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let w = fx.work.path();
    let u = unique();
    let bb = support::busybox_oci();
    let oci_name = format!("bbi-{u}");
    let out = image(w, &["import", bb.to_str().unwrap(), "--name", &oci_name]);
    ok(&out, "import OCI layout");
    let oci_ref = format!("{oci_name}:1");
    let out = run(&fx, &["--rm", "--image", &oci_ref, "--", "echo", "hi"]);
    assert_eq!(ok(&out, "run imported OCI layout"), "hi\n");
    assert_eq!(
        inspect(w, &oci_ref)["digest"],
        layout_digest(&bb, "1").as_str()
    );

    let tarball = w.join("busybox.tar");
    let save_ref = format!("bbs-{u}:1");
    let out = Command::new("skopeo")
        .args(["--insecure-policy", "copy", "--quiet"])
        .arg(format!("oci:{}:1", bb.display()))
        .arg(format!("docker-archive:{}:{save_ref}", tarball.display()))
        .output()
        .expect("run skopeo");
    ok(&out, "skopeo copy to docker-archive");
    let out = image(w, &["import", tarball.to_str().unwrap()]);
    ok(&out, "import docker save tarball");
    let info = inspect(w, &save_ref);
    assert_eq!(info["layers"].as_array().map(Vec::len), Some(1), "{info}");
    assert_eq!(strings(&info["config"]["config"]["Cmd"]), ["/bin/sh"]);
    let out = run(&fx, &["--rm", "--image", &save_ref, "--", "echo", "hi"]);
    assert_eq!(ok(&out, "run imported docker save tarball"), "hi\n");

    let ls = ok(&image(w, &["ls"]), "ls");
    for want in [&oci_name, &format!("bbs-{u}")] {
        assert!(ls.contains(want.as_str()), "ls lacks {want}: {ls}");
    }
    Store::new(w).assert_no_debris("imports");
    fx.finish();
}

#[test]
fn the_image_config_is_the_default_command_user_env_and_cwd() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let w = fx.work.path();
    let u = unique();
    let built = write_layout(
        &w.join("layouts/cfg"),
        "1",
        vec![Layer::busybox()],
        serde_json::json!({
            "Entrypoint": ["/bin/sh", "-c", "echo ep $GREETING; pwd; id -u; echo args \"$@\"", "ep"],
            "Cmd": ["a", "b"],
            "Env": ["PATH=/bin:/usr/bin", "GREETING=hello"],
            "WorkingDir": "/tmp",
            "User": "1000",
        }),
    );
    let name = format!("cfg-{u}");
    ok(
        &image(w, &["import", built.dir.to_str().unwrap(), "--name", &name]),
        "import",
    );
    let reference = format!("{name}:1");
    assert_eq!(inspect(w, &reference)["digest"], built.manifest.as_str());
    let out = run(&fx, &["--rm", "--image", &reference]);
    assert_eq!(
        ok(&out, "image defaults"),
        "ep hello\n/tmp\n1000\nargs a b\n"
    );
    let out = run(
        &fx,
        &[
            "--rm",
            "--image",
            &reference,
            "-e",
            "GREETING=bye",
            "--cwd",
            "/",
            "--user",
            "0",
        ],
    );
    assert_eq!(ok(&out, "overridden"), "ep bye\n/\n0\nargs a b\n");
    fx.finish();
}
