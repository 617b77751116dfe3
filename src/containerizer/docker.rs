//! Docker tasks: a `ContainerInfo` of type DOCKER run with no Docker
//! daemon, on the same image store, runtime and executor as a MESOS
//! container, with what `docker run` would have done as Mesos' Docker
//! containerizer builds it (Mesos 1.11, `src/docker/docker.cpp`).
//!
//! [`DockerRun::parse`] checks a `DockerInfo` as Mesos does before its
//! `docker run` (network mode, hostname, port mappings against the task's
//! `ports`, volumes) plus what butte refuses (`privileged` without
//! `--allow_privileged`, parameters it cannot honour: each is named, none
//! is dropped). [`DockerRun::mesos_container`] is the MESOS container that
//! provisions the same image and joins the same network, so provisioning,
//! CNI and status reporting are shared; [`DockerRun::task`] computes the
//! [`DockerTask`] the executor applies as is:
//!
//! - argv: with `shell` the entrypoint is `/bin/sh` and the command
//!   `-c VALUE`; otherwise the entrypoint is `--entrypoint` or the image's
//!   and the command `VALUE` followed by `arguments` (all of them), else
//!   the image's cmd (an `--entrypoint` clears the image's cmd, as Docker
//!   does);
//! - environment: `PATH` (Docker's default), `HOSTNAME`, the image's, the
//!   `CommandInfo`'s, `MESOS_SANDBOX` and `MESOS_CONTAINER_NAME`, then
//!   `--env` parameters, later entries winning; `HOME`, when still unset,
//!   `/root` for root, else the user's home in the image (added where the
//!   user is resolved);
//! - user: `--user`, else the image's; working dir: `--workdir`, else the
//!   image's, else `/`;
//! - the sandbox at `--docker_sandbox_directory`; volumes as binds
//!   (relative host paths are in the sandbox, relative container paths
//!   under the mapped sandbox).

use crate::image::RunConfig;
use crate::proto::launch::{Bind, DockerTask};
use crate::proto::mesos::container_info::docker_info::Network as Mode;
use crate::proto::mesos::container_info::{self, DockerInfo, MesosInfo};
use crate::proto::mesos::environment::variable::Type as VariableType;
use crate::proto::mesos::volume::Mode as VolumeMode;
use crate::proto::mesos::{image, CommandInfo, ContainerInfo, Image, NetworkInfo, Resource};
use std::path::{Component, Path, PathBuf};

/// Docker's `PATH` when the image sets none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The prefix of a Docker container's name (`MESOS_CONTAINER_NAME`).
pub const NAME_PREFIX: &str = "mesos-";

/// `--docker_sandbox_directory`'s default.
pub const DEFAULT_SANDBOX_DIR: &str = "/mnt/mesos/sandbox";

/// Docker's default `/dev/shm` (64 MiB).
const DEFAULT_SHM: u64 = 64 << 20;

/// Why a Docker task cannot run. The messages are what the framework
/// reads in TASK_FAILED.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DockerError {
    #[error("DOCKER containers are not enabled on this agent (--containerizers={0}); it takes them with --containerizers=docker,mesos")]
    NotEnabled(String),
    #[error("a DOCKER container needs a DockerInfo with an image")]
    NoImage,
    #[error("privileged containers are not allowed on this agent (start it with --allow_privileged to allow them)")]
    Privileged,
    #[error("Unable to set hostname with host network mode")]
    HostnameWithHost,
    #[error("Port mappings are only supported for bridge and user-defined networks")]
    PortMappingsMode,
    #[error("Port mappings require port resources")]
    NoPortResources,
    #[error("Port [{0}] not included in resources")]
    PortNotInResources(u32),
    #[error("network mode USER needs exactly one named entry in network_infos")]
    UserNetwork,
    #[error("Docker parameter {key:?} is not supported by butte: {why}")]
    UnsupportedParameter { key: String, why: String },
    #[error("Docker parameter {key}={value:?}: {why}")]
    BadParameter {
        key: String,
        value: String,
        why: String,
    },
    #[error("volume {path:?}: {why}")]
    Volume { path: String, why: String },
    #[error("environment variable {0:?} is a secret: secrets are not supported")]
    Secret(String),
    #[error("Shell specified but no command value provided")]
    NoShellValue,
    #[error("No command specified: the task gives none and the image has no entrypoint or cmd")]
    NoCommand,
}

