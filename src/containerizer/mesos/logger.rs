//! The container logger: where an executor's `stdout` and `stderr` go.
//!
//! As in Mesos, the default (`org_apache_mesos_SandboxContainerLogger`)
//! appends them to plain files in the sandbox. With
//! `--container_logger=org_apache_mesos_LogrotateContainerLogger` the files
//! are capped at `max_stdout_size`/`max_stderr_size` (default 10 MB, at
//! least one page) and rotated to `stdout.1` ... `stdout.N`, `N` from the
//! `rotate N` of `logrotate_stdout_options` (logrotate's default: 0, the
//! full file is dropped). A container overrides these with the variables
//! `CONTAINER_LOGGER_MAX_STDOUT_SIZE`, `CONTAINER_LOGGER_LOGROTATE_STDOUT_OPTIONS`,
//! `CONTAINER_LOGGER_MAX_STDERR_SIZE` and `CONTAINER_LOGGER_LOGROTATE_STDERR_OPTIONS`
//! of its `CommandInfo`'s environment; another variable with that prefix
//! fails the launch, as Mesos' flag loader does.
//!
//! Who rotates: not the agent, and not a `mesos-logrotate-logger` process
//! per stream as in Mesos, but the built-in executor that already runs in
//! each container (`executors::logger`): it replaces its own stdout and
//! stderr with pipes that its tasks inherit and drains them into the
//! rotated files from two threads. Nothing of it lives in the agent, so an
//! agent restart neither blocks nor kills a task's output (the executor
//! survives it); the pipes end with the container. This module only
//! resolves the settings and hands them to the executor
//! ([`crate::proto::launch::LOGROTATE_ENV`]). Custom executors (the
//! framework's own program) keep plain, unrotated files: there is no butte
//! process in their container to rotate them.
//!
//! Of logrotate's directives, butte knows `rotate N` (`-1`: keep all) and
//! takes `size`, `maxsize` and `minsize` (overridden by the max size, as in
//! Mesos) and the directives that change nothing for a single writer that
//! rotates by itself; any other (`compress`, scripts, ...) is refused with
//! a clear error rather than silently ignored.

use crate::proto::launch::{Logrotate, Rotation};
use crate::support::parse_size;

/// Mesos' name of the plain-files logger (the default).
pub const SANDBOX_LOGGER: &str = "org_apache_mesos_SandboxContainerLogger";
/// Mesos' name of the rotating logger.
pub const LOGROTATE_LOGGER: &str = "org_apache_mesos_LogrotateContainerLogger";
/// The prefix of a container's overrides (Mesos' `environment_variable_prefix`).
pub const ENV_PREFIX: &str = "CONTAINER_LOGGER_";
/// Mesos' default max size of each file.
pub const DEFAULT_MAX_SIZE: u64 = 10 << 20;
/// The smallest max size (one page, as Mesos requires).
pub const MIN_MAX_SIZE: u64 = 4096;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LoggerError {
    #[error("unknown container logger {0:?}: expected {SANDBOX_LOGGER} or {LOGROTATE_LOGGER}")]
    Unknown(String),
    #[error("{what}: {value:?} is not a size: {cause}")]
    Size {
        what: String,
        value: String,
        cause: String,
    },
    #[error("{what}: {value} bytes is less than one page ({MIN_MAX_SIZE} bytes)")]
    TooSmall { what: String, value: u64 },
    #[error(
        "{what}: unsupported logrotate option {option:?}: butte rotates by itself and \
         knows 'rotate N' and the options that change nothing for one writer"
    )]
    Option { what: String, option: String },
    #[error("{what}: 'rotate' needs a count of -1 or more, got {value:?}")]
    Rotate { what: String, value: String },
    #[error("unknown container logger variable {0}: expected {ENV_PREFIX}MAX_STDOUT_SIZE, MAX_STDERR_SIZE, LOGROTATE_STDOUT_OPTIONS or LOGROTATE_STDERR_OPTIONS")]
    Variable(String),
}

/// The agent's `--container_logger` and its logrotate settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ContainerLogger {
    /// Plain `stdout`/`stderr` files (Mesos' default).
    #[default]
    Sandbox,
    /// Capped and rotated files.
    Logrotate(LogrotateFlags),
}

/// The logrotate logger's settings (Mesos' module parameters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogrotateFlags {
    pub max_stdout_size: u64,
    pub logrotate_stdout_options: String,
    pub max_stderr_size: u64,
    pub logrotate_stderr_options: String,
}

