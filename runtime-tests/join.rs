//! `Runtime::join`: a process started inside a running sandbox sees its
//! root filesystem, hostname and pid namespace, is in its cgroups, gets a
//! terminal when asked, and leaves nothing behind.

use crate::support::{busybox, enabled, text, Fixture};
use butte::runtime::{set_window_size, Container, ExitStatus, JoinIo, JoinSpec, Rootfs, Stdio};
use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

/// A busybox sandbox named `joined-host` that sleeps.
fn target(fx: &Fixture) -> Container {
    let mut spec = fx.spec(&["sh", "-c", "exec sleep 1000"]);
    spec.rootfs = Some(Rootfs {
        path: busybox(),
        mount: None,
        readonly: false,
    });
    spec.hostname = Some("joined-host".into());
    let (stdio, _, _) = fx.stdio("target");
    fx.runtime.launch(&spec, stdio).unwrap()
}

fn join_spec(target: &Container, argv: &[&str]) -> JoinSpec {
    JoinSpec {
        id: format!("{}.debug", target.id()),
        target: target.pid(),
        argv: argv.iter().map(|s| s.to_string()).collect(),
        env: vec![("PATH".into(), "/bin:/sbin:/usr/bin".into())],
        cwd: Some("/tmp".into()),
        user: None,
        capabilities: None,
        seccomp: None,
    }
}

/// Everything a pty master yields until the slave side is gone.
fn read_all(master: OwnedFd) -> String {
    let mut f = fs::File::from(master);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            // EIO: every slave fd is closed.
            Err(_) => break,
        }
    }
    text(&out)
}

#[test]
fn joined_process_sees_the_sandbox_from_inside() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let marker = std::env::temp_dir().join(format!("butte-join-marker-{}", std::process::id()));
    fs::write(&marker, "host only").unwrap();
    let mut t = target(&fx);
    let script = format!(
        "hostname; pwd; ls /proc | grep -c '^[0-9]'; cat /proc/1/cmdline | tr '\\0' ' '; echo; \
         test -e {} && echo host-visible || echo host-hidden; cat /proc/self/cgroup | sort",
        marker.display()
    );
    let (stdio, out, err) = fx.stdio("joined");
    let mut j = fx
        .runtime
        .join(&join_spec(&t, &["sh", "-c", &script]), JoinIo::Stdio(stdio))
        .unwrap();
    assert!(j.pty.is_none());
    // Its own pid, in the host's view, and a member of the target's cgroups.
    let host_view = fs::read_to_string(format!("/proc/{}/cgroup", j.container.pid()));
    let rec = j.container.wait().unwrap();
    let _ = fs::remove_file(&marker);
    let stdout = fs::read_to_string(&out).unwrap();
    assert_eq!(
        rec.status,
        ExitStatus::Exited(0),
        "{}",
        fs::read_to_string(&err).unwrap()
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "joined-host", "{stdout}");
    assert_eq!(lines[1], "/tmp", "{stdout}");
    let visible: u32 = lines[2].parse().unwrap();
    assert!(
        visible <= 5,
        "the joined process sees {visible} processes: {stdout}"
    );
    assert!(lines[3].starts_with("sleep 1000"), "{stdout}");
    assert_eq!(lines[4], "host-hidden", "{stdout}");
    let target_cgroups = fs::read_to_string(format!("/proc/{}/cgroup", t.pid())).unwrap();
    if let Ok(h) = host_view {
        let mut a: Vec<&str> = h.lines().collect();
        let mut b: Vec<&str> = target_cgroups.lines().collect();
        a.sort();
        b.sort();
        assert_eq!(a, b, "the joined process is not in the target's cgroups");
    }
    assert!(
        target_cgroups.contains(t.id()),
        "target cgroups: {target_cgroups}"
    );
    // The target runs on.
    assert!(t.try_wait().unwrap().is_none());
    t.destroy().unwrap();
    fx.finish();
}

#[test]
fn joined_process_on_a_terminal_with_a_window_size() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let t = target(&fx);
    let spec = join_spec(
        &t,
        &[
            "sh",
            "-c",
            "[ -t 0 ] && [ -t 1 ] && echo on-a-tty; stty size; read x; stty size; exit 3",
        ],
    );
    let mut j = fx
        .runtime
        .join(
            &spec,
            JoinIo::Tty {
                rows: 33,
                cols: 101,
            },
        )
        .unwrap();
    let master = j.pty.take().expect("a pty master");
    let reader = master.try_clone().unwrap();
    let out = std::thread::spawn(move || read_all(reader));
    std::thread::sleep(Duration::from_millis(300));
    set_window_size(master.as_fd(), 40, 120).unwrap();
    fs::File::from(master.try_clone().unwrap())
        .write_all(b"go\n")
        .unwrap();
    let rec = j.container.wait().unwrap();
    drop(master);
    let out = out.join().unwrap();
    assert_eq!(rec.status, ExitStatus::Exited(3), "{out}");
    assert!(out.contains("on-a-tty"), "{out:?}");
    assert!(out.contains("33 101"), "{out:?}");
    assert!(out.contains("40 120"), "{out:?}");
    t.destroy().unwrap();
    fx.finish();
}

#[test]
fn joined_process_is_killed_alone_and_a_bad_command_is_reported() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let mut t = target(&fx);
    let j = fx
        .runtime
        .join(
            &join_spec(&t, &["sleep", "1000"]),
            JoinIo::Stdio(Stdio::null().unwrap()),
        )
        .unwrap();
    let pid = j.container.pid();
    assert!(fs::metadata(format!("/proc/{pid}")).is_ok());
    let rec = j.container.destroy().unwrap();
    assert_eq!(rec.status, ExitStatus::Signaled(9));
    assert!(
        fs::metadata(format!("/proc/{pid}")).is_err(),
        "pid {pid} still there"
    );
    assert!(t.try_wait().unwrap().is_none(), "the target died with it");

    // What it left running in its session ends with it.
    let mut j = fx
        .runtime
        .join(
            &join_spec(&t, &["sh", "-c", "sleep 999 & sleep 998 & exit 0"]),
            JoinIo::Stdio(Stdio::null().unwrap()),
        )
        .unwrap();
    assert_eq!(j.container.wait().unwrap().status, ExitStatus::Exited(0));
    let left: Vec<String> = fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.starts_with("sleep 99"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    assert!(t.try_wait().unwrap().is_none(), "the target died with it");

    let e = fx
        .runtime
        .join(
            &join_spec(&t, &["no-such-command"]),
            JoinIo::Stdio(Stdio::null().unwrap()),
        )
        .unwrap_err();
    assert!(e.to_string().contains("no-such-command"), "{e}");
    // A target that is gone.
    let gone = JoinSpec {
        target: i32::MAX - 1,
        ..join_spec(&t, &["true"])
    };
    assert!(fx
        .runtime
        .join(&gone, JoinIo::Stdio(Stdio::null().unwrap()))
        .is_err());
    t.destroy().unwrap();
    fx.finish();
}