/// The agent's Docker settings.
#[derive(Debug, Clone)]
pub struct DockerConfig {
    /// `--containerizers` as given (DOCKER containers run when it has
    /// `docker`; the refusal quotes it).
    pub containerizers: String,
    /// `--docker_sandbox_directory`.
    pub sandbox_dir: String,
    /// `--allow_privileged`.
    pub allow_privileged: bool,
    /// The CNI network of BRIDGE mode (`--docker_bridge_network`; when no
    /// config of that name exists, butte's built-in bridge).
    pub bridge_network: String,
    /// `--docker_stop_timeout`: the grace of a task with no kill policy.
    pub stop_timeout: std::time::Duration,
}

impl DockerConfig {
    /// `--containerizers` includes `docker`.
    pub fn enabled(&self) -> bool {
        self.containerizers.split(',').any(|c| c.trim() == "docker")
    }
}

impl Default for DockerConfig {
    fn default() -> Self {
        DockerConfig {
            containerizers: "mesos".into(),
            sandbox_dir: DEFAULT_SANDBOX_DIR.into(),
            allow_privileged: false,
            bridge_network: "bridge".into(),
            stop_timeout: std::time::Duration::ZERO,
        }
    }
}

/// Where a Docker task runs.
#[derive(Debug, Clone, Copy)]
pub struct Placement<'a> {
    /// The task's sandbox on the host.
    pub sandbox: &'a Path,
    pub container_id: &'a str,
    /// The hostname inside the container.
    pub hostname: Option<&'a str>,
    /// The container's memory limit (for `--memory-swap`).
    pub memory: Option<u64>,
}

/// A host or sandbox path bound into the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// Absolute host path, or relative to the sandbox.
    pub host: String,
    /// Absolute container path, or relative to the mapped sandbox.
    pub container: String,
    pub read_only: bool,
}

/// The `parameters` butte honours, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parameters {
    pub env: Vec<(String, String)>,
    pub labels: Vec<(String, String)>,
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub hostname: Option<String>,
    /// `--entrypoint`: `Some(vec![])` clears the image's.
    pub entrypoint: Option<Vec<String>>,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub ulimits: Vec<(String, u64, u64)>,
    pub read_only: bool,
    pub tmpfs: Vec<(String, String)>,
    pub shm_size: Option<u64>,
    pub add_hosts: Vec<(String, String)>,
    pub volumes: Vec<Volume>,
    /// `--memory-swap` in bytes (`-1`: unlimited).
    pub memory_swap: Option<i64>,
    pub init: bool,
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
    pub dns_options: Vec<String>,
    pub privileged: bool,
}

/// A `DockerInfo` checked and parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct DockerRun {
    pub image: String,
    pub force_pull: bool,
    pub mode: Mode,
    /// USER mode's network, or BRIDGE's (named by the config), with the
    /// port mappings in it.
    pub network: Option<NetworkInfo>,
    /// `(host, container, protocol)`.
    pub ports: Vec<(u32, u32, String)>,
    pub hostname: Option<String>,
    pub privileged: bool,
    pub volumes: Vec<Volume>,
    pub params: Parameters,
}

