//! Container images: pull from registries (Docker Registry v2 / OCI
//! distribution), a content store, safe layer unpacking, and root
//! filesystems made of layers for containers. Knows nothing of Mesos.
//!
//! The flow is registry -> [`store`] (blobs by digest) -> unpacked layers ->
//! a [`crate::mount::Mount`] (overlayfs of the layers plus a container's own
//! upper directory) that the runtime mounts. See `store.rs` for the layout.

mod auth;
mod digest;
#[doc(hidden)]
pub mod fuzz;
mod gc;
mod import;
mod layer;
mod manifest;
mod provision;
mod pull;
mod reference;
mod registry;
mod store;

pub use digest::Digest;
pub use gc::{collect, prune, remove, usage, GcSummary};
pub use import::import;
pub use manifest::{ImageConfig, Platform, RunConfig};
pub use provision::{provision, release, Backend, Provisioned};
pub use pull::{pull, PullOptions};
pub use reference::Reference;
pub use store::Store;

use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{0}")]
    Reference(String),
    #[error("{url}: {cause}")]
    Registry { url: String, cause: String },
    #[error("{what}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("manifest {digest}: {cause}")]
    Manifest { digest: String, cause: String },
    #[error("layer {digest}: {cause}")]
    Layer { digest: Digest, cause: String },
    #[error("layer {digest}: {source}")]
    Unpack {
        digest: Digest,
        #[source]
        source: crate::archive::ArchiveError,
    },
    #[error("image {0} is not in the store (pull it first)")]
    NotFound(String),
    #[error("{step} {path}: {source}")]
    Io {
        step: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("import {path}: {cause}")]
    Import { path: PathBuf, cause: String },
}

impl ImageError {
    pub(crate) fn io(step: &'static str, path: &Path, source: io::Error) -> Self {
        ImageError::Io {
            step,
            path: path.to_path_buf(),
            source,
        }
    }

    /// Whether a partial download must go: its bytes are known bad (or made
    /// a hostile layer), so resuming it would be wrong.
    fn discards_download(&self) -> bool {
        matches!(
            self,
            ImageError::DigestMismatch { .. } | ImageError::Unpack { .. }
        )
    }
}

/// An error about the manifest (or config) `d`, for `map_err`.
pub(crate) fn bad_manifest(d: &Digest) -> impl Fn(String) -> ImageError {
    let digest = d.to_string();
    move |cause| ImageError::Manifest {
        digest: digest.clone(),
        cause,
    }
}

/// Told about each layer's progress while pulling (a progress bar, logs).
pub trait Progress: Sync {
    fn layer_start(&self, _digest: &Digest, _size: u64) {}
    fn layer_bytes(&self, _digest: &Digest, _bytes: u64) {}
    fn layer_done(&self, _digest: &Digest, _status: &str) {}
}

/// Progress that nobody watches.
pub struct Quiet;
impl Progress for Quiet {}

/// An image in the store: its reference, manifest digest, config and
/// layers (bottom first, with their diff ids).
#[derive(Debug, Clone)]
pub struct Image {
    pub reference: String,
    /// The digest the registry knows it by (an index's, if it had one).
    pub digest: Digest,
    /// The platform manifest's digest.
    pub manifest: Digest,
    pub config: ImageConfig,
    pub config_digest: Digest,
    /// (blob digest, diff id, compressed size), bottom layer first.
    pub layers: Vec<(Digest, Digest, u64)>,
}

impl Store {
    /// The image a reference names, if it is in the store. A reference
    /// pinned by digest also matches an image pulled by tag.
    pub fn image(&self, reference: &Reference) -> Result<Option<Image>, ImageError> {
        let refs = self.refs()?;
        let key = reference.to_string();
        let found = refs
            .get(&key)
            .map(|r| (key.clone(), r.clone()))
            .or_else(|| {
                let d = reference.digest.as_ref()?;
                refs.iter()
                    .find(|(name, r)| {
                        (&r.digest == d || &r.manifest == d)
                            && Reference::parse(name).is_ok_and(|n| n.name() == reference.name())
                    })
                    .map(|(n, r)| (n.clone(), r.clone()))
            });
        let Some((name, record)) = found else {
            return Ok(None);
        };
        self.load(&name, &record.digest, &record.manifest).map(Some)
    }

    pub(crate) fn load(
        &self,
        name: &str,
        digest: &Digest,
        manifest: &Digest,
    ) -> Result<Image, ImageError> {
        let bad = |cause: String| ImageError::Manifest {
            digest: manifest.to_string(),
            cause,
        };
        let bytes = self.read_blob(manifest)?;
        let m = match manifest::parse(&bytes, None).map_err(bad)? {
            manifest::Parsed::Manifest(m) => m,
            manifest::Parsed::Index(_) => {
                return Err(bad("is an index, expected a manifest".into()))
            }
        };
        let config = ImageConfig::parse(&self.read_blob(&m.config.digest)?).map_err(bad)?;
        let layers = m
            .layers
            .iter()
            .zip(&config.rootfs.diff_ids)
            .map(|(l, d)| (l.digest.clone(), d.clone(), l.size))
            .collect();
        Ok(Image {
            reference: name.to_string(),
            digest: digest.clone(),
            manifest: manifest.clone(),
            config_digest: m.config.digest.clone(),
            config,
            layers,
        })
    }

    /// Every image with a reference, by reference.
    pub fn images(&self) -> Result<Vec<Image>, ImageError> {
        self.refs()?
            .iter()
            .map(|(name, r)| self.load(name, &r.digest, &r.manifest))
            .collect()
    }
}
