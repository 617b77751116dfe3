//! Issue 6 end to end: tasks launched by the scripted master
//! (`support::master`) on `butte agent`, run by its command and default
//! executors or by a custom executor in Python speaking the v1 JSON API;
//! images, task groups, the OOM killer, kill policies, health checks; and
//! bad calls on the agent's /api/v1/executor, which must change nothing,
//! among them calls without the executor's own token (issue 11).

use crate::support::master::{
    self, command_task, describe, executor, framework, image_container, kill_policy, resources,
    shell, status, task_and_state, AgentProcess, FakeMaster, WAIT,
};
use crate::support::registry::Registry;
use crate::support::{busybox_oci, enabled, processes_in_cgroup, Fixture};
use base64::Engine as _;
use butte::proto::mesos::internal::StatusUpdate;
use butte::proto::mesos::{
    check_info, health_check, task_status, CheckInfo, FrameworkInfo, HealthCheck, TaskState,
};
use serde_json::json;
use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn start(extra: &[&str]) -> (Fixture, FakeMaster, AgentProcess) {
    let fx = Fixture::new();
    let master = FakeMaster::start(0);
    let agent = AgentProcess::start(&fx, &master, extra);
    master.register();
    (fx, master, agent)
}

/// Acknowledges the updates of TASK as they come until one has STATE or
/// another terminal state; returns it and whether it has STATE.
fn ack_through(master: &FakeMaster, task: &str, state: TaskState) -> (StatusUpdate, bool) {
    loop {
        let u = master.expect_update(&format!("for {task}"), WAIT, |u| {
            task_and_state(u).0 == task
        });
        master.ack(&u);
        let (_, s) = task_and_state(&u);
        if s == state || master::TERMINAL.contains(&s) {
            return (u, s == state);
        }
    }
}

/// `ack_through`, panicking on a different terminal state.
fn ack_until(master: &FakeMaster, task: &str, state: TaskState) -> StatusUpdate {
    let (u, reached) = ack_through(master, task, state);
    assert!(
        reached,
        "waiting for {} of {task}, got {}",
        state.as_str_name(),
        describe(&u)
    );
    u
}

/// `ack_until` TASK_FINISHED; on another end, panics with the sandbox's
/// stdout and stderr.
fn finished(
    master: &FakeMaster,
    agent: &AgentProcess,
    fw: &FrameworkInfo,
    task: &str,
) -> StatusUpdate {
    let (u, reached) = ack_through(master, task, TaskState::TaskFinished);
    if !reached {
        let dir = sandbox(master, agent, fw, &u);
        let file = |name: &str| fs::read_to_string(dir.join(name)).unwrap_or_default();
        panic!(
            "waiting for TASK_FINISHED of {task}, got {}\nstdout:\n{}\nstderr:\n{}",
            describe(&u),
            file("stdout"),
            file("stderr")
        );
    }
    u
}

/// The executor id the agent reports for the task of U (the task id for a
/// command task, as in Mesos).
fn executor_id(u: &StatusUpdate) -> String {
    u.executor_id
        .as_ref()
        .or(status(u).executor_id.as_ref())
        .map(|e| e.value.clone())
        .unwrap_or_else(|| task_and_state(u).0)
}

fn sandbox(
    master: &FakeMaster,
    agent: &AgentProcess,
    fw: &FrameworkInfo,
    u: &StatusUpdate,
) -> PathBuf {
    agent.sandbox(&master.slave_id(), fw, &executor_id(u))
}

fn read(path: PathBuf) -> String {
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn source_is(u: &StatusUpdate, source: task_status::Source) {
    assert_eq!(status(u).source, Some(source as i32), "{}", describe(u));
}

#[test]
fn command_task_runs_in_its_sandbox_and_finishes() {
    if !enabled() {
        return;
    }
    let (fx, master, agent) = start(&[]);
    let fw = framework("command");
    master.run_task(
        &fw,
        &command_task(
            "hello",
            "echo hello; pwd; echo $MESOS_SANDBOX; echo oops >&2; \
             echo token=${MESOS_EXECUTOR_AUTHENTICATION_TOKEN:-none}",
        ),
    );
    let starting = ack_until(&master, "hello", TaskState::TaskStarting);
    source_is(&starting, task_status::Source::Executor);
    ack_until(&master, "hello", TaskState::TaskRunning);
    let done = finished(&master, &agent, &fw, "hello");
    source_is(&done, task_status::Source::Executor);
    let dir = sandbox(&master, &agent, &fw, &done);
    let real = fs::canonicalize(&dir).unwrap();
    let out = read(dir.join("stdout"));
    assert!(out.contains("hello\n"), "{out}");
    assert!(
        out.contains(&format!("{}\n", real.display())),
        "not run in its sandbox {}: {out}",
        real.display()
    );
    assert!(read(dir.join("stderr")).contains("oops"));
    // The executor's token is its own: the task does not inherit it.
    assert!(out.contains("token=none\n"), "{out}");
    master::finish(fx, master, agent);
}

#[test]
fn task_with_an_image_runs_inside_it() {
    if !enabled() {
        return;
    }
    let registry = Registry::start();
    registry.push(&busybox_oci(), "1", "library/busybox:1");
    let (fx, master, agent) = start(&["--docker_registry", &registry.url()]);
    let fw = framework("image");
    let mut task = command_task(
        "boxed",
        "cat /etc/os-release || ls /bin/busybox; test -e /etc/debian_version && echo on-the-host || echo in-the-image; grep CapEff /proc/self/status; grep Seccomp_filters /proc/self/status; unshare -U true || echo userns-denied; \
         cat /etc/hosts > $MESOS_SANDBOX/hosts.txt; cat /etc/resolv.conf > $MESOS_SANDBOX/resolv.txt; \
         (echo 10.9.9.9 intruder >> /etc/hosts) 2>/dev/null || echo etc-hosts-read-only",
    );
    task.container = Some(image_container("library/busybox:1"));
    master.run_task(&fw, &task);
    let done = finished(&master, &agent, &fw, "boxed");
    let out = read(sandbox(&master, &agent, &fw, &done).join("stdout"));
    assert!(
        out.contains("/bin/busybox") && out.contains("in-the-image"),
        "{out}"
    );
    assert!(!out.contains("on-the-host"), "{out}");
    // The task holds the default set: no CAP_SYS_ADMIN.
    let want = format!("{:016x}", butte::runtime::default_capability_mask());
    assert!(out.contains(&format!("CapEff:\t{want}")), "{out}");
    // The executor's filter (which allows what its CAP_SYS_ADMIN start
    // needs) and the task's own on top: a user namespace is denied.
    assert!(out.contains("Seccomp_filters:\t2"), "{out}");
    assert!(out.contains("userns-denied"), "{out}");
    // On the host network the task sees the host's /etc/hosts and
    // /etc/resolv.conf, not the image's, and cannot rewrite them.
    let dir = sandbox(&master, &agent, &fw, &done);
    for (file, host) in [
        ("hosts.txt", "/etc/hosts"),
        ("resolv.txt", "/etc/resolv.conf"),
    ] {
        assert_eq!(
            read(dir.join(file)),
            fs::read_to_string(host).unwrap_or_default(),
            "{file}"
        );
    }
    assert!(out.contains("etc-hosts-read-only"), "{out}");
    assert!(!read(dir.join("hosts.txt")).contains("intruder"));
    master::finish(fx, master, agent);
}

#[test]
fn task_group_fails_as_one_when_a_task_fails() {
    if !enabled() {
        return;
    }
    let (fx, master, agent) = start(&[]);
    let fw = framework("group");
    let exec = executor("group-executor", &fw, None);
    master.run_task_group(
        &fw,
        &exec,
        &[
            command_task("steady", "sleep 60"),
            command_task("crasher", "sleep 2; exit 1"),
        ],
    );
    ack_until(&master, "steady", TaskState::TaskRunning);
    ack_until(&master, "crasher", TaskState::TaskRunning);
    let failed = ack_until(&master, "crasher", TaskState::TaskFailed);
    source_is(&failed, task_status::Source::Executor);
    let killed = ack_until(&master, "steady", TaskState::TaskKilled);
    assert_eq!(executor_id(&killed), "group-executor");
    master::finish(fx, master, agent);
}

#[test]
fn memory_hog_fails_with_the_memory_limitation() {
    if !enabled() {
        return;
    }
    let (fx, master, agent) = start(&[]);
    let fw = framework("oom");
    let mut task = command_task("hog", "tail /dev/zero");
    task.resources = resources(0.1, 32.0);
    master.run_task(&fw, &task);
    let u = ack_until(&master, "hog", TaskState::TaskFailed);
    let s = status(&u);
    source_is(&u, task_status::Source::Slave);
    assert_eq!(
        s.reason,
        Some(task_status::Reason::ContainerLimitationMemory as i32),
        "{}",
        describe(&u)
    );
    let message = s.message.clone().unwrap_or_default();
    assert!(
        message.to_lowercase().contains("memory")
            && (message.contains("MB") || message.contains("MiB")),
        "the message does not name the limit: {message:?}"
    );
    master::finish(fx, master, agent);
}

#[test]
fn kill_policy_grace_then_sigkill() {
    if !enabled() {
        return;
    }
    let (fx, master, agent) = start(&[]);
    let fw = framework("kill");
    let flag = fx.work.path().join("got-term");
    let graceful = format!(
        "trap 'echo term > {}; exit 0' TERM; while :; do sleep 0.1; done",
        flag.display()
    );
    master.run_task(&fw, &command_task("graceful", &graceful));
    ack_until(&master, "graceful", TaskState::TaskRunning);
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    master.kill_task(&fw, "graceful", Some(kill_policy(Duration::from_secs(20))));
    ack_until(&master, "graceful", TaskState::TaskKilled);
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "a TERM-handling task took {:?}",
        t.elapsed()
    );
    assert_eq!(
        fs::read_to_string(&flag).unwrap_or_default(),
        "term\n",
        "the trap did not run"
    );

    let mut stubborn = command_task("stubborn", "trap '' TERM; while :; do sleep 0.1; done");
    stubborn.kill_policy = Some(kill_policy(Duration::from_secs(30)));
    master.run_task(&fw, &stubborn);
    ack_until(&master, "stubborn", TaskState::TaskRunning);
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    // The kill's own policy overrides the task's.
    master.kill_task(&fw, "stubborn", Some(kill_policy(Duration::from_secs(1))));
    ack_until(&master, "stubborn", TaskState::TaskKilled);
    let took = t.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(10),
        "killed after {took:?} with a 1 s grace period"
    );
    master::finish(fx, master, agent);
}

