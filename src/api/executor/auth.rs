//! Executor authentication, as the Mesos agent does it with
//! `--authenticate_http_executors`: every call carries the token the agent
//! gave the executor (`MESOS_EXECUTOR_AUTHENTICATION_TOKEN`) as
//! `Authorization: Bearer <token>`. libprocess' JWT authenticator answers
//! a call without a valid token 401 with a `Bearer` challenge for the realm
//! `mesos-agent-executor`; the agent answers 403 when the token's claims
//! (`fid`, `eid`, `cid`) do not name the call's framework, executor and the
//! executor's current container ([`Principal::authorize`]).

use super::CallError;
use crate::support::jwt::{self, executor_claims, Key};
use hyper::header::{HeaderMap, HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use std::collections::BTreeMap;
use std::fmt;

/// The realm of the executor API's challenges (Mesos'
/// `EXECUTOR_HTTP_AUTHENTICATION_REALM`).
pub const REALM: &str = "mesos-agent-executor";

/// Who a valid token says the caller is: its claims, each a string (a
/// claim that is not a JSON string is kept as its JSON text, as libprocess
/// does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub claims: BTreeMap<String, String>,
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let claims: serde_json::Map<String, serde_json::Value> = self
            .claims
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        write!(f, "{}", serde_json::json!({ "claims": claims }))
    }
}

impl Principal {
    /// Whether this principal may make calls for the executor
    /// `executor_id` of `framework_id` running in `container_id` (Mesos'
    /// `verifyExecutorClaims`); a refusal is a 403 with Mesos' text.
    pub fn authorize(
        &self,
        framework_id: &str,
        executor_id: &str,
        container_id: &str,
    ) -> Result<(), CallError> {
        let has = |claim: &str, value: &str| self.claims.get(claim).is_some_and(|v| v == value);
        if !has(executor_claims::FRAMEWORK_ID, framework_id) {
            return Err(CallError::Forbidden(format!(
                "Authenticated principal '{self}' does not contain an 'fid' claim with the \
                 framework ID {framework_id}, which is set in the call"
            )));
        }
        if !has(executor_claims::EXECUTOR_ID, executor_id) {
            return Err(CallError::Forbidden(format!(
                "Authenticated principal '{self}' does not contain an 'eid' claim with the \
                 executor ID {executor_id}, which is set in the call"
            )));
        }
        if !has(executor_claims::CONTAINER_ID, container_id) {
            return Err(CallError::Forbidden(format!(
                "Authenticated principal '{self}' does not contain a 'cid' claim with the \
                 correct active ContainerID"
            )));
        }
        Ok(())
    }
}

/// Why a request was not authenticated: the 401's challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unauthorized {
    /// `error_description` of the challenge; `None` for a request without
    /// credentials, whose challenge carries no error (RFC 6750, 3.1).
    pub description: Option<String>,
}

impl Unauthorized {
    fn invalid(description: impl Into<String>) -> Self {
        Unauthorized {
            description: Some(description.into()),
        }
    }

    /// The `WWW-Authenticate` value, as libprocess writes it.
    pub fn challenge(&self) -> HeaderValue {
        let text = match &self.description {
            None => format!("Bearer realm=\"{REALM}\""),
            Some(d) => format!(
                "Bearer realm=\"{REALM}\", error=\"invalid_token\", error_description=\"{d}\""
            ),
        };
        // Descriptions are ours and never carry the request's bytes beyond
        // a checked scheme name.
        HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static(
            "Bearer realm=\"mesos-agent-executor\", error=\"invalid_token\"",
        ))
    }

    /// The response body: what a person reading it needs.
    pub fn body(&self) -> String {
        match &self.description {
            None => "Unauthorized: missing 'Authorization' header".into(),
            Some(d) => format!("Unauthorized: {d}"),
        }
    }
}

/// Authenticates a request by its `Authorization` header against `key`.
pub fn authenticate(headers: &HeaderMap, key: &Key) -> Result<Principal, Unauthorized> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(Unauthorized { description: None });
    };
    let malformed = || Unauthorized::invalid("Malformed 'Authorization' header");
    if values.next().is_some() {
        return Err(malformed());
    }
    let text = value.to_str().map_err(|_| malformed())?;
    let parts: Vec<&str> = text.split(' ').collect();
    let [scheme, token] = parts[..] else {
        return Err(malformed());
    };
    if !scheme.eq_ignore_ascii_case("Bearer") {
        let printable = !scheme.is_empty()
            && scheme.len() <= 32
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~+".contains(&b));
        return Err(if printable {
            Unauthorized::invalid(format!("Scheme '{scheme}' unsupported"))
        } else {
            malformed()
        });
    }
    let claims =
        jwt::decode(token, key).map_err(|e| Unauthorized::invalid(format!("Invalid JWT: {e}")))?;
    if claims.is_empty() {
        return Err(Unauthorized::invalid("JWT claims missing"));
    }
    let claims = claims
        .into_iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => (k, s),
            other => (k, other.to_string()),
        })
        .collect();
    Ok(Principal { claims })
}

