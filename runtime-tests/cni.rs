//! Container networking (issue 12): network namespaces pinned under the
//! runtime dir, CNI networks for the agent's containers, port mappings,
//! status `network_infos`, and cleanup with no residue.
//!
//! Every test here first moves into a network namespace of its own: it
//! re-runs itself (this test binary, filtered to the one test) under
//! `unshare --net`, so the agent, its fake master, the bridges, veths,
//! iptables rules and addresses it makes exist only there and no packet
//! leaves it. The host's network namespace is never touched.

use crate::support::master::{
    self, command_task, describe, framework, image_container, status, AgentProcess, FakeMaster,
    WAIT,
};
use crate::support::registry::Registry;
use crate::support::{busybox, busybox_oci, enabled, text, Fixture};
use butte::proto::mesos::internal::StatusUpdate;
use butte::proto::mesos::network_info::PortMapping;
use butte::proto::mesos::{
    container_info, ContainerInfo, Label, Labels, NetworkInfo, TaskInfo, TaskState,
};
use butte::runtime::{create_netns, netns_pinned, remove_netns, ExitStatus, Network, Rootfs};
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

const NETNS_ENV: &str = "BUTTE_TEST_OWN_NETNS";

/// True in the copy of test `name` that runs in its own network
/// namespace (with `lo` up): the caller then runs the test's body. False
/// in the original, after the copy has passed (its failure fails this).
pub(crate) fn in_own_netns(name: &str) -> bool {
    in_own_netns_of("cni", name)
}

/// [`in_own_netns`] for test `name` of module `module`.
pub(crate) fn in_own_netns_of(module: &str, name: &str) -> bool {
    if std::env::var(NETNS_ENV).as_deref() == Ok(name) {
        let host = fs::read_link("/proc/1/ns/net").ok();
        let mine = fs::read_link("/proc/self/ns/net").ok();
        assert_ne!(host, mine, "not in a network namespace of its own");
        let up = Command::new("ip")
            .args(["link", "set", "lo", "up"])
            .status();
        assert!(up.is_ok_and(|s| s.success()), "bring lo up");
        return true;
    }
    let exe = std::env::current_exe().unwrap();
    let status = Command::new("unshare")
        .arg("--net")
        .arg("--")
        .arg(exe)
        .args([
            "--exact",
            &format!("{module}::{name}"),
            "--test-threads=1",
            "--nocapture",
        ])
        .env(NETNS_ENV, name)
        .status()
        .expect("run unshare");
    assert!(
        status.success(),
        "{name} in its own network namespace: {status}"
    );
    false
}

/// Interface names of a `/proc/net/dev` listing.
fn interfaces(proc_net_dev: &str) -> Vec<String> {
    proc_net_dev
        .lines()
        .skip(2)
        .filter(|l| l.contains(':'))
        .map(|l| l.split(':').next().unwrap().trim().to_string())
        .collect()
}