#[test]
fn health_check_turns_unhealthy() {
    if !enabled() {
        return;
    }
    let (fx, master, agent) = start(&[]);
    let fw = framework("health");
    let sick = fx.work.path().join("sick");
    let mut task = command_task("checked", "sleep 60");
    task.health_check = Some(HealthCheck {
        r#type: Some(health_check::Type::Command as i32),
        command: Some(shell(&format!("test ! -e {}", sick.display()))),
        delay_seconds: Some(0.0),
        interval_seconds: Some(1.0),
        timeout_seconds: Some(5.0),
        grace_period_seconds: Some(0.0),
        consecutive_failures: Some(100),
        ..Default::default()
    });
    master.run_task(&fw, &task);
    ack_until(&master, "checked", TaskState::TaskRunning);
    let health = |healthy: bool| {
        let u = master.expect_update(&format!("with healthy={healthy}"), WAIT, |u| {
            task_and_state(u) == ("checked".into(), TaskState::TaskRunning)
                && status(u).healthy == Some(healthy)
        });
        master.ack(&u);
        assert_eq!(
            status(&u).reason,
            Some(task_status::Reason::TaskHealthCheckStatusUpdated as i32),
            "{}",
            describe(&u)
        );
    };
    health(true);
    fs::write(&sick, "").unwrap();
    health(false);
    master.kill_task(&fw, "checked", None);
    ack_until(&master, "checked", TaskState::TaskKilled);
    master::finish(fx, master, agent);
}

/// A nested task's COMMAND health check runs in a debug container of its
/// own (a session), launched with the executor's token when the operator
/// API wants credentials (issue 14, item 6).
#[test]
fn nested_group_tasks_are_health_checked_with_the_executors_token() {
    if !enabled() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("credentials.json");
    fs::write(
        &creds,
        json!({"credentials": [{"principal": "ops", "secret": "s3cret"}]}).to_string(),
    )
    .unwrap();
    let (fx, master, agent) = start(&[
        "--task_group_nested_containers",
        "--authenticate_http_readwrite",
        "--http_credentials",
        creds.to_str().unwrap(),
    ]);
    let fw = framework("nested-health");
    let exec = executor("nested-health-executor", &fw, None);
    let sick = fx.work.path().join("sick");
    let mut task = command_task("checked", "exec sleep 600");
    task.health_check = Some(HealthCheck {
        r#type: Some(health_check::Type::Command as i32),
        command: Some(shell(&format!("test ! -e {}", sick.display()))),
        delay_seconds: Some(0.0),
        interval_seconds: Some(1.0),
        timeout_seconds: Some(10.0),
        grace_period_seconds: Some(0.0),
        consecutive_failures: Some(100),
        ..Default::default()
    });
    master.run_task_group(&fw, &exec, &[task]);
    let running = ack_until(&master, "checked", TaskState::TaskRunning);
    nested_id_of(&running);
    let health = |healthy: bool| {
        let u = master.expect_update(&format!("with healthy={healthy}"), WAIT, |u| {
            task_and_state(u) == ("checked".into(), TaskState::TaskRunning)
                && status(u).healthy == Some(healthy)
        });
        master.ack(&u);
    };
    health(true);
    fs::write(&sick, "").unwrap();
    health(false);
    master.kill_task(&fw, "checked", None);
    ack_until(&master, "checked", TaskState::TaskKilled);
    master::finish(fx, master, agent);
}

/// A custom executor: stdlib Python speaking the v1 executor API in JSON.
const PYTHON_EXECUTOR: &str = r#"
import base64, http.client, json, os, sys, time, uuid

host, port = os.environ["MESOS_AGENT_ENDPOINT"].rsplit(":", 1)
ids = {"framework_id": {"value": os.environ["MESOS_FRAMEWORK_ID"]},
       "executor_id": {"value": os.environ["MESOS_EXECUTOR_ID"]}}
HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}
token = os.environ.get("MESOS_EXECUTOR_AUTHENTICATION_TOKEN")
print("token", "given" if token else "absent", flush=True)
# OLD_EXECUTOR: an executor written before executors were authenticated.
if token and not os.environ.get("OLD_EXECUTOR"):
    HEADERS["Authorization"] = "Bearer " + token

