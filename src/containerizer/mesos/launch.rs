//! Launching an executor, step by step. Each step's failure undoes what
//! the steps before it made (leases, runtime directory; the runtime leaves
//! no cgroup, mount or process) but keeps the sandbox, where operators
//! look, and names the step.

use super::disk::{self, DiskQuota};
use super::docker::{self, DockerLaunch};
use super::env;
use super::error::ContainerizerError;
use super::images::{self, Images};
use super::lifecycle::Entry;
use super::network;
use super::plan::{self, Inputs, LAUNCH_INFO};
use super::{
    sandbox, ExecutorKind, Inner, LaunchRequest, LaunchTimings, Launched, MesosContainerizer,
};
use crate::fetch::{FetchUser, UriSpec};
use crate::image::PullOptions;
use crate::proto::mesos::command_info::Uri;
use crate::runtime::{Container, Network, Stdio};
use crate::support::atomic_write;
use std::fs::{self, File};
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// The user an executor runs as, resolved on this host.
struct RunAs {
    name: String,
    uid: u32,
    gid: u32,
}

impl MesosContainerizer {
    /// Launches an executor; returns once it has been exec'd. Blocking
    /// (fetching and pulling can take long): call it from a blocking
    /// thread.
    pub fn launch(&self, req: LaunchRequest) -> Result<Launched, ContainerizerError> {
        let started = Instant::now();
        let inner = &self.inner;
        let id = req.container_id.clone();
        check_ids(&req)?;
        {
            let mut table = inner.table();
            if table.containers.contains_key(&id) || !table.launching.insert(id.clone()) {
                return Err(ContainerizerError::Exists(id));
            }
        }
        let mut timings = LaunchTimings::default();
        let result = match docker::check(&req, &inner.config) {
            Ok(None) => inner.launch(&req, None, &mut timings),
            Ok(Some(d)) => inner.launch(&docker::as_mesos(&req, &d), Some(&d), &mut timings),
            Err(e) => Err(e),
        };
        let mut table = inner.table();
        table.launching.remove(&id);
        let (container, sandbox, leases) = result?;
        timings.total = started.elapsed();
        let resources = req.executor.resources.iter();
        let disk = disk::quota(resources.chain(req.tasks.iter().flat_map(|t| &t.resources))).map(
            |quota| DiskQuota {
                quota,
                sandbox: sandbox.clone(),
            },
        );
        let launched = Launched {
            container_id: id.clone(),
            pid: container.pid(),
            sandbox,
            timings,
        };
        let entry = Entry::launched(id.clone(), container, leases).with_disk(disk);
        table.containers.insert(id, Arc::new(entry));
        Ok(launched)
    }
}

impl Inner {
    fn launch(
        &self,
        req: &LaunchRequest,
        docker: Option<&DockerLaunch>,
        timings: &mut LaunchTimings,
    ) -> Result<(Container, std::path::PathBuf, Vec<String>), ContainerizerError> {
        let id = req.container_id.as_str();
        disk::check_free(&self.config.work_dir, id)?;
        let user = self.user(req)?;
        let owner = user.as_ref().map(|u| (u.uid, u.gid));
        let executor_id = req.executor.executor_id.value.as_str();
        let framework_id = framework_id(req);
        let created = match (&req.nested, req.standalone) {
            (Some(n), _) => sandbox::create_nested(&n.sandbox, owner),
            (None, true) => sandbox::create_standalone(&self.work, id, owner),
            (None, false) => sandbox::create(
                &self.work,
                &req.agent_id,
                &framework_id,
                executor_id,
                id,
                owner,
            ),
        };
        let sandbox = created.map_err(|source| ContainerizerError::Sandbox {
            id: id.to_string(),
            path: match (&req.nested, req.standalone) {
                (Some(n), _) => n.sandbox.clone(),
                (None, true) => self.work.container_sandbox(id),
                (None, false) => {
                    self.work
                        .executor_sandbox(&req.agent_id, &framework_id, executor_id, id)
                }
            },
            source,
        })?;
        let step = Instant::now();
        if self.fetch(req, &sandbox, user.as_ref())? {
            timings.fetch = Some(step.elapsed());
        }
        let step = Instant::now();
        let images = {
            let _no_gc = self.image_gc.read().unwrap_or_else(|e| e.into_inner());
            self.provision(req, docker)?
        };
        if images.executor.is_some() || !images.tasks.is_empty() {
            timings.provision = Some(step.elapsed());
        }
        match self.start(req, docker, &sandbox, user.as_ref(), &images) {
            Ok(container) => Ok((container, sandbox, images.leases)),
            Err(e) => {
                images::release(&self.config.work_dir, &images.leases);
                self.remove_run_dir(id);
                Err(e)
            }
        }
    }

