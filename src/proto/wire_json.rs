//! Mesos' JSON mapping written straight from a message's protobuf
//! encoding: the bytes prost writes are read field by field against a
//! table built once from the descriptors, and each value is written as
//! prost-reflect's serializer writes it (the reference, see
//! `json::write_json_reflective`): fields in field-number order, unknown
//! fields left out, enums by name (the number when the name is unknown),
//! `bytes` as padded standard base64, 64-bit integers as numbers, floats
//! as serde_json writes them (non-finite ones as `"NaN"`, `"Infinity"`,
//! `"-Infinity"`). No `DynamicMessage` and no `serde_json::Value` in
//! between.
//!
//! Well-known types (`google.protobuf.*`, none in Mesos' protos) are
//! handed to prost-reflect. Map fields, which prost-reflect keeps in a
//! `HashMap` and so writes in no fixed order, come out in the order of the
//! encoding (prost's `BTreeMap`s: by key).

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::LazyLock;

use base64::Engine as _;
use prost_reflect::{DynamicMessage, Kind, MessageDescriptor};

use super::DESCRIPTOR_POOL;

/// Why bytes could not be written as JSON (the caller then uses the
/// reflective writer, which reports or panics as it always did).
#[derive(Debug, thiserror::Error)]
pub enum WireJsonError {
    /// The message type is not in the descriptor pool.
    #[error("message type {0} is not in the descriptor set")]
    UnknownType(String),
    /// The bytes end inside a tag, a varint or a length-delimited value.
    #[error("the encoding ends inside a field")]
    Truncated,
    /// A field came with a wire type its declared type cannot have.
    #[error("field {number} of {message} has wire type {wire_type}")]
    WireType {
        /// Full name of the message.
        message: String,
        /// The field's number.
        number: u32,
        /// The wire type found.
        wire_type: u8,
    },
    /// A string field holds bytes that are not UTF-8.
    #[error("field {number} of {message} is not UTF-8")]
    Utf8 {
        /// Full name of the message.
        message: String,
        /// The field's number.
        number: u32,
    },
    /// A wire type this writer does not read (groups).
    #[error("wire type {0} is not supported")]
    Unsupported(u8),
}

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

/// Writes the JSON of the message of type `full_name` encoded in `bytes`
/// into `out`. On error `out` may hold part of the text: the caller
/// truncates it.
pub fn write(out: &mut Vec<u8>, full_name: &str, bytes: &[u8]) -> Result<(), WireJsonError> {
    let plans = &*PLANS;
    let index = *plans
        .by_name
        .get(full_name)
        .ok_or_else(|| WireJsonError::UnknownType(full_name.to_string()))?;
    let mut scratch = Vec::with_capacity(64);
    plans.message(out, index, bytes, &mut scratch)
}

/// How one message type is written.
struct MessagePlan {
    descriptor: MessageDescriptor,
    /// Written by prost-reflect (well-known types).
    reflective: bool,
    /// Its fields, by number.
    fields: Vec<FieldPlan>,
}

struct FieldPlan {
    number: u32,
    /// `"name":`, ready to write.
    key: Vec<u8>,
    kind: ValueKind,
    shape: Shape,
}

#[derive(Clone, Copy, PartialEq)]
enum Shape {
    Single,
    List,
    /// A map: key and value kinds, and the JSON written for an absent
    /// value (its type's default).
    Map,
}

#[derive(Clone)]
enum ValueKind {
    Double,
    Float,
    Int32,
    Int64,
    Uint32,
    Uint64,
    Sint32,
    Sint64,
    Fixed32,
    Fixed64,
    Sfixed32,
    Sfixed64,
    Bool,
    String,
    Bytes,
    /// An enum: index into `Plans::enums`.
    Enum(usize),
    /// A message: index into `Plans::messages`.
    Message(usize),
    /// A map entry message: key kind, value kind, and the value's default
    /// JSON for an entry without a value.
    MapEntry(Box<(ValueKind, ValueKind, Vec<u8>)>),
}

impl ValueKind {
    /// Whether a list of these may come packed (one length-delimited run).
    fn packable(&self) -> bool {
        !matches!(
            self,
            Self::String | Self::Bytes | Self::Message(_) | Self::MapEntry(_)
        )
    }

