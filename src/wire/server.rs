//! The agent's port: an HTTP/1.1 server where libprocess messages arrive
//! and every other request goes to an [`HttpHandler`].
//!
//! What libprocess does, and what this server does the same way:
//! - A message (see [`is_message`]) is read in full, handed over, and
//!   answered `202 Accepted` with an empty body; a message for a process id
//!   other than ours gets `404 Not Found`. Since 2014 libprocess answers every
//!   message, the legacy `User-Agent: libprocess/...` form included (older
//!   versions stayed silent for that form); libprocess peers read and ignore
//!   these replies, and a reply to a message is never sent back on the
//!   connection the message came on, but as a new message on the receiver's
//!   own connection to the sender's pid.
//! - Connections are kept alive with no idle or header timeout: a master
//!   reads the close of its connection to an agent as the agent's exit, so
//!   the server never closes one that speaks valid HTTP.
//!
//! Where it is stricter: a sender that does not parse, a bad path or a
//! truncated body is logged (`tracing::warn!`) and answered 400; a body over
//! [`MAX_MESSAGE_BYTES`] is read to its end and thrown away, then answered
//! 413, so the connection stays usable. Bytes that are not HTTP make hyper
//! answer 400 and close that connection, which is logged too. A peer that
//! closes between requests or while a response streams to it (an executor
//! that exits with its SUBSCRIBE stream open) sent nothing malformed: that
//! is logged at debug level only. The message name is not checked here: the
//! agent ignores, with a warning, names it does not know.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc::UnboundedSender, watch, OwnedSemaphorePermit, Semaphore};
use tracing::{debug, warn};

use super::error::WireError;
use super::message::{is_message, parse_message};
use super::WireEvent;

/// The largest message body accepted; bigger ones are answered 413.
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// Connections served at once; further ones wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 10_000;

/// The body of every response on the agent's port. Any
/// `hyper::body::Body<Data = Bytes, Error = Infallible> + Send + Sync +
/// 'static` becomes one with `http_body_util::BodyExt::boxed`; a streaming
/// response is a small struct implementing `hyper::body::Body` whose
/// `poll_frame` polls a channel (as `api`'s SUBSCRIBE body does).
pub type Body = BoxBody<Bytes, Infallible>;

/// What an [`HttpHandler`] returns.
pub type ResponseFuture = Pin<Box<dyn Future<Output = Response<Body>> + Send>>;

/// Serves the requests that are not libprocess messages (the executor and
/// operator APIs, `/state`, ...).
pub trait HttpHandler: Send + Sync + 'static {
    fn handle(&self, req: Request<Incoming>) -> ResponseFuture;
}

/// A whole-body response body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

/// An empty response body.
pub fn empty() -> Body {
    Empty::new().boxed()
}

/// Serves `listener` until `shutdown` turns true or its sender is dropped:
/// messages for `local_id` (and for the agent's authenticatee processes,
/// `crammd5-authenticatee(N)`) go to `inbox` as [`WireEvent::Message`],
/// other requests to `handler`. On shutdown it stops accepting, asks every open
/// connection to finish its current exchange and close, and returns
/// without waiting for them.
pub async fn serve(
    listener: TcpListener,
    local_id: String,
    inbox: UnboundedSender<WireEvent>,
    handler: Arc<dyn HttpHandler>,
    shutdown: watch::Receiver<bool>,
) {
    let port = Port {
        local_id,
        inbox,
        handler,
        limit: MAX_MESSAGE_BYTES,
    };
    port.serve(listener, shutdown).await
}

/// Everything a connection needs, shared by all of them.
pub(super) struct Port {
    pub(super) local_id: String,
    pub(super) inbox: UnboundedSender<WireEvent>,
    pub(super) handler: Arc<dyn HttpHandler>,
    /// [`MAX_MESSAGE_BYTES`], smaller in tests.
    pub(super) limit: usize,
}

impl Port {
    pub(super) async fn serve(self, listener: TcpListener, mut shutdown: watch::Receiver<bool>) {
        let port = Arc::new(self);
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        loop {
            let permit = tokio::select! {
                permit = slots.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break, // never closed
                },
                _ = shut(&mut shutdown) => break,
            };
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of descriptors, say: wait instead of spinning.
                        warn!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                _ = shut(&mut shutdown) => break,
            };
            tokio::spawn(connection(
                stream,
                peer,
                port.clone(),
                shutdown.clone(),
                permit,
            ));
        }
    }

    /// Answers one request.
    async fn route(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        if !is_message(req.method(), req.headers()) {
            return self.handler.handle(req).await;
        }
        let (parts, body) = req.into_parts();
        let path = parts.uri.path();
        let refuse = |status: StatusCode, err: WireError| {
            let path = super::error::clip(path);
            let error = DisplayChain(&err);
            warn!(%peer, %path, %error, "dropping libprocess message");
            reply(status, err.to_string())
        };
        let body = match read_capped(body, self.limit).await {
            Ok(body) => body,
            Err(e @ WireError::TooLarge { .. }) => return refuse(StatusCode::PAYLOAD_TOO_LARGE, e),
            Err(e) => return refuse(StatusCode::BAD_REQUEST, e),
        };
        let message = match parse_message(&parts.method, path, &parts.headers, body) {
            Ok(message) => message,
            Err(e) => return refuse(StatusCode::BAD_REQUEST, e),
        };
        if message.to != self.local_id && !super::authentication::is_authenticatee(&message.to) {
            let err = WireError::UnknownProcess {
                to: super::error::clip(&message.to),
                local: self.local_id.clone(),
            };
            return refuse(StatusCode::NOT_FOUND, err);
        }
        let (from, name, len) = (&message.from, &message.name, message.body.len());
        debug!(%peer, %from, %name, len, "libprocess message");
        if self.inbox.send(WireEvent::Message(message)).is_err() {
            warn!(%peer, "dropping libprocess message: nobody reads the inbox");
            return reply(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
        }
        let mut accepted = Response::new(empty());
        *accepted.status_mut() = StatusCode::ACCEPTED;
        accepted
    }
}

