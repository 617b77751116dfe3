//! The operator endpoints of the Mesos agent, same paths, query parameters,
//! status codes, content types and JSON as Mesos 1.11:
//!
//! | path | access | answer |
//! | --- | --- | --- |
//! | `/health` | open | 200, empty, no `Content-Type` |
//! | `/version` | open | build and version |
//! | `/state` (`/state.json`) | read-only | the agent's frameworks, executors, tasks |
//! | `/flags` | read-only | `{"flags": {...}}` |
//! | `/metrics/snapshot` | read-only | `{"slave/tasks_running": 1.0, ...}` |
//! | `/metrics` | read-only | the same and more, Prometheus text (not in Mesos) |
//! | `/monitor/statistics` | read-only | ResourceStatistics per executor |
//! | `/containers` | read-only | each container, with its statistics and status |
//! | `/files/browse?path=` | read-only | the entries of an attached directory |
//! | `/files/read?path=&offset=&length=` | read-only | `{"data":..,"offset":..}` |
//! | `/files/download?path=` | read-only | the file, `application/octet-stream` |
//! | `/files/debug` | read-only | the attached paths |
//! | `POST /api/v1` | read-write | the v1 operator API ([`v1`]) |
//!
//! Agent endpoints also answer under `/slave(1)/...`. Every JSON answer
//! takes `jsonp=CALLBACK` (then `text/javascript`, `CALLBACK(...);`).
//! Methods other than GET and HEAD get 405; bad query parameters 400 with
//! Mesos' text; `/files` paths outside what the agent attached 404, paths
//! that would leave it (`..`, a symlink out) 400 ([`files`]).
//! Authentication ([`auth`]) comes first: 401 with a `Basic` challenge.
//!
//! This module parses and answers; the figures come from the agent through
//! [`OperatorApi`], which renders its JSON off its event loop.

pub mod auth;
pub mod files;
pub mod v1;

#[cfg(test)]
mod tests;

use crate::api::text;
use std::convert::Infallible;
use std::io::Read;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Frame;
use hyper::header::{
    HeaderValue, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_TYPE, WWW_AUTHENTICATE,
};
use hyper::{Method, Request, Response, StatusCode};

pub use auth::{Access, AuthError, Authenticator, Credential};
pub use files::Attached;

pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// A response body.
pub type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// The JSON documents the agent renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    State,
    Flags,
    Version,
    Metrics,
    Statistics,
    Containers,
    /// `/metrics`: Prometheus text, not JSON.
    Prometheus,
}

/// Implemented by the agent.
pub trait OperatorApi: Send + Sync + 'static {
    /// The JSON text of a view.
    fn view(&self, view: View) -> BoxFuture<'_, Result<Bytes, OperatorError>>;

    /// The paths `/files` may serve: request prefix -> host path.
    fn attached(&self) -> BoxFuture<'_, Result<Attached, OperatorError>>;

    /// A v1 operator API call the agent answers.
    fn call(&self, call: v1::AgentCall) -> BoxFuture<'_, Result<Answer, OperatorError>>;

    /// LAUNCH_NESTED_CONTAINER_SESSION: launches the container and returns
    /// its output; the stream's guard kills the container when dropped.
    fn launch_session(
        &self,
        launch: v1::SessionLaunch,
    ) -> BoxFuture<'_, Result<v1::OutputStream, OperatorError>>;

    /// ATTACH_CONTAINER_OUTPUT: the output of a container whose I/O the
    /// agent holds.
    fn attach_output(
        &self,
        container_id: crate::proto::mesos::v1::ContainerId,
    ) -> BoxFuture<'_, Result<v1::OutputStream, OperatorError>>;

    /// ATTACH_CONTAINER_INPUT: where the records of the input stream go
    /// (one input client at a time: 409 for another).
    fn attach_input(
        &self,
        container_id: crate::proto::mesos::v1::ContainerId,
    ) -> BoxFuture<'_, Result<v1::InputSink, OperatorError>>;
}

