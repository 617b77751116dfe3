//! Issue 18, beyond the chaos run: the agent's other ways back after a
//! SIGKILL, each against the scripted master.
//! - the master away for long while tasks finish, the agent killed and
//!   restarted in between: every held update arrives, in order, once the
//!   master is back;
//! - a reboot (`--runtime_dir` wiped, processes and cgroups gone, another
//!   boot id): executors are not looked for, their tasks get a terminal
//!   update, stale state is removed, and the agent keeps its id;
//! - `--recover=cleanup`: the old executors are killed, the agent exits by
//!   itself, and the next start registers as a new agent.

use crate::agent::{check_update_streams, start};
use crate::chaos::is_terminal;
use crate::support::master::{
    self, command_task, describe, framework, status, task_and_state, AgentProcess, FakeMaster, WAIT,
};
use crate::support::{enabled, files_named, processes_in_cgroup, Fixture};
use butte::proto::mesos::{task_status, TaskState};
use std::collections::BTreeSet;
use std::fs;
use std::time::{Duration, Instant};

/// Launches the tasks and acknowledges each one's TASK_RUNNING (and what
/// came before it).
fn launch_running(master: &FakeMaster, fw: &butte::proto::mesos::FrameworkInfo, ids: &[&str]) {
    for id in ids {
        master.run_task(fw, &command_task(id, "sleep 600"));
    }
    for id in ids {
        master.ack_until(id, TaskState::TaskRunning);
    }
}

/// Issue 18 item 3: the master stops for a long time (shortened here) while
/// tasks finish; the agent is SIGKILLed and restarted while it is away;
/// when a master comes back on the same address, the agent re-registers
/// and every held update arrives, in order per task, and none again once
/// acknowledged.
#[test]
fn updates_held_while_the_master_is_away_survive_an_agent_restart() {
    if !enabled() {
        return;
    }
    let (fx, master, mut agent) = start(&[]);
    let fw = framework("away");
    launch_running(&master, &fw, &["steady"]);
    // Tasks that end while the master is away; only their first update
    // reached it (unacknowledged).
    let short: Vec<String> = (0..6).map(|i| format!("short-{i}")).collect();
    for (i, id) in short.iter().enumerate() {
        let code = if i % 3 == 2 { 3 } else { 0 };
        master.run_task(&fw, &command_task(id, &format!("sleep 2; exit {code}")));
    }
    for id in &short {
        master.expect_status(id, TaskState::TaskStarting, WAIT);
    }
    let port = master.port();
    master.stop();
    // The tasks end; the executors wait for their acknowledgements.
    std::thread::sleep(Duration::from_secs(4));
    agent.kill();
    std::thread::sleep(Duration::from_millis(500));
    agent.restart();
    // Away for a while longer: the restarted agent keeps trying.
    std::thread::sleep(Duration::from_secs(6));
    agent.assert_running();

    let master2 = FakeMaster::start(port);
    let rereg = master2.reregister();
    let listed: BTreeSet<String> = rereg
        .tasks
        .iter()
        .map(|t| t.task_id.value.clone())
        .collect();
    for id in short.iter().chain(std::iter::once(&"steady".to_string())) {
        assert!(listed.contains(id), "{id} missing from {listed:?}");
    }
    for (i, id) in short.iter().enumerate() {
        let end = if i % 3 == 2 {
            TaskState::TaskFailed
        } else {
            TaskState::TaskFinished
        };
        // STARTING (not acknowledged by the first master), then the rest.
        for state in [TaskState::TaskStarting, TaskState::TaskRunning, end] {
            let u = master2.expect_ack(id, state);
            assert_eq!(
                status(&u).source,
                Some(task_status::Source::Executor as i32),
                "{}",
                describe(&u)
            );
        }
    }
    master2.kill_task(&fw, "steady", None);
    master2.expect_ack("steady", TaskState::TaskKilled);
    // Retries are 1 s apart: wait out a few, then check the streams.
    master2.settle(Duration::from_secs(3));
    check_update_streams(&master2);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !processes_in_cgroup(&fx.parent).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(master);
    master::finish(fx, master2, agent);
}

/// What a reboot does to the agent's world: every process under the
/// test's cgroups killed, mounts and the runtime directory gone, another
/// boot id.
fn as_after_a_reboot(fx: &Fixture, agent: &AgentProcess) {
    for pid in processes_in_cgroup(&fx.parent) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !processes_in_cgroup(&fx.parent).is_empty() {
        assert!(Instant::now() < deadline, "processes survive SIGKILL");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The empty cgroups are left in place (a reboot would remove them):
    // the agent must remove them as stale state.
    // Mounts go with the reboot, and so does the runtime directory (a
    // tmpfs under /run).
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let run = agent.runtime_dir.display().to_string();
    let mut points: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| p.starts_with(&run))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = nix::mount::umount2(p, nix::mount::MntFlags::MNT_DETACH);
    }
    fs::remove_dir_all(&agent.runtime_dir).unwrap();
    // The boot the checkpoints were made in is no longer this one.
    fs::write(
        agent.work_dir.join("meta/boot_id"),
        "00000000-0000-4000-8000-000000000000\n",
    )
    .unwrap();
}

