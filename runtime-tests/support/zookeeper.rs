//! A real ZooKeeper for the master detection tests: Debian's `zookeeper`
//! package run as a standalone server on loopback (its own port and data
//! dir per test), and masters joining its group the way Mesos masters do.
//!
//! [`ZkServer::start`] writes a `zoo.cfg` (`clientPortAddress=127.0.0.1`,
//! `tickTime=200`, so sessions of 1 s are allowed) and waits for `ruok`.
//! [`ZkServer::restart_fresh`] kills it and starts it again on the same
//! port with an empty data dir: every session the clients had is unknown
//! to it, so each of them expires when it reconnects.
//!
//! [`Contender`] is one master's membership: a session of its own and an
//! ephemeral sequential node `<path>/json.info_<seq>` holding the master's
//! `MasterInfo` as JSON, as `mesos-master` writes it (the group's node is
//! made first when missing, with ACLs for digest users if asked).
//! [`Contender::withdraw`] closes the session, which removes the node at
//! once (what a leader's crash does after the session timeout).

use butte::proto::mesos::{Address, MasterInfo};
use std::future::Future;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use zookeeper_client as zk;

const JAR: &str = "/usr/share/java/zookeeper.jar";

/// A standalone ZooKeeper server on 127.0.0.1.
pub struct ZkServer {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
    generation: u32,
}

impl ZkServer {
    /// Starts a server in DIR (its config, data and log) on a free port;
    /// installs Debian's `zookeeper` when it is missing.
    pub fn start(dir: &Path) -> ZkServer {
        ensure_installed();
        let mut server = ZkServer {
            port: super::master::free_port(),
            dir: dir.to_path_buf(),
            child: None,
            generation: 0,
        };
        server.spawn();
        server
    }

    /// A server that is not running yet, on a port of its own: `spawn`
    /// starts it (for "ZooKeeper down at start").
    pub fn not_started(dir: &Path) -> ZkServer {
        ensure_installed();
        ZkServer {
            port: super::master::free_port(),
            dir: dir.to_path_buf(),
            child: None,
            generation: 0,
        }
    }

    /// `127.0.0.1:PORT`
    pub fn hostport(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `zk://[AUTH@]127.0.0.1:PORT/PATH`
    pub fn url(&self, auth: Option<&str>, path: &str) -> String {
        match auth {
            Some(a) => format!("zk://{a}@{}{path}", self.hostport()),
            None => format!("zk://{}{path}", self.hostport()),
        }
    }

    /// Starts the server (a fresh data dir each time) and waits until it
    /// answers `ruok`.
    pub fn spawn(&mut self) {
        self.generation += 1;
        let data = self.dir.join(format!("zk-data-{}", self.generation));
        std::fs::create_dir_all(&data).unwrap();
        let cfg = self.dir.join("zoo.cfg");
        std::fs::write(
            &cfg,
            format!(
                "dataDir={}\nclientPort={}\nclientPortAddress=127.0.0.1\ntickTime=200\n\
                 minSessionTimeout=400\nadmin.enableServer=false\n\
                 4lw.commands.whitelist=ruok\n",
                data.display(),
                self.port
            ),
        )
        .unwrap();
        let log =
            std::fs::File::create(self.dir.join(format!("zk-{}.log", self.generation))).unwrap();
        let child = Command::new("java")
            .args([
                "-Xmx256m",
                "-cp",
                JAR,
                "org.apache.zookeeper.server.ZooKeeperServerMain",
            ])
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start java (ZooKeeper)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.ruok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "ZooKeeper on {} did not answer ruok within 30 s",
            self.hostport()
        );
    }

    fn ruok(&self) -> bool {
        let addr: SocketAddr = self.hostport().parse().unwrap();
        let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        let mut out = String::new();
        s.write_all(b"ruok").is_ok() && s.read_to_string(&mut out).is_ok() && out == "imok"
    }

