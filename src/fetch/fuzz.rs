//! The fuzz entry for URI specs (see `fuzz/`), in both forms the fetcher
//! is given: the command line's `URL[,extract|noextract][,executable]
//! [,cache][,output_file=NAME]`, and the fields of a Mesos
//! `CommandInfo.URI`. Panics when an invariant breaks.

use std::path::{Component, Path};

use super::uri::{Format, Plan, Source};
use super::UriSpec;

/// First byte even: the rest is a command line spec. Odd: its bits 1-3
/// are `executable`, `extract` and `cache`, and the rest is the URI's
/// `value`, a newline, then its `output_file` (if any).
pub fn uri(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let spec = if mode & 1 == 0 {
        let Ok(spec) = text.parse::<UriSpec>() else {
            return;
        };
        assert_eq!(written(&spec).parse::<UriSpec>().as_ref(), Ok(&spec));
        spec
    } else {
        let (value, output_file) = match text.split_once('\n') {
            Some((v, o)) => (v, Some(o.to_string())),
            None => (text, None),
        };
        UriSpec {
            value: value.to_string(),
            executable: mode & 2 != 0,
            extract: mode & 4 != 0,
            cache: mode & 8 != 0,
            output_file,
        }
    };
    let Ok(plan) = Plan::new(&spec) else {
        return;
    };
    // The file stays beneath the sandbox.
    let parts: Vec<_> = plan.output.components().collect();
    assert!(!parts.is_empty(), "{plan:?}");
    assert!(
        parts.iter().all(|c| matches!(c, Component::Normal(_))),
        "{plan:?}"
    );
    if plan.format.is_some() {
        assert!(spec.extract && !spec.executable, "{plan:?}");
    }
    if plan.format == Some(Format::Gzip) {
        // Decompressed beside the download, under this one name.
        let name = plan.gunzipped_name();
        let mut parts = Path::new(&name).components();
        assert!(
            matches!(
                (parts.next(), parts.next()),
                (Some(Component::Normal(_)), None)
            ),
            "{plan:?} is decompressed to {name:?}"
        );
    }
    match &plan.source {
        Source::Local(path) => assert!(path.is_absolute(), "{plan:?}"),
        Source::Http(url) => assert_eq!(url, &plan.uri),
    }
}

/// The command line form of `spec`.
fn written(spec: &UriSpec) -> String {
    let mut s = spec.value.clone();
    if !spec.extract {
        s.push_str(",noextract");
    }
    if spec.executable {
        s.push_str(",executable");
    }
    if spec.cache {
        s.push_str(",cache");
    }
    if let Some(name) = &spec.output_file {
        s.push_str(",output_file=");
        s.push_str(name);
    }
    s
}
