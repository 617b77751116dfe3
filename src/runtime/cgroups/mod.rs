//! cgroups, v1 and v2, behind one small interface.
//!
//! [`Hierarchy::detect`] looks at a cgroup root (normally `/sys/fs/cgroup`,
//! a temporary directory in unit tests): v2 when the root itself holds
//! `cgroup.controllers` (a unified host), v1 otherwise, with one directory
//! per controller (`cpu`, `cpuacct`, `memory`, `pids`). A hybrid host (v1
//! controllers plus an empty v2 mount at `unified/`) is v1 here.
//!
//! Each sandbox gets `<root>[/<controller>]/<parent>/<id>`; on v2 under a
//! systemd unit that delegated its cgroup to the agent (see [`delegation`])
//! `<root>/<unit>/<parent>/<id>` instead, and the groups between the unit
//! and the sandbox go once their last sandbox does. The limits are turned
//! into a list of file writes ([`limit_writes`]) before anything is
//! touched, so the translation is tested without root.

pub mod delegation;
mod devices;
mod stats;

pub use delegation::{Delegation, NotDelegated};
pub use stats::{Pressure, ResourceStats};

use super::spec::{Devices, Limits};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A failure to create, use or remove a cgroup.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("no cgroup hierarchy at {0}: neither cgroup v2 nor v1 controllers found")]
    NoHierarchy(PathBuf),
    #[error("cgroup controller {controller} is not available under {root}")]
    MissingController {
        controller: &'static str,
        root: PathBuf,
    },
    #[error("create cgroup {path}: {source}")]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("write {value:?} to {path}: {source}")]
    Write {
        path: PathBuf,
        value: String,
        #[source]
        source: io::Error,
    },
    #[error("read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("attach the device filter to cgroup {path}: {source}")]
    DeviceFilter {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("remove cgroup {path}: {source}")]
    Remove {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// A cgroup controller butte uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Controller {
    Cpu,
    Cpuacct,
    Memory,
    Pids,
    /// v1 only: v2 filters devices with a BPF program instead.
    Devices,
}

impl Controller {
    pub const ALL: [Controller; 5] = [
        Controller::Cpu,
        Controller::Cpuacct,
        Controller::Memory,
        Controller::Pids,
        Controller::Devices,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Controller::Cpu => "cpu",
            Controller::Cpuacct => "cpuacct",
            Controller::Memory => "memory",
            Controller::Pids => "pids",
            Controller::Devices => "devices",
        }
    }
}

/// Which cgroup version a hierarchy speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// A detected cgroup hierarchy and the parent group butte nests under.
#[derive(Debug, Clone)]
pub struct Hierarchy {
    version: Version,
    /// v1: the directory of each controller found; v2: the root, once.
    roots: Vec<(Controller, PathBuf)>,
    /// v2: the controllers the root (or the delegated unit) offers
    /// (`cgroup.controllers`), read once.
    available: Vec<String>,
    /// Where sandboxes go, relative to the root (`butte`, or
    /// `<unit>/butte` when delegated).
    parent: String,
    /// v2, delegated: the unit's cgroup, relative to the root. butte
    /// enables controllers from it down (never above), removes empty
    /// groups back up to it, and also looks for sandboxes of an older
    /// agent under `legacy`.
    unit: Option<String>,
    /// v2, delegated: the parent of sandboxes when not delegated
    /// (`butte`), where an agent of the old layout left them.
    legacy: String,
}

/// One file write that applies a limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub controller: Controller,
    pub file: &'static str,
    pub value: String,
    /// Skipped when the kernel lacks the file (swap accounting off, ...).
    pub optional: bool,
}

/// The period of the CFS quota, in microseconds (the kernel's default).
const CFS_PERIOD_US: u64 = 100_000;

