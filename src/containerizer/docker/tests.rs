use super::*;
use crate::proto::mesos::container_info::docker_info::PortMapping;
use crate::proto::mesos::{value, Environment, Parameter};

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn image(entrypoint: Option<&[&str]>, cmd: Option<&[&str]>) -> RunConfig {
    RunConfig {
        entrypoint: entrypoint.map(strings),
        cmd: cmd.map(strings),
        env: Some(strings(&["PATH=/img/bin", "FROM_IMAGE=1"])),
        working_dir: Some("/app".into()),
        user: Some("app".into()),
    }
}

fn command(shell: Option<bool>, value: Option<&str>, args: &[&str]) -> CommandInfo {
    CommandInfo {
        shell,
        value: value.map(Into::into),
        arguments: strings(args),
        ..Default::default()
    }
}

fn docker(params: &[(&str, &str)]) -> ContainerInfo {
    ContainerInfo {
        r#type: container_info::Type::Docker as i32,
        docker: Some(DockerInfo {
            image: "busybox:1".into(),
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
    }
}

/// `run`'s task in sandbox `/sb`: `(container id, hostname, mapped
/// sandbox)`, with the container's memory limit.
fn task_in(
    run: &DockerRun,
    command: Option<&CommandInfo>,
    image: &RunConfig,
    (container_id, hostname, sandbox_dir): (&str, Option<&str>, &str),
    memory: Option<u64>,
) -> Result<DockerTask, DockerError> {
    let at = Placement {
        sandbox: Path::new("/sb"),
        container_id,
        hostname,
        memory,
    };
    let config = DockerConfig {
        sandbox_dir: sandbox_dir.into(),
        ..enabled()
    };
    run.task(command, image, &at, &config)
}

fn enabled() -> DockerConfig {
    DockerConfig {
        containerizers: "docker,mesos".into(),
        ..DockerConfig::default()
    }
}

fn ports(begin: u64, end: u64) -> Resource {
    Resource {
        name: "ports".into(),
        r#type: value::Type::Ranges as i32,
        ranges: Some(value::Ranges {
            range: vec![value::Range { begin, end }],
        }),
        ..Default::default()
    }
}

/// The table of the issue: images with and without ENTRYPOINT/CMD against
/// shell and argv commands, `--entrypoint` included.
#[test]
fn command_lines_follow_the_docker_containerizer() {
    let ep = Some(&["/entry", "-x"][..]);
    let cmd = Some(&["serve", "--port", "80"][..]);
    type Row<'a> = (
        CommandInfo,
        Option<&'a [&'a str]>,
        RunConfig,
        Result<Vec<&'a str>, DockerError>,
    );
    let rows: Vec<Row> = vec![
        // shell: /bin/sh -c VALUE whatever the image says.
        (
            command(None, Some("echo $HOME"), &["x"]),
            None,
            image(ep, cmd),
            Ok(vec!["/bin/sh", "-c", "echo $HOME"]),
        ),
        (
            command(Some(true), Some("exit 3"), &[]),
            None,
            image(None, None),
            Ok(vec!["/bin/sh", "-c", "exit 3"]),
        ),
        (
            command(Some(true), None, &[]),
            None,
            image(ep, cmd),
            Err(DockerError::NoShellValue),
        ),
        // argv, image with ENTRYPOINT and CMD: value and args replace CMD.
        (
            command(Some(false), None, &[]),
            None,
            image(ep, cmd),
            Ok(vec!["/entry", "-x", "serve", "--port", "80"]),
        ),
        (
            command(Some(false), Some("run"), &["a", "b"]),
            None,
            image(ep, cmd),
            Ok(vec!["/entry", "-x", "run", "a", "b"]),
        ),
        (
            command(Some(false), None, &["only", "args"]),
            None,
            image(ep, cmd),
            Ok(vec!["/entry", "-x", "only", "args"]),
        ),
        // ENTRYPOINT only.
        (
            command(Some(false), None, &[]),
            None,
            image(ep, None),
            Ok(vec!["/entry", "-x"]),
        ),
        (
            command(Some(false), Some("v"), &[]),
            None,
            image(ep, None),
            Ok(vec!["/entry", "-x", "v"]),
        ),
        // CMD only: the value is the program.
        (
            command(Some(false), None, &[]),
            None,
            image(None, cmd),
            Ok(vec!["serve", "--port", "80"]),
        ),
        (
            command(Some(false), Some("/bin/echo"), &["hi"]),
            None,
            image(None, cmd),
            Ok(vec!["/bin/echo", "hi"]),
        ),
        // Neither.
        (
            command(Some(false), None, &[]),
            None,
            image(None, None),
            Err(DockerError::NoCommand),
        ),
        (
            command(Some(false), Some("/bin/true"), &[]),
            None,
            image(None, None),
            Ok(vec!["/bin/true"]),
        ),
        // --entrypoint replaces the image's and clears its CMD.
        (
            command(Some(false), None, &[]),
            Some(&["/other"][..]),
            image(ep, cmd),
            Ok(vec!["/other"]),
        ),
        (
            command(Some(false), None, &["a"]),
            Some(&["/other"][..]),
            image(ep, cmd),
            Ok(vec!["/other", "a"]),
        ),
        (
            command(Some(false), None, &[]),
            Some(&[][..]),
            image(ep, cmd),
            Err(DockerError::NoCommand),
        ),
        // ...but not a shell command's /bin/sh.
        (
            command(None, Some("true"), &[]),
            Some(&["/other"][..]),
            image(ep, cmd),
            Ok(vec!["/bin/sh", "-c", "true"]),
        ),
    ];
    for (i, (c, entry, img, want)) in rows.into_iter().enumerate() {
        let entry: Option<Vec<String>> = entry.map(strings);
        let got = docker_argv(&c, entry.as_deref(), &img);
        let want = want.map(|w| strings(&w));
        assert_eq!(got, want, "row {i}: {c:?} entry {entry:?} image {img:?}");
    }
}

