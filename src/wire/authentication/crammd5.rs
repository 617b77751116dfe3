//! The CRAM-MD5 authenticatee: one attempt as a state machine.

use super::{AuthenticationError, Credential, AUTHENTICATEE_ID};
use crate::proto::mesos::{
    AuthenticateMessage, AuthenticationErrorMessage, AuthenticationMechanismsMessage,
    AuthenticationStartMessage, AuthenticationStepMessage,
};
use crate::wire::Upid;
use hmac::{Hmac, Mac};
use md5::Md5;
use prost::{Message as _, Name as _};
use std::net::SocketAddr;

/// The SASL mechanism's name.
pub const MECHANISM: &str = "CRAM-MD5";

/// The RFC 2195 response to CHALLENGE: `principal SP` the lowercase hex of
/// HMAC-MD5 keyed with the secret.
pub fn cram_md5_response(credential: &Credential, challenge: &[u8]) -> Vec<u8> {
    // HMAC takes a key of any length: this cannot fail.
    let mut mac = <Hmac<Md5> as Mac>::new_from_slice(credential.secret.as_bytes())
        .expect("HMAC-MD5 takes any key length");
    mac.update(challenge);
    let digest = mac.finalize().into_bytes();
    format!("{} {}", credential.principal, hex::encode(digest)).into_bytes()
}

/// Where an attempt stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// `AuthenticateMessage` sent; waiting for the mechanisms.
    Starting,
    /// Mechanism chosen; answering steps until the outcome.
    Stepping,
    /// Over (completed, refused or in error): everything else is ignored.
    Done,
}

impl State {
    fn describe(self) -> &'static str {
        match self {
            State::Starting => "waiting for the mechanisms",
            State::Stepping => "stepping",
            State::Done => "done",
        }
    }
}

/// What the agent does after a message reached the authenticatee.
#[derive(Debug)]
pub enum Step {
    /// Send BODY (message NAME) to TO, from the authenticatee's pid.
    Send {
        to: Upid,
        name: String,
        body: Vec<u8>,
    },
    /// Authenticated: register now.
    Completed,
    /// The master refused the credential.
    Refused,
    /// The exchange broke; retry later.
    Error(AuthenticationError),
    /// Nothing to do (the attempt is over).
    Ignore,
}

/// One authentication attempt (see the module doc).
#[derive(Debug)]
pub struct Authenticatee {
    pid: Upid,
    client: Upid,
    credential: Credential,
    state: State,
    answered: bool,
}

impl Authenticatee {
    /// Attempt number N of the agent CLIENT, at the agent's address.
    pub fn new(n: u64, client: Upid, credential: Credential) -> Self {
        let addr: SocketAddr = client.addr;
        Authenticatee {
            pid: Upid::new(format!("{AUTHENTICATEE_ID}({n})"), addr),
            client,
            credential,
            state: State::Starting,
            answered: false,
        }
    }

    /// True until the attempt completed, was refused or broke.
    pub fn in_progress(&self) -> bool {
        self.state != State::Done
    }

    /// This attempt's libprocess pid (the sender of its messages).
    pub fn pid(&self) -> &Upid {
        &self.pid
    }

    /// The `AuthenticateMessage` that starts the attempt, for the master.
    pub fn start(&self) -> (String, Vec<u8>) {
        let msg = AuthenticateMessage {
            pid: self.client.to_string(),
        };
        (AuthenticateMessage::full_name(), msg.encode_to_vec())
    }

    /// Takes message NAME from FROM (sent to this attempt's pid).
    pub fn receive(&mut self, from: &Upid, name: &str, body: &[u8]) -> Step {
        if self.state == State::Done {
            return Step::Ignore;
        }
        let step = self.step(from, name, body);
        if !matches!(step, Step::Send { .. }) {
            self.state = State::Done;
        }
        step
    }

    fn step(&mut self, from: &Upid, name: &str, body: &[u8]) -> Step {
        let unexpected = |state: State| {
            Step::Error(AuthenticationError::Unexpected {
                message: name.to_string(),
                from: from.to_string(),
                state: state.describe(),
            })
        };
        let decode_error = |e: crate::proto::ProtoError| {
            Step::Error(AuthenticationError::Decode {
                message: name.to_string(),
                from: from.to_string(),
                cause: e.to_string(),
            })
        };
        let reply = |name: String, body: Vec<u8>| Step::Send {
            to: from.clone(),
            name,
            body,
        };
        match name {
            n if n == AuthenticationMechanismsMessage::full_name() => {
                if self.state != State::Starting {
                    return unexpected(self.state);
                }
                let msg = match crate::proto::decode::<AuthenticationMechanismsMessage>(body) {
                    Ok(m) => m,
                    Err(e) => return decode_error(e),
                };
                if !msg.mechanisms.iter().any(|m| m == MECHANISM) {
                    return Step::Error(AuthenticationError::NoMechanism {
                        offered: msg.mechanisms.join(","),
                    });
                }
                self.state = State::Stepping;
                // CRAM-MD5 has no initial response: empty data, as the
                // SASL client gives it.
                let start = AuthenticationStartMessage {
                    mechanism: MECHANISM.to_string(),
                    data: Some(Vec::new()),
                };
                reply(
                    AuthenticationStartMessage::full_name(),
                    start.encode_to_vec(),
                )
            }
            n if n == AuthenticationStepMessage::full_name() => {
                if self.state != State::Stepping {
                    return unexpected(self.state);
                }
                let msg = match crate::proto::decode::<AuthenticationStepMessage>(body) {
                    Ok(m) => m,
                    Err(e) => return decode_error(e),
                };
                // The challenge is answered once; a further step gets an
                // empty one, as a SASL client with nothing more to say.
                let data = if self.answered {
                    Vec::new()
                } else {
                    self.answered = true;
                    cram_md5_response(&self.credential, &msg.data)
                };
                let step = AuthenticationStepMessage { data };
                reply(AuthenticationStepMessage::full_name(), step.encode_to_vec())
            }
            "mesos.AuthenticationCompletedMessage" => {
                if self.state != State::Stepping {
                    return unexpected(self.state);
                }
                Step::Completed
            }
            "mesos.AuthenticationFailedMessage" => Step::Refused,
            n if n == AuthenticationErrorMessage::full_name() => {
                let error = crate::proto::decode::<AuthenticationErrorMessage>(body)
                    .ok()
                    .and_then(|m| m.error)
                    .unwrap_or_default();
                Step::Error(AuthenticationError::Master(error))
            }
            _ => unexpected(self.state),
        }
    }
}
