//! The endpoints against a fake agent: query parameters, status codes,
//! content types, JSONP and authentication, as a client sees them.

use super::*;
use base64::Engine as _;
use hyper::header::AUTHORIZATION;

/// Serves fixed JSON and one attached sandbox.
struct Fake {
    sandbox: std::path::PathBuf,
}

impl OperatorApi for Fake {
    fn view(&self, view: View) -> BoxFuture<'_, Result<Bytes, OperatorError>> {
        Box::pin(async move { Ok(Bytes::from(format!("{{\"view\":\"{view:?}\"}}"))) })
    }

    fn attached(&self) -> BoxFuture<'_, Result<Attached, OperatorError>> {
        let mut a = Attached::new();
        a.insert("/sandbox".into(), self.sandbox.clone());
        Box::pin(async move { Ok(a) })
    }

    fn call(&self, _: v1::AgentCall) -> BoxFuture<'_, Result<Answer, OperatorError>> {
        Box::pin(async {
            Err(OperatorError::Internal(
                "the endpoints make no v1 calls".into(),
            ))
        })
    }

    fn launch_session(
        &self,
        _: v1::SessionLaunch,
    ) -> BoxFuture<'_, Result<v1::OutputStream, OperatorError>> {
        Box::pin(async { Err(OperatorError::Internal("no sessions here".into())) })
    }

    fn attach_output(
        &self,
        _: crate::proto::mesos::v1::ContainerId,
    ) -> BoxFuture<'_, Result<v1::OutputStream, OperatorError>> {
        Box::pin(async { Err(OperatorError::Internal("no sessions here".into())) })
    }

    fn attach_input(
        &self,
        _: crate::proto::mesos::v1::ContainerId,
    ) -> BoxFuture<'_, Result<v1::InputSink, OperatorError>> {
        Box::pin(async { Err(OperatorError::Internal("no sessions here".into())) })
    }
}

struct Reply {
    status: StatusCode,
    headers: hyper::HeaderMap,
    body: String,
}

fn fixture() -> (tempfile::TempDir, Arc<dyn OperatorApi>) {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("stdout"), "hello from lab\n").unwrap();
    let api = Arc::new(Fake {
        sandbox: tmp.path().to_path_buf(),
    });
    (tmp, api)
}

async fn get_as(
    api: &Arc<dyn OperatorApi>,
    auth: &Authenticator,
    method: Method,
    uri: &str,
    basic: Option<&str>,
) -> Reply {
    let path = uri.split('?').next().unwrap();
    let Some(endpoint) = Endpoint::of(path) else {
        let r = not_found();
        return Reply {
            status: r.status(),
            headers: r.headers().clone(),
            body: String::from_utf8(r.into_body().collect().await.unwrap().to_bytes().to_vec())
                .unwrap(),
        };
    };
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(user_pass) = basic {
        let token = base64::engine::general_purpose::STANDARD.encode(user_pass);
        req = req.header(AUTHORIZATION, format!("Basic {token}"));
    }
    let r = handle(api.clone(), auth, endpoint, req.body(()).unwrap()).await;
    let status = r.status();
    let headers = r.headers().clone();
    let body = r.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

async fn get(api: &Arc<dyn OperatorApi>, uri: &str) -> Reply {
    get_as(api, &Authenticator::default(), Method::GET, uri, None).await
}

fn content_type(r: &Reply) -> &str {
    r.headers
        .get(CONTENT_TYPE)
        .map_or("", |v| v.to_str().unwrap())
}

#[tokio::test]
async fn views_are_json_and_health_is_empty() {
    let (_t, api) = fixture();
    for (uri, view) in [
        ("/state", "State"),
        ("/slave(1)/state", "State"),
        ("/state.json", "State"),
        ("/flags", "Flags"),
        ("/version", "Version"),
        ("/metrics/snapshot", "Metrics"),
        ("/monitor/statistics", "Statistics"),
        ("/containers", "Containers"),
    ] {
        let r = get(&api, uri).await;
        assert_eq!(r.status, StatusCode::OK, "{uri}");
        assert_eq!(content_type(&r), "application/json", "{uri}");
        assert_eq!(r.body, format!("{{\"view\":\"{view}\"}}"), "{uri}");
    }
    let r = get(&api, "/health").await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, ""));
    assert!(r.headers.get(CONTENT_TYPE).is_none());
}

