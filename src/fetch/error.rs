//! The fetcher's one error type. Every message names the URI (or the cache
//! path) and the step that failed, so a task can fail with it as is.

use crate::archive::ArchiveError;
use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("invalid uri {uri:?}: {reason}")]
    InvalidUri { uri: String, reason: String },
    /// The server refused, failed or could not be reached.
    #[error("fetch {uri}: {cause}")]
    Http {
        uri: String,
        cause: String,
        transient: bool,
    },
    /// The body broke off, stalled or was cut short.
    #[error("fetch {uri}: {cause}")]
    Body {
        uri: String,
        cause: String,
        #[source]
        source: io::Error,
    },
    #[error("fetch {uri}: artifact {size}is over the size cap of {cap}")]
    TooLarge {
        uri: String,
        /// "of 2.0 GiB " when known up front, else empty.
        size: String,
        cap: String,
    },
    #[error("fetch {uri}: {step} {path}: {source}")]
    Io {
        uri: String,
        step: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("fetch {uri}: extract: {source}")]
    Extract {
        uri: String,
        #[source]
        source: ArchiveError,
    },
    #[error("fetch {uri}: {path} is not readable by user {user}")]
    NotReadable {
        uri: String,
        path: PathBuf,
        user: String,
    },
    #[error("fetch cache {path}: {step}: {source}")]
    Cache {
        path: PathBuf,
        step: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("user {0:?} does not exist")]
    UnknownUser(String),
}

impl FetchError {
    /// Whether trying again may succeed: the connection failed, broke off
    /// or stalled, or the server said it was busy.
    pub fn is_transient(&self) -> bool {
        match self {
            FetchError::Http { transient, .. } => *transient,
            FetchError::Body { .. } => true,
            _ => false,
        }
    }

    pub(crate) fn io(
        uri: &str,
        step: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> FetchError {
        let (uri, path) = (uri.to_string(), path.into());
        move |source| FetchError::Io {
            uri,
            step,
            path,
            source,
        }
    }

    pub(crate) fn cache(
        step: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> FetchError {
        let path = path.into();
        move |source| FetchError::Cache { path, step, source }
    }
}
