//! The JSON of the operator views, in Mesos 1.11's shapes (its
//! `slave/http.cpp` writers and `common/http.cpp` models), from a
//! [`Snapshot`]. Runs off the event loop.

use super::snapshot::{ExecutorView, FrameworkView, Snapshot, Tally};
use crate::agent::config::MESOS_VERSION;
use crate::agent::state::ExecutorState;
use crate::proto::mesos::framework_info::capability::Type as FrameworkCapability;
use crate::proto::mesos::network_info::Protocol;
use crate::proto::mesos::value::Type as ValueType;
use crate::proto::mesos::{
    Attribute, ContainerId, ContainerStatus, Labels, NetworkInfo, Resource, Task, TaskInfo,
    TaskState, TaskStatus,
};
use crate::proto::to_json;
use crate::runtime::ResourceStats;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// `/version`.
pub fn version() -> Value {
    let (build_time, build_date) = build_time();
    json!({
        "version": MESOS_VERSION,
        "git_sha": option_env!("BUTTE_GIT_SHA").unwrap_or(""),
        "git_tag": format!("butte-{}", env!("CARGO_PKG_VERSION")),
        "build_date": build_date,
        "build_time": build_time,
        "build_user": option_env!("USER").unwrap_or(""),
    })
}

/// When this binary was built: its file's modification time.
fn build_time() -> (f64, String) {
    let secs = std::env::current_exe()
        .and_then(std::fs::metadata)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    (secs as f64, utc(secs))
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) for seconds since the epoch.
fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `/flags`.
pub fn flags(s: &Snapshot) -> Value {
    json!({ "flags": flags_object(s) })
}

fn flags_object(s: &Snapshot) -> Value {
    Value::Object(
        s.flags
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

/// Whether a resource is reserved, and for which role.
fn reserved_role(r: &Resource) -> Option<String> {
    if let Some(last) = r.reservations.last() {
        return Some(last.role.clone().unwrap_or_else(|| "*".into()));
    }
    r.role.clone().filter(|role| role != "*")
}

/// Mesos' `model(Resources)`: scalars summed by name (cpus, gpus, mem and
/// disk always present), ranges as `[a-b, c-d]`, sets as `{a, b}`; names
/// in order. Serializes as a JSON object without building one.
#[derive(Debug, Default)]
pub struct Model<'a>(Vec<(&'a str, Amount)>);

#[derive(Debug)]
enum Amount {
    Scalar(f64),
    Ranges(Vec<(u64, u64)>),
    Set(Vec<String>),
}

pub fn model<'a>(resources: impl IntoIterator<Item = &'a Resource>) -> Model<'a> {
    let mut out: Vec<(&'a str, Amount)> = ["cpus", "gpus", "mem", "disk"]
        .into_iter()
        .map(|n| (n, Amount::Scalar(0.0)))
        .collect();
    for r in resources {
        let add = match r.r#type() {
            ValueType::Scalar => Amount::Scalar(r.scalar.as_ref().map_or(0.0, |s| s.value)),
            ValueType::Ranges => Amount::Ranges(
                r.ranges
                    .iter()
                    .flat_map(|rs| rs.range.iter().map(|x| (x.begin, x.end)))
                    .collect(),
            ),
            ValueType::Set => {
                Amount::Set(r.set.iter().flat_map(|s| s.item.iter().cloned()).collect())
            }
            _ => continue,
        };
        match out.iter_mut().find(|(n, _)| *n == r.name.as_str()) {
            Some((_, have)) => match (have, add) {
                (Amount::Scalar(a), Amount::Scalar(b)) => *a += b,
                (Amount::Ranges(a), Amount::Ranges(b)) => a.extend(b),
                (Amount::Set(a), Amount::Set(b)) => a.extend(b),
                _ => {}
            },
            None => out.push((r.name.as_str(), add)),
        }
    }
    out.sort_by(|a, b| a.0.cmp(b.0));
    Model(out)
}

