//! The fetcher end to end: `butte run --uri ...` and `butte fetch` against
//! an HTTP server on 127.0.0.1 started here, with JAR and Python tasks run
//! unmodified, the cache shared by tasks and processes, and every failure a
//! user should be able to read.

use crate::support::{enabled, text, Fixture, BUTTE};
use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// How the server answers one path.
#[derive(Clone)]
enum Reply {
    Ok(Arc<Vec<u8>>),
    /// Headers and the first bytes, then silence until the server stops.
    Stall(Arc<Vec<u8>>, usize),
    /// The body in 64 KiB pieces, 10 ms apart (so that downloads overlap).
    Slow(Arc<Vec<u8>>),
}

/// A small HTTP/1.1 server that counts requests per path; unknown paths
/// get a 404.
struct Server {
    addr: SocketAddr,
    routes: Arc<Mutex<HashMap<String, Reply>>>,
    hits: Arc<Mutex<HashMap<String, usize>>>,
    stop: Arc<AtomicBool>,
}

impl Server {
    fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let routes: Arc<Mutex<HashMap<String, Reply>>> = Arc::default();
        let hits: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (r, h, s) = (routes.clone(), hits.clone(), stop.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(conn) = conn {
                    let (r, h, s) = (r.clone(), h.clone(), s.clone());
                    thread::spawn(move || serve(conn, &r, &h, &s));
                }
            }
        });
        Server {
            addr,
            routes,
            hits,
            stop,
        }
    }

    fn route(&self, path: &str, reply: Reply) -> String {
        self.routes.lock().unwrap().insert(path.into(), reply);
        self.url(path)
    }

    fn ok(&self, path: &str, body: Vec<u8>) -> String {
        self.route(path, Reply::Ok(Arc::new(body)))
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve(
    conn: TcpStream,
    routes: &Mutex<HashMap<String, Reply>>,
    hits: &Mutex<HashMap<String, usize>>,
    stop: &AtomicBool,
) {
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
    *hits.lock().unwrap().entry(path.clone()).or_default() += 1;
    let reply = routes.lock().unwrap().get(&path).cloned();
    let mut out = conn;
    let head = |len: usize| {
        format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n")
    };
    let _ = match reply {
        None => out
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
        Some(Reply::Ok(body)) => out
            .write_all(head(body.len()).as_bytes())
            .and_then(|()| out.write_all(&body)),
        Some(Reply::Slow(body)) => {
            let mut r = out.write_all(head(body.len()).as_bytes());
            for piece in body.chunks(64 << 10) {
                r = r.and_then(|()| out.write_all(piece));
                thread::sleep(Duration::from_millis(10));
            }
            r
        }
        Some(Reply::Stall(body, n)) => {
            let r = out
                .write_all(head(body.len()).as_bytes())
                .and_then(|()| out.write_all(&body[..n]))
                .and_then(|()| out.flush());
            while !stop.load(Ordering::SeqCst) {
                thread::sleep(Duration::from_millis(20));
            }
            r
        }
    };
}

/// A tar built entry by entry: (name, data, symlink target), with raw names
/// a careful builder would refuse.
fn tar(entries: &[(&str, &[u8], Option<&str>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data, link) in entries {
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        match link {
            Some(t) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.as_old_mut().linkname[..t.len()].copy_from_slice(t.as_bytes());
            }
            None => h.set_entry_type(tar::EntryType::Regular),
        }
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap()
}

fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// `butte fetch` with the fixture's work dir.
fn butte_fetch(fx: &Fixture, sandbox: &Path, args: &[&str]) -> Output {
    Command::new(BUTTE)
        .arg("fetch")
        .arg("--work-dir")
        .arg(fx.work.path())
        .arg("--sandbox")
        .arg(sandbox)
        .args(args)
        .output()
        .expect("run butte fetch")
}

/// Bytes held by the fetcher cache's entries.
fn cache_bytes(fx: &Fixture) -> u64 {
    fn walk(p: &Path) -> u64 {
        let m = fs::symlink_metadata(p).unwrap();
        if m.is_dir() {
            fs::read_dir(p)
                .unwrap()
                .map(|e| walk(&e.unwrap().path()))
                .sum()
        } else if m.is_file() {
            m.len()
        } else {
            0
        }
    }
    let cache = fx.work.path().join("fetch-cache");
    fs::read_dir(&cache)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().is_dir() && e.file_name() != "tmp")
                .map(|e| walk(&e.path().join("data")))
                .sum()
        })
        .unwrap_or(0)
}

/// What the fixture's work dir holds outside sandboxes and the cache's entries.
fn leftovers(fx: &Fixture) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fx.sandboxes();
    if let Ok(rd) = fs::read_dir(fx.work.path().join("fetch-cache/tmp")) {
        out.extend(rd.flatten().map(|e| e.path()));
    }
    out
}