    /// Kills the server (SIGKILL: no session is closed).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills the server and starts it again with an empty data dir: every
    /// client session expires when it reconnects.
    pub fn restart_fresh(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for ZkServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn ensure_installed() {
    if Path::new(JAR).exists() {
        return;
    }
    let ok = Command::new("apt-get")
        .args(["install", "-y", "-qq", "zookeeper"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok && Path::new(JAR).exists(),
        "Debian's zookeeper package is needed ({JAR})"
    );
}

/// The runtime the ZooKeeper clients of a test run on.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    })
}

/// Polls a `zookeeper-client` future with tokio as its task spawner.
struct OnTokio<F>(Pin<Box<F>>);

struct TokioSpawner;

impl spawns_core::Spawn for TokioSpawner {
    fn spawn(&self, task: spawns_core::Task) {
        tokio::spawn(Box::into_pin(task.future));
    }
}

impl<F: Future> Future for OnTokio<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let _scope = spawns_core::enter(&TokioSpawner);
        self.0.as_mut().poll(cx)
    }
}

fn block<F: Future + Send>(f: F) -> F::Output
where
    F::Output: Send,
{
    runtime().block_on(OnTokio(Box::pin(f)))
}

/// A master's membership in the group (see the module doc).
pub struct Contender {
    client: Option<zk::Client>,
    pub node: String,
}

/// The `MasterInfo` a master at ADDR writes.
pub fn master_info(addr: SocketAddr) -> MasterInfo {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(v4) => u32::from_le_bytes(v4.octets()),
        std::net::IpAddr::V6(_) => 0,
    };
    MasterInfo {
        id: butte::support::random_uuid().unwrap(),
        ip,
        port: u32::from(addr.port()),
        pid: Some(format!("master@{addr}")),
        hostname: Some("localhost".into()),
        version: Some("1.11.0".into()),
        address: Some(Address {
            hostname: Some("localhost".into()),
            ip: Some(addr.ip().to_string()),
            port: i32::from(addr.port()),
        }),
        ..Default::default()
    }
}

impl Contender {
    /// Joins the group at PATH of the server at HOSTPORT as the master at
    /// ADDR. DIGEST (`user:pass`): the session authenticates with it, and
    /// a group node made here is readable by that user only.
    pub fn join(hostport: &str, path: &str, addr: SocketAddr, digest: Option<&str>) -> Contender {
        let data = serde_json::to_vec(&butte::proto::to_json(&master_info(addr))).unwrap();
        let hostport = hostport.to_string();
        let path = path.to_string();
        let digest = digest.map(str::to_string);
        block(async move {
            // A loaded machine (the whole suite, JVMs starting) can make a
            // session slow to come: retry for up to 30 s.
            let deadline = Instant::now() + Duration::from_secs(30);
            let client = loop {
                let mut connector =
                    zk::Client::connector().with_session_timeout(Duration::from_secs(5));
                if let Some(d) = &digest {
                    connector = connector.with_auth("digest", d.as_bytes());
                }
                match connector.connect(&hostport).await {
                    Ok(client) => break client,
                    Err(e) if Instant::now() < deadline => {
                        eprintln!("contender: connect to {hostport}: {e}; retrying")
                    }
                    Err(e) => panic!("contender: connect to {hostport}: {e}"),
                }
            };
            let acls = if digest.is_some() {
                zk::Acls::creator_all()
            } else {
                zk::Acls::anyone_all()
            };
            let parent = zk::CreateMode::Persistent.with_acls(acls);
            match client.mkdir(&path, &parent).await {
                Ok(()) | Err(zk::Error::NodeExists) => {}
                Err(e) => panic!("contender: make {path}: {e}"),
            }
            let options = zk::CreateMode::EphemeralSequential.with_acls(acls);
            let prefix = format!("{path}/json.info_");
            let (_, seq) = client
                .create(&prefix, &data, &options)
                .await
                .expect("contender: create the member node");
            Contender {
                client: Some(client),
                node: format!("{prefix}{seq}"),
            }
        })
    }

    /// Leaves the group: the node is deleted (when this returns, it is
    /// gone) and the session closed.
    pub fn withdraw(&mut self) {
        if let Some(client) = self.client.take() {
            let node = self.node.clone();
            block(async move {
                match client.delete(&node, None).await {
                    // Gone already when the session expired.
                    Ok(()) | Err(zk::Error::NoNode | zk::Error::SessionExpired) => {}
                    Err(e) => eprintln!("contender: delete {node}: {e}"),
                }
                drop(client);
            });
        }
    }
}

impl Drop for Contender {
    fn drop(&mut self) {
        self.withdraw();
    }
}
