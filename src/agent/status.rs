//! The status update manager: takes task status updates from executors
//! (and from the agent itself), makes them durable, and hands them to the
//! agent to forward to the master one at a time per task, in order, until
//! each is acknowledged.
//!
//! Plain synchronous logic: the agent's event loop calls it and sends what
//! it returns; time comes in as an `Instant`, so nothing here sleeps.
//!
//! ```text
//!  update(u) ──> stream (framework, task): [head, u2, u3 ...]  (task.updates)
//!                   │ head sent when it becomes the head (unless paused);
//!                   │ resent by due() after retry_min, doubling to retry_max
//!  acknowledge(uuid of head) ──> pop head, log ACK, send the next
//!                   │ head was terminal ──> stream closed (Ack.terminal)
//!  pause() on master loss: nothing sent, no timers
//!  resume() on (re)registration: every head sent again, timers restart
//! ```
//!
//! Mesos behaviour kept: a duplicate update (uuid seen before, acknowledged
//! or not) is ignored; an acknowledgement must match the head; every update
//! sent carries `latest_state`, the state of the newest update the agent
//! holds for the task (the head may be older), and `status.uuid` set to the
//! update's uuid. Beyond Mesos: an update after a terminal one for the same
//! task is refused.
//!
//! The manager starts paused, as the Mesos agent keeps its manager paused
//! until it has registered: call [`StatusUpdateManager::resume`] then.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::proto::mesos::internal::StatusUpdate;
use crate::proto::mesos::TaskState;
use crate::state::updates::{Replay, UpdateLog};
use crate::state::StateError;

/// Why an update or acknowledgement was refused.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("status update without {0}")]
    Malformed(&'static str),
    #[error("status update for task {task} of framework {framework} has no uuid")]
    MissingUuid { framework: String, task: String },
    #[error("status update {uuid} for task {task} of framework {framework} comes after the task's terminal update")]
    AfterTerminal {
        framework: String,
        task: String,
        uuid: String,
    },
    #[error("status update for task {task} of framework {framework}: the stream is {stream} checkpointed but this update is {update}")]
    CheckpointMismatch {
        framework: String,
        task: String,
        stream: &'static str,
        update: &'static str,
    },
    #[error("no status update stream for task {task} of framework {framework}")]
    UnknownStream { framework: String, task: String },
    #[error("unexpected acknowledgement {uuid} for task {task} of framework {framework}: expected {expected}")]
    UnexpectedAck {
        framework: String,
        task: String,
        uuid: String,
        expected: String,
    },
    #[error("duplicate acknowledgement {uuid} for task {task} of framework {framework}")]
    DuplicateAck {
        framework: String,
        task: String,
        uuid: String,
    },
    #[error("status update stream for task {task} of framework {framework} already exists")]
    StreamExists { framework: String, task: String },
    #[error("status update log of task {task} of framework {framework}: {source}")]
    Log {
        framework: String,
        task: String,
        #[source]
        source: StateError,
    },
}

/// What an acknowledgement did.
#[derive(Debug, Clone, PartialEq)]
pub struct Ack {
    /// The update acknowledged (the stream's former head).
    pub acknowledged: StatusUpdate,
    /// It was terminal: the stream is closed, and the agent may release
    /// the task's resources.
    pub terminal: bool,
    /// The next update to send to the master now, if any.
    pub next: Option<StatusUpdate>,
}

/// The per-task streams of status updates.
#[derive(Debug)]
pub struct StatusUpdateManager {
    retry_min: Duration,
    retry_max: Duration,
    paused: bool,
    /// By creation order, which `resume` and `due` keep.
    streams: BTreeMap<u64, Stream>,
    index: HashMap<(String, String), u64>,
    next_seq: u64,
}

#[derive(Debug)]
struct Stream {
    framework: String,
    task: String,
    log: Option<UpdateLog>,
    /// Unacknowledged updates; the front is the one sent.
    pending: VecDeque<StatusUpdate>,
    received: HashSet<Vec<u8>>,
    acked: HashSet<Vec<u8>>,
    /// The state of the newest update received.
    latest_state: Option<i32>,
    /// A terminal update was received.
    terminal_received: bool,
    /// A terminal update was acknowledged: the stream is over.
    terminated: bool,
    /// When to resend the head, while it is outstanding and not paused.
    retry: Option<Retry>,
}

#[derive(Debug, Clone, Copy)]
struct Retry {
    at: Instant,
    interval: Duration,
}

