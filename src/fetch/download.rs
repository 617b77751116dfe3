//! Opening a source as a stream of bytes: an HTTP(S) GET with the shared
//! client (bounded redirects, connect and stall timeouts), or a local file.
//! The stream counts what it reads against the size cap, can copy it to a
//! file on the way (`tee`), and logs progress.
//!
//! A stream is usually read through a decompressor and an extractor, which
//! see only `io::Error`s. So that the error reported is the real cause (the
//! server stalled, the cap was reached), the stream records it in a
//! [`Failure`] slot that the caller checks first.

use super::uri::{Plan, Source};
use super::user::{open_as, FetchUser};
use super::FetchError;
use crate::support::format_size;
use crate::support::http::{describe, is_transient};
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Where a stream leaves the real cause of its failure, and how much it
/// read, for whoever holds a clone after the stream went into a decoder.
#[derive(Debug, Clone, Default)]
pub(crate) struct Failure(Arc<Shared>);

#[derive(Debug, Default)]
struct Shared {
    error: Mutex<Option<FetchError>>,
    bytes: AtomicU64,
}

impl Failure {
    fn set(&self, err: FetchError) -> io::Error {
        let text = err.to_string();
        let mut slot = self.0.error.lock().unwrap_or_else(|e| e.into_inner());
        slot.get_or_insert(err);
        io::Error::other(text)
    }

    /// The recorded failure, if any.
    pub(crate) fn take(&self) -> Option<FetchError> {
        self.0
            .error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// Bytes the stream has read.
    pub(crate) fn bytes(&self) -> u64 {
        self.0.bytes.load(Ordering::Relaxed)
    }
}

/// What a download may do.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Most bytes one artifact may have.
    pub cap: u64,
    /// For messages: how long a silent server is given.
    pub stall: Duration,
}

/// An opened source.
pub(crate) struct Body {
    inner: Box<dyn Read + Send>,
    uri: String,
    /// The local file being read, for messages (`None` for HTTP).
    local: Option<PathBuf>,
    /// The length announced up front (Content-Length or the file's size).
    pub length: Option<u64>,
    limits: Limits,
    read: u64,
    tee: Option<(File, PathBuf)>,
    failure: Failure,
    started: Instant,
    next_log: Instant,
}

/// Opens the plan's source; a local file only if `user` could read it
/// (when the user has ids). HTTP errors carry whether a retry may help.
pub(crate) fn open(
    client: &ureq::Agent,
    plan: &Plan,
    limits: Limits,
    user: &FetchUser,
    failure: Failure,
) -> Result<Body, FetchError> {
    let uri = plan.uri.clone();
    let (inner, length, local): (Box<dyn Read + Send>, _, _) = match &plan.source {
        Source::Http(url) => {
            let resp = client.get(url).call().map_err(|e| FetchError::Http {
                uri: uri.clone(),
                cause: describe(&e),
                transient: is_transient(&e),
            })?;
            let length = resp
                .header("Content-Length")
                .and_then(|v| v.trim().parse::<u64>().ok());
            (resp.into_reader(), length, None)
        }
        Source::Local(path) => {
            let file = match &user.ids {
                None => File::open(path),
                Some(ids) => open_as(path, ids).and_then(|f| {
                    f.ok_or_else(|| io::Error::from(io::ErrorKind::PermissionDenied))
                }),
            };
            let file = match file {
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied && user.ids.is_some() => {
                    return Err(FetchError::NotReadable {
                        uri,
                        path: path.clone(),
                        user: user.display().to_string(),
                    })
                }
                other => other.map_err(FetchError::io(&uri, "open", path))?,
            };
            let meta = file
                .metadata()
                .map_err(FetchError::io(&uri, "stat", path))?;
            if !meta.is_file() {
                let e = io::Error::new(io::ErrorKind::InvalidInput, "not a regular file");
                return Err(FetchError::io(&uri, "open", path)(e));
            }
            (Box::new(file), Some(meta.len()), Some(path.clone()))
        }
    };
    if let Some(len) = length.filter(|l| *l > limits.cap) {
        return Err(FetchError::TooLarge {
            uri,
            size: format!("of {} ", format_size(len)),
            cap: format_size(limits.cap),
        });
    }
    tracing::info!(uri = %uri, length = ?length, "downloading");
    let now = Instant::now();
    Ok(Body {
        inner,
        uri,
        local,
        length,
        limits,
        read: 0,
        tee: None,
        failure,
        started: now,
        next_log: now + PROGRESS_EVERY,
    })
}

