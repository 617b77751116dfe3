//! DOCKER containers in the Mesos containerizer. A command task whose
//! `ContainerInfo` is DOCKER is launched as its MESOS equivalent (same
//! image, same network: [`as_mesos`]), under the command executor like
//! any image task; then its launch info gets the [`DockerTask`] that makes
//! the executor run it as `docker run` would ([`apply`]), and the
//! executor's container what only a container can give (NONE's empty
//! network namespace, the hostname, privileged).

use super::error::ContainerizerError;
use super::images::Images;
use super::plan::Plan;
use super::{ExecutorKind, Inner, LaunchRequest, MesosConfig};
use crate::containerizer::docker::{is_docker, DockerError, DockerRun, Placement};
use crate::containerizer::security::SeccompChoice;
use crate::proto::launch::Bind;
use crate::proto::mesos::container_info::docker_info::Network as Mode;
use crate::support::atomic_write;
use std::fs;
use std::path::Path;

/// A Docker task being launched.
pub struct DockerLaunch {
    pub task_id: String,
    pub run: DockerRun,
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
                task_id: task.task_id.value.clone(),
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
            Err(ContainerizerError::Unsupported {
                id: id.to_string(),
                what: "a custom executor in a DOCKER container".into(),
                reason: "butte runs DOCKER containers for command tasks; give the executor a MESOS container with a DOCKER image".into(),
            })
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
    for t in req
        .tasks
        .iter_mut()
        .filter(|t| t.task_id.value == d.task_id)
    {
        if let Some(c) = t.container.as_mut() {
            let mut m = d.run.mesos_container(c);
            if d.run.mode != Mode::Host {
                m.hostname = d.run.container_hostname(&id, None);
            }
            *c = m;
        }
    }
    if let Some(task) = req.tasks.iter().find(|t| t.task_id.value == d.task_id) {
        req.executor.container = task.container.clone();
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
    let image = images
        .tasks
        .iter()
        .find(|(t, _)| *t == d.task_id)
        .map(|(_, p)| p.config.clone())
        .unwrap_or_default();
    let hostname = d.run.container_hostname(id, host);
    let task = req.tasks.iter().find(|t| t.task_id.value == d.task_id);
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
        .and_then(|infos| infos.get_mut(&d.task_id))
        .ok_or_else(|| ContainerizerError::Invalid {
            id: id.to_string(),
            what: format!("task {}", d.task_id),
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
    let Some(docker) = plan
        .launch_infos
        .as_mut()
        .and_then(|infos| infos.get_mut(&d.task_id))
        .and_then(|i| i.docker.as_mut())
    else {
        return Ok(());
    };
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
        docker.binds.push(Bind {
            source: path.clone(),
            target: format!("/etc/{name}"),
            read_only: false,
        });
    }
    Ok(())
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
