//! `POST /api/v1`: the agent's v1 operator API (`mesos.v1.agent.Call` in,
//! `mesos.v1.agent.Response` out), as the Mesos 1.11 agent serves it.
//!
//! A request goes through these checks, in the agent's order:
//!
//! | check | answer |
//! | --- | --- |
//! | `--authenticate_http_readwrite` on and no valid Basic credentials (Mesos puts all of `/api/v1` in the read-write realm) | 401, `WWW-Authenticate: Basic realm="mesos-agent-readwrite"` |
//! | method is not POST | 405, `Allow: POST` |
//! | no `Content-Type` | 400 |
//! | `Content-Type: application/recordio`: a streaming request, only ATTACH_CONTAINER_INPUT (see [`stream`]) | its own checks |
//! | `Content-Type` not exactly `application/json` or `application/x-protobuf`, or a `Message-Content-Type` | 415 |
//! | `Accept` allows none of JSON, protobuf, RecordIO; a `Message-Accept` without RecordIO; RecordIO with a `Message-Accept` of neither | 406 |
//! | body larger than [`MAX_CALL_BYTES`] | 413 |
//! | body not complete within [`BODY_TIMEOUT`] (a slow or stalled client) | 408 |
//! | body does not decode into a `Call` (bad JSON or protobuf, unknown field or enum name, missing required field) | 400 |
//! | the call fails Mesos' validation (no `type`, its argument missing, a bad container id) | 400 |
//! | type `UNKNOWN` | 501 |
//! | a call butte does not serve (resource providers; a session in an image) | 501, naming it |
//! | `Accept` of RecordIO for a call other than LAUNCH_NESTED_CONTAINER_SESSION and ATTACH_CONTAINER_OUTPUT; ATTACH_CONTAINER_INPUT not streamed | 406 / 415 |
//! | LAUNCH_NESTED_CONTAINER_SESSION, ATTACH_CONTAINER_OUTPUT | 200, a stream of `ProcessIO` records (see [`stream`]) |
//! | standalone and nested container calls: the agent's answers (200, 202 for a known id, 404 for an unknown one, 400 for a failed launch) | see `docs/operator-endpoints.md` |
//! | `LIST_FILES`/`READ_FILE` on a path not attached, or leaving it | 404 / 400 (as `/files`) |
//! | answered | 200, the `Response` in JSON (when `Accept` allows it, as Mesos prefers) or protobuf; `SET_LOGGING_LEVEL` 200 with no body |
//!
//! GET_HEALTH, LIST_FILES and READ_FILE are answered here (the last two
//! through the `/files` confinement, [`super::files`]); every other call
//! becomes an [`AgentCall`] for [`OperatorApi::call`], which returns the
//! `Response`. Encoding runs on a blocking thread: a large GET_STATE never
//! holds a runtime worker.

#[doc(hidden)]
pub mod fuzz;
mod lists;
pub mod stream;

pub use lists::{List, Lists, ListsError};
pub use stream::{InputRecord, InputSink, OutputChunk, OutputStream, SessionLaunch};

use crate::api::{bad_request, text};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full, LengthLimitError, Limited};
use hyper::header::{HeaderValue, CONTENT_TYPE, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use prost::Message as _;

use super::{files, Access, Answer, Authenticator, Body, OperatorApi, OperatorError};
use crate::api::executor::media::{
    request_content_type, ContentTypeProblem, APPLICATION_JSON, APPLICATION_PROTOBUF,
};
use crate::api::executor::ContentType;
use crate::proto::mesos::v1::agent::{call, response, Call, Response as AgentResponse};
use crate::proto::mesos::v1::{ContainerId, FileInfo, TimeInfo};
use crate::proto::ProtoError;

/// The path of this API (also under `/slave(1)`).
pub const PATH: &str = "/api/v1";

/// The largest call body read; a larger one is answered 413. A call is a
/// few ids and at most a `CommandInfo`; Mesos has no limit.
pub const MAX_CALL_BYTES: usize = 4 << 20;

/// How long a client may take to send its body before it is answered 408
/// (libprocess waits without end; a stalled client then holds only its own
/// connection).
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);

use stream::MESSAGE_CONTENT_TYPE;

