//! `--master` values: `HOST:PORT`, `zk://...`, `file:///path`.

use super::error::DetectorError;
use crate::wire::Upid;
use std::net::{SocketAddr, ToSocketAddrs};

/// Where the leading master is found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MasterSpec {
    /// One master, always the leader.
    Static(Upid),
    /// The masters' group in ZooKeeper.
    ZooKeeper(ZkUrl),
}

/// A parsed `zk://[user:pass@]host1:port1,host2:port2/path`.
#[derive(Clone, PartialEq, Eq)]
pub struct ZkUrl {
    /// `host1:port1,host2:port2`, as ZooKeeper clients take it.
    pub servers: String,
    /// The group's znode, absolute, without a trailing `/` (but `/`).
    pub path: String,
    /// `user:pass`, added to the session as `digest` authentication.
    pub digest: Option<String>,
}

impl std::fmt::Debug for ZkUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZkUrl")
            .field("servers", &self.servers)
            .field("path", &self.path)
            .field("digest", &self.digest.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl std::fmt::Display for ZkUrl {
    /// The URL without its credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let auth = if self.digest.is_some() { "*:*@" } else { "" };
        write!(f, "zk://{auth}{}{}", self.servers, self.path)
    }
}

impl MasterSpec {
    /// Parses `--master`; a `file://` value is read (and its content, with
    /// surrounding whitespace trimmed, parsed as one of the other forms).
    /// A `HOST:PORT` is resolved here, to an IPv4 address.
    pub fn parse(master: &str) -> Result<MasterSpec, DetectorError> {
        let master = master.trim();
        if let Some(path) = master.strip_prefix("file://") {
            let text = std::fs::read_to_string(path).map_err(|source| DetectorError::File {
                path: path.to_string(),
                source,
            })?;
            let text = text.trim();
            if text.starts_with("file://") {
                return Err(DetectorError::spec(
                    master,
                    "the file names another file; it must hold HOST:PORT or zk://",
                ));
            }
            return MasterSpec::parse(text);
        }
        if master.starts_with("zk://") {
            return ZkUrl::parse(master).map(MasterSpec::ZooKeeper);
        }
        if master.contains("://") {
            return Err(DetectorError::spec(
                master,
                "unknown scheme; give HOST:PORT, zk://HOSTS/PATH or file:///PATH",
            ));
        }
        let hostport = master.strip_prefix("master@").unwrap_or(master);
        let addr = hostport
            .to_socket_addrs()
            .map_err(|e| DetectorError::spec(master, e.to_string()))?
            .find(SocketAddr::is_ipv4)
            .ok_or_else(|| DetectorError::spec(master, "no IPv4 address"))?;
        Ok(MasterSpec::Static(Upid::new("master", addr)))
    }

    /// An address on the way to the masters (for choosing which local IP
    /// to advertise): the master itself, or the first ZooKeeper server.
    pub fn route_hint(&self) -> Option<SocketAddr> {
        match self {
            MasterSpec::Static(pid) => Some(pid.addr),
            MasterSpec::ZooKeeper(url) => url
                .servers
                .split(',')
                .find_map(|s| s.to_socket_addrs().ok()?.find(SocketAddr::is_ipv4)),
        }
    }
}

impl ZkUrl {
    /// Parses `zk://[user:pass@]servers[/path]` as Mesos does: the
    /// credentials end at the `@` before the first `/`, the path (default
    /// `/`) starts at that `/`.
    pub fn parse(url: &str) -> Result<ZkUrl, DetectorError> {
        let err = |reason: &str| DetectorError::spec(url, reason);
        let rest = url
            .strip_prefix("zk://")
            .ok_or_else(|| err("a ZooKeeper URL starts with zk://"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (digest, servers) = match authority.rsplit_once('@') {
            Some((creds, servers)) => {
                if !creds.contains(':') {
                    return Err(err("credentials must be user:pass"));
                }
                (Some(creds.to_string()), servers)
            }
            None => (None, authority),
        };
        if servers.is_empty() {
            return Err(err("no ZooKeeper servers"));
        }
        for server in servers.split(',') {
            let Some((host, port)) = server.rsplit_once(':') else {
                return Err(err("each server must be HOST:PORT"));
            };
            if host.is_empty() || port.parse::<u16>().is_err() {
                return Err(err("each server must be HOST:PORT"));
            }
        }
        let path = if path.len() > 1 {
            path.trim_end_matches('/')
        } else {
            path
        };
        if path.contains("//") || path.split('/').any(|p| p == "." || p == "..") {
            return Err(err("the path is not a valid znode path"));
        }
        if path.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(err("the path contains whitespace or a control character"));
        }
        Ok(ZkUrl {
            servers: servers.to_string(),
            path: path.to_string(),
            digest,
        })
    }
}

/// The `--master` value with a `zk://` URL's credentials hidden.
pub fn redact(master: &str) -> String {
    match master.strip_prefix("zk://") {
        Some(rest) => {
            let end = rest.find('/').unwrap_or(rest.len());
            match rest[..end].rfind('@') {
                Some(at) => format!("zk://*:*@{}", &rest[at + 1..]),
                None => master.to_string(),
            }
        }
        None => master.to_string(),
    }
}
