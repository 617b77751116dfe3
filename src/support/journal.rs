//! Logging straight to systemd's journal, with structured fields.
//!
//! Under systemd (`$JOURNAL_STREAM` names the stderr the service manager
//! connected to the journal) each event goes to the journal's native socket
//! as one datagram of `KEY=value` fields: `MESSAGE` (the text, then the
//! event's other fields as `key=value`, as on stderr), `PRIORITY` (syslog's
//! number for the level), `SYSLOG_IDENTIFIER`, `CODE_FILE`, `CODE_LINE`,
//! `BUTTE_TARGET` (the module), and the Mesos ids an event names as fields
//! of their own: `FRAMEWORK_ID`, `EXECUTOR_ID`, `TASK_ID`, `CONTAINER_ID`
//! (from the fields `framework`, `executor`, `task`, `container` or their
//! `_id` forms). `journalctl -u butte-agent TASK_ID=web-1` then shows one
//! task's lines. The encoding is the journal's native protocol: a value
//! holding a newline is written as the key, a newline, its length as a
//! 64-bit little-endian number, the bytes and a newline.

use std::fmt::Write as _;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;

/// Where journald listens for native-protocol datagrams.
pub const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

/// The most bytes one datagram carries; a longer message is cut (the
/// journal's own limit for datagrams is larger, the socket buffer's
/// default smaller).
const MAX_DATAGRAM: usize = 96 * 1024;

/// Why the journal cannot be written to.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("connect to the journal at {path}")]
    Connect {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// A `tracing` layer that sends each event to the journal.
pub struct JournalLayer {
    socket: UnixDatagram,
    identifier: String,
}

impl JournalLayer {
    /// A layer writing to the journal socket at `path`, each entry tagged
    /// `SYSLOG_IDENTIFIER=identifier`.
    pub fn connect(path: &Path, identifier: &str) -> Result<JournalLayer, JournalError> {
        let socket = UnixDatagram::unbound()
            .and_then(|s| s.connect(path).map(|()| s))
            .map_err(|source| JournalError::Connect {
                path: path.display().to_string(),
                source,
            })?;
        Ok(JournalLayer {
            socket,
            identifier: identifier.to_string(),
        })
    }
}

/// Whether stderr is the journal stream systemd set up
/// (`$JOURNAL_STREAM` is `<device>:<inode>` of that stream).
pub fn stderr_is_journal() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(meta) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    stream.to_string_lossy() == format!("{}:{}", meta.dev(), meta.ino())
}

/// Syslog's priority for a level, as journald reads `PRIORITY`.
fn priority(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "3",
        Level::WARN => "4",
        Level::INFO => "6",
        _ => "7",
    }
}

/// The journal field an event field names a Mesos id in.
fn id_field(name: &str) -> Option<&'static str> {
    match name {
        "framework" | "framework_id" => Some("FRAMEWORK_ID"),
        "executor" | "executor_id" => Some("EXECUTOR_ID"),
        "task" | "task_id" => Some("TASK_ID"),
        "container" | "container_id" => Some("CONTAINER_ID"),
        _ => None,
    }
}

/// Collects an event's message, its other fields, and the ids.
#[derive(Default)]
struct Fields {
    message: String,
    rest: String,
    ids: Vec<(&'static str, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.record(field, value.to_string(), format!("{value:?}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let shown = format!("{value:?}");
        self.record(field, shown.clone(), shown);
    }
}

impl Fields {
    /// `plain` is the value as an id field holds it, `shown` as the
    /// message's `key=value` shows it.
    fn record(&mut self, field: &Field, plain: String, shown: String) {
        if field.name() == "message" {
            self.message = plain;
            return;
        }
        let _ = write!(self.rest, " {}={shown}", field.name());
        if let Some(key) = id_field(field.name()) {
            self.ids.push((key, plain.trim_matches('"').to_string()));
        }
    }
}

/// Appends one field in the journal's native encoding.
fn put(out: &mut Vec<u8>, key: &str, value: &str) {
    out.extend_from_slice(key.as_bytes());
    if value.contains('\n') {
        out.push(b'\n');
        out.extend_from_slice(&(value.len() as u64).to_le_bytes());
    } else {
        out.push(b'=');
    }
    out.extend_from_slice(value.as_bytes());
    out.push(b'\n');
}

/// The datagram for one event.
fn entry(identifier: &str, event: &Event<'_>) -> Vec<u8> {
    let meta = event.metadata();
    let mut fields = Fields::default();
    event.record(&mut fields);
    let mut message = fields.message;
    message.push_str(&fields.rest);
    if message.len() > MAX_DATAGRAM {
        let mut cut = MAX_DATAGRAM;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push_str(" [cut]");
    }
    let mut out = Vec::with_capacity(message.len() + 256);
    put(&mut out, "MESSAGE", &message);
    put(&mut out, "PRIORITY", priority(meta.level()));
    put(&mut out, "SYSLOG_IDENTIFIER", identifier);
    put(&mut out, "BUTTE_TARGET", meta.target());
    if let Some(file) = meta.file() {
        put(&mut out, "CODE_FILE", file);
    }
    if let Some(line) = meta.line() {
        put(&mut out, "CODE_LINE", &line.to_string());
    }
    for (key, value) in &fields.ids {
        put(&mut out, key, value);
    }
    out
}