#[test]
fn a_jar_is_fetched_and_run_with_java_in_a_512m_sandbox() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let src = fx.work.path().join("java-src");
    fs::create_dir(&src).unwrap();
    fs::write(
        src.join("Hello.java"),
        "public class Hello { public static void main(String[] a) { \
         System.out.println(\"hello from a fetched jar, max heap \" + \
         (Runtime.getRuntime().maxMemory() >> 20) + \" MiB\"); } }\n",
    )
    .unwrap();
    let run = |cmd: &mut Command| assert!(cmd.current_dir(&src).status().unwrap().success());
    run(Command::new("javac").arg("Hello.java"));
    run(Command::new("jar").args(["cfe", "hello.jar", "Hello", "Hello.class"]));
    let srv = Server::start();
    let url = srv.ok("/apps/hello.jar", fs::read(src.join("hello.jar")).unwrap());

    let out = fx.butte_run(&[
        "--mem",
        "512M",
        "--uri",
        &url,
        "--",
        "java",
        "-jar",
        "hello.jar",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let sandbox = &fx.sandboxes()[0];
    let stdout = fs::read_to_string(sandbox.join("stdout")).unwrap();
    assert!(stdout.starts_with("hello from a fetched jar"), "{stdout}");
    // The JVM saw the cgroup's limit: its heap is a fraction of 512 MiB.
    let heap = stdout
        .trim_end()
        .strip_suffix(" MiB")
        .and_then(|s| s.rsplit(' ').next());
    let heap: u64 = heap.and_then(|h| h.parse().ok()).expect(&stdout);
    assert!(heap < 512, "{stdout}");
    assert!(sandbox.join("hello.jar").is_file());
    assert_eq!(srv.hits("/apps/hello.jar"), 1);
    fx.finish();
}

#[test]
fn a_python_script_and_a_package_tarball_are_fetched_extracted_and_run() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let srv = Server::start();
    let script = srv.ok(
        "/job.py",
        b"import greet.util\nprint(greet.util.hello('sandbox'))\n".to_vec(),
    );
    let package = srv.ok(
        "/dist/greet-1.0.tar.gz",
        gz(&tar(&[
            ("greet/__init__.py", b"", None),
            (
                "greet/util.py",
                b"def hello(who):\n    return 'hello, ' + who\n",
                None,
            ),
        ])),
    );
    let out = fx.butte_run(&[
        "--uri", &script, "--uri", &package, "--", "python3", "job.py",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "hello, sandbox\n");
    let sandbox = &fx.sandboxes()[0];
    assert_eq!(
        fs::read_to_string(sandbox.join("stdout")).unwrap(),
        "hello, sandbox\n"
    );
    // Not cached: the archive is kept beside what it unpacked, as in Mesos.
    assert!(sandbox.join("greet-1.0.tar.gz").is_file());
    assert!(sandbox.join("greet/util.py").is_file());
    fx.finish();
}

#[test]
fn executable_sets_the_mode_and_output_file_renames() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let srv = Server::start();
    let url = srv.ok("/tool.sh", b"#!/bin/sh\necho tool ran\n".to_vec());
    let plain = srv.ok("/notes.txt", b"notes\n".to_vec());
    let out = fx.butte_run(&[
        "--uri",
        &format!("{url},executable,output_file=bin/tool"),
        "--uri",
        &format!("{plain},output_file=docs/readme"),
        "--",
        "sh",
        "-c",
        "./bin/tool && cat docs/readme && ls",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "tool ran\nnotes\nbin\ndocs\nstderr\nstdout\n"
    );
    let sandbox = &fx.sandboxes()[0];
    assert_eq!(
        fs::metadata(sandbox.join("bin/tool")).unwrap().mode() & 0o777,
        0o755
    );
    assert_eq!(
        fs::metadata(sandbox.join("docs/readme")).unwrap().mode() & 0o111,
        0
    );
    fx.finish();
}

#[test]
fn cached_uris_are_downloaded_once_across_tasks_and_processes() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let srv = Server::start();
    let package = srv.ok(
        "/app.tgz",
        gz(&tar(&[("app/run.py", b"print('cached app')\n", None)])),
    );
    let uri = format!("{package},cache");
    for _ in 0..2 {
        let out = fx.butte_run(&["--uri", &uri, "--", "python3", "app/run.py"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "cached app\n");
    }
    assert_eq!(srv.hits("/app.tgz"), 1);
    let sandboxes = fx.sandboxes();
    let inode = |s: &PathBuf| fs::metadata(s.join("app/run.py")).unwrap().ino();
    assert_eq!(
        inode(&sandboxes[0]),
        inode(&sandboxes[1]),
        "hard links to one entry"
    );
    assert!(
        !sandboxes[0].join("app.tgz").exists(),
        "a cached archive is not copied"
    );

    // Several `butte fetch` processes at once, while the download is slow:
    // one downloads, the others wait for it and link.
    let big: Vec<u8> = (0..(2u32 << 20)).map(|i| (i * 7 % 251) as u8).collect();
    let slow = srv.route("/slow.bin", Reply::Slow(Arc::new(big.clone())));
    let spec = format!("{slow},cache");
    let children: Vec<_> = (0..3)
        .map(|i| {
            let sb = fx.work.path().join(format!("fetch-{i}"));
            let child = Command::new(BUTTE)
                .args(["fetch", "--work-dir"])
                .arg(fx.work.path())
                .arg("--sandbox")
                .arg(&sb)
                .arg(&spec)
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            (sb, child)
        })
        .collect();
    for (sb, child) in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(fs::read(sb.join("slow.bin")).unwrap(), big);
    }
    assert_eq!(srv.hits("/slow.bin"), 1);
    fx.finish();
}

