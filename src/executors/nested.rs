//! The default executor's tasks as nested containers, when butte's agent
//! says it may (`BUTTE_NESTED_CONTAINERS=1`): calls to the agent's operator
//! API (`POST /api/v1`, protobuf as Mesos 1.11's default executor sends
//! them: no descriptors or JSON mapping loaded, the executor stays small;
//! with the executor's token when it has one).
//!
//! ```text
//! LAUNCH_CONTAINER {container_id: {value: <uuid>, parent: <executor's>}}
//!   200 -> WAIT_CONTAINER (long poll, on its own thread)
//!            connection broken / 503 -> again after 1s (agent restart)
//!            200 {exit_status, state?, reason?, message?, limitation?}
//!            404 -> the container is gone
//!          -> terminal update -> REMOVE_CONTAINER (best effort)
//! kill: KILL_CONTAINER SIGTERM, SIGKILL after the grace period
//! COMMAND check: LAUNCH_NESTED_CONTAINER_SESSION of `check-<uuid>` under
//!   the task's container (read to its end), WAIT_NESTED_CONTAINER,
//!   REMOVE_NESTED_CONTAINER; on timeout the session is closed (the agent
//!   kills it)
//! ```

use super::exit::{command_message, Exit};
use super::http::{BodyStream, Client, HttpError};
use super::probe::Outcome;
use super::session::Input;
use crate::proto::mesos::v1::agent::{call, response, Call, Response};
use crate::proto::mesos::v1::{
    task_status, CommandInfo, ContainerId, TaskInfo, TaskResourceLimitation, TaskState,
};
use crate::support::format_duration;
use prost::Message;
use std::io;
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

/// Set (to `1`) by butte's agent in the default executor's environment:
/// its tasks are to run as nested containers. Not passed on to tasks.
pub use crate::proto::launch::NESTED_CONTAINERS_ENV;
/// The agent's operator API.
pub const OPERATOR_API: &str = "/api/v1";
use super::link::PROTOBUF;
const RECORDIO: &str = "application/recordio";
/// Bounds connecting, and each read of a call that is not a long poll.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The pause before a wait whose connection broke is made again, and
/// between attempts of a SIGKILL the agent did not take.
pub const RETRY: Duration = Duration::from_secs(1);
/// How many times a SIGKILL is tried.
const KILL_ATTEMPTS: u32 = 30;

/// Why a call about a nested container failed.
#[derive(Debug, thiserror::Error)]
pub enum NestedError {
    #[error("{call} of container {container}: {source}")]
    Http {
        call: &'static str,
        container: String,
        #[source]
        source: HttpError,
    },
    #[error("{call} of container {container}: the agent answered {status}: {body}")]
    Refused {
        call: &'static str,
        container: String,
        status: u16,
        body: String,
    },
    #[error("{call} of container {container}: cannot read the agent's answer: {source}")]
    Answer {
        call: &'static str,
        container: String,
        #[source]
        source: prost::DecodeError,
    },
    #[error("cannot draw a container id: {0}")]
    Uuid(#[source] io::Error),
}

impl NestedError {
    /// Worth trying again later: the agent could not be reached or is
    /// still recovering (503).
    pub fn transient(&self) -> bool {
        match self {
            NestedError::Http { .. } => true,
            NestedError::Refused { status, .. } => *status == 503,
            _ => false,
        }
    }

