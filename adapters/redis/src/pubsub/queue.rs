//! The per-subscription bounded queue, the registry of live subscriptions, and the stream behind each
//! [`Subscription`](cpc_ports::Subscription).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use cpc_ports::pubsub::SubscriberQueue;
use cpc_ports::{BufferLimits, KvError, Message};
use futures::Stream;
use tokio::sync::mpsc::UnboundedSender;

use super::command::{Command, Kind};
use crate::metrics::Deliveries;

/// One subscription's bounded queue ([`SubscriberQueue`]): the pump pushes, the [`Feed`] pops; it feeds the
/// bus's counters of dropped messages and `Lagged` notices.
pub(super) struct Queue {
    inner: SubscriberQueue,
    /// Counts messages dropped from this queue.
    dropped: metrics::Counter,
    /// Counts `Lagged` notices read from this queue.
    lagged: metrics::Counter,
}

impl Queue {
    pub(super) fn new(limits: BufferLimits, deliveries: &Deliveries) -> Self {
        Self {
            inner: SubscriberQueue::new(limits),
            dropped: deliveries.dropped.clone(),
            lagged: deliveries.lagged.clone(),
        }
    }

    /// Appends `message`; while the queue is at its limits (in messages, or in bytes with `message` added), the
    /// oldest message is dropped and counted as missed.
    pub(super) fn push(&self, message: Message) {
        let dropped = self.inner.push(message);
        if dropped > 0 {
            self.dropped.increment(dropped);
        }
    }

    /// Records that the connection was lost. Back-to-back notices are merged, so there are never more notices
    /// than messages plus one.
    pub(super) fn push_disconnected(&self) {
        self.inner.push_disconnected();
    }

    /// Ends the stream once what is queued has been read.
    pub(super) fn close(&self) {
        self.inner.close();
    }

    /// How many messages wait to be read, and their size.
    pub(super) fn buffered(&self) -> (usize, usize) {
        self.inner.buffered()
    }

    /// The next item for the [`Feed`], counting `Lagged` notices.
    fn poll_next(&self, cx: &mut Context<'_>) -> Poll<Option<Result<Message, KvError>>> {
        let item = self.inner.poll_next(cx, disconnected);
        if matches!(item, Poll::Ready(Some(Err(KvError::Lagged { .. })))) {
            self.lagged.increment(1);
        }
        item
    }
}

/// A subscription as the registry knows it.
pub(super) struct Subscriber {
    id: u64,
    pub(super) queue: Arc<Queue>,
}

/// Every live subscription, by the name sent to Redis (namespace included): channels and patterns apart.
#[derive(Default)]
pub(super) struct Registry {
    next_id: u64,
    pub(super) channels: HashMap<String, Vec<Subscriber>>,
    pub(super) patterns: HashMap<String, Vec<Subscriber>>,
    /// The bus's delivery counters.
    pub(super) deliveries: Deliveries,
}

impl Registry {
    pub(super) fn topics(&self, kind: Kind) -> &HashMap<String, Vec<Subscriber>> {
        match kind {
            Kind::Channel => &self.channels,
            Kind::Pattern => &self.patterns,
        }
    }

    fn topics_mut(&mut self, kind: Kind) -> &mut HashMap<String, Vec<Subscriber>> {
        match kind {
            Kind::Channel => &mut self.channels,
            Kind::Pattern => &mut self.patterns,
        }
    }

    /// Every queue, channel and pattern subscriptions together.
    pub(super) fn queues(&self) -> impl Iterator<Item = &Arc<Queue>> {
        self.channels.values().chain(self.patterns.values()).flatten().map(|s| &s.queue)
    }

    /// Hands a message published on `channel` to every subscription of `kind` to `topic` (the channel itself, or
    /// the pattern it matched), with `namespace` cut off the channel name. A topic that is not UTF-8 has no
    /// subscription.
    pub(super) fn deliver(&self, namespace: &str, kind: Kind, topic: &[u8], channel: &[u8], payload: &[u8]) {
        let Ok(topic) = std::str::from_utf8(topic) else { return };
        let Some(subscribers) = self.topics(kind).get(topic) else { return };
        let visible = channel.strip_prefix(namespace.as_bytes()).unwrap_or(channel);
        let message = Message {
            channel: String::from_utf8_lossy(visible).into_owned(),
            payload: cpc_ports::Bytes::copy_from_slice(payload),
        };
        for subscriber in subscribers {
            subscriber.queue.push(message.clone());
            self.deliveries.delivered.increment(1);
        }
    }

    /// Tells every subscription that the connection was lost (messages published meanwhile are missed).
    pub(super) fn disconnected(&self) {
        for queue in self.queues() {
            queue.push_disconnected();
        }
    }

