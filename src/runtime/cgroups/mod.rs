//! cgroups, v1 and v2, behind one small interface.
//!
//! [`Hierarchy::detect`] looks at a cgroup root (normally `/sys/fs/cgroup`,
//! a temporary directory in unit tests): v2 when the root itself holds
//! `cgroup.controllers` (a unified host), v1 otherwise, with one directory
//! per controller (`cpu`, `cpuacct`, `memory`, `pids`). A hybrid host (v1
//! controllers plus an empty v2 mount at `unified/`) is v1 here.
//!
//! Each sandbox gets `<root>[/<controller>]/<parent>/<id>`. The limits are
//! turned into a list of file writes ([`limit_writes`]) before anything is
//! touched, so the translation is tested without root.

mod devices;
mod stats;

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
    /// v2: the controllers the root offers (`cgroup.controllers`), read once.
    available: Vec<String>,
    parent: String,
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
    pub fn detect(root: &Path, parent: &str) -> Result<Self, CgroupError> {
        let parent = parent.trim_matches('/').to_string();
        if let Ok(list) = fs::read_to_string(root.join("cgroup.controllers")) {
            return Ok(Hierarchy {
                version: Version::V2,
                roots: vec![(Controller::Cpu, root.to_path_buf())],
                available: list.split_whitespace().map(String::from).collect(),
                parent,
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
            parent,
        })
    }

    pub fn version(&self) -> Version {
        self.version
    }

    /// The directories a sandbox named `id` would have.
    fn dirs_for(&self, id: &str) -> Vec<(Vec<Controller>, PathBuf)> {
        match self.version {
            Version::V2 => vec![(
                Controller::ALL.to_vec(),
                self.roots[0].1.join(&self.parent).join(id),
            )],
            Version::V1 => {
                let mut out: Vec<(Vec<Controller>, PathBuf)> = Vec::new();
                for (c, root) in &self.roots {
                    // Co-mounted controllers (cpu,cpuacct) share one directory.
                    let canon = fs::canonicalize(root).unwrap_or_else(|_| root.clone());
                    let dir = canon.join(&self.parent).join(id);
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
    /// from the root down to the parent group.
    fn enable_v2_controllers(&self) -> Result<(), CgroupError> {
        let root = &self.roots[0].1;
        let wanted: Vec<&str> = ["cpu", "memory", "pids"]
            .into_iter()
            .filter(|c| self.available.iter().any(|x| x == c))
            .collect();
        let mut dir = root.clone();
        let mut chain = vec![dir.clone()];
        for part in Path::new(&self.parent).components() {
            dir = dir.join(part);
            chain.push(dir.clone());
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

    /// The existing cgroup of sandbox `id` (made by an earlier process),
    /// to read and remove; `None` when no directory of it exists.
    pub fn open(&self, id: &str) -> Option<Cgroup> {
        let dirs: Vec<_> = self
            .dirs_for(id)
            .into_iter()
            .filter(|(_, d)| d.is_dir())
            .collect();
        (!dirs.is_empty()).then_some(Cgroup {
            version: self.version,
            dirs,
        })
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
        let cgroup = Cgroup {
            version: self.version,
            dirs: Vec::with_capacity(dirs.len()),
        };
        let mut cgroup = cgroup;
        for (c, dir) in dirs {
            if let Some(parent) = dir.parent() {
                if !parent.exists() {
                    fs::create_dir_all(parent).map_err(|source| CgroupError::Create {
                        path: parent.to_path_buf(),
                        source,
                    })?;
                    if self.version == Version::V2 {
                        self.enable_v2_controllers()?;
                    }
                }
            }
            if let Err(source) = fs::create_dir(&dir) {
                let _ = cgroup.remove();
                return Err(CgroupError::Create { path: dir, source });
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
    /// counts exiting tasks (EBUSY), for up to two seconds.
    pub fn remove(&mut self) -> Result<(), CgroupError> {
        let deadline = Instant::now() + Duration::from_secs(2);
        while let Some((_, dir)) = self.dirs.last() {
            match remove_dir(dir) {
                Ok(()) => {
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
