//! Issue 16: the Debian package's agent under systemd, on a pure cgroup v2
//! host. Runs only inside the VM that `packaging/vm/test.sh` boots (it sets
//! `BUTTE_SYSTEMD_TESTS=1` after `apt install ./butte_*.deb`): it drives the
//! real `systemctl` against the installed unit, with the scripted master on
//! the guest's loopback.
//!
//! enable --now -> READY=1 and registered; a task runs; `systemctl restart`
//! with the task running (the task survives and is recovered); `systemctl
//! stop` (the task survives: KillMode=process); start again, the task is
//! killed through the master; a second task left running; `apt purge`
//! leaves no process, cgroup, work dir or conffile behind.

use crate::support::master::{command_task, framework, task_and_state, FakeMaster, WAIT};
use butte::proto::mesos::TaskState;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const UNIT: &str = "butte-agent.service";

fn enabled() -> bool {
    if std::env::var("BUTTE_SYSTEMD_TESTS").as_deref() != Ok("1") {
        eprintln!("systemd test skipped: it runs inside the VM (packaging/vm/test.sh)");
        return false;
    }
    assert!(
        nix::unistd::geteuid().is_root(),
        "BUTTE_SYSTEMD_TESTS=1 needs root"
    );
    assert!(
        Path::new("/run/systemd/system").is_dir(),
        "BUTTE_SYSTEMD_TESTS=1 but systemd is not PID 1"
    );
    assert!(
        Path::new("/sys/fs/cgroup/cgroup.controllers").exists(),
        "BUTTE_SYSTEMD_TESTS=1 but the cgroup hierarchy is not pure v2"
    );
    assert!(
        Path::new("/usr/bin/butte").exists(),
        "BUTTE_SYSTEMD_TESTS=1 but the package is not installed"
    );
    true
}

/// Runs a command, fails the test (with its output) unless it succeeds.
fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}\n{text}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

fn systemctl(args: &[&str]) -> String {
    run("systemctl", args)
}

/// One property of the unit, as `systemctl show` gives it.
fn show(property: &str) -> String {
    systemctl(&["show", "-p", property, "--value", UNIT])
        .trim()
        .to_string()
}

fn main_pid() -> i32 {
    show("MainPID").parse().unwrap()
}

/// The processes running `sleep SECONDS` (the test's tasks).
fn sleepers(seconds: &str) -> Vec<i32> {
    let want = format!("sleep\0{seconds}\0");
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == want.as_bytes()))
        .collect()
}

/// Processes whose program is one of the package's binaries (also once
/// the files are deleted).
fn butte_processes() -> Vec<(i32, String)> {
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let exe = fs::read_link(format!("/proc/{pid}/exe")).ok()?;
            let exe = exe.to_string_lossy().into_owned();
            exe.starts_with("/usr/bin/butte").then_some((pid, exe))
        })
        .collect()
}

fn alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "waited {timeout:?} for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Launches `sleep 600` as TASK and returns its pid once it runs.
fn launch(master: &FakeMaster, fw: &butte::proto::mesos::FrameworkInfo, task: &str) -> i32 {
    let before = sleepers("600");
    master.run_task(fw, &command_task(task, "sleep 600"));
    master.ack_until(task, TaskState::TaskRunning);
    let mut pid = 0;
    wait_for("the task's process", WAIT, || {
        pid = sleepers("600")
            .into_iter()
            .find(|p| !before.contains(p))
            .unwrap_or(0);
        pid != 0
    });
    pid
}