#[tokio::test]
async fn jsonp_wraps_the_json_and_refuses_script() {
    let (_t, api) = fixture();
    let r = get(&api, "/state?jsonp=cb_1").await;
    assert_eq!(content_type(&r), "text/javascript");
    assert_eq!(r.body, "cb_1({\"view\":\"State\"});");
    let r = get(
        &api,
        "/files/read?path=/sandbox/stdout&offset=0&jsonp=jQuery.x$2",
    )
    .await;
    assert_eq!(
        r.body,
        "jQuery.x$2({\"data\":\"hello from lab\\n\",\"offset\":0});"
    );
    let r = get(&api, "/state?jsonp=alert(1)%3B//").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("jsonp"), "{}", r.body);
}

#[tokio::test]
async fn files_answer_with_mesos_codes_and_texts() {
    let (_t, api) = fixture();
    let r = get(&api, "/files/browse").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body, "Expecting 'path=value' in query.\n");
    assert_eq!(content_type(&r), "text/plain; charset=utf-8");
    let r = get(&api, "/files/browse?path=/var/lib").await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::NOT_FOUND, ""));
    let r = get(&api, "/files/browse?path=/sandbox").await;
    assert_eq!(r.status, StatusCode::OK);
    let list: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(list[0]["path"], "/sandbox/stdout");
    let r = get(&api, "/files/read?path=%2Fsandbox%2Fstdout&offset=-1").await;
    assert_eq!(r.body, "{\"data\":\"\",\"offset\":15}");
    for (uri, text) in [
        (
            "/files/read?path=/sandbox/stdout&offset=abc",
            "Failed to parse offset",
        ),
        (
            "/files/read?path=/sandbox/stdout&length=1e99",
            "Failed to parse length",
        ),
        (
            "/files/read?path=/sandbox/stdout&length=99999999999999999999999",
            "Failed to parse length",
        ),
        (
            "/files/read?path=/sandbox/stdout&offset=-7",
            "Negative offset",
        ),
        ("/files/read?path=/sandbox/../etc/passwd", "inaccessible"),
        ("/files/read?path=/sandbox", "Cannot read a directory"),
        ("/files/read?path=/sandbox/%zz", "Unable to decode"),
        ("/metrics/snapshot?timeout=soon", "Invalid timeout"),
    ] {
        let r = get(&api, uri).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{uri}: {}", r.body);
        assert!(r.body.contains(text), "{uri}: {}", r.body);
    }
    // A huge length is capped, as Mesos caps it.
    let r = get(
        &api,
        "/files/read?path=/sandbox/stdout&offset=0&length=9223372036854775807",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = get(&api, "/files/download?path=/sandbox/stdout").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(content_type(&r), "application/octet-stream");
    assert_eq!(
        r.headers[CONTENT_DISPOSITION],
        "attachment; filename=stdout"
    );
    assert_eq!(r.body, "hello from lab\n");
    let r = get(&api, "/files/debug").await;
    let debug: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert!(debug["/sandbox"].is_string());
}

#[tokio::test]
async fn unknown_paths_and_methods_are_refused() {
    let (_t, api) = fixture();
    let r = get(&api, "/nope").await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (StatusCode::NOT_FOUND, "404 Not Found.")
    );
    let r = get_as(
        &api,
        &Authenticator::default(),
        Method::POST,
        "/state",
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.headers[hyper::header::ALLOW], "GET");
}

#[tokio::test]
async fn authentication_guards_everything_but_health_and_version() {
    let (_t, api) = fixture();
    let auth = Authenticator::new(
        true,
        false,
        vec![Credential {
            principal: "ops".into(),
            secret: "pw".into(),
        }],
    )
    .unwrap();
    for uri in [
        "/state",
        "/flags",
        "/metrics/snapshot",
        "/files/debug",
        "/files/read?path=/sandbox/stdout",
    ] {
        let r = get_as(&api, &auth, Method::GET, uri, None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{uri}");
        assert_eq!(
            r.headers[WWW_AUTHENTICATE], "Basic realm=\"mesos-agent-readonly\"",
            "{uri}"
        );
        let r = get_as(&api, &auth, Method::GET, uri, Some("ops:bad")).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{uri}");
        let r = get_as(&api, &auth, Method::GET, uri, Some("ops:pw")).await;
        assert_eq!(r.status, StatusCode::OK, "{uri}");
    }
    for uri in ["/health", "/version"] {
        let r = get_as(&api, &auth, Method::GET, uri, None).await;
        assert_eq!(r.status, StatusCode::OK, "{uri}");
    }
}

#[test]
fn queries_decode_as_libprocess_decodes_them() {
    let q = parse_query("path=%2Fa+b&offset=0&&x").unwrap();
    assert_eq!(
        q,
        vec![
            ("path".into(), "/a b".into()),
            ("offset".into(), "0".into()),
            ("x".into(), "".into())
        ]
    );
    assert!(parse_query("path=%4").is_err());
    assert!(parse_query("path=%ff").is_err());
}
