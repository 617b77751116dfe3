//! Privileged end-to-end tests of the runtime and `butte run`.
//! Run as root with `BUTTE_RUNTIME_TESTS=1` (see README); every test ends
//! with `Fixture::finish`, which fails on any leftover cgroup, mount or
//! process.

mod agent;
mod auth;
mod chaos;
mod cli;
mod cni;
mod containerizer;
mod devices;
mod disk_full;
mod disk_quota;
mod docker;
mod docker_task;
mod drain;
mod exec;
mod executor;
mod fetch;
mod gc;
mod hardening;
mod image;
mod image_gc;
mod join;
mod logrotate;
mod mesos_flags;
mod nested;
mod operator;
mod prometheus;
mod recovery;
mod registry_harness;
mod roles;
mod standalone;
mod support;
mod systemd;
mod zookeeper;

use butte::runtime::{default_capability_mask, ExitStatus, Limits, Network, Rootfs};
use std::fs;
use std::time::{Duration, Instant};
use support::{busybox, enabled, text, Fixture};

fn rootfs() -> Rootfs {
    Rootfs {
        path: busybox(),
        mount: None,
        readonly: false,
    }
}

#[test]
fn task_is_pid_1_with_its_own_hostname_and_cannot_see_the_host() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let marker = std::env::temp_dir().join(format!("butte-marker-{}", std::process::id()));
    fs::write(&marker, "host secret").unwrap();
    let r = busybox();
    let script = format!(
        "echo pid=$$; hostname; ls /proc | grep -c '^[0-9]'; cat {} 2>&1; echo done",
        marker.display()
    );
    let out = fx.butte_run(&[
        "--image",
        r.to_str().unwrap(),
        "--hostname",
        "sandboxed",
        "--",
        "sh",
        "-c",
        &script,
    ]);
    let _ = fs::remove_file(&marker);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "pid=1");
    assert_eq!(lines[1], "sandboxed");
    // sh, ls and grep: nothing of the host's hundreds of processes.
    let visible: u32 = lines[2].parse().unwrap();
    assert!(visible <= 4, "task sees {visible} processes");
    assert!(
        lines[3].contains("No such file"),
        "host marker readable: {stdout}"
    );
    assert!(!stdout.contains("host secret"));
    // The output was also written to the sandbox's stdout file.
    let sandboxes = fx.sandboxes();
    assert_eq!(sandboxes.len(), 1);
    assert_eq!(
        fs::read_to_string(sandboxes[0].join("stdout")).unwrap(),
        stdout
    );
    fx.finish();
}

#[test]
fn host_filesystem_task_runs_in_its_sandbox_with_a_private_proc() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let out = fx.butte_run(&[
        "--",
        "sh",
        "-c",
        "echo $$; pwd; echo $MESOS_SANDBOX; ls /proc | grep -c '^[0-9]'; echo err >&2",
    ]);
    assert!(out.status.success(), "{out:?}");
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    let sandbox = &fx.sandboxes()[0];
    assert_eq!(lines[0], "1");
    assert_eq!(lines[1], sandbox.to_str().unwrap());
    assert_eq!(lines[2], sandbox.to_str().unwrap());
    assert!(lines[3].parse::<u32>().unwrap() <= 4);
    assert_eq!(text(&out.stderr), "err\n");
    assert_eq!(fs::read_to_string(sandbox.join("stderr")).unwrap(), "err\n");
    fx.finish();
}

#[test]
fn memory_hog_is_oom_killed_and_the_record_says_so() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    // Through the API ...
    let mut spec = fx.spec(&["sh", "-c", "tail /dev/zero"]);
    spec.rootfs = Some(rootfs());
    spec.limits = Limits {
        memory: Some(32 << 20),
        ..Limits::default()
    };
    let (stdio, _, _) = fx.stdio("oom");
    let mut c = fx.runtime.launch(&spec, stdio).unwrap();
    let rec = c.wait().unwrap();
    assert!(rec.oom_killed, "{rec:?}");
    assert_eq!(rec.status, ExitStatus::Signaled(9));
    assert!(rec.stats.memory_peak >= 30 << 20, "{rec:?}");
    // ... and through `butte run`, which explains the exit.
    let r = busybox();
    let out = fx.butte_run(&[
        "--image",
        r.to_str().unwrap(),
        "--mem",
        "32M",
        "--",
        "sh",
        "-c",
        "tail /dev/zero",
    ]);
    assert_eq!(out.status.code(), Some(137));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("OOM killer") && stderr.contains("32.0 MiB"),
        "{stderr}"
    );
    fx.finish();
}

