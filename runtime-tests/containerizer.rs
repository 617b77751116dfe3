//! The Mesos containerizer end to end: real executors launched, waited
//! for, limited, destroyed and recovered (root only, see `support`).

use crate::support::{busybox_oci, enabled, processes_in_cgroup, Fixture, BUTTE};
use butte::containerizer::mesos::{
    ExecutorEnv, ExecutorKind, LaunchRequest, Launched, MesosConfig, MesosContainerizer,
    Termination,
};
use butte::image::{self, Quiet, Store};
use butte::proto::mesos::task_status::Reason;
use butte::proto::mesos::{
    container_info, value, CommandInfo, ContainerInfo, ExecutorId, ExecutorInfo, FrameworkId,
    FrameworkInfo, Image, Resource, TaskId, TaskInfo,
};
use butte::runtime::{ExitStatus, RuntimeConfig};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn config(fx: &Fixture) -> MesosConfig {
    let runtime = RuntimeConfig {
        cgroup_root: "/sys/fs/cgroup".into(),
        cgroup_parent: fx.parent.clone(),
        cgroup_unit: None,
        helper: BUTTE.into(),
    };
    let w = fx.work.path();
    MesosConfig::new(w.to_path_buf(), w.join("run"), runtime, BUTTE.into())
}

fn mem(mb: f64) -> Resource {
    Resource {
        name: "mem".into(),
        r#type: value::Type::Scalar as i32,
        scalar: Some(value::Scalar { value: mb }),
        ..Resource::default()
    }
}

fn shell(command: &str) -> CommandInfo {
    CommandInfo {
        value: Some(command.into()),
        ..CommandInfo::default()
    }
}

/// A custom executor running `command` under `sh -c`.
fn custom(id: &str, command: &str, mem_mb: f64) -> LaunchRequest {
    LaunchRequest {
        container_id: id.into(),
        agent_id: "S1".into(),
        framework: FrameworkInfo {
            user: "root".into(),
            name: "test".into(),
            id: Some(FrameworkId { value: "F1".into() }),
            ..FrameworkInfo::default()
        },
        executor: ExecutorInfo {
            executor_id: ExecutorId { value: "E1".into() },
            command: Some(shell(command)),
            resources: vec![mem(mem_mb)],
            ..ExecutorInfo::default()
        },
        kind: ExecutorKind::Custom,
        tasks: Vec::new(),
        env: ExecutorEnv {
            agent_endpoint: "127.0.0.1:5051".parse().unwrap(),
            agent_pid: "slave(1)@127.0.0.1:5051".into(),
            checkpoint: true,
            recovery_timeout: Duration::from_secs(15 * 60),
            subscription_backoff_max: Duration::from_secs(2),
            shutdown_grace_period: Duration::from_secs(5),
        },
        standalone: false,
        nested: None,
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn wait(c: &MesosContainerizer, id: &str) -> Termination {
    block_on(async {
        tokio::time::timeout(Duration::from_secs(30), c.wait(id))
            .await
            .expect("the container ended within 30s")
            .expect("wait")
    })
}

fn no_cgroup(fx: &Fixture, id: &str) {
    let left: Vec<PathBuf> = fx
        .cgroup_dirs(id)
        .into_iter()
        .filter(|d| d.exists())
        .collect();
    assert!(left.is_empty(), "cgroup left: {left:?}");
}

#[test]
fn custom_executor_gets_the_mesos_environment_and_output_files() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let c = MesosContainerizer::new(config(&fx)).unwrap();
    let req = custom(
        "c-env",
        "echo $MESOS_FRAMEWORK_ID; env > env.txt; echo err >&2; sleep 0.1",
        64.0,
    );
    let Launched {
        container_id,
        pid,
        sandbox,
        ..
    } = c.launch(req).unwrap();
    assert_eq!(container_id, "c-env");
    assert!(pid > 1);
    let runs = fx
        .work
        .path()
        .join("slaves/S1/frameworks/F1/executors/E1/runs");
    assert_eq!(sandbox, runs.join("c-env"));
    assert_eq!(fs::read_link(runs.join("latest")).unwrap(), sandbox);
    let t = wait(&c, "c-env");
    assert_eq!(t.status, Some(ExitStatus::Exited(0)), "{t:?}");
    assert_eq!(t.limitation, None);
    assert_eq!(fs::read_to_string(sandbox.join("stdout")).unwrap(), "F1\n");
    assert_eq!(fs::read_to_string(sandbox.join("stderr")).unwrap(), "err\n");
    let env = fs::read_to_string(sandbox.join("env.txt")).unwrap();
    let s = sandbox.display().to_string();
    for want in [
        "MESOS_FRAMEWORK_ID=F1".to_string(),
        "MESOS_EXECUTOR_ID=E1".into(),
        "MESOS_SLAVE_ID=S1".into(),
        "MESOS_SLAVE_PID=slave(1)@127.0.0.1:5051".into(),
        "MESOS_AGENT_ENDPOINT=127.0.0.1:5051".into(),
        format!("MESOS_DIRECTORY={s}"),
        format!("MESOS_SANDBOX={s}"),
        "MESOS_CHECKPOINT=1".into(),
        "MESOS_RECOVERY_TIMEOUT=15mins".into(),
        "MESOS_SUBSCRIPTION_BACKOFF_MAX=2secs".into(),
        "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD=5secs".into(),
        format!("PWD={s}"),
    ] {
        assert!(env.lines().any(|l| l == want), "{want} not in:\n{env}");
    }
    // The exit released the cgroup and the runtime directory; destroy
    // returns the termination once, then forgets the container.
    no_cgroup(&fx, "c-env");
    assert!(!fx.work.path().join("run/containers/c-env").exists());
    assert_eq!(c.destroy("c-env").unwrap(), Some(t));
    assert_eq!(c.destroy("c-env").unwrap(), None);
    assert!(sandbox.join("stdout").exists());
    fx.finish();
}

#[test]
fn memory_hog_ends_with_a_memory_limitation() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let c = MesosContainerizer::new(config(&fx)).unwrap();
    c.launch(custom("c-oom", "tail /dev/zero", 32.0)).unwrap();
    let t = wait(&c, "c-oom");
    let l = t.limitation.clone().expect("a limitation");
    assert_eq!(l.reason, Reason::ContainerLimitationMemory);
    assert!(
        l.message
            .starts_with("Memory limit exceeded: Requested: 32MB Maximum Used: "),
        "{l:?}"
    );
    assert_eq!(t.message, l.message);
    assert!(
        matches!(
            t.status,
            Some(ExitStatus::Signaled(9)) | Some(ExitStatus::Exited(137))
        ),
        "{t:?}"
    );
    assert_eq!(c.limitation("c-oom"), Some(l));
    no_cgroup(&fx, "c-oom");
    c.destroy("c-oom").unwrap();
    // An executor that survives the OOM kill of one of its processes is
    // killed by the containerizer, as Mesos' memory isolator does.
    c.launch(custom("c-oom2", "(tail /dev/zero); sleep 1000", 32.0))
        .unwrap();
    let t = wait(&c, "c-oom2");
    assert_eq!(
        t.limitation.map(|l| l.reason),
        Some(Reason::ContainerLimitationMemory)
    );
    assert_eq!(t.status, Some(ExitStatus::Signaled(9)));
    no_cgroup(&fx, "c-oom2");
    c.destroy("c-oom2").unwrap();
    fx.finish();
}