impl StatusUpdateManager {
    /// A paused manager resending unacknowledged updates after `retry_min`
    /// (Mesos: 10 s), doubling up to `retry_max` (Mesos: 10 min).
    pub fn new(retry_min: Duration, retry_max: Duration) -> Self {
        StatusUpdateManager {
            retry_min,
            retry_max: retry_max.max(retry_min),
            paused: true,
            streams: BTreeMap::new(),
            index: HashMap::new(),
            next_seq: 0,
        }
    }

    /// Whether sending is paused (no master).
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Records `update`; with `log`, it is first appended durably to that
    /// `task.updates` (the same path for every update of the task).
    /// Returns the update to send to the master now: `Some` when it became
    /// the head of its stream and the manager is not paused. A duplicate
    /// (a uuid seen before) is ignored: `Ok(None)`.
    pub fn update(
        &mut self,
        update: StatusUpdate,
        log: Option<&Path>,
        now: Instant,
    ) -> Result<Option<StatusUpdate>, StatusError> {
        let (framework, task) = ids(&update)?;
        let uuid = match &update.uuid {
            Some(u) if !u.is_empty() => u.clone(),
            _ => return Err(StatusError::MissingUuid { framework, task }),
        };
        let key = (framework, task);
        let seq = match self.index.get(&key) {
            Some(&seq) => seq,
            None => match self.create(key.0.clone(), key.1.clone(), log)? {
                Some(seq) => seq,
                // The log ends with an acknowledged terminal update.
                None => {
                    return Err(StatusError::AfterTerminal {
                        framework: key.0,
                        task: key.1,
                        uuid: crate::support::uuid_text(&uuid),
                    })
                }
            },
        };
        let Some(stream) = self.streams.get_mut(&seq) else {
            return Err(StatusError::UnknownStream {
                framework: key.0,
                task: key.1,
            });
        };
        if stream.log.is_some() != log.is_some() {
            let word = |b: bool| if b { "" } else { "not" };
            return Err(StatusError::CheckpointMismatch {
                framework: key.0,
                task: key.1,
                stream: word(stream.log.is_some()),
                update: word(log.is_some()),
            });
        }
        if stream.received.contains(&uuid) || stream.acked.contains(&uuid) {
            tracing::warn!(
                framework = %key.0, task = %key.1, uuid = %crate::support::uuid_text(&uuid),
                "ignoring a duplicate status update"
            );
            return Ok(None);
        }
        if stream.terminal_received {
            return Err(StatusError::AfterTerminal {
                framework: key.0,
                task: key.1,
                uuid: crate::support::uuid_text(&uuid),
            });
        }
        if let Some(log) = &mut stream.log {
            log.append_update(&update)
                .map_err(|source| StatusError::Log {
                    framework: key.0.clone(),
                    task: key.1.clone(),
                    source,
                })?;
        }
        stream.receive(update);
        if self.paused || stream.pending.len() != 1 {
            return Ok(None);
        }
        stream.retry = Some(Retry {
            at: now + self.retry_min,
            interval: self.retry_min,
        });
        Ok(stream.head())
    }

    /// The master acknowledged the update `uuid` of the task: it must be
    /// the head of the stream. Logs the acknowledgement, pops the head and
    /// returns the next update to send; a terminal head closes the stream.
    pub fn acknowledge(
        &mut self,
        framework_id: &str,
        task_id: &str,
        uuid: &[u8],
        now: Instant,
    ) -> Result<Ack, StatusError> {
        let key = (framework_id.to_string(), task_id.to_string());
        let unknown = || StatusError::UnknownStream {
            framework: framework_id.to_string(),
            task: task_id.to_string(),
        };
        let seq = *self.index.get(&key).ok_or_else(unknown)?;
        let stream = self.streams.get_mut(&seq).ok_or_else(unknown)?;
        if stream.acked.contains(uuid) {
            return Err(StatusError::DuplicateAck {
                framework: key.0,
                task: key.1,
                uuid: crate::support::uuid_text(uuid),
            });
        }
        let head_uuid = stream.pending.front().and_then(|u| u.uuid.as_deref());
        if head_uuid != Some(uuid) {
            return Err(StatusError::UnexpectedAck {
                expected: head_uuid.map_or("no update pending".to_string(), |h| {
                    format!("{} first", crate::support::uuid_text(h))
                }),
                framework: key.0,
                task: key.1,
                uuid: crate::support::uuid_text(uuid),
            });
        }
        if let Some(log) = &mut stream.log {
            log.append_ack(uuid).map_err(|source| StatusError::Log {
                framework: key.0.clone(),
                task: key.1.clone(),
                source,
            })?;
        }
        let acknowledged = stream.acknowledge(uuid).ok_or_else(unknown)?;
        stream.retry = None;
        if stream.terminated {
            if !stream.pending.is_empty() {
                tracing::warn!(
                    framework = %key.0, task = %key.1, left = stream.pending.len(),
                    "terminal status update acknowledged with updates still pending"
                );
            }
            self.remove(seq);
            return Ok(Ack {
                acknowledged,
                terminal: true,
                next: None,
            });
        }
        let mut next = None;
        if !self.paused && !stream.pending.is_empty() {
            stream.retry = Some(Retry {
                at: now + self.retry_min,
                interval: self.retry_min,
            });
            next = stream.head();
        }
        Ok(Ack {
            acknowledged,
            terminal: false,
            next,
        })
    }

