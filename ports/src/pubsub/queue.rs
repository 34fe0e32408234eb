//! One subscription's bounded queue with lag reporting: the building block of the [`PubSub`](crate::PubSub)
//! implementations (in process, Redis, PostgreSQL), public so that an implementation outside this workspace
//! behaves the same way.
//!
//! The side that receives messages [`push`](SubscriberQueue::push)es them; the subscription's stream reads them
//! with [`poll_next`](SubscriberQueue::poll_next). When the queue is at its [`BufferLimits`], its oldest message
//! is dropped and counted; the reader then reads one [`KvError::Lagged`] with that count before the messages
//! that were kept. A lost connection is marked with [`push_disconnected`](SubscriberQueue::push_disconnected)
//! and read as the error the implementation names, in its place among the messages.
//!
//! ```
//! use std::task::{Context, Poll, Waker};
//! use cpc_ports::pubsub::SubscriberQueue;
//! use cpc_ports::{BufferLimits, Bytes, KvError, Message};
//!
//! let queue = SubscriberQueue::new(BufferLimits { messages: 2, ..BufferLimits::DEFAULT });
//! for n in 0..3 {
//!     queue.push(Message { channel: "c".into(), payload: Bytes::from(n.to_string()) });
//! }
//! let mut cx = Context::from_waker(Waker::noop());
//! let lost = || KvError::Unavailable { backend: "example", reason: "connection lost".into() };
//! assert!(matches!(queue.poll_next(&mut cx, lost), Poll::Ready(Some(Err(KvError::Lagged { missed: 1 })))));
//! assert!(matches!(queue.poll_next(&mut cx, lost), Poll::Ready(Some(Ok(m))) if m.payload == "1"));
//! ```

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use super::{BufferLimits, Message};
use crate::KvError;

/// One entry of the queue.
enum Item {
    Message(Message),
    /// The connection was lost here: messages published until it is back are lost.
    Disconnected,
}

/// One subscription's bounded queue: the receiving side pushes, the subscription's stream polls. Thread-safe
/// (a mutex held for a few instructions per call); wakes the stream's task when something arrives.
pub struct SubscriberQueue {
    limits: BufferLimits,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    items: VecDeque<Item>,
    /// How many of `items` are messages (only those count against the limits).
    messages: usize,
    /// The size of those messages ([`BufferLimits::size_of`]).
    bytes: usize,
    /// Messages dropped since the subscriber last heard about it.
    missed: u64,
    /// The bus was dropped: end the stream once the queue is drained.
    closed: bool,
    waker: Option<Waker>,
}

impl std::fmt::Debug for SubscriberQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (messages, bytes) = self.buffered();
        f.debug_struct("SubscriberQueue")
            .field("limits", &self.limits)
            .field("messages", &messages)
            .field("bytes", &bytes)
            .finish()
    }
}

impl SubscriberQueue {
    /// An empty queue bounded by `limits`.
    pub fn new(limits: BufferLimits) -> Self {
        Self { limits, inner: Mutex::new(Inner::default()) }
    }