/// Translates limits into the file writes of a cgroup version.
pub fn limit_writes(version: Version, limits: &Limits) -> Vec<Write> {
    let w = |controller, file, value: String, optional| Write {
        controller,
        file,
        value,
        optional,
    };
    let mut out = Vec::new();
    if let Some(cpus) = limits.cpus {
        let shares = ((cpus * 1024.0).round() as u64).max(2);
        let quota = ((cpus * CFS_PERIOD_US as f64).round() as u64).max(1000);
        match version {
            Version::V1 => {
                out.push(w(Controller::Cpu, "cpu.shares", shares.to_string(), false));
                out.push(w(
                    Controller::Cpu,
                    "cpu.cfs_period_us",
                    CFS_PERIOD_US.to_string(),
                    false,
                ));
                out.push(w(
                    Controller::Cpu,
                    "cpu.cfs_quota_us",
                    quota.to_string(),
                    false,
                ));
            }
            Version::V2 => {
                // runc's conversion of shares [2, 262144] to weight [1, 10000].
                let weight = 1 + (shares.min(262_144) - 2) * 9999 / 262_142;
                out.push(w(Controller::Cpu, "cpu.weight", weight.to_string(), false));
                out.push(w(
                    Controller::Cpu,
                    "cpu.max",
                    format!("{quota} {CFS_PERIOD_US}"),
                    false,
                ));
            }
        }
    }
    if let Some(mem) = limits.memory {
        match version {
            Version::V1 => {
                out.push(w(
                    Controller::Memory,
                    "memory.limit_in_bytes",
                    mem.to_string(),
                    false,
                ));
                out.push(w(
                    Controller::Memory,
                    "memory.memsw.limit_in_bytes",
                    mem.to_string(),
                    true,
                ));
                out.push(w(Controller::Memory, "memory.swappiness", "0".into(), true));
            }
            Version::V2 => {
                out.push(w(Controller::Memory, "memory.max", mem.to_string(), false));
                out.push(w(Controller::Memory, "memory.swap.max", "0".into(), true));
            }
        }
    }
    if let Some(pids) = limits.pids {
        out.push(w(Controller::Pids, "pids.max", pids.to_string(), false));
    }
    out
}

impl Hierarchy {
    /// Detects the hierarchy under `root`; sandboxes are created under
    /// `parent` (a relative path such as `butte`).
    #[cfg(test)]
    pub fn detect(root: &Path, parent: &str) -> Result<Self, CgroupError> {
        Self::detect_in(root, None, parent)
    }

    /// Like [`Hierarchy::detect`]; on v2 with `unit` (the cgroup of a
    /// systemd unit delegated to butte, relative to `root`), sandboxes go
    /// under `<unit>/<parent>`.
    pub fn detect_in(root: &Path, unit: Option<&str>, parent: &str) -> Result<Self, CgroupError> {
        let parent = parent.trim_matches('/').to_string();
        if let Ok(list) = fs::read_to_string(root.join("cgroup.controllers")) {
            let unit = unit.map(|u| u.trim_matches('/').to_string());
            let (available, full) = match &unit {
                Some(u) => {
                    let file = root.join(u).join("cgroup.controllers");
                    let list = fs::read_to_string(&file)
                        .map_err(|source| CgroupError::Read { path: file, source })?;
                    let full = if parent.is_empty() {
                        u.clone()
                    } else {
                        format!("{u}/{parent}")
                    };
                    (list, full)
                }
                None => (list, parent.clone()),
            };
            return Ok(Hierarchy {
                version: Version::V2,
                roots: vec![(Controller::Cpu, root.to_path_buf())],
                available: available.split_whitespace().map(String::from).collect(),
                parent: full,
                unit,
                legacy: parent,
            });
        }
        let mut roots = Vec::new();
        for c in Controller::ALL {
            let dir = root.join(c.name());
            if dir.join("cgroup.procs").exists() {
                roots.push((c, dir));
            }
        }
        if roots.is_empty() {
            return Err(CgroupError::NoHierarchy(root.to_path_buf()));
        }
        Ok(Hierarchy {
            version: Version::V1,
            roots,
            available: Vec::new(),
            legacy: parent.clone(),
            parent,
            unit: None,
        })
    }

    pub fn version(&self) -> Version {
        self.version
    }

    /// The directories a sandbox named `id` would have.
    fn dirs_for(&self, id: &str) -> Vec<(Vec<Controller>, PathBuf)> {
        self.dirs_under(&self.parent, id)
    }

    fn dirs_under(&self, parent: &str, id: &str) -> Vec<(Vec<Controller>, PathBuf)> {
        match self.version {
            Version::V2 => vec![(
                Controller::ALL.to_vec(),
                self.roots[0].1.join(parent).join(id),
            )],
            Version::V1 => {
                let mut out: Vec<(Vec<Controller>, PathBuf)> = Vec::new();
                for (c, root) in &self.roots {
                    // Co-mounted controllers (cpu,cpuacct) share one directory.
                    let canon = fs::canonicalize(root).unwrap_or_else(|_| root.clone());
                    let dir = canon.join(parent).join(id);
                    match out.iter_mut().find(|(_, d)| *d == dir) {
                        Some((cs, _)) => cs.push(*c),
                        None => out.push((vec![*c], dir)),
                    }
                }
                out
            }
        }
    }

