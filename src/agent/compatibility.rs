//! `--reconfiguration_policy`: whether an agent restarted with another
//! configuration (resources, attributes, hostname, port) may keep its id
//! and reconnect to its executors, as Mesos' `slave/compatibility.cpp`
//! decides it.
//!
//! - `equal` (the default): the recovered `SlaveInfo` and the new one must
//!   be equal (resources and attributes compared as sets, ids included).
//! - `additive`: hostname, port and (when it had one) domain unchanged;
//!   every resource the agent had is still there with at least as much
//!   (scalars not smaller, ranges and sets including the old ones); every
//!   attribute still there with the same type, the same scalar or text
//!   value and ranges including the old ones. New resources and
//!   attributes may be added.
//!
//! Anything else fails the recovery with both infos in the error, unless
//! the host rebooted: then the agent starts as a new one (see
//! `recovery.rs`).

use crate::proto::mesos::value::{Range, Type as ValueType};
use crate::proto::mesos::{Attribute, Resource, SlaveInfo};
use prost::Message;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// `--reconfiguration_policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReconfigurationPolicy {
    /// Any change needs a new agent id.
    #[default]
    Equal,
    /// Resources and attributes may be added to, never taken from.
    Additive,
}

impl ReconfigurationPolicy {
    /// The flag's value.
    pub fn as_str(self) -> &'static str {
        match self {
            ReconfigurationPolicy::Equal => "equal",
            ReconfigurationPolicy::Additive => "additive",
        }
    }
}

impl std::str::FromStr for ReconfigurationPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "equal" => Ok(ReconfigurationPolicy::Equal),
            "additive" => Ok(ReconfigurationPolicy::Additive),
            other => Err(format!(
                "unknown reconfiguration policy {other:?} (equal or additive)"
            )),
        }
    }
}

/// Whether the agent recovered with `previous` may run as `current`
/// (which carries the recovered id) under `policy`; the error says why not.
pub fn check(
    policy: ReconfigurationPolicy,
    previous: &SlaveInfo,
    current: &SlaveInfo,
) -> Result<(), String> {
    match policy {
        ReconfigurationPolicy::Equal => equal(previous, current),
        ReconfigurationPolicy::Additive => additive(previous, current),
    }
}

fn equal(previous: &SlaveInfo, current: &SlaveInfo) -> Result<(), String> {
    let same = previous.hostname == current.hostname
        && previous.port() == current.port()
        && previous.id == current.id
        && previous.checkpoint() == current.checkpoint()
        && previous.domain == current.domain
        && same_resources(
            &normalize(&previous.resources),
            &normalize(&current.resources),
        )
        && same_attributes(&previous.attributes, &current.attributes);
    if same {
        return Ok(());
    }
    Err(format!(
        "incompatible agent info detected (--reconfiguration_policy=equal): \
         old agent info: {}; new agent info: {}",
        describe(previous),
        describe(current)
    ))
}

fn additive(previous: &SlaveInfo, current: &SlaveInfo) -> Result<(), String> {
    const NOT: &str = "configuration change not permitted under the 'additive' policy";
    if previous.hostname != current.hostname {
        return Err(format!(
            "{NOT}: hostname changed from {} to {}",
            previous.hostname, current.hostname
        ));
    }
    if previous.port() != current.port() {
        return Err(format!(
            "{NOT}: port changed from {} to {}",
            previous.port(),
            current.port()
        ));
    }
    if previous.domain.is_some() && previous.domain != current.domain {
        return Err(format!(
            "{NOT}: domain changed from {:?} to {:?}",
            previous.domain, current.domain
        ));
    }
    let now = normalize(&current.resources);
    for (key, (resource, old)) in normalize(&previous.resources) {
        let Some((_, new)) = now.get(&key) else {
            return Err(format!(
                "{NOT}: resource not found: {}",
                resource_text(&resource, &old)
            ));
        };
        if !old.within(new) {
            return Err(format!(
                "{NOT}: resource {} became {}",
                resource_text(&resource, &old),
                resource_text(&resource, new)
            ));
        }
    }
    for old in &previous.attributes {
        let Some(new) = current.attributes.iter().find(|a| a.name == old.name) else {
            return Err(format!(
                "{NOT}: attribute not found: {}",
                attribute_text(old)
            ));
        };
        if new.r#type != old.r#type {
            return Err(format!(
                "{NOT}: type of attribute '{}' changed from {:?} to {:?}",
                old.name,
                old.r#type(),
                new.r#type()
            ));
        }
        let kept = match old.r#type() {
            ValueType::Scalar => scalar_eq(
                old.scalar.map_or(0.0, |s| s.value),
                new.scalar.map_or(0.0, |s| s.value),
            ),
            ValueType::Ranges => Amount::ranges(old.ranges.as_ref().map(|r| &r.range[..]))
                .within(&Amount::ranges(new.ranges.as_ref().map(|r| &r.range[..]))),
            ValueType::Text => {
                old.text.as_ref().map(|t| &t.value) == new.text.as_ref().map(|t| &t.value)
            }
            // Mesos has no set attributes; compared as sets.
            ValueType::Set => Amount::set(old.set.as_ref().map(|s| &s.item[..]))
                .within(&Amount::set(new.set.as_ref().map(|s| &s.item[..]))),
        };
        if !kept {
            return Err(format!(
                "{NOT}: attribute {} became {}",
                attribute_text(old),
                attribute_text(new)
            ));
        }
    }
    Ok(())
}

