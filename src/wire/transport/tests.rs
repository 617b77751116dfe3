//! The transport against raw peers (and the server) on 127.0.0.1.

use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc::unbounded_channel;
use tokio::time::timeout;

use super::*;
use crate::wire::{serve, HttpHandler, ResponseFuture};

const WAIT: Duration = Duration::from_secs(5);

fn agent_pid() -> Upid {
    "slave(1)@127.0.0.1:5051".parse().unwrap()
}

async fn peer() -> (TcpListener, Upid) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let pid = Upid::new("master", listener.local_addr().unwrap());
    (listener, pid)
}

async fn accept(listener: &TcpListener) -> TcpStream {
    timeout(WAIT, listener.accept())
        .await
        .expect("no connection")
        .unwrap()
        .0
}

async fn read_exactly(stream: &mut TcpStream, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    timeout(WAIT, stream.read_exact(&mut buf))
        .await
        .expect("bytes did not come")
        .unwrap();
    buf
}

async fn next_event(events: &mut UnboundedReceiver<WireEvent>) -> WireEvent {
    timeout(WAIT, events.recv())
        .await
        .expect("no event")
        .expect("channel closed")
}

#[tokio::test]
async fn messages_go_out_byte_exact_and_in_order_on_one_connection() {
    let (listener, master) = peer().await;
    let (tx, mut events) = unbounded_channel();
    let transport = Transport::new(agent_pid(), tx);
    assert_eq!(transport.local(), &agent_pid());

    // Queued before the connection exists: sent once it does, in order.
    transport.send(
        &master,
        "mesos.internal.RegisterSlaveMessage",
        b"one".to_vec(),
    );
    transport
        .clone()
        .send(&master, "mesos.internal.PongSlaveMessage", Vec::new());
    let mut expected = encode_message(
        &agent_pid(),
        &master,
        "mesos.internal.RegisterSlaveMessage",
        b"one",
    );
    expected.extend(encode_message(
        &agent_pid(),
        &master,
        "mesos.internal.PongSlaveMessage",
        b"",
    ));

    let mut conn = accept(&listener).await;
    assert_eq!(read_exactly(&mut conn, expected.len()).await, expected);

    transport.send(&master, "mesos.internal.Third", b"3".to_vec());
    let third = encode_message(&agent_pid(), &master, "mesos.internal.Third", b"3");
    assert_eq!(read_exactly(&mut conn, third.len()).await, third);

    let second = timeout(Duration::from_millis(200), listener.accept()).await;
    assert!(second.is_err(), "a second connection was opened");
    assert!(events.try_recv().is_err(), "no break, no event");
}

#[tokio::test]
async fn a_peer_close_is_reported_once_and_the_next_send_reconnects() {
    let (listener, master) = peer().await;
    let (tx, mut events) = unbounded_channel();
    let transport = Transport::new(agent_pid(), tx);

    transport.send(&master, "mesos.internal.A", b"a".to_vec());
    let mut conn = accept(&listener).await;
    let a = encode_message(&agent_pid(), &master, "mesos.internal.A", b"a");
    read_exactly(&mut conn, a.len()).await;
    drop(conn);

    assert_eq!(
        next_event(&mut events).await,
        WireEvent::Exited(master.clone())
    );

    transport.send(&master, "mesos.internal.B", b"b".to_vec());
    let mut conn = accept(&listener).await;
    let b = encode_message(&agent_pid(), &master, "mesos.internal.B", b"b");
    assert_eq!(read_exactly(&mut conn, b.len()).await, b);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(events.try_recv().is_err(), "exactly one Exited per break");
}

#[tokio::test]
async fn a_refused_connection_is_reported_and_its_messages_dropped() {
    let (listener, master) = peer().await;
    drop(listener);
    let (tx, mut events) = unbounded_channel();
    let transport = Transport::new(agent_pid(), tx);
    transport.send(&master, "mesos.internal.A", Vec::new());
    assert_eq!(
        next_event(&mut events).await,
        WireEvent::Exited(master.clone())
    );

    // The next message tries again (and is reported again).
    transport.send(&master, "mesos.internal.B", Vec::new());
    assert_eq!(next_event(&mut events).await, WireEvent::Exited(master));
}

