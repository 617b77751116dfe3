//! Issue 17, sandbox GC: the directories of a finished executor (sandbox
//! and `meta/` run) go after `--gc_delay`, a restart in between keeps the
//! schedule, a running executor's stay; a nearly full work dir removes
//! them at once; `butte run --gc-delay` removes old finished standalone
//! sandboxes and never a running one's.

use crate::support::master::{command_task, framework, AgentProcess, FakeMaster, WAIT};
use crate::support::{enabled, Fixture, Tmpfs, BUTTE};
use butte::proto::mesos::{FrameworkInfo, SlaveId, TaskState};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// The run directory `runs/latest` points to, and its `meta/` twin.
fn run_dirs(
    agent: &AgentProcess,
    slave: &SlaveId,
    fw: &FrameworkInfo,
    ex: &str,
) -> (PathBuf, PathBuf) {
    let run = fs::canonicalize(agent.sandbox(slave, fw, ex)).expect("runs/latest");
    let rel = run.strip_prefix(&agent.work_dir).unwrap().to_path_buf();
    (run, agent.work_dir.join("meta").join(rel))
}

/// Waits until the container of run directory `run` is gone (its
/// cgroups removed: the agent then forgets the executor).
fn wait_ended(fx: &Fixture, agent: &AgentProcess, run: &Path) {
    let id = run.file_name().unwrap().to_str().unwrap();
    let deadline = Instant::now() + WAIT;
    while fx.cgroup_dirs(id).iter().any(|d| d.exists()) {
        assert!(
            Instant::now() < deadline,
            "executor still running; {}",
            agent.log_tail(40)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn wait_gone(paths: &[&Path], within: Duration, agent: &AgentProcess) -> Duration {
    let start = Instant::now();
    while paths.iter().any(|p| p.exists()) {
        assert!(
            start.elapsed() < within,
            "still there after {within:?}: {:?}; {}",
            paths.iter().filter(|p| p.exists()).collect::<Vec<_>>(),
            agent.log_tail(40)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    start.elapsed()
}

#[test]
fn finished_executor_directories_go_after_gc_delay_across_a_restart() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let master = FakeMaster::start(0);
    // No headroom: the age limit is 10 s times the free fraction of the
    // disk (the host's disk is not empty).
    let mut agent = AgentProcess::start(
        &fx,
        &master,
        &[
            "--gc_delay",
            "10secs",
            "--gc_disk_headroom",
            "0",
            "--disk_watch_interval",
            "1secs",
        ],
    );
    let free = 1.0 - butte::state::gc::disk_usage(fx.work.path()).unwrap();
    let limit = Duration::from_secs(10).mul_f64(free);
    assert!(
        limit > Duration::from_secs(4),
        "the test needs a disk less than 60% full"
    );
    let (_, slave) = master.register();
    let fw = framework("gc");
    master.run_task(&fw, &command_task("keeper", "sleep 120"));
    master.expect_ack("keeper", TaskState::TaskStarting);
    master.expect_ack("keeper", TaskState::TaskRunning);
    master.run_task(&fw, &command_task("done", "echo bye"));
    master.ack_until("done", TaskState::TaskFinished);
    let (run, meta_run) = run_dirs(&agent, &slave, &fw, "done");
    let (keeper_run, keeper_meta) = run_dirs(&agent, &slave, &fw, "keeper");
    assert!(run.join("stdout").exists() && meta_run.exists());
    // The executor ends once its update is acknowledged: scheduled now.
    wait_ended(&fx, &agent, &run);
    let ended = Instant::now();
    let executor_dir = run.parent().unwrap().parent().unwrap().to_path_buf();
    let meta_executor = meta_run.parent().unwrap().parent().unwrap().to_path_buf();

    // A restart before the delay: the schedule comes back from the mtimes.
    std::thread::sleep(Duration::from_secs(3));
    agent.terminate();
    assert!(run.exists() && meta_run.exists(), "removed before gc_delay");
    agent.restart();
    master.reregister();
    let gone = [
        run.as_path(),
        meta_run.as_path(),
        executor_dir.as_path(),
        meta_executor.as_path(),
    ];
    wait_gone(&gone, Duration::from_secs(20), &agent);
    let after = ended.elapsed();
    assert!(
        after + Duration::from_millis(1500) >= limit,
        "removed {after:?} after the executor ended, before the {limit:?} age limit"
    );
    // The running executor and its framework keep theirs.
    assert!(keeper_run.join("stdout").exists() && keeper_meta.exists());
    // The renamed trees are removed from gc/ in the background.
    let trash_empty =
        || fs::read_dir(agent.work_dir.join("gc")).is_ok_and(|mut d| d.next().is_none());
    let deadline = Instant::now() + Duration::from_secs(5);
    while !trash_empty() {
        assert!(Instant::now() < deadline, "gc/ never emptied");
        std::thread::sleep(Duration::from_millis(50));
    }

    master.kill_task(&fw, "keeper", None);
    master.ack_until("keeper", TaskState::TaskKilled);
    // Its framework goes with it once the delay has passed.
    let fw_dir = executor_dir
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    wait_gone(
        &[&keeper_run, &keeper_meta, &fw_dir],
        Duration::from_secs(20),
        &agent,
    );
    crate::support::master::finish(fx, master, agent);
}

#[test]
fn a_nearly_full_work_dir_removes_finished_sandboxes_at_once() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let work = fx.work.path().join("agent-work");
    let tmpfs = Tmpfs::mount(&work, 64);
    let master = FakeMaster::start(0);
    // The default delay, a week: only the disk's usage can shorten it.
    let mut agent = AgentProcess::start(&fx, &master, &["--disk_watch_interval", "1secs"]);
    let (_, slave) = master.register();
    let fw = framework("gc-full");
    master.run_task(&fw, &command_task("small", "echo hello"));
    master.ack_until("small", TaskState::TaskFinished);
    let (run, meta_run) = run_dirs(&agent, &slave, &fw, "small");
    wait_ended(&fx, &agent, &run);
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        run.join("stdout").exists(),
        "removed with a nearly empty disk"
    );

    // 58 of 64 MiB: usage over 1 - headroom (0.9), so the age limit is 0.
    let filler = work.join("filler");
    let status = std::process::Command::new("dd")
        .args(["if=/dev/zero", "bs=1M", "count=58", "status=none"])
        .arg(format!("of={}", filler.display()))
        .status()
        .unwrap();
    assert!(status.success());
    let took = wait_gone(&[&run, &meta_run], Duration::from_secs(15), &agent);
    assert!(
        agent.log().contains("max allowed age: 0ns"),
        "{}",
        agent.log_tail(40)
    );
    eprintln!("removed {took:?} after the disk filled");
    fs::remove_file(&filler).unwrap();
    agent.shutdown();
    master.assert_clean();
    drop(agent);
    drop(master);
    drop(tmpfs);
    fx.finish();
}

fn set_age(path: &Path, age: Duration) {
    File::open(path)
        .unwrap()
        .set_modified(SystemTime::now() - age)
        .unwrap();
}

#[test]
fn butte_run_gc_removes_old_finished_sandboxes_only() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let day = Duration::from_secs(86400);
    assert!(fx.butte_run(&["--", "true"]).status.success());
    assert!(fx.butte_run(&["--", "true"]).status.success());
    let sandboxes = fx.sandboxes();
    assert_eq!(sandboxes.len(), 2);
    // One finished two days ago, one just now.
    set_age(&sandboxes[0], 2 * day);
    // A long task whose sandbox is as old: it runs, so it stays.
    let mut running = std::process::Command::new(BUTTE)
        .args(["run", "--work-dir"])
        .arg(fx.work.path())
        .args(["--cgroup-parent", &fx.parent, "--", "sleep", "30"])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let long = loop {
        if let Some(s) = fx.sandboxes().into_iter().find(|s| !sandboxes.contains(s)) {
            break s;
        }
        assert!(Instant::now() < deadline, "the long task never started");
        std::thread::sleep(Duration::from_millis(20));
    };
    set_age(&long, 2 * day);

    let out = fx.butte_run(&["--gc-delay", "1days", "--", "true"]);
    assert!(out.status.success(), "{out:?}");
    let now = fx.sandboxes();
    assert!(!sandboxes[0].exists(), "the old finished sandbox stayed");
    assert!(sandboxes[1].exists(), "the young sandbox was removed");
    assert!(long.exists(), "the running task's sandbox was removed");
    assert_eq!(now.len(), 3);

    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(running.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    running.wait().unwrap();
    fx.finish();
}