#[test]
fn the_package_runs_the_agent_under_systemd_and_purge_leaves_nothing() {
    if !enabled() {
        return;
    }
    let master = FakeMaster::start(0);
    // The two install steps of the README, with the master's address.
    let default = "/etc/default/butte-agent";
    let mut env = fs::read_to_string(default).unwrap();
    assert!(env.contains("#MESOS_MASTER="), "{default}: {env}");
    env.push_str(&format!("MESOS_MASTER={}\n", master.addr()));
    fs::write(default, env).unwrap();
    let start = Instant::now();
    systemctl(&["enable", "--now", UNIT]);
    let ready = start.elapsed();
    let (_, id) = master.register();
    let registered = start.elapsed();
    println!("systemd: `systemctl enable --now` returned (READY=1) after {ready:?}; registered after {registered:?}");
    assert_eq!(show("ActiveState"), "active");
    assert_eq!(show("SubState"), "running");
    wait_for("STATUS= to say registered", Duration::from_secs(10), || {
        show("StatusText").starts_with("registered with")
    });
    let status = show("StatusText");
    assert!(status.contains(&id.value), "{status}");
    for (property, want) in [
        ("Type", "notify"),
        ("KillMode", "process"),
        ("Restart", "always"),
        ("Delegate", "yes"),
        ("LimitNOFILE", "1048576"),
    ] {
        assert_eq!(show(property), want, "{property}");
    }
    let agent = main_pid();
    println!(
        "systemd: the agent (pid {agent}) in cgroup {}",
        fs::read_to_string(format!("/proc/{agent}/cgroup"))
            .unwrap()
            .trim()
    );
    // The journal has the agent's lines.
    wait_for("the journal", Duration::from_secs(10), || {
        run("journalctl", &["-u", UNIT, "-o", "cat", "--no-pager"])
            .contains("registered with the master")
    });
    std::thread::sleep(Duration::from_secs(2));
    println!(
        "systemd: idle agent MemoryCurrent={} bytes",
        show("MemoryCurrent")
    );

    // A task, then `systemctl restart` with it running.
    let fw = framework("systemd");
    let first = launch(&master, &fw, "first");
    println!(
        "systemd: a task's process (pid {first}) in cgroup {}",
        fs::read_to_string(format!("/proc/{first}/cgroup"))
            .unwrap()
            .trim()
    );
    // Its lines in the journal, found by its id as a field of their own;
    // the watchdog is on.
    wait_for("the task's lines in the journal", WAIT, || {
        run(
            "journalctl",
            &["-u", UNIT, "TASK_ID=first", "-o", "cat", "--no-pager"],
        )
        .contains("launching task")
    });
    let fields = run(
        "journalctl",
        &["-u", UNIT, "TASK_ID=first", "-o", "verbose", "--no-pager"],
    );
    for field in [
        "FRAMEWORK_ID=",
        "EXECUTOR_ID=first",
        "PRIORITY=6",
        "SYSLOG_IDENTIFIER=butte",
    ] {
        assert!(fields.contains(field), "no {field} in\n{fields}");
    }
    assert_eq!(show("WatchdogUSec"), "1min");
    master.set_lossy();
    let restart = Instant::now();
    systemctl(&["restart", UNIT]);
    let rereg = master.reregister();
    println!(
        "systemd: `systemctl restart` to re-registered: {:?}",
        restart.elapsed()
    );
    assert!(alive(first), "the task died with the agent's restart");
    assert_ne!(main_pid(), agent, "the agent was not restarted");
    let listed: Vec<&str> = rereg
        .tasks
        .iter()
        .map(|t| t.task_id.value.as_str())
        .collect();
    assert!(
        listed.contains(&"first"),
        "re-registered without the task: {listed:?}"
    );

    // `systemctl stop`: the agent goes, the task stays (KillMode=process).
    systemctl(&["stop", UNIT]);
    assert_eq!(show("ActiveState"), "inactive");
    assert!(alive(first), "the task died with `systemctl stop`");
    assert!(!alive(agent));

    // Back again: recovered, and the task is killed through the master.
    systemctl(&["start", UNIT]);
    master.reregister();
    master.kill_task(&fw, "first", None);
    let u = master.expect_ack("first", TaskState::TaskKilled);
    assert_eq!(task_and_state(&u).1, TaskState::TaskKilled);
    wait_for("the killed task to go", WAIT, || !alive(first));

    // A task left running for `apt purge` to end.
    let second = launch(&master, &fw, "second");
    run("apt-get", &["purge", "-y", "-q", "butte"]);
    assert!(!alive(second), "the task outlived `apt purge`");
    wait_for("every butte process to go", Duration::from_secs(10), || {
        butte_processes().is_empty()
    });
    assert!(
        sleepers("600").is_empty(),
        "tasks left: {:?}",
        sleepers("600")
    );
    for gone in [
        "/var/lib/butte",
        "/run/butte",
        default,
        "/usr/bin/butte",
        "/lib/systemd/system/butte-agent.service",
        "/sys/fs/cgroup/butte",
        "/sys/fs/cgroup/system.slice/butte-agent.service",
    ] {
        assert!(!Path::new(gone).exists(), "{gone} left after `apt purge`");
    }
    let state = Command::new("systemctl")
        .args(["show", "-p", "LoadState", "--value", UNIT])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&state.stdout).trim(), "not-found");
    drop(master);
}
