//! Agent authentication to the master: SASL CRAM-MD5 over libprocess, as
//! Mesos' `crammd5` authenticatee runs it.
//!
//! - [`Credential::load`]: `--credential`, the text `principal secret`
//!   (one line) or the JSON `{"principal": .., "secret": ..}`.
//! - [`Authenticatee`]: one attempt, as a state machine the agent drives.
//!   It is its own libprocess process, `crammd5-authenticatee(N)` at the
//!   agent's address (a new N each attempt, as libprocess numbers them):
//!   it sends `mesos.AuthenticateMessage` naming the agent's pid to the
//!   master, whose authenticator answers to it with the mechanisms; it
//!   starts CRAM-MD5 (no initial response), answers the challenge with
//!   `principal SP hex(HMAC-MD5(secret, challenge))` (RFC 2195) and ends on
//!   `AuthenticationCompletedMessage`, `...FailedMessage` (refused) or
//!   `...ErrorMessage`. Replies go to the sender of the message answered.
//! - [`is_authenticatee`]: whether an inbound message's receiver id is one
//!   of those processes (the server accepts them besides the agent's).

mod crammd5;
mod credential;

pub use crammd5::{cram_md5_response, Authenticatee, Step, MECHANISM};
pub use credential::Credential;

/// The errors of agent authentication.
#[derive(Debug, thiserror::Error)]
pub enum AuthenticationError {
    #[error("read the credential file {path}: {source}")]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("credential file {path}: {reason}")]
    Format {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error("unexpected {message} from {from} while {state}")]
    Unexpected {
        message: String,
        from: String,
        state: &'static str,
    },
    #[error("the master offers no CRAM-MD5 (mechanisms: {offered})")]
    NoMechanism { offered: String },
    #[error("{message} from {from} does not decode: {cause}")]
    Decode {
        message: String,
        from: String,
        cause: String,
    },
    #[error("the master reported an authentication error: {0}")]
    Master(String),
}

/// The libprocess id prefix of authenticatee processes.
pub const AUTHENTICATEE_ID: &str = "crammd5-authenticatee";

/// True for `crammd5-authenticatee(N)`.
pub fn is_authenticatee(id: &str) -> bool {
    id.strip_prefix(AUTHENTICATEE_ID)
        .and_then(|r| r.strip_prefix('('))
        .and_then(|r| r.strip_suffix(')'))
        .is_some_and(|n| !n.is_empty() && n.len() <= 20 && n.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests;
