//! The fuzz targets without a fuzzing engine: every target of
//! `butte::fuzzing` runs over its seeds in `fuzz/corpus/<target>/` (and
//! any regression inputs in `fuzz/regressions/<target>/`), and every
//! corpus directory belongs to a target.
//!
//! The seeds are written by `write_seeds` below (run it with
//! `cargo test --test fuzz_corpus -- --ignored`), except where a seed is
//! plainer as text: those files are written by hand.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use butte::fuzzing::{target, TARGETS};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    out.sort();
    out
}

#[test]
fn every_target_runs_over_its_seeds() {
    for (name, run) in TARGETS {
        let seeds = files(&fuzz_dir().join("corpus").join(name));
        assert!(!seeds.is_empty(), "target {name} has no seeds");
        let regressions = files(&fuzz_dir().join("regressions").join(name));
        for seed in seeds.iter().chain(&regressions) {
            let data = fs::read(seed).unwrap();
            assert!(data.len() <= 8 << 10, "{} is over 8 KiB", seed.display());
            let outcome = std::panic::catch_unwind(|| run(&data));
            assert!(outcome.is_ok(), "{name} panics on {}", seed.display());
        }
    }
}

#[test]
fn every_corpus_and_binary_belongs_to_a_target() {
    let names: BTreeSet<&str> = TARGETS.iter().map(|(n, _)| *n).collect();
    for dir in ["corpus", "regressions"] {
        for d in files(&fuzz_dir().join(dir)) {
            let name = d.file_name().unwrap().to_string_lossy().into_owned();
            assert!(names.contains(name.as_str()), "{dir}/{name} has no target");
        }
    }
    let bins: BTreeSet<String> = files(&fuzz_dir().join("src/bin"))
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    let names: BTreeSet<String> = names.iter().map(|n| n.to_string()).collect();
    assert_eq!(
        bins, names,
        "fuzz/src/bin/ and butte::fuzzing::TARGETS differ"
    );
    assert!(target("tar").is_some() && target("nope").is_none());
}

// ---- the seeds ----

fn write(target: &str, name: &str, data: &[u8]) {
    let dir = fuzz_dir().join("corpus").join(target);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(name), data).unwrap();
}

/// (Re)writes the generated seeds.
#[test]
#[ignore = "writes fuzz/corpus; run by hand when the seeds change"]
fn write_seeds() {
    libprocess_seeds();
    executor_call_seeds();
    tar_seeds();
    zip_seeds();
}

fn from_json<M: prost_reflect::ReflectMessage + Default>(json: serde_json::Value) -> Vec<u8> {
    let m: M = butte::proto::from_json(json.to_string().as_bytes()).unwrap();
    m.encode_to_vec()
}

