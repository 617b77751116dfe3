//! The executor's own capabilities. The containerizer gives an executor
//! with image tasks `CAP_SYS_ADMIN` on top of the default set, only so that
//! it can start their prepared processes (`butte enter --prepare`); right
//! after, before it talks to the agent or starts a thread, the executor
//! reduces its bounding, effective, permitted, inheritable and ambient
//! sets to the default set, for good (it runs with no_new_privs, so no
//! exec gives them back).

use caps::{CapSet, Capability, CapsHashSet};

/// Docker's default set, the one the runtime gives its sandboxes.
pub use crate::support::caps::DEFAULT;

/// Why the executor could not give up its extra capabilities.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    #[error("cannot {step}: {source}")]
    Caps {
        step: &'static str,
        #[source]
        source: caps::errors::CapsError,
    },
    #[error("{cap} is still in the {set} set after dropping it")]
    StillHeld { cap: Capability, set: &'static str },
}

fn caps_err(step: &'static str) -> impl FnOnce(caps::errors::CapsError) -> PrivilegeError {
    move |source| PrivilegeError::Caps { step, source }
}

/// Reduces every capability set of the calling thread (and of the threads
/// and processes it starts later) to [`DEFAULT`]. The bounding set is
/// reduced when we may (`CAP_SETPCAP`); a process without it holds no
/// capability that could come back from it under no_new_privs.
pub fn drop_to_default() -> Result<(), PrivilegeError> {
    let keep: CapsHashSet = DEFAULT.iter().copied().collect();
    let setpcap = caps::has_cap(None, CapSet::Effective, Capability::CAP_SETPCAP).unwrap_or(false);
    if setpcap {
        for cap in caps::all() {
            // Capabilities the kernel does not know are not held: skip.
            if !keep.contains(&cap) && caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(false) {
                caps::drop(None, CapSet::Bounding, cap)
                    .map_err(caps_err("drop bounding capabilities"))?;
            }
        }
    }
    caps::clear(None, CapSet::Ambient).map_err(caps_err("clear ambient capabilities"))?;
    // Effective before permitted: effective must stay within permitted.
    for (set, step) in [
        (CapSet::Effective, "reduce effective capabilities"),
        (CapSet::Permitted, "reduce permitted capabilities"),
        (CapSet::Inheritable, "reduce inheritable capabilities"),
    ] {
        let held = caps::read(None, set).map_err(caps_err("read capabilities"))?;
        let kept: CapsHashSet = held.intersection(&keep).copied().collect();
        if kept != held {
            caps::set(None, set, &kept).map_err(caps_err(step))?;
        }
    }
    let mut check = vec![
        (CapSet::Effective, "effective"),
        (CapSet::Permitted, "permitted"),
        (CapSet::Inheritable, "inheritable"),
        (CapSet::Ambient, "ambient"),
    ];
    if setpcap {
        check.push((CapSet::Bounding, "bounding"));
    }
    for (set, name) in check {
        let held = caps::read(None, set).map_err(caps_err("read capabilities"))?;
        if let Some(cap) = held.iter().find(|c| !keep.contains(c)) {
            return Err(PrivilegeError::StillHeld {
                cap: *cap,
                set: name,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_set_is_dockers() {
        let mask = DEFAULT.iter().fold(0u64, |m, c| m | c.bitmask());
        assert_eq!(mask, 0x00000000a80425fb);
        assert!(!DEFAULT.contains(&Capability::CAP_SYS_ADMIN));
    }

    #[test]
    fn a_thread_keeps_at_most_the_default_set() {
        // On a thread of its own: capabilities belong to a thread.
        std::thread::spawn(|| {
            drop_to_default().unwrap();
            for set in [CapSet::Effective, CapSet::Permitted, CapSet::Ambient] {
                let held = caps::read(None, set).unwrap();
                assert!(!held.contains(&Capability::CAP_SYS_ADMIN), "{set:?}");
                assert!(
                    held.iter().all(|c| DEFAULT.contains(c)),
                    "{set:?}: {held:?}"
                );
            }
            if nix::unistd::geteuid().is_root() {
                let bounding = caps::read(None, CapSet::Bounding).unwrap();
                assert!(!bounding.contains(&Capability::CAP_SYS_ADMIN));
                // Gone for good: it cannot be raised again.
                assert!(caps::raise(None, CapSet::Effective, Capability::CAP_SYS_ADMIN).is_err());
            }
        })
        .join()
        .unwrap();
    }
}
