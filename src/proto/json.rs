//! Mesos' JSON mapping of protocol messages (what its HTTP APIs accept and
//! produce): proto field names (`agent_id`, not `agentId`), enum values by
//! name, `bytes` as base64, 64-bit integers as JSON numbers, unset fields
//! left out.

use prost_reflect::{DeserializeOptions, DynamicMessage, ReflectMessage, SerializeOptions};

use super::required::first_missing;
use super::ProtoError;

pub(super) const SERIALIZE: SerializeOptions = SerializeOptions::new()
    .stringify_64_bit_integers(false)
    .use_enum_numbers(false)
    .use_proto_field_name(true)
    .skip_default_fields(true);

/// The JSON form of `message`.
pub fn to_json<M: ReflectMessage>(message: &M) -> serde_json::Value {
    let dynamic = message.transcode_to_dynamic();
    dynamic
        .serialize_with_options(serde_json::value::Serializer, &SERIALIZE)
        // Writing into a `serde_json::Value` cannot fail: every key is a
        // string and every float is written as a number or a string.
        .unwrap_or(serde_json::Value::Null)
}

/// Writes the JSON form of `message` (as [`to_json`] would write it, byte
/// for byte) into `out`, straight from its protobuf encoding
/// (`wire_json`): no `DynamicMessage`, no `serde_json::Value` tree.
pub fn write_json<M: ReflectMessage>(out: &mut Vec<u8>, message: &M) {
    #[cfg(test)]
    if REFLECTIVE.with(std::cell::Cell::get) {
        return write_json_reflective(out, message);
    }
    let start = out.len();
    let bytes = message.encode_to_vec();
    let descriptor = message.descriptor();
    if let Err(e) = super::wire_json::write(out, descriptor.full_name(), &bytes) {
        // Not expected of prost's own encoding; the reflective writer
        // says the same as it always did.
        tracing::debug!(message = descriptor.full_name(), error = %e, "JSON from the encoding");
        out.truncate(start);
        write_json_reflective(out, message);
    }
}

/// Writes the JSON form of the message of type `full_name` (e.g.
/// `mesos.v1.Task`) encoded in `bytes`, as [`write_json`] writes the
/// message: for answers assembled from encodings.
pub fn write_json_encoded(
    out: &mut Vec<u8>,
    full_name: &str,
    bytes: &[u8],
) -> Result<(), ProtoError> {
    let start = out.len();
    let Err(e) = super::wire_json::write(out, full_name, bytes) else {
        return Ok(());
    };
    tracing::debug!(message = full_name, error = %e, "JSON from the encoding");
    out.truncate(start);
    let descriptor = super::DESCRIPTOR_POOL
        .get_message_by_name(full_name)
        .ok_or_else(|| ProtoError::UnknownMessage(full_name.to_string()))?;
    let dynamic =
        DynamicMessage::decode(descriptor, bytes).map_err(|source| ProtoError::Decode {
            message: full_name.to_string(),
            source,
        })?;
    let mut serializer = serde_json::Serializer::new(out);
    // Writing into a Vec cannot fail (see `to_json`).
    let _ = dynamic.serialize_with_options(&mut serializer, &SERIALIZE);
    Ok(())
}

