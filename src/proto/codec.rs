//! Binary decoding with proto2 `required` checks, and v0 <-> v1 conversion.

use prost::Message;
use prost_reflect::{DynamicMessage, ReflectMessage};

use super::required::first_missing;
use super::ProtoError;

/// Decodes `bytes` as an `M` and checks that every proto2 `required` field
/// (in `M` and in every message nested in it) is present, as Mesos' C++
/// parser does; prost alone would fill missing ones with defaults.
pub fn decode<M: ReflectMessage + Default>(bytes: &[u8]) -> Result<M, ProtoError> {
    let descriptor = M::default().descriptor();
    let name = || descriptor.full_name().to_string();
    let dynamic =
        DynamicMessage::decode(descriptor.clone(), bytes).map_err(|source| ProtoError::Decode {
            message: name(),
            source,
        })?;
    if let Some(field) = first_missing(&dynamic) {
        return Err(ProtoError::MissingRequired {
            message: name(),
            field,
        });
    }
    M::decode(bytes).map_err(|source| ProtoError::Decode {
        message: name(),
        source,
    })
}

/// Converts a message into its twin in another package by re-encoding,
/// as Mesos' `evolve()` does: v0 `mesos::TaskStatus` into
/// `mesos::v1::TaskStatus`, `mesos::SlaveInfo` into `mesos::v1::AgentInfo`,
/// and so on. The twins share field numbers and wire types, so only the
/// names change (`slave_id` reads as `agent_id`, `SOURCE_SLAVE` as
/// `SOURCE_AGENT`); a field only one side declares (v0
/// `SlaveInfo.checkpoint`) is dropped.
///
/// # Panics
/// If `T` is not a wire twin of the source type: a programming error that
/// no input can cause.
pub fn evolve<T: Message + Default>(from: &impl Message) -> T {
    T::decode(from.encode_to_vec().as_slice())
        .expect("evolve() converts between wire-compatible message types")
}

/// The other direction of [`evolve`]: v1 into v0 (`mesos::v1::TaskStatus`
/// into `mesos::TaskStatus`), again by re-encoding.
///
/// # Panics
/// As [`evolve`].
pub fn devolve<T: Message + Default>(from: &impl Message) -> T {
    evolve(from)
}

#[cfg(test)]
mod tests {
    use prost::{Message, Name};

    use super::{decode, devolve, evolve};
    use crate::proto::mesos::internal::{RunTaskMessage, StatusUpdateMessage};
    use crate::proto::mesos::{self, v1};
    use crate::proto::{to_json, ProtoError};

    fn task_id(value: &str) -> mesos::TaskId {
        mesos::TaskId {
            value: value.into(),
        }
    }

    #[test]
    fn task_id_encodes_as_the_protobuf_spec_says() {
        // field 1, wire type 2 (LEN) -> tag 0x0a; length 1; "t" = 0x74.
        assert_eq!(task_id("t").encode_to_vec(), [0x0a, 0x01, 0x74]);
    }

    #[test]
    fn task_status_encodes_required_fields_in_field_order() {
        let status = mesos::TaskStatus {
            task_id: task_id("t"),
            state: mesos::TaskState::TaskRunning as i32,
            ..Default::default()
        };
        // task_id: 0a 03 {0a 01 74}; state (field 2, varint): 10 01.
        assert_eq!(
            status.encode_to_vec(),
            [0x0a, 0x03, 0x0a, 0x01, 0x74, 0x10, 0x01]
        );
    }