    /// The wire type an unpacked value of this kind has.
    fn wire_type(&self) -> u8 {
        match self {
            Self::Double | Self::Fixed64 | Self::Sfixed64 => FIXED64,
            Self::Float | Self::Fixed32 | Self::Sfixed32 => FIXED32,
            Self::String | Self::Bytes | Self::Message(_) | Self::MapEntry(_) => LEN,
            _ => VARINT,
        }
    }
}

/// An enum's value names by number (`"NAME"`, quoted), as
/// `EnumDescriptor::get_value` picks them.
struct EnumPlan {
    names: Vec<(i32, Vec<u8>)>,
}

struct Plans {
    by_name: HashMap<String, usize>,
    messages: Vec<MessagePlan>,
    enums: Vec<EnumPlan>,
}

static PLANS: LazyLock<Plans> = LazyLock::new(|| Plans::build(&DESCRIPTOR_POOL));

impl Plans {
    fn build(pool: &prost_reflect::DescriptorPool) -> Self {
        let by_name: HashMap<String, usize> = pool
            .all_messages()
            .enumerate()
            .map(|(i, m)| (m.full_name().to_string(), i))
            .collect();
        let enum_index: HashMap<String, usize> = pool
            .all_enums()
            .enumerate()
            .map(|(i, e)| (e.full_name().to_string(), i))
            .collect();
        let enums: Vec<EnumPlan> = pool
            .all_enums()
            .map(|e| {
                let mut numbers: Vec<i32> = e.values().map(|v| v.number()).collect();
                numbers.sort_unstable();
                numbers.dedup();
                EnumPlan {
                    names: numbers
                        .into_iter()
                        .filter_map(|n| {
                            let name = e.get_value(n)?.name().to_string();
                            Some((n, format!("\"{name}\"").into_bytes()))
                        })
                        .collect(),
                }
            })
            .collect();
        let kind_of = |kind: Kind| -> ValueKind {
            match kind {
                Kind::Double => ValueKind::Double,
                Kind::Float => ValueKind::Float,
                Kind::Int32 => ValueKind::Int32,
                Kind::Int64 => ValueKind::Int64,
                Kind::Uint32 => ValueKind::Uint32,
                Kind::Uint64 => ValueKind::Uint64,
                Kind::Sint32 => ValueKind::Sint32,
                Kind::Sint64 => ValueKind::Sint64,
                Kind::Fixed32 => ValueKind::Fixed32,
                Kind::Fixed64 => ValueKind::Fixed64,
                Kind::Sfixed32 => ValueKind::Sfixed32,
                Kind::Sfixed64 => ValueKind::Sfixed64,
                Kind::Bool => ValueKind::Bool,
                Kind::String => ValueKind::String,
                Kind::Bytes => ValueKind::Bytes,
                Kind::Enum(e) => ValueKind::Enum(enum_index[e.full_name()]),
                Kind::Message(m) => ValueKind::Message(by_name[m.full_name()]),
            }
        };
        let default_json = |kind: &Kind, enums: &[EnumPlan]| -> Vec<u8> {
            match kind {
                Kind::Message(_) => b"{}".to_vec(),
                Kind::String | Kind::Bytes => b"\"\"".to_vec(),
                Kind::Bool => b"false".to_vec(),
                Kind::Double | Kind::Float => b"0.0".to_vec(),
                Kind::Enum(e) => {
                    let n = e.default_value().number();
                    enum_name(&enums[enum_index[e.full_name()]], n)
                }
                _ => b"0".to_vec(),
            }
        };
        let messages = pool
            .all_messages()
            .map(|m| {
                let mut fields: Vec<FieldPlan> = m
                    .fields()
                    .map(|f| {
                        let (kind, shape) = match f.kind() {
                            Kind::Message(entry) if f.is_map() => {
                                let key = entry.map_entry_key_field().kind();
                                let value = entry.map_entry_value_field().kind();
                                let default = default_json(&value, &enums);
                                (
                                    ValueKind::MapEntry(Box::new((
                                        kind_of(key),
                                        kind_of(value),
                                        default,
                                    ))),
                                    Shape::Map,
                                )
                            }
                            kind if f.is_list() => (kind_of(kind), Shape::List),
                            kind => (kind_of(kind), Shape::Single),
                        };
                        FieldPlan {
                            number: f.number(),
                            key: format!("\"{}\":", f.name()).into_bytes(),
                            kind,
                            shape,
                        }
                    })
                    .collect();
                fields.sort_by_key(|f| f.number);
                MessagePlan {
                    reflective: m.full_name().starts_with("google.protobuf."),
                    descriptor: m,
                    fields,
                }
            })
            .collect();
        Plans {
            by_name,
            messages,
            enums,
        }
    }

