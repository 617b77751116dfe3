//! Issue 14: `butte exec`, run as a user runs it, against a real agent
//! (driven by the fake master): a command in a running task's container
//! with and without a terminal, stdin passed on, the exit code returned,
//! and no debug container or process left behind.

use crate::support::master::{self, command_task, executor, framework, AgentProcess, FakeMaster};
use crate::support::{enabled, text, Fixture, BUTTE};
use butte::proto::mesos::TaskState;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn cli(agent: &AgentProcess) -> Command {
    let mut c = Command::new(BUTTE);
    c.env("BUTTE_AGENT", format!("http://{}", agent.endpoint()))
        .env_remove("BUTTE_PRINCIPAL")
        .env_remove("BUTTE_SECRET")
        .stdin(Stdio::null());
    c
}

fn exec(agent: &AgentProcess, args: &[&str]) -> Output {
    cli(agent)
        .arg("exec")
        .args(args)
        .output()
        .expect("run butte exec")
}

fn api(agent: &AgentProcess, call: Value) -> (u16, String) {
    let resp = ureq::post(&format!("http://{}/api/v1", agent.endpoint()))
        .timeout(Duration::from_secs(60))
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

/// The nested containers the agent lists.
fn nested(agent: &AgentProcess) -> Vec<Value> {
    let (status, body) = api(
        agent,
        json!({"type": "GET_CONTAINERS", "get_containers": {"show_nested": true}}),
    );
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    v["get_containers"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c["container_id"]["parent"].is_object())
        .collect()
}

/// Host pids whose command line is exactly ARGV.
fn processes(argv: &[&str]) -> Vec<i32> {
    let want: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == want))
        .collect()
}

