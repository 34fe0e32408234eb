//! [`InMemoryPubSub`]: the in-memory [`PubSub`], with Redis glob patterns and bounded per-subscription buffers.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll};

use async_trait::async_trait;
use bytes::Bytes;
use cpc_ports::pubsub::SubscriberQueue;
use cpc_ports::{BufferLimits, Channel, ChannelPattern, Codec, KvError, Message, PubSub, Subscription};
use futures::Stream;

/// How many undelivered messages a subscription holds by default before it starts dropping the oldest
/// ([`BufferLimits::DEFAULT`] also bounds their bytes).
pub const DEFAULT_SUBSCRIPTION_BUFFER: usize = BufferLimits::DEFAULT.messages;

/// A [`PubSub`] in process memory that behaves like Redis `PUBLISH`/`SUBSCRIBE`/`PSUBSCRIBE`.
///
/// * A publish reaches every subscription present when it starts: each subscription of the channel and each
///   subscription of a pattern that matches it (Redis glob rules, on bytes: `*`, `?`, `[abc]`, `[^a]`, `[a-z]`,
///   `\` escapes). It returns how many subscriptions it reached; a channel and a matching pattern count twice.
/// * A subscription is active as soon as `subscribe_bytes`/`psubscribe_bytes` returns, and is removed when its
///   [`Subscription`] is dropped; the last one of a channel or pattern removes that entry too (see
///   [`channel_count`](Self::channel_count)). Dropping the `InMemoryPubSub` ends every subscription's stream.
///
/// # Slow subscribers
///
/// Each subscription has its own queue of at most [`with_buffer`](Self::with_buffer) messages and
/// [`with_buffer_bytes`](Self::with_buffer_bytes) bytes ([`BufferLimits::DEFAULT`]: 1,024 messages, 16 MiB). Publishing never waits for a subscriber: when a queue is full,
/// its oldest message is dropped to make room and counted. The subscriber then reads one
/// `Err(KvError::Lagged { missed })` item (with the number dropped) before the messages that were kept, and goes
/// on with newer messages. So a stalled subscriber costs at most its buffer, and never slows the publisher or
/// the other subscribers. (Redis, for comparison, disconnects a subscriber whose output buffer passes its
/// limit; this implementation reports the loss and keeps going, as the port's `Lagged` error allows.) Queues grow on
/// demand: an idle subscription holds no buffer. A per-subscription queue was chosen over one
/// `tokio::sync::broadcast` channel per channel because a broadcast channel allocates its whole buffer up
/// front for every channel and pattern, and a pattern subscription would need its own anyway.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use cpc_ports::{Channel, PubSubExt};
/// use cpc_memory::InMemoryPubSub;
/// use futures::StreamExt;
///
/// let bus = InMemoryPubSub::new();
/// let news = Channel::new("news").unwrap();
/// let mut sub = bus.subscribe::<String>(&news).await.unwrap();
/// assert_eq!(bus.publish(&news, "hello").await.unwrap(), 1);
/// assert_eq!(sub.next().await.unwrap().unwrap(), "hello");
/// # }
/// ```
pub struct InMemoryPubSub {
    codec: Codec,
    buffer: BufferLimits,
    state: Arc<Mutex<State>>,
}

/// Every live subscription, by channel name and by pattern text.
#[derive(Default)]
struct State {
    next_id: u64,
    channels: HashMap<String, Vec<Subscriber>>,
    patterns: HashMap<String, Vec<Subscriber>>,
}

struct Subscriber {
    id: u64,
    queue: Arc<SubscriberQueue>,
}

/// What a subscription listens to, so its drop can find and remove it.
#[derive(Clone, Copy)]
enum Kind {
    Channel,
    Pattern,
}

impl State {
    fn topics(&mut self, kind: Kind) -> &mut HashMap<String, Vec<Subscriber>> {
        match kind {
            Kind::Channel => &mut self.channels,
            Kind::Pattern => &mut self.patterns,
        }
    }

    fn all_queues(&self) -> impl Iterator<Item = &Arc<SubscriberQueue>> {
        self.channels.values().chain(self.patterns.values()).flatten().map(|s| &s.queue)
    }
}

/// The stream behind a [`Subscription`]; dropping it unsubscribes.
struct Feed {
    queue: Arc<SubscriberQueue>,
    state: Weak<Mutex<State>>,
    kind: Kind,
    topic: String,
    id: u64,
}

impl Stream for Feed {
    type Item = Result<Message, KvError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // Nothing in process is ever disconnected: no notice is pushed, so this error is never read.
        self.queue.poll_next(cx, || KvError::Unavailable { backend: "memory", reason: "disconnected".into() })
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        let Some(state) = self.state.upgrade() else { return };
        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
        let topics = state.topics(self.kind);
        if let Some(subscribers) = topics.get_mut(&self.topic) {
            subscribers.retain(|s| s.id != self.id);
            if subscribers.is_empty() {
                topics.remove(&self.topic);
            }
        }
    }
}

