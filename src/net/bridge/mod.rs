//! butte's built-in bridge, done natively instead of by exec'ing the
//! `bridge`, `host-local` and `portmap` plugins (each exec costs 5-7 ms,
//! and the Go plugins' iptables calls 50-120 ms). It is only ever the
//! network of a config made by butte itself ([`is_builtin`]); a config an
//! operator writes goes through the plugins. What an ADD does:
//!
//! ```text
//!  host namespace                          container namespace (the pin)
//!  butte0 (bridge, gateway/prefix, up)
//!    `- veth<hash> (up, hairpin) ======== eth0 (address, up)
//!                                          default via the gateway
//!  ip_forward = 1, route_localnet on the bridge
//!  nft table ip butte: made with the bridge, rewritten idempotently
//!  when ports are published; ports are elements of its maps
//! ```
//! Addresses come from [`ipam`] (host-local's layout), links over
//! rtnetlink ([`netlink`]), rules from one `nft -f -` batch ([`nft`]).
//! The result is a CNI result (interfaces, IPs, routes), as the plugins
//! would give. DEL needs only the attachment and the ADD's result: the
//! host veth's name comes from the container id.

mod ipam;
mod netlink;
mod nft;

use super::{Attachment, CniResult, NetworkConfig};
use serde_json::{json, Map, Value};
use std::fmt;
use std::fs::{self, File};
use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// The plugin type of the built-in bridge's config.
pub const PLUGIN_TYPE: &str = "butte-bridge";
/// The `file` of a config butte made itself.
pub const BUILTIN_FILE: &str = "<built-in bridge>";

/// Failures of the built-in bridge, each naming its step.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error("built-in bridge config: {0}")]
    Config(String),
    #[error("{step} {name}: {source}")]
    Step {
        step: &'static str,
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("nftables rules: {0}")]
    Nft(String),
}

fn step(step: &'static str, name: impl fmt::Display) -> impl FnOnce(io::Error) -> BridgeError {
    let name = name.to_string();
    move |source| BridgeError::Step { step, name, source }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    Tcp,
    Udp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

/// One published port (the `portMappings` capability's entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PortMapping {
    pub host: u16,
    pub container: u16,
    pub protocol: Protocol,
}

/// The built-in bridge's settings (its plugin config).
#[derive(Debug, Clone, PartialEq)]
pub struct Bridge {
    name: String,
    network: Ipv4Addr,
    prefix: u8,
    gateway: Ipv4Addr,
    data_dir: PathBuf,
}

/// Whether `config` is butte's built-in bridge (and not an operator's).
pub fn is_builtin(config: &NetworkConfig) -> bool {
    config.file == Path::new(BUILTIN_FILE)
        && config.plugins.len() == 1
        && config.plugins[0].get("type").and_then(Value::as_str) == Some(PLUGIN_TYPE)
}

/// The config of a built-in bridge `bridge` on `subnet` (`a.b.c.d/n`,
/// the first address the gateway), network name `name`, allocations
/// under `data_dir`.
pub fn builtin_config(name: &str, bridge: &str, subnet: &str, data_dir: &Path) -> NetworkConfig {
    let json = json!({
        "cniVersion": "1.0.0",
        "name": name,
        "type": PLUGIN_TYPE,
        "bridge": bridge,
        "subnet": subnet,
        "dataDir": data_dir,
    });
    NetworkConfig::parse(Path::new(BUILTIN_FILE), json.to_string().as_bytes())
        .expect("the built-in bridge config parses")
}

impl Bridge {
    /// The settings in a built-in config.
    pub fn from_config(config: &NetworkConfig) -> Result<Bridge, BridgeError> {
        let p = &config.plugins[0];
        let get = |k: &str| {
            p.get(k)
                .and_then(Value::as_str)
                .ok_or_else(|| BridgeError::Config(format!("no {k}")))
        };
        let name = get("bridge")?.to_string();
        let subnet = get("subnet")?;
        let bad = || BridgeError::Config(format!("bad subnet {subnet}"));
        let (net, prefix) = subnet.split_once('/').ok_or_else(bad)?;
        let network: Ipv4Addr = net.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        if !(8..=30).contains(&prefix) {
            return Err(bad());
        }
        let mask = u32::MAX << (32 - prefix);
        let network = Ipv4Addr::from(u32::from(network) & mask);
        Ok(Bridge {
            name,
            network,
            prefix,
            gateway: Ipv4Addr::from(u32::from(network) + 1),
            data_dir: PathBuf::from(get("dataDir")?),
        })
    }