/// Whether a task (or executor) asks for a DOCKER container.
pub fn is_docker(c: Option<&ContainerInfo>) -> bool {
    c.is_some_and(|c| c.r#type() == container_info::Type::Docker)
}

impl DockerRun {
    /// Checks `container` (type DOCKER) of a task holding `resources`.
    pub fn parse(
        container: &ContainerInfo,
        resources: &[Resource],
        config: &DockerConfig,
    ) -> Result<DockerRun, DockerError> {
        if !config.enabled() {
            return Err(DockerError::NotEnabled(config.containerizers.clone()));
        }
        let docker = container
            .docker
            .as_ref()
            .filter(|d| !d.image.is_empty())
            .ok_or(DockerError::NoImage)?;
        let params = parse_parameters(docker)?;
        let privileged = docker.privileged() || params.privileged;
        if privileged && !config.allow_privileged {
            return Err(DockerError::Privileged);
        }
        let mode = docker.network();
        let hostname = container
            .hostname
            .clone()
            .filter(|h| !h.is_empty())
            .or_else(|| params.hostname.clone());
        if mode == Mode::Host && hostname.is_some() {
            return Err(DockerError::HostnameWithHost);
        }
        let ports = port_mappings(docker, mode, resources)?;
        let network = match mode {
            Mode::Host | Mode::None => None,
            Mode::Bridge => Some(NetworkInfo {
                name: Some(config.bridge_network.clone()),
                ..NetworkInfo::default()
            }),
            Mode::User => {
                let named: Vec<&NetworkInfo> = container
                    .network_infos
                    .iter()
                    .filter(|n| n.name.as_deref().is_some_and(|s| !s.is_empty()))
                    .collect();
                match named.as_slice() {
                    [one] => Some((*one).clone()),
                    _ => return Err(DockerError::UserNetwork),
                }
            }
        }
        .map(|mut n| {
            n.port_mappings = ports
                .iter()
                .map(|(h, c, p)| crate::proto::mesos::network_info::PortMapping {
                    host_port: *h,
                    container_port: *c,
                    protocol: (!p.is_empty()).then(|| p.clone()),
                })
                .collect();
            n
        });
        let mut volumes = Vec::new();
        for v in &container.volumes {
            volumes.push(volume(v)?);
        }
        volumes.extend(params.volumes.iter().cloned());
        Ok(DockerRun {
            image: docker.image.clone(),
            force_pull: docker.force_pull_image(),
            mode,
            network,
            ports,
            hostname,
            privileged,
            volumes,
            params,
        })
    }

    /// The MESOS container that provisions the same image and joins the
    /// same network (NONE mode is the caller's: [`DockerRun::mode`]).
    pub fn mesos_container(&self, original: &ContainerInfo) -> ContainerInfo {
        ContainerInfo {
            r#type: container_info::Type::Mesos as i32,
            volumes: Vec::new(),
            hostname: self.hostname.clone(),
            docker: None,
            mesos: Some(MesosInfo {
                image: Some(Image {
                    r#type: image::Type::Docker as i32,
                    docker: Some(image::Docker {
                        name: self.image.clone(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            }),
            network_infos: self.network.iter().cloned().collect(),
            linux_info: original.linux_info.clone(),
            rlimit_info: original.rlimit_info.clone(),
            tty_info: original.tty_info,
        }
    }

    /// The hostname inside the container: its own (ContainerInfo or
    /// `--hostname`), the host's on the host network, else the first 12
    /// characters of the container id, as Docker names it.
    pub fn container_hostname(&self, container_id: &str, host: Option<&str>) -> Option<String> {
        match (&self.hostname, self.mode) {
            (Some(h), _) => Some(h.clone()),
            (None, Mode::Host) => host.map(str::to_string),
            (None, _) => Some(container_id.chars().take(12).collect()),
        }
    }

    /// What the executor runs for `command` in an image configured by
    /// `image`, in container `at`.
    pub fn task(
        &self,
        command: Option<&CommandInfo>,
        image: &RunConfig,
        at: &Placement<'_>,
        config: &DockerConfig,
    ) -> Result<DockerTask, DockerError> {
        let Placement {
            sandbox,
            container_id,
            hostname,
            memory,
        } = *at;
        let sandbox_dir = config.sandbox_dir.as_str();
        let default = CommandInfo::default();
        let command = command.unwrap_or(&default);
        let argv = docker_argv(command, self.params.entrypoint.as_deref(), image)?;
        let mut env: Vec<(String, String)> = Vec::new();
        set(&mut env, "PATH", DEFAULT_PATH);
        if let Some(h) = hostname {
            set(&mut env, "HOSTNAME", h);
        }
        for kv in image.env.iter().flatten() {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            set(&mut env, k, v);
        }
        for v in command
            .environment
            .as_ref()
            .map(|e| e.variables.as_slice())
            .unwrap_or_default()
        {
            if v.r#type.map(VariableType::try_from) == Some(Ok(VariableType::Secret)) {
                return Err(DockerError::Secret(v.name.clone()));
            }
            set(&mut env, &v.name, v.value.as_deref().unwrap_or_default());
        }
        set(&mut env, "MESOS_SANDBOX", sandbox_dir);
        set(
            &mut env,
            "MESOS_CONTAINER_NAME",
            &format!("{NAME_PREFIX}{container_id}"),
        );
        for (k, v) in &self.params.env {
            set(&mut env, k, v);
        }
        if let (Some(swap), Some(mem)) = (self.params.memory_swap, memory) {
            if swap != mem as i64 && swap != 0 {
                return Err(DockerError::BadParameter {
                    key: "memory-swap".into(),
                    value: swap.to_string(),
                    why: format!(
                        "butte gives containers no swap: it must equal the memory limit ({mem} bytes)"
                    ),
                });
            }
        }
        let mut binds = Vec::new();
        for v in &self.volumes {
            binds.push(bind(v, sandbox, sandbox_dir)?);
        }
        let capabilities = capabilities(self.privileged, &self.params)?;
        let user = self
            .params
            .user
            .clone()
            .or_else(|| image.user.clone())
            .filter(|u| !u.is_empty());
        // Root's home, as Docker gives it; another user's is looked up in
        // the image where the user is resolved.
        if user.is_none() && !env.iter().any(|(k, _)| k == "HOME") {
            env.push(("HOME".into(), "/root".into()));
        }
        Ok(DockerTask {
            argv,
            env,
            user,
            working_dir: self
                .params
                .workdir
                .clone()
                .or_else(|| image.working_dir.clone())
                .filter(|d| !d.is_empty())
                .unwrap_or_else(|| "/".into()),
            sandbox_dir: sandbox_dir.to_string(),
            binds,
            tmpfs: self.params.tmpfs.clone(),
            shm_size: Some(self.params.shm_size.unwrap_or(DEFAULT_SHM)),
            read_only: self.params.read_only,
            capabilities,
            rlimits: self.params.ulimits.clone(),
            stop_timeout_ms: u64::try_from(config.stop_timeout.as_millis()).unwrap_or(u64::MAX),
            netns: None,
        })
    }

    /// The container's own `/etc/hosts` (`--add-host`) from `base`, the
    /// file it would have had; `None` without `--add-host`.
    pub fn hosts_file(&self, base: &str) -> Option<String> {
        if self.params.add_hosts.is_empty() {
            return None;
        }
        let mut text = base.to_string();
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        for (host, ip) in &self.params.add_hosts {
            text.push_str(&format!("{ip}\t{host}\n"));
        }
        Some(text)
    }

    /// The container's own `/etc/resolv.conf` (`--dns`, `--dns-search`,
    /// `--dns-option` replace those lines of `base`); `None` without them.
    pub fn resolv_file(&self, base: &str) -> Option<String> {
        let p = &self.params;
        if p.dns.is_empty() && p.dns_search.is_empty() && p.dns_options.is_empty() {
            return None;
        }
        let keep = |line: &&str, key: &str, replaced: bool| !(replaced && line.starts_with(key));
        let mut text = String::new();
        for line in base.lines() {
            let l = line.trim_start();
            if keep(&l, "nameserver", !p.dns.is_empty())
                && keep(&l, "search", !p.dns_search.is_empty())
                && keep(&l, "domain", !p.dns_search.is_empty())
                && keep(&l, "options", !p.dns_options.is_empty())
            {
                text.push_str(line);
                text.push('\n');
            }
        }
        for ns in &p.dns {
            text.push_str(&format!("nameserver {ns}\n"));
        }
        if !p.dns_search.is_empty() {
            text.push_str(&format!("search {}\n", p.dns_search.join(" ")));
        }
        if !p.dns_options.is_empty() {
            text.push_str(&format!("options {}\n", p.dns_options.join(" ")));
        }
        Some(text)
    }
}

fn set(env: &mut Vec<(String, String)>, key: &str, value: &str) {
    match env.iter_mut().find(|(k, _)| k == key) {
        Some((_, v)) => *v = value.to_string(),
        None => env.push((key.to_string(), value.to_string())),
    }
}

/// `docker run [--entrypoint E] IMAGE [CMD...]` as Mesos builds it.
pub fn docker_argv(
    command: &CommandInfo,
    entrypoint: Option<&[String]>,
    image: &RunConfig,
) -> Result<Vec<String>, DockerError> {
    let value = command.value.clone().filter(|v| !v.is_empty());
    let (entry, cmd): (Vec<String>, Vec<String>) = if command.shell.unwrap_or(true) {
        let value = value.ok_or(DockerError::NoShellValue)?;
        (vec!["/bin/sh".into()], vec!["-c".into(), value])
    } else {
        let entry = match entrypoint {
            Some(e) => e.to_vec(),
            None => image.entrypoint.clone().unwrap_or_default(),
        };
        let mut given: Vec<String> = value.into_iter().collect();
        given.extend(command.arguments.iter().cloned());
        let cmd = if !given.is_empty() {
            given
        } else if entrypoint.is_some() {
            Vec::new()
        } else {
            image.cmd.clone().unwrap_or_default()
        };
        (entry, cmd)
    };
    let argv: Vec<String> = entry.into_iter().chain(cmd).collect();
    match argv.first() {
        Some(p) if !p.is_empty() => Ok(argv),
        _ => Err(DockerError::NoCommand),
    }
}

fn port_mappings(
    docker: &DockerInfo,
    mode: Mode,
    resources: &[Resource],
) -> Result<Vec<(u32, u32, String)>, DockerError> {
    if docker.port_mappings.is_empty() {
        return Ok(Vec::new());
    }
    if matches!(mode, Mode::Host | Mode::None) {
        return Err(DockerError::PortMappingsMode);
    }
    let ranges: Vec<(u64, u64)> = resources
        .iter()
        .filter(|r| r.name == "ports")
        .filter_map(|r| r.ranges.as_ref())
        .flat_map(|r| r.range.iter().map(|r| (r.begin, r.end)))
        .collect();
    if ranges.is_empty() {
        return Err(DockerError::NoPortResources);
    }
    let mut out = Vec::new();
    for m in &docker.port_mappings {
        let host = u64::from(m.host_port);
        if !ranges.iter().any(|(b, e)| (*b..=*e).contains(&host)) {
            return Err(DockerError::PortNotInResources(m.host_port));
        }
        let proto = m.protocol.clone().unwrap_or_default().to_lowercase();
        out.push((m.host_port, m.container_port, proto));
    }
    Ok(out)
}

fn volume(v: &crate::proto::mesos::Volume) -> Result<Volume, DockerError> {
    let bad = |why: &str| DockerError::Volume {
        path: v.container_path.clone(),
        why: why.into(),
    };
    if v.image.is_some() || v.source.is_some() {
        return Err(bad(
            "only host_path volumes are supported in DOCKER containers (no image, Docker or CSI volumes)",
        ));
    }
    let host = v
        .host_path
        .clone()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| bad("a volume needs a host_path"))?;
    if v.container_path.is_empty() {
        return Err(bad("a volume needs a container_path"));
    }
    Ok(Volume {
        host,
        container: v.container_path.clone(),
        read_only: v.mode() == VolumeMode::Ro,
    })
}

/// A volume's host source and container target.
fn bind(v: &Volume, sandbox: &Path, sandbox_dir: &str) -> Result<Bind, DockerError> {
    let bad = |why: &str| DockerError::Volume {
        path: v.host.clone(),
        why: why.into(),
    };
    let source = if v.host.starts_with('/') {
        PathBuf::from(&v.host)
    } else {
        let rel = Path::new(&v.host);
        if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(bad("a relative host_path must stay inside the sandbox"));
        }
        sandbox.join(rel)
    };
    let target = if v.container.starts_with('/') {
        v.container.clone()
    } else {
        format!("{}/{}", sandbox_dir.trim_end_matches('/'), v.container)
    };
    if Path::new(&target)
        .components()
        .any(|c| matches!(c, Component::ParentDir))
    {
        return Err(DockerError::Volume {
            path: v.container.clone(),
            why: "a container path must not hold `..`".into(),
        });
    }
    Ok(Bind {
        source,
        target,
        read_only: v.read_only,
    })
}

/// The capabilities kept after Docker's `--cap-add` and `--cap-drop`
/// (names with or without `CAP_`, any case, `ALL`): Docker's default set
/// changed; `None` when neither is given.
pub fn kept_capabilities(
    add: &[String],
    drop: &[String],
) -> Result<Option<Vec<String>>, DockerError> {
    let p = Parameters {
        cap_add: add.to_vec(),
        cap_drop: drop.to_vec(),
        ..Parameters::default()
    };
    capabilities(false, &p)
}

/// The capabilities kept: every one when privileged; Docker's default
/// set with `--cap-add`/`--cap-drop` (names with or without `CAP_`,
/// `ALL`); `None` when neither is given.
fn capabilities(privileged: bool, p: &Parameters) -> Result<Option<Vec<String>>, DockerError> {
    let all: Vec<String> = {
        let mut v: Vec<String> = caps::all().into_iter().map(|c| c.to_string()).collect();
        v.sort();
        v
    };
    if privileged {
        // Every capability this host lets us give (as `make_privileged`).
        let mut held = crate::runtime::bounding_capabilities();
        held.sort();
        return Ok(Some(held));
    }
    if p.cap_add.is_empty() && p.cap_drop.is_empty() {
        return Ok(None);
    }
    let name = |key: &str, n: &str| -> Result<Option<String>, DockerError> {
        let upper = n.trim().to_ascii_uppercase();
        if upper == "ALL" {
            return Ok(None);
        }
        let full = if upper.starts_with("CAP_") {
            upper
        } else {
            format!("CAP_{upper}")
        };
        if all.contains(&full) {
            Ok(Some(full))
        } else {
            Err(DockerError::BadParameter {
                key: key.into(),
                value: n.into(),
                why: "not a Linux capability".into(),
            })
        }
    };
    let mut kept = crate::runtime::default_capabilities();
    for d in &p.cap_drop {
        match name("cap-drop", d)? {
            None => kept.clear(),
            Some(c) => kept.retain(|k| *k != c),
        }
    }
    for a in &p.cap_add {
        match name("cap-add", a)? {
            None => kept = all.clone(),
            Some(c) if !kept.contains(&c) => kept.push(c),
            Some(_) => {}
        }
    }
    kept.sort();
    Ok(Some(kept))
}

/// Parameters that Mesos or butte sets itself, and why a task may not.
const OWN: &[(&str, &str)] = &[
    ("name", "the container is named mesos-<container id>"),
    (
        "net",
        "give DockerInfo.network (and network_infos for USER)",
    ),
    (
        "network",
        "give DockerInfo.network (and network_infos for USER)",
    ),
    ("publish", "give DockerInfo.port_mappings"),
    ("p", "give DockerInfo.port_mappings"),
    ("cpu-shares", "cpus come from the task's resources"),
    ("cpus", "cpus come from the task's resources"),
    ("memory", "mem comes from the task's resources"),
    ("m", "mem comes from the task's resources"),
    ("rm", "Mesos removes the container itself"),
    ("detach", "the executor watches the container"),
    ("d", "the executor watches the container"),
];

fn parse_parameters(docker: &DockerInfo) -> Result<Parameters, DockerError> {
    let mut p = Parameters::default();
    for param in &docker.parameters {
        let key = param.key.trim_start_matches('-');
        let value = param.value.as_str();
        let bad = |why: &str| DockerError::BadParameter {
            key: key.to_string(),
            value: value.to_string(),
            why: why.to_string(),
        };
        let flag = || match value {
            "" | "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            _ => Err(bad("expected true or false")),
        };
        let key_value = || {
            value
                .split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| bad("expected KEY=VALUE"))
        };
        match key {
            "env" | "e" => p.env.push(key_value()?),
            "label" | "l" => p.labels.push(
                value
                    .split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .unwrap_or_else(|| (value.to_string(), String::new())),
            ),
            "user" | "u" => p.user = Some(nonempty(value).ok_or_else(|| bad("empty user"))?),
            "workdir" | "w" => {
                if !value.starts_with('/') {
                    return Err(bad("the working directory must be an absolute path"));
                }
                p.workdir = Some(value.to_string());
            }
            "hostname" | "h" => {
                p.hostname = Some(nonempty(value).ok_or_else(|| bad("empty hostname"))?)
            }
            "entrypoint" => {
                p.entrypoint = Some(match value {
                    "" => Vec::new(),
                    v => vec![v.to_string()],
                })
            }
            "cap-add" => p.cap_add.push(value.to_string()),
            "cap-drop" => p.cap_drop.push(value.to_string()),
            "ulimit" => p.ulimits.push(ulimit(value).map_err(|why| bad(&why))?),
            "read-only" => p.read_only = flag()?,
            "init" => p.init = flag()?,
            "privileged" => p.privileged = flag()?,
            "tmpfs" => {
                let (path, opts) = value.split_once(':').unwrap_or((value, ""));
                if !path.starts_with('/') {
                    return Err(bad("a tmpfs path must be absolute"));
                }
                p.tmpfs.push((path.to_string(), opts.to_string()));
            }
            "shm-size" => p.shm_size = Some(docker_size(value).ok_or_else(|| bad("not a size"))?),
            "memory-swap" => {
                p.memory_swap = Some(match value {
                    "-1" => -1,
                    v => docker_size(v).ok_or_else(|| bad("not a size"))? as i64,
                })
            }
            "add-host" => {
                let (host, ip) = value
                    .split_once(':')
                    .filter(|(h, i)| !h.is_empty() && i.parse::<std::net::IpAddr>().is_ok())
                    .ok_or_else(|| bad("expected HOST:IP"))?;
                p.add_hosts.push((host.to_string(), ip.to_string()));
            }
            "dns" => {
                value
                    .parse::<std::net::IpAddr>()
                    .map_err(|_| bad("not an IP address"))?;
                p.dns.push(value.to_string());
            }
            "dns-search" => p.dns_search.push(value.to_string()),
            "dns-opt" | "dns-option" => p.dns_options.push(value.to_string()),
            "volume" | "v" => p
                .volumes
                .push(volume_parameter(value).map_err(|why| bad(&why))?),
            _ => {
                let why = OWN
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, why)| why.to_string())
                    .unwrap_or_else(|| "butte runs no Docker daemon and has nothing it maps onto; remove it from the task".into());
                return Err(DockerError::UnsupportedParameter {
                    key: key.to_string(),
                    why,
                });
            }
        }
    }
    Ok(p)
}

