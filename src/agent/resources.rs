//! The agent's total resources and attributes: `--resources` and
//! `--attributes` in Mesos' text form (or JSON for resources), with cpus,
//! mem, disk and ports detected when not given.
//!
//! Resources are held in Mesos' "post-reservation-refinement" format: a
//! static reservation is a `reservations` stack of one STATIC entry, an
//! unreserved resource has neither `role` nor `reservations`. What goes to
//! the master is [`downgrade`]d (a single reservation as the old `role` and
//! `reservation` fields, unreserved as role `*`), as Mesos' agent sends it;
//! `/state` shows the [`endpoint`] format (both).

use super::AgentError;
use crate::proto::mesos::resource::{reservation_info, ReservationInfo};
use crate::proto::mesos::{value, Attribute, Resource, Value};
use std::path::Path;

/// Mesos' default port range.
const DEFAULT_PORTS: (u64, u64) = (31000, 32000);

/// Parses `--resources` (resources without a role get `default_role`, as
/// Mesos' `--default_role`) and fills in what it does not name. As in
/// Mesos, cpus, mem, disk and ports are detected when the flag's text does
/// not contain their name.
pub fn total(
    flag: Option<&str>,
    default_role: &str,
    work_dir: &Path,
) -> Result<Vec<Resource>, AgentError> {
    let text = flag.map(str::trim).unwrap_or("");
    let mut resources = parse(text, default_role)?;
    let detected = [
        (
            "cpus",
            std::thread::available_parallelism().map_or(1, |n| n.get()) as f64,
        ),
        ("mem", detected_mem_mb()),
        ("disk", detected_disk_mb(work_dir)),
    ];
    let mut more = Vec::new();
    for (name, amount) in detected {
        if !text.contains(name) {
            more.push(scalar(name, amount));
        }
    }
    if !text.contains("ports") {
        more.push(ranges("ports", &[DEFAULT_PORTS]));
    }
    for mut r in more {
        reserve_static(&mut r, default_role);
        add(&mut resources, r);
    }
    Ok(resources)
}

fn flag_error(message: String) -> AgentError {
    AgentError::Flag {
        flag: "resources",
        message,
    }
}

