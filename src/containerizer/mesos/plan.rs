//! A launch as data: the executor's `SandboxSpec` and, for the built-in
//! executors, the per-task launch values they read (`--launch-info`).
//! Computed before anything is started, so it is tested without root.

use super::env::{self, Paths};
use super::error::ContainerizerError;
use super::images::Images;
use super::resources;
use super::{ExecutorKind, LaunchRequest, MesosConfig};
use crate::containerizer::provisioner;
use crate::containerizer::security::SeccompChoice;
use crate::image::RunConfig;
use crate::mount::Mount;
use crate::proto::launch::{
    LaunchInfos, Logrotate, TaskLaunchInfo, LOGROTATE_ENV, NESTED_CONTAINERS_ENV,
    NO_SWITCH_USER_ENV,
};
use crate::proto::mesos::{CommandInfo, ContainerInfo};
use crate::runtime::{Network, SandboxSpec, User};
use crate::state::paths::SANDBOX_MOUNT;
use std::path::{Path, PathBuf};

/// The name of the launch-info file in the container's runtime directory.
pub const LAUNCH_INFO: &str = "launch-info.json";

/// The name of the file in a nested or standalone container's runtime
/// directory where its init records how its task ended (as Mesos'
/// `status` file there), read after an agent restart.
pub const STATUS: &str = "status";

/// Where a task's root filesystem is mounted in the executor's mount
/// namespace.
pub fn task_rootfs(run_dir: &Path, task: &str) -> PathBuf {
    run_dir.join("tasks").join(task).join("rootfs")
}

/// Everything about one launch that is decided before it starts.
pub struct Inputs<'a> {
    pub req: &'a LaunchRequest,
    pub config: &'a MesosConfig,
    /// The sandbox on the host.
    pub sandbox: &'a Path,
    /// `RuntimeDir::container(id)`.
    pub run_dir: &'a Path,
    /// The user to run as (`None`: the agent's).
    pub user: Option<&'a str>,
    /// The user the tasks of a built-in executor that stays root run as
    /// when their `CommandInfo` names none (the framework's); it comes
    /// before an image's own user.
    pub task_user: Option<&'a str>,
    /// The host's name (the executor shares the host's network).
    pub hostname: Option<String>,
    pub images: &'a Images,
}

pub struct Plan {
    pub spec: SandboxSpec,
    /// What `butte executor` reads from `--launch-info` (command and
    /// default executors only).
    pub launch_infos: Option<LaunchInfos>,
}