    /// The agent's own words for a refusal, the error otherwise.
    pub fn agent_message(&self) -> String {
        match self {
            NestedError::Refused { body, .. } if !body.is_empty() => body.clone(),
            e => e.to_string(),
        }
    }
}

/// A container id as Mesos prints one: its ancestors first, joined by `.`.
pub fn display(id: &ContainerId) -> String {
    match &id.parent {
        Some(p) => format!("{}.{}", display(p), id.value),
        None => id.value.clone(),
    }
}

/// A new child of `parent`: `<prefix><uuid v4>`.
pub fn child_id(parent: &ContainerId, prefix: &str) -> Result<ContainerId, NestedError> {
    let uuid = crate::support::random_uuid().map_err(NestedError::Uuid)?;
    Ok(ContainerId {
        value: format!("{prefix}{uuid}"),
        parent: Some(Box::new(parent.clone())),
    })
}

/// What a `WAIT_CONTAINER` came back with.
#[derive(Debug, Clone, PartialEq)]
pub enum Waited {
    /// 200: the container ended.
    Ended(response::WaitContainer),
    /// 404: the agent does not know the container (any more).
    Gone,
    /// Any other refusal: the agent's words.
    Failed(String),
}

/// What the default executor hears from its nested containers' threads.
#[derive(Debug)]
pub enum Report {
    /// A `LAUNCH_CONTAINER` answered: `Err` holds the agent's message.
    Launched {
        task_id: String,
        result: Result<(), String>,
    },
    /// A `WAIT_CONTAINER` answered.
    Waited { task_id: String, waited: Waited },
}

/// The agent's operator API, as the executor calls it.
#[derive(Debug, Clone)]
pub struct Agent {
    endpoint: String,
    authorization: Option<String>,
}

impl Agent {
    /// The agent at `endpoint` (`ip:port`); `token` is the executor's
    /// (`MESOS_EXECUTOR_AUTHENTICATION_TOKEN`), sent as a bearer token.
    pub fn new(endpoint: &str, token: Option<&str>) -> Agent {
        Agent {
            endpoint: endpoint.to_string(),
            authorization: token.map(|t| format!("Bearer {t}")),
        }
    }

    fn headers<'a>(&'a self, accept: &'a str) -> Vec<(&'a str, &'a str)> {
        let mut h = vec![("Content-Type", PROTOBUF), ("Accept", accept)];
        if accept == RECORDIO {
            h.push(("Message-Accept", PROTOBUF));
        }
        if let Some(a) = &self.authorization {
            h.push(("Authorization", a.as_str()));
        }
        h
    }

    /// POSTs `call`; any answer but 200 and `also` is an error.
    fn exchange(
        &self,
        call: &Call,
        name: &'static str,
        id: &ContainerId,
        long_poll: bool,
        also: &[u16],
    ) -> Result<(u16, Vec<u8>), NestedError> {
        let container = || display(id);
        let mut client = Client::new(self.endpoint.as_str(), CALL_TIMEOUT);
        if long_poll {
            client = client.long_poll();
        }
        let r = client
            .request(
                "POST",
                OPERATOR_API,
                &self.headers(PROTOBUF),
                &call.encode_to_vec(),
            )
            .map_err(|source| NestedError::Http {
                call: name,
                container: container(),
                source,
            })?;
        if r.head.status == 200 || also.contains(&r.head.status) {
            return Ok((r.head.status, r.body));
        }
        Err(NestedError::Refused {
            call: name,
            container: container(),
            status: r.head.status,
            body: String::from_utf8_lossy(&r.body).trim().to_string(),
        })
    }

    /// Launches `task` in the nested container `id` with `command` (the
    /// task's, with the environment the executor gives it); returns once
    /// its process runs (an image is provisioned first: no time limit).
    /// A broken connection or a 503 (an agent restarting) is retried after
    /// `retry`, with the same id: the restarted agent answers 202 for a
    /// container it launched before, and launches one whose start was cut
    /// short.
    pub fn launch(
        &self,
        id: &ContainerId,
        task: &TaskInfo,
        command: CommandInfo,
        retry: Duration,
    ) -> Result<(), NestedError> {
        let call = launch_call(id, task, command);
        loop {
            match self.exchange(&call, "LAUNCH_CONTAINER", id, true, &[202]) {
                Err(e) if e.transient() => {
                    eprintln!(
                        "butte executor: {e}; launching again in {}",
                        format_duration(retry)
                    );
                    std::thread::sleep(retry);
                }
                other => return other.map(drop),
            }
        }
    }

    /// Waits for the container `id` to end (a long poll).
    pub fn wait(&self, id: &ContainerId) -> Result<Waited, NestedError> {
        let call = Call {
            r#type: Some(call::Type::WaitContainer as i32),
            wait_container: Some(call::WaitContainer {
                container_id: id.clone(),
            }),
            ..Default::default()
        };
        let (status, body) = self.exchange(&call, "WAIT_CONTAINER", id, true, &[404])?;
        if status == 404 {
            return Ok(Waited::Gone);
        }
        let answer = Response::decode(body.as_slice()).map_err(|source| NestedError::Answer {
            call: "WAIT_CONTAINER",
            container: display(id),
            source,
        })?;
        Ok(Waited::Ended(answer.wait_container.unwrap_or_default()))
    }

