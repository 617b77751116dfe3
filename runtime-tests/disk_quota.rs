//! Issue 17, disk quota: with `--enforce_container_disk_quota`, a task
//! writing past its `disk` resource is killed with Mesos' reason, source
//! and message; one that stays within it finishes.

use crate::support::master::{
    self, command_task, framework, scalar, status, AgentProcess, FakeMaster,
};
use crate::support::{enabled, Fixture};
use butte::proto::mesos::{task_status, TaskState};

#[test]
fn a_task_writing_past_its_disk_is_killed_with_the_mesos_limitation() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let master = FakeMaster::start(0);
    let agent = AgentProcess::start(
        &fx,
        &master,
        &[
            "--enforce_container_disk_quota",
            "--container_disk_watch_interval",
            "1secs",
        ],
    );
    master.register();
    let fw = framework("quota");
    let mut hog = command_task(
        "hog",
        "dd if=/dev/zero of=big bs=1M count=20 status=none; sleep 60",
    );
    hog.resources.push(scalar("disk", 10.0));
    let mut modest = command_task(
        "modest",
        "dd if=/dev/zero of=small bs=1M count=2 status=none; sleep 3",
    );
    modest.resources.push(scalar("disk", 10.0));
    master.run_task(&fw, &hog);
    master.run_task(&fw, &modest);
    let failed = master.ack_until("hog", TaskState::TaskFailed);
    let s = status(&failed);
    assert_eq!(
        s.reason,
        Some(task_status::Reason::ContainerLimitationDisk as i32),
        "{s:?}"
    );
    assert_eq!(s.source, Some(task_status::Source::Slave as i32), "{s:?}");
    let message = s.message.clone().unwrap_or_default();
    let used = message
        .strip_prefix("Disk usage (")
        .and_then(|m| m.strip_suffix(") exceeds quota (10MB)"))
        .unwrap_or_else(|| panic!("not the Mesos message: {message:?}"));
    // 20 MiB written, killed as soon as it is seen: 10 to 21 MB.
    let kb: u64 = match used.strip_suffix("MB") {
        Some(mb) => mb.parse::<u64>().unwrap() << 10,
        None => used.strip_suffix("KB").unwrap().parse().unwrap(),
    };
    assert!(((10 << 10) + 1..=(21 << 10)).contains(&kb), "{message}");
    master.ack_until("modest", TaskState::TaskFinished);
    master::finish(fx, master, agent);
}

/// The quota of an executor taken over after an agent restart is enforced
/// too.
#[test]
fn the_disk_quota_holds_after_an_agent_restart() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let master = FakeMaster::start(0);
    let mut agent = AgentProcess::start(
        &fx,
        &master,
        &[
            "--enforce_container_disk_quota=true",
            "--container_disk_watch_interval",
            "1secs",
        ],
    );
    master.register();
    let fw = framework("quota-restart");
    let mut hog = command_task(
        "late-hog",
        "sleep 5; dd if=/dev/zero of=big bs=1M count=12 status=none; sleep 60",
    );
    hog.resources.push(scalar("disk", 8.0));
    master.run_task(&fw, &hog);
    master.expect_ack("late-hog", TaskState::TaskStarting);
    master.expect_ack("late-hog", TaskState::TaskRunning);
    agent.terminate();
    agent.restart();
    master.reregister();
    let failed = master.ack_until("late-hog", TaskState::TaskFailed);
    let s = status(&failed);
    assert_eq!(
        s.reason,
        Some(task_status::Reason::ContainerLimitationDisk as i32),
        "{s:?}"
    );
    let message = s.message.clone().unwrap_or_default();
    assert!(
        message.starts_with("Disk usage (") && message.ends_with(") exceeds quota (8MB)"),
        "{message}"
    );
    master::finish(fx, master, agent);
}

/// CPU seconds (user + system) PID has used.
fn cpu_secs(pid: i32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // Fields after the command's closing parenthesis; utime and stime are
    // the 14th and 15th fields of the line.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks
        / nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .unwrap()
            .unwrap() as f64
}

