//! The `disk` resource enforced as Mesos' `disk/du` isolator does: the
//! sandbox (and the upper directories of the container's overlay root
//! filesystems) measured every `--container_disk_watch_interval`, off the
//! event loop, as `du` counts (allocated blocks, hard links once, symlinks
//! not followed, not crossing into other filesystems); a container over
//! its quota is killed with `REASON_CONTAINER_LIMITATION_DISK` and Mesos'
//! message ("Disk usage (...) exceeds quota (...)").
//!
//! The quota is the sum of the executor's and tasks' `disk` scalars that
//! are the sandbox's (no `DiskInfo.volume`), fixed at launch like the
//! other limits; a `MOUNT` disk is left to its filesystem, as in Mesos.
//! XFS/ext4 project quotas (Mesos' `disk/xfs`) are not used yet.

use super::error::ContainerizerError;
use super::lifecycle::Entry;
use super::MesosContainerizer;
use crate::proto::mesos::resource::disk_info::source::Type as SourceType;
use crate::proto::mesos::Resource;
use std::collections::HashSet;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The sandbox's disk quota in bytes for these resources; `None` when
/// they name no `disk` for it (then nothing is enforced).
pub fn quota<'a>(resources: impl IntoIterator<Item = &'a Resource>) -> Option<u64> {
    let mut mb: Option<f64> = None;
    for r in resources {
        if r.name != "disk" {
            continue;
        }
        let disk = r.disk.as_ref();
        if disk.is_some_and(|d| d.volume.is_some()) {
            continue;
        }
        if disk
            .and_then(|d| d.source.as_ref())
            .is_some_and(|s| s.r#type() == SourceType::Mount)
        {
            continue;
        }
        let Some(v) = r.scalar.as_ref().map(|s| s.value) else {
            continue;
        };
        if v.is_finite() && v >= 0.0 {
            *mb.get_or_insert(0.0) += v;
        }
    }
    // Mesos reads `disk` as whole megabytes.
    mb.map(|m| (m as u64).saturating_mul(1 << 20))
}

/// What `du -sk` reports for these trees, in bytes: allocated blocks of
/// every file and directory, each inode once, symlinks not followed, other
/// filesystems below a root not entered; rounded up to whole KiB as `-k`
/// does. A root that does not exist counts 0. Blocking.
pub fn usage(roots: &[PathBuf]) -> io::Result<u64> {
    let mut seen: HashSet<(u64, u64)> = HashSet::new();
    let mut blocks: u64 = 0;
    for root in roots {
        let meta = match fs::symlink_metadata(root) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let dev = meta.dev();
        blocks += count(&meta, &mut seen);
        if !meta.is_dir() {
            continue;
        }
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                // Removed or made unreadable meanwhile: what is left counts.
                Err(_) => continue,
            };
            for entry in entries.flatten() {
                // `DirEntry::metadata` does not follow symlinks.
                let Ok(m) = entry.metadata() else {
                    continue;
                };
                if m.dev() != dev {
                    continue;
                }
                blocks += count(&m, &mut seen);
                if m.is_dir() {
                    stack.push(entry.path());
                }
            }
        }
    }
    Ok((blocks * 512).div_ceil(1024) * 1024)
}

/// 512-byte blocks of one inode, the first time it is met.
fn count(m: &fs::Metadata, seen: &mut HashSet<(u64, u64)>) -> u64 {
    if m.nlink() > 1 && !m.is_dir() && !seen.insert((m.dev(), m.ino())) {
        return 0;
    }
    m.blocks()
}

/// A launch needs at least this much free space in the work dir (its
/// checkpoints, sandbox, stdout and stderr).
pub const MIN_FREE: u64 = 1 << 20;

/// Refuses a launch when the work dir's filesystem has less than
/// [`MIN_FREE`] left for unprivileged writers, rather than start an
/// executor whose checkpoints and output cannot be written.
pub fn check_free(work_dir: &Path, id: &str) -> Result<(), ContainerizerError> {
    let dir = work_dir
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"));
    let Ok(st) = nix::sys::statvfs::statvfs(dir) else {
        return Ok(());
    };
    let free = st.blocks_available().saturating_mul(st.fragment_size());
    if free < MIN_FREE {
        return Err(ContainerizerError::DiskFull {
            id: id.to_string(),
            path: work_dir.to_path_buf(),
            free,
        });
    }
    Ok(())
}

/// What the watcher measures for one container.
#[derive(Debug, Clone)]
pub struct DiskQuota {
    /// Bytes.
    pub quota: u64,
    pub sandbox: PathBuf,
}

