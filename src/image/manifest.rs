//! OCI and Docker schema 2 manifests, indexes and image configs: the parts
//! a pull needs, with platform selection.

use super::digest::Digest;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// The `Accept` header for manifest requests.
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json";

/// Manifests larger than this are refused (the registry could be hostile).
pub const MAX_MANIFEST: u64 = 4 << 20;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// This machine's platform, in OCI's words.
    pub fn host() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            other => other,
        };
        Platform {
            architecture: architecture.into(),
            os: "linux".into(),
            variant: None,
        }
    }
}

/// An index (manifest list) or an image manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Document {
    #[serde(default)]
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifests: Option<Vec<Descriptor>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layers: Option<Vec<Descriptor>>,
}

/// An image manifest: a config and its layers, bottom first.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

pub enum Parsed {
    Index(Vec<Descriptor>),
    Manifest(Manifest),
}

/// Parses a manifest or index. `content_type` (from the registry) wins over
/// the document's own `mediaType`; schema 1 is refused.
pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<Parsed, String> {
    let doc: Document =
        serde_json::from_slice(bytes).map_err(|e| format!("not a manifest: {e}"))?;
    let kind = content_type
        .map(|c| c.split(';').next().unwrap_or("").trim().to_string())
        .filter(|c| !c.is_empty() && c != "application/json" && c != "application/octet-stream")
        .or(doc.media_type.clone());
    if doc.schema_version == 1
        || kind.as_deref().is_some_and(|k| {
            k.contains("v1+prettyjws") || k.ends_with("manifest.v1+json") && k.contains("docker")
        })
    {
        return Err("Docker schema 1 manifests are not supported".into());
    }
    match (kind.as_deref(), doc.manifests, doc.config, doc.layers) {
        (Some(OCI_INDEX | DOCKER_LIST), Some(m), _, _) | (None, Some(m), None, _) => {
            Ok(Parsed::Index(m))
        }
        (Some(OCI_MANIFEST | DOCKER_MANIFEST) | None, _, Some(config), Some(layers)) => {
            Ok(Parsed::Manifest(Manifest { config, layers }))
        }
        (k, ..) => Err(format!(
            "unsupported manifest type {}",
            k.unwrap_or("(none)")
        )),
    }
}

/// Picks the manifest for `want` from an index: same os and architecture,
/// and the same variant when both name one.
pub fn select(entries: &[Descriptor], want: &Platform) -> Option<Descriptor> {
    entries
        .iter()
        .filter(|d| d.media_type != "application/vnd.oci.image.index.v1+json")
        .find(|d| match &d.platform {
            Some(p) => {
                p.os == want.os
                    && p.architecture == want.architecture
                    && (p.variant.is_none() || want.variant.is_none() || p.variant == want.variant)
            }
            None => false,
        })
        .cloned()
}

/// The image configuration (the parts butte uses; the whole JSON is kept in
/// the store for `inspect`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub config: RunConfig,
    pub rootfs: RootFs,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type", default)]
    pub kind: String,
    pub diff_ids: Vec<Digest>,
}

impl ImageConfig {
    pub fn parse(bytes: &[u8]) -> Result<ImageConfig, String> {
        let c: ImageConfig =
            serde_json::from_slice(bytes).map_err(|e| format!("bad image config: {e}"))?;
        if c.rootfs.kind != "layers" {
            return Err(format!(
                "bad image config: rootfs type {:?}, expected \"layers\"",
                c.rootfs.kind
            ));
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(arch: &str, variant: Option<&str>) -> Descriptor {
        Descriptor {
            media_type: OCI_MANIFEST.into(),
            digest: Digest::of(arch.as_bytes()),
            size: 1,
            platform: Some(Platform {
                architecture: arch.into(),
                os: "linux".into(),
                variant: variant.map(Into::into),
            }),
            annotations: BTreeMap::new(),
        }
    }

    #[test]
    fn index_selection_by_platform() {
        let idx = vec![
            desc("arm", Some("v7")),
            desc("arm64", Some("v8")),
            desc("amd64", None),
        ];
        let host = Platform {
            architecture: "amd64".into(),
            os: "linux".into(),
            variant: None,
        };
        assert_eq!(select(&idx, &host).unwrap().digest, Digest::of(b"amd64"));
        let v6 = Platform {
            architecture: "arm".into(),
            os: "linux".into(),
            variant: Some("v6".into()),
        };
        assert!(select(&idx, &v6).is_none());
    }

    #[test]
    fn parses_manifests_and_indexes_and_refuses_schema1() {
        let d = Digest::of(b"c");
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{{"mediaType":"x","digest":"{d}","size":1}},"layers":[]}}"#
        );
        assert!(matches!(parse(m.as_bytes(), None), Ok(Parsed::Manifest(_))));
        let i = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{d}","size":1}}]}}"#
        );
        assert!(matches!(
            parse(i.as_bytes(), Some(OCI_INDEX)),
            Ok(Parsed::Index(_))
        ));
        let e = parse(br#"{"schemaVersion":1,"fsLayers":[]}"#, None)
            .err()
            .unwrap();
        assert!(e.contains("schema 1"), "{e}");
        let bad = r#"{"schemaVersion":2,"config":{"digest":"sha256:zz","size":1},"layers":[]}"#;
        assert!(parse(bad.as_bytes(), None).is_err());
    }
}