/// The agent's answer to a v1 call.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// 200 with the `Response`.
    Response(Box<crate::proto::mesos::v1::agent::Response>),
    /// 200 with GET_STATE, GET_TASKS, GET_EXECUTORS or GET_FRAMEWORKS,
    /// given as the encodings of the messages in its lists.
    Lists(Box<v1::Lists>),
    /// 200, no body (SET_LOGGING_LEVEL, LAUNCH_CONTAINER, KILL_CONTAINER,
    /// REMOVE_CONTAINER).
    Ok,
    /// 202, no body (LAUNCH_CONTAINER of a container that exists).
    Accepted,
}

/// Why a request is refused; the message is the `text/plain` body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OperatorError {
    /// 400.
    #[error("{0}")]
    BadRequest(String),
    /// 404, empty body (a `/files` path that is not attached or not there).
    #[error("not found")]
    NotFound,
    /// 404 with Mesos' text (an unknown container).
    #[error("{0}")]
    Missing(String),
    /// 409 (a second input client of a container).
    #[error("{0}")]
    Conflict(String),
    /// 500.
    #[error("{0}")]
    Internal(String),
    /// 503 (the agent is stopping).
    #[error("{0}")]
    Unavailable(String),
}

/// An endpoint this module serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Health,
    Version,
    State,
    Flags,
    Metrics,
    Prometheus,
    Statistics,
    Containers,
    FilesBrowse,
    FilesRead,
    FilesDownload,
    FilesDebug,
}

impl Endpoint {
    /// The endpoint a request path names, if any.
    pub fn of(path: &str) -> Option<Endpoint> {
        let agent = path.strip_prefix("/slave(1)").unwrap_or(path);
        Some(match agent {
            "/health" => Endpoint::Health,
            "/state" | "/state.json" => Endpoint::State,
            "/flags" => Endpoint::Flags,
            "/monitor/statistics" => Endpoint::Statistics,
            "/containers" => Endpoint::Containers,
            _ => match path {
                "/version" => Endpoint::Version,
                "/metrics/snapshot" => Endpoint::Metrics,
                "/metrics" => Endpoint::Prometheus,
                "/files/browse" => Endpoint::FilesBrowse,
                "/files/read" => Endpoint::FilesRead,
                "/files/download" => Endpoint::FilesDownload,
                "/files/debug" => Endpoint::FilesDebug,
                _ => return None,
            },
        })
    }

    /// Who may call it (Mesos: `/health` and `/version` are never
    /// authenticated; everything here is read-only).
    pub fn access(self) -> Access {
        match self {
            Endpoint::Health | Endpoint::Version => Access::Open,
            _ => Access::ReadOnly,
        }
    }
}

/// A query string's parameters, decoded as libprocess decodes them (`+`
/// is a space); the first of repeated keys wins.
pub fn parse_query(query: &str) -> Result<Vec<(String, String)>, OperatorError> {
    let bad = || OperatorError::BadRequest("Unable to decode query string.\n".into());
    let decode = |s: &str| -> Result<String, OperatorError> {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' => {
                    let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
                    let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
                    out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
                    i += 2;
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8(out).map_err(|_| bad())
    };
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((decode(k)?, decode(v)?))
        })
        .collect()
}

fn param<'a>(query: &'a [(String, String)], key: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// A `jsonp` callback: a JavaScript name (letters, digits, `_`, `$`, `.`),
/// so that what the agent echoes cannot carry script.
fn jsonp(query: &[(String, String)]) -> Result<Option<String>, OperatorError> {
    match param(query, "jsonp") {
        None => Ok(None),
        Some(cb)
            if !cb.is_empty()
                && cb.len() <= 256
                && cb
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '$' | '.')) =>
        {
            Ok(Some(cb.to_string()))
        }
        Some(_) => Err(OperatorError::BadRequest(
            "Invalid 'jsonp' callback: expected a JavaScript name.\n".into(),
        )),
    }
}

