//! Failures of the Mesos containerizer, each naming the container and the
//! step that failed.

use crate::containerizer::provisioner::ProvisionError;
use crate::fetch::FetchError;
use crate::runtime::RuntimeError;
use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ContainerizerError {
    #[error("start the runtime: {0}")]
    Setup(#[source] RuntimeError),
    #[error("container {id}: {what} is not supported: {reason}")]
    Unsupported {
        id: String,
        what: String,
        reason: String,
    },
    #[error("container {id}: invalid {what}: {reason}")]
    Invalid {
        id: String,
        what: String,
        reason: String,
    },
    #[error("container {id}: user {user:?} does not exist on this host")]
    NoSuchUser { id: String, user: String },
    #[error("container {id}: sandbox {path}: {source}")]
    Sandbox {
        id: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("container {id}: the work dir's filesystem is full ({free} bytes left under {path}); launches resume once space is freed")]
    DiskFull {
        id: String,
        path: PathBuf,
        free: u64,
    },
    #[error("container {id}: fetch: {source}")]
    Fetch {
        id: String,
        #[source]
        source: FetchError,
    },
    #[error("container {id}: provision the image of {what}: {source}")]
    Provision {
        id: String,
        what: String,
        #[source]
        source: Box<ProvisionError>,
    },
    #[error("container {id}: {step} {path}: {source}")]
    RuntimeDir {
        id: String,
        step: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("container {id}: {step}: {source}")]
    Runtime {
        id: String,
        step: &'static str,
        #[source]
        source: RuntimeError,
    },
    #[error("container {id}: {source}")]
    Network {
        id: String,
        #[source]
        source: Box<crate::containerizer::network::NetworkError>,
    },
    #[error("container {id}: {source}")]
    Docker {
        id: String,
        #[source]
        source: crate::containerizer::docker::DockerError,
    },
    #[error("container {0} already exists")]
    Exists(String),
    #[error("unknown container {0}")]
    Unknown(String),
    #[error("image garbage collection: {source}")]
    ImageGc {
        #[source]
        source: crate::image::ImageError,
    },
    #[error("container {id}: wait: {source}")]
    Wait {
        id: String,
        #[source]
        source: io::Error,
    },
}
