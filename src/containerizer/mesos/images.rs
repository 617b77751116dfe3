//! Which images a launch needs and their root filesystems.
//!
//! A custom executor's `ContainerInfo` image becomes its own root
//! filesystem (store lease `<container>`). The command and default
//! executors stay on the host filesystem; each of their tasks' images is
//! provisioned under the lease `<container>.<task>` and mounted inside the
//! executor's mount namespace, where the executor's `butte enter
//! --prepare` process pivots into it at the executor's start (the only
//! moment the executor holds `CAP_SYS_ADMIN`).
//! The lease names let a restarted agent find and release them.

use super::error::ContainerizerError;
use crate::containerizer::provisioner::{self, Prepared};
use crate::image::PullOptions;
use crate::proto::mesos::{container_info, image, ContainerInfo};
use std::path::Path;

/// Registries that are Docker Hub, where short names need no prefix.
const DOCKER_HUB: [&str; 3] = ["docker.io", "registry-1.docker.io", "index.docker.io"];

/// The image reference a `ContainerInfo` asks for, if any, qualified with
/// the agent's `--docker_registry` when the name has no registry. `what`
/// names the executor or task in errors.
pub fn reference(
    id: &str,
    what: &str,
    container: Option<&ContainerInfo>,
    docker_registry: Option<&str>,
) -> Result<Option<String>, ContainerizerError> {
    let unsupported = |thing: &str, reason: &str| ContainerizerError::Unsupported {
        id: id.to_string(),
        what: format!("{thing} of {what}"),
        reason: reason.to_string(),
    };
    let Some(c) = container else {
        return Ok(None);
    };
    if c.r#type() != container_info::Type::Mesos {
        return Err(unsupported(
            "container type DOCKER",
            "butte has only the Mesos containerizer; give a MESOS container with a DOCKER image",
        ));
    }
    let Some(img) = c.mesos.as_ref().and_then(|m| m.image.as_ref()) else {
        return Ok(None);
    };
    let name = match (img.r#type(), &img.docker) {
        (image::Type::Docker, Some(d)) => d.name.clone(),
        (image::Type::Docker, None) => {
            return Err(ContainerizerError::Invalid {
                id: id.to_string(),
                what: format!("image of {what}"),
                reason: "a DOCKER image without a name".into(),
            })
        }
        (image::Type::Appc, _) => {
            return Err(unsupported(
                "APPC image",
                "only DOCKER images are supported",
            ))
        }
    };
    Ok(Some(qualify(&name, docker_registry)))
}

/// Prefixes `name` with `registry` (`--docker_registry`, scheme and
/// trailing `/` dropped) unless the name has a registry of its own, the
/// registry is Docker Hub (the default anyway) or a local directory.
pub(super) fn qualify(name: &str, registry: Option<&str>) -> String {
    let Some(reg) = registry else {
        return name.to_string();
    };
    let reg = reg
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let has_registry = name.split_once('/').is_some_and(|(first, _)| {
        first.contains('.') || first.contains(':') || first == "localhost"
    });
    if has_registry || reg.is_empty() || reg.starts_with('/') || DOCKER_HUB.contains(&reg) {
        name.to_string()
    } else {
        format!("{reg}/{name}")
    }
}

/// The store lease (and provisioner directory) of a task's image.
pub fn task_lease(container: &str, task: &str) -> String {
    format!("{container}.{task}")
}

/// Root filesystems prepared for one launch, released on failure or at
/// the container's end.
#[derive(Default)]
pub struct Images {
    /// The executor's own (custom executors).
    pub executor: Option<Prepared>,
    /// Each task's, by task id.
    pub tasks: Vec<(String, Prepared)>,
    /// The leases taken, to release.
    pub leases: Vec<String>,
}

impl Images {
    /// Prepares `reference` under `lease`; on failure, releases everything
    /// prepared so far.
    pub fn prepare(
        &mut self,
        work_dir: &Path,
        pull: &PullOptions,
        id: &str,
        what: &str,
        reference: &str,
        lease: &str,
    ) -> Result<Prepared, ContainerizerError> {
        match provisioner::prepare_image(reference, work_dir, lease, pull, false) {
            Ok(p) => {
                self.leases.push(lease.to_string());
                Ok(p)
            }
            Err(source) => {
                release(work_dir, &std::mem::take(&mut self.leases));
                Err(ContainerizerError::Provision {
                    id: id.to_string(),
                    what: what.to_string(),
                    source: Box::new(source),
                })
            }
        }
    }
}

/// Releases provisioned root filesystems by lease (logging failures: the
/// container is gone either way, and image GC finds stale leases).
pub fn release(work_dir: &Path, leases: &[String]) {
    for lease in leases {
        if let Err(e) = provisioner::release(work_dir, lease) {
            tracing::warn!(lease, error = %e, "container root filesystem not removed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::mesos::{container_info::MesosInfo, Image};

    fn mesos_image(name: &str) -> ContainerInfo {
        ContainerInfo {
            r#type: container_info::Type::Mesos as i32,
            mesos: Some(MesosInfo {
                image: Some(Image {
                    r#type: image::Type::Docker as i32,
                    docker: Some(image::Docker {
                        name: name.into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn image_references_from_container_infos() {
        let r = |c: Option<&ContainerInfo>, reg| reference("c1", "task t1", c, reg);
        assert_eq!(r(None, None).unwrap(), None);
        let c = mesos_image("busybox:1");
        assert_eq!(r(Some(&c), None).unwrap().as_deref(), Some("busybox:1"));
        assert_eq!(
            r(Some(&c), Some("http://localhost:5000/"))
                .unwrap()
                .as_deref(),
            Some("localhost:5000/busybox:1")
        );
        assert_eq!(
            r(Some(&c), Some("https://registry-1.docker.io"))
                .unwrap()
                .as_deref(),
            Some("busybox:1")
        );
        let c = mesos_image("quay.io/x/y");
        assert_eq!(
            r(Some(&c), Some("localhost:5000")).unwrap().as_deref(),
            Some("quay.io/x/y")
        );
        let no_image = ContainerInfo {
            r#type: container_info::Type::Mesos as i32,
            ..Default::default()
        };
        assert_eq!(r(Some(&no_image), None).unwrap(), None);
        let docker = ContainerInfo {
            r#type: container_info::Type::Docker as i32,
            ..Default::default()
        };
        let e = r(Some(&docker), None).unwrap_err().to_string();
        assert!(e.contains("container type DOCKER of task t1"), "{e}");
    }
}
