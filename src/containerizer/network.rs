//! Container networking through CNI, shared by the Mesos containerizer
//! (Mesos' `network/cni` isolator, see `mesos/network.rs`) and `butte run`
//! (`--net`, `-p`): a container on networks gets a network namespace of
//! its own, attached to each network by its CNI plugins, and its own
//! `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf`.
//!
//! ```text
//!  <runtime_dir>/containers/<id>/
//!      netns                 the namespace, pinned (bind mount of nsfs)
//!      network/state.json    what was ADDed: each network's config, ifname,
//!                            arguments and result (written before each
//!                            ADD, so a DEL follows even a half-made one)
//!      network/{hosts,hostname,resolv.conf}   bound into the container
//! ```
//! Everything `DEL` needs is in `state.json`, so it runs the same after a
//! destroy, a failed launch, or at recovery for a container found dead
//! (even if the config file changed since). The runtime dir is a tmpfs:
//! after a reboot the namespace is gone, but IPAM plugins keep allocations
//! in their own data dirs; with `CniConfig::persist_dir`
//! (`--network_cni_root_dir_persist`) `state.json` lives under the work dir
//! instead, and the DEL after a reboot releases them.
//!
//! `CNI_CONTAINERID` is the container id, `CNI_IFNAME` `eth0`, `eth1`, ...
//! in the order the networks are asked for.

use crate::mount::Mount;
use crate::net::{self, Attachment, Cni, CniResult, NetError, NetworkConfig};
use crate::runtime::{create_netns, remove_netns};
use crate::support::atomic_write;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Failures of a container's network setup.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error(transparent)]
    Cni(#[from] NetError),
    #[error("{step} {path}: {source}")]
    Io {
        step: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("network {name}: {reason}")]
    Invalid { name: String, reason: String },
}

/// Where networks and plugins are found (the agent's
/// `--network_cni_config_dir` and `--network_cni_plugins_dir`).
#[derive(Debug, Clone, Default)]
pub struct CniConfig {
    pub config_dir: Option<PathBuf>,
    /// Searched in order, as `CNI_PATH`.
    pub plugin_dirs: Vec<PathBuf>,
    /// `--network_cni_root_dir_persist`: keep each container's state (what
    /// DEL needs) in `<dir>/containers/<id>/state.json`, a directory under
    /// the work dir that survives a reboot, so that DEL releases IPAM
    /// allocations of containers the reboot ended; `None`: in the runtime
    /// dir.
    pub persist_dir: Option<PathBuf>,
}

impl CniConfig {
    /// The network called `name` in the config dir.
    pub fn find(&self, name: &str) -> Result<NetworkConfig, NetworkError> {
        match &self.config_dir {
            Some(dir) => Ok(NetworkConfig::find(dir, name)?),
            None => Err(NetworkError::Invalid {
                name: name.to_string(),
                reason: "no cni config dir is configured".into(),
            }),
        }
    }
}

/// The network `butte run --net bridge` uses when no config names one
/// `bridge` (and the agent's DOCKER BRIDGE mode when
/// `--docker_bridge_network`'s config is absent): butte's own bridge
/// `butte0` on 10.87.0.0/16 (the host, 10.87.0.1, as gateway, outgoing
/// traffic masqueraded, host ports through nftables), made over
/// rtnetlink without CNI plugins (`net::builtin_config`); addresses kept
/// under `data_dir` in host-local's layout.
pub fn default_bridge(data_dir: &Path) -> NetworkConfig {
    net::builtin_config("bridge", "butte0", "10.87.0.0/16", data_dir)
}

/// One network a container asks for.
#[derive(Debug, Clone)]
pub struct NetRequest {
    pub config: NetworkConfig,
    /// Capability arguments (`portMappings`).
    pub runtime_config: Map<String, Value>,
    /// The config's `args`.
    pub args: Map<String, Value>,
    /// What the caller wants back with the result (Mesos: the
    /// `NetworkInfo` asked for, in its JSON form).
    pub info: Value,
}

/// What a launch gets from its networks.
#[derive(Debug)]
pub struct Attached {
    pub netns: PathBuf,
    pub mounts: Vec<Mount>,
    pub results: Vec<CniResult>,
}

/// One network a container is attached to, as recorded.
#[derive(Debug, Clone)]
pub struct AttachedNetwork {
    pub name: String,
    pub info: Value,
    pub result: CniResult,
}

const STATE_VERSION: u32 = 1;

/// One network as attached, on disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    name: String,
    ifname: String,
    config: NetworkConfig,
    runtime_config: Map<String, Value>,
    args: Map<String, Value>,
    /// The caller's `NetRequest::info`.
    info: Value,
    /// The result of the ADD; `None` until it succeeded.
    result: Option<Value>,
}

#[derive(Debug, Serialize, Deserialize)]
struct State {
    version: u32,
    container_id: String,
    netns: PathBuf,
    plugin_dirs: Vec<PathBuf>,
    networks: Vec<Entry>,
}

