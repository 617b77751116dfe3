//! The agent's side of the operator endpoints (`api::operator`): a bridge
//! that asks the event loop for a [`Snapshot`] (a quick copy) and renders
//! it on a blocking thread, so a large `/state` never stalls the loop; the
//! [`Books`] the views need beyond the live state; the flags as Mesos
//! names them; the paths `/files` may serve.

mod books;
pub mod logging;
mod prometheus;
mod render;
mod sessions;
mod snapshot;
mod v1;

#[cfg(test)]
mod tests;

pub use books::Books;
pub use snapshot::Snapshot;

use super::config::AgentConfig;
use super::core::Input;
use crate::api::operator::v1::AgentCall;
use crate::api::operator::{Answer, Attached, BoxFuture, OperatorApi, OperatorError, View};
use crate::containerizer::mesos::MesosContainerizer;
use crate::proto::mesos::v1::agent::{response, Response};
use crate::support::format_duration;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Implements [`OperatorApi`] for the agent.
pub struct Bridge {
    pub inputs: mpsc::UnboundedSender<Input>,
    pub containerizer: Arc<MesosContainerizer>,
    pub fetcher_cache_size: u64,
    /// Answers the standalone container calls.
    pub standalone: Arc<super::standalone::Standalone>,
    /// Answers the nested container calls.
    pub nested: Arc<super::nested::Nested>,
    /// `--image_gc_config`'s `excluded_images`, which PRUNE_IMAGES keeps
    /// too, as Mesos.
    pub image_gc_excluded: Vec<String>,
    /// Tasks' encodings kept between GET_STATE and GET_TASKS calls.
    pub task_bytes: Arc<v1::TaskBytes>,
    /// The I/O of session (debug) containers.
    pub sessions: Arc<sessions::Sessions>,
}

fn stopping() -> OperatorError {
    OperatorError::Unavailable("the agent is stopping".into())
}

impl Bridge {
    async fn snapshot(&self, full: bool) -> Result<Snapshot, OperatorError> {
        let (tx, rx) = oneshot::channel();
        self.inputs
            .send(Input::Snapshot { full, reply: tx })
            .map_err(|_| stopping())?;
        rx.await.map_err(|_| stopping())
    }
}

impl Bridge {
    /// What a nested container's top-level parent is: a live executor's
    /// container (its sandbox and framework) or a standalone container.
    async fn top(&self, top: &str) -> Result<Option<super::nested::Top>, OperatorError> {
        let snapshot = self.snapshot(true).await?;
        for fw in &snapshot.frameworks {
            for ex in &fw.executors {
                if ex.container_id == top {
                    return Ok(Some(super::nested::Top {
                        sandbox: ex.directory.clone(),
                        framework: fw.info.clone(),
                    }));
                }
            }
        }
        if self.standalone.running().iter().any(|(id, _)| id == top) {
            return Ok(Some(super::nested::Top {
                sandbox: self.standalone.sandbox(top),
                framework: Default::default(),
            }));
        }
        Ok(None)
    }
}