    fn ipam(&self, network: &str) -> ipam::Ipam {
        ipam::Ipam::new(
            &self.data_dir,
            network,
            self.network,
            self.prefix,
            self.gateway,
        )
    }

    /// Attaches the namespace of `att`: see the module doc. On error what
    /// was made is left for [`Bridge::del`].
    pub fn add(&self, network: &str, att: &Attachment) -> Result<CniResult, BridgeError> {
        let ports = port_mappings(&att.runtime_config)?;
        let ip = self
            .ipam(network)
            .allocate(&att.container_id, &att.ifname)
            .map_err(step("allocate an address on", &self.name))?;
        let mut nl = netlink::Netlink::open().map_err(step("open rtnetlink for", &self.name))?;
        let (bridge, made) = self.ensure_bridge(&mut nl)?;
        let host = veth_name(&att.container_id, &att.ifname);
        let ns =
            File::open(&att.netns).map_err(step("open network namespace", att.netns.display()))?;
        match nl.add_veth(&host, bridge.index, &att.ifname, &ns) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                // A repeated ADD: make it anew.
                nl.del_link(&host).map_err(step("remove veth", &host))?;
                nl.add_veth(&host, bridge.index, &att.ifname, &ns)
            }
            r => r,
        }
        .map_err(step("make veth", &host))?;
        let port = nl
            .link(&host)
            .map_err(step("find veth", &host))?
            .ok_or_else(|| step("find veth", &host)(io::ErrorKind::NotFound.into()))?;
        nl.set_hairpin(port.index)
            .map_err(step("set hairpin mode on", &host))?;
        let mut inner = netlink::Netlink::open_in(&att.netns)
            .map_err(step("open rtnetlink in", att.netns.display()))?;
        let eth = inner
            .link(&att.ifname)
            .map_err(step("find", &att.ifname))?
            .ok_or_else(|| step("find", &att.ifname)(io::ErrorKind::NotFound.into()))?;
        inner
            .add_address(eth.index, ip, self.prefix)
            .map_err(step("add address to", &att.ifname))?;
        inner
            .set_up(eth.index)
            .map_err(step("bring up", &att.ifname))?;
        inner
            .add_default_route(eth.index, self.gateway)
            .map_err(step("add default route on", &att.ifname))?;
        let table = || {
            nft::apply(&nft::table(&self.name, self.network, self.prefix)).map_err(BridgeError::Nft)
        };
        if made {
            table()?;
        }
        let publish = || nft::set_elements(true, ip, &ports);
        match publish() {
            // No table: made by an older butte, or the ruleset was flushed.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                table()?;
                publish()
            }
            r => r,
        }
        .map_err(|e| {
            let why = match e.raw_os_error() {
                Some(libc::EEXIST) => "a host port is published already".to_string(),
                _ => e.to_string(),
            };
            BridgeError::Nft(format!("publish ports {}: {why}", describe(&ports)))
        })?;
        let raw = json!({
            "cniVersion": "1.0.0",
            "interfaces": [
                {"name": self.name, "mac": bridge.mac.unwrap_or_default()},
                {"name": host, "mac": port.mac.unwrap_or_default()},
                {"name": att.ifname, "mac": eth.mac.unwrap_or_default(), "sandbox": att.netns},
            ],
            "ips": [{
                "address": format!("{ip}/{}", self.prefix),
                "gateway": self.gateway.to_string(),
                "interface": 2,
            }],
            "routes": [{"dst": "0.0.0.0/0", "gw": self.gateway.to_string()}],
            "dns": {},
        });
        CniResult::parse(raw.to_string().as_bytes())
            .map_err(|e| BridgeError::Config(format!("result: {e}")))
    }

    /// The bridge, made (with its address, up, forwarding on) if missing;
    /// `true` if this call made it.
    fn ensure_bridge(
        &self,
        nl: &mut netlink::Netlink,
    ) -> Result<(netlink::Link, bool), BridgeError> {
        let find = |nl: &mut netlink::Netlink| {
            nl.link(&self.name).map_err(step("find bridge", &self.name))
        };
        let (link, made) = match find(nl)? {
            Some(l) => (l, false),
            None => {
                match nl.add_bridge(&self.name) {
                    Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                        return Err(step("make bridge", &self.name)(e))
                    }
                    _ => {}
                }
                let l = find(nl)?.ok_or_else(|| {
                    step("find bridge", &self.name)(io::ErrorKind::NotFound.into())
                })?;
                (l, true)
            }
        };
        nl.add_address(link.index, self.gateway, self.prefix)
            .map_err(step("add the gateway address to", &self.name))?;
        if made {
            nl.set_up(link.index)
                .map_err(step("bring up", &self.name))?;
            let localnet = format!("/proc/sys/net/ipv4/conf/{}/route_localnet", self.name);
            sysctl(&localnet)?;
        }
        sysctl("/proc/sys/net/ipv4/ip_forward")?;
        Ok((link, made))
    }

    /// Whether the attachment is still there: the host end of its veth.
    pub fn check(&self, att: &Attachment) -> Result<(), BridgeError> {
        let host = veth_name(&att.container_id, &att.ifname);
        match netlink::Netlink::open()
            .and_then(|mut nl| nl.link(&host))
            .map_err(step("find veth", &host))?
        {
            Some(_) => Ok(()),
            None => Err(step("find veth", &host)(io::ErrorKind::NotFound.into())),
        }
    }

    /// Detaches the namespace of `att`: its port elements (only if the
    /// ADD finished: an unfinished one added none, and the keys may be
    /// another container's), its veth (disabled, and gone with the
    /// namespace when the caller unpins it; removed if it is not pinned),
    /// its address. Every step runs; the
    /// first failure is returned.
    pub fn del(
        &self,
        network: &str,
        att: &Attachment,
        added: Option<&Value>,
    ) -> Result<(), BridgeError> {
        let mut first: Option<BridgeError> = None;
        let added = added.and_then(|v| CniResult::parse(v.to_string().as_bytes()).ok());
        let ip: Option<Ipv4Addr> = added
            .as_ref()
            .and_then(|r| r.ips.first())
            .and_then(|i| i.ip().parse().ok());
        match (port_mappings(&att.runtime_config), ip) {
            // One by one if the batch failed: one already gone must not
            // keep the others.
            (Ok(ports), Some(ip))
                if !ports.is_empty() && nft::set_elements(false, ip, &ports).is_err() =>
            {
                for p in &ports {
                    match nft::set_elements(false, ip, std::slice::from_ref(p)) {
                        Err(e) if e.raw_os_error() != Some(libc::ENOENT) => {
                            first.get_or_insert(BridgeError::Nft(format!(
                                "unpublish port {}: {e}",
                                describe(std::slice::from_ref(p))
                            )));
                        }
                        _ => {}
                    }
                }
            }
            (Err(e), _) => first = Some(e),
            _ => {}
        }
        // While the namespace is pinned, its end takes the veth pair with
        // it: the caller unpins it next, and the kernel removes the pair
        // in the background (removing it here would wait 10-20 ms for RCU
        // grace periods). Until then the host end is a disabled bridge
        // port: should anything else still hold the namespace, nothing
        // reaches the released address through it. Without a pin (after a
        // reboot) a veth still there is removed here.
        let host = veth_name(&att.container_id, &att.ifname);
        let gone = netlink::Netlink::open().and_then(|mut nl| {
            if pinned(&att.netns) {
                nl.disable_port(&host)
            } else {
                nl.del_link(&host)
            }
        });
        if let Err(e) = gone.map_err(step("remove veth", &host)) {
            first.get_or_insert(e);
        }
        if let Err(e) = self
            .ipam(network)
            .release(&att.container_id, &att.ifname, ip)
            .map_err(step("release the address of", &att.container_id))
        {
            first.get_or_insert(e);
        }
        first.map_or(Ok(()), Err)
    }
}

