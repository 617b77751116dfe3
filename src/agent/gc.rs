//! Garbage collection of sandboxes and checkpoints, as the Mesos agent
//! does it.
//!
//! When an executor is forgotten (its run has ended and every update is
//! acknowledged), the directories of its run, and of the executor, in
//! `slaves/` and in `meta/`, get their modification time set to now and
//! are scheduled for removal `--gc_delay` later; a framework's
//! directories likewise when its last executor goes. Every
//! `--disk_watch_interval` the work dir's disk usage is measured (statvfs,
//! on a blocking thread) and directories older than
//! `gc_delay * max(0, 1 - gc_disk_headroom - usage)` are removed early.
//!
//! The schedule is not written down: at start, what is on disk and not
//! recovered as running (finished runs, executors and frameworks, and the
//! directories of older agent ids) is scheduled by its modification time,
//! as the Mesos agent does. A scheduled directory whose executor or
//! framework is running again when its time comes (a framework relaunched
//! an executor with the same id) is left alone and dropped from the
//! schedule; it is scheduled anew when that one ends.
//!
//! Removal: a rename into `gc/` on the event loop (so a launch never sees
//! half a directory), then the tree is removed on a blocking thread.
//!
//! Also here, the other half of the disk's upkeep after a restart:
//! executors taken over get their disk quota back.

use super::core::Agent;
use super::state::Framework;
use crate::state::gc;
use crate::state::paths::{WorkDir, LATEST};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// What keeps a scheduled directory: while it runs, the directory stays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// Nothing (an older agent id's directories).
    Nobody,
    Framework(String),
    Executor(String, String),
    /// One run (container) of an executor.
    Run(String, String, String),
}

impl Owner {
    fn running(&self, frameworks: &BTreeMap<String, Framework>) -> bool {
        match self {
            Owner::Nobody => false,
            Owner::Framework(fw) => frameworks.contains_key(fw),
            Owner::Executor(fw, ex) => frameworks
                .get(fw)
                .is_some_and(|f| f.executors.contains_key(ex)),
            Owner::Run(fw, ex, c) => frameworks
                .get(fw)
                .and_then(|f| f.executors.get(ex))
                .is_some_and(|e| &e.container_id == c),
        }
    }
}

#[derive(Debug, Clone)]
struct Scheduled {
    /// When its owner ended (the directory's modification time).
    since: SystemTime,
    owner: Owner,
}

/// The schedule and the disk watch. Owned by the event loop.
pub struct GarbageCollector {
    delay: Duration,
    headroom: f64,
    interval: Duration,
    /// The age limit the last disk check allows (`delay` until then).
    max_age: Duration,
    entries: BTreeMap<PathBuf, Scheduled>,
    /// The oldest `since` of the entries: nothing is due before it plus
    /// the age limit, so most ticks look at no entry.
    oldest: Option<SystemTime>,
    next_check: Instant,
    /// The usage the blocking check measured, for the loop to take.
    /// A std `Mutex`: held only to store or take a number.
    measured: Arc<Mutex<Option<f64>>>,
    checking: bool,
    trash: PathBuf,
    work_dir: PathBuf,
}

impl GarbageCollector {
    pub fn new(work: &WorkDir, config: &super::DiskConfig) -> Self {
        GarbageCollector {
            delay: config.gc_delay,
            headroom: config.gc_disk_headroom,
            interval: config.disk_watch_interval,
            max_age: config.gc_delay,
            entries: BTreeMap::new(),
            oldest: None,
            next_check: Instant::now(),
            measured: Arc::default(),
            checking: false,
            trash: gc::trash(work),
            work_dir: work.root().to_path_buf(),
        }
    }

    /// Schedules `path` (if it exists) by its modification time.
    fn schedule(&mut self, path: PathBuf, owner: Owner) {
        let Ok(since) = gc::mtime(&path) else {
            return;
        };
        let removal = self
            .delay
            .saturating_sub(SystemTime::now().duration_since(since).unwrap_or_default());
        tracing::debug!(path = %path.display(), ?removal, "scheduled for removal");
        self.unschedule(&path);
        self.oldest = Some(self.oldest.map_or(since, |o| o.min(since)));
        self.entries.insert(path, Scheduled { since, owner });
    }