/// A validated call the agent answers.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentCall {
    Flags,
    Version,
    /// `timeout`: how long the metrics may take (butte's are immediate).
    Metrics {
        timeout: Option<Duration>,
    },
    LoggingLevel,
    /// Verbosity `level` for `duration`, then back to the level at start.
    SetLoggingLevel {
        level: u32,
        duration: Duration,
    },
    State,
    Containers {
        show_nested: bool,
        show_standalone: bool,
    },
    Frameworks,
    Executors,
    Operations,
    Tasks,
    Agent,
    ResourceProviders,
    /// LAUNCH_CONTAINER of a standalone container (no parent), validated.
    LaunchContainer(Box<call::LaunchContainer>),
    /// WAIT_CONTAINER of a container without a parent: its id.
    WaitContainer(String),
    /// KILL_CONTAINER of a container without a parent (`signal`: SIGKILL
    /// when unset, as Mesos).
    KillContainer {
        container_id: String,
        signal: i32,
    },
    /// REMOVE_CONTAINER of a container without a parent: its id.
    RemoveContainer(String),
    /// PRUNE_IMAGES: the names of the DOCKER images to keep (others are
    /// not in butte's store).
    PruneImages {
        excluded: Vec<String>,
    },
    /// LAUNCH_NESTED_CONTAINER, or LAUNCH_CONTAINER of a container with a
    /// parent, validated (LAUNCH_NESTED_CONTAINER's fields given as
    /// LAUNCH_CONTAINER's, without resources).
    LaunchNested(Box<call::LaunchContainer>),
    /// WAIT_NESTED_CONTAINER (`nested`: answered in
    /// `wait_nested_container`) or WAIT_CONTAINER of a container with a
    /// parent.
    WaitNested {
        container_id: ContainerId,
        nested: bool,
    },
    /// KILL_NESTED_CONTAINER or KILL_CONTAINER of a container with a
    /// parent (`signal`: SIGKILL when unset, as Mesos).
    KillNested {
        container_id: ContainerId,
        signal: i32,
    },
    /// REMOVE_NESTED_CONTAINER or REMOVE_CONTAINER of a container with a
    /// parent.
    RemoveNested(ContainerId),
}

/// What a call asks for once validated.
#[derive(Debug, Clone, PartialEq)]
enum Valid {
    Health,
    ListFiles(String),
    ReadFile {
        path: String,
        offset: u64,
        length: Option<u64>,
    },
    Agent(AgentCall),
    /// LAUNCH_NESTED_CONTAINER_SESSION (see [`stream`]).
    Session(Box<SessionLaunch>),
    /// ATTACH_CONTAINER_OUTPUT of this container.
    AttachOutput(ContainerId),
    /// ATTACH_CONTAINER_INPUT: its first record or a later one.
    AttachInput(stream::AttachInput),
    /// A call butte knows but does not serve (501).
    Unsupported(call::Type),
    /// A form of a call butte does not serve (501, this text).
    NotServed(&'static str),
    /// Type `UNKNOWN` (501).
    Unknown,
}

/// Serves one request to [`PATH`].
pub async fn handle<B>(
    api: Arc<dyn OperatorApi>,
    auth: &Authenticator,
    req: Request<B>,
) -> Response<Body>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match serve(api, auth, req).await {
        Ok(r) | Err(r) => r,
    }
}

