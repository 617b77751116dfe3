//! `butte enter --setup`: the settings an executor asks for on top of an
//! image task's defaults (a Docker task's `docker run` settings), checked
//! before anything is mounted and turned into mounts, a capability set and
//! resource limits.
//!
//! - the sandbox at `sandbox_dir` instead of `/mnt/mesos/sandbox`;
//! - bind mounts of host paths and tmpfs mounts (Docker's `--tmpfs`
//!   options: `size=`, `mode=`, `uid=`, `gid=` and the flags `ro`, `rw`,
//!   `noexec`, `exec`, `nosuid`, `suid`, `nodev`, `dev`; Docker's defaults
//!   `noexec,nosuid,nodev` unless overridden), made after the pivot so that
//!   every target resolves inside the root filesystem;
//! - the size of `/dev/shm`, a read-only root filesystem;
//! - the capability set kept instead of the default one;
//! - resource limits by Docker's names (`nofile`, `nproc`, ...).

use crate::mount::Mount;
use crate::support::prepared::Setup;
use ::caps::Capability;
use nix::sys::resource::Resource;
use std::path::PathBuf;

use super::enter::SANDBOX_TARGET;
use super::spec::is_clean_absolute;

/// Why a `--setup` cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetupError {
    #[error("mount target {0:?}: must be an absolute path other than / without '..'")]
    Target(String),
    #[error("bind source {0:?}: must be an absolute path")]
    Source(PathBuf),
    #[error("tmpfs {target}: option {option:?}: {why}")]
    TmpfsOption {
        target: String,
        option: String,
        why: &'static str,
    },
    #[error("unknown capability {0:?}")]
    Capability(String),
    #[error("unknown resource limit {0:?} (expected one of {names})", names = RLIMIT_NAMES.join(", "))]
    Rlimit(String),
    #[error("resource limit {name}: soft limit {soft} above hard limit {hard}")]
    RlimitOrder { name: String, soft: u64, hard: u64 },
}

/// A [`Setup`], checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// Where the sandbox is bound.
    pub sandbox_target: PathBuf,
    /// Bind mounts and tmpfs mounts, binds first, in order.
    pub mounts: Vec<Mount>,
    /// `/dev/shm`'s size in bytes (`None`: the default).
    pub shm_size: Option<u64>,
    pub read_only: bool,
    /// The capabilities kept; `None`: the default set.
    pub capabilities: Option<Vec<Capability>>,
    pub rlimits: Vec<(Resource, u64, u64)>,
    /// A pinned network namespace to join first.
    pub netns: Option<PathBuf>,
}

/// Checks a setup: targets, tmpfs options, capability and limit names.
pub fn check(setup: &Setup) -> Result<Checked, SetupError> {
    let sandbox_target = match &setup.sandbox_dir {
        Some(dir) => target(dir)?,
        None => PathBuf::from(SANDBOX_TARGET),
    };
    let mut mounts = Vec::new();
    for b in &setup.binds {
        if !b.source.is_absolute() {
            return Err(SetupError::Source(b.source.clone()));
        }
        mounts.push(Mount::bind(&b.source, target(&b.target)?, b.read_only));
    }
    for (t, options) in &setup.tmpfs {
        mounts.push(Mount {
            source: "tmpfs".into(),
            target: target(t)?,
            fstype: Some("tmpfs".into()),
            options: tmpfs_options(t, options)?,
        });
    }
    let capabilities = match &setup.capabilities {
        Some(names) => Some(capabilities(names)?),
        None => None,
    };
    let rlimits = setup
        .rlimits
        .iter()
        .map(|(name, soft, hard)| {
            let r = rlimit(name).ok_or_else(|| SetupError::Rlimit(name.clone()))?;
            if soft > hard {
                return Err(SetupError::RlimitOrder {
                    name: name.clone(),
                    soft: *soft,
                    hard: *hard,
                });
            }
            Ok((r, *soft, *hard))
        })
        .collect::<Result<_, _>>()?;
    Ok(Checked {
        sandbox_target,
        mounts,
        // Docker too takes 0 for "not set".
        shm_size: setup.shm_size.filter(|s| *s > 0),
        read_only: setup.read_only,
        capabilities,
        rlimits,
        netns: setup.netns.clone().filter(|p| p.is_absolute()),
    })
}

/// A mount target: absolute, not `/`, no `..` (symlinks are resolved after
/// the pivot, inside the root filesystem).
fn target(t: &str) -> Result<PathBuf, SetupError> {
    let p = PathBuf::from(t);
    if !is_clean_absolute(&p) || p.parent().is_none() {
        return Err(SetupError::Target(t.to_string()));
    }
    Ok(p)
}