impl serde::Serialize for Model<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = ser.serialize_map(Some(self.0.len()))?;
        for (name, amount) in &self.0 {
            match amount {
                // Mesos rounds scalars to three decimals.
                Amount::Scalar(v) => map.serialize_entry(name, &((v * 1000.0).round() / 1000.0))?,
                Amount::Ranges(rs) => {
                    let mut rs = rs.clone();
                    rs.sort_unstable();
                    let text: Vec<String> = rs.iter().map(|(b, e)| format!("{b}-{e}")).collect();
                    map.serialize_entry(name, &format!("[{}]", text.join(", ")))?
                }
                Amount::Set(items) => {
                    map.serialize_entry(name, &format!("{{{}}}", items.join(", ")))?
                }
            }
        }
        map.end()
    }
}

/// [`model`] as a JSON value.
pub fn resources_model<'a>(resources: impl IntoIterator<Item = &'a Resource>) -> Value {
    serde_json::to_value(model(resources)).unwrap_or(Value::Null)
}

/// A Resource as JSON in Mesos' endpoint format: the pre-refinement
/// `role` (`*` when unreserved) beside the `reservations` stack.
fn resource_json(r: &Resource) -> Value {
    to_json(&crate::agent::resources::endpoint(r))
}

fn attributes_model(attributes: &[Attribute]) -> Value {
    let mut out = Map::new();
    for a in attributes {
        let v = match a.r#type() {
            ValueType::Scalar => json!(a.scalar.as_ref().map_or(0.0, |s| s.value)),
            ValueType::Text => json!(a.text.as_ref().map_or("", |t| t.value.as_str())),
            _ => resources_model([&Resource {
                name: a.name.clone(),
                r#type: a.r#type,
                ranges: a.ranges.clone(),
                set: a.set.clone(),
                ..Default::default()
            }])
            .get(&a.name)
            .cloned()
            .unwrap_or(Value::Null),
        };
        out.insert(a.name.clone(), v);
    }
    Value::Object(out)
}

/// Every resource held by live executors and their tasks.
fn allocated(s: &Snapshot) -> Vec<&Resource> {
    s.frameworks
        .iter()
        .flat_map(|f| &f.executors)
        .flat_map(|ex| {
            ex.info
                .resources
                .iter()
                .chain(ex.tasks.iter().flat_map(|t| &t.resources))
                .chain(ex.queued.iter().flat_map(|t| &t.resources))
        })
        .collect()
}

/// An executor's own resources plus those of its live tasks, as Mesos
/// reports them.
fn executor_resources(ex: &ExecutorView) -> Vec<Resource> {
    let mut out = ex.info.resources.clone();
    for t in &ex.tasks {
        out.extend(t.resources.iter().cloned());
    }
    for t in &ex.queued {
        out.extend(t.resources.iter().cloned());
    }
    out
}

/// `/state`'s JSON text.
pub fn state_json(s: &Snapshot) -> Vec<u8> {
    serde_json::to_vec(&StateJson {
        head: state_head(s),
        frameworks: s.frameworks.iter().map(framework).collect(),
        completed_frameworks: s.completed_frameworks.iter().map(framework).collect(),
    })
    .unwrap_or_default()
}

/// `/state` as a JSON value.
#[cfg(test)]
pub fn state(s: &Snapshot) -> Value {
    serde_json::from_slice(&state_json(s)).unwrap_or(Value::Null)
}

#[derive(serde::Serialize)]
struct StateJson<'a> {
    #[serde(flatten)]
    head: Map<String, Value>,
    frameworks: Vec<FrameworkJson<'a>>,
    completed_frameworks: Vec<FrameworkJson<'a>>,
}