    /// The master is lost: send nothing until [`resume`](Self::resume).
    pub fn pause(&mut self) {
        self.paused = true;
        for stream in self.streams.values_mut() {
            stream.retry = None;
        }
    }

    /// The agent (re)registered: returns the head of every stream, to send
    /// now, in stream creation order; their retry intervals restart at
    /// `retry_min`.
    pub fn resume(&mut self, now: Instant) -> Vec<StatusUpdate> {
        self.paused = false;
        let mut out = Vec::new();
        for stream in self.streams.values_mut() {
            if let Some(head) = stream.head() {
                stream.retry = Some(Retry {
                    at: now + self.retry_min,
                    interval: self.retry_min,
                });
                out.push(head);
            }
        }
        out
    }

    /// The heads whose retry time has come, to send again; each is
    /// rescheduled after twice its last interval, at most `retry_max`.
    pub fn due(&mut self, now: Instant) -> Vec<StatusUpdate> {
        if self.paused {
            return Vec::new();
        }
        let mut out = Vec::new();
        for stream in self.streams.values_mut() {
            let Some(retry) = stream.retry else { continue };
            if retry.at > now {
                continue;
            }
            if let Some(head) = stream.head() {
                let interval = (retry.interval * 2).min(self.retry_max);
                stream.retry = Some(Retry {
                    at: now + interval,
                    interval,
                });
                out.push(head);
            }
        }
        out
    }

    /// When [`due`](Self::due) next has something to resend.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.streams
            .values()
            .filter_map(|s| s.retry)
            .map(|r| r.at)
            .min()
    }

    /// Rebuilds the stream of a task after a restart from what its
    /// `task.updates` held (`updates` and `acks`, as `state::meta::recover`
    /// read them), and opens `log` to append to. Unacknowledged updates
    /// become pending again and are sent on [`resume`](Self::resume). No
    /// updates, or an acknowledged terminal update, leave no stream.
    /// Mesos recovers only the streams of an executor's latest run that is
    /// not completed. Returns the number of pending updates.
    pub fn recover(
        &mut self,
        framework_id: &str,
        task_id: &str,
        log: impl AsRef<Path>,
        updates: &[StatusUpdate],
        acks: &HashSet<Vec<u8>>,
    ) -> Result<usize, StatusError> {
        let key = (framework_id.to_string(), task_id.to_string());
        if self.index.contains_key(&key) {
            return Err(StatusError::StreamExists {
                framework: key.0,
                task: key.1,
            });
        }
        if updates.is_empty() {
            return Ok(0);
        }
        let mut stream = Stream::new(key.0, key.1, None);
        stream.replay(Replay {
            updates: updates.to_vec(),
            acks: acks.clone(),
        });
        if stream.terminated {
            return Ok(0);
        }
        // Opening replays the file again: cheap, and it cuts off a torn
        // tail if the caller read the log some other way.
        let (log, _) = UpdateLog::open(log.as_ref()).map_err(|source| StatusError::Log {
            framework: stream.framework.clone(),
            task: stream.task.clone(),
            source,
        })?;
        stream.log = Some(log);
        let pending = stream.pending.len();
        self.insert(stream);
        Ok(pending)
    }

    /// Drops the task's stream if it holds nothing yet (its log could not
    /// take the first update: a full disk), so that the update can be
    /// taken unlogged. False when the stream has updates: it stays.
    pub fn forget_empty(&mut self, framework_id: &str, task_id: &str) -> bool {
        let key = (framework_id.to_string(), task_id.to_string());
        let Some(&seq) = self.index.get(&key) else {
            return true;
        };
        let empty = self
            .streams
            .get(&seq)
            .is_some_and(|s| s.received.is_empty() && s.acked.is_empty());
        if empty {
            self.remove(seq);
        }
        empty
    }

    /// The task's unacknowledged updates, oldest first (as received, without
    /// `latest_state`).
    pub fn pending(&self, framework_id: &str, task_id: &str) -> Vec<&StatusUpdate> {
        let key = (framework_id.to_string(), task_id.to_string());
        self.index
            .get(&key)
            .and_then(|seq| self.streams.get(seq))
            .map(|s| s.pending.iter().collect())
            .unwrap_or_default()
    }

    /// Closes every stream of the framework (its pending updates are
    /// dropped; the logs stay on disk for the agent to remove).
    pub fn cleanup_framework(&mut self, framework_id: &str) {
        let gone: Vec<u64> = self
            .streams
            .iter()
            .filter(|(_, s)| s.framework == framework_id)
            .map(|(&seq, _)| seq)
            .collect();
        for seq in gone {
            self.remove(seq);
        }
    }

    fn create(
        &mut self,
        framework: String,
        task: String,
        log: Option<&Path>,
    ) -> Result<Option<u64>, StatusError> {
        let stream = match log {
            None => Stream::new(framework, task, None),
            Some(path) => {
                let (log, replay) = UpdateLog::open(path).map_err(|source| StatusError::Log {
                    framework: framework.clone(),
                    task: task.clone(),
                    source,
                })?;
                let mut stream = Stream::new(framework, task, Some(log));
                // Normally empty: a log the agent did not recover.
                stream.replay(replay);
                stream
            }
        };
        if stream.terminated {
            return Ok(None);
        }
        Ok(Some(self.insert(stream)))
    }

    fn insert(&mut self, stream: Stream) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.index
            .insert((stream.framework.clone(), stream.task.clone()), seq);
        self.streams.insert(seq, stream);
        seq
    }

    fn remove(&mut self, seq: u64) {
        if let Some(stream) = self.streams.remove(&seq) {
            self.index.remove(&(stream.framework, stream.task));
        }
    }
}