    /// Waits until the agent answers: a broken connection or a 503 (an
    /// agent restarting or recovering) is retried after [`RETRY`].
    pub fn wait_until_answered(&self, id: &ContainerId, retry: Duration) -> Waited {
        loop {
            match self.wait(id) {
                Ok(w) => return w,
                Err(e) if e.transient() => {
                    eprintln!(
                        "butte executor: {e}; waiting again in {}",
                        format_duration(retry)
                    );
                    std::thread::sleep(retry);
                }
                Err(e) => return Waited::Failed(e.agent_message()),
            }
        }
    }

    /// Sends `signal` to the first process of the container `id`.
    pub fn kill(&self, id: &ContainerId, signal: i32) -> Result<(), NestedError> {
        let call = Call {
            r#type: Some(call::Type::KillContainer as i32),
            kill_container: Some(call::KillContainer {
                container_id: id.clone(),
                signal: Some(signal),
            }),
            ..Default::default()
        };
        self.exchange(&call, "KILL_CONTAINER", id, false, &[])
            .map(drop)
    }

    /// Forgets the ended container `id` (its sandbox stays).
    pub fn remove(&self, id: &ContainerId) -> Result<(), NestedError> {
        let call = Call {
            r#type: Some(call::Type::RemoveContainer as i32),
            remove_container: Some(call::RemoveContainer {
                container_id: id.clone(),
            }),
            ..Default::default()
        };
        self.exchange(&call, "REMOVE_CONTAINER", id, false, &[])
            .map(drop)
    }

    /// Launches the task's container on a thread; the answer comes back
    /// as [`Report::Launched`].
    pub fn launch_in_background(
        &self,
        id: ContainerId,
        task: TaskInfo,
        command: CommandInfo,
        inputs: Sender<Input>,
    ) {
        let agent = self.clone();
        let task_id = task.task_id.value.clone();
        spawn("launch", move || {
            let result = agent.launch(&id, &task, command, RETRY).map_err(|e| {
                eprintln!("butte executor: {e}");
                e.agent_message()
            });
            let _ = inputs.send(Input::Nested(Report::Launched { task_id, result }));
        });
    }

    /// Waits for the container on a thread until the agent answers; the
    /// answer comes back as [`Report::Waited`].
    pub fn wait_in_background(&self, task_id: String, id: ContainerId, inputs: Sender<Input>) {
        let agent = self.clone();
        spawn("wait", move || {
            let waited = agent.wait_until_answered(&id, RETRY);
            let _ = inputs.send(Input::Nested(Report::Waited { task_id, waited }));
        });
    }

    /// Sends `signal` on a thread: the executor's loop never waits for the
    /// agent. A SIGKILL the agent did not take is tried again every
    /// [`RETRY`] (as Mesos' default executor does), until the container is
    /// gone (404).
    pub fn kill_in_background(&self, id: ContainerId, signal: i32) {
        let agent = self.clone();
        spawn("kill", move || {
            let attempts = if signal == libc_sigkill() {
                KILL_ATTEMPTS
            } else {
                1
            };
            for attempt in 1..=attempts {
                match agent.kill(&id, signal) {
                    Ok(()) => return,
                    Err(NestedError::Refused { status: 404, .. }) => return,
                    Err(e) => {
                        eprintln!("butte executor: {e}");
                        if attempt < attempts {
                            std::thread::sleep(RETRY);
                        }
                    }
                }
            }
        });
    }

    /// Removes the ended container on a thread (best effort).
    pub fn remove_in_background(&self, id: ContainerId) {
        let agent = self.clone();
        spawn("remove", move || {
            if let Err(e) = agent.remove(&id) {
                eprintln!("butte executor: {e}");
            }
        });
    }