/// Docker's `--tmpfs` options as mount options (flags the runtime knows,
/// then `size=`, `mode=`, `uid=`, `gid=` for the filesystem); later options
/// win, starting from Docker's `noexec,nosuid,nodev`.
pub fn tmpfs_options(target: &str, options: &str) -> Result<Vec<String>, SetupError> {
    let (mut ro, mut noexec, mut nosuid, mut nodev) = (false, true, true, true);
    let mut data: Vec<(&str, &str)> = Vec::new();
    for o in options.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        let bad = |why| SetupError::TmpfsOption {
            target: target.to_string(),
            option: o.to_string(),
            why,
        };
        match o {
            "ro" => ro = true,
            "rw" => ro = false,
            "noexec" => noexec = true,
            "exec" => noexec = false,
            "nosuid" => nosuid = true,
            "suid" => nosuid = false,
            "nodev" => nodev = true,
            "dev" => nodev = false,
            _ => {
                let Some((key, value)) = o.split_once('=') else {
                    return Err(bad("not supported (expected size=, mode=, uid=, gid=, ro, rw, noexec, exec, nosuid, suid, nodev or dev)"));
                };
                let ok = match key {
                    "size" => is_size(value),
                    "mode" => {
                        !value.is_empty()
                            && value.len() <= 4
                            && value.bytes().all(|b| (b'0'..=b'7').contains(&b))
                    }
                    "uid" | "gid" => value.parse::<u32>().is_ok(),
                    _ => return Err(bad("not supported (expected size=, mode=, uid=, gid=, ro, rw, noexec, exec, nosuid, suid, nodev or dev)")),
                };
                if !ok {
                    return Err(bad(match key {
                        "size" => "expected a number of bytes, optionally with k, m, g or %",
                        "mode" => "expected octal permissions",
                        _ => "expected a number",
                    }));
                }
                data.retain(|(k, _)| *k != key);
                data.push((key, value));
            }
        }
    }
    let mut out: Vec<String> = [(ro, "ro"), (noexec, "noexec"), (nosuid, "nosuid")]
        .into_iter()
        .chain([(nodev, "nodev")])
        .filter(|(on, _)| *on)
        .map(|(_, name)| name.to_string())
        .collect();
    out.extend(data.iter().map(|(k, v)| format!("{k}={v}")));
    Ok(out)
}

