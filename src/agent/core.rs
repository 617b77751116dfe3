//! The agent's event loop: the one owner of its state.

use super::config::{AgentConfig, STATUS_UPDATE_RETRY_MAX};
use super::state::Framework;
use super::status::StatusUpdateManager;
use super::{http, resources, AgentError};
use crate::api::executor::{CallError, Principal};
use crate::containerizer::mesos::{MesosConfig, MesosContainerizer, Termination};
use crate::proto::mesos::v1::executor::call::Subscribe;
use crate::proto::mesos::v1::{ExecutorId as V1ExecutorId, FrameworkId as V1FrameworkId};
use crate::proto::mesos::SlaveInfo;
use crate::state::paths::WorkDir;
use crate::wire::{Transport, Upid, WireEvent};
use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// The libprocess id of the agent.
pub const AGENT_ID: &str = "slave(1)";

/// Everything that reaches the event loop.
pub enum Input {
    Wire(WireEvent),
    Api(ApiCall),
    /// A container launch finished (successfully or not).
    Launched {
        framework_id: String,
        executor_id: String,
        container_id: String,
        result: Result<i32, String>,
    },
    /// A container's init process exited.
    Terminated {
        framework_id: String,
        executor_id: String,
        container_id: String,
        termination: Termination,
    },
    /// A timer armed by the agent fired.
    Timer(Timer),
}

/// The timers; each carries the generation it was armed in, so a timer
/// outlived by a state change is ignored.
pub enum Timer {
    Registration(u64),
    PingTimeout(u64),
    ExecutorRegistration {
        framework_id: String,
        executor_id: String,
        generation: u64,
    },
    ExecutorShutdown {
        framework_id: String,
        executor_id: String,
        generation: u64,
    },
    ShutdownDeadline,
}

/// A call of the executor API, with the channel for its answer.
/// `principal`: the caller's, when executors are authenticated.
pub enum ApiCall {
    Subscribe {
        principal: Option<Principal>,
        framework_id: V1FrameworkId,
        executor_id: V1ExecutorId,
        subscribe: Box<Subscribe>,
        reply: oneshot::Sender<Result<crate::api::executor::EventStream, CallError>>,
    },
    Update {
        principal: Option<Principal>,
        framework_id: V1FrameworkId,
        executor_id: V1ExecutorId,
        status: Box<crate::proto::mesos::v1::TaskStatus>,
        reply: oneshot::Sender<Result<(), CallError>>,
    },
    Message {
        principal: Option<Principal>,
        framework_id: V1FrameworkId,
        executor_id: V1ExecutorId,
        data: Vec<u8>,
        reply: oneshot::Sender<Result<(), CallError>>,
    },
    Heartbeat {
        reply: oneshot::Sender<Result<(), CallError>>,
    },
}

/// Where the agent stands with the master.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Trying to (re-)register; retries on the registration timer.
    Registering,
    /// Registered: pings are expected, updates flow.
    Running,
}

/// The agent's state and its handles on the outside world.
pub struct Agent {
    pub config: AgentConfig,
    pub work: WorkDir,
    pub self_pid: Upid,
    pub master: Upid,
    pub transport: Transport,
    pub containerizer: Arc<MesosContainerizer>,
    pub info: SlaveInfo,
    /// The id the master gave (or the recovered one).
    pub id: Option<String>,
    pub link: Link,
    /// The registration backoff ceiling of the next retry.
    pub backoff: Duration,
    pub registration_generation: u64,
    pub ping_generation: u64,
    pub ping_timeout: Duration,
    pub frameworks: BTreeMap<String, Framework>,
    pub updates: StatusUpdateManager,
    pub inputs: mpsc::UnboundedSender<Input>,
    /// Set once a full shutdown (SIGUSR1, ShutdownMessage) began.
    pub shutting_down: bool,
    /// Set when the shutdown is complete: the loop returns.
    pub exit: bool,
}