impl OperatorApi for Bridge {
    fn launch_session(
        &self,
        launch: crate::api::operator::v1::SessionLaunch,
    ) -> BoxFuture<'_, Result<crate::api::operator::v1::OutputStream, OperatorError>> {
        Box::pin(async move {
            let debug = sessions::debug_launch(&launch)?;
            self.sessions.launch(&self.containerizer, debug).await
        })
    }

    fn attach_output(
        &self,
        container_id: crate::proto::mesos::v1::ContainerId,
    ) -> BoxFuture<'_, Result<crate::api::operator::v1::OutputStream, OperatorError>> {
        Box::pin(async move {
            self.sessions
                .attach_output(&self.containerizer, &super::nested::key(&container_id))
        })
    }

    fn attach_input(
        &self,
        container_id: crate::proto::mesos::v1::ContainerId,
    ) -> BoxFuture<'_, Result<crate::api::operator::v1::InputSink, OperatorError>> {
        Box::pin(async move {
            self.sessions
                .attach_input(&self.containerizer, &super::nested::key(&container_id))
        })
    }

    fn view(&self, view: View) -> BoxFuture<'_, Result<Bytes, OperatorError>> {
        Box::pin(async move {
            if view == View::Version {
                return Ok(Bytes::from(render::version().to_string()));
            }
            let asked = std::time::Instant::now();
            let snapshot = self.snapshot(view != View::Metrics).await?;
            let copied = asked.elapsed();
            let containerizer = self.containerizer.clone();
            let cache = self.fetcher_cache_size;
            tokio::task::spawn_blocking(move || {
                let start = std::time::Instant::now();
                let bytes = render_view(view, &snapshot, &containerizer, cache);
                tracing::debug!(
                    ?view,
                    copy_us = copied.as_micros() as u64,
                    render_us = start.elapsed().as_micros() as u64,
                    bytes = bytes.len(),
                    "rendered an operator view"
                );
                bytes
            })
            .await
            .map_err(|e| OperatorError::Internal(format!("rendering failed: {e}")))
        })
    }

    fn attached(&self) -> BoxFuture<'_, Result<Attached, OperatorError>> {
        Box::pin(async move { Ok(attached(&self.snapshot(true).await?)) })
    }

    fn call(&self, call: AgentCall) -> BoxFuture<'_, Result<Answer, OperatorError>> {
        Box::pin(async move {
            match call {
                AgentCall::LoggingLevel => {
                    let level = logging::control().map_or(0, |c| c.level());
                    return Ok(Answer::Response(Box::new(Response {
                        r#type: Some(response::Type::GetLoggingLevel as i32),
                        get_logging_level: Some(response::GetLoggingLevel { level }),
                        ..Default::default()
                    })));
                }
                AgentCall::LaunchContainer(_)
                | AgentCall::WaitContainer(_)
                | AgentCall::KillContainer { .. }
                | AgentCall::RemoveContainer(_) => return self.standalone.call(call).await,
                AgentCall::LaunchNested(c) => {
                    let top = self.top(super::nested::top(&c.container_id)).await?;
                    return self.nested.launch(*c, top).await;
                }
                AgentCall::WaitNested {
                    container_id,
                    nested,
                } => return self.nested.wait(&container_id, nested).await,
                AgentCall::KillNested {
                    container_id,
                    signal,
                } => return self.nested.kill(&container_id, signal),
                AgentCall::RemoveNested(container_id) => {
                    return self.nested.remove(&container_id).await
                }
                AgentCall::PruneImages { mut excluded } => {
                    excluded.extend(self.image_gc_excluded.iter().cloned());
                    let containerizer = self.containerizer.clone();
                    let pruned =
                        tokio::task::spawn_blocking(move || containerizer.prune_images(&excluded))
                            .await
                            .map_err(|e| {
                                OperatorError::Internal(format!("pruning images failed: {e}"))
                            })?
                            .map_err(|e| OperatorError::Internal(e.to_string()))?;
                    tracing::info!(
                        blobs = pruned.blobs,
                        layers = pruned.layers,
                        bytes = pruned.bytes,
                        "PRUNE_IMAGES: unused images removed"
                    );
                    return Ok(Answer::Ok);
                }
                AgentCall::SetLoggingLevel { level, duration } => {
                    let control = logging::control().ok_or_else(|| {
                        OperatorError::Internal(
                            "the log level cannot be changed: no control".into(),
                        )
                    })?;
                    control.set_level(level, duration);
                    return Ok(Answer::Ok);
                }
                _ => {}
            }
            let full = !matches!(
                call,
                AgentCall::Metrics { .. } | AgentCall::Flags | AgentCall::Agent
            );
            let (standalone, every_standalone) = match call {
                AgentCall::Containers {
                    show_standalone,
                    show_nested,
                } if show_standalone || show_nested => {
                    let all = self.standalone.running();
                    (
                        if show_standalone {
                            all.clone()
                        } else {
                            Vec::new()
                        },
                        all,
                    )
                }
                _ => (Vec::new(), Vec::new()),
            };
            let nested = match call {
                AgentCall::Containers {
                    show_nested: true, ..
                } => {
                    let mut keys = self.nested.running();
                    keys.extend(self.sessions.running(&self.containerizer));
                    keys
                }
                _ => Vec::new(),
            };
            let asked = std::time::Instant::now();
            let snapshot = self.snapshot(full).await?;
            let copied = asked.elapsed();
            let containerizer = self.containerizer.clone();
            let cache = self.fetcher_cache_size;
            let task_bytes = self.task_bytes.clone();
            tokio::task::spawn_blocking(move || {
                let start = std::time::Instant::now();
                let usage = |id: &str| containerizer.usage(id);
                let answer = match v1::lists(&call, &snapshot, &task_bytes) {
                    Some(lists) => Answer::Lists(Box::new(lists)),
                    None => {
                        let mut r = v1::answer(&call, &snapshot, &usage, cache);
                        v1::add_standalone(&mut r, &standalone, &usage);
                        v1::add_nested(&mut r, &nested, &every_standalone, &snapshot, &usage);
                        Answer::Response(Box::new(r))
                    }
                };
                tracing::debug!(
                    ?call,
                    copy_us = copied.as_micros() as u64,
                    build_us = start.elapsed().as_micros() as u64,
                    "answered a v1 operator call"
                );
                answer
            })
            .await
            .map_err(|e| OperatorError::Internal(format!("answering the call failed: {e}")))
        })
    }
}

