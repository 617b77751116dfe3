//! A Docker task's settings as the built-in executors hand them to
//! `butte enter --prepare` and `--serve` (`--setup`, see `runtime::enter`):
//! the prepared process is started as the executor starts it (a socket on
//! stdin, `Ready`, then the task's `Run`) on a copy of the busybox root
//! filesystem, and the task and a check command report what they see.

use crate::support::{busybox, enabled, Fixture, BUTTE};
use butte::runtime::default_capability_mask;
use butte::support::prepared::{self, Finished, Prepared, Run, Setup, SetupBind};
use std::fs;
use std::io::BufReader;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `butte enter --MODE` as the executor starts it, ready (or failed).
fn start_enter(
    mode: &str,
    rootfs: &Path,
    sandbox: &Path,
    setup: &Setup,
) -> (Child, UnixStream, BufReader<UnixStream>) {
    let (ours, theirs) = UnixStream::pair().unwrap();
    let out = |name: &str| {
        fs::File::options()
            .create(true)
            .append(true)
            .open(sandbox.join(name))
            .unwrap()
    };
    let child = Command::new(BUTTE)
        .arg0("butte")
        .args(["enter", &format!("--{mode}"), "--rootfs"])
        .arg(rootfs)
        .arg("--sandbox")
        .arg(sandbox)
        .arg("--setup")
        .arg(setup.to_arg())
        .current_dir(sandbox)
        .env_clear()
        // Ours, not the task's: it must not see it.
        .env("EXECUTOR_ONLY", "leaked")
        .stdin(Stdio::from(OwnedFd::from(theirs)))
        .stdout(out(if mode == "serve" {
            "check-stdout"
        } else {
            "stdout"
        }))
        .stderr(out("stderr"))
        .spawn()
        .unwrap();
    ours.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut rx = BufReader::new(ours.try_clone().unwrap());
    let said = prepared::recv::<Prepared, _>(&mut rx).unwrap();
    assert_eq!(
        said,
        Some(Prepared::Ready),
        "enter --{mode}: {}",
        fs::read_to_string(sandbox.join("stderr")).unwrap_or_default()
    );
    (child, ours, rx)
}

fn wait(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "enter did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What the task and its check observe: one `name=value` a line.
const SCRIPT: &str = r#"
echo "leak=${EXECUTOR_ONLY:-none} from_task=$FROM_TASK sandbox=$MESOS_SANDBOX pwd=$(pwd)"
echo "ro=$(cat /data/ro/hello)"
touch /data/ro/new 2>/dev/null && echo ro_bind=writable || echo ro_bind=readonly
echo written > /data/rw/out && echo rw_bind=writable || echo rw_bind=readonly
touch /new-file 2>/dev/null && echo root=writable || echo root=readonly
touch /sbx/from-task && echo sandbox=writable || echo sandbox=readonly
test -e /mnt/mesos && echo default_sandbox=present || echo default_sandbox=absent
echo "marker=$(cat /sbx/marker)"
echo "scratch=$(grep ' /scratch ' /proc/self/mounts)"
echo "shm=$(grep ' /dev/shm ' /proc/self/mounts)"
touch /scratch/f && echo scratch=writable || echo scratch=readonly
touch /dev/shm/f && echo shm=writable || echo shm=readonly
chown 1 /scratch/f 2>/dev/null && echo chown=allowed || echo chown=denied
echo "capeff=$(grep CapEff /proc/self/status | cut -f2)"
echo "nofile=$(ulimit -n):$(ulimit -Hn)"
"#;

/// A private copy of the busybox root filesystem (mount targets are
/// created in the image), without `/mnt/mesos`.
fn private_rootfs(work: &Path) -> PathBuf {
    let rootfs = work.join("rootfs");
    let cp = Command::new("cp")
        .arg("-a")
        .arg(busybox())
        .arg(&rootfs)
        .status()
        .unwrap();
    assert!(cp.success());
    // Other tests may have made the default sandbox's place in it.
    let _ = fs::remove_dir_all(rootfs.join("mnt/mesos"));
    rootfs
}

fn value<'a>(out: &'a str, key: &str) -> Vec<&'a str> {
    out.lines()
        .flat_map(|l| l.split(' '))
        .filter_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .collect()
}