/// Everything of `/state` but the frameworks.
fn state_head(s: &Snapshot) -> Map<String, Value> {
    let version = version();
    let (reserved, unreserved): (Vec<&Resource>, Vec<&Resource>) =
        s.resources.iter().partition(|r| reserved_role(r).is_some());
    let mut reserved_by_role: BTreeMap<String, Vec<&Resource>> = BTreeMap::new();
    for r in reserved {
        reserved_by_role
            .entry(reserved_role(r).unwrap_or_default())
            .or_default()
            .push(r);
    }
    let used = allocated(s);
    let (used_reserved, used_unreserved): (Vec<&Resource>, Vec<&Resource>) =
        used.into_iter().partition(|r| reserved_role(r).is_some());
    let mut used_by_role: BTreeMap<String, Vec<&Resource>> = BTreeMap::new();
    for r in used_reserved {
        used_by_role
            .entry(reserved_role(r).unwrap_or_default())
            .or_default()
            .push(r);
    }
    let capabilities: Vec<Value> = super::super::master::capabilities()
        .iter()
        .map(|c| json!(c.r#type().as_str_name()))
        .collect();
    let head = json!({
        "version": version["version"],
        "git_sha": version["git_sha"],
        "git_tag": version["git_tag"],
        "build_date": version["build_date"],
        "build_time": version["build_time"],
        "build_user": version["build_user"],
        "start_time": s.start_time,
        "id": s.id,
        "pid": s.pid,
        "hostname": s.hostname,
        "capabilities": capabilities,
        "resources": resources_model(&s.resources),
        "reserved_resources": reserved_by_role
            .iter()
            .map(|(role, rs)| (role.clone(), resources_model(rs.iter().copied())))
            .collect::<Map<_, _>>(),
        "unreserved_resources": resources_model(unreserved.iter().copied()),
        "reserved_resources_full": reserved_by_role
            .iter()
            .map(|(role, rs)| (role.clone(), Value::Array(rs.iter().map(|r| resource_json(r)).collect())))
            .collect::<Map<_, _>>(),
        "unreserved_resources_full": unreserved.iter().map(|r| resource_json(r)).collect::<Vec<_>>(),
        "reserved_resources_allocated": used_by_role
            .iter()
            .map(|(role, rs)| (role.clone(), resources_model(rs.iter().copied())))
            .collect::<Map<_, _>>(),
        "unreserved_resources_allocated": resources_model(used_unreserved.iter().copied()),
        "resource_providers": [],
        "attributes": attributes_model(&s.attributes),
        "master_hostname": s.master_hostname,
        "flags": flags_object(s),
    });
    let mut head = match head {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    // As Mesos' agent shows a drain: the config as JSON (the default
    // `mark_gone` included) and when it started, while it lasts.
    if let Some(d) = &s.drain {
        let mut config = Map::new();
        if let Some(g) = &d.config.max_grace_period {
            config.insert(
                "max_grace_period".into(),
                json!({ "nanoseconds": g.nanoseconds }),
            );
        }
        config.insert("mark_gone".into(), json!(d.config.mark_gone()));
        head.insert("drain_config".into(), Value::Object(config));
        head.insert(
            "estimated_drain_start_time_seconds".into(),
            json!(d.started as i64),
        );
    }
    head
}

#[derive(serde::Serialize)]
struct FrameworkJson<'a> {
    id: &'a str,
    name: &'a str,
    user: &'a str,
    failover_timeout: f64,
    checkpoint: bool,
    hostname: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    roles: Option<&'a [String]>,
    executors: Vec<ExecutorJson<'a>>,
    completed_executors: Vec<ExecutorJson<'a>>,
}

fn framework(f: &FrameworkView) -> FrameworkJson<'_> {
    let info = &f.info;
    let multi_role = info
        .capabilities
        .iter()
        .any(|c| c.r#type() == FrameworkCapability::MultiRole);
    FrameworkJson {
        id: &f.id,
        name: &info.name,
        user: &info.user,
        failover_timeout: info.failover_timeout(),
        checkpoint: info.checkpoint(),
        hostname: info.hostname(),
        role: (!multi_role).then(|| info.role()),
        roles: multi_role.then_some(info.roles.as_slice()),
        executors: f.executors.iter().map(|e| executor(e, info)).collect(),
        completed_executors: f
            .completed_executors
            .iter()
            .map(|e| executor(e, info))
            .collect(),
    }
}

fn executor_role<'a>(
    ex: &'a ExecutorView,
    info: &'a crate::proto::mesos::FrameworkInfo,
) -> &'a str {
    ex.info
        .resources
        .iter()
        .chain(ex.tasks.iter().flat_map(|t| t.resources.iter()))
        .find_map(|r| r.allocation_info.as_ref().and_then(|a| a.role.as_deref()))
        .or_else(|| info.roles.first().map(String::as_str))
        .unwrap_or_else(|| info.role())
}

#[derive(serde::Serialize)]
struct ExecutorJson<'a> {
    id: &'a str,
    name: &'a str,
    source: &'a str,
    container: &'a str,
    directory: String,
    resources: Model<'a>,
    role: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    labels: Option<Value>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    tasks: Vec<TaskJson<'a>>,
    queued_tasks: Vec<TaskJson<'a>>,
    completed_tasks: Vec<TaskJson<'a>>,
}

