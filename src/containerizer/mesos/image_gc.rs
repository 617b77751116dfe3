//! Automatic image garbage collection (Mesos' `--image_gc_config`).
//!
//! Every `image_disk_watch_interval` the agent asks [`MesosContainerizer::
//! collect_images`] to look at the store's filesystem; once its usage
//! reaches `1 - image_disk_headroom`, the references of images that no
//! container runs are dropped (but `excluded_images`) and every blob and
//! layer nothing needs any more is deleted (`image::collect`). A layer a
//! container's lease holds is never removed. Launches hold the collection
//! off from the moment they look for their images until their leases are
//! written, so an image pulled for a launch is not taken from under it.

use super::error::ContainerizerError;
use super::images;
use super::MesosContainerizer;
use crate::image::{self, GcSummary, Reference, Store};
use crate::proto::mesos::{image as mesos_image, Image};
use std::time::Duration;

/// Mesos' defaults: 10 % headroom, a look every 5 minutes.
pub const DEFAULT_HEADROOM: f64 = 0.1;
pub const DEFAULT_WATCH_INTERVAL: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum ImageGcError {
    #[error("--image_gc_config: read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("--image_gc_config: {0}")]
    Invalid(String),
}

/// `--image_gc_config` (Mesos' `ImageGcConfig`).
#[derive(Debug, Clone, PartialEq)]
pub struct ImageGcConfig {
    /// The share of the store's filesystem to keep free (0 to 1).
    pub image_disk_headroom: f64,
    pub image_disk_watch_interval: Duration,
    /// Image names never collected, as tasks name them.
    pub excluded_images: Vec<String>,
}

impl ImageGcConfig {
    /// Reads the flag's value: a JSON object, or a file holding one
    /// (`file:///path` or a plain path), as Mesos takes it.
    pub fn parse(value: &str) -> Result<ImageGcConfig, ImageGcError> {
        let text = value.trim();
        let json = if text.starts_with(['{', '[']) {
            text.to_string()
        } else {
            let path = text.strip_prefix("file://").unwrap_or(text);
            std::fs::read_to_string(path).map_err(|source| ImageGcError::Read {
                path: path.to_string(),
                source,
            })?
        };
        Self::from_json(&json)
    }

    fn from_json(json: &str) -> Result<ImageGcConfig, ImageGcError> {
        let bad = |m: String| ImageGcError::Invalid(m);
        let v: serde_json::Value =
            serde_json::from_str(json).map_err(|e| bad(format!("not JSON: {e}")))?;
        let obj = v
            .as_object()
            .ok_or_else(|| bad("expected a JSON object".into()))?;
        if let Some(k) = obj.keys().find(|k| {
            ![
                "image_disk_headroom",
                "image_disk_watch_interval",
                "excluded_images",
            ]
            .contains(&k.as_str())
        }) {
            return Err(bad(format!("unknown field {k:?}")));
        }
        let headroom = match obj.get("image_disk_headroom") {
            None => DEFAULT_HEADROOM,
            Some(h) => h
                .as_f64()
                .filter(|h| (0.0..=1.0).contains(h))
                .ok_or_else(|| bad(format!("image_disk_headroom {h} is not between 0 and 1")))?,
        };
        let interval = match obj.get("image_disk_watch_interval") {
            None => DEFAULT_WATCH_INTERVAL,
            Some(d) => d
                .get("nanoseconds")
                .and_then(serde_json::Value::as_u64)
                .filter(|n| *n > 0)
                .map(Duration::from_nanos)
                .ok_or_else(|| {
                    bad(format!(
                        "image_disk_watch_interval {d} is not {{\"nanoseconds\": N}} with N > 0"
                    ))
                })?,
        };
        let mut excluded = Vec::new();
        for i in obj
            .get("excluded_images")
            .map(|e| {
                e.as_array()
                    .ok_or_else(|| bad("excluded_images is not a list".into()))
            })
            .transpose()?
            .into_iter()
            .flatten()
        {
            let image: Image = crate::proto::from_json(i.to_string().as_bytes())
                .map_err(|e| bad(format!("excluded image {i}: {e}")))?;
            match (image.r#type(), image.docker) {
                (mesos_image::Type::Docker, Some(d)) => excluded.push(d.name),
                _ => {
                    return Err(bad(format!(
                        "excluded image {i}: not a DOCKER image with a name"
                    )))
                }
            }
        }
        Ok(ImageGcConfig {
            image_disk_headroom: headroom,
            image_disk_watch_interval: interval,
            excluded_images: excluded,
        })
    }
}

