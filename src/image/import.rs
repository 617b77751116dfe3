//! Importing images without a registry: an OCI image layout directory, or a
//! `docker save` tarball (which may itself hold an OCI layout).

use super::digest::Digest;
use super::layer::{remove_dir, Source};
use super::manifest::{self, Descriptor, ImageConfig, Parsed, Platform};
use super::pull::{check_layers, fetch_layers};
use super::store::{RefRecord, Store};
use super::{bad_manifest, Image, ImageError, Progress, Reference};
use crate::archive::{self, Options};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Imports every tagged image in `path`. `name` (e.g. `busybox`) names
/// the images of an OCI layout, whose tags are bare; a `docker save`
/// tarball brings its own names unless `name` is given.
pub fn import(
    store: &Store,
    path: &Path,
    name: Option<&str>,
    max_layer_size: u64,
    progress: &dyn Progress,
) -> Result<Vec<Image>, ImageError> {
    let fail = |cause: String| ImageError::Import {
        path: path.to_path_buf(),
        cause,
    };
    if path.is_dir() {
        return import_layout(store, path, name, max_layer_size, progress);
    }
    // A tarball: unpack it (safely) into a scratch directory first.
    let scratch = store
        .root()
        .join("ingest")
        .join(format!(".import-{}", std::process::id()));
    remove_dir(&scratch)?;
    fs::create_dir_all(&scratch).map_err(|e| ImageError::io("create", &scratch, e))?;
    let result = (|| {
        let file = fs::File::open(path).map_err(|e| ImageError::io("open", path, e))?;
        let mut reader = std::io::BufReader::new(file);
        let c = archive::Compression::sniff(&mut reader)
            .map_err(|e| ImageError::io("read", path, e))?;
        let decoder =
            archive::decompress(reader, c).map_err(|e| ImageError::io("read", path, e))?;
        archive::unpack_tar(decoder, &scratch, &Options::default())
            .map_err(|e| fail(e.to_string()))?;
        if scratch.join("manifest.json").is_file() {
            import_docker(store, &scratch, path, name, max_layer_size, progress)
        } else if scratch.join("index.json").is_file() {
            import_layout(store, &scratch, name, max_layer_size, progress)
        } else {
            Err(fail(
                "neither a docker save tarball (manifest.json) nor an OCI layout (index.json)"
                    .into(),
            ))
        }
    })();
    let _ = remove_dir(&scratch);
    result
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<(Vec<u8>, T), ImageError> {
    let bytes = fs::read(path).map_err(|e| ImageError::io("read", path, e))?;
    let value = serde_json::from_slice(&bytes).map_err(|e| ImageError::Import {
        path: path.to_path_buf(),
        cause: e.to_string(),
    })?;
    Ok((bytes, value))
}

fn import_layout(
    store: &Store,
    dir: &Path,
    name: Option<&str>,
    max: u64,
    progress: &dyn Progress,
) -> Result<Vec<Image>, ImageError> {
    let fail = |cause: String| ImageError::Import {
        path: dir.to_path_buf(),
        cause,
    };
    let (_, index): (_, manifest::Document) = read_json(&dir.join("index.json"))?;
    let blob = |d: &Digest| dir.join("blobs/sha256").join(d.hex());
    let read_blob = |d: &Digest| -> Result<Vec<u8>, ImageError> {
        let bytes = fs::read(blob(d)).map_err(|e| ImageError::io("read", &blob(d), e))?;
        let actual = Digest::of(&bytes);
        if &actual != d {
            return Err(ImageError::DigestMismatch {
                what: format!("blob in {}", dir.display()),
                expected: d.clone(),
                actual,
            });
        }
        Ok(bytes)
    };
    let mut images = Vec::new();
    for entry in index.manifests.unwrap_or_default() {
        let Some(tag) = entry.annotations.get(REF_NAME) else {
            continue;
        };
        let reference = match (name, tag.contains(['/', ':', '@'])) {
            (Some(n), _) => format!("{n}:{tag}"),
            (None, true) => tag.clone(),
            (None, false) => return Err(fail(format!("tag {tag:?} needs an image name (--name)"))),
        };
        let reference = Reference::parse(&reference).map_err(ImageError::Reference)?;
        let top = entry.digest.clone();
        let bytes = read_blob(&top)?;
        let (manifest_digest, manifest_bytes, m) =
            match manifest::parse(&bytes, Some(&entry.media_type)).map_err(bad_manifest(&top))? {
                Parsed::Manifest(m) => (top.clone(), bytes.clone(), m),
                Parsed::Index(list) => {
                    let chosen = manifest::select(&list, &Platform::host()).ok_or_else(|| {
                        bad_manifest(&top)("no manifest for this platform".into())
                    })?;
                    let inner = read_blob(&chosen.digest)?;
                    match manifest::parse(&inner, Some(&chosen.media_type))
                        .map_err(bad_manifest(&chosen.digest))?
                    {
                        Parsed::Manifest(m) => (chosen.digest.clone(), inner, m),
                        Parsed::Index(_) => {
                            return Err(bad_manifest(&chosen.digest)(
                                "an index inside an index".into(),
                            ))
                        }
                    }
                }
            };
        let config_bytes = read_blob(&m.config.digest)?;
        let config = ImageConfig::parse(&config_bytes).map_err(bad_manifest(&m.config.digest))?;
        check_layers(&m.config.digest, &config, &m.layers)?;
        let paths: Vec<PathBuf> = m.layers.iter().map(|l| blob(&l.digest)).collect();
        fetch_layers(
            store,
            &m.layers,
            &config.rootfs.diff_ids,
            max,
            progress,
            |d: &Descriptor| {
                let i = m.layers.iter().position(|l| l == d).expect("own layer");
                Source::File(&paths[i])
            },
        )?;
        store.put_blob(&m.config.digest, &config_bytes)?;
        store.put_blob(&manifest_digest, &manifest_bytes)?;
        if top != manifest_digest {
            store.put_blob(&top, &bytes)?;
        }
        images.push(record(store, &reference, &top, &manifest_digest)?);
    }
    if images.is_empty() {
        return Err(fail(
            "no tagged image in index.json (org.opencontainers.image.ref.name)".into(),
        ));
    }
    Ok(images)
}

fn record(
    store: &Store,
    reference: &Reference,
    top: &Digest,
    manifest: &Digest,
) -> Result<Image, ImageError> {
    let name = reference.to_string();
    let r = RefRecord {
        digest: top.clone(),
        manifest: manifest.clone(),
    };
    store.update_refs(|refs| refs.insert(name.clone(), r))?;
    store.load(&name, top, manifest)
}

/// `docker save`: `manifest.json` lists each image's config file, its
/// uncompressed layer tars (bottom first) and its `RepoTags`.
fn import_docker(
    store: &Store,
    dir: &Path,
    origin: &Path,
    name: Option<&str>,
    max: u64,
    progress: &dyn Progress,
) -> Result<Vec<Image>, ImageError> {
    let fail = |cause: String| ImageError::Import {
        path: origin.to_path_buf(),
        cause,
    };
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Entry {
        config: String,
        #[serde(default)]
        repo_tags: Option<Vec<String>>,
        layers: Vec<String>,
    }
    let (_, entries): (_, Vec<Entry>) = read_json(&dir.join("manifest.json"))?;
    let inside = |rel: &str| -> Result<PathBuf, ImageError> {
        let p = Path::new(rel);
        if p.is_absolute()
            || p.components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(fail(format!("path {rel:?} leaves the archive")));
        }
        Ok(dir.join(p))
    };
    let mut images = Vec::new();
    for e in entries {
        let config_bytes =
            fs::read(inside(&e.config)?).map_err(|err| fail(format!("{}: {err}", e.config)))?;
        let config_digest = Digest::of(&config_bytes);
        let config = ImageConfig::parse(&config_bytes).map_err(fail)?;
        if config.rootfs.diff_ids.len() != e.layers.len() {
            return Err(fail(format!(
                "{} layers but {} diff ids",
                e.layers.len(),
                config.rootfs.diff_ids.len()
            )));
        }
        let mut paths = Vec::new();
        let mut layers = Vec::new();
        for (rel, diff) in e.layers.iter().zip(&config.rootfs.diff_ids) {
            let p = inside(rel)?;
            let size = fs::metadata(&p)
                .map_err(|err| fail(format!("{rel}: {err}")))?
                .len();
            // Saved layers are the uncompressed tars: their digest is the diff id.
            layers.push(Descriptor {
                media_type: "application/vnd.oci.image.layer.v1.tar".into(),
                digest: diff.clone(),
                size,
                platform: None,
                annotations: BTreeMap::new(),
            });
            paths.push(p);
        }
        fetch_layers(
            store,
            &layers,
            &config.rootfs.diff_ids,
            max,
            progress,
            |d: &Descriptor| {
                let i = layers.iter().position(|l| l == d).expect("own layer");
                Source::File(&paths[i])
            },
        )?;
        let manifest = manifest::Document {
            schema_version: 2,
            media_type: Some(manifest::OCI_MANIFEST.into()),
            manifests: None,
            config: Some(Descriptor {
                media_type: "application/vnd.oci.image.config.v1+json".into(),
                digest: config_digest.clone(),
                size: config_bytes.len() as u64,
                platform: None,
                annotations: BTreeMap::new(),
            }),
            layers: Some(layers.clone()),
        };
        let manifest_bytes = serde_json::to_vec(&manifest).expect("manifest serializes");
        let manifest_digest = Digest::of(&manifest_bytes);
        store.put_blob(&config_digest, &config_bytes)?;
        store.put_blob(&manifest_digest, &manifest_bytes)?;
        let tags: Vec<String> = match (name, e.repo_tags) {
            (Some(n), Some(tags)) if !tags.is_empty() => tags
                .iter()
                .map(|t| {
                    format!(
                        "{n}:{}",
                        t.rsplit_once(':').map(|(_, t)| t).unwrap_or("latest")
                    )
                })
                .collect(),
            (Some(n), _) => vec![n.to_string()],
            (None, Some(tags)) if !tags.is_empty() => tags,
            (None, _) => {
                return Err(fail(
                    "an image without RepoTags needs a name (--name)".into(),
                ))
            }
        };
        for t in tags {
            let reference = Reference::parse(&t).map_err(ImageError::Reference)?;
            images.push(record(
                store,
                &reference,
                &manifest_digest,
                &manifest_digest,
            )?);
        }
    }
    Ok(images)
}
