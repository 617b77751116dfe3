//! The security settings every container gets unless told otherwise: the
//! runtime's defaults (device allowlist, masked and read-only paths) plus a
//! seccomp program, chosen here and compiled once per profile and
//! capability set for the life of the process.
//!
//! Profiles follow Mesos' `linux/seccomp` isolator: Docker-format JSON
//! files in `--seccomp_config_dir`; `--seccomp_profile_name` names the
//! default; a task's `ContainerInfo.linux_info.seccomp` picks another file
//! (`profile_name`) or none (`unconfined`). Unlike Mesos, butte applies
//! its built-in profile (Docker's default) when no default is configured.

use crate::runtime::seccomp::{self, SeccompError, Target};
use crate::runtime::SandboxSpec;
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Why a container's security settings cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error("seccomp profile {name:?}: {why}")]
    ProfileName { name: String, why: &'static str },
    #[error("seccomp profile {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Compile(#[from] SeccompError),
}

/// The seccomp profile a container asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SeccompChoice {
    /// The agent's default: `--seccomp_profile_name`, else the built-in.
    #[default]
    Default,
    /// No filter.
    Unconfined,
    /// A file relative to the profile directory.
    Named(String),
    /// A file given by path (`butte run --seccomp-profile FILE`).
    File(PathBuf),
}

/// Chooses and compiles seccomp programs; cheap to share.
#[derive(Debug, Default)]
pub struct SeccompProfiles {
    /// `--seccomp_config_dir`.
    config_dir: Option<PathBuf>,
    /// `--seccomp_profile_name`, relative to `config_dir`.
    default_name: Option<String>,
    /// Compiled programs by (profile file or "" for the built-in, the
    /// sorted capabilities). A std Mutex: nothing awaits under it.
    cache: Mutex<HashMap<ProgramKey, Arc<Vec<u8>>>>,
    /// Where compiled programs are kept across processes (`butte run`
    /// would otherwise compile on every launch), by the sha256 of all
    /// that goes into one.
    disk_cache: Option<PathBuf>,
}

/// A profile file ("" for the built-in) and the sorted capabilities.
type ProgramKey = (PathBuf, Vec<String>);

impl SeccompProfiles {
    /// Profiles from `config_dir`, the default one named `default_name`,
    /// compiled programs kept in `disk_cache` too; each is compiled when
    /// first asked for.
    pub fn new(
        config_dir: Option<PathBuf>,
        default_name: Option<String>,
        disk_cache: Option<PathBuf>,
    ) -> Self {
        SeccompProfiles {
            config_dir,
            default_name,
            cache: Mutex::default(),
            disk_cache,
        }
    }

    /// [`new`](Self::new), with the default profile read and compiled now,
    /// so that a bad agent flag fails at start rather than at a launch.
    pub fn checked(
        config_dir: Option<PathBuf>,
        default_name: Option<String>,
        disk_cache: Option<PathBuf>,
    ) -> Result<Self, SecurityError> {
        let this = Self::new(config_dir, default_name, disk_cache);
        this.program(
            &SeccompChoice::Default,
            &crate::runtime::default_capabilities(),
        )?;
        Ok(this)
    }

