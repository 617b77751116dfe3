//! The default hardening of every sandbox, checked from inside through the
//! runtime API: the device allowlist (cgroup v1 `devices`, and the v2 BPF
//! program on this hybrid host's cgroup2 mount), masked and read-only
//! paths, and the seccomp filter. `hardening.rs` runs a full probe through
//! `butte run`; these tests pin each mechanism alone.

use crate::support::{busybox, enabled, text, Fixture, LoopDevice};
use butte::containerizer::security::{SeccompChoice, SeccompProfiles};
use butte::runtime::{Devices, Rootfs, Runtime, RuntimeConfig, SandboxSpec};
use std::path::Path;

fn in_busybox(spec: &mut SandboxSpec) {
    spec.rootfs = Some(Rootfs {
        path: busybox(),
        mount: None,
        readonly: false,
    });
}

/// Runs a spec to its end; returns its stdout and stderr together.
fn run(fx: &Fixture, runtime: &Runtime, spec: &SandboxSpec) -> String {
    let (stdio, out, err) = fx.stdio(&spec.id);
    let mut c = runtime.launch(spec, stdio).expect("launch");
    c.wait().expect("wait");
    text(&std::fs::read(out).unwrap()) + &text(&std::fs::read(err).unwrap())
}

/// A script that makes a node for the loop device and reads it, and uses
/// the sandbox's own devices.
fn device_script(dev: &LoopDevice) -> String {
    format!(
        "mknod /dev/disk b {} {} && echo mknod-ok; head -c 22 /dev/disk; echo; \
         echo x > /dev/null && echo null-ok; head -c 4 /dev/urandom | wc -c",
        dev.major, dev.minor
    )
}

fn assert_denied(out: &str, dev: &LoopDevice) {
    assert!(!out.contains(dev.secret), "host block device read: {out}");
    assert!(out.contains("Operation not permitted"), "{out}");
    assert!(out.contains("null-ok"), "{out}");
    assert!(out.lines().any(|l| l.trim() == "4"), "urandom: {out}");
}

#[test]
fn device_allowlist_denies_host_block_devices_on_cgroup_v1() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let dev = LoopDevice::new();
    let mut spec = fx.spec(&["sh", "-c", &device_script(&dev)]);
    in_busybox(&mut spec);
    let out = run(&fx, &fx.runtime, &spec);
    assert!(
        out.contains("mknod-ok"),
        "runc allows creating nodes: {out}"
    );
    assert_denied(&out, &dev);
    // A task on the host filesystem gets the same allowlist.
    let read = format!(
        "head -c 22 {}; echo x > /dev/null && echo null-ok",
        dev.path.display()
    );
    let host = fx.spec(&["sh", "-c", &read]);
    let out = run(&fx, &fx.runtime, &host);
    assert!(!out.contains(dev.secret), "{out}");
    assert!(
        out.contains("Operation not permitted") && out.contains("null-ok"),
        "{out}"
    );
    // Privileged: the same read succeeds, so the denial above is the filter.
    spec.id = fx.spec(&[]).id;
    spec.devices = Devices::All;
    let out = run(&fx, &fx.runtime, &spec);
    assert!(out.contains(dev.secret), "{out}");
    fx.finish();
}

#[test]
fn device_program_denies_host_block_devices_on_cgroup_v2() {
    if !enabled() {
        return;
    }
    let unified = Path::new("/sys/fs/cgroup/unified");
    if !unified.join("cgroup.controllers").exists() {
        // A pure v2 host runs every other test on v2 already.
        assert!(Path::new("/sys/fs/cgroup/cgroup.controllers").exists());
        return;
    }
    let fx = Fixture::new();
    let v2 = Runtime::new(&RuntimeConfig {
        cgroup_root: unified.into(),
        cgroup_parent: fx.parent.clone(),
        cgroup_unit: None,
        helper: crate::support::BUTTE.into(),
    })
    .unwrap();
    assert_eq!(v2.cgroup_version(), butte::runtime::CgroupVersion::V2);
    let dev = LoopDevice::new();
    let mut spec = fx.spec(&["sh", "-c", &device_script(&dev)]);
    in_busybox(&mut spec);
    let out = run(&fx, &v2, &spec);
    assert!(out.contains("mknod-ok"), "{out}");
    assert_denied(&out, &dev);
    spec.id = fx.spec(&[]).id;
    spec.devices = Devices::All;
    let out = run(&fx, &v2, &spec);
    assert!(out.contains(dev.secret), "{out}");
    fx.finish();
}

#[test]
fn kernel_interfaces_are_masked_or_read_only() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let script = "wc -c < /proc/keys; wc -c < /proc/timer_list; ls -A /sys/firmware | wc -l; \
                  ls -A /proc/acpi 2>/dev/null | wc -l; \
                  (echo butte > /proc/sys/kernel/domainname) 2>&1 || echo sys-ro; \
                  grep -c ' /proc/sys proc ro,' /proc/self/mounts";
    let mut spec = fx.spec(&["sh", "-c", script]);
    in_busybox(&mut spec);
    let out = run(&fx, &fx.runtime, &spec);
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    assert_eq!(&lines[..4], ["0", "0", "0", "0"], "{out}");
    assert!(
        out.contains("Read-only file system") && out.contains("sys-ro"),
        "{out}"
    );
    assert_eq!(lines.last(), Some(&"1"), "{out}");
    // The host-filesystem sandbox masks them too, in its own namespace.
    let host = fx.spec(&[
        "sh",
        "-c",
        "ls -A /sys/firmware | wc -l; cat /proc/timer_list | wc -c",
    ]);
    let out = run(&fx, &fx.runtime, &host);
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["0", "0"],
        "{out}"
    );
    fx.finish();
}

#[test]
fn default_seccomp_filter_denies_what_docker_denies() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let profiles = SeccompProfiles::default();
    let script =
        "grep -E '^(Seccomp|SigIgn):' /proc/self/status; unshare -U true || echo userns-denied; \
                  unshare -m true || echo mountns-denied; echo alive";
    let mut spec = fx.spec(&["sh", "-c", script]);
    in_busybox(&mut spec);
    profiles.apply(&mut spec, &SeccompChoice::Default).unwrap();
    let out = run(&fx, &fx.runtime, &spec);
    assert!(out.contains("Seccomp:\t2"), "{out}");
    // No signal ignored: the helper puts every one back to its default.
    assert!(out.contains("SigIgn:\t0000000000000000"), "{out}");
    assert!(
        out.contains("userns-denied") && out.contains("mountns-denied"),
        "{out}"
    );
    assert!(out.contains("alive"), "{out}");
    // Unconfined: no filter, and unshare of a user namespace works again.
    spec.id = fx.spec(&[]).id;
    profiles
        .apply(&mut spec, &SeccompChoice::Unconfined)
        .unwrap();
    let out = run(&fx, &fx.runtime, &spec);
    assert!(out.contains("Seccomp:\t0"), "{out}");
    assert!(!out.contains("userns-denied"), "{out}");
    fx.finish();
}
