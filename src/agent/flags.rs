//! Every flag of the Mesos 1.11 agent (`src/slave/flags.cpp` and the
//! logging flags it inherits), and what `butte agent` does with it:
//! implemented (an argument of `butte agent`), accepted and ignored (with
//! the reason, said in one line at start), accepted for the values butte
//! already behaves as, or refused when set (ignoring it would weaken
//! isolation or access control).
//!
//! Flags are read as Mesos reads them, before clap sees them
//! ([`prepare`]): `--name=value`, `--name` and `--no-name` for booleans,
//! `MESOS_<NAME>` variables below the command line, and a `file://PATH`
//! value is the file's content (trimmed) for every flag but the paths
//! (`--credential`, `--http_credentials`, `--executor_secret_key`,
//! `--docker_config`), whose `file://` prefix is dropped, and `--master`,
//! whose `file://` the master detector reads itself. `--config_dir=DIR`
//! (butte's own) reads Mesosphere-style configuration directories: each
//! file `DIR/<flag>` is `--<flag>=<content>`, `DIR/?<flag>` is `--<flag>`,
//! `DIR/?no-<flag>` is `--no-<flag>`, and `zk` (as in `/etc/mesos/zk`) is
//! `--master`; the command line beats a file, a file beats the environment.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Why the flags cannot be read or are refused.
#[derive(Debug, thiserror::Error)]
pub enum FlagsError {
    #[error("flag --{flag}: cannot read {path}: {source}")]
    Read {
        flag: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config dir {dir}: {source}")]
    ConfigDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config dir file {path}: no `butte agent` flag --{flag}")]
    UnknownConfigFile { path: PathBuf, flag: String },
    #[error("flag --{flag} is not a boolean and cannot be given as --no-{flag}")]
    NotBoolean { flag: String },
    #[error("--no-{flag} takes no value (got {value:?})")]
    NegatedWithValue { flag: String, value: String },
    #[error("{}", refusals(.0))]
    Refused(Vec<(String, String)>),
    #[error(
        "--isolation: butte does not provide {} (it provides {}); remove them or run a Mesos agent",
        .0.join(", "),
        PROVIDED_ISOLATORS.join(", ")
    )]
    Isolation(Vec<String>),
    #[error("--ip_discovery_command {command:?}: {why}")]
    IpDiscovery { command: String, why: String },
}

fn refusals(r: &[(String, String)]) -> String {
    let each: Vec<String> = r.iter().map(|(f, why)| format!("--{f}: {why}")).collect();
    format!(
        "refusing Mesos flags butte cannot honour safely: {}",
        each.join("; ")
    )
}

/// A flag value's type, as Mesos parses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bool,
    /// `10secs`, `2mins`, ...
    Duration,
    /// `512MB`, ...
    Bytes,
    Int,
    Float,
    Str,
    Json,
    /// A path: a `file://` value is the path itself, not the file's content.
    FilePath,
}

impl Kind {
    /// Checks VALUE as Mesos' parser of this type would.
    pub fn check(self, value: &str) -> Result<String, String> {
        let ok = match self {
            Kind::Bool => parse_bool(value).map(|_| ()),
            Kind::Duration => crate::support::parse_duration(value)
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Kind::Bytes => crate::support::parse_size(value)
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Kind::Int => value
                .trim()
                .parse::<i64>()
                .map(|_| ())
                .map_err(|e| format!("{value:?} is not an integer: {e}")),
            Kind::Float => value
                .trim()
                .parse::<f64>()
                .map(|_| ())
                .map_err(|e| format!("{value:?} is not a number: {e}")),
            // Mesos takes a JSON flag's value as a path when it is not JSON.
            Kind::Json | Kind::Str | Kind::FilePath => Ok(()),
        };
        ok.map(|()| value.to_string())
    }
}

/// A boolean flag's value as Mesos reads it.
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(format!("{s:?} is not a boolean: expected true or false")),
    }
}