/// Answers one request for `endpoint`.
pub async fn handle<B>(
    api: Arc<dyn OperatorApi>,
    auth: &Authenticator,
    endpoint: Endpoint,
    req: Request<B>,
) -> Response<Body> {
    if let Err(refused) = auth.check(endpoint.access(), req.headers()) {
        let mut r = text(StatusCode::UNAUTHORIZED, refused.message);
        if let Ok(v) = HeaderValue::from_str(&refused.challenge()) {
            r.headers_mut().insert(WWW_AUTHENTICATE, v);
        }
        return r;
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return crate::api::method_not_allowed(
            "GET",
            format!(
                "Expecting one of {{ 'GET' }}, but received '{}'",
                req.method()
            ),
        );
    }
    match answer(api, endpoint, req.uri().query().unwrap_or("")).await {
        Ok(r) => r,
        Err(e) => error(&e),
    }
}

async fn answer(
    api: Arc<dyn OperatorApi>,
    endpoint: Endpoint,
    query: &str,
) -> Result<Response<Body>, OperatorError> {
    let query = parse_query(query)?;
    let callback = jsonp(&query)?;
    let view = |v| {
        let api = api.clone();
        let callback = callback.clone();
        async move {
            api.view(v)
                .await
                .map(|json| ok_json(json, callback.as_deref()))
        }
    };
    match endpoint {
        Endpoint::Health => Ok(Response::new(Empty::new().boxed())),
        Endpoint::Version => view(View::Version).await,
        Endpoint::State => view(View::State).await,
        Endpoint::Flags => view(View::Flags).await,
        Endpoint::Metrics => {
            if let Some(t) = param(&query, "timeout") {
                crate::support::parse_duration(t).map_err(|e| {
                    OperatorError::BadRequest(format!("Invalid timeout '{t}': {e}.\n"))
                })?;
            }
            view(View::Metrics).await
        }
        Endpoint::Prometheus => {
            let text = api.view(View::Prometheus).await?;
            let mut r = Response::new(Full::new(text).boxed());
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(PROMETHEUS_TEXT));
            Ok(r)
        }
        Endpoint::Statistics => view(View::Statistics).await,
        Endpoint::Containers => view(View::Containers).await,
        Endpoint::FilesDebug => {
            let attached = api.attached().await?;
            let map: serde_json::Map<String, serde_json::Value> = attached
                .into_iter()
                .map(|(k, v)| (k, serde_json::Value::String(v.display().to_string())))
                .collect();
            Ok(ok_json(
                Bytes::from(serde_json::Value::Object(map).to_string()),
                callback.as_deref(),
            ))
        }
        Endpoint::FilesBrowse | Endpoint::FilesRead | Endpoint::FilesDownload => {
            let path = param(&query, "path")
                .filter(|p| !p.is_empty())
                .ok_or_else(|| {
                    OperatorError::BadRequest("Expecting 'path=value' in query.\n".into())
                })?
                .to_string();
            let number = |key: &str| -> Result<i64, OperatorError> {
                let Some(v) = param(&query, key) else {
                    return Ok(-1);
                };
                let n: i64 = v.parse().map_err(|e| {
                    OperatorError::BadRequest(format!("Failed to parse {key}: {e}.\n"))
                })?;
                if n < -1 {
                    return Err(OperatorError::BadRequest(format!(
                        "Negative {key} provided: {n}.\n"
                    )));
                }
                Ok(n)
            };
            let (offset, length) = if endpoint == Endpoint::FilesRead {
                (number("offset")?, number("length")?)
            } else {
                (-1, -1)
            };
            let attached = api.attached().await?;
            let blocking = tokio::task::spawn_blocking(move || match endpoint {
                Endpoint::FilesBrowse => files::browse(&attached, &path)
                    .map(|list| Files::Json(serde_json::to_vec(&list).unwrap_or_default())),
                Endpoint::FilesRead => files::read(&attached, &path, offset, length)
                    .map(|chunk| Files::Json(serde_json::to_vec(&chunk).unwrap_or_default())),
                _ => files::download(&attached, &path).map(|(f, name)| Files::Download(f, name)),
            });
            match blocking.await {
                Ok(Ok(Files::Json(json))) => Ok(ok_json(Bytes::from(json), callback.as_deref())),
                Ok(Ok(Files::Download(file, name))) => download(file, &name),
                Ok(Err(e)) => Err(e),
                Err(e) => Err(OperatorError::Internal(format!(
                    "reading files failed: {e}"
                ))),
            }
        }
    }
}

