//! Garbage collection: references removed, then every blob and layer that
//! no reference and no live container's lease needs is deleted.

use super::digest::Digest;
use super::layer::remove_dir;
use super::manifest::{self, Parsed};
use super::store::Store;
use super::{ImageError, Reference};
use std::collections::HashSet;
use std::fs;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GcSummary {
    pub blobs: usize,
    pub layers: usize,
    pub bytes: u64,
}

/// Removes a reference (by its name, or by digest for every name pointing
/// there), then collects garbage.
pub fn remove(store: &Store, reference: &Reference) -> Result<GcSummary, ImageError> {
    let key = reference.to_string();
    let removed = store.update_refs(|refs| {
        let before = refs.len();
        refs.remove(&key);
        if let Some(d) = &reference.digest {
            refs.retain(|name, r| {
                !((&r.digest == d || &r.manifest == d)
                    && Reference::parse(name).is_ok_and(|n| n.name() == reference.name()))
            });
        }
        before - refs.len()
    })?;
    if removed == 0 {
        return Err(ImageError::NotFound(key));
    }
    prune(store)
}

/// Deletes blobs and layers that no reference reaches and no lease holds;
/// leases of containers whose directory is gone are dropped first.
pub fn prune(store: &Store) -> Result<GcSummary, ImageError> {
    let _lock = store.lock_all()?;
    let mut keep_blobs: HashSet<Digest> = HashSet::new();
    let mut keep_layers: HashSet<Digest> = HashSet::new();
    for (_, r) in store.refs()? {
        keep_blobs.insert(r.digest.clone());
        mark(store, &r.manifest, &mut keep_blobs, &mut keep_layers);
    }
    for (path, lease) in store.leases()? {
        if lease.container_dir.exists() {
            keep_layers.extend(lease.layers);
        } else {
            let _ = fs::remove_file(path);
        }
    }
    let mut summary = GcSummary::default();
    let blobs = store.root().join("blobs/sha256");
    for entry in fs::read_dir(&blobs).map_err(|e| ImageError::io("list", &blobs, e))? {
        let entry = entry.map_err(|e| ImageError::io("list", &blobs, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let keep = Digest::parse(&format!("sha256:{name}")).is_ok_and(|d| keep_blobs.contains(&d));
        if !keep {
            summary.bytes += entry.metadata().map(|m| m.len()).unwrap_or(0);
            fs::remove_file(entry.path())
                .map_err(|e| ImageError::io("remove", &entry.path(), e))?;
            summary.blobs += 1;
        }
    }
    let layers = store.root().join("layers");
    for entry in fs::read_dir(&layers).map_err(|e| ImageError::io("list", &layers, e))? {
        let entry = entry.map_err(|e| ImageError::io("list", &layers, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let keep = match name.strip_prefix("sha256-") {
            Some(hex) => {
                Digest::parse(&format!("sha256:{hex}")).is_ok_and(|d| keep_layers.contains(&d))
            }
            // A `.tmp-` directory belongs to an unpack in progress (its
            // owner holds a blob lock) or to a dead one; pulls clean those.
            None => true,
        };
        if !keep {
            remove_dir(&entry.path())?;
            summary.layers += 1;
        }
    }
    Ok(summary)
}

/// Marks a manifest, its config and layers (and their diff ids) as in use.
fn mark(
    store: &Store,
    manifest: &Digest,
    blobs: &mut HashSet<Digest>,
    layers: &mut HashSet<Digest>,
) {
    blobs.insert(manifest.clone());
    let Ok(bytes) = store.read_blob(manifest) else {
        return;
    };
    let Ok(Parsed::Manifest(m)) = manifest::parse(&bytes, None) else {
        return;
    };
    blobs.insert(m.config.digest.clone());
    blobs.extend(m.layers.iter().map(|l| l.digest.clone()));
    if let Ok(config) = store
        .read_blob(&m.config.digest)
        .map_err(drop)
        .and_then(|b| super::ImageConfig::parse(&b).map_err(drop))
    {
        layers.extend(config.rootfs.diff_ids);
    }
}
