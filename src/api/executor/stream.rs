//! The body of a SUBSCRIBE response: every event the agent pushes into the
//! subscription's channel, already framed, interleaved with a heartbeat
//! record every interval. The body ends when the agent drops the sender;
//! when the client goes away hyper drops the body, and with it the
//! receiver, which the agent sees as `Sender::is_closed()`.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::{Instant, Interval, MissedTickBehavior};

/// Turns one event into the bytes of its RecordIO frame.
pub(super) type Encode<T> = Box<dyn Fn(T) -> Bytes + Send + Sync>;

pub(super) struct EventBody<T> {
    /// `None` once the channel is closed and drained: the body has ended.
    events: Option<UnboundedReceiver<T>>,
    encode: Encode<T>,
    /// The ticker and the frame it sends; `None` disables heartbeats.
    heartbeat: Option<(Interval, Bytes)>,
}

impl<T> EventBody<T> {
    /// A body that streams `events` through `encode` and sends `beat` every
    /// `every` (the first one `every` after now; a zero interval sends none).
    pub(super) fn new(
        events: UnboundedReceiver<T>,
        encode: Encode<T>,
        every: Duration,
        beat: Bytes,
    ) -> Self {
        let heartbeat = (!every.is_zero()).then(|| {
            let mut ticker = tokio::time::interval_at(Instant::now() + every, every);
            // After a stall (a slow reader), one beat is enough.
            ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
            (ticker, beat)
        });
        EventBody {
            events: Some(events),
            encode,
            heartbeat,
        }
    }
}

impl<T> Body for EventBody<T> {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        let Some(events) = this.events.as_mut() else {
            return Poll::Ready(None);
        };
        // Events first: a queued event is never held back by a heartbeat.
        match events.poll_recv(cx) {
            Poll::Ready(Some(event)) => {
                return Poll::Ready(Some(Ok(Frame::data((this.encode)(event)))))
            }
            Poll::Ready(None) => {
                this.events = None;
                this.heartbeat = None;
                return Poll::Ready(None);
            }
            Poll::Pending => {}
        }
        if let Some((ticker, beat)) = this.heartbeat.as_mut() {
            if ticker.poll_tick(cx).is_ready() {
                return Poll::Ready(Some(Ok(Frame::data(beat.clone()))));
            }
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.events.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        // Unknown length: hyper answers with chunked transfer encoding.
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tokio::sync::mpsc;

    fn body(every: Duration) -> (mpsc::UnboundedSender<&'static str>, EventBody<&'static str>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let encode: Encode<&'static str> = Box::new(|s: &str| Bytes::from(s.to_owned()));
        (
            tx,
            EventBody::new(rx, encode, every, Bytes::from_static(b"beat")),
        )
    }

    async fn next(b: &mut EventBody<&'static str>) -> Option<Bytes> {
        b.frame().await.map(|f| f.unwrap().into_data().unwrap())
    }

    #[tokio::test]
    async fn streams_events_then_ends_when_the_sender_is_dropped() {
        let (tx, mut b) = body(Duration::from_secs(3600));
        tx.send("one").unwrap();
        tx.send("two").unwrap();
        assert_eq!(next(&mut b).await.unwrap(), "one");
        assert_eq!(next(&mut b).await.unwrap(), "two");
        assert!(!b.is_end_stream());
        drop(tx);
        assert_eq!(next(&mut b).await, None);
        assert!(b.is_end_stream());
    }

    #[tokio::test]
    async fn beats_after_each_interval() {
        let (tx, mut b) = body(Duration::from_millis(20));
        tx.send("first").unwrap();
        let start = std::time::Instant::now();
        assert_eq!(next(&mut b).await.unwrap(), "first");
        assert_eq!(next(&mut b).await.unwrap(), "beat");
        assert_eq!(next(&mut b).await.unwrap(), "beat");
        assert!(start.elapsed() >= Duration::from_millis(40));
    }

    #[tokio::test]
    async fn zero_interval_sends_no_heartbeats() {
        let (tx, mut b) = body(Duration::ZERO);
        let waited = tokio::time::timeout(Duration::from_millis(30), next(&mut b)).await;
        assert!(waited.is_err(), "no frame expected");
        drop(tx);
        assert_eq!(next(&mut b).await, None);
    }

    #[tokio::test]
    async fn dropping_the_body_closes_the_channel_for_the_agent() {
        let (tx, b) = body(Duration::from_secs(3600));
        assert!(!tx.is_closed());
        drop(b);
        assert!(tx.is_closed());
    }
}
