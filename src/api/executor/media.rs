//! The two encodings of the v1 API and how a request picks them: its
//! `Content-Type` names the call's encoding exactly, its `Accept` header
//! (libprocess rules) the events' encoding.

use hyper::header::{HeaderMap, ACCEPT, CONTENT_TYPE};

pub(crate) const APPLICATION_JSON: &str = "application/json";
pub(crate) const APPLICATION_PROTOBUF: &str = "application/x-protobuf";

/// How calls and events are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentType {
    Json,
    Protobuf,
}

impl ContentType {
    /// The media type, as sent in `Content-Type`.
    pub fn as_str(self) -> &'static str {
        match self {
            ContentType::Json => APPLICATION_JSON,
            ContentType::Protobuf => APPLICATION_PROTOBUF,
        }
    }
}

/// Why a request's `Content-Type` cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ContentTypeProblem {
    Missing,
    Unsupported,
}

/// The request's encoding. Like the Mesos agent, the header must be exactly
/// one of the two media types: parameters such as `; charset=utf-8` are not
/// accepted.
pub(crate) fn request_content_type(headers: &HeaderMap) -> Result<ContentType, ContentTypeProblem> {
    let value = headers
        .get(CONTENT_TYPE)
        .ok_or(ContentTypeProblem::Missing)?;
    match value.as_bytes() {
        b"application/json" => Ok(ContentType::Json),
        b"application/x-protobuf" => Ok(ContentType::Protobuf),
        _ => Err(ContentTypeProblem::Unsupported),
    }
}

/// The events' encoding for a SUBSCRIBE, chosen as the Mesos agent does:
/// JSON whenever `Accept` allows it (a missing header allows everything),
/// else protobuf; `None` when it allows neither.
pub(crate) fn negotiate_events(headers: &HeaderMap) -> Option<ContentType> {
    let accept = accept_header(headers);
    let accept = accept.as_deref();
    if accepts_media_type(accept, APPLICATION_JSON) {
        Some(ContentType::Json)
    } else if accepts_media_type(accept, APPLICATION_PROTOBUF) {
        Some(ContentType::Protobuf)
    } else {
        None
    }
}

/// Whether the request's header `name` (`Accept`, `Message-Accept`)
/// allows `media_type`, by libprocess' rules (no header allows everything).
pub(crate) fn header_accepts(headers: &HeaderMap, name: &str, media_type: &str) -> bool {
    accepts_media_type(joined_header(headers, name).as_deref(), media_type)
}

/// Every `Accept` header joined by commas, or `None` when there is none.
fn accept_header(headers: &HeaderMap) -> Option<String> {
    joined_header(headers, ACCEPT.as_str())
}

/// Every header `name` joined by commas, or `None` when there is none.
fn joined_header(headers: &HeaderMap, name: &str) -> Option<String> {
    let mut values = headers.get_all(name).iter().peekable();
    values.peek()?;
    let joined: Vec<String> = values
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    Some(joined.join(","))
}

/// Whether an `Accept` value allows `media_type`, by libprocess' rules: no
/// header allows everything; otherwise the exact type is looked for first,
/// then `type/*`, then `*/*`, and the first entry naming the candidate
/// decides (allowed unless its `q` is a number not above 0).
fn accepts_media_type(accept: Option<&str>, media_type: &str) -> bool {
    let Some((kind, _)) = media_type.split_once('/') else {
        return false;
    };
    let Some(accept) = accept else {
        return true;
    };
    let accept: String = accept
        .chars()
        .filter(|c| !matches!(c, ' ' | '\t' | '\n'))
        .collect();
    let wildcard = format!("{kind}/*");
    for candidate in [media_type, wildcard.as_str(), "*/*"] {
        for entry in accept.split(',').filter(|e| !e.is_empty()) {
            let mut parts = entry.split(';').filter(|p| !p.is_empty());
            let Some(range) = parts.next() else {
                continue;
            };
            if !range.eq_ignore_ascii_case(candidate) {
                continue;
            }
            let q: Vec<&str> = parts
                .filter_map(|p| p.split_once('='))
                .filter(|(k, v)| *k == "q" && !v.is_empty() && !v.contains('='))
                .map(|(_, v)| v)
                .collect();
            return match q.as_slice() {
                [q] => q.parse::<f64>().is_ok_and(|q| q > 0.0),
                // No q, or several: libprocess treats it as allowed.
                _ => true,
            };
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn headers(pairs: &[(&hyper::header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, HeaderValue::from_str(value).unwrap());
        }
        h
    }

    #[test]
    fn content_type_must_match_exactly() {
        let ct = |v: &str| request_content_type(&headers(&[(&CONTENT_TYPE, v)]));
        assert_eq!(ct("application/json"), Ok(ContentType::Json));
        assert_eq!(ct("application/x-protobuf"), Ok(ContentType::Protobuf));
        assert_eq!(
            ct("application/json; charset=utf-8"),
            Err(ContentTypeProblem::Unsupported)
        );
        assert_eq!(ct("text/plain"), Err(ContentTypeProblem::Unsupported));
        assert_eq!(
            request_content_type(&HeaderMap::new()),
            Err(ContentTypeProblem::Missing)
        );
    }

    #[test]
    fn accept_rules_follow_libprocess() {
        let yes = |a: Option<&str>, t: &str| accepts_media_type(a, t);
        assert!(yes(None, APPLICATION_JSON));
        assert!(yes(Some("*/*"), APPLICATION_PROTOBUF));
        assert!(yes(Some("application/*"), APPLICATION_PROTOBUF));
        assert!(yes(Some("Application/JSON"), APPLICATION_JSON));
        assert!(yes(
            Some("text/html, application/json;q=0.5"),
            APPLICATION_JSON
        ));
        assert!(!yes(Some("application/json;q=0"), APPLICATION_JSON));
        assert!(!yes(Some("application/json;q=0.0, */*"), APPLICATION_JSON));
        assert!(yes(Some("application/json;q=0, */*"), APPLICATION_PROTOBUF));
        assert!(!yes(Some("text/html"), APPLICATION_JSON));
        assert!(!yes(Some(""), APPLICATION_JSON));
        assert!(!yes(Some("application/json;q=x"), APPLICATION_JSON));
        // A q without a value, or given twice, is ignored as libprocess does.
        assert!(yes(Some("application/json;q="), APPLICATION_JSON));
        assert!(yes(Some("application/json;q=0;q=0"), APPLICATION_JSON));
    }

    #[test]
    fn events_prefer_json_like_mesos() {
        let pick = |a: Option<&str>| match a {
            Some(a) => negotiate_events(&headers(&[(&ACCEPT, a)])),
            None => negotiate_events(&HeaderMap::new()),
        };
        assert_eq!(pick(None), Some(ContentType::Json));
        assert_eq!(pick(Some("*/*")), Some(ContentType::Json));
        assert_eq!(
            pick(Some("application/x-protobuf")),
            Some(ContentType::Protobuf)
        );
        assert_eq!(
            pick(Some("application/x-protobuf, application/json;q=0.1")),
            Some(ContentType::Json)
        );
        assert_eq!(pick(Some("text/plain")), None);
        let two = headers(&[(&ACCEPT, "text/plain"), (&ACCEPT, "application/x-protobuf")]);
        assert_eq!(negotiate_events(&two), Some(ContentType::Protobuf));
    }
}
