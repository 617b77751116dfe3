//! Container networking through CNI plugins (spec 1.0; 0.3/0.4 results
//! too): `ADD`, `CHECK` and `DEL` of a network's plugin chain for one
//! network namespace, with the `CNI_*` variables, the network's config on
//! stdin (with `prevResult` threaded through the chain and the
//! `runtimeConfig` of the capabilities each plugin declares), results and
//! errors as types. Knows nothing of Mesos or of how the namespace was
//! made: the caller passes its path.
//!
//! ```text
//!  ADD:   plugin 1 --result--> plugin 2 (prevResult) --> ... --> result
//!  CHECK: plugin 1 .. n, each with prevResult = the ADD's result
//!  DEL:   plugin n .. 1, each with prevResult = the ADD's result (if any);
//!         every plugin runs even after one fails; the first error returns
//! ```
//!
//! No crate did the invoking side well (see docs/networking.md), so this
//! is written by hand: it is a few environment variables and a pipe.

mod bridge;
mod config;
mod result;

pub use bridge::{builtin_config, is_builtin, BridgeError};
pub use config::NetworkConfig;
pub use result::{CniResult, Dns, Interface, IpConfig, PluginError, Route};

use serde_json::{Map, Value};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Failures of CNI configuration and invocation.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("read cni config dir {dir}: {source}")]
    ConfigDir {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cni config {file}: {reason}")]
    Config { file: PathBuf, reason: String },
    #[error("no cni network {name} in {dir}")]
    NoSuchNetwork { name: String, dir: PathBuf },
    #[error("network {network}: cni plugin {plugin} not found in {dirs}")]
    PluginNotFound {
        network: String,
        plugin: String,
        dirs: String,
    },
    #[error("network {network}: run cni plugin {plugin} ({command}): {source}")]
    Exec {
        network: String,
        plugin: String,
        command: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("network {network}: cni plugin {plugin} failed {command}: {error}")]
    Plugin {
        network: String,
        plugin: String,
        command: &'static str,
        error: PluginError,
    },
    #[error("network {network}: cni plugin {plugin} failed {command} ({status}): {stderr}")]
    Failed {
        network: String,
        plugin: String,
        command: &'static str,
        status: String,
        stderr: String,
    },
    #[error("network {network}: cni plugin {plugin} {command}: killed after {timeout:?}")]
    Timeout {
        network: String,
        plugin: String,
        command: &'static str,
        timeout: Duration,
    },
    #[error("network {network}: built-in bridge {command}: {source}")]
    Bridge {
        network: String,
        command: &'static str,
        #[source]
        source: BridgeError,
    },
    #[error("network {network}: cni plugin {plugin} {command}: unreadable result: {reason}")]
    BadResult {
        network: String,
        plugin: String,
        command: &'static str,
        reason: String,
    },
}