/// How much of one resource there is.
#[derive(Debug, Clone, PartialEq)]
enum Amount {
    Scalar(f64),
    /// Merged, sorted, inclusive.
    Ranges(Vec<(u64, u64)>),
    Set(BTreeSet<String>),
    Text,
}

impl Amount {
    fn of(r: &Resource) -> Amount {
        match r.r#type() {
            ValueType::Scalar => Amount::Scalar(r.scalar.map_or(0.0, |s| s.value)),
            ValueType::Ranges => Amount::ranges(r.ranges.as_ref().map(|x| &x.range[..])),
            ValueType::Set => Amount::set(r.set.as_ref().map(|s| &s.item[..])),
            ValueType::Text => Amount::Text,
        }
    }

    fn ranges(ranges: Option<&[Range]>) -> Amount {
        let mut v: Vec<(u64, u64)> = ranges
            .unwrap_or_default()
            .iter()
            .filter(|r| r.begin <= r.end)
            .map(|r| (r.begin, r.end))
            .collect();
        v.sort_unstable();
        Amount::Ranges(merge(v))
    }

    fn set(items: Option<&[String]>) -> Amount {
        Amount::Set(items.unwrap_or_default().iter().cloned().collect())
    }

    /// Adds `other` (of the same kind) to this one.
    fn add(&mut self, other: Amount) {
        match (self, other) {
            (Amount::Scalar(a), Amount::Scalar(b)) => *a += b,
            (Amount::Ranges(a), Amount::Ranges(b)) => {
                a.extend(b);
                a.sort_unstable();
                *a = merge(std::mem::take(a));
            }
            (Amount::Set(a), Amount::Set(b)) => a.extend(b),
            _ => {}
        }
    }

    /// Whether this amount is no more than `other`.
    fn within(&self, other: &Amount) -> bool {
        match (self, other) {
            (Amount::Scalar(a), Amount::Scalar(b)) => *a <= *b || scalar_eq(*a, *b),
            (Amount::Ranges(a), Amount::Ranges(b)) => a
                .iter()
                .all(|&(lo, hi)| b.iter().any(|&(l, h)| l <= lo && hi <= h)),
            (Amount::Set(a), Amount::Set(b)) => a.is_subset(b),
            (Amount::Text, Amount::Text) => true,
            _ => false,
        }
    }

    fn same(&self, other: &Amount) -> bool {
        match (self, other) {
            (Amount::Scalar(a), Amount::Scalar(b)) => scalar_eq(*a, *b),
            (a, b) => a == b,
        }
    }
}

/// Mesos compares scalars in fixed point, to three decimals.
fn scalar_eq(a: f64, b: f64) -> bool {
    (a * 1000.0).round() == (b * 1000.0).round()
}

