//! Issue 14: standalone containers through the v1 operator API
//! (LAUNCH_CONTAINER, WAIT_CONTAINER, KILL_CONTAINER, REMOVE_CONTAINER) of a
//! real agent: an image and limits, an exit code, a signal, over JSON and
//! protobuf, Mesos' answers to bad calls, a restart of the agent, and no
//! cgroup, process, mount or sandbox left once removed.

use crate::support::master::{self, AgentProcess, FakeMaster};
use crate::support::registry::Registry;
use crate::support::{busybox_oci, enabled, Fixture};
use butte::proto::mesos::v1::agent::{call, response, Call, Response};
use butte::proto::mesos::v1::{ContainerId, TaskState};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};

struct Reply {
    status: u16,
    body: Vec<u8>,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn post(agent: &AgentProcess, content_type: &str, body: &[u8]) -> Reply {
    let url = format!("http://{}/api/v1", agent.endpoint());
    let resp = match ureq::post(&url)
        .timeout(Duration::from_secs(60))
        .set("Content-Type", content_type)
        .set("Accept", content_type)
        .send_bytes(body)
    {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("POST {url}: {e}; {}", agent.log_tail(40)),
    };
    let status = resp.status();
    let mut body = Vec::new();
    std::io::Read::read_to_end(&mut resp.into_reader(), &mut body).unwrap();
    Reply { status, body }
}

fn json_call(agent: &AgentProcess, call: Value) -> Reply {
    post(agent, "application/json", call.to_string().as_bytes())
}

fn proto_call(agent: &AgentProcess, call: &Call) -> Reply {
    post(
        agent,
        "application/x-protobuf",
        &prost::Message::encode_to_vec(call),
    )
}

fn id(value: &str) -> Value {
    json!({ "value": value })
}

fn busybox_image() -> Value {
    json!({"type": "MESOS", "mesos": {"image": {"type": "DOCKER", "docker": {"name": "library/busybox:1"}}}})
}

fn scalar(name: &str, value: f64) -> Value {
    json!({"name": name, "type": "SCALAR", "scalar": {"value": value}})
}

fn launch(agent: &AgentProcess, container: &str, command: &str, image: bool) -> Reply {
    let mut launch = json!({
        "container_id": id(container),
        "command": {"value": command},
        "resources": [scalar("cpus", 0.2), scalar("mem", 64.0)],
        "limits": {"mem": {"value": 96.0}},
    });
    if image {
        launch["container"] = busybox_image();
    }
    json_call(
        agent,
        json!({"type": "LAUNCH_CONTAINER", "launch_container": launch}),
    )
}

fn wait_json(agent: &AgentProcess, container: &str) -> Value {
    let r = json_call(
        agent,
        json!({"type": "WAIT_CONTAINER", "wait_container": {"container_id": id(container)}}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    serde_json::from_slice(&r.body).unwrap()
}

fn kill_json(agent: &AgentProcess, container: &str, signal: i32) -> Reply {
    json_call(
        agent,
        json!({"type": "KILL_CONTAINER", "kill_container": {"container_id": id(container), "signal": signal}}),
    )
}

fn remove_json(agent: &AgentProcess, container: &str) -> Reply {
    json_call(
        agent,
        json!({"type": "REMOVE_CONTAINER", "remove_container": {"container_id": id(container)}}),
    )
}

fn sandbox(fx: &Fixture, container: &str) -> PathBuf {
    fx.work
        .path()
        .join("agent-work")
        .join("containers")
        .join(container)
}

fn until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(30), "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Nothing of the container is left: no cgroup, no sandbox.
fn gone(fx: &Fixture, container: &str) {
    let groups: Vec<_> = fx
        .cgroup_dirs(container)
        .into_iter()
        .filter(|d| d.exists())
        .collect();
    assert!(groups.is_empty(), "cgroups of {container} left: {groups:?}");
    assert!(
        !sandbox(fx, container).exists(),
        "sandbox of {container} left"
    );
}

#[test]
fn standalone_containers_launch_wait_kill_and_remove() {
    if !enabled() {
        return;
    }
    let registry = Registry::start();
    registry.push(&busybox_oci(), "1", "library/busybox:1");
    let fx = Fixture::new();
    let master = FakeMaster::start(0);
    let mut agent = AgentProcess::start(&fx, &master, &["--docker_registry", &registry.url()]);
    master.register();

    // --- JSON: one in the image with limits that runs until signalled ---
    let long = "long-one";
    let r = launch(
        &agent,
        long,
        "trap 'echo got-term; exit 7' TERM; test -e /etc/debian_version || echo in-the-image; \
         cat /etc/resolv.conf > resolv.txt; echo $MESOS_SANDBOX; while true; do sleep 0.2; done",
        true,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.body.is_empty());
    // A second launch of the same id: 202, as Mesos.
    let r = launch(&agent, long, "true", true);
    assert_eq!(r.status, 202, "{}", r.text());
    // The limits: `limits.mem` (96 MB) over the 64 requested.
    let memory = fx
        .cgroup_dirs(long)
        .into_iter()
        .find(|d| d.to_string_lossy().contains("/memory/"))
        .unwrap();
    let limit = std::fs::read_to_string(memory.join("memory.limit_in_bytes")).unwrap();
    assert_eq!(limit.trim(), (96u64 << 20).to_string());
    let stdout = sandbox(&fx, long).join("stdout");
    until("the long one starts", || {
        std::fs::read_to_string(&stdout).is_ok_and(|s| s.contains("/mnt/mesos/sandbox"))
    });
    assert!(std::fs::read_to_string(&stdout)
        .unwrap()
        .contains("in-the-image"));
    // On the host's network: the host's resolv.conf, not the image's.
    if let Ok(host) = std::fs::canonicalize("/etc/resolv.conf") {
        assert_eq!(
            std::fs::read_to_string(sandbox(&fx, long).join("resolv.txt")).unwrap_or_default(),
            std::fs::read_to_string(host).unwrap()
        );
    }
    // GET_CONTAINERS lists it with `show_standalone` only.
    let containers = |show: bool| -> Value {
        let r = json_call(
            &agent,
            json!({"type": "GET_CONTAINERS", "get_containers": {"show_standalone": show}}),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        serde_json::from_slice(&r.body).unwrap()
    };
    assert_eq!(containers(false), json!({"type": "GET_CONTAINERS"}));
    let listed = containers(true);
    let entry = &listed["get_containers"]["containers"][0];
    assert_eq!(entry["container_id"], id(long), "{listed}");
    assert_eq!(entry["container_status"]["container_id"], id(long));
    assert_eq!(
        entry["resource_statistics"]["mem_limit_bytes"],
        json!(96u64 << 20),
        "{listed}"
    );
    assert_eq!(entry["resource_statistics"]["cpus_soft_limit"], json!(0.2));
    assert!(entry.get("framework_id").is_none(), "{listed}");
    // Not ended: REMOVE is refused.
    let r = remove_json(&agent, long);
    assert_eq!(r.status, 500);
    assert_eq!(r.text(), "Container long-one has not terminated yet");

    // --- JSON: one that exits with a code ---
    let short = "short-one";
    let r = launch(&agent, short, "exit 3", true);
    assert_eq!(r.status, 200, "{}", r.text());
    let w = wait_json(&agent, short);
    assert_eq!(w["type"], "WAIT_CONTAINER");
    assert_eq!(w["wait_container"], json!({"exit_status": 3 << 8}));
    // Waiting again gives the same answer until it is removed.
    assert_eq!(wait_json(&agent, short), w);

    // KILL with SIGTERM reaches the command's trap.
    let r = kill_json(&agent, long, 15);
    assert_eq!(r.status, 200, "{}", r.text());
    let w = wait_json(&agent, long);
    assert_eq!(w["wait_container"], json!({"exit_status": 7 << 8}));
    assert!(std::fs::read_to_string(&stdout)
        .unwrap()
        .contains("got-term"));
    let r = kill_json(&agent, long, 9);
    assert_eq!(r.status, 404);
    assert_eq!(
        r.text(),
        "Container 'long-one' cannot be found (or is already killed)"
    );
    for c in [long, short] {
        let r = remove_json(&agent, c);
        assert_eq!(r.status, 200, "{c}: {}", r.text());
        gone(&fx, c);
    }
    let r = remove_json(&agent, long);
    assert_eq!(r.status, 500);
    assert_eq!(r.text(), "Root container long-one not found");
    let r = json_call(
        &agent,
        json!({"type": "WAIT_CONTAINER", "wait_container": {"container_id": id("long-one")}}),
    );
    assert_eq!(
        (r.status, r.text().as_str()),
        (404, "Container long-one cannot be found")
    );

    // --- over its memory limit: TASK_FAILED with the memory limitation ---
    let r = launch(&agent, "hog", "exec tail /dev/zero", false);
    assert_eq!(r.status, 200, "{}", r.text());
    let w = wait_json(&agent, "hog");
    assert_eq!(w["wait_container"]["exit_status"], json!(9), "{w}");
    assert_eq!(w["wait_container"]["state"], "TASK_FAILED", "{w}");
    assert_eq!(
        w["wait_container"]["reason"], "REASON_CONTAINER_LIMITATION_MEMORY",
        "{w}"
    );
    assert!(
        w["wait_container"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Memory limit exceeded")),
        "{w}"
    );
    assert_eq!(remove_json(&agent, "hog").status, 200);
    gone(&fx, "hog");

    // --- protobuf: launch, SIGKILL (the default), wait, remove ---
    let pb = ContainerId {
        value: "pb-one".into(),
        parent: None,
    };
    let r = proto_call(
        &agent,
        &Call {
            r#type: Some(call::Type::LaunchContainer as i32),
            launch_container: Some(call::LaunchContainer {
                container_id: pb.clone(),
                command: Some(butte::proto::mesos::v1::CommandInfo {
                    value: Some("exec sleep 600".into()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        },
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = proto_call(
        &agent,
        &Call {
            r#type: Some(call::Type::KillContainer as i32),
            kill_container: Some(call::KillContainer {
                container_id: pb.clone(),
                signal: None,
            }),
            ..Default::default()
        },
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = proto_call(
        &agent,
        &Call {
            r#type: Some(call::Type::WaitContainer as i32),
            wait_container: Some(call::WaitContainer {
                container_id: pb.clone(),
            }),
            ..Default::default()
        },
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let resp: Response = prost::Message::decode(r.body.as_slice()).unwrap();
    assert_eq!(resp.r#type, Some(response::Type::WaitContainer as i32));
    let w = resp.wait_container.unwrap();
    assert_eq!(w.exit_status, Some(9));
    assert_eq!(w.state, None);
    let r = proto_call(
        &agent,
        &Call {
            r#type: Some(call::Type::RemoveContainer as i32),
            remove_container: Some(call::RemoveContainer {
                container_id: pb.clone(),
            }),
            ..Default::default()
        },
    );
    assert_eq!(r.status, 200, "{}", r.text());
    gone(&fx, "pb-one");

    // --- bad calls ---
    let r = json_call(
        &agent,
        json!({"type": "LAUNCH_CONTAINER", "launch_container": {
            "container_id": id("docker-one"), "command": {"value": "true"},
            "container": {"type": "DOCKER", "docker": {"image": "busybox"}}}}),
    );
    assert_eq!(
        (r.status, r.text().as_str()),
        (400, "The provided ContainerInfo is not supported")
    );
    let r = json_call(
        &agent,
        json!({"type": "LAUNCH_CONTAINER", "launch_container": {
            "container_id": id("no-image"), "command": {"value": "true"},
            "container": {"type": "MESOS", "mesos": {"image": {"type": "DOCKER", "docker": {"name": "library/nothing:1"}}}}}}),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("no-image"), "{}", r.text());
    gone(&fx, "no-image");
    let r = kill_json(&agent, "nope", 15);
    assert_eq!(r.status, 404);
    let r = json_call(
        &agent,
        json!({"type": "KILL_CONTAINER", "kill_container": {}}),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    let r = json_call(
        &agent,
        json!({"type": "WAIT_CONTAINER", "wait_container": {"container_id": id("a b")}}),
    );
    assert_eq!(r.status, 400, "{}", r.text());

    // --- a restart: the agent takes the running container over ---
    let r = launch(&agent, "survivor", "exec sleep 600", false);
    assert_eq!(r.status, 200, "{}", r.text());
    agent.kill();
    assert!(
        !crate::support::processes_in_cgroup(&format!("{}/survivor", fx.parent)).is_empty(),
        "the container dies with the agent"
    );
    agent.restart();
    master.reregister();
    let r = launch(&agent, "survivor", "exec sleep 600", false);
    assert_eq!(r.status, 202, "recovered: {}", r.text());
    let r = kill_json(&agent, "survivor", 9);
    assert_eq!(r.status, 200, "{}", r.text());
    let w = wait_json(&agent, "survivor");
    // Adopted: its exit status is not the agent's to know.
    assert_eq!(w["wait_container"].get("exit_status"), None, "{w}");
    assert_ne!(
        w["wait_container"]["state"],
        json!(TaskState::TaskFailed.as_str_name())
    );
    let r = remove_json(&agent, "survivor");
    assert_eq!(r.status, 200, "{}", r.text());
    gone(&fx, "survivor");

    // --- PRUNE_IMAGES: an excluded image stays, then it goes ---
    let refs = fx.work.path().join("agent-work/store/refs.json");
    let names = || std::fs::read_to_string(&refs).unwrap_or_default();
    assert!(names().contains("busybox"), "{}", names());
    let keep = json!({"type": "PRUNE_IMAGES", "prune_images": {"excluded_images": [
        {"type": "DOCKER", "docker": {"name": "library/busybox:1"}}]}});
    let r = json_call(&agent, keep);
    assert_eq!((r.status, r.body.len()), (200, 0), "{}", r.text());
    assert!(names().contains("busybox"), "{}", names());
    let r = json_call(&agent, json!({"type": "PRUNE_IMAGES"}));
    assert_eq!((r.status, r.body.len()), (200, 0), "{}", r.text());
    assert!(!names().contains("busybox"), "{}", names());
    let layers = fx.work.path().join("agent-work/store/layers");
    let left: Vec<_> = std::fs::read_dir(&layers)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "layers left: {left:?}");
    master::finish(fx, master, agent);
}
