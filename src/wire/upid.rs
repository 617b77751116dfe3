//! A libprocess process id: `id@ip:port`, e.g. `slave(1)@10.0.0.2:5051`.
//!
//! libprocess prints a pid as the id, `@`, then the IPv4 address and port.
//! Its parser cuts the id at the first `@` and the host at the next `:`,
//! resolves a host name if the host is not an IPv4 literal, and reads the
//! port leniently. This one is stricter, because the text comes from the
//! network: the host must be an IPv4 literal, the port all digits and at
//! most 65535, and no whitespace or control character may appear (a pid is
//! written into request lines and headers). The id may be empty, as in
//! libprocess.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::str::FromStr;

use super::error::WireError;

/// A libprocess peer: a process `id` at a socket address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Upid {
    pub id: String,
    pub addr: SocketAddr,
}

impl Upid {
    pub fn new(id: impl Into<String>, addr: SocketAddr) -> Self {
        Upid {
            id: id.into(),
            addr,
        }
    }
}

impl fmt::Display for Upid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.id, self.addr)
    }
}

impl FromStr for Upid {
    type Err = WireError;

    fn from_str(text: &str) -> Result<Self, WireError> {
        let err = |reason| WireError::upid(text, reason);
        if text.is_empty() {
            return Err(err("empty"));
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(err("contains whitespace or a control character"));
        }
        let (id, hostport) = text.split_once('@').ok_or_else(|| err("missing '@'"))?;
        let (host, port) = hostport
            .split_once(':')
            .ok_or_else(|| err("missing ':' before the port"))?;
        let ip: Ipv4Addr = host
            .parse()
            .map_err(|_| err("host is not an IPv4 address"))?;
        if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err("port is not a number"));
        }
        let port: u16 = port.parse().map_err(|_| err("port is above 65535"))?;
        Ok(Upid {
            id: id.to_string(),
            addr: SocketAddr::V4(SocketAddrV4::new(ip, port)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upid(s: &str) -> Result<Upid, WireError> {
        s.parse()
    }

    #[test]
    fn parses_and_prints_the_libprocess_form() {
        let p = upid("slave(1)@10.0.0.2:5051").unwrap();
        assert_eq!(p.id, "slave(1)");
        assert_eq!(p.addr, "10.0.0.2:5051".parse().unwrap());
        assert_eq!(p.to_string(), "slave(1)@10.0.0.2:5051");
        let m = upid("master@127.0.0.1:5050").unwrap();
        assert_eq!(m, Upid::new("master", "127.0.0.1:5050".parse().unwrap()));
    }

    #[test]
    fn an_empty_id_is_allowed_as_in_libprocess() {
        let p = upid("@127.0.0.1:1").unwrap();
        assert_eq!(p.id, "");
        assert_eq!(p.to_string(), "@127.0.0.1:1");
    }

    #[test]
    fn the_id_ends_at_the_first_at_sign() {
        assert!(upid("a@b@1.2.3.4:5").is_err(), "host 'b@1.2.3.4' is no IP");
    }

    #[test]
    fn rejects_what_libprocess_would_misread_or_resolve() {
        let reason = |s: &str| match upid(s) {
            Err(WireError::Upid { reason, .. }) => reason,
            other => panic!("{s:?} parsed as {other:?}"),
        };
        assert_eq!(reason(""), "empty");
        assert_eq!(reason("master"), "missing '@'");
        assert_eq!(reason("master@10.0.0.1"), "missing ':' before the port");
        assert_eq!(
            reason("master@localhost:5050"),
            "host is not an IPv4 address"
        );
        assert_eq!(reason("master@[::1]:5050"), "host is not an IPv4 address");
        assert_eq!(reason("master@10.0.0.1:"), "port is not a number");
        assert_eq!(reason("master@10.0.0.1:50a"), "port is not a number");
        assert_eq!(reason("master@10.0.0.1:-1"), "port is not a number");
        assert_eq!(reason("master@10.0.0.1:123456"), "port is not a number");
        assert_eq!(reason("master@10.0.0.1:65536"), "port is above 65535");
        assert_eq!(
            reason("master@10.0.0.1:5050 extra"),
            "contains whitespace or a control character"
        );
        assert_eq!(
            reason("mas\r\nter@10.0.0.1:5050"),
            "contains whitespace or a control character"
        );
    }
}