#[test]
fn fork_bomb_is_contained_by_the_pids_limit_and_destroyed() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let mut spec = fx.spec(&["sh", "-c", "b() { b | b & }; b; while :; do sleep 1; done"]);
    spec.rootfs = Some(rootfs());
    spec.limits = Limits {
        pids: Some(32),
        cpus: Some(1.0),
        memory: Some(256 << 20),
    };
    let (stdio, _, _) = fx.stdio("bomb");
    let c = fx.runtime.launch(&spec, stdio).unwrap();
    let start = Instant::now();
    let mut most = 0;
    while start.elapsed() < Duration::from_secs(2) {
        most = most.max(c.stats().pids_current);
        // The host stays responsive: a process starts and ends at once.
        let t = Instant::now();
        assert!(std::process::Command::new("/bin/true")
            .status()
            .unwrap()
            .success());
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "host unresponsive: {:?}",
            t.elapsed()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let stats = c.stats();
    assert!(most <= 32, "pids.current reached {most}");
    assert!(
        stats.pids_limit_hits > 0,
        "the bomb never hit the limit: {stats:?}"
    );
    let id = c.id().to_string();
    let rec = c.destroy().unwrap();
    assert_eq!(rec.status, ExitStatus::Signaled(9));
    assert!(fx.cgroup_dirs(&id).iter().all(|d| !d.exists()));
    fx.finish();
}

#[test]
fn half_a_cpu_gets_about_half_a_core() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    // Two spinning shells: unlimited they would take both cores.
    let mut spec = fx.spec(&["sh", "-c", "while :; do :; done & while :; do :; done"]);
    spec.rootfs = Some(rootfs());
    spec.limits = Limits {
        cpus: Some(0.5),
        ..Limits::default()
    };
    let (stdio, _, _) = fx.stdio("cpu");
    let c = fx.runtime.launch(&spec, stdio).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let (t0, u0) = (Instant::now(), c.stats().cpu_usage_ns);
    std::thread::sleep(Duration::from_secs(3));
    let (t1, u1) = (Instant::now(), c.stats().cpu_usage_ns);
    let share = (u1 - u0) as f64 / (t1 - t0).as_nanos() as f64;
    assert!((0.35..=0.65).contains(&share), "cpu share {share:.3}");
    assert!(c.stats().cpu_nr_throttled > 0);
    c.destroy().unwrap();
    fx.finish();
}

