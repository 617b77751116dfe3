//! A copy of what the operator views show, taken on the event loop in one
//! short step (clones, no I/O) and rendered elsewhere.

use super::books::Counters;
use crate::agent::core::{Agent, Link};
use crate::agent::state::{Executor, ExecutorState, Framework};
use crate::proto::mesos::{
    Attribute, ExecutorInfo, FrameworkInfo, Resource, SlaveInfo, Task, TaskInfo,
};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

/// One executor as the views show it.
#[derive(Debug, Clone)]
pub struct ExecutorView {
    pub id: String,
    pub framework_id: String,
    pub info: Arc<ExecutorInfo>,
    pub container_id: String,
    /// The sandbox on the host.
    pub directory: PathBuf,
    pub state: ExecutorState,
    /// Tasks given to the executor and not terminal.
    pub tasks: Vec<Arc<Task>>,
    pub queued: Vec<TaskInfo>,
    /// Terminal tasks whose last update was acknowledged.
    pub completed: Vec<Arc<Task>>,
    /// Terminal tasks whose last update was not acknowledged yet.
    pub terminated: Vec<Arc<Task>>,
}

/// One framework as the views show it.
#[derive(Debug, Clone)]
pub struct FrameworkView {
    pub id: String,
    pub info: FrameworkInfo,
    pub executors: Vec<ExecutorView>,
    pub completed_executors: Vec<ExecutorView>,
}

/// Counts the metrics need, taken without copying any task.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Live tasks by state (queued ones as TASK_STAGING).
    pub tasks: BTreeMap<i32, usize>,
    pub executors: BTreeMap<&'static str, usize>,
    pub frameworks_active: usize,
    /// Scalars held by live executors and their tasks, by name.
    pub used: BTreeMap<String, f64>,
}

impl Tally {
    pub fn add_executor<'a>(
        &mut self,
        state: ExecutorState,
        own: &[Resource],
        tasks: impl Iterator<Item = &'a Task>,
        queued: impl Iterator<Item = &'a TaskInfo>,
    ) {
        let key = match state {
            ExecutorState::Launching | ExecutorState::Registering => "registering",
            ExecutorState::Running => "running",
            ExecutorState::Terminating => "terminating",
            ExecutorState::Terminated => "terminated",
        };
        *self.executors.entry(key).or_default() += 1;
        let mut add = |rs: &[Resource]| {
            for r in rs {
                if let Some(v) = &r.scalar {
                    *self.used.entry(r.name.clone()).or_default() += v.value;
                }
            }
        };
        add(own);
        for t in tasks {
            add(&t.resources);
            *self.tasks.entry(t.state).or_default() += 1;
        }
        for t in queued {
            add(&t.resources);
            *self
                .tasks
                .entry(crate::proto::mesos::TaskState::TaskStaging as i32)
                .or_default() += 1;
        }
    }

    /// The tally of views (as the live state would give it).
    #[cfg(test)]
    pub fn of(frameworks: &[FrameworkView]) -> Tally {
        let mut t = Tally::default();
        for fw in frameworks {
            if !fw.executors.is_empty() {
                t.frameworks_active += 1;
            }
            for ex in &fw.executors {
                t.add_executor(
                    ex.state,
                    &ex.info.resources,
                    ex.tasks.iter().map(|t| &**t),
                    ex.queued.iter(),
                );
            }
        }
        t
    }
}

/// Everything the views render.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub id: String,
    pub pid: String,
    pub hostname: String,
    pub master_hostname: String,
    pub registered: bool,
    pub start_time: f64,
    pub uptime_secs: f64,
    pub recovery_time_secs: f64,
    pub resources: Vec<Resource>,
    pub attributes: Vec<Attribute>,
    /// What the agent registered as (GET_AGENT), with its id once it has one.
    pub info: SlaveInfo,
    pub flags: Arc<BTreeMap<String, String>>,
    pub frameworks: Vec<FrameworkView>,
    pub completed_frameworks: Vec<FrameworkView>,
    pub counters: Counters,
    pub tally: Tally,
    pub pids: HashMap<String, i32>,
    /// The drain under way (`/state`'s `drain_config`).
    pub drain: Option<crate::agent::drain::Drain>,
}

impl ExecutorView {
    pub fn of(agent: &Agent, fw: &Framework, ex: &Executor) -> ExecutorView {
        let agent_id = agent.agent_id();
        let completed = agent.operator.completed_tasks_of(&fw.id, &ex.id);
        ExecutorView {
            id: ex.id.clone(),
            framework_id: fw.id.clone(),
            info: ex.info.clone(),
            container_id: ex.container_id.clone(),
            directory: agent
                .work
                .executor_sandbox(&agent_id, &fw.id, &ex.id, &ex.container_id),
            state: ex.state,
            tasks: ex.launched.values().cloned().collect(),
            queued: ex.queued.iter().flatten().cloned().collect(),
            completed,
            terminated: ex.terminated.values().cloned().collect(),
        }
    }
}

impl Agent {
    /// The views' copy of the state; with `full` false only the figures
    /// (no framework, executor or task is copied), for the metrics.
    pub fn snapshot(&self, full: bool) -> Snapshot {
        let mut tally = Tally::default();
        for fw in self.frameworks.values() {
            if !fw.executors.is_empty() {
                tally.frameworks_active += 1;
            }
            for ex in fw.executors.values() {
                tally.add_executor(
                    ex.state,
                    &ex.info.resources,
                    ex.launched.values().map(|t| &**t),
                    ex.queued.iter().flatten(),
                );
            }
        }
        let frameworks = self
            .frameworks
            .values()
            .filter(|_| full)
            .map(|fw| FrameworkView {
                id: fw.id.clone(),
                info: fw.info.clone(),
                executors: fw
                    .executors
                    .values()
                    .map(|ex| ExecutorView::of(self, fw, ex))
                    .collect(),
                completed_executors: self
                    .operator
                    .completed_executors
                    .get(&fw.id)
                    .map(|e| e.iter().cloned().collect())
                    .unwrap_or_default(),
            })
            .collect();
        Snapshot {
            id: self.agent_id(),
            pid: self.self_pid.to_string(),
            hostname: self.info.hostname.clone(),
            master_hostname: self
                .master
                .as_ref()
                .map(|m| m.addr.ip().to_string())
                .unwrap_or_default(),
            registered: self.link == Link::Running && self.id.is_some(),
            start_time: self.operator.start_time,
            uptime_secs: self.operator.started.elapsed().as_secs_f64(),
            recovery_time_secs: self.operator.recovery_time_secs,
            resources: self.info.resources.clone(),
            attributes: self.info.attributes.clone(),
            info: SlaveInfo {
                id: self
                    .id
                    .clone()
                    .map(|value| crate::proto::mesos::SlaveId { value }),
                ..self.info.clone()
            },
            flags: self.operator_flags.clone(),
            frameworks,
            completed_frameworks: if full {
                self.operator.completed_frameworks.iter().cloned().collect()
            } else {
                Vec::new()
            },
            counters: self.operator.counters.clone(),
            tally,
            pids: self.operator.pids.clone(),
            drain: self.drain.clone(),
        }
    }

    /// Takes the last picture of an executor the agent forgets.
    pub fn retire_executor(&mut self, fw_id: &str, ex_id: &str) {
        let Some(fw) = self.frameworks.get(fw_id) else {
            return;
        };
        let Some(ex) = fw.executors.get(ex_id) else {
            return;
        };
        let view = ExecutorView::of(self, fw, ex);
        self.operator.executor_completed(fw_id, ex_id, view);
    }
}
