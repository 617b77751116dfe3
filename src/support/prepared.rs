//! The messages between a built-in executor and the `butte enter
//! --prepare`/`--serve` processes it starts for its image tasks: one JSON
//! object a line over a Unix socket (the prepared process's stdin).
//!
//! ```text
//! enter --prepare: (mounts, pivot, capabilities down to the default set)
//!   -> Ready | Failed        executor -> Run      -> exec of the task
//! enter --serve:   (the same)
//!   -> Ready | Failed        executor -> Run      -> Finished   (repeated)
//! ```
//! End of file instead of a message means the other side is gone: a
//! prepared process exits without running anything; an executor reports
//! the task or check as failed.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::io::{self, BufRead, Write};

/// The longest message accepted (a command line and its environment).
pub const MAX_MESSAGE: usize = 4 << 20;

/// What a prepared process says once its root filesystem is ready.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Prepared {
    /// Pivoted; capabilities reduced to the default set; waiting.
    Ready,
    /// A step failed, named with its cause; the process exits.
    Failed(String),
}

/// The command to run inside a prepared root filesystem.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Run {
    /// The program (looked up in the task's `PATH` when it holds no `/`)
    /// followed by its arguments.
    pub argv: Vec<String>,
    /// The complete environment.
    pub env: Vec<(String, String)>,
    /// Working directory inside the root filesystem.
    pub cwd: Option<String>,
    /// User to run as: a name or `uid[:gid]` of the image.
    pub user: Option<String>,
    /// `--serve` only: kill the command (its process group) after this
    /// many milliseconds.
    pub timeout_ms: Option<u64>,
}

/// How a command run by `--serve` ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Finished {
    Code(i32),
    Signal(i32),
    /// Killed when its timeout passed.
    TimedOut,
    /// Could not be started.
    Error(String),
}

/// Writes one message.
pub fn send<T: Serialize>(w: &mut impl Write, message: &T) -> io::Result<()> {
    let mut line = serde_json::to_vec(message).map_err(io::Error::other)?;
    line.push(b'\n');
    w.write_all(&line)?;
    w.flush()
}

/// Reads one message; `None` at end of file.
pub fn recv<T: DeserializeOwned, R: BufRead>(r: &mut R) -> io::Result<Option<T>> {
    let mut line = Vec::new();
    let n = io::Read::take(&mut *r, MAX_MESSAGE as u64 + 1).read_until(b'\n', &mut line)?;
    if n == 0 {
        return Ok(None);
    }
    if !line.ends_with(b"\n") {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            if line.len() > MAX_MESSAGE {
                "message too long"
            } else {
                "message cut short"
            },
        ));
    }
    serde_json::from_slice(&line)
        .map(Some)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_one_a_line() {
        let run = Run {
            argv: vec!["sh".into(), "-c".into(), "echo \"a\nb\"".into()],
            env: vec![("PATH".into(), "/bin".into())],
            cwd: Some("/app".into()),
            user: Some("1000:1000".into()),
            timeout_ms: None,
        };
        let mut buf = Vec::new();
        send(&mut buf, &Prepared::Ready).unwrap();
        send(&mut buf, &run).unwrap();
        send(&mut buf, &Finished::Signal(9)).unwrap();
        assert_eq!(buf.iter().filter(|b| **b == b'\n').count(), 3);
        let mut r = io::BufReader::new(&buf[..]);
        assert_eq!(recv::<Prepared, _>(&mut r).unwrap(), Some(Prepared::Ready));
        assert_eq!(recv::<Run, _>(&mut r).unwrap(), Some(run));
        assert_eq!(
            recv::<Finished, _>(&mut r).unwrap(),
            Some(Finished::Signal(9))
        );
        assert_eq!(recv::<Finished, _>(&mut r).unwrap(), None);
    }

    #[test]
    fn cut_or_bad_messages_are_errors() {
        let mut r = io::BufReader::new(&b"\"ready\""[..]);
        assert!(recv::<Prepared, _>(&mut r).is_err());
        let mut r = io::BufReader::new(&b"{\"nope\":1}\n"[..]);
        assert!(recv::<Prepared, _>(&mut r).is_err());
    }
}
