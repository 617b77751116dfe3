//! Fuzz entries for what a registry or a task's image name hands the image
//! side (see `fuzz/`): image references, manifests, indexes and image
//! configs, and `WWW-Authenticate` challenges. Each panics when an
//! invariant breaks.

use super::auth::{parse_challenge, Challenge};
use super::manifest::{self, Document, ImageConfig, Parsed, Platform};
use super::reference::Reference;

/// An image reference: what parses prints as text that parses back to it,
/// and names a lowercase repository.
pub fn reference(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(r) = Reference::parse(text) else {
        return;
    };
    assert!(!r.repository.is_empty());
    assert!(r.tag.is_some() || r.digest.is_some(), "{r:?}");
    let _ = (r.name(), r.target(), r.api_host());
    assert_eq!(Reference::parse(&r.to_string()).as_ref(), Ok(&r));
}

/// A manifest or index: the first line is the registry's `Content-Type`
/// (empty for none), the rest the document; the same bytes are also read
/// as an image config. A manifest written back parses to itself; the
/// entry picked from an index is one of its entries, for this platform.
pub fn manifest(data: &[u8]) {
    let (content_type, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (std::str::from_utf8(&data[..i]).ok(), &data[i + 1..]),
        None => (None, data),
    };
    let content_type = content_type.filter(|c| !c.is_empty());
    match manifest::parse(body, content_type) {
        Ok(Parsed::Index(entries)) => {
            let host = Platform::host();
            if let Some(picked) = manifest::select(&entries, &host) {
                assert!(entries.contains(&picked));
                let p = picked.platform.expect("a picked entry names its platform");
                assert_eq!((p.os, p.architecture), (host.os, host.architecture));
            }
            let doc = Document {
                schema_version: 2,
                media_type: Some(manifest::OCI_INDEX.into()),
                manifests: Some(entries.clone()),
                config: None,
                layers: None,
            };
            let text = serde_json::to_vec(&doc).expect("an index is written");
            match manifest::parse(&text, None) {
                Ok(Parsed::Index(again)) => assert_eq!(again, entries),
                _ => panic!("an index written back is not read as that index"),
            }
        }
        Ok(Parsed::Manifest(m)) => {
            let doc = Document {
                schema_version: 2,
                media_type: Some(manifest::OCI_MANIFEST.into()),
                manifests: None,
                config: Some(m.config.clone()),
                layers: Some(m.layers.clone()),
            };
            let text = serde_json::to_vec(&doc).expect("a manifest is written");
            match manifest::parse(&text, content_type) {
                Ok(Parsed::Manifest(again)) => {
                    assert_eq!((again.config, again.layers), (m.config, m.layers))
                }
                _ => panic!("a manifest written back is not read as that manifest"),
            }
        }
        Err(_) => {}
    }
    if let Ok(config) = ImageConfig::parse(body) {
        assert_eq!(config.rootfs.kind, "layers");
        let text = serde_json::to_vec(&config).expect("a config is written");
        let again = ImageConfig::parse(&text).expect("a config written back parses");
        assert_eq!(again.rootfs.diff_ids, config.rootfs.diff_ids);
        assert_eq!(again.config, config.config);
    }
}

/// A `WWW-Authenticate` value: a Bearer challenge's parameters written back
/// (quoted) parse to the same challenge, whatever the scheme's case.
pub fn www_authenticate(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Some(Challenge::Bearer {
        realm,
        service,
        scope,
    }) = parse_challenge(text)
    else {
        return;
    };
    let values = [Some(&realm), service.as_ref(), scope.as_ref()];
    if values.iter().flatten().any(|v| v.contains('"')) {
        return;
    }
    let mut again = format!("bEARER realm=\"{realm}\"");
    if let Some(s) = &service {
        again.push_str(&format!(", service=\"{s}\""));
    }
    if let Some(s) = &scope {
        again.push_str(&format!(",scope=\"{s}\""));
    }
    assert_eq!(
        parse_challenge(&again),
        Some(Challenge::Bearer {
            realm,
            service,
            scope
        }),
        "{again}"
    );
}
