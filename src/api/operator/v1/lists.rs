//! GET_STATE, GET_TASKS, GET_EXECUTORS and GET_FRAMEWORKS as the agent
//! answers them: the encodings of the messages in their lists, from which
//! both the protobuf and the JSON answer are written with no `Response`
//! in between. The protobuf is byte for byte `Response::encode_to_vec()`
//! of the same answer; the JSON is [`super::json_bytes`]' (every list
//! written, empty or not, as Mesos writes these four).

use std::ops::Range;

use prost::encoding::{encode_key, encode_varint, encoded_len_varint, WireType};

use crate::proto::mesos::v1::agent::response::Type;

/// The lists of the four answers, in the order of their field numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum List {
    /// `get_tasks.pending_tasks` (`mesos.v1.Task`).
    PendingTasks = 0,
    /// `get_tasks.queued_tasks`.
    QueuedTasks,
    /// `get_tasks.launched_tasks`.
    LaunchedTasks,
    /// `get_tasks.terminated_tasks`.
    TerminatedTasks,
    /// `get_tasks.completed_tasks`.
    CompletedTasks,
    /// `get_executors.executors` (each a `mesos.v1.ExecutorInfo`, written
    /// inside its `Executor`).
    Executors,
    /// `get_executors.completed_executors`.
    CompletedExecutors,
    /// `get_frameworks.frameworks` (each a `mesos.v1.FrameworkInfo`,
    /// written inside its `Framework`).
    Frameworks,
    /// `get_frameworks.completed_frameworks`.
    CompletedFrameworks,
}

/// One of the three messages holding lists: its name in JSON, its field
/// in `Response` and in `GetState`, and its lists (name, field number,
/// index into `Lists::entries`).
struct Group {
    name: &'static str,
    response_field: u32,
    state_field: u32,
    lists: &'static [(&'static str, u32, usize)],
    /// The message each entry is (`mesos.v1.Task`), and the field of the
    /// wrapper it sits in (`Executor.executor_info`), if any.
    message: &'static str,
    wrapper: Option<&'static str>,
}

const TASKS: Group = Group {
    name: "get_tasks",
    response_field: 13,
    state_field: 1,
    lists: &[
        ("pending_tasks", 1, 0),
        ("queued_tasks", 2, 1),
        ("launched_tasks", 3, 2),
        ("terminated_tasks", 4, 3),
        ("completed_tasks", 5, 4),
    ],
    message: "mesos.v1.Task",
    wrapper: None,
};

const EXECUTORS: Group = Group {
    name: "get_executors",
    response_field: 12,
    state_field: 2,
    lists: &[("executors", 1, 5), ("completed_executors", 2, 6)],
    message: "mesos.v1.ExecutorInfo",
    wrapper: Some("executor_info"),
};

const FRAMEWORKS: Group = Group {
    name: "get_frameworks",
    response_field: 11,
    state_field: 3,
    lists: &[("frameworks", 1, 7), ("completed_frameworks", 2, 8)],
    message: "mesos.v1.FrameworkInfo",
    wrapper: Some("framework_info"),
};

/// `Response.get_state`.
const GET_STATE_FIELD: u32 = 9;

/// An answer made of lists of encoded messages.
#[derive(Debug, Clone, PartialEq)]
pub struct Lists {
    kind: Type,
    /// Every entry's encoding, one after the other.
    buf: Vec<u8>,
    /// Each list's entries: ranges of `buf`.
    entries: [Vec<Range<usize>>; 9],
}

/// Why an encoded message could not be written as JSON.
#[derive(Debug, thiserror::Error)]
#[error("cannot write a {message} of the answer as JSON: {source}")]
pub struct ListsError {
    message: &'static str,
    #[source]
    source: crate::proto::ProtoError,
}

impl Lists {
    /// An empty answer of `kind`: GET_STATE, GET_TASKS, GET_EXECUTORS or
    /// GET_FRAMEWORKS (any other is written as GET_STATE's lists under
    /// that type: callers pass one of the four).
    pub fn new(kind: Type) -> Self {
        Self {
            kind,
            buf: Vec::with_capacity(256 * 1024),
            entries: Default::default(),
        }
    }

    /// Adds an entry to `list`: `encode` appends the message's encoding
    /// (a `mesos.v1.Task`, `ExecutorInfo` or `FrameworkInfo`, as the list
    /// says) to the buffer it is given.
    pub fn push(&mut self, list: List, encode: impl FnOnce(&mut Vec<u8>)) {
        let start = self.buf.len();
        encode(&mut self.buf);
        self.entries[list as usize].push(start..self.buf.len());
    }

    /// The entries of `list`, encoded.
    pub fn entries(&self, list: List) -> impl Iterator<Item = &[u8]> {
        self.entries[list as usize]
            .iter()
            .map(|r| &self.buf[r.clone()])
    }

