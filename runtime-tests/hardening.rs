//! The hardening probe (`images/probe.c`) run from inside `butte run`
//! sandboxes: every attempt (a host block device, /dev/kmsg, mount, user
//! namespaces, the keyring, perf, bpf, kexec, modules, ptrace of a host
//! process, /proc/kcore, /sys/firmware, sysrq, /proc/sys, raising rlimits)
//! must be denied to a root task and to a user task in an image; a task on
//! the host filesystem cannot read the host block device either; and
//! `--privileged` can (so the probe can tell). With crun installed, the same
//! probe also runs under crun with Docker's defaults (`bench/hardening.sh`),
//! and butte must deny everything crun denies.

use crate::support::{busybox, enabled, text, Fixture, LoopDevice, BUTTE};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::OnceLock;

/// Every attempt the probe makes, in its order.
const ATTEMPTS: [&str; 16] = [
    "blockdev",
    "kmsg",
    "mount",
    "userns",
    "keyctl",
    "perf_event_open",
    "bpf",
    "kexec_load",
    "init_module",
    "ptrace",
    "kcore",
    "sys_firmware",
    "sysrq_trigger",
    "proc_sys_write",
    "rlimit_raise",
    "executor_api",
];

/// The static probe, built once by `images/probe.sh`.
fn probe() -> PathBuf {
    static PROBE: OnceLock<PathBuf> = OnceLock::new();
    PROBE
        .get_or_init(|| {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("images/probe.sh");
            let out = Command::new("bash")
                .arg(script)
                .output()
                .expect("run images/probe.sh");
            assert!(
                out.status.success(),
                "images/probe.sh failed: {}",
                text(&out.stderr)
            );
            PathBuf::from(text(&out.stdout).lines().last().expect("probe path").trim())
        })
        .clone()
}

/// A copy of the busybox rootfs with the probe as /bin/probe, in the
/// fixture's work dir (the shared rootfs stays untouched).
fn probe_rootfs(fx: &Fixture) -> PathBuf {
    let dir = fx.work.path().join("probe-rootfs");
    let status = Command::new("cp")
        .arg("-a")
        .arg(busybox())
        .arg(&dir)
        .status()
        .unwrap();
    assert!(status.success(), "copy the busybox rootfs");
    fs::copy(probe(), dir.join("bin/probe")).unwrap();
    dir
}

/// A host process for the probe to ptrace; killed on drop.
struct HostProcess(Child);

impl HostProcess {
    fn new() -> Self {
        HostProcess(Command::new("sleep").arg("600").spawn().unwrap())
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The probe's table: (attempt, verdict, detail) per line.
struct Table {
    rows: Vec<(String, String, String)>,
    code: Option<i32>,
}

impl Table {
    fn verdict(&self, attempt: &str) -> &str {
        self.rows
            .iter()
            .find(|r| r.0 == attempt)
            .map(|r| r.1.as_str())
            .unwrap_or("missing")
    }

    fn detail(&self, attempt: &str) -> &str {
        self.rows
            .iter()
            .find(|r| r.0 == attempt)
            .map(|r| r.2.as_str())
            .unwrap_or("")
    }

    /// Asserts the probe ran to its end and nothing was allowed.
    fn assert_all_denied(&self, who: &str) {
        let names: Vec<&str> = self.rows.iter().map(|r| r.0.as_str()).collect();
        assert_eq!(names, ATTEMPTS, "{who}: the probe did not run to its end");
        let allowed: Vec<&(String, String, String)> = self
            .rows
            .iter()
            .filter(|r| r.1 != "denied" && r.1 != "n/a")
            .collect();
        assert!(allowed.is_empty(), "{who}: allowed {allowed:?}");
        assert_eq!(self.code, Some(0), "{who}: probe exit status");
    }
}

/// `butte run [OPTIONS] -- PROBE ARGS` with this fixture; prints the table.
fn run_probe(
    fx: &Fixture,
    who: &str,
    options: &[&str],
    probe: &str,
    disk: &LoopDevice,
    host: &HostProcess,
) -> Table {
    let pid = host.0.id().to_string();
    // The loop device stands in for a host disk: its first bytes are known.
    let majmin = format!("{}:{}", disk.major, disk.minor);
    let mut args: Vec<&str> = options.to_vec();
    args.extend(["--", probe, "-b", &majmin, "-k", disk.secret, "-p", &pid]);
    let out = fx.butte_run(&args);
    let stdout = text(&out.stdout);
    println!("--- probe: {who} (butte run {})\n{stdout}", args.join(" "));
    let rows = stdout
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, '\t');
            Some((f.next()?.into(), f.next()?.into(), f.next()?.into()))
        })
        .collect();
    let table = Table {
        rows,
        code: out.status.code(),
    };
    assert!(
        !table.rows.is_empty(),
        "{who}: no probe output: {}",
        text(&out.stderr)
    );
    table
}

