//! The `ExecutorInfo` of the command executor that runs a task given with
//! a `CommandInfo` and no executor: Mesos' `Slave::getExecutorInfo()`, with
//! `butte executor` in place of `mesos-executor`.

use crate::proto::mesos::{
    value, CommandInfo, DurationInfo, ExecutorId, ExecutorInfo, FrameworkId, Resource, TaskInfo,
};
use std::path::Path;

/// The resources Mesos adds for the command executor itself (a small
/// overcommit): 0.1 cpus and 32 MB.
pub const COMMAND_EXECUTOR_CPUS: f64 = 0.1;
pub const COMMAND_EXECUTOR_MEM_MB: f64 = 32.0;

/// Added to a task's kill policy grace period for the executor's: Mesos'
/// `MAX_REAP_INTERVAL`, so the container outlives the task's TASK_KILLED.
const REAP_INTERVAL_NS: i64 = 1_000_000_000;

/// The command executor's `ExecutorInfo` for `task` (which has a
/// `command`): its id and source are the task's id; its name tells the
/// task and command as Mesos writes it; its command runs `butte executor`
/// and carries the task command's URIs, environment and user; the task's
/// container, labels and discovery are copied; its resources are the
/// executor allowance (with the task's allocation role).
pub fn command_executor_info(framework_id: &str, task: &TaskInfo, butte: &Path) -> ExecutorInfo {
    let task_id = task.task_id.value.clone();
    let given = task.command.clone().unwrap_or_default();
    let butte = butte.display().to_string();
    let command = CommandInfo {
        uris: given.uris.clone(),
        environment: given.environment.clone(),
        shell: Some(false),
        value: Some(butte),
        arguments: vec!["butte".into(), "executor".into()],
        user: given.user.clone(),
    };
    let allocation = task
        .resources
        .iter()
        .find_map(|r| r.allocation_info.clone());
    let scalar = |name: &str, v: f64| Resource {
        name: name.into(),
        r#type: value::Type::Scalar as i32,
        scalar: Some(value::Scalar { value: v }),
        allocation_info: allocation.clone(),
        ..Resource::default()
    };
    let shutdown_grace_period = task
        .kill_policy
        .as_ref()
        .and_then(|k| k.grace_period.as_ref())
        .map(|g| DurationInfo {
            nanoseconds: g.nanoseconds.saturating_add(REAP_INTERVAL_NS),
        });
    ExecutorInfo {
        executor_id: ExecutorId {
            value: task_id.clone(),
        },
        framework_id: Some(FrameworkId {
            value: framework_id.to_string(),
        }),
        command: Some(command),
        container: task.container.clone(),
        resources: vec![
            scalar("cpus", COMMAND_EXECUTOR_CPUS),
            scalar("mem", COMMAND_EXECUTOR_MEM_MB),
        ],
        name: Some(format!("Command Executor {}", name_suffix(task))),
        source: Some(task_id),
        labels: task.labels.clone(),
        discovery: task.discovery.clone(),
        shutdown_grace_period,
        ..ExecutorInfo::default()
    }
}

/// `(Task: ID) (Command: ...)`: the command abbreviated to 12 characters
/// when longer than 15, as Mesos does.
fn name_suffix(task: &TaskInfo) -> String {
    let command = task.command.clone().unwrap_or_default();
    let what = match (command.shell(), command.value.as_deref()) {
        (true, None) => "NO COMMAND".to_string(),
        (true, Some(v)) => format!("sh -c '{}'", abbreviate(v)),
        (false, None) => "NO EXECUTABLE".to_string(),
        (false, Some(v)) => {
            let mut parts = vec![v.to_string()];
            parts.extend(command.arguments.iter().cloned());
            let args = if command.arguments.is_empty() {
                format!("{v}, ")
            } else {
                parts.join(", ")
            };
            format!("[{}]", abbreviate(&args))
        }
    };
    format!("(Task: {}) (Command: {what})", task.task_id.value)
}