#[test]
fn environment_user_and_workdir_as_docker_sets_them() {
    let mut c = docker(&[("env", "FROM_PARAM=1"), ("env", "B=param")]);
    c.hostname = Some("web".into());
    c.docker.as_mut().unwrap().network = Some(Mode::Bridge as i32);
    let run = DockerRun::parse(&c, &[], &enabled()).unwrap();
    let mut cmd = command(None, Some("env"), &[]);
    cmd.environment = Some(Environment {
        variables: vec![
            crate::proto::mesos::environment::Variable {
                name: "B".into(),
                value: Some("command".into()),
                ..Default::default()
            },
            crate::proto::mesos::environment::Variable {
                name: "PORT0".into(),
                value: Some("31000".into()),
                ..Default::default()
            },
        ],
    });
    let img = image(None, None);
    let t = task_in(
        &run,
        Some(&cmd),
        &img,
        ("c1", Some("web"), "/mnt/mesos/sandbox"),
        None,
    )
    .unwrap();
    let get = |k: &str| t.env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(get("PATH"), Some("/img/bin"));
    assert_eq!(get("HOSTNAME"), Some("web"));
    assert_eq!(get("FROM_IMAGE"), Some("1"));
    assert_eq!(get("PORT0"), Some("31000"));
    assert_eq!(get("B"), Some("param"));
    assert_eq!(get("MESOS_SANDBOX"), Some("/mnt/mesos/sandbox"));
    assert_eq!(get("MESOS_CONTAINER_NAME"), Some("mesos-c1"));
    // HOME comes from the user's entry in the image, where it is resolved.
    assert_eq!(get("HOME"), None);
    assert_eq!(get("MESOS_AGENT_ENDPOINT"), None);
    assert_eq!(t.user.as_deref(), Some("app"));
    assert_eq!(t.working_dir, "/app");
    assert_eq!(t.capabilities, None);
    assert_eq!(t.shm_size, Some(64 << 20));

    let c = docker(&[("user", "nobody"), ("workdir", "/tmp")]);
    let run = DockerRun::parse(&c, &[], &enabled()).unwrap();
    let t = task_in(
        &run,
        Some(&cmd),
        &RunConfig::default(),
        ("c1", None, "/sandbox"),
        None,
    )
    .unwrap();
    assert_eq!(t.user.as_deref(), Some("nobody"));
    assert_eq!(t.working_dir, "/tmp");
    assert!(!t.env.iter().any(|(k, _)| k == "HOME"), "{:?}", t.env);
    assert_eq!(t.sandbox_dir, "/sandbox");
    let get = |k: &str| t.env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(get("PATH"), Some(DEFAULT_PATH));
}

