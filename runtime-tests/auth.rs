//! `--credential` (issue 15): the agent authenticates to a master that
//! requires it with SASL CRAM-MD5 over libprocess, from its own
//! `crammd5-authenticatee(N)` process, before every (re-)registration; a
//! wrong credential is refused, said clearly, and retried with the
//! authentication timeouts' backoff, and the agent never registers
//! unauthenticated. The fake master plays Mesos' authenticator
//! (`support::master::try_authenticate`) and checks its own HMAC-MD5.

use crate::support::master::{self, AgentProcess, AuthOutcome, FakeMaster, WAIT};
use crate::support::{enabled, Fixture};
use butte::proto::mesos::internal::{RegisterSlaveMessage, ReregisterSlaveMessage};
use prost::Name as _;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

fn credential_file(fx: &Fixture, text: &str) -> String {
    let path = fx.work.path().join("credential");
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn agent_authenticates_with_cram_md5_before_every_registration() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let master = FakeMaster::start(0);
    master.require_authentication();
    let cred = credential_file(&fx, "agent-1 s3cret\n");
    let agent = AgentProcess::start(&fx, &master, &["--credential", &cred]);
    let outcome = master.try_authenticate(&[("agent-1", "s3cret")], WAIT);
    let Some(AuthOutcome::Completed {
        agent: pid,
        principal,
    }) = outcome
    else {
        panic!("authentication: {outcome:?}; {}", agent.log_tail(30));
    };
    assert_eq!(principal, "agent-1");
    master.register();
    assert_eq!(master.agent_pid(), pid);
    master.ping(true);

    // The master says the agent is not connected: it authenticates again
    // (a new authenticatee process) before re-registering.
    master.send(
        &master.agent_pid(),
        "slave-observer(1)",
        &butte::proto::mesos::internal::PingSlaveMessage { connected: false },
    );
    assert!(matches!(
        master.try_authenticate(&[("agent-1", "s3cret")], WAIT),
        Some(AuthOutcome::Completed { .. })
    ));
    master.reregister();
    master.ping(true);
    let log = agent.log();
    assert!(log.contains("crammd5-authenticatee(1)") && log.contains("crammd5-authenticatee(2)"));
    assert!(!log.contains("s3cret"), "the secret is in the log");
    master::finish(fx, master, agent);
}

#[test]
fn wrong_credential_is_refused_clearly_retried_with_backoff_and_never_registers() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let master = FakeMaster::start(0);
    master.require_authentication();
    let cred = credential_file(&fx, r#"{"principal": "agent-1", "secret": "wrong"}"#);
    let mut agent = AgentProcess::start(
        &fx,
        &master,
        &[
            "--credential",
            &cred,
            "--authentication_timeout_min",
            "300ms",
            "--authentication_backoff_factor",
            "100ms",
            "--authentication_timeout_max",
            "2secs",
        ],
    );
    let mut refused_at = Vec::new();
    for _ in 0..4 {
        match master.try_authenticate(&[("agent-1", "s3cret")], WAIT) {
            Some(AuthOutcome::Refused { response, .. }) => {
                assert!(response.starts_with("agent-1 "), "{response}");
                refused_at.push(Instant::now());
            }
            other => panic!("attempt: {other:?}; {}", agent.log_tail(30)),
        }
    }
    // Each retry waits out the attempt's timeout: at least the minimum.
    let gaps: Vec<Duration> = refused_at.windows(2).map(|w| w[1] - w[0]).collect();
    eprintln!("retries after a refusal: {gaps:?}");
    for gap in &gaps {
        assert!(
            *gap >= Duration::from_millis(250),
            "retried too soon: {gaps:?}"
        );
        assert!(*gap <= Duration::from_secs(3), "retried too late: {gaps:?}");
    }
    assert!(
        agent
            .log()
            .contains("the master refused authentication as \"agent-1\": check --credential"),
        "{}",
        agent.log_tail(30)
    );
    master.settle(Duration::from_millis(500));
    let registrations = master
        .history()
        .iter()
        .filter(|r| {
            r.name == RegisterSlaveMessage::full_name()
                || r.name == ReregisterSlaveMessage::full_name()
        })
        .count();
    assert_eq!(registrations, 0, "the agent registered unauthenticated");
    master.assert_clean();
    agent.shutdown();
    drop(agent);
    drop(master);
    fx.finish();
}

#[test]
fn unusable_credential_files_stop_the_agent_at_start() {
    if !enabled() {
        return;
    }
    let fx = Fixture::new();
    let master = FakeMaster::start(0);
    let cred = credential_file(&fx, "only-a-principal\n");
    let mut agent = AgentProcess::start(&fx, &master, &["--credential", &cred]);
    let status = agent.wait_exit(WAIT).expect("the agent keeps running");
    assert!(!status.success());
    let log = agent.log();
    assert!(
        log.contains("--credential: credential file") && log.contains("principal secret"),
        "{log}"
    );
    drop(agent);
    drop(master);
    fx.finish();
}
