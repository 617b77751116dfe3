//! Issue 17, a full work dir: launches fail with a clear reason that
//! reaches the master, the update logs and checkpoints stay readable (no
//! torn record), no acknowledged update is lost, and the agent recovers
//! once space returns.

use crate::support::master::{command_task, framework, status, AgentProcess, FakeMaster};
use crate::support::{enabled, files_named, Fixture, Tmpfs};
use butte::proto::mesos::{task_status, TaskState};
use std::fs;

#[test]
fn a_full_work_dir_fails_launches_clearly_and_loses_no_acknowledged_update() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let work = fx.work.path().join("agent-work");
    let tmpfs = Tmpfs::mount(&work, 16);
    let master = FakeMaster::start(0);
    let mut agent = AgentProcess::start(&fx, &master, &[]);
    master.register();
    let fw = framework("full");
    master.run_task(&fw, &command_task("before", "sleep 5"));
    let mut acked = vec![
        master.expect_ack("before", TaskState::TaskStarting),
        master.expect_ack("before", TaskState::TaskRunning),
    ];

    // Fill the work dir to the last page.
    let filler = work.join("filler");
    let _ = std::process::Command::new("dd")
        .args(["if=/dev/zero", "bs=64k", "status=none"])
        .arg(format!("of={}", filler.display()))
        .status()
        .unwrap();
    let st = nix::sys::statvfs::statvfs(&work).unwrap();
    assert_eq!(st.blocks_available(), 0, "the tmpfs is not full");

    // A launch now fails, and says why; the update reaches the master.
    master.run_task(&fw, &command_task("refused", "echo never"));
    let failed = master.ack_until("refused", TaskState::TaskFailed);
    let s = status(&failed);
    assert_eq!(
        s.reason,
        Some(task_status::Reason::ContainerLaunchFailed as i32),
        "{s:?}"
    );
    let message = s.message.clone().unwrap_or_default();
    assert!(
        message.contains("the work dir's filesystem is full"),
        "{message}"
    );
    assert!(agent.log().contains("sending it unlogged"));

    // "before" ends while the disk is full; space returns; a restart
    // reconnects its executor, which resends what was not taken.
    std::thread::sleep(std::time::Duration::from_secs(6));
    fs::remove_file(&filler).unwrap();
    agent.terminate();
    agent.restart();
    master.reregister();
    acked.push(master.ack_until("before", TaskState::TaskFinished));

    // Every log replays whole, and holds every update the master
    // acknowledged for its task.
    let found = files_named(&work.join("meta"), "task.updates");
    assert!(!found.is_empty());
    for log in &found {
        let replay =
            butte::state::updates::replay(log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        let task = log.parent().unwrap().file_name().unwrap().to_str().unwrap();
        if task == "before" {
            for u in &acked {
                assert!(
                    replay.updates.iter().any(|r| r.uuid == u.uuid),
                    "an acknowledged update of {task} is missing from {}",
                    log.display()
                );
            }
        }
    }
    assert!(!agent.log().contains("corrupt"), "{}", agent.log_tail(40));

    // Launches work again.
    master.run_task(&fw, &command_task("after", "echo ok"));
    master.ack_until("after", TaskState::TaskFinished);
    agent.shutdown();
    master.assert_clean();
    drop(agent);
    drop(master);
    drop(tmpfs);
    fx.finish();
}
