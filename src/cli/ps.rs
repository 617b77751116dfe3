//! `butte ps`: the agent's tasks and standalone containers.

use super::client::{AgentArgs, Client};
use super::table::{self, or_dash};
use super::view::{self, TaskView, Usage};
use anyhow::Context;
use serde::Serialize;
use std::collections::BTreeMap;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct PsArgs {
    #[command(flatten)]
    pub agent: AgentArgs,
    /// Show ended tasks too.
    #[arg(short, long)]
    pub all: bool,
    /// Print a JSON array (raw figures: seconds, bytes) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One line of `ps`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// `task` or `container` (a standalone container).
    pub kind: &'static str,
    pub id: String,
    pub name: String,
    pub framework_id: String,
    pub framework: String,
    pub executor_id: String,
    pub container_id: String,
    pub state: String,
    pub image: Option<String>,
    pub started: Option<f64>,
    /// The container's usage (a task group's tasks share their executor's).
    pub usage: Option<Usage>,
}

fn task_row(t: &TaskView, usage: &BTreeMap<String, Usage>) -> Row {
    Row {
        kind: "task",
        id: t.id.clone(),
        name: t.name.clone(),
        framework_id: t.framework_id.clone(),
        framework: t.framework.clone(),
        executor_id: t.executor_id.clone(),
        container_id: t.container_id.clone(),
        state: t.state.clone(),
        image: t.image.clone(),
        started: t.started,
        usage: (!t.terminal())
            .then(|| usage.get(&t.container_id).copied())
            .flatten(),
    }
}

/// The rows: tasks (ended ones with `all`), then standalone containers.
pub fn rows(tasks: &[TaskView], containers: &[view::ContainerView], all: bool) -> Vec<Row> {
    let usage = view::usage_by_container(containers);
    let mut out: Vec<Row> = tasks
        .iter()
        .filter(|t| all || !t.terminal())
        .map(|t| task_row(t, &usage))
        .collect();
    out.extend(containers.iter().filter(|c| c.standalone()).map(|c| Row {
        kind: "container",
        id: c.id.clone(),
        name: String::new(),
        framework_id: String::new(),
        framework: String::new(),
        executor_id: String::new(),
        container_id: c.id.clone(),
        state: "RUNNING".into(),
        image: None,
        started: None,
        usage: c.usage,
    }));
    out
}

/// The table `ps` prints; ages counted to `now` (seconds since the epoch).
pub fn render(rows: &[Row], now: f64) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.id.clone(),
                or_dash(Some(r.framework.clone())),
                r.state.clone(),
                or_dash(r.image.clone()),
                or_dash(r.usage.map(|u| table::cpu_time(u.cpu_secs))),
                or_dash(
                    r.usage
                        .map(|u| table::memory(u.mem_rss_bytes, u.mem_limit_bytes)),
                ),
                or_dash(r.started.map(|s| format!("{} ago", table::age(now - s)))),
            ]
        })
        .collect();
    table::render(
        &["ID", "FRAMEWORK", "STATE", "IMAGE", "CPU", "MEM", "STARTED"],
        &cells,
    )
}

pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

pub fn main(args: PsArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.agent)?;
    let state = client.state().context("reading the agent's state")?;
    let containers = client
        .containers()
        .context("reading the agent's containers")?;
    let rows = rows(
        &view::tasks(&state),
        &view::containers(&containers),
        args.all,
    );
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!("{}", render(&rows, now()));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn task(id: &str, container: &str, state: &str) -> TaskView {
        TaskView {
            id: id.into(),
            name: id.into(),
            framework_id: "fw-1".into(),
            framework: "marathon".into(),
            executor_id: id.into(),
            executor_type: String::new(),
            container_id: container.into(),
            directory: format!("/w/{container}"),
            state: state.into(),
            image: None,
            started: Some(1000.0),
        }
    }

    #[test]
    fn ps_shows_live_tasks_with_their_containers_usage_then_standalone_containers() {
        let mut running = task("web-1", "c-1", "TASK_RUNNING");
        running.image = Some("library/nginx:1".into());
        let tasks = vec![running, task("old", "c-0", "TASK_FINISHED")];
        let containers = view::containers(&[
            json!({"framework_id": {"value": "fw-1"}, "executor_id": {"value": "web-1"},
                   "container_id": {"value": "c-1"},
                   "resource_statistics": {"timestamp": 1.0, "cpus_user_time_secs": 1.5,
                       "cpus_system_time_secs": 0.5, "mem_rss_bytes": 10485760,
                       "mem_limit_bytes": 67108864}}),
            json!({"container_id": {"value": "standalone-1"},
                   "resource_statistics": {"timestamp": 1.0, "mem_rss_bytes": 1048576}}),
        ]);
        let rows = rows(&tasks, &containers, false);
        assert_eq!(
            render(&rows, 1090.0),
            "ID             FRAMEWORK   STATE          IMAGE             CPU     MEM                   STARTED\n\
             web-1          marathon    TASK_RUNNING   library/nginx:1   2.00s   10.0 MiB / 64.0 MiB   1m ago\n\
             standalone-1   -           RUNNING        -                 0.00s   1.0 MiB               -\n"
        );
        let all = super::rows(&tasks, &containers, true);
        assert_eq!(all.len(), 3);
        assert_eq!((all[1].id.as_str(), all[1].usage), ("old", None));
        let j = serde_json::to_value(&all[0]).unwrap();
        assert_eq!(j["kind"], "task");
        assert_eq!(j["usage"]["mem_rss_bytes"], 10485760);
    }
}