    /// Writes message `index` encoded in `bytes`. `scratch` holds the
    /// fields of the messages being written, outer ones first.
    fn message(
        &self,
        out: &mut Vec<u8>,
        index: usize,
        bytes: &[u8],
        scratch: &mut Vec<Field>,
    ) -> Result<(), WireJsonError> {
        let plan = &self.messages[index];
        if plan.reflective {
            return reflective(out, &plan.descriptor, bytes);
        }
        let base = scratch.len();
        let mut reader = Reader { bytes, at: 0 };
        while !reader.done() {
            scratch.push(reader.field()?);
        }
        // Stable: the values of a repeated field keep their order.
        scratch[base..].sort_by_key(|f| f.number);
        out.push(b'{');
        let mut first = true;
        let mut i = base;
        let end = scratch.len();
        while i < end {
            let number = scratch[i].number;
            let mut j = i + 1;
            while j < end && scratch[j].number == number {
                j += 1;
            }
            if let Ok(at) = plan.fields.binary_search_by_key(&number, |f| f.number) {
                let field = &plan.fields[at];
                let mark = out.len();
                if !first {
                    out.push(b',');
                }
                out.extend_from_slice(&field.key);
                let wrote = self.field(out, plan, field, bytes, i, j, scratch)?;
                if wrote {
                    first = false;
                } else {
                    out.truncate(mark);
                }
            }
            i = j;
        }
        scratch.truncate(base);
        out.push(b'}');
        Ok(())
    }

    /// Writes the value of `field`, found in `scratch[from..to]`. Returns
    /// false when there is nothing to show (a packed run of no values).
    #[allow(clippy::too_many_arguments)]
    fn field(
        &self,
        out: &mut Vec<u8>,
        plan: &MessagePlan,
        field: &FieldPlan,
        bytes: &[u8],
        from: usize,
        to: usize,
        scratch: &mut Vec<Field>,
    ) -> Result<bool, WireJsonError> {
        let mismatch = |f: &Field| WireJsonError::WireType {
            message: plan.descriptor.full_name().to_string(),
            number: f.number,
            wire_type: f.wire_type,
        };
        match field.shape {
            Shape::Single => {
                let last = scratch[to - 1];
                if last.wire_type != field.kind.wire_type() {
                    return Err(mismatch(&last));
                }
                match field.kind {
                    ValueKind::Message(m) if to - from > 1 => {
                        // Occurrences of one message field merge, as
                        // parsing their concatenation does.
                        let mut joined = Vec::new();
                        for f in &scratch[from..to] {
                            if f.wire_type != LEN {
                                return Err(mismatch(f));
                            }
                            joined.extend_from_slice(f.slice(bytes));
                        }
                        self.message(out, m, &joined, scratch)?;
                    }
                    _ => self.value(out, plan, &field.kind, &last, bytes, scratch)?,
                }
                Ok(true)
            }
            Shape::List => {
                out.push(b'[');
                let mut count = 0usize;
                for k in from..to {
                    let f = scratch[k];
                    if f.wire_type == LEN && field.kind.packable() {
                        let mut run = Reader {
                            bytes: f.slice(bytes),
                            at: 0,
                        };
                        let wire_type = field.kind.wire_type();
                        while !run.done() {
                            let value = run.value(wire_type)?;
                            if count > 0 {
                                out.push(b',');
                            }
                            let f = Field {
                                number: f.number,
                                wire_type,
                                value,
                                start: 0,
                                end: 0,
                            };
                            self.value(out, plan, &field.kind, &f, bytes, scratch)?;
                            count += 1;
                        }
                    } else {
                        if f.wire_type != field.kind.wire_type() {
                            return Err(mismatch(&f));
                        }
                        if count > 0 {
                            out.push(b',');
                        }
                        self.value(out, plan, &field.kind, &f, bytes, scratch)?;
                        count += 1;
                    }
                }
                out.push(b']');
                Ok(count > 0)
            }
            Shape::Map => {
                let ValueKind::MapEntry(entry) = &field.kind else {
                    unreachable!("map fields are planned with MapEntry kinds")
                };
                let (key_kind, value_kind, default) = &**entry;
                // Later entries with the same key win.
                let mut entries: Vec<(Vec<u8>, Option<Field>, &[u8])> = Vec::new();
                for f in &scratch[from..to] {
                    if f.wire_type != LEN {
                        return Err(mismatch(f));
                    }
                    let body = f.slice(bytes);
                    let mut reader = Reader { bytes: body, at: 0 };
                    let (mut key, mut value) = (None, None);
                    while !reader.done() {
                        let e = reader.field()?;
                        match e.number {
                            1 => key = Some(e),
                            2 => value = Some(e),
                            _ => {}
                        }
                    }
                    let mut key_json = Vec::new();
                    match key {
                        Some(k) => {
                            if k.wire_type != key_kind.wire_type() {
                                return Err(mismatch(&k));
                            }
                            self.map_key(&mut key_json, plan, key_kind, &k, body)?;
                        }
                        None => key_json.extend_from_slice(match key_kind {
                            ValueKind::String => b"\"\"",
                            ValueKind::Bool => b"\"false\"",
                            _ => b"\"0\"",
                        }),
                    }
                    if let Some(v) = &value {
                        if v.wire_type != value_kind.wire_type() {
                            return Err(mismatch(v));
                        }
                    }
                    entries.retain(|(k, ..)| *k != key_json);
                    entries.push((key_json, value, body));
                }
                out.push(b'{');
                for (n, (key, value, body)) in entries.iter().enumerate() {
                    if n > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(key);
                    out.push(b':');
                    match value {
                        Some(v) => self.value(out, plan, value_kind, v, body, scratch)?,
                        None => out.extend_from_slice(default),
                    }
                }
                out.push(b'}');
                Ok(true)
            }
        }
    }

