//! DOCKER containers in the Mesos containerizer. A launch whose container
//! is DOCKER is launched as its MESOS equivalent (same image, same
//! network: [`as_mesos`]); then ([`apply`]):
//! - a command task runs under the command executor like any image task,
//!   its launch info carrying the [`DockerTask`] that makes the executor
//!   run it as `docker run` would, and the executor's container gets what
//!   only a container can give (NONE's empty network namespace, the
//!   hostname, privileged);
//! - a custom executor whose `ExecutorInfo.container` is DOCKER is itself
//!   the container: its sandbox spec gets the same values (argv, the
//!   executor's environment as `-e`, user, working dir, mounts, limits,
//!   capabilities), as Mesos' Docker containerizer runs it.

use super::error::ContainerizerError;
use super::images::Images;
use super::plan::Plan;
use super::{ExecutorKind, Inner, LaunchRequest, MesosConfig};
use crate::containerizer::docker::{is_docker, DockerError, DockerRun, Placement};
use crate::containerizer::security::SeccompChoice;
use crate::mount::Mount;
use crate::proto::launch::Bind;
use crate::proto::mesos::container_info::docker_info::Network as Mode;
use crate::proto::mesos::environment::Variable;
use crate::proto::mesos::{ContainerInfo, Environment};
use crate::runtime::{Rlimit, RlimitResource, User};
use crate::state::paths::SANDBOX_MOUNT;
use crate::support::atomic_write;
use std::fs;
use std::path::Path;

/// A Docker container being launched: a command task's (`task_id`), or a
/// custom executor's (`None`).
pub struct DockerLaunch {
    pub task_id: Option<String>,
    pub run: DockerRun,
}

impl DockerLaunch {
    fn is_task(&self, id: &str) -> bool {
        self.task_id.as_deref() == Some(id)
    }
}

fn failed(id: &str, e: DockerError) -> ContainerizerError {
    ContainerizerError::Docker {
        id: id.to_string(),
        source: e,
    }
}

/// The Docker task of `req`, checked; `None` when nothing in it is DOCKER.
pub fn check(
    req: &LaunchRequest,
    config: &MesosConfig,
) -> Result<Option<DockerLaunch>, ContainerizerError> {
    let id = req.container_id.as_str();
    let task_docker = req.tasks.iter().find(|t| is_docker(t.container.as_ref()));
    match req.kind {
        ExecutorKind::Command => {
            let Some(task) = req.tasks.first().filter(|t| is_docker(t.container.as_ref())) else {
                return Ok(None);
            };
            let container = task.container.as_ref().expect("checked DOCKER above");
            let run = DockerRun::parse(container, &task.resources, &config.docker)
                .map_err(|e| failed(id, e))?;
            Ok(Some(DockerLaunch {
                task_id: Some(task.task_id.value.clone()),
                run,
            }))
        }
        ExecutorKind::Default if task_docker.is_some() || is_docker(req.executor.container.as_ref()) => {
            Err(ContainerizerError::Unsupported {
                id: id.to_string(),
                what: "a DOCKER container in a task group".into(),
                reason: "task groups run in MESOS containers (give each task a MESOS container with a DOCKER image), as in Mesos".into(),
            })
        }
        ExecutorKind::Custom if is_docker(req.executor.container.as_ref()) => {
            let container = req.executor.container.as_ref().expect("checked DOCKER above");
            // The ports a mapping may use are those of the executor and
            // its first tasks.
            let resources: Vec<_> = req
                .executor
                .resources
                .iter()
                .chain(req.tasks.iter().flat_map(|t| &t.resources))
                .cloned()
                .collect();
            let run = DockerRun::parse(container, &resources, &config.docker)
                .map_err(|e| failed(id, e))?;
            if run.mode == Mode::None {
                return Err(ContainerizerError::Unsupported {
                    id: id.to_string(),
                    what: "a custom executor on the NONE network".into(),
                    reason: "it could not reach the agent; use HOST, BRIDGE or USER".into(),
                });
            }
            Ok(Some(DockerLaunch { task_id: None, run }))
        }
        _ => Ok(None),
    }
}

/// `req` with the Docker task's container (and the command executor's
/// copy of it) replaced by the MESOS container that provisions the same
/// image and joins the same network.
pub fn as_mesos(req: &LaunchRequest, d: &DockerLaunch) -> LaunchRequest {
    let mut req = req.clone();
    let id = req.container_id.clone();
    let mesos = |c: &mut ContainerInfo| {
        let mut m = d.run.mesos_container(c);
        if d.run.mode != Mode::Host {
            m.hostname = d.run.container_hostname(&id, None);
        }
        *c = m;
    };
    match &d.task_id {
        Some(task_id) => {
            for t in req.tasks.iter_mut().filter(|t| t.task_id.value == *task_id) {
                t.container.as_mut().map(mesos);
            }
            if let Some(task) = req.tasks.iter().find(|t| d.is_task(&t.task_id.value)) {
                req.executor.container = task.container.clone();
            }
        }
        None => {
            req.executor.container.as_mut().map(mesos);
        }
    }
    req
}

