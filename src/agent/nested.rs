//! Nested containers: the v1 operator API's LAUNCH_NESTED_CONTAINER,
//! WAIT_NESTED_CONTAINER, KILL_NESTED_CONTAINER and REMOVE_NESTED_CONTAINER
//! (and LAUNCH/WAIT/KILL/REMOVE_CONTAINER of a container with a parent), as
//! Mesos' agent serves them to its default executor and to `task exec`.
//!
//! ```text
//!  LAUNCH --> running --(exit, KILL, or its parent's end)--> ended --REMOVE--> forgotten
//!   |  (200; 202 if the id is known)                          |  (runtime state; sandbox kept)
//!   \-- error: 400, nothing left but the sandbox        WAIT: the termination
//! ```
//!
//! A nested container runs its `CommandInfo` (in its own image, when its
//! `ContainerInfo` has one) in the sandbox `<parent's sandbox>/containers/<id>`,
//! in its parent's network namespace, with a cgroup of its own inside its
//! parent's: the parent's limits cover it; its own limits come from its
//! `resources` (and `limits`) only when its `LinuxInfo.share_cgroups` is
//! false, as in Mesos. It runs as its `CommandInfo.user`, else as its
//! framework's user (with `--switch_user`). The containerizer keys it by
//! its ids from the top joined with `.` ([`key`]). Its first process is
//! an init that records how its task ended (see `runtime::init`), and each
//! one has a record, `meta/nested/<key>`, with its pid, then how it ended
//! (see `records`): an agent that restarts takes it over or knows its end,
//! and destroys it when its parent is gone.

use super::records::{self, launch_recorded};
use super::standalone::{internal, limited, wait_response};
use crate::api::operator::{Answer, OperatorError};
use crate::containerizer::mesos::{
    ContainerizerError, ExecutorEnv, ExecutorKind, LaunchRequest, MesosContainerizer, NestedParent,
    Recovered, Termination,
};
use crate::proto::devolve;
use crate::proto::mesos::v1::agent::{call, response, Response};
use crate::proto::mesos::v1::{container_info, ContainerId};
use crate::proto::mesos::{ExecutorId, ExecutorInfo, FrameworkInfo};
use crate::state::paths::WorkDir;
use std::path::PathBuf;
use std::sync::Arc;

/// The containerizer's key of a container: its ids from the top, joined
/// with `.`.
pub fn key(id: &ContainerId) -> String {
    let mut ids = vec![id.value.as_str()];
    let mut up = id.parent.as_deref();
    while let Some(p) = up {
        ids.push(p.value.as_str());
        up = p.parent.as_deref();
    }
    ids.reverse();
    ids.join(".")
}

/// The id of the container at the top of `id`'s chain (an executor's or a
/// standalone container's).
pub fn top(id: &ContainerId) -> &str {
    let mut top = id;
    while let Some(p) = top.parent.as_deref() {
        top = p;
    }
    &top.value
}

/// The ids under the top, in order (the top itself excluded).
fn below_top(id: &ContainerId) -> Vec<&str> {
    let mut ids = Vec::new();
    let mut at = Some(id);
    while let Some(c) = at {
        if c.parent.is_some() {
            ids.push(c.value.as_str());
        }
        at = c.parent.as_deref();
    }
    ids.reverse();
    ids
}

/// What the agent knows of the container at the top of a nested one.
#[derive(Debug, Clone)]
pub struct Top {
    /// Its sandbox on the host.
    pub sandbox: PathBuf,
    /// The framework of the executor (none for a standalone container).
    pub framework: FrameworkInfo,
}

/// Serves the nested container calls; shared by the operator bridge.
pub struct Nested {
    containerizer: Arc<MesosContainerizer>,
    work: WorkDir,
    env: ExecutorEnv,
}

fn missing(key: &str) -> OperatorError {
    OperatorError::Missing(format!("Container {key} cannot be found"))
}

impl Nested {
    pub fn new(containerizer: Arc<MesosContainerizer>, work: WorkDir, env: ExecutorEnv) -> Self {
        Nested {
            containerizer,
            work,
            env,
        }
    }