    /// Writes one value of `kind`, `f` (its wire type already checked).
    fn value(
        &self,
        out: &mut Vec<u8>,
        plan: &MessagePlan,
        kind: &ValueKind,
        f: &Field,
        bytes: &[u8],
        scratch: &mut Vec<Field>,
    ) -> Result<(), WireJsonError> {
        let v = f.value;
        // Writing into a Vec cannot fail.
        let _ = match kind {
            ValueKind::Double => {
                float(out, f64::from_bits(v));
                Ok(())
            }
            ValueKind::Float => {
                let x = f32::from_bits(v as u32);
                if x.is_finite() {
                    let _ = serde_json::to_writer(&mut *out, &x);
                } else {
                    float(out, f64::from(x));
                }
                Ok(())
            }
            ValueKind::Int32 | ValueKind::Sfixed32 => write!(out, "{}", v as i32),
            ValueKind::Int64 | ValueKind::Sfixed64 => write!(out, "{}", v as i64),
            ValueKind::Uint32 | ValueKind::Fixed32 => write!(out, "{}", v as u32),
            ValueKind::Uint64 | ValueKind::Fixed64 => write!(out, "{v}"),
            ValueKind::Sint32 => write!(out, "{}", zigzag(v) as i32),
            ValueKind::Sint64 => write!(out, "{}", zigzag(v)),
            ValueKind::Bool => {
                out.extend_from_slice(if v != 0 { b"true" } else { b"false" });
                Ok(())
            }
            ValueKind::String => {
                let text =
                    std::str::from_utf8(f.slice(bytes)).map_err(|_| WireJsonError::Utf8 {
                        message: plan.descriptor.full_name().to_string(),
                        number: f.number,
                    })?;
                let _ = serde_json::to_writer(&mut *out, text);
                Ok(())
            }
            ValueKind::Bytes => {
                out.push(b'"');
                let mut text = String::new();
                base64::engine::general_purpose::STANDARD.encode_string(f.slice(bytes), &mut text);
                out.extend_from_slice(text.as_bytes());
                out.push(b'"');
                Ok(())
            }
            ValueKind::Enum(e) => {
                out.extend_from_slice(&enum_name(&self.enums[*e], v as i32));
                Ok(())
            }
            ValueKind::Message(m) => return self.message(out, *m, f.slice(bytes), scratch),
            ValueKind::MapEntry(_) => {
                unreachable!("map entries are written by the map field")
            }
        };
        Ok(())
    }