#[test]
fn many_sequential_and_concurrent_launches_leave_nothing_behind() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let limits = Limits {
        cpus: Some(1.0),
        memory: Some(64 << 20),
        pids: Some(16),
    };
    for i in 0..200 {
        let mut spec = fx.spec(&["/bin/true"]);
        spec.rootfs = Some(rootfs());
        spec.limits = limits;
        let rec = fx
            .runtime
            .launch(&spec, butte::runtime::Stdio::null().unwrap())
            .unwrap()
            .wait()
            .unwrap();
        assert_eq!(rec.status, ExitStatus::Exited(0), "launch {i}");
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..50)
            .map(|i| {
                let fx = &fx;
                s.spawn(move || {
                    let mut spec = fx.spec(&["sh", "-c", "sleep 0.2; exit 4"]);
                    spec.rootfs = Some(rootfs());
                    spec.limits = limits;
                    let mut c = fx
                        .runtime
                        .launch(&spec, butte::runtime::Stdio::null().unwrap())
                        .unwrap();
                    assert_eq!(
                        c.wait().unwrap().status,
                        ExitStatus::Exited(4),
                        "concurrent {i}"
                    );
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    });
    fx.finish();
}

#[test]
fn bad_input_gets_a_clear_error_and_leaves_no_residue() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let r = busybox();
    let r = r.to_str().unwrap();
    let empty = fx.work.path().join("empty-rootfs");
    fs::create_dir(&empty).unwrap();
    let cases: Vec<(Vec<&str>, i32, Vec<&str>)> = vec![
        (
            vec!["--image", "/nonexistent/rootfs", "--", "/bin/true"],
            125,
            vec!["/nonexistent/rootfs", "no such file"],
        ),
        (
            vec!["--image", r, "--", "/bin/no-such-binary"],
            127,
            vec!["exec /bin/no-such-binary", "no such file"],
        ),
        (
            vec!["--image", r, "--", "no-such-binary"],
            127,
            vec!["exec no-such-binary", "command not found"],
        ),
        (
            vec![
                "--image",
                empty.to_str().unwrap(),
                "--",
                "/bin/sh",
                "-c",
                "true",
            ],
            127,
            vec!["exec /bin/sh", "no such file"],
        ),
        (
            vec!["--image", r, "--", "/etc"],
            126,
            vec!["exec /etc", "is a directory"],
        ),
        (
            vec!["--image", r, "--", "/etc/passwd"],
            126,
            vec!["exec /etc/passwd", "not executable"],
        ),
        (
            vec!["--mem", "0", "--", "true"],
            125,
            vec!["memory limit 0"],
        ),
        (
            vec!["--cpus", "-1", "--", "true"],
            125,
            vec!["cpu limit -1"],
        ),
        (vec!["--pids", "0", "--", "true"], 125, vec!["pids limit 0"]),
        (
            vec!["--image", r, "--user", "nobody-here", "--", "true"],
            125,
            vec!["no user \"nobody-here\""],
        ),
    ];
    for (args, code, words) in cases {
        let out = fx.butte_run(&args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
        for w in words {
            assert!(stderr.contains(w), "{args:?}: {stderr:?} lacks {w:?}");
        }
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(fx.sandboxes().is_empty(), "{args:?} left a sandbox");
    }
    // Nothing was created inside the empty rootfs but mount points.
    fx.finish();
}

#[test]
fn capabilities_and_no_new_privs_as_seen_from_inside() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let r = busybox();
    let status = |user: Option<&str>| {
        let mut args = vec!["--image", r.to_str().unwrap()];
        if let Some(u) = user {
            args.extend(["--user", u]);
        }
        args.extend(["--", "cat", "/proc/self/status"]);
        let out = fx.butte_run(&args);
        assert!(out.status.success(), "{out:?}");
        let s = text(&out.stdout);
        let field = |k: &str| {
            s.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}:")))
                .map(|v| v.trim().to_string())
                .unwrap()
        };
        let hex = |k: &str| u64::from_str_radix(&field(k), 16).unwrap();
        (
            hex("CapEff"),
            hex("CapPrm"),
            hex("CapBnd"),
            hex("CapAmb"),
            field("NoNewPrivs"),
            field("Uid"),
        )
    };
    let mask = default_capability_mask();
    assert_eq!(mask, 0xa80425fb);
    let (eff, prm, bnd, amb, nnp, uid) = status(None);
    assert_eq!(
        (eff, prm, bnd, amb, nnp.as_str()),
        (mask, mask, mask, 0, "1")
    );
    assert!(uid.starts_with("0\t"));
    let (eff, prm, bnd, amb, nnp, uid) = status(Some("app"));
    assert_eq!((eff, prm, bnd, amb, nnp.as_str()), (0, 0, mask, 0, "1"));
    assert!(uid.starts_with("1000\t"), "{uid}");
    fx.finish();
}

