//! The agent's answers to the v1 operator API (`api::operator::v1`): each
//! `Response` built from the same [`Snapshot`] `/state` renders, its v0
//! protos (`Task`, `ExecutorInfo`, `FrameworkInfo`, `SlaveInfo`) evolved
//! into v1 by re-encoding, as Mesos' `evolve()` does. Runs off the event
//! loop.

use super::render;
use super::snapshot::{ExecutorView, FrameworkView, Snapshot};
use crate::agent::state::ExecutorState;
use crate::api::operator::v1::AgentCall;
use crate::proto::evolve;
use crate::proto::mesos::v1::agent::response::{
    self, get_containers, get_executors, get_frameworks, GetTasks,
};
use crate::proto::mesos::v1::agent::Response;
use crate::proto::mesos::{self as v0, v1};
use crate::runtime::ResourceStats;

/// The response to a call answered from a snapshot (every [`AgentCall`]
/// but the logging and standalone container ones, which the bridge
/// answers).
pub fn answer(
    call: &AgentCall,
    s: &Snapshot,
    usage: &dyn Fn(&str) -> Option<ResourceStats>,
    fetcher_cache_bytes: u64,
) -> Response {
    use response::Type as T;
    let mut r = Response::default();
    let kind = match call {
        AgentCall::Flags => {
            r.get_flags = Some(response::GetFlags {
                flags: s
                    .flags
                    .iter()
                    .map(|(name, value)| v1::Flag {
                        name: name.clone(),
                        value: Some(value.clone()),
                    })
                    .collect(),
            });
            T::GetFlags
        }
        AgentCall::Version => {
            r.get_version = Some(response::GetVersion {
                version_info: version(),
            });
            T::GetVersion
        }
        AgentCall::Metrics { .. } => {
            let metrics = render::metrics(s, &render::System::read(), fetcher_cache_bytes);
            r.get_metrics = Some(response::GetMetrics {
                metrics: metrics
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(name, value)| v1::Metric {
                        name: name.clone(),
                        value: value.as_f64(),
                    })
                    .collect(),
            });
            T::GetMetrics
        }
        AgentCall::State => {
            r.get_state = Some(response::GetState {
                get_tasks: Some(tasks(s)),
                get_executors: Some(executors(s)),
                get_frameworks: Some(frameworks(s)),
            });
            T::GetState
        }
        AgentCall::Containers { .. } => {
            // butte's agent runs no nested containers, so `show_nested`
            // adds nothing; the bridge adds the standalone ones
            // (`add_standalone`). Mesos leaves the message out when there
            // is no container.
            r.get_containers = Some(containers(s, usage)).filter(|c| !c.containers.is_empty());
            T::GetContainers
        }
        AgentCall::Frameworks => {
            r.get_frameworks = Some(frameworks(s));
            T::GetFrameworks
        }
        AgentCall::Executors => {
            r.get_executors = Some(executors(s));
            T::GetExecutors
        }
        AgentCall::Tasks => {
            r.get_tasks = Some(tasks(s));
            T::GetTasks
        }
        AgentCall::Operations => {
            // Operations act on offered resources through resource
            // providers; butte has none, so there are none.
            r.get_operations = Some(response::GetOperations::default());
            T::GetOperations
        }
        AgentCall::Agent => {
            r.get_agent = Some(response::GetAgent {
                agent_info: Some(evolve(&s.info)),
                drain_config: s.drain.as_ref().map(|d| evolve(&d.config)),
                estimated_drain_start_time: s.drain.as_ref().map(|d| v1::TimeInfo {
                    // Whole seconds, as Mesos reports it.
                    nanoseconds: (d.started as i64) * 1_000_000_000,
                }),
            });
            T::GetAgent
        }
        AgentCall::ResourceProviders => {
            r.get_resource_providers = Some(response::GetResourceProviders::default());
            T::GetResourceProviders
        }
        AgentCall::LoggingLevel
        | AgentCall::SetLoggingLevel { .. }
        | AgentCall::LaunchContainer(_)
        | AgentCall::WaitContainer(_)
        | AgentCall::KillContainer { .. }
        | AgentCall::RemoveContainer(_)
        | AgentCall::PruneImages { .. } => T::Unknown,
    };
    r.r#type = Some(kind as i32);
    r
}

/// `/version`'s figures as a VersionInfo.
fn version() -> v1::VersionInfo {
    let v = render::version();
    let text = |k: &str| v[k].as_str().map(str::to_string);
    v1::VersionInfo {
        version: text("version").unwrap_or_default(),
        build_date: text("build_date"),
        build_time: v["build_time"].as_f64(),
        build_user: text("build_user"),
        git_sha: text("git_sha"),
        git_branch: None,
        git_tag: text("git_tag"),
    }
}

