//! The systemd readiness protocol (`sd_notify(3)`), without libsystemd.
//!
//! Under a unit with `Type=notify`, systemd passes the path of a datagram
//! socket in `$NOTIFY_SOCKET` (a file path, or an abstract name written
//! with a leading `@`); the service sends newline-separated `KEY=VALUE`
//! assignments to it: `READY=1` once it is up, `STATUS=...` for
//! `systemctl status`. Outside systemd the variable is unset and every call
//! does nothing.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// Why a notification could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("invalid NOTIFY_SOCKET {0:?}: expected an absolute path or an @abstract name")]
    Address(String),
    #[error("send to NOTIFY_SOCKET {socket:?}")]
    Send {
        socket: String,
        #[source]
        source: std::io::Error,
    },
}

/// Sends `state` (such as `READY=1\nSTATUS=registered`) to the socket named
/// by `$NOTIFY_SOCKET`. Returns whether a notification was sent: `false`
/// when the variable is unset (not started by systemd as `Type=notify`).
pub fn notify(state: &str) -> Result<bool, NotifyError> {
    match std::env::var_os("NOTIFY_SOCKET") {
        Some(socket) if !socket.is_empty() => send(&socket, state).map(|()| true),
        _ => Ok(false),
    }
}

/// Sends `state` to the notification socket `socket`.
pub fn send(socket: &OsStr, state: &str) -> Result<(), NotifyError> {
    let name = socket.to_string_lossy().into_owned();
    let addr = address(socket.as_bytes()).ok_or_else(|| NotifyError::Address(name.clone()))?;
    let sock = UnixDatagram::unbound().map_err(|source| NotifyError::Send {
        socket: name.clone(),
        source,
    })?;
    sock.send_to_addr(state.as_bytes(), &addr)
        .map(|_| ())
        .map_err(|source| NotifyError::Send {
            socket: name,
            source,
        })
}

/// The socket address `$NOTIFY_SOCKET` names: `@name` is Linux' abstract
/// namespace, anything else must be an absolute path.
/// How often to say `WATCHDOG=1` when systemd watches this process
/// (`WatchdogSec=`): half of `$WATCHDOG_USEC`, as `sd_watchdog_enabled`
/// advises, when `$WATCHDOG_PID` is unset or names this process; `None`
/// when no watchdog is on.
pub fn watchdog_interval() -> Option<Duration> {
    let usec = std::env::var("WATCHDOG_USEC").ok();
    let pid = std::env::var("WATCHDOG_PID").ok();
    watchdog_from(usec.as_deref(), pid.as_deref(), std::process::id())
}

fn watchdog_from(usec: Option<&str>, pid: Option<&str>, own: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|&u| u > 0)?;
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok()? != own {
            return None;
        }
    }
    Some(Duration::from_micros(usec / 2))
}

fn address(socket: &[u8]) -> Option<SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    match socket {
        [b'@', name @ ..] if !name.is_empty() => SocketAddr::from_abstract_name(name).ok(),
        [b'/', ..] => SocketAddr::from_pathname(OsStr::from_bytes(socket)).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watchdog_is_pinged_at_half_its_timeout_for_this_process_only() {
        let half = Some(Duration::from_secs(30));
        assert_eq!(watchdog_from(Some("60000000"), None, 7), half);
        assert_eq!(watchdog_from(Some("60000000"), Some("7"), 7), half);
        assert_eq!(watchdog_from(Some("60000000"), Some("8"), 7), None);
        assert_eq!(watchdog_from(None, None, 7), None);
        assert_eq!(watchdog_from(Some("0"), None, 7), None);
        assert_eq!(watchdog_from(Some("soon"), None, 7), None);
    }

    #[test]
    fn sends_to_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        send(path.as_os_str(), "READY=1\nSTATUS=registered").unwrap();
        let mut buf = [0u8; 64];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=registered");
    }

    #[test]
    fn sends_to_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("butte-notify-test-{}", std::process::id());
        let server =
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
                .unwrap();
        send(OsStr::new(&format!("@{name}")), "READY=1").unwrap();
        let mut buf = [0u8; 16];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
    }

    #[test]
    fn refuses_a_relative_or_empty_name() {
        for bad in ["notify", "@", ""] {
            let err = send(OsStr::new(bad), "READY=1").unwrap_err();
            assert!(
                err.to_string().starts_with("invalid NOTIFY_SOCKET"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn a_missing_socket_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gone");
        let err = send(path.as_os_str(), "READY=1").unwrap_err();
        assert!(err.to_string().contains("gone"), "{err}");
    }
}