    /// Sets `path`'s modification time to now and schedules it.
    fn schedule_now(&mut self, path: PathBuf, owner: Owner) {
        match gc::touch(&path) {
            Ok(()) => self.schedule(path, owner),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %path.display(), "cannot schedule for removal: {e}");
            }
        }
    }

    /// The directories scheduled, for tests and logs.
    #[cfg(test)]
    fn scheduled(&self) -> Vec<&Path> {
        self.entries.keys().map(PathBuf::as_path).collect()
    }

    /// The directories whose time has come at `now`.
    fn due(&self, now: SystemTime) -> Vec<PathBuf> {
        let age = self.delay.min(self.max_age);
        match self.oldest {
            Some(o) if now.duration_since(o).unwrap_or_default() >= age => {}
            _ => return Vec::new(),
        }
        self.entries
            .iter()
            .filter(|(_, s)| now.duration_since(s.since).unwrap_or_default() >= age)
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// Removes `path` from the schedule.
    fn unschedule(&mut self, path: &Path) -> Option<Scheduled> {
        let entry = self.entries.remove(path)?;
        if self.oldest == Some(entry.since) {
            self.oldest = self.entries.values().map(|s| s.since).min();
        }
        Some(entry)
    }

    /// Takes the usage a finished disk check measured, if any, and sets
    /// the age limit from it.
    fn take_measurement(&mut self) {
        let Some(usage) = self
            .measured
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return;
        };
        self.checking = false;
        let age = gc::max_age(self.delay, self.headroom, usage);
        tracing::info!(
            "current disk usage {:.2}%; max allowed age: {}",
            usage * 100.0,
            crate::support::format_duration(age)
        );
        self.max_age = age;
    }

    /// Starts a disk check on a blocking thread when one is due.
    fn start_check(&mut self) {
        let now = Instant::now();
        if self.checking || now < self.next_check {
            return;
        }
        self.checking = true;
        self.next_check = now + self.interval;
        let measured = self.measured.clone();
        let dir = self.work_dir.clone();
        tokio::task::spawn_blocking(move || {
            let usage = gc::disk_usage(&dir).unwrap_or_else(|e| {
                tracing::warn!("disk usage of the work dir: {e}");
                0.0
            });
            *measured.lock().unwrap_or_else(|e| e.into_inner()) = Some(usage);
        });
    }
}

impl Agent {
    /// Schedules the directories of an executor run that has ended and is
    /// forgotten: the run's sandbox and checkpoints, and the executor's.
    pub fn gc_executor(&mut self, fw: &str, ex: &str, container: &str) {
        let Some(agent) = self.id.clone() else {
            return;
        };
        let w = &self.work;
        let run = Owner::Run(fw.into(), ex.into(), container.into());
        let executor = Owner::Executor(fw.into(), ex.into());
        let paths = [
            (w.executor_sandbox(&agent, fw, ex, container), run.clone()),
            (w.meta_run(&agent, fw, ex, container), run),
            (w.executor_dir(&agent, fw, ex), executor.clone()),
            (w.meta_executor(&agent, fw, ex), executor),
        ];
        for (path, owner) in paths {
            self.gc.schedule_now(path, owner);
        }
    }

    /// Schedules a framework's directories once its last executor is gone.
    pub fn gc_framework(&mut self, fw: &str) {
        let Some(agent) = self.id.clone() else {
            return;
        };
        let owner = Owner::Framework(fw.into());
        let paths = [
            self.work.framework_sandboxes(&agent, fw),
            self.work.meta_framework(&agent, fw),
        ];
        for path in paths {
            self.gc.schedule_now(path, owner.clone());
        }
    }

    /// After recovery: schedules, by modification time, what is on disk
    /// and does not run (see the module doc), and empties the trash a
    /// previous run left. The directory walk is on a blocking thread.
    pub async fn gc_recover(&mut self) {
        let work = self.work.clone();
        let agent = self.id.clone();
        let found = tokio::task::spawn_blocking(move || {
            if let Err(e) = gc::empty_trash(&work) {
                tracing::warn!("empty the gc directory: {e}");
            }
            leftovers(&work, agent.as_deref())
        })
        .await;
        let found = match found {
            Ok(Ok(found)) => found,
            Ok(Err(e)) => {
                tracing::warn!("cannot list the directories to garbage-collect: {e}");
                return;
            }
            Err(e) => {
                tracing::warn!("cannot list the directories to garbage-collect: {e}");
                return;
            }
        };
        for (path, owner) in found {
            if !owner.running(&self.frameworks) {
                self.gc.schedule(path, owner);
            }
        }
        if !self.gc.entries.is_empty() {
            tracing::info!(
                directories = self.gc.entries.len(),
                "scheduled the directories of finished executors for removal"
            );
        }
    }