    fn has(&self, c: Controller) -> bool {
        match self.version {
            Version::V1 => self.roots.iter().any(|(x, _)| *x == c),
            // v2 filters devices with a BPF program, no controller.
            Version::V2 if c == Controller::Devices => true,
            Version::V2 => {
                // v2 has no cpuacct: cpu.stat holds the usage.
                let name = if c == Controller::Cpuacct {
                    "cpu"
                } else {
                    c.name()
                };
                self.available.iter().any(|x| x == name)
            }
        }
    }

    /// v2: enables the controllers butte needs in `cgroup.subtree_control`
    /// from the root (or the delegated unit's cgroup) down to the parent
    /// group. In a delegated unit `io` too, when offered.
    pub fn enable_v2_controllers(&self) -> Result<(), CgroupError> {
        let root = &self.roots[0].1;
        let names: &[&str] = match self.unit {
            Some(_) => &["cpu", "io", "memory", "pids"],
            None => &["cpu", "memory", "pids"],
        };
        let wanted: Vec<&str> = names
            .iter()
            .copied()
            .filter(|c| self.available.iter().any(|x| x == c))
            .collect();
        let top = match &self.unit {
            Some(u) => root.join(u),
            None => root.clone(),
        };
        let mut dir = root.clone();
        let mut chain = Vec::new();
        if dir == top {
            chain.push(dir.clone());
        }
        for part in Path::new(&self.parent).components() {
            dir = dir.join(part);
            if dir.starts_with(&top) {
                chain.push(dir.clone());
            }
        }
        for d in chain {
            let file = d.join("cgroup.subtree_control");
            let have = fs::read_to_string(&file).unwrap_or_default();
            let missing: Vec<String> = wanted
                .iter()
                .filter(|c| !have.split_whitespace().any(|x| x == **c))
                .map(|c| format!("+{c}"))
                .collect();
            if !missing.is_empty() {
                let value = missing.join(" ");
                fs::write(&file, &value).map_err(|source| CgroupError::Write {
                    path: file.clone(),
                    value,
                    source,
                })?;
            }
        }
        Ok(())
    }

    /// Where empty groups above a sandbox are removed up to (exclusive):
    /// the delegated unit's cgroup; `None` keeps them (not delegated).
    fn prune_to(&self) -> Option<PathBuf> {
        self.unit.as_ref().map(|u| self.roots[0].1.join(u))
    }

    /// The existing cgroup of sandbox `id` (made by an earlier process),
    /// to read and remove; `None` when no directory of it exists. When
    /// delegated, a sandbox an agent of the old layout left under the root
    /// is found too.
    pub fn open(&self, id: &str) -> Option<Cgroup> {
        let found = |parent: &str, prune_to: Option<PathBuf>| {
            let dirs: Vec<_> = self
                .dirs_under(parent, id)
                .into_iter()
                .filter(|(_, d)| d.is_dir())
                .collect();
            (!dirs.is_empty()).then_some(Cgroup {
                version: self.version,
                dirs,
                prune_to,
            })
        };
        found(&self.parent, self.prune_to())
            .or_else(|| self.unit.as_ref().and_then(|_| found(&self.legacy, None)))
    }

