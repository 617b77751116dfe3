//! The libprocess messages the agent understands, decoded from their name
//! and bytes into one typed value. Untrusted input: anything unknown,
//! truncated or missing a required field is an error, never a panic.

use crate::proto::mesos::internal::{
    CheckpointResourcesMessage, DrainSlaveMessage, FrameworkToExecutorMessage, KillTaskMessage,
    PingSlaveMessage, RunTaskGroupMessage, RunTaskMessage, ShutdownExecutorMessage,
    ShutdownFrameworkMessage, ShutdownMessage, SlaveRegisteredMessage, SlaveReregisteredMessage,
    StatusUpdateAcknowledgementMessage, UpdateFrameworkMessage,
};
use crate::proto::ProtoError;

/// A message from the master (or one of its processes).
#[derive(Debug)]
pub enum Incoming {
    Registered(SlaveRegisteredMessage),
    Reregistered(SlaveReregisteredMessage),
    Ping(PingSlaveMessage),
    RunTask(Box<RunTaskMessage>),
    RunTaskGroup(Box<RunTaskGroupMessage>),
    KillTask(KillTaskMessage),
    Acknowledgement(StatusUpdateAcknowledgementMessage),
    ShutdownFramework(ShutdownFrameworkMessage),
    ShutdownExecutor(ShutdownExecutorMessage),
    FrameworkToExecutor(FrameworkToExecutorMessage),
    UpdateFramework(Box<UpdateFrameworkMessage>),
    Shutdown(ShutdownMessage),
    /// The resources the master wants checkpointed on this agent (dynamic
    /// reservations, persistent volumes), sent after every
    /// (re)registration and after such an operation.
    CheckpointResources(CheckpointResourcesMessage),
    /// Kill every task, refuse new ones, and end drained (`drain.rs`).
    Drain(DrainSlaveMessage),
    /// A message of the Mesos 1.11 master that this agent deliberately
    /// does not act on: the name and why.
    Ignored(&'static str, &'static str),
}

/// The master -> agent messages of Mesos 1.11 that are taken and
/// deliberately not acted on, with the reason. The master sends each only
/// to an agent that advertised a capability butte does not advertise
/// (`capabilities()` in `master.rs`), so seeing one means a confused master,
/// not lost work.
const IGNORED: &[(&str, &str)] = &[
    (
        "ApplyOperationMessage",
        "operations go to agents with RESOURCE_PROVIDER or AGENT_OPERATION_FEEDBACK, \
         which this agent does not advertise",
    ),
    (
        "ReconcileOperationsMessage",
        "operations go to agents with RESOURCE_PROVIDER or AGENT_OPERATION_FEEDBACK, \
         which this agent does not advertise",
    ),
    (
        "AcknowledgeOperationStatusMessage",
        "operations go to agents with RESOURCE_PROVIDER or AGENT_OPERATION_FEEDBACK, \
         which this agent does not advertise",
    ),
];

/// Why a message was not taken.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown message {0:?}")]
    Unknown(String),
    #[error("malformed {name}: {source}")]
    Malformed {
        name: String,
        #[source]
        source: ProtoError,
    },
}

