//! The agent's I/O switchboard: the standard streams of the debug
//! containers that `LAUNCH_NESTED_CONTAINER_SESSION` starts, held by the
//! agent and served to the session's client, to `ATTACH_CONTAINER_OUTPUT`
//! clients and to one `ATTACH_CONTAINER_INPUT` client at a time.
//!
//! ```text
//!  launch --> running --(process exits, output drained)--> ended
//!     |          \--(session connection closes: SIGKILL)--/   |
//!     |                                                       v
//!     \------------------------------------- forgotten after FORGET_AFTER
//!                                  (or at REMOVE_NESTED_CONTAINER)
//! ```
//! The output streams end when the process has ended and its output has
//! been read (Mesos' switchboard too ends them after the process).
//! Output is read by one thread per stream (stdout and stderr, or the
//! pty's master), in chunks of at most [`CHUNK`] bytes, and handed to every
//! client through a bounded channel each: a slow client slows the process
//! (as a slow terminal does) but holds at most [`QUEUE`] chunks. Input is
//! written on blocking threads; nothing here blocks the event loop.
//!
//! Mesos kills a session's container when the session's connection
//! closes; so does butte, and an agent that exits (SIGTERM: executors run
//! on) kills its session containers (`Drop for Sessions`). The container stays in the containerizer's
//! table (for WAIT_NESTED_CONTAINER) until it is removed or
//! [`FORGET_AFTER`] has passed since its end.

use crate::api::operator::v1::{InputRecord, InputSink, OutputChunk, OutputStream};
use crate::api::operator::OperatorError;
use crate::containerizer::mesos::{DebugIo, DebugLaunch, MesosContainerizer};
use bytes::Bytes;
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// The largest chunk of output in one record.
pub const CHUNK: usize = 64 * 1024;
/// Chunks queued for one client.
pub const QUEUE: usize = 16;
/// How long an ended debug container stays known to WAIT.
pub const FORGET_AFTER: Duration = Duration::from_secs(60);
/// How long output may go on after the process ended (a background child
/// holding the pipe) before the streams end anyway.
const DRAIN: Duration = Duration::from_secs(1);

/// The sessions the agent holds, by container key. A std `Mutex`: held
/// only to look up, insert or remove.
#[derive(Default)]
pub struct Sessions {
    table: Mutex<HashMap<String, Arc<Session>>>,
}

struct Session {
    key: String,
    /// Where the container is (to kill it when the agent goes away).
    containerizer: Arc<MesosContainerizer>,
    /// The pty's master (`None`: pipes).
    master: Option<OwnedFd>,
    /// Where stdin goes; `None` after its end.
    stdin: Mutex<Option<Arc<File>>>,
    /// Whether an input client is attached.
    input_attached: AtomicBool,
    /// The output's clients; emptied when the output ends.
    outputs: Mutex<Vec<mpsc::Sender<OutputChunk>>>,
    /// Output streams still being read.
    readers_left: Mutex<usize>,
    /// Told when the last output stream has been read to its end.
    drained: tokio::sync::Notify,
    ended: AtomicBool,
}

impl Session {
    fn lock_outputs(&self) -> std::sync::MutexGuard<'_, Vec<mpsc::Sender<OutputChunk>>> {
        self.outputs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ends every output stream.
    fn end_output(&self) {
        self.ended.store(true, Ordering::SeqCst);
        self.lock_outputs().clear();
    }

    /// A new output client (its stream ends at once if the output has).
    fn subscribe(&self) -> mpsc::Receiver<OutputChunk> {
        let (tx, rx) = mpsc::channel(QUEUE);
        if !self.ended.load(Ordering::SeqCst) {
            self.lock_outputs().push(tx);
        }
        rx
    }
}

