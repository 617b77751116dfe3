//! Issue 15, item 4: an agent started with a large Mesos agent
//! configuration, as clusters write it (`MESOS_*` variables as in
//! `/etc/default/mesos-slave`, a Mesosphere-style `/etc/mesos-slave`
//! directory, `file://` values), starts, says in one line which flags it
//! ignores and why, registers, and shows what it uses in `/flags`; flags
//! that would be unsafe to ignore (isolators butte lacks, ACLs) stop it at
//! start with an error naming them.

use crate::support::master::{AgentProcess, FakeMaster};
use crate::support::{enabled, Fixture};
use std::fs;
use std::time::Duration;

/// A Mesos agent's environment file as a production cluster writes it.
fn mesos_environment(dir: &std::path::Path) -> Vec<(String, String)> {
    let d = |p: &str| dir.join(p).display().to_string();
    let modules = d("modules.json");
    fs::write(
        &modules,
        r#"{"libraries": [{"file": "/usr/lib/mesos/modules/liblogrotate_container_logger.so",
             "modules": [{"name": "org_apache_mesos_LogrotateContainerLogger"}]}]}"#,
    )
    .unwrap();
    [
        ("MESOS_CONTAINERIZERS", "mesos".to_string()),
        (
            "MESOS_ISOLATION",
            "filesystem/linux,docker/runtime,cgroups/cpu,cgroups/mem,cgroups/pids,namespaces/pid,disk/du,linux/capabilities".into(),
        ),
        ("MESOS_IMAGE_PROVIDERS", "docker".into()),
        ("MESOS_IMAGE_PROVISIONER_BACKEND", "overlay".into()),
        ("MESOS_DOCKER_STORE_DIR", "/var/lib/mesos/store/docker".into()),
        ("MESOS_LAUNCHER", "linux".into()),
        ("MESOS_SWITCH_USER", "true".into()),
        ("MESOS_STRICT", "true".into()),
        ("MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD", "10secs".into()),
        ("MESOS_EXECUTOR_REREGISTRATION_TIMEOUT", "5secs".into()),
        ("MESOS_RECOVERY_TIMEOUT", "15mins".into()),
        ("MESOS_RECOVER", "reconnect".into()),
        ("MESOS_GC_DELAY", "2days".into()),
        ("MESOS_GC_DISK_HEADROOM", "0.15".into()),
        ("MESOS_DISK_WATCH_INTERVAL", "1mins".into()),
        ("MESOS_CGROUPS_ENABLE_CFS", "true".into()),
        ("MESOS_CGROUPS_LIMIT_SWAP", "true".into()),
        ("MESOS_CGROUPS_HIERARCHY", "/sys/fs/cgroup".into()),
        ("MESOS_HOSTNAME_LOOKUP", "false".into()),
        ("MESOS_LOGGING_LEVEL", "INFO".into()),
        ("MESOS_LOG_DIR", "/var/log/mesos".into()),
        ("MESOS_LOGBUFSECS", "0".into()),
        ("MESOS_SYSTEMD_ENABLE_SUPPORT", "true".into()),
        ("MESOS_DOCKER", "/usr/bin/docker".into()),
        ("MESOS_DOCKER_REMOVE_DELAY", "1hrs".into()),
        ("MESOS_DOCKER_STOP_TIMEOUT", "10secs".into()),
        ("MESOS_FETCHER_CACHE_SIZE", "2GB".into()),
        ("MESOS_FETCHER_CACHE_DIR", d("fetch-cache")),
        ("MESOS_FRAMEWORKS_HOME", "/opt/mesos/frameworks".into()),
        ("MESOS_HADOOP_HOME", "/opt/hadoop".into()),
        ("MESOS_MAX_COMPLETED_EXECUTORS_PER_FRAMEWORK", "50".into()),
        (
            "MESOS_EXECUTOR_ENVIRONMENT_VARIABLES",
            r#"{"PATH": "/usr/local/bin:/usr/bin:/bin"}"#.into(),
        ),
        ("MESOS_ENFORCE_CONTAINER_DISK_QUOTA", "true".into()),
        ("MESOS_CONTAINER_DISK_WATCH_INTERVAL", "30secs".into()),
        ("MESOS_SANDBOX_DIRECTORY", "/mnt/mesos/sandbox".into()),
        ("MESOS_ZK_SESSION_TIMEOUT", "20secs".into()),
        ("MESOS_DEFAULT_ROLE", "*".into()),
        ("MESOS_HTTP_COMMAND_EXECUTOR", "true".into()),
        ("MESOS_AUTHENTICATE_HTTP_READONLY", "false".into()),
        ("MESOS_AUTHENTICATE_HTTP_READWRITE", "false".into()),
        ("MESOS_QOS_CORRECTION_INTERVAL_MIN", "0ns".into()),
        ("MESOS_OVERSUBSCRIBED_RESOURCES_INTERVAL", "15secs".into()),
        ("MESOS_PERF_INTERVAL", "60secs".into()),
        ("MESOS_REVOCABLE_CPU_LOW_PRIORITY", "true".into()),
        ("MESOS_NETWORK_CNI_METRICS", "true".into()),
        ("MESOS_CONTAINER_LOGGER", "org_apache_mesos_LogrotateContainerLogger".into()),
        ("MESOS_MODULES", format!("file://{modules}")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

#[test]
fn a_large_mesos_configuration_starts_names_what_it_ignores_and_registers() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let master = FakeMaster::start(0);
    let conf = fx.work.path().join("conf");
    fs::create_dir_all(&conf).unwrap();
    let env = mesos_environment(&conf);
    // /etc/mesos-slave: one file per flag, `?` for booleans.
    let dir = conf.join("mesos-slave");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("fetcher_stall_timeout"), "2mins\n").unwrap();
    fs::write(dir.join("docker_socket"), "/var/run/docker.sock\n").unwrap();
    fs::write(dir.join("?no-docker_kill_orphans"), "").unwrap();
    fs::write(dir.join("gc_delay"), "3days\n").unwrap();
    let attributes = conf.join("attributes");
    fs::write(&attributes, "rack:r12;zone:eu-1a\n").unwrap();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let dir_flag = format!("--config_dir={}", dir.display());
    let attr_flag = format!("--attributes=file://{}", attributes.display());
    let agent = AgentProcess::start_with_env(
        &fx,
        &master.addr().to_string(),
        &[&dir_flag, &attr_flag, "--no-hostname_lookup"],
        &env,
    );
    master.register();

    // One line names every flag it ignores, and why.
    let log = agent.log();
    let line = log
        .lines()
        .find(|l| l.contains("Mesos flags butte does not use"))
        .unwrap_or_else(|| panic!("no ignored-flags line; {}", agent.log_tail(40)));
    for (flag, why) in [
        ("--docker_socket", "no Docker daemon"),
        (
            "--docker_kill_orphans",
            "butte destroys every container it does not know",
        ),
        ("--modules", "butte loads no Mesos C++ modules"),
        ("--log_dir", "butte logs to stderr"),
        ("--hostname_lookup", "without --hostname"),
        ("--perf_interval", "no perf_event isolator"),
    ] {
        assert!(line.contains(&format!("{flag} ({why}")), "{flag}: {line}");
    }
    for used in [
        "--containerizers",
        "--gc_delay",
        "--launcher",
        "--switch_user",
        "--executor_environment_variables",
    ] {
        assert!(!line.contains(&format!("{used} (")), "{used}: {line}");
    }
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("Mesos flags butte does not use"))
            .count(),
        1
    );

    // /flags: the file:// value read, the config dir above the environment.
    let url = format!("http://{}/flags", agent.endpoint());
    let body = ureq::get(&url)
        .timeout(Duration::from_secs(10))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    let flags: serde_json::Value = serde_json::from_str(&body).unwrap();
    let f = &flags["flags"];
    assert_eq!(f["attributes"], "rack:r12;zone:eu-1a");
    assert_eq!(f["fetcher_stall_timeout"], "2mins");
    assert_eq!(f["gc_delay"], "3days");
    assert_eq!(f["zk_session_timeout"], "20secs");
    assert_eq!(f["enforce_container_disk_quota"], "true");
    assert_eq!(
        f["fetcher_cache_dir"],
        format!("{}", conf.join("fetch-cache").display())
    );
    assert_eq!(f["docker_socket"], "/var/run/docker.sock");
    assert_eq!(f["switch_user"], "true");
    drop(agent);
    drop(master);
    fx.finish();
}

#[test]
fn isolators_and_flags_butte_cannot_honour_stop_the_agent_with_their_names() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let master = FakeMaster::start(0);
    for (flags, said) in [
        (
            vec!["--isolation=filesystem/linux,cgroups/mem,gpu/nvidia,volume/host_path"],
            "--isolation: butte does not provide gpu/nvidia, volume/host_path (it provides filesystem/linux,",
        ),
        (
            vec!["--acls={}", "--containerizers=docker,mesos"],
            "refusing Mesos flags butte cannot honour safely: --acls: butte has no authorizer",
        ),
    ] {
        let mut agent = AgentProcess::start(&fx, &master, &flags);
        let status = agent
            .wait_exit(Duration::from_secs(20))
            .unwrap_or_else(|| panic!("the agent runs with {flags:?}"));
        assert!(!status.success());
        let log = agent.log();
        assert!(log.contains(said), "{flags:?}: {log}");
    }
    assert!(master.try_register(Duration::from_millis(500)).is_none());
    drop(master);
    fx.finish();
}