#[test]
fn volumes_bind_host_and_sandbox_paths() {
    let mut c = docker(&[("volume", "/etc/ssl:/etc/ssl:ro")]);
    c.volumes = vec![
        crate::proto::mesos::Volume {
            mode: VolumeMode::Rw as i32,
            container_path: "/data".into(),
            host_path: Some("/srv/data".into()),
            ..Default::default()
        },
        crate::proto::mesos::Volume {
            mode: VolumeMode::Ro as i32,
            container_path: "cache".into(),
            host_path: Some("persist/cache".into()),
            ..Default::default()
        },
    ];
    let run = DockerRun::parse(&c, &[], &enabled()).unwrap();
    let t = task_in(
        &run,
        Some(&command(None, Some("true"), &[])),
        &RunConfig::default(),
        ("c1", None, "/mnt/mesos/sandbox"),
        None,
    )
    .unwrap();
    let b = |s: &str, t: &str, ro| Bind {
        source: s.into(),
        target: t.into(),
        read_only: ro,
    };
    assert_eq!(
        t.binds,
        vec![
            b("/srv/data", "/data", false),
            b("/sb/persist/cache", "/mnt/mesos/sandbox/cache", true),
            b("/etc/ssl", "/etc/ssl", true),
        ]
    );
    c.volumes[0].host_path = Some("../escape".into());
    let run = DockerRun::parse(&c, &[], &enabled()).unwrap();
    let e = task_in(
        &run,
        Some(&command(None, Some("true"), &[])),
        &RunConfig::default(),
        ("c1", None, "/s"),
        None,
    )
    .unwrap_err();
    assert!(e.to_string().contains("inside the sandbox"), "{e}");
    let e = DockerRun::parse(&docker(&[("volume", "named:/data")]), &[], &enabled()).unwrap_err();
    assert!(e.to_string().contains("volume driver"), "{e}");
}