/// What a value of a [`Support::Values`] flag means to butte.
pub enum Verdict {
    /// butte behaves so.
    Same,
    /// Accepted; butte behaves otherwise, harmlessly (the reason).
    Ignored(&'static str),
    /// Refused (the reason).
    Refused(&'static str),
}

/// What butte does with a Mesos flag.
pub enum Support {
    /// An argument of `butte agent`.
    Implemented,
    /// Accepted and not used, for the reason given.
    Ignored(&'static str),
    /// Accepted when butte behaves as the value asks (or otherwise
    /// harmlessly), refused when ignoring the value would be unsafe.
    Values(fn(&str) -> Verdict),
    /// Refused when set: butte cannot honour it, and ignoring it would
    /// weaken isolation or access control.
    Refused(&'static str),
}

/// One Mesos agent flag.
pub struct MesosFlag {
    pub name: &'static str,
    /// Deprecated names Mesos still accepts.
    pub aliases: &'static [&'static str],
    pub kind: Kind,
    pub support: Support,
}

impl MesosFlag {
    /// The environment variable Mesos reads it from.
    pub fn env(&self) -> String {
        format!("MESOS_{}", self.name.to_ascii_uppercase())
    }
}

const fn imp(name: &'static str, kind: Kind) -> MesosFlag {
    MesosFlag {
        name,
        aliases: &[],
        kind,
        support: Support::Implemented,
    }
}

const fn ign(name: &'static str, kind: Kind, why: &'static str) -> MesosFlag {
    MesosFlag {
        name,
        aliases: &[],
        kind,
        support: Support::Ignored(why),
    }
}

const fn refuse(name: &'static str, kind: Kind, why: &'static str) -> MesosFlag {
    MesosFlag {
        name,
        aliases: &[],
        kind,
        support: Support::Refused(why),
    }
}

const fn vals(name: &'static str, kind: Kind, check: fn(&str) -> Verdict) -> MesosFlag {
    MesosFlag {
        name,
        aliases: &[],
        kind,
        support: Support::Values(check),
    }
}

const fn with_aliases(mut f: MesosFlag, aliases: &'static [&'static str]) -> MesosFlag {
    f.aliases = aliases;
    f
}

const NO_DOCKER: &str =
    "no Docker daemon: butte runs DOCKER containers on its own runtime (--containerizers=docker,mesos)";
const NO_APPC: &str = "no appc images";
const NO_MODULES: &str = "butte loads no Mesos C++ modules";
const NO_RP: &str = "no resource providers or CSI";
const NO_OVERSUB: &str = "no oversubscription: no revocable resources";
const NO_PORT_MAPPING: &str = "no network/port_mapping isolator";
const NO_PERF: &str = "no perf_event isolator";
const NO_PORTS: &str = "no network/ports isolator";
const TCP_EXECUTORS: &str = "executors reach the agent over TCP";
const LOGS: &str = "butte logs to stderr, which goes to the journal under systemd, at BUTTE_LOG's or --logging_level's level";
const NO_VOLUMES: &str = "no volume isolators";

use Kind::*;

/// Every Mesos 1.11 agent flag (Linux build, with the network and XFS
/// isolators' flags), in `flags.cpp`'s order, then the logging flags.
pub static FLAGS: &[MesosFlag] = &[
    imp("hostname", Str),
    vals("hostname_lookup", Bool, |v| match v {
        "true" | "1" => Verdict::Same,
        _ => Verdict::Ignored("without --hostname butte reports the system's hostname"),
    }),
    imp("version", Bool),
    imp("resources", Str),
    ign("resource_provider_config_dir", Str, NO_RP),
    ign("csi_plugin_config_dir", Str, NO_RP),
    ign("disk_profile_adaptor", Str, NO_RP),
    imp("isolation", Str),
    vals("launcher", Str, |v| match v {
        "linux" => Verdict::Same,
        _ => Verdict::Ignored("butte always uses the Linux launcher: namespaces and cgroups"),
    }),
    vals("image_providers", Str, |v| {
        if v.split(',')
            .all(|p| p.trim().eq_ignore_ascii_case("docker"))
        {
            Verdict::Same
        } else {
            Verdict::Refused("butte provides Docker images only, no APPC")
        }
    }),
    ign(
        "image_provisioner_backend",
        Str,
        "butte provisions every image rootfs with overlayfs",
    ),
    imp("image_gc_config", Json),
    ign("appc_simple_discovery_uri_prefix", Str, NO_APPC),
    ign("appc_store_dir", Str, NO_APPC),
    imp("docker_registry", Str),
    ign(
        "docker_store_dir",
        Str,
        "butte keeps images in its content store under <work_dir>/store",
    ),
    ign("docker_volume_checkpoint_dir", Str, NO_VOLUMES),
    ign("docker_volume_chown", Bool, NO_VOLUMES),
    vals("docker_ignore_runtime", Bool, |v| match v {
        "false" | "0" => Verdict::Same,
        _ => Verdict::Ignored("butte always applies an image's WORKDIR, ENV and CMD"),
    }),
    imp("default_role", Str),
    imp("attributes", Str),
    imp("fetcher_cache_size", Bytes),
    imp("fetcher_cache_dir", Str),
    imp("fetcher_stall_timeout", Duration),
    imp("work_dir", Str),
    imp("runtime_dir", Str),
    ign(
        "launcher_dir",
        Str,
        "butte runs its own executors: butte-executor next to butte, else butte executor",
    ),
    ign("hadoop_home", Str, "the fetcher has no HDFS support"),
    imp("switch_user", Bool),
    ign("volume_gid_range", Str, NO_VOLUMES),
    with_aliases(
        imp("http_heartbeat_interval", Duration),
        &["executor_heartbeat_interval"],
    ),
    ign(
        "frameworks_home",
        Str,
        "relative executor URIs are fetched as given",
    ),
    imp("registration_backoff_factor", Duration),
    imp("authentication_backoff_factor", Duration),
    imp("authentication_timeout_min", Duration),
    imp("authentication_timeout_max", Duration),
    imp("executor_environment_variables", Json),
    imp("executor_registration_timeout", Duration),
    imp("executor_reregistration_timeout", Duration),
    ign(
        "executor_reregistration_retry_interval",
        Duration,
        "only for v0 executors of Mesos before 1.1.2",
    ),
    imp("executor_shutdown_grace_period", Duration),
    with_aliases(imp("executor_secret_key", FilePath), &["jwt_secret_key"]),
    imp("gc_delay", Duration),
    imp("gc_disk_headroom", Float),
    ign(
        "gc_non_executor_container_sandboxes",
        Bool,
        "standalone containers' sandboxes are removed with REMOVE_CONTAINER",
    ),
    imp("disk_watch_interval", Duration),
    imp("container_logger", Str),
    imp("recover", Str),
    imp("recovery_timeout", Duration),
    imp("reconfiguration_policy", Str),
    ign(
        "strict",
        Bool,
        "recovery keeps what it can read and reports the rest",
    ),
    ign(
        "max_completed_executors_per_framework",
        Int,
        "butte keeps Mesos' default, 150",
    ),
    ign(
        "cgroups_destroy_timeout",
        Duration,
        "a container's cgroup is destroyed once its processes are gone",
    ),
    ign(
        "cgroups_hierarchy",
        Str,
        "butte finds the cgroup mounts, v1 or v2, itself",
    ),
    imp("cgroups_root", Str),
    vals("cgroups_enable_cfs", Bool, |v| match v {
        "true" | "1" => Verdict::Same,
        _ => Verdict::Ignored("butte always caps CPU with a CFS quota as well as shares"),
    }),
    vals("cgroups_limit_swap", Bool, |v| match v {
        "true" | "1" => Verdict::Same,
        _ => Verdict::Ignored("butte's memory limit turns swap off for containers"),
    }),
    ign(
        "cgroups_cpu_enable_pids_and_tids_count",
        Bool,
        "process and thread counts come from the pids cgroup",
    ),
    ign(
        "cgroups_net_cls_primary_handle",
        Str,
        "no cgroups/net_cls isolator",
    ),
    ign(
        "cgroups_net_cls_secondary_handles",
        Str,
        "no cgroups/net_cls isolator",
    ),
    ign(
        "allowed_devices",
        Json,
        "containers get butte's fixed device allowlist, Mesos' defaults",
    ),
    with_aliases(
        ign(
            "agent_subsystems",
            Str,
            "the agent runs in the cgroup its service manager gives it",
        ),
        &["slave_subsystems"],
    ),
    ign("host_path_volume_force_creation", Str, NO_VOLUMES),
    ign("nvidia_gpu_devices", Str, "no gpu/nvidia isolator"),
    ign("perf_events", Str, NO_PERF),
    ign("perf_interval", Duration, NO_PERF),
    ign("perf_duration", Duration, NO_PERF),
    ign("revocable_cpu_low_priority", Bool, NO_OVERSUB),
    ign(
        "systemd_enable_support",
        Bool,
        "containers live in butte's own cgroups, which its unit delegates",
    ),
    ign(
        "systemd_runtime_directory",
        Str,
        "containers live in butte's own cgroups, which its unit delegates",
    ),
    with_aliases(
        refuse(
            "effective_capabilities",
            Json,
            "butte gives tasks Docker's default capability set and cannot apply another",
        ),
        &["allowed_capabilities"],
    ),
    refuse(
        "bounding_capabilities",
        Json,
        "butte gives tasks Docker's default capability set and cannot apply another bound",
    ),
    ign(
        "default_container_shm_size",
        Bytes,
        "each container gets its own /dev/shm of the kernel's default size",
    ),
    vals("disallow_sharing_agent_ipc_namespace", Bool, |v| match v {
        "true" | "1" => Verdict::Same,
        _ => Verdict::Ignored("butte never shares the agent's IPC namespace"),
    }),
    vals("disallow_sharing_agent_pid_namespace", Bool, |v| match v {
        "true" | "1" => Verdict::Same,
        _ => Verdict::Ignored("butte never shares the agent's pid namespace"),
    }),
    ign(
        "agent_features",
        Json,
        "butte advertises the capabilities it has",
    ),
    refuse(
        "firewall_rules",
        Json,
        "butte cannot disable endpoints, use --authenticate_http_readonly and --authenticate_http_readwrite",
    ),
    imp("credential", FilePath),
    refuse(
        "acls",
        Json,
        "butte has no authorizer; ACLs would not be enforced",
    ),
    vals("containerizers", Str, |v| {
        if v.split(',').all(|c| matches!(c.trim(), "mesos" | "docker")) {
            Verdict::Same
        } else {
            Verdict::Refused("only `mesos` and `docker` (DOCKER containers, run with no daemon)")
        }
    }),
    ign("docker", Str, NO_DOCKER),
    ign("docker_remove_delay", Duration, NO_DOCKER),
    vals("docker_kill_orphans", Bool, |v| match v {
        "true" | "1" => Verdict::Same,
        _ => Verdict::Ignored("butte destroys every container it does not know at recovery: no other agent shares its runtime"),
    }),
    ign("docker_mesos_image", Str, NO_DOCKER),
    ign("docker_socket", Str, NO_DOCKER),
    imp("docker_config", FilePath),
    with_aliases(
        vals("sandbox_directory", Str, |v| match v {
            "/mnt/mesos/sandbox" => Verdict::Same,
            v if v.starts_with('/') => Verdict::Same,
            _ => Verdict::Refused("must be an absolute path"),
        }),
        &["docker_sandbox_directory"],
    ),
    ign("domain_socket_location", Str, TCP_EXECUTORS),
    ign(
        "default_container_dns",
        Json,
        "containers get the DNS of their CNI result, else the host's resolv.conf",
    ),
    refuse(
        "default_container_info",
        Json,
        "butte cannot apply a default ContainerInfo, its volumes and networks, to executors",
    ),
    vals("docker_stop_timeout", Duration, |v| match crate::support::parse_duration(v) {
        Ok(_) => Verdict::Same,
        Err(_) => Verdict::Refused("not a duration"),
    }),
    ign("ephemeral_ports_per_container", Int, NO_PORT_MAPPING),
    ign("eth0_name", Str, NO_PORT_MAPPING),
    ign("lo_name", Str, NO_PORT_MAPPING),
    ign("egress_rate_limit_per_container", Bytes, NO_PORT_MAPPING),
    ign("egress_unique_flow_per_container", Bool, NO_PORT_MAPPING),
    ign("egress_flow_classifier_parent", Str, NO_PORT_MAPPING),
    ign(
        "network_enable_socket_statistics_summary",
        Bool,
        NO_PORT_MAPPING,
    ),
    ign(
        "network_enable_socket_statistics_details",
        Bool,
        NO_PORT_MAPPING,
    ),
    ign("network_enable_snmp_statistics", Bool, NO_PORT_MAPPING),
    ign("container_ports_watch_interval", Duration, NO_PORTS),
    ign("check_agent_port_range_only", Bool, NO_PORTS),
    vals("enforce_container_ports", Bool, |v| match v {
        "false" | "0" => Verdict::Same,
        _ => Verdict::Refused("butte has no network/ports isolator to enforce ports with"),
    }),
    ign("container_ports_isolated_range", Str, NO_PORTS),
    imp("network_cni_plugins_dir", Str),
    imp("network_cni_config_dir", Str),
    imp("network_cni_root_dir_persist", Bool),
    ign(
        "network_cni_metrics",
        Bool,
        "no per-container network statistics",
    ),
    imp("container_disk_watch_interval", Duration),
    imp("enforce_container_disk_quota", Bool),
    ign("modules", Json, NO_MODULES),
    ign("modules_dir", Str, NO_MODULES),
    imp("authenticatee", Str),
    vals("authorizer", Str, |v| match v {
        "local" => Verdict::Same,
        _ => Verdict::Refused("butte has no authorizer modules"),
    }),
    vals("http_authenticators", Str, |v| match v {
        "basic" => Verdict::Same,
        _ => Verdict::Refused("butte has only the basic HTTP authenticator"),
    }),
    imp("authenticate_http_readwrite", Bool),
    imp("authenticate_http_readonly", Bool),
    imp("authenticate_http_executors", Bool),
    ign("http_executor_domain_sockets", Bool, TCP_EXECUTORS),
    imp("http_credentials", FilePath),
    ign("hooks", Str, NO_MODULES),
    ign(
        "secret_resolver",
        Str,
        "no secret resolver: tasks with SECRET variables are refused",
    ),
    ign("resource_estimator", Str, NO_OVERSUB),
    ign("qos_controller", Str, NO_OVERSUB),
    ign("qos_correction_interval_min", Duration, NO_OVERSUB),
    ign("oversubscribed_resources_interval", Duration, NO_OVERSUB),
    ign(
        "master_detector",
        Str,
        "butte detects the master from --master (HOST:PORT, zk:// or file://)",
    ),
    ign("xfs_project_range", Str, "no disk/xfs isolator"),
    ign("xfs_kill_containers", Bool, "no disk/xfs isolator"),
    imp("seccomp_config_dir", Str),
    imp("seccomp_profile_name", Str),
    vals("http_command_executor", Bool, |_| Verdict::Same),
    imp("ip", Str),
    ign(
        "ip6",
        Str,
        "no IPv6 addresses are advertised for host-network containers",
    ),
    imp("port", Int),
    imp("advertise_ip", Str),
    imp("advertise_port", Int),
    // A `file://` value is the detector's to read (and re-read).
    imp("master", FilePath),
    imp("zk_session_timeout", Duration),
    imp("ip_discovery_command", Str),
    ign(
        "ip6_discovery_command",
        Str,
        "no IPv6 addresses are advertised for host-network containers",
    ),
    ign("memory_profiling", Bool, "no jemalloc profiling"),
    ign(
        "domain",
        Json,
        "fault domains are not advertised to the master yet",
    ),
    // logging::Flags, which the agent's flags inherit.
    ign("quiet", Bool, LOGS),
    imp("logging_level", Str),
    ign("log_dir", Str, LOGS),
    ign("logbufsecs", Int, LOGS),
    ign("initialize_driver_logging", Bool, LOGS),
    ign("external_log_file", Str, LOGS),
];

/// The flag named NAME (or one of its deprecated names; `-` for `_`).
pub fn find(name: &str) -> Option<&'static MesosFlag> {
    let name = name.replace('-', "_").to_ascii_lowercase();
    FLAGS
        .iter()
        .find(|f| f.name == name || f.aliases.contains(&name.as_str()))
}

/// The isolators butte provides (it applies them whether named or not).
pub const PROVIDED_ISOLATORS: &[&str] = &[
    "filesystem/linux",
    "filesystem/posix",
    "filesystem/shared",
    "posix/cpu",
    "posix/mem",
    "posix/disk",
    "disk/du",
    "cgroups/cpu",
    "cgroups/cpuacct",
    "cgroups/mem",
    "cgroups/pids",
    "cgroups/devices",
    "linux/devices",
    "linux/capabilities",
    "linux/nnp",
    "linux/seccomp",
    "namespaces/pid",
    "namespaces/ipc",
    "docker/runtime",
    "network/cni",
];

/// Checks `--isolation`: every entry must be an isolator butte provides.
pub fn check_isolation(isolation: &str) -> Result<(), FlagsError> {
    let missing: Vec<String> = isolation
        .split(',')
        .map(str::trim)
        .filter(|i| !i.is_empty() && !PROVIDED_ISOLATORS.contains(i))
        .map(str::to_string)
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(FlagsError::Isolation(missing))
    }
}