impl Drop for Sessions {
    /// An agent that goes away kills its session containers: their
    /// clients' connections are gone, and a new agent does not know them
    /// (Mesos destroys debug containers at recovery). Executors, unlike
    /// them, run on.
    fn drop(&mut self) {
        let table = std::mem::take(&mut *self.table.lock().unwrap_or_else(|e| e.into_inner()));
        for (key, session) in table {
            if session.containerizer.ended(&key) == Some(false) {
                tracing::info!(container = %key, "agent exiting: killing a session container");
                let _ = session.containerizer.kill(&key, libc::SIGKILL);
            }
        }
    }
}

/// Kills the session's container when the session's connection ends.
struct SessionGuard {
    key: String,
    containerizer: Arc<MesosContainerizer>,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        if self.containerizer.ended(&self.key) == Some(false) {
            tracing::debug!(container = %self.key, "session ended: killing its container");
            if let Err(e) = self.containerizer.kill(&self.key, libc::SIGKILL) {
                tracing::warn!(container = %self.key, error = %e, "session container not killed");
            }
        }
    }
}

/// Lets another input client attach once this one is done.
struct InputGuard(Arc<Session>);

impl Drop for InputGuard {
    fn drop(&mut self) {
        self.0.input_attached.store(false, Ordering::SeqCst);
    }
}

impl Sessions {
    fn get(&self, key: &str) -> Option<Arc<Session>> {
        self.table
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()
    }

    /// Starts a debug container and its session; returns the session's
    /// output, whose guard kills the container when dropped.
    pub async fn launch(
        self: &Arc<Self>,
        containerizer: &Arc<MesosContainerizer>,
        launch: DebugLaunch,
    ) -> Result<OutputStream, OperatorError> {
        let key = launch.key.clone();
        let c = containerizer.clone();
        let io = tokio::task::spawn_blocking(move || c.launch_debug(&launch))
            .await
            .map_err(|e| OperatorError::Internal(format!("launch failed: {e}")))?
            .map_err(launch_error)?;
        let (master, stdin, streams) = match io {
            DebugIo::Pipes {
                stdin,
                stdout,
                stderr,
            } => (
                None,
                Some(Arc::new(File::from(stdin))),
                vec![(stdout, false), (stderr, true)],
            ),
            DebugIo::Tty { master } => {
                let dup = |f: &OwnedFd| {
                    f.try_clone()
                        .map_err(|e| OperatorError::Internal(format!("duplicate the pty: {e}")))
                };
                let input = dup(&master)?;
                let output = dup(&master)?;
                (
                    Some(master),
                    Some(Arc::new(File::from(input))),
                    vec![(output, false)],
                )
            }
        };
        let session = Arc::new(Session {
            key: key.clone(),
            containerizer: containerizer.clone(),
            master,
            stdin: Mutex::new(stdin),
            input_attached: AtomicBool::new(false),
            outputs: Mutex::new(Vec::new()),
            readers_left: Mutex::new(streams.len()),
            drained: tokio::sync::Notify::new(),
            ended: AtomicBool::new(false),
        });
        // The session's own client first: it sees all the output.
        let chunks = session.subscribe();
        self.table
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.clone(), session.clone());
        for (fd, stderr) in streams {
            let s = session.clone();
            let spawned = std::thread::Builder::new()
                .name("session-output".into())
                .spawn(move || read_output(&s, fd, stderr));
            if let Err(e) = spawned {
                let _ = containerizer.kill(&key, libc::SIGKILL);
                return Err(OperatorError::Internal(format!(
                    "start the output reader of {key}: {e}"
                )));
            }
        }
        tokio::spawn(watch(self.clone(), containerizer.clone(), session));
        Ok(OutputStream {
            chunks,
            guard: Box::new(SessionGuard {
                key,
                containerizer: containerizer.clone(),
            }),
        })
    }

    /// The keys of the session containers still running (GET_CONTAINERS
    /// lists them with the nested ones).
    pub fn running(&self, containerizer: &MesosContainerizer) -> Vec<String> {
        let mut keys: Vec<String> = self
            .table
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .filter(|k| containerizer.ended(k) == Some(false))
            .cloned()
            .collect();
        keys.sort();
        keys
    }

    /// One more output client of a session.
    pub fn attach_output(
        &self,
        containerizer: &MesosContainerizer,
        key: &str,
    ) -> Result<OutputStream, OperatorError> {
        let session = self.session(containerizer, key)?;
        Ok(OutputStream {
            chunks: session.subscribe(),
            guard: Box::new(()),
        })
    }

    /// The input client of a session (409 while another one is attached).
    pub fn attach_input(
        &self,
        containerizer: &MesosContainerizer,
        key: &str,
    ) -> Result<InputSink, OperatorError> {
        let session = self.session(containerizer, key)?;
        if session.input_attached.swap(true, Ordering::SeqCst) {
            return Err(OperatorError::Conflict(
                "Multiple input connections are not allowed".into(),
            ));
        }
        let (tx, mut rx) = mpsc::channel::<InputRecord>(QUEUE);
        let guard = InputGuard(session.clone());
        tokio::spawn(async move {
            while let Some(record) = rx.recv().await {
                if let Err(e) = deliver(&session, record).await {
                    tracing::debug!(container = %session.key, error = %e, "session input ends");
                    break;
                }
            }
        });
        Ok(InputSink {
            records: tx,
            guard: Box::new(guard),
        })
    }

    fn session(
        &self,
        containerizer: &MesosContainerizer,
        key: &str,
    ) -> Result<Arc<Session>, OperatorError> {
        match self.get(key) {
            Some(s) if containerizer.knows(key) => Ok(s),
            // Removed (REMOVE_NESTED_CONTAINER) before it was forgotten here.
            Some(_) => {
                self.table
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(key);
                Err(OperatorError::Missing(format!(
                    "Container {key} cannot be found"
                )))
            }
            None if containerizer.knows(key) => Err(OperatorError::Internal(format!(
                "Container {key} has no I/O switchboard: butte holds the I/O of session \
                 containers only"
            ))),
            None => Err(OperatorError::Missing(format!(
                "Container {key} cannot be found"
            ))),
        }
    }
}

