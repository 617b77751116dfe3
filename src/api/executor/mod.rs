//! The agent side of the v1 executor HTTP API, `POST /api/v1/executor`, as
//! the Mesos agent serves it: the request's checks and their HTTP errors,
//! content negotiation, then one call to the [`ExecutorApi`] the agent
//! implements. SUBSCRIBE answers with a stream of RecordIO-framed events.
//!
//! What a request goes through, in the agent's order (the agent's own
//! answers, such as 503 while recovering or 400 for an unknown framework,
//! come from the [`ExecutorApi`] as a [`CallError`]):
//!
//! | check | answer |
//! | --- | --- |
//! | authentication on, and no valid `Authorization: Bearer` token ([`authenticate`]) | 401, `WWW-Authenticate: Bearer realm="mesos-agent-executor"...` |
//! | method is not POST | 405, `Allow: POST` |
//! | no `Content-Type` | 400 |
//! | `Content-Type` not exactly `application/json` or `application/x-protobuf` | 415 |
//! | body larger than [`MAX_CALL_BYTES`] | 413 |
//! | body does not decode into a `Call` (bad JSON, unknown field, missing required field) | 400 |
//! | `validateExecutorCall` fails (no or unknown type, no sub-message, bad UUID, ...) | 400 |
//! | SUBSCRIBE whose `Accept` allows neither JSON nor protobuf | 406 |
//! | type `UNKNOWN` | 501 |
//! | SUBSCRIBE accepted | 200, event stream |
//! | UPDATE, MESSAGE, HEARTBEAT accepted | 202, no body |
//!
//! With authentication on, SUBSCRIBE, UPDATE and MESSAGE reach the agent
//! with the token's [`Principal`]; the agent refuses them 403 when its
//! claims do not name the call's executor and container
//! ([`Principal::authorize`]), after its own 400s for an unknown framework
//! or executor, as Mesos does. HEARTBEAT needs a valid token, no more.
//!
//! # The event stream
//! The agent returns an [`EventStream`] from [`ExecutorApi::subscribe`] and
//! keeps its sender. The response streams each event (JSON when `Accept`
//! allows it, as Mesos prefers, else protobuf) plus a HEARTBEAT event every
//! `heartbeat`. Dropping the sender ends the response: that is how an older
//! subscription is closed when the executor subscribes again. When the
//! executor goes away, hyper drops the response body and its receiver, so
//! the agent sees `UnboundedSender::is_closed()` (at the latest when the next
//! heartbeat fails to be written) and a failed `send`.

mod auth;
#[doc(hidden)]
pub mod fuzz;
pub(crate) mod media;
mod stream;
mod validate;

#[cfg(test)]
mod tests;

use crate::api::{bad_request, text};
use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, LengthLimitError, Limited};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use prost::Message as _;

use crate::api::recordio;
use crate::proto::mesos::v1::executor::{call, event, Call, Event};
use crate::proto::mesos::v1::{ExecutorId, FrameworkId, TaskState, TaskStatus};
use crate::proto::ProtoError;
use crate::support::jwt::Key;

pub use auth::{authenticate, Principal, Unauthorized, REALM};
pub use media::ContentType;

use media::{ContentTypeProblem, APPLICATION_JSON, APPLICATION_PROTOBUF};
use validate::Valid;

/// The path the agent serves this API on.
pub const PATH: &str = "/api/v1/executor";

/// The largest call body read; a larger one is answered 413. (Mesos has no
/// limit; a subscription carrying every unacknowledged task stays far
/// below this.)
pub const MAX_CALL_BYTES: usize = 16 << 20;

pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// A response body: a complete one, or the event stream.
pub type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// The events of one subscription; the agent keeps the sender.
pub type EventStream = tokio::sync::mpsc::UnboundedReceiver<Event>;

