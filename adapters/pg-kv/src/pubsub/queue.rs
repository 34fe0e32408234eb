//! Each subscription's bounded queue, the stream behind its [`Subscription`](cpc_ports::Subscription), and the
//! registry of live subscriptions the listener delivers to.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use cpc_ports::pubsub::{SubscriberQueue, glob_matches};
use cpc_ports::{BufferLimits, KvError, Message};
use futures::Stream;
use tokio::sync::mpsc::UnboundedSender;

use super::command::{Command, Kind};
use super::metrics::Instruments;

/// One subscription's bounded queue ([`SubscriberQueue`]): the listener pushes, the [`Feed`] pops; it feeds the
/// bus's counters of dropped messages and `Lagged` notices.
pub(super) struct Queue {
    inner: SubscriberQueue,
    metrics: Arc<Instruments>,
}

impl Queue {
    pub(super) fn new(limits: BufferLimits, metrics: Arc<Instruments>) -> Self {
        Self { inner: SubscriberQueue::new(limits), metrics }
    }

    /// Appends `message`, first dropping the oldest messages while the queue is at its limits, and wakes the
    /// reader.
    fn push(&self, message: Message) {
        let dropped = self.inner.push(message);
        if dropped > 0 {
            self.metrics.dropped.increment(dropped);
        }
    }

    /// Marks the point where the connection was lost (once, however often it is lost before the next message).
    fn push_disconnected(&self) {
        self.inner.push_disconnected();
    }

    fn close(&self) {
        self.inner.close();
    }

    /// The next item for the [`Feed`], counting `Lagged` notices.
    fn poll_next(&self, cx: &mut Context<'_>) -> Poll<Option<Result<Message, KvError>>> {
        let item = self.inner.poll_next(cx, disconnected);
        if matches!(item, Poll::Ready(Some(Err(KvError::Lagged { .. })))) {
            self.metrics.lagged.increment(1);
        }
        item
    }
}

/// The stream behind a [`Subscription`](cpc_ports::Subscription); dropping it asks the listener to
/// unsubscribe it.
pub(super) struct Feed {
    pub(super) queue: Arc<Queue>,
    pub(super) commands: UnboundedSender<Command<Queue>>,
    pub(super) kind: Kind,
    pub(super) topic: String,
    pub(super) id: u64,
}

/// The error item a subscriber reads where the listener connection was lost.
fn disconnected() -> KvError {
    KvError::Unavailable {
        backend: "postgres",
        reason: "the pub/sub listener connection was lost; it reconnects and listens again by itself, and messages \
                 published until then are lost"
            .into(),
    }
}

impl Stream for Feed {
    type Item = Result<Message, KvError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.queue.poll_next(cx)
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        let topic = std::mem::take(&mut self.topic);
        let _ = self.commands.send(Command::Unsubscribe { kind: self.kind, topic, id: self.id });
    }
}

/// The live subscriptions, by channel name and by pattern text; owned by the listener task.
#[derive(Default)]
pub(super) struct Registry {
    channels: HashMap<String, Vec<(u64, Arc<Queue>)>>,
    patterns: HashMap<String, Vec<(u64, Arc<Queue>)>>,
}

