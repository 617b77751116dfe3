use super::*;
use crate::proto::mesos::{
    AuthenticateMessage, AuthenticationMechanismsMessage, AuthenticationStartMessage,
    AuthenticationStepMessage,
};
use crate::wire::Upid;
use prost::{Message as _, Name as _};

fn cred(p: &str, s: &str) -> Credential {
    Credential {
        principal: p.into(),
        secret: s.into(),
    }
}

#[test]
fn cram_md5_matches_rfc_2195() {
    // RFC 2195, section 2's example.
    let response = cram_md5_response(
        &cred("tim", "tanstaaftanstaaf"),
        b"<1896.697170952@postoffice.reston.mci.net>",
    );
    assert_eq!(
        String::from_utf8(response).unwrap(),
        "tim b913a602c7eda7a495b4e6e7334d3890"
    );
}

#[test]
fn credential_files_as_mesos_reads_them() {
    assert_eq!(
        Credential::parse("agent s3cret\n").unwrap(),
        cred("agent", "s3cret")
    );
    assert_eq!(
        Credential::parse("  agent   s3cret").unwrap(),
        cred("agent", "s3cret")
    );
    assert_eq!(
        Credential::parse(r#"{"principal": "agent", "secret": "s3cret"}"#).unwrap(),
        cred("agent", "s3cret")
    );
    for (bad, why) in [
        ("", "empty"),
        ("agent", "principal secret"),
        ("agent s3cret extra", "principal secret"),
        ("a b\nc d\n", "only one credential"),
        (r#"{"principal": "agent"}"#, "needs a secret"),
        (
            r#"{"principal": "agent", "secret": 3}"#,
            "not a JSON credential",
        ),
    ] {
        let e = Credential::parse(bad).unwrap_err();
        assert!(e.contains(why), "{bad:?}: {e}");
    }
    assert!(!format!("{:?}", cred("a", "s3cret")).contains("s3cret"));

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("credential");
    std::fs::write(&path, "agent\n").unwrap();
    let e = Credential::load(&path).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("credential file {}: ", path.display())),
        "{e}"
    );
    let e = Credential::load(&dir.path().join("missing"))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("read the credential file "), "{e}");
}

#[test]
fn authenticatee_ids_are_recognised() {
    assert!(is_authenticatee("crammd5-authenticatee(1)"));
    assert!(is_authenticatee("crammd5-authenticatee(123)"));
    for id in [
        "crammd5-authenticatee",
        "crammd5-authenticatee()",
        "crammd5-authenticatee(x)",
        "slave(1)",
        "crammd5-authenticatee(1)x",
    ] {
        assert!(!is_authenticatee(id), "{id}");
    }
}

fn agent() -> Upid {
    "slave(1)@127.0.0.1:5051".parse().unwrap()
}

fn authenticator() -> Upid {
    "crammd5-authenticator(3)@127.0.0.1:5050".parse().unwrap()
}

fn mechanisms(list: &[&str]) -> Vec<u8> {
    AuthenticationMechanismsMessage {
        mechanisms: list.iter().map(|s| s.to_string()).collect(),
    }
    .encode_to_vec()
}

#[test]
fn a_full_exchange_ends_completed() {
    let mut a = Authenticatee::new(7, agent(), cred("tim", "tanstaaftanstaaf"));
    assert_eq!(
        a.pid().to_string(),
        "crammd5-authenticatee(7)@127.0.0.1:5051"
    );
    let (name, body) = a.start();
    assert_eq!(name, "mesos.AuthenticateMessage");
    assert_eq!(
        AuthenticateMessage::decode(&body[..]).unwrap().pid,
        "slave(1)@127.0.0.1:5051"
    );

    let from = authenticator();
    let Step::Send { to, name, body } = a.receive(
        &from,
        &AuthenticationMechanismsMessage::full_name(),
        &mechanisms(&["CRAM-MD5"]),
    ) else {
        panic!("no start");
    };
    assert_eq!(to, from);
    assert_eq!(name, "mesos.AuthenticationStartMessage");
    let start = AuthenticationStartMessage::decode(&body[..]).unwrap();
    assert_eq!(start.mechanism, "CRAM-MD5");
    assert_eq!(start.data.as_deref(), Some(&[][..]));

    let challenge = AuthenticationStepMessage {
        data: b"<1896.697170952@postoffice.reston.mci.net>".to_vec(),
    };
    let Step::Send { name, body, .. } = a.receive(
        &from,
        &AuthenticationStepMessage::full_name(),
        &challenge.encode_to_vec(),
    ) else {
        panic!("no response");
    };
    assert_eq!(name, "mesos.AuthenticationStepMessage");
    assert_eq!(
        AuthenticationStepMessage::decode(&body[..]).unwrap().data,
        b"tim b913a602c7eda7a495b4e6e7334d3890"
    );
    assert!(matches!(
        a.receive(&from, "mesos.AuthenticationCompletedMessage", &[]),
        Step::Completed
    ));
    // Over: later messages change nothing.
    assert!(matches!(
        a.receive(&from, "mesos.AuthenticationFailedMessage", &[]),
        Step::Ignore
    ));
}

#[test]
fn refusals_errors_and_surprises_end_the_attempt() {
    let from = authenticator();
    let mut a = Authenticatee::new(1, agent(), cred("a", "b"));
    assert!(matches!(
        a.receive(&from, "mesos.AuthenticationFailedMessage", &[]),
        Step::Refused
    ));

    let mut a = Authenticatee::new(2, agent(), cred("a", "b"));
    let Step::Error(e) = a.receive(
        &from,
        &AuthenticationMechanismsMessage::full_name(),
        &mechanisms(&["PLAIN", "GSSAPI"]),
    ) else {
        panic!("no error");
    };
    assert_eq!(
        e.to_string(),
        "the master offers no CRAM-MD5 (mechanisms: PLAIN,GSSAPI)"
    );

    // A step before the mechanisms, a completion before any step.
    let mut a = Authenticatee::new(3, agent(), cred("a", "b"));
    let Step::Error(e) = a.receive(&from, &AuthenticationStepMessage::full_name(), &[]) else {
        panic!("accepted a step first");
    };
    assert!(e.to_string().starts_with("unexpected mesos.AuthenticationStepMessage from crammd5-authenticator(3)@127.0.0.1:5050 while waiting for the mechanisms"), "{e}");
    let mut a = Authenticatee::new(4, agent(), cred("a", "b"));
    assert!(matches!(
        a.receive(&from, "mesos.AuthenticationCompletedMessage", &[]),
        Step::Error(_)
    ));

    let mut a = Authenticatee::new(5, agent(), cred("a", "b"));
    let err = crate::proto::mesos::AuthenticationErrorMessage {
        error: Some("no authenticator".into()),
    };
    let Step::Error(e) = a.receive(
        &from,
        "mesos.AuthenticationErrorMessage",
        &err.encode_to_vec(),
    ) else {
        panic!("no error");
    };
    assert_eq!(
        e.to_string(),
        "the master reported an authentication error: no authenticator"
    );
}
