//! How a task's process is started, planned as data from its `CommandInfo`
//! and what the containerizer prepared (`TaskLaunchInfo`), then turned into
//! a `std::process::Command`.
//!
//! - argv: `shell` (the default) runs `/bin/sh -c VALUE`; otherwise `VALUE`
//!   is the program and `arguments` its argv (`[VALUE]` when empty). With
//!   an image and no `VALUE`, the image's entrypoint and cmd are the
//!   command, and `arguments`, if any, replace it, as Docker does.
//! - environment, later entries winning: the executor's own, then
//!   `MESOS_SANDBOX` as the task sees it, the image's, the `CommandInfo`'s
//!   (`VALUE` variables; secrets are refused), `MESOS_ALLOCATION_ROLE`.
//! - a task with a root filesystem is sent, as a [`Run`], to the process
//!   the executor prepared for it at its start (`butte enter --prepare`,
//!   pivoted into it with the sandbox at `/mnt/mesos/sandbox`), which execs
//!   it; working directory the image's or that sandbox.
//! - without one it runs in its sandbox directory on the host, as the
//!   `CommandInfo`'s user when that differs from ours (we must be root).
//! - a Docker task (`TaskLaunchInfo.docker`) runs exactly as the agent
//!   computed it: its argv, environment (nothing of ours inherited), user
//!   and working directory; the `CommandInfo` is not consulted. Its prepared
//!   processes get the rest ([`docker_setup`]: sandbox place, mounts,
//!   capabilities, resource limits) as `butte enter --setup`.

use crate::proto::launch::{DockerTask, TaskLaunchInfo, NO_SWITCH_USER_ENV};
use crate::proto::mesos::v1::environment::{variable::Type as VariableType, Variable};
use crate::proto::mesos::v1::{CommandInfo, Environment, TaskInfo};
use crate::support::prepared::{Run, Setup, SetupBind};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the sandbox appears inside a task's root filesystem.
pub const SANDBOX_IN_ROOTFS: &str = "/mnt/mesos/sandbox";

/// Why a task's process cannot be planned or started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LaunchError {
    #[error("task has no command")]
    NoCommand,
    #[error("shell command is not specified")]
    NoShellValue,
    #[error("executable is not specified, and the image has no entrypoint or cmd")]
    NoExecutable,
    #[error("environment variable {0:?} is a secret: secrets are not supported")]
    Secret(String),
    #[error("user {0:?} does not exist on this host")]
    UnknownUser(String),
    #[error("cannot run as user {user:?}: the executor runs as uid {uid}, not as root")]
    NotRoot { user: String, uid: u32 },
    #[error("task id {0:?} cannot name a sandbox directory")]
    BadTaskId(String),
    #[error("the task names a container image, but the agent prepared none for it")]
    ImageNotPrepared,
    #[error("the Docker task has no command: its argv is empty")]
    EmptyDockerCommand,
}

/// A task with a root filesystem: what its prepared process is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rootfs {
    pub path: PathBuf,
    /// The host directory bound at [`SANDBOX_IN_ROOTFS`] (a Docker task's:
    /// at its `sandbox_dir`).
    pub sandbox: PathBuf,
    /// Working directory inside the root filesystem.
    pub cwd: String,
}

/// One process to start, as data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The program (looked up in `PATH` when it holds no `/`).
    pub program: String,
    /// The argv, `argv[0]` included.
    pub argv: Vec<String>,
    /// The complete environment.
    pub env: Vec<(String, String)>,
    /// The host working directory (host tasks).
    pub cwd: PathBuf,
    /// Run as this user (a name, or `uid[:gid]`).
    pub user: Option<String>,
    pub rootfs: Option<Rootfs>,
}

/// Where a task runs: the executor's environment and the task's sandbox.
#[derive(Debug, Clone)]
pub struct Place<'a> {
    /// The executor's environment (inherited by its tasks).
    pub env: &'a [(String, String)],
    /// The task's sandbox on the host.
    pub sandbox: &'a Path,
    /// Set `MESOS_SANDBOX` to the task's own sandbox (the default
    /// executor's tasks each have one); the command executor's task shares
    /// the executor's, already in its environment.
    pub own_sandbox: bool,
}