/// Implemented by the agent. Each method is called only for a call that is
/// well formed (decoded and validated as the Mesos agent does). `principal`
/// is the caller's when authentication is on (`None` when it is off): the
/// agent checks it against the executor with [`Principal::authorize`].
pub trait ExecutorApi: Send + Sync + 'static {
    /// SUBSCRIBE: the agent sends SUBSCRIBED (and then every later event)
    /// into the channel whose receiver it returns.
    fn subscribe(
        &self,
        principal: Option<Principal>,
        framework_id: FrameworkId,
        executor_id: ExecutorId,
        subscribe: call::Subscribe,
    ) -> BoxFuture<'_, Result<EventStream, CallError>>;

    /// UPDATE: resolves once the update is durable (checkpointed), so a 202
    /// promises that it will be forwarded.
    fn update(
        &self,
        principal: Option<Principal>,
        framework_id: FrameworkId,
        executor_id: ExecutorId,
        status: TaskStatus,
    ) -> BoxFuture<'_, Result<(), CallError>>;

    /// MESSAGE: data for the framework's scheduler.
    fn message(
        &self,
        principal: Option<Principal>,
        framework_id: FrameworkId,
        executor_id: ExecutorId,
        data: Vec<u8>,
    ) -> BoxFuture<'_, Result<(), CallError>>;

    /// HEARTBEAT from the executor. Mesos answers 202 without looking at
    /// the ids (an executor may send placeholders).
    fn heartbeat(
        &self,
        framework_id: FrameworkId,
        executor_id: ExecutorId,
    ) -> BoxFuture<'_, Result<(), CallError>>;
}

/// The agent's refusal of a call; the message becomes the `text/plain`
/// body of the response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// 400, e.g. an unknown framework or executor.
    #[error("bad executor call: {0}")]
    BadRequest(String),
    /// 403, e.g. a call other than SUBSCRIBE from an executor that has not
    /// subscribed.
    #[error("executor call forbidden: {0}")]
    Forbidden(String),
    /// 503, e.g. while the agent recovers.
    #[error("executor call refused for now: {0}")]
    ServiceUnavailable(String),
    /// 500.
    #[error("executor call failed: {0}")]
    Internal(String),
}

impl CallError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            CallError::BadRequest(_) => StatusCode::BAD_REQUEST,
            CallError::Forbidden(_) => StatusCode::FORBIDDEN,
            CallError::ServiceUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            CallError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn into_response(self) -> Response<Body> {
        let status = self.status();
        let (CallError::BadRequest(m)
        | CallError::Forbidden(m)
        | CallError::ServiceUnavailable(m)
        | CallError::Internal(m)) = self;
        text(status, m)
    }
}

/// Serves one request to [`PATH`] (the caller routes by path). Generic over
/// the body so tests can pass complete bodies; the agent passes
/// `hyper::body::Incoming`. `heartbeat` is the interval of HEARTBEAT
/// events on a subscription (zero sends none). With `authentication`, every
/// call must carry a token signed with that key.
pub async fn handle<B>(
    api: &dyn ExecutorApi,
    req: Request<B>,
    heartbeat: Duration,
    authentication: Option<&Key>,
) -> Response<Body>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match serve(api, req, heartbeat, authentication).await {
        Ok(response) => response,
        Err(response) => response,
    }
}

async fn serve<B>(
    api: &dyn ExecutorApi,
    req: Request<B>,
    heartbeat: Duration,
    authentication: Option<&Key>,
) -> Result<Response<Body>, Response<Body>>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (parts, body) = req.into_parts();
    // libprocess authenticates before the endpoint sees the request.
    let principal = match authentication {
        None => None,
        Some(key) => {
            Some(authenticate(&parts.headers, key).map_err(|why| auth::unauthorized(&why))?)
        }
    };
    if parts.method != Method::POST {
        return Err(crate::api::method_not_allowed(
            "POST",
            format!(
                "405 Method Not Allowed. Expecting one of {{ 'POST' }}, but received '{}'.",
                parts.method
            ),
        ));
    }
    let content_type = media::request_content_type(&parts.headers).map_err(|p| match p {
        ContentTypeProblem::Missing => bad_request("Expecting 'Content-Type' to be present"),
        ContentTypeProblem::Unsupported => text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Expecting 'Content-Type' of {APPLICATION_JSON} or {APPLICATION_PROTOBUF}"),
        ),
    })?;
    let body = read_body(body).await?;
    let call = decode_call(content_type, &body).map_err(bad_request)?;
    let call = validate::validate(call)
        .map_err(|e| bad_request(format!("Failed to validate Executor::Call: {e}")))?;

    let answer = match call {
        Valid::Subscribe(framework_id, executor_id, subscribe) => {
            let Some(accept) = media::negotiate_events(&parts.headers) else {
                return Err(text(
                    StatusCode::NOT_ACCEPTABLE,
                    format!(
                        "Expecting 'Accept' to allow '{APPLICATION_PROTOBUF}' or '{APPLICATION_JSON}'"
                    ),
                ));
            };
            let events = api
                .subscribe(principal, framework_id, executor_id, subscribe)
                .await;
            return match events {
                Ok(events) => Ok(event_stream(events, accept, heartbeat)),
                Err(e) => Err(e.into_response()),
            };
        }
        Valid::Update(framework_id, executor_id, status) => {
            api.update(principal, framework_id, executor_id, *status)
                .await
        }
        Valid::Message(framework_id, executor_id, data) => {
            api.message(principal, framework_id, executor_id, data)
                .await
        }
        Valid::Heartbeat(framework_id, executor_id) => {
            api.heartbeat(framework_id, executor_id).await
        }
        Valid::Unknown => return Err(text(StatusCode::NOT_IMPLEMENTED, "501 Not Implemented.")),
    };
    match answer {
        Ok(()) => Ok(empty(StatusCode::ACCEPTED)),
        Err(e) => Err(e.into_response()),
    }
}

