//! Issue 17, item 2: task log rotation (`--container_logger=
//! org_apache_mesos_LogrotateContainerLogger`) end to end: a real agent
//! under the fake master, command tasks that print a lot, and the files
//! left in their sandboxes.

use crate::support::enabled;
use crate::support::master::{self, command_task, framework, resources, AgentProcess, FakeMaster};
use crate::support::Fixture;
use butte::proto::mesos::environment::Variable;
use butte::proto::mesos::internal::StatusUpdate;
use butte::proto::mesos::{Environment, FrameworkInfo, TaskInfo, TaskState};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const MB: u64 = 1 << 20;

fn start(extra: &[&str]) -> (Fixture, FakeMaster, AgentProcess) {
    let fx = Fixture::new();
    let master = FakeMaster::start(0);
    let mut args = vec![
        "--container_logger",
        "org_apache_mesos_LogrotateContainerLogger",
    ];
    args.extend_from_slice(extra);
    let agent = AgentProcess::start(&fx, &master, &args);
    master.register();
    (fx, master, agent)
}

/// A command task with room to print fast (two cpus, 256 MB).
fn task(id: &str, cmd: &str) -> TaskInfo {
    let mut t = command_task(id, cmd);
    t.resources = resources(2.0, 256.0);
    t
}

/// The task's command environment gets NAME=VALUE.
fn with_env(mut t: TaskInfo, vars: &[(&str, &str)]) -> TaskInfo {
    let command = t.command.as_mut().unwrap();
    command.environment = Some(Environment {
        variables: vars
            .iter()
            .map(|(k, v)| Variable {
                name: k.to_string(),
                value: Some(v.to_string()),
                ..Variable::default()
            })
            .collect(),
    });
    t
}

/// `stdout*` or `stderr*` files of DIR with their sizes, sorted by name.
fn logs(dir: &Path, stream: &str) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().starts_with(stream))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().len(),
            )
        })
        .collect();
    v.sort();
    v
}

fn sandbox(master: &FakeMaster, agent: &AgentProcess, fw: &FrameworkInfo, task: &str) -> PathBuf {
    agent.sandbox(&master.slave_id(), fw, task)
}

/// Acknowledges TASK's updates (a resent one too) until a terminal one,
/// which it returns.
fn end_of(master: &FakeMaster, task: &str, limit: Duration) -> StatusUpdate {
    loop {
        let u = master.expect_update(&format!("the end of {task}"), limit, |u| {
            master::task_and_state(u).0 == task
        });
        master.ack(&u);
        if master::TERMINAL.contains(&master::task_and_state(&u).1) {
            return u;
        }
    }
}

/// Runs TASK to TASK_FINISHED within LIMIT (else panics with what the
/// sandbox holds); returns how long it took from TASK_RUNNING.
fn run_to_end(
    master: &FakeMaster,
    agent: &AgentProcess,
    fw: &FrameworkInfo,
    task: &TaskInfo,
    limit: Duration,
) -> Duration {
    let id = task.task_id.value.as_str();
    master.run_task(fw, task);
    master.ack_until(id, TaskState::TaskRunning);
    let running = Instant::now();
    let end = end_of(master, id, limit);
    let took = running.elapsed();
    let dir = sandbox(master, agent, fw, id);
    assert_eq!(
        master::task_and_state(&end).1,
        TaskState::TaskFinished,
        "{}\nfiles: {:?}\nstderr: {}",
        master::describe(&end),
        logs(&dir, "std"),
        fs::read_to_string(dir.join("stderr")).unwrap_or_default()
    );
    took
}

/// The check: 200 MB printed under a 10 MB cap with `rotate 3`
/// leaves `stdout`, `stdout.1`..`stdout.3`, none over 10 MB, the newest
/// bytes last; the task finishes (the executor drains as fast as it
/// prints). A task's own `CONTAINER_LOGGER_*` variables override the
/// agent's flags, as in Mesos.
#[test]
fn task_output_is_capped_and_rotated_and_never_stalls() {
    if !enabled() {
        return;
    }
    let (fx, master, agent) = start(&[
        "--logrotate_max_stdout_size",
        "10MB",
        "--logrotate_stdout_options",
        "rotate 3",
        "--logrotate_max_stderr_size",
        "1MB",
    ]);
    let fw = framework("logrotate");
    let big = task(
        "big",
        "yes 'a line of forty bytes, printed forever' | head -c 209715200; echo END; echo to-stderr >&2",
    );
    let took = run_to_end(&master, &agent, &fw, &big, Duration::from_secs(120));
    let dir = sandbox(&master, &agent, &fw, "big");
    let out = logs(&dir, "stdout");
    let names: Vec<&str> = out.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["stdout", "stdout.1", "stdout.2", "stdout.3"],
        "{out:?}"
    );
    for (name, len) in &out {
        assert!(*len <= 10 * MB, "{name} holds {len} bytes, over the cap");
    }
    for (name, len) in &out[1..] {
        assert_eq!(*len, 10 * MB, "{name} was rotated before it was full");
    }
    // 200 MB is 20 full files: "END\n" starts the 21st.
    let newest = fs::read_to_string(dir.join("stdout")).unwrap();
    assert!(newest.ends_with("END\n"), "{newest:?}");
    let older = fs::read(dir.join("stdout.1")).unwrap();
    assert!(
        String::from_utf8_lossy(&older).contains("printed forever\na line"),
        "not the task's bytes"
    );
    // stderr went its own way, capped at 1 MB.
    let err = fs::read_to_string(dir.join("stderr")).unwrap();
    assert!(err.contains("to-stderr"), "{err}");
    assert!(logs(&dir, "stderr").iter().all(|(_, l)| *l <= MB));
    eprintln!("200 MB through the 10 MB cap in {took:.2?}");

    // Overrides from the task's environment: 1 MB files, one kept.
    let small = with_env(
        task("small", "head -c 5242880 /dev/zero; echo done >&2"),
        &[
            ("CONTAINER_LOGGER_MAX_STDOUT_SIZE", "1MB"),
            ("CONTAINER_LOGGER_LOGROTATE_STDOUT_OPTIONS", "rotate 1"),
        ],
    );
    run_to_end(&master, &agent, &fw, &small, Duration::from_secs(60));
    let out = logs(&sandbox(&master, &agent, &fw, "small"), "stdout");
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(out.iter().all(|(_, l)| *l <= MB), "{out:?}");
    assert_eq!(out[1], ("stdout.1".into(), MB), "{out:?}");

    // An unknown override fails the launch with Mesos' kind of message.
    let bad = with_env(task("bad", "true"), &[("CONTAINER_LOGGER_MAX_SIZE", "1MB")]);
    master.run_task(&fw, &bad);
    let failed = end_of(&master, "bad", master::WAIT);
    let message = master::status(&failed).message.clone().unwrap_or_default();
    assert!(
        message.contains("CONTAINER_LOGGER_MAX_SIZE"),
        "{}",
        master::describe(&failed)
    );
    master::finish(fx, master, agent);
}