async fn serve<B>(
    api: Arc<dyn OperatorApi>,
    auth: &Authenticator,
    req: Request<B>,
) -> Result<Response<Body>, Response<Body>>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (parts, body) = req.into_parts();
    // An executor's token: only calls on containers under its own.
    let executor = auth.executor(&parts.headers);
    let checked = match executor {
        Some(_) => Ok(None),
        None => auth.check(Access::ReadWrite, &parts.headers),
    };
    if let Err(refused) = checked {
        let mut r = text(StatusCode::UNAUTHORIZED, refused.message.to_string());
        if let Ok(v) = HeaderValue::from_str(&refused.challenge()) {
            r.headers_mut().insert(WWW_AUTHENTICATE, v);
        }
        return Err(r);
    }
    if parts.method != Method::POST {
        return Err(crate::api::method_not_allowed(
            "POST",
            format!(
                "Expecting one of {{ 'POST' }}, but received '{}'",
                parts.method
            ),
        ));
    }
    let refused = |(status, message)| text(status, message);
    if stream::is_streaming_request(&parts.headers) {
        // An executor may not attach to containers (see `executor_may`).
        if let Some(cid) = &executor {
            return Err(text(
                StatusCode::FORBIDDEN,
                format!("Forbidden: the executor of container {cid} may not attach to containers"),
            ));
        }
        return stream::serve_input(api, &parts.headers, Box::pin(body)).await;
    }
    let content_type = negotiate(&parts.headers).map_err(refused)?;
    let accepts = stream::accepts(&parts.headers).map_err(refused)?;
    let accept = accepts.message;
    let body = read_body(body).await?;
    let call = decode_call(content_type, &body).map_err(bad_request)?;
    let valid =
        validate(&call).map_err(|e| bad_request(format!("Failed to validate agent::Call: {e}")))?;
    let streaming_only = |name: &str| {
        text(
            StatusCode::NOT_ACCEPTABLE,
            format!(
                "Expecting 'Accept' to allow {APPLICATION_JSON} or {APPLICATION_PROTOBUF} \
                 for {name} calls"
            ),
        )
    };
    if let Some(cid) = &executor {
        if !executor_may(&valid, cid) {
            return Err(text(
                StatusCode::FORBIDDEN,
                format!(
                    "Forbidden: the executor of container {cid} may only call on containers nested in it"
                ),
            ));
        }
    }
    let answer = match valid {
        Valid::Session(launch) => {
            let stream = api.launch_session(*launch).await.map_err(error)?;
            return Ok(stream::output_response(stream, accepts));
        }
        Valid::AttachOutput(id) => {
            let stream = api.attach_output(id).await.map_err(error)?;
            return Ok(stream::output_response(stream, accepts));
        }
        Valid::AttachInput(_) => {
            return Err(text(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "Expecting 'Content-Type' to be {} for ATTACH_CONTAINER_INPUT call",
                    stream::APPLICATION_RECORDIO
                ),
            ))
        }
        _ if accepts.streaming => {
            let name = call
                .r#type
                .and_then(|t| call::Type::try_from(t).ok())
                .map_or("UNKNOWN", |t| t.as_str_name());
            return Err(streaming_only(name));
        }
        Valid::NotServed(why) => {
            return Err(text(
                StatusCode::NOT_IMPLEMENTED,
                format!("501 Not Implemented: {why}"),
            ))
        }
        Valid::Unknown => {
            return Err(text(
                StatusCode::NOT_IMPLEMENTED,
                "501 Not Implemented: call type UNKNOWN",
            ))
        }
        Valid::Unsupported(t) => {
            return Err(text(
                StatusCode::NOT_IMPLEMENTED,
                format!(
                    "501 Not Implemented: butte does not serve {} calls",
                    t.as_str_name()
                ),
            ))
        }
        Valid::Health => AgentResponse {
            r#type: Some(response::Type::GetHealth as i32),
            get_health: Some(response::GetHealth { healthy: true }),
            ..Default::default()
        },
        Valid::ListFiles(path) => list_files(&api, path).await.map_err(error)?,
        Valid::ReadFile {
            path,
            offset,
            length,
        } => read_file(&api, path, offset, length).await.map_err(error)?,
        Valid::Agent(c) => match api.call(c).await.map_err(error)? {
            Answer::Response(r) => *r,
            Answer::Lists(lists) => return encode_lists(accept, *lists).await,
            Answer::Ok => return Ok(Response::new(Empty::new().boxed())),
            Answer::Accepted => {
                let mut r = Response::new(Empty::new().boxed());
                *r.status_mut() = StatusCode::ACCEPTED;
                return Ok(r);
            }
        },
    };
    let encoded = tokio::task::spawn_blocking(move || encode(accept, &answer))
        .await
        .map_err(|e| {
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("encoding failed: {e}"),
            )
        })?;
    let mut r = Response::new(Full::new(encoded).boxed());
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(accept.as_str()));
    Ok(r)
}

/// GET_STATE and the other answers given as [`Lists`], written in the
/// negotiated encoding on a blocking thread.
async fn encode_lists(accept: ContentType, lists: Lists) -> Result<Response<Body>, Response<Body>> {
    let internal = |message: String| text(StatusCode::INTERNAL_SERVER_ERROR, message);
    let encoded = tokio::task::spawn_blocking(move || {
        let start = std::time::Instant::now();
        let encoded = match accept {
            ContentType::Json => lists.json(),
            ContentType::Protobuf => Ok(lists.protobuf()),
        };
        tracing::debug!(
            ?accept,
            encode_us = start.elapsed().as_micros() as u64,
            "encoded a v1 operator answer"
        );
        encoded
    })
    .await
    .map_err(|e| internal(format!("encoding failed: {e}")))?
    .map_err(|e| internal(e.to_string()))?;
    let mut r = Response::new(Full::new(Bytes::from(encoded)).boxed());
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(accept.as_str()));
    Ok(r)
}

/// Why a request's media types are refused: status and message.
type Refusal = (StatusCode, String);