#[test]
fn destroy_kills_everything_and_leaves_no_cgroup() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let c = MesosContainerizer::new(config(&fx)).unwrap();
    let l = c
        .launch(custom("c-kill", "sleep 1000 & sleep 1000", 64.0))
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(c.limitation("c-kill"), None);
    let usage = c.usage("c-kill").unwrap();
    assert!(
        usage.memory_current > 0 && usage.pids_current >= 2,
        "{usage:?}"
    );
    std::thread::scope(|s| {
        let waiter = s.spawn(|| wait(&c, "c-kill"));
        std::thread::sleep(Duration::from_millis(100));
        let t = c.destroy("c-kill").unwrap().expect("a termination");
        assert_eq!(t.status, Some(ExitStatus::Signaled(9)));
        // A waiter sees the same end.
        assert_eq!(waiter.join().unwrap(), t);
    });
    no_cgroup(&fx, "c-kill");
    assert!(processes_in_cgroup(&fx.parent).is_empty());
    assert!(l.sandbox.join("stdout").exists());
    assert_eq!(c.destroy("c-kill").unwrap(), None);
    assert!(c.usage("c-kill").is_none());
    fx.finish();
}

#[test]
fn a_restarted_agent_recovers_running_executors() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let pid = {
        let c = MesosContainerizer::new(config(&fx)).unwrap();
        c.launch(custom("c-rec", "sleep 1000", 64.0)).unwrap().pid
        // The containerizer goes away as an exiting agent's does.
    };
    let alive = |pid: i32| nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
    assert!(alive(pid), "the executor outlived its containerizer");
    let c = MesosContainerizer::new(config(&fx)).unwrap();
    c.recover("c-rec", Some(pid)).unwrap();
    assert!(c.recover("c-rec", Some(pid)).is_err(), "recovered twice");
    assert_eq!(c.limitation("c-rec"), None);
    let t = c.destroy("c-rec").unwrap().expect("a termination");
    assert_eq!(t.status, None, "an adopted executor's status is unknown");
    // This test process was the executor's parent: reap it.
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
    assert!(processes_in_cgroup(&fx.parent).is_empty());
    assert!(
        fx.cgroup_dirs("c-rec").iter().all(|d| !d.exists()),
        "adopted cgroup left behind"
    );
    // A pid that is gone (or not the container's) is a terminated container.
    c.recover("c-gone", Some(pid)).unwrap();
    let t = wait(&c, "c-gone");
    assert_eq!((t.status, &t.limitation), (None, &None));
    assert!(t.message.contains("gone"), "{t:?}");
    c.destroy("c-gone").unwrap();
    fx.finish();
}