/// The flags set that are not arguments of `butte agent` (name, value).
#[derive(Debug, Clone, Default)]
pub struct OtherFlags {
    pub set: Vec<(&'static str, String)>,
}

impl OtherFlags {
    /// The value given to flag `name` (its canonical name), if any.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.set
            .iter()
            .rev()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A flag butte accepts and does not use.
#[derive(Debug, Clone, PartialEq)]
pub struct Ignored {
    pub name: &'static str,
    pub value: String,
    pub why: &'static str,
}

impl OtherFlags {
    /// Judges the flags set: those ignored, or every refusal at once.
    pub fn review(&self) -> Result<Vec<Ignored>, FlagsError> {
        let mut ignored = Vec::new();
        let mut refused = Vec::new();
        for (name, value) in &self.set {
            let Some(flag) = find(name) else { continue };
            let why = match &flag.support {
                Support::Implemented => continue,
                Support::Ignored(why) => why,
                Support::Refused(why) => {
                    refused.push((name.to_string(), why.to_string()));
                    continue;
                }
                Support::Values(check) => match check(value.trim()) {
                    Verdict::Same => continue,
                    Verdict::Ignored(why) => why,
                    Verdict::Refused(why) => {
                        refused.push((format!("{name}={value}"), why.to_string()));
                        continue;
                    }
                },
            };
            ignored.push(Ignored {
                name,
                value: value.clone(),
                why,
            });
        }
        if refused.is_empty() {
            Ok(ignored)
        } else {
            Err(FlagsError::Refused(refused))
        }
    }
}

/// The one start-up line naming the flags butte ignores and why.
pub fn ignored_line(ignored: &[Ignored]) -> Option<String> {
    if ignored.is_empty() {
        return None;
    }
    let each: Vec<String> = ignored
        .iter()
        .map(|i| format!("--{} ({})", i.name, i.why))
        .collect();
    Some(format!(
        "ignoring {} Mesos flags butte does not use: {}",
        ignored.len(),
        each.join("; ")
    ))
}

const HEADING_IGNORED: &str = "Mesos agent flags accepted and ignored";
const HEADING_CHECKED: &str = "Mesos agent flags accepted for the values butte behaves as";
const HEADING_REFUSED: &str = "Mesos agent flags refused when set (unsafe to ignore)";

impl clap::FromArgMatches for OtherFlags {
    fn from_arg_matches(m: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let mut out = OtherFlags::default();
        out.update_from_arg_matches(m)?;
        Ok(out)
    }

