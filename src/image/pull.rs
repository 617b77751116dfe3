//! Pulling an image: resolve the reference to a platform manifest, fetch
//! the config, then get every layer into the store concurrently.

use super::auth::{self, Credentials};
use super::digest::Digest;
use super::layer::{self, LayerJob, Source};
use super::manifest::{self, Descriptor, ImageConfig, Parsed, Platform};
use super::registry::Client;
use super::store::{RefRecord, Store};
use super::{bad_manifest, Image, ImageError, Progress, Reference};
use crate::support::http::HttpConfig;
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Layers downloaded and unpacked at once.
const PARALLEL_LAYERS: usize = 3;
/// Image configs larger than this are refused.
const MAX_CONFIG: u64 = 8 << 20;

#[derive(Debug, Clone)]
pub struct PullOptions {
    /// Registries (`host[:port]`) spoken to over plain http.
    pub insecure: Vec<String>,
    /// A Docker `config.json` with credentials; `None` looks in the usual places.
    pub registry_config: Option<PathBuf>,
    pub http: HttpConfig,
    /// Cap on the uncompressed size of one layer.
    pub max_layer_size: u64,
    pub platform: Platform,
    /// Pull even when the store has the image (Docker's
    /// `force_pull_image`: the tag is resolved again).
    pub force: bool,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            insecure: Vec::new(),
            registry_config: None,
            http: HttpConfig::default(),
            max_layer_size: 32 << 30,
            platform: Platform::host(),
            force: false,
        }
    }
}

fn credentials(opts: &PullOptions, host: &str) -> Result<Option<Credentials>, ImageError> {
    let (path, explicit) = match &opts.registry_config {
        Some(p) => (p.clone(), true),
        None => match auth::default_config_path() {
            Some(p) => (p, false),
            None => return Ok(None),
        },
    };
    match std::fs::read(&path) {
        Ok(bytes) => auth::lookup(&bytes, host).map_err(|cause| ImageError::Registry {
            url: path.display().to_string(),
            cause,
        }),
        Err(e) if !explicit && e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ImageError::io("read registry config", &path, e)),
    }
}

/// Pulls `reference` into the store and records the reference.
pub fn pull(
    store: &Store,
    reference: &Reference,
    opts: &PullOptions,
    progress: &dyn Progress,
) -> Result<Image, ImageError> {
    let creds = credentials(opts, &reference.registry)?;
    let insecure = opts.insecure.iter().any(|h| h == &reference.registry);
    let client = Client::new(
        reference.api_host(),
        &reference.repository,
        insecure,
        creds,
        &opts.http,
    );

    let (bytes, ctype) = client.manifest(&reference.target())?;
    let top = Digest::of(&bytes);
    if let Some(pinned) = &reference.digest {
        if &top != pinned {
            return Err(ImageError::DigestMismatch {
                what: format!("manifest of {reference}"),
                expected: pinned.clone(),
                actual: top,
            });
        }
    }
    let (manifest_digest, manifest) =
        match manifest::parse(&bytes, ctype.as_deref()).map_err(bad_manifest(&top))? {
            Parsed::Manifest(m) => {
                store.put_blob(&top, &bytes)?;
                (top.clone(), m)
            }
            Parsed::Index(entries) => {
                let chosen = manifest::select(&entries, &opts.platform).ok_or_else(|| {
                    let have: Vec<String> = entries
                        .iter()
                        .filter_map(|d| d.platform.as_ref())
                        .map(|p| format!("{}/{}", p.os, p.architecture))
                        .collect();
                    let want = format!("{}/{}", opts.platform.os, opts.platform.architecture);
                    bad_manifest(&top)(format!(
                        "no manifest for {want} (it has: {})",
                        have.join(", ")
                    ))
                })?;
                store.put_blob(&top, &bytes)?;
                let (inner, ctype) = client.manifest(chosen.digest.as_str())?;
                let actual = Digest::of(&inner);
                if actual != chosen.digest {
                    return Err(ImageError::DigestMismatch {
                        what: "platform manifest".into(),
                        expected: chosen.digest,
                        actual,
                    });
                }
                match manifest::parse(&inner, ctype.as_deref()).map_err(bad_manifest(&actual))? {
                    Parsed::Manifest(m) => {
                        store.put_blob(&actual, &inner)?;
                        (actual, m)
                    }
                    Parsed::Index(_) => {
                        return Err(bad_manifest(&actual)("an index inside an index".into()))
                    }
                }
            }
        };

    let config_bytes = fetch_config(store, &client, &manifest.config)?;
    let config =
        ImageConfig::parse(&config_bytes).map_err(bad_manifest(&manifest.config.digest))?;
    check_layers(&manifest.config.digest, &config, &manifest.layers)?;
    for l in &manifest.layers {
        progress.layer_start(&l.digest, l.size);
    }
    fetch_layers(
        store,
        &manifest.layers,
        &config.rootfs.diff_ids,
        opts.max_layer_size,
        progress,
        |_| Source::Registry(&client),
    )?;

    let record = RefRecord {
        digest: top.clone(),
        manifest: manifest_digest.clone(),
    };
    let name = reference.to_string();
    store.update_refs(|refs| refs.insert(name.clone(), record))?;
    store.load(&name, &top, &manifest_digest)
}

