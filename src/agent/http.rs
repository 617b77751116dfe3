//! The agent's HTTP surface: the executor API (through `api`), and the
//! small read-only endpoints operators probe. Requests become `Input`s for
//! the event loop; nothing here touches the agent's state.

use super::core::{ApiCall, Input};
use crate::api::executor::{self, BoxFuture, CallError, EventStream, ExecutorApi, Principal};
use crate::proto::mesos::v1::executor::call::Subscribe;
use crate::proto::mesos::v1::{ExecutorId, FrameworkId, TaskStatus};
use crate::support::jwt::Key;
use crate::wire::{full, HttpHandler, ResponseFuture};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Routes the requests that are not libprocess messages.
pub struct Router {
    bridge: Arc<Bridge>,
    heartbeat: Duration,
    /// The key executor tokens are checked with
    /// (`--authenticate_http_executors`); `None`: no authentication.
    authentication: Option<Arc<Key>>,
}

impl Router {
    pub fn new(
        inputs: mpsc::UnboundedSender<Input>,
        heartbeat: Duration,
        authentication: Option<Key>,
    ) -> Self {
        Router {
            bridge: Arc::new(Bridge { inputs }),
            heartbeat,
            authentication: authentication.map(Arc::new),
        }
    }
}

impl HttpHandler for Router {
    fn handle(&self, req: Request<Incoming>) -> ResponseFuture {
        let bridge = self.bridge.clone();
        let heartbeat = self.heartbeat;
        let authentication = self.authentication.clone();
        Box::pin(async move {
            let path = req.uri().path().to_string();
            match path.as_str() {
                executor::PATH | "/slave(1)/api/v1/executor" => {
                    executor::handle(bridge.as_ref(), req, heartbeat, authentication.as_deref())
                        .await
                }
                "/health" | "/slave(1)/health" => response(StatusCode::OK, ""),
                _ => response(StatusCode::NOT_FOUND, ""),
            }
        })
    }
}

fn response(status: StatusCode, body: &'static str) -> Response<crate::wire::Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r
}

/// The executor API's calls, posted to the event loop.
struct Bridge {
    inputs: mpsc::UnboundedSender<Input>,
}

impl Bridge {
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, CallError>>) -> ApiCall,
    ) -> Result<T, CallError> {
        let (tx, rx) = oneshot::channel();
        self.inputs
            .send(Input::Api(make(tx)))
            .map_err(|_| CallError::ServiceUnavailable("the agent is stopping".into()))?;
        rx.await
            .map_err(|_| CallError::ServiceUnavailable("the agent is stopping".into()))?
    }
}

impl ExecutorApi for Bridge {
    fn subscribe(
        &self,
        principal: Option<Principal>,
        framework_id: FrameworkId,
        executor_id: ExecutorId,
        subscribe: Subscribe,
    ) -> BoxFuture<'_, Result<EventStream, CallError>> {
        Box::pin(self.ask(|reply| ApiCall::Subscribe {
            principal,
            framework_id,
            executor_id,
            subscribe: Box::new(subscribe),
            reply,
        }))
    }

    fn update(
        &self,
        principal: Option<Principal>,
        framework_id: FrameworkId,
        executor_id: ExecutorId,
        status: TaskStatus,
    ) -> BoxFuture<'_, Result<(), CallError>> {
        Box::pin(self.ask(|reply| ApiCall::Update {
            principal,
            framework_id,
            executor_id,
            status: Box::new(status),
            reply,
        }))
    }

    fn message(
        &self,
        principal: Option<Principal>,
        framework_id: FrameworkId,
        executor_id: ExecutorId,
        data: Vec<u8>,
    ) -> BoxFuture<'_, Result<(), CallError>> {
        Box::pin(self.ask(|reply| ApiCall::Message {
            principal,
            framework_id,
            executor_id,
            data,
            reply,
        }))
    }

    fn heartbeat(
        &self,
        framework_id: FrameworkId,
        executor_id: ExecutorId,
    ) -> BoxFuture<'_, Result<(), CallError>> {
        // Mesos answers 202 without looking at the ids.
        let _ = (framework_id, executor_id);
        Box::pin(self.ask(|reply| ApiCall::Heartbeat { reply }))
    }
}