/// This thread's CPU seconds.
fn thread_cpu_secs() -> f64 {
    let u = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_THREAD).unwrap();
    let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
    t(u.user_time()) + t(u.system_time())
}

/// The driver of bench/disk-watch.sh: BUTTE_BENCH_SANDBOXES (1000)
/// finished sandboxes, with their `meta/` runs, in the work dir of an
/// agent restarted over them (so garbage collection schedules them all),
/// its disk watch every second (60 times Mesos' default) and the quota
/// watcher on: the agent's CPU time over BUTTE_BENCH_SECS (60). Then the
/// quota watcher's walk itself over those sandboxes, as it measures 1000
/// running containers: one pass's CPU time, against the default 15 s
/// interval. Prints one BENCH_DISK_WATCH JSON line.
#[test]
#[ignore]
fn bench_disk_watch() {
    use std::time::{Duration, Instant};
    assert!(
        enabled(),
        "bench_disk_watch needs BUTTE_RUNTIME_TESTS=1 and root"
    );
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (n, secs) = (
        env("BUTTE_BENCH_SANDBOXES", 1000),
        env("BUTTE_BENCH_SECS", 60),
    );
    let fx = Fixture::new();
    let master = FakeMaster::start(0);
    let flags = [
        "--disk_watch_interval",
        "1secs",
        "--enforce_container_disk_quota",
        "--container_disk_watch_interval",
        "1secs",
    ];
    let mut agent = AgentProcess::start(&fx, &master, &flags);
    let (_, slave) = master.register();
    agent.terminate();
    let work = butte::state::paths::WorkDir::new(&agent.work_dir);
    let mut sandboxes = Vec::new();
    for i in 0..n {
        let (fw, ex, c) = ("bench-fw", format!("e{i}"), format!("c{i}"));
        let run = work.executor_sandbox(&slave.value, fw, &ex, &c);
        std::fs::create_dir_all(run.join("fetched/lib")).unwrap();
        for f in [
            "stdout",
            "stderr",
            "fetched/app.tar",
            "fetched/lib/a",
            "fetched/lib/b",
        ] {
            std::fs::write(run.join(f), vec![b'x'; 3000]).unwrap();
        }
        std::fs::create_dir_all(work.meta_run(&slave.value, fw, &ex, &c)).unwrap();
        sandboxes.push(run);
    }
    agent.restart();
    master.reregister();
    std::thread::sleep(Duration::from_secs(3));
    let (t0, c0) = (Instant::now(), cpu_secs(agent.pid()));
    std::thread::sleep(Duration::from_secs(secs));
    let (wall, cpu) = (t0.elapsed().as_secs_f64(), cpu_secs(agent.pid()) - c0);
    agent.assert_running();
    assert!(
        agent.log().contains(&format!("directories={}", 4 * n + 2)),
        "not every directory was scheduled; {}",
        agent.log_tail(20)
    );

    // The quota watcher's pass over n sandboxes (warm cache, as every pass
    // after the first).
    let measure = || {
        let c = thread_cpu_secs();
        for s in &sandboxes {
            let used =
                butte::containerizer::mesos::sandbox_disk_usage(std::slice::from_ref(s)).unwrap();
            assert!(used >= 5 * 4096);
        }
        thread_cpu_secs() - c
    };
    measure();
    let passes: Vec<f64> = (0..5).map(|_| measure()).collect();
    let pass = passes.iter().sum::<f64>() / passes.len() as f64;
    let json = serde_json::json!({
        "sandboxes": n,
        "agent": {
            "wall_s": wall,
            "cpu_s": cpu,
            "core_fraction": cpu / wall,
            "disk_watch_interval_s": 1,
        },
        "quota_pass": {
            "cpu_s": pass,
            "core_fraction_at_15s": pass / 15.0,
            "core_fraction_at_1s": pass,
        },
    });
    println!("BENCH_DISK_WATCH {json}");
    master::finish(fx, master, agent);
}
