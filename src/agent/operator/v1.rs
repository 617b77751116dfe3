//! The agent's answers to the v1 operator API (`api::operator::v1`): each
//! `Response` built from the same [`Snapshot`] `/state` renders, its v0
//! protos (`Task`, `ExecutorInfo`, `FrameworkInfo`, `SlaveInfo`) evolved
//! into v1 by re-encoding, as Mesos' `evolve()` does. Runs off the event
//! loop.

use prost::Message as _;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use super::render;
use super::snapshot::{ExecutorView, FrameworkView, Snapshot};
use crate::agent::state::ExecutorState;
use crate::api::operator::v1::{AgentCall, List, Lists};
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
            // The executors' containers; the bridge adds the standalone
            // and nested ones (`add_standalone`, `add_nested`). Mesos
            // leaves the message out when there is no container.
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
        | AgentCall::PruneImages { .. }
        | AgentCall::LaunchNested(_)
        | AgentCall::WaitNested { .. }
        | AgentCall::KillNested { .. }
        | AgentCall::RemoveNested(_) => T::Unknown,
    };
    r.r#type = Some(kind as i32);
    r
}

/// GET_STATE, GET_TASKS, GET_EXECUTORS and GET_FRAMEWORKS (None for the
/// other calls) as lists of encoded v1 messages, what [`answer`] says for
/// them without building it: a v0 `Task`, `ExecutorInfo` or
/// `FrameworkInfo` encodes to the bytes its [`evolve`]d v1 form encodes
/// to (same fields, numbers and order; a test walks both protos), so each
/// is encoded once and never decoded.
/// Tasks' encodings come from `bytes` when a task has not changed since
/// an earlier call.
pub fn lists(call: &AgentCall, s: &Snapshot, bytes: &TaskBytes) -> Option<Lists> {
    use response::Type as T;
    let kind = match call {
        AgentCall::State => T::GetState,
        AgentCall::Tasks => T::GetTasks,
        AgentCall::Executors => T::GetExecutors,
        AgentCall::Frameworks => T::GetFrameworks,
        _ => return None,
    };
    let mut out = Lists::new(kind);
    let mut cached = bytes.0.lock().unwrap_or_else(|e| e.into_inner());
    let mut kept = HashMap::with_capacity(cached.len());
    if matches!(kind, T::GetState | T::GetTasks) {
        for f in all_frameworks(s) {
            for ex in f.executors.iter().chain(&f.completed_executors) {
                for t in &ex.queued {
                    out.push(List::QueuedTasks, |b| {
                        v1::Task::encode_raw(&staging(t, &ex.framework_id), b)
                    });
                }
                for (list, tasks) in [
                    (List::LaunchedTasks, &ex.tasks),
                    (List::TerminatedTasks, &ex.terminated),
                    (List::CompletedTasks, &ex.completed),
                ] {
                    for t in tasks {
                        let key = Arc::as_ptr(t) as usize;
                        let encoded = match cached.remove(&key) {
                            Some((weak, b))
                                if weak.upgrade().is_some_and(|a| Arc::ptr_eq(&a, t)) =>
                            {
                                b
                            }
                            _ => {
                                let mut b = Vec::new();
                                encode_task(t, &mut b);
                                Arc::<[u8]>::from(b)
                            }
                        };
                        out.push(list, |b| b.extend_from_slice(&encoded));
                        kept.insert(key, (Arc::downgrade(t), encoded));
                    }
                }
            }
        }
    }
    if matches!(kind, T::GetState | T::GetExecutors) {
        for f in all_frameworks(s) {
            for (list, executors) in [
                (List::Executors, &f.executors),
                (List::CompletedExecutors, &f.completed_executors),
            ] {
                for e in executors {
                    out.push(list, |b| e.info.encode_raw(b));
                }
            }
        }
    }
    if matches!(kind, T::GetState | T::GetFrameworks) {
        for (list, frameworks) in [
            (List::Frameworks, &s.frameworks),
            (List::CompletedFrameworks, &s.completed_frameworks),
        ] {
            for f in frameworks {
                out.push(list, |b| f.info.encode_raw(b));
            }
        }
    }
    // What this call did not see (ended, changed or forgotten tasks) goes.
    if matches!(kind, T::GetState | T::GetTasks) {
        *cached = kept;
    }
    Some(out)
}

