//! Docker tasks (issue 13): `ContainerInfo.type = DOCKER` run with no
//! daemon, as a framework that targets Mesos' Docker containerizer sends
//! them (Marathon's JSON), seen from a scripted master.
//!
//! The bridge test runs in a network namespace of its own (see
//! `cni::in_own_netns`); the others use the host network or none.

use crate::cni::{self, addresses, http_get, start_networked, GATEWAY};
use crate::support::master::{
    self, describe, framework, kill_policy, resources, status, AgentProcess, FakeMaster,
};
use crate::support::registry::Registry;
use crate::support::{busybox_oci, enabled, Fixture};
use butte::proto::mesos::container_info::docker_info::{Network, PortMapping};
use butte::proto::mesos::container_info::{self, DockerInfo};
use butte::proto::mesos::environment::Variable;
use butte::proto::mesos::{
    health_check, task_status, value, volume, CommandInfo, ContainerInfo, Environment, HealthCheck,
    Label, Labels, Parameter, Resource, TaskId, TaskInfo, TaskState, Volume,
};
use std::fs;
use std::time::Duration;

const IMAGE: &str = "library/busybox:1";

fn var(name: &str, value: &str) -> Variable {
    Variable {
        name: name.into(),
        value: Some(value.into()),
        ..Default::default()
    }
}

fn ports(begin: u64, end: u64) -> Resource {
    let mut r = master::scalar("ports", 0.0);
    r.r#type = value::Type::Ranges as i32;
    r.scalar = None;
    r.ranges = Some(value::Ranges {
        range: vec![value::Range { begin, end }],
    });
    r
}

