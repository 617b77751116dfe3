//! Standalone containers: the v1 operator API's LAUNCH_CONTAINER,
//! WAIT_CONTAINER, KILL_CONTAINER and REMOVE_CONTAINER for container ids
//! without a parent, as Mesos' agent serves them.
//!
//! ```text
//!  LAUNCH --> running --(exit, or KILL)--> ended --REMOVE--> forgotten
//!   |  (200; 202 if the id is known)         |  (sandbox, record removed)
//!   \-- error: 400, nothing left      WAIT: the termination
//! ```
//!
//! A container runs its `CommandInfo` (in its image, when its
//! `ContainerInfo` has one) with the limits of its `cpus` and `mem`
//! (raised or lowered by `limits`), in the sandbox
//! `<work_dir>/containers/<id>`. The agent reaps it as soon as it ends
//! (whoever waits), and keeps how it ended until REMOVE_CONTAINER (Mesos
//! forgets a standalone container as soon as it ends). Each running one
//! has a record, `meta/standalone/<id>` with its pid, then how it ended
//! (see `records`): an agent that restarts takes the containers over
//! ([`Standalone::recover`]); one whose process is gone ends with the
//! status its init recorded.

use super::records::{self, launch_recorded};
use crate::api::operator::v1::AgentCall;
use crate::api::operator::{Answer, OperatorError};
use crate::containerizer::mesos::{
    ContainerizerError, ExecutorEnv, ExecutorKind, LaunchRequest, MesosContainerizer, Recovered,
    Termination,
};
use crate::proto::devolve;
use crate::proto::mesos::v1::agent::{call, response, Response};
use crate::proto::mesos::v1::{container_info, TaskState};
use crate::proto::mesos::{ExecutorId, ExecutorInfo, Resource};
use crate::runtime::ExitStatus;
use crate::state::paths::WorkDir;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Serves the standalone container calls; shared by the operator bridge.
pub struct Standalone {
    containerizer: Arc<MesosContainerizer>,
    work: WorkDir,
    /// What launch requests carry (unused by standalone containers, which
    /// get no executor environment).
    env: ExecutorEnv,
    /// The resources each container was launched with, for GET_CONTAINERS
    /// (not kept across restarts). A std `Mutex`: nothing awaits under it.
    resources: Mutex<BTreeMap<String, Vec<Resource>>>,
}

pub(super) fn internal(what: &str, e: impl std::fmt::Display) -> OperatorError {
    OperatorError::Internal(format!("{what}: {e}"))
}

impl Standalone {
    pub fn new(containerizer: Arc<MesosContainerizer>, work: WorkDir, env: ExecutorEnv) -> Self {
        Standalone {
            containerizer,
            work,
            env,
            resources: Mutex::default(),
        }
    }

    /// The standalone containers that run, with the resources they were
    /// launched with (none for one recovered after a restart).
    pub fn running(&self) -> Vec<(String, Vec<Resource>)> {
        let Ok(entries) = std::fs::read_dir(self.work.meta_standalone()) else {
            return Vec::new();
        };
        let resources = self.resources.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<_> = entries
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|id| !id.starts_with('.'))
            .filter(|id| self.containerizer.ended(id) == Some(false))
            .map(|id| {
                let r = resources.get(&id).cloned().unwrap_or_default();
                (id, r)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// The sandbox of standalone container `id`.
    pub fn sandbox(&self, id: &str) -> std::path::PathBuf {
        self.work.container_sandbox(id)
    }

    /// Answers one of the four calls.
    pub async fn call(&self, call: AgentCall) -> Result<Answer, OperatorError> {
        match call {
            AgentCall::LaunchContainer(c) => self.launch(*c).await,
            AgentCall::WaitContainer(id) => self.wait(&id).await,
            AgentCall::KillContainer {
                container_id,
                signal,
            } => self.kill(&container_id, signal),
            AgentCall::RemoveContainer(id) => self.remove(id).await,
            other => Err(OperatorError::Internal(format!(
                "{other:?} is not a standalone container call"
            ))),
        }
    }

    /// After a restart: takes over each recorded container (or records it
    /// as ended with an unknown status when its process is gone).
    pub fn recover(&self) {
        let dir = self.work.meta_standalone();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                tracing::warn!(path = %dir.display(), error = %e, "standalone containers not recovered");
                return;
            }
        };
        for entry in entries.flatten() {
            let Some(id) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if id.starts_with('.') {
                continue;
            }
            let record = entry.path();
            match records::recover(&self.containerizer, &id, &record) {
                // A launch cut short before its task started is forgotten
                // (its sandbox stays, for the launch sent again).
                Ok(Recovered::Unstarted) => records::forget(
                    &self.containerizer,
                    &id,
                    &record,
                    "its launch was cut short before its task started",
                ),
                Ok(recovered) => {
                    tracing::info!(
                        container = id,
                        ?recovered,
                        "recovered a standalone container"
                    );
                    self.reap_in_background(&id);
                }
                Err(e) => tracing::warn!(container = id, "standalone container not recovered: {e}"),
            }
        }
    }

