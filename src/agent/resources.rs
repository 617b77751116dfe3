//! The agent's total resources and attributes: `--resources` and
//! `--attributes` in Mesos' text form (or JSON for resources), with cpus,
//! mem, disk and ports detected when not given.

use super::AgentError;
use crate::proto::mesos::{value, Attribute, Resource, Value};
use std::path::Path;

/// Mesos' default port range.
const DEFAULT_PORTS: (u64, u64) = (31000, 32000);

/// Parses `--resources` and fills in what it does not name.
pub fn total(flag: Option<&str>, work_dir: &Path) -> Result<Vec<Resource>, AgentError> {
    let mut resources = match flag.map(str::trim) {
        None | Some("") => Vec::new(),
        Some(json) if json.starts_with('[') => parse_json(json)?,
        Some(text) => parse_text(text)?,
    };
    let has = |rs: &[Resource], name: &str| rs.iter().any(|r| r.name == name);
    if !has(&resources, "cpus") {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        resources.push(scalar("cpus", cpus as f64));
    }
    if !has(&resources, "mem") {
        resources.push(scalar("mem", detected_mem_mb()));
    }
    if !has(&resources, "disk") {
        resources.push(scalar("disk", detected_disk_mb(work_dir)));
    }
    if !has(&resources, "ports") {
        resources.push(ranges("ports", &[DEFAULT_PORTS]));
    }
    Ok(resources)
}

fn parse_json(json: &str) -> Result<Vec<Resource>, AgentError> {
    let values: Vec<serde_json::Value> =
        serde_json::from_str(json).map_err(|e| AgentError::Flag {
            flag: "resources",
            message: e.to_string(),
        })?;
    values
        .iter()
        .map(|v| {
            crate::proto::from_json::<Resource>(v.to_string().as_bytes()).map_err(|e| {
                AgentError::Flag {
                    flag: "resources",
                    message: e.to_string(),
                }
            })
        })
        .collect()
}

/// `name(role):value;...` where value is a scalar, `[a-b,c-d]` or `{x,y}`.
pub fn parse_text(text: &str) -> Result<Vec<Resource>, AgentError> {
    let bad = |item: &str, why: &str| AgentError::Flag {
        flag: "resources",
        message: format!("{item:?}: {why}"),
    };
    let mut out: Vec<Resource> = Vec::new();
    for item in text.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        let (key, raw) = item.split_once(':').ok_or_else(|| bad(item, "no ':'"))?;
        let (name, role) = match key.split_once('(') {
            Some((n, r)) => (
                n.trim(),
                Some(
                    r.strip_suffix(')')
                        .ok_or_else(|| bad(item, "unclosed role"))?
                        .to_string(),
                ),
            ),
            None => (key.trim(), None),
        };
        if name.is_empty() {
            return Err(bad(item, "empty name"));
        }
        let v = parse_value(raw.trim()).map_err(|why| bad(item, &why))?;
        if v.r#type == value::Type::Text as i32 {
            return Err(bad(item, "resources must be scalars, ranges or sets"));
        }
        if let Some(s) = &v.scalar {
            if !s.value.is_finite() || s.value < 0.0 {
                return Err(bad(item, "negative or invalid scalar"));
            }
        }
        let role = role.filter(|r| r != "*");
        if out
            .iter()
            .any(|r| r.name == name && r.role.as_deref().filter(|r| *r != "*") == role.as_deref())
        {
            return Err(bad(item, "given twice"));
        }
        out.push(Resource {
            name: name.to_string(),
            r#type: v.r#type,
            scalar: v.scalar,
            ranges: v.ranges,
            set: v.set,
            role,
            ..Default::default()
        });
    }
    Ok(out)
}

/// `name:value;...` where a value may also be text.
pub fn parse_attributes(text: Option<&str>) -> Result<Vec<Attribute>, AgentError> {
    let Some(text) = text else {
        return Ok(Vec::new());
    };
    text.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            let (name, raw) = item.split_once(':').ok_or_else(|| AgentError::Flag {
                flag: "attributes",
                message: format!("{item:?}: no ':'"),
            })?;
            let v = parse_value(raw.trim()).map_err(|why| AgentError::Flag {
                flag: "attributes",
                message: format!("{item:?}: {why}"),
            })?;
            Ok(Attribute {
                name: name.trim().to_string(),
                r#type: v.r#type,
                scalar: v.scalar,
                ranges: v.ranges,
                set: v.set,
                text: v.text,
            })
        })
        .collect()
}

