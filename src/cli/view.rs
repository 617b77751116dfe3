//! What the CLI reads from the agent's `/state` and GET_CONTAINERS: each
//! task with its executor's container and sandbox, each container's
//! usage, and a TASK argument matched against them.

use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// States a task does not leave (Mesos' `protobuf::isTerminalState`).
pub fn is_terminal(state: &str) -> bool {
    matches!(
        state,
        "TASK_FINISHED"
            | "TASK_FAILED"
            | "TASK_KILLED"
            | "TASK_LOST"
            | "TASK_ERROR"
            | "TASK_DROPPED"
            | "TASK_GONE"
            | "TASK_GONE_BY_OPERATOR"
    )
}

/// One task of the agent's `/state`, with where it runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskView {
    pub id: String,
    pub name: String,
    pub framework_id: String,
    /// The framework's name (its id when it has none).
    pub framework: String,
    pub executor_id: String,
    /// The executor's `type` (`DEFAULT` runs task groups), empty if unset.
    pub executor_type: String,
    /// The executor's container.
    pub container_id: String,
    /// The executor's sandbox (host path, as `/files` serves it).
    pub directory: String,
    pub state: String,
    /// The task's image, when its `ContainerInfo` names one.
    pub image: Option<String>,
    /// When the task's first status was sent (seconds since the epoch).
    pub started: Option<f64>,
}

impl TaskView {
    pub fn terminal(&self) -> bool {
        is_terminal(&self.state)
    }

    /// The `/files` paths where the task's `stdout` or `stderr` may be,
    /// most likely first: the executor's sandbox; for a task of a group
    /// (the default executor's), first its own `tasks/<id>/` in there, as
    /// Mesos' default executor lays it out, and butte's under butte's agent
    /// (a link to the task's nested container's sandbox); under a Mesos
    /// agent butte's default executor writes its tasks' output to the
    /// executor's files.
    pub fn log_paths(&self, stream: &str) -> Vec<String> {
        let dir = self.directory.trim_end_matches('/');
        let own = format!("{dir}/{stream}");
        if self.executor_type == "DEFAULT" {
            vec![format!("{dir}/tasks/{}/{stream}", self.id), own]
        } else {
            vec![own]
        }
    }
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// The image a task's `ContainerInfo` names (Mesos or Docker
/// containerizer), as the JSON of `/state` writes it.
fn image(container: &Value) -> Option<String> {
    let mesos = &container["mesos"]["image"];
    [
        &mesos["docker"]["name"],
        &mesos["appc"]["name"],
        &container["docker"]["image"],
    ]
    .into_iter()
    .find_map(|v| v.as_str().filter(|s| !s.is_empty()).map(str::to_string))
}

/// Every task `/state` lists, live ones first (running frameworks and
/// executors, then completed ones), each in the agent's order.
pub fn tasks(state: &Value) -> Vec<TaskView> {
    let list = |v: &Value| v.as_array().cloned().unwrap_or_default();
    let mut live = Vec::new();
    let mut done = Vec::new();
    let frameworks = list(&state["frameworks"])
        .into_iter()
        .map(|f| (f, true))
        .chain(
            list(&state["completed_frameworks"])
                .into_iter()
                .map(|f| (f, false)),
        );
    for (fw, fw_live) in frameworks {
        let fw_id = text(&fw["id"]);
        let fw_name = match text(&fw["name"]) {
            n if n.is_empty() => fw_id.clone(),
            n => n,
        };
        let executors = list(&fw["executors"])
            .into_iter()
            .map(|e| (e, fw_live))
            .chain(
                list(&fw["completed_executors"])
                    .into_iter()
                    .map(|e| (e, false)),
            );
        for (ex, ex_live) in executors {
            let sets = [
                ("tasks", ex_live),
                ("queued_tasks", ex_live),
                ("completed_tasks", false),
            ];
            for (key, set_live) in sets {
                for t in list(&ex[key]) {
                    let view = TaskView {
                        id: text(&t["id"]),
                        name: text(&t["name"]),
                        framework_id: fw_id.clone(),
                        framework: fw_name.clone(),
                        executor_id: text(&ex["id"]),
                        executor_type: text(&ex["type"]),
                        container_id: text(&ex["container"]),
                        directory: text(&ex["directory"]),
                        state: text(&t["state"]),
                        image: image(&t["container"]),
                        started: t["statuses"][0]["timestamp"].as_f64(),
                    };
                    if set_live && !view.terminal() {
                        live.push(view);
                    } else {
                        done.push(view);
                    }
                }
            }
        }
    }
    live.extend(done);
    live
}

/// A container's latest ResourceStatistics, as GET_CONTAINERS gives them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Usage {
    /// When the figures were read (seconds since the epoch).
    pub timestamp: f64,
    /// User plus system CPU time.
    pub cpu_secs: f64,
    pub mem_rss_bytes: u64,
    pub mem_limit_bytes: u64,
    pub processes: Option<u64>,
}

