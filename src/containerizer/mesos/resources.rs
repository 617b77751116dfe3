//! The cgroup limits of an executor's container: the sum of the
//! executor's and its tasks' `cpus` and `mem` scalars (whatever their
//! roles), raised to the floors of Mesos' cgroups isolators.

use crate::proto::mesos::Resource;
use crate::runtime::Limits;

/// Mesos' memory floor (`MIN_MEMORY` of the cgroups memory isolator), also
/// enough for the launch helper and a `butte executor` to start.
pub const MIN_MEMORY: u64 = 32 << 20;
// The runtime refuses less than 4 MiB.
const _: () = assert!(MIN_MEMORY >= 4 << 20);

/// Mesos' cpu floor (`MIN_CPUS`).
pub const MIN_CPUS: f64 = 0.01;

/// The limits for a container holding these resources; a resource that
/// none of them names stays unlimited. `pids` is the agent's own limit.
pub fn limits<'a>(resources: impl IntoIterator<Item = &'a Resource>, pids: Option<u64>) -> Limits {
    let mut cpus: Option<f64> = None;
    let mut mem_mb: Option<f64> = None;
    for r in resources {
        let Some(v) = r.scalar.as_ref().map(|s| s.value) else {
            continue;
        };
        if !v.is_finite() || v < 0.0 {
            continue;
        }
        match r.name.as_str() {
            "cpus" => *cpus.get_or_insert(0.0) += v,
            "mem" => *mem_mb.get_or_insert(0.0) += v,
            _ => {}
        }
    }
    Limits {
        cpus: cpus.map(|c| c.max(MIN_CPUS)),
        // Whole megabytes, as Mesos reads `mem`.
        memory: mem_mb.map(|m| (m as u64).saturating_mul(1 << 20).max(MIN_MEMORY)),
        pids,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::mesos::value;

    fn scalar(name: &str, v: f64, role: &str) -> Resource {
        Resource {
            name: name.into(),
            r#type: value::Type::Scalar as i32,
            scalar: Some(value::Scalar { value: v }),
            role: Some(role.into()),
            ..Resource::default()
        }
    }

    #[test]
    fn executor_and_task_resources_are_summed_across_roles() {
        let executor = [scalar("cpus", 0.1, "*"), scalar("mem", 32.0, "*")];
        let task = [
            scalar("cpus", 1.0, "web"),
            scalar("mem", 128.0, "web"),
            scalar("disk", 512.0, "*"),
            Resource {
                name: "ports".into(),
                r#type: value::Type::Ranges as i32,
                ..Resource::default()
            },
        ];
        let l = limits(executor.iter().chain(&task), Some(100));
        assert!((l.cpus.unwrap() - 1.1).abs() < 1e-9, "{l:?}");
        assert_eq!(l.memory, Some(160 << 20));
        assert_eq!(l.pids, Some(100));
    }

    #[test]
    fn floors_and_missing_resources() {
        let l = limits(&[scalar("cpus", 0.001, "*"), scalar("mem", 4.0, "*")], None);
        assert_eq!(l.cpus, Some(MIN_CPUS));
        assert_eq!(l.memory, Some(MIN_MEMORY));
        // Fractions of a megabyte are dropped, as Mesos does.
        let l = limits(&[scalar("mem", 64.9, "*")], None);
        assert_eq!(l.memory, Some(64 << 20));
        assert_eq!(l.cpus, None);
        assert_eq!(limits(&[], None), Limits::default());
    }
}
