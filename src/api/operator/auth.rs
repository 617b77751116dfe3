//! HTTP Basic authentication of the operator endpoints, as the Mesos agent
//! does it with `--authenticate_http_readonly`, `--authenticate_http_readwrite`
//! and `--http_credentials`: libprocess' basic authenticator checks
//! `Authorization: Basic base64(principal:secret)` against the credentials
//! file and answers anything else 401 with a `Basic` challenge naming the
//! endpoint's realm. Off by default, as in Mesos.

use base64::Engine as _;
use hyper::header::{HeaderMap, AUTHORIZATION};
use std::path::{Path, PathBuf};

/// The realm of read-only endpoints (`/state`, `/flags`, `/metrics/snapshot`,
/// `/files/*`, ...): Mesos' `READONLY_HTTP_AUTHENTICATION_REALM`.
pub const READONLY_REALM: &str = "mesos-agent-readonly";

/// The realm of endpoints that change things (`/api/v1`): Mesos'
/// `READWRITE_HTTP_AUTHENTICATION_REALM`.
pub const READWRITE_REALM: &str = "mesos-agent-readwrite";

/// What an endpoint may do, which picks its realm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Never authenticated (`/health`, `/version`, as in Mesos).
    Open,
    ReadOnly,
    ReadWrite,
}

/// One principal and its secret.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Credential {
    pub principal: String,
    pub secret: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credential({}, <secret>)", self.principal)
    }
}

#[derive(serde::Deserialize)]
struct CredentialsFile {
    credentials: Vec<Credential>,
}

/// Failures to load `--http_credentials`.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("read the credentials file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parse the credentials file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("authentication of {realm} is on, but no credentials were given (--http_credentials)")]
    NoCredentials { realm: &'static str },
}

/// Reads a credentials file in either of Mesos' formats: JSON
/// `{"credentials":[{"principal":..,"secret":..}]}`, or one
/// `principal secret` pair a line.
pub fn load_credentials(path: &Path) -> Result<Vec<Credential>, AuthError> {
    let text = std::fs::read_to_string(path).map_err(|source| AuthError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_credentials(&text).map_err(|message| AuthError::Parse {
        path: path.to_path_buf(),
        message,
    })
}

fn parse_credentials(text: &str) -> Result<Vec<Credential>, String> {
    if text.trim_start().starts_with('{') {
        let file: CredentialsFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
        return Ok(file.credentials);
    }
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, line)| {
            let mut words = line.split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some(principal), Some(secret), None) => Ok(Credential {
                    principal: principal.to_string(),
                    secret: secret.to_string(),
                }),
                _ => Err(format!(
                    "line {}: expected 'principal secret' or a JSON object",
                    n + 1
                )),
            }
        })
        .collect()
}

/// Which realms are authenticated, and against what.
#[derive(Debug, Clone, Default)]
pub struct Authenticator {
    pub readonly: bool,
    pub readwrite: bool,
    pub credentials: Vec<Credential>,
    /// The key executors' tokens are signed with: an executor may then
    /// call `/api/v1` (read-write realm) with `Authorization: Bearer
    /// <MESOS_EXECUTOR_AUTHENTICATION_TOKEN>`, as Mesos' agent lets its
    /// default executor launch nested containers; what it may call is
    /// [`super::v1`]'s decision.
    pub executor_key: Option<std::sync::Arc<crate::support::jwt::Key>>,
}

/// A refused request: answer 401 with this challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unauthorized {
    pub realm: &'static str,
    pub message: &'static str,
}

impl Unauthorized {
    /// The `WWW-Authenticate` value.
    pub fn challenge(&self) -> String {
        format!("Basic realm=\"{}\"", self.realm)
    }
}

impl Authenticator {
    /// Checks the configuration as Mesos does at start: authentication
    /// without credentials is an error.
    pub fn new(
        readonly: bool,
        readwrite: bool,
        credentials: Vec<Credential>,
    ) -> Result<Authenticator, AuthError> {
        if credentials.is_empty() {
            if readonly {
                return Err(AuthError::NoCredentials {
                    realm: READONLY_REALM,
                });
            }
            if readwrite {
                return Err(AuthError::NoCredentials {
                    realm: READWRITE_REALM,
                });
            }
        }
        Ok(Authenticator {
            readonly,
            readwrite,
            credentials,
            executor_key: None,
        })
    }

    /// Lets executors authenticate to the read-write realm with their
    /// tokens, signed with `key`.
    pub fn with_executor_key(mut self, key: crate::support::jwt::Key) -> Authenticator {
        self.executor_key = Some(std::sync::Arc::new(key));
        self
    }

    /// The claimed container id of an executor whose `Bearer` token `key`
    /// signed, when the read-write realm is authenticated and such a key
    /// is set; `None` otherwise (the request is then an operator's, checked
    /// by [`Authenticator::check`]).
    pub fn executor(&self, headers: &HeaderMap) -> Option<String> {
        let key = self.executor_key.as_ref().filter(|_| self.readwrite)?;
        let bearer = headers.get(AUTHORIZATION)?.to_str().ok()?;
        let (scheme, _) = bearer.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let principal = crate::api::executor::authenticate(headers, key).ok()?;
        principal
            .claims
            .get(crate::support::jwt::executor_claims::CONTAINER_ID)
            .cloned()
    }