impl<S: Subscriber> tracing_subscriber::Layer<S> for JournalLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        // A full journal drops the entry, as journald itself does under
        // load; logging never blocks or fails the agent.
        let _ = self.socket.send(&entry(&self.identifier, event));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use tracing_subscriber::prelude::*;

    /// Parses a native-protocol datagram into its fields.
    fn parse(mut data: &[u8]) -> HashMap<String, String> {
        let mut fields = HashMap::new();
        while !data.is_empty() {
            let end = data.iter().position(|&b| b == b'\n').unwrap();
            let line = &data[..end];
            if let Some(eq) = line.iter().position(|&b| b == b'=') {
                fields.insert(
                    String::from_utf8(line[..eq].to_vec()).unwrap(),
                    String::from_utf8(line[eq + 1..].to_vec()).unwrap(),
                );
                data = &data[end + 1..];
            } else {
                let key = String::from_utf8(line.to_vec()).unwrap();
                let len = u64::from_le_bytes(data[end + 1..end + 9].try_into().unwrap()) as usize;
                let value = &data[end + 9..end + 9 + len];
                assert_eq!(data[end + 9 + len], b'\n');
                fields.insert(key, String::from_utf8(value.to_vec()).unwrap());
                data = &data[end + 10 + len..];
            }
        }
        fields
    }

    fn journal() -> (tempfile::TempDir, UnixDatagram, JournalLayer) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("socket");
        let server = UnixDatagram::bind(&path).unwrap();
        let layer = JournalLayer::connect(&path, "butte").unwrap();
        (dir, server, layer)
    }

    fn receive(server: &UnixDatagram) -> HashMap<String, String> {
        let mut buf = vec![0u8; 256 * 1024];
        let n = server.recv(&mut buf).unwrap();
        parse(&buf[..n])
    }

    #[test]
    fn events_carry_the_mesos_ids_as_fields_of_their_own() {
        let (_dir, server, layer) = journal();
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let task = "web-1".to_string();
            tracing::warn!(
                framework = "fw-0000",
                executor = %"web-1",
                task,
                container = "c-42",
                pid = 7,
                "executor terminated"
            );
        });
        let f = receive(&server);
        assert_eq!(f["FRAMEWORK_ID"], "fw-0000");
        assert_eq!(f["EXECUTOR_ID"], "web-1");
        assert_eq!(f["TASK_ID"], "web-1");
        assert_eq!(f["CONTAINER_ID"], "c-42");
        assert_eq!(f["PRIORITY"], "4");
        assert_eq!(f["SYSLOG_IDENTIFIER"], "butte");
        assert!(f["BUTTE_TARGET"].contains("journal"), "{f:?}");
        assert!(f["CODE_LINE"].parse::<u32>().is_ok(), "{f:?}");
        // The message reads as the stderr line does.
        assert!(
            f["MESSAGE"].starts_with("executor terminated framework=\"fw-0000\""),
            "{f:?}"
        );
        assert!(f["MESSAGE"].contains(" pid=7"), "{f:?}");
    }

    #[test]
    fn a_message_with_newlines_is_sent_in_the_binary_form() {
        let (_dir, server, layer) = journal();
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!("first line\nsecond line");
        });
        let f = receive(&server);
        assert_eq!(f["MESSAGE"], "first line\nsecond line");
        assert_eq!(f["PRIORITY"], "3");
        assert!(!f.contains_key("TASK_ID"));
    }

    #[test]
    fn a_huge_message_is_cut_to_fit_one_datagram() {
        let (_dir, server, layer) = journal();
        let subscriber = tracing_subscriber::registry().with(layer);
        let long = "é".repeat(MAX_DATAGRAM);
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("{long}");
        });
        let f = receive(&server);
        assert!(f["MESSAGE"].ends_with(" [cut]"));
        assert!(f["MESSAGE"].len() <= MAX_DATAGRAM + 6);
        assert_eq!(f["PRIORITY"], "6");
    }

    #[test]
    fn a_missing_socket_is_an_error_naming_it() {
        let err = JournalLayer::connect(Path::new("/nonexistent/journal"), "butte")
            .err()
            .unwrap();
        assert!(err.to_string().contains("/nonexistent/journal"), "{err}");
    }

    #[test]
    fn stderr_is_not_the_journal_without_journal_stream() {
        // The test runner's stderr is no journal stream of ours.
        if std::env::var_os("JOURNAL_STREAM").is_none() {
            assert!(!stderr_is_journal());
        }
    }
}
