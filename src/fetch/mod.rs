//! The fetcher: URIs -> files in a sandbox, before a task starts, with the
//! semantics of the Mesos fetcher (`CommandInfo.URI`). It knows nothing of
//! Mesos' protobufs: it takes [`UriSpec`]s and a sandbox directory.
//!
//! For each URI, in order (the first failure stops the rest):
//!
//! ```text
//!  source (http(s) GET / local file) --> [size cap] --+--> file        (kept in the sandbox
//!                                                      |                 unless cached)
//!                                                      +--> decompress --> unpack (archive::)
//!                                                           \___ one thread ___/   \_ caller _/
//! ```
//!
//! Everything is written into a staging directory first (inside the sandbox,
//! or inside the cache for cached URIs), then moved or hard-linked into
//! place beneath the sandbox without following any symlink in it (see
//! `place`). A failure removes the staging directory: the sandbox gets a
//! URI's files whole or not at all. Transient failures (connection refused
//! or reset, a stall, 408/429/5xx) are retried from the start with backoff.
//!
//! Without `cache`, the file is kept in the sandbox under its name and, when
//! it is an archive to extract, also unpacked there, as Mesos does. With
//! `cache`, the cache holds the file, or for an archive its unpacked tree,
//! and the sandbox gets hard links to it (only the unpacked files, as in
//! Mesos); see `cache` for the layout, locking and eviction. Hard-linked
//! files are read-only and owned by root; an `executable` file is copied,
//! since its mode is the sandbox's own.

mod cache;
mod download;
mod error;
mod extract;
#[doc(hidden)]
pub mod fuzz;
mod place;
/// Removes a staging directory once its files are placed (or failed); a
/// failure to remove is only logged, the fetch's own result stands.
fn discard_staging(staging: &Path) {
    if let Err(e) = remove_tree(staging) {
        tracing::warn!(path = %staging.display(), error = %e, "cannot remove staging directory");
    }
}

#[cfg(test)]
mod testserver;
mod uri;
mod user;

pub use error::FetchError;
pub use uri::UriSpec;
pub use user::{FetchUser, UserIds};

use crate::archive::{Devices, Options, Whiteouts};
use crate::support::http::{client, Backoff, HttpConfig};
use crate::support::{format_size, random_uuid};
use cache::{Cache, Meta};
use download::{Failure, Limits};
use place::{chown_tree, remove_tree, How, Placer};
use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use uri::{Format, Plan};

/// Default limit of the fetcher cache (`--fetcher-cache-size`).
pub const DEFAULT_CACHE_SIZE: u64 = 2 << 30;
/// Default cap on one artifact, downloaded and unpacked (`--fetcher-max-size`).
pub const DEFAULT_MAX_SIZE: u64 = 10 << 30;
/// Default stall timeout (`--fetcher-stall-timeout`), as in Mesos.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(60);

/// How the fetcher behaves.
#[derive(Debug, Clone)]
pub struct FetchConfig {
    /// Timeouts (`read_timeout` is the stall timeout) and redirects.
    pub http: HttpConfig,
    /// Attempts after the first for transient failures.
    pub retries: u32,
    /// The first delay between attempts; it doubles, up to 8 times this.
    pub retry_delay: Duration,
    /// Most bytes of one artifact, and of what it unpacks to.
    pub max_size: u64,
    /// Most entries in one archive.
    pub max_entries: u64,
    /// The cache directory (`<work_dir>/fetch-cache`).
    pub cache_dir: PathBuf,
    /// The cache's limit in bytes; 0 disables it (cached URIs are fetched
    /// directly).
    pub cache_size: u64,
}

impl FetchConfig {
    /// The defaults for a work directory.
    pub fn new(work_dir: &Path) -> FetchConfig {
        FetchConfig {
            http: HttpConfig {
                read_timeout: DEFAULT_STALL_TIMEOUT,
                ..HttpConfig::default()
            },
            retries: 3,
            retry_delay: Duration::from_millis(250),
            max_size: DEFAULT_MAX_SIZE,
            max_entries: 1_000_000,
            cache_dir: work_dir.join("fetch-cache"),
            cache_size: DEFAULT_CACHE_SIZE,
        }
    }
}

/// What one URI became.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub uri: String,
    /// The file in the sandbox, or the sandbox itself when only the
    /// unpacked contents were placed (a cached archive).
    pub path: PathBuf,
    /// Bytes downloaded (0 on a cache hit).
    pub downloaded: u64,
    pub from_cache: bool,
}

/// Fetches URIs into sandboxes. One per agent; cheap to share.
pub struct Fetcher {
    config: FetchConfig,
    client: ureq::Agent,
    cache: Option<Cache>,
}

/// What a download left in its staging directory.
struct Produced {
    /// Bytes read from the source.
    downloaded: u64,
    /// Bytes of content on disk (the file, or the unpacked tree).
    size: u64,
}

