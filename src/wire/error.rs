//! Why a pid or an inbound libprocess message was refused.

/// Longest piece of untrusted text an error repeats (a path or a header can
/// be hundreds of kilobytes; a log line should not be).
const CLIP: usize = 120;

/// The errors of the libprocess transport. Every variant is about bytes that
/// came from elsewhere, so each repeats at most [`CLIP`] characters of them.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("invalid libprocess pid {text:?}: {reason}")]
    Upid { text: String, reason: &'static str },
    #[error("request is not a libprocess message: {reason}")]
    NotAMessage { reason: &'static str },
    #[error("invalid libprocess message path {path:?}: {reason}")]
    Path { path: String, reason: &'static str },
    #[error("invalid libprocess sender in the {header} header")]
    Sender {
        header: &'static str,
        #[source]
        source: Box<WireError>,
    },
    #[error("libprocess message for unknown process {to:?} (this is {local:?})")]
    UnknownProcess { to: String, local: String },
    #[error("libprocess message body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("reading the libprocess message body failed: {cause}")]
    Body { cause: String },
}

impl WireError {
    pub(crate) fn upid(text: &str, reason: &'static str) -> Self {
        WireError::Upid {
            text: clip(text),
            reason,
        }
    }

    pub(crate) fn path(path: &str, reason: &'static str) -> Self {
        WireError::Path {
            path: clip(path),
            reason,
        }
    }
}

/// At most [`CLIP`] characters of `text`, with `...` when cut.
pub(crate) fn clip(text: &str) -> String {
    match text.char_indices().nth(CLIP) {
        None => text.to_string(),
        Some((end, _)) => format!("{}...", &text[..end]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_untrusted_text_is_clipped_in_messages() {
        let long = "x".repeat(10_000);
        let msg = WireError::path(&long, "missing message name").to_string();
        assert!(msg.len() < 200, "{msg}");
        assert!(msg.contains("...\""));
        assert_eq!(clip("short"), "short");
    }

    #[test]
    fn sender_error_names_the_header_and_keeps_the_cause() {
        let err = WireError::Sender {
            header: "Libprocess-From",
            source: Box::new(WireError::upid("nope", "missing '@'")),
        };
        assert_eq!(
            err.to_string(),
            "invalid libprocess sender in the Libprocess-From header"
        );
        let cause = std::error::Error::source(&err).map(|e| e.to_string());
        assert_eq!(
            cause.as_deref(),
            Some("invalid libprocess pid \"nope\": missing '@'")
        );
    }
}