/// Each task's v1 encoding, kept between calls. A task changes only
/// through a new `Arc` (`Arc::make_mut` when a snapshot shares it, and the
/// `Weak` held here never stops it from changing in place otherwise: then
/// it moves), and an allocation a `Weak` points at is never reused, so an
/// entry is good exactly while its `Weak` upgrades to the task asked for.
#[derive(Default)]
pub struct TaskBytes(Mutex<HashMap<usize, KeptTask>>);

/// A task (while it lives unchanged) and its encoding.
type KeptTask = (Weak<v0::Task>, Arc<[u8]>);

/// `Task.status_update_state` and `status_update_uuid`.
const STATUS_UPDATE_STATE: u32 = 9;
const STATUS_UPDATE_UUID: u32 = 10;

/// Appends the v1 encoding of [`task`]`(t)` to `buf`: `t`'s own encoding,
/// with the state and uuid of its latest status put where their fields go
/// when the task lacks them.
fn encode_task(t: &v0::Task, buf: &mut Vec<u8>) {
    let start = buf.len();
    t.encode_raw(buf);
    let Some(last) = t.statuses.last() else {
        return;
    };
    if t.status_update_state.is_none() {
        let mut field = Vec::new();
        prost::encoding::int32::encode(STATUS_UPDATE_STATE, &last.state, &mut field);
        insert_field(buf, start, STATUS_UPDATE_STATE, &field);
    }
    if let (None, Some(uuid)) = (&t.status_update_uuid, &last.uuid) {
        let mut field = Vec::new();
        prost::encoding::bytes::encode(STATUS_UPDATE_UUID, uuid, &mut field);
        insert_field(buf, start, STATUS_UPDATE_UUID, &field);
    }
}

/// Inserts the encoded `field` (number `number`) into the message encoded
/// in `buf[start..]`, before its first field with a higher number: where
/// prost writes it, for messages whose fields up to `number` are declared
/// in number order (`Task`'s are).
fn insert_field(buf: &mut Vec<u8>, start: usize, number: u32, field: &[u8]) {
    let mut rest = &buf[start..];
    let mut at = buf.len();
    while !rest.is_empty() {
        let here = buf.len() - rest.len();
        let Ok((tag, wire_type)) = prost::encoding::decode_key(&mut rest) else {
            break;
        };
        if tag > number {
            at = here;
            break;
        }
        let ctx = prost::encoding::DecodeContext::default();
        if prost::encoding::skip_field(wire_type, tag, &mut rest, ctx).is_err() {
            break;
        }
    }
    buf.splice(at..at, field.iter().copied());
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
        let stats = usage(id).and_then(|s| v1_statistics(render::usage(resources, &s, now)));
        list.containers.push(bare_container(container_id, stats));
    }
}

/// A GET_CONTAINERS entry without framework or executor (a standalone or
/// nested container's), as Mesos lists one.
fn bare_container(
    container_id: v1::ContainerId,
    resource_statistics: Option<v1::ResourceStatistics>,
) -> get_containers::Container {
    get_containers::Container {
        framework_id: None,
        executor_id: None,
        executor_name: None,
        container_status: Some(v1::ContainerStatus {
            container_id: Some(container_id.clone()),
            ..Default::default()
        }),
        container_id,
        resource_statistics,
    }
}