pub fn plan(i: &Inputs<'_>) -> Result<Plan, ContainerizerError> {
    let req = i.req;
    let id = req.container_id.as_str();
    let framework_id = req
        .framework
        .id
        .as_ref()
        .map(|f| f.value.clone())
        .or_else(|| req.executor.framework_id.as_ref().map(|f| f.value.clone()))
        .unwrap_or_default();
    let custom_image = match req.kind {
        ExecutorKind::Custom => i.images.executor.as_ref(),
        _ => None,
    };
    let config = custom_image.map(|p| p.config.clone()).unwrap_or_default();
    let sandbox_inside = match custom_image {
        Some(_) => PathBuf::from(SANDBOX_MOUNT),
        None => i.sandbox.to_path_buf(),
    };
    let launch_info_path = i.run_dir.join(LAUNCH_INFO);
    let argv = match req.kind {
        ExecutorKind::Custom => custom_argv(id, req.executor.command.as_ref(), &config)?,
        kind => {
            let mut argv = executor_program(&i.config.butte);
            if kind == ExecutorKind::Default {
                argv.push("--default".into());
            }
            argv.push("--launch-info".into());
            argv.push(launch_info_path.display().to_string());
            argv
        }
    };
    let mut spec = SandboxSpec::new(id, argv);
    let paths = Paths {
        directory: i.sandbox,
        sandbox: &sandbox_inside,
    };
    let base = [provisioner::env(&config), i.config.executor_env.clone()].concat();
    spec.env = match req.standalone {
        true => env::standalone(&req.executor, &paths, &base),
        false => env::environment(
            &req.env,
            &req.executor,
            &framework_id,
            &req.agent_id,
            &paths,
            &base,
        ),
    }
    .map_err(
        |env::EnvError::Secret(name)| ContainerizerError::Unsupported {
            id: id.to_string(),
            what: format!("environment variable {name}"),
            reason: "SECRET variables need a secret resolver, which butte lacks".into(),
        },
    )?;
    if req.kind != ExecutorKind::Custom {
        if let Some(l) = logrotate(req, i.config)? {
            let json = serde_json::to_string(&l).expect("logrotate settings serialize");
            spec.env.push((LOGROTATE_ENV.to_string(), json));
        }
        if !i.config.switch_user {
            spec.env
                .push((NO_SWITCH_USER_ENV.to_string(), "1".to_string()));
        }
        if req.kind == ExecutorKind::Default && i.config.nested_task_groups {
            spec.env
                .push((NESTED_CONTAINERS_ENV.to_string(), "1".to_string()));
        }
    }
    spec.cwd = Some(sandbox_inside.clone());
    spec.user = i.user.map(|u| User::Name(u.to_string()));
    spec.hostname = i.hostname.clone();
    spec.network = Network::Host;
    spec.limits = resources::limits(
        req.executor
            .resources
            .iter()
            .chain(req.tasks.iter().flat_map(|t| &t.resources)),
        i.config.pids_limit,
    );
    if let Some(p) = custom_image {
        spec.rootfs = Some(p.rootfs.clone());
        spec.mounts
            .push(Mount::bind(i.sandbox, SANDBOX_MOUNT, false));
    }
    let launch_infos = match req.kind {
        ExecutorKind::Custom => None,
        _ => {
            let mut infos = LaunchInfos::new();
            for t in &req.tasks {
                infos.insert(
                    t.task_id.value.clone(),
                    TaskLaunchInfo {
                        user: i.task_user.map(str::to_string),
                        ..TaskLaunchInfo::default()
                    },
                );
            }
            if !i.images.tasks.is_empty() {
                // The executor starts, for each of its image tasks, a
                // process that mounts and pivots into the image (`butte
                // enter --prepare`); then, before it talks to the agent, it
                // drops CAP_SYS_ADMIN (and anything beyond the default set)
                // for good, as do those processes before they run a task.
                let mut caps = crate::runtime::default_capabilities();
                caps.push("CAP_SYS_ADMIN".to_string());
                spec.capabilities = Some(caps);
            }
            for (task, p) in &i.images.tasks {
                let target = task_rootfs(i.run_dir, task);
                let mut mount = match &p.rootfs.mount {
                    Some(m) => m.clone(),
                    None => Mount::bind(&p.rootfs.path, "/", false),
                };
                mount.target = target.clone();
                spec.mounts.push(mount);
                let c = &p.config;
                let command = provisioner::command(&[], c);
                // The task's own profile (a group's tasks may differ), for
                // the capabilities it will keep, applied by `butte enter`
                // on top of the executor's.
                let container = req
                    .tasks
                    .iter()
                    .find(|t| &t.task_id.value == task)
                    .and_then(|t| t.container.as_ref());
                let seccomp = seccomp_program(id, i.config, container)?;
                infos.insert(
                    task.clone(),
                    TaskLaunchInfo {
                        rootfs: Some(target),
                        env: provisioner::env(c),
                        working_dir: c.working_dir.clone().filter(|d| !d.is_empty()),
                        user: i
                            .task_user
                            .map(str::to_string)
                            .or_else(|| c.user.clone().filter(|u| !u.is_empty())),
                        command: (!command.is_empty()).then_some(command),
                        seccomp,
                        docker: None,
                    },
                );
            }
            Some(infos)
        }
    };
    let choice = seccomp_choice(id, container_info(req))?;
    i.config
        .seccomp
        .apply(&mut spec, &choice)
        .map_err(|e| seccomp_error(id, e))?;
    Ok(Plan { spec, launch_infos })
}

/// The rotation a built-in executor applies to its container's output
/// (`None`: plain files), from the agent's logger and the
/// `CONTAINER_LOGGER_*` variables of the executor's and tasks' commands.
fn logrotate(
    req: &LaunchRequest,
    config: &MesosConfig,
) -> Result<Option<Logrotate>, ContainerizerError> {
    let commands = req
        .executor
        .command
        .iter()
        .chain(req.tasks.iter().filter_map(|t| t.command.as_ref()));
    let vars = commands
        .filter_map(|c| c.environment.as_ref())
        .flat_map(|e| &e.variables)
        .map(|v| (v.name.as_str(), v.value()));
    config
        .container_logger
        .for_container(vars)
        .map_err(|e| ContainerizerError::Invalid {
            id: req.container_id.clone(),
            what: "container logger settings".into(),
            reason: e.to_string(),
        })
}

