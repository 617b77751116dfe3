//! What `--image` names becomes a root filesystem: an unpacked directory is
//! used as it is; an image reference is looked up in the store (pulled if
//! missing) and provisioned as an overlay for this container, with the
//! image's run config (entrypoint, command, env, working dir, user) applied
//! the way Docker and the Mesos docker runtime isolator do.

use crate::image::{self, ImageError, PullOptions, Quiet, Reference, RunConfig, Store};
use crate::runtime::Rootfs;
use std::fs;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("image {path}: {reason}")]
    Dir { path: PathBuf, reason: String },
    #[error("image {reference}: {source}")]
    Image {
        reference: String,
        #[source]
        source: ImageError,
    },
}

/// A root filesystem ready for a container, and what to undo afterwards.
pub struct Prepared {
    pub rootfs: Rootfs,
    /// The image's run config; empty for a plain directory.
    pub config: RunConfig,
    cleanup: Option<(Store, String, PathBuf)>,
}

impl Prepared {
    /// Removes the container's provisioned filesystem (not the image).
    pub fn release(self) {
        if let Some((store, id, dir)) = self.cleanup {
            if let Err(e) = image::release(&store, &id, &dir) {
                tracing::warn!(error = %e, "container root filesystem not removed");
            }
        }
    }
}

/// Whether `--image` names a directory rather than an image reference.
fn is_path(arg: &str) -> bool {
    arg.starts_with('/')
        || arg.starts_with("./")
        || arg.starts_with("../")
        || Path::new(arg).is_dir()
}

/// Prepares the root filesystem for container `id`.
pub fn prepare(
    arg: &str,
    work_dir: &Path,
    id: &str,
    pull: &PullOptions,
    readonly: bool,
) -> Result<Prepared, ProvisionError> {
    if is_path(arg) {
        let dir_err = |reason: String| ProvisionError::Dir {
            path: arg.into(),
            reason,
        };
        let path = fs::canonicalize(arg).map_err(|e| dir_err(e.to_string().to_lowercase()))?;
        if path.join("oci-layout").is_file() {
            return Err(dir_err(format!(
                "an OCI image layout, not a root filesystem: import it with `butte image import {arg} --name NAME` and run NAME:TAG"
            )));
        }
        if !path.is_dir() {
            return Err(dir_err("not a directory".into()));
        }
        return Ok(Prepared {
            rootfs: Rootfs {
                path,
                mount: None,
                readonly,
            },
            config: RunConfig::default(),
            cleanup: None,
        });
    }
    prepare_image(arg, work_dir, id, pull, readonly)
}

/// Prepares the root filesystem of image `reference` for container `id`
/// (pulled if not in the store), in `<work_dir>/provisioner/<id>` under the
/// store lease `id`. Never takes `reference` for a directory: for names
/// that come from a framework.
pub fn prepare_image(
    reference: &str,
    work_dir: &Path,
    id: &str,
    pull: &PullOptions,
    readonly: bool,
) -> Result<Prepared, ProvisionError> {
    let arg = reference;
    let img_err = |source| ProvisionError::Image {
        reference: arg.to_string(),
        source,
    };
    let reference = Reference::parse(arg).map_err(|e| img_err(ImageError::Reference(e)))?;
    let store = Store::open(work_dir).map_err(img_err)?;
    let stored = match pull.force {
        true => None,
        false => store.image(&reference).map_err(img_err)?,
    };
    let img = match stored {
        Some(i) => i,
        None => {
            eprintln!("butte: pulling {reference}");
            image::pull(&store, &reference, pull, &Quiet).map_err(img_err)?
        }
    };
    let dir = provisioned_dir(work_dir, id);
    let p = image::provision(&store, &img, id, &dir, None).map_err(img_err)?;
    Ok(Prepared {
        rootfs: Rootfs {
            path: p.rootfs,
            mount: p.mount,
            readonly,
        },
        config: img.config.config.clone(),
        cleanup: Some((store, id.to_string(), dir)),
    })
}