impl Default for LogrotateFlags {
    fn default() -> Self {
        LogrotateFlags {
            max_stdout_size: DEFAULT_MAX_SIZE,
            logrotate_stdout_options: String::new(),
            max_stderr_size: DEFAULT_MAX_SIZE,
            logrotate_stderr_options: String::new(),
        }
    }
}

impl ContainerLogger {
    /// The logger named NAME (empty: the default) with FLAGS, checked.
    pub fn new(name: &str, flags: LogrotateFlags) -> Result<ContainerLogger, LoggerError> {
        match name {
            "" | SANDBOX_LOGGER => Ok(ContainerLogger::Sandbox),
            LOGROTATE_LOGGER => {
                flags.resolve("--")?;
                Ok(ContainerLogger::Logrotate(flags))
            }
            other => Err(LoggerError::Unknown(other.to_string())),
        }
    }

    /// What the executor of a container whose command environment is ENV
    /// must do: `None` for plain files.
    pub fn for_container<'a>(
        &self,
        env: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Option<Logrotate>, LoggerError> {
        let ContainerLogger::Logrotate(global) = self else {
            return Ok(None);
        };
        let mut flags = global.clone();
        for (name, value) in env {
            let Some(key) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            match key {
                "MAX_STDOUT_SIZE" => flags.max_stdout_size = size(name, value)?,
                "MAX_STDERR_SIZE" => flags.max_stderr_size = size(name, value)?,
                "LOGROTATE_STDOUT_OPTIONS" => flags.logrotate_stdout_options = value.into(),
                "LOGROTATE_STDERR_OPTIONS" => flags.logrotate_stderr_options = value.into(),
                _ => return Err(LoggerError::Variable(name.to_string())),
            }
        }
        flags.resolve(ENV_PREFIX).map(Some)
    }
}

impl LogrotateFlags {
    /// Checks the sizes and options; names them with PREFIX (`--` for the
    /// agent's flags, [`ENV_PREFIX`] for a container's variables).
    fn resolve(&self, prefix: &str) -> Result<Logrotate, LoggerError> {
        let flag = |s: &str| {
            if prefix == "--" {
                format!("--{}", s.to_ascii_lowercase())
            } else {
                format!("{prefix}{s}")
            }
        };
        let rotation = |size: u64, size_name: &str, options: &str, options_name: &str| {
            if size < MIN_MAX_SIZE {
                return Err(LoggerError::TooSmall {
                    what: flag(size_name),
                    value: size,
                });
            }
            Ok(Rotation {
                max_size: size,
                keep: keep(&flag(options_name), options)?,
            })
        };
        Ok(Logrotate {
            stdout: rotation(
                self.max_stdout_size,
                "MAX_STDOUT_SIZE",
                &self.logrotate_stdout_options,
                "LOGROTATE_STDOUT_OPTIONS",
            )?,
            stderr: rotation(
                self.max_stderr_size,
                "MAX_STDERR_SIZE",
                &self.logrotate_stderr_options,
                "LOGROTATE_STDERR_OPTIONS",
            )?,
        })
    }
}

/// A size as Mesos writes it (`10MB`, `4096B`, a bare number of bytes).
fn size(what: &str, value: &str) -> Result<u64, LoggerError> {
    parse_size(value).map_err(|e| LoggerError::Size {
        what: what.to_string(),
        value: value.to_string(),
        cause: e.to_string(),
    })
}

/// Directives without effect on a stream that one writer rotates by itself.
const HARMLESS: &[&str] = &[
    "missingok",
    "nomissingok",
    "notifempty",
    "ifempty",
    "nocompress",
    "nocopy",
    "copytruncate",
    "nocopytruncate",
    "nodelaycompress",
    "nodateext",
    "nomail",
    "noolddir",
    "sharedscripts",
    "nosharedscripts",
    "nocreate",
    "daily",
    "weekly",
    "monthly",
    "yearly",
    "hourly",
];