/// The executor, not the agent, drains the output: with the agent stopped
/// the task keeps printing (its files keep growing and rotating), and once
/// the agent is back it finishes normally.
#[test]
fn output_flows_and_rotates_while_the_agent_is_down() {
    if !enabled() {
        return;
    }
    let (fx, master, mut agent) = start(&[
        "--logrotate_max_stdout_size",
        "1MB",
        "--logrotate_stdout_options",
        "rotate 2",
    ]);
    let fw = framework("logrotate-restart");
    // About 30 MB over 6 s, then done.
    let t = task(
        "steady",
        "i=0; while [ $i -lt 60 ]; do head -c 524288 /dev/zero | tr '\\0' x; i=$((i+1)); sleep 0.1; done; echo END",
    );
    master.run_task(&fw, &t);
    master.ack_until("steady", TaskState::TaskRunning);
    let dir = sandbox(&master, &agent, &fw, "steady");
    agent.terminate();
    let inode = |p: PathBuf| {
        use std::os::unix::fs::MetadataExt;
        fs::metadata(p).map(|m| m.ino()).unwrap_or(0)
    };
    let before = inode(dir.join("stdout.1"));
    std::thread::sleep(Duration::from_secs(2));
    let after = inode(dir.join("stdout.1"));
    assert_ne!(
        before, after,
        "no rotation while the agent was down: the task is blocked"
    );
    assert!(logs(&dir, "stdout").iter().all(|(_, l)| *l <= MB));
    agent.restart();
    master.reregister();
    let end = end_of(&master, "steady", Duration::from_secs(60));
    assert_eq!(
        master::task_and_state(&end).1,
        TaskState::TaskFinished,
        "{}",
        master::describe(&end)
    );
    let out = logs(&dir, "stdout");
    assert_eq!(out.len(), 3, "{out:?}");
    assert!(out.iter().all(|(_, l)| *l <= MB), "{out:?}");
    assert!(fs::read_to_string(dir.join("stdout"))
        .unwrap()
        .ends_with("END\n"));
    master::finish(fx, master, agent);
}

/// `bench/logrotate.sh`: a task printing 1 GB to stdout under the 10 MB
/// cap against the same task writing straight to a file, each timed inside
/// the task, ROUNDS times alternately; prints the medians and their ratio.
#[test]
#[ignore]
fn bench_logrotate() {
    assert!(
        enabled(),
        "bench_logrotate needs BUTTE_RUNTIME_TESTS=1 and root"
    );
    let rounds: usize = std::env::var("BUTTE_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let mem: f64 = std::env::var("BUTTE_BENCH_MEM_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256.0);
    let (fx, master, agent) = start(&[
        "--logrotate_max_stdout_size",
        "10MB",
        "--logrotate_stdout_options",
        "rotate 3",
    ]);
    let fw = framework("bench-logrotate");
    let timed = |body: &str| {
        format!("s=$(date +%s%N); {body}; e=$(date +%s%N); echo $((e - s)) > elapsed; rm -f out")
    };
    let (mut rotated, mut plain) = (Vec::new(), Vec::new());
    for i in 0..rounds {
        for (kind, body) in [
            ("rotated", "head -c 1073741824 /dev/zero"),
            ("plain", "head -c 1073741824 /dev/zero > out"),
        ] {
            let id = format!("{kind}-{i}");
            let mut t = task(&id, &timed(body));
            t.resources = resources(2.0, mem);
            run_to_end(&master, &agent, &fw, &t, Duration::from_secs(300));
            let dir = sandbox(&master, &agent, &fw, &id);
            let ns: u64 = fs::read_to_string(dir.join("elapsed"))
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            let secs = ns as f64 / 1e9;
            if kind == "rotated" {
                rotated.push(secs);
                let out = logs(&dir, "stdout");
                assert!(
                    out.len() <= 4 && out.iter().all(|(_, l)| *l <= 10 * MB),
                    "{out:?}"
                );
            } else {
                plain.push(secs);
            }
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (r, p) = (median(&mut rotated), median(&mut plain));
    let json = serde_json::json!({
        "rounds": rounds,
        "mem_mb": mem,
        "rotated_s": rotated,
        "plain_s": plain,
        "rotated_median_s": r,
        "plain_median_s": p,
        "ratio": r / p,
    });
    println!("BENCH_LOGROTATE {json}");
    master::finish(fx, master, agent);
}