    fn update_from_arg_matches(&mut self, m: &clap::ArgMatches) -> Result<(), clap::Error> {
        for f in others() {
            if let Some(v) = m.get_one::<String>(f.name) {
                self.set.retain(|(n, _)| *n != f.name);
                self.set.push((f.name, v.clone()));
            }
        }
        Ok(())
    }
}

fn others() -> impl Iterator<Item = &'static MesosFlag> {
    FLAGS
        .iter()
        .filter(|f| !matches!(f.support, Support::Implemented))
}

impl clap::Args for OtherFlags {
    fn augment_args(mut cmd: clap::Command) -> clap::Command {
        for f in others() {
            let (heading, help) = match &f.support {
                Support::Ignored(why) => (HEADING_IGNORED, format!("Ignored: {why}.")),
                Support::Refused(why) => (HEADING_REFUSED, format!("Refused: {why}.")),
                _ => (HEADING_CHECKED, values_help(f.name).to_string()),
            };
            let kind = f.kind;
            let mut arg = clap::Arg::new(f.name)
                .long(f.name)
                .alias(f.name.replace('_', "-"))
                .env(f.env())
                .help_heading(heading)
                .help(help)
                .value_parser(move |s: &str| kind.check(s))
                .action(clap::ArgAction::Set);
            for a in f.aliases {
                arg = arg.alias(*a);
            }
            if kind == Bool {
                arg = arg
                    .value_name("BOOL")
                    .num_args(0..=1)
                    .require_equals(true)
                    .default_missing_value("true");
            } else {
                arg = arg.value_name(kind_name(kind));
            }
            cmd = cmd.arg(arg);
        }
        cmd
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Bool => "BOOL",
        Duration => "DURATION",
        Bytes => "BYTES",
        Int => "NUMBER",
        Float => "NUMBER",
        Str => "VALUE",
        Json => "JSON",
        FilePath => "PATH",
    }
}

fn values_help(name: &str) -> &'static str {
    match name {
        "hostname_lookup" => "Accepted; butte reports --hostname or the system's hostname.",
        "launcher" => "`linux`; butte always uses the Linux launcher.",
        "image_providers" => "`docker` only; `appc` is refused.",
        "docker_ignore_runtime" => "`false`; butte always applies an image's runtime config.",
        "cgroups_enable_cfs" => "`true`; butte always sets a CFS quota.",
        "cgroups_limit_swap" => "`true`; butte's memory limit turns swap off.",
        "disallow_sharing_agent_ipc_namespace" => "`true`; butte never shares it.",
        "disallow_sharing_agent_pid_namespace" => "`true`; butte never shares it.",
        "containerizers" => "`mesos` and `docker`: DOCKER containers run with no daemon.",
        "sandbox_directory" => "Where DOCKER containers see their sandbox; MESOS containers always at `/mnt/mesos/sandbox`.",
        "docker_kill_orphans" => "`true`; butte always destroys containers it does not know.",
        "docker_stop_timeout" => "Grace of a DOCKER task without a kill policy.",
        "enforce_container_ports" => "`false`; `true` is refused (no network/ports isolator).",
        "authorizer" => "`local` only (no authorizer modules).",
        "http_authenticators" => "`basic` only.",
        "http_command_executor" => "Accepted: butte's command executor always speaks HTTP.",
        _ => "Accepted for some values.",
    }
}