fn seccomp_error(id: &str, e: impl std::fmt::Display) -> ContainerizerError {
    ContainerizerError::Invalid {
        id: id.to_string(),
        what: "seccomp profile".into(),
        reason: e.to_string(),
    }
}

/// The program a task in an image runs under, for the default capability
/// set (`None` when it asked to be unconfined).
fn seccomp_program(
    id: &str,
    config: &MesosConfig,
    container: Option<&ContainerInfo>,
) -> Result<Option<Vec<u8>>, ContainerizerError> {
    let choice = seccomp_choice(id, container)?;
    let caps = crate::runtime::default_capabilities();
    Ok(config
        .seccomp
        .program(&choice, &caps)
        .map_err(|e| seccomp_error(id, e))?
        .map(|p| p.to_vec()))
}

/// The `ContainerInfo` that describes the executor's container: the
/// executor's, or for the command executor its task's.
fn container_info(req: &LaunchRequest) -> Option<&ContainerInfo> {
    match req.kind {
        ExecutorKind::Command => req.tasks.first().and_then(|t| t.container.as_ref()),
        _ => req.executor.container.as_ref(),
    }
}

/// The seccomp profile a container asks for in `linux_info.seccomp`, as
/// Mesos reads it: `unconfined`, or a `profile_name` in the agent's
/// `--seccomp_config_dir`, never both; nothing means the agent's default.
fn seccomp_choice(
    id: &str,
    container: Option<&ContainerInfo>,
) -> Result<SeccompChoice, ContainerizerError> {
    let Some(s) = container
        .and_then(|c| c.linux_info.as_ref())
        .and_then(|l| l.seccomp.as_ref())
    else {
        return Ok(SeccompChoice::Default);
    };
    match (s.unconfined(), s.profile_name.as_deref()) {
        (true, Some(_)) => Err(ContainerizerError::Invalid {
            id: id.to_string(),
            what: "seccomp".into(),
            reason: "profile_name must not be set when unconfined is true".into(),
        }),
        (true, None) => Ok(SeccompChoice::Unconfined),
        (false, Some(name)) => Ok(SeccompChoice::Named(name.to_string())),
        (false, None) => Ok(SeccompChoice::Default),
    }
}

/// The built-in executors' program: `butte-executor` where it sits next
/// to `butte` (a small binary, for the executor's memory), `butte
/// executor` otherwise.
fn executor_program(butte: &Path) -> Vec<String> {
    let small = butte.with_file_name("butte-executor");
    if small.is_file() {
        vec![small.display().to_string()]
    } else {
        vec![butte.display().to_string(), "executor".to_string()]
    }
}