impl Default for InMemoryPubSub {
    fn default() -> Self {
        Self { codec: Codec::default(), buffer: BufferLimits::DEFAULT, state: Arc::default() }
    }
}

impl std::fmt::Debug for InMemoryPubSub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemoryPubSub")
            .field("codec", &self.codec)
            .field("buffer", &self.buffer)
            .field("channels", &self.channel_count())
            .field("patterns", &self.pattern_count())
            .finish()
    }
}

impl InMemoryPubSub {
    /// A bus with no subscribers, the default codec (JSON) and [`DEFAULT_SUBSCRIPTION_BUFFER`].
    pub fn new() -> Self {
        Self::default()
    }

    /// The same bus, with `codec` for the typed methods of [`cpc_ports::PubSubExt`].
    pub fn with_codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// The same bus, where each subscription created from now on holds at most `messages` undelivered messages
    /// (at least 1; a smaller value is raised to 1) before it drops the oldest and reports
    /// [`KvError::Lagged`].
    pub fn with_buffer(mut self, messages: usize) -> Self {
        self.buffer.messages = messages.max(1);
        self
    }

    /// The same bus, where each subscription created from now on holds at most `bytes` of undelivered payloads
    /// and channel names (at least 1) before it drops the oldest messages and reports [`KvError::Lagged`]; the
    /// newest message is always kept.
    pub fn with_buffer_bytes(mut self, bytes: usize) -> Self {
        self.buffer.bytes = bytes.max(1);
        self
    }

    /// Test aid: how many channels have at least one subscription. Dropping a channel's last subscription
    /// removes it, so this returns to 0 when every subscription is gone.
    pub fn channel_count(&self) -> usize {
        self.lock().channels.len()
    }

    /// Test aid: how many patterns have at least one subscription.
    pub fn pattern_count(&self) -> usize {
        self.lock().patterns.len()
    }

    /// Test aid: how many live subscriptions there are (channel and pattern ones).
    pub fn subscription_count(&self) -> usize {
        let state = self.lock();
        state.channels.values().chain(state.patterns.values()).map(Vec::len).sum()
    }

    /// Test aid: how many published messages are waiting in subscription queues, all subscriptions together.
    /// Bounded by the number of subscriptions times the buffer size, however far subscribers fall behind.
    pub fn buffered_messages(&self) -> usize {
        self.lock().all_queues().map(|q| q.buffered().0).sum()
    }

    /// Test aid: the size of those messages ([`BufferLimits::size_of`]), all subscriptions together.
    pub fn buffered_bytes(&self) -> usize {
        self.lock().all_queues().map(|q| q.buffered().1).sum()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn add(&self, kind: Kind, topic: &str) -> Subscription {
        let queue = Arc::new(SubscriberQueue::new(self.buffer));
        let id = {
            let mut state = self.lock();
            let id = state.next_id;
            state.next_id += 1;
            state.topics(kind).entry(topic.to_owned()).or_default().push(Subscriber { id, queue: Arc::clone(&queue) });
            id
        };
        Subscription::new(Feed { queue, state: Arc::downgrade(&self.state), kind, topic: topic.to_owned(), id })
    }
}

impl Drop for InMemoryPubSub {
    fn drop(&mut self) {
        for queue in self.lock().all_queues() {
            queue.close();
        }
    }
}

#[async_trait]
impl PubSub for InMemoryPubSub {
    async fn publish_bytes(&self, channel: &Channel, payload: Bytes) -> Result<u64, KvError> {
        cpc_ports::check_payload(&payload)?;
        let name = channel.as_str();
        let message = Message { channel: name.to_owned(), payload };
        // The state lock is held while pushing, so a publish reaches exactly the subscriptions present when it
        // took the lock, and two publishes reach every subscriber in the same order.
        let state = self.lock();
        let direct = state.channels.get(name).into_iter().flatten();
        let by_pattern = state
            .patterns
            .iter()
            .filter(|(pattern, _)| cpc_ports::pubsub::glob_matches(pattern.as_bytes(), name.as_bytes()))
            .flat_map(|(_, subscribers)| subscribers);
        let mut reached = 0u64;
        for subscriber in direct.chain(by_pattern) {
            subscriber.queue.push(message.clone());
            reached += 1;
        }
        Ok(reached)
    }

    async fn subscribe_bytes(&self, channel: &Channel) -> Result<Subscription, KvError> {
        Ok(self.add(Kind::Channel, channel.as_str()))
    }

    async fn psubscribe_bytes(&self, pattern: &ChannelPattern) -> Result<Subscription, KvError> {
        Ok(self.add(Kind::Pattern, pattern.as_str()))
    }

    fn codec(&self) -> Codec {
        self.codec.clone()
    }
}