#[tokio::test]
async fn what_the_peer_writes_back_is_drained() {
    let (listener, master) = peer().await;
    let (tx, mut events) = unbounded_channel();
    let transport = Transport::new(agent_pid(), tx);
    let body = vec![1u8; 10_000];
    let count = 300;
    for _ in 0..count {
        transport.send(&master, "mesos.internal.Big", body.clone());
    }
    let one = encode_message(&agent_pid(), &master, "mesos.internal.Big", &body).len();
    let conn = accept(&listener).await;
    let (mut rd, mut wr) = conn.into_split();
    // The peer answers far more than socket buffers hold while it reads.
    let answers = tokio::spawn(async move {
        let reply = b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n".repeat(1000);
        for _ in 0..200 {
            wr.write_all(&reply).await.unwrap();
        }
        wr
    });
    let mut buf = vec![0u8; one * count];
    timeout(WAIT, rd.read_exact(&mut buf))
        .await
        .expect("stalled")
        .unwrap();
    let _wr = timeout(WAIT, answers)
        .await
        .expect("replies not read")
        .unwrap();
    assert!(events.try_recv().is_err());
}

struct NoHttp;

impl HttpHandler for NoHttp {
    fn handle(&self, _req: hyper::Request<hyper::body::Incoming>) -> ResponseFuture {
        Box::pin(async { hyper::Response::new(crate::wire::empty()) })
    }
}

#[tokio::test]
async fn a_transport_talks_to_the_server() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let agent = Upid::new("slave(1)", listener.local_addr().unwrap());
    let (inbox_tx, mut inbox) = unbounded_channel();
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(serve(
        listener,
        agent.id.clone(),
        inbox_tx,
        std::sync::Arc::new(NoHttp),
        stop_rx,
    ));

    let (tx, mut events) = unbounded_channel();
    let master: Upid = "master@127.0.0.1:5050".parse().unwrap();
    let transport = Transport::new(master.clone(), tx);
    for i in 0..50u8 {
        transport.send(&agent, &format!("mesos.internal.M{i}"), vec![i; i as usize]);
    }
    for i in 0..50u8 {
        match next_event(&mut inbox).await {
            WireEvent::Message(m) => {
                assert_eq!(m.from, master);
                assert_eq!(m.to, "slave(1)");
                assert_eq!(m.name, format!("mesos.internal.M{i}"));
                assert_eq!(&m.body[..], &vec![i; i as usize][..]);
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(events.try_recv().is_err(), "the server kept the connection");
}

#[test]
fn send_outside_a_runtime_drops_the_message_without_panicking() {
    let (tx, _events) = unbounded_channel();
    let transport = Transport::new(agent_pid(), tx);
    transport.send(&agent_pid(), "mesos.internal.X", Vec::new());
}

#[tokio::test]
async fn flush_returns_once_the_queued_messages_are_written() {
    let (listener, master) = peer().await;
    let (tx, _events) = unbounded_channel();
    let transport = Transport::new(agent_pid(), tx);
    // The peer accepts late: the flush waits for the connection and the
    // write, not for a fixed time.
    transport.send(
        &master,
        "mesos.internal.UnregisterSlaveMessage",
        b"bye".to_vec(),
    );
    let accepting = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut stream = accept(&listener).await;
        let expected = encode_message(
            &agent_pid(),
            &master,
            "mesos.internal.UnregisterSlaveMessage",
            b"bye",
        );
        read_exactly(&mut stream, expected.len()).await == expected
    });
    let started = std::time::Instant::now();
    transport.flush(WAIT).await;
    assert!(started.elapsed() < WAIT, "the flush ran to its limit");
    assert!(accepting.await.unwrap(), "the message did not arrive whole");
    // Nothing queued: at once, and no connection is opened for it.
    let started = std::time::Instant::now();
    transport.flush(WAIT).await;
    assert!(started.elapsed() < Duration::from_secs(1));
}