/// Live frameworks first, then completed ones (Mesos' order).
fn all_frameworks(s: &Snapshot) -> impl Iterator<Item = &FrameworkView> {
    s.frameworks.iter().chain(&s.completed_frameworks)
}

fn frameworks(s: &Snapshot) -> response::GetFrameworks {
    let one = |f: &FrameworkView| get_frameworks::Framework {
        framework_info: evolve(&f.info),
    };
    response::GetFrameworks {
        frameworks: s.frameworks.iter().map(one).collect(),
        completed_frameworks: s.completed_frameworks.iter().map(one).collect(),
    }
}

fn executors(s: &Snapshot) -> response::GetExecutors {
    let one = |e: &ExecutorView| get_executors::Executor {
        executor_info: evolve(&*e.info),
    };
    let mut out = response::GetExecutors::default();
    for f in all_frameworks(s) {
        out.executors.extend(f.executors.iter().map(one));
        out.completed_executors
            .extend(f.completed_executors.iter().map(one));
    }
    out
}

fn tasks(s: &Snapshot) -> GetTasks {
    let mut out = GetTasks::default();
    for f in all_frameworks(s) {
        for ex in f.executors.iter().chain(&f.completed_executors) {
            out.queued_tasks
                .extend(ex.queued.iter().map(|t| staging(t, &ex.framework_id)));
            out.launched_tasks.extend(ex.tasks.iter().map(|t| task(t)));
            out.terminated_tasks
                .extend(ex.terminated.iter().map(|t| task(t)));
            out.completed_tasks
                .extend(ex.completed.iter().map(|t| task(t)));
        }
    }
    out
}

/// A task in v1, with the state and uuid of its latest status update
/// (what Mesos' status update stream records) when the task lacks them.
fn task(t: &v0::Task) -> v1::Task {
    let mut t: v1::Task = evolve(t);
    if let Some(last) = t.statuses.last() {
        if t.status_update_state.is_none() {
            t.status_update_state = Some(last.state);
        }
        if t.status_update_uuid.is_none() {
            t.status_update_uuid = last.uuid.clone();
        }
    }
    t
}

/// A task not yet given to its executor, as Mesos' `createTask` makes it:
/// TASK_STAGING, no statuses.
fn staging(t: &v0::TaskInfo, framework_id: &str) -> v1::Task {
    let v0_task = v0::Task {
        name: t.name.clone(),
        task_id: t.task_id.clone(),
        framework_id: v0::FrameworkId {
            value: framework_id.to_string(),
        },
        executor_id: t.executor.as_ref().map(|e| e.executor_id.clone()),
        slave_id: t.slave_id.clone(),
        state: v0::TaskState::TaskStaging as i32,
        resources: t.resources.clone(),
        labels: t.labels.clone(),
        discovery: t.discovery.clone(),
        container: t.container.clone(),
        health_check: t.health_check.clone(),
        kill_policy: t.kill_policy,
        user: t.command.as_ref().and_then(|c| c.user.clone()),
        ..Default::default()
    };
    evolve(&v0_task)
}

/// One entry a live executor's container, with the statistics
/// `/containers` shows (those ResourceStatistics has a field for).
fn containers(
    s: &Snapshot,
    usage: &dyn Fn(&str) -> Option<ResourceStats>,
) -> response::GetContainers {
    let now = crate::agent::updates::now_secs();
    let mut out = response::GetContainers::default();
    for fw in &s.frameworks {
        for ex in &fw.executors {
            if ex.state == ExecutorState::Terminated {
                continue;
            }
            let container_id = v1::ContainerId {
                value: ex.container_id.clone(),
                parent: None,
            };
            let resource_statistics = usage(&ex.container_id)
                .and_then(|stats| v1_statistics(render::statistics(ex, &stats, now)));
            out.containers.push(get_containers::Container {
                framework_id: Some(v1::FrameworkId {
                    value: fw.id.clone(),
                }),
                executor_id: Some(v1::ExecutorId {
                    value: ex.id.clone(),
                }),
                executor_name: Some(ex.info.name().to_string()),
                container_status: Some(v1::ContainerStatus {
                    container_id: Some(container_id.clone()),
                    executor_pid: s
                        .pids
                        .get(&ex.container_id)
                        .and_then(|p| u32::try_from(*p).ok()),
                    ..Default::default()
                }),
                container_id,
                resource_statistics,
            });
        }
    }
    out
}