    /// Creates the cgroup of sandbox `id` with `limits` and the device
    /// allowlist applied. On error nothing is left behind.
    pub fn create(
        &self,
        id: &str,
        limits: &Limits,
        devices: &Devices,
    ) -> Result<Cgroup, CgroupError> {
        let mut writes = limit_writes(self.version, limits);
        if self.version == Version::V1 {
            writes.extend(devices::v1_writes(devices));
        }
        for w in &writes {
            if !w.optional && !self.has(w.controller) {
                return Err(CgroupError::MissingController {
                    controller: w.controller.name(),
                    root: self.roots[0].1.clone(),
                });
            }
        }
        let dirs = self.dirs_for(id);
        let mut cgroup = Cgroup {
            version: self.version,
            dirs: Vec::with_capacity(dirs.len()),
            prune_to: self.prune_to(),
        };
        for (c, dir) in dirs {
            // When delegated, another sandbox's removal may take the empty
            // parent away between its creation and ours: then again.
            let mut tries = 0;
            loop {
                tries += 1;
                if let Some(parent) = dir.parent() {
                    if !parent.exists() {
                        let made = fs::create_dir_all(parent)
                            .map_err(|source| CgroupError::Create {
                                path: parent.to_path_buf(),
                                source,
                            })
                            .and_then(|()| match self.version {
                                Version::V2 => self.enable_v2_controllers(),
                                Version::V1 => Ok(()),
                            });
                        if let Err(e) = made {
                            let _ = cgroup.remove();
                            return Err(e);
                        }
                    }
                }
                match fs::create_dir(&dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::NotFound && tries < 10 => {}
                    Err(source) => {
                        let _ = cgroup.remove();
                        return Err(CgroupError::Create { path: dir, source });
                    }
                }
            }
            cgroup.dirs.push((c, dir));
        }
        for w in &writes {
            let Some(dir) = cgroup.dir(w.controller) else {
                continue;
            };
            let path = dir.join(w.file);
            if let Err(source) = write_existing(&path, &w.value) {
                if w.optional && source.kind() == io::ErrorKind::NotFound {
                    continue;
                }
                let _ = cgroup.remove();
                return Err(CgroupError::Write {
                    path,
                    value: w.value.clone(),
                    source,
                });
            }
        }
        if let (Version::V2, Devices::Allow(rules)) = (self.version, devices) {
            let dir = cgroup.dirs[0].1.clone();
            if let Err(source) = attach_device_filter(&dir, rules) {
                let _ = cgroup.remove();
                return Err(CgroupError::DeviceFilter { path: dir, source });
            }
        }
        Ok(cgroup)
    }
}

/// Loads the device program for `rules` and attaches it to the cgroup v2
/// directory `dir` (alongside any program of an ancestor: every one must
/// allow an access). The attachment lives as long as the cgroup.
pub fn attach_device_filter(dir: &Path, rules: &[super::spec::DeviceRule]) -> io::Result<()> {
    use std::os::fd::AsFd;
    let cgroup = fs::File::open(dir)?;
    let prog = super::sys::bpf_load_device_program(&devices::bpf_program(rules))?;
    super::sys::bpf_attach_device_program(cgroup.as_fd(), prog.as_fd())
}

/// Writes to a kernel file that must already exist (never creates one,
/// except under a test root where the "kernel" is a plain directory).
fn write_existing(path: &Path, value: &str) -> io::Result<()> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true);
    if !path.starts_with("/sys/") {
        opts.create(true).truncate(true);
    }
    io::Write::write_all(&mut opts.open(path)?, value.as_bytes())
}

/// Moves the calling (single-threaded) process into a cgroup by writing
/// `0` to each of `files` (from [`Cgroup::join_files`]).
///
/// On v1, a thread that moves itself through `tasks` skips the kernel's
/// global threadgroup lock, whose write side waits for an RCU grace period
/// (about 9 ms here) when another process writes a pid to `cgroup.procs`.
/// The launch helper joins this way before it does anything else.
pub fn join_self(files: &[PathBuf]) -> Result<(), CgroupError> {
    for path in files {
        write_existing(path, "0").map_err(|source| CgroupError::Write {
            path: path.clone(),
            value: "0".into(),
            source,
        })?;
    }
    Ok(())
}

/// The cgroup(s) of one sandbox.
#[derive(Debug)]
pub struct Cgroup {
    version: Version,
    /// Each directory with the controllers whose files it holds.
    dirs: Vec<(Vec<Controller>, PathBuf)>,
    /// Delegated: once removed, the empty groups above it go too, up to
    /// this directory (exclusive).
    prune_to: Option<PathBuf>,
}

impl Cgroup {
    pub fn version(&self) -> Version {
        self.version
    }