/// Waits (up to 30 s) until the file at PATH holds LINE.
fn wait_for_line(path: &std::path::Path, line: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !fs::read_to_string(path).is_ok_and(|t| t.lines().any(|l| l == line)) {
        assert!(Instant::now() < deadline, "{path:?} never said {line}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn kill_with_grace_period_then_sigkill() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    // A task that handles SIGTERM exits with its own status.
    let mut spec = fx.spec(&[
        "sh",
        "-c",
        "trap 'exit 7' TERM; echo ready; while :; do sleep 0.05; done",
    ]);
    spec.rootfs = Some(rootfs());
    let (stdio, out, _) = fx.stdio("term");
    let mut c = fx.runtime.launch(&spec, stdio).unwrap();
    // Signalled once its trap is set (a slow guest may take longer than
    // any fixed pause to get there).
    wait_for_line(&out, "ready");
    assert_eq!(
        c.kill(Duration::from_secs(10)).unwrap().status,
        ExitStatus::Exited(7)
    );
    // One that ignores it is killed when the grace period ends.
    let mut spec = fx.spec(&[
        "sh",
        "-c",
        "trap '' TERM; echo ready; while :; do sleep 0.05; done",
    ]);
    spec.rootfs = Some(rootfs());
    let (stdio, out, _) = fx.stdio("ignore");
    let mut c = fx.runtime.launch(&spec, stdio).unwrap();
    wait_for_line(&out, "ready");
    let t = Instant::now();
    assert_eq!(
        c.kill(Duration::from_millis(300)).unwrap().status,
        ExitStatus::Signaled(9)
    );
    assert!(t.elapsed() >= Duration::from_millis(300));
    fx.finish();
}

#[test]
fn a_sandbox_with_a_status_file_runs_under_an_init_that_records_how_its_task_ended() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let launch = |name: &str, script: &str, user: Option<&str>| {
        let mut spec = fx.spec(&["sh", "-c", script]);
        spec.rootfs = Some(rootfs());
        spec.user = user.map(|u| butte::runtime::User::Name(u.into()));
        let status = fx.work.path().join(format!("{name}.status"));
        spec.status_file = Some(status.clone());
        let (stdio, out, _) = fx.stdio(name);
        (fx.runtime.launch(&spec, stdio).unwrap(), out, status)
    };
    // The task is the init's child; its code is recorded.
    let (mut c, out, status) = launch(
        "exit",
        "echo pid=$$ ppid=$PPID; tr '\\0' ' ' < /proc/1/cmdline; echo; exit 3",
        None,
    );
    assert_eq!(c.wait().unwrap().status, ExitStatus::Exited(3));
    assert_eq!(fs::read_to_string(&status).unwrap(), "768\n");
    let said = fs::read_to_string(&out).unwrap();
    assert!(said.starts_with("pid=2 ppid=1\nbutte launch"), "{said}");
    // A SIGTERM reaches a task that has no handler for it (as pid 1 it
    // would not), also one running as another user.
    let (mut c, out, status) = launch("term", "echo ready; exec sleep 600", Some("app"));
    wait_for_line(&out, "ready");
    let t = Instant::now();
    assert_eq!(
        c.kill(Duration::from_secs(20)).unwrap().status,
        ExitStatus::Signaled(15)
    );
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "SIGTERM not forwarded"
    );
    assert_eq!(fs::read_to_string(&status).unwrap(), "15\n");
    // The status outlives the launcher: a later one takes the sandbox over
    // by pid and learns how it ended.
    let (c, out, status) = launch(
        "adopt",
        "trap 'exit 5' TERM; echo ready; while :; do sleep 0.05; done",
        None,
    );
    wait_for_line(&out, "ready");
    let id = c.id().to_string();
    let pid = c.detach();
    let config = butte::runtime::RuntimeConfig {
        cgroup_root: "/sys/fs/cgroup".into(),
        cgroup_parent: fx.parent.clone(),
        cgroup_unit: None,
        helper: support::BUTTE.into(),
    };
    let mut adopted = butte::runtime::adopt(&config, &id, pid, Some(&status))
        .unwrap()
        .expect("the sandbox runs");
    // The init passes a SIGTERM on to the task, which traps it.
    adopted.signal(nix::sys::signal::Signal::SIGTERM).unwrap();
    let ended = adopted
        .wait_timeout(Duration::from_secs(30))
        .unwrap()
        .expect("the sandbox ended");
    assert_eq!(ended.status, Some(ExitStatus::Exited(5)));
    // The launcher's child, reaped here as its parent.
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
    assert_eq!(
        butte::runtime::recorded_status(&status),
        Some(ExitStatus::Exited(5))
    );
    // Killed outright, the init records nothing; the launcher's own wait
    // says SIGKILL.
    let (c, out, status) = launch("destroy", "echo ready; exec sleep 600", None);
    wait_for_line(&out, "ready");
    assert_eq!(c.destroy().unwrap().status, ExitStatus::Signaled(9));
    assert_eq!(fs::read_to_string(&status).unwrap(), "");
    fx.finish();
}