/// The request's encoding (exactly one of the two media types, as Mesos).
fn negotiate(headers: &hyper::HeaderMap) -> Result<ContentType, Refusal> {
    let unsupported = |m: String| (StatusCode::UNSUPPORTED_MEDIA_TYPE, m);
    let content_type = request_content_type(headers).map_err(|p| match p {
        ContentTypeProblem::Missing => (
            StatusCode::BAD_REQUEST,
            "Expecting 'Content-Type' to be present".to_string(),
        ),
        ContentTypeProblem::Unsupported => unsupported(format!(
            "Expecting 'Content-Type' of {APPLICATION_JSON} or {APPLICATION_PROTOBUF} \
             or {}",
            stream::APPLICATION_RECORDIO
        )),
    })?;
    if headers.contains_key(MESSAGE_CONTENT_TYPE) {
        return Err(unsupported(
            "Expecting 'Message-Content-Type' to be not set for non-streaming requests".into(),
        ));
    }
    Ok(content_type)
}

/// Reads the whole body: at most [`MAX_CALL_BYTES`], within [`BODY_TIMEOUT`].
async fn read_body<B>(body: B) -> Result<Bytes, Response<Body>>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let collect = Limited::new(body, MAX_CALL_BYTES).collect();
    match tokio::time::timeout(BODY_TIMEOUT, collect).await {
        Err(_) => Err(text(
            StatusCode::REQUEST_TIMEOUT,
            format!("the call body did not arrive within {BODY_TIMEOUT:?}"),
        )),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => Err(text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("Call body exceeds {MAX_CALL_BYTES} bytes"),
        )),
        Ok(Err(e)) => Err(bad_request(format!("Failed to read request body: {e}"))),
    }
}

/// Decodes the body as the agent does, with its error texts.
pub(crate) fn decode_call(content_type: ContentType, body: &[u8]) -> Result<Call, String> {
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
    decoded.map_err(|e| match e {
        ProtoError::MissingRequired { field, .. } => {
            format!("{prefix}: Missing required fields: {field}")
        }
        ProtoError::Decode { source, .. } => format!("{prefix}: {source}"),
        ProtoError::Json { source, .. } => format!("{prefix}: {source}"),
        e @ ProtoError::UnknownMessage(_) => format!("{prefix}: {e}"),
    })
}