    /// The directories of this cgroup (one on v2, one per controller on v1).
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.dirs.iter().map(|(_, d)| d.as_path())
    }

    /// The directory holding a controller's files.
    pub fn dir(&self, c: Controller) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|(cs, _)| cs.contains(&c))
            .map(|(_, d)| d.as_path())
    }

    /// The files a single-threaded process writes `0` to in order to move
    /// itself into this cgroup (see [`join_self`]).
    pub fn join_files(&self) -> Vec<PathBuf> {
        let file = match self.version {
            Version::V1 => "tasks",
            Version::V2 => "cgroup.procs",
        };
        self.dirs.iter().map(|(_, d)| d.join(file)).collect()
    }

    /// Changes the limits of a running sandbox (those `limits` sets; the
    /// others stay). On v1 the memory+swap limit may never be below the
    /// memory limit: it is written before the memory limit (when raising)
    /// and again after it (when lowering).
    pub fn update(&self, limits: &Limits) -> Result<(), CgroupError> {
        const MEMSW: &str = "memory.memsw.limit_in_bytes";
        let writes = limit_writes(self.version, limits);
        let write = |w: &Write| -> Result<(), CgroupError> {
            let Some(dir) = self.dir(w.controller) else {
                return Ok(());
            };
            let path = dir.join(w.file);
            match write_existing(&path, &w.value) {
                Ok(()) => Ok(()),
                Err(e) if w.optional && e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(source) => Err(CgroupError::Write {
                    path,
                    value: w.value.clone(),
                    source,
                }),
            }
        };
        let memsw = writes.iter().find(|w| w.file == MEMSW);
        for w in writes.iter().filter(|w| w.file != MEMSW) {
            if w.file == "memory.limit_in_bytes" {
                if let Some(sw) = memsw {
                    // Fails when lowering; the second write then holds.
                    let _ = write(sw);
                }
                write(w)?;
                if let Some(sw) = memsw {
                    write(sw)?;
                }
                continue;
            }
            write(w)?;
        }
        Ok(())
    }

    /// The pids in this cgroup.
    pub fn procs(&self) -> Result<Vec<i32>, CgroupError> {
        let Some((_, dir)) = self.dirs.first() else {
            return Ok(Vec::new());
        };
        let path = dir.join("cgroup.procs");
        match fs::read_to_string(&path) {
            Ok(text) => Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(source) => Err(CgroupError::Read { path, source }),
        }
    }

    /// Kills every process in the cgroup with SIGKILL and waits (up to
    /// `timeout`) until it is empty.
    pub fn kill_all(&self, timeout: Duration) -> Result<(), CgroupError> {
        if self.version == Version::V2 {
            let kill = self.dirs[0].1.join("cgroup.kill");
            if kill.exists() {
                let _ = write_existing(&kill, "1");
            }
        }
        let deadline = Instant::now() + timeout;
        loop {
            let procs = self.procs()?;
            if procs.is_empty() {
                return Ok(());
            }
            for pid in procs {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            if Instant::now() > deadline {
                return Err(CgroupError::Remove {
                    path: self.dirs[0].1.clone(),
                    source: io::Error::new(io::ErrorKind::TimedOut, "processes did not exit"),
                });
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Removes the cgroup's directories. Retries while the kernel still
    /// counts exiting tasks (EBUSY), for up to two seconds. When delegated,
    /// the groups above it that are left empty go too.
    pub fn remove(&mut self) -> Result<(), CgroupError> {
        // Nested sandboxes' groups inside this one go first, with whatever
        // still runs in them: nothing may outlive its parent.
        for (_, dir) in &self.dirs {
            remove_nested(dir)?;
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while let Some((_, dir)) = self.dirs.last() {
            match remove_dir(dir) {
                Ok(()) => {
                    if let Some(top) = &self.prune_to {
                        prune_empty(dir, top);
                    }
                    self.dirs.pop();
                }
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_micros(200));
                }
                Err(source) => {
                    return Err(CgroupError::Remove {
                        path: dir.clone(),
                        source,
                    })
                }
            }
        }
        Ok(())
    }
}

/// Kills what runs in the groups below `dir` and removes them, deepest
/// first.
fn remove_nested(dir: &Path) -> Result<(), CgroupError> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let child = entry.path();
        remove_nested(&child)?;
        let kill = child.join("cgroup.kill");
        if kill.exists() {
            let _ = write_existing(&kill, "1");
        }
        let procs = child.join("cgroup.procs");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let pids: Vec<i32> = fs::read_to_string(&procs)
                .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
                .unwrap_or_default();
            if pids.is_empty() {
                break;
            }
            for pid in pids {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            if Instant::now() > deadline {
                return Err(CgroupError::Remove {
                    path: child,
                    source: io::Error::new(io::ErrorKind::TimedOut, "processes did not exit"),
                });
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            match remove_dir(&child) {
                Ok(()) => break,
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_micros(200));
                }
                Err(source) => {
                    return Err(CgroupError::Remove {
                        path: child,
                        source,
                    })
                }
            }
        }
    }
    Ok(())
}

