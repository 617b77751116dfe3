//! The sandbox's filesystem, planned as data ([`plan`]) and then carried
//! out by the launch helper ([`execute`]), inside its own mount namespace.
//!
//! With a rootfs:
//! ```text
//! / rslave -> rootfs bound (or its overlay mounted) -> bind sources opened
//!   -> pivot_root, old root detached -> /proc -> /dev (tmpfs, nodes, pts,
//!   shm, mqueue) -> /sys ro -> bind mounts (via /proc/self/fd) -> / ro?
//! ```
//! Without one (host filesystem): `/` rslave, a fresh `/proc` for the pid
//! namespace, a private `/dev/shm`, then the bind mounts.
//!
//! Every target is created after the pivot, so it resolves inside the new
//! root: a symlink in a hostile rootfs cannot point a mount at the host.

use super::spec::SandboxSpec;
use super::sys;
use crate::mount::Mount;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::fstat;
use nix::sys::stat::{mknod, Mode, SFlag};
use std::fs;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{symlink, DirBuilderExt};
use std::path::{Path, PathBuf};

/// One step of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `mount --make-rslave /`: nothing done here propagates to the host.
    RootSlave,
    /// Bind a directory onto itself (so it is a mount point to pivot to).
    BindSelf(PathBuf),
    /// Clone the mount tree of a host path before the pivot (detached, held
    /// by an fd), as bind source `index`.
    OpenSource {
        index: usize,
        path: PathBuf,
    },
    /// `pivot_root` into the directory and detach the old root.
    Pivot(PathBuf),
    /// Mount a filesystem (or a host path, pre-pivot) at `target`,
    /// creating `target` as a directory if needed.
    Mount {
        source: String,
        target: PathBuf,
        fstype: Option<String>,
        flags: MsFlags,
        data: Option<String>,
    },
    /// Attach bind source `index` at `target` (created as a file or
    /// directory like the source), then remount with `flags` (read-only,
    /// nosuid, ...) if any.
    BindSource {
        index: usize,
        target: PathBuf,
        flags: MsFlags,
        readonly: bool,
    },
    /// Create a character device node (mode 0666).
    CharDevice {
        path: PathBuf,
        major: u64,
        minor: u64,
    },
    Symlink {
        target: PathBuf,
        link: PathBuf,
    },
    /// Hide a path: an empty read-only tmpfs over a directory, `/dev/null`
    /// over anything else; a path that does not exist is skipped.
    Mask(PathBuf),
    /// Make a path read-only (bound onto itself, remounted read-only); a
    /// path that does not exist is skipped.
    Readonly(PathBuf),
    /// Remount `/` read-only.
    RootReadonly,
}