/// Mesos' `validation::agent::call::validate`, then what the call asks.
// The deprecated nested-container calls are still validated, as Mesos does.
#[allow(deprecated)]
fn validate(call: &Call) -> Result<Valid, String> {
    use call::Type as T;
    let Some(raw) = call.r#type else {
        return Err("Expecting 'type' to be present".into());
    };
    // A proto2 parser drops an enum number its enum lacks: no type.
    let Ok(kind) = T::try_from(raw) else {
        return Err("Expecting 'type' to be present".into());
    };
    fn need<'a, M>(m: &'a Option<M>, name: &str) -> Result<&'a M, String> {
        m.as_ref()
            .ok_or_else(|| format!("Expecting '{name}' to be present"))
    }
    let id = |c: &ContainerId, name: &str| -> Result<(), String> {
        validate_container_id(c).map_err(|e| format!("'{name}.container_id' is invalid: {e}"))
    };
    let nested = |c: &ContainerId, name: &str| -> Result<(), String> {
        id(c, name)?;
        if c.parent.is_none() {
            return Err(format!(
                "Expecting '{name}.container_id.parent' to be present"
            ));
        }
        Ok(())
    };
    let unsupported = Ok(Valid::Unsupported(kind));
    match kind {
        T::Unknown => Ok(Valid::Unknown),
        T::GetHealth => Ok(Valid::Health),
        T::GetFlags => Ok(Valid::Agent(AgentCall::Flags)),
        T::GetVersion => Ok(Valid::Agent(AgentCall::Version)),
        T::GetMetrics => {
            let m = need(&call.get_metrics, "get_metrics")?;
            Ok(Valid::Agent(AgentCall::Metrics {
                timeout: m.timeout.as_ref().map(|d| nanos(d.nanoseconds)),
            }))
        }
        T::GetLoggingLevel => Ok(Valid::Agent(AgentCall::LoggingLevel)),
        T::SetLoggingLevel => {
            let s = need(&call.set_logging_level, "set_logging_level")?;
            Ok(Valid::Agent(AgentCall::SetLoggingLevel {
                level: s.level,
                duration: nanos(s.duration.nanoseconds),
            }))
        }
        T::ListFiles => Ok(Valid::ListFiles(
            need(&call.list_files, "list_files")?.path.clone(),
        )),
        T::ReadFile => {
            let r = need(&call.read_file, "read_file")?;
            Ok(Valid::ReadFile {
                path: r.path.clone(),
                offset: r.offset,
                length: r.length,
            })
        }
        T::GetState => Ok(Valid::Agent(AgentCall::State)),
        T::GetContainers => {
            let g = call.get_containers.unwrap_or_default();
            Ok(Valid::Agent(AgentCall::Containers {
                show_nested: g.show_nested(),
                show_standalone: g.show_standalone(),
            }))
        }
        T::GetFrameworks => Ok(Valid::Agent(AgentCall::Frameworks)),
        T::GetExecutors => Ok(Valid::Agent(AgentCall::Executors)),
        T::GetOperations => Ok(Valid::Agent(AgentCall::Operations)),
        T::GetTasks => Ok(Valid::Agent(AgentCall::Tasks)),
        T::GetAgent => Ok(Valid::Agent(AgentCall::Agent)),
        T::GetResourceProviders => Ok(Valid::Agent(AgentCall::ResourceProviders)),
        T::LaunchNestedContainer => {
            let c = need(&call.launch_nested_container, "launch_nested_container")?;
            nested(&c.container_id, "launch_nested_container")?;
            let launch = call::LaunchContainer {
                container_id: c.container_id.clone(),
                command: c.command.clone(),
                container: c.container.clone(),
                ..Default::default()
            };
            validate_launch(&launch)?;
            Ok(Valid::Agent(AgentCall::LaunchNested(Box::new(launch))))
        }
        T::WaitNestedContainer => {
            let c = need(&call.wait_nested_container, "wait_nested_container")?;
            nested(&c.container_id, "wait_nested_container")?;
            Ok(Valid::Agent(AgentCall::WaitNested {
                container_id: c.container_id.clone(),
                nested: true,
            }))
        }
        T::KillNestedContainer => {
            let c = need(&call.kill_nested_container, "kill_nested_container")?;
            nested(&c.container_id, "kill_nested_container")?;
            Ok(Valid::Agent(AgentCall::KillNested {
                container_id: c.container_id.clone(),
                signal: c.signal.unwrap_or(libc::SIGKILL),
            }))
        }
        T::RemoveNestedContainer => {
            let c = need(&call.remove_nested_container, "remove_nested_container")?;
            nested(&c.container_id, "remove_nested_container")?;
            Ok(Valid::Agent(AgentCall::RemoveNested(
                c.container_id.clone(),
            )))
        }
        T::LaunchNestedContainerSession => {
            let c = need(
                &call.launch_nested_container_session,
                "launch_nested_container_session",
            )?;
            nested(&c.container_id, "launch_nested_container_session")?;
            Ok(match validate_session(c)? {
                Some(launch) => Valid::Session(Box::new(launch)),
                None => Valid::NotServed(
                    "butte serves debug containers only: a LAUNCH_NESTED_CONTAINER_SESSION \
                     whose 'container' has an image, volumes or Docker settings is not served",
                ),
            })
        }
        T::AttachContainerInput => {
            let a = need(&call.attach_container_input, "attach_container_input")?;
            stream::validate_attach_input(a, |c| id(c, "attach_container_input"))
                .map(Valid::AttachInput)
        }
        T::AttachContainerOutput => {
            let a = need(&call.attach_container_output, "attach_container_output")?;
            id(&a.container_id, "attach_container_output")?;
            Ok(Valid::AttachOutput(a.container_id.clone()))
        }
        T::LaunchContainer => {
            let c = need(&call.launch_container, "launch_container")?;
            id(&c.container_id, "launch_container")?;
            validate_launch(c)?;
            match c.container_id.parent {
                Some(_) => Ok(Valid::Agent(AgentCall::LaunchNested(Box::new(c.clone())))),
                None => Ok(Valid::Agent(AgentCall::LaunchContainer(Box::new(
                    c.clone(),
                )))),
            }
        }
        T::WaitContainer => {
            let c = need(&call.wait_container, "wait_container")?;
            id(&c.container_id, "wait_container")?;
            match c.container_id.parent {
                Some(_) => Ok(Valid::Agent(AgentCall::WaitNested {
                    container_id: c.container_id.clone(),
                    nested: false,
                })),
                None => Ok(Valid::Agent(AgentCall::WaitContainer(
                    c.container_id.value.clone(),
                ))),
            }
        }
        T::KillContainer => {
            let c = need(&call.kill_container, "kill_container")?;
            id(&c.container_id, "kill_container")?;
            match c.container_id.parent {
                Some(_) => Ok(Valid::Agent(AgentCall::KillNested {
                    container_id: c.container_id.clone(),
                    signal: c.signal.unwrap_or(libc::SIGKILL),
                })),
                None => Ok(Valid::Agent(AgentCall::KillContainer {
                    container_id: c.container_id.value.clone(),
                    signal: c.signal.unwrap_or(libc::SIGKILL),
                })),
            }
        }
        T::RemoveContainer => {
            let c = need(&call.remove_container, "remove_container")?;
            id(&c.container_id, "remove_container")?;
            match c.container_id.parent {
                Some(_) => Ok(Valid::Agent(AgentCall::RemoveNested(
                    c.container_id.clone(),
                ))),
                None => Ok(Valid::Agent(AgentCall::RemoveContainer(
                    c.container_id.value.clone(),
                ))),
            }
        }
        T::AddResourceProviderConfig => {
            need(
                &call.add_resource_provider_config,
                "add_resource_provider_config",
            )?;
            unsupported
        }
        T::UpdateResourceProviderConfig => {
            need(
                &call.update_resource_provider_config,
                "update_resource_provider_config",
            )?;
            unsupported
        }
        T::RemoveResourceProviderConfig => {
            need(
                &call.remove_resource_provider_config,
                "remove_resource_provider_config",
            )?;
            unsupported
        }
        T::MarkResourceProviderGone => {
            need(
                &call.mark_resource_provider_gone,
                "mark_resource_provider_gone",
            )?;
            unsupported
        }
        T::PruneImages => Ok(Valid::Agent(AgentCall::PruneImages {
            excluded: call
                .prune_images
                .iter()
                .flat_map(|p| &p.excluded_images)
                .filter_map(|i| i.docker.as_ref().map(|d| d.name.clone()))
                .collect(),
        })),
    }
}

