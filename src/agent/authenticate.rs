//! `--credential`: authentication with the master before every
//! (re-)registration, driven as Mesos' agent drives it.
//!
//! After a master is detected (and the random registration delay), an
//! attempt starts with a timeout drawn from [min, min + 2 *
//! `--authentication_backoff_factor`] (`--authentication_timeout_min`);
//! when it runs out without success the next attempt starts at once with a
//! range twice as wide, up to `--authentication_timeout_max`. A refusal
//! (a wrong credential) or an error ends the attempt at once and is
//! logged; the retry waits for the attempt's timeout (Mesos exits on a
//! refusal instead). Registration messages are sent only once an attempt
//! completed, so the agent never registers unauthenticated.

use super::core::{Agent, Link, Timer};
use crate::wire::authentication::{Authenticatee, Step};
use crate::wire::Message;
use std::time::Duration;

/// Where authentication with the current master stands.
#[derive(Debug, Default)]
pub struct AuthState {
    /// An attempt completed since the master was detected (or the link
    /// was last lost).
    pub authenticated: bool,
    /// The current attempt, if any.
    pub attempt: Option<Authenticatee>,
    /// Bumped to cancel the timers of earlier attempts.
    pub generation: u64,
    /// Attempts so far: numbers the `crammd5-authenticatee(N)` processes.
    pub attempts: u64,
}

impl Agent {
    /// Starts authenticating after DELAY; registration follows success.
    pub(super) fn start_authentication(&mut self, delay: Duration) {
        self.auth.authenticated = false;
        self.auth.attempt = None;
        self.auth.generation += 1;
        let min = self.config.authentication_timeout_min;
        let max = (min + self.config.authentication_backoff_factor * 2)
            .min(self.config.authentication_timeout_max);
        self.after(
            delay,
            Timer::Authenticate {
                generation: self.auth.generation,
                min,
                max,
            },
        );
    }

    /// Forgets any authentication (no master, or a new one).
    pub(super) fn cancel_authentication(&mut self) {
        self.auth.authenticated = false;
        self.auth.attempt = None;
        self.auth.generation += 1;
    }

    /// One attempt, timing out after a random time in [min, max].
    pub fn authenticate(&mut self, min: Duration, max: Duration) {
        let (Some(master), Some(credential)) = (self.master.clone(), self.credential.clone())
        else {
            return;
        };
        if self.link != Link::Registering || self.shutting_down {
            return;
        }
        self.auth.attempts += 1;
        let attempt = Authenticatee::new(self.auth.attempts, self.self_pid.clone(), credential);
        tracing::info!(
            %master,
            principal = self.credential.as_ref().map(|c| c.principal.as_str()),
            authenticatee = %attempt.pid(),
            "authenticating with the master (CRAM-MD5)"
        );
        let (name, body) = attempt.start();
        self.transport.send_as(attempt.pid(), &master, &name, body);
        self.auth.attempt = Some(attempt);
        self.auth.generation += 1;
        let timeout = min + super::master::jitter(max.saturating_sub(min));
        self.after(
            timeout,
            Timer::AuthenticationTimeout {
                generation: self.auth.generation,
                min,
                max,
            },
        );
    }

    /// The attempt's time is up (it failed, or nothing came): the next one
    /// at once, its range twice as wide (up to the maximum).
    pub fn authentication_timed_out(&mut self, min: Duration, max: Duration) {
        if self.auth.authenticated {
            return;
        }
        if self.auth.attempt.take().is_some_and(|a| a.in_progress()) {
            tracing::warn!("authentication with the master timed out; retrying");
        }
        let wider = (min + max.saturating_sub(min) * 2).min(self.config.authentication_timeout_max);
        self.authenticate(min, wider.max(min));
    }

    /// A message for one of the authenticatee processes.
    pub fn authentication_message(&mut self, m: Message) {
        let Some(attempt) = self.auth.attempt.as_mut().filter(|a| a.pid().id == m.to) else {
            tracing::debug!(
                to = m.to,
                name = m.name,
                "ignoring a message for an authentication attempt that is over"
            );
            return;
        };
        if !self
            .master
            .as_ref()
            .is_some_and(|master| master.addr == m.from.addr)
        {
            tracing::warn!(from = %m.from, name = m.name, "ignoring an authentication message that is not from the current master");
            return;
        }
        match attempt.receive(&m.from, &m.name, &m.body) {
            Step::Send { to, name, body } => {
                let from = attempt.pid().clone();
                self.transport.send_as(&from, &to, &name, body);
            }
            Step::Completed => {
                tracing::info!(master = %m.from, "authenticated with the master");
                self.auth.authenticated = true;
                self.auth.attempt = None;
                self.auth.generation += 1;
                self.register_now();
            }
            Step::Refused => {
                let principal = self
                    .credential
                    .as_ref()
                    .map(|c| c.principal.clone())
                    .unwrap_or_default();
                tracing::error!(
                    master = %m.from,
                    principal,
                    "the master refused authentication as {principal:?}: check --credential; \
                     retrying after the authentication timeout"
                );
            }
            Step::Error(e) => {
                tracing::warn!(master = %m.from, "authentication with the master failed: {e}; retrying after the authentication timeout");
            }
            Step::Ignore => {}
        }
    }
}