/// One attachment of a container to a network: what varies per call.
#[derive(Debug, Clone, Default)]
pub struct Attachment {
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_NETNS`: the path of the network namespace.
    pub netns: PathBuf,
    /// `CNI_IFNAME`: the interface to make in it (`eth0`).
    pub ifname: String,
    /// `CNI_ARGS`: `K=V` pairs, joined with `;`.
    pub cni_args: Vec<(String, String)>,
    /// Capability arguments (`portMappings`, ...): each plugin gets those
    /// its `capabilities` name, as its config's `runtimeConfig`.
    pub runtime_config: Map<String, Value>,
    /// The config's `args` key (conventions: `args.cni`, or Mesos'
    /// `args."org.apache.mesos"`), merged over the file's own.
    pub args: Option<Map<String, Value>>,
}

/// How long one plugin may run before it is killed (a hung plugin must
/// not hang a launch or a destroy for ever).
pub const PLUGIN_TIMEOUT: Duration = Duration::from_secs(60);

/// Invokes plugins found in a list of directories (`CNI_PATH`).
#[derive(Debug, Clone)]
pub struct Cni {
    plugin_dirs: Vec<PathBuf>,
    timeout: Duration,
}

impl Cni {
    pub fn new(plugin_dirs: Vec<PathBuf>) -> Cni {
        Cni {
            plugin_dirs,
            timeout: PLUGIN_TIMEOUT,
        }
    }

    /// The same, with another timeout per plugin.
    pub fn with_timeout(self, timeout: Duration) -> Cni {
        Cni { timeout, ..self }
    }

    /// Runs the chain's `ADD`s in order; returns the last plugin's result.
    /// On error the attachment may be half made: the caller runs
    /// [`Cni::del`] (the spec allows a `DEL` after a failed `ADD`).
    pub fn add(&self, net: &NetworkConfig, att: &Attachment) -> Result<CniResult, NetError> {
        if is_builtin(net) {
            return native(net, "ADD", |b| b.add(&net.name, att));
        }
        let mut prev: Option<CniResult> = None;
        for plugin in &net.plugins {
            let conf = plugin_conf(net, plugin, att, prev.as_ref().map(|r| &r.raw));
            let out = self.exec(net, plugin, "ADD", att, &conf)?;
            let r = CniResult::parse(&out).map_err(|e| NetError::BadResult {
                network: net.name.clone(),
                plugin: plugin_type(plugin).to_string(),
                command: "ADD",
                reason: e.to_string(),
            })?;
            prev = Some(r);
        }
        Ok(prev.expect("a network has at least one plugin"))
    }

    /// Runs the chain's `CHECK`s against the result of the `ADD`.
    pub fn check(
        &self,
        net: &NetworkConfig,
        att: &Attachment,
        added: &Value,
    ) -> Result<(), NetError> {
        if is_builtin(net) {
            return native(net, "CHECK", |b| b.check(att));
        }
        for plugin in &net.plugins {
            let conf = plugin_conf(net, plugin, att, Some(added));
            self.exec(net, plugin, "CHECK", att, &conf)?;
        }
        Ok(())
    }

    /// Runs the chain's `DEL`s in reverse order, every one of them; returns
    /// the first failure.
    pub fn del(
        &self,
        net: &NetworkConfig,
        att: &Attachment,
        added: Option<&Value>,
    ) -> Result<(), NetError> {
        if is_builtin(net) {
            return native(net, "DEL", |b| b.del(&net.name, att, added));
        }
        let mut first = None;
        for plugin in net.plugins.iter().rev() {
            let conf = plugin_conf(net, plugin, att, added);
            if let Err(e) = self.exec(net, plugin, "DEL", att, &conf) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// The executable for a plugin type: the first in the plugin dirs.
    fn find(&self, network: &str, plugin: &str) -> Result<PathBuf, NetError> {
        self.plugin_dirs
            .iter()
            .map(|d| d.join(plugin))
            .find(|p| {
                p.metadata()
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
            .ok_or_else(|| NetError::PluginNotFound {
                network: network.to_string(),
                plugin: plugin.to_string(),
                dirs: self.cni_path(),
            })
    }

    /// Waits for a plugin, reading its output; kills it after the timeout.
    fn wait(
        &self,
        mut child: Child,
        net: &NetworkConfig,
        plugin: &str,
        command: &'static str,
    ) -> Result<Output, NetError> {
        let exec_err = |source| NetError::Exec {
            network: net.name.clone(),
            plugin: plugin.to_string(),
            command,
            source,
        };
        let drain = |pipe: Option<Box<dyn Read + Send>>| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                if let Some(mut p) = pipe {
                    let _ = p.read_to_end(&mut buf);
                }
                buf
            })
        };
        let stdout = drain(
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let stderr = drain(
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let deadline = Instant::now() + self.timeout;
        let mut pause = Duration::from_micros(200);
        let status = loop {
            if let Some(status) = child.try_wait().map_err(exec_err)? {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(NetError::Timeout {
                    network: net.name.clone(),
                    plugin: plugin.to_string(),
                    command,
                    timeout: self.timeout,
                });
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(10));
        };
        Ok(Output {
            status,
            stdout: stdout.join().unwrap_or_default(),
            stderr: stderr.join().unwrap_or_default(),
        })
    }

    fn cni_path(&self) -> String {
        let dirs: Vec<String> = self
            .plugin_dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        dirs.join(":")
    }

    /// Runs one plugin; returns its stdout on success.
    fn exec(
        &self,
        net: &NetworkConfig,
        plugin: &Map<String, Value>,
        command: &'static str,
        att: &Attachment,
        conf: &Value,
    ) -> Result<Vec<u8>, NetError> {
        let kind = plugin_type(plugin);
        let exe = self.find(&net.name, kind)?;
        let exec_err = |source| NetError::Exec {
            network: net.name.clone(),
            plugin: kind.to_string(),
            command,
            source,
        };
        let cni_args: Vec<String> = att
            .cni_args
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let mut cmd = Command::new(&exe);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("CNI_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", &att.container_id)
            .env("CNI_NETNS", &att.netns)
            .env("CNI_IFNAME", &att.ifname)
            .env("CNI_PATH", self.cni_path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if !cni_args.is_empty() {
            cmd.env("CNI_ARGS", cni_args.join(";"));
        }
        let mut child = cmd.spawn().map_err(exec_err)?;
        let input = serde_json::to_vec(conf).expect("a JSON value serializes");
        let mut stdin = child.stdin.take().expect("stdin is piped");
        // A plugin that exits without reading its stdin closes the pipe:
        // what it prints still decides.
        let writer = std::thread::spawn(move || stdin.write_all(&input));
        let out = self.wait(child, net, kind, command)?;
        let _ = writer.join();
        if out.status.success() {
            return Ok(out.stdout);
        }
        if let Some(error) = PluginError::parse(&out.stdout) {
            return Err(NetError::Plugin {
                network: net.name.clone(),
                plugin: kind.to_string(),
                command,
                error,
            });
        }
        let mut stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if stderr.is_empty() {
            stderr = String::from_utf8_lossy(&out.stdout).trim().to_string();
        }
        Err(NetError::Failed {
            network: net.name.clone(),
            plugin: kind.to_string(),
            command,
            status: out.status.to_string(),
            stderr,
        })
    }
}

/// Runs a command of the built-in bridge, which needs no plugin.
fn native<T>(
    net: &NetworkConfig,
    command: &'static str,
    f: impl FnOnce(&bridge::Bridge) -> Result<T, BridgeError>,
) -> Result<T, NetError> {
    bridge::Bridge::from_config(net)
        .and_then(|b| f(&b))
        .map_err(|source| NetError::Bridge {
            network: net.name.clone(),
            command,
            source,
        })
}

fn plugin_type(plugin: &Map<String, Value>) -> &str {
    plugin.get("type").and_then(Value::as_str).unwrap_or("")
}

/// One plugin's stdin: its own config with the network's `name` and
/// `cniVersion`, `prevResult`, the `runtimeConfig` of its capabilities and
/// the attachment's `args`.
fn plugin_conf(
    net: &NetworkConfig,
    plugin: &Map<String, Value>,
    att: &Attachment,
    prev: Option<&Value>,
) -> Value {
    let mut conf = plugin.clone();
    conf.insert("name".into(), Value::String(net.name.clone()));
    conf.insert("cniVersion".into(), Value::String(net.cni_version.clone()));
    if let Some(p) = prev {
        conf.insert("prevResult".into(), p.clone());
    }
    let wanted = plugin.get("capabilities").and_then(Value::as_object);
    let runtime: Map<String, Value> = att
        .runtime_config
        .iter()
        .filter(|(k, _)| {
            wanted.is_some_and(|w| w.get(k.as_str()).and_then(Value::as_bool) == Some(true))
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !runtime.is_empty() {
        conf.insert("runtimeConfig".into(), Value::Object(runtime));
    }
    if let Some(args) = &att.args {
        let mut merged = conf
            .get("args")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        merged.extend(args.clone());
        conf.insert("args".into(), Value::Object(merged));
    }
    Value::Object(conf)
}

#[cfg(test)]
mod tests;