/// The rest of Mesos' LAUNCH_CONTAINER validation: a standalone
/// container's resources are unreserved, not persistent volumes and not
/// revocable (no master accounts for them); one without a parent cannot
/// share its cgroups; a container nested twice has no resources or limits.
fn validate_launch(c: &call::LaunchContainer) -> Result<(), String> {
    for r in &c.resources {
        if let Some(s) = &r.scalar {
            if !s.value.is_finite() || s.value < 0.0 {
                return Err(format!(
                    "Invalid resources: Invalid scalar resource {}: {}",
                    r.name, s.value
                ));
            }
        }
    }
    let parent = c.container_id.parent.as_ref();
    if parent.is_none() {
        for r in &c.resources {
            let reserved = !r.reservations.is_empty()
                || r.reservation.is_some()
                || r.role.as_deref().is_some_and(|role| role != "*");
            if reserved {
                return Err("'launch_container.resources' must be unreserved".into());
            }
            if r.disk.as_ref().is_some_and(|d| d.persistence.is_some()) {
                return Err("'launch_container.resources' may not use persistent volumes".into());
            }
            if r.revocable.is_some() {
                return Err("'launch_container.resources' must be non-revocable".into());
            }
        }
    }
    let share = c
        .container
        .as_ref()
        .and_then(|i| i.linux_info.as_ref())
        .and_then(|l| l.share_cgroups);
    let twice = parent.is_some_and(|p| p.parent.is_some());
    if twice && !c.resources.is_empty() {
        return Err(
            "'launch_container' is invalid: containers nested at the second level \
                    or greater cannot specify resources"
                .into(),
        );
    }
    if twice && !c.limits.is_empty() {
        return Err(
            "'launch_container' is invalid: containers nested at the second level \
                    or greater cannot specify resource limits"
                .into(),
        );
    }
    if twice && share == Some(false) {
        return Err(
            "'launch_container' is invalid: containers nested at the second level \
                    or greater cannot set 'share_cgroups' to 'false'"
                .into(),
        );
    }
    if parent.is_none() && share == Some(true) {
        return Err(
            "'launch_container' is invalid: containers without a parent \
                    cannot set 'share_cgroups' to 'true'"
                .into(),
        );
    }
    Ok(())
}

/// A session's command and terminal: a command is needed (a debug
/// container has no image to take one from); a `ContainerInfo` may ask for
/// a terminal (`tty_info`); `None` for one that asks for more (an image,
/// volumes), which butte does not serve.
fn validate_session(
    c: &call::LaunchNestedContainerSession,
) -> Result<Option<SessionLaunch>, String> {
    let command = c
        .command
        .clone()
        .ok_or("Expecting 'launch_nested_container_session.command' to be present")?;
    let mut tty = None;
    if let Some(info) = &c.container {
        let image = info.mesos.as_ref().is_some_and(|m| m.image.is_some());
        if image || info.docker.is_some() || !info.volumes.is_empty() {
            return Ok(None);
        }
        if let Some(t) = &info.tty_info {
            let size = t.window_size.as_ref();
            let clamp = |v: u32| u16::try_from(v).unwrap_or(u16::MAX);
            tty = Some((
                size.map_or(0, |s| clamp(s.rows)),
                size.map_or(0, |s| clamp(s.columns)),
            ));
        }
    }
    Ok(Some(SessionLaunch {
        container_id: c.container_id.clone(),
        command,
        tty,
    }))
}