enum Files {
    Json(Vec<u8>),
    Download(std::fs::File, String),
}

/// 200 with JSON, or its JSONP form.
/// The content type of the Prometheus text format.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

pub fn ok_json(json: Bytes, callback: Option<&str>) -> Response<Body> {
    let (body, kind) = match callback {
        None => (json, "application/json"),
        Some(cb) => {
            let mut b = Vec::with_capacity(json.len() + cb.len() + 3);
            b.extend_from_slice(cb.as_bytes());
            b.push(b'(');
            b.extend_from_slice(&json);
            b.extend_from_slice(b");");
            (Bytes::from(b), "text/javascript")
        }
    };
    let mut r = Response::new(Full::new(body).boxed());
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(kind));
    r
}

/// The response for a refusal.
pub fn error(e: &OperatorError) -> Response<Body> {
    match e {
        OperatorError::BadRequest(m) => text(StatusCode::BAD_REQUEST, m),
        OperatorError::NotFound => text(StatusCode::NOT_FOUND, ""),
        OperatorError::Missing(m) => text(StatusCode::NOT_FOUND, m),
        OperatorError::Conflict(m) => text(StatusCode::CONFLICT, m),
        OperatorError::Internal(m) => text(StatusCode::INTERNAL_SERVER_ERROR, m),
        OperatorError::Unavailable(m) => text(StatusCode::SERVICE_UNAVAILABLE, m),
    }
}

/// What the agent answers on a path nobody serves (libprocess' text).
pub fn not_found() -> Response<Body> {
    text(StatusCode::NOT_FOUND, "404 Not Found.")
}

/// A file as the body, read by a blocking thread in 64 KiB chunks a few
/// at a time (a slow client holds at most those in memory).
fn download(file: std::fs::File, name: &str) -> Result<Response<Body>, OperatorError> {
    let size = file
        .metadata()
        .map_err(|e| OperatorError::Internal(format!("failed to stat '{name}': {e}")))?
        .len();
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    tokio::task::spawn_blocking(move || {
        let mut file = file.take(size);
        loop {
            let mut buf = vec![0u8; 64 * 1024];
            match file.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    buf.truncate(n);
                    if tx.blocking_send(Bytes::from(buf)).is_err() {
                        break; // the client left
                    }
                }
            }
        }
    });
    let mut r = Response::new(Chunks { rx, left: size }.boxed());
    let h = r.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(CONTENT_LENGTH, HeaderValue::from(size));
    let safe: String = name
        .chars()
        .filter(|c| c.is_ascii_graphic() && *c != '"' && *c != ';')
        .collect();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename={safe}")) {
        h.insert(CONTENT_DISPOSITION, v);
    }
    Ok(r)
}

/// The download's body: what the reader thread sends, zero-padded if the
/// file shrank under it (the length was promised).
struct Chunks {
    rx: tokio::sync::mpsc::Receiver<Bytes>,
    left: u64,
}

impl hyper::body::Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(b)) => {
                self.left = self.left.saturating_sub(b.len() as u64);
                Poll::Ready(Some(Ok(Frame::data(b))))
            }
            Poll::Ready(None) => {
                let pad = usize::try_from(self.left.min(64 * 1024)).unwrap_or(0);
                self.left -= pad as u64;
                Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![0u8; pad])))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }
}
