//! cgroup v2 under systemd: is the agent's own cgroup the leaf of a
//! subtree delegated to it?
//!
//! With `Delegate=yes` and `DelegateSubgroup=supervisor` (systemd >= 254)
//! a service's main process starts in `<unit cgroup>/supervisor`, and the
//! unit's cgroup is the agent's to manage: it may enable controllers there
//! and create groups next to its own leaf, and systemd leaves them alone.
//! Sandboxes then go to `<unit cgroup>/<parent>/<id>`, `parent` being the
//! agent's `--cgroups_root`:
//!
//! ```text
//! /sys/fs/cgroup/system.slice/butte-agent.service/   subtree_control: cpu io memory pids
//!     supervisor/                                     the agent (a leaf)
//!     butte/                                          the parent; no processes
//!         <container id>/                             a sandbox (a leaf)
//! ```
//!
//! Without it (systemd 252, where the agent sits in the unit's cgroup
//! itself, which must then stay a leaf: systemd attaches the next main
//! process there; no systemd; v1 or hybrid) containers go under the
//! hierarchy's root, `/sys/fs/cgroup/<parent>/<id>`.
//!
//! [`detect`] decides from data: the text of `/proc/self/cgroup`, a cgroup
//! root (a temporary directory in tests) and a reader of extended
//! attributes, so every case is tested without root or systemd.

use std::fs;
use std::path::{Path, PathBuf};

/// A subtree delegated to the agent, relative to the hierarchy's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delegation {
    /// The unit's cgroup (`system.slice/butte-agent.service`): the agent
    /// owns everything below it.
    pub unit: String,
    /// The leaf the agent runs in (`supervisor`), a child of `unit`.
    pub leaf: String,
    /// Whether systemd marked `unit` as delegated (`trusted.delegate=1`,
    /// or `user.delegate=1` under a user manager); older managers do not.
    pub marked: bool,
}

/// Why the agent's cgroup is not a delegated leaf: containers then go
/// under the hierarchy's root.
#[derive(Debug, thiserror::Error)]
pub enum NotDelegated {
    #[error("{0} is not a pure cgroup v2 hierarchy")]
    NotV2(PathBuf),
    #[error("/proc/self/cgroup names no cgroup v2 path")]
    NoV2Path,
    #[error("the agent's cgroup /{own} is not a leaf directly under a systemd service's cgroup (systemd < 254 or no DelegateSubgroup=)")]
    NotASubgroup { own: String },
    #[error("{path}: {name}={value:?}, not delegated")]
    NotMarked {
        path: PathBuf,
        name: &'static str,
        value: String,
    },
    #[error("cannot write {path}: {source}")]
    NotWritable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the unit's cgroup {path} holds processes ({pids}): it cannot have controllers enabled for its children")]
    Busy { path: PathBuf, pids: String },
    #[error("the sandboxes' parent {root:?} would be inside the agent's own leaf /{leaf}")]
    Clash { root: String, leaf: String },
}

/// The extended attributes systemd sets on a delegated cgroup.
const MARKS: [&str; 2] = ["trusted.delegate", "user.delegate"];

