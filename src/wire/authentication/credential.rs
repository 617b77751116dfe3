//! `--credential`: the agent's principal and secret.

use super::AuthenticationError;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// A principal and its secret. The secret is never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    pub principal: String,
    pub secret: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("principal", &self.principal)
            .field("secret", &"<redacted>")
            .finish()
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Json {
    principal: String,
    secret: Option<String>,
}

impl Credential {
    /// Reads PATH as Mesos does: JSON `{"principal": .., "secret": ..}`,
    /// else one line of two words, `principal secret`. A file others may
    /// read is used, with a warning. CRAM-MD5 needs a secret: none is an
    /// error here rather than at every attempt.
    pub fn load(path: &Path) -> Result<Credential, AuthenticationError> {
        let text = std::fs::read_to_string(path).map_err(|source| AuthenticationError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().mode() & 0o007 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    "the credential file is accessible by others; it should not be"
                );
            }
        }
        Credential::parse(&text).map_err(|reason| AuthenticationError::Format {
            path: path.to_path_buf(),
            reason,
        })
    }

    /// The file's content, parsed (see [`Credential::load`]).
    pub fn parse(text: &str) -> Result<Credential, String> {
        if text.trim().is_empty() {
            return Err("empty".to_string());
        }
        let (principal, secret) = match serde_json::from_str::<Json>(text) {
            Ok(json) => (json.principal, json.secret.unwrap_or_default()),
            Err(_) if text.trim_start().starts_with('{') => {
                return Err("not a JSON credential {\"principal\": .., \"secret\": ..}".to_string())
            }
            Err(_) => {
                let lines: Vec<&str> = text.split('\n').filter(|l| !l.is_empty()).collect();
                if lines.len() != 1 {
                    return Err("expecting only one credential (one line)".to_string());
                }
                let words: Vec<&str> = lines[0].split(' ').filter(|w| !w.is_empty()).collect();
                let [principal, secret] = words[..] else {
                    return Err("expecting one line `principal secret`".to_string());
                };
                (principal.to_string(), secret.to_string())
            }
        };
        if principal.is_empty() {
            return Err("the principal is empty".to_string());
        }
        if secret.is_empty() {
            return Err("CRAM-MD5 needs a secret".to_string());
        }
        Ok(Credential { principal, secret })
    }
}