/// Where a container's state is: in the persist dir when there is one,
/// else in its runtime dir.
fn state_path(persist: Option<&Path>, run_dir: &Path) -> PathBuf {
    match (persist, run_dir.file_name()) {
        (Some(dir), Some(id)) => dir.join("containers").join(id).join("state.json"),
        _ => run_dir.join("network").join("state.json"),
    }
}

fn netns_path(run_dir: &Path) -> PathBuf {
    run_dir.join("netns")
}

/// `portMappings` (the portmap plugin's capability) for
/// `(host port, container port, protocol)` triples.
pub fn port_mappings(ports: &[(u32, u32, String)]) -> Map<String, Value> {
    let mut m = Map::new();
    if !ports.is_empty() {
        let list: Vec<Value> = ports
            .iter()
            .map(|(host, container, proto)| {
                let proto = if proto.is_empty() {
                    "tcp".to_string()
                } else {
                    proto.to_lowercase()
                };
                serde_json::json!({"hostPort": host, "containerPort": container, "protocol": proto})
            })
            .collect();
        m.insert("portMappings".into(), Value::Array(list));
    }
    m
}

/// Attaches container `id` to the networks asked for, in a new network
/// namespace pinned in `run_dir` (which must exist), and writes its
/// `/etc` files (hosts naming `hostname`). On error, what was made is
/// left for [`teardown`], which the caller runs.
pub fn setup(
    cni: &CniConfig,
    run_dir: &Path,
    id: &str,
    hostname: &str,
    requests: Vec<NetRequest>,
) -> Result<Attached, NetworkError> {
    let io_err = |step: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| NetworkError::Io { step, path, source }
    };
    let dir = run_dir.join("network");
    fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
    let netns = netns_path(run_dir);
    let mut state = State {
        version: STATE_VERSION,
        container_id: id.to_string(),
        netns: netns.clone(),
        plugin_dirs: cni.plugin_dirs.clone(),
        networks: Vec::new(),
    };
    let state_file = state_path(cni.persist_dir.as_deref(), run_dir);
    if let Some(parent) = state_file.parent() {
        fs::create_dir_all(parent).map_err(io_err("create", parent))?;
    }
    // No state before the namespace: teardown removes the pin without
    // one, and the state is written before each ADD.
    create_netns(&netns).map_err(io_err("create network namespace", &netns))?;
    let plugins = Cni::new(cni.plugin_dirs.clone());
    let mut results = Vec::new();
    for (i, req) in requests.into_iter().enumerate() {
        let mut entry = Entry {
            name: req.config.name.clone(),
            ifname: format!("eth{i}"),
            runtime_config: req.runtime_config,
            args: req.args,
            info: req.info,
            config: req.config,
            result: None,
        };
        state.networks.push(entry.clone());
        save(&state, &state_file).map_err(io_err("write", &state_file))?;
        let result = plugins.add(&entry.config, &attachment(id, &netns, &entry))?;
        entry.result = Some(result.raw.clone());
        *state.networks.last_mut().expect("just pushed") = entry;
        save(&state, &state_file).map_err(io_err("write", &state_file))?;
        results.push(result);
    }
    let files = [
        ("hosts", hosts(hostname, &results)),
        ("hostname", format!("{hostname}\n")),
        ("resolv.conf", resolv_conf(&results)),
    ];
    for (name, text) in files {
        let path = dir.join(name);
        // Read by nobody before the container starts, and made anew by
        // every launch: no rename or fsync needed (each costs ms).
        fs::write(&path, text.as_bytes()).map_err(io_err("write", &path))?;
    }
    Ok(Attached {
        netns,
        mounts: etc_mounts(run_dir, false),
        results,
    })
}

/// The bind mounts of a networked container's `/etc/hosts`,
/// `/etc/hostname` and `/etc/resolv.conf` (those [`setup`] wrote in its
/// `run_dir`): for the container itself, and for the containers nested in
/// it, which share its network. None for a container without networks.
pub fn etc_mounts(run_dir: &Path, read_only: bool) -> Vec<Mount> {
    let dir = run_dir.join("network");
    ["hosts", "hostname", "resolv.conf"]
        .into_iter()
        .map(|name| (dir.join(name), name))
        .filter(|(path, _)| path.is_file())
        .map(|(path, name)| Mount::bind(&path, Path::new("/etc").join(name), read_only))
        .collect()
}

/// Detaches the container from its networks (`DEL`, each network in
/// reverse order, every one even after a failure) and removes its
/// namespace. Quiet about a container that had none. Errors are logged:
/// teardown runs on paths that cannot fail (destroy, cleanup).
pub fn teardown(cni: &CniConfig, run_dir: &Path) {
    // Also the other place, should the flag have changed since the launch.
    let persisted = state_path(cni.persist_dir.as_deref(), run_dir);
    let local = state_path(None, run_dir);
    let path = if persisted.exists() {
        persisted.clone()
    } else {
        local
    };
    let state: Option<State> = match fs::read(&path) {
        Ok(bytes) => match serde_json::from_slice::<State>(&bytes) {
            Ok(s) if s.version == STATE_VERSION => Some(s),
            Ok(s) => {
                tracing::warn!(path = %path.display(), version = s.version, "network state of an unknown version: no DEL");
                None
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "unreadable network state: no DEL");
                None
            }
        },
        Err(_) => None,
    };
    if let Some(state) = &state {
        let plugins = Cni::new(state.plugin_dirs.clone());
        for entry in state.networks.iter().rev() {
            let att = attachment(&state.container_id, &state.netns, entry);
            if let Err(e) = plugins.del(&entry.config, &att, entry.result.as_ref()) {
                tracing::warn!(container = state.container_id, error = %e, "cni DEL failed");
            }
        }
    }
    let netns = netns_path(run_dir);
    if let Err(e) = remove_netns(&netns) {
        tracing::warn!(path = %netns.display(), error = %e, "network namespace not removed");
    }
    if persisted != state_path(None, run_dir) {
        if let Some(dir) = persisted.parent() {
            match fs::remove_dir_all(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(path = %dir.display(), error = %e, "network state not removed")
                }
            }
        }
    }
}

