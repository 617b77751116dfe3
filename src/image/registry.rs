//! A client for the Docker Registry HTTP API v2 / OCI distribution spec:
//! manifests and blobs, anonymous, Basic and Bearer-token authentication,
//! retries with backoff, and ranged requests to resume blobs.

use super::auth::{parse_challenge, Challenge, Credentials};
use super::digest::Digest;
use super::manifest::{ACCEPT, MAX_MANIFEST};
use super::ImageError;
use crate::support::http::{self, Backoff, HttpConfig};
use std::io::Read;
use std::sync::Mutex;
use std::time::Duration;

pub struct Client {
    agent: ureq::Agent,
    base: String,
    repository: String,
    creds: Option<Credentials>,
    /// The `Authorization` value that worked last (a token, or Basic).
    /// A std mutex: nothing awaits while it is held.
    auth: Mutex<Option<String>>,
    retries: u32,
}

/// A blob response body, and whether it starts at the requested offset.
pub struct BlobBody {
    pub reader: Box<dyn Read + Send>,
    pub resumed: bool,
}

impl Client {
    pub fn new(
        host: &str,
        repository: &str,
        insecure: bool,
        creds: Option<Credentials>,
        config: &HttpConfig,
    ) -> Client {
        let scheme = if insecure { "http" } else { "https" };
        Client {
            agent: http::client(config),
            base: format!("{scheme}://{host}"),
            repository: repository.to_string(),
            creds,
            auth: Mutex::new(None),
            retries: 4,
        }
    }

    /// Fetches a manifest or index by tag or digest: its bytes and the
    /// registry's content type.
    pub fn manifest(&self, target: &str) -> Result<(Vec<u8>, Option<String>), ImageError> {
        let path = format!("/v2/{}/manifests/{target}", self.repository);
        let resp = self.get(&path, Some(ACCEPT), 0)?;
        let ctype = resp.header("Content-Type").map(str::to_string);
        let mut body = Vec::new();
        resp.into_reader()
            .take(MAX_MANIFEST + 1)
            .read_to_end(&mut body)
            .map_err(|e| self.fail(&path, e.to_string()))?;
        if body.len() as u64 > MAX_MANIFEST {
            return Err(self.fail(&path, format!("manifest larger than {MAX_MANIFEST} bytes")));
        }
        Ok((body, ctype))
    }

