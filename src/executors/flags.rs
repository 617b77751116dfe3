//! The flags a Mesos agent passes to its own executors, so that
//! `butte-executor` installed as `mesos-executor` or
//! `mesos-default-executor` in a Mesos agent's `--launcher_dir` runs there
//! unchanged.
//!
//! Parsed as Mesos parses flags: `--name=value`, `--name` (a boolean set),
//! `--no-name` (a boolean cleared), a value `file:///path` read from that
//! file, an unknown name an error (the executor then exits 1 with its
//! usage, as Mesos' do). The command executor's flags are those of Mesos'
//! `mesos-executor`; the default executor takes only `--launcher_dir`;
//! both take Mesos' logging flags (`--logging_level`, `--log_dir`,
//! `--quiet`, ...), which change nothing here (the executor writes to its
//! sandbox's `stderr`).
//!
//! What a flag asks is applied where butte can do it itself:
//! `--task_command` replaces the task's command, `--task_environment` is
//! merged under the command's own variables, `--user` runs the task as
//! that user. `--launcher_dir` is accepted and unused: butte's executors
//! need none of Mesos' helper programs. The flags that need Mesos'
//! `mesos-containerizer launch` (a task root filesystem with its mounts,
//! capabilities, a TTY, supplementary groups, or a `--task_launch_info`
//! with mounts, file operations, pre-exec commands or namespaces) are
//! parsed and then refused at the task's launch: the task fails naming the
//! flag, rather than run without what was asked.

use crate::proto::mesos::v1::{CommandInfo, Environment};

/// What the flags cannot be read as.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlagsError {
    #[error("failed to load unknown flag '{0}'")]
    Unknown(String),
    #[error("flag '{0}' needs a value (--{0}=VALUE)")]
    MissingValue(String),
    #[error("flag '{name}': {why}")]
    BadValue { name: String, why: String },
    #[error("flag '{0}' is given twice")]
    Twice(String),
}

/// The Mesos executors' flags, as given.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MesosFlags {
    pub launcher_dir: Option<String>,
    pub rootfs: Option<String>,
    pub sandbox_directory: Option<String>,
    pub working_directory: Option<String>,
    pub user: Option<String>,
    pub task_command: Option<CommandInfo>,
    pub task_environment: Option<Environment>,
    pub effective_capabilities: Option<String>,
    pub bounding_capabilities: Option<String>,
    /// A `mesos.slave.ContainerLaunchInfo` in JSON (not a type butte has).
    pub task_launch_info: Option<serde_json::Value>,
    pub tty_slave_path: Option<String>,
    pub task_supplementary_groups: Option<Vec<u32>>,
    /// `--help` was given.
    pub help: bool,
}

/// Mesos' logging flags (`logging::Flags`): values accepted, unused.
const LOGGING: &[&str] = &[
    "quiet",
    "logging_level",
    "log_dir",
    "logbufsecs",
    "initialize_driver_logging",
    "external_log_file",
];
/// Boolean flags among all (they take no value).
const BOOLEANS: &[&str] = &["quiet", "initialize_driver_logging", "help"];
/// The command executor's own flags; the default executor has only the
/// first.
const COMMAND: &[&str] = &[
    "launcher_dir",
    "rootfs",
    "sandbox_directory",
    "working_directory",
    "user",
    "task_command",
    "task_environment",
    "effective_capabilities",
    "bounding_capabilities",
    "task_launch_info",
    "tty_slave_path",
    "task_supplementary_groups",
];