/// The device nodes of a minimal /dev: (name, major, minor).
const DEVICES: [(&str, u64, u64); 6] = [
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// Splits `mount(8)`-style options into flags and filesystem data.
pub fn parse_options(options: &[String]) -> (MsFlags, Option<String>) {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for o in options {
        match o.as_str() {
            "ro" => flags |= MsFlags::MS_RDONLY,
            "rw" => {}
            "nosuid" => flags |= MsFlags::MS_NOSUID,
            "nodev" => flags |= MsFlags::MS_NODEV,
            "noexec" => flags |= MsFlags::MS_NOEXEC,
            "bind" => flags |= MsFlags::MS_BIND,
            "rbind" => flags |= MsFlags::MS_BIND | MsFlags::MS_REC,
            "relatime" => flags |= MsFlags::MS_RELATIME,
            "strictatime" => flags |= MsFlags::MS_STRICTATIME,
            other => data.push(other),
        }
    }
    (flags, (!data.is_empty()).then(|| data.join(",")))
}

fn fs_mount(source: &str, target: &str, fstype: &str, flags: MsFlags, data: Option<&str>) -> Step {
    Step::Mount {
        source: source.into(),
        target: target.into(),
        fstype: Some(fstype.into()),
        flags,
        data: data.map(Into::into),
    }
}

/// Plans the filesystem of a sandbox.
pub fn plan(spec: &SandboxSpec) -> Vec<Step> {
    let nosuid_noexec_nodev = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV;
    let mut steps = vec![Step::RootSlave];
    let binds: Vec<(usize, &Mount)> = spec
        .mounts
        .iter()
        .filter(|m| m.is_bind())
        .enumerate()
        .collect();
    match &spec.rootfs {
        Some(rootfs) => {
            match &rootfs.mount {
                Some(m) => {
                    let (flags, data) = parse_options(&m.options);
                    steps.push(Step::Mount {
                        source: m.source.to_string_lossy().into_owned(),
                        target: rootfs.path.clone(),
                        fstype: m.fstype.clone(),
                        flags,
                        data,
                    });
                }
                None => steps.push(Step::BindSelf(rootfs.path.clone())),
            }
            for (index, m) in &binds {
                steps.push(Step::OpenSource {
                    index: *index,
                    path: m.source.clone(),
                });
            }
            steps.push(Step::Pivot(rootfs.path.clone()));
            steps.push(fs_mount("proc", "/proc", "proc", nosuid_noexec_nodev, None));
            steps.push(fs_mount(
                "tmpfs",
                "/dev",
                "tmpfs",
                MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
                Some("mode=755,size=65536k"),
            ));
            for (name, major, minor) in DEVICES {
                steps.push(Step::CharDevice {
                    path: Path::new("/dev").join(name),
                    major,
                    minor,
                });
            }
            steps.push(fs_mount(
                "devpts",
                "/dev/pts",
                "devpts",
                MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
                Some("newinstance,ptmxmode=0666,mode=0620"),
            ));
            for (target, link) in [
                ("pts/ptmx", "/dev/ptmx"),
                ("/proc/self/fd", "/dev/fd"),
                ("/proc/self/fd/0", "/dev/stdin"),
                ("/proc/self/fd/1", "/dev/stdout"),
                ("/proc/self/fd/2", "/dev/stderr"),
            ] {
                steps.push(Step::Symlink {
                    target: target.into(),
                    link: link.into(),
                });
            }
            steps.push(fs_mount(
                "shm",
                "/dev/shm",
                "tmpfs",
                nosuid_noexec_nodev,
                Some("mode=1777,size=65536k"),
            ));
            steps.push(fs_mount(
                "mqueue",
                "/dev/mqueue",
                "mqueue",
                nosuid_noexec_nodev,
                None,
            ));
            steps.push(fs_mount(
                "sysfs",
                "/sys",
                "sysfs",
                nosuid_noexec_nodev | MsFlags::MS_RDONLY,
                None,
            ));
        }
        None => {
            for (index, m) in &binds {
                steps.push(Step::OpenSource {
                    index: *index,
                    path: m.source.clone(),
                });
            }
            steps.push(fs_mount("proc", "/proc", "proc", nosuid_noexec_nodev, None));
            steps.push(fs_mount(
                "shm",
                "/dev/shm",
                "tmpfs",
                nosuid_noexec_nodev,
                Some("mode=1777,size=65536k"),
            ));
        }
    }
    let mut bind_index = 0;
    for m in &spec.mounts {
        let (flags, data) = parse_options(&m.options);
        if m.is_bind() {
            steps.push(Step::BindSource {
                index: bind_index,
                target: m.target.clone(),
                flags: (flags | MsFlags::MS_BIND) & !MsFlags::MS_RDONLY,
                readonly: m.is_readonly(),
            });
            bind_index += 1;
        } else {
            steps.push(Step::Mount {
                source: m.source.to_string_lossy().into_owned(),
                target: m.target.clone(),
                fstype: m.fstype.clone(),
                flags,
                data,
            });
        }
    }
    steps.extend(spec.masked_paths.iter().cloned().map(Step::Mask));
    steps.extend(spec.readonly_paths.iter().cloned().map(Step::Readonly));
    if spec.rootfs.as_ref().is_some_and(|r| r.readonly) {
        steps.push(Step::RootReadonly);
    }
    steps
}

/// A step that failed, described for the user.
#[derive(Debug)]
pub struct StepError {
    pub step: String,
    pub source: std::io::Error,
}

fn describe(step: &Step) -> String {
    match step {
        Step::RootSlave => "make / rslave".into(),
        Step::BindSelf(p) => format!("bind rootfs {}", p.display()),
        Step::OpenSource { path, .. } => format!("clone mount tree of {}", path.display()),
        Step::Pivot(p) => format!("pivot_root to {}", p.display()),
        Step::Mount { source, target, .. } => format!("mount {source} on {}", target.display()),
        Step::BindSource { target, .. } => format!("bind mount on {}", target.display()),
        Step::CharDevice { path, .. } => format!("create device {}", path.display()),
        Step::Symlink { link, .. } => format!("create symlink {}", link.display()),
        Step::Mask(p) => format!("mask {}", p.display()),
        Step::Readonly(p) => format!("make {} read-only", p.display()),
        Step::RootReadonly => "remount / read-only".into(),
    }
}

/// Carries out a plan, in order. The first failure stops it.
pub fn execute(steps: &[Step]) -> Result<(), StepError> {
    let mut sources: Vec<Option<OwnedFd>> = Vec::new();
    for step in steps {
        run(step, &mut sources).map_err(|source| StepError {
            step: describe(step),
            source,
        })?;
    }
    Ok(())
}

fn run(step: &Step, sources: &mut Vec<Option<OwnedFd>>) -> std::io::Result<()> {
    let none: Option<&str> = None;
    match step {
        Step::RootSlave => mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_SLAVE, none)?,
        Step::BindSelf(p) => mount(Some(p), p, none, MsFlags::MS_BIND | MsFlags::MS_REC, none)?,
        Step::OpenSource { index, path } => {
            let tree = sys::open_tree_clone(path)?;
            if sources.len() <= *index {
                sources.resize_with(index + 1, || None);
            }
            sources[*index] = Some(tree);
        }
        Step::Pivot(p) => {
            nix::unistd::chdir(p)?;
            nix::unistd::pivot_root(".", ".")?;
            umount2(".", MntFlags::MNT_DETACH)?;
            nix::unistd::chdir("/")?;
        }
        Step::Mount {
            source,
            target,
            fstype,
            flags,
            data,
        } => {
            make_dir(target)?;
            mount(
                Some(source.as_str()),
                target,
                fstype.as_deref(),
                *flags,
                data.as_deref(),
            )?;
        }
        Step::BindSource {
            index,
            target,
            flags,
            readonly,
        } => {
            let fd = sources
                .get(*index)
                .and_then(Option::as_ref)
                .ok_or_else(|| std::io::Error::other("bind source was not opened"))?;
            if fstat(fd.as_raw_fd())?.st_mode & libc::S_IFMT == libc::S_IFDIR {
                make_dir(target)?;
            } else {
                make_file(target)?;
            }
            sys::move_mount(fd.as_fd(), target)?;
            if *readonly
                || !(*flags & (MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC))
                    .is_empty()
            {
                let mut remount = MsFlags::MS_BIND
                    | MsFlags::MS_REMOUNT
                    | (*flags & (MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC));
                if *readonly {
                    remount |= MsFlags::MS_RDONLY;
                }
                mount(none, target, none, remount, none)?;
            }
        }
        Step::CharDevice { path, major, minor } => {
            mknod(
                path,
                SFlag::S_IFCHR,
                Mode::from_bits_truncate(0o666),
                nix::sys::stat::makedev(*major, *minor),
            )?;
            // mknod honours the umask; the nodes must be 0666.
            nix::sys::stat::fchmodat(
                None,
                path,
                Mode::from_bits_truncate(0o666),
                nix::sys::stat::FchmodatFlags::FollowSymlink,
            )?;
        }
        Step::Symlink { target, link } => symlink(target, link)?,
        Step::Mask(p) => match fs::symlink_metadata(p) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
            Ok(m) if m.file_type().is_symlink() => {
                return Err(std::io::Error::other("masked path is a symlink"))
            }
            Ok(m) if m.is_dir() => mount(
                Some("tmpfs"),
                p,
                Some("tmpfs"),
                MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                Some("size=0,mode=0555"),
            )?,
            Ok(_) => mount(Some("/dev/null"), p, none, MsFlags::MS_BIND, none)?,
        },
        Step::Readonly(p) => match fs::symlink_metadata(p) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
            Ok(m) if m.file_type().is_symlink() => {
                return Err(std::io::Error::other("read-only path is a symlink"))
            }
            Ok(_) => {
                mount(Some(p), p, none, MsFlags::MS_BIND | MsFlags::MS_REC, none)?;
                mount(
                    none,
                    p,
                    none,
                    MsFlags::MS_BIND
                        | MsFlags::MS_REMOUNT
                        | MsFlags::MS_RDONLY
                        | MsFlags::MS_NOSUID
                        | MsFlags::MS_NODEV
                        | MsFlags::MS_NOEXEC,
                    none,
                )?;
            }
        },
        Step::RootReadonly => mount(
            none,
            "/",
            none,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            none,
        )?,
    }
    Ok(())
}

