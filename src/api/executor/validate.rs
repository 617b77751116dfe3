//! The checks the Mesos agent makes on every executor call before acting on
//! it (`validateExecutorCall`), turning a well-formed call into a value
//! that names what to do. Messages match the agent's.

use crate::proto::mesos::v1::executor::{call, Call};
use crate::proto::mesos::v1::{
    check_info, task_status, CheckStatusInfo, ExecutorId, FrameworkId, TaskState, TaskStatus,
};

/// A call that passed validation.
#[derive(Debug)]
pub(super) enum Valid {
    Subscribe(FrameworkId, ExecutorId, call::Subscribe),
    Update(FrameworkId, ExecutorId, Box<TaskStatus>),
    Message(FrameworkId, ExecutorId, Vec<u8>),
    Heartbeat(FrameworkId, ExecutorId),
    /// Type `UNKNOWN`: well formed, but nothing to do (501).
    Unknown,
}

/// Checks `call` as the agent does. Required fields were checked when the
/// body was decoded.
pub(super) fn validate(call: Call) -> Result<Valid, String> {
    // A number outside the enum is dropped by a proto2 parser: absent.
    let kind = call.r#type.and_then(|t| call::Type::try_from(t).ok());
    let Some(kind) = kind else {
        return Err("Expecting 'type' to be present".into());
    };
    // `executor_id` and `framework_id` are required fields: decoding
    // already refused a call without them.
    let (framework_id, executor_id) = (call.framework_id, call.executor_id);
    match kind {
        call::Type::Subscribe => match call.subscribe {
            Some(s) => Ok(Valid::Subscribe(framework_id, executor_id, s)),
            None => Err("Expecting 'subscribe' to be present".into()),
        },
        call::Type::Update => {
            let status = call
                .update
                .map(|u| u.status)
                .ok_or("Expecting 'update' to be present")?;
            check_status(&framework_id, &executor_id, &status)?;
            Ok(Valid::Update(framework_id, executor_id, Box::new(status)))
        }
        call::Type::Message => match call.message {
            Some(m) => Ok(Valid::Message(framework_id, executor_id, m.data)),
            None => Err("Expecting 'message' to be present".into()),
        },
        call::Type::Heartbeat => Ok(Valid::Heartbeat(framework_id, executor_id)),
        call::Type::Unknown => Ok(Valid::Unknown),
    }
}

fn check_status(
    framework_id: &FrameworkId,
    executor_id: &ExecutorId,
    status: &TaskStatus,
) -> Result<(), String> {
    let Some(uuid) = status.uuid.as_deref() else {
        return Err("Expecting 'uuid' to be present".into());
    };
    if !is_uuid(uuid) {
        return Err("Not a valid UUID".into());
    }
    if let Some(theirs) = &status.executor_id {
        if theirs.value != executor_id.value {
            return Err(format!(
                "ExecutorID in Call: {} does not match ExecutorID in TaskStatus: {}",
                executor_id.value, theirs.value
            ));
        }
    }
    if status.source != Some(task_status::Source::Executor as i32) {
        return Err(format!(
            "Received Call from executor {} of framework {} with invalid source, \
             expecting 'SOURCE_EXECUTOR'",
            executor_id.value, framework_id.value
        ));
    }
    if status.state == TaskState::TaskStaging as i32 {
        return Err(format!(
            "Received TASK_STAGING from executor {} of framework {} which is not allowed",
            executor_id.value, framework_id.value
        ));
    }
    match &status.check_status {
        Some(check) => check_check_status(check),
        None => Ok(()),
    }
}

/// 16 bytes whose version nibble is one of the RFC 4122 versions 1 to 5, as
/// the agent's UUID parser demands.
fn is_uuid(bytes: &[u8]) -> bool {
    bytes.len() == 16 && (1..=5).contains(&(bytes[6] >> 4))
}

