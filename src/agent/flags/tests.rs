use super::*;
use std::collections::HashMap;

/// An environment and files in memory.
#[derive(Default)]
struct Fake {
    env: HashMap<String, String>,
    files: HashMap<PathBuf, String>,
}

impl Fake {
    fn env(mut self, k: &str, v: &str) -> Self {
        self.env.insert(k.into(), v.into());
        self
    }
    fn file(mut self, p: &str, text: &str) -> Self {
        self.files.insert(p.into(), text.into());
        self
    }
}

impl Sources for Fake {
    fn env(&self, name: &str) -> Option<String> {
        self.env.get(name).cloned()
    }
    fn read(&self, path: &Path) -> std::io::Result<String> {
        self.files
            .get(path)
            .cloned()
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
    }
    fn list(&self, dir: &Path) -> std::io::Result<Vec<String>> {
        let names: Vec<String> = self
            .files
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        if names.is_empty() {
            return Err(std::io::ErrorKind::NotFound.into());
        }
        Ok(names)
    }
}

fn args(a: &[&str]) -> Vec<OsString> {
    a.iter().map(OsString::from).collect()
}

fn strings(v: Vec<OsString>) -> Vec<String> {
    v.into_iter().map(|s| s.into_string().unwrap()).collect()
}

fn butte_own(name: &str) -> bool {
    name == "status_update_retry_interval"
}

fn run(a: &[&str], src: &Fake) -> Result<Vec<String>, FlagsError> {
    prepare(&args(a), &butte_own, src).map(strings)
}

#[test]
fn every_flag_is_listed_once_with_its_aliases() {
    let mut names = BTreeSet::new();
    for f in FLAGS {
        assert!(names.insert(f.name), "{} twice", f.name);
        for a in f.aliases {
            assert!(names.insert(a), "{a} twice");
        }
    }
    // Mesos 1.11's agent flags (a Linux build with every isolator): 143 in
    // flags.cpp and the 6 logging flags.
    assert_eq!(FLAGS.len(), 149);
    for name in [
        "work_dir",
        "isolation",
        "docker_socket",
        "acls",
        "logging_level",
    ] {
        assert!(find(name).is_some(), "{name}");
    }
    assert_eq!(find("slave-subsystems").unwrap().name, "agent_subsystems");
    assert_eq!(
        find("allowed_capabilities").unwrap().name,
        "effective_capabilities"
    );
}

#[test]
fn no_prefix_and_file_values_are_read_as_mesos_reads_them() {
    let src = Fake::default()
        .file("/etc/res", "cpus:4;mem:1024\n")
        .file("/etc/modules.json", "{\"libraries\": []}\n");
    let out = run(
        &[
            "--work_dir=/w",
            "--resources=file:///etc/res",
            "--no-switch_user",
            "--modules",
            "file:///etc/modules.json",
            "--credential=file:///etc/cred",
            "--master=file:///etc/mesos/zk",
        ],
        &src,
    )
    .unwrap();
    assert_eq!(
        out,
        [
            "--work_dir=/w",
            "--resources=cpus:4;mem:1024",
            "--switch_user=false",
            "--modules",
            "{\"libraries\": []}",
            "--credential=/etc/cred",
            "--master=file:///etc/mesos/zk",
        ]
    );
}

#[test]
fn a_missing_file_names_the_flag_and_path() {
    let err = run(&["--attributes=file:///nope"], &Fake::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "flag --attributes: cannot read /nope: entity not found"
    );
}

#[test]
fn negating_a_non_boolean_is_refused() {
    let err = run(&["--no-work_dir"], &Fake::default()).unwrap_err();
    assert!(
        err.to_string().contains("--work_dir is not a boolean"),
        "{err}"
    );
    let err = run(&["--no-strict=x"], &Fake::default()).unwrap_err();
    assert!(err.to_string().contains("takes no value"), "{err}");
}