fn executor<'a>(
    ex: &'a ExecutorView,
    fw: &'a crate::proto::mesos::FrameworkInfo,
) -> ExecutorJson<'a> {
    // A live executor holds its own resources and its tasks'; a completed
    // one, as Mesos shows it, its own.
    let live = ex.state != ExecutorState::Terminated;
    let tasks = ex
        .tasks
        .iter()
        .filter(|_| live)
        .flat_map(|t| t.resources.iter());
    let queued = ex
        .queued
        .iter()
        .filter(|_| live)
        .flat_map(|t| t.resources.iter());
    ExecutorJson {
        id: &ex.id,
        name: ex.info.name(),
        source: ex.info.source(),
        container: &ex.container_id,
        directory: ex.directory.display().to_string(),
        resources: model(ex.info.resources.iter().chain(tasks).chain(queued)),
        role: executor_role(ex, fw),
        labels: ex
            .info
            .labels
            .as_ref()
            .map(|l| to_json(l)["labels"].clone()),
        kind: ex
            .info
            .r#type
            .is_some()
            .then(|| ex.info.r#type().as_str_name()),
        tasks: ex.tasks.iter().map(|t| task(t)).collect(),
        queued_tasks: ex
            .queued
            .iter()
            .map(|t| queued_task(t, &ex.framework_id))
            .collect(),
        completed_tasks: ex
            .completed
            .iter()
            .chain(&ex.terminated)
            .map(|t| task(t))
            .collect(),
    }
}

fn task_role(resources: &[Resource]) -> &str {
    resources
        .iter()
        .find_map(|r| r.allocation_info.as_ref().and_then(|a| a.role.as_deref()))
        .unwrap_or("*")
}

/// Mesos' `model(Task)`.
#[derive(serde::Serialize)]
struct TaskJson<'a> {
    id: &'a str,
    name: &'a str,
    framework_id: &'a str,
    executor_id: &'a str,
    slave_id: &'a str,
    state: &'static str,
    resources: Model<'a>,
    role: &'a str,
    statuses: Vec<StatusJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    labels: Option<LabelsJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    discovery: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    container: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    health_check: Option<Value>,
}

fn task(t: &Task) -> TaskJson<'_> {
    TaskJson {
        id: &t.task_id.value,
        name: &t.name,
        framework_id: &t.framework_id.value,
        executor_id: t.executor_id.as_ref().map_or("", |e| e.value.as_str()),
        slave_id: &t.slave_id.value,
        state: t.state().as_str_name(),
        resources: model(&t.resources),
        role: task_role(&t.resources),
        statuses: t.statuses.iter().map(status).collect(),
        user: t.user.as_deref(),
        labels: t.labels.as_ref().map(LabelsJson),
        discovery: t.discovery.as_ref().map(to_json),
        container: t.container.as_ref().map(to_json),
        health_check: t.health_check.as_ref().map(to_json),
    }
}

/// Mesos' `model(TaskInfo)` for a task not yet given to its executor.
fn queued_task<'a>(t: &'a TaskInfo, framework_id: &'a str) -> TaskJson<'a> {
    TaskJson {
        id: &t.task_id.value,
        name: &t.name,
        framework_id,
        executor_id: t
            .executor
            .as_ref()
            .map_or("", |e| e.executor_id.value.as_str()),
        slave_id: &t.slave_id.value,
        state: TaskState::TaskStaging.as_str_name(),
        resources: model(&t.resources),
        role: task_role(&t.resources),
        statuses: Vec::new(),
        user: None,
        labels: None,
        discovery: None,
        container: None,
        health_check: None,
    }
}

/// Mesos' `model(TaskStatus)` in a task's `statuses`.
#[derive(serde::Serialize)]
struct StatusJson<'a> {
    state: &'static str,
    timestamp: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    labels: Option<LabelsJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    container_status: Option<ContainerStatusJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    healthy: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    check_status: Option<Value>,
    #[serde(skip)]
    _of: std::marker::PhantomData<&'a ()>,
}