    /// Runs a COMMAND check or health check of the task in container
    /// `task`: a new DEBUG child (no `ContainerInfo`: it joins the task's
    /// namespaces) started with `LAUNCH_NESTED_CONTAINER_SESSION`, its
    /// output read to the end within `limit`, then its exit status from
    /// `WAIT_NESTED_CONTAINER`, then `REMOVE_NESTED_CONTAINER`. `None`: no
    /// result this time (the agent could not be reached or refused the
    /// launch, or the check was SIGKILLed, e.g. because the task ended),
    /// as Mesos' checker discards such a run.
    pub fn command_check(
        &self,
        task: &ContainerId,
        command: &CommandInfo,
        limit: Duration,
    ) -> Option<Outcome> {
        let id = match child_id(task, "check-") {
            Ok(id) => id,
            Err(e) => return Some(Outcome::Error(e.to_string())),
        };
        let call = Call {
            r#type: Some(call::Type::LaunchNestedContainerSession as i32),
            launch_nested_container_session: Some(call::LaunchNestedContainerSession {
                container_id: id.clone(),
                command: Some(command.clone()),
                container: None,
            }),
            ..Default::default()
        };
        let started = Instant::now();
        let opened = BodyStream::post(
            &self.endpoint,
            OPERATOR_API,
            &self.headers(RECORDIO),
            &call.encode_to_vec(),
            limit.clamp(Duration::from_millis(1), CALL_TIMEOUT),
        );
        let (head, mut stream) = match opened {
            Ok(o) => o,
            Err(e) => {
                eprintln!(
                    "butte executor: LAUNCH_NESTED_CONTAINER_SESSION of container {}: {e}",
                    display(&id)
                );
                return None;
            }
        };
        if head.status != 200 {
            let text = stream.read_rest(&head);
            eprintln!(
                "butte executor: LAUNCH_NESTED_CONTAINER_SESSION of container {}: the agent answered {}: {}",
                display(&id),
                head.status,
                String::from_utf8_lossy(&text).trim()
            );
            return None;
        }
        // The output (RecordIO of ProcessIO records) is not kept: only
        // its end matters, when the check command has exited.
        let mut timed_out = false;
        let mut broken = false;
        let mut buf = Vec::new();
        loop {
            let left = limit.saturating_sub(started.elapsed());
            if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
                timed_out = true;
                break;
            }
            buf.clear();
            match stream.next_bytes(&mut buf) {
                Ok(true) => {}
                Ok(false) => break,
                Err(HttpError::Io { source, .. })
                    if matches!(
                        source.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    timed_out = true;
                    break;
                }
                Err(e) => {
                    eprintln!(
                        "butte executor: the session of check container {} broke: {e}",
                        display(&id)
                    );
                    broken = true;
                    break;
                }
            }
        }
        // Closing the session makes the agent kill the check container.
        drop(stream);
        let waited = self.wait_nested(&id);
        if let Err(e) = self.remove_nested(&id) {
            eprintln!("butte executor: {e}");
        }
        if timed_out {
            return Some(Outcome::Error(format!(
                "Command timed out after {}",
                format_duration(limit)
            )));
        }
        match waited {
            Err(_) if broken => None,
            Err(e) => Some(Outcome::Error(format!("Unable to get the exit code: {e}"))),
            Ok(None) => Some(Outcome::Error("Unable to get the exit code".into())),
            Ok(Some(status)) => match exit_of(status) {
                Some(Exit::Code(c)) => Some(Outcome::Command(c)),
                Some(Exit::Signal(9)) => None,
                Some(exit) => Some(Outcome::Error(command_message(exit))),
                None => Some(Outcome::Error("Unable to get the exit code".into())),
            },
        }
    }

    /// `WAIT_NESTED_CONTAINER` of a check container: its wait status.
    /// (Mesos deprecates the `*_NESTED_CONTAINER` calls for their
    /// `*_CONTAINER` forms, yet its checker still makes these.)
    #[allow(deprecated)]
    fn wait_nested(&self, id: &ContainerId) -> Result<Option<i32>, NestedError> {
        let call = Call {
            r#type: Some(call::Type::WaitNestedContainer as i32),
            wait_nested_container: Some(call::WaitNestedContainer {
                container_id: id.clone(),
            }),
            ..Default::default()
        };
        let (_, body) = self.exchange(&call, "WAIT_NESTED_CONTAINER", id, true, &[])?;
        let answer = Response::decode(body.as_slice()).map_err(|source| NestedError::Answer {
            call: "WAIT_NESTED_CONTAINER",
            container: display(id),
            source,
        })?;
        Ok(answer.wait_nested_container.and_then(|w| w.exit_status))
    }

    #[allow(deprecated)]
    fn remove_nested(&self, id: &ContainerId) -> Result<(), NestedError> {
        let call = Call {
            r#type: Some(call::Type::RemoveNestedContainer as i32),
            remove_nested_container: Some(call::RemoveNestedContainer {
                container_id: id.clone(),
            }),
            ..Default::default()
        };
        self.exchange(&call, "REMOVE_NESTED_CONTAINER", id, false, &[])
            .map(drop)
    }
}

