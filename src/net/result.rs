//! What CNI plugins answer, as types: the success result of spec 1.0
//! (and of 0.3/0.4, which add `version` to each IP) and the error result.

use serde::{Deserialize, Serialize};

/// A plugin's success result (`ADD`), kept whole in `raw` so that the
/// next plugin of a chain and a later `DEL`/`CHECK` get it back as their
/// `prevResult` unchanged.
#[derive(Debug, Clone, PartialEq)]
pub struct CniResult {
    pub cni_version: String,
    pub interfaces: Vec<Interface>,
    pub ips: Vec<IpConfig>,
    pub routes: Vec<Route>,
    pub dns: Dns,
    /// The JSON the plugin printed.
    pub raw: serde_json::Value,
}

/// One interface a plugin made.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Interface {
    pub name: String,
    #[serde(default)]
    pub mac: String,
    /// The network namespace it is in; empty for the host's.
    #[serde(default)]
    pub sandbox: String,
}

/// One address: `address` in CIDR form (`10.88.0.5/16`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct IpConfig {
    pub address: String,
    #[serde(default)]
    pub gateway: Option<String>,
    /// Index into `interfaces`.
    #[serde(default)]
    pub interface: Option<usize>,
}

impl IpConfig {
    /// The address without its prefix length.
    pub fn ip(&self) -> &str {
        self.address.split('/').next().unwrap_or_default()
    }

    /// Whether it is an IPv6 address.
    pub fn is_v6(&self) -> bool {
        self.ip().contains(':')
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Route {
    pub dst: String,
    #[serde(default)]
    pub gw: Option<String>,
}

/// The DNS settings a plugin suggests.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Dns {
    #[serde(default)]
    pub nameservers: Vec<String>,
    #[serde(default)]
    pub domain: Option<String>,
    #[serde(default)]
    pub search: Vec<String>,
    #[serde(default)]
    pub options: Vec<String>,
}

impl Dns {
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty()
            && self.domain.is_none()
            && self.search.is_empty()
            && self.options.is_empty()
    }
}

#[derive(Deserialize)]
struct Wire {
    #[serde(rename = "cniVersion", default)]
    cni_version: String,
    #[serde(default)]
    interfaces: Vec<Interface>,
    #[serde(default)]
    ips: Vec<IpConfig>,
    #[serde(default)]
    routes: Vec<Route>,
    #[serde(default)]
    dns: Dns,
}

impl CniResult {
    /// Parses a success result; `None` when the bytes are not one.
    pub fn parse(bytes: &[u8]) -> Result<CniResult, serde_json::Error> {
        let raw: serde_json::Value = serde_json::from_slice(bytes)?;
        let w: Wire = serde_json::from_value(raw.clone())?;
        Ok(CniResult {
            cni_version: w.cni_version,
            interfaces: w.interfaces,
            ips: w.ips,
            routes: w.routes,
            dns: w.dns,
            raw,
        })
    }
}

/// A plugin's error result (spec: "Error"), printed on stdout with a
/// non-zero exit.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct PluginError {
    #[serde(default)]
    pub code: u32,
    #[serde(default)]
    pub msg: String,
    #[serde(default)]
    pub details: String,
}

impl PluginError {
    /// The error result in `stdout`, if it holds one.
    pub fn parse(stdout: &[u8]) -> Option<PluginError> {
        let e: PluginError = serde_json::from_slice(stdout).ok()?;
        (e.code != 0 || !e.msg.is_empty()).then_some(e)
    }
}

impl std::fmt::Display for PluginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (code {})", self.msg, self.code)?;
        if !self.details.is_empty() {
            write!(f, ": {}", self.details)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_1_0_result_and_a_0_4_result_parse_alike() {
        let v1 = br#"{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","mac":"aa:bb:cc:dd:ee:ff","sandbox":"/run/x"}],
            "ips":[{"address":"10.88.0.5/16","gateway":"10.88.0.1","interface":0}],
            "routes":[{"dst":"0.0.0.0/0"}],"dns":{"nameservers":["10.0.0.2"],"search":["svc"]}}"#;
        let v04 = br#"{"cniVersion":"0.4.0","interfaces":[{"name":"eth0","mac":"aa:bb:cc:dd:ee:ff","sandbox":"/run/x"}],
            "ips":[{"version":"4","address":"10.88.0.5/16","gateway":"10.88.0.1","interface":0}],
            "routes":[{"dst":"0.0.0.0/0"}],"dns":{"nameservers":["10.0.0.2"],"search":["svc"]}}"#;
        let a = CniResult::parse(v1).unwrap();
        let b = CniResult::parse(v04).unwrap();
        assert_eq!(a.ips, b.ips);
        assert_eq!(a.ips[0].ip(), "10.88.0.5");
        assert!(!a.ips[0].is_v6());
        assert_eq!(a.interfaces[0].sandbox, "/run/x");
        assert_eq!(a.dns.nameservers, vec!["10.0.0.2"]);
        assert_eq!(b.cni_version, "0.4.0");
    }

    #[test]
    fn an_error_result_names_code_message_and_details() {
        let e = PluginError::parse(
            br#"{"cniVersion":"1.0.0","code":7,"msg":"no address","details":"pool full"}"#,
        )
        .unwrap();
        assert_eq!(e.to_string(), "no address (code 7): pool full");
        assert!(PluginError::parse(b"not json").is_none());
        assert!(PluginError::parse(b"{}").is_none());
    }
}
