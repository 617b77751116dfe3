//! The layout of butte's directories. Tools and UIs read these paths, so
//! the agent's part follows the Mesos agent's layout (`meta/` for
//! checkpoints, `slaves/` for sandboxes).
//!
//! ```text
//! <work_dir>/                       --work_dir, default /var/lib/butte
//! |-- containers/<id>/              a standalone container (`butte run`, or
//! |                                 the operator API's LAUNCH_CONTAINER)
//! |   |-- stdout                    the task's output, as it was streamed
//! |   `-- stderr
//! |-- meta/
//! |   |-- boot_id                   the boot the checkpoints were made in
//! |   |-- standalone/<id>           a LAUNCH_CONTAINER container's pid
//! |   `-- slaves/
//! |       |-- latest -> <agent>     the agent id to recover
//! |       `-- <agent>/
//! |           |-- slave.info        SlaveInfo
//! |           |-- drain.config      DrainConfig, while the agent drains
//! |           `-- frameworks/<fw>/
//! |               |-- framework.info, framework.pid
//! |               `-- executors/<ex>/
//! |                   |-- executor.info
//! |                   `-- runs/<container>/   (and runs/latest)
//! |                       |-- executor.sentinel       the run has ended
//! |                       |-- pids/forked.pid         the executor's pid
//! |                       |-- pids/http.marker        an HTTP executor
//! |                       `-- tasks/<task>/
//! |                           |-- task.info           Task
//! |                           `-- task.updates        status update log
//! |-- slaves/<agent>/frameworks/<fw>/executors/<ex>/runs/<container>/
//! |                                 sandboxes (stdout, stderr, fetched
//! |                                 files), and runs/latest
//! |-- gc/                         directories on their way out (renamed
//! |                                 here, then removed)
//! |-- provisioner/<container>/      overlay upper/work dirs (image issue)
//! |-- store/                        images: blobs, layers, refs, leases
//! |-- seccomp/<sha256>.bpf          compiled seccomp programs, by profile,
//! |                                 capabilities, kernel and libseccomp
//! `-- fetch-cache/                  the fetcher cache
//! <runtime_dir>/                    --runtime_dir, default /run/butte
//! `-- containers/<container>/       per-container mount points (rootfs)
//! ```

use std::path::{Path, PathBuf};

/// The default work directory.
pub const DEFAULT_WORK_DIR: &str = "/var/lib/butte";

/// The default runtime directory (tmpfs: gone after a reboot).
pub const DEFAULT_RUNTIME_DIR: &str = "/run/butte";

/// Where a sandbox's root is mounted inside its container, as in Mesos.
pub const SANDBOX_MOUNT: &str = "/mnt/mesos/sandbox";

/// The name of the symlink to the newest entry of a directory.
pub const LATEST: &str = "latest";

/// Paths under one work directory.
#[derive(Debug, Clone)]
pub struct WorkDir {
    root: PathBuf,
}

impl WorkDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        WorkDir { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of all standalone containers.
    pub fn seccomp_cache(&self) -> PathBuf {
        self.root.join("seccomp")
    }

    pub fn containers(&self) -> PathBuf {
        self.root.join("containers")
    }

    /// The sandbox of standalone container `id`.
    pub fn container_sandbox(&self, id: &str) -> PathBuf {
        self.containers().join(id)
    }

    /// `meta/`: the checkpoints.
    pub fn meta(&self) -> PathBuf {
        self.root.join("meta")
    }

    /// `meta/standalone`: the agent's records of the standalone containers
    /// the operator API launched, one file each, holding its pid.
    pub fn meta_standalone(&self) -> PathBuf {
        self.meta().join("standalone")
    }

    /// `meta/standalone/<id>`.
    pub fn standalone_record(&self, id: &str) -> PathBuf {
        self.meta_standalone().join(id)
    }

    /// `meta/nested`: the agent's records of the nested containers the
    /// operator API launched, one file each (named by the container's key,
    /// `<parent>.<id>`), holding its pid.
    pub fn meta_nested(&self) -> PathBuf {
        self.meta().join("nested")
    }

    /// `meta/nested/<key>`.
    pub fn nested_record(&self, key: &str) -> PathBuf {
        self.meta_nested().join(key)
    }

    /// `meta/boot_id`.
    pub fn boot_id(&self) -> PathBuf {
        self.meta().join("boot_id")
    }

    /// `meta/slaves`, holding `latest`.
    pub fn meta_agents(&self) -> PathBuf {
        self.meta().join("slaves")
    }

    /// `meta/slaves/<agent>`.
    pub fn meta_agent(&self, agent: &str) -> PathBuf {
        self.meta_agents().join(agent)
    }

    /// `meta/slaves/<agent>/slave.info`.
    pub fn agent_info(&self, agent: &str) -> PathBuf {
        self.meta_agent(agent).join("slave.info")
    }

    /// `meta/slaves/<agent>/drain.config`: the drain under way, as the
    /// master asked it (Mesos' name and framing).
    pub fn drain_config(&self, agent: &str) -> PathBuf {
        self.meta_agent(agent).join("drain.config")
    }

    /// `meta/slaves/<agent>/frameworks/<fw>`.
    pub fn meta_framework(&self, agent: &str, fw: &str) -> PathBuf {
        self.meta_agent(agent).join("frameworks").join(fw)
    }