#[test]
fn docker_task_gets_its_mounts_capabilities_and_limits() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let work = fx.work.path();
    let rootfs = private_rootfs(work);
    // A link in the image to a path that is also the host's: a target
    // through it lands in the image, never on the host.
    let host_dir = work.join("host-only");
    fs::create_dir(&host_dir).unwrap();
    let in_image = rootfs.join(host_dir.strip_prefix("/").unwrap());
    fs::create_dir_all(&in_image).unwrap();
    std::os::unix::fs::symlink(&host_dir, rootfs.join("link")).unwrap();
    let (ro, rw, sandbox) = (work.join("ro"), work.join("rw"), work.join("sandbox"));
    for d in [&ro, &rw, &sandbox] {
        fs::create_dir(d).unwrap();
    }
    fs::write(ro.join("hello"), "hello from the host").unwrap();
    fs::write(sandbox.join("marker"), "in the sandbox").unwrap();

    let mut caps: Vec<String> = butte::runtime::default_capabilities()
        .into_iter()
        .filter(|c| c != "CAP_CHOWN")
        .collect();
    caps.push("CAP_NET_ADMIN".into());
    let setup = Setup {
        sandbox_dir: Some("/sbx".into()),
        binds: vec![
            SetupBind {
                source: ro.clone(),
                target: "/data/ro".into(),
                read_only: true,
            },
            SetupBind {
                source: rw.clone(),
                target: "/data/rw".into(),
                read_only: false,
            },
        ],
        tmpfs: vec![
            ("/scratch".into(), "size=1m".into()),
            ("/link/inside".into(), String::new()),
        ],
        shm_size: Some(1 << 20),
        read_only: true,
        capabilities: Some(caps),
        rlimits: vec![("nofile".into(), 100, 200)],
        netns: None,
    };
    let env = vec![
        ("PATH".to_string(), "/bin".to_string()),
        ("FROM_TASK".to_string(), "yes".to_string()),
        ("MESOS_SANDBOX".to_string(), "/sbx".to_string()),
    ];

    let (mut task, mut task_tx, _task_rx) = start_enter("prepare", &rootfs, &sandbox, &setup);
    let (mut checks, mut check_tx, mut check_rx) = start_enter("serve", &rootfs, &sandbox, &setup);

    // A check runs with the same root, mounts, capabilities and limits.
    let check = Run {
        argv: vec![
            "sh".into(),
            "-c".into(),
            format!("({SCRIPT}) > /sbx/check-out 2>&1"),
        ],
        env: env.clone(),
        cwd: Some("/sbx".into()),
        user: None,
        timeout_ms: Some(20_000),
    };
    prepared::send(&mut check_tx, &check).unwrap();
    let finished = prepared::recv::<Finished, _>(&mut check_rx).unwrap();
    assert_eq!(finished, Some(Finished::Code(0)));

    let run = Run {
        argv: vec!["sh".into(), "-c".into(), SCRIPT.into()],
        env,
        cwd: Some("/sbx".into()),
        user: None,
        timeout_ms: None,
    };
    prepared::send(&mut task_tx, &run).unwrap();
    let status = wait(&mut task);
    drop((check_tx, check_rx));
    let serve_status = wait(&mut checks);
    let stderr = fs::read_to_string(sandbox.join("stderr")).unwrap();
    assert!(status.success(), "task: {status}: {stderr}");
    assert!(serve_status.success(), "serve: {serve_status}: {stderr}");

    let want_caps = default_capability_mask() & !1 | (1 << 12);
    for (who, out) in [
        ("task", fs::read_to_string(sandbox.join("stdout")).unwrap()),
        (
            "check",
            fs::read_to_string(sandbox.join("check-out")).unwrap(),
        ),
    ] {
        let one = |key: &str| value(&out, key).join(" ");
        assert_eq!(one("leak"), "none", "{who}: {out}");
        assert_eq!(one("from_task"), "yes", "{who}: {out}");
        assert_eq!(one("sandbox"), "/sbx writable", "{who}: {out}");
        assert_eq!(one("pwd"), "/sbx", "{who}: {out}");
        assert!(out.contains("ro=hello from the host"), "{who}: {out}");
        assert_eq!(one("ro_bind"), "readonly", "{who}: {out}");
        assert_eq!(one("rw_bind"), "writable", "{who}: {out}");
        assert_eq!(one("root"), "readonly", "{who}: {out}");
        assert_eq!(one("default_sandbox"), "absent", "{who}: {out}");
        assert!(out.contains("marker=in the sandbox"), "{who}: {out}");
        let scratch = out
            .lines()
            .find(|l| l.starts_with("scratch=tmpfs"))
            .unwrap_or_else(|| panic!("{who}: {out}"));
        for opt in ["rw", "nosuid", "nodev", "noexec", "size=1024k"] {
            assert!(
                scratch.split([' ', ',']).any(|o| o == opt),
                "{who}: {scratch}"
            );
        }
        let shm = out
            .lines()
            .find(|l| l.starts_with("shm=") && l.contains("tmpfs"))
            .unwrap_or_else(|| panic!("{who}: {out}"));
        assert!(shm.contains("size=1024k"), "{who}: {shm}");
        assert!(out.contains("scratch=writable"), "{who}: {out}");
        assert!(out.contains("shm=writable"), "{who}: {out}");
        assert_eq!(one("chown"), "denied", "{who}: {out}");
        assert_eq!(
            one("capeff"),
            format!("{want_caps:016x}"),
            "{who}: CAP_CHOWN dropped, CAP_NET_ADMIN added: {out}"
        );
        assert_eq!(one("nofile"), "100:200", "{who}: {out}");
    }
    assert_eq!(
        fs::read_to_string(rw.join("out")).unwrap(),
        "written\n",
        "the rw bind writes through to the host"
    );
    assert!(!ro.join("new").exists());
    assert!(sandbox.join("from-task").exists());
    // The root stayed read-only; the target through the link was made in
    // the image, not in the host directory the link names.
    assert!(!rootfs.join("new-file").exists());
    assert_eq!(fs::read_dir(&host_dir).unwrap().count(), 0);
    assert!(in_image.join("inside").is_dir());
    fx.finish();
}