/// Issue 18: the agent died between the launch and the checkpoint of the
/// executor's pid: recovery finds the executor through the container's
/// cgroup and adopts it (not an orphan, never reported dead while it
/// runs); a container without a process has its cgroup removed.
#[test]
fn a_restarted_agent_finds_an_executor_without_a_pid_through_its_cgroup() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let pid = {
        let c = MesosContainerizer::new(config(&fx)).unwrap();
        c.launch(custom("c-nopid", "sleep 1000", 64.0)).unwrap().pid
    };
    let c = MesosContainerizer::new(config(&fx)).unwrap();
    c.recover("c-nopid", None).unwrap();
    assert_eq!(
        c.usage("c-nopid").map(|u| u.pids_current >= 1),
        Some(true),
        "the executor without a pid was not adopted"
    );
    let t = c.destroy("c-nopid").unwrap().expect("a termination");
    assert_eq!(t.status, None, "an adopted executor's status is unknown");
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
    assert!(processes_in_cgroup(&fx.parent).is_empty());
    assert!(
        fx.cgroup_dirs("c-nopid").iter().all(|d| !d.exists()),
        "adopted cgroup left behind"
    );
    // A container whose cgroup holds nothing: terminated, cgroup removed.
    // (Made in the v1 hierarchies the runtime uses, not in the hybrid
    // host's hugetlb-only `unified` one.)
    for d in fx.cgroup_dirs("c-empty") {
        if !d.starts_with("/sys/fs/cgroup/unified") {
            fs::create_dir_all(d).unwrap();
        }
    }
    c.recover("c-empty", None).unwrap();
    let t = wait(&c, "c-empty");
    assert_eq!(t.status, None);
    assert!(
        fx.cgroup_dirs("c-empty").iter().all(|d| !d.exists()),
        "empty cgroup left behind"
    );
    c.destroy("c-empty").unwrap();
    fx.finish();
}