/// Mesos' `validateContainerId` (common ID rules, then no `.` or space),
/// parents included.
fn validate_container_id(c: &ContainerId) -> Result<(), String> {
    let id = &c.value;
    if id.is_empty() {
        return Err("ID must not be empty".into());
    }
    if id.len() > 255 {
        return Err("ID must not be greater than 255 characters".into());
    }
    if id
        .chars()
        .any(|ch| ch == '/' || ch == '\\' || ch.is_control())
    {
        return Err(format!("'{id}' contains invalid characters"));
    }
    if id.chars().any(|ch| ch == '.' || ch == ' ') {
        return Err(format!(
            "'ContainerID.value' '{id}' contains invalid characters"
        ));
    }
    if let Some(parent) = &c.parent {
        validate_container_id(parent)
            .map_err(|e| format!("'ContainerID.parent' is invalid: {e}"))?;
    }
    Ok(())
}

/// Whether an executor (its token naming container `cid`) may make this
/// call: the nested container calls (sessions too: its COMMAND checks run
/// in them) on containers under its own, as Mesos' authorizer lets an
/// executor principal do.
fn executor_may(valid: &Valid, cid: &str) -> bool {
    let id = match valid {
        Valid::Agent(AgentCall::LaunchNested(c)) => &c.container_id,
        Valid::Session(s) => &s.container_id,
        Valid::Agent(
            AgentCall::WaitNested { container_id, .. } | AgentCall::KillNested { container_id, .. },
        ) => container_id,
        Valid::Agent(AgentCall::RemoveNested(c)) => c,
        _ => return false,
    };
    let mut top = id;
    while let Some(p) = &top.parent {
        top = p;
    }
    top.value == cid && id.parent.is_some()
}

/// A `DurationInfo`'s nanoseconds (a negative one is no time).
fn nanos(n: i64) -> Duration {
    Duration::from_nanos(u64::try_from(n).unwrap_or(0))
}

async fn list_files(
    api: &Arc<dyn OperatorApi>,
    path: String,
) -> Result<AgentResponse, OperatorError> {
    let attached = api.attached().await?;
    let list = tokio::task::spawn_blocking(move || files::browse(&attached, &path))
        .await
        .map_err(|e| OperatorError::Internal(format!("listing files failed: {e}")))??;
    let file_infos = list
        .into_iter()
        .map(|f| FileInfo {
            path: f.path,
            nlink: i32::try_from(f.nlink).ok(),
            size: Some(f.size),
            mtime: Some(TimeInfo {
                nanoseconds: (f.mtime * 1e9) as i64,
            }),
            mode: Some(f.raw_mode),
            uid: Some(f.uid),
            gid: Some(f.gid),
        })
        .collect();
    Ok(AgentResponse {
        r#type: Some(response::Type::ListFiles as i32),
        list_files: Some(response::ListFiles { file_infos }),
        ..Default::default()
    })
}

async fn read_file(
    api: &Arc<dyn OperatorApi>,
    path: String,
    offset: u64,
    length: Option<u64>,
) -> Result<AgentResponse, OperatorError> {
    let attached = api.attached().await?;
    let (size, data) = tokio::task::spawn_blocking(move || {
        files::read_bytes(&attached, &path, Some(offset), length)
    })
    .await
    .map_err(|e| OperatorError::Internal(format!("reading a file failed: {e}")))??;
    Ok(AgentResponse {
        r#type: Some(response::Type::ReadFile as i32),
        read_file: Some(response::ReadFile { size, data }),
        ..Default::default()
    })
}

/// The response in the negotiated encoding.
pub fn encode(accept: ContentType, r: &AgentResponse) -> Bytes {
    match accept {
        ContentType::Json => Bytes::from(json_bytes(r)),
        ContentType::Protobuf => Bytes::from(r.encode_to_vec()),
    }
}