fn eventually(what: &str, agent: &AgentProcess, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ok() {
        assert!(
            Instant::now() < deadline,
            "{what}; agent log:\n{}",
            agent.log_tail(40)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn exec_runs_commands_in_a_running_task_with_and_without_a_terminal() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let master = FakeMaster::start(0);
    let agent = AgentProcess::start(&fx, &master, &[]);
    master.register();
    let fw = framework("exec");
    master.run_task(
        &fw,
        &command_task("sleeper", "echo exec-marker > marker; sleep 600"),
    );
    master.run_task_group(
        &fw,
        &executor("group-ex", &fw, None),
        &[command_task("grouped", "sleep 600")],
    );
    for id in ["sleeper", "grouped"] {
        master.expect_ack(id, TaskState::TaskStarting);
        master.expect_ack(id, TaskState::TaskRunning);
    }
    // The group's task's own container; what else is nested is a session.
    let tasks = nested(&agent);
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    let sessions = |agent: &AgentProcess| -> Vec<Value> {
        let mut all = nested(agent);
        all.retain(|c| c["container_id"] != tasks[0]["container_id"]);
        all
    };

    // Without a terminal: stdout and stderr apart, the exit code, and the
    // task's sandbox as the working directory.
    let out = exec(
        &agent,
        &[
            "sleeper",
            "--",
            "sh",
            "-c",
            "cat marker; echo oops >&2; exit 5",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(5),
        "{out:?}\n{}",
        agent.log_tail(40)
    );
    assert_eq!(text(&out.stdout), "exec-marker\n");
    assert_eq!(text(&out.stderr), "oops\n");
    let host = nix::unistd::gethostname().unwrap().into_string().unwrap();
    let out = exec(&agent, &["sleeper", "--", "cat", "/etc/hostname"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        text(&out.stdout).trim(),
        std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or(host)
    );
    // In the task's pid namespace: the executor is pid 1 there.
    let out = exec(&agent, &["sleeper", "--", "cat", "/proc/1/cmdline"]);
    assert!(text(&out.stdout).contains("executor"), "{out:?}");

    // -i: stdin reaches the command, and its end ends `cat`.
    let mut child = cli(&agent)
        .args(["exec", "-i", "sleeper", "--", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"through stdin\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}\n{}", agent.log_tail(80));
    assert_eq!(text(&out.stdout), "through stdin\n");

    // -it on a terminal (script(1) makes one): a shell, its answer, its
    // exit code.
    let line = format!(
        "{BUTTE} exec -it --agent http://{} sleeper -- /bin/sh",
        agent.endpoint()
    );
    let mut child = Command::new("script")
        .args(["-q", "-e", "-c", &line, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script(1) (package bsdutils)");
    let mut stdin = child.stdin.take().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    stdin.write_all(b"echo $((6*7)); exit 3\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("exec -it did not end; {}", agent.log_tail(40));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    drop(stdin);
    let mut shown = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut shown)
        .unwrap();
    assert_eq!(status.code(), Some(3), "{shown}\n{}", agent.log_tail(40));
    assert!(shown.contains("42"), "{shown:?}");

    // A task of a group: in its own nested container, where it runs
    // under the container's init.
    let out = exec(
        &agent,
        &["grouped", "--", "cat", "/proc/1/cmdline", "/proc/2/cmdline"],
    );
    assert!(out.status.success(), "{out:?}");
    assert!(
        text(&out.stdout).starts_with("butte\x00launch\x00"),
        "{out:?}"
    );
    assert!(text(&out.stdout).contains("sleep"), "{out:?}");

    // Every debug container so far was removed after its end.
    assert_eq!(sessions(&agent), Vec::<Value>::new());

    // A client that goes away takes its command with it.
    let mut child = cli(&agent)
        .args(["exec", "sleeper", "--", "sleep", "987"])
        .spawn()
        .unwrap();
    eventually("the exec'd sleep runs", &agent, || {
        !processes(&["sleep", "987"]).is_empty()
    });
    // Meanwhile another client may follow its output.
    let running = sessions(&agent);
    assert_eq!(running.len(), 1, "{running:?}");
    let resp = ureq::post(&format!("http://{}/api/v1", agent.endpoint()))
        .set("Content-Type", "application/json")
        .set("Accept", "application/recordio")
        .set("Message-Accept", "application/x-protobuf")
        .send_string(
            &json!({"type": "ATTACH_CONTAINER_OUTPUT",
                    "attach_container_output": {"container_id": running[0]["container_id"]}})
            .to_string(),
        )
        .expect("ATTACH_CONTAINER_OUTPUT");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.header("Content-Type"), Some("application/recordio"));
    assert_eq!(
        resp.header("Message-Content-Type"),
        Some("application/x-protobuf")
    );
    drop(resp);
    child.kill().unwrap();
    child.wait().unwrap();
    eventually(
        "the exec'd sleep is killed with its session",
        &agent,
        || processes(&["sleep", "987"]).is_empty(),
    );

    // An agent that exits (executors run on) takes its sessions along.
    let mut agent = agent;
    let mut child = cli(&agent)
        .args(["exec", "sleeper", "--", "sleep", "988"])
        .spawn()
        .unwrap();
    eventually("the second exec'd sleep runs", &agent, || {
        !processes(&["sleep", "988"]).is_empty()
    });
    agent.terminate();
    eventually(
        "the session's sleep is killed with the agent",
        &agent,
        || processes(&["sleep", "988"]).is_empty(),
    );
    let _ = child.wait();
    assert!(!processes(&["sleep", "600"]).is_empty(), "the tasks run on");
    agent.restart();
    // Serving again once it has re-registered (slow under a VM's TCG).
    master.reregister();

    // No shell or cat is left.
    assert!(processes(&["/bin/sh"]).is_empty());
    assert!(processes(&["cat"]).is_empty());
    // An unknown task, and a command that does not exist.
    let out = exec(&agent, &["nosuchtask", "--", "true"]);
    assert!(!out.status.success());
    let out = exec(&agent, &["sleeper", "--", "no-such-command"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("no-such-command"), "{out:?}");
    master::finish(fx, master, agent);
}

/// The `ProcessIO` records of a session's answer (JSON), read to the end.
fn session_output(agent: &AgentProcess, launch: Value) -> (String, String) {
    use base64::Engine as _;
    let resp = ureq::post(&format!("http://{}/api/v1", agent.endpoint()))
        .timeout(Duration::from_secs(60))
        .set("Content-Type", "application/json")
        .set("Accept", "application/recordio")
        .set("Message-Accept", "application/json")
        .send_string(
            &json!({"type": "LAUNCH_NESTED_CONTAINER_SESSION",
                    "launch_nested_container_session": launch})
            .to_string(),
        )
        .unwrap_or_else(|e| {
            panic!(
                "LAUNCH_NESTED_CONTAINER_SESSION: {e}; {}",
                agent.log_tail(40)
            )
        });
    assert_eq!(resp.header("Content-Type"), Some("application/recordio"));
    let mut body = Vec::new();
    resp.into_reader().read_to_end(&mut body).unwrap();
    let mut d = butte::api::recordio::Decoder::new(1 << 20);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    for r in d.feed(&body).unwrap() {
        let v: Value = serde_json::from_slice(&r).unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(v["data"]["data"].as_str().unwrap_or(""))
            .unwrap();
        match v["data"]["type"].as_str() {
            Some("STDOUT") => out.extend(bytes),
            Some("STDERR") => err.extend(bytes),
            _ => {}
        }
    }
    (text(&out), text(&err))
}

#[test]
fn a_session_joins_a_nested_container_in_its_image() {
    if !enabled() {
        return;
    }
    use crate::support::busybox_oci;
    use crate::support::registry::Registry;
    let registry = Registry::start();
    registry.push(&busybox_oci(), "1", "library/busybox:1");
    let fx = Fixture::new();
    let master = FakeMaster::start(0);
    let agent = AgentProcess::start(&fx, &master, &["--docker_registry", &registry.url()]);
    master.register();
    let top = json!({"value": "top"});
    let kid = json!({"value": "kid", "parent": top});
    let (status, body) = api(
        &agent,
        json!({"type": "LAUNCH_CONTAINER", "launch_container": {
            "container_id": top, "command": {"value": "exec sleep 600"}}}),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = api(
        &agent,
        json!({"type": "LAUNCH_NESTED_CONTAINER", "launch_nested_container": {
            "container_id": kid, "command": {"value": "exec sleep 600"},
            "container": {"type": "MESOS", "mesos": {"image": {"type": "DOCKER",
                "docker": {"name": "library/busybox:1"}}}}}}),
    );
    assert_eq!(status, 200, "{body}");

    // `butte exec` into the standalone container, by its id's prefix: its
    // command runs under its init.
    let out = exec(
        &agent,
        &["to", "--", "cat", "/proc/1/cmdline", "/proc/2/cmdline"],
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(text(&out.stdout), "butte\x00launch\x00sleep\x00600\x00");

    // A debug container in the child: its image, its sandbox, its cgroup.
    let debug = json!({"value": "dbg", "parent": kid});
    let (out, err) = session_output(
        &agent,
        json!({"container_id": debug,
               "command": {"value": "test -e /etc/debian_version || echo in-the-image; \
                                     echo sandbox=$MESOS_SANDBOX; pwd; cat /proc/self/cgroup"}}),
    );
    assert!(out.contains("in-the-image\n"), "{out}{err}");
    assert!(out.contains("sandbox=/mnt/mesos/sandbox\n"), "{out}{err}");
    assert!(out.contains("/mnt/mesos/sandbox\n"), "{out}{err}");
    assert!(out.contains("top/kid"), "not in the child's cgroup: {out}");
    let (status, body) = api(
        &agent,
        json!({"type": "WAIT_NESTED_CONTAINER",
               "wait_nested_container": {"container_id": debug}}),
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"exit_status\":0"), "{body}");
    let (status, body) = api(
        &agent,
        json!({"type": "REMOVE_NESTED_CONTAINER",
               "remove_nested_container": {"container_id": debug}}),
    );
    assert_eq!(status, 200, "{body}");
    // A session in an image is not served.
    let (status, body) = api(
        &agent,
        json!({"type": "LAUNCH_NESTED_CONTAINER_SESSION", "launch_nested_container_session": {
            "container_id": {"value": "img", "parent": kid}, "command": {"value": "true"},
            "container": {"type": "MESOS", "mesos": {"image": {"type": "DOCKER",
                "docker": {"name": "library/busybox:1"}}}}}}),
    );
    assert_eq!(status, 501, "{body}");
    // The end of the top container ends its children.
    let (status, body) = api(
        &agent,
        json!({"type": "KILL_CONTAINER", "kill_container": {"container_id": top}}),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = api(
        &agent,
        json!({"type": "WAIT_CONTAINER", "wait_container": {"container_id": top}}),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = api(
        &agent,
        json!({"type": "REMOVE_CONTAINER", "remove_container": {"container_id": top}}),
    );
    assert_eq!(status, 200, "{body}");
    master::finish(fx, master, agent);
}