/// The 401 response for `why`.
pub(super) fn unauthorized(why: &Unauthorized) -> hyper::Response<super::Body> {
    let mut r = super::text(hyper::StatusCode::UNAUTHORIZED, why.body());
    r.headers_mut().insert(WWW_AUTHENTICATE, why.challenge());
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Key {
        Key::new(b"k".to_vec()).unwrap()
    }

    fn with(value: &[u8]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_bytes(value).unwrap());
        h
    }

    fn challenge(h: &HeaderMap) -> String {
        authenticate(h, &key())
            .unwrap_err()
            .challenge()
            .to_str()
            .unwrap()
            .to_string()
    }

    #[test]
    fn no_credentials_get_a_bare_challenge() {
        assert_eq!(
            challenge(&HeaderMap::new()),
            "Bearer realm=\"mesos-agent-executor\""
        );
    }

    #[test]
    fn malformed_headers_and_other_schemes() {
        let bad = "Bearer realm=\"mesos-agent-executor\", error=\"invalid_token\", \
                   error_description=\"Malformed 'Authorization' header\"";
        for v in [
            &b"Bearer"[..],
            b"Bearer  x",
            b"Bearer a b",
            b"",
            b"Bearer \xff",
        ] {
            assert_eq!(challenge(&with(v)), bad, "{v:?}");
        }
        assert_eq!(
            challenge(&with(b"Basic dXNlcjpwdw==")),
            "Bearer realm=\"mesos-agent-executor\", error=\"invalid_token\", \
             error_description=\"Scheme 'Basic' unsupported\""
        );
        assert_eq!(challenge(&with(b"B\"a x")), bad);
        let mut two = with(b"Bearer x");
        two.append(AUTHORIZATION, HeaderValue::from_static("Bearer y"));
        assert_eq!(challenge(&two), bad);
    }

    #[test]
    fn bad_tokens_name_the_reason() {
        let forged = jwt::encode(
            &executor_claims::claims("F", "E", "C"),
            &Key::new(b"other".to_vec()).unwrap(),
        );
        assert_eq!(
            challenge(&with(format!("Bearer {forged}").as_bytes())),
            "Bearer realm=\"mesos-agent-executor\", error=\"invalid_token\", \
             error_description=\"Invalid JWT: token signature does not match\""
        );
        assert!(challenge(&with(b"Bearer garbage")).contains("Invalid JWT: expected 3 components"));
        let empty = jwt::encode(&jwt::Claims::new(), &key());
        assert!(challenge(&with(format!("Bearer {empty}").as_bytes()))
            .contains("error_description=\"JWT claims missing\""));
    }

    #[test]
    fn a_good_token_gives_its_claims() {
        let mut claims = executor_claims::claims("F", "E", "C");
        claims.insert("n".into(), serde_json::json!(7));
        let token = jwt::encode(&claims, &key());
        let p = authenticate(&with(format!("Bearer {token}").as_bytes()), &key()).unwrap();
        assert_eq!(p.claims["fid"], "F");
        assert_eq!(p.claims["n"], "7");
        let p = authenticate(&with(format!("bearer {token}").as_bytes()), &key()).unwrap();
        assert_eq!(p.claims["cid"], "C");
    }

    #[test]
    fn claims_must_name_the_call_and_the_container() {
        let p = Principal {
            claims: [("fid", "F"), ("eid", "E"), ("cid", "C")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        assert_eq!(p.authorize("F", "E", "C"), Ok(()));
        let forbidden = |r: Result<(), CallError>| match r {
            Err(CallError::Forbidden(m)) => m,
            other => panic!("not forbidden: {other:?}"),
        };
        assert_eq!(
            forbidden(p.authorize("G", "E", "C")),
            "Authenticated principal '{\"claims\":{\"cid\":\"C\",\"eid\":\"E\",\"fid\":\"F\"}}' \
             does not contain an 'fid' claim with the framework ID G, which is set in the call"
        );
        assert!(forbidden(p.authorize("F", "X", "C"))
            .contains("does not contain an 'eid' claim with the executor ID X"));
        assert!(forbidden(p.authorize("F", "E", "C2"))
            .contains("does not contain a 'cid' claim with the correct active ContainerID"));
        let none = Principal {
            claims: BTreeMap::new(),
        };
        assert!(none.authorize("F", "E", "C").is_err());
    }
}