impl MesosContainerizer {
    /// Collects unused images if the store's filesystem is past the
    /// headroom; `None` when it is not. Blocking: call it from a blocking
    /// thread.
    pub fn collect_images(
        &self,
        config: &ImageGcConfig,
    ) -> Result<Option<GcSummary>, ContainerizerError> {
        let inner = &self.inner;
        let err = |source| ContainerizerError::ImageGc { source };
        let store = Store::open(&inner.config.work_dir).map_err(err)?;
        if image::usage(&store).map_err(err)? < 1.0 - config.image_disk_headroom {
            return Ok(None);
        }
        self.collect(&store, &config.excluded_images).map(Some)
    }

    /// The operator API's PRUNE_IMAGES: drops the references of the images
    /// no container runs, but `excluded` (names as tasks give them), and
    /// deletes every blob and layer nothing needs any more, whatever the
    /// disk's usage. Blocking.
    pub fn prune_images(&self, excluded: &[String]) -> Result<GcSummary, ContainerizerError> {
        let store = Store::open(&self.inner.config.work_dir)
            .map_err(|source| ContainerizerError::ImageGc { source })?;
        self.collect(&store, excluded)
    }

    fn collect(&self, store: &Store, excluded: &[String]) -> Result<GcSummary, ContainerizerError> {
        let inner = &self.inner;
        let registry = inner.config.docker_registry.as_deref();
        let keep: Vec<Reference> = excluded
            .iter()
            .filter_map(|name| Reference::parse(&images::qualify(name, registry)).ok())
            .collect();
        // No launch between looking for its image and leasing it.
        let _gc = inner.image_gc.write().unwrap_or_else(|e| e.into_inner());
        image::collect(store, &keep).map_err(|source| ContainerizerError::ImageGc { source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mesos_shape_is_read_with_its_defaults() {
        let c = ImageGcConfig::parse(
            r#"{"image_disk_headroom": 0.25,
                "image_disk_watch_interval": {"nanoseconds": 3600000000000},
                "excluded_images": [{"type": "DOCKER", "docker": {"name": "library/busybox:1"}}]}"#,
        )
        .unwrap();
        assert_eq!(c.image_disk_headroom, 0.25);
        assert_eq!(c.image_disk_watch_interval, Duration::from_secs(3600));
        assert_eq!(c.excluded_images, ["library/busybox:1"]);
        let d = ImageGcConfig::parse("{}").unwrap();
        assert_eq!(d.image_disk_headroom, DEFAULT_HEADROOM);
        assert_eq!(d.image_disk_watch_interval, DEFAULT_WATCH_INTERVAL);
        assert!(d.excluded_images.is_empty());
    }

    #[test]
    fn a_file_is_read_too() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("gc.json");
        std::fs::write(&p, r#"{"image_disk_headroom": 0.5}"#).unwrap();
        let url = format!("file://{}", p.display());
        assert_eq!(ImageGcConfig::parse(&url).unwrap().image_disk_headroom, 0.5);
        let e = ImageGcConfig::parse("/nonexistent/gc.json").unwrap_err();
        assert!(e.to_string().contains("/nonexistent/gc.json"), "{e}");
    }

    #[test]
    fn bad_configs_are_refused_with_the_reason() {
        for (json, needle) in [
            (r#"{"image_disk_headroom": 1.5}"#, "between 0 and 1"),
            (r#"{"image_disk_watch_interval": 5}"#, "nanoseconds"),
            (
                r#"{"image_disk_watch_interval": {"nanoseconds": 0}}"#,
                "N > 0",
            ),
            (r#"{"excluded_images": [{"type": "APPC"}]}"#, "DOCKER"),
            (r#"{"headroom": 0.1}"#, "unknown field \"headroom\""),
            ("[1]", "JSON object"),
            ("{", "not JSON"),
        ] {
            let e = ImageGcConfig::parse(json).unwrap_err().to_string();
            assert!(e.contains(needle), "{json}: {e}");
        }
    }
}
