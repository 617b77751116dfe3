//! Invocation against fake plugins: shell scripts that record what they
//! were given (environment and stdin) and print a result or an error.

use super::*;
use std::fs;
use std::path::Path;

/// A plugin that appends `<type> <command>` to `log`, saves its stdin and
/// environment as `<type>.<command>.{json,env}`, and prints a result with
/// one IP (its own type in the interface name) or, for `failing`, an error.
fn plugin(dir: &Path, log: &Path, name: &str, body: &str) {
    let script = format!(
        "#!/bin/sh\nset -e\nin=$(cat)\necho \"{name} $CNI_COMMAND\" >> {log}\n\
         printf '%s' \"$in\" > {dir}/{name}.$CNI_COMMAND.json\nenv | grep ^CNI_ | sort > {dir}/{name}.$CNI_COMMAND.env\n{body}\n",
        log = log.display(),
        dir = log.parent().unwrap().display(),
    );
    let p = dir.join(name);
    fs::write(&p, script).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
}

const OK: &str = r#"if [ "$CNI_COMMAND" = ADD ]; then echo '{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"'$CNI_NETNS'"}],"ips":[{"address":"10.1.0.2/24","interface":0}],"dns":{"nameservers":["10.1.0.1"]}}'; fi"#;

struct Setup {
    _tmp: tempfile::TempDir,
    bin: PathBuf,
    out: PathBuf,
    log: PathBuf,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let bin = tmp.path().join("bin");
    let out = tmp.path().join("out");
    fs::create_dir_all(&bin).unwrap();
    fs::create_dir_all(&out).unwrap();
    let log = out.join("log");
    Setup {
        _tmp: tmp,
        bin,
        out,
        log,
    }
}

fn net(json: &str) -> NetworkConfig {
    NetworkConfig::parse(Path::new("t.conflist"), json.as_bytes()).unwrap()
}

fn attachment() -> Attachment {
    let mut runtime_config = Map::new();
    runtime_config.insert(
        "portMappings".into(),
        serde_json::json!([{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]),
    );
    Attachment {
        container_id: "c1".into(),
        netns: "/run/test/ns".into(),
        ifname: "eth0".into(),
        cni_args: vec![
            ("IgnoreUnknown".into(), "1".into()),
            ("A".into(), "b".into()),
        ],
        runtime_config,
        args: Some(
            serde_json::from_str(r#"{"org.apache.mesos":{"network_info":{"name":"n"}}}"#).unwrap(),
        ),
    }
}

fn read_json(p: PathBuf) -> Value {
    serde_json::from_slice(&fs::read(&p).unwrap()).unwrap()
}

#[test]
fn add_threads_the_result_through_the_chain_with_env_and_capabilities() {
    let s = setup();
    plugin(&s.bin, &s.log, "first", OK);
    // The second passes its prevResult on, as chained plugins do.
    plugin(
        &s.bin,
        &s.log,
        "second",
        r#"printf '%s' "$in" | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin).get("prevResult", {})))'"#,
    );
    let n = net(
        r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"first","args":{"cni":{"x":1}}},
        {"type":"second","capabilities":{"portMappings":true}}]}"#,
    );
    let cni = Cni::new(vec![s.out.join("missing"), s.bin.clone()]);
    let r = cni.add(&n, &attachment()).unwrap();
    assert_eq!(r.ips[0].ip(), "10.1.0.2");
    assert_eq!(r.dns.nameservers, vec!["10.1.0.1"]);
    assert_eq!(r.interfaces[0].sandbox, "/run/test/ns");
    assert_eq!(
        fs::read_to_string(&s.log).unwrap(),
        "first ADD\nsecond ADD\n"
    );

    let first = read_json(s.out.join("first.ADD.json"));
    assert_eq!(first["name"], "n");
    assert_eq!(first["cniVersion"], "1.0.0");
    assert!(first.get("prevResult").is_none());
    // Only a plugin that declares the capability gets it.
    assert!(first.get("runtimeConfig").is_none());
    assert_eq!(first["args"]["cni"]["x"], 1);
    assert_eq!(
        first["args"]["org.apache.mesos"]["network_info"]["name"],
        "n"
    );
    let second = read_json(s.out.join("second.ADD.json"));
    assert_eq!(second["prevResult"]["ips"][0]["address"], "10.1.0.2/24");
    assert_eq!(second["runtimeConfig"]["portMappings"][0]["hostPort"], 8080);
    let env = fs::read_to_string(s.out.join("first.ADD.env")).unwrap();
    let expected = format!(
        "CNI_ARGS=IgnoreUnknown=1;A=b\nCNI_COMMAND=ADD\nCNI_CONTAINERID=c1\nCNI_IFNAME=eth0\nCNI_NETNS=/run/test/ns\nCNI_PATH={}:{}\n",
        s.out.join("missing").display(),
        s.bin.display()
    );
    assert_eq!(env, expected);
}