/// Creates a directory and its parents (mode 0755). A symlink on the way
/// is followed inside the current root only (this runs after the pivot).
fn make_dir(path: &Path) -> std::io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            Err(std::io::Error::other("mount target is a symlink"))
        }
        Ok(_) => Ok(()),
        Err(_) => fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(path),
    }
}

fn make_file(path: &Path) -> std::io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            Err(std::io::Error::other("mount target is a symlink"))
        }
        Ok(_) => Ok(()),
        Err(_) => {
            if let Some(parent) = path.parent() {
                make_dir(parent)?;
            }
            fs::File::create(path).map(|_| ())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::spec::Rootfs;

    fn names(steps: &[Step]) -> Vec<String> {
        steps.iter().map(describe).collect()
    }

    #[test]
    fn rootfs_plan_pivots_before_mounting_and_opens_sources_before_pivot() {
        let mut spec = SandboxSpec::new("c", vec!["/bin/true".into()]);
        spec.rootfs = Some(Rootfs {
            path: "/r".into(),
            mount: None,
            readonly: true,
        });
        spec.mounts
            .push(Mount::bind("/var/sandbox", "/mnt/mesos/sandbox", false));
        spec.mounts
            .push(Mount::bind("/etc/hosts", "/etc/hosts", true));
        let steps = plan(&spec);
        let n = names(&steps);
        let pos = |s: &str| {
            n.iter()
                .position(|x| x == s)
                .unwrap_or_else(|| panic!("{s} missing in {n:?}"))
        };
        assert_eq!(pos("make / rslave"), 0);
        assert!(pos("bind rootfs /r") < pos("pivot_root to /r"));
        assert!(pos("clone mount tree of /var/sandbox") < pos("pivot_root to /r"));
        assert!(pos("clone mount tree of /etc/hosts") < pos("pivot_root to /r"));
        assert!(pos("pivot_root to /r") < pos("mount proc on /proc"));
        assert!(pos("mount tmpfs on /dev") < pos("create device /dev/null"));
        assert!(pos("mount tmpfs on /dev") < pos("mount devpts on /dev/pts"));
        assert!(pos("mount sysfs on /sys") < pos("bind mount on /mnt/mesos/sandbox"));
        assert_eq!(n.last().unwrap(), "remount / read-only");
        assert!(pos("mount proc on /proc") < pos("mask /proc/kcore"));
        assert!(pos("mount sysfs on /sys") < pos("mask /sys/firmware"));
        assert!(pos("bind mount on /etc/hosts") < pos("make /proc/sys read-only"));
        assert!(pos("make /proc/sysrq-trigger read-only") < pos("remount / read-only"));
        let ro_bind = steps.iter().find_map(|s| match s {
            Step::BindSource {
                target,
                readonly,
                index,
                ..
            } if target == Path::new("/etc/hosts") => Some((*index, *readonly)),
            _ => None,
        });
        assert_eq!(ro_bind, Some((1, true)));
        let sys = steps.iter().find_map(|s| match s {
            Step::Mount { target, flags, .. } if target == Path::new("/sys") => Some(*flags),
            _ => None,
        });
        assert!(sys.unwrap().contains(MsFlags::MS_RDONLY));
    }

    #[test]
    fn host_plan_gets_private_proc_and_shm_and_no_pivot() {
        let mut spec = SandboxSpec::new("c", vec!["/bin/true".into()]);
        let n = names(&plan(&spec));
        assert_eq!(
            n[..3],
            [
                "make / rslave",
                "mount proc on /proc",
                "mount shm on /dev/shm"
            ]
        );
        assert!(n.contains(&"mask /proc/kcore".to_string()), "{n:?}");
        assert!(n.contains(&"make /proc/sys read-only".to_string()), "{n:?}");
        spec.make_privileged();
        assert_eq!(names(&plan(&spec)).len(), 3);
    }

    #[test]
    fn overlay_rootfs_is_mounted_not_bound() {
        let mut spec = SandboxSpec::new("c", vec!["/bin/true".into()]);
        spec.rootfs = Some(Rootfs {
            path: "/run/c/rootfs".into(),
            mount: Some(Mount {
                source: "overlay".into(),
                target: "/".into(),
                fstype: Some("overlay".into()),
                options: vec![
                    "lowerdir=/l".into(),
                    "upperdir=/u".into(),
                    "workdir=/w".into(),
                ],
            }),
            readonly: false,
        });
        let steps = plan(&spec);
        assert_eq!(
            steps[1],
            Step::Mount {
                source: "overlay".into(),
                target: "/run/c/rootfs".into(),
                fstype: Some("overlay".into()),
                flags: MsFlags::empty(),
                data: Some("lowerdir=/l,upperdir=/u,workdir=/w".into()),
            }
        );
    }

    #[test]
    fn options_split_into_flags_and_data() {
        let (f, d) = parse_options(&[
            "ro".into(),
            "nosuid".into(),
            "size=1m".into(),
            "mode=755".into(),
        ]);
        assert_eq!(f, MsFlags::MS_RDONLY | MsFlags::MS_NOSUID);
        assert_eq!(d.as_deref(), Some("size=1m,mode=755"));
    }
}
