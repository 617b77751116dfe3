//! The per-task status update log, `task.updates`: the updates the agent
//! took from an executor and the master's acknowledgements of them, in the
//! order they happened, so that unacknowledged updates survive a restart.
//!
//! The file is a sequence of `StatusUpdateRecord`s (UPDATE with the
//! `StatusUpdate`, or ACK with its uuid), each framed as Mesos frames it: a
//! 4-byte little-endian length, then the encoded record. Every append is
//! one `write` followed by `fdatasync`, so a crash can only leave the last
//! record cut short: replay drops such a tail (and truncates the file to the
//! last whole record), while a whole record that does not decode is
//! reported as corruption.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use prost::Message;

use super::meta;
use super::StateError;
use crate::proto::mesos::internal::status_update_record::Type as RecordType;
use crate::proto::mesos::internal::{StatusUpdate, StatusUpdateRecord};

/// What a log held: every update in the order received, and the uuids
/// acknowledged.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Replay {
    pub updates: Vec<StatusUpdate>,
    pub acks: HashSet<Vec<u8>>,
}

/// An open `task.updates`, appended to durably.
#[derive(Debug)]
pub struct UpdateLog {
    path: PathBuf,
    file: File,
    /// The length of the whole records written: where the next one starts.
    len: u64,
    /// Set when a failed append could not be undone: the file may end
    /// with a partial record, and appending after it would bury it.
    broken: bool,
}

impl UpdateLog {
    /// Opens (creating it and its directory if needed) the log at `path`
    /// and replays what it holds. A record cut short at the end is dropped,
    /// with a warning, and the file truncated to the records before it.
    pub fn open(path: &Path) -> Result<(UpdateLog, Replay), StateError> {
        meta::create_dirs(meta_parent(path))?;
        let created = !meta::exists(path)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| StateError::io("open", path, e))?;
        if created {
            meta::sync_dir(meta_parent(path))?;
        }
        let (replay, len) = replay_file(path, &mut file)?;
        let log = UpdateLog {
            path: path.to_path_buf(),
            file,
            len,
            broken: false,
        };
        Ok((log, replay))
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends an UPDATE record; returns once it is on disk.
    pub fn append_update(&mut self, update: &StatusUpdate) -> Result<(), StateError> {
        self.append(&StatusUpdateRecord {
            r#type: RecordType::Update as i32,
            update: Some(update.clone()),
            uuid: None,
        })
    }

    /// Appends an ACK record for `uuid`; returns once it is on disk.
    pub fn append_ack(&mut self, uuid: &[u8]) -> Result<(), StateError> {
        self.append(&StatusUpdateRecord {
            r#type: RecordType::Ack as i32,
            update: None,
            uuid: Some(uuid.to_vec()),
        })
    }

    fn append(&mut self, record: &StatusUpdateRecord) -> Result<(), StateError> {
        if self.broken {
            return Err(StateError::Corrupt {
                path: self.path.clone(),
                cause: "an earlier append failed and could not be undone".to_string(),
            });
        }
        let body = record.encode_to_vec();
        let size = u32::try_from(body.len()).map_err(|_| StateError::TooLarge {
            path: self.path.clone(),
            size: body.len(),
        })?;
        let mut framed = Vec::with_capacity(4 + body.len());
        framed.extend_from_slice(&size.to_le_bytes());
        framed.extend_from_slice(&body);
        // The file is opened without O_APPEND (replay needs to read it), so
        // write at the end explicitly.
        crate::support::crash::point("update-log");
        let written = (|| {
            use std::os::unix::fs::FileExt;
            if crate::support::crash::due("update-log-torn") {
                self.file
                    .write_all_at(&framed[..framed.len() / 2], self.len)?;
                crate::support::crash::now("update-log-torn");
            }
            self.file.write_all_at(&framed, self.len)?;
            self.file.sync_data()
        })();
        match written {
            Ok(()) => {
                self.len += framed.len() as u64;
                Ok(())
            }
            Err(e) => {
                // Undo a partial record so that later appends stay readable.
                if self.file.set_len(self.len).is_err() {
                    self.broken = true;
                }
                Err(StateError::io("append to", &self.path, e))
            }
        }
    }
}

/// Replays the log at `path` without keeping it open (recovery reads every
/// task's log this way). A cut-short tail is dropped and truncated away as
/// by [`UpdateLog::open`]; a missing file is an empty log.
pub fn replay(path: &Path) -> Result<Replay, StateError> {
    let mut file = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Replay::default()),
        Err(e) => return Err(StateError::io("open", path, e)),
    };
    replay_file(path, &mut file).map(|(replay, _)| replay)
}

fn meta_parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Reads every record of `file` from its start; returns them and the length
/// of the whole records, to which the file has been truncated.
fn replay_file(path: &Path, file: &mut File) -> Result<(Replay, u64), StateError> {
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|e| StateError::io("read", path, e))?;
    let (records, good) = parse(path, &bytes)?;
    if good < bytes.len() {
        tracing::warn!(
            path = %path.display(),
            offset = good,
            dropped = bytes.len() - good,
            "status update log ends with a partial record (a crash mid-append); dropping it"
        );
        file.set_len(good as u64)
            .and_then(|()| file.sync_data())
            .map_err(|e| StateError::io("truncate", path, e))?;
    }
    let mut replay = Replay::default();
    for record in records {
        match record {
            Record::Update(u) => replay.updates.push(*u),
            Record::Ack(uuid) => {
                replay.acks.insert(uuid);
            }
        }
    }
    Ok((replay, good as u64))
}

enum Record {
    Update(Box<StatusUpdate>),
    Ack(Vec<u8>),
}