    /// Writes a map key: a string as a JSON string, other kinds quoted.
    fn map_key(
        &self,
        out: &mut Vec<u8>,
        plan: &MessagePlan,
        kind: &ValueKind,
        f: &Field,
        bytes: &[u8],
    ) -> Result<(), WireJsonError> {
        if matches!(kind, ValueKind::String) {
            let mut none = Vec::new();
            return self.value(out, plan, kind, f, bytes, &mut none);
        }
        out.push(b'"');
        let mut none = Vec::new();
        self.value(out, plan, kind, f, bytes, &mut none)?;
        out.push(b'"');
        Ok(())
    }
}

/// `"NAME"`, or the number when the enum has no value with it.
fn enum_name(plan: &EnumPlan, number: i32) -> Vec<u8> {
    match plan.names.binary_search_by_key(&number, |(n, _)| *n) {
        Ok(i) => plan.names[i].1.clone(),
        Err(_) => number.to_string().into_bytes(),
    }
}

/// A double as prost-reflect writes it.
fn float(out: &mut Vec<u8>, x: f64) {
    if x.is_finite() {
        let _ = serde_json::to_writer(&mut *out, &x);
    } else if x.is_nan() {
        out.extend_from_slice(b"\"NaN\"");
    } else if x > 0.0 {
        out.extend_from_slice(b"\"Infinity\"");
    } else {
        out.extend_from_slice(b"\"-Infinity\"");
    }
}

fn zigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// A message of a well-known type, through prost-reflect.
fn reflective(
    out: &mut Vec<u8>,
    descriptor: &MessageDescriptor,
    bytes: &[u8],
) -> Result<(), WireJsonError> {
    let message =
        DynamicMessage::decode(descriptor.clone(), bytes).map_err(|_| WireJsonError::Truncated)?;
    let mut serializer = serde_json::Serializer::new(out);
    let _ = message.serialize_with_options(&mut serializer, &super::json::SERIALIZE);
    Ok(())
}

/// One field occurrence in an encoding: its number, wire type, and its
/// value (varint or fixed) or the span of its bytes (length-delimited).
#[derive(Clone, Copy)]
struct Field {
    number: u32,
    wire_type: u8,
    value: u64,
    start: usize,
    end: usize,
}

impl Field {
    fn slice<'a>(&self, bytes: &'a [u8]) -> &'a [u8] {
        &bytes[self.start..self.end]
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn done(&self) -> bool {
        self.at >= self.bytes.len()
    }

    fn varint(&mut self) -> Result<u64, WireJsonError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.bytes.get(self.at).ok_or(WireJsonError::Truncated)?;
            self.at += 1;
            value |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(value);
            }
        }
        Err(WireJsonError::Truncated)
    }

    fn fixed(&mut self, n: usize) -> Result<u64, WireJsonError> {
        let end = self.at.checked_add(n).ok_or(WireJsonError::Truncated)?;
        let raw = self
            .bytes
            .get(self.at..end)
            .ok_or(WireJsonError::Truncated)?;
        self.at = end;
        let mut buf = [0u8; 8];
        buf[..n].copy_from_slice(raw);
        Ok(u64::from_le_bytes(buf))
    }

    /// A value of `wire_type` (no length-delimited ones: packed runs hold
    /// scalars only).
    fn value(&mut self, wire_type: u8) -> Result<u64, WireJsonError> {
        match wire_type {
            VARINT => self.varint(),
            FIXED64 => self.fixed(8),
            FIXED32 => self.fixed(4),
            other => Err(WireJsonError::Unsupported(other)),
        }
    }

    fn field(&mut self) -> Result<Field, WireJsonError> {
        let tag = self.varint()?;
        let number = u32::try_from(tag >> 3).map_err(|_| WireJsonError::Truncated)?;
        let wire_type = (tag & 7) as u8;
        let (value, start, end) = match wire_type {
            LEN => {
                let len = usize::try_from(self.varint()?).map_err(|_| WireJsonError::Truncated)?;
                let start = self.at;
                let end = start.checked_add(len).ok_or(WireJsonError::Truncated)?;
                if end > self.bytes.len() {
                    return Err(WireJsonError::Truncated);
                }
                self.at = end;
                (0, start, end)
            }
            other => (self.value(other)?, 0, 0),
        };
        Ok(Field {
            number,
            wire_type,
            value,
            start,
            end,
        })
    }
}

#[cfg(test)]
mod tests {
    use prost::Message as _;
    use prost_reflect::{DynamicMessage, ReflectMessage};

    use crate::proto::mesos::v1::{self, agent};
    use crate::proto::test_fixtures::{RICH_EXECUTOR, RICH_FRAMEWORK, RICH_TASK};
    use crate::proto::{from_json, write_json, write_json_reflective};

