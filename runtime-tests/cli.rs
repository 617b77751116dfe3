//! Issue 14 item 5: the `butte ps`, `logs`, `stats` and `kill` commands,
//! run as a user runs them, against a real agent (driven by the fake
//! master) with HTTP authentication on, as the packaged configuration has
//! it.

use crate::support::master::{
    self, command_task, executor, framework, task_and_state, wait_for, AgentProcess, FakeMaster,
    TERMINAL,
};
use crate::support::{enabled, text, Fixture, BUTTE};
use butte::proto::mesos::TaskState;
use serde_json::{json, Value};
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The operator's credentials, given to the CLI through its environment.
const PRINCIPAL: &str = "ops";
const SECRET: &str = "s3cret";

fn credentials(fx: &Fixture) -> PathBuf {
    let path = fx.work.path().join("credentials.json");
    std::fs::write(
        &path,
        json!({"credentials": [{"principal": PRINCIPAL, "secret": SECRET}]}).to_string(),
    )
    .unwrap();
    path
}

/// `butte ARGS` against AGENT, credentials in the environment.
fn cli(agent: &AgentProcess) -> Command {
    let mut c = Command::new(BUTTE);
    c.env("BUTTE_AGENT", format!("http://{}", agent.endpoint()))
        .env("BUTTE_PRINCIPAL", PRINCIPAL)
        .env("BUTTE_SECRET", SECRET)
        .stdin(Stdio::null());
    c
}

fn run(agent: &AgentProcess, args: &[&str]) -> Output {
    let out = cli(agent).args(args).output().expect("run butte");
    assert!(
        out.status.success(),
        "butte {args:?}: {out:?}\n{}",
        agent.log_tail(40)
    );
    out
}

fn stdout(agent: &AgentProcess, args: &[&str]) -> String {
    text(&run(agent, args).stdout)
}

/// The `ps` line of ID (its first column), split on whitespace.
fn ps_line(table: &str, id: &str) -> Option<Vec<String>> {
    table
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .find(|cells| cells.first().is_some_and(|c| c == id))
}

fn api(agent: &AgentProcess, call: Value) -> (u16, String) {
    use base64::Engine as _;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{PRINCIPAL}:{SECRET}"));
    let resp = ureq::post(&format!("http://{}/api/v1", agent.endpoint()))
        .timeout(Duration::from_secs(60))
        .set("Authorization", &format!("Basic {token}"))
        .set("Content-Type", "application/json")
        .set("Accept", "application/json")
        .send_string(&call.to_string());
    let resp = match resp {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("POST /api/v1: {e}"),
    };
    (resp.status(), resp.into_string().unwrap_or_default())
}

