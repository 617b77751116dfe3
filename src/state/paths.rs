//! The layout of butte's directories. Tools and UIs read these paths, so
//! the sandbox part follows the Mesos agent's layout.
//!
//! ```text
//! <work_dir>/                       --work-dir, default /var/lib/butte
//! |-- containers/<id>/              a standalone container (`butte run`)
//! |   |-- stdout                    the task's output, as it was streamed
//! |   `-- stderr
//! |-- meta/                         checkpoints (agent issue)
//! |-- slaves/<agent>/frameworks/<fw>/executors/<ex>/runs/<container>/
//! |                                 Mesos sandboxes (agent issue), runs/latest
//! |-- store/                        images: blobs, layers, refs (image issue)
//! `-- fetch-cache/                  the fetcher cache (fetcher issue)
//! <runtime_dir>/                    --runtime-dir, default /run/butte
//! ```

use std::path::{Path, PathBuf};

/// The default work directory.
pub const DEFAULT_WORK_DIR: &str = "/var/lib/butte";

/// Where a sandbox's root is mounted inside its container, as in Mesos.
pub const SANDBOX_MOUNT: &str = "/mnt/mesos/sandbox";

/// Paths under one work directory.
#[derive(Debug, Clone)]
pub struct WorkDir {
    root: PathBuf,
}

impl WorkDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        WorkDir { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of all standalone containers.
    pub fn containers(&self) -> PathBuf {
        self.root.join("containers")
    }

    /// The sandbox of standalone container `id`.
    pub fn container_sandbox(&self, id: &str) -> PathBuf {
        self.containers().join(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let w = WorkDir::new("/w");
        assert_eq!(w.container_sandbox("abc"), Path::new("/w/containers/abc"));
    }
}