    fn run_task_message() -> RunTaskMessage {
        RunTaskMessage {
            framework: mesos::FrameworkInfo {
                user: "root".into(),
                name: "marathon".into(),
                id: Some(mesos::FrameworkId {
                    value: "fw-1".into(),
                }),
                checkpoint: Some(true),
                roles: vec!["web".into()],
                ..Default::default()
            },
            task: mesos::TaskInfo {
                name: "sleep".into(),
                task_id: task_id("task-1"),
                slave_id: mesos::SlaveId {
                    value: "agent-1".into(),
                },
                resources: vec![mesos::Resource {
                    name: "cpus".into(),
                    r#type: mesos::value::Type::Scalar as i32,
                    scalar: Some(mesos::value::Scalar { value: 0.5 }),
                    ..Default::default()
                }],
                command: Some(mesos::CommandInfo {
                    value: Some("sleep 10".into()),
                    ..Default::default()
                }),
                limits: [("mem".to_string(), mesos::value::Scalar { value: 64.0 })].into(),
                ..Default::default()
            },
            pid: Some("scheduler-1@10.0.0.1:8080".into()),
            launch_executor: Some(true),
            ..Default::default()
        }
    }

    #[test]
    fn run_task_message_round_trips() {
        let message = run_task_message();
        let bytes = message.encode_to_vec();
        let decoded: RunTaskMessage = decode(&bytes).expect("decodes");
        assert_eq!(decoded, message);
        assert_eq!(decoded.encode_to_vec(), bytes);
    }

    #[test]
    fn full_name_is_the_libprocess_message_name() {
        assert_eq!(RunTaskMessage::full_name(), "mesos.internal.RunTaskMessage");
        assert_eq!(v1::executor::Call::full_name(), "mesos.v1.executor.Call");
        assert_eq!(mesos::TaskStatus::full_name(), "mesos.TaskStatus");
    }

    #[test]
    fn decode_rejects_a_missing_required_field() {
        // Only `state` (10 01): `task_id` is required.
        let err = decode::<mesos::TaskStatus>(&[0x10, 0x01]).expect_err("task_id is missing");
        assert!(
            matches!(&err, ProtoError::MissingRequired { message, field }
                if message == "mesos.TaskStatus" && field == "task_id"),
            "{err}"
        );
    }

    #[test]
    fn decode_names_the_path_of_a_nested_missing_field() {
        // StatusUpdateMessage { update: StatusUpdate { framework_id: {"f"},
        // status: TaskStatus { state: 1 } /* no task_id */, timestamp: 1.0 } }
        #[rustfmt::skip]
        let bytes = [
            0x0a, 0x12, // update (field 1, LEN 18)
            0x0a, 0x03, 0x0a, 0x01, b'f', // framework_id
            0x22, 0x02, 0x10, 0x01, // status (field 4): state = 1
            0x29, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, // timestamp (field 5, fixed64) = 1.0
        ];
        let err = decode::<StatusUpdateMessage>(&bytes).expect_err("task_id is missing");
        assert_eq!(
            err.to_string(),
            "cannot accept mesos.internal.StatusUpdateMessage: \
             required field `update.status.task_id` is missing"
        );
    }

    #[test]
    fn decode_names_the_type_of_malformed_bytes() {
        let err = decode::<RunTaskMessage>(&[0x12, 0x10, 0x00]).expect_err("truncated");
        assert!(
            err.to_string()
                .starts_with("cannot decode mesos.internal.RunTaskMessage: "),
            "{err}"
        );
    }

    #[test]
    fn evolve_renames_slave_to_agent_and_devolve_restores_it() {
        let v0 = mesos::TaskStatus {
            task_id: task_id("t"),
            state: mesos::TaskState::TaskFailed as i32,
            source: Some(mesos::task_status::Source::Slave as i32),
            reason: Some(mesos::task_status::Reason::SlaveRestarted as i32),
            slave_id: Some(mesos::SlaveId {
                value: "agent-1".into(),
            }),
            ..Default::default()
        };
        let v1 = evolve::<v1::TaskStatus>(&v0);
        let json = to_json(&v1);
        assert_eq!(json["source"], "SOURCE_AGENT");
        assert_eq!(json["reason"], "REASON_AGENT_RESTARTED");
        assert_eq!(json["agent_id"]["value"], "agent-1");
        let back = devolve::<mesos::TaskStatus>(&v1);
        assert_eq!(back, v0);
    }
}