/// `/containers`' statistics as a v1 `ResourceStatistics`.
fn v1_statistics(mut json: serde_json::Value) -> Option<v1::ResourceStatistics> {
    if let Some(o) = json.as_object_mut() {
        o.remove("mem_max_bytes");
    }
    crate::proto::from_json::<v1::ResourceStatistics>(json.to_string().as_bytes())
        .inspect_err(|e| tracing::warn!(error = %e, "container statistics"))
        .ok()
}

/// GET_CONTAINERS with `show_standalone`: adds each running standalone
/// container (id and resources), as Mesos lists them: its id, status and
/// statistics, no framework or executor.
pub fn add_standalone(
    r: &mut Response,
    standalone: &[(String, Vec<v0::Resource>)],
    usage: &dyn Fn(&str) -> Option<ResourceStats>,
) {
    if standalone.is_empty() {
        return;
    }
    let now = crate::agent::updates::now_secs();
    let list = r.get_containers.get_or_insert_with(Default::default);
    for (id, resources) in standalone {
        let container_id = v1::ContainerId {
            value: id.clone(),
            parent: None,
        };
        list.containers.push(get_containers::Container {
            framework_id: None,
            executor_id: None,
            executor_name: None,
            container_status: Some(v1::ContainerStatus {
                container_id: Some(container_id.clone()),
                ..Default::default()
            }),
            container_id,
            resource_statistics: usage(id)
                .and_then(|stats| v1_statistics(render::usage(resources, &stats, now))),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::operator::tests::snapshot_for_v1;
    use crate::proto::to_json;

    #[test]
    fn get_tasks_splits_live_unacknowledged_and_completed_tasks() {
        let s = snapshot_for_v1();
        let t = tasks(&s);
        assert_eq!(t.launched_tasks.len(), 1);
        assert_eq!(t.terminated_tasks.len(), 1);
        assert_eq!(t.completed_tasks.len(), 1);
        let running = &t.launched_tasks[0];
        // Filled from the latest status when the task lacks them.
        assert_eq!(running.status_update_state, Some(running.statuses[0].state));
        let j = to_json(&Response {
            get_tasks: Some(t),
            ..Default::default()
        });
        assert_eq!(
            j["get_tasks"]["launched_tasks"][0]["agent_id"]["value"],
            "S0"
        );
        assert_eq!(j["get_tasks"]["launched_tasks"][0]["state"], "TASK_RUNNING");
    }

    #[test]
    fn get_agent_and_flags_come_from_the_snapshot() {
        let s = snapshot_for_v1();
        let j = to_json(&answer_without_containers(&AgentCall::Agent, &s));
        assert_eq!(j["type"], "GET_AGENT");
        assert_eq!(j["get_agent"]["agent_info"]["id"]["value"], "S0");
        assert_eq!(j["get_agent"]["agent_info"]["port"], 5051);
        assert!(j["get_agent"].get("drain_config").is_none());
        // While draining: the config and the start, in whole seconds.
        let mut s = snapshot_for_v1();
        s.drain = Some(crate::agent::drain::Drain {
            config: v0::DrainConfig {
                max_grace_period: Some(v0::DurationInfo {
                    nanoseconds: 7_000_000_000,
                }),
                mark_gone: None,
            },
            started: 1700000000.75,
        });
        let a = answer_without_containers(&AgentCall::Agent, &s)
            .get_agent
            .unwrap();
        assert_eq!(
            a.drain_config
                .unwrap()
                .max_grace_period
                .unwrap()
                .nanoseconds,
            7_000_000_000
        );
        assert_eq!(
            a.estimated_drain_start_time.unwrap().nanoseconds,
            1_700_000_000_000_000_000
        );
        let s = snapshot_for_v1();
        let j = to_json(&answer_without_containers(&AgentCall::Flags, &s));
        assert_eq!(
            j["get_flags"]["flags"][0],
            serde_json::json!({"name": "master", "value": "m:5050"})
        );
        let j = to_json(&answer_without_containers(
            &AgentCall::Metrics { timeout: None },
            &s,
        ));
        let metrics = j["get_metrics"]["metrics"].as_array().unwrap();
        assert!(metrics
            .iter()
            .any(|m| m["name"] == "slave/tasks_running" && m["value"] == 1.0));
    }

    fn answer_without_containers(call: &AgentCall, s: &Snapshot) -> Response {
        answer(call, s, &|_| None, 0)
    }
}