/// GET_CONTAINERS with `show_nested`: adds each running nested container
/// (by key, `<top>.<id>...`) under a live executor or a standalone
/// container, as Mesos lists them: its `ContainerID` with its parents, its
/// status, its own statistics (no framework or executor fields).
pub fn add_nested(
    r: &mut Response,
    nested: &[String],
    standalone: &[(String, Vec<v0::Resource>)],
    s: &Snapshot,
    usage: &dyn Fn(&str) -> Option<ResourceStats>,
) {
    if nested.is_empty() {
        return;
    }
    let now = crate::agent::updates::now_secs();
    let list = r.get_containers.get_or_insert_with(Default::default);
    for key in nested {
        let mut ids = key.split('.');
        let Some(top) = ids.next() else { continue };
        let mut container_id = v1::ContainerId {
            value: top.to_string(),
            parent: None,
        };
        for id in ids {
            container_id = v1::ContainerId {
                value: id.to_string(),
                parent: Some(Box::new(container_id)),
            };
        }
        let under_executor = s.frameworks.iter().any(|fw| {
            fw.executors
                .iter()
                .any(|ex| ex.container_id == top && ex.state != ExecutorState::Terminated)
        });
        if !under_executor && !standalone.iter().any(|(id, _)| id == top) {
            continue;
        }
        let stats = usage(key).and_then(|s| v1_statistics(render::usage(&[], &s, now)));
        list.containers.push(bare_container(container_id, stats));
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

    /// A snapshot with what tasks, executors and frameworks can carry
    /// (statuses with container statuses and network infos, labels,
    /// reserved resources, strings to escape: `proto::test_fixtures`):
    /// tasks with and without `status_update_state`/`uuid`, one without
    /// statuses, a queued task, a completed executor, a completed
    /// framework.
    fn rich_snapshot() -> Snapshot {
        use crate::proto::test_fixtures::{RICH_EXECUTOR, RICH_FRAMEWORK, RICH_TASK};
        use crate::proto::{devolve, from_json};
        use std::sync::Arc;
        let rich: v1::Task = from_json(RICH_TASK.as_bytes()).unwrap();
        let both: v0::Task = devolve(&rich);
        let mut neither = both.clone();
        neither.status_update_state = None;
        neither.status_update_uuid = None;
        let mut no_state = both.clone();
        no_state.status_update_state = None;
        let mut no_uuid = both.clone();
        no_uuid.status_update_uuid = None;
        let mut no_statuses = neither.clone();
        no_statuses.statuses.clear();
        let executor: v0::ExecutorInfo =
            devolve(&from_json::<v1::ExecutorInfo>(RICH_EXECUTOR.as_bytes()).unwrap());
        let framework: v0::FrameworkInfo =
            devolve(&from_json::<v1::FrameworkInfo>(RICH_FRAMEWORK.as_bytes()).unwrap());
        let queued = v0::TaskInfo {
            name: "queued \"q\" ✓".into(),
            task_id: v0::TaskId { value: "q".into() },
            slave_id: v0::SlaveId { value: "S0".into() },
            resources: both.resources.clone(),
            executor: Some(executor.clone()),
            command: Some(v0::CommandInfo {
                user: Some("nobody".into()),
                ..Default::default()
            }),
            container: both.container.clone(),
            health_check: both.health_check.clone(),
            kill_policy: both.kill_policy,
            labels: both.labels.clone(),
            discovery: both.discovery.clone(),
            ..Default::default()
        };
        let mut s = snapshot_for_v1();
        let f = &mut s.frameworks[0];
        f.info = framework;
        let ex = &mut f.executors[0];
        ex.info = Arc::new(executor);
        ex.tasks
            .extend([neither, no_state, no_uuid, no_statuses, both].map(Arc::new));
        ex.queued = vec![queued];
        let done = ex.clone();
        f.completed_executors.push(done);
        let gone = s.frameworks[0].clone();
        s.completed_frameworks.push(gone);
        s
    }

    /// Kept encodings are used while a task is unchanged; a task changed
    /// since (`Arc::make_mut`, as the agent changes them) is encoded anew,
    /// and what no call sees any more is dropped.
    #[test]
    fn task_encodings_are_kept_until_the_task_changes() {
        let mut s = rich_snapshot();
        let bytes = TaskBytes::default();
        let fresh = |s: &Snapshot| lists(&AgentCall::State, s, &TaskBytes::default()).unwrap();
        let first = lists(&AgentCall::State, &s, &bytes).unwrap();
        assert_eq!(first.protobuf(), fresh(&s).protobuf());
        let kept = bytes.0.lock().unwrap().len();
        assert!(kept > 0);
        let again = lists(&AgentCall::State, &s, &bytes).unwrap();
        assert_eq!(again.protobuf(), first.protobuf());
        let t = &mut s.frameworks[0].executors[0].tasks[0];
        let before = Arc::as_ptr(t);
        Arc::make_mut(t).name = "renamed".into();
        assert_ne!(Arc::as_ptr(t), before, "a kept task changes by a new Arc");
        let changed = lists(&AgentCall::State, &s, &bytes).unwrap();
        assert_eq!(changed.protobuf(), fresh(&s).protobuf());
        assert_ne!(changed.protobuf(), first.protobuf());
        s.frameworks[0].executors[0].tasks.clear();
        s.completed_frameworks.clear();
        s.frameworks[0].completed_executors.clear();
        lists(&AgentCall::State, &s, &bytes).unwrap();
        assert!(bytes.0.lock().unwrap().len() < kept);
    }

    /// What [`lists`] writes is what the answer built by [`answer`] gave
    /// before: its protobuf encoding, and the JSON of the reflective
    /// writer, byte for byte.
    #[test]
    fn lists_are_written_as_the_answer_was_in_protobuf_and_json() {
        use crate::api::operator::v1::json_bytes;
        let s = rich_snapshot();
        for call in [
            AgentCall::State,
            AgentCall::Tasks,
            AgentCall::Executors,
            AgentCall::Frameworks,
        ] {
            let old = answer_without_containers(&call, &s);
            let new = lists(&call, &s, &TaskBytes::default()).unwrap();
            assert_eq!(new.protobuf(), old.encode_to_vec(), "{call:?}");
            let old_json = crate::proto::with_reflective_json(|| json_bytes(&old));
            assert_eq!(
                String::from_utf8(new.json().unwrap()).unwrap(),
                String::from_utf8(old_json).unwrap(),
                "{call:?}"
            );
        }
        // The text says what the snapshot holds.
        let j: serde_json::Value = serde_json::from_slice(
            &lists(&AgentCall::State, &s, &TaskBytes::default())
                .unwrap()
                .json()
                .unwrap(),
        )
        .unwrap();
        let tasks = &j["get_state"]["get_tasks"];
        assert_eq!(tasks["pending_tasks"], serde_json::json!([]));
        assert_eq!(tasks["queued_tasks"][0]["state"], "TASK_STAGING");
        // Per live and completed executor of the live and the completed
        // framework: t1 and the five rich tasks.
        assert_eq!(tasks["launched_tasks"].as_array().unwrap().len(), 4 * 6);
        let neither = &tasks["launched_tasks"][1];
        assert_eq!(neither["status_update_state"], "TASK_RUNNING");
        assert_eq!(neither["status_update_uuid"], "/w==");
        assert_eq!(
            neither["statuses"][1]["container_status"]["network_infos"][0]["ip_addresses"][1]
                ["ip_address"],
            "fd00::2"
        );
        assert!(tasks["launched_tasks"][4]
            .get("status_update_state")
            .is_none());
        assert_eq!(
            j["get_state"]["get_executors"]["completed_executors"][0]["executor_info"]["type"],
            "CUSTOM"
        );
        assert_eq!(
            j["get_state"]["get_frameworks"]["completed_frameworks"][0]["framework_info"]["roles"],
            serde_json::json!(["web", "db"])
        );
        assert!(lists(&AgentCall::Flags, &s, &TaskBytes::default()).is_none());
    }

    /// [`lists`] copies v0 encodings as v1 ones: every message a v0 Task,
    /// ExecutorInfo or FrameworkInfo holds declares the same fields (number,
    /// type, label, in the same order) as its v1 form, so prost writes the
    /// same bytes for both.
    #[test]
    fn v0_task_executor_and_framework_encode_as_their_v1_forms() {
        use prost_reflect::{Kind, MessageDescriptor};
        let pool = &*crate::proto::DESCRIPTOR_POOL;
        let mut todo: Vec<(String, String)> = ["Task", "ExecutorInfo", "FrameworkInfo"]
            .iter()
            .map(|m| (format!("mesos.{m}"), format!("mesos.v1.{m}")))
            .collect();
        let mut seen = std::collections::HashSet::new();
        let declared = |m: &MessageDescriptor| {
            m.descriptor_proto()
                .field
                .iter()
                .map(|f| (f.number(), f.r#type(), f.label()))
                .collect::<Vec<_>>()
        };
        while let Some((v0_name, v1_name)) = todo.pop() {
            if !seen.insert(v0_name.clone()) {
                continue;
            }
            let v0_message = pool.get_message_by_name(&v0_name).unwrap();
            let v1_message = pool
                .get_message_by_name(&v1_name)
                .unwrap_or_else(|| panic!("{v1_name} for {v0_name}"));
            assert_eq!(
                declared(&v0_message),
                declared(&v1_message),
                "{v0_name} and {v1_name}"
            );
            for (a, b) in v0_message.fields().zip(v1_message.fields()) {
                if let (Kind::Message(a), Kind::Message(b)) = (a.kind(), b.kind()) {
                    todo.push((a.full_name().to_string(), b.full_name().to_string()));
                }
            }
        }
        assert!(seen.len() > 30, "{seen:?}");
    }

    /// The costs of GET_STATE at 1000 executors with a rich task each
    /// (`cargo test --release --lib get_state_cost -- --ignored
    /// --nocapture`).
    #[test]
    #[ignore]
    fn get_state_cost_breakdown() {
        use std::time::Instant;
        let mut s = rich_snapshot();
        let mut ex = s.frameworks[0].executors[0].clone();
        ex.tasks.truncate(2);
        ex.queued.clear();
        s.frameworks[0].executors = (0..1000).map(|_| ex.clone()).collect();
        s.frameworks[0].completed_executors.clear();
        s.completed_frameworks.clear();
        let time = |what: &str, f: &mut dyn FnMut() -> usize| {
            let mut best = f64::MAX;
            let mut size = 0;
            for _ in 0..20 {
                let t = Instant::now();
                size = f();
                best = best.min(t.elapsed().as_secs_f64() * 1000.0);
            }
            eprintln!("{what}: {best:.2} ms ({size} bytes)");
        };
        time("lists", &mut || {
            lists(&AgentCall::State, &s, &TaskBytes::default())
                .unwrap()
                .protobuf()
                .len()
        });
        let l = lists(&AgentCall::State, &s, &TaskBytes::default()).unwrap();
        time("protobuf", &mut || l.protobuf().len());
        time("json", &mut || l.json().unwrap().len());
        let tasks: Vec<&v0::Task> = s.frameworks[0]
            .executors
            .iter()
            .flat_map(|e| e.tasks.iter().map(|t| &**t))
            .collect();
        time("encode tasks", &mut || {
            let mut b = Vec::new();
            for t in &tasks {
                t.encode_raw(&mut b);
            }
            b.len()
        });
        time("encode_task tasks", &mut || {
            let mut b = Vec::new();
            for t in &tasks {
                encode_task(t, &mut b);
            }
            b.len()
        });
        time("encode executors", &mut || {
            let mut b = Vec::new();
            for e in &s.frameworks[0].executors {
                e.info.encode_raw(&mut b);
            }
            b.len()
        });
        time("old answer", &mut || {
            answer_without_containers(&AgentCall::State, &s).encoded_len()
        });
    }

    fn answer_without_containers(call: &AgentCall, s: &Snapshot) -> Response {
        answer(call, s, &|_| None, 0)
    }
}
