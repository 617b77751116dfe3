//! The libprocess transport: the agent as the peer `slave(1)@IP:PORT`.
//!
//! A Mesos master and agent talk in libprocess messages: HTTP/1.1 POSTs of
//! serialized protobufs, `POST /<receiver id>/<message name>`, the sender
//! named in `Libprocess-From` (or, in the legacy form, in a
//! `User-Agent: libprocess/<pid>`). Each side sends on its own persistent
//! connection to the other's advertised address; the `202 Accepted` a
//! receiver writes back is read and ignored, and replies travel as new
//! messages on the replier's own connection.
//!
//! - [`Upid`]: a pid, `id@ip:port`.
//! - [`encode_message`] / [`parse_message`]: a message's bytes, both ways.
//! - [`Transport`]: outbound; [`Transport::send`] never blocks, reconnects
//!   after a failure and reports [`WireEvent::Exited`] once per break.
//! - [`serve`]: inbound; messages become [`WireEvent::Message`] on the
//!   inbox, every other request goes to an [`HttpHandler`]. Inbound
//!   connections are never closed by the agent (a master reads a closed
//!   connection as the agent's exit).

mod error;
mod message;
mod server;
mod transport;
mod upid;

pub mod authentication;
pub mod detector;

#[doc(hidden)]
pub mod fuzz;

pub use error::WireError;
pub use message::{
    encode_message, is_message, parse_message, Message, LIBPROCESS_AGENT, LIBPROCESS_FROM,
};
pub use server::{
    empty, full, serve, Body, HttpHandler, ResponseFuture, MAX_CONNECTIONS, MAX_MESSAGE_BYTES,
};
pub use transport::Transport;
pub use upid::Upid;

/// What the transport tells the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireEvent {
    /// A message for the local process arrived.
    Message(Message),
    /// The outbound connection to this peer's address broke or could not be
    /// made (reported once per break; compare `addr`, as one connection
    /// serves every pid at an address).
    Exited(Upid),
}