/// A Docker task as Marathon sends one: `args` (shell false, no value),
/// `PORT0`/`HOST`/`MARATHON_APP_ID` in the environment, labels, the image
/// and network in a `DockerInfo`.
fn docker_task(id: &str, args: &[&str], network: Network, params: &[(&str, &str)]) -> TaskInfo {
    TaskInfo {
        name: id.into(),
        task_id: TaskId { value: id.into() },
        resources: {
            let mut r = resources(0.1, 32.0);
            r.push(ports(31000, 31009));
            r
        },
        command: Some(CommandInfo {
            shell: Some(false),
            arguments: args.iter().map(|a| a.to_string()).collect(),
            environment: Some(Environment {
                variables: vec![
                    var("PORT0", "31001"),
                    var("PORT", "31001"),
                    var("HOST", "agent.example"),
                    var("MARATHON_APP_ID", "/web"),
                ],
            }),
            ..Default::default()
        }),
        container: Some(ContainerInfo {
            r#type: container_info::Type::Docker as i32,
            docker: Some(DockerInfo {
                image: IMAGE.into(),
                network: Some(network as i32),
                parameters: params
                    .iter()
                    .map(|(k, v)| Parameter {
                        key: k.to_string(),
                        value: v.to_string(),
                    })
                    .collect(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        labels: Some(Labels {
            labels: vec![Label {
                key: "HAPROXY_GROUP".into(),
                value: Some("external".into()),
            }],
        }),
        ..Default::default()
    }
}

fn docker_mut(t: &mut TaskInfo) -> &mut DockerInfo {
    t.container.as_mut().unwrap().docker.as_mut().unwrap()
}

/// Marathon's BRIDGE app: a port mapping from the task's ports, a sandbox
/// volume, parameters, `args` after the image's (empty) entrypoint and a
/// COMMAND health check. TASK_RUNNING carries the container's address, the
/// check turns healthy, the mapped host port answers from the test's own
/// namespace, the environment is Docker's, and a kill ends it
/// TASK_KILLED with nothing left behind.
#[test]
fn marathon_bridge_app_runs_with_its_port_ip_and_health() {
    let name = "marathon_bridge_app_runs_with_its_port_ip_and_health";
    if !enabled() || !cni::in_own_netns_of("docker", name) {
        return;
    }
    let registry = registry_with_image();
    let (fx, master, agent, net) = start_networked(&[
        "--docker_registry",
        &registry.url(),
        "--containerizers=docker,mesos",
        "--docker_bridge_network",
        "testnet",
    ]);
    let fw = framework("marathon");
    let script = "env > $MESOS_SANDBOX/env.txt; hostname > $MESOS_SANDBOX/hostname.txt; \
                  echo kept > /data/from-task; mkdir -p /www; echo served-by-docker-task > /www/index.html; \
                  exec httpd -f -p 80 -h /www";
    let mut task = docker_task(
        "web",
        &["sh", "-c", script],
        Network::Bridge,
        &[
            ("label", "app=web"),
            ("env", "FROM_PARAM=1"),
            ("workdir", "/tmp"),
        ],
    );
    docker_mut(&mut task).port_mappings = vec![PortMapping {
        host_port: 31001,
        container_port: 80,
        protocol: Some("tcp".into()),
    }];
    task.container.as_mut().unwrap().volumes = vec![Volume {
        mode: volume::Mode::Rw as i32,
        container_path: "/data".into(),
        host_path: Some("data".into()),
        ..Default::default()
    }];
    task.health_check = Some(HealthCheck {
        r#type: Some(health_check::Type::Command as i32),
        command: Some(master::shell(
            "test -f /www/index.html && test ! -e /etc/debian_version",
        )),
        delay_seconds: Some(0.0),
        interval_seconds: Some(1.0),
        timeout_seconds: Some(5.0),
        grace_period_seconds: Some(0.0),
        consecutive_failures: Some(3),
        ..Default::default()
    });
    master.run_task(&fw, &task);
    master.expect_ack("web", TaskState::TaskStarting);
    let running = master.expect_ack("web", TaskState::TaskRunning);
    let addrs = addresses(&running);
    assert_eq!(addrs.len(), 1, "{}", describe(&running));
    assert_eq!(addrs[0].0, "testnet");
    assert!(addrs[0].1.starts_with("10.77.0."), "{addrs:?}");
    // Checks that ran before the server was up count as failures;
    // each update is acknowledged until the first healthy one.
    loop {
        let u = master.ack_until("web", TaskState::TaskRunning);
        if status(&u).healthy == Some(true) {
            break;
        }
    }
    assert!(http_get(&format!("{GATEWAY}:31001")).contains("served-by-docker-task"));
    assert!(http_get(&format!("{}:80", addrs[0].1)).contains("served-by-docker-task"));

    let sandbox = agent.sandbox(&master.slave_id(), &fw, "web");
    let env = fs::read_to_string(sandbox.join("env.txt")).unwrap();
    for want in [
        "PORT0=31001",
        "HOST=agent.example",
        "FROM_PARAM=1",
        "MESOS_SANDBOX=/mnt/mesos/sandbox",
        "PWD=/tmp",
    ] {
        assert!(env.lines().any(|l| l == want), "{want} not in:\n{env}");
    }
    let container_name = env
        .lines()
        .find_map(|l| l.strip_prefix("MESOS_CONTAINER_NAME="))
        .unwrap_or_default();
    assert!(container_name.starts_with("mesos-"), "{env}");
    // Nothing of the executor's own environment leaks into the container.
    assert!(!env.contains("MESOS_AGENT_ENDPOINT"), "{env}");
    assert!(!env.contains("MESOS_EXECUTOR_ID"), "{env}");
    let hostname = fs::read_to_string(sandbox.join("hostname.txt")).unwrap();
    assert_eq!(hostname.trim().len(), 12, "Docker's short id: {hostname}");
    assert_eq!(
        fs::read_to_string(sandbox.join("data/from-task")).unwrap(),
        "kept\n"
    );

    master.kill_task(&fw, "web", None);
    let killed = master.ack_until("web", TaskState::TaskKilled);
    assert_eq!(addresses(&killed), addrs, "{}", describe(&killed));
    // No kill policy: `--docker_stop_timeout` (0) is the grace.
    let message = status(&killed).message.clone().unwrap_or_default();
    assert!(
        message.starts_with("Container terminated with signal"),
        "{message}"
    );
    net.assert_no_residue(&agent);
    master::finish(fx, master, agent);
}

/// BRIDGE mode on butte's built-in bridge (no config is named
/// `--docker_bridge_network`'s default, `bridge`): made by butte itself,
/// no CNI plugin. A server task gets an address on 10.87.0.0/16; its
/// published port answers from the gateway address and from localhost; a
/// second task reaches it directly and through the published port (NAT
/// back through the bridge); the agent is killed and restarts while it
/// runs, and killing it then leaves no veth, address or published port.
#[test]
fn builtin_bridge_connects_tasks_and_cleans_up_after_an_agent_restart() {
    let name = "builtin_bridge_connects_tasks_and_cleans_up_after_an_agent_restart";
    if !enabled() || !cni::in_own_netns_of("docker", name) {
        return;
    }
    let registry = Registry::start();
    registry.push(&busybox_oci(), "1", IMAGE);
    let (fx, master, mut agent, net) = start_networked(&[
        "--docker_registry",
        &registry.url(),
        "--containerizers=docker,mesos",
    ]);
    let fw = framework("builtin-bridge");
    let script =
        "mkdir -p /www; echo served-by-builtin > /www/index.html; exec httpd -f -p 80 -h /www";
    let mut web = docker_task("web", &["sh", "-c", script], Network::Bridge, &[]);
    docker_mut(&mut web).port_mappings = vec![PortMapping {
        host_port: 31002,
        container_port: 80,
        protocol: Some("tcp".into()),
    }];
    master.run_task(&fw, &web);
    master.expect_ack("web", TaskState::TaskStarting);
    let running = master.expect_ack("web", TaskState::TaskRunning);
    let addrs = addresses(&running);
    assert_eq!(addrs.len(), 1, "{}", describe(&running));
    assert_eq!(addrs[0].0, "bridge");
    let ip = addrs[0].1.clone();
    assert!(ip.starts_with("10.87.0."), "{addrs:?}");
    assert!(http_get(&format!("{ip}:80")).contains("served-by-builtin"));
    assert!(http_get("10.87.0.1:31002").contains("served-by-builtin"));
    assert!(http_get("127.0.0.1:31002").contains("served-by-builtin"));
    let data = agent.work_dir.join("cni/networks");
    assert_eq!(
        cni::builtin_allocations(&data),
        [format!("built-in bridge allocation: {ip}")]
    );
    assert_eq!(
        cni::builtin_ports(),
        [format!("nft port: 31002 : {ip} . 80")]
    );

    let fetch = format!(
        "wget -q -O $MESOS_SANDBOX/direct.txt http://{ip}:80/index.html && \
         wget -q -O $MESOS_SANDBOX/published.txt http://10.87.0.1:31002/index.html"
    );
    let client = docker_task("client", &["sh", "-c", &fetch], Network::Bridge, &[]);
    master.run_task(&fw, &client);
    let done = master.ack_until("client", TaskState::TaskFinished);
    let client_ip = &addresses(&done)[0].1;
    assert!(
        client_ip.starts_with("10.87.0.") && *client_ip != ip,
        "{client_ip}"
    );
    let client_dir = agent.sandbox(&master.slave_id(), &fw, "client");
    for file in ["direct.txt", "published.txt"] {
        assert_eq!(
            fs::read_to_string(client_dir.join(file)).unwrap_or_default(),
            "served-by-builtin\n",
            "{file}"
        );
    }

    // The agent dies (SIGKILL) and comes back; the task and its port stay.
    agent.kill();
    master.discard_registrations();
    agent.restart();
    master.reregister();
    assert!(http_get("10.87.0.1:31002").contains("served-by-builtin"));

    // (A kill that comes before the executor has reconnected ends it from
    // the agent's side, without `network_infos`: not what this checks.)
    master.kill_task(&fw, "web", None);
    master.ack_until("web", TaskState::TaskKilled);
    net.assert_no_residue(&agent);
    master::finish(fx, master, agent);
}

/// A task that fails before it starts: TASK_FAILED whose message contains
/// `want`, with the reason Mesos gives a failed container launch.
fn expect_failed(
    master: &FakeMaster,
    fw: &butte::proto::mesos::FrameworkInfo,
    task: &TaskInfo,
    want: &str,
) {
    master.run_task(fw, task);
    let id = task.task_id.value.as_str();
    let failed = master.ack_until(id, TaskState::TaskFailed);
    let s = status(&failed);
    let message = s.message.clone().unwrap_or_default();
    assert!(message.contains(want), "{id}: {want:?} not in {message:?}");
    assert_eq!(
        s.reason,
        Some(task_status::Reason::ContainerLaunchFailed as i32),
        "{}",
        describe(&failed)
    );
}

/// A registry holding the busybox test image as [`IMAGE`].
fn registry_with_image() -> Registry {
    let registry = Registry::start();
    registry.push(&busybox_oci(), "1", IMAGE);
    registry
}

/// A registry with the image, and an agent registered with a fake master.
fn start_with_image(extra: &[&str]) -> (Registry, Fixture, FakeMaster, AgentProcess) {
    let registry = registry_with_image();
    let fx = Fixture::new();
    let master = FakeMaster::start(0);
    let agent = start(&fx, &master, &registry, extra);
    (registry, fx, master, agent)
}

fn start(fx: &Fixture, master: &FakeMaster, registry: &Registry, extra: &[&str]) -> AgentProcess {
    let url = registry.url();
    let mut flags = vec!["--docker_registry", url.as_str()];
    flags.extend_from_slice(extra);
    let agent = AgentProcess::start(fx, master, &flags);
    master.register();
    agent
}

/// HOST mode runs on the node's network with the node's hostname; every
/// refusal Mesos (or butte) makes is a TASK_FAILED that names its cause:
/// an unknown parameter, a host port outside the task's `ports`,
/// `privileged` without `--allow_privileged`, an image that does not
/// exist, a hostname on the host network; and with `--containerizers=mesos`
/// no DOCKER task runs at all.
#[test]
fn host_mode_runs_and_bad_docker_tasks_fail_naming_the_cause() {
    if !enabled() {
        return;
    }
    let (registry, fx, master, agent) = start_with_image(&["--containerizers=docker,mesos"]);
    let fw = framework("docker");

    let task = docker_task(
        "host",
        &[
            "sh",
            "-c",
            "hostname > $MESOS_SANDBOX/h.txt; ulimit -n > $MESOS_SANDBOX/n.txt",
        ],
        Network::Host,
        &[("ulimit", "nofile=100:200")],
    );
    master.run_task(&fw, &task);
    let done = master.ack_until("host", TaskState::TaskFinished);
    assert_eq!(
        status(&done).message.as_deref(),
        Some("Container exited with status 0")
    );
    assert!(
        addresses(&done).iter().all(|(n, _)| n.is_empty()),
        "{}",
        describe(&done)
    );
    let sandbox = agent.sandbox(&master.slave_id(), &fw, "host");
    let host = nix::unistd::gethostname()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert_eq!(
        fs::read_to_string(sandbox.join("h.txt")).unwrap().trim(),
        host
    );
    assert_eq!(
        fs::read_to_string(sandbox.join("n.txt")).unwrap().trim(),
        "100"
    );

    // The image is in the store now: it is not asked for again, unless
    // the task says `force_pull_image`.
    let pulls = || agent.log().matches("butte: pulling ").count();
    let before = pulls();
    assert_eq!(before, 1, "the first task pulled the image");
    master.run_task(&fw, &docker_task("stored", &["true"], Network::Host, &[]));
    master.ack_until("stored", TaskState::TaskFinished);
    assert_eq!(pulls(), before, "pulled again without force_pull_image");
    let mut t = docker_task("forced", &["true"], Network::Host, &[]);
    docker_mut(&mut t).force_pull_image = Some(true);
    master.run_task(&fw, &t);
    master.ack_until("forced", TaskState::TaskFinished);
    assert!(pulls() > before, "force_pull_image did not pull");

    let t = docker_task(
        "unknown",
        &["true"],
        Network::Host,
        &[("log-driver", "syslog")],
    );
    expect_failed(&master, &fw, &t, "\"log-driver\"");
    let mut t = docker_task("port", &["true"], Network::Bridge, &[]);
    docker_mut(&mut t).port_mappings = vec![PortMapping {
        host_port: 32000,
        container_port: 80,
        protocol: None,
    }];
    expect_failed(&master, &fw, &t, "Port [32000] not included in resources");
    let mut t = docker_task("priv", &["true"], Network::Host, &[]);
    docker_mut(&mut t).privileged = Some(true);
    expect_failed(&master, &fw, &t, "--allow_privileged");
    let mut t = docker_task("noimage", &["true"], Network::Host, &[]);
    docker_mut(&mut t).image = "library/does-not-exist:1".into();
    expect_failed(&master, &fw, &t, "library/does-not-exist:1");
    let mut t = docker_task("hostname", &["true"], Network::Host, &[]);
    t.container.as_mut().unwrap().hostname = Some("web".into());
    expect_failed(
        &master,
        &fw,
        &t,
        "Unable to set hostname with host network mode",
    );
    master::finish(fx, master, agent);

    // The default, `--containerizers=mesos`: refused, naming the flag.
    let fx = Fixture::new();
    let master = FakeMaster::start(0);
    let agent = start(&fx, &master, &registry, &[]);
    let t = docker_task("off", &["true"], Network::Host, &[]);
    expect_failed(&master, &fw, &t, "--containerizers=docker,mesos");
    master::finish(fx, master, agent);
}

/// `privileged` with `--allow_privileged`. NONE mode: only a loopback
/// interface. A kill with a grace period lets
/// the task's TERM handler run; an agent restart leaves a running Docker
/// task running and still killable.
#[test]
fn none_mode_kill_with_grace_and_agent_restart() {
    if !enabled() {
        return;
    }
    let (_registry, fx, master, mut agent) = start_with_image(&[
        "--containerizers=mesos,docker",
        "--docker_stop_timeout=1secs",
        "--allow_privileged",
    ]);
    let fw = framework("docker-kill");
    // With --allow_privileged, `privileged: true` runs with every
    // capability (Docker's default set is 0xa80425fb).
    let mut privileged = docker_task(
        "privileged",
        &[
            "sh",
            "-c",
            "grep CapEff /proc/self/status > $MESOS_SANDBOX/caps.txt",
        ],
        Network::Host,
        &[],
    );
    docker_mut(&mut privileged).privileged = Some(true);
    master.run_task(&fw, &privileged);
    master.ack_until("privileged", TaskState::TaskFinished);
    let caps = fs::read_to_string(
        agent
            .sandbox(&master.slave_id(), &fw, "privileged")
            .join("caps.txt"),
    )
    .unwrap();
    let mask = u64::from_str_radix(caps.split_whitespace().nth(1).unwrap(), 16).unwrap();
    assert!(mask & (1 << 21) != 0, "no CAP_SYS_ADMIN: {caps}");
    let script = "cat /proc/net/dev > $MESOS_SANDBOX/dev.txt; \
                  trap 'echo got-term > $MESOS_SANDBOX/term.txt; exit 0' TERM; touch $MESOS_SANDBOX/trapped; \
                  while true; do sleep 0.1; done";
    let mut task = docker_task("graceful", &["sh", "-c", script], Network::None, &[]);
    task.kill_policy = Some(kill_policy(Duration::from_secs(5)));
    master.run_task(&fw, &task);
    master.expect_ack("graceful", TaskState::TaskStarting);
    master.expect_ack("graceful", TaskState::TaskRunning);
    let sandbox = agent.sandbox(&master.slave_id(), &fw, "graceful");

    master::wait_for("the task's TERM trap", &agent, || {
        sandbox.join("trapped").exists()
    });
    // The agent dies (SIGKILL) and comes back; the task runs on.
    agent.kill();
    master.discard_registrations();
    agent.restart();
    master.reregister();
    let dev = fs::read_to_string(sandbox.join("dev.txt")).unwrap();
    let ifaces: Vec<&str> = dev
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(str::trim)
        .collect();
    assert_eq!(ifaces, ["lo"], "{dev}");

    // Once the executor is back (before, the agent can only end it), the
    // kill reaches the task through it, with the policy's grace.
    master::wait_for("the executor re-subscribes", &agent, || {
        agent.log().matches("executor subscribed").count() >= 2
    });
    master.kill_task(&fw, "graceful", None);
    master.ack_until("graceful", TaskState::TaskKilled);
    assert_eq!(
        fs::read_to_string(sandbox.join("term.txt")).unwrap_or_default(),
        "got-term\n"
    );
    master::finish(fx, master, agent);
}

/// The driver of bench/docker.sh. Prints one line `BENCH_DOCKER {json}`:
/// RunTaskMessage to TASK_RUNNING at the master, one task at a time with
/// an idle agent, the image already in the store, for BUTTE_BENCH_N (30)
/// Docker tasks (`DOCKER`, HOST network, `args: ["true"]`) and as many
/// MESOS containers of the same image running the same program,
/// alternated so that both see the same machine.
#[test]
#[ignore]
fn bench_docker() {
    use butte::proto::mesos::internal::StatusUpdateMessage;
    use prost::Name;
    assert!(
        enabled(),
        "bench_docker needs BUTTE_RUNTIME_TESTS=1 and root"
    );
    let n: usize = std::env::var("BUTTE_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let (_registry, fx, master, agent) = start_with_image(&["--containerizers=docker,mesos"]);
    let fw = framework("bench-docker");
    let docker = |id: &str| docker_task(id, &["true"], Network::Host, &[]);
    let mesos = |id: &str| {
        let mut t = master::command_task(id, "true");
        t.command = Some(CommandInfo {
            shell: Some(false),
            value: Some("true".into()),
            arguments: vec!["true".into()],
            ..Default::default()
        });
        t.container = Some(master::image_container(IMAGE));
        t
    };
    // Pulled once, before anything is timed.
    master.run_task(&fw, &docker("warm"));
    master.ack_until("warm", TaskState::TaskFinished);
    let update_name = StatusUpdateMessage::full_name();
    let mut times: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for i in 0..2 * n {
        let kind = i % 2;
        let id = format!("{}-{i}", ["docker", "mesos"][kind]);
        let task = if kind == 0 { docker(&id) } else { mesos(&id) };
        let sent = std::time::Instant::now();
        master.run_task(&fw, &task);
        loop {
            let r = master
                .take(master::WAIT, |r| r.name == update_name)
                .unwrap_or_else(|| panic!("no update for {id}; {}", agent.log_tail(40)));
            let u = master::decode_update(&r).expect("an update");
            master.ack(&u);
            let (task_id, state) = master::task_and_state(&u);
            if task_id != id {
                continue;
            }
            if state == TaskState::TaskRunning {
                times[kind].push((r.at - sent).as_secs_f64() * 1000.0);
            }
            if master::TERMINAL.contains(&state) {
                assert_eq!(state, TaskState::TaskFinished, "{}", describe(&u));
                break;
            }
        }
    }
    let stats = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        serde_json::json!({"n": v.len(), "median": v[v.len() / 2], "min": v[0], "max": v[v.len() - 1]})
    };
    let json = serde_json::json!({
        "docker_ms": stats(&mut times[0]),
        "mesos_ms": stats(&mut times[1]),
    });
    println!("BENCH_DOCKER {json}");
    master::finish(fx, master, agent);
}

/// `butte run` reads as `docker run` where their flags overlap: an image
/// from a registry, `-v` read-only, `-e`, `-w`, `--entrypoint` (which drops
/// the image's command), `--cap-drop`, `-m`.
#[test]
fn butte_run_takes_docker_run_flags() {
    if !enabled() {
        return;
    }
    let registry = registry_with_image();
    let fx = Fixture::new();
    let host = fx.work.path().join("host-dir");
    fs::create_dir_all(&host).unwrap();
    fs::write(host.join("f"), "from-the-host\n").unwrap();
    let addr = registry.url().trim_start_matches("http://").to_string();
    let script = "echo K=$K; cat /ctr/f; pwd; touch /ctr/new 2>/dev/null || echo ro; \
                  touch /tmp/x; chown 1 /tmp/x 2>/dev/null || echo no-chown";
    let out = std::process::Command::new(crate::support::BUTTE)
        .args(["run", "--work-dir"])
        .arg(fx.work.path().join("w"))
        .arg("--cgroup-parent")
        .arg(&fx.parent)
        .args(["--insecure-registry", &addr, "--image"])
        .arg(format!("{addr}/{IMAGE}"))
        .arg("-v")
        .arg(format!("{}:/ctr:ro", host.display()))
        .args([
            "-e",
            "K=V",
            "-w",
            "/tmp",
            "-m",
            "64M",
            "--cap-drop",
            "chown",
        ])
        .args(["--entrypoint", "/bin/sh", "--rm", "--", "-c", script])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout, "K=V\nfrom-the-host\n/tmp\nro\nno-chown\n");
    assert!(!host.join("new").exists());
    fx.finish();
}