/// Mesos' `Resources::parse`: a JSON array of Resource, else the text
/// form; each resource validated, then summed with those like it
/// (`cpus:1;cpus:2` is `cpus:3`; empty ones are dropped).
pub fn parse(text: &str, default_role: &str) -> Result<Vec<Resource>, AgentError> {
    let parsed = match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Array(items)) => parse_json(&items, default_role)?,
        _ => parse_text(text, default_role)?,
    };
    let mut out: Vec<Resource> = Vec::new();
    for r in parsed {
        validate(&r).map_err(|why| flag_error(format!("{}: {why}", describe(&r))))?;
        validate_command_line(&r).map_err(|why| flag_error(format!("{}: {why}", describe(&r))))?;
        if let Some(other) = out
            .iter()
            .find(|o| o.name == r.name && o.r#type != r.r#type)
        {
            return Err(flag_error(format!(
                "{}: resources with the same name ({:?}) but different types ({} and {})",
                describe(&r),
                r.name,
                type_name(other.r#type),
                type_name(r.r#type)
            )));
        }
        add(&mut out, r);
    }
    Ok(out)
}

fn parse_json(
    items: &[serde_json::Value],
    default_role: &str,
) -> Result<Vec<Resource>, AgentError> {
    items
        .iter()
        .map(|v| {
            let mut r = crate::proto::from_json::<Resource>(v.to_string().as_bytes())
                .map_err(|e| flag_error(format!("{v}: {e}")))?;
            if r.role.is_none() && r.reservations.is_empty() {
                r.role = Some(default_role.to_string());
            }
            upgrade(&mut r);
            Ok(r)
        })
        .collect()
}

/// `name(role):value;...` where value is a scalar, `[a-b,c-d]` or `{x,y}`;
/// a name without `(role)` gets `default_role`; role `*` is unreserved,
/// any other a static reservation.
pub fn parse_text(text: &str, default_role: &str) -> Result<Vec<Resource>, AgentError> {
    let bad = |item: &str, why: &str| flag_error(format!("{item:?}: {why}"));
    let mut out: Vec<Resource> = Vec::new();
    for item in text.split(';').filter(|s| !s.is_empty()) {
        let pair: Vec<&str> = item.split(':').filter(|s| !s.is_empty()).collect();
        let [key, raw] = pair[..] else {
            return Err(bad(item, "missing or extra ':'"));
        };
        let (name, role) = match key.find('(') {
            None => (key.trim(), default_role),
            Some(open) => {
                let close = key
                    .find(')')
                    .filter(|&c| c > open)
                    .ok_or_else(|| bad(item, "mismatched parentheses"))?;
                (key[..open].trim(), key[open + 1..close].trim())
            }
        };
        let v = parse_value(raw.trim()).map_err(|why| bad(item, &why))?;
        if v.r#type == value::Type::Text as i32 {
            return Err(bad(item, "not a number, [ranges] or {set}"));
        }
        let mut r = Resource {
            name: name.to_string(),
            r#type: v.r#type,
            scalar: v.scalar,
            ranges: v.ranges,
            set: v.set,
            ..Default::default()
        };
        reserve_static(&mut r, role);
        out.push(r);
    }
    Ok(out)
}

/// Reserves `r` statically for `role` (nothing for `*`).
fn reserve_static(r: &mut Resource, role: &str) {
    if role != "*" {
        r.reservations.push(ReservationInfo {
            r#type: Some(reservation_info::Type::Static as i32),
            role: Some(role.to_string()),
            ..Default::default()
        });
    }
}

/// Mesos' `roles::validate`: `*`, or `/`-separated names that are not
/// empty, `.` or `..`, do not start with `-` and hold no whitespace.
pub fn validate_role(role: &str) -> Result<(), String> {
    if role == "*" {
        return Ok(());
    }
    for part in role.split('/') {
        if part.is_empty() {
            return Err(format!(
                "role {role:?} has an empty component (leading, trailing or double '/')"
            ));
        }
        if part == "." || part == ".." {
            return Err(format!("role {role:?}: '{part}' is not a valid component"));
        }
        if part == "*" {
            return Err(format!(
                "role {role:?}: '*' cannot be part of a hierarchical role"
            ));
        }
        if part.starts_with('-') {
            return Err(format!(
                "role {role:?} has a component starting with a dash"
            ));
        }
        if part
            .chars()
            .any(|c| matches!(c, '\t' | '\n' | '\x0b' | '\x0c' | '\r' | ' ' | '\x7f'))
        {
            return Err(format!("role {role:?} contains whitespace or backspace"));
        }
    }
    Ok(())
}

/// Mesos' `Resources::validate` for one resource.
fn validate(r: &Resource) -> Result<(), String> {
    if r.name.is_empty() {
        return Err("empty resource name".into());
    }
    match value::Type::try_from(r.r#type) {
        Ok(value::Type::Scalar) => {
            let Some(s) = r.scalar.filter(|_| r.ranges.is_none() && r.set.is_none()) else {
                return Err("invalid scalar resource".into());
            };
            if !s.value.is_finite() || s.value < 0.0 {
                return Err("invalid scalar resource: value < 0".into());
            }
        }
        Ok(value::Type::Ranges) => {
            let Some(list) = r
                .ranges
                .as_ref()
                .filter(|_| r.scalar.is_none() && r.set.is_none())
            else {
                return Err("invalid ranges resource".into());
            };
            for (i, a) in list.range.iter().enumerate() {
                if a.begin > a.end {
                    return Err(format!(
                        "invalid ranges resource: {}-{} begins after it ends",
                        a.begin, a.end
                    ));
                }
                if list.range[i + 1..]
                    .iter()
                    .any(|b| a.begin <= b.begin && b.begin <= a.end)
                {
                    return Err("invalid ranges resource: overlapping ranges".into());
                }
            }
        }
        Ok(value::Type::Set) => {
            let Some(set) = r
                .set
                .as_ref()
                .filter(|_| r.scalar.is_none() && r.ranges.is_none())
            else {
                return Err("invalid set resource".into());
            };
            for (i, item) in set.item.iter().enumerate() {
                if set.item[i + 1..].contains(item) {
                    return Err(format!("invalid set resource: {item:?} given twice"));
                }
            }
        }
        _ => return Err("unsupported resource type (only scalars, ranges and sets)".into()),
    }
    if r.disk.is_some() && r.name != "disk" {
        return Err(format!(
            "DiskInfo should not be set for {} resource",
            r.name
        ));
    }
    if r.reservations.is_empty() {
        return validate_role(r.role());
    }
    for res in &r.reservations {
        if res.r#type.is_none() {
            return Err("invalid reservation: the reservation's type must be set".into());
        }
        let role = res
            .role
            .as_deref()
            .ok_or("invalid reservation: the reservation's role must be set")?;
        validate_role(role)?;
        if role == "*" {
            return Err("invalid reservation: role \"*\" cannot be reserved".into());
        }
    }
    for pair in r.reservations.windows(2) {
        if pair[1].r#type == Some(reservation_info::Type::Static as i32) {
            return Err(
                "invalid refined reservation: a refined reservation cannot be STATIC".into(),
            );
        }
        let (ancestor, descendant) = (pair[0].role(), pair[1].role());
        if !descendant
            .strip_prefix(ancestor)
            .is_some_and(|rest| rest.starts_with('/'))
        {
            return Err(format!(
                "invalid refined reservation: role {descendant:?} is not a refinement of {ancestor:?}"
            ));
        }
    }
    Ok(())
}

