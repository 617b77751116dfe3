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
use std::path::PathBuf;

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

/// What `enter --prepare` and `--serve` apply on top of an image task's
/// defaults (a Docker task's `docker run` settings), handed to them as one
/// argument (`--setup`, [`Setup::to_arg`]). The default value changes
/// nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Setup {
    /// Where the sandbox appears in the root filesystem; `None`:
    /// `/mnt/mesos/sandbox`.
    pub sandbox_dir: Option<String>,
    /// Host paths bound into the root filesystem, after the sandbox and the
    /// network files, in order.
    pub binds: Vec<SetupBind>,
    /// tmpfs mounts: target and Docker's `--tmpfs` options (empty:
    /// `rw,noexec,nosuid,nodev`).
    pub tmpfs: Vec<(String, String)>,
    /// Size of `/dev/shm` in bytes; `None`: the default.
    pub shm_size: Option<u64>,
    /// Remount the root filesystem read-only once everything is mounted.
    pub read_only: bool,
    /// The capabilities kept (`CAP_NET_ADMIN`, ...); `None`: the default set.
    pub capabilities: Option<Vec<String>>,
    /// `setrlimit` before exec: Docker's name (`nofile`, ...), soft, hard.
    pub rlimits: Vec<(String, u64, u64)>,
    /// A pinned network namespace to join first; `None`: the executor's.
    #[serde(default)]
    pub netns: Option<PathBuf>,
}

/// One host path bound into the root filesystem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetupBind {
    /// Absolute host path (a file or a directory).
    pub source: PathBuf,
    /// Absolute path in the root filesystem (created when missing).
    pub target: String,
    pub read_only: bool,
}

impl Setup {
    /// The `--setup` argument: base64 of the JSON.
    pub fn to_arg(&self) -> String {
        use base64::Engine;
        let json = serde_json::to_vec(self).unwrap_or_default();
        base64::engine::general_purpose::STANDARD.encode(json)
    }

    /// Reads a `--setup` argument; the error says what is wrong with it.
    pub fn from_arg(arg: &str) -> Result<Setup, String> {
        use base64::Engine;
        let json = base64::engine::general_purpose::STANDARD
            .decode(arg)
            .map_err(|e| format!("not base64: {e}"))?;
        serde_json::from_slice(&json).map_err(|e| format!("not a setup in JSON: {e}"))
    }
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
    fn setup_round_trips_through_its_argument() {
        let setup = Setup {
            sandbox_dir: Some("/sandbox".into()),
            binds: vec![SetupBind {
                source: "/srv/data".into(),
                target: "/data".into(),
                read_only: true,
            }],
            tmpfs: vec![("/run".into(), "size=1m".into())],
            shm_size: Some(1 << 20),
            read_only: true,
            capabilities: Some(vec!["CAP_NET_ADMIN".into()]),
            rlimits: vec![("nofile".into(), 100, 200)],
            netns: None,
        };
        let arg = setup.to_arg();
        assert!(!arg.contains(' ') && !arg.contains('\n'), "{arg}");
        assert_eq!(Setup::from_arg(&arg).unwrap(), setup);
        assert!(Setup::from_arg("%%%")
            .unwrap_err()
            .starts_with("not base64"));
        assert!(Setup::from_arg("e30K").is_ok(), "{{}} is the default");
        assert!(Setup::from_arg("WzFd")
            .unwrap_err()
            .starts_with("not a setup in JSON"));
    }

    #[test]
    fn cut_or_bad_messages_are_errors() {
        let mut r = io::BufReader::new(&b"\"ready\""[..]);
        assert!(recv::<Prepared, _>(&mut r).is_err());
        let mut r = io::BufReader::new(&b"{\"nope\":1}\n"[..]);
        assert!(recv::<Prepared, _>(&mut r).is_err());
    }
}