fn status(st: &TaskStatus) -> StatusJson<'_> {
    StatusJson {
        state: st.state().as_str_name(),
        timestamp: st.timestamp.unwrap_or(0.0),
        labels: st.labels.as_ref().map(LabelsJson),
        container_status: st.container_status.as_ref().map(container_status),
        healthy: st.healthy,
        check_status: st.check_status.as_ref().map(to_json),
        _of: std::marker::PhantomData,
    }
}

/// A `Labels` as the list Mesos' models write (`[{"key", "value"}]`).
struct LabelsJson<'a>(&'a Labels);

#[derive(serde::Serialize)]
struct LabelJson<'a> {
    key: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<&'a str>,
}

impl serde::Serialize for LabelsJson<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        ser.collect_seq(self.0.labels.iter().map(|l| LabelJson {
            key: &l.key,
            value: l.value.as_deref(),
        }))
    }
}

/// A `Labels` message as `JSON::Protobuf` writes it: `{"labels": [...]}`.
#[derive(serde::Serialize)]
struct LabelsMessageJson<'a> {
    #[serde(skip_serializing_if = "is_empty_labels")]
    labels: LabelsJson<'a>,
}

fn is_empty_labels(l: &LabelsJson) -> bool {
    l.0.labels.is_empty()
}

/// `ContainerStatus` as Mesos' `JSON::Protobuf` writes it (the fields
/// that are set, in declaration order), by hand: the reflective
/// [`to_json`] of every status was most of `/state`'s rendering.
#[derive(serde::Serialize)]
pub(super) struct ContainerStatusJson<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    container_id: Option<ContainerIdJson<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    network_infos: Vec<NetworkInfoJson<'a>>,
    /// Rare (the `net_cls` isolator's, which butte lacks): reflective.
    #[serde(skip_serializing_if = "Option::is_none")]
    cgroup_info: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    executor_pid: Option<u32>,
}

pub(super) fn container_status(c: &ContainerStatus) -> ContainerStatusJson<'_> {
    ContainerStatusJson {
        container_id: c.container_id.as_ref().map(container_id),
        network_infos: c.network_infos.iter().map(network_info).collect(),
        cgroup_info: c.cgroup_info.as_ref().map(to_json),
        executor_pid: c.executor_pid,
    }
}

#[derive(serde::Serialize)]
struct ContainerIdJson<'a> {
    value: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent: Option<Box<ContainerIdJson<'a>>>,
}

fn container_id(id: &ContainerId) -> ContainerIdJson<'_> {
    ContainerIdJson {
        value: &id.value,
        parent: id.parent.as_deref().map(|p| Box::new(container_id(p))),
    }
}

#[derive(serde::Serialize)]
struct NetworkInfoJson<'a> {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ip_addresses: Vec<IpAddressJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    groups: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    labels: Option<LabelsMessageJson<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    port_mappings: Vec<PortMappingJson<'a>>,
}

#[derive(serde::Serialize)]
struct IpAddressJson<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    protocol: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ip_address: Option<&'a str>,
}

#[derive(serde::Serialize)]
struct PortMappingJson<'a> {
    host_port: u32,
    container_port: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    protocol: Option<&'a str>,
}

fn network_info(n: &NetworkInfo) -> NetworkInfoJson<'_> {
    NetworkInfoJson {
        ip_addresses: n
            .ip_addresses
            .iter()
            .map(|a| IpAddressJson {
                protocol: a
                    .protocol
                    .and_then(|p| Protocol::try_from(p).ok())
                    .map(|p| p.as_str_name()),
                ip_address: a.ip_address.as_deref(),
            })
            .collect(),
        name: n.name.as_deref(),
        groups: &n.groups,
        labels: n.labels.as_ref().map(|l| LabelsMessageJson {
            labels: LabelsJson(l),
        }),
        port_mappings: n
            .port_mappings
            .iter()
            .map(|p| PortMappingJson {
                host_port: p.host_port,
                container_port: p.container_port,
                protocol: p.protocol.as_deref(),
            })
            .collect(),
    }
}

fn tasks(t: &Tally, state: TaskState) -> f64 {
    t.tasks.get(&(state as i32)).copied().unwrap_or(0) as f64
}

fn executors(t: &Tally, state: &str) -> f64 {
    t.executors.get(state).copied().unwrap_or(0) as f64
}