#[test]
fn environment_file_values_aliases_and_lower_case_names_become_arguments() {
    let src = Fake::default()
        .env("MESOS_ATTRIBUTES", "file:///etc/attrs")
        .env("MESOS_WORK_DIR", "/w")
        .env("MESOS_SLAVE_SUBSYSTEMS", "cpu")
        .env("MESOS_docker_socket", "/run/docker.sock")
        .env("MESOS_CREDENTIAL", "file:///etc/cred")
        .env("MESOS_HOSTNAME", "file:///ignored-because-argv-has-it")
        .file("/etc/attrs", "rack:a\n");
    let mut out = run(&["--hostname=h"], &src).unwrap();
    out.sort();
    assert_eq!(
        out,
        [
            "--agent_subsystems=cpu",
            "--attributes=rack:a",
            "--credential=/etc/cred",
            "--docker_socket=/run/docker.sock",
            "--hostname=h",
        ]
    );
}

#[test]
fn config_dirs_sit_between_the_command_line_and_the_environment() {
    let src = Fake::default()
        .file("/etc/mesos/zk", "zk://zk1:2181,zk2:2181/mesos\n")
        .file("/etc/mesos-slave/work_dir", "/var/lib/mesos\n")
        .file("/etc/mesos-slave/hostname", "from-file\n")
        .file("/etc/mesos-slave/?no-switch_user", "")
        .file("/etc/mesos-slave/?cgroups_enable_cfs", "")
        .file("/etc/mesos-slave/status_update_retry_interval", "2secs")
        .file("/etc/mesos-slave/.hidden", "x")
        .file("/etc/mesos-slave/attributes", "file:///etc/attrs")
        .file("/etc/attrs", "rack:b")
        .env("MESOS_WORK_DIR", "/from-env");
    let out = run(
        &[
            "--config_dir=/etc/mesos-slave",
            "--config_dir",
            "/etc/mesos",
            "--hostname",
            "from-argv",
        ],
        &src,
    )
    .unwrap();
    assert_eq!(
        out,
        [
            "--config_dir=/etc/mesos-slave",
            "--config_dir",
            "/etc/mesos",
            "--hostname",
            "from-argv",
            "--cgroups_enable_cfs=true",
            "--switch_user=false",
            "--attributes=rack:b",
            "--status_update_retry_interval=2secs",
            "--work_dir=/var/lib/mesos",
            "--master=zk://zk1:2181,zk2:2181/mesos",
        ]
    );
}

#[test]
fn an_unknown_config_file_is_refused_by_name() {
    let src = Fake::default().file("/etc/mesos-slave/no_such_flag", "1");
    let err = run(&["--config_dir=/etc/mesos-slave"], &src).unwrap_err();
    assert_eq!(
        err.to_string(),
        "config dir file /etc/mesos-slave/no_such_flag: no `butte agent` flag --no_such_flag"
    );
}

fn review(set: &[(&'static str, &str)]) -> Result<Vec<Ignored>, FlagsError> {
    OtherFlags {
        set: set.iter().map(|(n, v)| (*n, v.to_string())).collect(),
    }
    .review()
}

#[test]
fn ignored_flags_are_named_with_their_reason_in_one_line() {
    let ignored = review(&[
        ("docker_socket", "/var/run/docker.sock"),
        ("containerizers", "mesos"),
        ("docker_ignore_runtime", "true"),
        ("log_dir", "/var/log/mesos"),
    ])
    .unwrap();
    let names: Vec<_> = ignored.iter().map(|i| i.name).collect();
    assert_eq!(names, ["docker_socket", "docker_ignore_runtime", "log_dir"]);
    let line = ignored_line(&ignored).unwrap();
    assert!(line.starts_with("ignoring 3 Mesos flags butte does not use: --docker_socket (no Docker daemon: butte runs DOCKER containers"), "{line}");
    assert!(
        line.contains("--docker_ignore_runtime (butte always applies an image's"),
        "{line}"
    );
    assert_eq!(ignored_line(&[]), None);
}

#[test]
fn unsafe_flags_are_refused_together() {
    let err = review(&[
        ("acls", "{}"),
        ("containerizers", "docker,lxc"),
        ("enforce_container_ports", "true"),
        ("docker_socket", "/x"),
    ])
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(
            "refusing Mesos flags butte cannot honour safely: --acls: butte has no authorizer"
        ),
        "{text}"
    );
    assert!(
        text.contains("--containerizers=docker,lxc: only `mesos` and `docker`"),
        "{text}"
    );
    assert!(
        text.contains("--enforce_container_ports=true: butte has no network/ports"),
        "{text}"
    );
    assert!(!text.contains("docker_socket"), "{text}");
}

#[test]
fn isolation_accepts_what_butte_provides_and_names_the_rest() {
    check_isolation("filesystem/linux,cgroups/cpu,cgroups/mem,docker/runtime,network/cni,disk/du")
        .unwrap();
    check_isolation("").unwrap();
    let err = check_isolation("cgroups/cpu,gpu/nvidia, volume/host_path,foo/bar").unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("--isolation: butte does not provide gpu/nvidia, volume/host_path, foo/bar (it provides filesystem/linux,"),
        "{text}"
    );
}

