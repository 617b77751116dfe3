//! Safe extraction of tar and zip archives, for image layers and fetched
//! artifacts alike.
//!
//! Archives are untrusted. No entry may create, change or remove anything
//! outside the destination: paths with `..` or a leading `/` are rejected by
//! name, and everything else is resolved by the kernel beneath a descriptor
//! of the destination (see [`root`]), so symlinks planted by earlier entries
//! cannot be used to escape. The total size written and the number of
//! entries are capped, for decompression bombs. An error names the entry;
//! what was already written stays, and the caller (which chose the
//! destination, usually a fresh temporary directory) removes it.

mod compress;
#[doc(hidden)]
pub mod fuzz;
mod root;
mod tar;
mod zip;

pub use compress::{decompress, Compression};
pub use tar::unpack_tar;
pub use zip::unpack_zip;

use std::io;
use std::path::PathBuf;

/// What an OCI whiteout entry (`.wh.NAME`, `.wh..wh..opq`) means here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whiteouts {
    /// Plain files with odd names (a tarball that is not an image layer).
    Keep,
    /// Converted to overlayfs' form: a 0/0 character device for a deleted
    /// name, `trusted.overlay.opaque=y` on an opaque directory. The layer is
    /// unpacked on its own and used as an overlay lower directory.
    Overlay,
    /// Applied: the named path is deleted; an opaque directory loses what
    /// earlier layers put there. Layers are unpacked one on top of another.
    Apply,
}

/// What to do with character and block device entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Devices {
    /// Skipped and counted (the default: a layer has no business with them).
    Skip,
    /// Rejected: the archive fails.
    Reject,
    /// Created with `mknod` (requires root).
    Create,
}

/// How to extract.
#[derive(Debug, Clone)]
pub struct Options {
    /// At most this many bytes of file content in all.
    pub max_bytes: u64,
    /// At most this many entries.
    pub max_entries: u64,
    pub whiteouts: Whiteouts,
    pub devices: Devices,
    /// Give files the owner recorded in the archive (root only); otherwise
    /// they belong to the caller.
    pub same_owner: bool,
    /// Restore extended attributes recorded in PAX headers, where the
    /// filesystem allows.
    pub xattrs: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_bytes: u64::MAX,
            max_entries: u64::MAX,
            whiteouts: Whiteouts::Keep,
            devices: Devices::Skip,
            same_owner: false,
            xattrs: false,
        }
    }
}

/// What an extraction did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub entries: u64,
    /// Bytes of file content written.
    pub bytes: u64,
    pub skipped_devices: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("open destination {path}: {source}")]
    Destination {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("read archive: {0}")]
    Read(#[source] io::Error),
    #[error("entry {entry:?}: {reason}")]
    Rejected { entry: String, reason: String },
    #[error("entry {entry:?}: {step}: {source}")]
    Write {
        entry: String,
        step: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("entry {entry:?}: archive exceeds its size cap of {cap} bytes")]
    TooLarge { entry: String, cap: u64 },
    #[error("archive has more than {cap} entries")]
    TooManyEntries { cap: u64 },
    #[error("read zip archive: {0}")]
    Zip(#[source] ::zip::result::ZipError),
}

impl ArchiveError {
    fn rejected(entry: &str, reason: impl Into<String>) -> Self {
        ArchiveError::Rejected {
            entry: entry.to_string(),
            reason: reason.into(),
        }
    }

    /// A write failure, where `EXDEV` (the kernel refusing to resolve a
    /// path beneath the destination) becomes a rejection of the entry.
    fn write(entry: &str, step: &'static str, source: io::Error) -> Self {
        match source.raw_os_error() {
            Some(libc::EXDEV) | Some(libc::ELOOP) => {
                Self::rejected(entry, "path leaves the destination through a symlink")
            }
            _ => ArchiveError::Write {
                entry: entry.to_string(),
                step,
                source,
            },
        }
    }
}

/// Counts entries and bytes against the caps.
struct Budget<'a> {
    opts: &'a Options,
    summary: Summary,
    buf: Vec<u8>,
}

impl<'a> Budget<'a> {
    fn new(opts: &'a Options) -> Self {
        Budget {
            opts,
            summary: Summary::default(),
            buf: vec![0u8; 128 * 1024],
        }
    }

    fn entry(&mut self) -> Result<(), ArchiveError> {
        self.summary.entries += 1;
        if self.summary.entries > self.opts.max_entries {
            return Err(ArchiveError::TooManyEntries {
                cap: self.opts.max_entries,
            });
        }
        Ok(())
    }

    fn remaining(&self) -> u64 {
        self.opts.max_bytes.saturating_sub(self.summary.bytes)
    }

    /// Copies at most the remaining budget from `from` to `to`; fails
    /// naming the entry if there is more.
    fn copy(
        &mut self,
        entry: &str,
        declared: u64,
        from: &mut dyn io::Read,
        to: &mut std::fs::File,
    ) -> Result<(), ArchiveError> {
        let too_large = || ArchiveError::TooLarge {
            entry: entry.to_string(),
            cap: self.opts.max_bytes,
        };
        if declared > self.remaining() {
            return Err(too_large());
        }
        let mut limited = io::Read::take(from, self.remaining().saturating_add(1));
        let n = copy_large(&mut limited, to, &mut self.buf).map_err(|e| match e {
            CopyError::Read(e) => ArchiveError::Read(e),
            CopyError::Write(e) => ArchiveError::write(entry, "write", e),
        })?;
        if n > self.remaining() {
            return Err(too_large());
        }
        self.summary.bytes += n;
        Ok(())
    }
}

enum CopyError {
    Read(io::Error),
    Write(io::Error),
}

/// `io::copy` with a buffer sized for layers (std's is 8 KiB), keeping read
/// and write failures apart.
fn copy_large(
    from: &mut dyn io::Read,
    to: &mut std::fs::File,
    buf: &mut [u8],
) -> Result<u64, CopyError> {
    use std::io::Write;
    let mut total = 0u64;
    loop {
        let n = match from.read(buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        to.write_all(&buf[..n]).map_err(CopyError::Write)?;
        total += n as u64;
    }
}
