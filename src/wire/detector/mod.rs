//! Master detection: which master leads now.
//!
//! `--master` is `HOST:PORT` (or `master@HOST:PORT`), a ZooKeeper URL
//! `zk://[user:pass@]host1:2181,host2:2181/path`, or `file:///path` naming a
//! file that holds either. The agent sees only what [`spawn`]'s callback
//! says: `Some(pid)` when a (new) master leads, `None` when none does. Each
//! change is said once.
//!
//! ZooKeeper detection follows Mesos' group and detector: the masters are
//! the sequential children of the path (`json.info_0000000007`: label,
//! `_`, sequence; a bare sequence is the oldest form), the leader is the
//! one with the lowest sequence, and its node holds its `MasterInfo` as
//! JSON (`json.info`), as protobuf (`info`) or, with no label, its pid as
//! text. The children are watched; when the session expires (ZooKeeper lost
//! it), a new session is made and detection starts over, without dropping
//! the leader the agent follows unless another one is found. `user:pass`
//! is added to the session as `digest` authentication.

mod error;
mod members;
mod spec;
mod zookeeper;

pub use error::DetectorError;
pub use spec::{redact as redacted, MasterSpec, ZkUrl};

use super::Upid;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Mesos' `--zk_session_timeout` default.
pub const DEFAULT_ZK_SESSION_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts detecting the leading master of `spec` on the current tokio
/// runtime; `report` is called on every change of leader (never twice in a
/// row with the same value). A static master is reported at once.
pub fn spawn<F>(spec: MasterSpec, session_timeout: Duration, report: F)
where
    F: Fn(Option<Upid>) + Send + Sync + 'static,
{
    let reporter = Reporter::new(report);
    match spec {
        MasterSpec::Static(pid) => reporter.report(Some(pid)),
        MasterSpec::ZooKeeper(url) => {
            tokio::spawn(zookeeper::detect(url, session_timeout, reporter));
        }
    }
}

/// Says each change of leader once.
#[derive(Clone)]
pub(crate) struct Reporter {
    // A std mutex: nothing awaits while it is held.
    last: Arc<Mutex<Option<Option<Upid>>>>,
    report: Arc<dyn Fn(Option<Upid>) + Send + Sync>,
}

impl Reporter {
    fn new<F: Fn(Option<Upid>) + Send + Sync + 'static>(report: F) -> Self {
        Reporter {
            last: Arc::default(),
            report: Arc::new(report),
        }
    }

    pub(crate) fn report(&self, leader: Option<Upid>) {
        {
            let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
            if last.as_ref() == Some(&leader) {
                return;
            }
            *last = Some(leader.clone());
        }
        match &leader {
            Some(pid) => tracing::info!(master = %pid, "a new leading master is detected"),
            None => tracing::warn!("no leading master is detected"),
        }
        (self.report)(leader);
    }
}

#[cfg(test)]
mod tests;