/// Removes the groups above `dir` up to `top` (exclusive) while they are
/// empty; the first that is not (another sandbox, or one being created)
/// stops it.
fn prune_empty(dir: &Path, top: &Path) {
    let mut up = dir.parent();
    while let Some(d) = up {
        if d == top || !d.starts_with(top) {
            break;
        }
        let empty = fs::read_dir(d)
            .map(|entries| {
                !entries
                    .flatten()
                    .any(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            })
            .unwrap_or(false);
        // A plain directory under a test root holds the files written to
        // it; on a kernel hierarchy `rmdir` decides (ENOTEMPTY, EBUSY).
        if !empty || remove_dir(d).is_err() {
            break;
        }
        up = d.parent();
    }
}

/// Removes a cgroup directory: `rmdir` on a kernel hierarchy; under a test
/// root (a plain directory) the files written into it go first.
fn remove_dir(dir: &Path) -> io::Result<()> {
    match fs::remove_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) && !dir.starts_with("/sys/") => {
            fs::remove_dir_all(dir)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_v1() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        for c in ["cpu", "cpuacct", "memory", "pids"] {
            fs::create_dir(t.path().join(c)).unwrap();
            fs::write(t.path().join(c).join("cgroup.procs"), "").unwrap();
        }
        t
    }

    #[test]
    fn limits_change_in_place_and_nested_groups_go_with_their_parent() {
        let t = fake_v1();
        let h = Hierarchy::detect(t.path(), "butte").unwrap();
        let mut cg = h.create("c1", &limits(), &Devices::All).unwrap();
        let kid = h
            .create("c1/kid", &Limits::default(), &Devices::All)
            .unwrap();
        let mem = t.path().join("memory/butte/c1");
        assert!(kid.paths().any(|p| p == mem.join("kid")));
        cg.update(&Limits {
            memory: Some(256 << 20),
            ..Limits::default()
        })
        .unwrap();
        for file in ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"] {
            assert_eq!(
                fs::read_to_string(mem.join(file)).unwrap(),
                (256u64 << 20).to_string()
            );
        }
        // Untouched: the cpu limit.
        assert_eq!(
            fs::read_to_string(t.path().join("cpu/butte/c1/cpu.cfs_quota_us")).unwrap(),
            "50000"
        );
        cg.remove().unwrap();
        assert!(!mem.join("kid").exists());
        assert!(!mem.exists());
    }

    fn limits() -> Limits {
        Limits {
            cpus: Some(0.5),
            memory: Some(128 << 20),
            pids: Some(64),
        }
    }

    #[test]
    fn v1_writes() {
        let w = limit_writes(Version::V1, &limits());
        let pairs: Vec<(&str, &str)> = w.iter().map(|w| (w.file, w.value.as_str())).collect();
        assert_eq!(
            pairs,
            [
                ("cpu.shares", "512"),
                ("cpu.cfs_period_us", "100000"),
                ("cpu.cfs_quota_us", "50000"),
                ("memory.limit_in_bytes", "134217728"),
                ("memory.memsw.limit_in_bytes", "134217728"),
                ("memory.swappiness", "0"),
                ("pids.max", "64"),
            ]
        );
    }

    #[test]
    fn v2_writes() {
        let w = limit_writes(Version::V2, &limits());
        let pairs: Vec<(&str, &str)> = w.iter().map(|w| (w.file, w.value.as_str())).collect();
        assert_eq!(
            pairs,
            [
                ("cpu.weight", "20"),
                ("cpu.max", "50000 100000"),
                ("memory.max", "134217728"),
                ("memory.swap.max", "0"),
                ("pids.max", "64"),
            ]
        );
        // One cpu gets the kernel's default weight.
        let one = Limits {
            cpus: Some(1.0),
            ..Limits::default()
        };
        assert_eq!(limit_writes(Version::V2, &one)[0].value, "39");
    }

    #[test]
    fn creates_and_removes_v1_groups_under_a_root() {
        let t = fake_v1();
        let h = Hierarchy::detect(t.path(), "/butte/").unwrap();
        assert_eq!(h.version(), Version::V1);
        let mut cg = h.create("c1", &limits(), &Devices::All).unwrap();
        let mem = t.path().join("memory/butte/c1");
        assert_eq!(
            fs::read_to_string(mem.join("memory.limit_in_bytes")).unwrap(),
            "134217728"
        );
        assert_eq!(
            fs::read_to_string(t.path().join("cpu/butte/c1/cpu.cfs_quota_us")).unwrap(),
            "50000"
        );
        assert_eq!(cg.paths().count(), 4);
        let files = cg.join_files();
        assert_eq!(files.len(), 4);
        assert!(files.contains(&mem.join("tasks")));
        join_self(&files).unwrap();
        assert_eq!(fs::read_to_string(mem.join("tasks")).unwrap(), "0");
        let cpu = t.path().join("cpu/butte/c1");
        fs::write(cpu.join("cgroup.procs"), "4242\n").unwrap();
        assert_eq!(cg.procs().unwrap(), vec![4242]);
        fs::write(cpu.join("cgroup.procs"), "").unwrap();
        cg.remove().unwrap();
        assert!(!mem.exists());
        assert!(t.path().join("memory/butte").exists());
    }

    #[test]
    fn v2_enables_controllers_down_to_the_parent() {
        let t = tempfile::tempdir().unwrap();
        fs::write(
            t.path().join("cgroup.controllers"),
            "cpuset cpu io memory pids",
        )
        .unwrap();
        fs::write(t.path().join("cgroup.subtree_control"), "memory").unwrap();
        let h = Hierarchy::detect(t.path(), "butte").unwrap();
        assert_eq!(h.version(), Version::V2);
        let mut cg = h.create("c1", &limits(), &Devices::All).unwrap();
        assert_eq!(cg.join_files(), [t.path().join("butte/c1/cgroup.procs")]);
        // A plain directory keeps only what was last written.
        assert_eq!(
            fs::read_to_string(t.path().join("cgroup.subtree_control")).unwrap(),
            "+cpu +pids"
        );
        assert_eq!(
            fs::read_to_string(t.path().join("butte/c1/cpu.max")).unwrap(),
            "50000 100000"
        );
        cg.remove().unwrap();
        assert!(!t.path().join("butte/c1").exists());
    }

    /// A v2 root as systemd 254 leaves it with `DelegateSubgroup=supervisor`:
    /// the agent in `<unit>/supervisor`, nothing enabled in the unit yet.
    fn fake_delegated() -> (tempfile::TempDir, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        fs::write(
            t.path().join("cgroup.controllers"),
            "cpuset cpu io memory pids",
        )
        .unwrap();
        fs::write(t.path().join("cgroup.subtree_control"), "cpu memory").unwrap();
        let unit = t.path().join("system.slice/butte-agent.service");
        fs::create_dir_all(unit.join("supervisor")).unwrap();
        fs::write(unit.join("cgroup.controllers"), "cpu io memory pids").unwrap();
        fs::write(unit.join("supervisor/cgroup.procs"), "4242\n").unwrap();
        (t, unit)
    }

    #[test]
    fn delegated_groups_go_inside_the_unit_and_leave_only_the_agents_leaf() {
        let (t, unit) = fake_delegated();
        let h = Hierarchy::detect_in(
            t.path(),
            Some("/system.slice/butte-agent.service/"),
            "/butte/",
        )
        .unwrap();
        let mut cg = h.create("c1", &limits(), &Devices::All).unwrap();
        assert_eq!(cg.join_files(), [unit.join("butte/c1/cgroup.procs")]);
        assert_eq!(
            fs::read_to_string(unit.join("butte/c1/memory.max")).unwrap(),
            "134217728"
        );
        // Controllers from the unit down (io too), never above it: the root
        // and the slice are systemd's.
        for d in [unit.clone(), unit.join("butte")] {
            assert_eq!(
                fs::read_to_string(d.join("cgroup.subtree_control")).unwrap(),
                "+cpu +io +memory +pids",
                "{d:?}"
            );
        }
        assert_eq!(
            fs::read_to_string(t.path().join("cgroup.subtree_control")).unwrap(),
            "cpu memory"
        );
        assert!(!t
            .path()
            .join("system.slice/cgroup.subtree_control")
            .exists());
        // Two sandboxes; the group between them and the unit goes with the
        // last one, the agent's leaf stays.
        let mut cg2 = h.create("c2", &Limits::default(), &Devices::All).unwrap();
        cg.remove().unwrap();
        assert!(unit.join("butte/c2").is_dir());
        cg2.remove().unwrap();
        let left: Vec<String> = fs::read_dir(&unit)
            .unwrap()
            .flatten()
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left, ["supervisor"]);
        // And it comes back, controllers enabled, for the next one.
        let mut cg3 = h.create("c3", &limits(), &Devices::All).unwrap();
        assert_eq!(
            fs::read_to_string(unit.join("butte/cgroup.subtree_control")).unwrap(),
            "+cpu +io +memory +pids"
        );
        cg3.remove().unwrap();
    }

    #[test]
    fn delegated_recovery_finds_sandboxes_of_either_layout() {
        let (t, unit) = fake_delegated();
        // An agent of the old layout left c-old under the root; this one
        // made c-new inside the unit.
        fs::create_dir_all(t.path().join("butte/c-old")).unwrap();
        fs::write(t.path().join("butte/c-old/cgroup.procs"), "77\n").unwrap();
        let h = Hierarchy::detect_in(t.path(), Some("system.slice/butte-agent.service"), "butte")
            .unwrap();
        h.create("c-new", &Limits::default(), &Devices::All)
            .unwrap();
        let new = h.open("c-new").unwrap();
        assert_eq!(new.paths().collect::<Vec<_>>(), [unit.join("butte/c-new")]);
        let mut old = h.open("c-old").unwrap();
        assert_eq!(old.procs().unwrap(), [77]);
        assert_eq!(
            old.paths().collect::<Vec<_>>(),
            [t.path().join("butte/c-old")]
        );
        fs::write(t.path().join("butte/c-old/cgroup.procs"), "").unwrap();
        old.remove().unwrap();
        // The old layout's parent is not pruned: it is not the unit's.
        assert!(t.path().join("butte").is_dir());
        assert!(h.open("c-none").is_none());
        // Not delegated, an agent does not look inside the unit.
        let plain = Hierarchy::detect(t.path(), "butte").unwrap();
        assert!(plain.open("c-new").is_none());
    }

    #[test]
    fn missing_controller_is_an_error_and_leaves_nothing() {
        let t = tempfile::tempdir().unwrap();
        for c in ["cpu", "cpuacct", "memory"] {
            fs::create_dir(t.path().join(c)).unwrap();
            fs::write(t.path().join(c).join("cgroup.procs"), "").unwrap();
        }
        let h = Hierarchy::detect(t.path(), "butte").unwrap();
        let e = h
            .create("c1", &limits(), &Devices::All)
            .unwrap_err()
            .to_string();
        assert!(e.contains("pids"), "{e}");
        assert!(!t.path().join("memory/butte/c1").exists());
    }

    #[test]
    fn no_hierarchy() {
        let t = tempfile::tempdir().unwrap();
        assert!(matches!(
            Hierarchy::detect(t.path(), "butte"),
            Err(CgroupError::NoHierarchy(_))
        ));
    }
}