    /// Waits for the container in the background, so that it is reaped
    /// (and its cgroup and mounts released) as soon as it ends; then its
    /// record says how it ended.
    fn reap_in_background(&self, id: &str) {
        let (containerizer, id) = (self.containerizer.clone(), id.to_string());
        let record = self.work.standalone_record(&id);
        tokio::spawn(async move {
            match containerizer.wait(&id).await {
                Ok(t) => records::record_end(&containerizer, &id, &record, &t),
                Err(e) => tracing::warn!(container = id, "waiting for a standalone container: {e}"),
            }
        });
    }

    async fn launch(&self, c: call::LaunchContainer) -> Result<Answer, OperatorError> {
        let id = c.container_id.value.clone();
        if self.containerizer.knows(&id) {
            return Ok(Answer::Accepted);
        }
        if let Some(info) = &c.container {
            if info.r#type() != container_info::Type::Mesos {
                return Err(OperatorError::BadRequest(
                    "The provided ContainerInfo is not supported".into(),
                ));
            }
        }
        let request = LaunchRequest {
            container_id: id.clone(),
            agent_id: String::new(),
            framework: Default::default(),
            executor: ExecutorInfo {
                executor_id: ExecutorId { value: id.clone() },
                name: Some(format!("standalone container {id}")),
                command: c.command.as_ref().map(devolve),
                container: c.container.as_ref().map(devolve),
                resources: limited(
                    c.resources.iter().map(devolve).collect(),
                    &c.limits
                        .iter()
                        .map(|(k, v)| (k.clone(), v.value))
                        .collect::<Vec<_>>(),
                ),
                ..Default::default()
            },
            kind: ExecutorKind::Custom,
            tasks: Vec::new(),
            env: self.env.clone(),
            standalone: true,
            nested: None,
        };
        let sandbox = self.work.container_sandbox(&id);
        let existed = sandbox.exists();
        let record = self.work.standalone_record(&id);
        let resources = request.executor.resources.clone();
        let launched = match launch_recorded(&self.containerizer, &record, request).await? {
            Ok(l) => l,
            Err(ContainerizerError::Exists(_)) => return Ok(Answer::Accepted),
            Err(e) => {
                // Mesos answers a failed launch 400 with the failure; no
                // REMOVE would ever find this sandbox, so it goes now.
                if !existed {
                    if let Err(r) = std::fs::remove_dir_all(&sandbox) {
                        tracing::warn!(path = %sandbox.display(), error = %r, "sandbox of a failed launch not removed");
                    }
                }
                return Err(OperatorError::BadRequest(e.to_string()));
            }
        };
        self.resources
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), resources);
        tracing::info!(container = id, pid = launched.pid, sandbox = %launched.sandbox.display(), "launched a standalone container");
        self.reap_in_background(&id);
        Ok(Answer::Ok)
    }

    async fn wait(&self, id: &str) -> Result<Answer, OperatorError> {
        match self.containerizer.wait(id).await {
            Ok(t) => Ok(Answer::Response(Box::new(wait_response(&t)))),
            Err(ContainerizerError::Unknown(_)) => Err(OperatorError::Missing(format!(
                "Container {id} cannot be found"
            ))),
            Err(e) => Err(internal("waiting for the container failed", e)),
        }
    }

    fn kill(&self, id: &str, signal: i32) -> Result<Answer, OperatorError> {
        match self.containerizer.kill(id, signal) {
            Ok(true) => Ok(Answer::Ok),
            Ok(false) => Err(OperatorError::Missing(format!(
                "Container '{id}' cannot be found (or is already killed)"
            ))),
            Err(e) => Err(internal("killing the container failed", e)),
        }
    }

    /// Forgets an ended standalone container: its termination, record and
    /// sandbox. Mesos' texts for a container it does not know or that still
    /// runs (both 500).
    async fn remove(&self, id: String) -> Result<Answer, OperatorError> {
        let record = self.work.standalone_record(&id);
        if !record.exists() {
            return Err(OperatorError::Internal(format!(
                "Root container {id} not found"
            )));
        }
        if self.containerizer.ended(&id) == Some(false) {
            return Err(OperatorError::Internal(format!(
                "Container {id} has not terminated yet"
            )));
        }
        let containerizer = self.containerizer.clone();
        let sandbox = self.work.container_sandbox(&id);
        self.resources
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        tokio::task::spawn_blocking(move || {
            containerizer
                .destroy(&id)
                .map_err(|e| internal("removing the container failed", e))?;
            match std::fs::remove_dir_all(&sandbox) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(internal(
                        &format!("removing sandbox {}", sandbox.display()),
                        e,
                    ))
                }
            }
            // Its end may have been written meanwhile, or the record taken
            // away by that writer once the container was forgotten.
            records::remove(&record)
                .map_err(|e| internal(&format!("removing {}", record.display()), e))
        })
        .await
        .map_err(|e| internal("removing the container failed", e))??;
        Ok(Answer::Ok)
    }
}