/// Splits `bytes` into records. Returns them and the offset after the last
/// whole one. Stops without error at a record cut short by the end of the
/// file, or at a tail of zero bytes (what a crash on a file system without
/// a journal can leave); any other bad record is corruption.
fn parse(path: &Path, bytes: &[u8]) -> Result<(Vec<Record>, usize), StateError> {
    let mut records = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let rest = &bytes[pos..];
        let Some((size, body)) = rest.split_first_chunk::<4>() else {
            break;
        };
        let size = u32::from_le_bytes(*size) as usize;
        if size > body.len() {
            break;
        }
        match decode(&body[..size]) {
            Ok(record) => records.push(record),
            Err(_) if rest.iter().all(|&b| b == 0) => break,
            Err(cause) => {
                return Err(StateError::Corrupt {
                    path: path.to_path_buf(),
                    cause: format!("record at byte {pos}: {cause}"),
                })
            }
        }
        pos += 4 + size;
    }
    Ok((records, pos))
}

fn decode(body: &[u8]) -> Result<Record, String> {
    let record = StatusUpdateRecord::decode(body).map_err(|e| e.to_string())?;
    match RecordType::try_from(record.r#type) {
        Ok(RecordType::Update) => match record.update {
            Some(u) if u.uuid.as_ref().is_some_and(|id| !id.is_empty()) => {
                Ok(Record::Update(Box::new(u)))
            }
            _ => Err("UPDATE record without a status update and its uuid".to_string()),
        },
        Ok(RecordType::Ack) => match record.uuid {
            Some(uuid) if !uuid.is_empty() => Ok(Record::Ack(uuid)),
            _ => Err("ACK record without a uuid".to_string()),
        },
        Err(_) => Err(format!("unknown record type {}", record.r#type)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::mesos::TaskState;
    use std::io::Write;

    fn update(task: &str, state: TaskState, uuid: u8) -> StatusUpdate {
        crate::state::test_update("", task, state, uuid)
    }

    #[test]
    fn appends_replay_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tasks/t1/task.updates");
        let (mut log, replay) = UpdateLog::open(&path).unwrap();
        assert_eq!(replay, Replay::default());
        log.append_update(&update("t1", TaskState::TaskStarting, 1))
            .unwrap();
        log.append_update(&update("t1", TaskState::TaskRunning, 2))
            .unwrap();
        log.append_ack(&[1; 16]).unwrap();
        drop(log);

        let (mut log, replay) = UpdateLog::open(&path).unwrap();
        assert_eq!(
            replay.updates,
            [
                update("t1", TaskState::TaskStarting, 1),
                update("t1", TaskState::TaskRunning, 2)
            ]
        );
        assert_eq!(replay.acks, HashSet::from([vec![1; 16]]));
        log.append_ack(&[2; 16]).unwrap();
        assert_eq!(super::replay(&path).unwrap().acks.len(), 2);
    }

    #[test]
    fn truncated_tail_is_cut_off_and_appends_continue() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("task.updates");
        let (mut log, _) = UpdateLog::open(&path).unwrap();
        log.append_update(&update("t", TaskState::TaskRunning, 1))
            .unwrap();
        drop(log);
        let whole = std::fs::metadata(&path).unwrap().len();

        // A crash in the middle of the second append.
        let mut second = Vec::new();
        let record = StatusUpdateRecord {
            r#type: RecordType::Update as i32,
            update: Some(update("t", TaskState::TaskFinished, 2)),
            uuid: None,
        };
        second.extend_from_slice(&(record.encoded_len() as u32).to_le_bytes());
        second.extend_from_slice(&record.encode_to_vec());
        for cut in [1, 3, 4, 10, second.len() - 1] {
            let mut f = OpenOptions::new().append(true).open(&path).unwrap();
            f.write_all(&second[..cut]).unwrap();
            drop(f);
            let (_log, replay) = UpdateLog::open(&path).unwrap();
            assert_eq!(replay.updates.len(), 1, "cut at {cut}");
            assert_eq!(std::fs::metadata(&path).unwrap().len(), whole);
        }

        // A zero-filled tail (blocks allocated, data never written).
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[0; 64]).unwrap();
        drop(f);
        let (mut log, replayed) = UpdateLog::open(&path).unwrap();
        assert_eq!(replayed.updates.len(), 1);
        log.append_ack(&[1; 16]).unwrap();
        let again = super::replay(&path).unwrap();
        assert_eq!(again.updates.len(), 1);
        assert!(again.acks.contains(&vec![1; 16]));
    }

    #[test]
    fn corrupt_whole_record_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("task.updates");
        let (mut log, _) = UpdateLog::open(&path).unwrap();
        log.append_update(&update("t", TaskState::TaskRunning, 1))
            .unwrap();
        drop(log);
        // A whole record whose body is not a StatusUpdateRecord, followed
        // by more data: not a torn tail.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[3, 0, 0, 0, 0xff, 0xff, 0xff, 1, 0, 0, 0, 8])
            .unwrap();
        drop(f);
        let before = std::fs::read(&path).unwrap();
        let err = UpdateLog::open(&path).unwrap_err();
        assert!(err.to_string().contains("task.updates"), "{err}");
        assert!(matches!(err, StateError::Corrupt { .. }), "{err}");
        // Corruption is reported, never "repaired".
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }

    #[test]
    fn records_are_framed_as_mesos_frames_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("task.updates");
        let (mut log, _) = UpdateLog::open(&path).unwrap();
        log.append_ack(&[7; 16]).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let record = StatusUpdateRecord {
            r#type: RecordType::Ack as i32,
            update: None,
            uuid: Some(vec![7; 16]),
        };
        let mut expected = (record.encoded_len() as u32).to_le_bytes().to_vec();
        expected.extend(record.encode_to_vec());
        assert_eq!(bytes, expected);
    }
}
