//! The agent (L4): registers with a Mesos master over libprocess, runs the
//! tasks it is given in executors launched by the containerizer, serves
//! the v1 executor API, and delivers every status update reliably.
//!
//! One tokio task ([`core::Agent`]) owns all mutable state; the transport,
//! the HTTP handlers, the containerizer's waits and the timers talk to it
//! through one channel of [`core::Input`]s.

mod authenticate;
mod compatibility;
mod config;
mod core;
mod drain;
mod executors;
pub mod flags;
#[doc(hidden)]
pub mod fuzz;
mod gc;
mod http;
mod master;
mod messages;
mod nested;
mod operator;
mod records;
mod recovery;
mod resources;
mod standalone;
mod state;
pub mod status;
mod tasks;
mod updates;

pub use compatibility::ReconfigurationPolicy;
pub use config::{
    executor_environment_variables, AgentConfig, DiskConfig, RecoverMode, EXECUTOR_SECRET_KEY_FILE,
};
pub use operator::logging::{install as install_log_control, SetFilter};

use std::io;
use std::path::PathBuf;

/// Failures that stop the agent.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("--{flag}: {message}")]
    Flag { flag: &'static str, message: String },
    #[error("resolve master {master}: {message}")]
    Master { master: String, message: String },
    #[error("listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("start the agent's runtime: {0}")]
    Runtime(#[source] io::Error),
    #[error("containerizer: {0}")]
    Containerizer(#[from] crate::containerizer::mesos::ContainerizerError),
    #[error("recover the checkpointed state under {path}: {source}")]
    Recover {
        path: PathBuf,
        #[source]
        source: crate::state::StateError,
    },
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] crate::state::StateError),
    #[error("--executor_secret_key: {0}")]
    SecretKey(#[source] crate::support::jwt::JwtError),
    #[error("--recover=cleanup: {left} containers still there after {waited:?}: {ids}")]
    Cleanup {
        left: usize,
        waited: std::time::Duration,
        ids: String,
    },
    #[error(
        "recover agent {id}: {message}; to keep the agent id, restore the previous \
         configuration (or, if it only grew, use --reconfiguration_policy=additive); \
         to register as a new agent instead, remove {latest} (its executors are then \
         not recovered)"
    )]
    Reconfigured {
        id: String,
        message: String,
        latest: PathBuf,
    },
    #[error("the master {master} registered this agent as {given}, but it is {ours}")]
    WrongId {
        master: String,
        given: String,
        ours: String,
    },
}

/// Runs the agent until it is told to stop (SIGTERM: leave the executors
/// running for the next start to reconnect to; SIGUSR1 or the master's
/// ShutdownMessage: kill everything, unregister, exit).
pub fn run(config: AgentConfig) -> Result<(), AgentError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(64)
        .enable_all()
        .build()
        .map_err(AgentError::Runtime)?;
    runtime.block_on(core::Agent::start(config))
}