/// The resources the limits are computed from: `limits` (Mesos'
/// `LaunchContainer.limits`) replace the `cpus` or `mem` requested; an
/// infinite limit leaves the resource unlimited.
pub(super) fn limited(mut resources: Vec<Resource>, limits: &[(String, f64)]) -> Vec<Resource> {
    for (name, value) in limits {
        if name != "cpus" && name != "mem" {
            continue;
        }
        resources.retain(|r| &r.name != name);
        if value.is_finite() {
            resources.push(Resource {
                name: name.clone(),
                r#type: crate::proto::mesos::value::Type::Scalar as i32,
                scalar: Some(crate::proto::mesos::value::Scalar { value: *value }),
                ..Default::default()
            });
        }
    }
    resources
}

/// Mesos' WAIT_CONTAINER response from a termination: the wait(2) status,
/// and with a limitation the state TASK_FAILED, its reason and message.
pub(super) fn wait_response(t: &Termination) -> Response {
    let exit_status = t.status.map(ExitStatus::wait_word);
    let limitation = t.limitation.as_ref();
    Response {
        r#type: Some(response::Type::WaitContainer as i32),
        wait_container: Some(response::WaitContainer {
            exit_status,
            state: limitation.map(|_| TaskState::TaskFailed as i32),
            reason: limitation.map(|l| l.reason as i32),
            limitation: None,
            message: limitation.map(|l| l.message.clone()),
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::containerizer::mesos::Limitation;
    use crate::proto::mesos::task_status::Reason;

    #[test]
    fn wait_responses_carry_the_wait_status_as_mesos() {
        let exited = Termination {
            status: Some(ExitStatus::Exited(3)),
            limitation: None,
            message: "exited with status 3".into(),
        };
        let w = wait_response(&exited).wait_container.unwrap();
        assert_eq!(w.exit_status, Some(768));
        assert_eq!((w.state, w.reason, w.message), (None, None, None));
        let killed = Termination {
            status: Some(ExitStatus::Signaled(15)),
            limitation: None,
            message: String::new(),
        };
        assert_eq!(
            wait_response(&killed).wait_container.unwrap().exit_status,
            Some(15)
        );
        let oom = Termination {
            status: Some(ExitStatus::Signaled(9)),
            limitation: Some(Limitation {
                reason: Reason::ContainerLimitationMemory,
                message: "Memory limit exceeded".into(),
            }),
            message: String::new(),
        };
        let w = wait_response(&oom).wait_container.unwrap();
        assert_eq!(w.state, Some(TaskState::TaskFailed as i32));
        assert_eq!(w.message.as_deref(), Some("Memory limit exceeded"));
        let unknown = Termination {
            status: None,
            limitation: None,
            message: String::new(),
        };
        assert_eq!(
            wait_response(&unknown).wait_container.unwrap().exit_status,
            None
        );
    }

    #[test]
    fn limits_replace_the_requested_cpus_and_mem() {
        let scalar = |name: &str, v: f64| Resource {
            name: name.into(),
            r#type: crate::proto::mesos::value::Type::Scalar as i32,
            scalar: Some(crate::proto::mesos::value::Scalar { value: v }),
            ..Default::default()
        };
        let r = limited(
            vec![scalar("cpus", 0.5), scalar("mem", 64.0)],
            &[("mem".into(), 128.0), ("cpus".into(), f64::INFINITY)],
        );
        assert_eq!(r.len(), 1);
        assert_eq!(
            (r[0].name.as_str(), r[0].scalar.unwrap().value),
            ("mem", 128.0)
        );
    }
}
