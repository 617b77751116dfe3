//! The views rendered from hand-made snapshots.

use super::books::{Books, MAX_COMPLETED_TASKS};
use super::render;
use super::snapshot::{ExecutorView, FrameworkView, Snapshot};
use super::*;
use crate::agent::state::ExecutorState;
use crate::proto::mesos::value::{Range, Ranges, Scalar, Type};
use crate::proto::mesos::{
    ExecutorId, ExecutorInfo, FrameworkId, FrameworkInfo, Resource, SlaveId, Task, TaskId,
    TaskState, TaskStatus,
};
use std::path::PathBuf;

fn scalar(name: &str, value: f64) -> Resource {
    Resource {
        name: name.into(),
        r#type: Type::Scalar as i32,
        scalar: Some(Scalar { value }),
        ..Default::default()
    }
}

fn task(id: &str, state: TaskState) -> Task {
    Task {
        name: id.into(),
        task_id: TaskId { value: id.into() },
        framework_id: FrameworkId { value: "F".into() },
        slave_id: SlaveId { value: "S0".into() },
        state: state as i32,
        resources: vec![scalar("cpus", 0.1), scalar("mem", 32.0)],
        statuses: vec![TaskStatus {
            task_id: TaskId { value: id.into() },
            state: state as i32,
            timestamp: Some(1.5),
            ..Default::default()
        }],
        ..Default::default()
    }
}

pub(super) fn executor(id: &str, tasks: Vec<Task>) -> ExecutorView {
    ExecutorView {
        id: id.into(),
        framework_id: "F".into(),
        info: Arc::new(ExecutorInfo {
            executor_id: ExecutorId { value: id.into() },
            name: Some(format!("Command Executor (Task: {id})")),
            source: Some(id.into()),
            resources: vec![scalar("cpus", 0.1), scalar("mem", 32.0)],
            ..Default::default()
        }),
        container_id: format!("c-{id}"),
        directory: PathBuf::from(format!(
            "/w/slaves/S0/frameworks/F/executors/{id}/runs/c-{id}"
        )),
        state: ExecutorState::Running,
        tasks: tasks.into_iter().map(Arc::new).collect(),
        queued: vec![],
        completed: vec![],
        terminated: vec![],
    }
}

pub(super) fn snapshot() -> Snapshot {
    Snapshot {
        id: "S0".into(),
        pid: "slave(1)@127.0.0.1:5051".into(),
        hostname: "h".into(),
        master_hostname: "127.0.0.1".into(),
        registered: true,
        start_time: 10.0,
        uptime_secs: 2.0,
        recovery_time_secs: 0.01,
        resources: vec![
            scalar("cpus", 2.0),
            scalar("mem", 1024.0),
            Resource {
                name: "ports".into(),
                r#type: Type::Ranges as i32,
                ranges: Some(Ranges {
                    range: vec![Range {
                        begin: 31000,
                        end: 31100,
                    }],
                }),
                ..Default::default()
            },
        ],
        attributes: vec![],
        info: crate::proto::mesos::SlaveInfo {
            hostname: "h".into(),
            port: Some(5051),
            id: Some(crate::proto::mesos::SlaveId { value: "S0".into() }),
            ..Default::default()
        },
        flags: Arc::new([("master".to_string(), "m:5050".to_string())].into()),
        frameworks: vec![FrameworkView {
            id: "F".into(),
            info: FrameworkInfo {
                user: "root".into(),
                name: "fw".into(),
                ..Default::default()
            },
            executors: vec![executor("t1", vec![task("t1", TaskState::TaskRunning)])],
            completed_executors: vec![],
        }],
        completed_frameworks: vec![],
        counters: Default::default(),
        tally: Default::default(),
        pids: Default::default(),
        drain: None,
    }
    .tallied()
}

impl Snapshot {
    fn tallied(mut self) -> Snapshot {
        self.tally = snapshot::Tally::of(&self.frameworks);
        self
    }
}