#[test]
fn port_mappings_must_lie_in_the_port_resources() {
    let mut c = docker(&[]);
    let d = c.docker.as_mut().unwrap();
    d.network = Some(Mode::Bridge as i32);
    d.port_mappings = vec![PortMapping {
        host_port: 31001,
        container_port: 80,
        protocol: Some("TCP".into()),
    }];
    let run = DockerRun::parse(&c, &[ports(31000, 31010)], &enabled()).unwrap();
    assert_eq!(run.ports, vec![(31001, 80, "tcp".to_string())]);
    let net = run.network.clone().unwrap();
    assert_eq!(net.name.as_deref(), Some("bridge"));
    assert_eq!(net.port_mappings.len(), 1);
    let m = run.mesos_container(&c);
    assert_eq!(m.r#type(), container_info::Type::Mesos);
    assert_eq!(m.network_infos, vec![net]);
    assert_eq!(
        m.mesos.unwrap().image.unwrap().docker.unwrap().name,
        "busybox:1"
    );

    let e = DockerRun::parse(&c, &[ports(32000, 32010)], &enabled()).unwrap_err();
    assert_eq!(e.to_string(), "Port [31001] not included in resources");
    let e = DockerRun::parse(&c, &[], &enabled()).unwrap_err();
    assert_eq!(e, DockerError::NoPortResources);
    c.docker.as_mut().unwrap().network = Some(Mode::Host as i32);
    let e = DockerRun::parse(&c, &[ports(31000, 31010)], &enabled()).unwrap_err();
    assert_eq!(e, DockerError::PortMappingsMode);
}

#[test]
fn refusals_name_their_cause() {
    let cfg = enabled();
    let e = DockerRun::parse(&docker(&[]), &[], &DockerConfig::default()).unwrap_err();
    assert!(
        e.to_string().contains("--containerizers=docker,mesos"),
        "{e}"
    );
    let e = DockerRun::parse(&docker(&[("log-driver", "syslog")]), &[], &cfg).unwrap_err();
    assert!(e.to_string().contains("\"log-driver\""), "{e}");
    let e = DockerRun::parse(&docker(&[("net", "host")]), &[], &cfg).unwrap_err();
    assert!(e.to_string().contains("DockerInfo.network"), "{e}");
    let e = DockerRun::parse(&docker(&[("ulimit", "nofiles=1")]), &[], &cfg).unwrap_err();
    assert!(e.to_string().contains("unknown ulimit"), "{e}");
    let mut c = docker(&[]);
    c.docker.as_mut().unwrap().privileged = Some(true);
    assert_eq!(
        DockerRun::parse(&c, &[], &cfg).unwrap_err(),
        DockerError::Privileged
    );
    let allow = DockerConfig {
        allow_privileged: true,
        ..enabled()
    };
    let run = DockerRun::parse(&c, &[], &allow).unwrap();
    let t = task_in(
        &run,
        Some(&command(None, Some("true"), &[])),
        &RunConfig::default(),
        ("c", None, "/s"),
        None,
    )
    .unwrap();
    assert!(t
        .capabilities
        .unwrap()
        .contains(&"CAP_SYS_ADMIN".to_string()));
    // Root (no user anywhere) gets root's home, as Docker gives it.
    assert!(t.env.contains(&("HOME".to_string(), "/root".to_string())));
    let mut c = docker(&[]);
    c.hostname = Some("h".into());
    assert_eq!(
        DockerRun::parse(&c, &[], &cfg).unwrap_err(),
        DockerError::HostnameWithHost
    );
    let mut c = docker(&[]);
    c.docker.as_mut().unwrap().network = Some(Mode::User as i32);
    assert_eq!(
        DockerRun::parse(&c, &[], &cfg).unwrap_err(),
        DockerError::UserNetwork
    );
    c.docker.as_mut().unwrap().image = String::new();
    assert_eq!(
        DockerRun::parse(&c, &[], &cfg).unwrap_err(),
        DockerError::NoImage
    );
}

#[test]
fn parameters_map_onto_the_task() {
    let c = docker(&[
        ("cap-add", "net_admin"),
        ("cap-drop", "CAP_CHOWN"),
        ("ulimit", "nofile=100:200"),
        ("read-only", "true"),
        ("tmpfs", "/run:size=1m"),
        ("shm-size", "1m"),
        ("add-host", "db:10.0.0.5"),
        ("dns", "10.0.0.53"),
        ("dns-search", "example.org"),
        ("label", "team=web"),
        ("init", "true"),
        ("memory-swap", "64m"),
        ("entrypoint", "/bin/echo"),
    ]);
    let run = DockerRun::parse(&c, &[], &enabled()).unwrap();
    let t = task_in(
        &run,
        Some(&command(Some(false), None, &["hi"])),
        &image(Some(&["/x"]), Some(&["y"])),
        ("c", None, "/s"),
        Some(64 << 20),
    )
    .unwrap();
    assert_eq!(t.argv, strings(&["/bin/echo", "hi"]));
    let caps = t.capabilities.clone().unwrap();
    assert!(caps.contains(&"CAP_NET_ADMIN".to_string()));
    assert!(!caps.contains(&"CAP_CHOWN".to_string()));
    assert!(caps.contains(&"CAP_KILL".to_string()));
    assert_eq!(t.rlimits, vec![("nofile".to_string(), 100, 200)]);
    assert!(t.read_only);
    assert_eq!(t.tmpfs, vec![("/run".to_string(), "size=1m".to_string())]);
    assert_eq!(t.shm_size, Some(1 << 20));
    assert_eq!(
        run.hosts_file("127.0.0.1\tlocalhost").unwrap(),
        "127.0.0.1\tlocalhost\n10.0.0.5\tdb\n"
    );
    assert_eq!(
        run.resolv_file("nameserver 1.1.1.1\nsearch x\noptions ndots:2\n")
            .unwrap(),
        "options ndots:2\nnameserver 10.0.0.53\nsearch example.org\n"
    );
    // Swap beyond the memory limit is refused when the task starts.
    let e = task_in(
        &run,
        Some(&command(None, Some("true"), &[])),
        &RunConfig::default(),
        ("c", None, "/s"),
        Some(32 << 20),
    )
    .unwrap_err();
    assert!(e.to_string().contains("no swap"), "{e}");
}

#[test]
fn docker_sizes() {
    assert_eq!(docker_size("64m"), Some(64 << 20));
    assert_eq!(docker_size("1g"), Some(1 << 30));
    assert_eq!(docker_size("512"), Some(512));
    assert_eq!(docker_size("2kb"), Some(2048));
    assert_eq!(docker_size("1.5k"), Some(1536));
    assert_eq!(docker_size("x"), None);
    assert_eq!(docker_size("1q"), None);
}

#[test]
fn hostnames_as_docker_gives_them() {
    let cfg = enabled();
    let mut c = docker(&[]);
    let run = DockerRun::parse(&c, &[], &cfg).unwrap();
    assert_eq!(
        run.container_hostname("0123456789abcdef", Some("node1"))
            .as_deref(),
        Some("node1")
    );
    c.docker.as_mut().unwrap().network = Some(Mode::None as i32);
    let run = DockerRun::parse(&c, &[], &cfg).unwrap();
    assert_eq!(
        run.container_hostname("0123456789abcdef", Some("node1"))
            .as_deref(),
        Some("0123456789ab")
    );
    let c = docker(&[("hostname", "web")]);
    assert_eq!(
        DockerRun::parse(&c, &[], &cfg).unwrap_err(),
        DockerError::HostnameWithHost
    );
}