fn nonempty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// `HOST:CONTAINER[:ro|rw]` (`--volume`); named volumes need a driver.
fn volume_parameter(value: &str) -> Result<Volume, String> {
    let parts: Vec<&str> = value.split(':').collect();
    let (host, container, mode) = match parts.as_slice() {
        [h, c] => (*h, *c, "rw"),
        [h, c, m] => (*h, *c, *m),
        _ => return Err("expected HOST:CONTAINER[:ro|rw]".into()),
    };
    if !host.starts_with('/') {
        return Err("named volumes need a Docker volume driver; give an absolute host path".into());
    }
    if !container.starts_with('/') {
        return Err("the container path must be absolute".into());
    }
    let mut read_only = false;
    for m in mode.split(',') {
        match m {
            "ro" => read_only = true,
            "rw" | "z" | "Z" | "" => {}
            other => return Err(format!("unknown volume option {other:?}")),
        }
    }
    Ok(Volume {
        host: host.into(),
        container: container.into(),
        read_only,
    })
}

/// `NAME=SOFT[:HARD]`, `-1` unlimited.
fn ulimit(value: &str) -> Result<(String, u64, u64), String> {
    let (name, limits) = value
        .split_once('=')
        .ok_or_else(|| "expected NAME=SOFT[:HARD]".to_string())?;
    if !crate::runtime::RLIMIT_NAMES.contains(&name) {
        return Err(format!("unknown ulimit {name:?}"));
    }
    let num = |s: &str| match s {
        "-1" | "unlimited" => Ok(u64::MAX),
        s => s
            .parse::<u64>()
            .map_err(|_| format!("{s:?} is not a number")),
    };
    let (soft, hard) = match limits.split_once(':') {
        Some((s, h)) => (num(s)?, num(h)?),
        None => (num(limits)?, num(limits)?),
    };
    if soft > hard {
        return Err(format!("soft limit {soft} is above the hard limit {hard}"));
    }
    Ok((name.to_string(), soft, hard))
}

/// Docker's sizes: a number with an optional unit `b`, `k`, `m`, `g`
/// (powers of 1024; `kb`, `mib` and the like too); bytes without one.
pub fn docker_size(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let digits = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(digits);
    let n: f64 = num.parse().ok()?;
    let mult: u64 = match unit.trim_end_matches("ib").trim_end_matches('b') {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => return None,
    };
    (n >= 0.0).then_some((n * mult as f64) as u64)
}

#[cfg(test)]
mod tests;
