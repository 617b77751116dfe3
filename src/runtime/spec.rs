//! `SandboxSpec`: everything the runtime needs to start one sandboxed
//! process, as plain data. Built by the layers above, checked by
//! [`SandboxSpec::validate`], sent to the launch helper as JSON.

use crate::mount::Mount;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::str::FromStr;

/// The smallest memory limit accepted: below this the launch helper itself
/// could not start inside the cgroup.
pub const MIN_MEMORY: u64 = 4 << 20;

/// One process to run in a sandbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SandboxSpec {
    /// Unique id; names the cgroup and the default hostname.
    pub id: String,
    /// The command: `argv[0]` is looked up in the sandbox's `PATH` when it
    /// holds no `/`.
    pub argv: Vec<String>,
    /// The complete environment of the process (nothing is inherited).
    pub env: Vec<(String, String)>,
    /// Working directory inside the sandbox (default `/`).
    pub cwd: Option<PathBuf>,
    /// Run as this user (default: root, uid 0).
    pub user: Option<User>,
    /// A root filesystem to pivot into; `None` runs in the host filesystem.
    pub rootfs: Option<Rootfs>,
    /// Extra mounts (bind mounts of host paths, the sandbox directory, ...),
    /// made after the root filesystem is in place, in order.
    pub mounts: Vec<Mount>,
    /// Hostname in the sandbox's UTS namespace (default: the first 12
    /// letters and digits of the id).
    pub hostname: Option<String>,
    /// A UTS namespace to join (`/proc/<pid>/ns/uts` of another sandbox)
    /// instead of a new one: the sandbox then has that one's hostname, and
    /// `hostname` is not used.
    #[serde(default)]
    pub join_uts: Option<PathBuf>,
    /// Network: the host's (default), a fresh, empty namespace, or one
    /// made beforehand (see [`crate::runtime::create_netns`]).
    pub network: Network,
    /// cgroup limits.
    pub limits: Limits,
    /// Resource limits applied with `setrlimit` before exec.
    pub rlimits: Vec<Rlimit>,
    /// Capabilities kept (names such as `CAP_CHOWN`); `None` means the
    /// default set, the one Docker grants.
    pub capabilities: Option<Vec<String>>,
    /// Which device nodes the sandbox may create, read and write.
    #[serde(default)]
    pub devices: Devices,
    /// Paths hidden from the sandbox (a read-only empty tmpfs over a
    /// directory, `/dev/null` over a file); only with a fresh `/proc`.
    #[serde(default = "default_masked_paths")]
    pub masked_paths: Vec<PathBuf>,
    /// Paths made read-only inside the sandbox.
    #[serde(default = "default_readonly_paths")]
    pub readonly_paths: Vec<PathBuf>,
    /// A compiled seccomp program installed right before exec (raw
    /// `struct sock_filter` array); `None` runs unconfined.
    #[serde(default, with = "seccomp_bytes")]
    pub seccomp: Option<Vec<u8>>,
    /// Keeps the launch helper as the sandbox's init (pid 1), with the
    /// task as its child: it forwards signals to the task, reaps what is
    /// orphaned in the sandbox, and when the task ends writes its wait
    /// status to this host file (opened before the mounts), so that the
    /// status outlives whoever launched the sandbox (see
    /// [`crate::runtime::recorded_status`]). `None`: the task is pid 1.
    #[serde(default)]
    pub status_file: Option<PathBuf>,
}

/// Device access of a sandbox: an allowlist (everything else denied), or
/// every device (privileged).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Devices {
    Allow(Vec<DeviceRule>),
    All,
}

impl Default for Devices {
    fn default() -> Self {
        Devices::Allow(default_device_rules())
    }
}

/// The kind of device node a rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeviceKind {
    Char,
    Block,
}

/// One allowed device: kind, major and minor (`None` matches any), and
/// the access granted (`r`ead, `w`rite, `m`knod).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRule {
    pub kind: DeviceKind,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: String,
}