#[test]
fn values_are_checked_by_kind() {
    assert!(Kind::Duration.check("10secs").is_ok());
    assert!(Kind::Duration.check("ten").is_err());
    assert!(Kind::Bytes.check("512MB").is_ok());
    assert!(Kind::Bool.check("yes").is_err());
    assert!(Kind::Int.check("150").is_ok());
    assert!(Kind::Float.check("0.x").is_err());
}

#[test]
fn ignored_flags_parse_from_arguments_and_environment() {
    use clap::{Args, FromArgMatches};
    let cmd = OtherFlags::augment_args(clap::Command::new("t"));
    cmd.clone().debug_assert();
    let m = cmd
        .clone()
        .try_get_matches_from(["t", "--docker-socket=/d", "--quiet", "--no-such"])
        .unwrap_err();
    assert_eq!(m.kind(), clap::error::ErrorKind::UnknownArgument);
    let m = cmd
        .try_get_matches_from([
            "t",
            "--docker_socket=/d",
            "--quiet",
            "--gc_non_executor_container_sandboxes=false",
        ])
        .unwrap();
    let o = OtherFlags::from_arg_matches(&m).unwrap();
    let mut set = o.set.clone();
    set.sort();
    assert_eq!(
        set,
        [
            ("docker_socket", "/d".to_string()),
            ("gc_non_executor_container_sandboxes", "false".to_string()),
            ("quiet", "true".to_string()),
        ]
    );
}

/// The packaged unit reads the Mesosphere layout: `/etc/mesos/zk` and
/// `/etc/mesos-slave/<flag>` files, above `/etc/default/butte-agent`'s
/// variables, and starts without them.
#[test]
fn the_packaged_unit_reads_mesosphere_directories() {
    let unit = include_str!("../../../packaging/butte-agent.service");
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    let words: Vec<&str> = exec.split_whitespace().collect();
    assert_eq!(&words[..2], ["/usr/bin/butte", "agent"]);
    let src = Fake::default()
        .file("/etc/mesos/zk", "zk://zk1:2181,zk2:2181,zk3:2181/mesos\n")
        .file("/etc/mesos-slave/attributes", "rack:r1\n")
        .file("/etc/mesos-slave/?no-switch_user", "")
        .env("MESOS_MASTER", "old-master:5050");
    let mut out = run(&words[2..], &src).unwrap();
    out.sort();
    assert!(
        out.contains(&"--master=zk://zk1:2181,zk2:2181,zk3:2181/mesos".to_string()),
        "{out:?}"
    );
    assert!(out.contains(&"--attributes=rack:r1".to_string()), "{out:?}");
    assert!(out.contains(&"--switch_user=false".to_string()), "{out:?}");
    // Neither directory there: the arguments as they are.
    let bare = run(&words[2..], &Fake::default()).unwrap();
    assert_eq!(bare, words[2..]);
}
