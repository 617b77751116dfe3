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
use crate::wire::detector::MasterSpec;
use crate::wire::{Transport, Upid, WireEvent};
use std::collections::BTreeMap;
use std::net::SocketAddr;
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
        /// How long the steps of a successful launch took.
        timings: Option<crate::containerizer::mesos::LaunchTimings>,
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
    /// The master detector says which master leads now (`None`: none).
    Detected(Option<Upid>),
    /// An operator endpoint wants a copy of the state (`full`: with every
    /// framework, executor and task; else the figures only).
    Snapshot {
        full: bool,
        reply: oneshot::Sender<super::operator::Snapshot>,
    },
}

/// The timers; each carries the generation it was armed in, so a timer
/// outlived by a state change is ignored.
pub enum Timer {
    Registration(u64),
    /// Start an authentication attempt (after the post-detection delay).
    Authenticate {
        generation: u64,
        min: Duration,
        max: Duration,
    },
    /// An attempt's time is up: retry with a wider range unless it
    /// completed.
    AuthenticationTimeout {
        generation: u64,
        min: Duration,
        max: Duration,
    },
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
    /// The leading master, once detected.
    pub master: Option<Upid>,
    pub transport: Transport,
    pub containerizer: Arc<MesosContainerizer>,
    pub info: SlaveInfo,
    /// Mesos' `resource_version_uuid`: a random UUID made at start, sent
    /// with every (re-)registration (the agent's resources never change
    /// while it runs: no operations are applied).
    pub resource_version: Vec<u8>,
    /// The id the master gave (or the recovered one).
    pub id: Option<String>,
    pub link: Link,
    /// `--credential`: authenticate (CRAM-MD5) before every
    /// (re-)registration.
    pub credential: Option<crate::wire::authentication::Credential>,
    /// Authentication with the current master, when a credential is set.
    pub auth: super::authenticate::AuthState,
    /// The registration backoff ceiling of the next retry.
    pub backoff: Duration,
    pub registration_generation: u64,
    pub ping_generation: u64,
    pub ping_timeout: Duration,
    pub frameworks: BTreeMap<String, Framework>,
    pub updates: StatusUpdateManager,
    /// Sandboxes and checkpoints scheduled for removal.
    pub gc: super::gc::GarbageCollector,
    pub inputs: mpsc::UnboundedSender<Input>,
    /// Set once a full shutdown (SIGUSR1, ShutdownMessage) began.
    pub shutting_down: bool,
    /// Set when the shutdown is complete: the loop returns.
    pub exit: bool,
    /// Container destructions under way (in blocking threads).
    pub destroying: Arc<std::sync::atomic::AtomicUsize>,
    /// Counters and history for the operator endpoints.
    pub operator: super::operator::Books,
    /// The flags as `/flags` shows them.
    pub operator_flags: Arc<BTreeMap<String, String>>,
    /// The drain the master asked for, while it lasts.
    pub drain: Option<super::drain::Drain>,
    /// Recovered with another (permitted) `SlaveInfo`: checkpointed once a
    /// master has taken it.
    pub reconfigured: bool,
}