def update(task_id, state):
    u = base64.b64encode(uuid.uuid4().bytes).decode()
    status = {"task_id": task_id, "state": state, "source": "SOURCE_EXECUTOR",
              "executor_id": ids["executor_id"], "uuid": u}
    c = http.client.HTTPConnection(host, int(port), timeout=30)
    c.request("POST", "/api/v1/executor",
              json.dumps(dict(ids, type="UPDATE", update={"status": status})), HEADERS)
    r = c.getresponse()
    body = r.read()
    if r.status != 202:
        sys.exit("UPDATE %s: %d %r" % (state, r.status, body))
    return u

def subscribe():
    c = http.client.HTTPConnection(host, int(port))
    c.request("POST", "/api/v1/executor", json.dumps(dict(ids, type="SUBSCRIBE", subscribe={})), HEADERS)
    r = c.getresponse()
    if r.status != 200:
        sys.exit("SUBSCRIBE: %d %r" % (r.status, r.read()))
    return c, r

def events():
    while True:
        size = b""
        while not size.endswith(b"\n"):
            ch = r.read(1)
            if not ch:
                return
            size += ch
        yield json.loads(r.read(int(size)))

c, r = subscribe()
# DROP_FIRST_STREAM: the first stream breaks before the LAUNCH is read (as
# when a SUBSCRIBE times out on a busy agent); the executor subscribes
# again knowing no task.
if os.environ.get("DROP_FIRST_STREAM"):
    print("dropped a stream after", next(events())["type"], flush=True)
    c.close()
    time.sleep(0.5)
    c, r = subscribe()

unacked, finished = set(), False
for event in events():
    print("event", event["type"], flush=True)
    if event["type"] == "LAUNCH":
        task_id = event["launch"]["task"]["task_id"]
        unacked.add(update(task_id, "TASK_RUNNING"))
        unacked.add(update(task_id, "TASK_FINISHED"))
        finished = True
    elif event["type"] == "ACKNOWLEDGED":
        unacked.discard(event["acknowledged"]["uuid"])
        if finished and not unacked:
            print("all acknowledged", flush=True)
            break
    elif event["type"] == "SHUTDOWN":
        break
"#;

#[test]
fn custom_python_executor_runs_a_task_and_exits_after_the_acks() {
    if !enabled() {
        return;
    }
    let (fx, master, agent) = start(&[]);
    let fw = framework("custom");
    let script = fx.work.path().join("executor.py");
    fs::write(&script, PYTHON_EXECUTOR).unwrap();
    let mut task = command_task("py-task", "unused");
    task.command = None;
    task.executor = Some(executor(
        "py-executor",
        &fw,
        Some(shell(&format!("python3 -u {}", script.display()))),
    ));
    master.run_task(&fw, &task);
    let running = ack_until(&master, "py-task", TaskState::TaskRunning);
    source_is(&running, task_status::Source::Executor);
    finished(&master, &agent, &fw, "py-task");
    // The executor exits once both updates are acknowledged.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !processes_in_cgroup(&fx.parent).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the executor did not exit after the acks; {}",
            agent.log_tail(40)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let dir = agent.sandbox(&master.slave_id(), &fw, "py-executor");
    let out = read(dir.join("stdout"));
    for line in [
        "token given",
        "event SUBSCRIBED",
        "event LAUNCH",
        "event ACKNOWLEDGED",
        "all acknowledged",
    ] {
        assert!(
            out.contains(line),
            "executor stdout lacks {line:?}: {out}\nstderr: {}",
            read(dir.join("stderr"))
        );
    }
    master::finish(fx, master, agent);
}

/// An executor whose first SUBSCRIBE stream broke before it read its
/// LAUNCH (as when the SUBSCRIBE timed out on a busy agent) subscribes
/// again knowing no task: the agent, which sent that LAUNCH itself, sends
/// it again (the task is not reported lost).
#[test]
fn a_launch_lost_with_a_broken_stream_is_sent_again_on_resubscription() {
    if !enabled() {
        return;
    }
    let (fx, master, agent) = start(&[]);
    let fw = framework("resubscribe");
    let script = fx.work.path().join("executor.py");
    fs::write(&script, PYTHON_EXECUTOR).unwrap();
    let mut task = command_task("relaunched", "unused");
    task.command = None;
    let mut command = shell(&format!("python3 -u {}", script.display()));
    command.environment = Some(butte::proto::mesos::Environment {
        variables: vec![butte::proto::mesos::environment::Variable {
            name: "DROP_FIRST_STREAM".into(),
            value: Some("1".into()),
            ..Default::default()
        }],
    });
    task.executor = Some(executor("dropping-executor", &fw, Some(command)));
    master.run_task(&fw, &task);
    finished(&master, &agent, &fw, "relaunched");
    let dir = agent.sandbox(&master.slave_id(), &fw, "dropping-executor");
    let out = read(dir.join("stdout"));
    assert!(
        out.contains("dropped a stream after SUBSCRIBED") && out.contains("event LAUNCH"),
        "{out}"
    );
    assert!(
        agent
            .log()
            .contains("launching again what the executor did not receive"),
        "{}",
        agent.log_tail(40)
    );
    master::finish(fx, master, agent);
}

/// What the agent answered a call.
struct Answer {
    code: u16,
    body: String,
    /// The `WWW-Authenticate` header.
    challenge: Option<String>,
}

/// POSTs BODY to the agent's executor API, with `Authorization: AUTH` when
/// given.
fn post(
    agent: &AgentProcess,
    auth: Option<&str>,
    content_type: &str,
    accept: &str,
    body: &str,
) -> Answer {
    let url = format!("http://{}/api/v1/executor", agent.endpoint());
    let mut req = ureq::post(&url)
        .set("Content-Type", content_type)
        .set("Accept", accept)
        .timeout(Duration::from_secs(10));
    if let Some(a) = auth {
        req = req.set("Authorization", a);
    }
    let resp = match req.send_string(body) {
        Ok(resp) => resp,
        Err(ureq::Error::Status(_, resp)) => resp,
        Err(e) => panic!("POST {url}: {e}"),
    };
    Answer {
        code: resp.status(),
        challenge: resp.header("WWW-Authenticate").map(str::to_string),
        body: resp.into_string().unwrap_or_default(),
    }
}

/// POSTs BODY with TOKEN as the bearer token; returns the status and body.
fn call(
    agent: &AgentProcess,
    token: &str,
    content_type: &str,
    accept: &str,
    body: &str,
) -> (u16, String) {
    let a = post(
        agent,
        Some(&format!("Bearer {token}")),
        content_type,
        accept,
        body,
    );
    (a.code, a.body)
}

/// The token the agent gave executor EX of FW: the
/// MESOS_EXECUTOR_AUTHENTICATION_TOKEN of its process (found through the
/// pid the agent checkpointed) and the executor's container id.
fn token_of(
    master: &FakeMaster,
    agent: &AgentProcess,
    fw: &FrameworkInfo,
    ex: &str,
) -> (String, String) {
    let run = fs::canonicalize(agent.sandbox(&master.slave_id(), fw, ex)).unwrap();
    let container = run.file_name().unwrap().to_str().unwrap().to_string();
    let pid_file = butte::state::paths::WorkDir::new(&agent.work_dir).forked_pid(
        &master.slave_id().value,
        &fw.id.as_ref().unwrap().value,
        ex,
        &container,
    );
    let pid = read(pid_file).trim().to_string();
    let environ = fs::read(format!("/proc/{pid}/environ")).unwrap();
    let token = environ
        .split(|b| *b == 0)
        .find_map(|kv| kv.strip_prefix(b"MESOS_EXECUTOR_AUTHENTICATION_TOKEN="))
        .unwrap_or_else(|| panic!("executor {ex} (pid {pid}) has no token"));
    (String::from_utf8(token.to_vec()).unwrap(), container)
}