/// runc's default allowlist: any node may be created (`m`), but only the
/// nodes of the sandbox's own `/dev` may be opened: null, zero, full,
/// random, urandom, tty, console, ptmx and the devpts terminals.
pub fn default_device_rules() -> Vec<DeviceRule> {
    let rule = |kind, major, minor, access: &str| DeviceRule {
        kind,
        major,
        minor,
        access: access.to_string(),
    };
    use DeviceKind::{Block, Char};
    vec![
        rule(Char, None, None, "m"),
        rule(Block, None, None, "m"),
        rule(Char, Some(1), Some(3), "rwm"),
        rule(Char, Some(1), Some(5), "rwm"),
        rule(Char, Some(1), Some(7), "rwm"),
        rule(Char, Some(1), Some(8), "rwm"),
        rule(Char, Some(1), Some(9), "rwm"),
        rule(Char, Some(5), Some(0), "rwm"),
        rule(Char, Some(5), Some(1), "rwm"),
        rule(Char, Some(5), Some(2), "rwm"),
        rule(Char, Some(136), None, "rwm"),
    ]
}

/// runc's default masked paths.
pub fn default_masked_paths() -> Vec<PathBuf> {
    [
        "/proc/acpi",
        "/proc/kcore",
        "/proc/keys",
        "/proc/latency_stats",
        "/proc/timer_list",
        "/proc/timer_stats",
        "/proc/sched_debug",
        "/proc/scsi",
        "/sys/firmware",
    ]
    .iter()
    .map(PathBuf::from)
    .collect()
}

/// runc's default read-only paths.
pub fn default_readonly_paths() -> Vec<PathBuf> {
    [
        "/proc/bus",
        "/proc/fs",
        "/proc/irq",
        "/proc/sys",
        "/proc/sysrq-trigger",
    ]
    .iter()
    .map(PathBuf::from)
    .collect()
}

/// The seccomp program travels to the helper as base64 text.
mod seccomp_bytes {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_some(&base64::engine::general_purpose::STANDARD.encode(b)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(t) => base64::engine::general_purpose::STANDARD
                .decode(t)
                .map(Some)
                .map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}

/// Where the sandbox's root filesystem comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rootfs {
    /// The root directory; bound onto itself unless `mount` is given, in
    /// which case `mount` (e.g. an overlay) is mounted here first.
    pub path: PathBuf,
    pub mount: Option<Mount>,
    /// Remount `/` read-only after all mounts are made.
    pub readonly: bool,
}

/// The network namespace of a sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Network {
    #[default]
    Host,
    /// A new network namespace with only a loopback interface (down).
    None,
    /// The network namespace pinned at this path (a bind mount of an
    /// nsfs file), which the helper joins before anything else.
    Join(PathBuf),
}

/// cgroup limits; `None` leaves a resource unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Limits {
    /// CPUs: sets both the relative weight (shares = cpus * 1024) and a
    /// hard CFS quota of `cpus` cores.
    pub cpus: Option<f64>,
    /// Memory in bytes, hard; swap is not allowed on top of it.
    pub memory: Option<u64>,
    /// Maximum number of processes and threads.
    pub pids: Option<u64>,
}

/// A user to run as: a name looked up in the sandbox's `/etc/passwd`, or
/// numeric ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum User {
    Name(String),
    Id { uid: u32, gid: Option<u32> },
}

/// One `setrlimit` resource: soft and hard limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rlimit {
    pub resource: RlimitResource,
    pub soft: u64,
    pub hard: u64,
}

/// The resources `butte` lets a caller limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RlimitResource {
    Nofile,
    Nproc,
    Core,
    Fsize,
    Stack,
    Memlock,
}

/// Why a spec cannot be launched.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SpecError {
    #[error("empty command")]
    EmptyCommand,
    #[error("invalid cpu limit {0}: must be a positive number of cpus")]
    Cpus(f64),
    #[error("invalid memory limit {0} bytes: must be at least 4 MiB")]
    Memory(u64),
    #[error("invalid pids limit {0}: must be at least 1")]
    Pids(u64),
    #[error("rootfs {0}: {1}")]
    Rootfs(PathBuf, String),
    #[error("mount target {0}: must be an absolute path without '..'")]
    MountTarget(PathBuf),
    #[error("network namespace {0}: must be an absolute path")]
    Netns(PathBuf),
    #[error("invalid hostname {0:?}")]
    Hostname(String),
    #[error("invalid environment variable name {0:?}")]
    EnvName(String),
    #[error("invalid user {0:?}: expected NAME or UID[:GID]")]
    User(String),
    #[error("unknown capability {0:?}")]
    Capability(String),
    #[error("rlimit {0:?}: soft limit above hard limit")]
    Rlimit(RlimitResource),
    #[error("device rule access {0:?}: expected letters of \"rwm\"")]
    DeviceAccess(String),
    #[error("seccomp program of {0} bytes: not a whole number of 8-byte instructions, or over 4096 of them")]
    Seccomp(usize),
}