impl Body {
    /// Also writes everything read to `file` (at `path`, for messages).
    pub(crate) fn tee(&mut self, file: File, path: &Path) {
        self.tee = Some((file, path.to_path_buf()));
    }

    pub(crate) fn failure(&self) -> Failure {
        self.failure.clone()
    }

    /// The typed error for a failed read of the source.
    fn read_error(&self, e: io::Error) -> FetchError {
        if let Some(path) = &self.local {
            return FetchError::io(&self.uri, "read", path)(e);
        }
        let cause = match e.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => format!(
                "server stalled: no data for {:?} after {}",
                self.limits.stall,
                format_size(self.read)
            ),
            io::ErrorKind::UnexpectedEof => format!(
                "connection closed after {} of {}",
                format_size(self.read),
                self.length.map_or("an unknown length".into(), format_size)
            ),
            _ => format!("read body after {}", format_size(self.read)),
        };
        FetchError::Body {
            uri: self.uri.clone(),
            cause,
            source: e,
        }
    }

    fn progress(&mut self) {
        let now = Instant::now();
        if now < self.next_log {
            return;
        }
        self.next_log = now + PROGRESS_EVERY;
        let secs = self.started.elapsed().as_secs_f64();
        tracing::info!(
            uri = %self.uri,
            read = %format_size(self.read),
            of = %self.length.map_or("?".into(), format_size),
            rate = %format!("{}/s", format_size((self.read as f64 / secs) as u64)),
            "downloading"
        );
    }
}

impl Read for Body {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Err(e),
            Err(e) => {
                let err = self.read_error(e);
                return Err(self.failure.set(err));
            }
        };
        self.read += n as u64;
        self.failure.0.bytes.store(self.read, Ordering::Relaxed);
        if self.read > self.limits.cap {
            return Err(self.failure.set(FetchError::TooLarge {
                uri: self.uri.clone(),
                size: String::new(),
                cap: format_size(self.limits.cap),
            }));
        }
        if let Some((file, path)) = &mut self.tee {
            if let Err(e) = file.write_all(&buf[..n]) {
                let err = FetchError::io(&self.uri, "write", path.clone())(e);
                return Err(self.failure.set(err));
            }
        }
        self.progress();
        Ok(n)
    }
}

/// Copies the whole body to a new file at `dest`; returns the bytes.
pub(crate) fn save(mut body: Body, dest: &Path) -> Result<u64, FetchError> {
    let uri = body.uri.clone();
    let mut out = File::create(dest).map_err(FetchError::io(&uri, "create", dest))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(body.failure.take().unwrap_or_else(|| body.read_error(e))),
        };
        out.write_all(&buf[..n])
            .map_err(FetchError::io(&uri, "write", dest))?;
    }
    Ok(body.read)
}

#[cfg(test)]
mod tests {
    use super::super::testserver::{Reply, Server};
    use super::super::UriSpec;
    use super::*;
    use crate::support::http::{client, HttpConfig};

    fn limits(cap: u64) -> Limits {
        Limits {
            cap,
            stall: Duration::from_millis(300),
        }
    }

    fn agent() -> ureq::Agent {
        client(&HttpConfig {
            connect_timeout: Duration::from_secs(2),
            read_timeout: Duration::from_millis(300),
            max_redirects: 3,
        })
    }

    fn plan(uri: &str) -> Plan {
        Plan::new(&UriSpec::new(uri)).unwrap()
    }