    /// Mesos' `--switch_user`: `CommandInfo.user`, else the framework's
    /// user, if not empty; it must exist on this host.
    fn user(&self, req: &LaunchRequest) -> Result<Option<RunAs>, ContainerizerError> {
        if !self.config.switch_user {
            return Ok(None);
        }
        let name = req
            .executor
            .command
            .as_ref()
            .and_then(|c| c.user.clone())
            .filter(|u| !u.is_empty())
            .or_else(|| Some(req.framework.user.clone()).filter(|u| !u.is_empty()));
        let Some(name) = name else {
            return Ok(None);
        };
        match nix::unistd::User::from_name(&name) {
            Ok(Some(u)) => Ok(Some(RunAs {
                name,
                uid: u.uid.as_raw(),
                gid: u.gid.as_raw(),
            })),
            _ => Err(ContainerizerError::NoSuchUser {
                id: req.container_id.clone(),
                user: name,
            }),
        }
    }

    /// Fetches the executor's URIs and, for the built-in executors, its
    /// tasks' (once each), as the executor's user; true when there were
    /// any.
    fn fetch(
        &self,
        req: &LaunchRequest,
        sandbox: &Path,
        user: Option<&RunAs>,
    ) -> Result<bool, ContainerizerError> {
        let uris = uris(req);
        if uris.is_empty() {
            return Ok(false);
        }
        let err = |source| ContainerizerError::Fetch {
            id: req.container_id.clone(),
            source,
        };
        let fetch_user = match user {
            Some(u) => FetchUser::lookup(&u.name).map_err(err)?,
            None => FetchUser::default(),
        };
        self.fetcher
            .fetch(&uris, sandbox, &fetch_user)
            .map(|_| true)
            .map_err(err)
    }

    /// The custom executor's image, or each task's for the built-in
    /// executors.
    fn provision(
        &self,
        req: &LaunchRequest,
        docker: Option<&DockerLaunch>,
    ) -> Result<Images, ContainerizerError> {
        let id = req.container_id.as_str();
        let registry = self.config.docker_registry.as_deref();
        let (work, pull) = (&self.config.work_dir, &self.config.pull);
        // A DOCKER container's `force_pull_image`: pulled even when stored.
        let forced = docker.filter(|d| d.run.force_pull).map(|d| {
            let options = PullOptions {
                force: true,
                ..pull.clone()
            };
            (d.task_id.as_deref(), options)
        });
        let pull_for = |task: Option<&str>| match &forced {
            Some((which, options)) if *which == task => options,
            _ => pull,
        };
        let mut images = Images::default();
        if req.kind == ExecutorKind::Custom {
            let what = format!("executor {}", req.executor.executor_id.value);
            if let Some(r) =
                images::reference(id, &what, req.executor.container.as_ref(), registry)?
            {
                let p = images.prepare(work, pull_for(None), id, &what, &r, id)?;
                images.executor = Some(p);
            }
            return Ok(images);
        }
        if req.kind == ExecutorKind::Default && self.config.nested_task_groups {
            // Each task's image comes with its nested container.
            return Ok(images);
        }
        for task in &req.tasks {
            let task_id = task.task_id.value.as_str();
            let what = format!("task {task_id}");
            // The command executor carries its task's container; the task's
            // own (if any) is what counts.
            let container = task.container.as_ref().or(match req.kind {
                ExecutorKind::Command => req.executor.container.as_ref(),
                _ => None,
            });
            let reference = match images::reference(id, &what, container, registry) {
                Ok(r) => r,
                Err(e) => {
                    images::release(work, &std::mem::take(&mut images.leases));
                    return Err(e);
                }
            };
            if let Some(r) = reference {
                let lease = images::task_lease(id, task_id);
                let p = images.prepare(work, pull_for(Some(task_id)), id, &what, &r, &lease)?;
                images.tasks.push((task_id.to_string(), p));
            }
        }
        Ok(images)
    }