#[test]
fn bad_executor_api_calls_are_refused_and_change_nothing() {
    if !enabled() {
        return;
    }
    let (fx, master, agent) = start(&[]);
    let fw = framework("api");
    let fw_id = json!({"value": fw.id.as_ref().unwrap().value});
    master.run_task(&fw, &command_task("a", "sleep 60"));
    let a = ack_until(&master, "a", TaskState::TaskRunning);
    master.run_task(&fw, &command_task("b", "sleep 60"));
    let b = ack_until(&master, "b", TaskState::TaskRunning);
    let (exec_a, exec_b) = (executor_id(&a), executor_id(&b));
    // An executor that is launched but never subscribes.
    let mut mute = command_task("mute-task", "unused");
    mute.command = None;
    mute.executor = Some(executor("mute", &fw, Some(shell("sleep 60"))));
    master.run_task(&fw, &mute);
    std::thread::sleep(Duration::from_secs(2));
    let before = master.statuses().len();
    let (token_a, _) = token_of(&master, &agent, &fw, &exec_a);
    let (token_mute, _) = token_of(&master, &agent, &fw, "mute");

    // A version 4 UUID (Mesos refuses bytes that are not a UUID).
    let uuid = base64::engine::general_purpose::STANDARD.encode([
        0x5b, 0x1e, 0x7a, 0x41, 0x03, 0x9c, 0x4f, 0x2d, 0x8e, 0x6a, 0x11, 0x22, 0x33, 0x44, 0x55,
        0x66,
    ]);
    let update = |executor: &str, task: &str, state: &str, status_executor: &str| {
        json!({
            "type": "UPDATE", "framework_id": fw_id, "executor_id": {"value": executor},
            "update": {"status": {
                "task_id": {"value": task}, "state": state, "source": "SOURCE_EXECUTOR",
                "executor_id": {"value": status_executor}, "uuid": uuid}}
        })
        .to_string()
    };
    let with_type = |t: &str, executor: &str| {
        json!({"type": t, "framework_id": fw_id, "executor_id": {"value": executor}}).to_string()
    };
    // (Mesos answers HEARTBEAT before looking the executor up: UPDATE here.)
    let unknown_fw = {
        let mut v: serde_json::Value =
            serde_json::from_str(&update(&exec_a, "a", "TASK_RUNNING", &exec_a)).unwrap();
        v["framework_id"] = json!({"value": "nope"});
        v.to_string()
    };
    let json_ct = "application/json";
    // Each with executor a's token (the mute executor's for its own call):
    // the agent's checks after authentication.
    let (a, m) = (token_a.as_str(), token_mute.as_str());
    let cases: Vec<(&str, &str, &str, &str, String, u16)> = vec![
        ("invalid JSON", a, json_ct, json_ct, "{not json".into(), 400),
        ("unsupported media type", a, "text/plain", json_ct, with_type("HEARTBEAT", &exec_a), 415),
        ("UNKNOWN call", a, json_ct, json_ct, with_type("UNKNOWN", &exec_a), 501),
        ("unparseable call type", a, json_ct, json_ct, with_type("FROBNICATE", &exec_a), 400),
        ("UPDATE before SUBSCRIBE", m, json_ct, json_ct, update("mute", "mute-task", "TASK_RUNNING", "mute"), 403),
        ("update for another executor's task", a, json_ct, json_ct, update(&exec_a, "b", "TASK_FAILED", &exec_a), 400),
        ("status naming another executor", a, json_ct, json_ct, update(&exec_a, "a", "TASK_FAILED", &exec_b), 400),
        ("TASK_STAGING from an executor", a, json_ct, json_ct, update(&exec_a, "a", "TASK_STAGING", &exec_a), 400),
        ("unknown framework", a, json_ct, json_ct, unknown_fw, 400),
        ("unknown executor", a, json_ct, json_ct, update("nobody", "a", "TASK_RUNNING", "nobody"), 400),
        ("SUBSCRIBE that accepts no JSON", a, json_ct, "text/html", json!({"type": "SUBSCRIBE", "framework_id": fw_id, "executor_id": {"value": exec_a}, "subscribe": {}}).to_string(), 406),
    ];
    let mut wrong = Vec::new();
    for (what, token, ct, accept, body, want) in &cases {
        let (code, text) = call(&agent, token, ct, accept, body);
        eprintln!("{what}: {code} {text:?}");
        if code != *want {
            wrong.push(format!("{what}: got {code} {text:?}, want {want}"));
        }
    }
    master.settle(Duration::from_secs(2));
    let after: Vec<String> = master.statuses()[before..]
        .iter()
        .filter(|u| task_and_state(u).0 != "mute-task")
        .map(describe)
        .collect();
    assert!(after.is_empty(), "bad calls changed tasks: {after:#?}");
    assert!(wrong.is_empty(), "{wrong:#?}");
    // Both tasks are still there to be killed.
    for t in ["a", "b"] {
        master.kill_task(&fw, t, None);
        ack_until(&master, t, TaskState::TaskKilled);
    }
    master::finish(fx, master, agent);
}