/// The networks container `run_dir` is attached to, with their results
/// (empty for one on the host's network).
pub fn attached(cni: &CniConfig, run_dir: &Path) -> Vec<AttachedNetwork> {
    let Ok(bytes) = fs::read(state_path(cni.persist_dir.as_deref(), run_dir)) else {
        return Vec::new();
    };
    let Ok(state) = serde_json::from_slice::<State>(&bytes) else {
        return Vec::new();
    };
    state
        .networks
        .into_iter()
        .filter_map(|e| {
            let raw = serde_json::to_vec(e.result.as_ref()?).ok()?;
            Some(AttachedNetwork {
                name: e.name,
                info: e.info,
                result: CniResult::parse(&raw).ok()?,
            })
        })
        .collect()
}

fn save(state: &State, path: &Path) -> std::io::Result<()> {
    let json = serde_json::to_vec_pretty(state).expect("network state serializes");
    atomic_write(path, &json)
}

fn attachment(id: &str, netns: &Path, e: &Entry) -> Attachment {
    Attachment {
        container_id: id.to_string(),
        netns: netns.to_path_buf(),
        ifname: e.ifname.clone(),
        cni_args: Vec::new(),
        runtime_config: e.runtime_config.clone(),
        args: Some(e.args.clone()),
    }
}

/// `/etc/hosts`: localhost, and the hostname at each address.
fn hosts(hostname: &str, results: &[CniResult]) -> String {
    let mut s = String::from("127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n");
    for ip in results.iter().flat_map(|r| &r.ips) {
        s.push_str(&format!("{} {hostname}\n", ip.ip()));
    }
    s
}

/// `/etc/resolv.conf`: the first DNS settings a network gave, else the
/// host's.
fn resolv_conf(results: &[CniResult]) -> String {
    match results.iter().map(|r| &r.dns).find(|d| !d.is_empty()) {
        Some(dns) => {
            let mut s = String::new();
            for n in &dns.nameservers {
                s.push_str(&format!("nameserver {n}\n"));
            }
            if let Some(d) = &dns.domain {
                s.push_str(&format!("domain {d}\n"));
            }
            if !dns.search.is_empty() {
                s.push_str(&format!("search {}\n", dns.search.join(" ")));
            }
            if !dns.options.is_empty() {
                s.push_str(&format!("options {}\n", dns.options.join(" ")));
            }
            s
        }
        None => fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_bridge_is_the_built_in_one() {
        let c = default_bridge(Path::new("/var/lib/butte/cni"));
        assert_eq!(
            state_path(
                Some(Path::new("/w/cni")),
                Path::new("/run/butte/containers/c1")
            ),
            Path::new("/w/cni/containers/c1/state.json")
        );
        assert_eq!(
            state_path(None, Path::new("/run/butte/containers/c1")),
            Path::new("/run/butte/containers/c1/network/state.json")
        );
        assert_eq!(c.name, "bridge");
        assert!(net::is_builtin(&c));
        assert_eq!(c.plugins[0]["bridge"], "butte0");
        assert_eq!(c.plugins[0]["dataDir"], "/var/lib/butte/cni");
    }

    #[test]
    fn port_mappings_become_the_portmap_capability() {
        let rc = port_mappings(&[(8080, 80, "TCP".into()), (5353, 53, String::new())]);
        assert_eq!(
            Value::Object(rc),
            serde_json::json!({"portMappings":[
                {"hostPort":8080,"containerPort":80,"protocol":"tcp"},
                {"hostPort":5353,"containerPort":53,"protocol":"tcp"}]})
        );
        assert!(port_mappings(&[]).is_empty());
    }

    #[test]
    fn etc_files_carry_the_addresses_and_the_dns_of_the_result() {
        let r = CniResult::parse(
            br#"{"cniVersion":"1.0.0","ips":[{"address":"10.88.0.5/16"}],"dns":{"nameservers":["10.88.0.1"],"search":["a","b"],"options":["ndots:2"]}}"#,
        )
        .unwrap();
        assert_eq!(
            hosts("web", std::slice::from_ref(&r)),
            "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n10.88.0.5 web\n"
        );
        assert_eq!(
            resolv_conf(&[r]),
            "nameserver 10.88.0.1\nsearch a b\noptions ndots:2\n"
        );
    }
}