impl Usage {
    pub fn from_statistics(s: &Value) -> Option<Usage> {
        let timestamp = s["timestamp"].as_f64()?;
        let secs = |k: &str| s[k].as_f64().unwrap_or(0.0);
        Some(Usage {
            timestamp,
            cpu_secs: secs("cpus_user_time_secs") + secs("cpus_system_time_secs"),
            mem_rss_bytes: s["mem_rss_bytes"].as_u64().unwrap_or(0),
            mem_limit_bytes: s["mem_limit_bytes"].as_u64().unwrap_or(0),
            processes: s["processes"].as_u64(),
        })
    }

    /// The CPU share used between `earlier` and this, in percent of one
    /// CPU (as `docker stats`: 200% is two CPUs busy).
    pub fn cpu_percent(&self, earlier: &Usage) -> Option<f64> {
        let dt = self.timestamp - earlier.timestamp;
        (dt > 0.0).then(|| ((self.cpu_secs - earlier.cpu_secs) / dt * 100.0).max(0.0))
    }
}

/// One container of GET_CONTAINERS.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerView {
    pub id: String,
    /// Its executor (empty for a standalone container).
    pub executor_id: String,
    pub framework_id: String,
    pub usage: Option<Usage>,
}

impl ContainerView {
    pub fn standalone(&self) -> bool {
        self.framework_id.is_empty()
    }
}

pub fn containers(list: &[Value]) -> Vec<ContainerView> {
    list.iter()
        .map(|c| ContainerView {
            id: text(&c["container_id"]["value"]),
            executor_id: text(&c["executor_id"]["value"]),
            framework_id: text(&c["framework_id"]["value"]),
            usage: Usage::from_statistics(&c["resource_statistics"]),
        })
        .collect()
}

/// Each container's usage by its id.
pub fn usage_by_container(list: &[ContainerView]) -> BTreeMap<String, Usage> {
    list.iter()
        .filter_map(|c| c.usage.map(|u| (c.id.clone(), u)))
        .collect()
}

/// Why an argument matched nothing, or too much.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MatchError {
    #[error("no {what} '{arg}' on this agent")]
    None { what: &'static str, arg: String },
    #[error("'{arg}' names more than one {what}: {}", .ids.join(", "))]
    Ambiguous {
        what: &'static str,
        arg: String,
        ids: Vec<String>,
    },
}