/// Issue 18 item 4: after a reboot the agent recovers as Mesos does: it
/// does not look for the old executors (their pids may now be anybody's),
/// reports their tasks, removes what is left of their runs, and
/// re-registers with its id.
#[test]
fn after_a_reboot_the_tasks_are_reported_and_stale_state_removed() {
    if !enabled() {
        return;
    }
    let (fx, master, mut agent) = start(&[]);
    let fw = framework("reboot");
    launch_running(&master, &fw, &["one", "two"]);
    let id = master.slave_id();
    agent.kill();
    as_after_a_reboot(&fx, &agent);
    // After a reboot the old executors' pids may belong to anybody: a
    // process that has one now must be left alone.
    let mut bystander = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let pid_files = files_named(&agent.work_dir.join("meta"), "forked.pid");
    assert_eq!(pid_files.len(), 2, "{pid_files:?}");
    for f in &pid_files {
        fs::write(f, bystander.id().to_string()).unwrap();
    }
    agent.restart();
    let rereg = master.reregister();
    assert_eq!(rereg.slave.id.as_ref(), Some(&id), "a new agent id");
    for task in ["one", "two"] {
        // (A TASK_RUNNING whose ack the agent did not log comes again first.)
        let u = master.ack_until(task, TaskState::TaskFailed);
        assert_eq!(
            status(&u).reason,
            Some(task_status::Reason::ExecutorTerminated as i32),
            "{}",
            describe(&u)
        );
        assert!(
            status(&u)
                .message
                .as_deref()
                .is_some_and(|m| m.contains("reboot")),
            "{}",
            describe(&u)
        );
    }
    assert!(
        bystander.try_wait().unwrap().is_none(),
        "the process that has an old executor's pid was killed"
    );
    let _ = bystander.kill();
    let _ = bystander.wait();
    master.settle(Duration::from_secs(2));
    let extra: Vec<String> = master
        .statuses()
        .iter()
        .filter(|u| {
            is_terminal(task_and_state(u).1)
                && !["one", "two"].contains(&task_and_state(u).0.as_str())
        })
        .map(describe)
        .collect();
    assert!(extra.is_empty(), "{extra:?}");
    // Nothing of the old runs is left outside their sandboxes.
    let provisioner = agent.work_dir.join("provisioner");
    let left: Vec<_> = fs::read_dir(&provisioner)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "provisioner leftovers: {left:?}");
    let runs = agent.runtime_dir.join("containers");
    let left: Vec<_> = fs::read_dir(&runs)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "runtime dir leftovers: {left:?}");
    master::finish(fx, master, agent);
}

/// `--recover=cleanup`, as the Mesos agent: kill every old executor,
/// remove `meta/slaves/latest` and exit; the next start registers as a new
/// agent.
#[test]
fn recover_cleanup_kills_the_old_executors_and_the_next_start_is_a_new_agent() {
    if !enabled() {
        return;
    }
    let (fx, master, mut agent) = start(&[]);
    let fw = framework("cleanup");
    launch_running(&master, &fw, &["old-1", "old-2"]);
    let old = master.slave_id();
    assert!(!processes_in_cgroup(&fx.parent).is_empty());
    agent.kill();
    agent.restart_with(&["--recover", "cleanup"]);
    let exit = agent
        .wait_exit(Duration::from_secs(60))
        .unwrap_or_else(|| panic!("still running in cleanup mode\n{}", agent.log_tail(40)));
    assert!(exit.success(), "{exit:?}\n{}", agent.log_tail(40));
    let left = processes_in_cgroup(&fx.parent);
    assert!(left.is_empty(), "processes left: {left:?}");
    assert!(
        fs::symlink_metadata(agent.work_dir.join("meta/slaves/latest")).is_err(),
        "meta/slaves/latest is still there"
    );
    // It never spoke to the master.
    master.settle(Duration::from_millis(300));
    let spoke: Vec<String> = master
        .history()
        .iter()
        .filter(|r| r.name.contains("ReregisterSlave"))
        .map(|r| r.name.clone())
        .collect();
    assert!(spoke.is_empty(), "{spoke:?}");
    // The next start is a new agent. (Registrations the first agent retried
    // before its answer came are still queued: they go unanswered.)
    while master
        .take(Duration::ZERO, |r| {
            r.name.ends_with(".RegisterSlaveMessage")
        })
        .is_some()
    {}
    agent.restart();
    let (_, new) = master.register();
    assert_ne!(new, old);
    let deadline = Instant::now() + WAIT;
    while !agent
        .log()
        .contains(&format!("registered with the master id=\"{}\"", new.value))
    {
        assert!(Instant::now() < deadline, "{}", agent.log_tail(20));
        std::thread::sleep(Duration::from_millis(20));
    }
    master::finish(fx, master, agent);
}
