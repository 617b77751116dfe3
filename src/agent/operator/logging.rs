//! The agent's log verbosity as the v1 operator API shows and changes it
//! (GET_LOGGING_LEVEL, SET_LOGGING_LEVEL). Mesos counts glog verbosity
//! (0 at start; libprocess logs more at 1, 2, 3) and reverts to the level
//! at start once the last change's duration is over. butte maps the same
//! numbers onto its tracing filter: 0 is the level the agent started with
//! (`BUTTE_LOG`/`RUST_LOG`, else info), 1 at least DEBUG, 2 and more TRACE.
//!
//! The filter is the process's, so the control is too: `main.rs` installs
//! it once ([`install`]) with a function that swaps the tracing filter.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tracing::level_filters::LevelFilter;

/// Swaps the process's tracing filter.
pub type SetFilter = Box<dyn Fn(LevelFilter) + Send + Sync>;

/// The verbosity and how to apply it.
pub struct LogControl {
    /// The filter at start (verbosity 0).
    base: LevelFilter,
    set: SetFilter,
    /// The verbosity now, and a count of changes (a revert only applies
    /// if no change came after the one that scheduled it).
    state: Mutex<(u32, u64)>,
}

static CONTROL: OnceLock<Arc<LogControl>> = OnceLock::new();

/// Installs the process's control (once; later calls are ignored).
pub fn install(base: LevelFilter, set: SetFilter) {
    let _ = CONTROL.set(Arc::new(LogControl::new(base, set)));
}

/// The installed control, if any.
pub fn control() -> Option<Arc<LogControl>> {
    CONTROL.get().cloned()
}

impl LogControl {
    pub fn new(base: LevelFilter, set: SetFilter) -> LogControl {
        LogControl {
            base,
            set,
            state: Mutex::new((0, 0)),
        }
    }

    /// The verbosity now (0: the level at start).
    pub fn level(&self) -> u32 {
        self.lock().0
    }

    /// The tracing filter of a verbosity.
    pub fn filter(&self, level: u32) -> LevelFilter {
        match level {
            0 => self.base,
            1 => self.base.max(LevelFilter::DEBUG),
            _ => LevelFilter::TRACE,
        }
    }

    /// Sets verbosity `level` now and, unless it is 0, schedules the return
    /// to 0 after `duration` (a later change replaces that schedule). Needs
    /// a tokio runtime.
    pub fn set_level(self: &Arc<Self>, level: u32, duration: Duration) {
        let generation = {
            let mut state = self.lock();
            state.0 = level;
            state.1 += 1;
            (self.set)(self.filter(level));
            state.1
        };
        tracing::info!(level, ?duration, "log verbosity changed");
        if level == 0 {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(duration).await;
            let mut state = this.lock();
            if state.1 == generation {
                state.0 = 0;
                (this.set)(this.base);
                drop(state);
                tracing::info!("log verbosity reverted to 0");
            }
        });
    }

    // Nothing awaits under this lock.
    fn lock(&self) -> std::sync::MutexGuard<'_, (u32, u64)> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recording() -> (Arc<LogControl>, Arc<Mutex<Vec<LevelFilter>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let control = LogControl::new(
            LevelFilter::INFO,
            Box::new(move |f| sink.lock().unwrap().push(f)),
        );
        (Arc::new(control), seen)
    }

    #[tokio::test]
    async fn a_raised_level_applies_now_and_reverts_after_its_duration() {
        let (control, seen) = recording();
        control.set_level(1, Duration::from_millis(100));
        assert_eq!(control.level(), 1);
        assert_eq!(*seen.lock().unwrap(), [LevelFilter::DEBUG]);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(control.level(), 0);
        assert_eq!(
            *seen.lock().unwrap(),
            [LevelFilter::DEBUG, LevelFilter::INFO]
        );
    }

    #[tokio::test]
    async fn a_later_change_replaces_the_pending_revert() {
        let (control, seen) = recording();
        control.set_level(2, Duration::from_millis(50));
        control.set_level(1, Duration::from_secs(60));
        tokio::time::sleep(Duration::from_millis(200)).await;
        // The first change's revert found a newer change and did nothing.
        assert_eq!(control.level(), 1);
        assert_eq!(
            *seen.lock().unwrap(),
            [LevelFilter::TRACE, LevelFilter::DEBUG]
        );
    }

    #[test]
    fn verbosity_never_lowers_the_level_at_start() {
        let control = LogControl::new(LevelFilter::TRACE, Box::new(|_| {}));
        assert_eq!(control.filter(0), LevelFilter::TRACE);
        assert_eq!(control.filter(1), LevelFilter::TRACE);
        let control = LogControl::new(LevelFilter::WARN, Box::new(|_| {}));
        assert_eq!(control.filter(1), LevelFilter::DEBUG);
        assert_eq!(control.filter(7), LevelFilter::TRACE);
    }
}