    /// Writes the launch info and starts the executor.
    fn start(
        &self,
        req: &LaunchRequest,
        docker: Option<&DockerLaunch>,
        sandbox: &Path,
        user: Option<&RunAs>,
        images: &Images,
    ) -> Result<Container, ContainerizerError> {
        let id = req.container_id.as_str();
        let run_dir = self.run_dirs.container(id);
        let dir_err = |step, path: &Path| {
            let path = path.to_path_buf();
            move |source| ContainerizerError::RuntimeDir {
                id: id.to_string(),
                step,
                path,
                source,
            }
        };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&run_dir)
            .map_err(dir_err("create", &run_dir))?;
        for (task, _) in &images.tasks {
            let target = plan::task_rootfs(&run_dir, task);
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(&target)
                .map_err(dir_err("create", &target))?;
        }
        // A built-in executor whose tasks have images stays root, as
        // Mesos' command executor does with a rootfs: it mounts and pivots
        // them (`butte enter`) and gives each task its user.
        let process_user = match req.kind {
            ExecutorKind::Custom => user,
            _ if images.tasks.is_empty() => user,
            _ => None,
        };
        // ...and then each task runs as the user the executor would have.
        let task_user = match (process_user, user) {
            (None, Some(u)) => Some(u.name.as_str()),
            _ => None,
        };
        let mut plan = plan::plan(&Inputs {
            req,
            config: &self.config,
            sandbox,
            run_dir: &run_dir,
            user: process_user.map(|u| u.name.as_str()),
            task_user,
            hostname: self.hostname.clone(),
            images,
        })?;
        if let Some(d) = docker {
            docker::apply(self, &mut plan, d, req, images, (sandbox, &run_dir))?;
        }
        if let Some(key) = self
            .config
            .executor_secret
            .as_ref()
            .filter(|_| !req.standalone)
        {
            env::authenticate(
                &mut plan.spec.env,
                key,
                &framework_id(req),
                &req.executor.executor_id.value,
                id,
            );
        }
        // Last before the start: the network (a failure from here on is
        // undone by `remove_run_dir`, which runs the CNI DELs).
        let bridge_data = self.config.work_dir.join("cni").join("networks");
        let builtin_bridge = docker.is_some().then_some((
            self.config.docker.bridge_network.as_str(),
            bridge_data.as_path(),
        ));
        if let Some((net, hostname)) =
            network::setup(&self.config.cni, &run_dir, req, builtin_bridge)?
        {
            plan.spec.network = Network::Join(net.netns);
            plan.spec.hostname = Some(hostname);
            plan.spec.mounts.extend(net.mounts);
        } else if plan.spec.rootfs.is_some() && docker.is_none() && req.nested.is_none() {
            // In an image on the host's network: the host's files.
            plan.spec.mounts.extend(crate::runtime::network_files());
        }
        if let Some(d) = docker {
            docker::network_files(&mut plan, d, id, &run_dir)?;
        }
        if let Some(parent) = &req.nested {
            self.nest(&mut plan.spec, req, parent)?;
        }
        // Whoever waits for a nested or standalone container asks the
        // agent, which must know how it ended across its own restarts: its
        // init records that. (An executor's tasks are its own to report.)
        if req.nested.is_some() || req.standalone {
            plan.spec.status_file = Some(run_dir.join(plan::STATUS));
        }
        if let Some(infos) = &plan.launch_infos {
            let path = run_dir.join(LAUNCH_INFO);
            let json = serde_json::to_vec_pretty(infos).expect("launch infos serialize");
            atomic_write(&path, &json).map_err(dir_err("write launch info", &path))?;
        }
        if req.kind == ExecutorKind::Custom
            && self.config.container_logger != super::ContainerLogger::Sandbox
        {
            tracing::info!(
                container = id,
                "a custom executor's stdout and stderr are plain files: only the built-in executors rotate them"
            );
        }
        let owner = user.map(|u| (u.uid, u.gid));
        let output = |name: &str| {
            sandbox::output(sandbox, name, owner).map_err(|source| ContainerizerError::Sandbox {
                id: id.to_string(),
                path: sandbox.join(name),
                source,
            })
        };
        let stdio = Stdio {
            stdin: File::open("/dev/null")
                .map_err(dir_err("open", Path::new("/dev/null")))?
                .into(),
            stdout: output("stdout")?.into(),
            stderr: output("stderr")?.into(),
        };
        self.runtime
            .launch(&plan.spec, stdio)
            .map_err(|source| ContainerizerError::Runtime {
                id: id.to_string(),
                step: "start the executor",
                source,
            })
    }

    /// A nested container: its cgroup inside its parent's, in its parent's
    /// network and UTS namespaces (its hostname); own mount, pid and ipc
    /// namespaces. It sees the network files (`/etc/hosts`, `hostname`,
    /// `resolv.conf`) of its top container's CNI network, else in an image
    /// the host's, bound read-only, as a task in an image under the
    /// built-in executors sees them (Mesos binds its parent's).
    fn nest(
        &self,
        spec: &mut crate::runtime::SandboxSpec,
        req: &LaunchRequest,
        parent: &super::NestedParent,
    ) -> Result<(), ContainerizerError> {
        let id = req.container_id.as_str();
        let networks = req
            .executor
            .container
            .as_ref()
            .is_some_and(|c| !c.network_infos.is_empty());
        if networks {
            return Err(ContainerizerError::Invalid {
                id: id.to_string(),
                what: "container.network_infos".into(),
                reason: "a nested container shares its parent's network".into(),
            });
        }
        let pid = self
            .entry(&parent.key)
            .and_then(|e| e.pid())
            .ok_or_else(|| ContainerizerError::Invalid {
                id: id.to_string(),
                what: "parent".into(),
                reason: format!("container {} is not running", parent.key),
            })?;
        spec.id = super::runtime_id(id);
        spec.network = Network::Join(format!("/proc/{pid}/ns/net").into());
        spec.join_uts = Some(format!("/proc/{pid}/ns/uts").into());
        // Only a top container has networks of its own.
        let top = parent.key.split('.').next().unwrap_or(&parent.key);
        let mut etc =
            crate::containerizer::network::etc_mounts(&self.run_dirs.container(top), true);
        if etc.is_empty() && spec.rootfs.is_some() {
            etc = crate::runtime::network_files();
        }
        spec.mounts.extend(etc);
        Ok(())
    }

    /// Detaches the container from its networks and removes
    /// `<runtime_dir>/containers/<id>` (launch info, mount points, netns).
    pub(super) fn remove_run_dir(&self, id: &str) {
        let dir = self.run_dirs.container(id);
        crate::containerizer::network::teardown(&self.config.cni, &dir);
        match fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %dir.display(), error = %e, "runtime directory not removed")
            }
        }
    }
}