/// A custom executor's command, as the Mesos launcher runs it: `shell`
/// (the default) runs `value` with `/bin/sh -c`; otherwise `value` is the
/// program and `arguments[1..]` its arguments (`arguments[0]`, the name
/// the program sees, is not kept); with no `value`, an image's entrypoint
/// followed by `arguments`, or by its cmd.
fn custom_argv(
    id: &str,
    command: Option<&CommandInfo>,
    image: &RunConfig,
) -> Result<Vec<String>, ContainerizerError> {
    let invalid = |reason: &str| ContainerizerError::Invalid {
        id: id.to_string(),
        what: "executor command".into(),
        reason: reason.into(),
    };
    let Some(c) = command else {
        return Err(invalid("the executor has no command"));
    };
    let argv = match (c.shell(), c.value.as_deref()) {
        (true, Some(v)) => vec!["/bin/sh".into(), "-c".into(), v.to_string()],
        (true, None) => return Err(invalid("a shell command without a value")),
        (false, Some(v)) => {
            let mut argv = vec![v.to_string()];
            argv.extend(c.arguments.iter().skip(1).cloned());
            argv
        }
        (false, None) => provisioner::command(&c.arguments, image),
    };
    if argv.is_empty() {
        return Err(invalid("no value, and no image command to fall back on"));
    }
    Ok(argv)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::containerizer::mesos::ExecutorEnv;
    use crate::proto::mesos::{
        value, ExecutorId, ExecutorInfo, FrameworkId, FrameworkInfo, Resource, TaskId, TaskInfo,
    };
    use crate::runtime::RuntimeConfig;
    use std::time::Duration;

    fn mem(mb: f64) -> Resource {
        Resource {
            name: "mem".into(),
            r#type: value::Type::Scalar as i32,
            scalar: Some(value::Scalar { value: mb }),
            ..Resource::default()
        }
    }

    fn request(kind: ExecutorKind, command: Option<CommandInfo>, tasks: &[&str]) -> LaunchRequest {
        LaunchRequest {
            container_id: "C1".into(),
            agent_id: "S1".into(),
            framework: FrameworkInfo {
                user: "root".into(),
                name: "fw".into(),
                id: Some(FrameworkId { value: "F1".into() }),
                ..FrameworkInfo::default()
            },
            executor: ExecutorInfo {
                executor_id: ExecutorId { value: "E1".into() },
                command,
                resources: vec![mem(32.0)],
                ..ExecutorInfo::default()
            },
            kind,
            tasks: tasks
                .iter()
                .map(|t| TaskInfo {
                    name: t.to_string(),
                    task_id: TaskId {
                        value: t.to_string(),
                    },
                    resources: vec![mem(64.0)],
                    ..TaskInfo::default()
                })
                .collect(),
            env: ExecutorEnv {
                agent_endpoint: "127.0.0.1:5051".parse().unwrap(),
                agent_pid: "slave(1)@127.0.0.1:5051".into(),
                checkpoint: false,
                recovery_timeout: Duration::from_secs(900),
                subscription_backoff_max: Duration::from_secs(2),
                shutdown_grace_period: Duration::from_secs(5),
            },
            standalone: false,
            nested: None,
        }
    }

    fn config() -> MesosConfig {
        let runtime = RuntimeConfig {
            cgroup_root: "/x".into(),
            cgroup_parent: "b".into(),
            cgroup_unit: None,
            helper: "/usr/bin/butte".into(),
        };
        MesosConfig {
            pids_limit: Some(500),
            executor_env: vec![("LANG".into(), "C.UTF-8".into())],
            ..MesosConfig::new(
                "/w".into(),
                "/run/b".into(),
                runtime,
                "/usr/bin/butte".into(),
            )
        }
    }

    fn inputs<'a>(
        req: &'a LaunchRequest,
        config: &'a MesosConfig,
        images: &'a Images,
    ) -> Inputs<'a> {
        Inputs {
            req,
            config,
            sandbox: Path::new("/w/slaves/S1/frameworks/F1/executors/E1/runs/C1"),
            run_dir: Path::new("/run/b/containers/C1"),
            user: Some("app"),
            task_user: None,
            hostname: Some("node7".into()),
            images,
        }
    }

    #[test]
    fn logrotate_settings_reach_built_in_executors_only() {
        use crate::containerizer::mesos::{ContainerLogger, LogrotateFlags, LOGROTATE_LOGGER};
        use crate::proto::mesos::{environment::Variable, Environment};
        let images = Images::default();
        let mut config = config();
        let value = |req: &LaunchRequest, config: &MesosConfig| {
            plan(&inputs(req, config, &images)).map(|p| {
                p.spec
                    .env
                    .iter()
                    .find(|(k, _)| k == LOGROTATE_ENV)
                    .map(|(_, v)| serde_json::from_str::<Logrotate>(v).unwrap())
            })
        };
        let mut req = request(ExecutorKind::Command, None, &["t1"]);
        // Plain files by default.
        assert_eq!(value(&req, &config).unwrap(), None);
        config.container_logger =
            ContainerLogger::new(LOGROTATE_LOGGER, LogrotateFlags::default()).unwrap();
        let l = value(&req, &config)
            .unwrap()
            .expect("settings for the executor");
        assert_eq!((l.stdout.max_size, l.stdout.keep), (10 << 20, Some(0)));
        // The task's command overrides them.
        req.tasks[0].command = Some(CommandInfo {
            environment: Some(Environment {
                variables: vec![Variable {
                    name: "CONTAINER_LOGGER_LOGROTATE_STDOUT_OPTIONS".into(),
                    value: Some("rotate 4".into()),
                    ..Variable::default()
                }],
            }),
            ..CommandInfo::default()
        });
        let l = value(&req, &config).unwrap().unwrap();
        assert_eq!(l.stdout.keep, Some(4));
        // A bad override fails the launch, naming the variable.
        req.tasks[0]
            .command
            .as_mut()
            .unwrap()
            .environment
            .as_mut()
            .unwrap()
            .variables[0]
            .value = Some("compress".into());
        let e = value(&req, &config).expect_err("refused").to_string();
        assert!(
            e.contains("CONTAINER_LOGGER_LOGROTATE_STDOUT_OPTIONS"),
            "{e}"
        );
        // A custom executor keeps plain files.
        let custom = request(
            ExecutorKind::Custom,
            Some(CommandInfo {
                value: Some("true".into()),
                ..CommandInfo::default()
            }),
            &[],
        );
        assert_eq!(value(&custom, &config).unwrap(), None);
    }

    #[test]
    fn command_executor_runs_butte_on_the_host_with_launch_info() {
        let (req, config, images) = (
            request(ExecutorKind::Command, None, &["t1"]),
            config(),
            Images::default(),
        );
        let p = plan(&inputs(&req, &config, &images)).unwrap();
        let s = &p.spec;
        assert_eq!(
            s.argv,
            [
                "/usr/bin/butte",
                "executor",
                "--launch-info",
                "/run/b/containers/C1/launch-info.json"
            ]
        );
        let sandbox = "/w/slaves/S1/frameworks/F1/executors/E1/runs/C1";
        assert_eq!(s.cwd.as_deref(), Some(Path::new(sandbox)));
        assert_eq!(s.env_var("MESOS_SANDBOX"), Some(sandbox));
        assert_eq!(s.env_var("MESOS_DIRECTORY"), Some(sandbox));
        assert_eq!(s.env_var("LANG"), Some("C.UTF-8"));
        assert_eq!(s.user, Some(User::Name("app".into())));
        assert_eq!(s.hostname.as_deref(), Some("node7"));
        assert_eq!(s.network, Network::Host);
        assert!(s.rootfs.is_none() && s.mounts.is_empty());
        assert_eq!(s.limits.memory, Some(96 << 20));
        assert_eq!(s.limits.pids, Some(500));
        s.validate().unwrap();
        let infos = p.launch_infos.unwrap();
        assert_eq!(
            serde_json::to_value(&infos).unwrap(),
            serde_json::json!({"t1": {
                "rootfs": null, "env": [], "working_dir": null, "user": null, "command": null,
                "seccomp": null
            }})
        );
    }

    /// The default profile's program for the default capability set.
    fn default_program(config: &MesosConfig) -> std::sync::Arc<Vec<u8>> {
        config
            .seccomp
            .program(
                &SeccompChoice::Default,
                &crate::runtime::default_capabilities(),
            )
            .unwrap()
            .unwrap()
    }

    #[test]
    fn containers_get_the_default_seccomp_program_unless_unconfined() {
        use crate::proto::mesos::{ContainerInfo, LinuxInfo, SeccompInfo};
        let config = config();
        let images = Images::default();
        let with = |s: Option<SeccompInfo>| {
            let mut req = request(ExecutorKind::Command, None, &["t1"]);
            req.tasks[0].container = Some(ContainerInfo {
                linux_info: Some(LinuxInfo {
                    seccomp: s,
                    ..LinuxInfo::default()
                }),
                ..ContainerInfo::default()
            });
            plan(&inputs(&req, &config, &images))
        };
        let default = with(None).unwrap().spec;
        let expected = default_program(&config);
        assert_eq!(default.seccomp.as_deref(), Some(expected.as_slice()));
        let unconfined = with(Some(SeccompInfo {
            unconfined: Some(true),
            profile_name: None,
        }))
        .unwrap()
        .spec;
        assert!(unconfined.seccomp.is_none());
        let both = with(Some(SeccompInfo {
            unconfined: Some(true),
            profile_name: Some("x.json".into()),
        }));
        let e = both.err().unwrap().to_string();
        assert!(e.contains("profile_name must not be set"), "{e}");
        // A named profile needs --seccomp_config_dir.
        let e = with(Some(SeccompInfo {
            unconfined: None,
            profile_name: Some("x.json".into()),
        }))
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("--seccomp_config_dir"), "{e}");
    }

    #[test]
    fn default_executor_gets_the_group_and_task_image_mounts() {
        let dir = tempfile::tempdir().unwrap();
        let prepared = provisioner::prepare(
            dir.path().to_str().unwrap(),
            dir.path(),
            "C1.t2",
            &Default::default(),
            false,
        )
        .unwrap();
        let images = Images {
            tasks: vec![("t2".into(), prepared)],
            ..Images::default()
        };
        let (req, config) = (
            request(ExecutorKind::Default, None, &["t1", "t2"]),
            config(),
        );
        let p = plan(&inputs(&req, &config, &images)).unwrap();
        assert_eq!(p.spec.argv[1..3], ["executor", "--default"]);
        assert_eq!(p.spec.limits.memory, Some(160 << 20));
        let target = PathBuf::from("/run/b/containers/C1/tasks/t2/rootfs");
        assert_eq!(
            p.spec.mounts,
            [Mount {
                target: target.clone(),
                ..Mount::bind(dir.path().canonicalize().unwrap(), "/", false)
            }]
        );
        let infos = p.launch_infos.unwrap();
        assert_eq!(infos.len(), 2);
        assert_eq!(infos["t1"], TaskLaunchInfo::default());
        assert_eq!(infos["t2"].rootfs.as_deref(), Some(target.as_path()));
        // The image task carries its own seccomp program, for the default
        // capability set (the executor's own keeps CAP_SYS_ADMIN's calls).
        let task_filter = default_program(&config);
        assert_eq!(infos["t2"].seccomp.as_deref(), Some(task_filter.as_slice()));
        assert_ne!(p.spec.seccomp.as_deref(), Some(task_filter.as_slice()));
    }

    #[test]
    fn a_default_executor_of_nested_containers_is_told_so_and_only_it() {
        let mut config = config();
        config.nested_task_groups = true;
        let images = Images::default();
        let flag = |kind, config: &MesosConfig| {
            let req = request(kind, None, &["t1"]);
            let p = plan(&inputs(&req, config, &images)).unwrap();
            p.spec
                .env
                .iter()
                .find(|(k, _)| k == NESTED_CONTAINERS_ENV)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(flag(ExecutorKind::Default, &config).as_deref(), Some("1"));
        assert_eq!(flag(ExecutorKind::Command, &config), None);
        config.nested_task_groups = false;
        assert_eq!(flag(ExecutorKind::Default, &config), None);
    }

    #[test]
    fn custom_executor_commands_as_mesos_runs_them() {
        let config = config();
        let images = Images::default();
        let argv = |c: CommandInfo| {
            let req = request(ExecutorKind::Custom, Some(c), &[]);
            plan(&inputs(&req, &config, &images)).map(|p| p.spec.argv)
        };
        let sh = CommandInfo {
            value: Some("echo $MESOS_FRAMEWORK_ID".into()),
            ..CommandInfo::default()
        };
        assert_eq!(
            argv(sh).unwrap(),
            ["/bin/sh", "-c", "echo $MESOS_FRAMEWORK_ID"]
        );
        let exec = CommandInfo {
            shell: Some(false),
            value: Some("/opt/ex".into()),
            arguments: vec!["ex".into(), "--flag".into()],
            ..CommandInfo::default()
        };
        assert_eq!(argv(exec).unwrap(), ["/opt/ex", "--flag"]);
        let nothing = CommandInfo {
            shell: Some(false),
            ..CommandInfo::default()
        };
        let e = argv(nothing).unwrap_err().to_string();
        assert!(e.contains("executor command"), "{e}");
        let req = request(ExecutorKind::Custom, None, &[]);
        assert!(plan(&inputs(&req, &config, &images)).is_err());
        // A custom executor gets no launch info.
        let req = request(
            ExecutorKind::Custom,
            Some(CommandInfo {
                value: Some("true".into()),
                ..CommandInfo::default()
            }),
            &["t1"],
        );
        assert!(plan(&inputs(&req, &config, &images))
            .unwrap()
            .launch_infos
            .is_none());
    }

    #[test]
    fn a_standalone_container_runs_its_command_with_its_limits_and_no_executor_variables() {
        let config = config();
        let images = Images::default();
        let mut req = request(
            ExecutorKind::Custom,
            Some(CommandInfo {
                value: Some("exit 3".into()),
                ..CommandInfo::default()
            }),
            &[],
        );
        req.standalone = true;
        let p = plan(&inputs(&req, &config, &images)).unwrap();
        assert_eq!(p.spec.argv, ["/bin/sh", "-c", "exit 3"]);
        assert_eq!(p.spec.limits.memory, Some(32 << 20));
        let names: Vec<&str> = p.spec.env.iter().map(|(k, _)| k.as_str()).collect();
        assert!(names.contains(&"MESOS_SANDBOX"), "{names:?}");
        assert!(
            !names
                .iter()
                .any(|n| n.starts_with("MESOS_") && *n != "MESOS_SANDBOX"),
            "{names:?}"
        );
        assert!(p.launch_infos.is_none());
    }
}