/// A sandbox joins a pinned namespace: it sees the interfaces made there
/// (with `lo` up), the pin outlives the sandbox, and removing it leaves
/// no mount.
#[test]
fn sandbox_joins_a_pinned_network_namespace() {
    if !enabled() || !in_own_netns("sandbox_joins_a_pinned_network_namespace") {
        return;
    }
    let fx = Fixture::new();
    let pin = fx.work.path().join("ns");
    create_netns(&pin).unwrap();
    assert!(netns_pinned(&pin));
    // A second pin at the same path is refused, and the first stays.
    assert!(create_netns(&pin).is_err());
    assert!(netns_pinned(&pin));
    let add = Command::new("nsenter")
        .arg(format!("--net={}", pin.display()))
        .args([
            "ip", "link", "add", "name", "probe0", "type", "veth", "peer", "name", "probe1",
        ])
        .status()
        .unwrap();
    assert!(add.success());
    for round in 0..2 {
        let mut spec = fx.spec(&[
            "sh",
            "-c",
            "cat /proc/net/dev; cat /sys/class/net/lo/operstate /sys/class/net/lo/flags",
        ]);
        spec.rootfs = Some(Rootfs {
            path: busybox(),
            mount: None,
            readonly: false,
        });
        spec.network = Network::Join(pin.clone());
        let (stdio, out, err) = fx.stdio(&format!("join{round}"));
        let rec = fx.runtime.launch(&spec, stdio).unwrap().wait().unwrap();
        assert_eq!(
            rec.status,
            ExitStatus::Exited(0),
            "{}",
            fs::read_to_string(err).unwrap()
        );
        let text = fs::read_to_string(out).unwrap();
        let mut names = interfaces(&text);
        names.sort();
        assert_eq!(names, ["lo", "probe0", "probe1"], "{text}");
        // IFF_UP is bit 0 of the flags.
        let flags = text.lines().last().unwrap().trim_start_matches("0x");
        assert_eq!(
            u32::from_str_radix(flags, 16).unwrap() & 1,
            1,
            "lo is down: {text}"
        );
    }
    // A missing pin is a clear launch error.
    let mut spec = fx.spec(&["true"]);
    spec.network = Network::Join(fx.work.path().join("gone"));
    let (stdio, _, _) = fx.stdio("gone");
    let e = fx.runtime.launch(&spec, stdio).unwrap_err().to_string();
    assert!(
        e.contains("join network namespace") && e.contains("gone"),
        "{e}"
    );
    remove_netns(&pin).unwrap();
    assert!(!pin.exists());
    remove_netns(&pin).unwrap();
    fx.finish();
}

// --- the agent's containers on CNI networks ---------------------------------------

/// The bridge's address: the agent listens on it, so that executors in
/// their own network namespaces reach it through the bridge.
pub(crate) const GATEWAY: &str = "10.77.0.1";

/// The networks of a test: `testnet` (Debian's bridge + host-local +
/// portmap, on bridge `btest0`, made beforehand with the gateway address)
/// and `broken` (a plugin that fails every ADD with a CNI error).
pub(crate) struct TestNet {
    conf_dir: PathBuf,
    plugins: String,
    /// host-local's allocations.
    ipam_dir: PathBuf,
}

