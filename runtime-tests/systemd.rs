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
//!
//! With systemd >= 254 (`DelegateSubgroup=supervisor`) also: the agent
//! runs in `<unit>/supervisor`, containers' cgroups sit inside the unit's
//! with the controllers enabled, a task's memory limit holds there (an OOM
//! kill is reported as such), and once the tasks are gone nothing is left
//! under the unit but the agent's leaf. With 252 the old placement
//! (`/sys/fs/cgroup/butte`) is checked instead.

use crate::support::master::{
    command_task, framework, status as status_of, task_and_state, FakeMaster, WAIT,
};
use butte::proto::mesos::{task_status, TaskState};
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

/// The systemd running the guest: 252 (Debian 12) or 254 (backports).
fn systemd_version() -> u32 {
    let v = run("systemctl", &["--version"]);
    v.split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("systemctl --version: {v}"))
}

/// The cgroup v2 path of a process (`/system.slice/...`).
fn cgroup_of(pid: i32) -> String {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or_else(|| panic!("no v2 line in {text}"))
        .to_string()
}

/// The sub-directories (child cgroups) of a cgroup directory.
fn children(dir: &str) -> Vec<String> {
    let mut out: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}

fn words(path: &str) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .split_whitespace()
        .map(String::from)
        .collect()
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
    // Where the containers' cgroups go: inside the unit's with
    // DelegateSubgroup= (systemd >= 254), under the root before.
    let version = systemd_version();
    let unit_cg = format!("/sys/fs/cgroup{}", show("ControlGroup"));
    let delegated = version >= 254;
    let containers = if delegated {
        format!("{unit_cg}/butte")
    } else {
        "/sys/fs/cgroup/butte".to_string()
    };
    println!(
        "systemd: systemd {version}, the unit's cgroup {unit_cg}, containers under {containers}"
    );
    if delegated {
        assert_eq!(show("DelegateSubgroup"), "supervisor");
        assert_eq!(
            format!("/sys/fs/cgroup{}", cgroup_of(agent)),
            format!("{unit_cg}/supervisor"),
            "the agent is not in its leaf"
        );
        let enabled = words(&format!("{unit_cg}/cgroup.subtree_control"));
        println!("systemd: the unit's cgroup.subtree_control: {enabled:?}");
        for c in ["cpu", "memory", "pids"] {
            assert!(
                enabled.iter().any(|e| e == c),
                "{c} not enabled in the unit: {enabled:?}"
            );
        }
        assert!(
            fs::read_to_string(format!("{unit_cg}/cgroup.procs"))
                .unwrap()
                .trim()
                .is_empty(),
            "processes in the unit's inner cgroup"
        );
    } else {
        assert_eq!(format!("/sys/fs/cgroup{}", cgroup_of(agent)), unit_cg);
    }
    wait_for(
        "the agent to say where containers go",
        Duration::from_secs(10),
        || {
            run("journalctl", &["-u", UNIT, "-o", "cat", "--no-pager"])
                .contains(&format!("containers' cgroups go under {containers}"))
        },
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
    // Its container's cgroup: a leaf under `containers`, with the
    // controllers on and the task's memory limit.
    let task_cg = format!("/sys/fs/cgroup{}", cgroup_of(first));
    assert!(
        task_cg.starts_with(&format!("{containers}/")),
        "the task is in {task_cg}, not under {containers}"
    );
    let offered = words(&format!("{task_cg}/cgroup.controllers"));
    for c in ["cpu", "memory", "pids"] {
        assert!(
            offered.iter().any(|e| e == c),
            "{c} missing in {task_cg}: {offered:?}"
        );
    }
    let max = fs::read_to_string(format!("{task_cg}/memory.max")).unwrap();
    println!(
        "systemd: the task's cgroup {task_cg}: controllers {offered:?}, memory.max {}",
        max.trim()
    );
    assert!(max.trim().parse::<u64>().is_ok(), "no memory limit: {max}");
    if delegated {
        let kids = children(&unit_cg);
        assert_eq!(kids, ["butte", "supervisor"], "under the unit");
        println!("systemd: under the unit: {kids:?}");
    }

    // Past its memory limit, a task is OOM-killed in its cgroup and
    // reported as such. (`tail` keeps the one endless line in memory; a
    // whole cpu, since 0.1 of one under TCG takes long to fill 64 MB.)
    let mut hog = command_task("hog", "tail /dev/zero");
    hog.resources = crate::support::master::resources(1.0, 32.0);
    master.run_task(&fw, &hog);
    master.ack_until("hog", TaskState::TaskRunning);
    let u = master.expect_update("TASK_FAILED of hog", Duration::from_secs(180), |u| {
        task_and_state(u) == ("hog".to_string(), TaskState::TaskFailed)
    });
    master.ack(&u);
    println!(
        "systemd: the memory hog: {:?} {:?}",
        task_and_state(&u).1,
        status_of(&u).reason()
    );
    assert_eq!(
        status_of(&u).reason,
        Some(task_status::Reason::ContainerLimitationMemory as i32),
        "{u:?}"
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
    if delegated {
        assert_eq!(
            format!("/sys/fs/cgroup{}", cgroup_of(main_pid())),
            format!("{unit_cg}/supervisor")
        );
    }
    assert_eq!(format!("/sys/fs/cgroup{}", cgroup_of(first)), task_cg);
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
    // Nothing of the tasks' is left: under the unit only the agent's leaf.
    if delegated {
        wait_for("the containers' cgroups to go", WAIT, || {
            children(&unit_cg) == ["supervisor"]
        });
        println!(
            "systemd: after the tasks ended, under the unit: {:?}",
            children(&unit_cg)
        );
    } else {
        wait_for("the containers' cgroups to go", WAIT, || {
            children(&containers).is_empty()
        });
    }

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
