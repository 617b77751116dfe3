//! How a container ended, and the limits it hit, in Mesos' terms: an OOM
//! kill in the cgroup is `REASON_CONTAINER_LIMITATION_MEMORY` with the
//! message of Mesos' memory isolator ("Memory limit exceeded: Requested:
//! 64MB Maximum Used: 64MB"); forks refused at the pids limit are
//! `REASON_CONTAINER_LIMITATION`; a sandbox over its `disk` is
//! `REASON_CONTAINER_LIMITATION_DISK` ("Disk usage (10340KB) exceeds quota
//! (10MB)", as Mesos' disk isolator says).

use crate::proto::mesos::task_status::Reason;
use crate::runtime::{ExitStatus, ResourceStats};
use crate::support::format_bytes;
use nix::sys::signal::Signal;

/// A resource limit the container hit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limitation {
    pub reason: Reason,
    pub message: String,
}

/// How a container ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Termination {
    /// The executor's exit status; `None` when not known (a container
    /// adopted after an agent restart, or found gone then).
    pub status: Option<ExitStatus>,
    /// The limit that ended it (the containerizer then killed it, as Mesos
    /// does), if any.
    pub limitation: Option<Limitation>,
    /// One line for people: the limitation's message, or how the executor
    /// ended.
    pub message: String,
}

impl Termination {
    pub fn new(status: Option<ExitStatus>, limitation: Option<Limitation>) -> Self {
        let message = match (&limitation, status) {
            (Some(l), _) => l.message.clone(),
            (None, Some(s)) => describe(s),
            (None, None) => "executor terminated; its exit status is unknown".to_string(),
        };
        Termination {
            status,
            limitation,
            message,
        }
    }
}

/// The limitation the statistics of a container show, if any: an OOM kill
/// first; forks refused at the pids limit only when `pids` matter (the
/// executor did not end cleanly, or it is still running).
pub(super) fn seen(
    stats: &ResourceStats,
    pids_limit: Option<u64>,
    pids: bool,
) -> Option<Limitation> {
    if stats.oom_kills > 0 {
        return Some(memory(stats));
    }
    if pids && stats.pids_limit_hits > 0 {
        let limit = pids_limit.map_or(String::new(), |l| format!(" of {l}"));
        return Some(Limitation {
            reason: Reason::ContainerLimitation,
            message: format!(
                "Pids limit exceeded: {} forks refused at the limit{limit}",
                stats.pids_limit_hits
            ),
        });
    }
    None
}

/// Mesos' memory isolator message, with the limit and the peak usage.
fn memory(stats: &ResourceStats) -> Limitation {
    let mut message = "Memory limit exceeded:".to_string();
    if stats.memory_limit > 0 {
        message.push_str(&format!(" Requested: {}", format_bytes(stats.memory_limit)));
    }
    if stats.memory_peak > 0 {
        message.push_str(&format!(
            " Maximum Used: {}",
            format_bytes(stats.memory_peak)
        ));
    }
    Limitation {
        reason: Reason::ContainerLimitationMemory,
        message,
    }
}

/// Mesos' disk isolator message: the usage and the quota, as stout
/// prints byte counts.
pub(super) fn disk(used: u64, quota: u64) -> Limitation {
    Limitation {
        reason: Reason::ContainerLimitationDisk,
        message: format!(
            "Disk usage ({}) exceeds quota ({})",
            format_bytes(used),
            format_bytes(quota)
        ),
    }
}

/// How an executor ended, in words.
pub(super) fn describe(s: ExitStatus) -> String {
    match s {
        ExitStatus::Exited(c) => format!("executor exited with status {c}"),
        ExitStatus::Signaled(n) => match Signal::try_from(n) {
            Ok(sig) => format!("executor killed by {sig}"),
            Err(_) => format!("executor killed by signal {n}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oom_kill_is_a_memory_limitation_naming_limit_and_peak() {
        let stats = ResourceStats {
            oom_kills: 1,
            memory_limit: 64 << 20,
            memory_peak: 64 << 20,
            pids_limit_hits: 3,
            ..ResourceStats::default()
        };
        let l = seen(&stats, Some(10), true).unwrap();
        assert_eq!(l.reason, Reason::ContainerLimitationMemory);
        assert_eq!(
            l.message,
            "Memory limit exceeded: Requested: 64MB Maximum Used: 64MB"
        );
        let t = Termination::new(Some(ExitStatus::Signaled(9)), Some(l.clone()));
        assert_eq!(t.message, l.message);
    }

    #[test]
    fn disk_limitation_has_the_mesos_reason_and_message() {
        let l = disk(10340 << 10, 10 << 20);
        assert_eq!(l.reason, Reason::ContainerLimitationDisk);
        assert_eq!(l.message, "Disk usage (10340KB) exceeds quota (10MB)");
    }

    #[test]
    fn pids_hits_count_only_when_asked() {
        let stats = ResourceStats {
            pids_limit_hits: 3,
            ..ResourceStats::default()
        };
        assert_eq!(seen(&stats, Some(10), false), None);
        let l = seen(&stats, Some(10), true).unwrap();
        assert_eq!(l.reason, Reason::ContainerLimitation);
        assert_eq!(
            l.message,
            "Pids limit exceeded: 3 forks refused at the limit of 10"
        );
        assert_eq!(seen(&ResourceStats::default(), None, true), None);
    }

    #[test]
    fn terminations_say_how_the_executor_ended() {
        let t = |s| Termination::new(s, None).message;
        assert_eq!(
            t(Some(ExitStatus::Exited(0))),
            "executor exited with status 0"
        );
        assert_eq!(
            t(Some(ExitStatus::Signaled(9))),
            "executor killed by SIGKILL"
        );
        assert!(t(None).contains("unknown"));
    }
}