    /// Opens a blob from byte `offset` (a `Range` request when non-zero).
    pub fn blob(&self, digest: &Digest, offset: u64) -> Result<BlobBody, ImageError> {
        let path = format!("/v2/{}/blobs/{digest}", self.repository);
        let resp = self.get(&path, None, offset)?;
        let resumed = offset > 0 && resp.status() == 206;
        Ok(BlobBody {
            reader: Box::new(resp.into_reader()),
            resumed,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn fail(&self, path: &str, cause: String) -> ImageError {
        ImageError::Registry {
            url: self.url(path),
            cause,
        }
    }

    fn get(
        &self,
        path: &str,
        accept: Option<&str>,
        offset: u64,
    ) -> Result<ureq::Response, ImageError> {
        let url = self.url(path);
        let mut backoff = Backoff::new(
            Duration::from_millis(250),
            Duration::from_secs(4),
            self.retries,
        );
        let mut challenged = false;
        loop {
            let mut req = self.agent.get(&url);
            if let Some(a) = accept {
                req = req.set("Accept", a);
            }
            if offset > 0 {
                req = req.set("Range", &format!("bytes={offset}-"));
            }
            let auth = self.auth.lock().unwrap_or_else(|e| e.into_inner()).clone();
            if let Some(a) = &auth {
                req = req.set("Authorization", a);
            }
            match req.call() {
                Ok(resp) => return Ok(resp),
                Err(ureq::Error::Status(401, resp)) if !challenged => {
                    challenged = true;
                    let header = resp.header("WWW-Authenticate").unwrap_or("").to_string();
                    self.authenticate(path, &header)?;
                }
                Err(ureq::Error::Status(401, resp)) => {
                    let detail = error_detail(resp);
                    let hint = if self.creds.is_some() {
                        "the configured credentials were refused"
                    } else {
                        "no credentials are configured for this registry"
                    };
                    return Err(self.fail(path, format!("unauthorized ({hint}){detail}")));
                }
                Err(e) if http::is_transient(&e) => match backoff.next() {
                    Some(delay) => {
                        tracing::warn!(%url, error = %http::describe(&e), ?delay, "registry request failed, retrying");
                        std::thread::sleep(delay);
                    }
                    None => return Err(self.fail(path, http::describe(&e))),
                },
                Err(ureq::Error::Status(code, resp)) => {
                    let text = resp.status_text().to_string();
                    let detail = error_detail(resp);
                    return Err(self.fail(path, format!("HTTP {code} {text}{detail}")));
                }
                Err(e) => return Err(self.fail(path, http::describe(&e))),
            }
        }
    }

    /// Answers a 401 challenge: Basic with the configured credentials, or a
    /// token from the challenge's realm (asked with those credentials, if
    /// any, else anonymously).
    fn authenticate(&self, path: &str, header: &str) -> Result<(), ImageError> {
        let value = match parse_challenge(header) {
            Some(Challenge::Basic) => match &self.creds {
                Some(c) => c.basic_header(),
                None => {
                    return Err(self.fail(
                        path,
                        "unauthorized: the registry wants a password and none is configured".into(),
                    ))
                }
            },
            Some(Challenge::Bearer {
                realm,
                service,
                scope,
            }) => {
                let scope = scope.unwrap_or_else(|| format!("repository:{}:pull", self.repository));
                format!("Bearer {}", self.token(&realm, service.as_deref(), &scope)?)
            }
            None => {
                return Err(self.fail(
                    path,
                    format!("unauthorized, with an unusable challenge {header:?}"),
                ))
            }
        };
        *self.auth.lock().unwrap_or_else(|e| e.into_inner()) = Some(value);
        Ok(())
    }

    fn token(&self, realm: &str, service: Option<&str>, scope: &str) -> Result<String, ImageError> {
        let fail = |cause: String| ImageError::Registry {
            url: realm.to_string(),
            cause: format!("token: {cause}"),
        };
        let mut req = self.agent.get(realm).query("scope", scope);
        if let Some(s) = service {
            req = req.query("service", s);
        }
        if let Some(c) = &self.creds {
            req = req.set("Authorization", &c.basic_header());
        }
        let resp = req.call().map_err(|e| fail(http::describe(&e)))?;
        #[derive(serde::Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
        }
        let mut body = Vec::new();
        resp.into_reader()
            .take(1 << 20)
            .read_to_end(&mut body)
            .map_err(|e| fail(e.to_string()))?;
        let t: Token =
            serde_json::from_slice(&body).map_err(|e| fail(format!("bad response: {e}")))?;
        t.token
            .or(t.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| fail("no token in the response".into()))
    }
}

/// The registry's own error message (`{"errors":[{"code","message"}]}`),
/// as a short suffix.
fn error_detail(resp: ureq::Response) -> String {
    let mut body = Vec::new();
    let _ = resp.into_reader().take(16 << 10).read_to_end(&mut body);
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<Error>,
    }
    #[derive(serde::Deserialize)]
    struct Error {
        code: Option<String>,
        message: Option<String>,
    }
    match serde_json::from_slice::<Errors>(&body) {
        Ok(e) if !e.errors.is_empty() => {
            let parts: Vec<String> = e
                .errors
                .iter()
                .map(|e| {
                    format!(
                        "{} {}",
                        e.code.as_deref().unwrap_or(""),
                        e.message.as_deref().unwrap_or("")
                    )
                    .trim()
                    .to_string()
                })
                .collect();
            format!(": {}", parts.join("; "))
        }
        _ => String::new(),
    }
}