/// `--cap-drop ALL --cap-add NET_BIND_SERVICE`: without `CAP_SETPCAP`
/// the prepared process still reaches the exec with the one capability.
#[test]
fn docker_task_keeps_only_the_capability_it_asked_for() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let sandbox = fx.work.path().join("sandbox");
    fs::create_dir(&sandbox).unwrap();
    let setup = Setup {
        capabilities: Some(vec!["CAP_NET_BIND_SERVICE".into()]),
        ..Default::default()
    };
    let rootfs = private_rootfs(fx.work.path());
    let (mut task, mut tx, _rx) = start_enter("prepare", &rootfs, &sandbox, &setup);
    let run = Run {
        argv: vec![
            "sh".into(),
            "-c".into(),
            "grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb)' /proc/self/status".into(),
        ],
        env: vec![("PATH".into(), "/bin".into())],
        ..Default::default()
    };
    prepared::send(&mut tx, &run).unwrap();
    let status = wait(&mut task);
    let stderr = fs::read_to_string(sandbox.join("stderr")).unwrap();
    assert!(status.success(), "{status}: {stderr}");
    let out = fs::read_to_string(sandbox.join("stdout")).unwrap();
    let one = 1u64 << 10;
    for set in ["CapInh", "CapPrm", "CapEff", "CapBnd"] {
        assert!(out.contains(&format!("{set}:\t{one:016x}")), "{set}: {out}");
    }
    assert!(out.contains(&format!("CapAmb:\t{:016x}", 0)), "{out}");
    fx.finish();
}

#[test]
fn docker_task_with_a_bad_setup_fails_with_the_cause() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let sandbox = fx.work.path().join("sandbox");
    fs::create_dir(&sandbox).unwrap();
    let cases = [
        (
            Setup {
                capabilities: Some(vec!["CAP_TELEPORT".into()]),
                ..Default::default()
            },
            "read --setup: unknown capability \"CAP_TELEPORT\"",
        ),
        (
            Setup {
                tmpfs: vec![("/t".into(), "size=1m,tmpcopyup".into())],
                ..Default::default()
            },
            "tmpfs /t: option \"tmpcopyup\": not supported",
        ),
        (
            Setup {
                binds: vec![SetupBind {
                    source: "/etc".into(),
                    target: "/etc/../../x".into(),
                    read_only: true,
                }],
                ..Default::default()
            },
            "mount target \"/etc/../../x\"",
        ),
        (
            Setup {
                rlimits: vec![("files".into(), 1, 1)],
                ..Default::default()
            },
            "unknown resource limit \"files\"",
        ),
    ];
    for (setup, why) in cases {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let out = Command::new(BUTTE)
            .arg0("butte")
            .args(["enter", "--prepare", "--rootfs"])
            .arg(busybox())
            .arg("--sandbox")
            .arg(&sandbox)
            .arg("--setup")
            .arg(setup.to_arg())
            .stdin(Stdio::from(OwnedFd::from(theirs)))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "{why}: {stderr}");
        assert!(stderr.contains(why), "{why}: {stderr}");
        // The executor is told why, as the task's failure.
        let said = prepared::recv::<Prepared, _>(&mut BufReader::new(ours)).unwrap();
        assert!(
            matches!(&said, Some(Prepared::Failed(e)) if e.contains(why)),
            "{why}: {said:?}"
        );
    }
    fx.finish();
}