/// What [`prepare`] reads besides the command line.
pub trait Sources {
    fn env(&self, name: &str) -> Option<String>;
    fn read(&self, path: &Path) -> std::io::Result<String>;
    fn list(&self, dir: &Path) -> std::io::Result<Vec<String>>;
}

/// The process's environment and files.
pub struct System;

impl Sources for System {
    fn env(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
    fn read(&self, path: &Path) -> std::io::Result<String> {
        std::fs::read_to_string(path)
    }
    fn list(&self, dir: &Path) -> std::io::Result<Vec<String>> {
        let mut names = Vec::new();
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            if e.file_type()?.is_file() {
                names.push(e.file_name().to_string_lossy().into_owned());
            }
        }
        Ok(names)
    }
}

/// butte's own option naming a Mesosphere-style configuration directory.
pub const CONFIG_DIR: &str = "config_dir";

/// Rewrites `butte agent`'s arguments (ARGS, after `agent`) as Mesos reads
/// its flags, into arguments clap reads: `--no-<bool>` becomes
/// `--<bool>=false`, `file://` values are read, the `--config_dir` files
/// and `file://` values of `MESOS_*` variables become arguments. KNOWN
/// says whether a name is an argument of `butte agent` (for config files).
pub fn prepare(
    args: &[OsString],
    known: &dyn Fn(&str) -> bool,
    src: &dyn Sources,
) -> Result<Vec<OsString>, FlagsError> {
    let mut out = Vec::with_capacity(args.len());
    let mut seen = BTreeSet::new();
    let mut dirs = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let Some(arg) = args[i]
            .to_str()
            .filter(|a| a.starts_with("--") && *a != "--")
        else {
            if args[i] == "--" {
                out.extend(args[i..].iter().cloned());
                break;
            }
            out.push(args[i].clone());
            i += 1;
            continue;
        };
        let (raw, value) = match arg[2..].split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (&arg[2..], None),
        };
        let name = raw.replace('-', "_").to_ascii_lowercase();
        if name == CONFIG_DIR {
            let (dir, used) = match value {
                Some(v) => (v, 1),
                None => match args.get(i + 1).and_then(|a| a.to_str()) {
                    Some(v) => (v.to_string(), 2),
                    None => {
                        out.push(args[i].clone());
                        i += 1;
                        continue;
                    }
                },
            };
            dirs.push(PathBuf::from(dir));
            out.extend(args[i..i + used].iter().cloned());
            i += used;
            continue;
        }
        // `--no-NAME` for a boolean.
        if let Some(negated) = name.strip_prefix("no_").and_then(find) {
            if negated.kind != Bool {
                return Err(FlagsError::NotBoolean {
                    flag: negated.name.into(),
                });
            }
            if let Some(v) = value.filter(|v| !v.is_empty()) {
                return Err(FlagsError::NegatedWithValue {
                    flag: negated.name.into(),
                    value: v,
                });
            }
            seen.insert(negated.name.to_string());
            out.push(format!("--{}=false", negated.name).into());
            i += 1;
            continue;
        }
        let Some(flag) = find(&name) else {
            // butte's own arguments and what clap will refuse.
            seen.insert(name);
            out.push(args[i].clone());
            i += 1;
            continue;
        };
        seen.insert(flag.name.to_string());
        match value {
            Some(v) => {
                let v = resolve(flag, &v, src)?;
                out.push(format!("--{raw}={v}").into());
                i += 1;
            }
            None if flag.kind == Bool => {
                out.push(args[i].clone());
                i += 1;
            }
            None => {
                out.push(args[i].clone());
                if let Some(v) = args.get(i + 1).and_then(|a| a.to_str()) {
                    out.push(resolve(flag, v, src)?.into());
                    i += 2;
                } else {
                    i += 1;
                }
            }
        }
    }
    // Configuration directories: below the command line.
    for dir in &dirs {
        for (name, value) in config_dir(dir, known, src)? {
            if seen.insert(name.clone()) {
                out.push(format!("--{name}={value}").into());
            }
        }
    }
    // `MESOS_<NAME>` variables clap reads itself, except `file://` values;
    // those of deprecated names and in lower case (`MESOS_work_dir`) here.
    for flag in FLAGS {
        if seen.contains(flag.name) {
            continue;
        }
        let names = std::iter::once(flag.name).chain(flag.aliases.iter().copied());
        for (k, n) in names.enumerate() {
            let found = src
                .env(&format!("MESOS_{}", n.to_ascii_uppercase()))
                .map(|v| (v, k == 0))
                .or_else(|| src.env(&format!("MESOS_{n}")).map(|v| (v, false)));
            if let Some((v, clap_reads)) = found {
                if !clap_reads || v.starts_with("file://") {
                    let v = resolve(flag, &v, src)?;
                    out.push(format!("--{}={v}", flag.name).into());
                }
                break;
            }
        }
    }
    Ok(out)
}