/// A view's JSON text.
fn render_view(
    view: View,
    snapshot: &Snapshot,
    containerizer: &MesosContainerizer,
    cache: u64,
) -> Bytes {
    let json = match view {
        View::State => return Bytes::from(render::state_json(snapshot)),
        View::Flags => render::flags(snapshot),
        View::Metrics => render::metrics(snapshot, &render::System::read(), cache),
        View::Statistics => statistics(snapshot, containerizer, false),
        View::Containers => statistics(snapshot, containerizer, true),
        View::Version => render::version(),
        View::Prometheus => {
            let metrics = render::metrics(snapshot, &render::System::read(), cache);
            return Bytes::from(prometheus_text(snapshot, &metrics, containerizer));
        }
    };
    Bytes::from(serde_json::to_vec(&json).unwrap_or_default())
}

/// `/metrics`: METRICS (the `/metrics/snapshot` object) and every running
/// executor's figures, in the Prometheus text format.
fn prometheus_text(
    s: &Snapshot,
    metrics: &serde_json::Value,
    containerizer: &MesosContainerizer,
) -> String {
    let now = super::updates::now_secs();
    let figures: Vec<_> = running_usage(s, containerizer)
        .into_iter()
        .map(|(ex, stats)| prometheus::ExecutorFigures {
            executor: ex,
            statistics: render::statistics(ex, &stats, now),
            stats,
        })
        .collect();
    prometheus::render(s, metrics, &figures)
}

/// Every executor not terminated, with its cgroups' figures (those whose
/// container is already gone are left out).
fn running_usage<'a>(
    s: &'a Snapshot,
    containerizer: &MesosContainerizer,
) -> Vec<(&'a snapshot::ExecutorView, crate::runtime::ResourceStats)> {
    s.frameworks
        .iter()
        .flat_map(|fw| &fw.executors)
        .filter(|ex| ex.state != super::state::ExecutorState::Terminated)
        .filter_map(|ex| Some((ex, containerizer.usage(&ex.container_id)?)))
        .collect()
}

/// `/monitor/statistics`, or with `containers` `/containers`: one entry a
/// running executor, its cgroups' figures.
fn statistics(
    s: &Snapshot,
    containerizer: &MesosContainerizer,
    containers: bool,
) -> serde_json::Value {
    let now = super::updates::now_secs();
    let mut out = Vec::new();
    for (ex, stats) in running_usage(s, containerizer) {
        let mut o = serde_json::Map::new();
        if containers {
            o.insert("container_id".into(), ex.container_id.clone().into());
        }
        o.insert("executor_id".into(), ex.id.clone().into());
        o.insert("executor_name".into(), ex.info.name().into());
        o.insert("framework_id".into(), ex.framework_id.clone().into());
        o.insert("source".into(), ex.info.source().into());
        o.insert("statistics".into(), render::statistics(ex, &stats, now));
        if containers {
            let mut status = serde_json::Map::new();
            status.insert(
                "container_id".into(),
                serde_json::json!({ "value": ex.container_id }),
            );
            if let Some(pid) = s.pids.get(&ex.container_id) {
                status.insert("executor_pid".into(), (*pid).into());
            }
            o.insert("status".into(), status.into());
        }
        out.push(serde_json::Value::Object(o));
    }
    serde_json::Value::Array(out)
}

/// What `/files` serves, as Mesos attaches it: each executor run's sandbox
/// under its host path, its `runs/latest` host path, and the virtual
/// `/frameworks/F/executors/E/runs/latest`, for the executors shown in
/// `/state` (live and completed).
pub fn attached(s: &Snapshot) -> Attached {
    let mut out = Attached::new();
    let all = s
        .frameworks
        .iter()
        .chain(&s.completed_frameworks)
        .flat_map(|f| f.executors.iter().chain(&f.completed_executors));
    for ex in all {
        let dir = ex.directory.clone();
        out.insert(dir.display().to_string(), dir.clone());
        if let Some(runs) = dir.parent() {
            out.insert(runs.join("latest").display().to_string(), dir.clone());
        }
        out.insert(
            format!(
                "/frameworks/{}/executors/{}/runs/latest",
                ex.framework_id, ex.id
            ),
            dir,
        );
    }
    out
}