/// Decides whether the cgroup named in `proc_self_cgroup` (the text of
/// `/proc/self/cgroup`) is a delegated leaf under `root` in which the
/// agent may keep running while its containers go next to it under
/// `cgroups_root`. `xattr(path, name)` reads an extended attribute
/// (`None`: absent or unreadable).
///
/// Delegated when: `root` is cgroup v2; the agent's cgroup is `<unit>/<leaf>`
/// with `unit` a `*.service`; `unit` is not marked otherwise by systemd (a
/// mark, when present, must be `1`); its `cgroup.subtree_control` and
/// `cgroup.procs` can be written; it holds no process; and `cgroups_root`
/// does not start with `leaf`.
pub fn detect(
    root: &Path,
    proc_self_cgroup: &str,
    cgroups_root: &str,
    xattr: &dyn Fn(&Path, &str) -> Option<Vec<u8>>,
) -> Result<Delegation, NotDelegated> {
    if !root.join("cgroup.controllers").is_file() {
        return Err(NotDelegated::NotV2(root.to_path_buf()));
    }
    let own = proc_self_cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .ok_or(NotDelegated::NoV2Path)?
        .trim()
        .trim_matches('/')
        .to_string();
    let not_sub = || NotDelegated::NotASubgroup { own: own.clone() };
    let (unit, leaf) = own.rsplit_once('/').ok_or_else(not_sub)?;
    let unit_name = unit.rsplit('/').next().unwrap_or(unit);
    if !unit_name.ends_with(".service") || leaf.is_empty() || leaf.starts_with("cgroup.") {
        return Err(not_sub());
    }
    let dir = root.join(unit);
    let mut marked = false;
    for name in MARKS {
        if let Some(value) = xattr(&dir, name) {
            if value != b"1" {
                return Err(NotDelegated::NotMarked {
                    path: dir,
                    name,
                    value: String::from_utf8_lossy(&value).into_owned(),
                });
            }
            marked = true;
        }
    }
    for file in ["cgroup.subtree_control", "cgroup.procs"] {
        let path = dir.join(file);
        nix::unistd::access(&path, nix::unistd::AccessFlags::W_OK).map_err(|e| {
            NotDelegated::NotWritable {
                path: path.clone(),
                source: e.into(),
            }
        })?;
    }
    let procs = dir.join("cgroup.procs");
    let pids = fs::read_to_string(&procs).map_err(|source| NotDelegated::NotWritable {
        path: procs.clone(),
        source,
    })?;
    let pids: Vec<&str> = pids.split_whitespace().collect();
    if !pids.is_empty() {
        return Err(NotDelegated::Busy {
            path: dir,
            pids: pids.join(" "),
        });
    }
    let first = cgroups_root
        .trim_matches('/')
        .split('/')
        .next()
        .unwrap_or("");
    if first == leaf {
        return Err(NotDelegated::Clash {
            root: cgroups_root.to_string(),
            leaf: own.clone(),
        });
    }
    Ok(Delegation {
        unit: unit.to_string(),
        leaf: leaf.to_string(),
        marked,
    })
}

