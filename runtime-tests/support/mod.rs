//! Shared support for the privileged runtime tests.
//!
//! The tests run only when `BUTTE_RUNTIME_TESTS=1`; opted in without root
//! they fail (never silently skip). Each test gets a [`Fixture`]: its own
//! work directory and cgroup parent, and at the end [`Fixture::finish`]
//! asserts that no cgroup, mount or process of the test is left.

#![allow(dead_code)]

pub mod master;
pub mod registry;
pub mod zookeeper;

use butte::runtime::{Runtime, RuntimeConfig, SandboxSpec, Stdio};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard, OnceLock};

pub const BUTTE: &str = env!("CARGO_BIN_EXE_butte");
/// Every hierarchy a test may create groups in; `unified` is the (hybrid)
/// host's cgroup2 mount, which the v2 device-filter test uses.
const CONTROLLERS: [&str; 6] = ["cpu", "cpuacct", "memory", "pids", "devices", "unified"];

/// True when the privileged tests are enabled; panics if enabled without root.
pub fn enabled() -> bool {
    if std::env::var("BUTTE_RUNTIME_TESTS").as_deref() != Ok("1") {
        eprintln!("runtime test skipped: set BUTTE_RUNTIME_TESTS=1 and run as root");
        return false;
    }
    assert!(
        nix::unistd::geteuid().is_root(),
        "BUTTE_RUNTIME_TESTS=1 but not root: the runtime tests need root"
    );
    true
}

/// Tests measure CPU shares and load the machine: one at a time.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// The busybox root filesystem, built once by `images/busybox.sh`.
pub fn busybox() -> PathBuf {
    static ROOTFS: OnceLock<PathBuf> = OnceLock::new();
    ROOTFS
        .get_or_init(|| {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("images/busybox.sh");
            let out = Command::new("bash")
                .arg(script)
                .output()
                .expect("run images/busybox.sh");
            assert!(
                out.status.success(),
                "images/busybox.sh failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let path = String::from_utf8(out.stdout).unwrap();
            PathBuf::from(path.lines().last().expect("rootfs path").trim())
        })
        .clone()
}

/// The busybox OCI image layout (tag "1") that `images/busybox.sh` builds
/// next to the rootfs.
pub fn busybox_oci() -> PathBuf {
    busybox().parent().expect("busybox dir").join("oci")
}

/// The three-layer Python 3.11 OCI image layout (tag "3.11"), built once by
/// `images/python.sh` (about 55 MB of gzip layers, 170 MB unpacked).
pub fn python_image() -> PathBuf {
    static OCI: OnceLock<PathBuf> = OnceLock::new();
    OCI.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("images/python.sh");
        let out = Command::new("bash")
            .arg(script)
            .output()
            .expect("run images/python.sh");
        assert!(
            out.status.success(),
            "images/python.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let path = String::from_utf8(out.stdout).unwrap();
        PathBuf::from(path.lines().last().expect("oci path").trim())
    })
    .clone()
}

fn random_suffix() -> String {
    butte::support::random_uuid().unwrap()[..8].to_string()
}

/// One test's private world.
pub struct Fixture {
    pub work: tempfile::TempDir,
    pub parent: String,
    pub runtime: Runtime,
    _serial: MutexGuard<'static, ()>,
}

impl Fixture {
    pub fn new() -> Self {
        let serial = serial();
        let parent = format!("butte-test-{}", random_suffix());
        let config = RuntimeConfig {
            cgroup_root: "/sys/fs/cgroup".into(),
            cgroup_parent: parent.clone(),
            cgroup_unit: None,
            helper: BUTTE.into(),
        };
        Fixture {
            work: tempfile::Builder::new()
                .prefix("butte-rt-")
                .tempdir()
                .unwrap(),
            runtime: Runtime::new(&config).expect("runtime"),
            parent,
            _serial: serial,
        }
    }

    /// A spec with a fresh id.
    pub fn spec(&self, argv: &[&str]) -> SandboxSpec {
        SandboxSpec::new(
            butte::support::random_uuid().unwrap(),
            argv.iter().map(|s| s.to_string()).collect(),
        )
    }

    /// Launches with output to files in the work dir; returns the paths.
    pub fn stdio(&self, name: &str) -> (Stdio, PathBuf, PathBuf) {
        let out = self.work.path().join(format!("{name}.out"));
        let err = self.work.path().join(format!("{name}.err"));
        let stdio = Stdio {
            stdin: fs::File::open("/dev/null").unwrap().into(),
            stdout: fs::File::create(&out).unwrap().into(),
            stderr: fs::File::create(&err).unwrap().into(),
        };
        (stdio, out, err)
    }

    /// `butte run` with this fixture's work dir and cgroup parent.
    pub fn butte_run(&self, args: &[&str]) -> Output {
        Command::new(BUTTE)
            .arg("run")
            .arg("--work-dir")
            .arg(self.work.path())
            .arg("--cgroup-parent")
            .arg(&self.parent)
            .args(args)
            .output()
            .expect("run butte")
    }

