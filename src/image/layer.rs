//! Getting one layer into the store: download (or resume) the blob, and
//! unpack it while the bytes stream past, verifying both digests before
//! anything is renamed into place.
//!
//! ```text
//! registry -> Tee (sha256 of the blob, append to ingest/<d>.partial)
//!          -> decompress (gzip, zstd, none: sniffed)
//!          -> HashingReader (sha256 = diff id) -> archive::unpack_tar(.tmp dir)
//! ```
//! One pass over the bytes. A download cut short keeps its `.partial` and
//! the next pull asks for the rest with a `Range`, then unpacks from the
//! finished blob. A verification failure deletes the partial blob and the
//! temporary directory: nothing unverified stays.

use super::digest::{Digest, Hasher, HashingReader};
use super::manifest::Descriptor;
use super::registry::Client;
use super::store::Store;
use super::{ImageError, Progress};
use crate::archive::{self, Compression, Devices, Options, Whiteouts};
use crate::support::chunks::{chunk_channel, send_chunks, Chunk};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::Path;
use std::sync::mpsc::SyncSender;

/// Where a layer's bytes come from.
pub enum Source<'a> {
    Registry(&'a Client),
    /// A file holding the blob (an imported OCI layout or `docker save`).
    File(&'a Path),
}

pub struct LayerJob<'a> {
    pub store: &'a Store,
    pub desc: &'a Descriptor,
    pub diff_id: &'a Digest,
    pub max_size: u64,
    pub progress: &'a dyn Progress,
}

/// Makes sure the layer is in the store, unpacked and verified.
pub fn ensure(job: &LayerJob<'_>, source: Source<'_>) -> Result<(), ImageError> {
    let (store, desc) = (job.store, job.desc);
    let dir = store.layer_path(job.diff_id);
    let ready = || dir.is_dir() && store.has_blob(&desc.digest);
    if ready() {
        job.progress.layer_done(&desc.digest, "already exists");
        return Ok(());
    }
    let _lock = store.lock(&desc.digest)?;
    if ready() {
        job.progress.layer_done(&desc.digest, "already exists");
        return Ok(());
    }
    let tmp = store.layer_tmp(job.diff_id);
    remove_dir(&tmp)?;
    fs::create_dir(&tmp).map_err(|e| ImageError::io("create layer directory", &tmp, e))?;
    let partial = store.partial_path(&desc.digest);
    let result = fill(job, source, &tmp, &partial);
    if let Err(e) = result {
        let _ = remove_dir(&tmp);
        if e.discards_download() {
            let _ = fs::remove_file(&partial);
        }
        return Err(e);
    }
    if dir.exists() {
        // Unpacked by an older run whose blob went missing: keep the old one.
        remove_dir(&tmp)?;
    } else {
        fs::rename(&tmp, &dir).map_err(|e| ImageError::io("rename layer", &dir, e))?;
    }
    job.progress.layer_done(&desc.digest, "done");
    Ok(())
}

fn fill(
    job: &LayerJob<'_>,
    source: Source<'_>,
    tmp: &Path,
    partial: &Path,
) -> Result<(), ImageError> {
    let (store, desc) = (job.store, job.desc);
    let blob = store.blob_path(&desc.digest);
    if let Source::File(path) = source {
        let file = File::open(path).map_err(|e| ImageError::io("open blob", path, e))?;
        let mut hashing = HashingReader::new(file);
        let unpacked = unpack(job, &mut hashing, tmp);
        drain_and_verify(desc, &mut hashing, unpacked)?;
        if !store.has_blob(&desc.digest) {
            copy_file(path, partial)?;
            fs::rename(partial, &blob).map_err(|e| ImageError::io("store blob", &blob, e))?;
        }
        return Ok(());
    }
    let Source::Registry(client) = source else {
        unreachable!()
    };
    if !store.has_blob(&desc.digest) {
        let have = fs::metadata(partial).map(|m| m.len()).unwrap_or(0);
        let resumed = if have > 0 && have <= desc.size {
            match resume(job, client, partial, have) {
                Ok(()) => true,
                Err(e) if e.discards_download() => {
                    tracing::warn!(error = %e, "resumed download is corrupt; downloading again");
                    let _ = fs::remove_file(partial);
                    false
                }
                Err(e) => return Err(e),
            }
        } else {
            false
        };
        if !resumed {
            // Fresh: download, hash and unpack in one pass.
            let out = open_partial(partial, false)?;
            let body = client.blob(&desc.digest, 0)?;
            let mut tee = Tee::new(body.reader, out, Hasher::default(), desc, job.progress);
            let unpacked = unpack(job, &mut tee, tmp);
            if unpacked.is_err() {
                // Bad bytes or a broken connection? Read the rest and see.
                if tee.drain().is_ok() {
                    verify(desc, std::mem::take(&mut tee.hasher))?;
                }
                return unpacked;
            }
            tee.drain()?;
            verify(desc, tee.hasher)?;
            fs::rename(partial, &blob).map_err(|e| ImageError::io("store blob", &blob, e))?;
            return Ok(());
        }
        fs::rename(partial, &blob).map_err(|e| ImageError::io("store blob", &blob, e))?;
    }
    // The blob is complete (now or from before): unpack from the file.
    let file = File::open(&blob).map_err(|e| ImageError::io("open blob", &blob, e))?;
    let mut hashing = HashingReader::new(file);
    let unpacked = unpack(job, &mut hashing, tmp);
    drain_and_verify(desc, &mut hashing, unpacked)
}

