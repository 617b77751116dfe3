//! The judgement of health and general checks, apart from how a probe is
//! run: Mesos' `HealthChecker` (consecutive failures, grace period, healthy
//! reported on the first success and after failures, unhealthy on every
//! counted failure) and `Checker` (a result is reported when it changes).

use std::time::{Duration, Instant};

/// What a health check's settings say about judging results.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealthPolicy {
    /// Failures in a row after which the task is killed.
    pub consecutive_failures: u32,
    /// Failures during this time after the checker started are ignored,
    /// until the first success.
    pub grace_period: Duration,
}

/// A report for the executor: a `TASK_RUNNING` update with `healthy`, and
/// whether the task is now to be killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthReport {
    pub healthy: bool,
    pub kill_task: bool,
    pub consecutive_failures: u32,
}

/// The health of one task.
#[derive(Debug, Clone)]
pub struct HealthState {
    policy: HealthPolicy,
    started: Instant,
    consecutive_failures: u32,
    /// No success seen yet.
    initializing: bool,
}

impl HealthState {
    pub fn new(policy: HealthPolicy, started: Instant) -> Self {
        HealthState {
            policy,
            started,
            consecutive_failures: 0,
            initializing: true,
        }
    }

    /// A passing probe: healthy is reported on the first success and on
    /// the first success after failures.
    pub fn success(&mut self) -> Option<HealthReport> {
        let report = (self.initializing || self.consecutive_failures > 0).then_some(HealthReport {
            healthy: true,
            kill_task: false,
            consecutive_failures: 0,
        });
        self.initializing = false;
        self.consecutive_failures = 0;
        report
    }

    /// A failing probe at `now`: ignored within the grace period while no
    /// success was seen; otherwise unhealthy, with a kill once the limit of
    /// consecutive failures is reached.
    pub fn failure(&mut self, now: Instant) -> Option<HealthReport> {
        let grace = self.policy.grace_period;
        if self.initializing
            && !grace.is_zero()
            && now.saturating_duration_since(self.started) <= grace
        {
            return None;
        }
        self.consecutive_failures += 1;
        Some(HealthReport {
            healthy: false,
            kill_task: self.consecutive_failures >= self.policy.consecutive_failures,
            consecutive_failures: self.consecutive_failures,
        })
    }
}

/// A general check's last reported result: a new one is reported only
/// when it differs.
#[derive(Debug, Clone)]
pub struct CheckState<T> {
    previous: T,
}

impl<T: PartialEq + Clone> CheckState<T> {
    /// `empty` is the result a task starts with (nothing known yet).
    pub fn new(empty: T) -> Self {
        CheckState { previous: empty }
    }

    /// Records a result; returns it when it is news.
    pub fn update(&mut self, result: T) -> Option<T> {
        if result == self.previous {
            return None;
        }
        self.previous = result.clone();
        Some(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(failures: u32, grace_secs: u64) -> (HealthState, Instant) {
        let t0 = Instant::now();
        let policy = HealthPolicy {
            consecutive_failures: failures,
            grace_period: Duration::from_secs(grace_secs),
        };
        (HealthState::new(policy, t0), t0)
    }

    fn at(t0: Instant, secs: u64) -> Instant {
        t0 + Duration::from_secs(secs)
    }

    #[test]
    fn failures_in_the_grace_period_are_ignored_until_a_success() {
        let (mut h, t0) = state(3, 10);
        assert_eq!(h.failure(at(t0, 1)), None);
        assert_eq!(h.failure(at(t0, 10)), None);
        let r = h.failure(at(t0, 11)).unwrap();
        assert_eq!(
            (r.healthy, r.kill_task, r.consecutive_failures),
            (false, false, 1)
        );

        let (mut h, t0) = state(3, 10);
        assert!(h.success().unwrap().healthy);
        // After a success the grace period no longer shields failures.
        let r = h.failure(at(t0, 2)).unwrap();
        assert!(!r.healthy);
    }

    #[test]
    fn healthy_is_reported_on_change_and_unhealthy_on_every_failure() {
        let (mut h, t0) = state(3, 0);
        assert_eq!(
            h.success(),
            Some(HealthReport {
                healthy: true,
                kill_task: false,
                consecutive_failures: 0
            })
        );
        assert_eq!(h.success(), None);
        assert_eq!(h.failure(at(t0, 1)).unwrap().consecutive_failures, 1);
        assert_eq!(h.failure(at(t0, 2)).unwrap().consecutive_failures, 2);
        assert!(h.success().unwrap().healthy);
        assert_eq!(h.failure(at(t0, 3)).unwrap().consecutive_failures, 1);
    }

    #[test]
    fn the_task_is_killed_after_consecutive_failures() {
        let (mut h, t0) = state(3, 0);
        let kills: Vec<bool> = (1..=4)
            .map(|i| h.failure(at(t0, i)).unwrap().kill_task)
            .collect();
        assert_eq!(kills, vec![false, false, true, true]);
    }

    #[test]
    fn checks_report_changes_only() {
        let mut c = CheckState::new(None::<i32>);
        assert_eq!(c.update(None), None);
        assert_eq!(c.update(Some(0)), Some(Some(0)));
        assert_eq!(c.update(Some(0)), None);
        assert_eq!(c.update(Some(1)), Some(Some(1)));
        assert_eq!(c.update(None), Some(None));
    }
}
