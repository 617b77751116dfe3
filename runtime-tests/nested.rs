//! Issue 14: nested containers through the v1 operator API of a real agent
//! (LAUNCH_NESTED_CONTAINER, WAIT/KILL/REMOVE_NESTED_CONTAINER, and
//! LAUNCH/WAIT/KILL/REMOVE_CONTAINER with a parent): under a standalone
//! container and under a running executor (with the executor's token when
//! the read-write realm is authenticated); each with its own image,
//! sandbox, cgroup inside its parent's, in its parent's network namespace;
//! listed by GET_CONTAINERS with `show_nested`; destroyed with its parent;
//! taken over by a restarted agent; nothing left.

use crate::support::master::{self, command_task, framework, AgentProcess, FakeMaster};
use crate::support::registry::Registry;
use crate::support::{busybox_oci, enabled, Fixture};
use butte::proto::mesos::TaskState;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

struct Reply {
    status: u16,
    body: Vec<u8>,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

fn call(agent: &AgentProcess, auth: Option<&str>, call: Value) -> Reply {
    let url = format!("http://{}/api/v1", agent.endpoint());
    let mut req = ureq::post(&url)
        .timeout(Duration::from_secs(60))
        .set("Content-Type", "application/json")
        .set("Accept", "application/json");
    if let Some(a) = auth {
        req = req.set("Authorization", a);
    }
    let resp = match req.send_bytes(call.to_string().as_bytes()) {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("POST {url}: {e}; {}", agent.log_tail(40)),
    };
    let status = resp.status();
    let mut body = Vec::new();
    std::io::Read::read_to_end(&mut resp.into_reader(), &mut body).unwrap();
    Reply { status, body }
}

/// A `ContainerID` JSON from the top down.
fn cid(chain: &[&str]) -> Value {
    let mut id = Value::Null;
    for v in chain {
        id = match id {
            Value::Null => json!({ "value": v }),
            parent => json!({ "value": v, "parent": parent }),
        };
    }
    id
}

fn busybox_image() -> Value {
    json!({"type": "MESOS", "mesos": {"image": {"type": "DOCKER", "docker": {"name": "library/busybox:1"}}}})
}

fn launch_nested(
    agent: &AgentProcess,
    auth: Option<&str>,
    chain: &[&str],
    command: &str,
    image: bool,
) -> Reply {
    let mut launch = json!({"container_id": cid(chain), "command": {"value": command}});
    if image {
        launch["container"] = busybox_image();
    }
    call(
        agent,
        auth,
        json!({"type": "LAUNCH_NESTED_CONTAINER", "launch_nested_container": launch}),
    )
}

fn wait_nested(agent: &AgentProcess, auth: Option<&str>, chain: &[&str]) -> Reply {
    call(
        agent,
        auth,
        json!({"type": "WAIT_NESTED_CONTAINER", "wait_nested_container": {"container_id": cid(chain)}}),
    )
}

fn kill_nested(agent: &AgentProcess, auth: Option<&str>, chain: &[&str], signal: i32) -> Reply {
    call(
        agent,
        auth,
        json!({"type": "KILL_NESTED_CONTAINER", "kill_nested_container": {"container_id": cid(chain), "signal": signal}}),
    )
}

fn remove_nested(agent: &AgentProcess, auth: Option<&str>, chain: &[&str]) -> Reply {
    call(
        agent,
        auth,
        json!({"type": "REMOVE_NESTED_CONTAINER", "remove_nested_container": {"container_id": cid(chain)}}),
    )
}

fn until(what: &str, agent: &AgentProcess, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{what}\n{}",
            agent.log_tail(40)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The pid a nested container's record holds.
fn recorded_pid(fx: &Fixture, key: &str) -> i32 {
    let path = fx.work.path().join("agent-work/meta/nested").join(key);
    read(&path).trim().parse().unwrap_or(0)
}

fn netns(pid: i32) -> PathBuf {
    std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap()
}

/// Whether this host has only the unified hierarchy (cgroup v2).
fn pure_v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// The memory cgroup of a container, given its path of ids.
fn memory_cgroup(fx: &Fixture, path: &str) -> PathBuf {
    if pure_v2() {
        return Path::new("/sys/fs/cgroup").join(&fx.parent).join(path);
    }
    fx.cgroup_dirs(path)
        .into_iter()
        .find(|d| d.to_string_lossy().contains("/memory/"))
        .unwrap()
}

/// The file of a memory cgroup that holds its limit.
fn memory_limit() -> &'static str {
    if pure_v2() {
        "memory.max"
    } else {
        "memory.limit_in_bytes"
    }
}

#[test]
fn nested_containers_under_a_standalone_container() {
    if !enabled() {
        return;
    }
    let registry = Registry::start();
    registry.push(&busybox_oci(), "1", "library/busybox:1");
    let fx = Fixture::new();
    let master = FakeMaster::start(0);
    let mut agent = AgentProcess::start(&fx, &master, &["--docker_registry", &registry.url()]);
    master.register();

    // The parent: a standalone container on the host filesystem.
    let r = call(
        &agent,
        None,
        json!({"type": "LAUNCH_CONTAINER", "launch_container": {
            "container_id": cid(&["top"]),
            "command": {"value": "exec sleep 600"},
            "resources": [{"name": "mem", "type": "SCALAR", "scalar": {"value": 128.0}}]}}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let parent_pid: i32 = read(&fx.work.path().join("agent-work/meta/standalone/top"))
        .trim()
        .parse()
        .unwrap();

    // A child in its own image.
    let r = launch_nested(
        &agent,
        None,
        &["top", "kid"],
        "trap 'echo got-term; exit 5' TERM; test -e /etc/debian_version || echo in-the-image; \
         hostname > hostname.txt; cat /etc/resolv.conf > resolv.txt; \
         echo sandbox=$MESOS_SANDBOX; pwd; while true; do sleep 0.2; done",
        true,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        launch_nested(&agent, None, &["top", "kid"], "true", true).status,
        202
    );
    let sandbox = fx
        .work
        .path()
        .join("agent-work/containers/top/containers/kid");
    let stdout = sandbox.join("stdout");
    until("the child starts", &agent, || {
        read(&stdout).contains("/mnt/mesos/sandbox\n")
    });
    assert!(read(&stdout).contains("in-the-image"), "{}", read(&stdout));
    assert!(
        read(&stdout).contains("sandbox=/mnt/mesos/sandbox"),
        "{}",
        read(&stdout)
    );
    // Its parent's hostname (it joins the parent's UTS namespace; the
    // host's name here) and, in its image, the host's resolv.conf.
    let uts = |pid: i32| std::fs::read_link(format!("/proc/{pid}/ns/uts")).unwrap();
    assert_eq!(uts(recorded_pid(&fx, "top.kid")), uts(parent_pid));
    assert_eq!(
        read(&sandbox.join("hostname.txt")).trim(),
        nix::unistd::gethostname().unwrap().to_str().unwrap()
    );
    if let Ok(host) = std::fs::canonicalize("/etc/resolv.conf") {
        assert_eq!(read(&sandbox.join("resolv.txt")), read(&host));
    }
    // In its parent's network namespace, its own pid namespace, its cgroup
    // inside the parent's.
    let kid_pid = recorded_pid(&fx, "top.kid");
    assert!(kid_pid > 0);
    assert_eq!(netns(kid_pid), netns(parent_pid));
    assert_ne!(
        std::fs::read_link(format!("/proc/{kid_pid}/ns/pid")).unwrap(),
        std::fs::read_link(format!("/proc/{parent_pid}/ns/pid")).unwrap()
    );
    let kid_memory = memory_cgroup(&fx, "top/kid");
    assert!(kid_memory.is_dir(), "{}", kid_memory.display());
    assert!(read(&kid_memory.join("cgroup.procs")).contains(&kid_pid.to_string()));

    // GET_CONTAINERS shows it with `show_nested`, with its own statistics.
    let listed = |agent: &AgentProcess, nested: bool| {
        let r = call(
            agent,
            None,
            json!({"type": "GET_CONTAINERS", "get_containers": {"show_nested": nested, "show_standalone": true}}),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["get_containers"]["containers"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(listed(&agent, false).len(), 1);
    let all = listed(&agent, true);
    let kid = all
        .iter()
        .find(|c| c["container_id"] == cid(&["top", "kid"]))
        .unwrap_or_else(|| panic!("{all:?}"));
    assert!(
        kid["resource_statistics"]["mem_rss_bytes"]
            .as_u64()
            .is_some()
            || kid["resource_statistics"]["mem_total_bytes"]
                .as_u64()
                .is_some(),
        "{kid}"
    );
    assert!(
        kid["resource_statistics"]["processes"].as_u64() >= Some(1),
        "{kid}"
    );
    assert!(kid.get("executor_id").is_none(), "{kid}");
    assert_eq!(
        kid["container_status"]["container_id"],
        cid(&["top", "kid"])
    );

    // A parent that does not exist.
    let r = launch_nested(&agent, None, &["nobody", "kid"], "true", false);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.text().contains("Parent container nobody does not exist"),
        "{}",
        r.text()
    );

    // Not ended: REMOVE is refused; SIGTERM reaches the trap; WAIT answers.
    assert_eq!(remove_nested(&agent, None, &["top", "kid"]).status, 500);
    assert_eq!(kill_nested(&agent, None, &["top", "kid"], 15).status, 200);
    let w = wait_nested(&agent, None, &["top", "kid"]);
    assert_eq!(w.status, 200, "{}", w.text());
    assert_eq!(
        w.json(),
        json!({"type": "WAIT_NESTED_CONTAINER", "wait_nested_container": {"exit_status": 5 << 8}})
    );
    assert!(read(&stdout).contains("got-term"));
    // WAIT_CONTAINER with a parent answers in `wait_container`.
    let w = call(
        &agent,
        None,
        json!({"type": "WAIT_CONTAINER", "wait_container": {"container_id": cid(&["top", "kid"])}}),
    );
    assert_eq!(w.json()["wait_container"]["exit_status"], json!(5 << 8));
    assert_eq!(remove_nested(&agent, None, &["top", "kid"]).status, 200);
    assert!(!kid_memory.exists());
    assert!(stdout.exists(), "the sandbox stays");
    assert_eq!(wait_nested(&agent, None, &["top", "kid"]).status, 404);

    // Two levels, then a restart of the agent: both taken over. Around
    // it, containers that end before it and while the agent is down keep
    // their exit status: their inits record it.
    let r = launch_nested(&agent, None, &["top", "a"], "exec sleep 600", false);
    assert_eq!(r.status, 200, "{}", r.text());
    let r = launch_nested(&agent, None, &["top", "a", "b"], "exec sleep 600", false);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(memory_cgroup(&fx, "top/a/b").is_dir());
    let b_pid = recorded_pid(&fx, "top.a.b");
    let r = launch_nested(&agent, None, &["top", "before"], "exit 3", false);
    assert_eq!(r.status, 200, "{}", r.text());
    let w = wait_nested(&agent, None, &["top", "before"]);
    assert_eq!(
        w.json()["wait_nested_container"]["exit_status"],
        json!(3 << 8)
    );
    // Each ends once a file appears in its sandbox (its working directory).
    let on_go = |code: i32| format!("while [ ! -e go ]; do sleep 0.05; done; exit {code}");
    let r = launch_nested(&agent, None, &["top", "down"], &on_go(4), false);
    assert_eq!(r.status, 200, "{}", r.text());
    let down_pid = recorded_pid(&fx, "top.down");
    let r = call(
        &agent,
        None,
        json!({"type": "LAUNCH_CONTAINER", "launch_container": {
            "container_id": cid(&["solo"]),
            "command": {"value": on_go(6)}}}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let solo_pid: i32 = read(&fx.work.path().join("agent-work/meta/standalone/solo"))
        .trim()
        .parse()
        .unwrap();
    agent.kill();
    for (sandbox, pid) in [
        (sandbox.with_file_name("down"), down_pid),
        (fx.work.path().join("agent-work/containers/solo"), solo_pid),
    ] {
        std::fs::write(sandbox.join("go"), "").unwrap();
        until("a container ends while the agent is down", &agent, || {
            !Path::new(&format!("/proc/{pid}")).exists()
        });
    }
    master.discard_registrations();
    agent.restart();
    master.reregister();
    until("the nested containers are listed again", &agent, || {
        let all = listed(&agent, true);
        all.iter()
            .any(|c| c["container_id"] == cid(&["top", "a", "b"]))
    });
    assert_eq!(recorded_pid(&fx, "top.a.b"), b_pid);
    for (chain, status) in [(&["top", "before"][..], 3 << 8), (&["top", "down"], 4 << 8)] {
        let w = wait_nested(&agent, None, chain);
        assert_eq!(w.status, 200, "{chain:?}: {}", w.text());
        assert_eq!(
            w.json()["wait_nested_container"]["exit_status"],
            json!(status),
            "{chain:?}"
        );
    }
    let w = call(
        &agent,
        None,
        json!({"type": "WAIT_CONTAINER", "wait_container": {"container_id": cid(&["solo"])}}),
    );
    assert_eq!(
        w.json()["wait_container"]["exit_status"],
        json!(6 << 8),
        "{}",
        w.text()
    );
    let r = call(
        &agent,
        None,
        json!({"type": "REMOVE_CONTAINER", "remove_container": {"container_id": cid(&["solo"])}}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(remove_nested(&agent, None, &["top", "before"]).status, 200);
    // A SIGTERM reaches a taken-over task with no handler for it (its
    // init passes it on).
    assert_eq!(
        kill_nested(&agent, None, &["top", "a", "b"], 15).status,
        200
    );
    let w = wait_nested(&agent, None, &["top", "a", "b"]);
    assert_eq!(w.json()["wait_nested_container"]["exit_status"], json!(15));

    // The parent ends: its nested containers go with it.
    let r = call(
        &agent,
        None,
        json!({"type": "KILL_CONTAINER", "kill_container": {"container_id": cid(&["top"])}}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let w = call(
        &agent,
        None,
        json!({"type": "WAIT_CONTAINER", "wait_container": {"container_id": cid(&["top"])}}),
    );
    assert_eq!(w.status, 200, "{}", w.text());
    until("the nested processes are gone", &agent, || {
        !Path::new(&format!("/proc/{b_pid}")).exists()
    });
    assert_eq!(wait_nested(&agent, None, &["top", "a", "b"]).status, 404);
    let r = call(
        &agent,
        None,
        json!({"type": "REMOVE_CONTAINER", "remove_container": {"container_id": cid(&["top"])}}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    for d in fx.cgroup_dirs("top") {
        assert!(!d.exists(), "{} left", d.display());
    }
    until("the records are gone", &agent, || {
        std::fs::read_dir(fx.work.path().join("agent-work/meta/nested"))
            .map(|d| d.count() == 0)
            .unwrap_or(true)
    });
    master::finish(fx, master, agent);
}

const PRINCIPAL: &str = "ops";
const SECRET: &str = "s3cret";

#[test]
fn an_executor_launches_nested_containers_with_its_token() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let creds = fx.work.path().join("credentials.json");
    std::fs::write(
        &creds,
        json!({"credentials": [{"principal": PRINCIPAL, "secret": SECRET}]}).to_string(),
    )
    .unwrap();
    let master = FakeMaster::start(0);
    let agent = AgentProcess::start(
        &fx,
        &master,
        &[
            "--authenticate_http_readwrite",
            "--http_credentials",
            creds.to_str().unwrap(),
        ],
    );
    let (_, slave_id) = master.register();
    let fw = framework("nested");
    let task = command_task("holder", "exec sleep 600");
    master.run_task(&fw, &task);
    let running = master.ack_until("holder", TaskState::TaskRunning);
    let container = master::status(&running)
        .container_status
        .as_ref()
        .and_then(|c| c.container_id.as_ref())
        .map(|c| c.value.clone())
        .expect("the executor's container id");
    // The executor's token, as its environment has it.
    let executor = master::executor_pids(&fx.parent)
        .into_iter()
        .find(|pid| {
            read(Path::new(&format!("/proc/{pid}/environ")))
                .contains("MESOS_EXECUTOR_AUTHENTICATION_TOKEN=")
        })
        .expect("the executor's process");
    let environ = read(Path::new(&format!("/proc/{executor}/environ")));
    let token = environ
        .split('\0')
        .find_map(|v| v.strip_prefix("MESOS_EXECUTOR_AUTHENTICATION_TOKEN="))
        .unwrap()
        .to_string();
    let bearer = format!("Bearer {token}");

    // No credentials: 401. The executor's token: under its own container
    // only.
    let r = launch_nested(&agent, None, &[&container, "n1"], "exec sleep 600", false);
    assert_eq!(r.status, 401, "{}", r.text());
    let r = launch_nested(
        &agent,
        Some(&bearer),
        &["someone-else", "n1"],
        "true",
        false,
    );
    assert_eq!(r.status, 403, "{}", r.text());
    let r = call(&agent, Some(&bearer), json!({"type": "GET_STATE"}));
    assert_eq!(r.status, 403, "{}", r.text());
    let r = launch_nested(
        &agent,
        Some(&bearer),
        &[&container, "n1"],
        "echo from-the-nested-one; exec sleep 600",
        false,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let sandbox = agent
        .sandbox(&slave_id, &fw, "holder")
        .join("containers/n1");
    until("the nested one writes", &agent, || {
        read(&sandbox.join("stdout")).contains("from-the-nested-one")
    });
    let n1_pid = recorded_pid(&fx, &format!("{container}.n1"));
    assert_eq!(netns(n1_pid), netns(executor));
    assert!(memory_cgroup(&fx, &format!("{container}/n1")).is_dir());

    // The task ends: the executor goes, and its nested container with it.
    master.kill_task(&fw, "holder", None);
    master.ack_until("holder", TaskState::TaskKilled);
    until("the nested process is gone", &agent, || {
        !Path::new(&format!("/proc/{n1_pid}")).exists()
    });
    until("the executor's cgroup is gone", &agent, || {
        !memory_cgroup(&fx, &container).exists()
    });
    master::finish(fx, master, agent);
}

#[test]
fn a_running_executor_grows_to_hold_the_tasks_added_to_it() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let master = FakeMaster::start(0);
    let agent = AgentProcess::start(&fx, &master, &[]);
    master.register();
    let fw = framework("grow");
    let exec = master::executor("grower", &fw, None);
    let mut first = command_task("first", "exec sleep 600");
    first.resources = master::resources(0.1, 64.0);
    master.run_task_group(&fw, &exec, &[first]);
    let running = master.ack_until("first", TaskState::TaskRunning);
    // The task's nested container's id, with its parent: the executor's.
    let container = master::status(&running)
        .container_status
        .as_ref()
        .and_then(|c| c.container_id.as_ref())
        .map(|c| c.parent.as_ref().map_or(&c.value, |p| &p.value).clone())
        .expect("the executor's container id");
    let limit = || -> u64 {
        read(&memory_cgroup(&fx, &container).join(memory_limit()))
            .trim()
            .parse()
            .unwrap()
    };
    // The executor's 32 MB and the first task's 64.
    assert_eq!(limit(), 96 << 20);
    let mut second = command_task("second", "exec sleep 600");
    second.resources = master::resources(0.1, 128.0);
    master.run_task_group(&fw, &exec, &[second]);
    master.ack_until("second", TaskState::TaskRunning);
    assert_eq!(limit(), 224 << 20);
    master.kill_task(&fw, "first", None);
    master.kill_task(&fw, "second", None);
    master.ack_until("first", TaskState::TaskKilled);
    master.ack_until("second", TaskState::TaskKilled);
    master::finish(fx, master, agent);
}