/// The framework's id, from the framework or the executor.
fn framework_id(req: &LaunchRequest) -> String {
    req.framework
        .id
        .as_ref()
        .or(req.executor.framework_id.as_ref())
        .map(|f| f.value.clone())
        .unwrap_or_default()
}

/// The URIs to fetch: the executor's, then (for the built-in executors)
/// each task's, each distinct URI once (the command executor's info
/// already carries its task's).
fn uris(req: &LaunchRequest) -> Vec<UriSpec> {
    let executor = req.executor.command.iter().flat_map(|c| &c.uris);
    let tasks = req
        .tasks
        .iter()
        .filter(|_| req.kind != ExecutorKind::Custom)
        .flat_map(|t| t.command.iter().flat_map(|c| &c.uris));
    let mut seen: Vec<&Uri> = Vec::new();
    for u in executor.chain(tasks) {
        if !seen.contains(&u) {
            seen.push(u);
        }
    }
    seen.into_iter()
        .map(|u| UriSpec {
            value: u.value.clone(),
            executable: u.executable(),
            extract: u.extract(),
            cache: u.cache(),
            output_file: u.output_file.clone(),
        })
        .collect()
}

/// Ids become path components (sandbox, runtime dir, leases): refuse the
/// ones that would not stay one component.
fn check_ids(req: &LaunchRequest) -> Result<(), ContainerizerError> {
    let bad = |what: &str, value: &str| ContainerizerError::Invalid {
        id: req.container_id.clone(),
        what: what.to_string(),
        reason: format!("{value:?} is not usable as a path component"),
    };
    let fw = framework_id(req);
    let mut ids = vec![("container id", req.container_id.as_str())];
    // A standalone container has no agent, framework or executor path.
    if !req.standalone {
        ids.extend([
            ("agent id", req.agent_id.as_str()),
            ("framework id", fw.as_str()),
            ("executor id", req.executor.executor_id.value.as_str()),
        ]);
    }
    ids.extend(
        req.tasks
            .iter()
            .map(|t| ("task id", t.task_id.value.as_str())),
    );
    for (what, value) in ids {
        if value.is_empty() || value == "." || value == ".." || value.contains(['/', '\0']) {
            return Err(bad(what, value));
        }
    }
    Ok(())
}