/// The program and argv of a command.
pub fn command_line(
    command: &CommandInfo,
    image_command: Option<&[String]>,
) -> Result<(String, Vec<String>), LaunchError> {
    let value = command.value.as_deref().filter(|v| !v.is_empty());
    if command.shell.unwrap_or(true) {
        let value = value.ok_or(LaunchError::NoShellValue)?;
        let argv = vec!["sh".to_string(), "-c".to_string(), value.to_string()];
        return Ok(("/bin/sh".to_string(), argv));
    }
    if let Some(value) = value {
        let argv = if command.arguments.is_empty() {
            vec![value.to_string()]
        } else {
            command.arguments.clone()
        };
        return Ok((value.to_string(), argv));
    }
    let argv = if command.arguments.is_empty() {
        image_command.map(<[String]>::to_vec).unwrap_or_default()
    } else {
        command.arguments.clone()
    };
    match argv.first() {
        Some(program) if !program.is_empty() => Ok((program.clone(), argv)),
        _ => Err(LaunchError::NoExecutable),
    }
}

/// Sets `key` in an ordered environment, replacing an earlier value.
pub fn set_var(env: &mut Vec<(String, String)>, key: &str, value: &str) {
    match env.iter_mut().find(|(k, _)| k == key) {
        Some((_, v)) => *v = value.to_string(),
        None => env.push((key.to_string(), value.to_string())),
    }
}

/// Applies a `CommandInfo`'s variables: values only, secrets refused.
pub fn apply_environment(
    env: &mut Vec<(String, String)>,
    vars: Option<&Environment>,
) -> Result<(), LaunchError> {
    for v in vars.map(|e| e.variables.as_slice()).unwrap_or_default() {
        match v.r#type.map(VariableType::try_from) {
            Some(Ok(VariableType::Secret)) => return Err(LaunchError::Secret(v.name.clone())),
            _ => set_var(env, &v.name, v.value.as_deref().unwrap_or_default()),
        }
    }
    Ok(())
}

/// Plans the process of `task`.
pub fn plan(task: &TaskInfo, info: &TaskLaunchInfo, place: &Place) -> Result<Plan, LaunchError> {
    if let Some(docker) = &info.docker {
        return docker_plan(docker, info, place);
    }
    let command = task.command.as_ref().ok_or(LaunchError::NoCommand)?;
    // Never run a task that asked for an image on the host instead.
    let wants_image = task
        .container
        .as_ref()
        .and_then(|c| c.mesos.as_ref())
        .is_some_and(|m| m.image.is_some());
    if wants_image && info.rootfs.is_none() {
        return Err(LaunchError::ImageNotPrepared);
    }
    let (program, argv) = command_line(command, info.command.as_deref())?;
    let mut env = place.env.to_vec();
    // The agent's `--no-switch_user`: the task runs as we do.
    let switch_user = !env.iter().any(|(k, _)| k == NO_SWITCH_USER_ENV);
    env.retain(|(k, _)| k != NO_SWITCH_USER_ENV);
    let rootfs = info.rootfs.as_ref().map(|path| Rootfs {
        path: path.clone(),
        sandbox: place.sandbox.to_path_buf(),
        cwd: info
            .working_dir
            .clone()
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| SANDBOX_IN_ROOTFS.to_string()),
    });
    if rootfs.is_some() {
        set_var(&mut env, "MESOS_SANDBOX", SANDBOX_IN_ROOTFS);
    } else if place.own_sandbox {
        set_var(&mut env, "MESOS_SANDBOX", &place.sandbox.to_string_lossy());
    }
    for (k, v) in &info.env {
        set_var(&mut env, k, v);
    }
    apply_environment(&mut env, command.environment.as_ref())?;
    let role = task
        .resources
        .first()
        .and_then(|r| r.allocation_info.as_ref())
        .and_then(|a| a.role.as_deref());
    if let Some(role) = role {
        set_var(&mut env, "MESOS_ALLOCATION_ROLE", role);
    }
    let user = command
        .user
        .clone()
        .filter(|u| !u.is_empty() && switch_user)
        .or_else(|| info.user.clone().filter(|u| !u.is_empty()));
    Ok(Plan {
        program,
        argv,
        env,
        cwd: place.sandbox.to_path_buf(),
        user,
        rootfs,
    })
}