#[test]
fn butte_run_forwards_ctrl_c_as_a_graceful_stop() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let r = busybox();
    let child = std::process::Command::new(support::BUTTE)
        .args(["run", "--work-dir"])
        .arg(fx.work.path())
        .args([
            "--cgroup-parent",
            &fx.parent,
            "--image",
            r.to_str().unwrap(),
            "--",
        ])
        .args([
            "sh",
            "-c",
            "trap 'echo got term; exit 5' TERM; echo ready; while :; do sleep 0.05; done",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the task runs, then interrupt butte as a terminal would.
    let deadline = Instant::now() + Duration::from_secs(10);
    while fx
        .sandboxes()
        .first()
        .map(|s| fs::read_to_string(s.join("stdout")).unwrap_or_default())
        != Some("ready\n".into())
    {
        assert!(Instant::now() < deadline, "task never became ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    assert_eq!(text(&out.stdout), "ready\ngot term\n");
    assert!(
        text(&out.stderr).contains("stopped on SIGINT"),
        "{}",
        text(&out.stderr)
    );
    fx.finish();
}

#[test]
fn network_none_has_only_loopback() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let mut spec = fx.spec(&["cat", "/proc/net/dev"]);
    spec.rootfs = Some(rootfs());
    spec.network = Network::None;
    let (stdio, out, _) = fx.stdio("net");
    let rec = fx.runtime.launch(&spec, stdio).unwrap().wait().unwrap();
    assert_eq!(rec.status, ExitStatus::Exited(0));
    let text = fs::read_to_string(out).unwrap();
    let ifaces: Vec<&str> = text
        .lines()
        .skip(2)
        .map(|l| l.split(':').next().unwrap().trim())
        .collect();
    assert_eq!(ifaces, ["lo"]);
    fx.finish();
}

#[test]
fn rlimits_mounts_and_read_only_rootfs() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let r = busybox();
    let data = fx.work.path().join("data");
    fs::create_dir(&data).unwrap();
    fs::write(data.join("f"), "shared\n").unwrap();
    let mount = format!("{}:/data:ro", data.display());
    let out = fx.butte_run(&[
        "--image", r.to_str().unwrap(), "--read-only", "--ulimit", "nofile=100:200", "--mount", &mount, "--",
        "sh", "-c",
        "ulimit -n; ulimit -Hn; cat /data/f; touch /data/x 2>/dev/null || echo data-ro; \
         touch /rootfs-file 2>/dev/null || echo root-ro; echo ok > $MESOS_SANDBOX/out && echo sandbox-rw",
    ]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        text(&out.stdout),
        "100\n200\nshared\ndata-ro\nroot-ro\nsandbox-rw\n"
    );
    assert!(!r.join("rootfs-file").exists());
    assert!(!data.join("x").exists());
    fx.finish();
}

#[test]
fn the_task_inherits_only_its_three_standard_streams() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let r = busybox();
    // `butte run` started with an extra, inheritable fd 7 (single-threaded
    // caller: the helper runs forked, without re-exec).
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(r#"exec 7</dev/null; exec "$0" run --work-dir "$1" --cgroup-parent "$2" --image "$3" -- ls /proc/self/fd"#)
        .args([support::BUTTE, fx.work.path().to_str().unwrap(), &fx.parent, r.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    // 0, 1, 2 and the directory ls reads.
    assert_eq!(
        text(&out.stdout).split_whitespace().collect::<Vec<_>>(),
        ["0", "1", "2", "3"]
    );
    // Through the API from this multi-threaded test (re-executed helper).
    let mut spec = fx.spec(&["ls", "/proc/self/fd"]);
    spec.rootfs = Some(rootfs());
    let (stdio, out, _) = fx.stdio("fds");
    let rec = fx.runtime.launch(&spec, stdio).unwrap().wait().unwrap();
    assert_eq!(rec.status, ExitStatus::Exited(0));
    assert_eq!(
        fs::read_to_string(out)
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["0", "1", "2", "3"]
    );
    fx.finish();
}