/// [`to_json`]'s text. The four answers with Mesos' own lists (the large
/// ones: every task) are written list by list, each message straight into
/// the buffer; the others go through [`to_json`].
pub fn json_bytes(r: &AgentResponse) -> Vec<u8> {
    use response::Type as T;
    let kind = r.r#type.and_then(|t| T::try_from(t).ok());
    let mut out = Vec::with_capacity(64 * 1024);
    match (
        kind,
        &r.get_state,
        &r.get_tasks,
        &r.get_executors,
        &r.get_frameworks,
    ) {
        (Some(T::GetState), Some(state), ..) => {
            out.extend_from_slice(br#"{"type":"GET_STATE","get_state":{"#);
            let mut sep = "";
            if let Some(t) = &state.get_tasks {
                out.extend_from_slice(format!(r#"{sep}"get_tasks":"#).as_bytes());
                write_tasks(&mut out, t);
                sep = ",";
            }
            if let Some(e) = &state.get_executors {
                out.extend_from_slice(format!(r#"{sep}"get_executors":"#).as_bytes());
                write_executors(&mut out, e);
                sep = ",";
            }
            if let Some(f) = &state.get_frameworks {
                out.extend_from_slice(format!(r#"{sep}"get_frameworks":"#).as_bytes());
                write_frameworks(&mut out, f);
            }
            out.extend_from_slice(b"}}");
        }
        (Some(T::GetTasks), _, Some(t), ..) => {
            out.extend_from_slice(br#"{"type":"GET_TASKS","get_tasks":"#);
            write_tasks(&mut out, t);
            out.push(b'}');
        }
        (Some(T::GetExecutors), _, _, Some(e), _) => {
            out.extend_from_slice(br#"{"type":"GET_EXECUTORS","get_executors":"#);
            write_executors(&mut out, e);
            out.push(b'}');
        }
        (Some(T::GetFrameworks), _, _, _, Some(f)) => {
            out.extend_from_slice(br#"{"type":"GET_FRAMEWORKS","get_frameworks":"#);
            write_frameworks(&mut out, f);
            out.push(b'}');
        }
        _ => out = serde_json::to_vec(&to_json(r)).unwrap_or_default(),
    }
    out
}

/// `{"a":[..],"b":[..]}` from named lists of messages.
fn write_lists<M: prost_reflect::ReflectMessage>(out: &mut Vec<u8>, lists: &[(&str, &[M])]) {
    out.push(b'{');
    for (i, (name, items)) in lists.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(format!(r#""{name}":["#).as_bytes());
        for (j, m) in items.iter().enumerate() {
            if j > 0 {
                out.push(b',');
            }
            crate::proto::write_json(out, m);
        }
        out.push(b']');
    }
    out.push(b'}');
}

fn write_tasks(out: &mut Vec<u8>, t: &response::GetTasks) {
    write_lists(
        out,
        &[
            ("pending_tasks", &t.pending_tasks[..]),
            ("queued_tasks", &t.queued_tasks[..]),
            ("launched_tasks", &t.launched_tasks[..]),
            ("terminated_tasks", &t.terminated_tasks[..]),
            ("completed_tasks", &t.completed_tasks[..]),
        ],
    );
}

fn write_executors(out: &mut Vec<u8>, e: &response::GetExecutors) {
    write_lists(
        out,
        &[
            ("executors", &e.executors[..]),
            ("completed_executors", &e.completed_executors[..]),
        ],
    );
}

fn write_frameworks(out: &mut Vec<u8>, f: &response::GetFrameworks) {
    write_lists(
        out,
        &[
            ("frameworks", &f.frameworks[..]),
            ("completed_frameworks", &f.completed_frameworks[..]),
        ],
    );
}

/// The JSON of a response as Mesos writes it: the proto mapping, except
/// that the lists of GET_TASKS, GET_EXECUTORS and GET_FRAMEWORKS (alone or
/// in GET_STATE) are always there, empty or not (Mesos writes those four
/// with its own writer, which always opens each array).
pub fn to_json(r: &AgentResponse) -> serde_json::Value {
    const LISTS: [(&str, &[&str]); 3] = [
        (
            "get_tasks",
            &[
                "pending_tasks",
                "queued_tasks",
                "launched_tasks",
                "terminated_tasks",
                "completed_tasks",
            ],
        ),
        ("get_executors", &["executors", "completed_executors"]),
        ("get_frameworks", &["frameworks", "completed_frameworks"]),
    ];
    fn fill(parent: &mut serde_json::Value) {
        for (message, lists) in LISTS {
            if let Some(o) = parent.get_mut(message).and_then(|m| m.as_object_mut()) {
                for list in lists {
                    o.entry(*list)
                        .or_insert_with(|| serde_json::Value::Array(Vec::new()));
                }
            }
        }
    }
    let mut json = crate::proto::to_json(r);
    fill(&mut json);
    if let Some(state) = json.get_mut("get_state") {
        fill(state);
    }
    json
}

fn error(e: OperatorError) -> Response<Body> {
    match e {
        OperatorError::NotFound => text(StatusCode::NOT_FOUND, "not found"),
        e => super::error(&e),
    }
}

#[cfg(test)]
mod tests;
