use super::members::{self, Member};
use super::{MasterSpec, ZkUrl};
use crate::proto::mesos::{Address, MasterInfo};
use crate::wire::Upid;

fn upid(s: &str) -> Upid {
    s.parse().unwrap()
}

#[test]
fn host_port_and_master_pid_forms_are_static_masters() {
    assert_eq!(
        MasterSpec::parse("127.0.0.1:5050").unwrap(),
        MasterSpec::Static(upid("master@127.0.0.1:5050"))
    );
    assert_eq!(
        MasterSpec::parse("master@127.0.0.1:5051").unwrap(),
        MasterSpec::Static(upid("master@127.0.0.1:5051"))
    );
    let e = MasterSpec::parse("127.0.0.1").unwrap_err().to_string();
    assert!(e.starts_with("--master \"127.0.0.1\": "), "{e}");
    let e = MasterSpec::parse("http://x:1").unwrap_err().to_string();
    assert!(e.contains("unknown scheme"), "{e}");
}

#[test]
fn zk_urls_parse_as_mesos_does() {
    let url = ZkUrl::parse("zk://10.0.0.1:2181,10.0.0.2:2181/mesos").unwrap();
    assert_eq!(url.servers, "10.0.0.1:2181,10.0.0.2:2181");
    assert_eq!(url.path, "/mesos");
    assert_eq!(url.digest, None);

    let url = ZkUrl::parse("zk://bob:s3cr@t@zk1:2181/a/b/").unwrap();
    assert_eq!(url.digest.as_deref(), Some("bob:s3cr@t"));
    assert_eq!(url.servers, "zk1:2181");
    assert_eq!(url.path, "/a/b");
    // Never printed with its credentials.
    assert_eq!(url.to_string(), "zk://*:*@zk1:2181/a/b");
    assert!(!format!("{url:?}").contains("s3cr"));

    assert_eq!(ZkUrl::parse("zk://zk1:2181").unwrap().path, "/");
    for bad in [
        "zk:///mesos",
        "zk://zk1/mesos",
        "zk://zk1:x/mesos",
        "zk://bob@zk1:2181/mesos",
        "zk://zk1:2181/a//b",
        "zk://zk1:2181/a/../b",
    ] {
        assert!(ZkUrl::parse(bad).is_err(), "{bad}");
    }
    let e = MasterSpec::parse("zk://bob:pw@zk1/m")
        .unwrap_err()
        .to_string();
    assert!(!e.contains("pw"), "credentials leak into {e}");
}

#[test]
fn file_urls_are_read_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master");
    std::fs::write(&path, "zk://zk1:2181,zk2:2181/mesos\n").unwrap();
    let spec = MasterSpec::parse(&format!("file://{}", path.display())).unwrap();
    assert_eq!(
        spec,
        MasterSpec::ZooKeeper(ZkUrl::parse("zk://zk1:2181,zk2:2181/mesos").unwrap())
    );
    std::fs::write(&path, " 127.0.0.1:5050 ").unwrap();
    let spec = MasterSpec::parse(&format!("file://{}", path.display())).unwrap();
    assert_eq!(spec, MasterSpec::Static(upid("master@127.0.0.1:5050")));
    std::fs::write(&path, format!("file://{}", path.display())).unwrap();
    assert!(MasterSpec::parse(&format!("file://{}", path.display())).is_err());
    let e = MasterSpec::parse("file:///nonexistent/master")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("--master /nonexistent/master: read the file"),
        "{e}"
    );
}

#[test]
fn members_are_sequential_children_and_the_lowest_leads() {
    assert_eq!(
        members::member("json.info_0000000012"),
        Some(Member {
            label: Some("json.info".into()),
            sequence: 12,
            name: "json.info_0000000012".into()
        })
    );
    assert_eq!(members::member("0000000003").unwrap().label, None);
    assert_eq!(members::member("log_replicas"), None);
    assert_eq!(members::member("zookeeper"), None);
    let children = [
        "log_replicas",
        "json.info_0000000012",
        "info_0000000011",
        "json.info_0000000010",
        "zookeeper",
    ];
    assert_eq!(
        members::leader(&children).unwrap().name,
        "json.info_0000000010"
    );
    assert_eq!(members::leader(&["log_replicas"]), None);
    assert_eq!(members::leader::<&str>(&[]), None);
}

fn info() -> MasterInfo {
    MasterInfo {
        id: "m1".into(),
        ip: u32::from_le_bytes([10, 0, 0, 9]),
        port: 5050,
        pid: Some("master@10.0.0.9:5050".into()),
        hostname: Some("m1.example".into()),
        ..Default::default()
    }
}

#[test]
fn the_leaders_node_is_read_by_its_label() {
    let json = members::member("json.info_0000000001").unwrap();
    let data = serde_json::to_vec(&crate::proto::to_json(&info())).unwrap();
    assert_eq!(
        members::leader_pid(&json, &data).unwrap(),
        upid("master@10.0.0.9:5050")
    );

    let proto = members::member("info_0000000001").unwrap();
    let data = prost::Message::encode_to_vec(&info());
    assert_eq!(
        members::leader_pid(&proto, &data).unwrap(),
        upid("master@10.0.0.9:5050")
    );

    let plain = members::member("0000000001").unwrap();
    assert_eq!(
        members::leader_pid(&plain, b"master@10.0.0.9:5050").unwrap(),
        upid("master@10.0.0.9:5050")
    );

    // Without a pid: the address, then the packed ip.
    let mut no_pid = info();
    no_pid.pid = None;
    let data = prost::Message::encode_to_vec(&no_pid);
    assert_eq!(
        members::leader_pid(&proto, &data).unwrap(),
        upid("master@10.0.0.9:5050")
    );
    no_pid.address = Some(Address {
        ip: Some("10.0.0.8".into()),
        port: 5051,
        hostname: None,
    });
    let data = prost::Message::encode_to_vec(&no_pid);
    assert_eq!(
        members::leader_pid(&proto, &data).unwrap(),
        upid("master@10.0.0.8:5051")
    );

    // A newer master's fields are ignored.
    let mut newer = crate::proto::to_json(&info());
    newer["flavour"] = serde_json::json!("future");
    let data = serde_json::to_vec(&newer).unwrap();
    assert_eq!(
        members::leader_pid(&json, &data).unwrap(),
        upid("master@10.0.0.9:5050")
    );

    let e = members::leader_pid(&json, b"{not json")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("leader node json.info_0000000001: not a MasterInfo in JSON"),
        "{e}"
    );
    let odd = members::member("odd_0000000001").unwrap();
    assert!(members::leader_pid(&odd, b"").is_err());
}
