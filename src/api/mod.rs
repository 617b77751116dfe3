//! HTTP surfaces of the agent: the v1 executor API and its RecordIO codec,
//! and the operator endpoints (`/state`, `/metrics/snapshot`, `/files`, ...).

pub mod executor;
pub mod operator;
pub mod recordio;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};

/// A `text/plain` answer (a refusal's message), for every surface here.
pub(crate) fn text(
    status: StatusCode,
    message: impl Into<String>,
) -> Response<http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>> {
    let mut r = Response::new(Full::new(Bytes::from(message.into())).boxed());
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// A 405 with MESSAGE and `Allow: ALLOW`.
pub(crate) fn method_not_allowed(
    allow: &'static str,
    message: impl Into<String>,
) -> Response<http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>> {
    let mut r = text(StatusCode::METHOD_NOT_ALLOWED, message);
    r.headers_mut()
        .insert(hyper::header::ALLOW, HeaderValue::from_static(allow));
    r
}

/// A 400 with MESSAGE.
pub(crate) fn bad_request(
    message: impl Into<String>,
) -> Response<http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>> {
    text(StatusCode::BAD_REQUEST, message)
}