/// The item whose id is `arg`, else the one whose id starts with `arg`
/// (one id; the first listed when it appears twice).
pub fn find<'a, T>(
    items: &'a [T],
    id: impl Fn(&T) -> &str,
    arg: &str,
    what: &'static str,
) -> Result<&'a T, MatchError> {
    if let Some(t) = items.iter().find(|t| id(t) == arg) {
        return Ok(t);
    }
    let matching: Vec<&T> = items
        .iter()
        .filter(|t| !arg.is_empty() && id(t).starts_with(arg))
        .collect();
    let mut ids: Vec<String> = matching.iter().map(|t| id(t).to_string()).collect();
    ids.sort();
    ids.dedup();
    match ids.len() {
        0 => Err(MatchError::None {
            what,
            arg: arg.to_string(),
        }),
        1 => Ok(matching[0]),
        _ => Err(MatchError::Ambiguous {
            what,
            arg: arg.to_string(),
            ids,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn task(id: &str, state: &str) -> Value {
        json!({"id": id, "name": id, "state": state,
               "statuses": [{"state": "TASK_STARTING", "timestamp": 1700000000.5}]})
    }

    fn state() -> Value {
        json!({
          "frameworks": [{
            "id": "fw-1", "name": "marathon",
            "executors": [
              {"id": "web-1", "container": "c-1", "directory": "/w/runs/c-1",
               "tasks": [task("web-1", "TASK_RUNNING")],
               "queued_tasks": [], "completed_tasks": []},
              {"id": "grp", "type": "DEFAULT", "container": "c-2",
               "directory": "/w/runs/c-2/",
               "tasks": [{"id": "db", "state": "TASK_RUNNING",
                          "container": {"type": "MESOS", "mesos": {"image":
                             {"type": "DOCKER", "docker": {"name": "library/redis:7"}}}}}],
               "queued_tasks": [], "completed_tasks": [task("db-old", "TASK_FINISHED")]}
            ],
            "completed_executors": [
              {"id": "web-0", "container": "c-0", "directory": "/w/runs/c-0",
               "tasks": [], "queued_tasks": [],
               "completed_tasks": [task("web-0", "TASK_KILLED")]}
            ]
          }],
          "completed_frameworks": [{
            "id": "fw-0", "name": "",
            "executors": [],
            "completed_executors": [
              {"id": "x", "container": "c-x", "directory": "/w/x",
               "tasks": [], "queued_tasks": [],
               "completed_tasks": [task("web-00", "TASK_FAILED")]}
            ]
          }]
        })
    }

    #[test]
    fn tasks_come_live_first_with_their_executor_sandbox_and_image() {
        let t = tasks(&state());
        let ids: Vec<(&str, bool)> = t.iter().map(|t| (t.id.as_str(), t.terminal())).collect();
        assert_eq!(
            ids,
            [
                ("web-1", false),
                ("db", false),
                ("db-old", true),
                ("web-0", true),
                ("web-00", true)
            ]
        );
        assert_eq!(t[0].framework, "marathon");
        assert_eq!(t[0].container_id, "c-1");
        assert_eq!(t[0].started, Some(1700000000.5));
        assert_eq!(t[0].image, None);
        assert_eq!(t[1].image.as_deref(), Some("library/redis:7"));
        // A framework without a name shows its id.
        assert_eq!(t[4].framework, "fw-0");
    }

    #[test]
    fn log_paths_are_the_sandbox_files_or_the_group_tasks_own() {
        let t = tasks(&state());
        assert_eq!(t[0].log_paths("stdout"), ["/w/runs/c-1/stdout"]);
        assert_eq!(
            t[1].log_paths("stderr"),
            ["/w/runs/c-2/tasks/db/stderr", "/w/runs/c-2/stderr"]
        );
    }

    #[test]
    fn a_task_is_found_by_its_id_or_a_unique_prefix() {
        fn id(t: &TaskView) -> &str {
            &t.id
        }
        let t = tasks(&state());
        assert_eq!(find(&t, id, "db", "task").unwrap().id, "db");
        assert_eq!(find(&t, id, "db-", "task").unwrap().id, "db-old");
        assert_eq!(find(&t, id, "web-1", "task").unwrap().id, "web-1");
        assert_eq!(
            find(&t, id, "web-0", "task").unwrap().id,
            "web-0",
            "an exact id wins over the longer ids it starts"
        );
        assert_eq!(
            find(&t, id, "web", "task").unwrap_err(),
            MatchError::Ambiguous {
                what: "task",
                arg: "web".into(),
                ids: vec!["web-0".into(), "web-00".into(), "web-1".into()]
            }
        );
        assert_eq!(
            find(&t, id, "zzz", "task").unwrap_err().to_string(),
            "no task 'zzz' on this agent"
        );
        assert!(find(&t, id, "", "task").is_err());
    }

    #[test]
    fn cpu_percent_is_cpu_time_over_wall_time() {
        let a = Usage {
            timestamp: 100.0,
            cpu_secs: 1.0,
            ..Usage::default()
        };
        let b = Usage {
            timestamp: 102.0,
            cpu_secs: 2.0,
            ..a
        };
        assert_eq!(b.cpu_percent(&a), Some(50.0));
        assert_eq!(a.cpu_percent(&a), None);
        let s = json!({"timestamp": 5.0, "cpus_user_time_secs": 0.03,
                       "cpus_system_time_secs": 0.02, "mem_rss_bytes": 72470528,
                       "mem_limit_bytes": 67108864, "processes": 3});
        let u = Usage::from_statistics(&s).unwrap();
        assert!((u.cpu_secs - 0.05).abs() < 1e-9);
        assert_eq!((u.mem_rss_bytes, u.processes), (72470528, Some(3)));
        assert_eq!(Usage::from_statistics(&Value::Null), None);
    }
}
