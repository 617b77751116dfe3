//! Root filesystems for containers. Each container gets an overlayfs of the
//! image's unpacked layers (read-only, shared) under its own upper
//! directory, or, where overlayfs is missing or the layer list too long
//! for one mount, a private copy with the layers applied in order. A lease
//! in the store keeps garbage collection away from the layers until
//! [`release`].

use super::layer::remove_dir;
use super::store::{Lease, Store};
use super::{Image, ImageError};
use crate::archive::{self, Compression, Devices, Options, Whiteouts};
use crate::mount::Mount;
use std::fs;
use std::io::BufReader;
use std::path::{Path, PathBuf};

/// The kernel takes at most a page of mount options.
const MAX_MOUNT_DATA: usize = 4000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Overlay,
    Copy,
}

/// A container's root filesystem: the directory to use as its root and,
/// for overlay, the mount that the runtime makes there inside the
/// container's mount namespace (the host never sees it mounted).
#[derive(Debug, Clone)]
pub struct Provisioned {
    pub rootfs: PathBuf,
    pub mount: Option<Mount>,
    pub backend: Backend,
    /// Everything provisioned for the container lives here.
    pub dir: PathBuf,
}

/// Whether the kernel knows overlayfs; read once per process, not for
/// every container.
fn overlay_available() -> bool {
    static KNOWN: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *KNOWN.get_or_init(|| {
        fs::read_to_string("/proc/filesystems")
            .is_ok_and(|s| s.lines().any(|l| l.trim_end().ends_with("\toverlay")))
    })
}

/// Provisions a root filesystem for container `id` in `dir` (which must not
/// exist yet). `backend` `None` picks overlay when it can.
pub fn provision(
    store: &Store,
    image: &Image,
    id: &str,
    dir: &Path,
    backend: Option<Backend>,
) -> Result<Provisioned, ImageError> {
    let layers: Vec<PathBuf> = image
        .layers
        .iter()
        .map(|(_, diff, _)| store.layer_path(diff))
        .collect();
    let (upper, work, rootfs) = (dir.join("upper"), dir.join("work"), dir.join("rootfs"));
    let lowerdir = layers
        .iter()
        .rev()
        .map(|p| p.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(":");
    let data_len = lowerdir.len() + upper.as_os_str().len() + work.as_os_str().len() + 40;
    let backend = backend.unwrap_or(
        if overlay_available() && data_len < MAX_MOUNT_DATA && !layers.is_empty() {
            Backend::Overlay
        } else {
            Backend::Copy
        },
    );

    // The lease goes first, under the store lock, so a concurrent prune
    // either sees it or has finished before the layers are checked.
    {
        let _lock = store.lock_all()?;
        if let Some((_, diff, _)) = image
            .layers
            .iter()
            .find(|(_, d, _)| !store.layer_path(d).is_dir())
        {
            return Err(ImageError::NotFound(format!(
                "{} (layer {diff} is missing)",
                image.reference
            )));
        }
        fs::create_dir_all(dir).map_err(|e| ImageError::io("create", dir, e))?;
        let lease = Lease {
            container_dir: dir.to_path_buf(),
            layers: image.layers.iter().map(|l| l.1.clone()).collect(),
        };
        let path = store.lease_path(id);
        let tmp = path.with_extension("tmp");
        fs::write(&tmp, serde_json::to_vec(&lease).expect("lease serializes"))
            .and_then(|()| fs::rename(&tmp, &path))
            .map_err(|e| ImageError::io("write lease", &path, e))?;
    }
    let result = (|| {
        fs::create_dir(&rootfs).map_err(|e| ImageError::io("create", &rootfs, e))?;
        match backend {
            Backend::Overlay => {
                for d in [&upper, &work] {
                    fs::create_dir(d).map_err(|e| ImageError::io("create", d, e))?;
                }
                let mount = Mount {
                    source: "overlay".into(),
                    target: "/".into(),
                    fstype: Some("overlay".into()),
                    options: vec![
                        format!("lowerdir={lowerdir}"),
                        format!("upperdir={}", upper.display()),
                        format!("workdir={}", work.display()),
                    ],
                };
                Ok(Some(mount))
            }
            Backend::Copy => {
                copy_layers(store, image, &rootfs)?;
                Ok(None)
            }
        }
    })();
    match result {
        Ok(mount) => Ok(Provisioned {
            rootfs,
            mount,
            backend,
            dir: dir.to_path_buf(),
        }),
        Err(e) => {
            let _ = release(store, id, dir);
            Err(e)
        }
    }
}

/// Applies the layers' blobs one on top of the other (whiteouts deleting).
fn copy_layers(store: &Store, image: &Image, rootfs: &Path) -> Result<(), ImageError> {
    let opts = Options {
        whiteouts: Whiteouts::Apply,
        devices: Devices::Skip,
        same_owner: true,
        xattrs: true,
        ..Options::default()
    };
    for (digest, _, _) in &image.layers {
        let path = store.blob_path(digest);
        let file = fs::File::open(&path).map_err(|e| ImageError::io("open layer", &path, e))?;
        let mut reader = BufReader::with_capacity(256 << 10, file);
        let c =
            Compression::sniff(&mut reader).map_err(|e| ImageError::io("read layer", &path, e))?;
        let decoder =
            archive::decompress(reader, c).map_err(|e| ImageError::io("read layer", &path, e))?;
        archive::unpack_tar(decoder, rootfs, &opts).map_err(|source| ImageError::Unpack {
            digest: digest.clone(),
            source,
        })?;
    }
    Ok(())
}

/// Removes a container's provisioned filesystem and its lease.
pub fn release(store: &Store, id: &str, dir: &Path) -> Result<(), ImageError> {
    remove_dir(dir)?;
    let lease = store.lease_path(id);
    match fs::remove_file(&lease) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ImageError::io("remove lease", &lease, e)),
    }
}