fn fetch_config(store: &Store, client: &Client, desc: &Descriptor) -> Result<Vec<u8>, ImageError> {
    if store.has_blob(&desc.digest) {
        return store.read_blob(&desc.digest);
    }
    let _lock = store.lock(&desc.digest)?;
    if store.has_blob(&desc.digest) {
        return store.read_blob(&desc.digest);
    }
    if desc.size > MAX_CONFIG {
        return Err(ImageError::Manifest {
            digest: desc.digest.to_string(),
            cause: format!("config larger than {MAX_CONFIG} bytes"),
        });
    }
    let body = client.blob(&desc.digest, 0)?;
    let mut bytes = Vec::new();
    body.reader
        .take(desc.size + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ImageError::Layer {
            digest: desc.digest.clone(),
            cause: e.to_string(),
        })?;
    store.put_blob(&desc.digest, &bytes)?;
    Ok(bytes)
}

pub(crate) fn check_layers(
    config: &Digest,
    c: &ImageConfig,
    layers: &[Descriptor],
) -> Result<(), ImageError> {
    if c.rootfs.diff_ids.len() != layers.len() {
        return Err(ImageError::Manifest {
            digest: config.to_string(),
            cause: format!(
                "{} layers but {} diff ids",
                layers.len(),
                c.rootfs.diff_ids.len()
            ),
        });
    }
    Ok(())
}

/// Runs the layer jobs on a few threads; the first failure is returned
/// (after the others finish, so no thread is left writing).
pub(crate) fn fetch_layers<'a, F>(
    store: &Store,
    layers: &'a [Descriptor],
    diff_ids: &'a [Digest],
    max_size: u64,
    progress: &dyn Progress,
    source: F,
) -> Result<(), ImageError>
where
    F: Fn(&'a Descriptor) -> Source<'a> + Sync,
{
    let next = AtomicUsize::new(0);
    let failure: Mutex<Option<ImageError>> = Mutex::new(None);
    let workers = layers.len().clamp(1, PARALLEL_LAYERS);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= layers.len() || failure.lock().unwrap_or_else(|e| e.into_inner()).is_some()
                {
                    return;
                }
                let job = LayerJob {
                    store,
                    desc: &layers[i],
                    diff_id: &diff_ids[i],
                    max_size,
                    progress,
                };
                if let Err(e) = layer::ensure(&job, source(&layers[i])) {
                    failure
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get_or_insert(e);
                    return;
                }
            });
        }
    });
    match failure.into_inner().unwrap_or_else(|e| e.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