#[test]
fn state_has_mesos_top_level_keys_and_task_shapes() {
    let s = render::state(&snapshot());
    for key in [
        "version",
        "git_sha",
        "git_tag",
        "build_date",
        "build_time",
        "build_user",
        "start_time",
        "id",
        "pid",
        "hostname",
        "capabilities",
        "resources",
        "reserved_resources",
        "unreserved_resources",
        "reserved_resources_full",
        "unreserved_resources_full",
        "reserved_resources_allocated",
        "unreserved_resources_allocated",
        "resource_providers",
        "attributes",
        "master_hostname",
        "flags",
        "frameworks",
        "completed_frameworks",
    ] {
        assert!(s.get(key).is_some(), "{key} missing");
    }
    assert_eq!(s["resources"]["ports"], "[31000-31100]");
    assert_eq!(s["resources"]["gpus"], 0.0);
    assert_eq!(s["unreserved_resources_full"][0]["role"], "*");
    let ex = &s["frameworks"][0]["executors"][0];
    // The executor's own resources plus its task's.
    assert_eq!(ex["resources"]["cpus"], 0.2);
    assert_eq!(ex["resources"]["mem"], 64.0);
    assert_eq!(s["unreserved_resources_allocated"]["mem"], 64.0);
    let t = &ex["tasks"][0];
    assert_eq!(t["state"], "TASK_RUNNING");
    assert_eq!(t["executor_id"], "");
    assert_eq!(t["statuses"][0]["timestamp"], 1.5);
    assert_eq!(s["frameworks"][0]["role"], "*");
}

#[test]
fn metrics_use_mesos_names() {
    let mut snap = snapshot();
    snap.counters
        .tasks_ended
        .insert(TaskState::TaskFailed as i32, 2);
    let m = render::metrics(&snap, &render::System::read(), 2 << 30);
    assert_eq!(m["slave/tasks_running"], 1.0);
    assert_eq!(m["slave/tasks_failed"], 2.0);
    assert_eq!(m["slave/executors_running"], 1.0);
    assert_eq!(m["slave/cpus_total"], 2.0);
    assert_eq!(m["slave/mem_used"], 64.0);
    assert_eq!(m["slave/mem_percent"], 0.0625);
    assert_eq!(m["slave/registered"], 1.0);
    assert!(m["system/mem_total_bytes"].as_f64().unwrap() > 0.0);
    assert!(m.as_object().unwrap().values().all(|v| v.is_f64()));
}

#[test]
fn sandboxes_are_attached_under_three_names() {
    let a = attached(&snapshot());
    let dir = PathBuf::from("/w/slaves/S0/frameworks/F/executors/t1/runs/c-t1");
    assert_eq!(a["/frameworks/F/executors/t1/runs/latest"], dir);
    assert_eq!(a["/w/slaves/S0/frameworks/F/executors/t1/runs/c-t1"], dir);
    assert_eq!(a["/w/slaves/S0/frameworks/F/executors/t1/runs/latest"], dir);
}

#[test]
fn completed_work_moves_to_the_history_and_is_bounded() {
    let mut books = Books::new();
    for i in 0..MAX_COMPLETED_TASKS + 5 {
        books.task_completed(
            "F",
            "e",
            Arc::new(task(&format!("t{i}"), TaskState::TaskFinished)),
        );
    }
    assert_eq!(
        books.completed_tasks_of("F", "e").len(),
        MAX_COMPLETED_TASKS
    );
    let mut view = executor("e", vec![task("live", TaskState::TaskRunning)]);
    view.completed = books.completed_tasks_of("F", "e");
    books.executor_completed("F", "e", view);
    let info = FrameworkInfo::default();
    books.framework_completed("F", &info);
    let fw = books.completed_frameworks.back().unwrap();
    let ex = &fw.completed_executors[0];
    assert!(ex.tasks.is_empty());
    assert_eq!(ex.completed.len(), MAX_COMPLETED_TASKS);
    assert_eq!(ex.completed.last().unwrap().task_id.value, "live");
    assert_eq!(books.counters.executors_terminated, 1);
    let s = render::state(&Snapshot {
        frameworks: vec![],
        completed_frameworks: books.completed_frameworks.iter().cloned().collect(),
        ..snapshot()
    });
    let done = &s["completed_frameworks"][0]["completed_executors"][0];
    assert_eq!(done["tasks"], serde_json::json!([]));
    // A completed executor shows its own resources only.
    assert_eq!(done["resources"]["cpus"], 0.1);
}