impl Agent {
    /// Recovers, starts listening, registers, and runs the event loop.
    pub async fn start(config: AgentConfig) -> Result<(), AgentError> {
        let master = resolve_master(&config.master)?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| AgentError::Listen {
                addr: config.listen,
                source,
            })?;
        let bound = listener.local_addr().map_err(|source| AgentError::Listen {
            addr: config.listen,
            source,
        })?;
        let advertised = SocketAddr::new(
            config
                .advertise_ip
                .unwrap_or_else(|| advertised_ip(bound, master.addr)),
            config.advertise_port.unwrap_or(bound.port()),
        );
        let self_pid = Upid {
            id: AGENT_ID.to_string(),
            addr: advertised,
        };
        let (wire_tx, mut wire_rx) = mpsc::unbounded_channel();
        let (inputs, mut rx) = mpsc::unbounded_channel();
        let transport = Transport::new(self_pid.clone(), wire_tx.clone());
        let executor_key = config.executor_key()?;
        let containerizer = Arc::new(MesosContainerizer::new(MesosConfig {
            work_dir: config.work_dir.clone(),
            runtime_dir: config.runtime_dir.clone(),
            runtime: config.runtime.clone(),
            fetcher: config.fetcher.clone(),
            pull: config.pull.clone(),
            butte: config.runtime.helper.clone(),
            docker_registry: config.docker_registry.clone(),
            switch_user: true,
            pids_limit: None,
            executor_env: Vec::new(),
            seccomp: config.seccomp.clone(),
            executor_secret: Some(executor_key.clone()),
        })?);
        let info = SlaveInfo {
            hostname: config.hostname.clone(),
            port: Some(i32::from(advertised.port())),
            resources: resources::total(config.resources.as_deref(), &config.work_dir)?,
            attributes: resources::parse_attributes(config.attributes.as_deref())?,
            checkpoint: Some(true),
            ..Default::default()
        };
        let mut agent = Agent {
            work: WorkDir::new(&config.work_dir),
            updates: StatusUpdateManager::new(
                config.status_update_retry_interval,
                STATUS_UPDATE_RETRY_MAX.max(config.status_update_retry_interval),
            ),
            backoff: config.registration_backoff_factor,
            ping_timeout: super::master::DEFAULT_PING_TIMEOUT,
            config,
            self_pid,
            master,
            transport,
            containerizer,
            info,
            id: None,
            link: Link::Registering,
            registration_generation: 0,
            ping_generation: 0,
            frameworks: BTreeMap::new(),
            inputs,
            shutting_down: false,
            exit: false,
        };
        agent.recover().await?;

        let (_stop_tx, stop_rx) = watch::channel(false);
        let handler = Arc::new(http::Router::new(
            agent.inputs.clone(),
            agent.config.executor_heartbeat_interval,
            agent
                .config
                .authenticate_http_executors
                .then_some(executor_key),
        ));
        tokio::spawn(crate::wire::serve(
            listener,
            AGENT_ID.to_string(),
            wire_tx,
            handler,
            stop_rx,
        ));
        tracing::info!(pid = %agent.self_pid, master = %agent.master, "agent started");
        agent.start_registration(true);

