//! Outbound messages: one persistent connection per peer address, as
//! libprocess keeps them.
//!
//! [`Transport::send`] encodes the message and queues it for the writer task
//! of the peer's address (started on first use), and never waits. A writer
//! connects when it has something to send, sets `TCP_NODELAY`, writes each
//! message's bytes in order, and reads and throws away whatever the peer
//! writes back (its `202 Accepted` replies) so neither side's buffers fill.
//! When the connection breaks it reports [`WireEvent::Exited`] once, naming
//! the pid of the last message it carried, and goes back to waiting; the
//! next message opens a new connection. What is lost, as in libprocess:
//! - connect fails: the messages queued for that attempt are dropped;
//! - a write fails: that message is dropped; later ones wait for the next
//!   connection;
//! - the peer closes: nothing queued is lost, but a message written just
//!   before the close was noticed may be.
//!
//! There is no connect timeout (libprocess has none either): messages for a
//! silent address queue until the kernel gives up on the connect.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio::runtime::Handle;
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use super::message::encode_message;
use super::upid::Upid;
use super::WireEvent;

/// Sends libprocess messages as `local`. Clones share the connections;
/// dropping the last clone closes them.
#[derive(Clone)]
pub struct Transport {
    inner: Arc<Inner>,
}

struct Inner {
    local: Upid,
    events: UnboundedSender<WireEvent>,
    /// The runtime writers run on: the one `new` was called in, if any.
    runtime: Option<Handle>,
    /// The queue of each peer address' writer. A std mutex: nothing awaits
    /// while holding it.
    peers: Mutex<HashMap<SocketAddr, UnboundedSender<Outgoing>>>,
}

/// One encoded message and whom it is for; or, with `flushed`, a marker
/// that [`Transport::flush`] waits on (no bytes).
struct Outgoing {
    to: Upid,
    bytes: Vec<u8>,
    flushed: Option<oneshot::Sender<()>>,
}

impl Outgoing {
    /// A flush marker: says so and is done; true if it was one.
    fn marker(&mut self) -> bool {
        match self.flushed.take() {
            Some(done) => {
                let _ = done.send(());
                true
            }
            None => false,
        }
    }
}

impl Transport {
    /// A transport sending as `local` (the pid peers reply to) and
    /// reporting broken connections on `events`. Call it, or `send`, inside
    /// a tokio runtime: the writers are tasks.
    pub fn new(local: Upid, events: UnboundedSender<WireEvent>) -> Self {
        Transport {
            inner: Arc::new(Inner {
                local,
                events,
                runtime: Handle::try_current().ok(),
                peers: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Who this transport sends as.
    pub fn local(&self) -> &Upid {
        &self.inner.local
    }

    /// Queues message `name` with `body` for `to`; never blocks.
    pub fn send(&self, to: &Upid, name: &str, body: Vec<u8>) {
        self.send_as(&self.inner.local.clone(), to, name, body);
    }

    /// As [`send`](Self::send), from another process of this address
    /// (the agent's authenticatee): peers reply to FROM.
    pub fn send_as(&self, from: &Upid, to: &Upid, name: &str, body: Vec<u8>) {
        let bytes = encode_message(from, to, name, &body);
        let mut out = Outgoing {
            to: to.clone(),
            bytes,
            flushed: None,
        };
        let mut peers = lock(&self.inner.peers);
        if let Some(queue) = peers.get(&to.addr) {
            match queue.send(out) {
                Ok(()) => return,
                Err(mpsc::error::SendError(back)) => out = back, // writer gone
            }
        }
        let Some(runtime) = self
            .inner
            .runtime
            .clone()
            .or_else(|| Handle::try_current().ok())
        else {
            warn!(to = %to, name, "dropping libprocess message: no tokio runtime to send it from");
            return;
        };
        let (queue, rx) = mpsc::unbounded_channel();
        // The receiver is alive: this cannot fail.
        let _ = queue.send(out);
        runtime.spawn(writer(to.addr, rx, self.inner.events.clone()));
        peers.insert(to.addr, queue);
    }
}

impl Transport {
    /// Waits (LIMIT at most) until every message queued so far has been
    /// written to its connection or dropped: before the agent exits, so
    /// that its last messages (an `UnregisterSlaveMessage`) leave.
    pub async fn flush(&self, limit: std::time::Duration) {
        let waits: Vec<oneshot::Receiver<()>> = lock(&self.inner.peers)
            .values()
            .filter_map(|queue| {
                let (done, wait) = oneshot::channel();
                let marker = Outgoing {
                    to: self.inner.local.clone(),
                    bytes: Vec::new(),
                    flushed: Some(done),
                };
                queue.send(marker).ok().map(|()| wait)
            })
            .collect();
        let all = async {
            for w in waits {
                let _ = w.await;
            }
        };
        let _ = tokio::time::timeout(limit, all).await;
    }
}

/// A poisoned map is still a valid map: a panic elsewhere must not stop
/// the sending.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The writer of one peer address: connects when a message waits, sends
/// until the connection breaks, reports the break, and waits again. Ends
/// when every [`Transport`] clone is gone.
async fn writer(
    addr: SocketAddr,
    mut queue: UnboundedReceiver<Outgoing>,
    events: UnboundedSender<WireEvent>,
) {
    while let Some(mut first) = queue.recv().await {
        if first.marker() {
            continue;
        }
        let stream = match TcpStream::connect(addr).await {
            Ok(stream) => stream,
            Err(e) => {
                let mut last = first.to;
                let mut dropped = 1;
                while let Ok(mut queued) = queue.try_recv() {
                    if queued.marker() {
                        continue;
                    }
                    last = queued.to;
                    dropped += 1;
                }
                warn!(peer = %last, error = %e, dropped, "connecting to libprocess peer failed");
                exited(&events, last);
                continue;
            }
        };
        if let Err(e) = stream.set_nodelay(true) {
            debug!(%addr, error = %e, "setting TCP_NODELAY failed");
        }
        debug!(%addr, "connected to libprocess peer");
        let (reader, mut write) = stream.into_split();
        let (closed_tx, mut closed) = oneshot::channel();
        let _drain = AbortOnDrop(tokio::spawn(drain(reader, closed_tx)));
        let mut last = first.to.clone();
        let mut next = Some(first);
        loop {
            let mut message = match next.take() {
                Some(message) => message,
                None => tokio::select! {
                    // A closed peer first: what is queued then waits for
                    // the next connection instead of being written into a
                    // dead one.
                    biased;
                    _ = &mut closed => {
                        warn!(peer = %last, "libprocess peer closed the connection");
                        exited(&events, last);
                        break;
                    }
                    message = queue.recv() => match message {
                        Some(message) => message,
                        None => return,
                    },
                },
            };
            if message.marker() {
                continue;
            }
            last = message.to.clone();
            if let Err(e) = write.write_all(&message.bytes).await {
                warn!(peer = %last, error = %e, "sending to libprocess peer failed; dropped");
                exited(&events, last);
                break;
            }
        }
    }
}

/// Reads and discards what the peer writes until it closes or fails, then
/// says so on `closed`.
async fn drain(mut reader: OwnedReadHalf, closed: oneshot::Sender<()>) {
    let mut buf = vec![0u8; 8 * 1024];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                debug!(error = %e, "reading from libprocess peer failed");
                break;
            }
        }
    }
    let _ = closed.send(());
}

fn exited(events: &UnboundedSender<WireEvent>, peer: Upid) {
    // Nobody listening means the agent is going away: nothing to do.
    let _ = events.send(WireEvent::Exited(peer));
}

/// Aborts a task when the connection it serves is given up.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests;
