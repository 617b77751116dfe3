//! The agent's HTTP surface: the executor API, the operator endpoints and
//! the v1 operator API (all through `api`). Requests become `Input`s for the event loop;
//! nothing here touches the agent's state.

use super::core::{ApiCall, Input};
use crate::api::executor::{self, BoxFuture, CallError, EventStream, ExecutorApi, Principal};
use crate::api::operator::{self, Authenticator, Endpoint, OperatorApi};
use crate::proto::mesos::v1::executor::call::Subscribe;
use crate::proto::mesos::v1::{ExecutorId, FrameworkId, TaskStatus};
use crate::support::jwt::Key;
use crate::wire::{HttpHandler, ResponseFuture};
use hyper::body::Incoming;
use hyper::Request;
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
    operator: Arc<Operator>,
}

/// The operator endpoints' agent side and their authentication.
pub struct Operator {
    pub api: Arc<dyn OperatorApi>,
    pub auth: Authenticator,
}

impl Router {
    pub fn new(
        inputs: mpsc::UnboundedSender<Input>,
        heartbeat: Duration,
        authentication: Option<Key>,
        operator: Operator,
    ) -> Self {
        Router {
            bridge: Arc::new(Bridge { inputs }),
            heartbeat,
            authentication: authentication.map(Arc::new),
            operator: Arc::new(operator),
        }
    }
}

impl HttpHandler for Router {
    fn handle(&self, req: Request<Incoming>) -> ResponseFuture {
        let bridge = self.bridge.clone();
        let heartbeat = self.heartbeat;
        let authentication = self.authentication.clone();
        let ops = self.operator.clone();
        Box::pin(async move {
            let path = req.uri().path().to_string();
            if path == executor::PATH || path == "/slave(1)/api/v1/executor" {
                return executor::handle(
                    bridge.as_ref(),
                    req,
                    heartbeat,
                    authentication.as_deref(),
                )
                .await;
            }
            if path == operator::v1::PATH || path == "/slave(1)/api/v1" {
                return operator::v1::handle(ops.api.clone(), &ops.auth, req).await;
            }
            match Endpoint::of(&path) {
                Some(endpoint) => operator::handle(ops.api.clone(), &ops.auth, endpoint, req).await,
                None => operator::not_found(),
            }
        })
    }
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