/// Where the root filesystem of container `id` is provisioned.
fn provisioned_dir(work_dir: &Path, id: &str) -> PathBuf {
    work_dir.join("provisioner").join(id)
}

/// The ids of the root filesystems provisioned under `work_dir` whose id
/// is `prefix` or starts with `prefix` followed by `.` (a container's own
/// and its tasks'), found after a restart, when no [`Prepared`] is left.
pub fn provisioned(work_dir: &Path, prefix: &str) -> Vec<String> {
    let Ok(entries) = fs::read_dir(work_dir.join("provisioner")) else {
        return Vec::new();
    };
    let dotted = format!("{prefix}.");
    entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n == prefix || n.starts_with(&dotted))
        .collect()
}

/// Removes the root filesystem provisioned for `id` and its lease, as
/// [`Prepared::release`] does, by id.
pub fn release(work_dir: &Path, id: &str) -> Result<(), ProvisionError> {
    let err = |source| ProvisionError::Image {
        reference: id.to_string(),
        source,
    };
    let store = Store::open(work_dir).map_err(err)?;
    image::release(&store, id, &provisioned_dir(work_dir, id)).map_err(err)
}

/// The command to run: Docker's rule, the image's entrypoint followed by
/// the given arguments, or by the image's command when none are given.
pub fn command(given: &[String], config: &RunConfig) -> Vec<String> {
    let mut argv = config.entrypoint.clone().unwrap_or_default();
    if given.is_empty() {
        argv.extend(config.cmd.clone().unwrap_or_default());
    } else {
        argv.extend(given.iter().cloned());
    }
    argv
}

/// The image's environment as pairs (entries without `=` are skipped).
pub fn env(config: &RunConfig) -> Vec<(String, String)> {
    config
        .env
        .iter()
        .flatten()
        .filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_entrypoint_and_command_rules() {
        let c = RunConfig {
            entrypoint: Some(vec!["/init".into()]),
            cmd: Some(vec!["serve".into()]),
            env: Some(vec![
                "PATH=/usr/bin".into(),
                "BROKEN".into(),
                "A=b=c".into(),
            ]),
            ..RunConfig::default()
        };
        assert_eq!(command(&[], &c), ["/init", "serve"]);
        assert_eq!(command(&["x".into()], &c), ["/init", "x"]);
        assert_eq!(command(&["x".into()], &RunConfig::default()), ["x"]);
        assert_eq!(
            env(&c),
            [
                ("PATH".into(), "/usr/bin".into()),
                ("A".into(), "b=c".into())
            ]
        );
    }

    #[test]
    fn provisioned_ids_are_found_by_container_prefix() {
        let dir = tempfile::tempdir().unwrap();
        for id in ["c1", "c1.task-a", "c1.b.c", "c10", "c2.x"] {
            fs::create_dir_all(dir.path().join("provisioner").join(id)).unwrap();
        }
        let mut found = provisioned(dir.path(), "c1");
        found.sort();
        assert_eq!(found, ["c1", "c1.b.c", "c1.task-a"]);
        assert!(provisioned(&dir.path().join("none"), "c1").is_empty());
    }

    #[test]
    fn directories_and_layouts_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().to_str().unwrap();
        let work = dir.path().join("w");
        let pull = PullOptions::default();
        let ok = prepare(p, &work, "c1", &pull, true).unwrap();
        assert!(ok.rootfs.mount.is_none() && ok.rootfs.readonly);
        fs::write(dir.path().join("oci-layout"), "{}").unwrap();
        let e = prepare(p, &work, "c1", &pull, false)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("butte image import"), "{e}");
        let e = prepare("/no/such/rootfs", &work, "c1", &pull, false)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("/no/such/rootfs") && e.contains("no such file"),
            "{e}"
        );
        let e = prepare("Bad Ref", &work, "c1", &pull, false)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("invalid image reference"), "{e}");
    }
}