impl TestNet {
    pub(crate) fn new(fx: &Fixture) -> TestNet {
        for args in [
            &["link", "add", "name", "btest0", "type", "bridge"][..],
            &["addr", "add", "10.77.0.1/24", "dev", "btest0"],
            &["link", "set", "btest0", "up"],
        ] {
            let s = Command::new("ip").args(args).status().unwrap();
            assert!(s.success(), "ip {args:?}");
        }
        let conf_dir = fx.work.path().join("cni-conf");
        let plugin_dir = fx.work.path().join("cni-bin");
        let ipam_dir = fx.work.path().join("cni-ipam");
        fs::create_dir_all(&conf_dir).unwrap();
        fs::create_dir_all(&plugin_dir).unwrap();
        let testnet = serde_json::json!({
            "cniVersion": "1.0.0",
            "name": "testnet",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": "btest0",
                    "isGateway": true,
                    "hairpinMode": true,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": "10.77.0.0/24", "gateway": GATEWAY}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": ipam_dir,
                    },
                    "dns": {"nameservers": ["10.77.0.53"], "search": ["test.local"]},
                },
                {"type": "portmap", "capabilities": {"portMappings": true}},
            ],
        });
        fs::write(conf_dir.join("10-testnet.conflist"), testnet.to_string()).unwrap();
        fs::write(
            conf_dir.join("20-broken.conf"),
            r#"{"cniVersion":"1.0.0","name":"broken","type":"failer"}"#,
        )
        .unwrap();
        let failer = plugin_dir.join("failer");
        fs::write(
            &failer,
            "#!/bin/sh\ncat >/dev/null\nif [ \"$CNI_COMMAND\" = ADD ]; then\n  \
             echo '{\"cniVersion\":\"1.0.0\",\"code\":11,\"msg\":\"no addresses left in pool\"}'\n  exit 1\nfi\n",
        )
        .unwrap();
        fs::set_permissions(&failer, fs::Permissions::from_mode(0o755)).unwrap();
        TestNet {
            conf_dir,
            plugins: format!("{}:/usr/lib/cni", plugin_dir.display()),
            ipam_dir,
        }
    }

    pub(crate) fn agent_flags(&self) -> Vec<String> {
        vec![
            "--ip".into(),
            GATEWAY.into(),
            "--network_cni_config_dir".into(),
            self.conf_dir.display().to_string(),
            "--network_cni_plugins_dir".into(),
            self.plugins.clone(),
        ]
    }

    /// What containers left: veths, host-local allocations, per-container
    /// iptables rules (the plugins tag them with the container id),
    /// namespace pins and runtime dirs.
    pub(crate) fn residue(&self, agent: &AgentProcess) -> Vec<String> {
        let mut left = Vec::new();
        let out = Command::new("ip")
            .args(["-o", "link", "show", "type", "veth"])
            .output()
            .unwrap();
        left.extend(text(&out.stdout).lines().map(|l| format!("veth: {l}")));
        if let Ok(rd) = fs::read_dir(self.ipam_dir.join("testnet")) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name != "lock" && !name.starts_with("last_reserved_ip") {
                    left.push(format!("ip allocation: {name}"));
                }
            }
        }
        let rules = Command::new("iptables-save").output().unwrap();
        left.extend(
            text(&rules.stdout)
                .lines()
                .filter(|l| l.contains("id: \\\"") || l.contains("id: \""))
                .map(|l| format!("iptables: {l}")),
        );
        // The built-in bridge: its allocations under the agent's work dir
        // and its published ports (elements of nftables maps).
        left.extend(builtin_allocations(&agent.work_dir.join("cni/networks")));
        left.extend(builtin_ports());
        let run = agent.runtime_dir.display().to_string();
        left.extend(
            fs::read_to_string("/proc/self/mountinfo")
                .unwrap()
                .lines()
                .filter(|l| l.contains(&run))
                .map(|l| format!("mount: {l}")),
        );
        if let Ok(rd) = fs::read_dir(agent.runtime_dir.join("containers")) {
            left.extend(
                rd.flatten()
                    .map(|e| format!("runtime dir: {}", e.path().display())),
            );
        }
        left
    }

    /// Waits (15 s at most) until nothing is left.
    pub(crate) fn assert_no_residue(&self, agent: &AgentProcess) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let left = self.residue(agent);
            if left.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "left behind: {left:#?}\n{}",
                agent.log_tail(40)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Addresses the built-in bridge holds under DATA_DIR (its `dataDir`).