impl MesosFlags {
    /// Reads one Mesos-style argument into the flags. `default` selects
    /// the default executor's (smaller) set.
    pub fn add(&mut self, arg: &str, default: bool) -> Result<(), FlagsError> {
        let body = arg
            .strip_prefix("--")
            .ok_or_else(|| FlagsError::Unknown(arg.to_string()))?;
        let (name, value) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (body, None),
        };
        // `--no-NAME` clears a boolean.
        let (name, value) = match name.strip_prefix("no-") {
            Some(n) if BOOLEANS.contains(&n) && value.is_none() => (n, Some("false")),
            _ => (name, value),
        };
        let known = LOGGING.contains(&name)
            || name == "help"
            || if default {
                name == "launcher_dir"
            } else {
                COMMAND.contains(&name)
            };
        if !known {
            return Err(FlagsError::Unknown(name.to_string()));
        }
        if BOOLEANS.contains(&name) {
            let on = match value.unwrap_or("true") {
                "true" => true,
                "false" => false,
                v => {
                    return Err(FlagsError::BadValue {
                        name: name.into(),
                        why: format!("expected true or false, got {v:?}"),
                    })
                }
            };
            if name == "help" {
                self.help = on;
            }
            return Ok(());
        }
        let value = value.ok_or_else(|| FlagsError::MissingValue(name.to_string()))?;
        let value = read_value(name, value)?;
        let bad = |why: String| FlagsError::BadValue {
            name: name.to_string(),
            why,
        };
        fn set<T>(slot: &mut Option<T>, name: &str, v: T) -> Result<(), FlagsError> {
            if slot.is_some() {
                return Err(FlagsError::Twice(name.to_string()));
            }
            *slot = Some(v);
            Ok(())
        }
        match name {
            "launcher_dir" => set(&mut self.launcher_dir, name, value),
            "rootfs" => set(&mut self.rootfs, name, value),
            "sandbox_directory" => set(&mut self.sandbox_directory, name, value),
            "working_directory" => set(&mut self.working_directory, name, value),
            "user" => set(&mut self.user, name, value),
            "task_command" => {
                let c = crate::proto::from_json::<CommandInfo>(value.as_bytes())
                    .map_err(|e| bad(format!("not a CommandInfo in JSON: {e}")))?;
                set(&mut self.task_command, name, c)
            }
            "task_environment" => {
                let e = crate::proto::from_json::<Environment>(value.as_bytes())
                    .map_err(|e| bad(format!("not an Environment in JSON: {e}")))?;
                set(&mut self.task_environment, name, e)
            }
            "effective_capabilities" => set(&mut self.effective_capabilities, name, value),
            "bounding_capabilities" => set(&mut self.bounding_capabilities, name, value),
            "task_launch_info" => {
                let v: serde_json::Value =
                    serde_json::from_str(&value).map_err(|e| bad(format!("not JSON: {e}")))?;
                if !v.is_object() {
                    return Err(bad("not a JSON object".into()));
                }
                set(&mut self.task_launch_info, name, v)
            }
            "tty_slave_path" => set(&mut self.tty_slave_path, name, value),
            "task_supplementary_groups" => {
                let groups = value
                    .split(',')
                    .filter(|g| !g.is_empty())
                    .map(|g| g.trim().parse::<u32>())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| bad(format!("not a list of group ids: {e}")))?;
                set(&mut self.task_supplementary_groups, name, groups)
            }
            // Logging flags.
            _ => Ok(()),
        }
    }

    /// The first flag given whose request butte cannot carry out itself
    /// (see the module doc), with why; `None` when all can be.
    pub fn unsupported(&self) -> Option<String> {
        let needs_launcher = "it needs Mesos' mesos-containerizer launcher, which butte's executors do not use; run such tasks on butte's agent";
        if self.rootfs.is_some() {
            return Some(format!(
                "--rootfs (a task root filesystem): {needs_launcher}"
            ));
        }
        if self.effective_capabilities.is_some() || self.bounding_capabilities.is_some() {
            return Some(format!(
                "--effective_capabilities/--bounding_capabilities: {needs_launcher}"
            ));
        }
        if self.tty_slave_path.is_some() {
            return Some(format!("--tty_slave_path (a TTY): {needs_launcher}"));
        }
        if self
            .task_supplementary_groups
            .as_ref()
            .is_some_and(|g| !g.is_empty())
        {
            return Some(format!("--task_supplementary_groups: {needs_launcher}"));
        }
        if let Some(info) = &self.task_launch_info {
            // The parts Mesos' command executor takes from it.
            for field in [
                "rootfs",
                "mounts",
                "file_operations",
                "pre_exec_commands",
                "clone_namespaces",
            ] {
                let set = match info.get(field) {
                    None | Some(serde_json::Value::Null) => false,
                    Some(serde_json::Value::Array(a)) => !a.is_empty(),
                    Some(serde_json::Value::String(s)) => !s.is_empty(),
                    Some(_) => true,
                };
                if set {
                    return Some(format!("--task_launch_info with {field}: {needs_launcher}"));
                }
            }
        }
        None
    }
}