impl Fetcher {
    pub fn new(config: FetchConfig) -> Fetcher {
        let cache = (config.cache_size > 0)
            .then(|| Cache::new(config.cache_dir.clone(), config.cache_size));
        Fetcher {
            client: client(&config.http),
            cache,
            config,
        }
    }

    /// Fetches `uris` into `sandbox` (an existing directory), in order, for
    /// `user`. Every URI is checked before anything is downloaded.
    pub fn fetch(
        &self,
        uris: &[UriSpec],
        sandbox: &Path,
        user: &FetchUser,
    ) -> Result<Vec<Fetched>, FetchError> {
        let plans = uris.iter().map(Plan::new).collect::<Result<Vec<_>, _>>()?;
        plans
            .iter()
            .map(|plan| self.fetch_one(plan, sandbox, user))
            .collect()
    }

    fn fetch_one(
        &self,
        plan: &Plan,
        sandbox: &Path,
        user: &FetchUser,
    ) -> Result<Fetched, FetchError> {
        let started = Instant::now();
        tracing::info!(uri = %plan.uri, sandbox = %sandbox.display(), cache = plan.cache, "fetching");
        let fetched = match (&self.cache, plan.cache) {
            (Some(cache), true) => self.through_cache(cache, plan, sandbox, user)?,
            _ => self.direct(plan, sandbox, user)?,
        };
        let secs = started.elapsed().as_secs_f64();
        tracing::info!(
            uri = %plan.uri,
            to = %fetched.path.display(),
            downloaded = %format_size(fetched.downloaded),
            from_cache = fetched.from_cache,
            secs = %format!("{secs:.3}"),
            rate = %format!("{}/s", format_size((fetched.downloaded as f64 / secs.max(1e-9)) as u64)),
            "fetched"
        );
        Ok(fetched)
    }

    fn limits(&self) -> Limits {
        Limits {
            cap: self.config.max_size,
            stall: self.config.http.read_timeout,
        }
    }

    fn archive_options(&self) -> Options {
        Options {
            max_bytes: self.config.max_size,
            max_entries: self.config.max_entries,
            whiteouts: Whiteouts::Keep,
            devices: Devices::Skip,
            same_owner: false,
            xattrs: false,
        }
    }

