//! The content store under `<work-dir>/store`:
//!
//! ```text
//! store/
//!   blobs/sha256/<hex>          verified blobs: manifests, configs, layers
//!   ingest/sha256-<hex>.partial a blob being downloaded (kept to resume)
//!   ingest/sha256-<hex>.lock    held while a blob or its layer is worked on
//!   layers/sha256-<diff-hex>/   unpacked layers, in overlayfs form
//!   layers/.tmp-sha256-<hex>/   a layer being unpacked (gone on success or failure)
//!   leases/<container>.json     layers in use by a live container
//!   refs.json                   reference -> manifest digests
//! ```
//! Blobs are written to `ingest/`, verified, then renamed into `blobs/`; a
//! layer is unpacked into a temporary directory and renamed when its diff
//! id checks out. Locks are `flock`s, so concurrent pulls in one process or
//! several wait for each other and download a blob once.

use super::digest::Digest;
use super::ImageError;
use crate::support::atomic_write;
use rustix::fs::{flock, FlockOperation};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

pub struct Store {
    root: PathBuf,
}

/// A held lock; released on drop (or when the process dies).
pub struct Lock {
    _file: File,
}

/// What a reference points at.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RefRecord {
    /// The digest the registry calls the image by (an index's, if any).
    pub digest: Digest,
    /// The platform manifest that is run.
    pub manifest: Digest,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct RefsFile {
    version: u32,
    refs: BTreeMap<String, RefRecord>,
}

/// Layers a container uses, so that garbage collection leaves them.
#[derive(Debug, Serialize, Deserialize)]
pub struct Lease {
    /// The container's directory; a lease whose directory is gone is stale.
    pub container_dir: PathBuf,
    pub layers: Vec<Digest>,
}

impl Store {
    pub fn open(work_dir: &Path) -> Result<Store, ImageError> {
        let root = work_dir.join("store");
        for sub in ["blobs/sha256", "ingest", "layers", "leases"] {
            let p = root.join(sub);
            fs::create_dir_all(&p).map_err(|e| ImageError::io("create store directory", &p, e))?;
        }
        Ok(Store { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(d.hex())
    }

    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    pub fn read_blob(&self, d: &Digest) -> Result<Vec<u8>, ImageError> {
        let p = self.blob_path(d);
        fs::read(&p).map_err(|e| ImageError::io("read blob", &p, e))
    }

    /// Stores a small blob after checking its digest.
    pub fn put_blob(&self, d: &Digest, bytes: &[u8]) -> Result<(), ImageError> {
        let actual = Digest::of(bytes);
        if &actual != d {
            return Err(ImageError::DigestMismatch {
                what: "blob".into(),
                expected: d.clone(),
                actual,
            });
        }
        let p = self.blob_path(d);
        if p.is_file() {
            return Ok(());
        }
        atomic_write(&p, bytes).map_err(|e| ImageError::io("write blob", &p, e))
    }

    pub fn partial_path(&self, d: &Digest) -> PathBuf {
        self.root
            .join("ingest")
            .join(format!("{}.partial", d.file_name()))
    }

    /// Waits for and takes the lock on work about blob `d`.
    pub fn lock(&self, d: &Digest) -> Result<Lock, ImageError> {
        self.lock_file(
            &self
                .root
                .join("ingest")
                .join(format!("{}.lock", d.file_name())),
        )
    }

    fn lock_file(&self, path: &Path) -> Result<Lock, ImageError> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| ImageError::io("open lock", path, e))?;
        flock(&file, FlockOperation::LockExclusive)
            .map_err(|e| ImageError::io("lock", path, e.into()))?;
        Ok(Lock { _file: file })
    }

    /// The store-wide lock: held to change references and to collect garbage.
    pub fn lock_all(&self) -> Result<Lock, ImageError> {
        self.lock_file(&self.root.join("store.lock"))
    }

    pub fn layer_path(&self, diff_id: &Digest) -> PathBuf {
        self.root.join("layers").join(diff_id.file_name())
    }

    pub fn layer_tmp(&self, diff_id: &Digest) -> PathBuf {
        self.root
            .join("layers")
            .join(format!(".tmp-{}", diff_id.file_name()))
    }

    pub fn refs(&self) -> Result<BTreeMap<String, RefRecord>, ImageError> {
        let p = self.root.join("refs.json");
        match fs::read(&p) {
            Ok(bytes) => {
                let f: RefsFile = serde_json::from_slice(&bytes)
                    .map_err(|e| ImageError::io("parse", &p, io::Error::other(e)))?;
                Ok(f.refs)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(ImageError::io("read", &p, e)),
        }
    }

    /// Changes the references under the store lock (read, edit, atomic write).
    pub fn update_refs<T>(
        &self,
        edit: impl FnOnce(&mut BTreeMap<String, RefRecord>) -> T,
    ) -> Result<T, ImageError> {
        let _lock = self.lock_all()?;
        let mut refs = self.refs()?;
        let out = edit(&mut refs);
        let p = self.root.join("refs.json");
        let bytes =
            serde_json::to_vec_pretty(&RefsFile { version: 1, refs }).expect("refs serialize");
        atomic_write(&p, &bytes).map_err(|e| ImageError::io("write", &p, e))?;
        Ok(out)
    }

    pub fn lease_path(&self, container: &str) -> PathBuf {
        self.root.join("leases").join(format!("{container}.json"))
    }

    pub fn leases(&self) -> Result<Vec<(PathBuf, Lease)>, ImageError> {
        let dir = self.root.join("leases");
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(|e| ImageError::io("list", &dir, e))? {
            let p = entry.map_err(|e| ImageError::io("list", &dir, e))?.path();
            if p.extension().is_some_and(|e| e == "json") {
                if let Ok(lease) = fs::read(&p)
                    .map_err(drop)
                    .and_then(|b| serde_json::from_slice(&b).map_err(drop))
                {
                    out.push((p, lease));
                }
            }
        }
        Ok(out)
    }
}