/// The `CommandInfo` a task of the default executor is launched with as a
/// nested container: the task's own, with the environment the executor
/// gives its task processes (see [`plan`]): the executor's own (for a task
/// with an image, only its `MESOS_*` variables: the image's `Env` comes
/// from the agent, under the command's), then the command's (secrets are
/// refused), then `MESOS_ALLOCATION_ROLE`. `MESOS_SANDBOX` is the agent's
/// to set, the sandbox as the container sees it; what the executor alone
/// is told (`--no-switch_user`, nested containers) is not passed on.
pub fn nested_command(
    task: &TaskInfo,
    executor_env: &[(String, String)],
    not_inherited: &[&str],
) -> Result<CommandInfo, LaunchError> {
    let mut command = task.command.clone().ok_or(LaunchError::NoCommand)?;
    let image = task
        .container
        .as_ref()
        .and_then(|c| c.mesos.as_ref())
        .is_some_and(|m| m.image.is_some());
    let mut env: Vec<(String, String)> = executor_env
        .iter()
        .filter(|(k, _)| {
            k != "MESOS_SANDBOX"
                && k != NO_SWITCH_USER_ENV
                && !not_inherited.contains(&k.as_str())
                && (!image || k.starts_with("MESOS_"))
        })
        .cloned()
        .collect();
    apply_environment(&mut env, command.environment.as_ref())?;
    let role = task
        .resources
        .first()
        .and_then(|r| r.allocation_info.as_ref())
        .and_then(|a| a.role.as_deref());
    if let Some(role) = role {
        set_var(&mut env, "MESOS_ALLOCATION_ROLE", role);
    }
    command.environment = Some(Environment {
        variables: env
            .into_iter()
            .map(|(name, value)| Variable {
                name,
                r#type: Some(VariableType::Value as i32),
                value: Some(value),
                secret: None,
            })
            .collect(),
    });
    Ok(command)
}

/// A Docker task's process: the agent's values as they are.
fn docker_plan(d: &DockerTask, info: &TaskLaunchInfo, place: &Place) -> Result<Plan, LaunchError> {
    let path = info.rootfs.clone().ok_or(LaunchError::ImageNotPrepared)?;
    let program = match d.argv.first() {
        Some(p) if !p.is_empty() => p.clone(),
        _ => return Err(LaunchError::EmptyDockerCommand),
    };
    let cwd = if d.working_dir.is_empty() {
        "/".to_string()
    } else {
        d.working_dir.clone()
    };
    Ok(Plan {
        program,
        argv: d.argv.clone(),
        env: d.env.clone(),
        cwd: place.sandbox.to_path_buf(),
        user: d.user.clone().filter(|u| !u.is_empty()),
        rootfs: Some(Rootfs {
            path,
            sandbox: place.sandbox.to_path_buf(),
            cwd,
        }),
    })
}

/// What a Docker task's prepared processes apply (`butte enter --setup`).
pub fn docker_setup(d: &DockerTask) -> Setup {
    Setup {
        sandbox_dir: Some(d.sandbox_dir.clone()).filter(|s| !s.is_empty()),
        binds: d
            .binds
            .iter()
            .map(|b| SetupBind {
                source: b.source.clone(),
                target: b.target.clone(),
                read_only: b.read_only,
            })
            .collect(),
        tmpfs: d.tmpfs.clone(),
        shm_size: d.shm_size,
        read_only: d.read_only,
        capabilities: d.capabilities.clone(),
        rlimits: d.rlimits.clone(),
        netns: d.netns.clone(),
    }
}