/// `/state` shows a drain as Mesos' agent does: `drain_config` as JSON
/// (the default `mark_gone` included) and its start in whole seconds, only
/// while the agent drains.
#[test]
fn state_shows_the_drain_under_way() {
    let s = render::state(&snapshot());
    assert!(s.get("drain_config").is_none());
    assert!(s.get("estimated_drain_start_time_seconds").is_none());
    let s = render::state(&Snapshot {
        drain: Some(crate::agent::drain::Drain {
            config: crate::proto::mesos::DrainConfig {
                max_grace_period: Some(crate::proto::mesos::DurationInfo {
                    nanoseconds: 5_000_000_000,
                }),
                mark_gone: None,
            },
            started: 1700000000.9,
        }),
        ..snapshot()
    });
    assert_eq!(
        s["drain_config"],
        serde_json::json!({"max_grace_period": {"nanoseconds": 5_000_000_000i64}, "mark_gone": false})
    );
    assert_eq!(s["estimated_drain_start_time_seconds"], 1700000000);
}

#[test]
fn version_has_a_build_date() {
    let v = render::version();
    assert_eq!(v["version"], "1.11.0");
    let date = v["build_date"].as_str().unwrap();
    assert_eq!(date.len(), 19, "{date}");
}

#[test]
#[ignore]
fn render_cost_breakdown() {
    let mut snap = snapshot();
    let ex = snap.frameworks[0].executors[0].clone();
    snap.frameworks[0].executors = (0..1000).map(|_| ex.clone()).collect();
    let t = std::time::Instant::now();
    let copy = snap.clone();
    let clone = t.elapsed();
    let t = std::time::Instant::now();
    let bytes = render::state_json(&copy);
    let render = t.elapsed();
    let t = std::time::Instant::now();
    let _ = render::metrics(&copy, &render::System::read(), 0);
    let metrics = t.elapsed();
    eprintln!(
        "clone {clone:?} render+serialize {render:?} ({} bytes) metrics {metrics:?}",
        bytes.len()
    );
}

/// A snapshot with a running task, a terminal one not yet acknowledged
/// and a completed one (for the v1 answers).
pub(super) fn snapshot_for_v1() -> Snapshot {
    let mut s = snapshot();
    let ex = &mut s.frameworks[0].executors[0];
    for t in &mut ex.tasks {
        Arc::make_mut(t).slave_id.value = "S0".into();
    }
    ex.terminated = vec![Arc::new(task("t2", TaskState::TaskFailed))];
    ex.completed = vec![Arc::new(task("t0", TaskState::TaskFinished))];
    s
}

/// The hand-written `container_status` says what the reflective JSON of
/// the message says, every field set.
#[test]
fn container_status_json_matches_the_reflective_one() {
    use crate::proto::mesos::network_info::{IpAddress, PortMapping, Protocol};
    use crate::proto::mesos::{ContainerId, ContainerStatus, Label, Labels, NetworkInfo};
    let labels = Labels {
        labels: vec![
            Label {
                key: "team".into(),
                value: Some("blue".into()),
            },
            Label {
                key: "bare".into(),
                value: None,
            },
        ],
    };
    let cs = ContainerStatus {
        container_id: Some(ContainerId {
            value: "child".into(),
            parent: Some(Box::new(ContainerId {
                value: "parent".into(),
                parent: None,
            })),
        }),
        network_infos: vec![
            NetworkInfo {
                ip_addresses: vec![
                    IpAddress {
                        protocol: Some(Protocol::IPv4 as i32),
                        ip_address: Some("10.77.0.2".into()),
                    },
                    IpAddress {
                        protocol: Some(Protocol::IPv6 as i32),
                        ip_address: Some("fd00::2".into()),
                    },
                    IpAddress {
                        protocol: None,
                        ip_address: Some("10.77.0.3".into()),
                    },
                ],
                name: Some("testnet".into()),
                groups: vec!["g1".into(), "g2".into()],
                labels: Some(labels),
                port_mappings: vec![PortMapping {
                    host_port: 18080,
                    container_port: 80,
                    protocol: Some("tcp".into()),
                }],
            },
            NetworkInfo::default(),
        ],
        cgroup_info: None,
        executor_pid: Some(4242),
    };
    assert_eq!(
        serde_json::to_value(render::container_status(&cs)).unwrap(),
        crate::proto::to_json(&cs)
    );
}