    /// After recovery, with `--enforce_container_disk_quota`: the
    /// executors taken over get the disk quota of their resources and
    /// their tasks' again, as at their launch.
    pub fn recover_disk_quotas(&self) {
        let agent = self.agent_id();
        for fw in self.frameworks.values() {
            for ex in fw.executors.values() {
                let sandbox = self
                    .work
                    .executor_sandbox(&agent, &fw.id, &ex.id, &ex.container_id);
                let tasks = ex.launched.values().flat_map(|t| &t.resources);
                self.containerizer.watch_disk(
                    &ex.container_id,
                    sandbox,
                    ex.info.resources.iter().chain(tasks),
                );
            }
        }
    }

    /// On every tick of the loop: takes a disk measurement, starts the
    /// next when due, and removes what is due.
    pub fn gc_tick(&mut self) {
        self.gc.take_measurement();
        self.gc.start_check();
        let due = self.gc.due(SystemTime::now());
        if due.is_empty() {
            return;
        }
        let mut taken = Vec::new();
        for path in due {
            let Some(entry) = self.gc.unschedule(&path) else {
                continue;
            };
            if entry.owner.running(&self.frameworks) {
                tracing::debug!(path = %path.display(), "in use again: not removed");
                continue;
            }
            match gc::take_away(&self.gc.trash, &path) {
                Ok(Some(t)) => {
                    tracing::info!(path = %path.display(), "removing (garbage collection)");
                    taken.push(t);
                }
                Ok(None) => {}
                Err(e) => tracing::warn!("garbage collection: {e}"),
            }
        }
        if taken.is_empty() {
            return;
        }
        tokio::task::spawn_blocking(move || {
            for t in taken {
                if let Err(e) = gc::remove_tree(&t) {
                    tracing::warn!("garbage collection: {e}");
                }
            }
        });
    }
}

/// Every directory under the work dir that garbage collection may have to
/// remove, with its owner: the sandbox and meta trees of other agent ids
/// whole, and for `agent` each framework, executor and run. Blocking.
fn leftovers(
    work: &WorkDir,
    agent: Option<&str>,
) -> Result<Vec<(PathBuf, Owner)>, crate::state::StateError> {
    let mut out = Vec::new();
    for root in [work.agents_sandboxes(), work.meta_agents()] {
        for dir in gc::subdirs(&root)? {
            if name(&dir) != agent {
                out.push((dir, Owner::Nobody));
            }
        }
    }
    let Some(agent) = agent else {
        return Ok(out);
    };
    let frameworks = [
        work.agents_sandboxes().join(agent).join("frameworks"),
        work.meta_agent(agent).join("frameworks"),
    ];
    for root in frameworks {
        for fw_dir in gc::subdirs(&root)? {
            let Some(fw) = name(&fw_dir).map(str::to_string) else {
                continue;
            };
            for ex_dir in gc::subdirs(&fw_dir.join("executors"))? {
                let Some(ex) = name(&ex_dir).map(str::to_string) else {
                    continue;
                };
                for run in gc::subdirs(&ex_dir.join("runs"))? {
                    let Some(c) = name(&run).filter(|n| *n != LATEST).map(str::to_string) else {
                        continue;
                    };
                    out.push((run, Owner::Run(fw.clone(), ex.clone(), c)));
                }
                out.push((ex_dir, Owner::Executor(fw.clone(), ex)));
            }
            out.push((fw_dir, Owner::Framework(fw)));
        }
    }
    Ok(out)
}