#[test]
fn del_runs_every_plugin_in_reverse_with_the_added_result() {
    let s = setup();
    plugin(&s.bin, &s.log, "first", "exit 0");
    plugin(
        &s.bin,
        &s.log,
        "second",
        r#"echo '{"code":11,"msg":"still busy"}'; exit 1"#,
    );
    let n =
        net(r#"{"cniVersion":"0.4.0","name":"n","plugins":[{"type":"first"},{"type":"second"}]}"#);
    let cni = Cni::new(vec![s.bin.clone()]);
    let added =
        serde_json::json!({"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.1.0.2/24"}]});
    let e = cni.del(&n, &attachment(), Some(&added)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "network n: cni plugin second failed DEL: still busy (code 11)"
    );
    // The failing second one did not stop the first.
    assert_eq!(
        fs::read_to_string(&s.log).unwrap(),
        "second DEL\nfirst DEL\n"
    );
    let first = read_json(s.out.join("first.DEL.json"));
    assert_eq!(first["prevResult"], added);
    assert_eq!(first["cniVersion"], "0.4.0");
}

#[test]
fn check_gives_each_plugin_the_added_result() {
    let s = setup();
    plugin(&s.bin, &s.log, "first", "exit 0");
    let n = net(r#"{"cniVersion":"1.0.0","name":"n","type":"first"}"#);
    let cni = Cni::new(vec![s.bin.clone()]);
    let added = serde_json::json!({"cniVersion":"1.0.0","ips":[]});
    cni.check(&n, &attachment(), &added).unwrap();
    assert_eq!(
        read_json(s.out.join("first.CHECK.json"))["prevResult"],
        added
    );
}

#[test]
fn failures_name_the_network_the_plugin_and_the_cause() {
    let s = setup();
    plugin(
        &s.bin,
        &s.log,
        "errs",
        r#"echo '{"cniVersion":"1.0.0","code":7,"msg":"pool exhausted","details":"10.1.0.0/30"}'; exit 1"#,
    );
    plugin(&s.bin, &s.log, "crashes", "echo boom >&2; exit 3");
    plugin(&s.bin, &s.log, "garbage", "echo not-json");
    fs::write(s.bin.join("noexec"), "").unwrap();
    let cni = Cni::new(vec![s.bin.clone()]);
    let add = |t: &str| {
        let n = net(&format!(
            r#"{{"cniVersion":"1.0.0","name":"net1","type":"{t}"}}"#
        ));
        cni.add(&n, &attachment()).unwrap_err().to_string()
    };
    assert_eq!(
        add("errs"),
        "network net1: cni plugin errs failed ADD: pool exhausted (code 7): 10.1.0.0/30"
    );
    assert_eq!(
        add("crashes"),
        "network net1: cni plugin crashes failed ADD (exit status: 3): boom"
    );
    assert!(add("garbage").starts_with("network net1: cni plugin garbage ADD: unreadable result"));
    assert_eq!(
        add("noexec"),
        format!(
            "network net1: cni plugin noexec not found in {}",
            s.bin.display()
        )
    );
}

#[test]
fn a_plugin_that_hangs_is_killed_after_the_timeout() {
    let s = setup();
    plugin(&s.bin, &s.log, "hangs", "exec sleep 30");
    let n = net(r#"{"cniVersion":"1.0.0","name":"slow","type":"hangs"}"#);
    let cni = Cni::new(vec![s.bin.clone()]).with_timeout(Duration::from_millis(300));
    let started = std::time::Instant::now();
    let e = cni.add(&n, &attachment()).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        e.to_string(),
        "network slow: cni plugin hangs ADD: killed after 300ms"
    );
}