    fn both<M: ReflectMessage>(m: &M) -> (String, String) {
        let (mut new, mut old) = (Vec::new(), Vec::new());
        write_json(&mut new, m);
        write_json_reflective(&mut old, m);
        (
            String::from_utf8(new).unwrap(),
            String::from_utf8(old).unwrap(),
        )
    }

    #[test]
    fn rich_messages_are_written_byte_for_byte_as_the_reflective_writer_does() {
        let task: v1::Task = from_json(RICH_TASK.as_bytes()).unwrap();
        let executor: v1::ExecutorInfo = from_json(RICH_EXECUTOR.as_bytes()).unwrap();
        let framework: v1::FrameworkInfo = from_json(RICH_FRAMEWORK.as_bytes()).unwrap();
        let (new, old) = both(&task);
        assert_eq!(new, old);
        // The text holds what the test means it to.
        assert!(new.contains(r#""status_update_uuid":"/w==""#), "{new}");
        assert!(new.contains(r#"\"quoted\" \\ back\u0001slash\nnew line é 日本 😀"#));
        assert!(new.contains(r#""end":18446744073709551615"#), "{new}");
        assert!(
            new.contains(r#""nanoseconds":-9223372036854775808"#),
            "{new}"
        );
        assert!(new.contains(r#""statuses":[200,204]"#), "{new}");
        assert!(new.contains(r#""limits":{"cpus":{"value":2.5}}"#), "{new}");
        let (new, old) = both(&executor);
        assert_eq!(new, old);
        let (new, old) = both(&framework);
        assert_eq!(new, old);
        let response = agent::Response {
            r#type: Some(agent::response::Type::GetState as i32),
            get_state: Some(agent::response::GetState {
                get_tasks: Some(agent::response::GetTasks {
                    launched_tasks: vec![task.clone(), task],
                    ..Default::default()
                }),
                get_executors: Some(agent::response::GetExecutors {
                    executors: vec![agent::response::get_executors::Executor {
                        executor_info: executor,
                    }],
                    ..Default::default()
                }),
                get_frameworks: Some(agent::response::GetFrameworks {
                    completed_frameworks: vec![agent::response::get_frameworks::Framework {
                        framework_info: framework,
                    }],
                    ..Default::default()
                }),
            }),
            ..Default::default()
        };
        let (new, old) = both(&response);
        assert_eq!(new, old);
    }

    /// What prost-reflect writes for `bytes` read as a `full_name`.
    fn reference(full_name: &str, bytes: &[u8]) -> String {
        let descriptor = crate::proto::DESCRIPTOR_POOL
            .get_message_by_name(full_name)
            .unwrap();
        let message = DynamicMessage::decode(descriptor, bytes).unwrap();
        let mut out = Vec::new();
        let mut serializer = serde_json::Serializer::new(&mut out);
        message
            .serialize_with_options(&mut serializer, &crate::proto::json::SERIALIZE)
            .unwrap();
        String::from_utf8(out).unwrap()
    }

    fn direct(full_name: &str, bytes: &[u8]) -> String {
        let mut out = Vec::new();
        super::write(&mut out, full_name, bytes).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn tag(number: u32, wire_type: u8) -> Vec<u8> {
        varint(u64::from(number) << 3 | u64::from(wire_type))
    }

    fn varint(mut v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            if v < 0x80 {
                out.push(v as u8);
                return out;
            }
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
    }

    fn len(number: u32, body: &[u8]) -> Vec<u8> {
        let mut out = tag(number, super::LEN);
        out.extend(varint(body.len() as u64));
        out.extend_from_slice(body);
        out
    }

    /// Encodings prost does not write but other peers may: packed and
    /// unpacked runs of one list, a message field given twice (merged),
    /// fields out of order, unknown fields, an enum number without a name,
    /// non-finite doubles, a negative int32.
    #[test]
    fn unusual_encodings_read_as_prost_reflect_reads_them() {
        // HealthCheck.HTTPCheckInfo: statuses (4) packed then unpacked,
        // port (1) after them, an unknown field 99, protocol (5) = 7.
        let mut http = Vec::new();
        let packed: Vec<u8> = [200u64, 300, 0].iter().flat_map(|v| varint(*v)).collect();
        http.extend(len(4, &packed));
        http.extend(tag(4, super::VARINT));
        http.extend(varint(404));
        http.extend(len(4, &[]));
        http.extend(tag(1, super::VARINT));
        http.extend(varint(8080));
        http.extend(tag(99, super::VARINT));
        http.extend(varint(1));
        http.extend(tag(5, super::VARINT));
        http.extend(varint(7));
        let name = "mesos.v1.HealthCheck.HTTPCheckInfo";
        assert_eq!(direct(name, &http), reference(name, &http));
        assert_eq!(
            direct(name, &http),
            r#"{"port":8080,"statuses":[200,300,0,404],"protocol":7}"#
        );
        // HealthCheck: http (1) given twice, merged; delay_seconds (2) NaN,
        // interval_seconds (3) -inf; a packed run of nothing alone.
        let mut check = len(1, &http);
        let mut more = tag(1, super::VARINT);
        more.extend(varint(9));
        check.extend(len(1, &more));
        check.extend(tag(2, super::FIXED64));
        check.extend(f64::NAN.to_bits().to_le_bytes());
        check.extend(tag(3, super::FIXED64));
        check.extend(f64::NEG_INFINITY.to_bits().to_le_bytes());
        let name = "mesos.v1.HealthCheck";
        assert_eq!(direct(name, &check), reference(name, &check));
        let only_empty = len(4, &[]);
        assert_eq!(
            direct("mesos.v1.HealthCheck.HTTPCheckInfo", &only_empty),
            reference("mesos.v1.HealthCheck.HTTPCheckInfo", &only_empty)
        );
        // A negative int32 (ten-byte varint): CheckStatusInfo.Command's
        // exit_code.
        let mut command = tag(1, super::VARINT);
        command.extend(varint(-3i64 as u64));
        let name = "mesos.v1.CheckStatusInfo.Command";
        assert_eq!(direct(name, &command), reference(name, &command));
        assert_eq!(direct(name, &command), r#"{"exit_code":-3}"#);
    }

    #[test]
    fn truncated_or_mistyped_encodings_are_refused() {
        let task = v1::TaskId { value: "t".into() }.encode_to_vec();
        let mut out = Vec::new();
        assert!(super::write(&mut out, "mesos.v1.TaskID", &task[..task.len() - 1]).is_err());
        // value (1) as a varint.
        let mut out = Vec::new();
        assert!(super::write(&mut out, "mesos.v1.TaskID", &[0x08, 0x01]).is_err());
        let mut out = Vec::new();
        assert!(super::write(&mut out, "mesos.v1.NoSuchThing", &[]).is_err());
    }

    /// Maps: prost-reflect writes them in its HashMap's order; the direct
    /// writer in the encoding's (prost's BTreeMap: by key). Same members;
    /// an entry without a value shows the value type's default; a later
    /// entry with the same key wins.
    #[test]
    fn maps_have_the_same_members_in_key_order() {
        let mut task: v1::Task = from_json(RICH_TASK.as_bytes()).unwrap();
        for (k, v) in [("mem", 64.0), ("disk", 1.0), ("cpus", 0.5)] {
            task.limits
                .insert(k.to_string(), v1::value::Scalar { value: v });
        }
        let (new, old) = both(&task);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&new).unwrap(),
            serde_json::from_str::<serde_json::Value>(&old).unwrap()
        );
        assert!(
            new.contains(
                r#""limits":{"cpus":{"value":0.5},"disk":{"value":1.0},"mem":{"value":64.0}}"#
            ),
            "{new}"
        );
        // OfferFilters.ResourceQuantities: quantities (1), map<string,
        // Scalar>: "a" without a value, "b" twice.
        let entry = |key: &str, value: Option<f64>| {
            let mut e = len(1, key.as_bytes());
            if let Some(v) = value {
                let mut scalar = tag(1, super::FIXED64);
                scalar.extend(v.to_bits().to_le_bytes());
                e.extend(len(2, &scalar));
            }
            len(1, &e)
        };
        let mut bytes = entry("b", Some(1.0));
        bytes.extend(entry("a", None));
        bytes.extend(entry("b", Some(2.0)));
        let name = "mesos.v1.OfferFilters.ResourceQuantities";
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&direct(name, &bytes)).unwrap(),
            serde_json::from_str::<serde_json::Value>(&reference(name, &bytes)).unwrap()
        );
        assert_eq!(
            direct(name, &bytes),
            r#"{"quantities":{"a":{},"b":{"value":2.0}}}"#
        );
    }
}