/// After unpacking a blob read from a file: a digest mismatch is the
/// error to report, whether or not unpacking failed (a corrupt blob
/// usually breaks decompression before its digest can be checked).
fn drain_and_verify(
    desc: &Descriptor,
    hashing: &mut HashingReader<File>,
    unpacked: Result<(), ImageError>,
) -> Result<(), ImageError> {
    if io::copy(hashing, &mut io::sink()).is_ok() {
        verify(desc, std::mem::take(&mut hashing.hasher))?;
    }
    unpacked
}

/// Finishes an interrupted download: hash what is there, fetch the rest.
fn resume(
    job: &LayerJob<'_>,
    client: &Client,
    partial: &Path,
    have: u64,
) -> Result<(), ImageError> {
    let desc = job.desc;
    let mut hasher = Hasher::default();
    let mut existing = File::open(partial).map_err(|e| ImageError::io("open", partial, e))?;
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = existing
            .read(&mut buf)
            .map_err(|e| ImageError::io("read", partial, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let body = client.blob(&desc.digest, have)?;
    let (out, hasher) = if body.resumed {
        tracing::info!(digest = %desc.digest, offset = have, "resuming download");
        (open_partial(partial, true)?, hasher)
    } else {
        tracing::info!(digest = %desc.digest, "registry ignored the range; downloading again");
        (open_partial(partial, false)?, Hasher::default())
    };
    job.progress.layer_bytes(&desc.digest, hasher.len);
    let mut tee = Tee::new(body.reader, out, hasher, desc, job.progress);
    tee.drain()?;
    verify(desc, tee.hasher)
}

fn unpack(
    job: &LayerJob<'_>,
    reader: &mut (dyn Read + Send),
    tmp: &Path,
) -> Result<(), ImageError> {
    let desc = job.desc;
    if desc.media_type.contains("encrypted") {
        return Err(ImageError::Layer {
            digest: desc.digest.clone(),
            cause: "encrypted layers are not supported".into(),
        });
    }
    let opts = Options {
        max_bytes: job.max_size,
        max_entries: 1 << 22,
        whiteouts: Whiteouts::Overlay,
        devices: Devices::Skip,
        same_owner: true,
        xattrs: true,
    };
    // Two stages on two threads: this one hashes and writes files while a
    // helper reads (tee, hash) and decompresses the next chunks.
    let (tx, chunks) = chunk_channel(16);
    let (unpacked, diff_hasher) = std::thread::scope(|s| {
        s.spawn(move || {
            if let Err(e) = decompress_into(reader, &tx) {
                let _ = tx.send(Err(e));
            }
        });
        let mut diff = HashingReader::new(chunks);
        let unpacked = archive::unpack_tar(&mut diff, tmp, &opts);
        // Dropping the receiver stops the helper early on failure.
        let (_, hasher) = diff.into_parts();
        (unpacked, hasher)
    });
    let summary = unpacked.map_err(|e| match e {
        archive::ArchiveError::Read(io) => read_error(desc, io),
        other => ImageError::Unpack {
            digest: desc.digest.clone(),
            source: other,
        },
    })?;
    if summary.skipped_devices > 0 {
        tracing::warn!(layer = %desc.digest, count = summary.skipped_devices, "device nodes in the layer were skipped");
    }
    let actual = diff_hasher.finish();
    if &actual != job.diff_id {
        return Err(ImageError::DigestMismatch {
            what: format!("layer {} (uncompressed)", desc.digest),
            expected: job.diff_id.clone(),
            actual,
        });
    }
    Ok(())
}

/// Sniffs the compression, decompresses and sends the output in chunks;
/// then reads the compressed stream to its end so that a hashing reader
/// underneath sees every byte.
fn decompress_into(reader: &mut (dyn Read + Send), tx: &SyncSender<Chunk>) -> io::Result<()> {
    let mut buffered = BufReader::with_capacity(256 << 10, reader);
    let compression = Compression::sniff(&mut buffered)?;
    let mut decoder = archive::decompress(&mut buffered, compression)?;
    send_chunks(&mut decoder, tx, 256 << 10)?;
    drop(decoder);
    io::copy(&mut buffered, &mut io::sink())?;
    Ok(())
}

/// A read failure in a layer stream: a hash reader's complaint about the
/// blob's size, a broken connection or bad compressed data.
fn read_error(desc: &Descriptor, e: io::Error) -> ImageError {
    if let Some(inner) = e.get_ref().and_then(|i| i.downcast_ref::<SizeError>()) {
        return ImageError::DigestMismatch {
            what: format!("blob {} (larger than its {} bytes)", desc.digest, inner.0),
            expected: desc.digest.clone(),
            actual: desc.digest.clone(),
        };
    }
    ImageError::Layer {
        digest: desc.digest.clone(),
        cause: e.to_string(),
    }
}

fn verify(desc: &Descriptor, hasher: Hasher) -> Result<(), ImageError> {
    let len = hasher.len;
    let actual = hasher.finish();
    if actual != desc.digest || len != desc.size {
        let what = if len == desc.size {
            "blob".to_string()
        } else {
            format!("blob ({len} bytes, manifest says {})", desc.size)
        };
        return Err(ImageError::DigestMismatch {
            what,
            expected: desc.digest.clone(),
            actual,
        });
    }
    Ok(())
}

#[derive(Debug)]
struct SizeError(u64);
impl std::fmt::Display for SizeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "blob is larger than the {} bytes its descriptor gives",
            self.0
        )
    }
}
impl std::error::Error for SizeError {}

