//! The masters' group: children names to members, the leader, and what
//! the leader's node holds.

use super::error::DetectorError;
use crate::proto::mesos::MasterInfo;
use crate::wire::Upid;
use std::net::{Ipv4Addr, SocketAddr};

/// The label of a member whose node holds its `MasterInfo` as JSON.
pub const JSON_LABEL: &str = "json.info";
/// The label of a member whose node holds its `MasterInfo` as protobuf.
pub const PROTOBUF_LABEL: &str = "info";

/// A member of the group: a sequential child `[label_]sequence`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub label: Option<String>,
    pub sequence: i32,
    /// The child's name, as listed.
    pub name: String,
}

/// Parses a child's name as Mesos' group does: split at `_`; the last
/// piece is the sequence, the first (if there is more than one) the label.
/// Anything else (log replicas, a stray node) is not a member.
pub fn member(name: &str) -> Option<Member> {
    let pieces: Vec<&str> = name.split('_').filter(|p| !p.is_empty()).collect();
    let sequence = pieces.last()?;
    if !sequence.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let sequence: i32 = sequence.parse().ok()?;
    Some(Member {
        label: (pieces.len() > 1).then(|| pieces[0].to_string()),
        sequence,
        name: name.to_string(),
    })
}

/// The leader among the children: the member with the lowest sequence.
pub fn leader<S: AsRef<str>>(children: &[S]) -> Option<Member> {
    children
        .iter()
        .filter_map(|c| member(c.as_ref()))
        .min_by_key(|m| m.sequence)
}

/// The leader's pid from its node's data, by the member's label.
pub fn leader_pid(member: &Member, data: &[u8]) -> Result<Upid, DetectorError> {
    let err = |reason: String| DetectorError::leader(&member.name, reason);
    let info = match member.label.as_deref() {
        None => {
            let text =
                std::str::from_utf8(data).map_err(|_| err("the pid is not UTF-8".to_string()))?;
            return text.trim().parse().map_err(|e| err(format!("{e}")));
        }
        Some(JSON_LABEL) => {
            master_info_json(data).map_err(|e| err(format!("not a MasterInfo in JSON: {e}")))?
        }
        Some(PROTOBUF_LABEL) => crate::proto::decode::<MasterInfo>(data)
            .map_err(|e| err(format!("not a MasterInfo in protobuf: {e}")))?,
        Some(other) => return Err(err(format!("unknown label {other:?}"))),
    };
    pid_of(&info).map_err(err)
}

/// A `MasterInfo` from JSON, ignoring top-level fields this build does not
/// know (a newer master's), as Mesos' JSON parser ignores them.
fn master_info_json(data: &[u8]) -> Result<MasterInfo, String> {
    use prost_reflect::ReflectMessage;
    let mut value: serde_json::Value = serde_json::from_slice(data).map_err(|e| e.to_string())?;
    if let Some(fields) = value.as_object_mut() {
        let descriptor = MasterInfo::default().descriptor();
        fields.retain(|key, _| {
            descriptor.get_field_by_name(key).is_some()
                || descriptor.get_field_by_json_name(key).is_some()
        });
    }
    let bytes = serde_json::to_vec(&value).map_err(|e| e.to_string())?;
    crate::proto::from_json::<MasterInfo>(&bytes).map_err(|e| e.to_string())
}

/// The pid in a `MasterInfo`: `pid`, else `master@` its address, else its
/// `ip` (an `in_addr`'s `s_addr`, as Mesos stores it) and `port`.
fn pid_of(info: &MasterInfo) -> Result<Upid, String> {
    if let Some(pid) = info.pid.as_deref().filter(|p| !p.is_empty()) {
        return pid.parse().map_err(|e| format!("{e}"));
    }
    if let Some(addr) = &info.address {
        if let Some(ip) = addr.ip.as_deref() {
            let port = addr.port;
            let ip: Ipv4Addr = ip
                .parse()
                .map_err(|_| format!("address ip {ip:?} is not an IPv4 address"))?;
            let port = u16::try_from(port).map_err(|_| format!("port {port} out of range"))?;
            return Ok(Upid::new("master", SocketAddr::from((ip, port))));
        }
    }
    if info.ip != 0 {
        // `s_addr` read as a little-endian host's integer.
        let ip = Ipv4Addr::from(info.ip.to_le_bytes());
        let port =
            u16::try_from(info.port).map_err(|_| format!("port {} out of range", info.port))?;
        return Ok(Upid::new("master", SocketAddr::from((ip, port))));
    }
    Err("the MasterInfo has no pid and no address".to_string())
}