impl SandboxSpec {
    /// A spec that runs `argv` in the host filesystem with no limits.
    pub fn new(id: impl Into<String>, argv: Vec<String>) -> Self {
        SandboxSpec {
            id: id.into(),
            argv,
            env: vec![("PATH".into(), DEFAULT_PATH.into())],
            cwd: None,
            user: None,
            rootfs: None,
            mounts: Vec::new(),
            hostname: None,
            join_uts: None,
            network: Network::Host,
            limits: Limits::default(),
            rlimits: Vec::new(),
            capabilities: None,
            devices: Devices::default(),
            masked_paths: default_masked_paths(),
            readonly_paths: default_readonly_paths(),
            seccomp: None,
            status_file: None,
        }
    }

    /// Turns off the device allowlist, masked and read-only paths and
    /// seccomp, and keeps every capability the caller has in its bounding
    /// set (no more can be given), as Docker's `--privileged`.
    pub fn make_privileged(&mut self) {
        self.devices = Devices::All;
        self.masked_paths.clear();
        self.readonly_paths.clear();
        self.seccomp = None;
        self.capabilities = Some(super::bounding_capabilities());
    }

    /// Checks everything that can be checked before anything is created.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.argv.is_empty() || self.argv[0].is_empty() {
            return Err(SpecError::EmptyCommand);
        }
        self.limits.validate()?;
        if let Some(rootfs) = &self.rootfs {
            let err = |why: &str| SpecError::Rootfs(rootfs.path.clone(), why.to_string());
            if !rootfs.path.is_absolute() {
                return Err(err("not an absolute path"));
            }
            if rootfs.mount.is_none() {
                match std::fs::metadata(&rootfs.path) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => return Err(err("not a directory")),
                    Err(e) => return Err(err(&e.to_string().to_lowercase())),
                }
            }
        }
        if let Network::Join(p) = &self.network {
            if !p.is_absolute() {
                return Err(SpecError::Netns(p.clone()));
            }
        }
        for m in &self.mounts {
            if !is_clean_absolute(&m.target) {
                return Err(SpecError::MountTarget(m.target.clone()));
            }
        }
        let host = self.hostname();
        if host.is_empty()
            || host.len() > 64
            || !host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
        {
            return Err(SpecError::Hostname(host));
        }
        for (k, _) in &self.env {
            if k.is_empty() || k.contains('=') || k.contains('\0') {
                return Err(SpecError::EnvName(k.clone()));
            }
        }
        if let Some(list) = &self.capabilities {
            for name in list {
                crate::runtime::caps::parse(name)
                    .ok_or_else(|| SpecError::Capability(name.clone()))?;
            }
        }
        for r in &self.rlimits {
            if r.soft > r.hard {
                return Err(SpecError::Rlimit(r.resource));
            }
        }
        if let Devices::Allow(rules) = &self.devices {
            for r in rules {
                if r.access.is_empty() || !r.access.chars().all(|c| "rwm".contains(c)) {
                    return Err(SpecError::DeviceAccess(r.access.clone()));
                }
            }
        }
        for p in self.masked_paths.iter().chain(&self.readonly_paths) {
            if !is_clean_absolute(p) {
                return Err(SpecError::MountTarget(p.clone()));
            }
        }
        if let Some(prog) = &self.seccomp {
            if prog.is_empty() || prog.len() % 8 != 0 || prog.len() / 8 > 4096 {
                return Err(SpecError::Seccomp(prog.len()));
            }
        }
        Ok(())
    }

    /// The hostname the sandbox gets.
    pub fn hostname(&self) -> String {
        self.hostname.clone().unwrap_or_else(|| {
            self.id
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .take(12)
                .collect()
        })
    }

    /// The value of an environment variable in the spec.
    pub fn env_var(&self, key: &str) -> Option<&str> {
        self.env
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// `PATH` when the caller gives none, as Docker and Mesos use.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl Limits {
    pub fn validate(&self) -> Result<(), SpecError> {
        if let Some(c) = self.cpus {
            if !(c.is_finite() && c > 0.0 && c <= 4096.0) {
                return Err(SpecError::Cpus(c));
            }
        }
        if let Some(m) = self.memory {
            if m < MIN_MEMORY {
                return Err(SpecError::Memory(m));
            }
        }
        if let Some(p) = self.pids {
            if p == 0 {
                return Err(SpecError::Pids(p));
            }
        }
        Ok(())
    }
}

