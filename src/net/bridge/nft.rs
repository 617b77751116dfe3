//! The built-in bridge's netfilter rules: one nftables table, `ip butte`,
//! shared by all containers and written idempotently; a container's port
//! mappings are elements of its two maps (host port -> address . port),
//! added and removed by key in one `nft -f -` batch.
//!
//! ```text
//!  table ip butte
//!    map tcp-ports, udp-ports   host port : container address . port
//!    prerouting, output (nat)   to a local address: dnat through the maps
//!    postrouting (nat)          from the subnet out of it: masquerade;
//!                               dnat'ed from the subnet or localhost to
//!                               the bridge: masquerade (hairpin, localhost)
//! ```
//! Rewriting the table flushes its chains' rules and writes them again;
//! the maps (other containers' ports) stay.

use super::PortMapping;
use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

pub(super) const TABLE: &str = "butte";

/// The batch that makes (or remakes) the table for bridge `bridge` and
/// subnet `net/prefix`.
pub(super) fn table(bridge: &str, net: Ipv4Addr, prefix: u8) -> String {
    let subnet = format!("{net}/{prefix}");
    let mut s = format!(
        "table ip {TABLE} {{\n\
         \x20 map tcp-ports {{ type inet_service : ipv4_addr . inet_service; }}\n\
         \x20 map udp-ports {{ type inet_service : ipv4_addr . inet_service; }}\n\
         \x20 chain prerouting {{ type nat hook prerouting priority dstnat; policy accept; }}\n\
         \x20 chain output {{ type nat hook output priority -100; policy accept; }}\n\
         \x20 chain postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}\n\
         }}\n"
    );
    for chain in ["prerouting", "output", "postrouting"] {
        s.push_str(&format!("flush chain ip {TABLE} {chain}\n"));
    }
    for chain in ["prerouting", "output"] {
        for proto in ["tcp", "udp"] {
            s.push_str(&format!(
                "add rule ip {TABLE} {chain} fib daddr type local dnat to {proto} dport map @{proto}-ports\n"
            ));
        }
    }
    s.push_str(&format!(
        "add rule ip {TABLE} postrouting ip saddr {subnet} ip daddr != {{ {subnet}, 224.0.0.0/4 }} masquerade\n\
         add rule ip {TABLE} postrouting oifname \"{bridge}\" ct status dnat ip saddr {{ {subnet}, 127.0.0.0/8 }} masquerade\n"
    ));
    s
}

/// Adds (`add`) or removes (`delete`) the elements of `ports` to `ip`.
pub(super) fn elements(verb: &str, ip: Ipv4Addr, ports: &[PortMapping]) -> String {
    let mut s = String::new();
    for p in ports {
        let value = if verb == "add" {
            format!(" : {ip} . {}", p.container)
        } else {
            String::new()
        };
        s.push_str(&format!(
            "{verb} element ip {TABLE} {}-ports {{ {}{value} }}\n",
            p.protocol, p.host
        ));
    }
    s
}

/// Runs `nft -f -` with `script`; the error is nft's own message.
pub(super) fn apply(script: &str) -> Result<(), String> {
    let mut child = Command::new(nft())
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("run {}: {e}", nft()))?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let written = stdin.write_all(script.as_bytes());
    drop(stdin);
    let out = child
        .wait_with_output()
        .map_err(|e| format!("wait for nft: {e}"))?;
    if out.status.success() {
        return written.map_err(|e| format!("write to nft: {e}"));
    }
    Err(format!(
        "nft {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    ))
}

/// `nft` where Debian puts it, else from `PATH`.
fn nft() -> &'static str {
    ["/usr/sbin/nft", "/sbin/nft"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or("nft")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::bridge::Protocol;

    #[test]
    fn the_table_flushes_its_chains_and_keeps_its_maps() {
        let t = table("butte0", Ipv4Addr::new(10, 87, 0, 0), 16);
        assert!(t.starts_with("table ip butte {\n  map tcp-ports {"));
        assert!(t.contains("flush chain ip butte postrouting\n"));
        assert!(!t.contains("flush table"));
        assert!(t.contains(
            "add rule ip butte prerouting fib daddr type local dnat to tcp dport map @tcp-ports\n"
        ));
        assert!(t.contains(
            "ip saddr 10.87.0.0/16 ip daddr != { 10.87.0.0/16, 224.0.0.0/4 } masquerade\n"
        ));
        assert!(t.contains(
            "oifname \"butte0\" ct status dnat ip saddr { 10.87.0.0/16, 127.0.0.0/8 } masquerade\n"
        ));
    }

    #[test]
    fn port_mappings_are_map_elements_keyed_by_host_port() {
        let ports = [
            PortMapping {
                host: 8080,
                container: 80,
                protocol: Protocol::Tcp,
            },
            PortMapping {
                host: 5353,
                container: 53,
                protocol: Protocol::Udp,
            },
        ];
        let ip = Ipv4Addr::new(10, 87, 0, 5);
        assert_eq!(
            elements("add", ip, &ports),
            "add element ip butte tcp-ports { 8080 : 10.87.0.5 . 80 }\n\
             add element ip butte udp-ports { 5353 : 10.87.0.5 . 53 }\n"
        );
        assert_eq!(
            elements("delete", ip, &ports),
            "delete element ip butte tcp-ports { 8080 }\n\
             delete element ip butte udp-ports { 5353 }\n"
        );
    }
}