fn libc_sigkill() -> i32 {
    nix::sys::signal::Signal::SIGKILL as i32
}

/// The stack of a call thread (messages nest deeper than the executor's
/// other threads go; only the pages used count).
pub const CALL_STACK: usize = 512 << 10;

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) {
    let spawned = std::thread::Builder::new()
        .name(name.into())
        .stack_size(CALL_STACK)
        .spawn(f);
    if let Err(e) = spawned {
        eprintln!("butte executor: cannot start a {name} thread: {e}");
    }
}

/// The `LAUNCH_CONTAINER` call of a task, as Mesos 1.11's default executor
/// makes it: the command given, the task's `ContainerInfo`, resources and
/// limits.
pub fn launch_call(id: &ContainerId, task: &TaskInfo, command: CommandInfo) -> Call {
    Call {
        r#type: Some(call::Type::LaunchContainer as i32),
        launch_container: Some(call::LaunchContainer {
            container_id: id.clone(),
            command: Some(command),
            resources: task.resources.clone(),
            container: task.container.clone(),
            limits: task.limits.clone(),
        }),
        ..Default::default()
    }
}

/// A wait(2) status as an exit code or signal; `None` for anything else.
pub fn exit_of(status: i32) -> Option<Exit> {
    let signal = status & 0x7f;
    match signal {
        0 => Some(Exit::Code((status >> 8) & 0xff)),
        0x7f => None,
        s => Some(Exit::Signal(s)),
    }
}

/// How a nested task ended, for its terminal update.
#[derive(Debug, Clone, PartialEq)]
pub struct Ending {
    pub state: TaskState,
    pub reason: Option<i32>,
    pub message: Option<String>,
    pub limitation: Option<TaskResourceLimitation>,
}

/// The terminal update of a task whose wait answered, as Mesos' default
/// executor decides it: from the exit status (TASK_KILLED when the
/// executor was killing it, TASK_FAILED with
/// REASON_MAX_COMPLETION_TIME_REACHED after its maximum completion time),
/// then the agent's `state`, `reason`, `limitation` and `message` (added
/// to the exit's) win. A container the agent no longer knows (404, e.g.
/// after an agent restart that lost it) is TASK_KILLED when it was being
/// killed, TASK_FAILED otherwise.
pub fn ending(waited: &Waited, killing: bool, by_completion: bool) -> Ending {
    let mut end = Ending {
        state: TaskState::TaskFailed,
        reason: None,
        message: None,
        limitation: None,
    };
    let w = match waited {
        Waited::Gone => {
            if killing {
                end.state = TaskState::TaskKilled;
            } else {
                end.message = Some("Unable to retrieve command's termination information".into());
            }
            return end;
        }
        Waited::Failed(why) => {
            end.state = if killing {
                TaskState::TaskKilled
            } else {
                TaskState::TaskFailed
            };
            end.message = Some(format!(
                "Unable to retrieve command's termination information: {why}"
            ));
            return end;
        }
        Waited::Ended(w) => w,
    };
    match w.exit_status.and_then(exit_of) {
        None => end.message = Some("Command terminated with unknown status".into()),
        Some(exit) => {
            let (state, reason) = super::command::terminal_state(exit, killing, by_completion);
            end.state = state;
            end.reason = reason.map(|r| r as i32);
            end.message = Some(command_message(exit));
        }
    }
    if let Some(Ok(state)) = w.state.map(TaskState::try_from) {
        end.state = state;
    }
    if let Some(r) = w
        .reason
        .filter(|r| task_status::Reason::try_from(*r).is_ok())
    {
        end.reason = Some(r);
    }
    if let Some(m) = w.message.as_deref().filter(|m| !m.is_empty()) {
        end.message = Some(match end.message {
            Some(base) => format!("{base}: {m}"),
            None => m.to_string(),
        });
    }
    end.limitation = w.limitation.clone();
    end
}

#[cfg(test)]
pub(super) mod tests;