/// Writes one input record to the session's process.
async fn deliver(session: &Arc<Session>, record: InputRecord) -> std::io::Result<()> {
    let stdin = || {
        session
            .stdin
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    };
    match record {
        InputRecord::Heartbeat => Ok(()),
        InputRecord::WindowSize { rows, cols } => match &session.master {
            Some(m) => crate::runtime::set_window_size(m.as_fd(), rows, cols),
            None => Ok(()),
        },
        InputRecord::Stdin(bytes) => {
            let Some(file) = stdin() else {
                return Err(std::io::Error::other("stdin already closed"));
            };
            write_blocking(file, bytes).await
        }
        InputRecord::Eof => {
            if session.master.is_some() {
                // A terminal's end of input: ^D.
                if let Some(file) = stdin() {
                    write_blocking(file, Bytes::from_static(b"\x04")).await?;
                }
            } else {
                session
                    .stdin
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take();
            }
            Ok(())
        }
    }
}

async fn write_blocking(file: Arc<File>, bytes: Bytes) -> std::io::Result<()> {
    tokio::task::spawn_blocking(move || (&*file).write_all(&bytes))
        .await
        .map_err(std::io::Error::other)?
}

/// Reads one output stream to its end, handing each chunk to every client
/// (a client that left is dropped).
fn read_output(session: &Session, fd: OwnedFd, stderr: bool) {
    let mut file = File::from(fd);
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // EIO: the pty's last slave fd closed.
            Err(_) => break,
        };
        let bytes = Bytes::copy_from_slice(&buf[..n]);
        let clients = session.lock_outputs().clone();
        for tx in clients {
            let chunk = if stderr {
                OutputChunk::Stderr(bytes.clone())
            } else {
                OutputChunk::Stdout(bytes.clone())
            };
            if tx.blocking_send(chunk).is_err() {
                session.lock_outputs().retain(|t| !t.same_channel(&tx));
            }
        }
    }
    let mut left = session
        .readers_left
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    *left = left.saturating_sub(1);
    if *left == 0 {
        // The streams end once the process has ended too (`watch`): a
        // process may close its output before it exits.
        session.drained.notify_one();
    }
}

