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
//! answer 400 and close that connection, which is logged too. The message
//! name is not checked here: the agent ignores, with a warning, names it
//! does not know.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
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
/// messages for `local_id` go to `inbox` as [`WireEvent::Message`], other
/// requests to `handler`. On shutdown it stops accepting, asks every open
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
        if message.to != self.local_id {
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
    let service = service_fn(move |req| {
        let port = port.clone();
        async move { Ok::<_, Infallible>(port.route(req, peer).await) }
    });
    let conn = http1::Builder::new()
        .keep_alive(true)
        .header_read_timeout(None)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        _ = shut(&mut shutdown) => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    match result {
        Ok(()) => debug!(%peer, "connection closed"),
        Err(e) if e.is_parse() || e.is_parse_too_large() || e.is_incomplete_message() => {
            warn!(%peer, error = %e, "closed a connection that sent malformed HTTP")
        }
        Err(e) => debug!(%peer, error = %e, "connection ended"),
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
