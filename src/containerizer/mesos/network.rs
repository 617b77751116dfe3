//! Mesos' `network/cni` isolator on top of `containerizer::network`: the
//! networks of `ContainerInfo.network_infos[].name` (unnamed entries mean
//! the host's network), found in `--network_cni_config_dir`. As Mesos
//! passes them: the `NetworkInfo` (with its labels) in the config's
//! `args."org.apache.mesos".network_info`, its `port_mappings` as the
//! `portMappings` capability (the `portmap` plugin), the hostname from
//! `ContainerInfo.hostname`, else the container id. Statuses report each
//! network's `NetworkInfo` with the addresses its plugins gave.

use super::error::ContainerizerError;
use super::{ExecutorKind, LaunchRequest};
use crate::containerizer::network::{self, Attached, CniConfig, NetRequest};
use crate::proto::mesos::network_info::{IpAddress, Protocol};
use crate::proto::mesos::{ContainerInfo, NetworkInfo};
use crate::proto::{from_json, to_json};
use serde_json::{Map, Value};
use std::path::Path;

/// The container info whose networks count: for the command executor its
/// task's, else the executor's.
fn container_info(req: &LaunchRequest) -> Option<&ContainerInfo> {
    let task = match req.kind {
        ExecutorKind::Command => req.tasks.first().and_then(|t| t.container.as_ref()),
        _ => None,
    };
    task.or(req.executor.container.as_ref())
}

/// The named networks a launch asks for.
fn requested(req: &LaunchRequest) -> Vec<NetworkInfo> {
    container_info(req)
        .map(|c| {
            c.network_infos
                .iter()
                .filter(|n| n.name.as_deref().is_some_and(|s| !s.is_empty()))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// Attaches the container to its networks; `None` when it asks for none
/// (it shares the host's). Every network is found before anything is
/// made; on a later error what was made is left for the caller's
/// `remove_run_dir`. Returns the attachment and the hostname.
/// `builtin_bridge`: a network name that, when no config has it, means
/// butte's built-in bridge (DOCKER containers' BRIDGE mode), and where
/// that bridge's IPAM keeps its data.
pub fn setup(
    config: &CniConfig,
    run_dir: &Path,
    req: &LaunchRequest,
    builtin_bridge: Option<(&str, &Path)>,
) -> Result<Option<(Attached, String)>, ContainerizerError> {
    let infos = requested(req);
    if infos.is_empty() {
        return Ok(None);
    }
    let id = req.container_id.as_str();
    let err = |source| ContainerizerError::Network {
        id: id.to_string(),
        source: Box::new(source),
    };
    let mut requests = Vec::new();
    for info in &infos {
        let name = info.name.clone().unwrap_or_default();
        let found = match (config.find(&name), builtin_bridge) {
            (Err(_), Some((bridge, data))) if bridge == name => Ok(network::default_bridge(data)),
            (found, _) => found,
        };
        requests.push(NetRequest {
            config: found.map_err(err)?,
            runtime_config: network::port_mappings(&ports(info)),
            args: mesos_args(info),
            info: to_json(info),
        });
    }
    let hostname = container_info(req)
        .and_then(|c| c.hostname.clone())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| id.to_string());
    let attached = network::setup(config, run_dir, id, &hostname, requests).map_err(err)?;
    Ok(Some((attached, hostname)))
}

/// The `network_infos` of a container's status.
pub fn network_infos(config: &CniConfig, run_dir: &Path) -> Vec<NetworkInfo> {
    network::attached(config, run_dir)
        .into_iter()
        .map(|a| {
            let mut info: NetworkInfo = serde_json::to_vec(&a.info)
                .ok()
                .and_then(|b| from_json(&b).ok())
                .unwrap_or_default();
            info.name = Some(a.name);
            info.ip_addresses = a
                .result
                .ips
                .iter()
                .map(|ip| IpAddress {
                    protocol: Some(if ip.is_v6() {
                        Protocol::IPv6 as i32
                    } else {
                        Protocol::IPv4 as i32
                    }),
                    ip_address: Some(ip.ip().to_string()),
                })
                .collect();
            info
        })
        .collect()
}

fn ports(info: &NetworkInfo) -> Vec<(u32, u32, String)> {
    info.port_mappings
        .iter()
        .map(|p| {
            (
                p.host_port,
                p.container_port,
                p.protocol.clone().unwrap_or_default(),
            )
        })
        .collect()
}

/// The config's `args`, as Mesos sets them.
fn mesos_args(info: &NetworkInfo) -> Map<String, Value> {
    let mut mesos = Map::new();
    mesos.insert("network_info".into(), to_json(info));
    let mut args = Map::new();
    args.insert("org.apache.mesos".into(), Value::Object(mesos));
    args
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::mesos::network_info::PortMapping;
    use crate::proto::mesos::{Label, Labels};

    #[test]
    fn port_mappings_and_labels_become_capability_and_args() {
        let info = NetworkInfo {
            name: Some("blue".into()),
            labels: Some(Labels {
                labels: vec![Label {
                    key: "rack".into(),
                    value: Some("r1".into()),
                }],
            }),
            port_mappings: vec![PortMapping {
                host_port: 8080,
                container_port: 80,
                protocol: Some("TCP".into()),
            }],
            ..Default::default()
        };
        assert_eq!(
            Value::Object(network::port_mappings(&ports(&info))),
            serde_json::json!({"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]})
        );
        let args = Value::Object(mesos_args(&info));
        let ni = &args["org.apache.mesos"]["network_info"];
        assert_eq!(ni["name"], "blue");
        assert_eq!(ni["labels"]["labels"][0]["key"], "rack");
        assert_eq!(ni["labels"]["labels"][0]["value"], "r1");
    }
}