/// Gives the task its [`DockerTask`] and the executor's container what
/// the Docker task asks of it, given its sandbox and runtime dir.
pub fn apply(
    inner: &Inner,
    plan: &mut Plan,
    d: &DockerLaunch,
    req: &LaunchRequest,
    images: &Images,
    (sandbox, run_dir): (&Path, &Path),
) -> Result<(), ContainerizerError> {
    let config = &inner.config;
    let host = inner.hostname.as_deref();
    let id = req.container_id.as_str();
    let Some(task_id) = &d.task_id else {
        return apply_executor(inner, plan, d, req, images, sandbox);
    };
    let image = images
        .tasks
        .iter()
        .find(|(t, _)| t == task_id)
        .map(|(_, p)| p.config.clone())
        .unwrap_or_default();
    let hostname = d.run.container_hostname(id, host);
    let task = req.tasks.iter().find(|t| d.is_task(&t.task_id.value));
    let docker = d
        .run
        .task(
            task.and_then(|t| t.command.as_ref()),
            &image,
            &Placement {
                sandbox,
                container_id: id,
                hostname: hostname.as_deref(),
                memory: plan.spec.limits.memory,
            },
            &config.docker,
        )
        .map_err(|e| failed(id, e))?;
    for b in &docker.binds {
        ensure_source(id, b)?;
    }
    let mut docker = docker;
    match d.run.mode {
        // The executor stays on the host's network (it must reach the
        // agent); the task and its checks join a namespace with only `lo`,
        // pinned where the network teardown removes it.
        Mode::None => {
            let pin = run_dir.join("netns");
            crate::runtime::create_netns(&pin).map_err(|source| {
                ContainerizerError::RuntimeDir {
                    id: id.to_string(),
                    step: "create the network namespace",
                    path: pin.clone(),
                    source,
                }
            })?;
            docker.netns = Some(pin);
            plan.spec.hostname = hostname;
        }
        Mode::Host => plan.spec.hostname = host.map(str::to_string),
        _ => {}
    }
    let seccomp = match (&docker.capabilities, d.run.privileged) {
        (_, true) => None,
        (Some(caps), false) => config
            .seccomp
            .program(&SeccompChoice::Default, caps)
            .map_err(|e| ContainerizerError::Invalid {
                id: id.to_string(),
                what: "seccomp profile".into(),
                reason: e.to_string(),
            })?
            .map(|p| p.to_vec()),
        (None, false) => None,
    };
    if d.run.privileged {
        plan.spec.make_privileged();
    } else if let Some(caps) = &docker.capabilities {
        // The executor's bounding set must hold what its task adds.
        let held = plan
            .spec
            .capabilities
            .get_or_insert_with(crate::runtime::default_capabilities);
        for c in caps {
            if !held.contains(c) {
                held.push(c.clone());
            }
        }
    }
    let info = plan
        .launch_infos
        .as_mut()
        .and_then(|infos| infos.get_mut(task_id))
        .ok_or_else(|| ContainerizerError::Invalid {
            id: id.to_string(),
            what: format!("task {task_id}"),
            reason: "the DOCKER task's image was not provisioned".into(),
        })?;
    if d.run.privileged || docker.capabilities.is_some() {
        info.seccomp = seccomp;
    }
    info.docker = Some(docker);
    Ok(())
}

/// Writes the container's own `/etc/hosts` (`--add-host`) and
/// `/etc/resolv.conf` (`--dns`...) into `run_dir/docker/`, from the files
/// it would have had (its network's, else the host's), and binds them.
pub fn network_files(
    plan: &mut Plan,
    d: &DockerLaunch,
    id: &str,
    run_dir: &Path,
) -> Result<(), ContainerizerError> {
    let base = |name: &str| {
        fs::read_to_string(run_dir.join("network").join(name))
            .or_else(|_| fs::read_to_string(Path::new("/etc").join(name)))
            .unwrap_or_default()
    };
    let files = [
        ("hosts", d.run.hosts_file(&base("hosts"))),
        ("resolv.conf", d.run.resolv_file(&base("resolv.conf"))),
    ];
    let mut binds = Vec::new();
    for (name, text) in files {
        let Some(text) = text else { continue };
        let dir = run_dir.join("docker");
        let path = dir.join(name);
        let err = |source| ContainerizerError::RuntimeDir {
            id: id.to_string(),
            step: "write",
            path: path.clone(),
            source,
        };
        fs::create_dir_all(&dir).map_err(err)?;
        atomic_write(&path, text.as_bytes()).map_err(err)?;
        binds.push(Bind {
            source: path.clone(),
            target: format!("/etc/{name}"),
            read_only: false,
        });
    }
    match &d.task_id {
        Some(task_id) => {
            let docker = plan
                .launch_infos
                .as_mut()
                .and_then(|infos| infos.get_mut(task_id))
                .and_then(|i| i.docker.as_mut());
            if let Some(docker) = docker {
                docker.binds.extend(binds);
            }
        }
        None => plan.spec.mounts.extend(
            binds
                .iter()
                .map(|b| Mount::bind(&b.source, &b.target, b.read_only)),
        ),
    }
    Ok(())
}