    /// Locks the queue (a poisoned lock is taken over: the queue stays consistent between statements).
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends `message`, first dropping the oldest messages while the queue is at its limits (in messages, or
    /// in bytes with `message` added), and wakes the reader. Returns how many messages were dropped, for the
    /// implementation's counters.
    pub fn push(&self, message: Message) -> u64 {
        let size = BufferLimits::size_of(&message);
        let mut dropped = 0;
        let waker = {
            let mut q = self.lock();
            while self.limits.must_drop(q.messages, q.bytes, size) {
                // The oldest message is at the front unless a disconnection notice precedes it.
                let Some(position) = q.items.iter().position(|item| matches!(item, Item::Message(_))) else { break };
                if let Some(Item::Message(old)) = q.items.remove(position) {
                    q.messages -= 1;
                    q.bytes -= BufferLimits::size_of(&old);
                    q.missed = q.missed.saturating_add(1);
                    dropped += 1;
                }
            }
            q.messages += 1;
            q.bytes += size;
            q.items.push_back(Item::Message(message));
            q.waker.take()
        };
        wake(waker);
        dropped
    }

    /// Marks the point where the connection was lost. Back-to-back notices are merged, so there are never more
    /// notices than messages plus one.
    pub fn push_disconnected(&self) {
        let waker = {
            let mut q = self.lock();
            if !matches!(q.items.back(), Some(Item::Disconnected)) {
                q.items.push_back(Item::Disconnected);
            }
            q.waker.take()
        };
        wake(waker);
    }

    /// Ends the stream once what is queued has been read.
    pub fn close(&self) {
        let waker = {
            let mut q = self.lock();
            q.closed = true;
            q.waker.take()
        };
        wake(waker);
    }

    /// How many messages wait to be read, and their size ([`BufferLimits::size_of`]).
    pub fn buffered(&self) -> (usize, usize) {
        let q = self.lock();
        (q.messages, q.bytes)
    }

    /// The next item for the subscription's stream: [`KvError::Lagged`] first when messages were dropped since
    /// the last read, then the oldest entry (a message, or `disconnected()` where the connection was lost), the
    /// end of the stream once closed and drained, or pending (the task is woken by the next push or close).
    pub fn poll_next(
        &self,
        cx: &mut Context<'_>,
        disconnected: impl FnOnce() -> KvError,
    ) -> Poll<Option<Result<Message, KvError>>> {
        let mut q = self.lock();
        if q.missed > 0 {
            let missed = std::mem::take(&mut q.missed);
            return Poll::Ready(Some(Err(KvError::Lagged { missed })));
        }
        match q.items.pop_front() {
            Some(Item::Message(message)) => {
                q.messages -= 1;
                q.bytes -= BufferLimits::size_of(&message);
                Poll::Ready(Some(Ok(message)))
            }
            Some(Item::Disconnected) => Poll::Ready(Some(Err(disconnected()))),
            None if q.closed => Poll::Ready(None),
            None => {
                q.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

fn wake(waker: Option<Waker>) {
    if let Some(w) = waker {
        w.wake();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use bytes::Bytes;
    use futures::StreamExt;
    use std::pin::Pin;
    use std::sync::Arc;

    fn message(n: u32) -> Message {
        Message { channel: "c".into(), payload: Bytes::from(n.to_string()) }
    }

    fn lost() -> KvError {
        KvError::Unavailable { backend: "test", reason: "lost".into() }
    }

    struct Feed(Arc<SubscriberQueue>);

    impl futures::Stream for Feed {
        type Item = Result<Message, KvError>;
        fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            self.0.poll_next(cx, lost)
        }
    }

    #[tokio::test]
    async fn a_full_queue_drops_the_oldest_and_reports_lag_first() {
        let queue = Arc::new(SubscriberQueue::new(BufferLimits { messages: 3, ..BufferLimits::DEFAULT }));
        let mut feed = Feed(Arc::clone(&queue));
        let dropped: u64 = (0..5).map(|n| queue.push(message(n))).sum();
        assert_eq!(dropped, 2);
        queue.push_disconnected();
        queue.push_disconnected();
        assert_eq!(queue.push(message(5)), 1);
        assert_eq!(queue.buffered(), (3, 6));
        assert!(matches!(feed.next().await, Some(Err(KvError::Lagged { missed: 3 }))));
        assert_eq!(feed.next().await.unwrap().unwrap(), message(3));
        assert_eq!(feed.next().await.unwrap().unwrap(), message(4));
        assert!(matches!(feed.next().await, Some(Err(KvError::Unavailable { .. }))), "one merged notice");
        assert_eq!(feed.next().await.unwrap().unwrap(), message(5));
        assert_eq!(queue.buffered(), (0, 0));
        queue.close();
        assert!(feed.next().await.is_none());
    }

    #[tokio::test]
    async fn the_byte_bound_keeps_the_newest_message_even_alone_above_it() {
        let queue = Arc::new(SubscriberQueue::new(BufferLimits { messages: 10, bytes: 4 }));
        let mut feed = Feed(Arc::clone(&queue));
        queue.push(message(1));
        assert_eq!(queue.push(Message { channel: "c".into(), payload: Bytes::from_static(b"large") }), 1);
        assert!(matches!(feed.next().await, Some(Err(KvError::Lagged { missed: 1 }))));
        assert_eq!(feed.next().await.unwrap().unwrap().payload, "large");
    }

    #[tokio::test]
    async fn a_push_wakes_a_waiting_reader() {
        let queue = Arc::new(SubscriberQueue::new(BufferLimits::DEFAULT));
        let mut feed = Feed(Arc::clone(&queue));
        let reader = tokio::spawn(async move { feed.next().await });
        tokio::task::yield_now().await;
        queue.push(message(9));
        assert_eq!(reader.await.unwrap().unwrap().unwrap(), message(9));
    }
}
