//! What the containerizer hands the executors about each task it launches.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What the containerizer computed for one task from its container image.
///
/// The executor runs the task with these values: `rootfs` is the image's
/// root filesystem, already mounted in the executor's mount namespace;
/// `env` is the image's environment (applied before the task's own);
/// `working_dir` and `user` come from the image config; `command` is the
/// image's entrypoint followed by its cmd, used when the task's
/// `CommandInfo` gives no `value`. A task without an image has the default
/// (all empty) value.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct TaskLaunchInfo {
    /// Root filesystem of the task's image, if it has one.
    pub rootfs: Option<PathBuf>,
    /// The image's environment, in the image's order.
    pub env: Vec<(String, String)>,
    /// The image's working directory inside `rootfs`.
    pub working_dir: Option<String>,
    /// The image's user (a name or uid, optionally `:group`).
    pub user: Option<String>,
    /// The image's entrypoint followed by its cmd.
    pub command: Option<Vec<String>>,
    /// The seccomp program (raw BPF) a task with a root filesystem is
    /// confined by, compiled by the agent for the default capability set;
    /// `None`: unconfined.
    #[serde(default)]
    pub seccomp: Option<Vec<u8>>,
}

/// Launch values for the tasks of one executor, by task id.
pub type LaunchInfos = BTreeMap<String, TaskLaunchInfo>;

/// The environment variable through which the agent asks a built-in
/// executor to rotate its container's `stdout` and `stderr` (Mesos'
/// `LogrotateContainerLogger`); its value is a [`Logrotate`] in JSON. The
/// executor removes it from its tasks' environment.
pub const LOGROTATE_ENV: &str = "BUTTE_LOGROTATE";

/// The environment variable (value `1`) through which the agent, run with
/// `--no-switch_user`, tells a built-in executor to run its tasks as its
/// own user (the agent's) instead of their `CommandInfo.user` or the
/// framework's user, as Mesos' command executor does then. Tasks do not
/// see it.
pub const NO_SWITCH_USER_ENV: &str = "BUTTE_NO_SWITCH_USER";

/// How one stream's file in the sandbox is rotated.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// The most bytes the file holds; when the next bytes would not fit,
    /// it is rotated first.
    pub max_size: u64,
    /// How many rotated files (`stdout.1` ... `stdout.N`) are kept, as
    /// logrotate's `rotate N`: `Some(0)` keeps none, `None` keeps all.
    pub keep: Option<u32>,
}

/// The rotation of a container's `stdout` and `stderr`.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Logrotate {
    pub stdout: Rotation,
    pub stderr: Rotation,
}

#[cfg(test)]
mod tests {
    use super::{LaunchInfos, Logrotate, Rotation, TaskLaunchInfo};

    #[test]
    fn launch_infos_round_trip_through_json() {
        let mut infos = LaunchInfos::new();
        infos.insert(
            "task-1".into(),
            TaskLaunchInfo {
                rootfs: Some("/var/lib/butte/rootfs/abc".into()),
                env: vec![("PATH".into(), "/usr/bin:/bin".into())],
                working_dir: Some("/app".into()),
                user: Some("nobody".into()),
                command: Some(vec!["/bin/sh".into(), "-c".into(), "echo hi".into()]),
                seccomp: Some(vec![6, 0, 0, 0, 0, 0, 0xff, 0x7f]),
            },
        );
        infos.insert("task-2".into(), TaskLaunchInfo::default());
        let text = serde_json::to_string(&infos).expect("serializes");
        assert!(
            text.contains(r#""env":[["PATH","/usr/bin:/bin"]]"#),
            "{text}"
        );
        let back: LaunchInfos = serde_json::from_str(&text).expect("parses");
        assert_eq!(back, infos);
    }

    #[test]
    fn logrotate_round_trips_through_json() {
        let l = Logrotate {
            stdout: Rotation {
                max_size: 10 << 20,
                keep: Some(3),
            },
            stderr: Rotation {
                max_size: 4096,
                keep: None,
            },
        };
        let text = serde_json::to_string(&l).expect("serializes");
        assert_eq!(serde_json::from_str::<Logrotate>(&text).unwrap(), l);
    }
}