/// Mesos' `validateCommandLineResources`: what only operations may make.
fn validate_command_line(r: &Resource) -> Result<(), String> {
    if r.disk.as_ref().is_some_and(|d| d.persistence.is_some()) {
        return Err("persistent volumes cannot be specified at the command line".into());
    }
    if r.revocable.is_some() {
        return Err("revocable resources cannot be specified at the command line".into());
    }
    if r.reservations
        .last()
        .is_some_and(|res| res.r#type == Some(reservation_info::Type::Dynamic as i32))
    {
        return Err("dynamic reservations cannot be specified at the command line".into());
    }
    Ok(())
}

fn type_name(t: i32) -> &'static str {
    match value::Type::try_from(t) {
        Ok(value::Type::Scalar) => "SCALAR",
        Ok(value::Type::Ranges) => "RANGES",
        Ok(value::Type::Set) => "SET",
        _ => "TEXT",
    }
}

/// `name(role)` or `name`, for errors.
fn describe(r: &Resource) -> String {
    let role = r
        .reservations
        .last()
        .and_then(|res| res.role.clone())
        .or_else(|| r.role.clone().filter(|role| role != "*"));
    match role {
        Some(role) => format!("{}({role})", r.name),
        None => r.name.clone(),
    }
}

/// Mesos' `Resources::add`: adds `r` to a resource like it (same name,
/// type and everything but the amount), else appends it; empty ones are
/// dropped.
fn add(out: &mut Vec<Resource>, r: Resource) {
    if is_empty(&r) {
        return;
    }
    let like = |o: &Resource| {
        let (mut a, mut b) = (o.clone(), r.clone());
        for x in [&mut a, &mut b] {
            x.scalar = None;
            x.ranges = None;
            x.set = None;
        }
        a == b
    };
    let Some(o) = out.iter_mut().find(|o| like(o)) else {
        out.push(r);
        return;
    };
    if let (Some(a), Some(b)) = (o.scalar.as_mut(), r.scalar) {
        // Mesos sums scalars in fixed point, to three decimals.
        a.value = ((a.value * 1000.0).round() + (b.value * 1000.0).round()) / 1000.0;
    }
    if let (Some(a), Some(b)) = (o.ranges.as_mut(), r.ranges) {
        let mut all: Vec<(u64, u64)> = a
            .range
            .iter()
            .chain(&b.range)
            .map(|x| (x.begin, x.end))
            .collect();
        all.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::new();
        for (lo, hi) in all {
            match merged.last_mut() {
                Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
                _ => merged.push((lo, hi)),
            }
        }
        a.range = merged
            .into_iter()
            .map(|(begin, end)| value::Range { begin, end })
            .collect();
    }
    if let (Some(a), Some(b)) = (o.set.as_mut(), r.set) {
        for item in b.item {
            if !a.item.contains(&item) {
                a.item.push(item);
            }
        }
    }
}