/// Issue 11: with executor authentication (on by default), a call without
/// a token, with a forged or garbled one, or with another executor's is
/// refused (401, 401, 403) and changes nothing; the executors' own tokens,
/// signed with the `--executor_secret_key` given, name their framework,
/// executor and container.
#[test]
fn executor_api_refuses_calls_without_the_executors_own_token() {
    if !enabled() {
        return;
    }
    use butte::support::jwt::{self, executor_claims, Key};
    let fx = Fixture::new();
    let key_file = fx.work.path().join("given-key");
    fs::write(&key_file, b"a key the operator chose").unwrap();
    let master = FakeMaster::start(0);
    let flag = format!("--executor_secret_key={}", key_file.display());
    let agent = AgentProcess::start(&fx, &master, &[&flag]);
    master.register();
    let fw = framework("auth");
    let fw_value = fw.id.as_ref().unwrap().value.clone();
    let fw_id = json!({"value": fw_value});
    master.run_task(&fw, &command_task("a", "sleep 60"));
    let exec_a = executor_id(&ack_until(&master, "a", TaskState::TaskRunning));
    master.run_task(&fw, &command_task("b", "sleep 60"));
    let exec_b = executor_id(&ack_until(&master, "b", TaskState::TaskRunning));
    let (token_a, container_a) = token_of(&master, &agent, &fw, &exec_a);
    let (token_b, _) = token_of(&master, &agent, &fw, &exec_b);
    let key = Key::load(&key_file).unwrap();
    assert_eq!(
        jwt::decode(&token_a, &key).unwrap(),
        executor_claims::claims(&fw_value, &exec_a, &container_a)
    );
    assert!(
        !agent.work_dir.join("executor_secret_key").exists(),
        "a key was generated although one was given"
    );
    master.settle(Duration::from_secs(1));
    let before = master.statuses().len();

    let uuid = base64::engine::general_purpose::STANDARD.encode([
        0x5b, 0x1e, 0x7a, 0x41, 0x03, 0x9c, 0x4f, 0x2d, 0x8e, 0x6a, 0x11, 0x22, 0x33, 0x44, 0x55,
        0x66,
    ]);
    let failed_a = json!({
        "type": "UPDATE", "framework_id": fw_id, "executor_id": {"value": exec_a},
        "update": {"status": {
            "task_id": {"value": "a"}, "state": "TASK_FAILED", "source": "SOURCE_EXECUTOR",
            "uuid": uuid}}
    })
    .to_string();
    let message_a = json!({
        "type": "MESSAGE", "framework_id": fw_id, "executor_id": {"value": exec_a},
        "message": {"data": "aGk="}
    })
    .to_string();
    let subscribe_a = json!({
        "type": "SUBSCRIBE", "framework_id": fw_id, "executor_id": {"value": exec_a},
        "subscribe": {}
    })
    .to_string();
    let heartbeat_a =
        json!({"type": "HEARTBEAT", "framework_id": fw_id, "executor_id": {"value": exec_a}})
            .to_string();
    let forged = jwt::encode(
        &executor_claims::claims(&fw_value, &exec_a, &container_a),
        &Key::new(b"a guessed key".to_vec()).unwrap(),
    );
    let mut flipped = token_a.clone().into_bytes();
    let last = flipped.len() - 2;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    let bearer = |t: &str| format!("Bearer {t}");
    let realm = "Bearer realm=\"mesos-agent-executor\"";
    let invalid = "Bearer realm=\"mesos-agent-executor\", error=\"invalid_token\"";
    // What, the Authorization header, the body, the status and challenge wanted.
    type Case<'a> = (&'a str, Option<String>, &'a str, u16, Option<&'a str>);
    let cases: Vec<Case> = vec![
        ("UPDATE without a token", None, &failed_a, 401, Some(realm)),
        (
            "MESSAGE without a token",
            None,
            &message_a,
            401,
            Some(realm),
        ),
        (
            "SUBSCRIBE without a token",
            None,
            &subscribe_a,
            401,
            Some(realm),
        ),
        (
            "HEARTBEAT without a token",
            None,
            &heartbeat_a,
            401,
            Some(realm),
        ),
        (
            "UPDATE with a forged token",
            Some(bearer(&forged)),
            &failed_a,
            401,
            Some(invalid),
        ),
        (
            "UPDATE with a flipped signature",
            Some(bearer(&flipped)),
            &failed_a,
            401,
            Some(invalid),
        ),
        (
            "UPDATE with a garbled token",
            Some(bearer("abc.def")),
            &failed_a,
            401,
            Some(invalid),
        ),
        (
            "UPDATE with an unsigned token",
            Some(bearer(&format!(
                "{}.",
                &token_a[..token_a.rfind('.').unwrap()]
            ))),
            &failed_a,
            401,
            Some(invalid),
        ),
        (
            "UPDATE with Basic credentials",
            Some("Basic dXNlcjpwdw==".into()),
            &failed_a,
            401,
            Some(invalid),
        ),
        (
            "UPDATE with b's token for a's task",
            Some(bearer(&token_b)),
            &failed_a,
            403,
            None,
        ),
        (
            "MESSAGE with b's token as a",
            Some(bearer(&token_b)),
            &message_a,
            403,
            None,
        ),
        (
            "SUBSCRIBE with b's token as a",
            Some(bearer(&token_b)),
            &subscribe_a,
            403,
            None,
        ),
    ];
    let json_ct = "application/json";
    let mut wrong = Vec::new();
    for (what, auth, body, want, challenge) in &cases {
        let got = post(&agent, auth.as_deref(), json_ct, json_ct, body);
        eprintln!("{what}: {} {:?} {:?}", got.code, got.challenge, got.body);
        let challenge_ok = match challenge {
            None => got.challenge.is_none(),
            Some(c) => got.challenge.as_deref().is_some_and(|g| g.starts_with(c)),
        };
        if got.code != *want || !challenge_ok {
            wrong.push(format!(
                "{what}: got {} {:?} {:?}, want {want} {challenge:?}",
                got.code, got.challenge, got.body
            ));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    // Nothing changed: no update reached the master, and a's executor
    // still holds its subscription (the kill reaches it and it answers).
    master.settle(Duration::from_secs(2));
    let after: Vec<String> = master.statuses()[before..].iter().map(describe).collect();
    assert!(after.is_empty(), "refused calls changed tasks: {after:#?}");
    for t in ["a", "b"] {
        master.kill_task(&fw, t, None);
        let killed = ack_until(&master, t, TaskState::TaskKilled);
        source_is(&killed, task_status::Source::Executor);
    }
    master::finish(fx, master, agent);
}

/// Issue 11: `--authenticate_http_executors=false` lets an executor written
/// before authentication (it sends no token) run its task.
#[test]
fn old_executor_without_a_token_works_with_authentication_off() {
    if !enabled() {
        return;
    }
    let (fx, master, agent) = start(&["--authenticate_http_executors=false"]);
    let fw = framework("old");
    let script = fx.work.path().join("executor.py");
    fs::write(&script, PYTHON_EXECUTOR).unwrap();
    let mut task = command_task("old-task", "unused");
    task.command = None;
    task.executor = Some(executor(
        "old-executor",
        &fw,
        Some(shell(&format!(
            "OLD_EXECUTOR=1 python3 -u {}",
            script.display()
        ))),
    ));
    master.run_task(&fw, &task);
    ack_until(&master, "old-task", TaskState::TaskRunning);
    finished(&master, &agent, &fw, "old-task");
    // The executor exits once both updates are acknowledged.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !processes_in_cgroup(&fx.parent).is_empty() {
        assert!(Instant::now() < deadline, "{}", agent.log_tail(40));
        std::thread::sleep(Duration::from_millis(100));
    }
    let dir = agent.sandbox(&master.slave_id(), &fw, "old-executor");
    let out = read(dir.join("stdout"));
    assert!(out.contains("all acknowledged"), "{out}");
    // A call without a token is let in, as by Mesos without the flag.
    let got = post(
        &agent,
        None,
        "application/json",
        "application/json",
        &json!({"type": "HEARTBEAT", "framework_id": {"value": "f"}, "executor_id": {"value": "e"}})
            .to_string(),
    );
    assert_eq!((got.code, got.challenge), (202, None));
    master::finish(fx, master, agent);
}

// Issue 11, part 4: no executor keeps CAP_SYS_ADMIN once it talks to the
// agent; its image tasks were prepared before (`butte enter --prepare`),
// and their COMMAND checks run through a prepared check server.

/// CAP_SYS_ADMIN's bit in the masks of /proc/<pid>/status.
const SYS_ADMIN_BIT: u64 = 1 << 21;

/// The `Cap*` masks of a /proc status text, by name (`CapEff`, ...).
fn cap_masks(status: &str) -> Vec<(String, u64)> {
    status
        .lines()
        .filter_map(|l| {
            let (name, value) = l.split_once(':')?;
            let name = name.trim();
            (name.starts_with("Cap")).then(|| {
                let mask = u64::from_str_radix(value.trim(), 16)
                    .unwrap_or_else(|e| panic!("{name}: {value:?}: {e}"));
                (name.to_string(), mask)
            })
        })
        .collect()
}