#[test]
fn probe_in_an_image_is_denied_everything_as_root_and_as_a_user() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let rootfs = probe_rootfs(&fx);
    let image = rootfs.to_str().unwrap();
    let (disk, host) = (LoopDevice::new(), HostProcess::new());
    let root = run_probe(
        &fx,
        "root in an image",
        &["--image", image],
        "/bin/probe",
        &disk,
        &host,
    );
    root.assert_all_denied("root");
    // Root may create the node (as under runc): the device rules refuse the open.
    assert!(
        root.detail("blockdev").contains("open") && root.detail("blockdev").contains("EPERM"),
        "{}",
        root.detail("blockdev")
    );
    let user = run_probe(
        &fx,
        "user app in an image",
        &["--image", image, "--user", "app"],
        "/bin/probe",
        &disk,
        &host,
    );
    user.assert_all_denied("app");
    fx.finish();
}

#[test]
fn a_task_on_the_host_filesystem_cannot_read_the_host_disk() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let (disk, host) = (LoopDevice::new(), HostProcess::new());
    let probe = probe();
    let table = run_probe(
        &fx,
        "root on the host filesystem",
        &[],
        probe.to_str().unwrap(),
        &disk,
        &host,
    );
    assert_eq!(
        table.verdict("blockdev"),
        "denied",
        "{}",
        table.detail("blockdev")
    );
    // Refused at the open (a node was there or could be made), not for
    // want of one: the device rules hold on the host filesystem too.
    assert!(
        table.detail("blockdev").contains("open") && table.detail("blockdev").contains("EPERM"),
        "{}",
        table.detail("blockdev")
    );
    fx.finish();
}

#[test]
fn privileged_root_reads_the_host_disk_so_the_probe_can_tell() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let rootfs = probe_rootfs(&fx);
    let (disk, host) = (LoopDevice::new(), HostProcess::new());
    let table = run_probe(
        &fx,
        "privileged root in an image",
        &["--privileged", "--image", rootfs.to_str().unwrap()],
        "/bin/probe",
        &disk,
        &host,
    );
    assert_eq!(
        table.verdict("blockdev"),
        "ALLOWED",
        "{}",
        table.detail("blockdev")
    );
    assert_eq!(table.code, Some(1));
    fx.finish();
}

#[test]
fn butte_denies_everything_crun_denies_with_dockers_defaults() {
    if !enabled() {
        return;
    }
    if Command::new("crun").arg("--version").output().is_err() {
        eprintln!("crun is not installed: comparison skipped (.ci/run installs it)");
        return;
    }
    let fx = Fixture::new();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/hardening.sh");
    let out = Command::new("bash")
        .arg(script)
        .env("BUTTE", BUTTE)
        .env("WORK_DIR", fx.work.path().join("bench"))
        .env("CGROUP_PARENT", &fx.parent)
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "bench/hardening.sh: {stdout}{}",
        text(&out.stderr)
    );
    assert!(
        stdout.contains("butte denies everything crun denies: yes"),
        "{stdout}"
    );
    fx.finish();
}

/// The probe as a command task of `butte agent` (host filesystem, root):
/// denied everything, including the agent's executor API, which a task
/// without its executor's token must not be able to use.
#[test]
fn a_task_of_the_agent_is_denied_everything_and_the_executor_api_without_a_token() {
    use crate::support::master::{
        self, command_task, framework, task_and_state, AgentProcess, FakeMaster, WAIT,
    };
    use butte::proto::mesos::TaskState;
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let master = FakeMaster::start(0);
    let agent = AgentProcess::start(&fx, &master, &[]);
    master.register();
    let disk = LoopDevice::new();
    let host = HostProcess::new();
    let fw = framework("probe");
    let cmd = format!(
        "{} -b {}:{} -k {} -p {} -e http://{}/api/v1/executor",
        probe().display(),
        disk.major,
        disk.minor,
        disk.secret,
        host.0.id(),
        agent.endpoint()
    );
    master.run_task(&fw, &command_task("probe", &cmd));
    let end = loop {
        let u = master.expect_update("for probe", WAIT, |u| task_and_state(u).0 == "probe");
        master.ack(&u);
        let (_, state) = task_and_state(&u);
        if master::TERMINAL.contains(&state) {
            break state;
        }
    };
    let dir = agent.sandbox(&master.slave_id(), &fw, "probe");
    let stdout = fs::read_to_string(dir.join("stdout")).unwrap_or_default();
    println!("--- probe: a command task of butte agent\n{stdout}");
    let table = Table {
        rows: stdout
            .lines()
            .filter_map(|l| {
                let mut f = l.splitn(3, '\t');
                Some((f.next()?.into(), f.next()?.into(), f.next()?.into()))
            })
            .collect(),
        code: Some(if end == TaskState::TaskFinished { 0 } else { 1 }),
    };
    table.assert_all_denied("agent task");
    assert_eq!(
        table.verdict("executor_api"),
        "denied",
        "{}",
        table.detail("executor_api")
    );
    master::finish(fx, master, agent);
}