impl MesosContainerizer {
    /// Gives a recovered container (or any known one) the disk quota of
    /// these resources, its sandbox at `sandbox`, for the watcher to
    /// enforce. Unknown containers are ignored.
    pub fn watch_disk<'a>(
        &self,
        container_id: &str,
        sandbox: PathBuf,
        resources: impl IntoIterator<Item = &'a Resource>,
    ) {
        if let Some(entry) = self.inner.entry(container_id) {
            entry.set_disk(quota(resources).map(|quota| DiskQuota { quota, sandbox }));
        }
    }

    /// Measures every running container with a disk quota each
    /// `interval`, one after the other on a blocking thread (as Mesos'
    /// collector runs one `du` at a time), and kills those over their
    /// quota with the disk limitation. Runs until the containerizer is
    /// dropped.
    pub async fn enforce_disk_quotas(self: Arc<Self>, interval: Duration) {
        let weak = Arc::downgrade(&self);
        drop(self);
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let Some(me) = weak.upgrade() else {
                return;
            };
            let work_dir = me.inner.config.work_dir.clone();
            let watched: Vec<(Arc<Entry>, DiskQuota, Vec<PathBuf>)> = me
                .inner
                .table()
                .containers
                .values()
                .filter_map(|e| {
                    let (q, leases) = e.disk_watch()?;
                    let mut roots = vec![q.sandbox.clone()];
                    roots.extend(
                        leases
                            .iter()
                            .map(|l| work_dir.join("provisioner").join(l).join("upper")),
                    );
                    Some((e.clone(), q, roots))
                })
                .collect();
            drop(me);
            if watched.is_empty() {
                continue;
            }
            let measured = tokio::task::spawn_blocking(move || {
                for (entry, q, roots) in watched {
                    match usage(&roots) {
                        Ok(used) if used > q.quota => entry.exceeded_disk(used, q.quota),
                        Ok(_) => {}
                        Err(e) => tracing::warn!(
                            sandbox = %q.sandbox.display(),
                            "measure the disk usage: {e}"
                        ),
                    }
                }
            })
            .await;
            if let Err(e) = measured {
                tracing::warn!("disk quota watcher: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::mesos::{resource, value};

    fn disk(mb: f64, info: Option<resource::DiskInfo>) -> Resource {
        Resource {
            name: "disk".into(),
            r#type: value::Type::Scalar as i32,
            scalar: Some(value::Scalar { value: mb }),
            disk: info,
            ..Resource::default()
        }
    }

    #[test]
    fn quota_is_the_sandbox_disk_in_whole_megabytes() {
        let cpus = Resource {
            name: "cpus".into(),
            scalar: Some(value::Scalar { value: 1.0 }),
            ..Resource::default()
        };
        assert_eq!(quota([&cpus]), None);
        assert_eq!(quota([&disk(10.0, None), &disk(5.5, None)]), Some(15 << 20));
        let volume = resource::DiskInfo {
            volume: Some(Default::default()),
            ..Default::default()
        };
        let mount = resource::DiskInfo {
            source: Some(resource::disk_info::Source {
                r#type: SourceType::Mount as i32,
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            quota([
                &disk(10.0, None),
                &disk(100.0, Some(volume)),
                &disk(7.0, Some(mount))
            ]),
            Some(10 << 20)
        );
    }

    #[test]
    fn a_launch_needs_some_free_space() {
        let dir = tempfile::tempdir().unwrap();
        check_free(dir.path(), "c1").unwrap();
        check_free(&dir.path().join("not/yet/made"), "c1").unwrap();
    }

    #[test]
    fn usage_counts_allocated_blocks_like_du() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("sandbox");
        fs::create_dir_all(root.join("a/b")).unwrap();
        fs::write(root.join("a/b/data"), vec![1u8; 1 << 20]).unwrap();
        // A hard link counts once, a symlink's target not at all, a sparse
        // file by what it holds.
        fs::hard_link(root.join("a/b/data"), root.join("link")).unwrap();
        let outside = dir.path().join("outside");
        fs::write(&outside, vec![1u8; 4 << 20]).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("sym")).unwrap();
        let sparse = fs::File::create(root.join("sparse")).unwrap();
        sparse.set_len(100 << 20).unwrap();
        let used = usage(std::slice::from_ref(&root)).unwrap();
        assert!(
            ((1 << 20)..(1 << 20) + (64 << 10)).contains(&used),
            "{used}"
        );
        assert_eq!(used % 1024, 0);
        // Several roots add up; a missing one is 0.
        let both = usage(&[root.clone(), outside, dir.path().join("missing")]).unwrap();
        assert!(both >= used + (4 << 20), "{both}");
    }
}