    /// The file of a profile name, which must stay inside the directory.
    fn named(&self, name: &str) -> Result<PathBuf, SecurityError> {
        let bad = |why| SecurityError::ProfileName {
            name: name.to_string(),
            why,
        };
        let Some(dir) = &self.config_dir else {
            return Err(bad("no --seccomp_config_dir is configured"));
        };
        let rel = Path::new(name);
        if name.is_empty() || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(bad("must be a relative path inside --seccomp_config_dir"));
        }
        Ok(dir.join(rel))
    }

    /// The compiled program for `choice` and a container keeping
    /// `capabilities`; `None` for an unconfined one.
    pub fn program(
        &self,
        choice: &SeccompChoice,
        capabilities: &[String],
    ) -> Result<Option<Arc<Vec<u8>>>, SecurityError> {
        let file = match choice {
            SeccompChoice::Unconfined => return Ok(None),
            SeccompChoice::Default => match &self.default_name {
                Some(n) => self.named(n)?,
                None => PathBuf::new(),
            },
            SeccompChoice::Named(n) => self.named(n)?,
            SeccompChoice::File(p) => p.clone(),
        };
        let mut caps = capabilities.to_vec();
        caps.sort();
        caps.dedup();
        let key = (file, caps);
        if let Some(p) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(Some(p.clone()));
        }
        let (file, caps) = &key;
        let (name, json) = if file.as_os_str().is_empty() {
            ("default".to_string(), seccomp::DEFAULT_PROFILE.to_string())
        } else {
            let json = std::fs::read_to_string(file).map_err(|source| SecurityError::Read {
                path: file.clone(),
                source,
            })?;
            (file.display().to_string(), json)
        };
        let target = Target::host(caps.clone());
        let prog = match self.cached(&json, &target) {
            Some(p) => p,
            None => {
                let prog = seccomp::compile(&name, &json, &target)?;
                self.store(&json, &target, &prog);
                prog
            }
        };
        let prog = Arc::new(prog);
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, prog.clone());
        Ok(Some(prog))
    }

    /// The disk cache's file for a profile compiled for a target: every
    /// input of the compilation is in its name.
    fn cache_file(&self, json: &str, target: &Target) -> Option<PathBuf> {
        use sha2::Digest;
        let dir = self.disk_cache.as_ref()?;
        let mut h = sha2::Sha256::new();
        let v = libseccomp::ScmpVersion::current().ok();
        let inputs = format!(
            "{json}\0{:?}\0{:?}\0{}\0{:?}",
            target.capabilities,
            target.kernel,
            std::env::consts::ARCH,
            v.map(|v| (v.major, v.minor, v.micro))
        );
        h.update(inputs.as_bytes());
        Some(dir.join(format!("{}.bpf", hex::encode(h.finalize()))))
    }

    fn cached(&self, json: &str, target: &Target) -> Option<Vec<u8>> {
        let prog = std::fs::read(self.cache_file(json, target)?).ok()?;
        (!prog.is_empty() && prog.len() % 8 == 0).then_some(prog)
    }

    /// Best effort: a program that cannot be cached is compiled again next
    /// time. Written atomically, so a reader never sees half of one.
    fn store(&self, json: &str, target: &Target, prog: &[u8]) {
        if let Some(path) = self.cache_file(json, target) {
            if let Some(dir) = path.parent() {
                let _ = std::fs::create_dir_all(dir)
                    .and_then(|()| crate::support::atomic_write(&path, prog));
            }
        }
    }

    /// Sets the spec's seccomp program for `choice`, compiled for the
    /// capabilities the spec keeps.
    pub fn apply(
        &self,
        spec: &mut SandboxSpec,
        choice: &SeccompChoice,
    ) -> Result<(), SecurityError> {
        let caps = spec
            .capabilities
            .clone()
            .unwrap_or_else(crate::runtime::default_capabilities);
        spec.seccomp = self.program(choice, &caps)?.map(|p| p.to_vec());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_stay_in_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let p = SeccompProfiles::new(Some(dir.path().into()), None, None);
        for bad in ["", "../x.json", "/etc/x.json", "a/../../b"] {
            let e = p
                .program(&SeccompChoice::Named(bad.into()), &[])
                .unwrap_err()
                .to_string();
            assert!(e.contains("relative path"), "{bad}: {e}");
        }
        let e = p
            .program(&SeccompChoice::Named("missing.json".into()), &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("missing.json") && e.contains("No such file"),
            "{e}"
        );
        let none = SeccompProfiles::new(None, None, None);
        let e = none
            .program(&SeccompChoice::Named("x.json".into()), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("no --seccomp_config_dir"), "{e}");
    }

    #[test]
    fn programs_are_compiled_once_and_follow_the_choice() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("allow.json"),
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["reboot"],"action":"SCMP_ACT_ERRNO"}]}"#,
        )
        .unwrap();
        let p = SeccompProfiles::new(Some(dir.path().into()), Some("allow.json".into()), None);
        let caps = crate::runtime::default_capabilities();
        let a = p.program(&SeccompChoice::Default, &caps).unwrap().unwrap();
        let b = p.program(&SeccompChoice::Default, &caps).unwrap().unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let named = p
            .program(&SeccompChoice::Named("allow.json".into()), &caps)
            .unwrap()
            .unwrap();
        assert_eq!(*a, *named);
        let builtin = SeccompProfiles::new(None, None, None);
        let d = builtin
            .program(&SeccompChoice::Default, &caps)
            .unwrap()
            .unwrap();
        assert_ne!(*a, *d);
        assert!(p
            .program(&SeccompChoice::Unconfined, &caps)
            .unwrap()
            .is_none());
        // A bad default fails at start, naming the file.
        std::fs::write(dir.path().join("bad.json"), "{").unwrap();
        let e = SeccompProfiles::checked(Some(dir.path().into()), Some("bad.json".into()), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("bad.json") && e.contains("invalid JSON"), "{e}");
    }

    #[test]
    fn the_disk_cache_serves_a_later_process_and_a_corrupt_entry_is_recompiled() {
        let dir = tempfile::tempdir().unwrap();
        let caps = crate::runtime::default_capabilities();
        let first = SeccompProfiles::new(None, None, Some(dir.path().into()));
        let a = first
            .program(&SeccompChoice::Default, &caps)
            .unwrap()
            .unwrap();
        let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(files.len(), 1, "one program, no temporary file");
        assert_eq!(std::fs::read(files[0].path()).unwrap(), *a);
        // A later process reads it instead of compiling.
        std::fs::write(files[0].path(), [0u8; 16]).unwrap();
        let second = SeccompProfiles::new(None, None, Some(dir.path().into()));
        let b = second
            .program(&SeccompChoice::Default, &caps)
            .unwrap()
            .unwrap();
        assert_eq!(*b, [0u8; 16]);
        // One that is not whole instructions is compiled again.
        std::fs::write(files[0].path(), [0u8; 5]).unwrap();
        let third = SeccompProfiles::new(None, None, Some(dir.path().into()));
        let c = third
            .program(&SeccompChoice::Default, &caps)
            .unwrap()
            .unwrap();
        assert_eq!(*c, *a);
        // Other capabilities are another program.
        let mut admin = caps.clone();
        admin.push("CAP_SYS_ADMIN".into());
        third.program(&SeccompChoice::Default, &admin).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }
}