#[cfg(test)]
thread_local! {
    static REFLECTIVE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with [`write_json`] writing through prost-reflect, as it did
/// before `wire_json`: the reference for tests of answers built with it.
#[cfg(test)]
pub fn with_reflective_json<T>(f: impl FnOnce() -> T) -> T {
    REFLECTIVE.with(|r| r.set(true));
    let out = f();
    REFLECTIVE.with(|r| r.set(false));
    out
}

/// [`write_json`] through prost-reflect (a `DynamicMessage` serialized by
/// serde): the reference the direct writer is tested against.
pub fn write_json_reflective<M: ReflectMessage>(out: &mut Vec<u8>, message: &M) {
    let dynamic = message.transcode_to_dynamic();
    let mut serializer = serde_json::Serializer::new(out);
    // Writing into a Vec cannot fail (see `to_json`).
    let _ = dynamic.serialize_with_options(&mut serializer, &SERIALIZE);
}

/// Parses the JSON form of an `M`. Accepts proto or camelCase field names,
/// enums by name or number and numbers as strings; rejects unknown fields
/// (naming the field) and missing proto2 `required` fields.
pub fn from_json<M: ReflectMessage + Default>(bytes: &[u8]) -> Result<M, ProtoError> {
    let descriptor = M::default().descriptor();
    let name = || descriptor.full_name().to_string();
    let json_error = |source| ProtoError::Json {
        message: name(),
        source,
    };
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let options = DeserializeOptions::new().deny_unknown_fields(true);
    let dynamic =
        DynamicMessage::deserialize_with_options(descriptor.clone(), &mut deserializer, &options)
            .map_err(json_error)?;
    deserializer.end().map_err(json_error)?;
    if let Some(field) = first_missing(&dynamic) {
        return Err(ProtoError::MissingRequired {
            message: name(),
            field,
        });
    }
    dynamic
        .transcode_to::<M>()
        .map_err(|source| ProtoError::Decode {
            message: name(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{from_json, to_json};
    use crate::proto::mesos::v1::{self, executor};
    use crate::proto::ProtoError;

    fn running(task: &str) -> v1::TaskStatus {
        v1::TaskStatus {
            task_id: v1::TaskId { value: task.into() },
            state: v1::TaskState::TaskRunning as i32,
            source: Some(v1::task_status::Source::Executor as i32),
            agent_id: Some(v1::AgentId {
                value: "agent-1".into(),
            }),
            data: Some(b"hi".to_vec()),
            uuid: Some(vec![0xff; 4]),
            timestamp: Some(1.5),
            healthy: Some(false),
            ..Default::default()
        }
    }

    /// Found by fuzzing (fuzz/run.sh executor_call): serde_json's default
    /// float parsing is not correctly rounded for long mantissas, so a
    /// double written back as JSON read as a different double. Mesos reads
    /// the nearest double, as `str::parse` does.
    #[test]
    fn doubles_are_read_as_the_nearest_value_and_round_trip() {
        for text in [
            "111111111111111111111111111111700000000.5",
            "1.111111111111111e+38",
        ] {
            let json = format!(
                r#"{{"task_id":{{"value":"t"}},"state":"TASK_RUNNING","timestamp":{text}}}"#
            );
            let status: v1::TaskStatus = from_json(json.as_bytes()).unwrap();
            let want: f64 = text.parse().unwrap();
            assert_eq!(
                status.timestamp.map(f64::to_bits),
                Some(want.to_bits()),
                "{text}"
            );
            let back = serde_json::to_vec(&to_json(&status)).unwrap();
            let again: v1::TaskStatus = from_json(&back).unwrap();
            assert_eq!(
                again.timestamp.map(f64::to_bits),
                Some(want.to_bits()),
                "{text}"
            );
        }
    }

    #[test]
    fn task_status_json_uses_mesos_names_and_base64() {
        assert_eq!(
            to_json(&running("t")),
            json!({
                "task_id": {"value": "t"},
                "state": "TASK_RUNNING",
                "source": "SOURCE_EXECUTOR",
                "data": "aGk=",
                "agent_id": {"value": "agent-1"},
                "timestamp": 1.5,
                "uuid": "/////w==",
                "healthy": false,
            })
        );
    }

    #[test]
    fn sixty_four_bit_integers_are_json_numbers() {
        let time = v1::TimeInfo {
            nanoseconds: 1_700_000_000_123_456_789,
        };
        assert_eq!(
            to_json(&time),
            json!({"nanoseconds": 1_700_000_000_123_456_789_i64})
        );
        let range = v1::value::Range {
            begin: 31000,
            end: u64::MAX,
        };
        assert_eq!(to_json(&range), json!({"begin": 31000, "end": u64::MAX}));
    }

    #[test]
    fn json_round_trips_an_executor_call() {
        let call = executor::Call {
            executor_id: v1::ExecutorId { value: "e".into() },
            framework_id: v1::FrameworkId { value: "f".into() },
            r#type: Some(executor::call::Type::Update as i32),
            update: Some(executor::call::Update {
                status: running("t"),
            }),
            ..Default::default()
        };
        let text = serde_json::to_vec(&to_json(&call)).expect("serializes");
        let parsed: executor::Call = from_json(&text).expect("parses");
        assert_eq!(parsed, call);
    }

    #[test]
    fn from_json_accepts_numbers_as_strings_and_enum_numbers() {
        let time: v1::TimeInfo = from_json(br#"{"nanoseconds": "42"}"#).expect("parses");
        assert_eq!(time.nanoseconds, 42);
        let status: v1::TaskStatus =
            from_json(br#"{"task_id": {"value": "t"}, "state": 2}"#).expect("parses");
        assert_eq!(status.state(), v1::TaskState::TaskFinished);
    }

    #[test]
    fn from_json_rejects_unknown_fields_by_name() {
        let err = from_json::<v1::TaskId>(br#"{"value": "t", "bogus_field": 1}"#)
            .expect_err("unknown field");
        assert!(matches!(err, ProtoError::Json { .. }), "{err}");
        assert!(err.to_string().contains("bogus_field"), "{err}");
        assert!(err.to_string().contains("mesos.v1.TaskID"), "{err}");
    }

    #[test]
    fn from_json_rejects_missing_required_fields() {
        let err = from_json::<v1::TaskStatus>(br#"{"state": "TASK_RUNNING"}"#)
            .expect_err("task_id is required");
        assert_eq!(
            err.to_string(),
            "cannot accept mesos.v1.TaskStatus: required field `task_id` is missing"
        );
        let err = from_json::<executor::Call>(
            br#"{"executor_id": {"value": "e"}, "framework_id": {}, "type": "SUBSCRIBE"}"#,
        )
        .expect_err("framework_id.value is required");
        assert!(
            matches!(&err, ProtoError::MissingRequired { field, .. } if field == "framework_id.value"),
            "{err}"
        );
    }

    #[test]
    fn from_json_rejects_trailing_garbage() {
        assert!(from_json::<v1::TaskId>(br#"{"value": "t"} x"#).is_err());
    }
}
