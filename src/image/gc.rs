//! Garbage collection: references removed, then every blob and layer that
//! no reference and no live container's lease needs is deleted.
//! [`collect`] is the automatic kind: it drops the references of images no
//! live container runs (but those it is told to keep) and prunes; callers
//! run it when [`usage`] of the store's filesystem passes their threshold.

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

/// Removes the reference of every image that no live container's lease
/// holds all the layers of, except the references KEEP names, then prunes.
/// A layer in a live lease is never removed, whatever its image.
pub fn collect(store: &Store, keep: &[Reference]) -> Result<GcSummary, ImageError> {
    let keep: HashSet<String> = keep.iter().map(ToString::to_string).collect();
    let leased: Vec<HashSet<Digest>> = store
        .leases()?
        .into_iter()
        .filter(|(_, lease)| lease.container_dir.exists())
        .map(|(_, lease)| lease.layers.into_iter().collect())
        .collect();
    let images = store.refs()?;
    let unused: Vec<String> = images
        .iter()
        .filter(|(name, _)| !keep.contains(*name))
        .filter(|(name, r)| match store.load(name, &r.digest, &r.manifest) {
            Ok(image) => !leased
                .iter()
                .any(|l| image.layers.iter().all(|(_, diff, _)| l.contains(diff))),
            // An image that cannot be read is left to `butte image rm`.
            Err(_) => false,
        })
        .map(|(name, _)| name.clone())
        .collect();
    store.update_refs(|refs| {
        for name in &unused {
            refs.remove(name);
        }
    })?;
    prune(store)
}

/// The fraction (0 to 1) of the store's filesystem in use, as `df` counts
/// it (blocks not free over all blocks).
pub fn usage(store: &Store) -> Result<f64, ImageError> {
    let st = rustix::fs::statvfs(store.root())
        .map_err(|e| ImageError::io("statvfs", store.root(), e.into()))?;
    if st.f_blocks == 0 {
        return Ok(0.0);
    }
    Ok(st.f_blocks.saturating_sub(st.f_bfree) as f64 / st.f_blocks as f64)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{import, Quiet};
    use std::path::Path;

    /// Writes an OCI layout holding one image tagged TAG whose layers
    /// hold one file each, and imports it as `NAME:TAG`.
    fn image(
        store: &Store,
        scratch: &Path,
        name: &str,
        tag: &str,
        layers: &[&[u8]],
    ) -> Vec<Digest> {
        let dir = scratch.join(format!("{name}-{tag}"));
        fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        let put = |bytes: &[u8]| {
            let d = Digest::of(bytes);
            fs::write(dir.join("blobs/sha256").join(d.hex()), bytes).unwrap();
            serde_json::json!({"digest": d.to_string(), "size": bytes.len()})
        };
        let mut diff_ids = Vec::new();
        let mut descriptors = Vec::new();
        for (i, content) in layers.iter().enumerate() {
            let mut b = tar::Builder::new(Vec::new());
            let mut h = tar::Header::new_ustar();
            h.set_size(content.len() as u64);
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            b.append_data(&mut h, format!("file{i}"), *content).unwrap();
            let tar = b.into_inner().unwrap();
            diff_ids.push(Digest::of(&tar));
            let mut d = put(&tar);
            d["mediaType"] = "application/vnd.oci.image.layer.v1.tar".into();
            descriptors.push(d);
        }
        let config = serde_json::json!({
            "architecture": "amd64", "os": "linux", "config": {},
            "rootfs": {"type": "layers", "diff_ids": diff_ids.iter().map(ToString::to_string).collect::<Vec<_>>()},
        });
        let mut c = put(config.to_string().as_bytes());
        c["mediaType"] = "application/vnd.oci.image.config.v1+json".into();
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": c, "layers": descriptors,
        });
        let mut m = put(manifest.to_string().as_bytes());
        m["mediaType"] = "application/vnd.oci.image.manifest.v1+json".into();
        m["platform"] = serde_json::json!({"architecture": "amd64", "os": "linux"});
        m["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": tag});
        fs::write(
            dir.join("index.json"),
            serde_json::json!({"schemaVersion": 2, "manifests": [m]}).to_string(),
        )
        .unwrap();
        fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        import(store, &dir, Some(name), 1 << 20, &Quiet).unwrap();
        diff_ids
    }

    fn lease(store: &Store, container: &str, dir: &Path, layers: &[Digest]) {
        fs::create_dir_all(dir).unwrap();
        let lease = super::super::store::Lease {
            container_dir: dir.to_path_buf(),
            layers: layers.to_vec(),
        };
        fs::write(
            store.lease_path(container),
            serde_json::to_vec(&lease).unwrap(),
        )
        .unwrap();
    }

    #[test]
    fn collect_keeps_leased_and_excluded_images_and_removes_the_rest() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::open(&t.path().join("work")).unwrap();
        let scratch = t.path().join("layouts");
        let base: &[u8] = b"shared base";
        let used = image(&store, &scratch, "used", "1", &[base, b"used top"]);
        let unused = image(&store, &scratch, "unused", "1", &[base, b"unused top"]);
        let kept = image(&store, &scratch, "kept", "1", &[b"kept only"]);
        let gone = image(&store, &scratch, "gone", "1", &[b"gone only"]);
        lease(&store, "c1", &t.path().join("c1"), &used);
        // A lease of a container whose directory is gone holds nothing.
        let stale = t.path().join("c2");
        lease(&store, "c2", &stale, &gone);
        fs::remove_dir(&stale).unwrap();

        let keep = [Reference::parse("kept:1").unwrap()];
        let summary = collect(&store, &keep).unwrap();
        let refs: Vec<String> = store.refs().unwrap().into_keys().collect();
        assert_eq!(refs.len(), 2, "{refs:?}");
        assert!(refs.iter().any(|r| r.contains("used:1")), "{refs:?}");
        assert!(refs.iter().any(|r| r.contains("kept:1")), "{refs:?}");
        for d in used.iter().chain(&kept) {
            assert!(store.layer_path(d).is_dir(), "layer {d} in use was removed");
        }
        // The shared base stays (leased); the unused top and the other
        // images' layers go, with their blobs.
        assert!(!store.layer_path(&unused[1]).exists());
        assert!(!store.layer_path(&gone[0]).exists());
        assert_eq!(summary.layers, 2, "{summary:?}");
        assert!(summary.blobs >= 6, "{summary:?}");
        assert!(!store.lease_path("c2").exists(), "stale lease kept");
        // What is left still loads.
        assert!(store
            .image(&Reference::parse("used:1").unwrap())
            .unwrap()
            .is_some());
        // Nothing more to do the second time.
        assert_eq!(collect(&store, &keep).unwrap(), GcSummary::default());
    }

    #[test]
    fn usage_is_a_fraction_of_the_store_filesystem() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::open(t.path()).unwrap();
        let u = usage(&store).unwrap();
        assert!((0.0..=1.0).contains(&u), "{u}");
    }
}