pub(crate) fn builtin_allocations(data_dir: &std::path::Path) -> Vec<String> {
    match fs::read_dir(data_dir.join("bridge")) {
        Ok(rd) => rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("10."))
            .map(|n| format!("built-in bridge allocation: {n}"))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Ports the built-in bridge publishes: the elements of its nftables
/// maps (`host port : address . port`); none without its table.
pub(crate) fn builtin_ports() -> Vec<String> {
    let out = Command::new("nft")
        .args(["list", "table", "ip", "butte"])
        .output()
        .unwrap();
    text(&out.stdout)
        .split(['{', ',', '}'])
        .map(str::trim)
        .filter(|e| e.contains(" : ") && e.contains(" . ") && !e.starts_with("type"))
        .map(|e| format!("nft port: {e}"))
        .collect()
}

/// A command task on NETWORK, with host ports mapped to container ports.
fn net_task(id: &str, cmd: &str, network: &str, ports: &[(u32, u32)]) -> TaskInfo {
    let mut t = command_task(id, cmd);
    t.container = Some(ContainerInfo {
        r#type: container_info::Type::Mesos as i32,
        hostname: Some(format!("{id}-host")),
        network_infos: vec![NetworkInfo {
            name: Some(network.into()),
            labels: Some(Labels {
                labels: vec![Label {
                    key: "team".into(),
                    value: Some("blue".into()),
                }],
            }),
            port_mappings: ports
                .iter()
                .map(|&(host_port, container_port)| PortMapping {
                    host_port,
                    container_port,
                    protocol: Some("tcp".into()),
                })
                .collect(),
            ..Default::default()
        }],
        ..Default::default()
    });
    t
}

/// The IPv4 addresses in an update's `container_status.network_infos`,
/// with the network names.
pub(crate) fn addresses(u: &StatusUpdate) -> Vec<(String, String)> {
    status(u)
        .container_status
        .iter()
        .flat_map(|c| &c.network_infos)
        .flat_map(|n| {
            n.ip_addresses.iter().map(move |a| {
                (
                    n.name.clone().unwrap_or_default(),
                    a.ip_address.clone().unwrap_or_default(),
                )
            })
        })
        .collect()
}

/// GET / from ADDR, retried for 15 s; the body.
pub(crate) fn http_get(addr: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got = TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(2))
            .and_then(|mut c| {
                c.set_read_timeout(Some(Duration::from_secs(5)))?;
                c.write_all(b"GET /index.html HTTP/1.0\r\n\r\n")?;
                let mut s = String::new();
                c.read_to_string(&mut s)?;
                Ok(s)
            });
        match got {
            Ok(s) if s.contains("200") => return s,
            other => assert!(Instant::now() < deadline, "GET {addr}: {other:?}"),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The executor of the container an update names (its
/// `container_status.container_id`), found in the container's cgroup.
fn executor_pid(fx: &Fixture, u: &StatusUpdate) -> i32 {
    let id = status(u)
        .container_status
        .as_ref()
        .and_then(|c| c.container_id.as_ref())
        .map(|c| c.value.clone())
        .expect("container_status.container_id");
    let pids = master::executor_pids(&format!("{}/{id}", fx.parent));
    assert_eq!(pids.len(), 1, "executors of {id}: {pids:?}");
    pids[0]
}

pub(crate) fn start_networked(extra: &[&str]) -> (Fixture, FakeMaster, AgentProcess, TestNet) {
    let fx = Fixture::new();
    let net = TestNet::new(&fx);
    let master = FakeMaster::start(0);
    let mut flags = net.agent_flags();
    flags.extend(extra.iter().map(|s| s.to_string()));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let agent = AgentProcess::start(&fx, &master, &flags);
    master.register();
    (fx, master, agent, net)
}

/// A task on a bridge network gets an address, which reaches the master in
/// TASK_RUNNING's `container_status.network_infos`; its server answers at
/// that address, through a host port mapped by portmap, and to a second
/// task on the network; it has its own
/// /etc/hostname, /etc/hosts and /etc/resolv.conf (the network's DNS);
/// killing it leaves nothing behind.
#[test]
fn task_on_a_bridge_network_gets_an_ip_and_a_mapped_port() {
    if !enabled() || !in_own_netns("task_on_a_bridge_network_gets_an_ip_and_a_mapped_port") {
        return;
    }
    let registry = Registry::start();
    registry.push(&busybox_oci(), "1", "library/busybox:1");
    let (fx, master, agent, net) = start_networked(&["--docker_registry", &registry.url()]);
    let fw = framework("cni");
    let cmd = "echo served-by-task > index.html; cat /etc/hostname /etc/hosts /etc/resolv.conf > etc.txt; \
               exec /usr/bin/python3 -m http.server 80 --bind 0.0.0.0";
    let task = net_task("web", cmd, "testnet", &[(18080, 80)]);
    master.run_task(&fw, &task);
    master.expect_ack("web", TaskState::TaskStarting);
    let running = master.expect_ack("web", TaskState::TaskRunning);
    let addrs = addresses(&running);
    assert_eq!(addrs.len(), 1, "{}", describe(&running));
    let (name, ip) = &addrs[0];
    assert_eq!(name, "testnet");
    assert!(ip.starts_with("10.77.0."), "{ip}");
    let cs = status(&running).container_status.clone().unwrap();
    assert!(cs.container_id.is_some(), "{cs:?}");
    // Labels and port mappings asked for are reported back.
    let info = &cs.network_infos[0];
    assert_eq!(info.port_mappings[0].host_port, 18080);
    assert_eq!(info.labels.as_ref().unwrap().labels[0].key, "team");

    assert!(http_get(&format!("{ip}:80")).contains("served-by-task"));
    assert!(http_get(&format!("{GATEWAY}:18080")).contains("served-by-task"));
    let sandbox = agent.sandbox(&master.slave_id(), &fw, "web");
    let etc = fs::read_to_string(sandbox.join("etc.txt")).unwrap();
    // While it runs, the residue check sees every kind of thing it counts.
    let live = net.residue(&agent);
    for kind in [
        "veth:",
        "ip allocation:",
        "iptables:",
        "mount:",
        "runtime dir:",
    ] {
        assert!(
            live.iter().any(|l| l.starts_with(kind)),
            "no {kind} seen while the task runs: {live:#?}"
        );
    }
    assert!(etc.starts_with("web-host\n"), "{etc}");
    assert!(etc.contains(&format!("{ip} web-host")), "{etc}");
    assert!(etc.contains("nameserver 10.77.0.53"), "{etc}");
    assert!(etc.contains("search test.local"), "{etc}");
    // The host's own files are untouched.
    assert_ne!(
        fs::read_to_string("/etc/hostname").unwrap_or_default(),
        "web-host\n"
    );

    // A second task on the network, in the busybox image, reaches the
    // first at its address; it too sees its own /etc files, not the
    // image's.
    let fetch = format!(
        "cd $MESOS_SANDBOX; wget -q -O got.txt http://{ip}:80/index.html; cat /etc/hostname /etc/hosts /etc/resolv.conf > etc.txt"
    );
    let mut client = net_task("client", &fetch, "testnet", &[]);
    let image = image_container("library/busybox:1");
    client.container.as_mut().unwrap().mesos = image.mesos;
    master.run_task(&fw, &client);
    let done = master.ack_until("client", TaskState::TaskFinished);
    let client_ip = &addresses(&done)[0].1;
    assert_ne!(client_ip, ip);
    let client_dir = agent.sandbox(&master.slave_id(), &fw, "client");
    let got = fs::read_to_string(client_dir.join("got.txt"));
    assert_eq!(got.unwrap_or_default(), "served-by-task\n");
    let etc = fs::read_to_string(client_dir.join("etc.txt")).unwrap_or_default();
    assert!(etc.starts_with("client-host\n"), "{etc}");
    assert!(etc.contains(&format!("{client_ip} client-host")), "{etc}");
    assert!(etc.contains("nameserver 10.77.0.53"), "{etc}");

    master.kill_task(&fw, "web", None);
    let killed = master.ack_until("web", TaskState::TaskKilled);
    assert_eq!(addresses(&killed), addrs, "{}", describe(&killed));
    net.assert_no_residue(&agent);
    master::finish(fx, master, agent);
}

/// A task group whose executor is on a CNI network: each task, a nested
/// container on the host filesystem or in its own image, shares the
/// executor's address, hostname (its UTS namespace) and `/etc/hosts`,
/// `/etc/hostname` and `/etc/resolv.conf`, as Mesos binds a parent's into
/// its nested containers.
#[test]
fn group_tasks_share_their_executors_network_and_its_etc_files() {
    if !enabled() || !in_own_netns("group_tasks_share_their_executors_network_and_its_etc_files") {
        return;
    }
    let registry = Registry::start();
    registry.push(&busybox_oci(), "1", "library/busybox:1");
    let (fx, master, agent, net) = start_networked(&["--docker_registry", &registry.url()]);
    let fw = framework("cni-group");
    let mut exec = master::executor("grp", &fw, None);
    exec.container = net_task("grp", "true", "testnet", &[]).container;
    let report = "cd $MESOS_SANDBOX; hostname > etc.txt; \
                  cat /etc/hostname /etc/hosts /etc/resolv.conf >> etc.txt; \
                  cat /proc/net/fib_trie >> etc.txt";
    let host = command_task("on-host", report);
    let mut in_image = command_task("in-image", report);
    in_image.container = Some(image_container("library/busybox:1"));
    master.run_task_group(&fw, &exec, &[host, in_image]);
    let mut ip = String::new();
    for id in ["on-host", "in-image"] {
        let running = master.ack_until(id, TaskState::TaskRunning);
        if ip.is_empty() {
            ip = addresses(&running)
                .first()
                .map(|(_, a)| a.clone())
                .unwrap_or_default();
        }
        master.ack_until(id, TaskState::TaskFinished);
    }
    assert!(ip.starts_with("10.77.0."), "{ip}");
    let sandbox = agent.sandbox(&master.slave_id(), &fw, "grp");
    for id in ["on-host", "in-image"] {
        let etc =
            fs::read_to_string(sandbox.join("tasks").join(id).join("etc.txt")).unwrap_or_default();
        assert!(etc.starts_with("grp-host\ngrp-host\n"), "{id}: {etc}");
        assert!(etc.contains(&format!("{ip} grp-host")), "{id}: {etc}");
        assert!(etc.contains("nameserver 10.77.0.53"), "{id}: {etc}");
        assert!(etc.contains(&ip), "{id}: {etc}");
    }
    net.assert_no_residue(&agent);
    master::finish(fx, master, agent);
}

/// A network whose plugin fails on ADD, and a network no config names:
/// TASK_FAILED naming the network (and the plugin's error), nothing left.
#[test]
fn failing_plugin_and_missing_network_fail_the_task_cleanly() {
    if !enabled() || !in_own_netns("failing_plugin_and_missing_network_fail_the_task_cleanly") {
        return;
    }
    let (fx, master, agent, net) = start_networked(&[]);
    let fw = framework("cni-fail");
    master.run_task(&fw, &net_task("badplug", "sleep 30", "broken", &[]));
    let u = master.expect_status("badplug", TaskState::TaskFailed, WAIT);
    master.ack(&u);
    let msg = status(&u).message.clone().unwrap_or_default();
    assert!(
        msg.contains("network broken")
            && msg.contains("plugin failer")
            && msg.contains("no addresses left in pool"),
        "{}",
        describe(&u)
    );
    master.run_task(&fw, &net_task("nonet", "sleep 30", "nosuchnet", &[]));
    let u = master.expect_status("nonet", TaskState::TaskFailed, WAIT);
    master.ack(&u);
    let msg = status(&u).message.clone().unwrap_or_default();
    assert!(msg.contains("nosuchnet"), "{}", describe(&u));
    net.assert_no_residue(&agent);
    master::finish(fx, master, agent);
}

/// The agent restarts while networked tasks run: one executor is killed
/// (SIGKILL) while the agent is down, and recovery DELs its network; the
/// other is recovered (its executor reconnects through the bridge), and
/// killing it later DELs its network, found from the runtime dir alone.
#[test]
fn networked_task_survives_an_agent_restart_and_is_deleted_later() {
    if !enabled() || !in_own_netns("networked_task_survives_an_agent_restart_and_is_deleted_later")
    {
        return;
    }
    let (fx, master, mut agent, net) = start_networked(&[]);
    let fw = framework("cni-restart");
    let mut launched = Vec::new();
    for (id, port) in [("stay", 18081), ("doomed", 18082)] {
        master.run_task(&fw, &net_task(id, "sleep 300", "testnet", &[(port, 81)]));
        master.expect_ack(id, TaskState::TaskStarting);
        let running = master.expect_ack(id, TaskState::TaskRunning);
        let a = addresses(&running);
        assert_eq!(a.len(), 1);
        let pid = executor_pid(&fx, &running);
        launched.push((a, pid));
    }
    let allocated = |ip: &str| net.ipam_dir.join("testnet").join(ip).exists();
    let (stay, _) = launched[0].clone();
    let (doomed, doomed_pid) = launched[1].clone();
    assert!(allocated(&stay[0].1) && allocated(&doomed[0].1));

    agent.terminate();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(doomed_pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    agent.restart();
    let rereg = master.reregister();
    assert!(
        rereg
            .tasks
            .iter()
            .any(|t| t.task_id.value == "stay" && t.state == TaskState::TaskRunning as i32),
        "stay not recovered"
    );
    // The dead one's network goes at recovery; the live one's stays.
    let deadline = Instant::now() + Duration::from_secs(15);
    while allocated(&doomed[0].1) {
        assert!(
            Instant::now() < deadline,
            "doomed's address still allocated; {}",
            agent.log_tail(40)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(allocated(&stay[0].1));
    let terminal = master.next_status(WAIT).expect("an update for doomed");
    assert_eq!(
        terminal.status.task_id.value,
        "doomed",
        "{}",
        describe(&terminal)
    );
    master.ack(&terminal);

    master.kill_task(&fw, "stay", None);
    let killed = master.ack_until("stay", TaskState::TaskKilled);
    assert_eq!(addresses(&killed), stay, "{}", describe(&killed));
    net.assert_no_residue(&agent);
    master::finish(fx, master, agent);
}

/// 100 networked launches killed, four at a time, and one whose executor
/// is SIGKILLed: every address is unique while in use, and nothing is
/// left at the end.
#[test]
fn many_networked_launches_leave_no_residue() {
    if !enabled() || !in_own_netns("many_networked_launches_leave_no_residue") {
        return;
    }
    let (fx, master, agent, net) = start_networked(&[]);
    let fw = framework("cni-many");
    const ROUNDS: usize = 25;
    const AT_ONCE: usize = 4;
    for round in 0..ROUNDS {
        let ids: Vec<String> = (0..AT_ONCE).map(|i| format!("t{round}-{i}")).collect();
        for id in &ids {
            master.run_task(&fw, &net_task(id, "sleep 30", "testnet", &[]));
        }
        let mut seen = Vec::new();
        for id in &ids {
            let running = master.ack_until(id, TaskState::TaskRunning);
            let a = addresses(&running);
            assert_eq!(a.len(), 1, "{}", describe(&running));
            assert!(!seen.contains(&a[0].1), "address {} given twice", a[0].1);
            seen.push(a[0].1.clone());
        }
        for id in &ids {
            master.kill_task(&fw, id, None);
        }
        for id in &ids {
            master.ack_until(id, TaskState::TaskKilled);
        }
    }
    // A task whose executor is killed with SIGKILL: its network goes too.
    master.run_task(&fw, &net_task("k9", "sleep 30", "testnet", &[(18083, 80)]));
    let running = master.ack_until("k9", TaskState::TaskRunning);
    let pid = executor_pid(&fx, &running);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let end = master.ack_until("k9", TaskState::TaskFailed);
    assert!(status(&end).message.is_some(), "{}", describe(&end));
    net.assert_no_residue(&agent);
    master::finish(fx, master, agent);
}

/// `butte run --net bridge -p HOST:CONTAINER`: the built-in bridge network
/// (no config names `bridge`), the task's server reached through the
/// mapped host port, its own /etc files; `--net` of an unknown network and
/// `-p` without a network are clear errors; nothing is left after any.
#[test]
fn butte_run_on_the_default_bridge_publishes_a_port() {
    if !enabled() || !in_own_netns("butte_run_on_the_default_bridge_publishes_a_port") {
        return;
    }
    let fx = Fixture::new();
    let conf = fx.work.path().join("no-configs");
    let run_dir = fx.work.path().join("run");
    fs::create_dir_all(&conf).unwrap();
    let butte = |args: &[&str]| {
        let mut c = Command::new(crate::support::BUTTE);
        c.arg("run")
            .arg("--work-dir")
            .arg(fx.work.path().join("w"))
            .arg("--cgroup-parent")
            .arg(&fx.parent)
            .arg("--runtime-dir")
            .arg(&run_dir)
            .arg("--cni-config-dir")
            .arg(&conf)
            .args(args);
        c
    };
    let mut server = butte(&[
        "--net",
        "bridge",
        "-p",
        "18090:80",
        "--hostname",
        "webby",
        "--",
        "sh",
        "-c",
        "echo from-butte-run > index.html; cat /etc/hosts > hosts.txt; exec /usr/bin/python3 -m http.server 80",
    ])
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    // From the gateway address and from localhost, as portmap did; while
    // it runs, its port is an element of the table's map.
    let got = std::panic::catch_unwind(|| {
        let body = http_get("10.87.0.1:18090");
        assert!(http_get("127.0.0.1:18090").contains("from-butte-run"));
        let ports = builtin_ports();
        assert!(
            ports.len() == 1 && ports[0].starts_with("nft port: 18090 : 10.87.0."),
            "{ports:?}"
        );
        body
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = server.wait().unwrap();
    let body = got.unwrap();
    assert!(body.contains("from-butte-run"), "{body}");
    // Python as pid 1 ignores SIGTERM: killed after the grace period.
    assert!(matches!(status.code(), Some(137 | 143)), "{status}");
    let sandboxes: Vec<PathBuf> = fs::read_dir(fx.work.path().join("w/containers"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    let hosts = fs::read_to_string(sandboxes[0].join("hosts.txt")).unwrap();
    assert!(
        hosts.contains("10.87.0.") && hosts.contains(" webby"),
        "{hosts}"
    );

    let out = butte(&["--net", "nosuch", "--", "true"]).output().unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert!(
        text(&out.stderr).contains("no cni network nosuch"),
        "{}",
        text(&out.stderr)
    );
    let out = butte(&["-p", "8080:80", "--", "true"]).output().unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert!(
        text(&out.stderr).contains("cni network"),
        "{}",
        text(&out.stderr)
    );

    let veths = Command::new("ip")
        .args(["-o", "link", "show", "type", "veth"])
        .output()
        .unwrap();
    assert_eq!(text(&veths.stdout), "", "veths left");
    // The built-in bridge is butte's own: no plugin made it, nothing of
    // the container is left (veth, address, published port).
    assert!(fs::read_dir(fx.work.path().join("w/cni/networks/bridge"))
        .unwrap()
        .flatten()
        .any(|e| e.file_name() == "last_reserved_ip.0"));
    let allocations = builtin_allocations(&fx.work.path().join("w/cni/networks"));
    assert!(allocations.is_empty(), "{allocations:?}");
    let ports = builtin_ports();
    assert!(ports.is_empty(), "{ports:?}");
    let rules = Command::new("iptables-save").output().unwrap();
    assert!(
        !text(&rules.stdout).contains("id: \\\""),
        "{}",
        text(&rules.stdout)
    );
    assert_eq!(fs::read_dir(run_dir.join("containers")).unwrap().count(), 0);
    fx.finish();
}

/// `--network_cni_root_dir_persist`: the state DEL needs lives under the
/// work dir. A "reboot" (the agent and the executor SIGKILLed, the
/// namespace pin and the whole runtime dir gone, as after a power loss)
/// still ends with the DEL that releases the address and the port rules.
#[test]
fn persisted_cni_state_releases_the_network_after_a_reboot() {
    if !enabled() || !in_own_netns("persisted_cni_state_releases_the_network_after_a_reboot") {
        return;
    }
    let (fx, master, mut agent, net) = start_networked(&["--network_cni_root_dir_persist"]);
    let fw = framework("cni-persist");
    master.run_task(&fw, &net_task("r", "sleep 300", "testnet", &[(18084, 80)]));
    let running = master.ack_until("r", TaskState::TaskRunning);
    let pid = executor_pid(&fx, &running);
    let cs = status(&running).container_status.clone().unwrap();
    let id = cs.container_id.unwrap().value;
    let state = agent
        .work_dir
        .join("cni/containers")
        .join(&id)
        .join("state.json");
    assert!(state.exists(), "no {}", state.display());
    assert!(!agent
        .runtime_dir
        .join("containers")
        .join(&id)
        .join("network/state.json")
        .exists());

    agent.kill();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        assert!(Instant::now() < deadline, "executor {pid} survives SIGKILL");
        std::thread::sleep(Duration::from_millis(50));
    }
    let pin = agent.runtime_dir.join("containers").join(&id).join("netns");
    assert!(Command::new("umount")
        .arg("-l")
        .arg(&pin)
        .status()
        .unwrap()
        .success());
    fs::remove_dir_all(&agent.runtime_dir).unwrap();
    // The address and the port rules outlive the namespace.
    assert!(!net.residue(&agent).is_empty());

    agent.restart();
    master.reregister();
    let end = master.next_status(WAIT).expect("a terminal update for r");
    assert_eq!(end.status.task_id.value, "r", "{}", describe(&end));
    master.ack(&end);
    net.assert_no_residue(&agent);
    assert!(!state.exists(), "{} left", state.display());
    master::finish(fx, master, agent);
}