fn is_empty(r: &Resource) -> bool {
    r.scalar.is_some_and(|s| s.value == 0.0)
        || r.ranges.as_ref().is_some_and(|l| l.range.is_empty())
        || r.set.as_ref().is_some_and(|s| s.item.is_empty())
}

/// Mesos' `upgradeResource`: the "post-reservation-refinement" format. A
/// resource already in it (or in the endpoint format) loses the old
/// `role` and `reservation` fields; role `*` is unreserved; another role
/// becomes a one-entry `reservations` stack, DYNAMIC when `reservation`
/// was set, else STATIC.
pub fn upgrade(r: &mut Resource) {
    if !r.reservations.is_empty() {
        r.role = None;
        r.reservation = None;
        return;
    }
    let Some(role) = r.role.take() else {
        r.reservation = None;
        return;
    };
    if role == "*" {
        r.reservation = None;
        return;
    }
    let mut res = r.reservation.take().map_or_else(
        || ReservationInfo {
            r#type: Some(reservation_info::Type::Static as i32),
            ..Default::default()
        },
        |mut res| {
            res.r#type = Some(reservation_info::Type::Dynamic as i32);
            res
        },
    );
    res.role = Some(role);
    r.reservations.push(res);
}

/// Mesos' `downgradeResource` (the format Mesos' agent sends the master
/// and checkpoints): unreserved as role `*`; a single reservation as its
/// `role`, plus `reservation` (principal, labels) when dynamic, and no
/// `reservations`. Refined reservations cannot be said so and are left in
/// the post-refinement format.
pub fn downgrade(r: &mut Resource) {
    upgrade(r);
    if r.reservations.len() <= 1 {
        old_fields(r);
        r.reservations.clear();
    }
}

/// Mesos' `ENDPOINT` format (HTTP endpoints): the old `role` and
/// `reservation` fields as [`downgrade`] sets them, with `reservations`
/// kept; refined reservations as they are.
pub fn endpoint(r: &Resource) -> Resource {
    let mut r = r.clone();
    upgrade(&mut r);
    if r.reservations.len() <= 1 {
        old_fields(&mut r);
    }
    r
}