/// The first 12 bytes (on a character boundary) and `...` for a text of
/// more than 15 bytes; the text itself otherwise.
fn abbreviate(s: &str) -> String {
    if s.len() <= 15 {
        return s.to_string();
    }
    let mut end = 12;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::mesos::command_info::Uri;
    use crate::proto::mesos::{container_info, ContainerInfo, KillPolicy, TaskId};

    fn task(command: CommandInfo) -> TaskInfo {
        TaskInfo {
            name: "t".into(),
            task_id: TaskId { value: "t1".into() },
            command: Some(command),
            ..TaskInfo::default()
        }
    }

    fn shell(v: &str) -> CommandInfo {
        CommandInfo {
            value: Some(v.into()),
            ..CommandInfo::default()
        }
    }

    #[test]
    fn names_as_mesos_writes_them() {
        let name = |c| {
            command_executor_info("F1", &task(c), Path::new("/b"))
                .name
                .unwrap()
        };
        assert_eq!(
            name(shell("sleep 1000")),
            "Command Executor (Task: t1) (Command: sh -c 'sleep 1000')"
        );
        assert_eq!(
            name(shell("while true; do echo hi; done")),
            "Command Executor (Task: t1) (Command: sh -c 'while true; ...')"
        );
        assert_eq!(
            name(CommandInfo::default()),
            "Command Executor (Task: t1) (Command: NO COMMAND)"
        );
        let argv = |v: Option<&str>, args: &[&str]| CommandInfo {
            shell: Some(false),
            value: v.map(Into::into),
            arguments: args.iter().map(|a| a.to_string()).collect(),
            ..CommandInfo::default()
        };
        assert_eq!(
            name(argv(None, &[])),
            "Command Executor (Task: t1) (Command: NO EXECUTABLE)"
        );
        assert_eq!(
            name(argv(Some("/bin/ls"), &[])),
            "Command Executor (Task: t1) (Command: [/bin/ls, ])"
        );
        assert_eq!(
            name(argv(Some("/bin/echo"), &["echo", "hello"])),
            "Command Executor (Task: t1) (Command: [/bin/echo, e...])"
        );
        // Never cut inside a character.
        assert_eq!(
            name(shell("echo ééééééééé")),
            "Command Executor (Task: t1) (Command: sh -c 'echo ééé...')"
        );
    }

    #[test]
    fn command_executor_info_is_synthesized_as_mesos_does() {
        let mut c = shell("echo hi");
        c.uris = vec![Uri {
            value: "http://x/a.tgz".into(),
            ..Uri::default()
        }];
        c.user = Some("app".into());
        c.environment = Some(crate::proto::mesos::Environment::default());
        let mut t = task(c.clone());
        t.container = Some(ContainerInfo {
            r#type: container_info::Type::Mesos as i32,
            ..ContainerInfo::default()
        });
        t.kill_policy = Some(KillPolicy {
            grace_period: Some(DurationInfo {
                nanoseconds: 3_000_000_000,
            }),
        });
        let e = command_executor_info("F1", &t, Path::new("/usr/bin/butte"));
        assert_eq!(e.executor_id.value, "t1");
        assert_eq!(e.source.as_deref(), Some("t1"));
        assert_eq!(e.framework_id.unwrap().value, "F1");
        assert_eq!(e.container, t.container);
        let cmd = e.command.unwrap();
        assert!(!cmd.shell());
        assert_eq!(cmd.value.as_deref(), Some("/usr/bin/butte"));
        assert_eq!(cmd.arguments, ["butte", "executor"]);
        assert_eq!(cmd.uris, c.uris);
        assert_eq!(cmd.user.as_deref(), Some("app"));
        assert_eq!(cmd.environment, c.environment);
        let res: Vec<(String, f64)> = e
            .resources
            .iter()
            .map(|r| (r.name.clone(), r.scalar.as_ref().unwrap().value))
            .collect();
        assert_eq!(res, [("cpus".into(), 0.1), ("mem".into(), 32.0)]);
        assert_eq!(e.shutdown_grace_period.unwrap().nanoseconds, 4_000_000_000);
    }
}