#[test]
fn command_executor_finds_task_images_mounted_in_its_namespace() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let w = fx.work.path();
    let store = Store::open(w).unwrap();
    image::import(&store, &busybox_oci(), Some("busybox"), 1 << 30, &Quiet).unwrap();
    // A stand-in for `butte executor`: shows its arguments, the launch
    // info, and the task's root filesystem as the executor sees it.
    let probe = w.join("probe.sh");
    fs::write(
        &probe,
        "#!/bin/sh\necho \"$1 $2\"\ncat \"$3\" > launch-info.json\n\
         rootfs=$(sed -n 's/.*\"rootfs\": \"\\(.*\\)\".*/\\1/p' \"$3\")\n\
         test -x \"$rootfs/bin/busybox\" && echo image-mounted\n",
    )
    .unwrap();
    fs::set_permissions(&probe, fs::Permissions::from_mode(0o755)).unwrap();
    let mut cfg = config(&fx);
    cfg.butte = probe;
    let c = MesosContainerizer::new(cfg).unwrap();
    let task = TaskInfo {
        name: "boxed".into(),
        task_id: TaskId { value: "t1".into() },
        command: Some(shell("ls /")),
        container: Some(ContainerInfo {
            r#type: container_info::Type::Mesos as i32,
            mesos: Some(container_info::MesosInfo {
                image: Some(Image {
                    r#type: butte::proto::mesos::image::Type::Docker as i32,
                    docker: Some(butte::proto::mesos::image::Docker {
                        name: "busybox:1".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }),
        resources: vec![mem(64.0)],
        ..TaskInfo::default()
    };
    let mut req = custom("c-img", "unused", 0.0);
    req.kind = ExecutorKind::Command;
    req.executor =
        butte::containerizer::mesos::command_executor_info("F1", &task, Path::new(BUTTE));
    req.tasks = vec![task];
    let l = c.launch(req).unwrap();
    let rootfs = w.join("run/containers/c-img/tasks/t1/rootfs");
    let t = wait(&c, "c-img");
    assert_eq!(t.status, Some(ExitStatus::Exited(0)), "{t:?}");
    assert_eq!(
        fs::read_to_string(l.sandbox.join("stdout")).unwrap(),
        "executor --launch-info\nimage-mounted\n",
        "stderr: {}",
        fs::read_to_string(l.sandbox.join("stderr")).unwrap()
    );
    let info: serde_json::Value =
        serde_json::from_slice(&fs::read(l.sandbox.join("launch-info.json")).unwrap()).unwrap();
    assert_eq!(info["t1"]["rootfs"], rootfs.display().to_string());
    // The provisioned filesystem, its lease and the runtime dir are gone.
    assert!(!w.join("provisioner/c-img.t1").exists());
    assert!(!store.lease_path("c-img.t1").exists());
    assert!(!w.join("run/containers/c-img").exists());
    c.destroy("c-img").unwrap();
    fx.finish();
}

/// A custom executor whose `ExecutorInfo.container` is DOCKER runs in the
/// image as `docker run` would run it: Docker's command line (`shell`:
/// `/bin/sh -c`), the executor's environment plus MESOS_SANDBOX at the
/// mapped sandbox and MESOS_CONTAINER_NAME, parameters (workdir, env,
/// cap-drop, ulimit, tmpfs, read-only) and a sandbox volume; nothing is
/// left behind.
#[test]
fn custom_executor_in_a_docker_container() {
    use butte::containerizer::mesos::DockerConfig;
    use butte::proto::mesos::container_info::DockerInfo;
    use butte::proto::mesos::{volume, Parameter, Volume};
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let w = fx.work.path();
    let store = Store::open(w).unwrap();
    image::import(&store, &busybox_oci(), Some("busybox"), 1 << 30, &Quiet).unwrap();
    let mut cfg = config(&fx);
    cfg.docker = DockerConfig {
        containerizers: "docker,mesos".into(),
        ..DockerConfig::default()
    };
    let c = MesosContainerizer::new(cfg).unwrap();
    let script = "cd $MESOS_SANDBOX; env > env.txt; pwd > pwd.txt; ulimit -n > nofile.txt; \
                  touch /x 2>/dev/null || echo ro > ro.txt; echo t > /scratch/t && echo tmpfs > tmpfs.txt; \
                  touch /tmp/c; chown 1 /tmp/c 2>/dev/null || echo no-chown > chown.txt; \
                  echo vol > /vol/f";
    let mut req = custom("c-docker", script, 64.0);
    let param = |k: &str, v: &str| Parameter {
        key: k.into(),
        value: v.into(),
    };
    req.executor.container = Some(ContainerInfo {
        r#type: container_info::Type::Docker as i32,
        docker: Some(DockerInfo {
            image: "busybox:1".into(),
            parameters: vec![
                param("workdir", "/tmp"),
                param("env", "FROM_PARAM=1"),
                param("cap-drop", "chown"),
                param("ulimit", "nofile=128:256"),
                param("tmpfs", "/scratch:size=1m"),
                param("read-only", "true"),
            ],
            ..Default::default()
        }),
        volumes: vec![Volume {
            mode: volume::Mode::Rw as i32,
            container_path: "/vol".into(),
            host_path: Some("vol-on-host".into()),
            ..Default::default()
        }],
        ..Default::default()
    });
    let Launched { sandbox, .. } = c.launch(req).unwrap();
    let t = wait(&c, "c-docker");
    let read = |f: &str| fs::read_to_string(sandbox.join(f)).unwrap_or_default();
    assert_eq!(
        t.status,
        Some(ExitStatus::Exited(0)),
        "{t:?} {}",
        read("stderr")
    );
    let env = read("env.txt");
    for want in [
        "MESOS_SANDBOX=/mnt/mesos/sandbox",
        "MESOS_CONTAINER_NAME=mesos-c-docker",
        "MESOS_FRAMEWORK_ID=F1",
        "MESOS_EXECUTOR_ID=E1",
        "FROM_PARAM=1",
    ] {
        assert!(env.lines().any(|l| l == want), "{want} not in:\n{env}");
    }
    assert_eq!(read("nofile.txt"), "128\n");
    assert_eq!(read("ro.txt"), "ro\n");
    assert_eq!(read("tmpfs.txt"), "tmpfs\n");
    assert_eq!(read("chown.txt"), "no-chown\n");
    assert_eq!(read("vol-on-host/f"), "vol\n");
    c.destroy("c-docker").unwrap();
    no_cgroup(&fx, "c-docker");
    fx.finish();
}
