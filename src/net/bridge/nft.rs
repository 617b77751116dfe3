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
use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};
use std::io::{self, Write};
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

/// Adds (`add`: true) or removes the elements of `ports` to `ip` in one
/// nftables batch over netlink (`NFT_MSG_NEWSETELEM`/`DELSETELEM`): an
/// `nft` run costs ~16 ms here, most of it building its cache. The kernel
/// error is returned as is (`ENOENT`: no table or element; `EEXIST`: the
/// host port is published already).
pub(super) fn set_elements(add: bool, ip: Ipv4Addr, ports: &[PortMapping]) -> io::Result<()> {
    if ports.is_empty() {
        return Ok(());
    }
    let mut socket = Socket::new(NETLINK_NETFILTER)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    let mut buf = Vec::new();
    let mut seq = 0u32;
    message(
        &mut buf,
        NFNL_MSG_BATCH_BEGIN,
        0,
        seq,
        AF_UNSPEC,
        NFNL_SUBSYS_NFTABLES,
        &[],
    );
    for p in ports {
        seq += 1;
        let mut elem = Vec::new();
        let key = p.host.to_be_bytes();
        attr(
            &mut elem,
            NFTA_SET_ELEM_KEY | NLA_F_NESTED,
            &nla(NFTA_DATA_VALUE, &key),
        );
        if add {
            let mut data = ip.octets().to_vec();
            data.extend_from_slice(&p.container.to_be_bytes());
            data.extend_from_slice(&[0, 0]);
            attr(
                &mut elem,
                NFTA_SET_ELEM_DATA | NLA_F_NESTED,
                &nla(NFTA_DATA_VALUE, &data),
            );
        }
        let mut body = Vec::new();
        attr(&mut body, NFTA_SET_ELEM_LIST_TABLE, &cstr(TABLE));
        attr(
            &mut body,
            NFTA_SET_ELEM_LIST_SET,
            &cstr(&format!("{}-ports", p.protocol)),
        );
        let list = nla(NFTA_LIST_ELEM | NLA_F_NESTED, &elem);
        attr(&mut body, NFTA_SET_ELEM_LIST_ELEMENTS | NLA_F_NESTED, &list);
        let (kind, flags) = if add {
            (NFT_MSG_NEWSETELEM, NLM_F_CREATE)
        } else {
            (NFT_MSG_DELSETELEM, 0)
        };
        let kind = (u16::from(NFNL_SUBSYS_NFTABLES) << 8) | kind;
        message(&mut buf, kind, NLM_F_ACK | flags, seq, AF_INET, 0, &body);
    }
    message(
        &mut buf,
        NFNL_MSG_BATCH_END,
        0,
        seq + 1,
        AF_UNSPEC,
        NFNL_SUBSYS_NFTABLES,
        &[],
    );
    socket.send(&buf, 0)?;
    // One acknowledgement per element message, or the first error.
    let mut acked = 0;
    while acked < ports.len() {
        let (bytes, _) = socket.recv_from_full()?;
        let mut at = 0;
        while at + 16 <= bytes.len() {
            let len = u32::from_ne_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
            let kind = u16::from_ne_bytes(bytes[at + 4..at + 6].try_into().expect("2 bytes"));
            if len < 16 || at + len > bytes.len() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "bad netlink message",
                ));
            }
            if kind == NLMSG_ERROR && len >= 20 {
                let code = i32::from_ne_bytes(bytes[at + 16..at + 20].try_into().expect("4 bytes"));
                if code != 0 {
                    return Err(io::Error::from_raw_os_error(-code));
                }
                acked += 1;
            }
            at += (len + 3) & !3;
        }
    }
    Ok(())
}

const NLA_F_NESTED: u16 = 0x8000;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLM_F_CREATE: u16 = 0x400;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFNL_SUBSYS_NFTABLES: u8 = 10;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_DELSETELEM: u16 = 14;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const AF_UNSPEC: u8 = 0;
const AF_INET: u8 = 2;

/// A netlink message: header, `nfgenmsg` (family, version 0, resource id
/// in network order) and attributes.
fn message(buf: &mut Vec<u8>, kind: u16, flags: u16, seq: u32, family: u8, res: u8, attrs: &[u8]) {
    let len = 16 + 4 + attrs.len();
    buf.extend_from_slice(&(len as u32).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(&(NLM_F_REQUEST | flags).to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes());
    buf.extend_from_slice(&[family, 0]);
    buf.extend_from_slice(&u16::from(res).to_be_bytes());
    buf.extend_from_slice(attrs);
}

/// One attribute, padded to 4 bytes.
fn attr(buf: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    buf.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(payload);
    while buf.len() % 4 != 0 {
        buf.push(0);
    }
}

fn nla(kind: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    attr(&mut v, kind, payload);
    v
}

fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn an_element_is_the_host_port_to_address_and_port() {
        let mut buf = Vec::new();
        attr(&mut buf, NFTA_SET_ELEM_LIST_SET, &cstr("tcp-ports"));
        // 4 bytes of header, 10 of name and NUL, padded to 16.
        assert_eq!(buf.len(), 16);
        assert_eq!(&buf[..4], &[14, 0, 2, 0]);
        assert_eq!(&buf[4..14], b"tcp-ports\0");
        let mut msg = Vec::new();
        message(&mut msg, 0x0a0c, NLM_F_ACK, 7, AF_INET, 0, &buf);
        assert_eq!(msg.len(), 16 + 4 + 16);
        assert_eq!(u32::from_ne_bytes(msg[..4].try_into().unwrap()), 36);
        assert_eq!(
            u16::from_ne_bytes(msg[6..8].try_into().unwrap()),
            NLM_F_REQUEST | NLM_F_ACK
        );
        assert_eq!(&msg[16..20], &[AF_INET, 0, 0, 0]);
    }
}
