//! A task's process group and the signals that end it: SIGTERM, then
//! SIGKILL once the kill grace period is over.

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use std::time::{Duration, Instant};

/// When a kill in progress escalates to SIGKILL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Escalation {
    started: Instant,
    deadline: Instant,
}

impl Escalation {
    pub fn new(now: Instant, grace: Duration) -> Self {
        Escalation {
            started: now,
            deadline: now + grace,
        }
    }

    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// A repeated kill with `grace`: the total grace period may only
    /// shrink (a retried kill is a no-op, a longer one is ignored), as in
    /// Mesos' command executor. Returns true when the deadline moved.
    pub fn shorten(&mut self, now: Instant, grace: Duration) -> bool {
        let wanted = self.started + grace;
        if wanted >= self.deadline {
            return false;
        }
        self.deadline = wanted.max(now);
        true
    }
}

/// A started task process, leader of its own process group.
#[derive(Debug)]
pub struct Group {
    pub pid: u32,
    escalation: Option<Escalation>,
    sigkilled: bool,
}

impl Group {
    pub fn new(pid: u32) -> Self {
        Group {
            pid,
            escalation: None,
            sigkilled: false,
        }
    }

    /// Sends `signal` to the group, or to the process alone if the group
    /// is gone (its leader may have left it).
    pub fn signal(&self, signal: Signal) {
        let pid = Pid::from_raw(self.pid as i32);
        if killpg(pid, signal).is_err() {
            let _ = kill(pid, signal);
        }
    }

    /// Starts a kill (SIGTERM now, SIGKILL after `grace`), or shortens the
    /// one in progress.
    pub fn kill(&mut self, now: Instant, grace: Duration) {
        match &mut self.escalation {
            Some(e) => {
                e.shorten(now, grace);
            }
            None => {
                self.signal(Signal::SIGTERM);
                self.escalation = Some(Escalation::new(now, grace));
            }
        }
        self.escalate(now);
    }

    /// When the next SIGKILL is due, if any.
    pub fn deadline(&self) -> Option<Instant> {
        match self.escalation {
            Some(e) if !self.sigkilled => Some(e.deadline()),
            _ => None,
        }
    }

    /// Sends SIGKILL if the grace period is over.
    pub fn escalate(&mut self, now: Instant) {
        if let Some(d) = self.deadline() {
            if now >= d {
                self.signal(Signal::SIGKILL);
                self.sigkilled = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_kill_can_only_shorten_the_grace_period() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut e = Escalation::new(t0, s(20));
        assert!(!e.shorten(t0 + s(1), s(30)));
        assert!(!e.shorten(t0 + s(1), s(20)));
        assert_eq!(e.deadline(), t0 + s(20));
        assert!(e.shorten(t0 + s(2), s(5)));
        assert_eq!(e.deadline(), t0 + s(5));
        // Already past the shorter grace period: SIGKILL right away.
        let mut e = Escalation::new(t0, s(20));
        assert!(e.shorten(t0 + s(8), s(5)));
        assert_eq!(e.deadline(), t0 + s(8));
    }

    #[test]
    fn a_group_is_terminated_then_killed() {
        use std::os::unix::process::CommandExt;
        let mut child = std::process::Command::new("/bin/sh")
            .args(["-c", "trap '' TERM; sleep 30 & wait"])
            .process_group(0)
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let mut g = Group::new(child.id());
        let t0 = Instant::now();
        g.kill(t0, Duration::from_secs(60));
        assert_eq!(g.deadline(), Some(t0 + Duration::from_secs(60)));
        g.kill(t0, Duration::ZERO);
        assert_eq!(g.deadline(), None);
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9));
    }
}