    /// Tells the subscriptions of `kind` to `topic` that their subscription was lost (the server dropped it;
    /// messages published until it is made again are missed).
    pub(super) fn lost(&self, kind: Kind, topic: &str) {
        for subscriber in self.topics(kind).get(topic).into_iter().flatten() {
            subscriber.queue.push_disconnected();
        }
    }

    /// Ends every subscription (the bus is gone).
    pub(super) fn close(&self) {
        for queue in self.queues() {
            queue.close();
        }
    }

    /// Whether any subscription exists.
    pub(super) fn is_empty(&self) -> bool {
        self.channels.is_empty() && self.patterns.is_empty()
    }

    /// How many subscriptions there are.
    pub(super) fn len(&self) -> usize {
        self.channels.values().chain(self.patterns.values()).map(Vec::len).sum()
    }
}

/// Locks the registry (a poisoned lock is taken over: the registry stays consistent between statements).
pub(super) fn lock(registry: &Mutex<Registry>) -> MutexGuard<'_, Registry> {
    registry.lock().unwrap_or_else(|e| e.into_inner())
}

/// Registers a new subscription to `topic` and returns its stream. The driver must still be asked to make the
/// server subscription active.
pub(super) fn register(
    registry: &Arc<Mutex<Registry>>,
    commands: UnboundedSender<Command>,
    kind: Kind,
    topic: &str,
    limits: BufferLimits,
) -> Feed {
    let (queue, id) = {
        let mut reg = lock(registry);
        let queue = Arc::new(Queue::new(limits, &reg.deliveries));
        let id = reg.next_id;
        reg.next_id += 1;
        reg.topics_mut(kind).entry(topic.to_owned()).or_default().push(Subscriber { id, queue: Arc::clone(&queue) });
        (queue, id)
    };
    Feed { queue, registry: Arc::clone(registry), commands, kind, topic: topic.to_owned(), id }
}

/// The stream behind a [`Subscription`](cpc_ports::Subscription); dropping it removes the subscription and,
/// when it was the topic's last one, asks the driver to unsubscribe.
pub(super) struct Feed {
    queue: Arc<Queue>,
    registry: Arc<Mutex<Registry>>,
    commands: UnboundedSender<Command>,
    kind: Kind,
    topic: String,
    id: u64,
}

/// The error item a subscriber reads where the connection was lost.
fn disconnected() -> KvError {
    KvError::Unavailable {
        backend: "redis",
        reason: "the pub/sub connection (or a sharded channel's subscription) was lost; it reconnects and \
                 resubscribes by itself, and messages published until then are lost"
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
        let mut reg = lock(&self.registry);
        let topics = reg.topics_mut(self.kind);
        let Some(subscribers) = topics.get_mut(&self.topic) else { return };
        subscribers.retain(|s| s.id != self.id);
        if subscribers.is_empty() {
            topics.remove(&self.topic);
            // Sent under the registry lock, so the driver sees it after any subscribe that registered before.
            let _ =
                self.commands.send(Command::Unsubscribe { kind: self.kind, topic: std::mem::take(&mut self.topic) });
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use cpc_ports::Bytes;
    use futures::StreamExt;

    fn message(n: u32) -> Message {
        Message { channel: "c".into(), payload: Bytes::from(n.to_string()) }
    }

    #[tokio::test]
    async fn a_full_queue_drops_the_oldest_and_reports_lag_first() {
        let registry = Arc::new(Mutex::new(Registry::default()));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut feed =
            register(&registry, tx, Kind::Channel, "ns:c", BufferLimits { messages: 3, ..BufferLimits::DEFAULT });
        let queue = Arc::clone(&lock(&registry).channels["ns:c"][0].queue);
        for n in 0..5 {
            queue.push(message(n));
        }
        queue.push_disconnected();
        queue.push_disconnected();
        queue.push(message(5));
        assert_eq!(queue.buffered().0, 3);
        assert!(matches!(feed.next().await, Some(Err(KvError::Lagged { missed: 3 }))));
        assert_eq!(feed.next().await.unwrap().unwrap(), message(3));
        assert_eq!(feed.next().await.unwrap().unwrap(), message(4));
        assert!(matches!(feed.next().await, Some(Err(KvError::Unavailable { .. }))), "one merged notice");
        assert_eq!(feed.next().await.unwrap().unwrap(), message(5));
        queue.close();
        assert!(feed.next().await.is_none());
        drop(feed);
        assert!(lock(&registry).is_empty());
        assert!(matches!(rx.try_recv(), Ok(Command::Unsubscribe { kind: Kind::Channel, .. })));
    }
}