/// Reads an extended attribute of a cgroup directory; `None` when it is
/// absent or cannot be read.
pub fn read_xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = [0u8; 64];
    let n = rustix::fs::getxattr(path, name, &mut buf[..]).ok()?;
    Some(buf[..n].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const UNIT: &str = "system.slice/butte-agent.service";

    /// A cgroup v2 root with the unit's cgroup and its supervisor leaf.
    fn fake_root() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("cgroup.controllers"), "cpu io memory pids").unwrap();
        let unit = t.path().join(UNIT);
        fs::create_dir_all(unit.join("supervisor")).unwrap();
        for f in ["cgroup.subtree_control", "cgroup.procs"] {
            fs::write(unit.join(f), "").unwrap();
        }
        fs::write(unit.join("supervisor/cgroup.procs"), "4242\n").unwrap();
        t
    }

    fn no_xattr(_: &Path, _: &str) -> Option<Vec<u8>> {
        None
    }

    fn marks(pairs: &[(&'static str, &'static str)]) -> impl Fn(&Path, &str) -> Option<Vec<u8>> {
        let map: HashMap<&str, &str> = pairs.iter().copied().collect();
        move |p: &Path, name: &str| {
            assert!(p.ends_with(UNIT), "{p:?}");
            map.get(name).map(|v| v.as_bytes().to_vec())
        }
    }

    const SUPERVISOR: &str = "0::/system.slice/butte-agent.service/supervisor\n";

    #[test]
    fn a_delegate_subgroup_leaf_is_delegated() {
        let t = fake_root();
        let d = detect(
            t.path(),
            SUPERVISOR,
            "butte",
            &marks(&[("trusted.delegate", "1")]),
        )
        .unwrap();
        assert_eq!(
            d,
            Delegation {
                unit: UNIT.into(),
                leaf: "supervisor".into(),
                marked: true
            }
        );
        // No mark (a manager that sets none): the files decide.
        let d = detect(t.path(), SUPERVISOR, "/butte/", &no_xattr).unwrap();
        assert!(!d.marked);
        // A nested --cgroups_root is fine; so is a user manager's mark.
        let d = detect(
            t.path(),
            SUPERVISOR,
            "mesos/agent",
            &marks(&[("user.delegate", "1")]),
        )
        .unwrap();
        assert!(d.marked);
    }

    #[test]
    fn systemd_252_puts_the_agent_in_the_unit_itself() {
        let t = fake_root();
        let e = detect(
            t.path(),
            "0::/system.slice/butte-agent.service\n",
            "butte",
            &no_xattr,
        )
        .unwrap_err();
        assert!(matches!(e, NotDelegated::NotASubgroup { .. }), "{e}");
        assert!(e.to_string().contains("DelegateSubgroup"), "{e}");
    }

    #[test]
    fn outside_a_service_is_not_delegated() {
        let t = fake_root();
        for text in [
            "0::/\n",
            "0::/user.slice/user-0.slice/session-3.scope\n",
            "0::/system.slice/cron.service/../x\n",
            "0::/init.scope\n",
        ] {
            assert!(
                matches!(
                    detect(t.path(), text, "butte", &no_xattr),
                    Err(NotDelegated::NotASubgroup { .. })
                ),
                "{text}"
            );
        }
    }

    #[test]
    fn hybrid_and_v1_hosts_are_not_delegated() {
        let t = fake_root();
        fs::remove_file(t.path().join("cgroup.controllers")).unwrap();
        let hybrid = "12:memory:/system.slice/butte-agent.service\n\
                      0::/system.slice/butte-agent.service/supervisor\n";
        assert!(matches!(
            detect(t.path(), hybrid, "butte", &no_xattr),
            Err(NotDelegated::NotV2(_))
        ));
        let t = fake_root();
        assert!(matches!(
            detect(t.path(), "4:pids:/x\n", "butte", &no_xattr),
            Err(NotDelegated::NoV2Path)
        ));
    }

    #[test]
    fn a_mark_that_is_not_1_refuses() {
        let t = fake_root();
        let e = detect(
            t.path(),
            SUPERVISOR,
            "butte",
            &marks(&[("trusted.delegate", "0")]),
        )
        .unwrap_err();
        assert!(matches!(e, NotDelegated::NotMarked { .. }), "{e}");
    }

    #[test]
    fn processes_in_the_unit_cgroup_refuse() {
        // An agent of the old layout left a process in the unit's cgroup:
        // controllers cannot be enabled for its children.
        let t = fake_root();
        fs::write(t.path().join(UNIT).join("cgroup.procs"), "17\n18\n").unwrap();
        let e = detect(t.path(), SUPERVISOR, "butte", &no_xattr).unwrap_err();
        assert!(
            matches!(&e, NotDelegated::Busy { pids, .. } if pids == "17 18"),
            "{e}"
        );
    }

    #[test]
    fn a_missing_control_file_refuses() {
        let t = fake_root();
        fs::remove_file(t.path().join(UNIT).join("cgroup.subtree_control")).unwrap();
        let e = detect(t.path(), SUPERVISOR, "butte", &no_xattr).unwrap_err();
        assert!(matches!(e, NotDelegated::NotWritable { .. }), "{e}");
        assert!(e.to_string().contains("cgroup.subtree_control"), "{e}");
    }

    #[test]
    fn cgroups_root_may_not_be_the_agents_leaf() {
        let t = fake_root();
        let e = detect(t.path(), SUPERVISOR, "/supervisor/x", &no_xattr).unwrap_err();
        assert!(matches!(e, NotDelegated::Clash { .. }), "{e}");
    }

    #[test]
    fn reads_no_xattr_from_a_plain_directory() {
        let t = tempfile::tempdir().unwrap();
        assert_eq!(read_xattr(t.path(), "trusted.delegate"), None);
    }
}