/// A host user's ids, from `/etc/passwd` text: a name, a uid or `uid:gid`.
pub fn lookup_user(passwd: &str, user: &str) -> Option<(u32, u32)> {
    let numeric = match user.split_once(':') {
        Some((u, g)) => u.parse().ok().zip(g.parse().ok()),
        None => user.parse::<u32>().ok().map(|u| (u, u32::MAX)),
    };
    let entry = |matches: &dyn Fn(&[&str]) -> bool| {
        passwd.lines().find_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            (f.len() >= 4 && matches(&f))
                .then(|| f[2].parse().ok().zip(f[3].parse().ok()))
                .flatten()
        })
    };
    match numeric {
        Some((uid, gid)) if gid != u32::MAX => Some((uid, gid)),
        Some((uid, _)) => Some(
            entry(&|f| f[2].parse() == Ok(uid))
                .map(|(_, g)| (uid, g))
                .unwrap_or((uid, uid)),
        ),
        None => entry(&|f| f[0] == user),
    }
}

/// A task id as a sandbox directory name: no separators, not `.`/`..`.
pub fn task_dir_name(task_id: &str) -> Result<&str, LaunchError> {
    let bad = task_id.is_empty()
        || task_id == "."
        || task_id == ".."
        || task_id.contains('/')
        || task_id.chars().any(char::is_control);
    if bad {
        return Err(LaunchError::BadTaskId(task_id.to_string()));
    }
    Ok(task_id)
}

/// The command a task with a root filesystem sends its prepared process
/// (`butte enter --prepare`, see `prepared`); `None` for a host task.
pub fn prepared_run(plan: &Plan) -> Option<Run> {
    let r = plan.rootfs.as_ref()?;
    // `enter` execs argv[0] itself: the program goes first.
    let argv = std::iter::once(plan.program.clone())
        .chain(plan.argv.iter().skip(1).cloned())
        .collect();
    Some(Run {
        argv,
        env: plan.env.clone(),
        cwd: Some(r.cwd.clone()),
        user: plan.user.clone(),
        timeout_ms: None,
    })
}

/// The `std::process::Command` of a host task: the program itself in its
/// sandbox, as its user. The process leads its own process group, so that
/// signals reach everything it starts. A task with a root filesystem runs
/// through its prepared process instead ([`prepared_run`]).
pub fn command(plan: &Plan) -> Result<Command, LaunchError> {
    if plan.rootfs.is_some() {
        return Err(LaunchError::ImageNotPrepared);
    }
    let mut cmd = Command::new(&plan.program);
    if let Some(arg0) = plan.argv.first() {
        cmd.arg0(arg0);
    }
    cmd.args(plan.argv.iter().skip(1)).current_dir(&plan.cwd);
    if let Some(user) = &plan.user {
        switch_user(&mut cmd, user)?;
    }
    cmd.env_clear()
        .envs(plan.env.iter().map(|(k, v)| (k, v)))
        .process_group(0);
    Ok(cmd)
}