impl Stream {
    fn new(framework: String, task: String, log: Option<UpdateLog>) -> Self {
        Stream {
            framework,
            task,
            log,
            pending: VecDeque::new(),
            received: HashSet::new(),
            acked: HashSet::new(),
            latest_state: None,
            terminal_received: false,
            terminated: false,
            retry: None,
        }
    }

    fn receive(&mut self, update: StatusUpdate) {
        let state = update.status.state;
        self.received
            .insert(update.uuid.clone().unwrap_or_default());
        self.latest_state = Some(state);
        self.terminal_received |= is_terminal(state);
        self.pending.push_back(update);
    }

    /// Removes the pending update `uuid`; marks the stream terminated if it
    /// was terminal.
    fn acknowledge(&mut self, uuid: &[u8]) -> Option<StatusUpdate> {
        let at = self
            .pending
            .iter()
            .position(|u| u.uuid.as_deref() == Some(uuid))?;
        let update = self.pending.remove(at)?;
        self.acked.insert(uuid.to_vec());
        self.terminated |= is_terminal(update.status.state);
        Some(update)
    }

    fn replay(&mut self, replay: Replay) {
        for update in replay.updates {
            let uuid = update.uuid.clone().unwrap_or_default();
            if self.received.contains(&uuid) || self.acked.contains(&uuid) {
                continue;
            }
            self.receive(update);
            if replay.acks.contains(&uuid) {
                self.acknowledge(&uuid);
            }
        }
    }

    /// The head as it is sent: with the task's latest state and the uuid in
    /// the status too.
    fn head(&self) -> Option<StatusUpdate> {
        let mut update = self.pending.front()?.clone();
        update.latest_state = self.latest_state;
        update.status.uuid = update.uuid.clone();
        Some(update)
    }
}

fn ids(update: &StatusUpdate) -> Result<(String, String), StatusError> {
    let framework = &update.framework_id.value;
    let task = &update.status.task_id.value;
    if framework.is_empty() {
        return Err(StatusError::Malformed("a framework id"));
    }
    if task.is_empty() {
        return Err(StatusError::Malformed("a task id"));
    }
    Ok((framework.clone(), task.clone()))
}

/// Whether a task in `state` (a `TaskState` number) is over for good, as
/// Mesos decides it; `TASK_UNREACHABLE` and unknown numbers are not.
pub fn is_terminal(state: i32) -> bool {
    matches!(
        TaskState::try_from(state),
        Ok(TaskState::TaskFinished
            | TaskState::TaskFailed
            | TaskState::TaskKilled
            | TaskState::TaskLost
            | TaskState::TaskError
            | TaskState::TaskDropped
            | TaskState::TaskGone
            | TaskState::TaskGoneByOperator)
    )
}

#[cfg(test)]
mod tests;