/// A custom executor in a DOCKER container: its sandbox spec made what
/// `docker run` would have run (Mesos passes the executor's environment
/// with `-e`).
fn apply_executor(
    inner: &Inner,
    plan: &mut Plan,
    d: &DockerLaunch,
    req: &LaunchRequest,
    images: &Images,
    sandbox: &Path,
) -> Result<(), ContainerizerError> {
    let config = &inner.config;
    let id = req.container_id.as_str();
    let image = images
        .executor
        .as_ref()
        .map(|p| p.config.clone())
        .unwrap_or_default();
    let hostname = d.run.container_hostname(id, inner.hostname.as_deref());
    let spec = &mut plan.spec;
    let mut command = req.executor.command.clone().unwrap_or_default();
    // What the containerizer computed (MESOS_* and the executor's own
    // variables) goes in as the `-e` of `docker run`; the image's comes
    // first, inside `task`.
    command.environment = Some(Environment {
        variables: spec
            .env
            .iter()
            .filter(|(k, _)| k != "MESOS_SANDBOX")
            .map(|(k, v)| Variable {
                name: k.clone(),
                value: Some(v.clone()),
                ..Default::default()
            })
            .collect(),
    });
    let docker = d
        .run
        .task(
            Some(&command),
            &image,
            &Placement {
                sandbox,
                container_id: id,
                hostname: hostname.as_deref(),
                memory: spec.limits.memory,
            },
            &config.docker,
        )
        .map_err(|e| failed(id, e))?;
    for b in &docker.binds {
        ensure_source(id, b)?;
    }
    let bad = |what: &str, reason: String| ContainerizerError::Invalid {
        id: id.to_string(),
        what: what.to_string(),
        reason,
    };
    spec.argv = docker.argv.clone();
    spec.env = docker.env.clone();
    spec.cwd = Some(docker.working_dir.clone().into());
    spec.user = match &docker.user {
        Some(u) => Some(u.parse::<User>().map_err(|e| bad("user", e.to_string()))?),
        None => None,
    };
    if d.run.mode == Mode::Host {
        spec.hostname = inner.hostname.clone();
    }
    for m in spec
        .mounts
        .iter_mut()
        .filter(|m| m.target == Path::new(SANDBOX_MOUNT))
    {
        m.target = docker.sandbox_dir.clone().into();
    }
    spec.mounts.extend(
        docker
            .binds
            .iter()
            .map(|b| Mount::bind(&b.source, &b.target, b.read_only)),
    );
    for (target, options) in &docker.tmpfs {
        spec.mounts
            .push(tmpfs(target, options, "rw,noexec,nosuid,nodev"));
    }
    if let Some(size) = docker.shm_size.filter(|s| *s != 64 << 20) {
        spec.mounts.push(tmpfs(
            "/dev/shm",
            &format!("size={size}"),
            "rw,noexec,nosuid,nodev,mode=1777",
        ));
    }
    if docker.read_only {
        if let Some(r) = spec.rootfs.as_mut() {
            r.readonly = true;
        }
    }
    for (name, soft, hard) in &docker.rlimits {
        let resource = name.parse::<RlimitResource>().map_err(|()| {
            bad(
                "ulimit",
                format!("{name}: a custom executor's container takes nofile, nproc, core, fsize, stack and memlock"),
            )
        })?;
        spec.rlimits.push(Rlimit {
            resource,
            soft: *soft,
            hard: *hard,
        });
    }
    if d.run.privileged {
        spec.make_privileged();
    } else if let Some(caps) = &docker.capabilities {
        spec.capabilities = Some(caps.clone());
        config
            .seccomp
            .apply(spec, &SeccompChoice::Default)
            .map_err(|e| bad("seccomp profile", e.to_string()))?;
    }
    Ok(())
}

/// A tmpfs at `target` with Docker's `defaults` under the given options
/// (a later `exec`, `suid`, `dev` or `ro` wins over a default).
fn tmpfs(target: &str, options: &str, defaults: &str) -> Mount {
    let given: Vec<&str> = options.split(',').filter(|o| !o.is_empty()).collect();
    let overridden = |d: &str| {
        given.iter().any(|g| {
            g.trim_start_matches("no") == d.trim_start_matches("no")
                || (d == "rw" && *g == "ro")
                || g.split('=').next() == d.split('=').next()
        })
    };
    let mut all: Vec<String> = defaults
        .split(',')
        .filter(|d| !overridden(d))
        .map(str::to_string)
        .collect();
    all.extend(given.iter().map(|g| g.to_string()));
    Mount {
        source: "tmpfs".into(),
        target: target.into(),
        fstype: Some("tmpfs".into()),
        options: all,
    }
}

/// A volume's host path exists, as Docker makes it: a missing one is
/// created as a directory.
fn ensure_source(id: &str, b: &Bind) -> Result<(), ContainerizerError> {
    if b.source.exists() {
        return Ok(());
    }
    fs::create_dir_all(&b.source).map_err(|source| ContainerizerError::RuntimeDir {
        id: id.to_string(),
        step: "create the volume's host path",
        path: b.source.clone(),
        source,
    })
}