    /// `.../frameworks/<fw>/framework.info`.
    pub fn framework_info(&self, agent: &str, fw: &str) -> PathBuf {
        self.meta_framework(agent, fw).join("framework.info")
    }

    /// `.../frameworks/<fw>/framework.pid`.
    pub fn framework_pid(&self, agent: &str, fw: &str) -> PathBuf {
        self.meta_framework(agent, fw).join("framework.pid")
    }

    /// `.../frameworks/<fw>/executors/<ex>`.
    pub fn meta_executor(&self, agent: &str, fw: &str, ex: &str) -> PathBuf {
        self.meta_framework(agent, fw).join("executors").join(ex)
    }

    /// `.../executors/<ex>/executor.info`.
    pub fn executor_info(&self, agent: &str, fw: &str, ex: &str) -> PathBuf {
        self.meta_executor(agent, fw, ex).join("executor.info")
    }

    /// `.../executors/<ex>/runs/<container>`.
    pub fn meta_run(&self, agent: &str, fw: &str, ex: &str, container: &str) -> PathBuf {
        self.meta_executor(agent, fw, ex)
            .join("runs")
            .join(container)
    }

    /// `.../runs/<container>/executor.sentinel`: written when the run ends.
    pub fn executor_sentinel(&self, agent: &str, fw: &str, ex: &str, container: &str) -> PathBuf {
        self.meta_run(agent, fw, ex, container)
            .join("executor.sentinel")
    }

    /// `.../runs/<container>/pids/forked.pid`.
    pub fn forked_pid(&self, agent: &str, fw: &str, ex: &str, container: &str) -> PathBuf {
        self.meta_run(agent, fw, ex, container)
            .join("pids")
            .join("forked.pid")
    }

    /// `.../runs/<container>/pids/http.marker`.
    pub fn http_marker(&self, agent: &str, fw: &str, ex: &str, container: &str) -> PathBuf {
        self.meta_run(agent, fw, ex, container)
            .join("pids")
            .join("http.marker")
    }

    /// `.../runs/<container>/tasks/<task>`.
    pub fn meta_task(
        &self,
        agent: &str,
        fw: &str,
        ex: &str,
        container: &str,
        task: &str,
    ) -> PathBuf {
        self.meta_run(agent, fw, ex, container)
            .join("tasks")
            .join(task)
    }

    /// `.../tasks/<task>/task.info`.
    pub fn task_info(
        &self,
        agent: &str,
        fw: &str,
        ex: &str,
        container: &str,
        task: &str,
    ) -> PathBuf {
        self.meta_task(agent, fw, ex, container, task)
            .join("task.info")
    }

    /// `.../tasks/<task>/task.updates`: the task's status update log.
    pub fn task_updates(
        &self,
        agent: &str,
        fw: &str,
        ex: &str,
        container: &str,
        task: &str,
    ) -> PathBuf {
        self.meta_task(agent, fw, ex, container, task)
            .join("task.updates")
    }

    /// `slaves/<agent>/frameworks/<fw>/executors/<ex>`: the executor's
    /// sandboxes, one per run, and `runs/latest`.
    pub fn executor_sandboxes(&self, agent: &str, fw: &str, ex: &str) -> PathBuf {
        self.executor_dir(agent, fw, ex).join("runs")
    }

    /// `slaves/`: the sandboxes of every agent id this work dir had.
    pub fn agents_sandboxes(&self) -> PathBuf {
        self.root.join("slaves")
    }

    /// `slaves/<agent>/frameworks/<fw>`: a framework's sandboxes.
    pub fn framework_sandboxes(&self, agent: &str, fw: &str) -> PathBuf {
        self.agents_sandboxes()
            .join(agent)
            .join("frameworks")
            .join(fw)
    }

    /// `slaves/<agent>/frameworks/<fw>/executors/<ex>`: an executor's.
    pub fn executor_dir(&self, agent: &str, fw: &str, ex: &str) -> PathBuf {
        self.framework_sandboxes(agent, fw)
            .join("executors")
            .join(ex)
    }

    /// The sandbox of one executor run.
    pub fn executor_sandbox(&self, agent: &str, fw: &str, ex: &str, container: &str) -> PathBuf {
        self.executor_sandboxes(agent, fw, ex).join(container)
    }
}

/// Paths under the runtime directory.
#[derive(Debug, Clone)]
pub struct RuntimeDir {
    root: PathBuf,
}

impl RuntimeDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        RuntimeDir { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Mount points and other volatile files of one container.
    pub fn container(&self, id: &str) -> PathBuf {
        self.root.join("containers").join(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let w = WorkDir::new("/w");
        assert_eq!(w.container_sandbox("abc"), Path::new("/w/containers/abc"));
        assert_eq!(
            w.task_updates("S1", "F1", "E1", "C1", "T1"),
            Path::new("/w/meta/slaves/S1/frameworks/F1/executors/E1/runs/C1/tasks/T1/task.updates")
        );
        assert_eq!(
            w.executor_sandbox("S1", "F1", "E1", "C1"),
            Path::new("/w/slaves/S1/frameworks/F1/executors/E1/runs/C1")
        );
        assert_eq!(
            w.forked_pid("S1", "F1", "E1", "C1"),
            Path::new("/w/meta/slaves/S1/frameworks/F1/executors/E1/runs/C1/pids/forked.pid")
        );
    }
}