/// Merges sorted inclusive ranges that overlap or touch.
fn merge(sorted: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(sorted.len());
    for (lo, hi) in sorted {
        match out.last_mut() {
            Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

/// Resources summed by what they are (name, type, role, reservations,
/// disk, ...: everything but the amount), as Mesos' `Resources` holds
/// them: `cpus:1;cpus:1` is `cpus:2`.
fn normalize(resources: &[Resource]) -> BTreeMap<Vec<u8>, (Resource, Amount)> {
    let mut out: BTreeMap<Vec<u8>, (Resource, Amount)> = BTreeMap::new();
    for r in resources {
        // One format for both sides: a `slave.info` checkpointed with the
        // old `role` field compares equal to the same reservation today.
        let mut identity = r.clone();
        super::resources::upgrade(&mut identity);
        identity.scalar = None;
        identity.ranges = None;
        identity.set = None;
        let key = identity.encode_to_vec();
        let amount = Amount::of(r);
        match out.get_mut(&key) {
            Some((_, total)) => total.add(amount),
            None => {
                out.insert(key, (identity, amount));
            }
        }
    }
    out
}

fn same_resources(
    a: &BTreeMap<Vec<u8>, (Resource, Amount)>,
    b: &BTreeMap<Vec<u8>, (Resource, Amount)>,
) -> bool {
    a.len() == b.len()
        && a.iter()
            .all(|(k, (_, x))| b.get(k).is_some_and(|(_, y)| x.same(y)))
}

/// Attributes compared as Mesos' `Attributes ==`: the same ones, in any
/// order.
fn same_attributes(a: &[Attribute], b: &[Attribute]) -> bool {
    a.len() == b.len() && a.iter().all(|x| b.contains(x)) && b.iter().all(|y| a.contains(y))
}

/// `name(role):amount`.
fn resource_text(r: &Resource, amount: &Amount) -> String {
    let mut s = r.name.clone();
    if let Some(role) = r.reservations.last().and_then(|res| res.role.as_deref()) {
        let _ = write!(s, "({role})");
    }
    s.push(':');
    s.push_str(&amount_text(amount));
    s
}

fn amount_text(amount: &Amount) -> String {
    match amount {
        Amount::Scalar(v) => format!("{v}"),
        Amount::Ranges(v) => format!(
            "[{}]",
            v.iter()
                .map(|(a, b)| format!("{a}-{b}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Amount::Set(v) => format!("{{{}}}", v.iter().cloned().collect::<Vec<_>>().join(", ")),
        Amount::Text => String::new(),
    }
}

fn attribute_text(a: &Attribute) -> String {
    let value = match a.r#type() {
        ValueType::Scalar => format!("{}", a.scalar.map_or(0.0, |s| s.value)),
        ValueType::Ranges => amount_text(&Amount::ranges(a.ranges.as_ref().map(|r| &r.range[..]))),
        ValueType::Set => amount_text(&Amount::set(a.set.as_ref().map(|s| &s.item[..]))),
        ValueType::Text => a.text.as_ref().map(|t| t.value.clone()).unwrap_or_default(),
    };
    format!("{}:{value}", a.name)
}

/// A `SlaveInfo` in one line, for the errors.
fn describe(info: &SlaveInfo) -> String {
    let resources: Vec<String> = normalize(&info.resources)
        .values()
        .map(|(r, a)| resource_text(r, a))
        .collect();
    let attributes: Vec<String> = info.attributes.iter().map(attribute_text).collect();
    format!(
        "hostname {}, port {}, id {}, resources {}, attributes {}",
        info.hostname,
        info.port(),
        info.id.as_ref().map_or("none", |i| i.value.as_str()),
        resources.join(";"),
        if attributes.is_empty() {
            "none".to_string()
        } else {
            attributes.join(";")
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::resources::{parse_attributes, parse_text};
    use crate::proto::mesos::SlaveId;

    fn info(resources: &str, attributes: &str) -> SlaveInfo {
        SlaveInfo {
            hostname: "h1".into(),
            port: Some(5051),
            resources: parse_text(resources, "*").unwrap(),
            attributes: parse_attributes(Some(attributes)).unwrap(),
            id: Some(SlaveId { value: "S0".into() }),
            checkpoint: Some(true),
            ..Default::default()
        }
    }

    const BASE: &str = "cpus:2;mem:1024;ports:[31000-32000];disks:{a,b}";

    fn both(old: &SlaveInfo, new: &SlaveInfo) -> (Result<(), String>, Result<(), String>) {
        (
            check(ReconfigurationPolicy::Equal, old, new),
            check(ReconfigurationPolicy::Additive, old, new),
        )
    }

    #[test]
    fn reservations_compare_in_one_format_and_a_role_change_is_named() {
        let new = info("cpus(web):2;mem:512", "");
        // As an older butte (or Mesos) checkpointed it: the old fields.
        let mut old = new.clone();
        old.resources
            .iter_mut()
            .for_each(crate::agent::resources::downgrade);
        assert!(old.resources.iter().all(|r| r.reservations.is_empty()));
        assert_eq!(both(&old, &new), (Ok(()), Ok(())));
        let moved = info("cpus(db):2;mem:512", "");
        let (equal, _) = both(&new, &moved);
        assert!(equal.unwrap_err().contains("cpus(web)"));
    }

    #[test]
    fn an_unchanged_agent_passes_both_policies_in_any_order() {
        let old = info(BASE, "rack:r1;zone:3");
        // The same amounts given in two parts (a JSON --resources may).
        let mut new = info(
            "disks:{b,a};mem:512;ports:[31000-31500];cpus:2",
            "zone:3;rack:r1",
        );
        new.resources
            .extend(parse_text("mem:512;ports:[31501-32000]", "*").unwrap());
        assert_eq!(both(&old, &new), (Ok(()), Ok(())));
    }

    #[test]
    fn more_resources_or_a_new_attribute_pass_only_additive() {
        let old = info(BASE, "rack:r1");
        for new in [
            info("cpus:4;mem:1024;ports:[31000-32000];disks:{a,b}", "rack:r1"),
            info(
                "cpus:2;mem:1024;ports:[30000-33000];disks:{a,b,c}",
                "rack:r1",
            ),
            info(&format!("{BASE};gpus:1"), "rack:r1"),
            info(BASE, "rack:r1;ssd:true"),
        ] {
            let (equal, additive) = both(&old, &new);
            let err = equal.unwrap_err();
            assert!(err.contains("--reconfiguration_policy=equal"), "{err}");
            assert!(
                err.contains("old agent info") && err.contains("cpus:2"),
                "{err}"
            );
            assert_eq!(additive, Ok(()), "{}", describe(&new));
        }
    }

    #[test]
    fn less_of_anything_fails_both_policies_naming_it() {
        let old = info(BASE, "rack:r1;zone:3;slots:[1-4]");
        for (new, says) in [
            (
                info(
                    "cpus:1;mem:1024;ports:[31000-32000];disks:{a,b}",
                    "rack:r1;zone:3;slots:[1-4]",
                ),
                "resource cpus:2 became cpus:1",
            ),
            (
                info(
                    "cpus:2;mem:1024;ports:[31000-31999];disks:{a,b}",
                    "rack:r1;zone:3;slots:[1-4]",
                ),
                "resource ports:[31000-32000] became ports:[31000-31999]",
            ),
            (
                info(
                    "cpus:2;mem:1024;ports:[31000-32000];disks:{a}",
                    "rack:r1;zone:3;slots:[1-4]",
                ),
                "disks:{a, b} became disks:{a}",
            ),
            (
                info(
                    "cpus:2;ports:[31000-32000];disks:{a,b}",
                    "rack:r1;zone:3;slots:[1-4]",
                ),
                "resource not found: mem:1024",
            ),
            (
                info(
                    "cpus(web):2;mem:1024;ports:[31000-32000];disks:{a,b}",
                    "rack:r1;zone:3;slots:[1-4]",
                ),
                "resource not found: cpus:2",
            ),
            (
                info(BASE, "rack:r2;zone:3;slots:[1-4]"),
                "attribute rack:r1 became rack:r2",
            ),
            (
                info(BASE, "rack:r1;zone:4;slots:[1-4]"),
                "attribute zone:3 became zone:4",
            ),
            (
                info(BASE, "rack:r1;zone:3;slots:[1-3]"),
                "attribute slots:[1-4] became slots:[1-3]",
            ),
            (
                info(BASE, "rack:r1;slots:[1-4]"),
                "attribute not found: zone:3",
            ),
            (
                info(BASE, "rack:r1;zone:z3;slots:[1-4]"),
                "type of attribute 'zone' changed",
            ),
        ] {
            let (equal, additive) = both(&old, &new);
            assert!(equal.is_err(), "{says}");
            let err = additive.unwrap_err();
            assert!(
                err.contains("not permitted under the 'additive' policy"),
                "{err}"
            );
            assert!(err.contains(says), "{err} does not say {says}");
        }
        // Attribute ranges may grow under `additive`.
        assert_eq!(
            check(
                ReconfigurationPolicy::Additive,
                &old,
                &info(BASE, "rack:r1;zone:3;slots:[0-8]")
            ),
            Ok(())
        );
    }

    #[test]
    fn hostname_and_port_may_never_change() {
        let old = info(BASE, "");
        let mut renamed = old.clone();
        renamed.hostname = "h2".into();
        let mut moved = old.clone();
        moved.port = Some(5052);
        for (new, says) in [
            (renamed, "hostname changed from h1 to h2"),
            (moved, "port changed from 5051 to 5052"),
        ] {
            let (equal, additive) = both(&old, &new);
            assert!(equal.is_err());
            assert!(additive.unwrap_err().contains(says));
        }
        // The default port is the port.
        let mut default_port = old.clone();
        default_port.port = None;
        assert_eq!(both(&old, &default_port), (Ok(()), Ok(())));
    }

    #[test]
    fn the_flag_takes_mesos_values() {
        assert_eq!("equal".parse(), Ok(ReconfigurationPolicy::Equal));
        assert_eq!("additive".parse(), Ok(ReconfigurationPolicy::Additive));
        assert!("any".parse::<ReconfigurationPolicy>().is_err());
        assert_eq!(ReconfigurationPolicy::default().as_str(), "equal");
    }
}
