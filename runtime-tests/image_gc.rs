//! Issue 17, item 4: automatic image garbage collection
//! (`--image_gc_config`) on a small store filesystem (a tmpfs the test
//! mounts over the agent's `store/` and removes).

use crate::support::master::{
    self, command_task, framework, image_container, AgentProcess, FakeMaster,
};
use crate::support::registry::Registry;
use crate::support::{busybox_oci, enabled, Fixture, Tmpfs, BUTTE};
use butte::proto::mesos::TaskState;
use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn sha256(data: &[u8]) -> String {
    use sha2::Digest as _;
    format!("{:x}", sha2::Sha256::digest(data))
}

/// An OCI layout at DIR with one image tagged "1" of one layer holding
/// FILE; returns its diff id's hex.
fn layout(dir: &Path, file: &str, content: &[u8]) -> String {
    fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    let put = |bytes: &[u8], media: &str| {
        let hex = sha256(bytes);
        fs::write(dir.join("blobs/sha256").join(&hex), bytes).unwrap();
        serde_json::json!({"mediaType": media, "digest": format!("sha256:{hex}"), "size": bytes.len()})
    };
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(content.len() as u64);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    b.append_data(&mut h, file, content).unwrap();
    let tar = b.into_inner().unwrap();
    let diff = sha256(&tar);
    let layer = put(&tar, "application/vnd.oci.image.layer.v1.tar");
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{diff}")]},
    });
    let config = put(
        config.to_string().as_bytes(),
        "application/vnd.oci.image.config.v1+json",
    );
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config, "layers": [layer],
    });
    let mut m = put(
        manifest.to_string().as_bytes(),
        "application/vnd.oci.image.manifest.v1+json",
    );
    m["platform"] = serde_json::json!({"architecture": "amd64", "os": "linux"});
    m["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": "1"});
    fs::write(
        dir.join("index.json"),
        serde_json::json!({"schemaVersion": 2, "manifests": [m]}).to_string(),
    )
    .unwrap();
    fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    diff
}

/// `butte image import DIR --name NAME` into the agent's store.
fn import(work: &Path, dir: &Path, name: &str) {
    let out = Command::new(BUTTE)
        .args(["image", "import"])
        .arg(dir)
        .args(["--name", name, "--work-dir"])
        .arg(work)
        .output()
        .unwrap();
    assert!(out.status.success(), "import {name}: {out:?}");
}

/// The layer directories of the store, by diff id hex.
fn layers(store: &Path) -> BTreeSet<String> {
    fs::read_dir(store.join("layers"))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.strip_prefix("sha256-").map(str::to_string)
        })
        .collect()
}

/// The diff ids (hex) the store's leases hold.
fn leased(store: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for e in fs::read_dir(store.join("leases")).unwrap() {
        let v: serde_json::Value =
            serde_json::from_slice(&fs::read(e.unwrap().path()).unwrap()).unwrap();
        for l in v["layers"].as_array().unwrap() {
            out.insert(
                l.as_str()
                    .unwrap()
                    .trim_start_matches("sha256:")
                    .to_string(),
            );
        }
    }
    out
}

/// Below the headroom nothing goes; past it, the image no container runs
/// loses its layers and blobs while the running task's (leased) layers and
/// an excluded image's stay.
#[test]
fn image_gc_under_a_small_filesystem_keeps_leased_and_excluded_layers() {
    if !enabled() {
        return;
    }
    let registry = Registry::start();
    registry.push(&busybox_oci(), "1", "library/busybox:1");
    let host = registry.url().trim_start_matches("http://").to_string();
    let fx = Fixture::new();
    let work = fx.work.path().join("agent-work");
    let store = work.join("store");
    let tmpfs = Tmpfs::mount(&store, 64);
    let master = FakeMaster::start(0);
    let config = r#"{"image_disk_headroom": 0.5,
        "image_disk_watch_interval": {"nanoseconds": 200000000},
        "excluded_images": [{"type": "DOCKER", "docker": {"name": "kept:1"}}]}"#;
    let agent = AgentProcess::start(
        &fx,
        &master,
        &[
            "--docker_registry",
            &registry.url(),
            "--image_gc_config",
            config,
        ],
    );
    master.register();

    let fw = framework("image-gc");
    let mut task = command_task("boxed", "sleep 120");
    task.container = Some(image_container("library/busybox:1"));
    master.run_task(&fw, &task);
    master.ack_until("boxed", TaskState::TaskRunning);
    let in_use = leased(&store);
    assert!(!in_use.is_empty(), "the running task leases no layer");

    let scratch = fx.work.path().join("layouts");
    let unused = layout(&scratch.join("unused"), "unused", b"nobody runs this");
    let kept = layout(&scratch.join("kept"), "kept", b"excluded from gc");
    import(&work, &scratch.join("unused"), &format!("{host}/unused"));
    import(&work, &scratch.join("kept"), &format!("{host}/kept"));
    // Below the headroom: nothing is collected.
    std::thread::sleep(Duration::from_secs(1));
    let all = layers(&store);
    for l in in_use.iter().chain([&unused, &kept]) {
        assert!(
            all.contains(l),
            "layer {l} gone below the headroom: {all:?}"
        );
    }

    // Past it (over half of 64 MB used): the unused image goes.
    fs::write(store.join("filler"), vec![1u8; 40 << 20]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while layers(&store).contains(&unused) {
        assert!(
            Instant::now() < deadline,
            "the unused layer survived past the headroom; {}",
            agent.log_tail(30)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let left = layers(&store);
    for l in in_use.iter().chain([&kept]) {
        assert!(left.contains(l), "layer {l} was collected: {left:?}");
    }
    let refs = fs::read_to_string(store.join("refs.json")).unwrap();
    assert!(!refs.contains("unused"), "{refs}");
    assert!(
        refs.contains("kept:1") && refs.contains("busybox:1"),
        "{refs}"
    );
    assert!(
        agent.log().contains("image garbage collection"),
        "not logged"
    );

    // The task never noticed.
    master.kill_task(&fw, "boxed", None);
    master.ack_until("boxed", TaskState::TaskKilled);
    fs::remove_file(store.join("filler")).unwrap();
    // The executor and its mounts are gone with the task: the tmpfs can go.
    std::thread::sleep(Duration::from_millis(500));
    drop(tmpfs);
    master::finish(fx, master, agent);
}