    /// The nested containers that run, by key.
    pub fn running(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.work.meta_nested()) else {
            return Vec::new();
        };
        let mut keys: Vec<String> = entries
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|k| !k.starts_with('.'))
            .filter(|k| self.containerizer.ended(k) == Some(false))
            .collect();
        keys.sort();
        keys
    }

    /// LAUNCH_NESTED_CONTAINER: `top` is what the agent knows of the
    /// container at the top of its chain (`None`: no such container).
    pub async fn launch(
        &self,
        c: call::LaunchContainer,
        top: Option<Top>,
    ) -> Result<Answer, OperatorError> {
        let key = key(&c.container_id);
        if self.containerizer.knows(&key) {
            return Ok(Answer::Accepted);
        }
        let parent =
            c.container_id.parent.as_deref().ok_or_else(|| {
                OperatorError::BadRequest("a nested container needs a parent".into())
            })?;
        let parent_key = self::key(parent);
        let no_parent = || {
            OperatorError::BadRequest(format!(
                "Failed to launch container '{key}': Parent container {parent_key} does not exist"
            ))
        };
        let top = top.ok_or_else(no_parent)?;
        if self.containerizer.pid(&parent_key).is_none() {
            return Err(no_parent());
        }
        if let Some(info) = &c.container {
            if info.r#type() != container_info::Type::Mesos {
                return Err(OperatorError::BadRequest(
                    "The provided ContainerInfo is not supported".into(),
                ));
            }
        }
        let mut sandbox = top.sandbox.clone();
        for id in below_top(&c.container_id) {
            sandbox = sandbox.join("containers").join(id);
        }
        let share_cgroups = c
            .container
            .as_ref()
            .and_then(|i| i.linux_info.as_ref())
            .and_then(|l| l.share_cgroups)
            .unwrap_or(true);
        // Sharing the parent's cgroups (Mesos' default) means no limits of
        // its own: its usage counts in its parent's, whose limits cover it.
        let resources = match share_cgroups {
            true => Vec::new(),
            false => limited(
                c.resources.iter().map(devolve).collect(),
                &c.limits
                    .iter()
                    .map(|(k, v)| (k.clone(), v.value))
                    .collect::<Vec<_>>(),
            ),
        };
        let request = LaunchRequest {
            container_id: key.clone(),
            agent_id: String::new(),
            framework: top.framework.clone(),
            executor: ExecutorInfo {
                executor_id: ExecutorId {
                    value: c.container_id.value.clone(),
                },
                name: Some(format!("nested container {key}")),
                command: c.command.as_ref().map(devolve),
                container: c.container.as_ref().map(devolve),
                resources,
                ..Default::default()
            },
            kind: ExecutorKind::Custom,
            tasks: Vec::new(),
            env: self.env.clone(),
            standalone: true,
            nested: Some(NestedParent {
                key: parent_key,
                sandbox: sandbox.clone(),
            }),
        };
        let record = self.work.nested_record(&key);
        let launched = match launch_recorded(&self.containerizer, &record, request).await? {
            Ok(l) => l,
            Err(ContainerizerError::Exists(_)) => return Ok(Answer::Accepted),
            // The sandbox stays, as for a failed executor launch: its
            // parent's sandbox is where people look.
            Err(e) => return Err(OperatorError::BadRequest(e.to_string())),
        };
        tracing::info!(container = key, pid = launched.pid, sandbox = %sandbox.display(), "launched a nested container");
        self.reap_in_background(&key);
        Ok(Answer::Ok)
    }

    /// Waits for the container in the background, so that it is reaped as
    /// soon as it ends; then its record says how it ended, which stays
    /// known (across agent restarts too) until REMOVE, or until its
    /// parent's end takes it along: the record goes then.
    fn reap_in_background(&self, key: &str) {
        let (containerizer, key) = (self.containerizer.clone(), key.to_string());
        let record = self.work.nested_record(&key);
        tokio::spawn(async move {
            match containerizer.wait(&key).await {
                Ok(t) => records::record_end(&containerizer, &key, &record, &t),
                Err(ContainerizerError::Unknown(_)) => {}
                Err(e) => {
                    tracing::warn!(container = key, "waiting for a nested container: {e}");
                    return;
                }
            }
            let parent = key.rsplit_once('.').map_or("", |(p, _)| p);
            let _ = containerizer.wait(parent).await;
            if !containerizer.knows(&key) {
                records::log_removal(&record, records::remove(&record));
            }
        });
    }

    /// WAIT_NESTED_CONTAINER (`nested`) or WAIT_CONTAINER.
    pub async fn wait(&self, id: &ContainerId, nested: bool) -> Result<Answer, OperatorError> {
        let key = key(id);
        match self.containerizer.wait(&key).await {
            Ok(t) => Ok(Answer::Response(Box::new(answer(&t, nested)))),
            Err(ContainerizerError::Unknown(_)) => Err(missing(&key)),
            Err(e) => Err(internal("waiting for the container failed", e)),
        }
    }

    /// KILL_NESTED_CONTAINER or KILL_CONTAINER.
    pub fn kill(&self, id: &ContainerId, signal: i32) -> Result<Answer, OperatorError> {
        let key = key(id);
        match self.containerizer.kill(&key, signal) {
            Ok(true) => Ok(Answer::Ok),
            Ok(false) => Err(OperatorError::Missing(format!(
                "Container '{key}' cannot be found (or is already killed)"
            ))),
            Err(e) => Err(internal("killing the container failed", e)),
        }
    }

    /// REMOVE_NESTED_CONTAINER or REMOVE_CONTAINER: forgets an ended
    /// container (and its record); its sandbox stays in its parent's.
    pub async fn remove(&self, id: &ContainerId) -> Result<Answer, OperatorError> {
        let key = key(id);
        match self.containerizer.ended(&key) {
            None => return Ok(Answer::Ok),
            Some(false) => {
                return Err(OperatorError::Internal(format!(
                    "Container {key} has not terminated yet"
                )))
            }
            Some(true) => {}
        }
        let containerizer = self.containerizer.clone();
        let record = self.work.nested_record(&key);
        tokio::task::spawn_blocking(move || {
            containerizer
                .destroy(&key)
                .map_err(|e| internal("removing the container failed", e))?;
            records::remove(&record)
                .map_err(|e| internal(&format!("removing {}", record.display()), e))
        })
        .await
        .map_err(|e| internal("removing the container failed", e))??;
        Ok(Answer::Ok)
    }

    /// After a restart (once the executors are recovered): takes over each
    /// recorded nested container whose parent runs; one whose parent is
    /// gone is destroyed.
    pub fn recover(&self) {
        let dir = self.work.meta_nested();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                tracing::warn!(path = %dir.display(), error = %e, "nested containers not recovered");
                return;
            }
        };
        let mut found: Vec<(String, PathBuf)> = entries
            .flatten()
            .filter_map(|e| Some((e.file_name().to_str()?.to_string(), e.path())))
            .filter(|(k, _)| !k.starts_with('.') && k.contains('.'))
            .collect();
        // Parents before their children.
        found.sort_by_key(|(k, _)| k.matches('.').count());
        for (key, path) in found {
            let parent = key.rsplit_once('.').map_or("", |(p, _)| p);
            let recovered = match records::recover(&self.containerizer, &key, &path) {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(container = key, "nested container not recovered: {e}");
                    continue;
                }
            };
            // A launch cut short before its task started is forgotten, so
            // that the launch, sent again, starts it.
            let forget = match recovered {
                Recovered::Unstarted => Some("its launch was cut short before its task started"),
                _ if self.containerizer.pid(parent).is_none() => Some("its parent is gone"),
                _ => None,
            };
            if let Some(why) = forget {
                records::forget(&self.containerizer, &key, &path, why);
                continue;
            }
            tracing::info!(container = key, ?recovered, "recovered a nested container");
            self.reap_in_background(&key);
        }
    }
}

