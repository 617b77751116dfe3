//! The CLI's side of the agent's HTTP surface: `/state`, `/files/read`
//! and `POST /api/v1` (JSON), with HTTP Basic credentials when given.

use butte::support::http::{self, HttpConfig};
use serde_json::{json, Value};
use std::io::Read;
use std::time::Duration;

/// Where the agent is and who asks (shared by every agent subcommand).
#[derive(clap::Args, Clone, Debug)]
pub struct AgentArgs {
    /// The agent: `http://HOST:PORT` (or `HOST:PORT`).
    #[arg(
        long,
        env = "BUTTE_AGENT",
        default_value = "http://127.0.0.1:5051",
        value_name = "URL"
    )]
    pub agent: String,
    /// HTTP Basic principal, for an agent with `--authenticate_http_*`.
    #[arg(long, env = "BUTTE_PRINCIPAL", value_name = "NAME")]
    pub principal: Option<String>,
    /// HTTP Basic secret of `--principal`.
    #[arg(
        long,
        env = "BUTTE_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub secret: Option<String>,
}

/// A failed request to the agent.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{url}: HTTP {status}{}", message(.body))]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("{url}: {reason}")]
    Transport { url: String, reason: String },
    #[error("{url}: the answer is not the JSON expected: {reason}")]
    Decode { url: String, reason: String },
    #[error("--secret needs --principal (or BUTTE_PRINCIPAL)")]
    SecretWithoutPrincipal,
}

impl ClientError {
    /// The HTTP status the agent answered, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// The agent's own words after a status, on one line, when it gave some.
fn message(body: &str) -> String {
    let line = body.trim();
    match line {
        "" => String::new(),
        l => format!(": {}", l.lines().next().unwrap_or(l)),
    }
}

/// One page of a file, as `/files/read` answers.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct Page {
    pub data: String,
    pub offset: u64,
}

/// A connection to one agent.
pub struct Client {
    http: ureq::Agent,
    /// For answers that take as long as a process runs (streams, waits):
    /// no read timeout.
    streaming: ureq::Agent,
    base: String,
    authorization: Option<String>,
}