#[test]
fn ps_logs_stats_and_kill_drive_a_real_agent() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let creds = credentials(&fx);
    let master = FakeMaster::start(0);
    let agent = AgentProcess::start(
        &fx,
        &master,
        &[
            "--authenticate_http_readonly",
            "--authenticate_http_readwrite",
            "--http_credentials",
            creds.to_str().unwrap(),
        ],
    );
    master.register();

    // Without credentials the agent refuses, and the CLI says so.
    let refused = Command::new(BUTTE)
        .args(["ps", "--agent", &agent.endpoint().to_string()])
        .env_remove("BUTTE_PRINCIPAL")
        .env_remove("BUTTE_SECRET")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("HTTP 401"),
        "{}",
        text(&refused.stderr)
    );

    // A task that prints a line, waits for the test's go, then prints
    // three more over a second and ends; one that sleeps; a group's task.
    let fw = framework("cli");
    let printer = command_task(
        "printer",
        "echo first; echo oops >&2; \
         while [ ! -e go ]; do sleep 0.1; done; \
         for i in 1 2 3; do echo line $i; sleep 0.3; done",
    );
    master.run_task(&fw, &printer);
    master.run_task(&fw, &command_task("sleeper", "sleep 600"));
    master.run_task_group(
        &fw,
        &executor("group-ex", &fw, None),
        &[command_task("grouped", "echo in a group; sleep 600")],
    );
    for id in ["printer", "sleeper", "grouped"] {
        master.expect_ack(id, TaskState::TaskStarting);
        master.expect_ack(id, TaskState::TaskRunning);
    }
    // And a standalone container.
    let (status, body) = api(
        &agent,
        json!({"type": "LAUNCH_CONTAINER", "launch_container": {
            "container_id": {"value": "cli-standalone-1"},
            "command": {"value": "sleep 600"},
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                          {"name": "mem", "type": "SCALAR", "scalar": {"value": 32.0}}]}}),
    );
    assert_eq!(status, 200, "{body}");

    // ps: a table with each task running, the standalone container too.
    let table = stdout(&agent, &["ps"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["ID", "FRAMEWORK", "STATE", "IMAGE", "CPU", "MEM", "STARTED"]
    );
    for id in ["printer", "sleeper", "grouped"] {
        let line = ps_line(&table, id).unwrap_or_else(|| panic!("no {id} in\n{table}"));
        assert_eq!(line[1..3], ["cli", "TASK_RUNNING"], "{table}");
    }
    let line = ps_line(&table, "cli-standalone-1").unwrap_or_else(|| panic!("{table}"));
    assert_eq!(line[2], "RUNNING", "{table}");
    // --json: the same rows, raw figures.
    let rows: Value = serde_json::from_str(&stdout(&agent, &["ps", "--json"])).unwrap();
    let printer_row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "printer")
        .unwrap_or_else(|| panic!("{rows}"))
        .clone();
    assert!(
        printer_row["usage"]["mem_rss_bytes"].as_u64().unwrap() > 0,
        "{printer_row}"
    );
    let container = printer_row["container_id"].as_str().unwrap().to_string();

    // logs: the output so far, by id or a unique prefix; stderr apart; a
    // group's task from its own sandbox.
    let dir = sandbox(&agent, "printer");
    wait_for("the printer's first line", &agent, || {
        std::fs::read_to_string(dir.join("stdout")).is_ok_and(|s| s.contains("first"))
    });
    assert_eq!(stdout(&agent, &["logs", "printer"]), "first\n");
    assert_eq!(stdout(&agent, &["logs", "prin"]), "first\n");
    // (stderr also holds the executor's own lines, as under Mesos)
    let stderr = stdout(&agent, &["logs", "--stderr", "printer"]);
    assert!(stderr.lines().any(|l| l == "oops"), "{stderr}");
    assert!(!stderr.contains("first"), "{stderr}");
    wait_for("the grouped task's line", &agent, || {
        let out = cli(&agent).args(["logs", "grouped"]).output().unwrap();
        text(&out.stdout) == "in a group\n"
    });

    // stats: the printer's container, with its processes.
    let stats = stdout(&agent, &["stats", "--no-stream", "--no-trunc"]);
    assert!(stats.starts_with("CONTAINER ID"), "{stats}");
    let line = stats
        .lines()
        .find(|l| l.starts_with(&container))
        .unwrap_or_else(|| panic!("no {container} in\n{stats}"));
    assert!(line.contains("printer") && line.contains('%'), "{line}");

    // logs -f: follows the lines the task writes after the go, and ends
    // by itself once the task has ended.
    let mut follow = cli(&agent)
        .args(["logs", "-f", "printer"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    std::fs::write(dir.join("go"), "").unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = follow.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = follow.kill();
            panic!("logs -f did not end with the task; {}", agent.log_tail(40));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut followed = String::new();
    follow
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut followed)
        .unwrap();
    assert!(status.success(), "{followed}");
    assert_eq!(followed, "first\nline 1\nline 2\nline 3\n");
    master.expect_ack("printer", TaskState::TaskFinished);

    // kill by a unique prefix: the task ends, the agent says how.
    let killed = stdout(&agent, &["kill", "slee"]);
    let u = master.expect_update(
        "a terminal update of sleeper",
        Duration::from_secs(30),
        |u| {
            let (id, state) = task_and_state(u);
            id == "sleeper" && TERMINAL.contains(&state)
        },
    );
    master.ack(&u);
    let state = task_and_state(&u).1.as_str_name();
    assert_eq!(killed, format!("sleeper {state}\n"));
    // A standalone container by its id's prefix.
    assert_eq!(stdout(&agent, &["kill", "cli-stand"]), "cli-standalone-1\n");
    let (status, body) = api(
        &agent,
        json!({"type": "WAIT_CONTAINER", "wait_container": {"container_id": {"value": "cli-standalone-1"}}}),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = api(
        &agent,
        json!({"type": "REMOVE_CONTAINER", "remove_container": {"container_id": {"value": "cli-standalone-1"}}}),
    );
    assert_eq!(status, 200, "{body}");

    // ps: the ended tasks are gone, but --all shows them.
    let table = stdout(&agent, &["ps"]);
    assert!(ps_line(&table, "printer").is_none(), "{table}");
    assert!(ps_line(&table, "sleeper").is_none(), "{table}");
    assert!(ps_line(&table, "cli-standalone-1").is_none(), "{table}");
    let all = stdout(&agent, &["ps", "--all"]);
    assert_eq!(
        ps_line(&all, "printer").unwrap()[2],
        "TASK_FINISHED",
        "{all}"
    );
    assert_eq!(ps_line(&all, "sleeper").unwrap()[2], state, "{all}");
    // Killing an ended task is refused, naming its state.
    let again = cli(&agent).args(["kill", "printer"]).output().unwrap();
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("task printer has already ended (TASK_FINISHED)"),
        "{}",
        text(&again.stderr)
    );

    master::finish(fx, master, agent);
}

/// The sandbox directory of TASK's executor, from the agent's `/state`.
fn sandbox(agent: &AgentProcess, task: &str) -> PathBuf {
    use base64::Engine as _;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{PRINCIPAL}:{SECRET}"));
    let body = ureq::get(&format!("http://{}/state", agent.endpoint()))
        .set("Authorization", &format!("Basic {token}"))
        .call()
        .expect("GET /state")
        .into_string()
        .expect("the state");
    let state: Value = serde_json::from_str(&body).expect("the state's JSON");
    let executors = state["frameworks"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|f| f["executors"].as_array().into_iter().flatten());
    for ex in executors {
        let mut tasks = ex["tasks"].as_array().into_iter().flatten();
        if tasks.any(|t| t["id"] == task) {
            return PathBuf::from(ex["directory"].as_str().expect("a directory"));
        }
    }
    panic!("no executor runs {task}: {state}");
}