/// Runs a host task as `user` unless that is who we are already.
fn switch_user(cmd: &mut Command, user: &str) -> Result<(), LaunchError> {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let (uid, gid) =
        lookup_user(&passwd, user).ok_or_else(|| LaunchError::UnknownUser(user.to_string()))?;
    let me = nix::unistd::geteuid().as_raw();
    if uid == me {
        return Ok(());
    }
    if me != 0 {
        return Err(LaunchError::NotRoot {
            user: user.to_string(),
            uid: me,
        });
    }
    cmd.uid(uid).gid(gid);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::mesos::v1::environment::Variable;
    use crate::proto::mesos::v1::resource::AllocationInfo;
    use crate::proto::mesos::v1::{Resource, TaskId};

    fn cmd(shell: Option<bool>, value: Option<&str>, args: &[&str]) -> CommandInfo {
        CommandInfo {
            shell,
            value: value.map(Into::into),
            arguments: args.iter().map(|a| a.to_string()).collect(),
            ..Default::default()
        }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn shell_commands_run_under_sh() {
        let (program, argv) = command_line(&cmd(None, Some("exit 3"), &["ignored"]), None).unwrap();
        assert_eq!(program, "/bin/sh");
        assert_eq!(argv, strings(&["sh", "-c", "exit 3"]));
        assert_eq!(
            command_line(&cmd(Some(true), None, &[]), None).unwrap_err(),
            LaunchError::NoShellValue
        );
    }

    #[test]
    fn argv_commands_use_value_as_the_program() {
        let (program, argv) =
            command_line(&cmd(Some(false), Some("/bin/ls"), &["ls", "-l"]), None).unwrap();
        assert_eq!(
            (program.as_str(), argv),
            ("/bin/ls", strings(&["ls", "-l"]))
        );
        let (program, argv) =
            command_line(&cmd(Some(false), Some("/bin/true"), &[]), None).unwrap();
        assert_eq!(
            (program.as_str(), argv),
            ("/bin/true", strings(&["/bin/true"]))
        );
    }

    #[test]
    fn image_command_is_used_without_a_value() {
        let image = strings(&["/entry.sh", "serve", "--port=80"]);
        let (program, argv) = command_line(&cmd(Some(false), None, &[]), Some(&image)).unwrap();
        assert_eq!((program.as_str(), argv), ("/entry.sh", image.clone()));
        let (program, argv) =
            command_line(&cmd(Some(false), None, &["/bin/echo", "hi"]), Some(&image)).unwrap();
        assert_eq!(
            (program.as_str(), argv),
            ("/bin/echo", strings(&["/bin/echo", "hi"]))
        );
        assert_eq!(
            command_line(&cmd(Some(false), None, &[]), None).unwrap_err(),
            LaunchError::NoExecutable
        );
        // A shell command ignores the image's.
        let (program, _) = command_line(&cmd(None, Some("echo"), &[]), Some(&image)).unwrap();
        assert_eq!(program, "/bin/sh");
    }

    fn var(name: &str, value: &str, secret: bool) -> Variable {
        Variable {
            name: name.into(),
            r#type: Some(if secret {
                VariableType::Secret as i32
            } else {
                VariableType::Value as i32
            }),
            value: Some(value.into()),
            secret: None,
        }
    }

    fn task(command: CommandInfo) -> TaskInfo {
        TaskInfo {
            task_id: TaskId { value: "t1".into() },
            command: Some(command),
            resources: vec![Resource {
                allocation_info: Some(AllocationInfo {
                    role: Some("web".into()),
                }),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn a_nested_task_is_launched_with_the_environment_a_task_process_gets() {
        let mut c = cmd(None, Some("env"), &[]);
        c.user = Some("nobody".into());
        c.environment = Some(Environment {
            variables: vec![var("A", "command", false), var("C", "command", false)],
        });
        let base = vec![
            ("PATH".to_string(), "/usr/bin:/bin".to_string()),
            ("A".to_string(), "executor".to_string()),
            ("MESOS_SANDBOX".to_string(), "/sb".to_string()),
            ("MESOS_FRAMEWORK_ID".to_string(), "fw".to_string()),
            (NO_SWITCH_USER_ENV.to_string(), "1".to_string()),
            ("BUTTE_X".to_string(), "1".to_string()),
        ];
        let vars = |c: CommandInfo| -> Vec<(String, String)> {
            c.environment
                .unwrap()
                .variables
                .into_iter()
                .map(|v| {
                    assert_eq!(v.r#type, Some(VariableType::Value as i32));
                    (v.name, v.value.unwrap())
                })
                .collect()
        };
        let t = task(c.clone());
        let got = nested_command(&t, &base, &["BUTTE_X"]).unwrap();
        assert_eq!(got.value.as_deref(), Some("env"));
        assert_eq!(got.user.as_deref(), Some("nobody"));
        // MESOS_SANDBOX is the agent's to set (the sandbox as the
        // container sees it).
        assert_eq!(
            vars(got),
            vec![
                ("PATH".to_string(), "/usr/bin:/bin".to_string()),
                ("A".to_string(), "command".to_string()),
                ("MESOS_FRAMEWORK_ID".to_string(), "fw".to_string()),
                ("C".to_string(), "command".to_string()),
                ("MESOS_ALLOCATION_ROLE".to_string(), "web".to_string()),
            ]
        );
        // With an image, its Env (set by the agent) is not hidden by ours.
        let mut t = task(c);
        t.container = Some(crate::proto::mesos::v1::ContainerInfo {
            mesos: Some(crate::proto::mesos::v1::container_info::MesosInfo {
                image: Some(Default::default()),
            }),
            ..Default::default()
        });
        assert_eq!(
            vars(nested_command(&t, &base, &["BUTTE_X"]).unwrap()),
            vec![
                ("MESOS_FRAMEWORK_ID".to_string(), "fw".to_string()),
                ("A".to_string(), "command".to_string()),
                ("C".to_string(), "command".to_string()),
                ("MESOS_ALLOCATION_ROLE".to_string(), "web".to_string()),
            ]
        );
        let mut secret = cmd(None, Some("env"), &[]);
        secret.environment = Some(Environment {
            variables: vec![var("S", "x", true)],
        });
        assert_eq!(
            nested_command(&task(secret), &base, &[]).unwrap_err(),
            LaunchError::Secret("S".into())
        );
    }

    #[test]
    fn environment_layers_executor_image_then_command() {
        let mut c = cmd(None, Some("env"), &[]);
        c.environment = Some(Environment {
            variables: vec![var("B", "command", false), var("C", "command", false)],
        });
        let info = TaskLaunchInfo {
            env: vec![("A".into(), "image".into()), ("B".into(), "image".into())],
            ..Default::default()
        };
        let base = vec![
            ("PATH".to_string(), "/bin".to_string()),
            ("A".to_string(), "executor".to_string()),
            ("MESOS_SANDBOX".to_string(), "/sb".to_string()),
        ];
        let place = Place {
            env: &base,
            sandbox: Path::new("/sb"),
            own_sandbox: false,
        };
        let p = plan(&task(c), &info, &place).unwrap();
        let get = |k: &str| p.env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("PATH"), Some("/bin"));
        assert_eq!(get("A"), Some("image"));
        assert_eq!(get("B"), Some("command"));
        assert_eq!(get("C"), Some("command"));
        assert_eq!(get("MESOS_SANDBOX"), Some("/sb"));
        assert_eq!(get("MESOS_ALLOCATION_ROLE"), Some("web"));
        assert_eq!(p.cwd, PathBuf::from("/sb"));
        assert_eq!(p.rootfs, None);
    }

    #[test]
    fn no_switch_user_runs_the_task_as_the_executor() {
        let mut c = cmd(None, Some("id -u"), &[]);
        c.user = Some("nobody".into());
        let base = vec![
            ("PATH".to_string(), "/bin".to_string()),
            (NO_SWITCH_USER_ENV.to_string(), "1".to_string()),
        ];
        let place = Place {
            env: &base,
            sandbox: Path::new("/sb"),
            own_sandbox: false,
        };
        let p = plan(&task(c.clone()), &TaskLaunchInfo::default(), &place).unwrap();
        assert_eq!(p.user, None);
        assert!(
            !p.env.iter().any(|(k, _)| k == NO_SWITCH_USER_ENV),
            "{:?}",
            p.env
        );
        let place = Place {
            env: &base[..1],
            ..place
        };
        let p = plan(&task(c), &TaskLaunchInfo::default(), &place).unwrap();
        assert_eq!(p.user.as_deref(), Some("nobody"));
    }

    #[test]
    fn secrets_are_refused() {
        let mut c = cmd(None, Some("env"), &[]);
        c.environment = Some(Environment {
            variables: vec![var("TOKEN", "", true)],
        });
        let place = Place {
            env: &[],
            sandbox: Path::new("/sb"),
            own_sandbox: false,
        };
        let e = plan(&task(c), &TaskLaunchInfo::default(), &place).unwrap_err();
        assert_eq!(e, LaunchError::Secret("TOKEN".into()));
        assert!(e.to_string().contains("secret"));
    }

    #[test]
    fn rootfs_tasks_go_through_enter() {
        let mut c = cmd(Some(false), None, &[]);
        c.user = Some("nobody".into());
        let info = TaskLaunchInfo {
            rootfs: Some("/run/butte/rootfs/t1".into()),
            env: vec![("PATH".into(), "/usr/bin".into())],
            working_dir: Some("/app".into()),
            user: Some("app".into()),
            command: Some(strings(&["python3", "-m", "http.server"])),
            seccomp: None,
            docker: None,
        };
        let base = vec![("PATH".to_string(), "/host/bin".to_string())];
        let place = Place {
            env: &base,
            sandbox: Path::new("/var/sb/tasks/t1"),
            own_sandbox: true,
        };
        let p = plan(&task(c), &info, &place).unwrap();
        assert_eq!(p.user.as_deref(), Some("nobody"));
        let r = p.rootfs.clone().unwrap();
        assert_eq!(r.cwd, "/app");
        assert_eq!(r.sandbox, PathBuf::from("/var/sb/tasks/t1"));
        let get = |k: &str| p.env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(get("MESOS_SANDBOX").as_deref(), Some(SANDBOX_IN_ROOTFS));
        assert_eq!(get("PATH").as_deref(), Some("/usr/bin"));
        let run = prepared_run(&p).unwrap();
        assert_eq!(run.argv, strings(&["python3", "-m", "http.server"]));
        assert_eq!(run.cwd.as_deref(), Some("/app"));
        assert_eq!(run.user.as_deref(), Some("nobody"));
        assert_eq!(run.env, p.env);
        // Never on the host.
        assert_eq!(command(&p).unwrap_err(), LaunchError::ImageNotPrepared);
        // A shell command: the program, then the rest of its argv.
        let p = plan(&task(cmd(None, Some("exit 3"), &[])), &info, &place).unwrap();
        assert_eq!(
            prepared_run(&p).unwrap().argv,
            strings(&["/bin/sh", "-c", "exit 3"])
        );
    }

    fn docker_task() -> DockerTask {
        DockerTask {
            argv: strings(&["/entry", "--port", "80"]),
            env: vec![
                ("PATH".into(), "/usr/bin".into()),
                ("MESOS_SANDBOX".into(), "/sandbox".into()),
            ],
            user: Some("app".into()),
            working_dir: "/srv".into(),
            sandbox_dir: "/sandbox".into(),
            binds: vec![crate::proto::launch::Bind {
                source: "/data".into(),
                target: "/data".into(),
                read_only: true,
            }],
            tmpfs: vec![("/run".into(), "size=1m".into())],
            shm_size: Some(1 << 20),
            read_only: true,
            capabilities: Some(strings(&["CAP_NET_ADMIN"])),
            rlimits: vec![("nofile".into(), 100, 200)],
            stop_timeout_ms: 0,
            netns: None,
        }
    }

    #[test]
    fn docker_tasks_run_as_the_agent_computed_them() {
        let mut c = cmd(None, Some("echo ignored"), &[]);
        c.user = Some("nobody".into());
        c.environment = Some(Environment {
            variables: vec![var("FROM_COMMAND", "1", false)],
        });
        let info = TaskLaunchInfo {
            rootfs: Some("/run/butte/rootfs/t1".into()),
            env: vec![("FROM_IMAGE".into(), "1".into())],
            working_dir: Some("/image-dir".into()),
            user: Some("image-user".into()),
            command: Some(strings(&["/image-entry"])),
            seccomp: None,
            docker: Some(docker_task()),
        };
        let base = vec![
            ("PATH".to_string(), "/host/bin".to_string()),
            ("EXECUTOR_ONLY".to_string(), "1".to_string()),
            (NO_SWITCH_USER_ENV.to_string(), "1".to_string()),
        ];
        let place = Place {
            env: &base,
            sandbox: Path::new("/var/sb"),
            own_sandbox: false,
        };
        let p = plan(&task(c), &info, &place).unwrap();
        assert_eq!(p.program, "/entry");
        assert_eq!(p.argv, strings(&["/entry", "--port", "80"]));
        // Exactly the agent's environment: nothing of ours, the image's or
        // the command's, no MESOS_ALLOCATION_ROLE added.
        assert_eq!(p.env, docker_task().env);
        assert_eq!(p.user.as_deref(), Some("app"));
        let r = p.rootfs.clone().unwrap();
        assert_eq!(r.cwd, "/srv");
        assert_eq!(r.sandbox, PathBuf::from("/var/sb"));
        let run = prepared_run(&p).unwrap();
        assert_eq!(run.argv, strings(&["/entry", "--port", "80"]));
        assert_eq!(run.env, docker_task().env);
        assert_eq!(run.cwd.as_deref(), Some("/srv"));
        assert_eq!(run.user.as_deref(), Some("app"));
        // No user: root; no working directory: /.
        let mut d = docker_task();
        d.user = None;
        d.working_dir = String::new();
        let info2 = TaskLaunchInfo {
            docker: Some(d),
            ..info.clone()
        };
        let p = plan(&task(cmd(None, Some("x"), &[])), &info2, &place).unwrap();
        assert_eq!(p.user, None);
        assert_eq!(p.rootfs.unwrap().cwd, "/");
    }

    #[test]
    fn docker_tasks_need_a_command_and_a_root_filesystem() {
        let place = Place {
            env: &[],
            sandbox: Path::new("/var/sb"),
            own_sandbox: false,
        };
        let mut d = docker_task();
        d.argv.clear();
        let info = TaskLaunchInfo {
            rootfs: Some("/r".into()),
            docker: Some(d),
            ..Default::default()
        };
        let e = plan(&task(cmd(None, Some("x"), &[])), &info, &place).unwrap_err();
        assert_eq!(e, LaunchError::EmptyDockerCommand);
        assert_eq!(
            e.to_string(),
            "the Docker task has no command: its argv is empty"
        );
        let info = TaskLaunchInfo {
            rootfs: None,
            docker: Some(docker_task()),
            ..Default::default()
        };
        let e = plan(&task(cmd(None, Some("x"), &[])), &info, &place).unwrap_err();
        assert_eq!(e, LaunchError::ImageNotPrepared);
    }

    #[test]
    fn docker_setup_carries_the_rest_to_enter() {
        let s = docker_setup(&docker_task());
        assert_eq!(s.sandbox_dir.as_deref(), Some("/sandbox"));
        assert_eq!(
            s.binds,
            [SetupBind {
                source: "/data".into(),
                target: "/data".into(),
                read_only: true
            }]
        );
        assert_eq!(s.tmpfs, [("/run".to_string(), "size=1m".to_string())]);
        assert_eq!(s.shm_size, Some(1 << 20));
        assert!(s.read_only);
        assert_eq!(s.capabilities, Some(strings(&["CAP_NET_ADMIN"])));
        assert_eq!(s.rlimits, [("nofile".to_string(), 100, 200)]);
        let mut d = docker_task();
        d.sandbox_dir = String::new();
        assert_eq!(docker_setup(&d).sandbox_dir, None);
    }

    #[test]
    fn own_sandbox_is_announced_to_host_tasks() {
        let place = Place {
            env: &[],
            sandbox: Path::new("/var/sb/tasks/t1"),
            own_sandbox: true,
        };
        let p = plan(
            &task(cmd(None, Some("true"), &[])),
            &TaskLaunchInfo::default(),
            &place,
        )
        .unwrap();
        assert!(p
            .env
            .contains(&("MESOS_SANDBOX".to_string(), "/var/sb/tasks/t1".to_string())));
    }

    #[test]
    fn users_are_looked_up_by_name_or_id() {
        let passwd = "root:x:0:0::/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\nbad\n";
        assert_eq!(lookup_user(passwd, "nobody"), Some((65534, 65534)));
        assert_eq!(lookup_user(passwd, "0"), Some((0, 0)));
        assert_eq!(lookup_user(passwd, "1234"), Some((1234, 1234)));
        assert_eq!(lookup_user(passwd, "1234:5"), Some((1234, 5)));
        assert_eq!(lookup_user(passwd, "ghost"), None);
    }

    #[test]
    fn task_ids_must_name_a_directory() {
        assert_eq!(task_dir_name("web-1").unwrap(), "web-1");
        for bad in ["", ".", "..", "a/b", "a\nb"] {
            assert!(task_dir_name(bad).is_err(), "{bad:?}");
        }
    }
}