/// Copies the network stream into the partial file and the hasher as it is
/// read, refusing more bytes than the descriptor promised.
struct Tee<'a> {
    inner: Box<dyn Read + Send>,
    out: File,
    hasher: Hasher,
    desc: &'a Descriptor,
    progress: &'a dyn Progress,
}

impl<'a> Tee<'a> {
    fn new(
        inner: Box<dyn Read + Send>,
        out: File,
        hasher: Hasher,
        desc: &'a Descriptor,
        progress: &'a dyn Progress,
    ) -> Self {
        Tee {
            inner,
            out,
            hasher,
            desc,
            progress,
        }
    }

    fn drain(&mut self) -> Result<(), ImageError> {
        io::copy(self, &mut io::sink())
            .map(drop)
            .map_err(|e| read_error(self.desc, e))
    }
}

impl Read for Tee<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 {
            return Ok(0);
        }
        if self.hasher.len + n as u64 > self.desc.size {
            return Err(io::Error::other(SizeError(self.desc.size)));
        }
        self.out.write_all(&buf[..n])?;
        self.hasher.update(&buf[..n]);
        self.progress.layer_bytes(&self.desc.digest, n as u64);
        Ok(n)
    }
}

fn open_partial(path: &Path, append: bool) -> Result<File, ImageError> {
    let mut o = OpenOptions::new();
    o.create(true).write(true);
    if append {
        o.append(true);
    } else {
        o.truncate(true);
    }
    o.open(path).map_err(|e| ImageError::io("open", path, e))
}

fn copy_file(from: &Path, to: &Path) -> Result<(), ImageError> {
    fs::copy(from, to)
        .map(drop)
        .map_err(|e| ImageError::io("copy blob", to, e))
}

/// Removes a directory tree if it is there.
pub fn remove_dir(path: &Path) -> Result<(), ImageError> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ImageError::io("remove", path, e)),
    }
}
