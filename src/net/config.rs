//! Network configurations: a `.conflist` (a chain of plugins) or a single
//! plugin's `.conf`/`.json`, found by network name in a directory.

use super::NetError;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fs;
use std::path::{Path, PathBuf};

/// One network: its name, CNI version and the chain of plugin
/// configurations, in `ADD` order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkConfig {
    pub name: String,
    pub cni_version: String,
    pub plugins: Vec<Map<String, Value>>,
    /// The file it was read from.
    pub file: PathBuf,
}

impl NetworkConfig {
    /// Parses a configuration file's bytes: a list (with `plugins`) or a
    /// single plugin (with `type`).
    pub fn parse(file: &Path, bytes: &[u8]) -> Result<NetworkConfig, NetError> {
        let bad = |reason: String| NetError::Config {
            file: file.to_path_buf(),
            reason,
        };
        let v: Value = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        let Value::Object(mut top) = v else {
            return Err(bad("not a JSON object".into()));
        };
        let name = match top.get("name") {
            Some(Value::String(n)) if !n.is_empty() => n.clone(),
            _ => return Err(bad("no network name".into())),
        };
        let cni_version = match top.get("cniVersion") {
            Some(Value::String(v)) => v.clone(),
            _ => return Err(bad("no cniVersion".into())),
        };
        let plugins = match top.remove("plugins") {
            Some(Value::Array(list)) => list
                .into_iter()
                .map(|p| match p {
                    Value::Object(m) => Ok(m),
                    _ => Err(bad("a plugin is not a JSON object".into())),
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(_) => return Err(bad("plugins is not a list".into())),
            None => vec![top],
        };
        if plugins.is_empty() {
            return Err(bad("no plugins".into()));
        }
        for p in &plugins {
            match p.get("type") {
                Some(Value::String(t)) if !t.is_empty() && !t.contains('/') => {}
                _ => return Err(bad("a plugin has no usable type".into())),
            }
        }
        Ok(NetworkConfig {
            name,
            cni_version,
            plugins,
            file: file.to_path_buf(),
        })
    }

    /// The network called `name` among the `.conflist`, `.conf` and `.json`
    /// files of `dir` (files that do not parse are skipped, as libcni's
    /// loader does, unless one of them is the only candidate).
    pub fn find(dir: &Path, name: &str) -> Result<NetworkConfig, NetError> {
        let entries = fs::read_dir(dir).map_err(|source| NetError::ConfigDir {
            dir: dir.to_path_buf(),
            source,
        })?;
        let mut files: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.extension()
                    .is_some_and(|x| x == "conflist" || x == "conf" || x == "json")
            })
            .collect();
        files.sort();
        for f in files {
            let Ok(bytes) = fs::read(&f) else { continue };
            match NetworkConfig::parse(&f, &bytes) {
                Ok(c) if c.name == name => return Ok(c),
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "skipping a CNI config"),
            }
        }
        Err(NetError::NoSuchNetwork {
            name: name.to_string(),
            dir: dir.to_path_buf(),
        })
    }

    /// The types of the chain's plugins.
    pub fn plugin_types(&self) -> Vec<&str> {
        self.plugins
            .iter()
            .filter_map(|p| p.get("type").and_then(Value::as_str))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_conflist_and_a_single_plugin_conf_are_found_by_name() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("10-a.conflist"),
            r#"{"cniVersion":"1.0.0","name":"a","plugins":[{"type":"bridge"},{"type":"portmap","capabilities":{"portMappings":true}}]}"#,
        )
        .unwrap();
        fs::write(
            dir.path().join("20-b.conf"),
            r#"{"cniVersion":"0.4.0","name":"b","type":"ptp"}"#,
        )
        .unwrap();
        fs::write(dir.path().join("30-broken.conf"), "{").unwrap();
        let a = NetworkConfig::find(dir.path(), "a").unwrap();
        assert_eq!(a.plugin_types(), vec!["bridge", "portmap"]);
        let b = NetworkConfig::find(dir.path(), "b").unwrap();
        assert_eq!(b.cni_version, "0.4.0");
        assert_eq!(b.plugin_types(), vec!["ptp"]);
        let e = NetworkConfig::find(dir.path(), "c").unwrap_err();
        assert!(e.to_string().contains("network c"), "{e}");
    }

    #[test]
    fn bad_configs_are_refused_with_the_reason() {
        let f = Path::new("x.conflist");
        for (bytes, reason) in [
            (&br#"[]"#[..], "not a JSON object"),
            (br#"{"cniVersion":"1.0.0"}"#, "no network name"),
            (br#"{"name":"n"}"#, "no cniVersion"),
            (
                br#"{"name":"n","cniVersion":"1.0.0","plugins":[]}"#,
                "no plugins",
            ),
            (
                br#"{"name":"n","cniVersion":"1.0.0","plugins":[{"type":"../x"}]}"#,
                "no usable type",
            ),
        ] {
            let e = NetworkConfig::parse(f, bytes).unwrap_err().to_string();
            assert!(e.contains(reason), "{e}");
        }
    }
}