/// What `/proc` says about the machine (Mesos' `system/*`).
#[derive(Debug, Clone, Default)]
pub struct System {
    pub cpus_total: f64,
    pub load: [f64; 3],
    pub mem_total_bytes: f64,
    pub mem_free_bytes: f64,
}

impl System {
    pub fn read() -> System {
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        let mut l = load.split_whitespace().map(|x| x.parse().unwrap_or(0.0));
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let kb = |key: &str| {
            meminfo
                .lines()
                .find_map(|line| {
                    line.strip_prefix(key)?
                        .trim()
                        .strip_suffix("kB")?
                        .trim()
                        .parse::<f64>()
                        .ok()
                })
                .unwrap_or(0.0)
                * 1024.0
        };
        System {
            cpus_total: std::thread::available_parallelism().map_or(0, |n| n.get()) as f64,
            load: [
                l.next().unwrap_or(0.0),
                l.next().unwrap_or(0.0),
                l.next().unwrap_or(0.0),
            ],
            mem_total_bytes: kb("MemTotal:"),
            mem_free_bytes: kb("MemFree:"),
        }
    }
}

/// `/metrics/snapshot`: the Mesos keys butte can fill, each a double.
pub fn metrics(s: &Snapshot, sys: &System, fetcher_cache_bytes: u64) -> Value {
    let mut m: BTreeMap<&str, f64> = BTreeMap::new();
    let total = resources_model(&s.resources);
    let tally = &s.tally;
    for name in ["cpus", "gpus", "mem", "disk"] {
        let t = total[name].as_f64().unwrap_or(0.0);
        let u = tally
            .used
            .get(name)
            .map_or(0.0, |v| (v * 1000.0).round() / 1000.0);
        let (k_total, k_used, k_percent, k_rt, k_ru, k_rp) = match name {
            "cpus" => (
                "slave/cpus_total",
                "slave/cpus_used",
                "slave/cpus_percent",
                "slave/cpus_revocable_total",
                "slave/cpus_revocable_used",
                "slave/cpus_revocable_percent",
            ),
            "gpus" => (
                "slave/gpus_total",
                "slave/gpus_used",
                "slave/gpus_percent",
                "slave/gpus_revocable_total",
                "slave/gpus_revocable_used",
                "slave/gpus_revocable_percent",
            ),
            "mem" => (
                "slave/mem_total",
                "slave/mem_used",
                "slave/mem_percent",
                "slave/mem_revocable_total",
                "slave/mem_revocable_used",
                "slave/mem_revocable_percent",
            ),
            _ => (
                "slave/disk_total",
                "slave/disk_used",
                "slave/disk_percent",
                "slave/disk_revocable_total",
                "slave/disk_revocable_used",
                "slave/disk_revocable_percent",
            ),
        };
        m.insert(k_total, t);
        m.insert(k_used, u);
        m.insert(k_percent, if t > 0.0 { u / t } else { 0.0 });
        // butte offers no revocable (oversubscribed) resources.
        m.insert(k_rt, 0.0);
        m.insert(k_ru, 0.0);
        m.insert(k_rp, 0.0);
    }
    let c = &s.counters;
    let ended = |st: TaskState| c.tasks_ended.get(&(st as i32)).copied().unwrap_or(0) as f64;
    m.insert("slave/uptime_secs", s.uptime_secs);
    m.insert("slave/registered", if s.registered { 1.0 } else { 0.0 });
    m.insert("slave/recovery_time_secs", s.recovery_time_secs);
    m.insert("slave/frameworks_active", tally.frameworks_active as f64);
    m.insert(
        "slave/executors_registering",
        executors(tally, "registering"),
    );
    m.insert("slave/executors_running", executors(tally, "running"));
    m.insert(
        "slave/executors_terminating",
        executors(tally, "terminating"),
    );
    m.insert("slave/executors_terminated", c.executors_terminated as f64);
    // butte never preempts executors (no QoS controller).
    m.insert("slave/executors_preempted", 0.0);
    m.insert("slave/tasks_staging", tasks(tally, TaskState::TaskStaging));
    m.insert(
        "slave/tasks_starting",
        tasks(tally, TaskState::TaskStarting),
    );
    m.insert("slave/tasks_running", tasks(tally, TaskState::TaskRunning));
    m.insert("slave/tasks_killing", tasks(tally, TaskState::TaskKilling));
    m.insert("slave/tasks_finished", ended(TaskState::TaskFinished));
    m.insert("slave/tasks_failed", ended(TaskState::TaskFailed));
    m.insert("slave/tasks_killed", ended(TaskState::TaskKilled));
    m.insert(
        "slave/tasks_lost",
        ended(TaskState::TaskLost) + ended(TaskState::TaskDropped),
    );
    m.insert("slave/tasks_gone", ended(TaskState::TaskGone));
    m.insert("slave/valid_status_updates", c.valid_status_updates as f64);
    m.insert(
        "slave/invalid_status_updates",
        c.invalid_status_updates as f64,
    );
    m.insert(
        "slave/valid_framework_messages",
        c.valid_framework_messages as f64,
    );
    m.insert(
        "slave/invalid_framework_messages",
        c.invalid_framework_messages as f64,
    );
    m.insert(
        "slave/container_launch_errors",
        c.container_launch_errors as f64,
    );
    m.insert(
        "containerizer/fetcher/cache_size_total_bytes",
        fetcher_cache_bytes as f64,
    );
    m.insert("system/cpus_total", sys.cpus_total);
    m.insert("system/load_1min", sys.load[0]);
    m.insert("system/load_5min", sys.load[1]);
    m.insert("system/load_15min", sys.load[2]);
    m.insert("system/mem_total_bytes", sys.mem_total_bytes);
    m.insert("system/mem_free_bytes", sys.mem_free_bytes);
    Value::Object(
        m.into_iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect(),
    )
}