/// `8080/tcp, 53/udp`.
fn describe(ports: &[PortMapping]) -> String {
    let list: Vec<String> = ports
        .iter()
        .map(|p| format!("{}/{}", p.host, p.protocol))
        .collect();
    list.join(", ")
}

/// Whether `path` is a pinned namespace (an nsfs file mounted there: its
/// own device, unlike its directory's).
fn pinned(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs::metadata(path), path.parent().map(fs::metadata)) {
        (Ok(m), Some(Ok(p))) => m.dev() != p.dev(),
        _ => false,
    }
}

/// Writes `1` to a sysctl file unless it already says so.
fn sysctl(path: &str) -> Result<(), BridgeError> {
    if fs::read_to_string(path).is_ok_and(|v| v.trim() == "1") {
        return Ok(());
    }
    fs::write(path, "1").map_err(step("set", path))
}

/// The host end of a container's veth: `veth` and 11 hex digits of a
/// hash of the container id and interface (15 bytes, the kernel's
/// limit), the same at every call.
pub(crate) fn veth_name(id: &str, ifname: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{id}/{ifname}").as_bytes());
    let hex = hex::encode(digest);
    format!("veth{}", &hex[..11])
}

/// The `portMappings` capability's entries.
fn port_mappings(runtime_config: &Map<String, Value>) -> Result<Vec<PortMapping>, BridgeError> {
    let Some(list) = runtime_config.get("portMappings") else {
        return Ok(Vec::new());
    };
    let bad = |m: &Value| BridgeError::Config(format!("bad port mapping {m}"));
    let port = |m: &Value, k: &str| {
        m.get(k)
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0)
            .ok_or_else(|| bad(m))
    };
    list.as_array()
        .ok_or_else(|| bad(list))?
        .iter()
        .map(|m| {
            let protocol = match m.get("protocol").and_then(Value::as_str).unwrap_or("tcp") {
                p if p.eq_ignore_ascii_case("tcp") => Protocol::Tcp,
                p if p.eq_ignore_ascii_case("udp") => Protocol::Udp,
                _ => return Err(bad(m)),
            };
            Ok(PortMapping {
                host: port(m, "hostPort")?,
                container: port(m, "containerPort")?,
                protocol,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_butte_s_own_config_is_the_native_bridge() {
        let c = builtin_config(
            "bridge",
            "butte0",
            "10.87.0.0/16",
            Path::new("/w/cni/networks"),
        );
        assert!(is_builtin(&c));
        let b = Bridge::from_config(&c).unwrap();
        assert_eq!(b.gateway, Ipv4Addr::new(10, 87, 0, 1));
        assert_eq!(b.prefix, 16);
        assert_eq!(b.data_dir, Path::new("/w/cni/networks"));
        // The same JSON in an operator's file goes through the plugins.
        let mut op = c.clone();
        op.file = PathBuf::from("/etc/cni/net.d/bridge.conf");
        assert!(!is_builtin(&op));
    }

    #[test]
    fn veth_names_fit_the_kernel_and_are_stable() {
        let a = veth_name("c1", "eth0");
        assert_eq!(a.len(), 15);
        assert_eq!(a, veth_name("c1", "eth0"));
        assert_ne!(a, veth_name("c1", "eth1"));
    }

    #[test]
    fn port_mappings_are_read_and_checked() {
        let rc: Map<String, Value> = serde_json::from_str(
            r#"{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"},{"hostPort":53,"containerPort":53,"protocol":"UDP"}]}"#,
        )
        .unwrap();
        assert_eq!(
            port_mappings(&rc).unwrap(),
            vec![
                PortMapping {
                    host: 8080,
                    container: 80,
                    protocol: Protocol::Tcp
                },
                PortMapping {
                    host: 53,
                    container: 53,
                    protocol: Protocol::Udp
                },
            ]
        );
        let bad: Map<String, Value> =
            serde_json::from_str(r#"{"portMappings":[{"hostPort":70000,"containerPort":80}]}"#)
                .unwrap();
        assert!(port_mappings(&bad)
            .unwrap_err()
            .to_string()
            .contains("bad port mapping"));
        assert!(port_mappings(&Map::new()).unwrap().is_empty());
    }
}