    /// Downloads into the sandbox: the file under its name, plus the
    /// unpacked archive if it is one.
    fn direct(&self, plan: &Plan, sandbox: &Path, user: &FetchUser) -> Result<Fetched, FetchError> {
        let staging = sandbox.join(format!(".butte-fetch-{}", self.id(&plan.uri)?));
        let io = |step| FetchError::io(&plan.uri, step, &staging);
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&staging)
            .map_err(io("create staging directory"))?;
        let (file, tree) = (staging.join("file"), staging.join("tree"));
        let result = (|| {
            let produced = self.produce(plan, &file, &tree, true, user)?;
            if plan.executable {
                fs::set_permissions(&file, fs::Permissions::from_mode(0o755))
                    .map_err(FetchError::io(&plan.uri, "make executable", &file))?;
            }
            if let Some((uid, gid)) = user.owner() {
                chown_tree(&staging, uid, gid).map_err(io("chown"))?;
            }
            let placer = Placer::open(sandbox, user.owner()).map_err(FetchError::io(
                &plan.uri,
                "open sandbox",
                sandbox,
            ))?;
            let dest = sandbox.join(&plan.output);
            placer
                .file(&file, &plan.output, How::Move, None)
                .map_err(FetchError::io(&plan.uri, "place", &dest))?;
            if plan.format.is_some() {
                placer.tree(&tree, How::Move).map_err(FetchError::io(
                    &plan.uri,
                    "place unpacked files in",
                    sandbox,
                ))?;
            }
            Ok(fetched(plan, dest, produced.downloaded, false))
        })();
        discard_staging(&staging);
        result
    }

    /// Places the entry from the cache, downloading it first if it is not
    /// there. Concurrent fetches of one entry download it once: the first
    /// holds the entry's lock exclusively while the others wait.
    fn through_cache(
        &self,
        cache: &Cache,
        plan: &Plan,
        sandbox: &Path,
        user: &FetchUser,
    ) -> Result<Fetched, FetchError> {
        let form = match plan.format {
            None => "file".to_string(),
            Some(_) => format!(
                "tree:{}",
                plan.output
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
            ),
        };
        let key = Cache::key(user.name.as_deref(), &plan.uri, &form);
        let hit = |data: &Path| {
            tracing::info!(uri = %plan.uri, "fetcher cache hit");
            let how = if plan.executable {
                How::Copy
            } else {
                How::Link
            };
            let path = self.place(plan, data, sandbox, user, how)?;
            Ok(fetched(plan, path, 0, true))
        };
        {
            let _shared = cache.lock(&key, false)?;
            if let Some(data) = cache.lookup(&key) {
                return hit(&data);
            }
        }
        let _exclusive = cache.lock(&key, true)?;
        if let Some(data) = cache.lookup(&key) {
            return hit(&data);
        }
        let staging = cache.staging()?;
        let data = staging.join("data");
        let result = (|| {
            let produced = match plan.format {
                None => self.produce(plan, &data, &staging.join("unused"), false, user)?,
                Some(_) => self.produce(plan, &staging.join("download"), &data, false, user)?,
            };
            let meta = Meta::new(&plan.uri, user.name.as_deref(), &form, produced.size);
            let path = match cache.commit(&key, &staging, &meta)? {
                Some(entry) => {
                    let how = if plan.executable {
                        How::Copy
                    } else {
                        How::Link
                    };
                    self.place(plan, &entry, sandbox, user, how)?
                }
                None => {
                    tracing::warn!(
                        uri = %plan.uri,
                        size = %format_size(produced.size),
                        limit = %format_size(self.config.cache_size),
                        "artifact does not fit in the fetcher cache: placed without caching"
                    );
                    if let Some((uid, gid)) = user.owner() {
                        chown_tree(&data, uid, gid)
                            .map_err(FetchError::io(&plan.uri, "chown", &data))?;
                    }
                    self.place(plan, &data, sandbox, user, How::Move)?
                }
            };
            Ok(fetched(plan, path, produced.downloaded, false))
        })();
        discard_staging(&staging);
        result
    }

    /// Puts a file or an unpacked tree (by the plan's form) into the
    /// sandbox; returns the file's path, or the sandbox's for a tree.
    fn place(
        &self,
        plan: &Plan,
        data: &Path,
        sandbox: &Path,
        user: &FetchUser,
        how: How,
    ) -> Result<PathBuf, FetchError> {
        let placer = Placer::open(sandbox, user.owner()).map_err(FetchError::io(
            &plan.uri,
            "open sandbox",
            sandbox,
        ))?;
        if plan.format.is_some() {
            placer.tree(data, how).map_err(FetchError::io(
                &plan.uri,
                "place unpacked files in",
                sandbox,
            ))?;
            return Ok(sandbox.to_path_buf());
        }
        let dest = sandbox.join(&plan.output);
        let mode = plan.executable.then_some(0o755);
        placer
            .file(data, &plan.output, how, mode)
            .map_err(FetchError::io(&plan.uri, "place", &dest))?;
        Ok(dest)
    }

    /// Downloads to `file` and, for an archive, unpacks into `tree`, trying
    /// again on transient failures. `keep_file`: the archive file is wanted
    /// as well as its contents.
    fn produce(
        &self,
        plan: &Plan,
        file: &Path,
        tree: &Path,
        keep_file: bool,
        user: &FetchUser,
    ) -> Result<Produced, FetchError> {
        let first = self.config.retry_delay;
        let mut delays = Backoff::new(first, first * 8, self.config.retries);
        loop {
            for p in [file, tree] {
                remove_tree(p).map_err(FetchError::io(&plan.uri, "clear", p))?;
            }
            match self.attempt(plan, file, tree, keep_file, user) {
                Err(e) if e.is_transient() => match delays.next() {
                    Some(d) => {
                        tracing::warn!(uri = %plan.uri, error = %e, retry_in = ?d, "fetch failed; retrying");
                        std::thread::sleep(d);
                    }
                    None => return Err(e),
                },
                other => return other,
            }
        }
    }

    fn attempt(
        &self,
        plan: &Plan,
        file: &Path,
        tree: &Path,
        keep_file: bool,
        user: &FetchUser,
    ) -> Result<Produced, FetchError> {
        let uri = plan.uri.as_str();
        let failure = Failure::default();
        let mut body = download::open(&self.client, plan, self.limits(), user, failure.clone())?;
        let Some(format) = plan.format else {
            let n = download::save(body, file)?;
            return Ok(Produced {
                downloaded: n,
                size: n,
            });
        };
        fs::create_dir(tree).map_err(FetchError::io(uri, "create", tree))?;
        let opts = self.archive_options();
        let size = match format {
            Format::Zip => {
                let n = extract::zip(body, file, tree, &opts, uri)?;
                if !keep_file {
                    fs::remove_file(file).map_err(FetchError::io(uri, "remove", file))?;
                }
                n
            }
            Format::Tar | Format::Gzip => {
                if keep_file {
                    let f = fs::File::create(file).map_err(FetchError::io(uri, "create", file))?;
                    body.tee(f, file);
                }
                if format == Format::Tar {
                    extract::tar_stream(body, tree, &opts, uri)?
                } else {
                    let name = plan.gunzipped_name();
                    extract::gunzip_stream(body, tree, &name, opts.max_bytes, uri)?
                }
            }
        };
        Ok(Produced {
            downloaded: failure.bytes(),
            size,
        })
    }

    fn id(&self, uri: &str) -> Result<String, FetchError> {
        random_uuid().map_err(FetchError::io(uri, "generate", "/dev/urandom"))
    }
}

fn fetched(plan: &Plan, path: PathBuf, downloaded: u64, from_cache: bool) -> Fetched {
    Fetched {
        uri: plan.uri.clone(),
        path,
        downloaded,
        from_cache,
    }
}

#[cfg(test)]
mod tests;