/// The WAIT answer: Mesos' `wait_nested_container` or `wait_container`
/// (same fields).
// WAIT_NESTED_CONTAINER is deprecated in Mesos, and still served.
#[allow(deprecated)]
fn answer(t: &Termination, nested: bool) -> Response {
    let mut r = wait_response(t);
    if nested {
        let w = r.wait_container.take().unwrap_or_default();
        r.r#type = Some(response::Type::WaitNestedContainer as i32);
        r.wait_nested_container = Some(response::WaitNestedContainer {
            exit_status: w.exit_status,
            state: w.state,
            reason: w.reason,
            limitation: w.limitation,
            message: w.message,
        });
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::ExitStatus;

    fn id(chain: &[&str]) -> ContainerId {
        let mut c: Option<ContainerId> = None;
        for v in chain {
            c = Some(ContainerId {
                value: v.to_string(),
                parent: c.map(Box::new),
            });
        }
        c.unwrap()
    }

    #[test]
    fn keys_join_the_ids_from_the_top() {
        let c = id(&["exec", "task", "check"]);
        assert_eq!(key(&c), "exec.task.check");
        assert_eq!(top(&c), "exec");
        assert_eq!(below_top(&c), vec!["task", "check"]);
        assert_eq!(key(&id(&["alone"])), "alone");
    }

    #[test]
    #[allow(deprecated)]
    fn a_nested_wait_is_answered_in_its_own_field() {
        let t = Termination {
            status: Some(ExitStatus::Exited(2)),
            limitation: None,
            message: String::new(),
        };
        let r = answer(&t, true);
        assert_eq!(r.r#type, Some(response::Type::WaitNestedContainer as i32));
        assert_eq!(r.wait_nested_container.unwrap().exit_status, Some(512));
        assert!(r.wait_container.is_none());
        let r = answer(&t, false);
        assert_eq!(r.wait_container.unwrap().exit_status, Some(512));
    }
}