/// A tmpfs size: digits, then at most one of `k`, `m`, `g` (any case) or
/// `%`.
fn is_size(v: &str) -> bool {
    let digits = v.trim_end_matches(|c: char| "kKmMgG%".contains(c));
    v.len() - digits.len() <= 1 && !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Capability names (`CAP_NET_ADMIN` or `NET_ADMIN`, any case).
pub fn capabilities(names: &[String]) -> Result<Vec<Capability>, SetupError> {
    let mut out: Vec<Capability> = Vec::new();
    for name in names {
        let cap = super::caps::parse(name).ok_or_else(|| SetupError::Capability(name.clone()))?;
        if !out.contains(&cap) {
            out.push(cap);
        }
    }
    Ok(out)
}

/// Docker's `--ulimit` names.
pub const RLIMIT_NAMES: [&str; 15] = [
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

/// A resource by Docker's `--ulimit` name.
pub fn rlimit(name: &str) -> Option<Resource> {
    Some(match name {
        "core" => Resource::RLIMIT_CORE,
        "cpu" => Resource::RLIMIT_CPU,
        "data" => Resource::RLIMIT_DATA,
        "fsize" => Resource::RLIMIT_FSIZE,
        "locks" => Resource::RLIMIT_LOCKS,
        "memlock" => Resource::RLIMIT_MEMLOCK,
        "msgqueue" => Resource::RLIMIT_MSGQUEUE,
        "nice" => Resource::RLIMIT_NICE,
        "nofile" => Resource::RLIMIT_NOFILE,
        "nproc" => Resource::RLIMIT_NPROC,
        "rss" => Resource::RLIMIT_RSS,
        "rtprio" => Resource::RLIMIT_RTPRIO,
        "rttime" => Resource::RLIMIT_RTTIME,
        "sigpending" => Resource::RLIMIT_SIGPENDING,
        "stack" => Resource::RLIMIT_STACK,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::support::prepared::SetupBind;

    fn opts(s: &str) -> Result<Vec<String>, SetupError> {
        tmpfs_options("/run", s)
    }

    #[test]
    fn tmpfs_options_start_from_dockers_defaults() {
        assert_eq!(opts("").unwrap(), ["noexec", "nosuid", "nodev"]);
        assert_eq!(opts("rw").unwrap(), ["noexec", "nosuid", "nodev"]);
        assert_eq!(
            opts("ro,exec,size=64m,mode=1777").unwrap(),
            ["ro", "nosuid", "nodev", "size=64m", "mode=1777"]
        );
        assert_eq!(
            opts("suid,dev,uid=1000,gid=100,size=10%,size=1g").unwrap(),
            ["noexec", "uid=1000", "gid=100", "size=1g"]
        );
        assert_eq!(opts("exec,noexec").unwrap()[0], "noexec");
    }

    #[test]
    fn tmpfs_options_refuse_what_docker_would_not_pass() {
        for (bad, why) in [
            ("tmpcopyup", "not supported"),
            ("nr_inodes=5", "not supported"),
            ("size=big", "expected a number of bytes"),
            ("size=1mb", "expected a number of bytes"),
            ("mode=999", "expected octal"),
            ("uid=-1", "expected a number"),
        ] {
            let e = opts(bad).unwrap_err().to_string();
            assert!(e.contains(why) && e.contains("/run"), "{bad}: {e}");
        }
    }

    #[test]
    fn rlimits_by_dockers_names() {
        for name in RLIMIT_NAMES {
            assert!(rlimit(name).is_some(), "{name}");
        }
        assert_eq!(rlimit("nofile"), Some(Resource::RLIMIT_NOFILE));
        assert_eq!(rlimit("as"), None);
        let setup = Setup {
            rlimits: vec![("files".into(), 1, 2)],
            ..Default::default()
        };
        let e = check(&setup).unwrap_err();
        assert!(e.to_string().contains("\"files\"") && e.to_string().contains("nofile"));
        let setup = Setup {
            rlimits: vec![("nofile".into(), 300, 200)],
            ..Default::default()
        };
        assert!(matches!(check(&setup), Err(SetupError::RlimitOrder { .. })));
    }

    #[test]
    fn capabilities_by_name_unknown_refused() {
        let names = ["CAP_CHOWN", "net_admin", "CAP_CHOWN"].map(String::from);
        assert_eq!(
            capabilities(&names).unwrap(),
            [Capability::CAP_CHOWN, Capability::CAP_NET_ADMIN]
        );
        let e = capabilities(&["CAP_FLY".to_string()]).unwrap_err();
        assert_eq!(e.to_string(), "unknown capability \"CAP_FLY\"");
        assert_eq!(capabilities(&[]).unwrap(), []);
    }

    #[test]
    fn targets_must_stay_in_the_root_filesystem() {
        for bad in ["data", "/", "/data/../../etc", "/a/.."] {
            let setup = Setup {
                tmpfs: vec![(bad.into(), String::new())],
                ..Default::default()
            };
            assert_eq!(check(&setup), Err(SetupError::Target(bad.into())), "{bad}");
            let setup = Setup {
                sandbox_dir: Some(bad.into()),
                ..Default::default()
            };
            assert!(check(&setup).is_err(), "{bad}");
        }
        let setup = Setup {
            binds: vec![SetupBind {
                source: "relative".into(),
                target: "/x".into(),
                read_only: false,
            }],
            ..Default::default()
        };
        assert!(matches!(check(&setup), Err(SetupError::Source(_))));
    }

    #[test]
    fn checked_setup_lists_binds_then_tmpfs() {
        let setup = Setup {
            sandbox_dir: Some("/sandbox".into()),
            binds: vec![SetupBind {
                source: "/srv".into(),
                target: "/data".into(),
                read_only: true,
            }],
            tmpfs: vec![("/scratch".into(), "size=1m".into())],
            shm_size: Some(0),
            ..Default::default()
        };
        let c = check(&setup).unwrap();
        assert_eq!(c.sandbox_target, PathBuf::from("/sandbox"));
        assert_eq!(c.mounts[0], Mount::bind("/srv", "/data", true));
        assert_eq!(c.mounts[1].target, PathBuf::from("/scratch"));
        assert_eq!(c.mounts[1].fstype.as_deref(), Some("tmpfs"));
        assert_eq!(c.shm_size, None);
        assert_eq!(c.capabilities, None);
        let d = check(&Setup::default()).unwrap();
        assert_eq!(d.sandbox_target, PathBuf::from(SANDBOX_TARGET));
        assert!(d.mounts.is_empty() && !d.read_only);
    }
}