    /// The cgroup directories of one container (or of the parent with "").
    pub fn cgroup_dirs(&self, id: &str) -> Vec<PathBuf> {
        CONTROLLERS
            .iter()
            .map(|c| {
                Path::new("/sys/fs/cgroup")
                    .join(c)
                    .join(&self.parent)
                    .join(id)
            })
            .collect()
    }

    /// Asserts nothing of this test is left: no child cgroup under the
    /// parent, no process in it, no mount under the work dir. Then removes
    /// the parent groups.
    pub fn finish(self) {
        let leftover_groups: Vec<PathBuf> = self
            .cgroup_dirs("")
            .iter()
            .filter(|d| d.exists())
            .flat_map(|d| {
                fs::read_dir(d)
                    .unwrap()
                    .flatten()
                    .filter(|e| e.path().is_dir())
                    .map(|e| e.path())
            })
            .collect();
        let procs = processes_in_cgroup(&self.parent);
        let work = self.work.path().to_string_lossy().into_owned();
        let mounts: Vec<String> = fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.contains(&work) || l.contains(&self.parent))
            .map(String::from)
            .collect();
        // Removes the parent groups (see Drop) before the checks can fail.
        drop(self);
        assert!(
            leftover_groups.is_empty(),
            "cgroups left behind: {leftover_groups:?}"
        );
        assert!(procs.is_empty(), "processes left behind: {procs:?}");
        assert!(mounts.is_empty(), "mounts left behind: {mounts:?}");
    }

    /// Sandbox directories left in the work dir by `butte run`.
    pub fn sandboxes(&self) -> Vec<PathBuf> {
        match fs::read_dir(self.work.path().join("containers")) {
            Ok(rd) => rd.flatten().map(|e| e.path()).collect(),
            Err(_) => Vec::new(),
        }
    }
}

impl Drop for Fixture {
    /// Removes the test's parent groups, also when the test failed before
    /// `finish` (they are empty unless something leaked, which `finish`
    /// reports).
    fn drop(&mut self) {
        for d in self.cgroup_dirs("") {
            let _ = fs::remove_dir(d);
        }
    }
}

/// Host pids in the cgroup `/<parent>` or below it (PARENT may name
/// several levels, `parent/container`).
pub fn processes_in_cgroup(parent: &str) -> Vec<i32> {
    let at = format!("/{parent}");
    let below = format!("/{parent}/");
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            fs::read_to_string(format!("/proc/{pid}/cgroup"))
                .map(|c| c.lines().any(|l| l.ends_with(&at) || l.contains(&below)))
                .unwrap_or(false)
        })
        .collect()
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A loop device over a file with known content, detached on drop. Root
/// cannot open this machine's own disk, so a loop device stands in for a
/// host block device in device-access tests.
pub struct LoopDevice {
    pub path: PathBuf,
    pub major: u64,
    pub minor: u64,
    /// The bytes the device starts with.
    pub secret: &'static str,
    file: tempfile::NamedTempFile,
}

impl LoopDevice {
    pub fn new() -> Self {
        use std::io::Write;
        use std::os::unix::fs::FileTypeExt;
        let secret = "BUTTE-HOST-DISK-SECRET";
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(secret.as_bytes()).unwrap();
        file.write_all(&vec![0u8; (1 << 20) - secret.len()])
            .unwrap();
        file.flush().unwrap();
        let out = Command::new("losetup")
            .args(["-f", "--show"])
            .arg(file.path())
            .output()
            .expect("run losetup");
        assert!(out.status.success(), "losetup: {out:?}");
        let path = PathBuf::from(text(&out.stdout).trim());
        let meta = fs::metadata(&path).unwrap();
        assert!(meta.file_type().is_block_device(), "{path:?}");
        let rdev = std::os::unix::fs::MetadataExt::rdev(&meta);
        LoopDevice {
            path,
            major: nix::sys::stat::major(rdev),
            minor: nix::sys::stat::minor(rdev),
            secret,
            file,
        }
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.path).status();
        let _ = self.file.path();
    }
}

/// A tmpfs of SIZE_MB mounted at a directory (a small filesystem to fill),
/// unmounted (lazily) on drop, also when the test fails.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    pub fn mount(dir: &Path, size_mb: u64) -> Tmpfs {
        fs::create_dir_all(dir).unwrap();
        nix::mount::mount(
            Some("tmpfs"),
            dir,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some(format!("size={size_mb}m,mode=0755").as_str()),
        )
        .unwrap_or_else(|e| panic!("mount a tmpfs at {}: {e}", dir.display()));
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Every file named NAME under DIR (links not followed).
pub fn files_named(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            found.extend(files_named(&path, name));
        } else if entry.file_name() == name {
            found.push(path);
        }
    }
    found
}

/// Median, 95th percentile and max of SAMPLES (ms), for the benches'
/// JSON lines.
pub fn summary(mut samples: Vec<f64>) -> serde_json::Value {
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    serde_json::json!({
        "n": samples.len(),
        "median": at(0.5),
        "p95": at(0.95),
        "max": at(1.0),
    })
}
