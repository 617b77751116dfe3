//! What the operator views need beyond the live state: counters since the
//! start, executor pids, and the completed frameworks, executors and tasks
//! Mesos keeps showing (bounded as Mesos bounds them).

use super::snapshot::{ExecutorView, FrameworkView};
use crate::proto::mesos::{FrameworkInfo, Task, TaskState};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

/// Mesos' `MAX_COMPLETED_FRAMEWORKS`.
pub const MAX_COMPLETED_FRAMEWORKS: usize = 50;
/// Mesos' `--max_completed_executors_per_framework` default.
pub const MAX_COMPLETED_EXECUTORS: usize = 150;
/// Mesos' `MAX_COMPLETED_TASKS_PER_EXECUTOR`.
pub const MAX_COMPLETED_TASKS: usize = 200;

/// Counters since the agent started (Mesos' `slave/*` counters).
#[derive(Debug, Clone, Default)]
pub struct Counters {
    pub valid_status_updates: u64,
    pub invalid_status_updates: u64,
    pub valid_framework_messages: u64,
    pub invalid_framework_messages: u64,
    pub container_launch_errors: u64,
    pub executors_terminated: u64,
    /// Tasks that reached each terminal state.
    pub tasks_ended: BTreeMap<i32, u64>,
    /// How long launches took (`/metrics` histograms).
    pub timings: super::prometheus::Timings,
}

/// The operator's ledger, owned by the event loop.
pub struct Books {
    /// Seconds since the epoch at the start.
    pub start_time: f64,
    pub started: Instant,
    pub recovery_time_secs: f64,
    pub counters: Counters,
    /// Executor pids by container, as launches reported them.
    pub pids: HashMap<String, i32>,
    /// Completed tasks of executors that still run, by (framework, executor).
    pub completed_tasks: BTreeMap<(String, String), VecDeque<Arc<Task>>>,
    /// Completed executors of frameworks that are still here.
    pub completed_executors: BTreeMap<String, VecDeque<ExecutorView>>,
    /// Frameworks gone from the agent, newest last.
    pub completed_frameworks: VecDeque<FrameworkView>,
}

impl Default for Books {
    fn default() -> Self {
        Books::new()
    }
}

impl Books {
    pub fn new() -> Books {
        Books {
            start_time: super::super::updates::now_secs(),
            started: Instant::now(),
            recovery_time_secs: 0.0,
            counters: Counters::default(),
            pids: HashMap::new(),
            completed_tasks: BTreeMap::new(),
            completed_executors: BTreeMap::new(),
            completed_frameworks: VecDeque::new(),
        }
    }

    pub fn status_update(&mut self, valid: bool) {
        if valid {
            self.counters.valid_status_updates += 1;
        } else {
            self.counters.invalid_status_updates += 1;
        }
    }

    pub fn framework_message(&mut self, valid: bool) {
        if valid {
            self.counters.valid_framework_messages += 1;
        } else {
            self.counters.invalid_framework_messages += 1;
        }
    }

    pub fn launch(&mut self, container_id: &str, result: &Result<i32, String>) {
        match result {
            Ok(pid) => {
                self.pids.insert(container_id.to_string(), *pid);
            }
            Err(_) => self.counters.container_launch_errors += 1,
        }
    }

    pub fn task_ended(&mut self, state: TaskState) {
        *self.counters.tasks_ended.entry(state as i32).or_default() += 1;
    }

    /// A terminal task whose update the master acknowledged.
    pub fn task_completed(&mut self, fw_id: &str, ex_id: &str, task: Arc<Task>) {
        let tasks = self
            .completed_tasks
            .entry((fw_id.to_string(), ex_id.to_string()))
            .or_default();
        push_bounded(tasks, task, MAX_COMPLETED_TASKS);
    }

    /// Completed tasks of a live executor, oldest first.
    pub fn completed_tasks_of(&self, fw_id: &str, ex_id: &str) -> Vec<Arc<Task>> {
        self.completed_tasks
            .get(&(fw_id.to_string(), ex_id.to_string()))
            .map(|t| t.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// An executor the agent forgot; `view` is its last picture (with its
    /// completed tasks).
    pub fn executor_completed(&mut self, fw_id: &str, ex_id: &str, mut view: ExecutorView) {
        self.counters.executors_terminated += 1;
        self.pids.remove(&view.container_id);
        // `view.completed` holds the tasks completed so far; the tasks it
        // still had are over too.
        self.completed_tasks
            .remove(&(fw_id.to_string(), ex_id.to_string()));
        let mut completed: VecDeque<Arc<Task>> = view.completed.drain(..).collect();
        let unacknowledged: Vec<Arc<Task>> = view.terminated.drain(..).collect();
        for t in unacknowledged.into_iter().chain(view.tasks.drain(..)) {
            push_bounded(&mut completed, t, MAX_COMPLETED_TASKS);
        }
        view.queued.clear();
        view.state = crate::agent::state::ExecutorState::Terminated;
        view.completed = completed.into_iter().collect();
        let list = self
            .completed_executors
            .entry(fw_id.to_string())
            .or_default();
        push_bounded(list, view, MAX_COMPLETED_EXECUTORS);
    }

    /// A framework the agent forgot (its last executor is gone).
    pub fn framework_completed(&mut self, fw_id: &str, info: &FrameworkInfo) {
        let executors = self
            .completed_executors
            .remove(fw_id)
            .map(|e| e.into_iter().collect())
            .unwrap_or_default();
        self.completed_tasks.retain(|(f, _), _| f != fw_id);
        let view = FrameworkView {
            id: fw_id.to_string(),
            info: info.clone(),
            executors: Vec::new(),
            completed_executors: executors,
        };
        self.completed_frameworks.retain(|f| f.id != fw_id);
        push_bounded(
            &mut self.completed_frameworks,
            view,
            MAX_COMPLETED_FRAMEWORKS,
        );
    }
}

fn push_bounded<T>(list: &mut VecDeque<T>, item: T, max: usize) {
    list.push_back(item);
    while list.len() > max {
        list.pop_front();
    }
}
