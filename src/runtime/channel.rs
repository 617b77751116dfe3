//! The typed channel between the runtime (parent) and the launch helper
//! (child): length-prefixed JSON frames over a Unix socket pair.
//!
//! ```text
//! parent                          helper (pid 1 of the new namespaces)
//!   | -- ToHelper::Launch ---------> |  joins its cgroup, sets up mounts,
//!   |                                |  user, caps, ...
//!   | <-- FromHelper::Failed -----   |  (a step failed: exits)
//!   | <-- FromHelper::Exec --------  |  about to exec the task
//!   | <-- EOF (fd closed on exec) -  |
//! ```
//! A frame whose length is `0xFFFFFFFF` is written by the cloned child when
//! it could not exec the helper itself; the next 4 bytes are the errno.

use super::spec::SandboxSpec;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::io::{self, Read, Write};
use std::path::PathBuf;

/// Messages to the helper.
#[derive(Debug, Serialize, Deserialize)]
pub enum ToHelper {
    Launch {
        spec: Box<SandboxSpec>,
        /// cgroup files the helper writes `0` to, first of all, to move
        /// itself into the sandbox's cgroup (empty when it was cloned
        /// straight into it).
        join_cgroup: Vec<PathBuf>,
    },
    /// Start a process in the namespaces of a running one (see `join`).
    Join {
        spec: Box<super::join::JoinSpec>,
        /// The target's cgroup files to write `0` to.
        join_cgroup: Vec<PathBuf>,
    },
}

/// Messages from the helper.
#[derive(Debug, Serialize, Deserialize)]
pub enum FromHelper {
    /// Everything is set up; the next event is EOF (exec succeeded) or a
    /// `Failed` (exec failed).
    Exec,
    Failed(HelperFailure),
    /// `Join`: the process started, with its pid; its own `Exec` or
    /// `Failed` follows.
    Started {
        pid: i32,
    },
}

/// What went wrong in the helper, with the step that failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{step}: {message}")]
pub struct HelperFailure {
    /// The step, e.g. `mount proc on /proc` or `exec /bin/foo`.
    pub step: String,
    pub message: String,
    pub kind: FailureKind,
}

/// The class of a launch failure; decides the exit code of `butte run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FailureKind {
    /// Setting up the sandbox failed.
    Setup,
    /// The command does not exist in the sandbox.
    NotFound,
    /// The command exists but cannot be executed (a directory, no x bit).
    NotExecutable,
}

/// One received frame.
#[derive(Debug)]
pub enum Frame<T> {
    Message(T),
    /// The child could not exec the helper binary (errno).
    ExecFailed(i32),
    Eof,
}

const MAX_FRAME: u32 = 64 << 20;
const EXEC_FAILED_MARK: u32 = u32::MAX;

/// Writes one message.
pub fn send<T: Serialize>(w: &mut impl Write, msg: &T) -> io::Result<()> {
    let body = serde_json::to_vec(msg).map_err(io::Error::other)?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_le_bytes());
    frame.extend_from_slice(&body);
    w.write_all(&frame)
}

/// Reads one message; `Eof` when the other side closed before a frame.
pub fn recv<T: DeserializeOwned>(r: &mut impl Read) -> io::Result<Frame<T>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(Frame::Eof),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len);
    if len == EXEC_FAILED_MARK {
        let mut errno = [0u8; 4];
        r.read_exact(&mut errno)?;
        return Ok(Frame::ExecFailed(i32::from_le_bytes(errno)));
    }
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes"),
        ));
    }
    let mut body = vec![0u8; len as usize];
    r.read_exact(&mut body)?;
    serde_json::from_slice(&body)
        .map(Frame::Message)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_eof() {
        let mut buf = Vec::new();
        let f = HelperFailure {
            step: "mount proc on /proc".into(),
            message: "EPERM".into(),
            kind: FailureKind::Setup,
        };
        send(&mut buf, &FromHelper::Failed(f.clone())).unwrap();
        send(&mut buf, &FromHelper::Exec).unwrap();
        let mut r = &buf[..];
        assert!(matches!(recv(&mut r).unwrap(), Frame::Message(FromHelper::Failed(g)) if g == f));
        assert!(matches!(
            recv(&mut r).unwrap(),
            Frame::Message(FromHelper::Exec)
        ));
        assert!(matches!(recv::<FromHelper>(&mut r).unwrap(), Frame::Eof));
    }

    #[test]
    fn exec_failure_mark_and_limits() {
        let mut r: &[u8] = &[0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0];
        assert!(matches!(
            recv::<FromHelper>(&mut r).unwrap(),
            Frame::ExecFailed(2)
        ));
        let mut r: &[u8] = &[0, 0, 0, 0x7f];
        assert!(recv::<FromHelper>(&mut r).is_err());
        let mut r: &[u8] = &[3, 0, 0, 0, b'{', b'x'];
        assert!(recv::<FromHelper>(&mut r).is_err());
    }
}