/// Reads the whole body, at most [`MAX_CALL_BYTES`].
async fn read_body<B>(body: B) -> Result<Bytes, Response<Body>>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match Limited::new(body, MAX_CALL_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("Call body exceeds {MAX_CALL_BYTES} bytes"),
        )),
        Err(e) => Err(bad_request(format!("Failed to read request body: {e}"))),
    }
}

/// Decodes the body as the agent does, with its error texts.
fn decode_call(content_type: ContentType, body: &[u8]) -> Result<Call, String> {
    let (prefix, decoded) = match content_type {
        ContentType::Protobuf => (
            "Failed to parse body into Call protobuf",
            crate::proto::decode::<Call>(body),
        ),
        ContentType::Json => {
            serde_json::from_slice::<serde::de::IgnoredAny>(body)
                .map_err(|e| format!("Failed to parse body into JSON: {e}"))?;
            (
                "Failed to convert JSON into Call protobuf",
                crate::proto::from_json::<Call>(body),
            )
        }
    };
    let missing = |field: &str| format!("{prefix}: Missing required fields: {field}");
    let call = decoded.map_err(|e| match e {
        ProtoError::MissingRequired { field, .. } => missing(&field),
        ProtoError::Decode { source, .. } => format!("{prefix}: {source}"),
        ProtoError::Json { source, .. } => format!("{prefix}: {source}"),
        e @ ProtoError::UnknownMessage(_) => format!("{prefix}: {e}"),
    })?;
    // A proto2 parser drops an enum number its enum lacks, so a required
    // state with such a number is missing.
    if let Some(field) = unknown_state(&call) {
        return Err(missing(&field));
    }
    Ok(call)
}

/// The path of a task status in `call` whose required `state` is not a
/// `TaskState`.
fn unknown_state(call: &Call) -> Option<String> {
    let unknown = |s: &TaskStatus| TaskState::try_from(s.state).is_err();
    if call.update.as_ref().is_some_and(|u| unknown(&u.status)) {
        return Some("update.status.state".into());
    }
    let updates = call
        .subscribe
        .iter()
        .flat_map(|s| s.unacknowledged_updates.iter());
    updates
        .enumerate()
        .find(|(_, u)| unknown(&u.status))
        .map(|(i, _)| format!("subscribe.unacknowledged_updates[{i}].status.state"))
}

/// The 200 response of a SUBSCRIBE: every event, RecordIO-framed.
fn event_stream(events: EventStream, accept: ContentType, heartbeat: Duration) -> Response<Body> {
    let beat = Event {
        r#type: Some(event::Type::Heartbeat as i32),
        ..Default::default()
    };
    let beat = encode_event(accept, &beat);
    let encode: stream::Encode<Event> = Box::new(move |e: Event| encode_event(accept, &e));
    let body = stream::EventBody::new(events, encode, heartbeat, beat);
    let mut r = Response::new(body.boxed());
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(accept.as_str()));
    r
}

fn encode_event(accept: ContentType, event: &Event) -> Bytes {
    let record = match accept {
        ContentType::Json => crate::proto::to_json(event).to_string().into_bytes(),
        ContentType::Protobuf => event.encode_to_vec(),
    };
    Bytes::from(recordio::encode(&record))
}

fn empty(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(Empty::new().boxed());
    *r.status_mut() = status;
    r
}