/// Follows a session's container to its end: then ends the output once
/// it is read to its end (at most [`DRAIN`] later: a child left with the
/// pipe does not hold the streams open), and forgets the container after
/// [`FORGET_AFTER`] unless it was removed before. The streams end after
/// the process, as Mesos' switchboard ends them, so that the client's
/// going away cannot kill a process that is exiting.
async fn watch(
    sessions: Arc<Sessions>,
    containerizer: Arc<MesosContainerizer>,
    session: Arc<Session>,
) {
    let key = session.key.clone();
    match containerizer.wait(&key).await {
        Ok(t) => tracing::info!(container = %key, status = ?t.status, "session container ended"),
        Err(e) => tracing::debug!(container = %key, error = %e, "session container not waited"),
    }
    let left = *session
        .readers_left
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if left > 0 {
        let _ = tokio::time::timeout(DRAIN, session.drained.notified()).await;
    }
    session.end_output();
    tokio::time::sleep(FORGET_AFTER).await;
    sessions
        .table
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&key);
    let c = containerizer.clone();
    let k = key.clone();
    let _ = tokio::task::spawn_blocking(move || c.destroy(&k)).await;
}

/// A session's debug container: the command as Mesos runs it (`shell`,
/// the default: `sh -c VALUE`; otherwise VALUE with ARGUMENTS, whose first
/// is its name), its environment's plain variables, its user, the
/// terminal.
pub fn debug_launch(
    launch: &crate::api::operator::v1::SessionLaunch,
) -> Result<DebugLaunch, OperatorError> {
    let c = &launch.command;
    let value = c.value.clone().unwrap_or_default();
    if value.is_empty() {
        return Err(OperatorError::BadRequest(
            "Expecting 'launch_nested_container_session.command.value' to be present".into(),
        ));
    }
    let argv = if c.shell.unwrap_or(true) {
        vec!["sh".to_string(), "-c".to_string(), value]
    } else {
        std::iter::once(value)
            .chain(c.arguments.iter().skip(1).cloned())
            .collect()
    };
    let env = c
        .environment
        .iter()
        .flat_map(|e| &e.variables)
        .filter_map(|v| Some((v.name.clone(), v.value.clone()?)))
        .collect();
    let parent = launch
        .container_id
        .parent
        .as_ref()
        .map(|p| crate::agent::nested::key(p))
        .ok_or_else(|| {
            OperatorError::BadRequest(
                "Expecting 'launch_nested_container_session.container_id.parent' to be present"
                    .into(),
            )
        })?;
    Ok(DebugLaunch {
        key: crate::agent::nested::key(&launch.container_id),
        parent,
        argv,
        env,
        user: c.user.clone(),
        tty: launch.tty,
    })
}

/// The answer to a failed launch.
fn launch_error(e: crate::containerizer::mesos::ContainerizerError) -> OperatorError {
    use crate::containerizer::mesos::ContainerizerError as E;
    match e {
        E::Unknown(parent) => OperatorError::Missing(format!("Container {parent} cannot be found")),
        E::Exists(key) => OperatorError::BadRequest(format!("Container {key} already exists")),
        e => OperatorError::Internal(format!("Failed to launch the session container: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use crate::proto::mesos::v1::ContainerId;

    /// Sessions are found by the key nested containers have.
    #[test]
    fn keys_join_the_ids_from_the_top() {
        let id = ContainerId {
            value: "c".into(),
            parent: Some(Box::new(ContainerId {
                value: "b".into(),
                parent: Some(Box::new(ContainerId {
                    value: "a".into(),
                    parent: None,
                })),
            })),
        };
        assert_eq!(crate::agent::nested::key(&id), "a.b.c");
    }
}