#[test]
fn eviction_keeps_the_cache_under_its_limit() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let srv = Server::start();
    let sb = fx.work.path().join("sb");
    for n in 0..4u8 {
        let url = srv.ok(&format!("/a{n}.bin"), vec![n; 1 << 20]);
        let out = butte_fetch(
            &fx,
            &sb,
            &["--fetcher-cache-size", "2.5M", &format!("{url},cache")],
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(
            cache_bytes(&fx) <= 5 << 19,
            "cache holds {} bytes",
            cache_bytes(&fx)
        );
    }
    assert_eq!(cache_bytes(&fx), 2 << 20, "two of the four fit");
    // The least recently used went first: a0 is downloaded again, a3 is not.
    let again = |n: u8| {
        let out = butte_fetch(
            &fx,
            &sb,
            &[
                "--fetcher-cache-size",
                "2.5M",
                &format!("{},cache", srv.url(&format!("/a{n}.bin"))),
            ],
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
    };
    again(3);
    again(0);
    assert_eq!(srv.hits("/a3.bin"), 1);
    assert_eq!(srv.hits("/a0.bin"), 2);
    assert!(cache_bytes(&fx) <= 5 << 19);
    fx.finish();
}

#[test]
fn failures_name_the_uri_and_the_cause_and_leave_nothing_behind() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let srv = Server::start();
    // Where an escaping entry would land, relative to the sandbox
    // (<work>/containers/<id>/): the work dir and its parent.
    let outside = [
        fx.work.path().join("evil"),
        fx.work.path().join("containers/evil"),
    ];
    let refused = {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        format!("http://127.0.0.1:{port}/app.jar")
    };
    let stall_body = Arc::new(vec![0u8; 100_000]);
    let cases: Vec<(String, Vec<&str>, String)> = vec![
        (
            srv.ok("/dotdot.tar", tar(&[("../evil", b"x", None)])),
            vec![],
            "path leaves the destination".into(),
        ),
        (
            srv.ok("/abs.tar", tar(&[("/tmp/butte-fetch-evil", b"x", None)])),
            vec![],
            "absolute path".into(),
        ),
        (
            srv.ok(
                "/link.tar",
                tar(&[("up", b"", Some("../..")), ("up/evil", b"x", None)]),
            ),
            vec![],
            "through a symlink".into(),
        ),
        (
            srv.ok(
                "/bomb.tar.gz",
                gz(&tar(&[("zeros", &vec![0u8; 8 << 20], None)])),
            ),
            vec!["--fetcher-max-size", "1M"],
            "size cap of 1048576 bytes".into(),
        ),
        (srv.url("/missing.jar"), vec![], "HTTP 404 Not Found".into()),
        (refused, vec![], "Connection refused".into()),
        (
            srv.route("/stall.jar", Reply::Stall(stall_body, 1000)),
            vec!["--fetcher-stall-timeout", "1s"],
            "server stalled: no data for 1s".into(),
        ),
        (
            srv.ok("/big.jar", vec![0u8; 3 << 20]),
            vec!["--fetcher-max-size", "2M"],
            "artifact of 3.0 MiB is over the size cap of 2.0 MiB".into(),
        ),
    ];
    for (url, flags, cause) in &cases {
        for cache in ["", ",cache"] {
            let mut args = flags.clone();
            let uri = format!("{url}{cache}");
            args.extend(["--uri", &uri, "--", "sh", "-c", "echo task ran"]);
            let out = fx.butte_run(&args);
            let stderr = text(&out.stderr);
            let last = stderr.lines().last().unwrap_or("");
            assert_eq!(out.status.code(), Some(125), "{uri}: {stderr}");
            assert!(
                last.starts_with(&format!("butte: fetch {url}: ")) && last.contains(cause.as_str()),
                "{uri}: {stderr}"
            );
            assert!(!text(&out.stdout).contains("task ran"));
            assert!(leftovers(&fx).is_empty(), "{uri}: {:?}", leftovers(&fx));
        }
    }
    for p in outside
        .iter()
        .chain([&PathBuf::from("/tmp/butte-fetch-evil")])
    {
        assert!(!p.exists(), "{} was written", p.display());
    }
    fx.finish();
}