/// The pid of the built-in executor running under the fixture's cgroups.
fn executor_pid(fx: &Fixture) -> i32 {
    let deadline = Instant::now() + WAIT;
    loop {
        let found = processes_in_cgroup(&fx.parent).into_iter().find(|pid| {
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let args: Vec<String> = cmdline
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            args[0].ends_with("butte-executor") || args.get(1).is_some_and(|a| a == "executor")
        });
        if let Some(pid) = found {
            return pid;
        }
        assert!(Instant::now() < deadline, "no executor process found");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Asserts from outside that no thread of the executor holds CAP_SYS_ADMIN
/// in any set, and that it holds nothing beyond the default set.
fn assert_executor_without_sys_admin(fx: &Fixture) -> String {
    let pid = executor_pid(fx);
    let default = butte::runtime::default_capability_mask();
    let mut seen = String::new();
    let tasks = fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    for t in tasks.flatten() {
        let status = read(t.path().join("status"));
        let masks = cap_masks(&status);
        for want in ["CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb"] {
            let (_, mask) = masks
                .iter()
                .find(|(n, _)| n == want)
                .unwrap_or_else(|| panic!("no {want} in {status}"));
            assert_eq!(
                mask & SYS_ADMIN_BIT,
                0,
                "executor {pid} thread {:?} has CAP_SYS_ADMIN in {want}: {mask:016x}",
                t.file_name()
            );
            assert_eq!(
                mask & !default,
                0,
                "executor {pid} thread {:?} holds more than the default set in {want}: {mask:016x}",
                t.file_name()
            );
        }
        if seen.is_empty() {
            seen = masks
                .iter()
                .map(|(n, m)| format!("{n}:{m:016x}"))
                .collect::<Vec<_>>()
                .join(" ");
        }
    }
    eprintln!("executor {pid}: {seen}");
    seen
}

/// Asserts that the `grep Cap /proc/self/status` lines in OUT (a task's
/// view of itself) show no CAP_SYS_ADMIN, the default set effective.
fn assert_task_without_sys_admin(out: &str) {
    let masks = cap_masks(out);
    let default = butte::runtime::default_capability_mask();
    for want in ["CapEff", "CapPrm", "CapBnd"] {
        let (_, mask) = masks
            .iter()
            .find(|(n, _)| n == want)
            .unwrap_or_else(|| panic!("the task printed no {want}: {out}"));
        assert_eq!(
            mask & SYS_ADMIN_BIT,
            0,
            "the task has CAP_SYS_ADMIN in {want}: {out}"
        );
        assert_eq!(*mask, default, "{want} of the task: {out}");
    }
}

/// Waits for the next TASK_RUNNING of TASK with `healthy` = HEALTHY,
/// acknowledging the task's other updates on the way (a restarted agent
/// sends again those whose acknowledgement it did not see, and holds the
/// rest back until they are acknowledged).
fn expect_health(master: &FakeMaster, task: &str, healthy: bool) {
    let u = loop {
        let u = master.expect_update(&format!("{task} with healthy={healthy}"), WAIT, |u| {
            task_and_state(u).0 == task
        });
        master.ack(&u);
        if task_and_state(&u).1 == TaskState::TaskRunning && status(&u).healthy == Some(healthy) {
            break u;
        }
    };
    assert_eq!(
        status(&u).reason,
        Some(task_status::Reason::TaskHealthCheckStatusUpdated as i32),
        "{}",
        describe(&u)
    );
}

/// A COMMAND health check run in the task's image (no Debian there) that
/// fails once `sick` exists in the task's sandbox.
fn image_health_check() -> HealthCheck {
    HealthCheck {
        r#type: Some(health_check::Type::Command as i32),
        command: Some(shell(
            "test ! -e /etc/debian_version && test ! -e /mnt/mesos/sandbox/sick",
        )),
        delay_seconds: Some(0.0),
        interval_seconds: Some(1.0),
        timeout_seconds: Some(5.0),
        grace_period_seconds: Some(0.0),
        consecutive_failures: Some(100),
        ..Default::default()
    }
}

/// Waits until FILE exists.
fn wait_for_file(file: &std::path::Path) {
    let deadline = Instant::now() + WAIT;
    while !file.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            file.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn command_executor_of_an_image_task_drops_cap_sys_admin() {
    if !enabled() {
        return;
    }
    let registry = Registry::start();
    registry.push(&busybox_oci(), "1", "library/busybox:1");
    let (fx, master, mut agent) = start(&["--docker_registry", &registry.url()]);
    let fw = framework("caps-command");
    let mut task = command_task(
        "boxed",
        "grep Cap /proc/self/status; touch /mnt/mesos/sandbox/started; \
         trap 'echo term > /mnt/mesos/sandbox/got-term; exit 0' TERM; \
         while :; do sleep 1; done",
    );
    task.container = Some(image_container("library/busybox:1"));
    task.health_check = Some(image_health_check());
    master.run_task(&fw, &task);
    let running = ack_until(&master, "boxed", TaskState::TaskRunning);
    let dir = sandbox(&master, &agent, &fw, &running);
    wait_for_file(&dir.join("started"));

    // From outside: the executor, while its image task runs.
    assert_executor_without_sys_admin(&fx);
    // From inside: the task.
    assert_task_without_sys_admin(&read(dir.join("stdout")));

    // The health check runs in the image, and follows the sandbox.
    expect_health(&master, "boxed", true);

    // The agent restarts; the executor resubscribes and goes on.
    let executor_before = executor_pid(&fx);
    agent.terminate();
    agent.restart();
    let rereg = master.reregister();
    assert!(
        rereg
            .tasks
            .iter()
            .any(|t| t.task_id.value == "boxed" && t.state == TaskState::TaskRunning as i32),
        "boxed missing after the restart"
    );
    assert_eq!(executor_pid(&fx), executor_before, "not the same executor");
    fs::write(dir.join("sick"), "").unwrap();
    expect_health(&master, "boxed", false);

    // Kill with a grace period: the task's TERM trap runs.
    let t = Instant::now();
    master.kill_task(&fw, "boxed", Some(kill_policy(Duration::from_secs(20))));
    ack_until(&master, "boxed", TaskState::TaskKilled);
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "a TERM-handling image task took {:?}",
        t.elapsed()
    );
    assert_eq!(read(dir.join("got-term")), "term\n", "the trap did not run");
    master::finish(fx, master, agent);
}

#[test]
fn default_executor_of_image_tasks_drops_cap_sys_admin() {
    if !enabled() {
        return;
    }
    let registry = Registry::start();
    registry.push(&busybox_oci(), "1", "library/busybox:1");
    let (fx, master, agent) = start(&["--docker_registry", &registry.url()]);
    let fw = framework("caps-group");
    let exec = executor("caps-group-executor", &fw, None);
    let mut boxed = command_task(
        "group-boxed",
        "grep Cap /proc/self/status > /mnt/mesos/sandbox/caps; \
         trap 'echo term > /mnt/mesos/sandbox/got-term; exit 0' TERM; \
         while :; do sleep 1; done",
    );
    boxed.container = Some(image_container("library/busybox:1"));
    boxed.health_check = Some(image_health_check());
    boxed.check = Some(CheckInfo {
        r#type: Some(check_info::Type::Command as i32),
        command: Some(check_info::Command {
            command: shell("test ! -e /etc/debian_version && test -e /mnt/mesos/sandbox/caps"),
        }),
        delay_seconds: Some(0.0),
        interval_seconds: Some(1.0),
        timeout_seconds: Some(5.0),
        ..Default::default()
    });
    let mut stubborn = command_task("group-stubborn", "trap '' TERM; while :; do sleep 1; done");
    stubborn.container = Some(image_container("library/busybox:1"));
    stubborn.kill_policy = Some(kill_policy(Duration::from_secs(1)));
    master.run_task_group(&fw, &exec, &[boxed, stubborn]);
    let running = ack_until(&master, "group-boxed", TaskState::TaskRunning);
    ack_until(&master, "group-stubborn", TaskState::TaskRunning);
    let dir = sandbox(&master, &agent, &fw, &running).join("tasks/group-boxed");
    wait_for_file(&dir.join("caps"));

    assert_executor_without_sys_admin(&fx);
    // Wait for the whole file, then judge it.
    std::thread::sleep(Duration::from_millis(200));
    assert_task_without_sys_admin(&read(dir.join("caps")));

    // Both the health check and the general COMMAND check run in the
    // image: acknowledge every update until each has reported success.
    let (mut healthy, mut checked) = (false, false);
    while !(healthy && checked) {
        let u = master.expect_update("a health or check result of group-boxed", WAIT, |u| {
            task_and_state(u) == ("group-boxed".into(), TaskState::TaskRunning)
        });
        master.ack(&u);
        healthy |= status(&u).healthy == Some(true);
        checked |= status(&u)
            .check_status
            .as_ref()
            .and_then(|c| c.command.as_ref())
            .and_then(|c| c.exit_code)
            == Some(0);
    }
    fs::write(dir.join("sick"), "").unwrap();
    expect_health(&master, "group-boxed", false);

    // The stubborn task ignores TERM: SIGKILL after its 1 s grace; the
    // group goes with it, the other task through its TERM trap.
    let t = Instant::now();
    master.kill_task(&fw, "group-stubborn", None);
    ack_until(&master, "group-stubborn", TaskState::TaskKilled);
    let took = t.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(10),
        "killed after {took:?} with a 1 s grace period"
    );
    ack_until(&master, "group-boxed", TaskState::TaskKilled);
    assert_eq!(read(dir.join("got-term")), "term\n", "the trap did not run");
    master::finish(fx, master, agent);
}

/// The nested container id a task's update names: `(child, parent)`.
fn nested_id_of(u: &StatusUpdate) -> (String, String) {
    let id = status(u)
        .container_status
        .as_ref()
        .and_then(|c| c.container_id.as_ref())
        .unwrap_or_else(|| panic!("no container id in {}", describe(u)));
    let parent = id
        .parent
        .as_ref()
        .unwrap_or_else(|| panic!("not a nested container: {}", describe(u)));
    (id.value.clone(), parent.value.clone())
}

/// `GET_CONTAINERS` with `show_nested`.
fn nested_containers(agent: &AgentProcess) -> Vec<serde_json::Value> {
    let body = json!({"type": "GET_CONTAINERS", "get_containers": {"show_nested": true}});
    let resp = ureq::post(&format!("http://{}/api/v1", agent.endpoint()))
        .set("Content-Type", "application/json")
        .set("Accept", "application/json")
        .timeout(Duration::from_secs(10))
        .send_string(&body.to_string())
        .unwrap_or_else(|e| panic!("GET_CONTAINERS: {e}"));
    let v: serde_json::Value = serde_json::from_str(&resp.into_string().unwrap()).unwrap();
    v["get_containers"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Waits until FILE holds TEXT.
fn wait_for_text(file: &std::path::Path, text: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let now = fs::read_to_string(file).unwrap_or_default();
        if now.contains(text) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} never held {text:?}: {now:?}",
            file.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Issue 14, item 6: under butte's agent the default executor runs each
/// task as a nested container of its own (through the operator API), with
/// its own image if it names one, even for a task group sent later to the
/// running executor (which images prepared at the executor's launch could
/// not do); `tasks/<id>` leads to the container's sandbox and output; the
/// agent lists the tasks' containers, with statistics, under the
/// executor's; a kill ends a task as TASK_KILLED, and its group with it.
#[test]
fn default_executor_runs_each_task_as_a_nested_container() {
    if !enabled() {
        return;
    }
    let registry = Registry::start();
    registry.push(&busybox_oci(), "1", "library/busybox:1");
    let (fx, master, agent) = start(&[
        "--docker_registry",
        &registry.url(),
        "--task_group_nested_containers",
    ]);
    let fw = framework("nested-group");
    let exec = executor("nested-group-executor", &fw, None);
    // The host is Debian; busybox is not.
    let mut boxed = command_task(
        "in-image",
        "test ! -e /etc/debian_version && echo boxed-out; exec sleep 600",
    );
    boxed.container = Some(image_container("library/busybox:1"));
    let host = command_task(
        "on-host",
        "test -e /etc/debian_version && echo host-out; exec sleep 600",
    );
    master.run_task_group(&fw, &exec, &[boxed, host]);
    let boxed = ack_until(&master, "in-image", TaskState::TaskRunning);
    let host = ack_until(&master, "on-host", TaskState::TaskRunning);
    let (boxed_id, executor_container) = nested_id_of(&boxed);
    let (host_id, parent) = nested_id_of(&host);
    assert_eq!(parent, executor_container);
    assert_ne!(boxed_id, host_id);

    // tasks/<id> leads to the container's sandbox, where its output is.
    let dir = sandbox(&master, &agent, &fw, &boxed);
    for (task, id, line) in [
        ("in-image", &boxed_id, "boxed-out"),
        ("on-host", &host_id, "host-out"),
    ] {
        let link = dir.join("tasks").join(task);
        assert_eq!(
            fs::read_link(&link).unwrap(),
            PathBuf::from("../containers").join(id)
        );
        wait_for_text(&link.join("stdout"), line);
        wait_for_text(&dir.join("containers").join(id).join("stdout"), line);
    }

    // The agent lists them under the executor's container, measured.
    let listed = nested_containers(&agent);
    for id in [&boxed_id, &host_id] {
        let c = listed
            .iter()
            .find(|c| {
                c["container_id"] == json!({"value": id, "parent": {"value": executor_container}})
            })
            .unwrap_or_else(|| panic!("no nested container {id} in {listed:?}"));
        let stats = &c["resource_statistics"];
        assert!(stats["processes"].as_u64() >= Some(1), "{c}");
        assert!(
            stats["mem_rss_bytes"].as_u64().is_some() || stats["mem_total_bytes"].is_u64(),
            "{c}"
        );
    }

    // A group sent later to the running executor: in its own image too.
    // (First in its pid namespace, it would not get a SIGTERM it has no
    // handler for: it traps it.)
    let mut later = command_task(
        "later",
        "test ! -e /etc/debian_version && echo later-out; \
         trap 'echo got-term; exit 0' TERM; while :; do sleep 0.2; done",
    );
    later.container = Some(image_container("library/busybox:1"));
    master.run_task_group(&fw, &exec, &[later]);
    let later = ack_until(&master, "later", TaskState::TaskRunning);
    let (later_id, parent) = nested_id_of(&later);
    assert_eq!(parent, executor_container);
    wait_for_text(&dir.join("tasks/later/stdout"), "later-out");

    // Killed: TASK_KILLED, its own group only.
    master.kill_task(&fw, "later", None);
    let killed = ack_until(&master, "later", TaskState::TaskKilled);
    assert_eq!(nested_id_of(&killed).0, later_id);
    assert_eq!(
        status(&killed).message.as_deref(),
        Some("Command exited with status 0"),
        "{}",
        describe(&killed)
    );
    wait_for_text(&dir.join("tasks/later/stdout"), "got-term");
    // Removed once ended: no longer listed; the sandbox stays.
    let deadline = Instant::now() + WAIT;
    while nested_containers(&agent)
        .iter()
        .any(|c| c["container_id"]["value"] == later_id.as_str())
    {
        assert!(Instant::now() < deadline, "{later_id} was never removed");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(dir
        .join("containers")
        .join(&later_id)
        .join("stdout")
        .is_file());
    // The first group goes as one.
    master.kill_task(&fw, "in-image", None);
    ack_until(&master, "in-image", TaskState::TaskKilled);
    ack_until(&master, "on-host", TaskState::TaskKilled);
    master::finish(fx, master, agent);
}

/// Issue 14, item 7: butte-executor installed as `mesos-executor` and
/// `mesos-default-executor` (the names a Mesos agent runs from its
/// `--launcher_dir`), started the way that agent starts them (with
/// `--launcher_dir=...` and no `--default`), here as custom executors of
/// butte's agent: the command executor runs a task with Mesos'
/// `--task_command` override, the default executor (chosen by its name)
/// runs a task group, and an unknown flag ends the executor with its usage.
#[test]
fn butte_executor_runs_under_the_names_and_flags_of_mesos_executors() {
    if !enabled() {
        return;
    }
    let (fx, master, agent) = start(&[]);
    let launcher = fx.work.path().join("libexec-mesos");
    fs::create_dir_all(&launcher).unwrap();
    for name in ["mesos-executor", "mesos-default-executor"] {
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_butte-executor"), launcher.join(name))
            .unwrap();
    }
    let fw = framework("mesos-executors");
    let dir = launcher.display();

    // The command executor, with Mesos' flags.
    let mut task = command_task("as-mesos-executor", "echo from-the-task > out");
    let override_cmd = r#"{"shell":true,"value":"echo from-the-flag > out"}"#;
    task.executor = Some(executor(
        "mesos-command",
        &fw,
        Some(shell(&format!(
            "exec {dir}/mesos-executor --launcher_dir={dir} --task_command='{override_cmd}' --logging_level=INFO"
        ))),
    ));
    master.run_task(&fw, &task);
    finished(&master, &agent, &fw, "as-mesos-executor");
    let sandbox = agent.sandbox(&master.slave_id(), &fw, "mesos-command");
    assert_eq!(read(sandbox.join("out")), "from-the-flag\n");

    // The default executor, by its name alone.
    let group = executor(
        "mesos-default",
        &fw,
        Some(shell(&format!(
            "exec {dir}/mesos-default-executor --launcher_dir={dir}"
        ))),
    );
    master.run_task_group(
        &fw,
        &group,
        &[
            command_task("group-one", "true"),
            command_task("group-two", "true"),
        ],
    );
    finished(&master, &agent, &fw, "group-one");
    finished(&master, &agent, &fw, "group-two");

    // A flag no Mesos executor has: the executor exits with its usage.
    let mut task = command_task("bad-flag", "true");
    task.executor = Some(executor(
        "mesos-bad-flag",
        &fw,
        Some(shell(&format!(
            "exec {dir}/mesos-executor --launcher_dir={dir} --frobnicate=1"
        ))),
    ));
    master.run_task(&fw, &task);
    let (u, _) = ack_through(&master, "bad-flag", TaskState::TaskFinished);
    assert_ne!(task_and_state(&u).1, TaskState::TaskFinished);
    let sandbox = agent.sandbox(&master.slave_id(), &fw, "mesos-bad-flag");
    let err = read(sandbox.join("stderr"));
    assert!(
        err.contains("unknown flag 'frobnicate'") && err.contains("usage: mesos-executor"),
        "{err}"
    );
    master::finish(fx, master, agent);
}

/// The driver of bench/groups.sh. Prints one line `BENCH_GROUPS {json}`:
/// for task groups as nested containers (the default) and as processes of
/// the default executor (`--task_group_nested_containers=false`), each on
/// its own agent in the same run: BUTTE_BENCH_GROUPS (20) groups of two
/// `true` tasks, one after the other, each with its own executor, timed
/// from the RunTaskGroup message to both tasks TASK_RUNNING and to both
/// TASK_FINISHED; then one group of two `sleep 600` tasks, with the
/// resident memory of every process in its executor's cgroup (and of the
/// containers' inits) and the cgroup's own charge.
#[test]
#[ignore]
fn bench_task_groups() {
    assert!(
        enabled(),
        "bench_task_groups needs BUTTE_RUNTIME_TESTS=1 and root"
    );
    let n: usize = std::env::var("BUTTE_BENCH_GROUPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let kib = |pid: i32, field: &str| -> u64 {
        fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    let mut modes = serde_json::Map::new();
    for (mode, nested) in [("nested", "true"), ("process", "false")] {
        let fx = Fixture::new();
        let master = FakeMaster::start(0);
        let flag = format!("--task_group_nested_containers={nested}");
        let agent = AgentProcess::start(&fx, &master, &[flag.as_str()]);
        master.register();
        let fw = framework(&format!("bench-{mode}"));
        let (mut running, mut finished) = (Vec::new(), Vec::new());
        for i in 0..n {
            let ids = [format!("{mode}-{i}-a"), format!("{mode}-{i}-b")];
            let tasks: Vec<_> = ids.iter().map(|id| command_task(id, "true")).collect();
            let exec = executor(&format!("{mode}-ex-{i}"), &fw, None);
            let t0 = Instant::now();
            master.run_task_group(&fw, &exec, &tasks);
            for id in &ids {
                master.ack_until(id, TaskState::TaskRunning);
            }
            running.push(t0.elapsed().as_secs_f64() * 1e3);
            for id in &ids {
                master.ack_until(id, TaskState::TaskFinished);
            }
            finished.push(t0.elapsed().as_secs_f64() * 1e3);
        }
        // Memory, with two tasks that stay.
        let ids = [format!("{mode}-mem-a"), format!("{mode}-mem-b")];
        let tasks: Vec<_> = ids
            .iter()
            .map(|id| command_task(id, "exec sleep 600"))
            .collect();
        master.run_task_group(&fw, &executor(&format!("{mode}-mem"), &fw, None), &tasks);
        let up = master.ack_until(&ids[0], TaskState::TaskRunning);
        master.ack_until(&ids[1], TaskState::TaskRunning);
        let container = status(&up)
            .container_status
            .as_ref()
            .and_then(|c| c.container_id.as_ref())
            .map(|c| c.parent.as_ref().map_or(&c.value, |p| &p.value).clone())
            .expect("the executor's container id");
        // Settled: the inits have let go of what the launch needed.
        std::thread::sleep(Duration::from_millis(500));
        let pids = processes_in_cgroup(&format!("{}/{container}", fx.parent));
        let inits: Vec<i32> = pids
            .iter()
            .copied()
            .filter(|p| {
                fs::read(format!("/proc/{p}/cmdline"))
                    .is_ok_and(|c| c.starts_with(b"butte\0launch\0"))
            })
            .collect();
        let charge = ["memory.usage_in_bytes", "memory.current"]
            .iter()
            .find_map(|f| {
                fx.cgroup_dirs(&container)
                    .iter()
                    .find_map(|d| fs::read_to_string(d.join(f)).ok())
            })
            .and_then(|t| t.trim().parse::<u64>().ok())
            .unwrap_or(0);
        modes.insert(
            mode.to_string(),
            json!({
                "launch_to_running_ms": crate::support::summary(running),
                "launch_to_finished_ms": crate::support::summary(finished),
                "processes": pids.len(),
                "rss_kib": pids.iter().map(|&p| kib(p, "VmRSS:")).sum::<u64>(),
                "inits": inits.len(),
                "init_rss_kib": inits.iter().map(|&p| kib(p, "VmRSS:")).collect::<Vec<_>>(),
                "init_private_kib": inits.iter().map(|&p| kib(p, "RssAnon:")).collect::<Vec<_>>(),
                "cgroup_charge_bytes": charge,
            }),
        );
        for id in &ids {
            master.kill_task(&fw, id, None);
        }
        for id in &ids {
            master.ack_until(id, TaskState::TaskKilled);
        }
        master::finish(fx, master, agent);
    }
    println!("BENCH_GROUPS {}", serde_json::Value::Object(modes));
}