    #[test]
    fn saves_a_body_and_counts_it() {
        let srv = Server::start();
        srv.route("/a.bin", Reply::ok(vec![7u8; 100_000]));
        let dir = tempfile::tempdir().unwrap();
        let body = open(
            &agent(),
            &plan(&srv.url("/a.bin")),
            limits(1 << 20),
            &FetchUser::default(),
            Failure::default(),
        )
        .unwrap();
        assert_eq!(body.length, Some(100_000));
        let n = save(body, &dir.path().join("a")).unwrap();
        assert_eq!(n, 100_000);
        assert_eq!(
            std::fs::read(dir.path().join("a")).unwrap(),
            vec![7u8; 100_000]
        );
    }

    #[test]
    fn redirects_are_followed_but_bounded() {
        let srv = Server::start();
        srv.route("/final.txt", Reply::ok(b"here".to_vec()));
        srv.route("/r1/x.txt", Reply::redirect("/final.txt"));
        let dir = tempfile::tempdir().unwrap();
        let body = open(
            &agent(),
            &plan(&srv.url("/r1/x.txt")),
            limits(100),
            &FetchUser::default(),
            Failure::default(),
        )
        .unwrap();
        save(body, &dir.path().join("x")).unwrap();
        assert_eq!(std::fs::read(dir.path().join("x")).unwrap(), b"here");
        srv.route("/loop.txt", Reply::redirect("/loop.txt"));
        let uri = srv.url("/loop.txt");
        let e = open(
            &agent(),
            &plan(&uri),
            limits(100),
            &FetchUser::default(),
            Failure::default(),
        )
        .err()
        .unwrap();
        let text = e.to_string();
        assert!(text.contains(&uri) && text.contains("redirect"), "{text}");
        assert!(!e.is_transient());
    }

    #[test]
    fn size_cap_applies_to_announced_and_actual_lengths() {
        let srv = Server::start();
        srv.route("/big.bin", Reply::ok(vec![0u8; 5000]));
        srv.route("/sneaky.bin", Reply::ok(vec![0u8; 5000]).without_length());
        let e = open(
            &agent(),
            &plan(&srv.url("/big.bin")),
            limits(1000),
            &FetchUser::default(),
            Failure::default(),
        )
        .err()
        .unwrap();
        assert!(
            e.to_string()
                .contains("artifact of 4.9 KiB is over the size cap of 1000 B"),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        let body = open(
            &agent(),
            &plan(&srv.url("/sneaky.bin")),
            limits(1000),
            &FetchUser::default(),
            Failure::default(),
        )
        .unwrap();
        let e = save(body, &dir.path().join("s")).unwrap_err();
        assert!(e.to_string().contains("over the size cap of 1000 B"), "{e}");
    }

    #[test]
    fn a_stalled_server_fails_after_the_stall_timeout() {
        let srv = Server::start();
        srv.route("/slow.bin", Reply::ok(vec![1u8; 1000]).stall_after(100));
        let dir = tempfile::tempdir().unwrap();
        let uri = srv.url("/slow.bin");
        let body = open(
            &agent(),
            &plan(&uri),
            limits(1 << 20),
            &FetchUser::default(),
            Failure::default(),
        )
        .unwrap();
        let e = save(body, &dir.path().join("s")).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains(&uri) && text.contains("server stalled"),
            "{text}"
        );
        assert!(e.is_transient());
    }

    #[test]
    fn local_files_and_their_errors() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src.txt");
        std::fs::write(&src, "local").unwrap();
        let body = open(
            &agent(),
            &plan(src.to_str().unwrap()),
            limits(100),
            &FetchUser::default(),
            Failure::default(),
        )
        .unwrap();
        assert_eq!(body.length, Some(5));
        save(body, &dir.path().join("copy")).unwrap();
        let missing = dir.path().join("missing.txt");
        let e = open(
            &agent(),
            &plan(missing.to_str().unwrap()),
            limits(100),
            &FetchUser::default(),
            Failure::default(),
        )
        .err()
        .unwrap();
        assert!(
            e.to_string().contains("open") && e.to_string().contains("missing.txt"),
            "{e}"
        );
        let e = open(
            &agent(),
            &plan(dir.path().to_str().unwrap()),
            limits(100),
            &FetchUser::default(),
            Failure::default(),
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains("not a regular file"), "{e}");
    }
}
