//! Crash points for the chaos harness (issue 18): `BUTTE_CRASH_AT=NAME:N`
//! makes the process SIGKILL itself the N-th time it passes the crash
//! point NAME, so that a test can stop the agent at an exact moment a
//! random kill only reaches by chance (between a checkpoint's temporary
//! file and its rename, in the middle of a status update record, between
//! an executor's fork and the checkpoint of its pid). Without the variable
//! a point costs one atomic load. The names are listed in [`POINTS`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// Every crash point, with where it is.
pub const POINTS: &[(&str, &str)] = &[
    (
        "checkpoint",
        "a checkpoint file written and synced, not yet renamed into place",
    ),
    (
        "entry",
        "a new meta/ entry built under its temporary name, not yet renamed",
    ),
    (
        "update-log",
        "a status update log record about to be written",
    ),
    (
        "update-log-torn",
        "half of a status update log record written",
    ),
    ("forked", "an executor forked, its pid not yet checkpointed"),
    (
        "forwarded",
        "a status update sent to the master, its ack not yet received",
    ),
];

struct Armed {
    name: String,
    at: u64,
    hits: AtomicU64,
}

fn armed() -> Option<&'static Armed> {
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let spec = std::env::var("BUTTE_CRASH_AT").ok()?;
            let (name, at) = spec.split_once(':').unwrap_or((spec.as_str(), "1"));
            Some(Armed {
                name: name.to_string(),
                at: at.parse().ok().filter(|n| *n > 0)?,
                hits: AtomicU64::new(0),
            })
        })
        .as_ref()
}

/// True the N-th time NAME is passed, when armed for it: the caller then
/// does its partial work and calls [`now`].
pub fn due(name: &str) -> bool {
    let Some(a) = armed() else { return false };
    a.name == name && a.hits.fetch_add(1, Ordering::SeqCst) + 1 == a.at
}

/// Dies here, the N-th time NAME is passed, when armed for it.
pub fn point(name: &str) {
    if due(name) {
        now(name);
    }
}

/// Dies at once, as by `kill -9`: no destructor, no flush, no cleanup.
pub fn now(name: &str) -> ! {
    eprintln!("butte: BUTTE_CRASH_AT: crashing at {name}");
    let _ = nix::sys::signal::kill(nix::unistd::getpid(), nix::sys::signal::Signal::SIGKILL);
    // SIGKILL cannot be caught; should it not be delivered yet, wait.
    loop {
        std::thread::park();
    }
}