fn check_check_status(check: &CheckStatusInfo) -> Result<(), String> {
    let kind = check
        .r#type
        .and_then(|t| check_info::Type::try_from(t).ok());
    let (present, name) = match kind {
        None => return Err("CheckStatusInfo must specify 'type'".into()),
        Some(check_info::Type::Unknown) => {
            return Err("'UNKNOWN' is not a valid check's status type".into())
        }
        Some(check_info::Type::Command) => (check.command.is_some(), ("command", "COMMAND")),
        Some(check_info::Type::Http) => (check.http.is_some(), ("http", "HTTP")),
        Some(check_info::Type::Tcp) => (check.tcp.is_some(), ("tcp", "TCP")),
    };
    if present {
        Ok(())
    } else {
        Err(format!(
            "Expecting '{}' to be set for {} check's status",
            name.0, name.1
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::mesos::v1::{CheckStatusInfo, TaskId};

    const UUID: [u8; 16] = [
        0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0x4d, 0xef, 0x80, 0, 0, 0, 0, 0, 0, 1,
    ];

    fn ids() -> (ExecutorId, FrameworkId) {
        (
            ExecutorId { value: "ex".into() },
            FrameworkId { value: "fw".into() },
        )
    }

    fn update(status: TaskStatus) -> Call {
        let (executor_id, framework_id) = ids();
        Call {
            executor_id,
            framework_id,
            r#type: Some(call::Type::Update as i32),
            update: Some(call::Update { status }),
            ..Default::default()
        }
    }

    fn status() -> TaskStatus {
        TaskStatus {
            task_id: TaskId { value: "t".into() },
            state: TaskState::TaskRunning as i32,
            source: Some(task_status::Source::Executor as i32),
            uuid: Some(UUID.to_vec()),
            ..Default::default()
        }
    }

    fn error(call: Call) -> String {
        validate(call).unwrap_err()
    }

    #[test]
    fn accepts_a_good_update() {
        assert!(matches!(validate(update(status())), Ok(Valid::Update(..))));
    }

    #[test]
    fn type_must_be_a_known_value() {
        let mut c = update(status());
        c.r#type = None;
        assert_eq!(error(c), "Expecting 'type' to be present");
        let mut c = update(status());
        c.r#type = Some(99);
        assert_eq!(error(c), "Expecting 'type' to be present");
        let mut c = update(status());
        c.r#type = Some(call::Type::Unknown as i32);
        assert!(matches!(validate(c), Ok(Valid::Unknown)));
    }

    #[test]
    fn each_type_needs_its_message() {
        for (kind, name) in [
            (call::Type::Subscribe, "subscribe"),
            (call::Type::Update, "update"),
            (call::Type::Message, "message"),
        ] {
            let (executor_id, framework_id) = ids();
            let c = Call {
                executor_id,
                framework_id,
                r#type: Some(kind as i32),
                ..Default::default()
            };
            assert_eq!(error(c), format!("Expecting '{name}' to be present"));
        }
    }

    #[test]
    fn update_status_rules() {
        let with = |f: &dyn Fn(&mut TaskStatus)| {
            let mut s = status();
            f(&mut s);
            error(update(s))
        };
        assert_eq!(with(&|s| s.uuid = None), "Expecting 'uuid' to be present");
        assert_eq!(with(&|s| s.uuid = Some(vec![1; 16])), "Not a valid UUID");
        assert_eq!(
            with(&|s| s.uuid = Some(b"short".to_vec())),
            "Not a valid UUID"
        );
        assert_eq!(
            with(&|s| s.executor_id = Some(ExecutorId {
                value: "other".into()
            })),
            "ExecutorID in Call: ex does not match ExecutorID in TaskStatus: other"
        );
        assert!(with(&|s| s.source = None).contains("with invalid source"));
        assert!(
            with(&|s| s.source = Some(task_status::Source::Agent as i32))
                .contains("expecting 'SOURCE_EXECUTOR'")
        );
        assert_eq!(
            with(&|s| s.state = TaskState::TaskStaging as i32),
            "Received TASK_STAGING from executor ex of framework fw which is not allowed"
        );
        assert_eq!(
            with(&|s| s.check_status = Some(CheckStatusInfo::default())),
            "CheckStatusInfo must specify 'type'"
        );
        assert_eq!(
            with(&|s| {
                s.check_status = Some(CheckStatusInfo {
                    r#type: Some(check_info::Type::Http as i32),
                    ..Default::default()
                })
            }),
            "Expecting 'http' to be set for HTTP check's status"
        );
    }
}