impl Client {
    pub fn new(args: &AgentArgs) -> Result<Client, ClientError> {
        let mut base = args.agent.trim_end_matches('/').to_string();
        if !base.contains("://") {
            base = format!("http://{base}");
        }
        let authorization = match (&args.principal, &args.secret) {
            (Some(p), s) => {
                use base64::Engine as _;
                let pair = format!("{p}:{}", s.as_deref().unwrap_or(""));
                Some(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                ))
            }
            (None, Some(_)) => return Err(ClientError::SecretWithoutPrincipal),
            (None, None) => None,
        };
        let config = HttpConfig {
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(30),
            max_redirects: 0,
        };
        let streaming = ureq::AgentBuilder::new()
            .timeout_connect(config.connect_timeout)
            .redirects(0)
            .try_proxy_from_env(true)
            .user_agent(concat!("butte/", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(Client {
            http: http::client(&config),
            streaming,
            base,
            authorization,
        })
    }

    fn send(
        &self,
        req: ureq::Request,
        url: &str,
        body: Option<&Value>,
    ) -> Result<String, ClientError> {
        let req = match &self.authorization {
            Some(a) => req.set("Authorization", a),
            None => req,
        };
        let answer = match body {
            Some(b) => req
                .set("Content-Type", "application/json")
                .set("Accept", "application/json")
                .send_string(&b.to_string()),
            None => req.call(),
        };
        match answer {
            Ok(resp) => resp.into_string().map_err(|e| ClientError::Transport {
                url: url.to_string(),
                reason: format!("reading the answer: {e}"),
            }),
            Err(ureq::Error::Status(status, resp)) => Err(ClientError::Status {
                url: url.to_string(),
                status,
                body: resp.into_string().unwrap_or_default(),
            }),
            Err(e) => Err(ClientError::Transport {
                url: url.to_string(),
                reason: http::describe(&e),
            }),
        }
    }

    fn decode<T: serde::de::DeserializeOwned>(url: &str, text: &str) -> Result<T, ClientError> {
        serde_json::from_str(text).map_err(|e| ClientError::Decode {
            url: url.to_string(),
            reason: e.to_string(),
        })
    }

    /// `GET /state`.
    pub fn state(&self) -> Result<Value, ClientError> {
        let url = format!("{}/state", self.base);
        let text = self.send(self.http.get(&url), &url, None)?;
        Self::decode(&url, &text)
    }

    /// `GET /files/read`: up to `length` bytes of `path` from `offset`
    /// (`-1`: none, and the file's size in `offset`).
    pub fn read(&self, path: &str, offset: i64, length: u64) -> Result<Page, ClientError> {
        let url = format!("{}/files/read", self.base);
        let req = self
            .http
            .get(&url)
            .query("path", path)
            .query("offset", &offset.to_string())
            .query("length", &length.to_string());
        let text = self.send(req, &format!("{url}?path={path}"), None)?;
        Self::decode(&url, &text)
    }

    /// `POST /api/v1` with a JSON `Call`: the `Response`, or `Null` for a
    /// call answered with an empty 200 (KILL_CONTAINER).
    pub fn call(&self, call: &Value) -> Result<Value, ClientError> {
        let url = format!("{}/api/v1", self.base);
        let what = format!("{url} {}", call["type"].as_str().unwrap_or("call"));
        let text = self.send(self.http.post(&url), &what, Some(call))?;
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        Self::decode(&what, &text)
    }

    /// Like [`Client::call`], without a read timeout: for a call that is
    /// answered when a container ends (WAIT_NESTED_CONTAINER).
    pub fn call_waiting(&self, call: &Value) -> Result<Value, ClientError> {
        let url = format!("{}/api/v1", self.base);
        let what = format!("{url} {}", call["type"].as_str().unwrap_or("call"));
        let text = self.send(self.streaming.post(&url), &what, Some(call))?;
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        Self::decode(&what, &text)
    }

    /// `POST /api/v1` with a JSON call answered by a stream of RecordIO
    /// records in JSON (LAUNCH_NESTED_CONTAINER_SESSION,
    /// ATTACH_CONTAINER_OUTPUT): the answer's body as it arrives.
    pub fn call_streaming(&self, call: &Value) -> Result<Box<dyn Read + Send>, ClientError> {
        let url = format!("{}/api/v1", self.base);
        let what = format!("{url} {}", call["type"].as_str().unwrap_or("call"));
        let req = self
            .authorized(self.streaming.post(&url))
            .set("Content-Type", "application/json")
            .set("Accept", "application/recordio")
            .set("Message-Accept", "application/json");
        match req.send_string(&call.to_string()) {
            Ok(resp) => Ok(Box::new(resp.into_reader())),
            Err(e) => Err(self.failed(&what, e)),
        }
    }

    /// `POST /api/v1` with a streaming request (ATTACH_CONTAINER_INPUT):
    /// `body` is RecordIO of JSON calls, sent as it is read; returns once
    /// the agent answered, after the body's end.
    pub fn send_streaming(&self, body: impl Read) -> Result<(), ClientError> {
        let url = format!("{}/api/v1", self.base);
        let what = format!("{url} ATTACH_CONTAINER_INPUT");
        let req = self
            .authorized(self.streaming.post(&url))
            .set("Content-Type", "application/recordio")
            .set("Message-Content-Type", "application/json")
            .set("Accept", "application/json");
        match req.send(body) {
            Ok(_) => Ok(()),
            Err(e) => Err(self.failed(&what, e)),
        }
    }

    fn authorized(&self, req: ureq::Request) -> ureq::Request {
        match &self.authorization {
            Some(a) => req.set("Authorization", a),
            None => req,
        }
    }

    fn failed(&self, what: &str, e: ureq::Error) -> ClientError {
        match e {
            ureq::Error::Status(status, resp) => ClientError::Status {
                url: what.to_string(),
                status,
                body: resp.into_string().unwrap_or_default(),
            },
            e => ClientError::Transport {
                url: what.to_string(),
                reason: http::describe(&e),
            },
        }
    }

    /// GET_CONTAINERS with the standalone containers: the list.
    pub fn containers(&self) -> Result<Vec<Value>, ClientError> {
        let r = self.call(&json!({
            "type": "GET_CONTAINERS",
            "get_containers": {"show_nested": false, "show_standalone": true}
        }))?;
        Ok(r["get_containers"]["containers"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// KILL_CONTAINER of a top-level container with `signal`.
    pub fn kill_container(&self, container_id: &str, signal: i32) -> Result<(), ClientError> {
        self.call(&json!({
            "type": "KILL_CONTAINER",
            "kill_container": {"container_id": {"value": container_id}, "signal": signal}
        }))
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(agent: &str, principal: Option<&str>, secret: Option<&str>) -> AgentArgs {
        AgentArgs {
            agent: agent.into(),
            principal: principal.map(str::to_string),
            secret: secret.map(str::to_string),
        }
    }

    #[test]
    fn an_address_without_scheme_is_http_and_credentials_are_basic() {
        let c = Client::new(&args("10.0.0.1:5051/", Some("ops"), Some("s3cret"))).unwrap();
        assert_eq!(c.base, "http://10.0.0.1:5051");
        // base64("ops:s3cret")
        assert_eq!(c.authorization.as_deref(), Some("Basic b3BzOnMzY3JldA=="));
        assert!(Client::new(&args("http://a:1", None, None))
            .unwrap()
            .authorization
            .is_none());
        assert!(matches!(
            Client::new(&args("http://a:1", None, Some("x"))),
            Err(ClientError::SecretWithoutPrincipal)
        ));
    }

    #[test]
    fn a_refusal_names_the_url_status_and_the_agents_words() {
        let e = ClientError::Status {
            url: "http://a:1/state".into(),
            status: 401,
            body: String::new(),
        };
        assert_eq!(e.to_string(), "http://a:1/state: HTTP 401");
        let e = ClientError::Status {
            url: "http://a:1/api/v1 KILL_CONTAINER".into(),
            status: 404,
            body: "Container 'x' cannot be found (or is already killed)\n".into(),
        };
        assert_eq!(
            e.to_string(),
            "http://a:1/api/v1 KILL_CONTAINER: HTTP 404: Container 'x' cannot be found (or is already killed)"
        );
    }
}