fn old_fields(r: &mut Resource) {
    match r.reservations.first() {
        None => r.role = Some("*".into()),
        Some(res) => {
            if res.r#type == Some(reservation_info::Type::Dynamic as i32) {
                r.reservation = Some(ReservationInfo {
                    principal: res.principal.clone(),
                    labels: res.labels.clone(),
                    ..Default::default()
                });
            }
            r.role = res.role.clone();
        }
    }
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

    fn roles(r: &Resource) -> Vec<(i32, &str)> {
        r.reservations
            .iter()
            .map(|res| (res.r#type.unwrap_or(0), res.role()))
            .collect()
    }

    const STATIC: i32 = reservation_info::Type::Static as i32;

    #[test]
    fn parses_mesos_text_form() {
        let rs = parse_text(
            "cpus:2;mem:1024.5;ports:[31000-31010,32000-32000];disks(ssd):{a,b}",
            "*",
        )
        .unwrap();
        assert_eq!(scalar_of(&rs, "cpus"), 2.0);
        assert_eq!(scalar_of(&rs, "mem"), 1024.5);
        let ports = rs[2].ranges.as_ref().unwrap();
        assert_eq!(ports.range.len(), 2);
        assert_eq!((ports.range[0].begin, ports.range[0].end), (31000, 31010));
        assert_eq!(roles(&rs[3]), [(STATIC, "ssd")]);
        assert_eq!(rs[3].role, None);
        assert_eq!(rs[3].set.as_ref().unwrap().item, vec!["a", "b"]);
        assert!(rs[0].reservations.is_empty() && rs[0].role.is_none());
    }

    #[test]
    fn a_role_in_parentheses_is_a_static_reservation() {
        let rs = parse("cpus(web):4;mem( web ):1024;ports(*):[31000-32000]", "*").unwrap();
        assert_eq!(roles(&rs[0]), [(STATIC, "web")]);
        assert_eq!(roles(&rs[1]), [(STATIC, "web")]);
        assert!(rs[2].reservations.is_empty());
        // Hierarchical roles are roles too.
        let rs = parse("cpus(eng/web):1", "*").unwrap();
        assert_eq!(roles(&rs[0]), [(STATIC, "eng/web")]);
    }

    #[test]
    fn default_role_reserves_what_names_no_role() {
        let rs = total(Some("cpus:2;mem(*):512"), "batch", Path::new("/")).unwrap();
        let by = |name: &str| rs.iter().find(|r| r.name == name).unwrap();
        assert_eq!(roles(by("cpus")), [(STATIC, "batch")]);
        assert!(by("mem").reservations.is_empty());
        // Detected resources get the default role too, as in Mesos.
        assert_eq!(roles(by("disk")), [(STATIC, "batch")]);
        assert_eq!(roles(by("ports")), [(STATIC, "batch")]);
    }

    #[test]
    fn json_takes_reservations_or_the_old_role_field() {
        let json = r#"[
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": 4},
             "reservations": [{"type": "STATIC", "role": "web", "principal": "ops",
                               "labels": {"labels": [{"key": "k", "value": "v"}]}}]},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": 1024}, "role": "web"},
            {"name": "disk", "type": "SCALAR", "scalar": {"value": 10}, "role": "*"},
            {"name": "gpus", "type": "SCALAR", "scalar": {"value": 1}}
        ]"#;
        let rs = parse(json, "ml").unwrap();
        assert_eq!(roles(&rs[0]), [(STATIC, "web")]);
        assert_eq!(rs[0].reservations[0].principal.as_deref(), Some("ops"));
        assert_eq!(
            rs[0].reservations[0].labels.as_ref().unwrap().labels[0].key,
            "k"
        );
        assert_eq!(roles(&rs[1]), [(STATIC, "web")]);
        assert_eq!(rs[1].role, None);
        assert!(rs[2].reservations.is_empty() && rs[2].role.is_none());
        assert_eq!(roles(&rs[3]), [(STATIC, "ml")]);
    }

    #[test]
    fn like_resources_are_summed_as_mesos_adds_them() {
        let rs = parse("cpus:1;cpus:2;ports:[1-5];ports:[4-8];cpus(a):1;mem:0", "*").unwrap();
        assert_eq!(rs.len(), 3, "{rs:?}");
        assert_eq!(rs[0].scalar.unwrap().value, 3.0);
        let p = &rs[1].ranges.as_ref().unwrap().range;
        assert_eq!((p.len(), p[0].begin, p[0].end), (1, 1, 8));
        assert_eq!(roles(&rs[2]), [(STATIC, "a")]);
        // mem:0 is empty, and named: not detected either.
        let all = total(Some("cpus:1;mem:0"), "*", Path::new("/")).unwrap();
        assert!(!all.iter().any(|r| r.name == "mem"));
    }

    #[test]
    fn refuses_bad_resources_naming_them() {
        for (bad, why) in [
            ("cpus", "missing or extra ':'"),
            ("cpus:", "missing or extra ':'"),
            (":3", "missing or extra ':'"),
            ("cpus:1:2", "missing or extra ':'"),
            ("cpus:-1", "cpus: invalid scalar resource: value < 0"),
            ("cpus(web:1", "mismatched parentheses"),
            ("cpus:two", "\"cpus:two\": not a number"),
            ("ports(web):[2-1]", "empty range"),
            ("ports:[1-2", "unclosed '['"),
            ("ports:[1-5,3-9]", "ports: invalid ranges resource: overlapping ranges"),
            ("s:{a,a}", "s: invalid set resource: \"a\" given twice"),
            ("cpus(a b):1", "contains whitespace"),
            ("cpus(-a):1", "starting with a dash"),
            ("cpus(a//b):1", "empty component"),
            ("cpus:1;cpus:{a}", "cpus: resources with the same name (\"cpus\") but different types (SCALAR and SET)"),
            (
                r#"[{"name":"cpus","type":"SCALAR","scalar":{"value":1},"reservations":[{"type":"DYNAMIC","role":"a"}]}]"#,
                "cpus(a): dynamic reservations cannot be specified at the command line",
            ),
            (
                r#"[{"name":"cpus","type":"SCALAR","scalar":{"value":1},"reservations":[{"type":"STATIC","role":"a"},{"type":"DYNAMIC","role":"b"}]}]"#,
                "role \"b\" is not a refinement of \"a\"",
            ),
            (
                r#"[{"name":"cpus","type":"SCALAR","scalar":{"value":1},"revocable":{}}]"#,
                "revocable resources cannot",
            ),
            (r#"[{"name":"cpus","type":"SCALAR","scalor":{}}]"#, "cpus"),
        ] {
            let err = parse(bad, "*").unwrap_err().to_string();
            assert!(err.starts_with("--resources: "), "{bad}: {err}");
            assert!(err.contains(why), "{bad}: {err}");
        }
        assert!(total(Some("cpus:1"), "a b", Path::new("/")).is_err());
    }

    #[test]
    fn downgrade_and_endpoint_are_mesos_formats() {
        let rs = parse("cpus(web):4;mem:64", "*").unwrap();
        let (mut web, mut mem) = (rs[0].clone(), rs[1].clone());
        let shown = endpoint(&web);
        assert_eq!(shown.role.as_deref(), Some("web"));
        assert_eq!(roles(&shown), [(STATIC, "web")]);
        assert_eq!(endpoint(&mem).role.as_deref(), Some("*"));
        downgrade(&mut web);
        downgrade(&mut mem);
        assert_eq!(
            (web.role.as_deref(), web.reservations.len()),
            (Some("web"), 0)
        );
        assert_eq!(
            (mem.role.as_deref(), mem.reservations.len()),
            (Some("*"), 0)
        );
        // Idempotent, and upgrade undoes it.
        let again = {
            let mut w = web.clone();
            downgrade(&mut w);
            w
        };
        assert_eq!(again, web);
        upgrade(&mut web);
        assert_eq!(web, rs[0]);
        // A dynamic reservation keeps its principal in `reservation`;
        // refined ones stay as they are.
        let mut dynamic = rs[0].clone();
        dynamic.reservations[0].r#type = Some(reservation_info::Type::Dynamic as i32);
        dynamic.reservations[0].principal = Some("ops".into());
        let mut refined = dynamic.clone();
        refined.reservations.push(ReservationInfo {
            r#type: Some(reservation_info::Type::Dynamic as i32),
            role: Some("web/a".into()),
            ..Default::default()
        });
        downgrade(&mut dynamic);
        assert_eq!(dynamic.role.as_deref(), Some("web"));
        assert_eq!(
            dynamic.reservation.as_ref().unwrap().principal.as_deref(),
            Some("ops")
        );
        assert_eq!(dynamic.reservation.as_ref().unwrap().role, None);
        let before = refined.clone();
        downgrade(&mut refined);
        assert_eq!(refined, before);
        assert_eq!(endpoint(&refined), before);
    }

    #[test]
    fn detects_what_is_missing() {
        let rs = total(Some("cpus:3"), "*", Path::new("/")).unwrap();
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