    /// The principal of an allowed request (`None` when the endpoint's realm
    /// is not authenticated), or the 401 to answer.
    pub fn check(
        &self,
        access: Access,
        headers: &HeaderMap,
    ) -> Result<Option<String>, Unauthorized> {
        let realm = match access {
            Access::Open => return Ok(None),
            Access::ReadOnly if self.readonly => READONLY_REALM,
            Access::ReadWrite if self.readwrite => READWRITE_REALM,
            _ => return Ok(None),
        };
        let refuse = |message| Unauthorized { realm, message };
        let header = headers
            .get(AUTHORIZATION)
            .ok_or(refuse("Missing authorization header"))?;
        let header = header
            .to_str()
            .map_err(|_| refuse("Malformed 'Authorization' header"))?;
        let (scheme, token) = header
            .split_once(' ')
            .ok_or(refuse("Malformed 'Authorization' header"))?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(refuse("Expecting 'Authorization: Basic' header"));
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(token.trim())
            .ok()
            .and_then(|d| String::from_utf8(d).ok())
            .ok_or(refuse("Failed to decode 'Authorization' header"))?;
        let (principal, secret) = decoded
            .split_once(':')
            .ok_or(refuse("Malformed 'Authorization' header"))?;
        // Every credential is compared in full, in time independent of
        // where the secrets differ.
        let mut found = false;
        for c in &self.credentials {
            found |= same(c.principal.as_bytes(), principal.as_bytes())
                & same(c.secret.as_bytes(), secret.as_bytes());
        }
        if found {
            Ok(Some(principal.to_string()))
        } else {
            Err(refuse("Authentication failed"))
        }
    }
}

/// Byte equality without an early exit on the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn auth() -> Authenticator {
        let creds = parse_credentials(
            r#"{"credentials":[{"principal":"ops","secret":"s3cret"},{"principal":"ro","secret":"x"}]}"#,
        )
        .unwrap();
        Authenticator::new(true, true, creds).unwrap()
    }

    fn basic(user_pass: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let token = base64::engine::general_purpose::STANDARD.encode(user_pass);
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {token}")).unwrap(),
        );
        h
    }

    #[test]
    fn both_credentials_formats_are_read() {
        let text = "ops s3cret\n\nro x\n";
        let creds = parse_credentials(text).unwrap();
        assert_eq!(creds.len(), 2);
        assert_eq!(creds[1].principal, "ro");
        assert!(parse_credentials("just-one-word\n").is_err());
        assert!(parse_credentials("{\"credentials\": 3}").is_err());
    }

    #[test]
    fn authentication_without_credentials_is_refused_at_start() {
        let err = Authenticator::new(true, false, vec![]).unwrap_err();
        assert!(err.to_string().contains("--http_credentials"), "{err}");
        assert!(Authenticator::new(false, false, vec![]).is_ok());
    }

    #[test]
    fn a_good_basic_header_passes_and_names_the_principal() {
        let got = auth()
            .check(Access::ReadOnly, &basic("ops:s3cret"))
            .unwrap();
        assert_eq!(got.as_deref(), Some("ops"));
    }

    #[test]
    fn missing_or_wrong_credentials_get_the_realms_challenge() {
        let a = auth();
        let e = a.check(Access::ReadOnly, &HeaderMap::new()).unwrap_err();
        assert_eq!(e.challenge(), "Basic realm=\"mesos-agent-readonly\"");
        let e = a.check(Access::ReadWrite, &basic("ops:wrong")).unwrap_err();
        assert_eq!(e.challenge(), "Basic realm=\"mesos-agent-readwrite\"");
        assert_eq!(e.message, "Authentication failed");
        // A secret that is a prefix of the real one is no match.
        assert!(a.check(Access::ReadOnly, &basic("ops:s3cre")).is_err());
        let mut bearer = HeaderMap::new();
        bearer.insert(AUTHORIZATION, HeaderValue::from_static("Bearer abc"));
        assert!(a.check(Access::ReadOnly, &bearer).is_err());
        let mut junk = HeaderMap::new();
        junk.insert(AUTHORIZATION, HeaderValue::from_static("Basic %%%"));
        assert!(a.check(Access::ReadOnly, &junk).is_err());
    }

    #[test]
    fn open_endpoints_and_realms_that_are_off_need_nothing() {
        let a = auth();
        assert_eq!(a.check(Access::Open, &HeaderMap::new()), Ok(None));
        let off = Authenticator::default();
        assert_eq!(off.check(Access::ReadOnly, &HeaderMap::new()), Ok(None));
        assert_eq!(off.check(Access::ReadWrite, &HeaderMap::new()), Ok(None));
        let ro_only = Authenticator::new(true, false, auth().credentials).unwrap();
        assert_eq!(
            ro_only.check(Access::ReadWrite, &HeaderMap::new()),
            Ok(None)
        );
    }
}