impl FromStr for User {
    type Err = SpecError;
    /// `NAME`, `UID` or `UID:GID`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || SpecError::User(s.to_string());
        if s.is_empty() {
            return Err(err());
        }
        let (u, g) = match s.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (s, None),
        };
        match u.parse::<u32>() {
            Ok(uid) => {
                let gid = match g {
                    Some(g) => Some(g.parse::<u32>().map_err(|_| err())?),
                    None => None,
                };
                Ok(User::Id { uid, gid })
            }
            Err(_)
                if g.is_none()
                    && u.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) =>
            {
                Ok(User::Name(u.to_string()))
            }
            Err(_) => Err(err()),
        }
    }
}

impl FromStr for RlimitResource {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Ok(match s.to_ascii_lowercase().trim_start_matches("rlimit_") {
            "nofile" => RlimitResource::Nofile,
            "nproc" => RlimitResource::Nproc,
            "core" => RlimitResource::Core,
            "fsize" => RlimitResource::Fsize,
            "stack" => RlimitResource::Stack,
            "memlock" => RlimitResource::Memlock,
            _ => return Err(()),
        })
    }
}

/// True for an absolute path with no `..` component.
pub(crate) fn is_clean_absolute(p: &std::path::Path) -> bool {
    p.is_absolute()
        && p.components()
            .all(|c| !matches!(c, std::path::Component::ParentDir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> SandboxSpec {
        SandboxSpec::new("0123456789abcdef", vec!["/bin/true".into()])
    }

    #[test]
    fn default_spec_is_valid() {
        spec().validate().unwrap();
        assert_eq!(spec().hostname(), "0123456789ab");
        let s = SandboxSpec::new("19034b9f-31e4-4c1a", vec!["/bin/true".into()]);
        assert_eq!(s.hostname(), "19034b9f31e4");
    }

    #[test]
    fn rejects_bad_limits() {
        let mut s = spec();
        s.limits.memory = Some(0);
        assert_eq!(s.validate(), Err(SpecError::Memory(0)));
        s.limits.memory = None;
        for c in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            s.limits.cpus = Some(c);
            assert!(matches!(s.validate(), Err(SpecError::Cpus(_))));
        }
        s.limits.cpus = Some(0.5);
        s.limits.pids = Some(0);
        assert_eq!(s.validate(), Err(SpecError::Pids(0)));
    }

    #[test]
    fn rejects_bad_rootfs_and_mounts() {
        let mut s = spec();
        s.rootfs = Some(Rootfs {
            path: "/nonexistent/rootfs".into(),
            mount: None,
            readonly: false,
        });
        let e = s.validate().unwrap_err().to_string();
        assert!(
            e.contains("/nonexistent/rootfs") && e.contains("no such file"),
            "{e}"
        );
        s.rootfs = None;
        s.mounts.push(Mount::bind("/tmp", "../etc", false));
        assert!(matches!(s.validate(), Err(SpecError::MountTarget(_))));
        s.mounts[0].target = "/a/../../etc".into();
        assert!(matches!(s.validate(), Err(SpecError::MountTarget(_))));
    }

    #[test]
    fn rejects_empty_command_and_bad_env() {
        let mut s = spec();
        s.env.push(("A=B".into(), "x".into()));
        assert!(matches!(s.validate(), Err(SpecError::EnvName(_))));
        s.argv.clear();
        assert_eq!(s.validate(), Err(SpecError::EmptyCommand));
    }

    #[test]
    fn parses_users() {
        assert_eq!("app".parse(), Ok(User::Name("app".into())));
        assert_eq!(
            "1000".parse(),
            Ok(User::Id {
                uid: 1000,
                gid: None
            })
        );
        assert_eq!(
            "1000:100".parse(),
            Ok(User::Id {
                uid: 1000,
                gid: Some(100)
            })
        );
        for bad in ["", "a:b", "1000:x", "a b"] {
            assert!(bad.parse::<User>().is_err(), "{bad}");
        }
    }
}