/// Decodes a message by its libprocess name.
pub fn decode(name: &str, body: &[u8]) -> Result<Incoming, DecodeError> {
    fn d<M: prost_reflect::ReflectMessage + Default>(
        name: &str,
        body: &[u8],
    ) -> Result<M, DecodeError> {
        crate::proto::decode::<M>(body).map_err(|source| DecodeError::Malformed {
            name: name.to_string(),
            source,
        })
    }
    let short = name.strip_prefix("mesos.internal.").unwrap_or("");
    Ok(match short {
        "SlaveRegisteredMessage" => Incoming::Registered(d(name, body)?),
        "SlaveReregisteredMessage" => Incoming::Reregistered(d(name, body)?),
        "PingSlaveMessage" => Incoming::Ping(d(name, body)?),
        "RunTaskMessage" => Incoming::RunTask(Box::new(d(name, body)?)),
        "RunTaskGroupMessage" => Incoming::RunTaskGroup(Box::new(d(name, body)?)),
        "KillTaskMessage" => Incoming::KillTask(d(name, body)?),
        "StatusUpdateAcknowledgementMessage" => Incoming::Acknowledgement(d(name, body)?),
        "ShutdownFrameworkMessage" => Incoming::ShutdownFramework(d(name, body)?),
        "ShutdownExecutorMessage" => Incoming::ShutdownExecutor(d(name, body)?),
        "FrameworkToExecutorMessage" => Incoming::FrameworkToExecutor(d(name, body)?),
        "UpdateFrameworkMessage" => Incoming::UpdateFramework(Box::new(d(name, body)?)),
        "ShutdownMessage" => Incoming::Shutdown(d(name, body)?),
        "CheckpointResourcesMessage" => Incoming::CheckpointResources(d(name, body)?),
        "DrainSlaveMessage" => Incoming::Drain(d(name, body)?),
        other => match IGNORED.iter().find(|(n, _)| *n == other) {
            Some((n, why)) => Incoming::Ignored(n, why),
            None => return Err(DecodeError::Unknown(name.to_string())),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::mesos::{FrameworkId, TaskId};
    use proptest::prelude::*;
    use prost::Message;

    const NAMES: &[&str] = &[
        "mesos.internal.SlaveRegisteredMessage",
        "mesos.internal.SlaveReregisteredMessage",
        "mesos.internal.PingSlaveMessage",
        "mesos.internal.RunTaskMessage",
        "mesos.internal.RunTaskGroupMessage",
        "mesos.internal.KillTaskMessage",
        "mesos.internal.StatusUpdateAcknowledgementMessage",
        "mesos.internal.ShutdownFrameworkMessage",
        "mesos.internal.ShutdownExecutorMessage",
        "mesos.internal.FrameworkToExecutorMessage",
        "mesos.internal.UpdateFrameworkMessage",
        "mesos.internal.ShutdownMessage",
        "mesos.internal.CheckpointResourcesMessage",
        "mesos.internal.ApplyOperationMessage",
        "mesos.internal.DrainSlaveMessage",
    ];

    fn kill() -> Vec<u8> {
        KillTaskMessage {
            framework_id: FrameworkId { value: "fw".into() },
            task_id: TaskId {
                value: "task-1".into(),
            },
            kill_policy: None,
        }
        .encode_to_vec()
    }

    #[test]
    fn decodes_by_name() {
        match decode("mesos.internal.KillTaskMessage", &kill()).unwrap() {
            Incoming::KillTask(k) => assert_eq!(k.task_id.value, "task-1"),
            other => panic!("{other:?}"),
        }
    }

    /// Issue 18: every master -> agent message of Mesos 1.11 is taken,
    /// the ones not acted on with a reason.
    #[test]
    fn takes_every_master_message_of_mesos_1_11() {
        let empty = CheckpointResourcesMessage::default().encode_to_vec();
        assert!(matches!(
            decode("mesos.internal.CheckpointResourcesMessage", &empty).unwrap(),
            Incoming::CheckpointResources(c) if c.resources.is_empty()
        ));
        // DrainConfig's fields are optional: an empty config is a drain
        // without a grace period cap.
        let drain = DrainSlaveMessage::default().encode_to_vec();
        assert!(matches!(
            decode("mesos.internal.DrainSlaveMessage", &drain).unwrap(),
            Incoming::Drain(d) if d.config.max_grace_period.is_none() && !d.config.mark_gone()
        ));
        assert!(
            decode("mesos.internal.DrainSlaveMessage", b"").is_err(),
            "a drain without its config is refused"
        );
        for name in [
            "ApplyOperationMessage",
            "ReconcileOperationsMessage",
            "AcknowledgeOperationStatusMessage",
        ] {
            match decode(&format!("mesos.internal.{name}"), b"").unwrap() {
                Incoming::Ignored(n, why) => {
                    assert_eq!(n, name);
                    assert!(why.contains("does not advertise"), "{why}");
                }
                other => panic!("{name}: {other:?}"),
            }
        }
    }

    #[test]
    fn refuses_unknown_truncated_and_incomplete_messages() {
        assert!(matches!(
            decode("mesos.internal.NoSuchMessage", b""),
            Err(DecodeError::Unknown(_))
        ));
        assert!(matches!(
            decode("KillTaskMessage", &kill()),
            Err(DecodeError::Unknown(_))
        ));
        let bytes = kill();
        for cut in 1..bytes.len() {
            assert!(
                decode("mesos.internal.KillTaskMessage", &bytes[..cut]).is_err(),
                "a kill cut at {cut} bytes was taken"
            );
        }
        // Well-formed protobuf without the required task_id.
        let partial = FrameworkId { value: "fw".into() }.encode_to_vec();
        let mut body = vec![0x0a, partial.len() as u8];
        body.extend(partial);
        let err = decode("mesos.internal.KillTaskMessage", &body).unwrap_err();
        assert!(err.to_string().contains("task_id"), "{err}");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]
        /// The decoder of untrusted bytes never panics, whatever the name.
        #[test]
        fn never_panics(i in 0..NAMES.len(), body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode(NAMES[i], &body);
        }

        /// Flipping bytes of a valid message never panics either.
        #[test]
        fn mutated_messages_never_panic(pos in 0usize..64, byte in any::<u8>()) {
            let mut bytes = kill();
            let at = pos % bytes.len();
            bytes[at] = byte;
            let _ = decode("mesos.internal.KillTaskMessage", &bytes);
        }
    }
}
