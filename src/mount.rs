//! The `Mount` value: one mount to make inside a sandbox, as plain data.
//!
//! The image side produces these (an overlay of layers), the containerizer
//! adds volumes (the sandbox directory), and the runtime performs them.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// One mount, described the way `mount(2)` takes it, with the target given
/// relative to the sandbox's root filesystem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// What to mount: a host path for a bind mount, or a device/name
    /// (`overlay`, `tmpfs`) for a filesystem.
    pub source: PathBuf,
    /// Where, inside the sandbox (absolute, resolved under its root).
    pub target: PathBuf,
    /// Filesystem type; `None` means a bind mount of `source`.
    pub fstype: Option<String>,
    /// Mount options in `mount(8)` form: `ro`, `nosuid`, `nodev`, `noexec`,
    /// `rbind` and, for filesystems, their own `key=value` data.
    pub options: Vec<String>,
}

impl Mount {
    /// A recursive bind mount of a host path.
    pub fn bind(source: impl Into<PathBuf>, target: impl Into<PathBuf>, readonly: bool) -> Self {
        let mut options = vec!["rbind".to_string()];
        if readonly {
            options.push("ro".to_string());
        }
        Mount {
            source: source.into(),
            target: target.into(),
            fstype: None,
            options,
        }
    }

    /// True when this is a bind mount (no filesystem type).
    pub fn is_bind(&self) -> bool {
        self.fstype.is_none()
    }

    /// True when the mount is to be read-only.
    pub fn is_readonly(&self) -> bool {
        self.options.iter().any(|o| o == "ro")
    }
}