/// The agent's flags under Mesos' names, as `/flags` and `/state` show
/// them (values in Mesos' formats).
pub fn flags(config: &AgentConfig, bound: SocketAddr) -> BTreeMap<String, String> {
    let mut f = BTreeMap::new();
    let mut put = |k: &str, v: String| {
        f.insert(k.to_string(), v);
    };
    let d = |d: std::time::Duration| format_duration(d);
    put("master", crate::wire::detector::redacted(&config.master));
    put("ip", config.listen.ip().to_string());
    put("port", bound.port().to_string());
    if let Some(ip) = config.advertise_ip {
        put("advertise_ip", ip.to_string());
    }
    if let Some(port) = config.advertise_port {
        put("advertise_port", port.to_string());
    }
    put("hostname", config.hostname.clone());
    if let Some(r) = &config.resources {
        put("resources", r.clone());
    }
    if let Some(a) = &config.attributes {
        put("attributes", a.clone());
    }
    put("work_dir", config.work_dir.display().to_string());
    put("runtime_dir", config.runtime_dir.display().to_string());
    put("cgroups_root", config.runtime.cgroup_parent.clone());
    put("isolation", config.isolation.clone());
    put("containerizers", "mesos".into());
    put("launcher", "linux".into());
    put(
        "executor_registration_timeout",
        d(config.executor_registration_timeout),
    );
    put(
        "executor_reregistration_timeout",
        d(config.executor_reregistration_timeout),
    );
    put(
        "executor_shutdown_grace_period",
        d(config.executor_shutdown_grace_period),
    );
    put("recovery_timeout", d(config.recovery_timeout));
    put(
        "recover",
        match config.recover {
            super::RecoverMode::Reconnect => "reconnect",
            super::RecoverMode::Cleanup => "cleanup",
        }
        .into(),
    );
    put(
        "reconfiguration_policy",
        config.reconfiguration_policy.as_str().into(),
    );
    put(
        "registration_backoff_factor",
        d(config.registration_backoff_factor),
    );
    put(
        "http_heartbeat_interval",
        d(config.executor_heartbeat_interval),
    );
    if let Some(r) = &config.docker_registry {
        put("docker_registry", r.clone());
    }
    put(
        "fetcher_cache_size",
        crate::support::format_bytes(config.fetcher.cache_size),
    );
    put(
        "fetcher_cache_dir",
        config.fetcher.cache_dir.display().to_string(),
    );
    put("fetcher_stall_timeout", d(config.fetcher.http.read_timeout));
    put(
        "authenticate_http_executors",
        config.authenticate_http_executors.to_string(),
    );
    put(
        "authenticate_http_readonly",
        config.authenticate_http_readonly.to_string(),
    );
    put(
        "authenticate_http_readwrite",
        config.authenticate_http_readwrite.to_string(),
    );
    if let Some(p) = &config.http_credentials {
        put("http_credentials", p.display().to_string());
    }
    if let Some(p) = &config.executor_secret_key {
        put("executor_secret_key", p.display().to_string());
    }
    put("http_command_executor", "true".into());
    put("switch_user", config.switch_user.to_string());
    put(
        "task_group_nested_containers",
        config.task_group_nested_containers.to_string(),
    );
    put("default_role", config.default_role.clone());
    if !config.executor_environment_variables.is_empty() {
        let vars: serde_json::Map<String, serde_json::Value> = config
            .executor_environment_variables
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        put(
            "executor_environment_variables",
            serde_json::Value::Object(vars).to_string(),
        );
    }
    put("strict", "true".into());
    // master detection and authentication
    put("zk_session_timeout", d(config.zk_session_timeout));
    if let Some(p) = &config.credential {
        put("credential", p.display().to_string());
    }
    put("authenticatee", config.authenticatee.clone());
    put(
        "authentication_backoff_factor",
        d(config.authentication_backoff_factor),
    );
    put(
        "authentication_timeout_min",
        d(config.authentication_timeout_min),
    );
    put(
        "authentication_timeout_max",
        d(config.authentication_timeout_max),
    );
    // images
    if let Some(p) = &config.pull.registry_config {
        put("docker_config", p.display().to_string());
    }
    if !config.pull.insecure.is_empty() {
        put("insecure_registries", config.pull.insecure.join(","));
    }
    // CNI
    if let Some(dir) = &config.cni.config_dir {
        put("network_cni_config_dir", dir.display().to_string());
    }
    if !config.cni.plugin_dirs.is_empty() {
        let dirs: Vec<String> = config
            .cni
            .plugin_dirs
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        put("network_cni_plugins_dir", dirs.join(":"));
    }
    put(
        "network_cni_root_dir_persist",
        config.cni.persist_dir.is_some().to_string(),
    );
    // disk: GC and quota
    put("gc_delay", d(config.disk.gc_delay));
    put("disk_watch_interval", d(config.disk.disk_watch_interval));
    put("gc_disk_headroom", config.disk.gc_disk_headroom.to_string());
    put(
        "enforce_container_disk_quota",
        config.disk.enforce_container_disk_quota.to_string(),
    );
    put(
        "container_disk_watch_interval",
        d(config.disk.container_disk_watch_interval),
    );
    put(
        "status_update_retry_interval",
        d(config.status_update_retry_interval),
    );
    // The rest as given (Mesos flags butte accepts without using them, and
    // flags kept as text); what butte does wins over what was asked.
    for (name, value) in &config.given_flags {
        f.entry(name.clone()).or_insert_with(|| value.clone());
    }
    f
}