/// A flag's value; `file://PATH` is read from PATH, as Mesos does.
fn read_value(name: &str, value: &str) -> Result<String, FlagsError> {
    match value.strip_prefix("file://") {
        Some(path) => std::fs::read_to_string(path)
            .map(|s| s.trim_end_matches('\n').to_string())
            .map_err(|e| FlagsError::BadValue {
                name: name.to_string(),
                why: format!("cannot read {path}: {e}"),
            }),
        None => Ok(value.to_string()),
    }
}

/// The usage text printed on a flag error or `--help`.
pub fn usage(program: &str, default: bool) -> String {
    let mut text = format!(
        "usage: {program} [--default] [--launch-info FILE] [Mesos executor flags]\n\
         Mesos' flags (--name=VALUE):\n  --launcher_dir (accepted, unused)\n"
    );
    if !default {
        for f in &COMMAND[1..] {
            text.push_str(&format!("  --{f}\n"));
        }
    }
    for f in LOGGING {
        text.push_str(&format!("  --{f} (accepted, unused)\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str], default: bool) -> Result<MesosFlags, FlagsError> {
        let mut f = MesosFlags::default();
        for a in args {
            f.add(a, default)?;
        }
        Ok(f)
    }

    #[test]
    fn the_flags_a_mesos_agent_passes_are_accepted() {
        let f = parse(
            &[
                "--launcher_dir=/usr/libexec/mesos",
                "--task_command={\"shell\":true,\"value\":\"echo hi\"}",
                "--task_environment={\"variables\":[{\"name\":\"A\",\"type\":\"VALUE\",\"value\":\"1\"}]}",
                "--user=nobody",
                "--task_launch_info={}",
                "--logging_level=INFO",
                "--no-quiet",
            ],
            false,
        )
        .unwrap();
        assert_eq!(f.launcher_dir.as_deref(), Some("/usr/libexec/mesos"));
        assert_eq!(f.task_command.unwrap().value.as_deref(), Some("echo hi"));
        assert_eq!(f.task_environment.unwrap().variables[0].name, "A");
        assert_eq!(f.user.as_deref(), Some("nobody"));
        assert!(parse(&["--launcher_dir=/x", "--log_dir=/tmp"], true).is_ok());
        assert!(parse(&["--help"], true).unwrap().help);
    }

    #[test]
    fn unknown_malformed_and_repeated_flags_are_errors_naming_the_flag() {
        assert_eq!(
            parse(&["--frobnicate=1"], false),
            Err(FlagsError::Unknown("frobnicate".into()))
        );
        // The default executor takes only --launcher_dir.
        assert_eq!(
            parse(&["--task_command={}"], true),
            Err(FlagsError::Unknown("task_command".into()))
        );
        assert_eq!(
            parse(&["--user"], false),
            Err(FlagsError::MissingValue("user".into()))
        );
        let e = parse(&["--task_command=not json"], false).unwrap_err();
        assert!(e.to_string().contains("task_command"), "{e}");
        assert_eq!(
            parse(&["--user=a", "--user=b"], false),
            Err(FlagsError::Twice("user".into()))
        );
        assert!(parse(&["--task_supplementary_groups=1,x"], false).is_err());
    }

    #[test]
    fn values_may_come_from_files() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("cmd.json");
        std::fs::write(&p, "{\"value\":\"true\"}\n").unwrap();
        let f = parse(&[&format!("--task_command=file://{}", p.display())], false).unwrap();
        assert_eq!(f.task_command.unwrap().value.as_deref(), Some("true"));
        let e = parse(&["--user=file:///nonexistent/x"], false).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/x"), "{e}");
    }

    #[test]
    fn what_needs_mesos_own_launcher_is_named() {
        assert_eq!(
            parse(&["--task_launch_info={}"], false)
                .unwrap()
                .unsupported(),
            None
        );
        let empty = parse(
            &["--task_launch_info={\"mounts\":[],\"clone_namespaces\":[]}"],
            false,
        )
        .unwrap();
        assert_eq!(empty.unsupported(), None);
        let f = parse(
            &["--task_launch_info={\"mounts\":[{\"source\":\"/a\",\"target\":\"/b\"}]}"],
            false,
        )
        .unwrap();
        assert!(f
            .unsupported()
            .unwrap()
            .contains("task_launch_info with mounts"));
        let f = parse(
            &["--rootfs=/r", "--sandbox_directory=/mnt/mesos/sandbox"],
            false,
        )
        .unwrap();
        assert!(f.unsupported().unwrap().starts_with("--rootfs"));
    }
}
