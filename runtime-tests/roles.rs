//! Issue 15 item 6 and the executor flags: an agent with reserved
//! resources (`--resources` roles, `--default_role`) registers them as
//! Mesos' agent does, a task on them keeps its reservations through a
//! restart and re-registration, and `/state` shows them as Mesos does;
//! `--executor_environment_variables` and `--no-switch_user` reach the
//! executor.

use crate::support::master::{
    self, command_task, describe, framework, task_and_state, AgentProcess, FakeMaster, WAIT,
};
use crate::support::{enabled, Fixture};
use butte::proto::mesos::internal::RegisterSlaveMessage;
use butte::proto::mesos::resource::{reservation_info, AllocationInfo, ReservationInfo};
use butte::proto::mesos::{Resource, TaskState};
use prost::{Message, Name};
use serde_json::{json, Value};
use std::time::Duration;

/// `(name, role, amount)` of each resource, with no `reservations` (Mesos'
/// agent sends a single reservation in the old `role` field).
fn shape(resources: &[Resource]) -> Vec<(String, String, String)> {
    let mut out: Vec<_> = resources
        .iter()
        .map(|r| {
            assert!(r.reservations.is_empty(), "not downgraded: {r:?}");
            let amount = match (&r.scalar, &r.ranges) {
                (Some(s), _) => s.value.to_string(),
                (_, Some(l)) => format!(
                    "{:?}",
                    l.range.iter().map(|x| (x.begin, x.end)).collect::<Vec<_>>()
                ),
                _ => String::new(),
            };
            (r.name.clone(), r.role.clone().unwrap_or_default(), amount)
        })
        .collect();
    out.sort();
    out
}

fn reserved(name: &str, value: f64, role: &str) -> Resource {
    let mut r = master::scalar(name, value);
    r.reservations = vec![ReservationInfo {
        r#type: Some(reservation_info::Type::Static as i32),
        role: Some(role.into()),
        ..Default::default()
    }];
    r.allocation_info = Some(AllocationInfo {
        role: Some(role.into()),
    });
    r
}

fn state(agent: &AgentProcess) -> Value {
    let url = format!("http://{}/state", agent.endpoint());
    let body = ureq::get(&url)
        .timeout(Duration::from_secs(10))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    serde_json::from_str(&body).unwrap()
}

#[test]
fn reserved_resources_register_round_trip_and_show_as_mesos_shows_them() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let master = FakeMaster::start(0);
    let mut agent = AgentProcess::start(
        &fx,
        &master,
        &[
            "--resources=cpus(web):1;mem(web):256;cpus(*):1;mem:512;disk(*):1024;ports(*):[31000-32000]",
            "--default_role=batch",
        ],
    );
    master.register();
    let reg = master
        .history()
        .into_iter()
        .find(|r| r.name == RegisterSlaveMessage::full_name())
        .map(|r| RegisterSlaveMessage::decode(&r.body[..]).unwrap())
        .unwrap();
    let expected = [
        ("cpus", "*", "1"),
        ("cpus", "web", "1"),
        ("disk", "*", "1024"),
        ("mem", "batch", "512"),
        ("mem", "web", "256"),
        ("ports", "*", "[(31000, 32000)]"),
    ]
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()));
    assert_eq!(shape(&reg.slave.resources), expected);
    assert_eq!(reg.resource_version_uuid.map(|u| u.value.len()), Some(16));

    // A task on resources reserved for `web`.
    let mut fw = framework("roles");
    fw.role = Some("web".into());
    let mut task = command_task("on-web", "sleep 600");
    task.resources = vec![reserved("cpus", 0.1, "web"), reserved("mem", 32.0, "web")];
    master.run_task(&fw, &task);
    master.ack_until("on-web", TaskState::TaskRunning);

    let s = state(&agent);
    assert_eq!(s["reserved_resources"]["web"]["cpus"], json!(1.0));
    assert_eq!(s["reserved_resources"]["web"]["mem"], json!(256.0));
    assert_eq!(s["reserved_resources"]["batch"]["mem"], json!(512.0));
    assert_eq!(s["unreserved_resources"]["cpus"], json!(1.0));
    let web_cpus = s["reserved_resources_full"]["web"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "cpus")
        .unwrap()
        .clone();
    assert_eq!(
        web_cpus,
        json!({"name": "cpus", "type": "SCALAR", "scalar": {"value": 1.0}, "role": "web",
               "reservations": [{"type": "STATIC", "role": "web"}]})
    );
    for r in s["unreserved_resources_full"].as_array().unwrap() {
        assert_eq!(r["role"], "*", "{r}");
        assert!(r.get("reservations").is_none(), "{r}");
    }
    assert_eq!(s["reserved_resources_allocated"]["web"]["cpus"], json!(0.1));
    assert_eq!(s["reserved_resources_allocated"]["web"]["mem"], json!(32.0));

    // Restarted, the agent re-registers the task with its reservation and
    // allocation, in the format Mesos' agent sends.
    agent.kill();
    agent.restart();
    let rereg = master.reregister();
    assert_eq!(shape(&rereg.slave.resources), expected);
    let t = rereg
        .tasks
        .iter()
        .find(|t| t.task_id.value == "on-web")
        .unwrap();
    for r in &t.resources {
        assert_eq!(r.role.as_deref(), Some("web"), "{r:?}");
        assert!(r.reservations.is_empty(), "{r:?}");
        assert_eq!(
            r.allocation_info.as_ref().unwrap().role.as_deref(),
            Some("web")
        );
    }
    master.kill_task(&fw, "on-web", None);
    master.expect_ack("on-web", TaskState::TaskKilled);
    master::finish(fx, master, agent);
}

#[test]
fn executors_get_the_flags_environment_and_run_as_the_agent_without_switch_user() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let master = FakeMaster::start(0);
    let agent = AgentProcess::start_with_env(
        &fx,
        &master.addr().to_string(),
        &[
            r#"--executor_environment_variables={"FROM_FLAG": "yes", "PATH": "/usr/bin:/bin"}"#,
            "--no-switch_user",
        ],
        &[("AGENT_ONLY", "leaked")],
    );
    master.register();
    // The task's (else the framework's) user would be switched to with
    // --switch_user; without, Mesos runs the task as the agent's user.
    let mut fw = framework("env");
    fw.user = "nobody".into();
    let check = r#"test "$FROM_FLAG" = yes && test -z "$AGENT_ONLY" && test "$PATH" = /usr/bin:/bin && test "$(id -u)" = 0"#;
    let mut task = command_task("env", check);
    if let Some(c) = task.command.as_mut() {
        c.user = Some("nobody".into());
    }
    master.run_task(&fw, &task);
    let end = loop {
        let u = master.expect_update("the end of env", WAIT, |u| task_and_state(u).0 == "env");
        master.ack(&u);
        if !matches!(
            task_and_state(&u).1,
            TaskState::TaskStaging | TaskState::TaskStarting | TaskState::TaskRunning
        ) {
            break u;
        }
    };
    assert_eq!(
        task_and_state(&end).1,
        TaskState::TaskFinished,
        "{}",
        describe(&end)
    );
    master::finish(fx, master, agent);
}
