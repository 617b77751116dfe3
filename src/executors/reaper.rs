//! Starting child processes and learning how they ended.
//!
//! As pid 1 of a pid namespace the executor inherits every orphan of its
//! tasks, so it must reap any child (`waitid(P_ALL)`), and hand each exit
//! of a process it started to whoever asked. Otherwise it waits for its own
//! children only, one small thread each, so that it never takes the exit
//! of a process someone else in the same process is waiting for (tests).
//!
//! Spawning holds the registry lock: the reaper peeks at a zombie
//! (`WNOWAIT`), then takes the lock before reaping it, so an exit is never
//! dispatched before its pid is registered, and a child std reaps itself
//! (an exec that failed) is never taken from under it.

use super::exit::Exit;
use nix::errno::Errno;
use nix::sys::wait::{waitid, waitpid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::collections::HashMap;
use std::io;
use std::process::Command;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// What to do with a child's exit.
pub type OnExit = Box<dyn FnOnce(Exit) + Send>;

/// Starts processes and reports their exits.
#[derive(Clone)]
pub struct Reaper {
    shared: Arc<Shared>,
}

struct Shared {
    reap_all: bool,
    state: Mutex<Registry>,
    spawned: Condvar,
}

#[derive(Default)]
struct Registry {
    waiting: HashMap<i32, OnExit>,
    /// Counts spawns, so the reaper knows when to look again after it
    /// found no children.
    generation: u64,
}

impl Reaper {
    /// A reaper; with `reap_all` (pid 1) it also reaps orphans.
    pub fn new(reap_all: bool) -> Reaper {
        let shared = Arc::new(Shared {
            reap_all,
            state: Mutex::new(Registry::default()),
            spawned: Condvar::new(),
        });
        if reap_all {
            let s = shared.clone();
            let _ = std::thread::Builder::new()
                .name("reaper".into())
                .stack_size(64 << 10)
                .spawn(move || reap_all_loop(&s));
        }
        Reaper { shared }
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts `cmd`; `on_exit` runs (on a reaper thread) when it ends.
    /// Returns the pid.
    pub fn spawn(&self, cmd: &mut Command, on_exit: OnExit) -> io::Result<u32> {
        let registry = self.lock();
        let child = cmd.spawn()?;
        let pid = child.id();
        // Dropping a Child neither waits nor kills.
        drop(child);
        self.watch(registry, pid, on_exit)?;
        Ok(pid)
    }

    /// Watches a child started before the reaper (one that nobody waits
    /// for): `on_exit` runs when it ends.
    pub fn adopt(&self, pid: u32, on_exit: OnExit) -> io::Result<()> {
        let registry = self.lock();
        self.watch(registry, pid, on_exit)
    }

    fn watch(
        &self,
        mut registry: MutexGuard<'_, Registry>,
        pid: u32,
        on_exit: OnExit,
    ) -> io::Result<()> {
        if self.shared.reap_all {
            registry.waiting.insert(pid as i32, on_exit);
            registry.generation += 1;
            self.shared.spawned.notify_all();
        } else {
            drop(registry);
            let spawned = std::thread::Builder::new()
                .name("wait".into())
                .stack_size(64 << 10)
                .spawn(move || on_exit(wait_for(pid as i32)));
            if let Err(e) = spawned {
                let _ =
                    nix::sys::signal::kill(Pid::from_raw(pid as i32), nix::sys::signal::SIGKILL);
                let _ = waitpid(Pid::from_raw(pid as i32), None);
                return Err(e);
            }
        }
        Ok(())
    }
}

/// Blocks until `pid` has ended.
fn wait_for(pid: i32) -> Exit {
    loop {
        match waitpid(Pid::from_raw(pid), None) {
            Ok(WaitStatus::Exited(_, code)) => return Exit::Code(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Exit::Signal(sig as i32),
            Ok(_) | Err(Errno::EINTR) => {}
            // Not ours any more: nothing better to report.
            Err(_) => return Exit::Code(-1),
        }
    }
}

fn reap_all_loop(shared: &Shared) {
    let mut seen = 0u64;
    loop {
        let peek = waitid(Id::All, WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT);
        match peek {
            Ok(status) => {
                let Some(pid) = status.pid() else { continue };
                let mut registry = shared.state.lock().unwrap_or_else(|e| e.into_inner());
                let exit = match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::Exited(_, code)) => Exit::Code(code),
                    Ok(WaitStatus::Signaled(_, sig, _)) => Exit::Signal(sig as i32),
                    // Reaped by someone else (std after a failed exec).
                    _ => continue,
                };
                if let Some(on_exit) = registry.waiting.remove(&pid.as_raw()) {
                    drop(registry);
                    on_exit(exit);
                }
            }
            Err(Errno::EINTR) => {}
            Err(_) => {
                // No children: sleep until the next spawn.
                let mut registry = shared.state.lock().unwrap_or_else(|e| e.into_inner());
                while registry.generation == seen {
                    registry = shared
                        .spawned
                        .wait(registry)
                        .unwrap_or_else(|e| e.into_inner());
                }
                seen = registry.generation;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn exits_are_reported_per_child() {
        let reaper = Reaper::new(false);
        let (tx, rx) = mpsc::channel();
        for code in [0, 3] {
            let tx = tx.clone();
            let pid = reaper
                .spawn(
                    Command::new("/bin/sh").args(["-c", &format!("exit {code}")]),
                    Box::new(move |e| {
                        let _ = tx.send((code, e));
                    }),
                )
                .unwrap();
            assert!(pid > 0);
        }
        let tx2 = tx.clone();
        reaper
            .spawn(
                Command::new("/bin/sh").args(["-c", "kill -9 $$"]),
                Box::new(move |e| {
                    let _ = tx2.send((9, e));
                }),
            )
            .unwrap();
        let mut got: Vec<(i32, Exit)> = (0..3)
            .map(|_| rx.recv_timeout(Duration::from_secs(10)).unwrap())
            .collect();
        got.sort_by_key(|(c, _)| *c);
        assert_eq!(
            got,
            vec![(0, Exit::Code(0)), (3, Exit::Code(3)), (9, Exit::Signal(9))]
        );
    }

    #[test]
    fn a_failed_exec_is_an_error_not_an_exit() {
        let reaper = Reaper::new(false);
        let e = reaper
            .spawn(
                &mut Command::new("/no/such/program"),
                Box::new(|_| panic!("no exit expected")),
            )
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }
}