#[cfg(test)]
mod device_tests {
    use super::*;

    #[test]
    fn v1_groups_get_the_device_allowlist() {
        let t = tempfile::tempdir().unwrap();
        for c in ["cpu", "cpuacct", "memory", "pids", "devices"] {
            fs::create_dir(t.path().join(c)).unwrap();
            fs::write(t.path().join(c).join("cgroup.procs"), "").unwrap();
        }
        let h = Hierarchy::detect(t.path(), "butte").unwrap();
        let mut cg = h
            .create("c1", &Limits::default(), &Devices::default())
            .unwrap();
        let dir = cg.dir(Controller::Devices).unwrap().to_path_buf();
        assert_eq!(dir, t.path().join("devices/butte/c1"));
        // A test root keeps only the last write of each file.
        assert_eq!(fs::read_to_string(dir.join("devices.deny")).unwrap(), "a");
        assert_eq!(
            fs::read_to_string(dir.join("devices.allow")).unwrap(),
            "c 136:* rwm"
        );
        assert!(cg.join_files().contains(&dir.join("tasks")));
        cg.remove().unwrap();
        // Without a devices hierarchy an allowlist cannot be enforced: refused.
        fs::remove_dir_all(t.path().join("devices")).unwrap();
        let h = Hierarchy::detect(t.path(), "butte").unwrap();
        let e = h
            .create("c2", &Limits::default(), &Devices::default())
            .unwrap_err();
        assert!(e.to_string().contains("devices"), "{e}");
        assert!(!t.path().join("cpu/butte/c2").exists());
    }
}
