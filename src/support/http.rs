//! The HTTP client settings shared by everything that downloads (the
//! fetcher, the registry client): timeouts, bounded redirects, the system's
//! CA roots, and which failures are worth a retry.

use std::time::Duration;

/// Client settings. `Default` is what an agent uses.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub connect_timeout: Duration,
    /// Longest wait for the next bytes of a response: a stalled server
    /// fails after this, however large the download.
    pub read_timeout: Duration,
    pub max_redirects: u32,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            max_redirects: 10,
        }
    }
}

/// A client: https verified against the system's CA roots, redirects
/// followed up to the limit (credentials are not sent across hosts), no
/// proxy unless the environment names one.
pub fn client(config: &HttpConfig) -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(config.connect_timeout)
        .timeout_read(config.read_timeout)
        .redirects(config.max_redirects)
        .try_proxy_from_env(true)
        .user_agent(concat!("butte/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Whether a failed request may succeed if tried again: the connection
/// broke or timed out, or the server said it was busy or failing.
pub fn is_transient(err: &ureq::Error) -> bool {
    match err {
        ureq::Error::Status(code, _) => matches!(code, 408 | 429 | 500 | 502 | 503 | 504),
        ureq::Error::Transport(t) => matches!(
            t.kind(),
            ureq::ErrorKind::Io | ureq::ErrorKind::ConnectionFailed | ureq::ErrorKind::Dns
        ),
    }
}

/// One line for a failed request: the status and reason, or the transport
/// failure with its cause, never the whole response.
pub fn describe(err: &ureq::Error) -> String {
    match err {
        ureq::Error::Status(code, resp) => format!("HTTP {code} {}", resp.status_text()),
        ureq::Error::Transport(t) => {
            let mut s = t.kind().to_string();
            if let Some(m) = t.message() {
                s.push_str(": ");
                s.push_str(m);
            }
            if let Some(src) = std::error::Error::source(t) {
                s.push_str(": ");
                s.push_str(&src.to_string());
            }
            s
        }
    }
}

/// Delays between attempts: exponential from `first`, capped at `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    max: Duration,
    left: u32,
}

impl Backoff {
    /// `retries` more attempts after the first one.
    pub fn new(first: Duration, max: Duration, retries: u32) -> Self {
        Backoff {
            next: first,
            max,
            left: retries,
        }
    }
}

impl Iterator for Backoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        Some(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap_and_stops() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_millis(300), 4);
        let ms: Vec<_> = b.map(|d| d.as_millis()).collect();
        assert_eq!(ms, vec![100, 200, 300, 300]);
    }

    #[test]
    fn refused_connections_are_transient_and_name_the_cause() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = client(&HttpConfig::default())
            .get(&format!("http://127.0.0.1:{port}/x"))
            .call()
            .unwrap_err();
        assert!(is_transient(&err));
        assert!(
            describe(&err).contains("Connection Failed"),
            "{}",
            describe(&err)
        );
    }
}
