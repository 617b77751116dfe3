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
    /// For a task whose `ContainerInfo` is DOCKER: everything `docker run`
    /// would have done, computed by the agent. The executor applies it as
    /// is and ignores the other fields' image rules (it still needs
    /// `rootfs` and `seccomp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker: Option<DockerTask>,
}

/// A DOCKER container's task as Mesos' Docker containerizer would have run
/// it (`docker run` built from the `DockerInfo`, its `parameters` and the
/// image's config): the final values, nothing left for the executor to
/// decide.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct DockerTask {
    /// The complete argv, the program first (looked up in the root
    /// filesystem's `PATH` when it holds no `/`).
    pub argv: Vec<String>,
    /// The complete environment: the executor's own is not inherited.
    pub env: Vec<(String, String)>,
    /// Docker's `--user`, else the image's; `None`: root.
    pub user: Option<String>,
    /// Working directory inside the root filesystem (`--workdir`, else the
    /// image's, else `/`).
    pub working_dir: String,
    /// Where the sandbox appears in the root filesystem
    /// (`--docker_sandbox_directory`, default `/mnt/mesos/sandbox`).
    pub sandbox_dir: String,
    /// Host paths bound into the root filesystem (`ContainerInfo.volumes`,
    /// `--volume`, and the container's own `/etc/hosts` with `--add-host`
    /// or `/etc/resolv.conf` with `--dns`), in this order, after the
    /// sandbox and the network files.
    pub binds: Vec<Bind>,
    /// tmpfs mounts (`--tmpfs PATH[:OPTIONS]`): target and mount options
    /// as Docker passes them (`size=64m,mode=1777`, ...; empty: Docker's
    /// defaults `rw,noexec,nosuid,nodev`).
    pub tmpfs: Vec<(String, String)>,
    /// Size of `/dev/shm` in bytes (`--shm-size`); `None`: butte's default.
    pub shm_size: Option<u64>,
    /// The root filesystem is mounted read-only (`--read-only`); binds,
    /// tmpfs, the sandbox, `/dev`, `/proc` and `/dev/shm` stay writable.
    pub read_only: bool,
    /// The capability set kept (names as `CAP_NET_ADMIN`), Docker's default
    /// with `--cap-add`/`--cap-drop` applied; `None`: the default set.
    pub capabilities: Option<Vec<String>>,
    /// Resource limits (`--ulimit NAME=SOFT[:HARD]`): name as Docker writes
    /// it (`nofile`, `nproc`, `core`, ...), soft, hard.
    pub rlimits: Vec<(String, u64, u64)>,
    /// The grace between SIGTERM and SIGKILL when the task has no kill
    /// policy (`--docker_stop_timeout`, default 0: `docker stop -t 0`).
    #[serde(default)]
    pub stop_timeout_ms: u64,
    /// A network namespace the task joins (pinned by the agent: NONE
    /// mode's, with only `lo`); `None`: the executor's.
    #[serde(default)]
    pub netns: Option<PathBuf>,
}

/// One host path bound into a container's root filesystem.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    /// Absolute host path (a file or a directory).
    pub source: PathBuf,
    /// Absolute path in the root filesystem (created when missing).
    pub target: String,
    pub read_only: bool,
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

/// The environment variable (value `1`) through which butte's agent tells
/// the default executor to run its tasks as nested containers through the
/// agent's operator API (`LAUNCH_CONTAINER` with the executor's container
/// as parent), as Mesos' default executor does; the launch-info file then
/// names no root filesystems for them. Tasks do not see it.
pub const NESTED_CONTAINERS_ENV: &str = "BUTTE_NESTED_CONTAINERS";

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
                docker: None,
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