    fn groups(&self) -> &'static [Group] {
        match self.kind {
            Type::GetTasks => &[TASKS],
            Type::GetExecutors => &[EXECUTORS],
            Type::GetFrameworks => &[FRAMEWORKS],
            _ => &[TASKS, EXECUTORS, FRAMEWORKS],
        }
    }

    fn state(&self) -> bool {
        !matches!(
            self.kind,
            Type::GetTasks | Type::GetExecutors | Type::GetFrameworks
        )
    }

    /// The size of one entry inside its list field (its wrapper, if any,
    /// included), without the list field's key and length.
    fn entry_len(group: &Group, len: usize) -> usize {
        match group.wrapper {
            Some(_) => 1 + encoded_len_varint(len as u64) + len,
            None => len,
        }
    }

    /// The size of a group's message body.
    fn group_len(&self, group: &Group) -> usize {
        group
            .lists
            .iter()
            .flat_map(|(_, number, index)| {
                self.entries[*index].iter().map(move |r| {
                    let inner = Self::entry_len(group, r.len());
                    key_len(*number) + encoded_len_varint(inner as u64) + inner
                })
            })
            .sum()
    }

    /// The protobuf `mesos.v1.agent.Response`.
    pub fn protobuf(&self) -> Vec<u8> {
        let groups = self.groups();
        let lens: Vec<usize> = groups.iter().map(|g| self.group_len(g)).collect();
        let fields: usize = groups
            .iter()
            .zip(&lens)
            .map(|(g, len)| {
                let number = if self.state() {
                    g.state_field
                } else {
                    g.response_field
                };
                key_len(number) + encoded_len_varint(*len as u64) + len
            })
            .sum();
        let mut out = Vec::with_capacity(fields + 16);
        encode_key(1, WireType::Varint, &mut out);
        encode_varint(self.kind as i32 as u64, &mut out);
        if self.state() {
            encode_key(GET_STATE_FIELD, WireType::LengthDelimited, &mut out);
            encode_varint(fields as u64, &mut out);
        }
        for (group, len) in groups.iter().zip(lens) {
            let number = if self.state() {
                group.state_field
            } else {
                group.response_field
            };
            encode_key(number, WireType::LengthDelimited, &mut out);
            encode_varint(len as u64, &mut out);
            for (_, number, index) in group.lists {
                for r in &self.entries[*index] {
                    let entry = &self.buf[r.clone()];
                    encode_key(*number, WireType::LengthDelimited, &mut out);
                    encode_varint(Self::entry_len(group, entry.len()) as u64, &mut out);
                    if group.wrapper.is_some() {
                        encode_key(1, WireType::LengthDelimited, &mut out);
                        encode_varint(entry.len() as u64, &mut out);
                    }
                    out.extend_from_slice(entry);
                }
            }
        }
        out
    }

    /// The JSON answer.
    pub fn json(&self) -> Result<Vec<u8>, ListsError> {
        let mut out = Vec::with_capacity(self.buf.len() * 2 + 256);
        out.extend_from_slice(br#"{"type":""#);
        out.extend_from_slice(self.kind.as_str_name().as_bytes());
        out.extend_from_slice(b"\",");
        if self.state() {
            out.extend_from_slice(br#""get_state":{"#);
        }
        for (g, group) in self.groups().iter().enumerate() {
            if g > 0 {
                out.push(b',');
            }
            out.push(b'"');
            out.extend_from_slice(group.name.as_bytes());
            out.extend_from_slice(b"\":{");
            for (l, (name, _, index)) in group.lists.iter().enumerate() {
                if l > 0 {
                    out.push(b',');
                }
                out.push(b'"');
                out.extend_from_slice(name.as_bytes());
                out.extend_from_slice(b"\":[");
                for (e, r) in self.entries[*index].iter().enumerate() {
                    if e > 0 {
                        out.push(b',');
                    }
                    if let Some(wrapper) = group.wrapper {
                        out.extend_from_slice(b"{\"");
                        out.extend_from_slice(wrapper.as_bytes());
                        out.extend_from_slice(b"\":");
                    }
                    crate::proto::write_json_encoded(&mut out, group.message, &self.buf[r.clone()])
                        .map_err(|source| ListsError {
                            message: group.message,
                            source,
                        })?;
                    if group.wrapper.is_some() {
                        out.push(b'}');
                    }
                }
                out.push(b']');
            }
            out.push(b'}');
        }
        if self.state() {
            out.push(b'}');
        }
        out.push(b'}');
        Ok(out)
    }
}

fn key_len(number: u32) -> usize {
    encoded_len_varint(u64::from(number) << 3)
}