/// A value as Mesos' `flags::fetch` makes it: `file://PATH` is the file's
/// content, except for paths (the prefix is dropped) and `--master`.
fn resolve(flag: &MesosFlag, value: &str, src: &dyn Sources) -> Result<String, FlagsError> {
    let Some(path) = value.strip_prefix("file://") else {
        return Ok(value.to_string());
    };
    if flag.kind == FilePath {
        return Ok(if flag.name == "master" {
            value.to_string()
        } else {
            path.to_string()
        });
    }
    let text = src
        .read(Path::new(path))
        .map_err(|source| FlagsError::Read {
            flag: flag.name.into(),
            path: path.into(),
            source,
        })?;
    Ok(text.trim().to_string())
}

/// The flags of a Mesosphere-style directory DIR, sorted by file name.
fn config_dir(
    dir: &Path,
    known: &dyn Fn(&str) -> bool,
    src: &dyn Sources,
) -> Result<Vec<(String, String)>, FlagsError> {
    // An absent directory is none (the packaged unit names both
    // Mesosphere directories whether or not they exist).
    let mut names = match src.list(dir) {
        Ok(names) => names,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(FlagsError::ConfigDir {
                dir: dir.into(),
                source,
            })
        }
    };
    names.sort();
    let mut out = Vec::new();
    for file in names {
        if file.starts_with('.') || file.ends_with('~') || file.contains(".dpkg-") {
            continue;
        }
        let path = dir.join(&file);
        let (name, value) = if let Some(b) = file.strip_prefix('?') {
            match b.strip_prefix("no-") {
                Some(n) => (n.to_string(), "false".to_string()),
                None => (b.to_string(), "true".to_string()),
            }
        } else {
            let text = src.read(&path).map_err(|source| FlagsError::Read {
                flag: file.clone(),
                path: path.clone(),
                source,
            })?;
            let name = if file == "zk" { "master" } else { &file };
            (name.to_string(), text.trim().to_string())
        };
        let flag = find(&name);
        let name = flag.map_or(name, |f| f.name.to_string());
        if flag.is_none() && !known(&name) {
            return Err(FlagsError::UnknownConfigFile { path, flag: name });
        }
        let value = match flag {
            Some(f) => resolve(f, &value, src)?,
            None => value,
        };
        out.push((name, value));
    }
    Ok(out)
}

/// `--ip_discovery_command`: runs COMMAND with `sh -c` and reads the IP
/// address it prints, as Mesos does.
pub fn discover_ip(command: &str) -> Result<std::net::IpAddr, FlagsError> {
    let err = |why: String| FlagsError::IpDiscovery {
        command: command.into(),
        why,
    };
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| err(format!("cannot run it: {e}")))?;
    if !out.status.success() {
        return Err(err(format!("it failed: {}", out.status)));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .parse()
        .map_err(|_| err(format!("it printed {:?}, not an IP address", text.trim())))
}

#[cfg(test)]
mod tests;