fn name(path: &Path) -> Option<&str> {
    path.file_name().and_then(|n| n.to_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::{self, File};

    fn config(delay: Duration) -> super::super::DiskConfig {
        super::super::DiskConfig {
            gc_delay: delay,
            ..Default::default()
        }
    }

    fn aged(path: &Path, age: Duration) {
        File::open(path)
            .unwrap()
            .set_modified(SystemTime::now() - age)
            .unwrap();
    }

    #[test]
    fn directories_are_due_after_the_delay_or_the_shorter_age_limit() {
        let dir = tempfile::tempdir().unwrap();
        let work = WorkDir::new(dir.path());
        let hour = Duration::from_secs(3600);
        let mut gc = GarbageCollector::new(&work, &config(10 * hour));
        let (old, young) = (dir.path().join("old"), dir.path().join("young"));
        fs::create_dir(&old).unwrap();
        fs::create_dir(&young).unwrap();
        aged(&old, 11 * hour);
        aged(&young, 2 * hour);
        gc.schedule(old.clone(), Owner::Nobody);
        gc.schedule(young.clone(), Owner::Nobody);
        gc.schedule(dir.path().join("missing"), Owner::Nobody);
        assert_eq!(gc.scheduled(), [old.as_path(), young.as_path()]);
        let now = SystemTime::now();
        assert_eq!(gc.due(now), std::slice::from_ref(&old));
        // 85% used with 10% headroom: 5% of 10 hours, 30 minutes.
        *gc.measured.lock().unwrap() = Some(0.85);
        gc.take_measurement();
        assert_eq!(gc.max_age, Duration::from_secs(1800));
        assert_eq!(gc.due(now), [old.clone(), young.clone()]);
        // Freed space gives the full delay back.
        *gc.measured.lock().unwrap() = Some(0.2);
        gc.take_measurement();
        assert_eq!(gc.due(now), std::slice::from_ref(&old));
        // Touched now: a fresh delay.
        gc.schedule_now(young.clone(), Owner::Nobody);
        assert_eq!(
            gc.due(SystemTime::now() + 6 * hour),
            std::slice::from_ref(&old)
        );
        // Scheduled again, a directory counts from its new time only.
        gc.schedule(old.clone(), Owner::Nobody);
        assert_eq!(gc.entries.len(), 2);
        // Once the oldest is gone, the next one sets when anything is due.
        assert!(gc.unschedule(&old).is_some());
        assert_eq!(gc.due(SystemTime::now() + 6 * hour), Vec::<PathBuf>::new());
        assert_eq!(
            gc.due(SystemTime::now() + 11 * hour),
            std::slice::from_ref(&young)
        );
        assert!(gc.unschedule(&young).is_some());
        assert_eq!(gc.oldest, None);
    }

    #[test]
    fn leftovers_name_every_level_and_older_agents_whole() {
        let dir = tempfile::tempdir().unwrap();
        let work = WorkDir::new(dir.path());
        let run = work.executor_sandbox("S1", "F", "E", "C");
        fs::create_dir_all(&run).unwrap();
        std::os::unix::fs::symlink("C", run.parent().unwrap().join(LATEST)).unwrap();
        fs::create_dir_all(work.meta_run("S1", "F", "E", "C")).unwrap();
        fs::create_dir_all(work.executor_sandbox("S0", "F", "E", "B")).unwrap();
        let found = leftovers(&work, Some("S1")).unwrap();
        let rel: Vec<(String, Owner)> = found
            .into_iter()
            .map(|(p, o)| (p.strip_prefix(dir.path()).unwrap().display().to_string(), o))
            .collect();
        let fw = || Owner::Framework("F".into());
        let ex = || Owner::Executor("F".into(), "E".into());
        let c = || Owner::Run("F".into(), "E".into(), "C".into());
        assert_eq!(
            rel,
            [
                ("slaves/S0".to_string(), Owner::Nobody),
                ("slaves/S1/frameworks/F/executors/E/runs/C".into(), c()),
                ("slaves/S1/frameworks/F/executors/E".into(), ex()),
                ("slaves/S1/frameworks/F".into(), fw()),
                ("meta/slaves/S1/frameworks/F/executors/E/runs/C".into(), c()),
                ("meta/slaves/S1/frameworks/F/executors/E".into(), ex()),
                ("meta/slaves/S1/frameworks/F".into(), fw()),
            ]
        );
        // A fresh agent (no id yet): everything is an older agent's.
        assert_eq!(
            leftovers(&work, None).unwrap(),
            [
                (dir.path().join("slaves/S0"), Owner::Nobody),
                (dir.path().join("slaves/S1"), Owner::Nobody),
                (dir.path().join("meta/slaves/S1"), Owner::Nobody),
            ]
        );
    }
}