/// The rotated files kept by logrotate OPTIONS: `rotate N`, else 0.
pub fn keep(what: &str, options: &str) -> Result<Option<u32>, LoggerError> {
    let mut keep = Some(0);
    let mut words = options.split_whitespace();
    while let Some(word) = words.next() {
        match word {
            "rotate" => {
                let value = words.next().unwrap_or("");
                keep = match value.parse::<i64>() {
                    Ok(-1) => None,
                    Ok(n) => Some(u32::try_from(n).map_err(|_| LoggerError::Rotate {
                        what: what.to_string(),
                        value: value.to_string(),
                    })?),
                    Err(_) => {
                        return Err(LoggerError::Rotate {
                            what: what.to_string(),
                            value: value.to_string(),
                        })
                    }
                };
            }
            // Overridden by the max size, as in Mesos.
            "size" | "maxsize" | "minsize" => {
                words.next();
            }
            w if HARMLESS.contains(&w) => {}
            other => {
                return Err(LoggerError::Option {
                    what: what.to_string(),
                    option: other.to_string(),
                })
            }
        }
    }
    Ok(keep)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logrotate() -> ContainerLogger {
        ContainerLogger::new(
            LOGROTATE_LOGGER,
            LogrotateFlags {
                logrotate_stdout_options: "rotate 9\nmissingok".into(),
                ..LogrotateFlags::default()
            },
        )
        .unwrap()
    }

    #[test]
    fn sandbox_logger_is_the_default_and_rotates_nothing() {
        let l = ContainerLogger::new("", LogrotateFlags::default()).unwrap();
        assert_eq!(l, ContainerLogger::Sandbox);
        assert_eq!(
            ContainerLogger::new(SANDBOX_LOGGER, LogrotateFlags::default()).unwrap(),
            ContainerLogger::Sandbox
        );
        assert_eq!(
            l.for_container([("CONTAINER_LOGGER_MAX_STDOUT_SIZE", "1MB")])
                .unwrap(),
            None
        );
        assert!(matches!(
            ContainerLogger::new("org_apache_mesos_Other", LogrotateFlags::default()),
            Err(LoggerError::Unknown(_))
        ));
    }

    #[test]
    fn mesos_defaults_are_ten_megabytes_and_no_rotated_file() {
        let l = ContainerLogger::new(LOGROTATE_LOGGER, LogrotateFlags::default()).unwrap();
        let r = l.for_container([]).unwrap().unwrap();
        let ten = Rotation {
            max_size: 10 << 20,
            keep: Some(0),
        };
        assert_eq!(r.stdout, ten);
        assert_eq!(r.stderr, ten);
    }

    #[test]
    fn container_variables_override_the_agent_flags() {
        let r = logrotate()
            .for_container([
                ("PATH", "/bin"),
                ("CONTAINER_LOGGER_MAX_STDOUT_SIZE", "1MB"),
                ("CONTAINER_LOGGER_LOGROTATE_STDERR_OPTIONS", "rotate -1"),
                ("CONTAINER_LOGGER_MAX_STDERR_SIZE", "8192"),
            ])
            .unwrap()
            .unwrap();
        assert_eq!(
            r.stdout,
            Rotation {
                max_size: 1 << 20,
                keep: Some(9)
            }
        );
        assert_eq!(
            r.stderr,
            Rotation {
                max_size: 8192,
                keep: None
            }
        );
    }

    #[test]
    fn bad_settings_are_refused_naming_the_flag_or_variable() {
        let small = LogrotateFlags {
            max_stderr_size: 100,
            ..LogrotateFlags::default()
        };
        let e = ContainerLogger::new(LOGROTATE_LOGGER, small).unwrap_err();
        assert!(e.to_string().contains("--max_stderr_size"), "{e}");
        let e = logrotate()
            .for_container([("CONTAINER_LOGGER_MAX_STDOUT_SIZE", "lots")])
            .unwrap_err();
        assert!(
            e.to_string().contains("CONTAINER_LOGGER_MAX_STDOUT_SIZE"),
            "{e}"
        );
        let e = logrotate()
            .for_container([("CONTAINER_LOGGER_LOGROTATE_STDOUT_OPTIONS", "compress")])
            .unwrap_err();
        assert!(e.to_string().contains("\"compress\""), "{e}");
        let e = logrotate()
            .for_container([("CONTAINER_LOGGER_MAX_SIZE", "1MB")])
            .unwrap_err();
        assert_eq!(e, LoggerError::Variable("CONTAINER_LOGGER_MAX_SIZE".into()));
        for bad in ["rotate", "rotate x", "rotate -2"] {
            assert!(
                matches!(keep("o", bad), Err(LoggerError::Rotate { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn options_are_read_as_logrotate_reads_them() {
        assert_eq!(keep("o", ""), Ok(Some(0)));
        assert_eq!(keep("o", "rotate 5"), Ok(Some(5)));
        assert_eq!(
            keep("o", "  missingok\n rotate 2\nsize 1k notifempty"),
            Ok(Some(2))
        );
        assert_eq!(keep("o", "rotate -1"), Ok(None));
        assert!(keep("o", "postrotate").is_err());
        assert!(keep("o", "{").is_err());
    }
}