fn libprocess_seeds() {
    use butte::proto::mesos::internal as m;
    use butte::wire::{encode_message, Upid};
    use serde_json::json;
    let master: Upid = "master@10.0.0.1:5050".parse().unwrap();
    let agent: Upid = "slave(1)@10.0.0.2:5051".parse().unwrap();
    let fw = json!({"value": "fw-1"});
    let agent_id = json!({"value": "agent-1"});
    let framework = json!({"user": "root", "name": "marathon", "id": fw});
    let command = json!({
        "value": "echo hi",
        "shell": true,
        "uris": [{"value": "http://h/a.tgz", "extract": true},
                 {"value": "/srv/run.sh", "executable": true, "output_file": "bin/run"}],
        "environment": {"variables": [{"name": "A", "value": "b"}]}
    });
    let task = json!({
        "name": "t", "task_id": {"value": "task-1"}, "slave_id": agent_id,
        "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.5}},
                      {"name": "mem", "type": "SCALAR", "scalar": {"value": 64.0}}],
        "command": command,
        "container": {"type": "MESOS", "mesos": {"image": {"type": "DOCKER",
                      "docker": {"name": "library/busybox:1.36"}}}}
    });
    let messages: Vec<(&str, Vec<u8>)> = vec![
        (
            "RunTaskMessage",
            from_json::<m::RunTaskMessage>(json!({
                "framework_id": fw, "framework": framework, "task": task,
                "pid": "scheduler-1@10.0.0.3:4000"
            })),
        ),
        (
            "RunTaskGroupMessage",
            from_json::<m::RunTaskGroupMessage>(json!({
                "framework": framework,
                "executor": {"executor_id": {"value": "ex"}, "type": "DEFAULT",
                             "framework_id": fw, "resources": []},
                "task_group": {"tasks": [task]}
            })),
        ),
        (
            "KillTaskMessage",
            from_json::<m::KillTaskMessage>(json!({
                "framework_id": fw, "task_id": {"value": "task-1"},
                "kill_policy": {"grace_period": {"nanoseconds": 1000000000}}
            })),
        ),
        (
            "SlaveRegisteredMessage",
            from_json::<m::SlaveRegisteredMessage>(json!({
                "slave_id": agent_id,
                "connection": {"total_ping_timeout_seconds": 75.0}
            })),
        ),
        (
            "SlaveReregisteredMessage",
            from_json::<m::SlaveReregisteredMessage>(json!({"slave_id": agent_id})),
        ),
        (
            "PingSlaveMessage",
            from_json::<m::PingSlaveMessage>(json!({"connected": true})),
        ),
        (
            "StatusUpdateAcknowledgementMessage",
            from_json::<m::StatusUpdateAcknowledgementMessage>(json!({
                "slave_id": agent_id, "framework_id": fw, "task_id": {"value": "task-1"},
                "uuid": "AAECAwQFBgcICQoLDA0ODw=="
            })),
        ),
        (
            "ShutdownFrameworkMessage",
            from_json::<m::ShutdownFrameworkMessage>(json!({"framework_id": fw})),
        ),
        (
            "ShutdownExecutorMessage",
            from_json::<m::ShutdownExecutorMessage>(json!({
                "framework_id": fw, "executor_id": {"value": "ex"}
            })),
        ),
        (
            "FrameworkToExecutorMessage",
            from_json::<m::FrameworkToExecutorMessage>(json!({
                "slave_id": agent_id, "framework_id": fw,
                "executor_id": {"value": "ex"}, "data": "aGk="
            })),
        ),
        (
            "UpdateFrameworkMessage",
            from_json::<m::UpdateFrameworkMessage>(json!({
                "framework_id": fw, "pid": "scheduler-1@10.0.0.3:4000",
                "framework_info": framework
            })),
        ),
        (
            "ShutdownMessage",
            from_json::<m::ShutdownMessage>(json!({"message": "bye"})),
        ),
    ];
    for (name, body) in messages {
        let full = format!("mesos.internal.{name}");
        write(
            "libprocess",
            name,
            &encode_message(&master, &agent, &full, &body),
        );
    }
    // The legacy form: the sender only in the User-Agent, the receiver
    // percent-encoded, a body without chunks.
    let ping = from_json::<m::PingSlaveMessage>(json!({"connected": false}));
    let mut legacy = b"POST /slave%281%29/mesos.internal.PingSlaveMessage HTTP/1.1\r\n\
User-Agent: libprocess/master@10.0.0.1:5050\r\n\
Content-Length: 2\r\n\r\n"
        .to_vec();
    legacy.extend_from_slice(&ping);
    write("libprocess", "legacy-user-agent", &legacy);
    write(
        "libprocess",
        "not-a-message",
        b"GET /slave(1)/state HTTP/1.1\r\nHost: 10.0.0.2:5051\r\n\r\n",
    );
}

fn executor_call_seeds() {
    use butte::proto::mesos::v1::executor::Call;
    use serde_json::json;
    let ids = |mut call: serde_json::Value| {
        call["framework_id"] = json!({"value": "fw-1"});
        call["executor_id"] = json!({"value": "ex"});
        call
    };
    let calls = [
        (
            "subscribe",
            ids(json!({"type": "SUBSCRIBE", "subscribe": {
                "unacknowledged_tasks": [{
                    "name": "t", "task_id": {"value": "task-1"},
                    "agent_id": {"value": "agent-1"}, "resources": []}],
                "unacknowledged_updates": [{
                    "status": {"task_id": {"value": "task-1"}, "state": "TASK_STARTING",
                               "uuid": "AAECAwQFBgcICQoLDA0ODw==", "timestamp": 1700000000.5}}]
            }})),
        ),
        (
            "update",
            ids(json!({"type": "UPDATE", "update": {"status": {
                "task_id": {"value": "task-1"}, "state": "TASK_RUNNING",
                "source": "SOURCE_EXECUTOR", "uuid": "AAECAwQFBgcICQoLDA0ODw==",
                "executor_id": {"value": "ex"},
                "check_status": {"type": "COMMAND", "command": {"exit_code": 0}},
                "labels": {"labels": [{"key": "k", "value": "v"}]}
            }}})),
        ),
        (
            "message",
            ids(json!({"type": "MESSAGE", "message": {"data": "aGVsbG8="}})),
        ),
        ("heartbeat", ids(json!({"type": "HEARTBEAT"}))),
    ];
    for (name, call) in calls {
        let json = call.to_string();
        let mut seed = b"application/json\napplication/json\n".to_vec();
        seed.extend_from_slice(json.as_bytes());
        write("executor_call", &format!("{name}.json"), &seed);
        let mut seed = b"application/x-protobuf\napplication/x-protobuf;q=0.5, */*;q=0\n".to_vec();
        seed.extend(from_json::<Call>(call));
        write("executor_call", &format!("{name}.pb"), &seed);
    }
}