/// Mesos' ResourceStatistics JSON for one executor's container.
pub fn statistics(ex: &ExecutorView, stats: &ResourceStats, timestamp: f64) -> Value {
    usage(&executor_resources(ex), stats, timestamp)
}

/// [`statistics`] of a container holding `own` (its `cpus` and `mem`
/// give the soft limits).
pub fn usage(own: &[Resource], stats: &ResourceStats, timestamp: f64) -> Value {
    let scalar = |name: &str| -> f64 {
        own.iter()
            .filter(|r| r.name == name)
            .filter_map(|r| r.scalar.as_ref())
            .map(|s| s.value)
            .sum()
    };
    let mut o = Map::new();
    o.insert("timestamp".into(), json!(timestamp));
    o.insert("cpus_soft_limit".into(), json!(scalar("cpus")));
    o.insert(
        "cpus_user_time_secs".into(),
        json!(stats.cpu_user_ns as f64 / 1e9),
    );
    o.insert(
        "cpus_system_time_secs".into(),
        json!(stats.cpu_system_ns as f64 / 1e9),
    );
    o.insert("cpus_nr_throttled".into(), json!(stats.cpu_nr_throttled));
    o.insert(
        "cpus_throttled_time_secs".into(),
        json!(stats.cpu_throttled_ns as f64 / 1e9),
    );
    o.insert("cpus_nr_periods".into(), json!(stats.cpu_nr_periods));
    // Anonymous memory; the whole charge where memory.stat is unreadable.
    let rss = if stats.memory_rss > 0 || stats.memory_cache > 0 {
        stats.memory_rss
    } else {
        stats.memory_current
    };
    o.insert("mem_rss_bytes".into(), json!(rss));
    o.insert("mem_cache_bytes".into(), json!(stats.memory_cache));
    o.insert("mem_swap_bytes".into(), json!(stats.memory_swap));
    o.insert("mem_total_bytes".into(), json!(stats.memory_current));
    if stats.memory_peak > 0 {
        o.insert("mem_max_bytes".into(), json!(stats.memory_peak));
    }
    o.insert(
        "mem_soft_limit_bytes".into(),
        json!((scalar("mem") * 1024.0 * 1024.0) as u64),
    );
    if stats.memory_limit > 0 && stats.memory_limit < u64::MAX / 2 {
        o.insert("mem_limit_bytes".into(), json!(stats.memory_limit));
    } else {
        o.insert(
            "mem_limit_bytes".into(),
            json!((scalar("mem") * 1024.0 * 1024.0) as u64),
        );
    }
    o.insert("processes".into(), json!(stats.pids_current));
    Value::Object(o)
}