/// A value in Mesos' text form: a number, `[a-b,...]`, `{x,...}` or text.
fn parse_value(raw: &str) -> Result<Value, String> {
    let mut v = Value::default();
    if let Some(inner) = raw.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or("unclosed '['")?;
        let mut list = value::Ranges::default();
        for part in inner.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (b, e) = part.split_once('-').ok_or("a range needs BEGIN-END")?;
            let begin: u64 = b
                .trim()
                .parse()
                .map_err(|_| format!("bad range {part:?}"))?;
            let end: u64 = e
                .trim()
                .parse()
                .map_err(|_| format!("bad range {part:?}"))?;
            if begin > end {
                return Err(format!("empty range {part:?}"));
            }
            list.range.push(value::Range { begin, end });
        }
        v.r#type = value::Type::Ranges as i32;
        v.ranges = Some(list);
    } else if let Some(inner) = raw.strip_prefix('{') {
        let inner = inner.strip_suffix('}').ok_or("unclosed '{'")?;
        v.r#type = value::Type::Set as i32;
        v.set = Some(value::Set {
            item: inner
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
        });
    } else if let Ok(n) = raw.parse::<f64>() {
        v.r#type = value::Type::Scalar as i32;
        v.scalar = Some(value::Scalar { value: n });
    } else {
        v.r#type = value::Type::Text as i32;
        v.text = Some(value::Text {
            value: raw.to_string(),
        });
    }
    Ok(v)
}

fn scalar(name: &str, value: f64) -> Resource {
    Resource {
        name: name.to_string(),
        r#type: value::Type::Scalar as i32,
        scalar: Some(value::Scalar { value }),
        ..Default::default()
    }
}

fn ranges(name: &str, list: &[(u64, u64)]) -> Resource {
    Resource {
        name: name.to_string(),
        r#type: value::Type::Ranges as i32,
        ranges: Some(value::Ranges {
            range: list
                .iter()
                .map(|&(begin, end)| value::Range { begin, end })
                .collect(),
        }),
        ..Default::default()
    }
}

/// Mesos keeps 1 GiB for the system (half the memory on small machines).
fn detected_mem_mb() -> f64 {
    let total_kb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .unwrap_or(0);
    let total = total_kb as f64 / 1024.0;
    if total >= 2048.0 {
        (total - 1024.0).floor()
    } else {
        (total / 2.0).floor()
    }
}

/// Mesos keeps 5 GiB of the work dir's file system (half on small disks).
fn detected_disk_mb(work_dir: &Path) -> f64 {
    let dir = work_dir
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"));
    let total = nix::sys::statvfs::statvfs(dir)
        .map(|s| s.blocks() as f64 * s.fragment_size() as f64 / (1 << 20) as f64)
        .unwrap_or(0.0);
    if total >= 10240.0 {
        (total - 5120.0).floor()
    } else {
        (total / 2.0).floor()
    }
}

/// The scalar amount of `name` in `resources` (summed over roles).
#[cfg(test)]
pub fn scalar_of(resources: &[Resource], name: &str) -> f64 {
    resources
        .iter()
        .filter(|r| r.name == name)
        .filter_map(|r| r.scalar.as_ref())
        .map(|s| s.value)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mesos_text_form() {
        let rs = parse_text("cpus:2;mem:1024.5;ports:[31000-31010,32000-32000];disks(ssd):{a,b}")
            .unwrap();
        assert_eq!(scalar_of(&rs, "cpus"), 2.0);
        assert_eq!(scalar_of(&rs, "mem"), 1024.5);
        let ports = rs[2].ranges.as_ref().unwrap();
        assert_eq!(ports.range.len(), 2);
        assert_eq!((ports.range[0].begin, ports.range[0].end), (31000, 31010));
        assert_eq!(rs[3].role.as_deref(), Some("ssd"));
        assert_eq!(rs[3].set.as_ref().unwrap().item, vec!["a", "b"]);
    }

    #[test]
    fn refuses_bad_resources() {
        for bad in [
            "cpus",
            "cpus:-1",
            "cpus:two",
            "ports:[2-1]",
            "ports:[1-2",
            "cpus:1;cpus:2",
            ":3",
        ] {
            assert!(parse_text(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn detects_what_is_missing() {
        let rs = total(Some("cpus:3"), Path::new("/")).unwrap();
        assert_eq!(scalar_of(&rs, "cpus"), 3.0);
        assert!(scalar_of(&rs, "mem") > 0.0);
        assert!(rs.iter().any(|r| r.name == "ports"));
        assert!(rs.iter().any(|r| r.name == "disk"));
    }

    #[test]
    fn attributes_take_text() {
        let a = parse_attributes(Some("rack:r1;zone:2;ports:[1-2]")).unwrap();
        assert_eq!(a[0].text.as_ref().unwrap().value, "r1");
        assert_eq!(a[1].scalar.as_ref().unwrap().value, 2.0);
        assert_eq!(a[2].r#type, value::Type::Ranges as i32);
    }
}