impl Agent {
    /// Recovers, starts listening, registers, and runs the event loop.
    pub async fn start(config: AgentConfig) -> Result<(), AgentError> {
        config.disk.validate()?;
        let spec = MasterSpec::parse(&config.master).map_err(|e| AgentError::Master {
            master: crate::wire::detector::redacted(&config.master),
            message: e.to_string(),
        })?;
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
                .unwrap_or_else(|| advertised_ip(bound, spec.route_hint())),
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
        let credential = config.credential()?;
        let operator_auth = config
            .operator_authenticator()?
            .with_executor_key(executor_key.clone());
        let operator_flags = Arc::new(super::operator::flags(&config, bound));
        let containerizer = Arc::new(MesosContainerizer::new(MesosConfig {
            work_dir: config.work_dir.clone(),
            runtime_dir: config.runtime_dir.clone(),
            runtime: config.runtime.clone(),
            fetcher: config.fetcher.clone(),
            pull: config.pull.clone(),
            butte: config.runtime.helper.clone(),
            docker_registry: config.docker_registry.clone(),
            switch_user: config.switch_user,
            pids_limit: None,
            executor_env: config.executor_environment_variables.clone(),
            seccomp: config.seccomp.clone(),
            executor_secret: Some(executor_key.clone()),
            container_logger: config.container_logger.clone(),
            cni: config.cni.clone(),
            docker: config.docker.clone(),
            nested_task_groups: config.task_group_nested_containers,
        })?);
        if let Some(gc) = config.image_gc.clone() {
            tokio::spawn(collect_images(containerizer.clone(), gc));
        }
        let info = SlaveInfo {
            hostname: config.hostname.clone(),
            port: Some(i32::from(advertised.port())),
            resources: resources::total(
                config.resources.as_deref(),
                &config.default_role,
                &config.work_dir,
            )?,
            attributes: resources::parse_attributes(config.attributes.as_deref())?,
            checkpoint: Some(true),
            ..Default::default()
        };
        let work = WorkDir::new(&config.work_dir);
        let mut agent = Agent {
            gc: super::gc::GarbageCollector::new(&work, &config.disk),
            work,
            updates: StatusUpdateManager::new(
                config.status_update_retry_interval,
                STATUS_UPDATE_RETRY_MAX.max(config.status_update_retry_interval),
            ),
            backoff: config.registration_backoff_factor,
            ping_timeout: super::master::DEFAULT_PING_TIMEOUT,
            config,
            self_pid,
            master: None,
            transport,
            containerizer,
            info,
            resource_version: crate::support::random_uuid_bytes()
                .map_err(|e| AgentError::Flag {
                    flag: "resources",
                    message: format!("make a resource version uuid: {e}"),
                })?
                .to_vec(),
            id: None,
            link: Link::Registering,
            credential,
            auth: Default::default(),
            registration_generation: 0,
            ping_generation: 0,
            frameworks: BTreeMap::new(),
            inputs,
            shutting_down: false,
            exit: false,
            destroying: Arc::default(),
            operator: super::operator::Books::new(),
            operator_flags,
            drain: None,
            reconfigured: false,
        };
        let recovery = std::time::Instant::now();
        agent.recover().await?;
        agent.operator.recovery_time_secs = recovery.elapsed().as_secs_f64();
        if agent.config.recover == super::config::RecoverMode::Cleanup {
            return agent.finish_cleanup().await;
        }
        let standalone = Arc::new(super::standalone::Standalone::new(
            agent.containerizer.clone(),
            agent.work.clone(),
            agent.executor_env(false),
        ));
        standalone.recover();
        let nested = Arc::new(super::nested::Nested::new(
            agent.containerizer.clone(),
            agent.work.clone(),
            agent.executor_env(false),
        ));
        nested.recover();
        agent.gc_recover().await;
        if agent.config.disk.enforce_container_disk_quota {
            agent.recover_disk_quotas();
            tokio::spawn(
                agent
                    .containerizer
                    .clone()
                    .enforce_disk_quotas(agent.config.disk.container_disk_watch_interval),
            );
        }

        let (_stop_tx, stop_rx) = watch::channel(false);
        let handler = Arc::new(http::Router::new(
            agent.inputs.clone(),
            agent.config.executor_heartbeat_interval,
            agent
                .config
                .authenticate_http_executors
                .then_some(executor_key),
            http::Operator {
                api: Arc::new(super::operator::Bridge {
                    inputs: agent.inputs.clone(),
                    containerizer: agent.containerizer.clone(),
                    fetcher_cache_size: agent.config.fetcher.cache_size,
                    task_bytes: Default::default(),
                    sessions: Default::default(),
                    standalone,
                    nested,
                    image_gc_excluded: agent
                        .config
                        .image_gc
                        .as_ref()
                        .map(|g| g.excluded_images.clone())
                        .unwrap_or_default(),
                }),
                auth: operator_auth,
            },
        ));
        tokio::spawn(crate::wire::serve(
            listener,
            AGENT_ID.to_string(),
            wire_tx,
            handler,
            stop_rx,
        ));
        tracing::info!(pid = %agent.self_pid, "agent started");
        let detected = agent.inputs.clone();
        crate::wire::detector::spawn(spec, agent.config.zk_session_timeout, move |leader| {
            let _ = detected.send(Input::Detected(leader));
        });
        // Under systemd (Type=notify): up once recovered and listening, not
        // only once registered, so that a master outage does not fail the
        // unit's start; the registration shows in `systemctl status`.
        notify("READY=1\nSTATUS=recovered; waiting for the leading master");

        let mut sigterm = signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut sigint = signal(tokio::signal::unix::SignalKind::interrupt())?;
        let mut sigusr1 = signal(tokio::signal::unix::SignalKind::user_defined1())?;
        let tick = (agent.config.status_update_retry_interval / 4)
            .clamp(Duration::from_millis(50), Duration::from_secs(1));
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // systemd's watchdog (`WatchdogSec=`): pinged from the event loop
        // itself, so that a loop that stops turning gets the agent
        // restarted (its executors stay, as on any restart).
        let watchdog = crate::support::notify::watchdog_interval();
        let mut pinged = tokio::time::Instant::now();
        loop {
            tokio::select! {
                Some(event) = wire_rx.recv() => agent.handle(Input::Wire(event)),
                Some(input) = rx.recv() => agent.handle(input),
                _ = ticker.tick() => {
                    if watchdog.is_some_and(|every| pinged.elapsed() >= every) {
                        notify("WATCHDOG=1");
                        pinged = tokio::time::Instant::now();
                    }
                    agent.retry_updates();
                    agent.check_subscriptions();
                    agent.gc_tick();
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
                // The last messages (UnregisterSlaveMessage) leave first,
                // however loaded the machine.
                agent.transport.flush(Duration::from_secs(5)).await;
                tokio::time::sleep(Duration::from_millis(50)).await;
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
                timings,
            } => {
                if let Some(t) = timings {
                    self.operator.counters.timings.record(&t);
                }
                self.launched(&framework_id, &executor_id, &container_id, result)
            }
            Input::Terminated {
                framework_id,
                executor_id,
                container_id,
                termination,
            } => self.terminated(&framework_id, &executor_id, &container_id, termination),
            Input::Timer(timer) => self.timer(timer),
            Input::Detected(leader) => self.detected(leader),
            Input::Snapshot { full, reply } => {
                let _ = reply.send(self.snapshot(full));
            }
        }
    }

    fn timer(&mut self, timer: Timer) {
        match timer {
            Timer::Registration(g) if g == self.registration_generation => {
                self.retry_registration()
            }
            Timer::PingTimeout(g) if g == self.ping_generation => self.ping_timed_out(),
            Timer::Authenticate {
                generation,
                min,
                max,
            } if generation == self.auth.generation => self.authenticate(min, max),
            Timer::AuthenticationTimeout {
                generation,
                min,
                max,
            } if generation == self.auth.generation => self.authentication_timed_out(min, max),
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

    /// Sends a message to the current master (none: dropped; everything
    /// sent to a master is sent again once one is detected).
    pub fn send_master<M: prost::Message + prost::Name>(&self, msg: &M) {
        if let Some(master) = &self.master {
            self.transport
                .send(master, &M::full_name(), msg.encode_to_vec());
        }
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

/// `--image_gc_config`: looks at the image store's disk every interval and
/// collects unused images past the headroom (off the event loop).
async fn collect_images(
    containerizer: Arc<MesosContainerizer>,
    config: crate::containerizer::mesos::ImageGcConfig,
) {
    let mut ticker = tokio::time::interval(config.image_disk_watch_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let (c, config) = (containerizer.clone(), config.clone());
        match tokio::task::spawn_blocking(move || c.collect_images(&config)).await {
            Ok(Ok(Some(g))) => tracing::info!(
                blobs = g.blobs,
                layers = g.layers,
                bytes = g.bytes,
                "image garbage collection: the store's disk passed the headroom"
            ),
            Ok(Ok(None)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "image garbage collection failed"),
            Err(e) => tracing::warn!(error = %e, "image garbage collection panicked"),
        }
    }
}

fn signal(
    kind: tokio::signal::unix::SignalKind,
) -> Result<tokio::signal::unix::Signal, AgentError> {
    tokio::signal::unix::signal(kind).map_err(AgentError::Runtime)
}

/// Tells systemd `state` when it started the agent as `Type=notify`.
pub(super) fn notify(state: &str) {
    if let Err(e) = crate::support::notify::notify(state) {
        tracing::warn!("systemd notification: {e}");
    }
}

/// The IP to advertise when none is given: the bound one, or when bound
/// to every address, the one the kernel would use to reach the master (or
/// the first ZooKeeper server).
fn advertised_ip(bound: SocketAddr, route: Option<SocketAddr>) -> std::net::IpAddr {
    let Some(master) = route.filter(|_| bound.ip().is_unspecified()) else {
        return bound.ip();
    };
    std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| {
            s.connect(master)?;
            s.local_addr()
        })
        .map(|a| a.ip())
        .unwrap_or(bound.ip())
}
