//! The ZooKeeper detector's loop, on `zookeeper-client` sessions.

use super::members;
use super::spec::ZkUrl;
use super::Reporter;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use zookeeper_client as zk;

/// How long to wait before retrying after an error that is neither an
/// expiry nor a change (a lost connection, a bad leader node).
const RETRY: Duration = Duration::from_millis(200);
/// The longest wait between such retries.
const RETRY_MAX: Duration = Duration::from_secs(10);

/// Why a session's detection ended.
enum End {
    /// The session expired (or failed authentication): make a new one.
    Expired,
}

/// Detects forever: one session after another.
pub(super) async fn detect(url: ZkUrl, session_timeout: Duration, reporter: Reporter) {
    tracing::info!(%url, ?session_timeout, "detecting the leading master in ZooKeeper");
    loop {
        let client = match connect(&url, session_timeout).await {
            Ok(client) => client,
            Err(e) => {
                tracing::warn!(%url, "cannot make a ZooKeeper session, retrying: {e}");
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        tracing::info!(%url, session = ?client.session_id(), "connected to ZooKeeper");
        match watch_group(&client, &url.path, &reporter).await {
            End::Expired => {
                tracing::warn!(%url, "the ZooKeeper session expired; detecting again in a new one")
            }
        }
    }
}

/// Makes a session (giving up after about the session timeout, as the
/// client does when no server answers).
async fn connect(url: &ZkUrl, session_timeout: Duration) -> Result<zk::Client, zk::Error> {
    let mut connector = zk::Client::connector().with_session_timeout(session_timeout);
    if let Some(digest) = &url.digest {
        connector = connector.with_auth("digest", digest.as_bytes());
    }
    OnTokio(Box::pin(connector.connect(&url.servers))).await
}

/// Reports the leader of the group at `path` after every change, until the
/// session ends. Errors that may pass (a lost connection, no permission
/// yet) are retried with a delay doubling from [`RETRY`] to
/// [`RETRY_MAX`]; a leader node that cannot be used counts as no leader
/// until the group changes.
async fn watch_group(client: &zk::Client, path: &str, reporter: &Reporter) -> End {
    let mut delay = RETRY;
    loop {
        let watcher = match client.get_and_watch_children(path).await {
            Ok((children, _, watcher)) => {
                match members::leader(&children) {
                    None => reporter.report(None),
                    Some(leader) => match read_leader(client, path, &leader).await {
                        Ok(Some(pid)) => reporter.report(Some(pid)),
                        // Gone between the listing and the read: list again.
                        Ok(None) => continue,
                        Err(Failure::Invalid) => reporter.report(None),
                        Err(Failure::Expired) => return End::Expired,
                        Err(Failure::Retry) => {
                            pause(&mut delay).await;
                            continue;
                        }
                    },
                }
                watcher
            }
            Err(zk::Error::NoNode) => {
                // No master has made the group yet: wait for its node.
                reporter.report(None);
                match client.check_and_watch_stat(path).await {
                    Ok((Some(_), _)) => continue,
                    Ok((None, watcher)) => watcher,
                    Err(e) => match failure(path, e) {
                        Failure::Expired => return End::Expired,
                        Failure::Retry | Failure::Invalid => {
                            pause(&mut delay).await;
                            continue;
                        }
                    },
                }
            }
            Err(e) => match failure(path, e) {
                Failure::Expired => return End::Expired,
                Failure::Retry | Failure::Invalid => {
                    pause(&mut delay).await;
                    continue;
                }
            },
        };
        delay = RETRY;
        let event = watcher.changed().await;
        if event.event_type == zk::EventType::Session && event.session_state.is_terminated() {
            return End::Expired;
        }
    }
}

/// Sleeps DELAY, then doubles it (up to [`RETRY_MAX`]).
async fn pause(delay: &mut Duration) {
    tokio::time::sleep(*delay).await;
    *delay = (*delay * 2).min(RETRY_MAX);
}

enum Failure {
    Expired,
    Retry,
    /// The leader's node holds nothing usable.
    Invalid,
}

fn failure(path: &str, e: zk::Error) -> Failure {
    match e {
        zk::Error::SessionExpired | zk::Error::AuthFailed | zk::Error::ClientClosed => {
            Failure::Expired
        }
        zk::Error::NoAuth => {
            tracing::error!(
                path,
                "ZooKeeper refuses to show the group: not authorized (check the zk:// credentials)"
            );
            Failure::Retry
        }
        e => {
            tracing::warn!(path, "ZooKeeper: {e}; retrying");
            Failure::Retry
        }
    }
}

/// The leader's pid; `None` when its node is gone.
async fn read_leader(
    client: &zk::Client,
    path: &str,
    leader: &members::Member,
) -> Result<Option<crate::wire::Upid>, Failure> {
    let node = if path == "/" {
        format!("/{}", leader.name)
    } else {
        format!("{path}/{}", leader.name)
    };
    match client.get_data(&node).await {
        Ok((data, _)) => {
            match members::leader_pid(leader, &data) {
                Ok(pid) => Ok(Some(pid)),
                Err(e) => {
                    // Mesos stops detecting here; a later change may fix it.
                    tracing::error!("cannot use the leading master's node: {e}; waiting for the group to change");
                    Err(Failure::Invalid)
                }
            }
        }
        Err(zk::Error::NoNode) => Ok(None),
        Err(e) => Err(failure(&node, e)),
    }
}

/// Polls a `zookeeper-client` future with tokio as the spawner of the
/// tasks it starts (its session's I/O task is spawned while connecting).
struct OnTokio<F>(F);

struct TokioSpawner;

impl spawns_core::Spawn for TokioSpawner {
    fn spawn(&self, task: spawns_core::Task) {
        tokio::spawn(Box::into_pin(task.future));
    }
}

impl<F: Future + Unpin> Future for OnTokio<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let _scope = spawns_core::enter(&TokioSpawner);
        Pin::new(&mut self.0).poll(cx)
    }
}