/// A tar entry: (path, kind, link target or content).
type Entry<'a> = (&'a str, tar::EntryType, &'a [u8]);

fn tar_of(entries: &[Entry], pax: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    if !pax.is_empty() {
        b.append_pax_extensions(pax.iter().copied()).unwrap();
    }
    for (path, kind, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_mode(if kind.is_dir() { 0o755 } else { 0o644 });
        h.set_mtime(1_700_000_000);
        h.set_uid(1000);
        h.set_gid(1000);
        if kind.is_symlink() || kind.is_hard_link() {
            h.set_size(0);
            b.append_link(&mut h, path, std::str::from_utf8(data).unwrap())
                .unwrap();
        } else {
            let data: &[u8] = if kind.is_file() { data } else { b"" };
            h.set_size(data.len() as u64);
            b.append_data(&mut h, path, data).unwrap();
        }
    }
    b.into_inner().unwrap()
}

fn tar_seeds() {
    use tar::EntryType::{Char, Directory, Link, Regular, Symlink};
    let seeds: Vec<(&str, u8, Vec<u8>)> = vec![
        (
            "files",
            0,
            tar_of(
                &[
                    ("etc/", Directory, b""),
                    ("etc/hostname", Regular, b"box\n"),
                    ("bin/sh", Regular, b"#!"),
                    ("bin/ash", Link, b"bin/sh"),
                    ("lib", Symlink, b"usr/lib"),
                    ("dev/null", Char, b""),
                ],
                &[],
            ),
        ),
        (
            "escape-through-symlinks",
            0,
            tar_of(
                &[
                    ("up", Symlink, b"../outside"),
                    ("up/file", Regular, b"overwritten"),
                    ("abs", Symlink, b"/dev/shm"),
                    ("abs/x", Regular, b"x"),
                    ("hard", Link, b"up/file"),
                ],
                &[],
            ),
        ),
        (
            "whiteouts-apply",
            2,
            tar_of(
                &[
                    ("a/", Directory, b""),
                    ("a/.wh..wh..opq", Regular, b""),
                    ("a/.wh.b", Regular, b""),
                    (".wh.up", Regular, b""),
                ],
                &[],
            ),
        ),
        (
            "whiteouts-overlay-xattrs",
            1 | 8 | 16,
            tar_of(
                &[("d/", Directory, b""), ("d/.wh.gone", Regular, b"")],
                &[("SCHILY.xattr.user.k", b"v")],
            ),
        ),
    ];
    for (name, flags, archive) in seeds {
        let mut seed = vec![flags];
        seed.extend_from_slice(&archive);
        write("tar", name, &seed);
    }
    // A gzip-compressed layer.
    let layer = tar_of(&[("x/", Directory, b""), ("x/y", Regular, b"y")], &[]);
    let mut gz = flate2::write::GzEncoder::new(vec![32u8], flate2::Compression::best());
    gz.write_all(&layer).unwrap();
    write("tar", "gzip", &gz.finish().unwrap());
}

fn zip_seeds() {
    use zip::write::SimpleFileOptions;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let stored = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    w.add_directory("d/", stored).unwrap();
    w.start_file("d/a.txt", stored.unix_permissions(0o640))
        .unwrap();
    w.write_all(b"hello").unwrap();
    w.add_symlink("link", "../outside", stored).unwrap();
    w.start_file("link/file", stored).unwrap();
    w.write_all(b"escape").unwrap();
    w.start_file("../up", stored).unwrap();
    let deflated = SimpleFileOptions::default();
    w.start_file("big.txt", deflated).unwrap();
    w.write_all(&b"z".repeat(2000)).unwrap();
    write("zip", "mixed", &w.finish().unwrap().into_inner());
}