impl Registry {
    fn topics(&mut self, kind: Kind) -> &mut HashMap<String, Vec<(u64, Arc<Queue>)>> {
        match kind {
            Kind::Channel => &mut self.channels,
            Kind::Pattern => &mut self.patterns,
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.channels.is_empty() && self.patterns.is_empty()
    }

    /// Every topic listened to.
    pub(super) fn all_topics(&self) -> Vec<(Kind, String)> {
        let channels = self.channels.keys().map(|t| (Kind::Channel, t.clone()));
        channels.chain(self.patterns.keys().map(|t| (Kind::Pattern, t.clone()))).collect()
    }

    pub(super) fn add(&mut self, kind: Kind, topic: String, id: u64, queue: Arc<Queue>) {
        self.topics(kind).entry(topic).or_default().push((id, queue));
    }

    /// Removes subscription `id`; true when it was the topic's last one.
    pub(super) fn remove(&mut self, kind: Kind, topic: &str, id: u64) -> bool {
        let topics = self.topics(kind);
        let Some(subscribers) = topics.get_mut(topic) else { return false };
        let before = subscribers.len();
        subscribers.retain(|(i, _)| *i != id);
        let removed = subscribers.len() < before;
        if subscribers.is_empty() {
            topics.remove(topic);
        }
        removed && !topics.contains_key(topic)
    }

    /// Hands a message on `channel` to its subscribers and to those of every matching pattern; returns how many.
    pub(super) fn deliver(&self, channel: &str, payload: &Bytes) -> u64 {
        let direct = self.channels.get(channel).into_iter().flatten();
        let by_pattern = self
            .patterns
            .iter()
            .filter(|(pattern, _)| glob_matches(pattern.as_bytes(), channel.as_bytes()))
            .flat_map(|(_, subscribers)| subscribers);
        let mut delivered = 0;
        for (_, queue) in direct.chain(by_pattern) {
            queue.push(Message { channel: channel.to_owned(), payload: payload.clone() });
            delivered += 1;
        }
        delivered
    }

    /// Tells every subscription the connection was lost.
    pub(super) fn disconnected(&self) {
        self.queues().for_each(|q| q.push_disconnected());
    }

    /// Ends every subscription's stream (once drained).
    pub(super) fn close(&self) {
        self.queues().for_each(|q| q.close());
    }

    fn queues(&self) -> impl Iterator<Item = &Arc<Queue>> {
        self.channels.values().chain(self.patterns.values()).flatten().map(|(_, q)| q)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use futures::StreamExt;

    fn message(n: u32) -> Message {
        Message { channel: "c".into(), payload: Bytes::from(n.to_string()) }
    }

    #[tokio::test]
    async fn a_full_queue_drops_the_oldest_and_reports_lag_first() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let queue = Arc::new(Queue::new(BufferLimits { messages: 3, ..BufferLimits::DEFAULT }, Instruments::new()));
        let mut feed = Feed { queue: Arc::clone(&queue), commands: tx, kind: Kind::Channel, topic: "c".into(), id: 7 };
        for n in 0..5 {
            queue.push(message(n));
        }
        queue.push_disconnected();
        queue.push_disconnected();
        queue.push(message(5));
        assert!(matches!(feed.next().await, Some(Err(KvError::Lagged { missed: 3 }))));
        assert_eq!(feed.next().await.unwrap().unwrap(), message(3));
        assert_eq!(feed.next().await.unwrap().unwrap(), message(4));
        assert!(matches!(feed.next().await, Some(Err(KvError::Unavailable { .. }))), "one merged notice");
        assert_eq!(feed.next().await.unwrap().unwrap(), message(5));
        queue.close();
        assert!(feed.next().await.is_none());
        drop(feed);
        assert!(matches!(rx.try_recv(), Ok(Command::Unsubscribe { kind: Kind::Channel, id: 7, .. })));
    }

    #[test]
    fn the_registry_delivers_to_channels_and_matching_patterns() {
        let mut registry = Registry::default();
        let metrics = Instruments::new();
        let queues: Vec<_> =
            (0..3).map(|_| Arc::new(Queue::new(BufferLimits::DEFAULT, Arc::clone(&metrics)))).collect();
        registry.add(Kind::Channel, "news.eu".into(), 0, Arc::clone(&queues[0]));
        registry.add(Kind::Pattern, "news.*".into(), 1, Arc::clone(&queues[1]));
        registry.add(Kind::Pattern, "sport.*".into(), 2, Arc::clone(&queues[2]));
        registry.deliver("news.eu", &Bytes::from_static(b"x"));
        let counts: Vec<usize> = queues.iter().map(|q| q.inner.buffered().0).collect();
        assert_eq!(counts, [1, 1, 0]);
        assert!(!registry.remove(Kind::Pattern, "news.*", 99), "an unknown id removes nothing");
        assert!(registry.remove(Kind::Pattern, "news.*", 1));
        assert!(registry.remove(Kind::Channel, "news.eu", 0));
        assert!(registry.remove(Kind::Pattern, "sport.*", 2));
        assert!(registry.is_empty());
    }
}