        let mut sigterm = signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut sigint = signal(tokio::signal::unix::SignalKind::interrupt())?;
        let mut sigusr1 = signal(tokio::signal::unix::SignalKind::user_defined1())?;
        let tick = (agent.config.status_update_retry_interval / 4)
            .clamp(Duration::from_millis(50), Duration::from_secs(1));
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                Some(event) = wire_rx.recv() => agent.handle(Input::Wire(event)),
                Some(input) = rx.recv() => agent.handle(input),
                _ = ticker.tick() => {
                    agent.retry_updates();
                    agent.check_subscriptions();
                }
                _ = sigterm.recv() => {
                    tracing::info!("SIGTERM: exiting, executors keep running for the next start");
                    return Ok(());
                }
                _ = sigint.recv() => {
                    tracing::info!("SIGINT: exiting, executors keep running for the next start");
                    return Ok(());
                }
                _ = sigusr1.recv() => agent.shutdown("received SIGUSR1"),
            }
            if agent.exit {
                // Let the transport flush the last messages.
                tokio::time::sleep(Duration::from_millis(200)).await;
                return Ok(());
            }
        }
    }

    /// Dispatches one input.
    pub fn handle(&mut self, input: Input) {
        match input {
            Input::Wire(WireEvent::Message(m)) => self.handle_message(m),
            Input::Wire(WireEvent::Exited(pid)) => self.exited(&pid),
            Input::Api(call) => self.handle_api(call),
            Input::Launched {
                framework_id,
                executor_id,
                container_id,
                result,
            } => self.launched(&framework_id, &executor_id, &container_id, result),
            Input::Terminated {
                framework_id,
                executor_id,
                container_id,
                termination,
            } => self.terminated(&framework_id, &executor_id, &container_id, termination),
            Input::Timer(timer) => self.timer(timer),
        }
    }

    fn timer(&mut self, timer: Timer) {
        match timer {
            Timer::Registration(g) if g == self.registration_generation => {
                self.retry_registration()
            }
            Timer::PingTimeout(g) if g == self.ping_generation => self.ping_timed_out(),
            Timer::ExecutorRegistration {
                framework_id,
                executor_id,
                generation,
            } => self.executor_registration_timeout(&framework_id, &executor_id, generation),
            Timer::ExecutorShutdown {
                framework_id,
                executor_id,
                generation,
            } => self.executor_shutdown_timeout(&framework_id, &executor_id, generation),
            Timer::ShutdownDeadline => self.finish_shutdown(),
            _ => {}
        }
    }

    /// Posts `input` back to the loop after `delay`.
    pub fn after(&self, delay: Duration, timer: Timer) {
        let tx = self.inputs.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = tx.send(Input::Timer(timer));
        });
    }

    /// Sends a message to the current master.
    pub fn send_master<M: prost::Message + prost::Name>(&self, msg: &M) {
        self.transport
            .send(&self.master, &M::full_name(), msg.encode_to_vec());
    }

    /// Sends a message to any libprocess peer.
    pub fn send_to<M: prost::Message + prost::Name>(&self, to: &Upid, msg: &M) {
        self.transport
            .send(to, &M::full_name(), msg.encode_to_vec());
    }

    /// An executor of a framework.
    pub fn executor_of(&self, fw_id: &str, ex_id: &str) -> Option<&super::state::Executor> {
        self.frameworks.get(fw_id)?.executors.get(ex_id)
    }

    pub fn executor_mut_of(
        &mut self,
        fw_id: &str,
        ex_id: &str,
    ) -> Option<&mut super::state::Executor> {
        self.frameworks.get_mut(fw_id)?.executors.get_mut(ex_id)
    }

    /// The agent id, or "" before the first registration.
    pub fn agent_id(&self) -> String {
        self.id.clone().unwrap_or_default()
    }
}

fn signal(
    kind: tokio::signal::unix::SignalKind,
) -> Result<tokio::signal::unix::Signal, AgentError> {
    tokio::signal::unix::signal(kind).map_err(AgentError::Runtime)
}

/// `HOST:PORT` (or `master@HOST:PORT`) to the master's pid.
fn resolve_master(master: &str) -> Result<Upid, AgentError> {
    let err = |message: String| AgentError::Master {
        master: master.to_string(),
        message,
    };
    if master.starts_with("zk://") || master.starts_with("file://") {
        return Err(err(
            "ZooKeeper and file master detection are not supported yet; give HOST:PORT".into(),
        ));
    }
    let hostport = master.strip_prefix("master@").unwrap_or(master);
    let addr = hostport
        .to_socket_addrs()
        .map_err(|e| err(e.to_string()))?
        .find(SocketAddr::is_ipv4)
        .ok_or_else(|| err("no IPv4 address".into()))?;
    Ok(Upid {
        id: "master".to_string(),
        addr,
    })
}

/// The IP to advertise when none is given: the bound one, or when bound
/// to every address, the one the kernel would use to reach the master.
fn advertised_ip(bound: SocketAddr, master: SocketAddr) -> std::net::IpAddr {
    if !bound.ip().is_unspecified() {
        return bound.ip();
    }
    std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| {
            s.connect(master)?;
            s.local_addr()
        })
        .map(|a| a.ip())
        .unwrap_or(bound.ip())
}
