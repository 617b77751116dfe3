//! Why a `--master` value or a leader's ZooKeeper node was refused.

/// The errors of master detection.
#[derive(Debug, thiserror::Error)]
pub enum DetectorError {
    #[error("--master {master:?}: {reason}")]
    Spec { master: String, reason: String },
    #[error("--master {path}: read the file: {source}")]
    File {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("leader node {node}: {reason}")]
    LeaderData { node: String, reason: String },
}

impl DetectorError {
    pub(super) fn spec(master: &str, reason: impl Into<String>) -> Self {
        DetectorError::Spec {
            master: super::spec::redact(master),
            reason: reason.into(),
        }
    }

    pub(super) fn leader(node: &str, reason: impl Into<String>) -> Self {
        DetectorError::LeaderData {
            node: node.to_string(),
            reason: reason.into(),
        }
    }
}