/// Serves one connection until the peer closes it, it stops speaking HTTP,
/// or the server shuts down.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    port: Arc<Port>,
    mut shutdown: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    if let Err(e) = stream.set_nodelay(true) {
        debug!(%peer, error = %e, "setting TCP_NODELAY failed");
    }
    let progress = Arc::new(Progress::default());
    let seen = progress.clone();
    let service = service_fn(move |req| {
        let port = port.clone();
        let progress = seen.clone();
        progress.dispatched();
        async move {
            let response = port.route(req, peer).await;
            Ok::<_, Infallible>(response.map(|body| Tracked::wrap(body, progress)))
        }
    });
    let io = Watched {
        inner: stream,
        progress: progress.clone(),
    };
    let conn = http1::Builder::new()
        .keep_alive(true)
        .header_read_timeout(None)
        .serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        _ = shut(&mut shutdown) => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    match result
        .as_ref()
        .map_err(|e| (e, closing(e, progress.partial_request())))
    {
        Ok(()) => debug!(%peer, "connection closed"),
        Err((e, Closing::Malformed)) => {
            warn!(%peer, error = %e, "closed a connection that sent malformed HTTP")
        }
        Err((e, Closing::PeerLeft)) => debug!(%peer, error = %e, "the peer closed the connection"),
        Err((e, Closing::Other)) => debug!(%peer, error = %e, "connection ended"),
    }
}

/// How a connection that ended in an error ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closing {
    /// The peer sent bytes that are not HTTP, or closed in the middle of
    /// a request's head.
    Malformed,
    /// The peer closed between requests, or while its response was being
    /// written (a streaming response it no longer wants): nothing wrong.
    PeerLeft,
    /// Anything else (an I/O error, a shutdown).
    Other,
}

/// Sorts hyper's error: an incomplete message is malformed only when the
/// peer had begun a request the server had not yet taken.
fn closing(e: &hyper::Error, partial_request: bool) -> Closing {
    if e.is_parse() || e.is_parse_too_large() {
        Closing::Malformed
    } else if e.is_incomplete_message() {
        if partial_request {
            Closing::Malformed
        } else {
            Closing::PeerLeft
        }
    } else {
        Closing::Other
    }
}

/// What a connection has read, to tell a peer that left from one that
/// sent half a request.
#[derive(Default)]
struct Progress {
    /// Requests taken whose responses are not yet written (or dropped).
    open: AtomicUsize,
    /// Bytes arrived while no request was open, and no request was taken
    /// since: the start of a request's head.
    partial: AtomicBool,
}

impl Progress {
    fn dispatched(&self) {
        self.open.fetch_add(1, Ordering::SeqCst);
        self.partial.store(false, Ordering::SeqCst);
    }

    fn answered(&self) {
        self.open.fetch_sub(1, Ordering::SeqCst);
    }

    fn read(&self, bytes: usize) {
        if bytes > 0 && self.open.load(Ordering::SeqCst) == 0 {
            self.partial.store(true, Ordering::SeqCst);
        }
    }

    fn partial_request(&self) -> bool {
        self.partial.load(Ordering::SeqCst)
    }
}

/// The connection's stream, noting what it reads in a [`Progress`].
struct Watched {
    inner: TcpStream,
    progress: Arc<Progress>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            self.progress.read(buf.filled().len() - before);
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A response body that tells the connection's [`Progress`] when it is
/// done with (written to its end, or dropped when the peer left).
struct Tracked {
    inner: Body,
    progress: Arc<Progress>,
}

impl Tracked {
    fn wrap(inner: Body, progress: Arc<Progress>) -> Tracked {
        Tracked { inner, progress }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.progress.answered();
    }
}

impl hyper::body::Body for Tracked {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Resolves once `shutdown` is true or its sender is gone.
async fn shut(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|down| *down).await;
}

/// Reads a body to its end. Past `limit` bytes it keeps reading but keeps
/// nothing, so the connection stays in step, and fails at the end.
async fn read_capped(mut body: Incoming, limit: usize) -> Result<Bytes, WireError> {
    let mut kept = BytesMut::new();
    let mut over = false;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| WireError::Body {
            cause: e.to_string(),
        })?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        if over || kept.len() + data.len() > limit {
            over = true;
            kept = BytesMut::new();
        } else {
            kept.extend_from_slice(&data);
        }
    }
    if over {
        return Err(WireError::TooLarge { limit });
    }
    Ok(kept.freeze())
}

fn reply(status: StatusCode, text: impl Into<String>) -> Response<Body> {
    let mut response = Response::new(full(text.into()));
    *response.status_mut() = status;
    response
}

/// An error and its causes, `: `-separated, for one log line.
struct DisplayChain<'a>(&'a WireError);

impl std::fmt::Display for DisplayChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = std::error::Error::source(self.0);
        while let Some(e) = cause {
            write!(f, ": {e}")?;
            cause = e.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
