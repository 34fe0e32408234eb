//! [`PubSubManager`]: the Redis [`PubSub`], on a dedicated connection that reconnects and resubscribes by
//! itself.

mod command;
mod driver;
mod queue;
mod sharded;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use cpc_ports::{
    BufferLimits, Bytes, Channel, ChannelPattern, Codec, KvError, PubSub, PubSubCapabilities, Subscription,
};
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use tokio::sync::oneshot;

use self::command::{Command, Kind};
use self::driver::Driver;
use self::queue::{Registry, lock, register};
use self::sharded::ShardedDriver;
use super::RedisManager;
use super::metrics::{Instruments, operations};

operations!(PubSubOp {
    Publish = "publish",
    Subscribe = "subscribe",
    Psubscribe = "psubscribe",
});

/// How many undelivered messages a subscription holds by default before it starts dropping the oldest
/// ([`BufferLimits::DEFAULT`] also bounds their bytes).
pub const DEFAULT_SUBSCRIPTION_BUFFER: usize = BufferLimits::DEFAULT.messages;

/// Redis `PUBLISH` / `SUBSCRIBE` / `PSUBSCRIBE` behind the [`PubSub`] port.
///
/// * Channel names are namespaced: `publish` on `orders` sends to `<namespace>orders`, a subscription to
///   `orders` listens to `<namespace>orders`, and a pattern `ord*` becomes `<namespace>ord*` with the glob
///   characters of the namespace escaped, so a pattern never reaches into another namespace. Received
///   [`Message`](cpc_ports::Message)s carry the channel name without the namespace (a channel name that is
///   not UTF-8, which only another program can publish to, is converted lossily).
/// * Publishing goes through the manager's shared multiplexed connection and returns what `PUBLISH` returns:
///   Redis counts one receiver per subscribed connection and channel, plus one per matching pattern. All
///   subscriptions of one `PubSubManager` (and its clones) share one connection, so several subscriptions of a
///   channel count once.
/// * Subscriptions use a dedicated connection of their own (a connection in subscribed mode cannot run other
///   commands), opened on the first subscribe. A background task owns it: `subscribe_bytes` and
///   `psubscribe_bytes` return once Redis has confirmed the subscription, dropping a
///   [`Subscription`] sends `UNSUBSCRIBE`/`PUNSUBSCRIBE` when it was the channel's (or pattern's) last one, and
///   dropping every clone of the `PubSubManager` ends every subscription's stream, as the in-memory fake does.
///
/// # On a Redis Cluster
///
/// Channels are **sharded** (Redis 7): `publish` is `SPUBLISH`, a subscription is `SSUBSCRIBE`, both sent to
/// the node serving the channel's hash slot, so messages travel within one shard instead of being broadcast to
/// every node. Subscriptions share one RESP3 cluster connection; each lost node connection reaches every
/// subscription as one `Err(KvError::Unavailable)` item, and every live channel is then subscribed again (with
/// backoff until it succeeds) on whichever node serves its slot by then, the promoted replica after a failover.
/// A node that drops a channel's subscription itself because the slot left it (the old master after a manual
/// `CLUSTER FAILOVER`, which keeps its connections) is handled the same way for that channel: its subscribers
/// read one `Err(KvError::Unavailable)` item and the channel is subscribed again on the new owner. `publish`
/// counts the receivers on the channel's shard. **Pattern subscriptions have no sharded form:**
/// `psubscribe_bytes` answers [`KvError::Unsupported`] at once.
///
/// # Lost connections
///
/// When the subscription connection breaks (server restart, network failure; an idle connection is checked
/// with `PING` every 10 s), every subscription reads one `Err(KvError::Unavailable)` item at that point of its
/// stream, and the task reconnects at once, then with exponential backoff (50 ms doubling up to 1 s), and
/// resubscribes to every live channel and pattern by itself. The streams go on; **messages published while the
/// connection was down are lost** (Redis pub/sub is at-most-once and keeps nothing for absent subscribers). A
/// subscribe made while the server is unreachable fails with `Unavailable` (or `Timeout`).
///
/// # Slow subscribers
///
/// Messages are read from the socket as fast as they arrive and put into each subscription's own queue of at
/// most [`with_buffer`](Self::with_buffer) messages and [`with_buffer_bytes`](Self::with_buffer_bytes) bytes
/// ([`BufferLimits::DEFAULT`]: 1,024 messages, 16 MiB). When a queue is full its oldest message is dropped and
/// counted; the subscriber then reads one
/// `Err(KvError::Lagged { missed })` item before the messages that were kept, and goes on with newer ones. A
/// stalled subscriber thus costs at most its buffer and never slows the others. (Queues grow on demand.) What
/// it cannot prevent is a flood published faster than this process reads its socket: then the server's
/// `client-output-buffer-limit pubsub` (32 MB by default) cuts the connection; every subscription gets an
/// `Err(KvError::Unavailable)` item, the connection is re-established and resubscribed by itself, and what was
/// published meanwhile is lost (measured in docs/RELIABILITY.md).
///
/// ```no_run
/// # async fn demo(manager: cpc_redis::RedisManager) -> Result<(), cpc_ports::KvError> {
/// use cpc_redis::PubSubManager;
/// use cpc_ports::{Channel, PubSubExt};
/// use futures::StreamExt;
///
/// let bus = PubSubManager::new(manager).with_buffer(256);
/// let news = Channel::new("news")?;
/// let mut sub = bus.subscribe::<String>(&news).await?;
/// bus.publish(&news, "hello").await?;
/// assert_eq!(sub.next().await.transpose()?.as_deref(), Some("hello"));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PubSubManager {
    manager: RedisManager,
    codec: Codec,
    buffer: BufferLimits,
    shared: Arc<Shared>,
    metrics: Arc<Instruments<PubSubOp>>,
}

/// What the clones of one `PubSubManager` share: the subscriptions and the driver task's mailbox.
struct Shared {
    registry: Arc<Mutex<Registry>>,
    driver: Mutex<Option<UnboundedSender<Command>>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(driver) = self.driver.get_mut().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = driver.send(Command::Shutdown);
        }
    }
}

impl std::fmt::Debug for PubSubManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PubSubManager")
            .field("manager", &self.manager)
            .field("codec", &self.codec)
            .field("buffer", &self.buffer)
            .field("subscriptions", &self.subscription_count())
            .finish()
    }
}

/// `\` before each glob character of `text`, so it matches itself literally in a pattern.
fn escape_glob(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\' | '^' | '-') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

impl PubSubManager {
    /// A bus over `manager`'s server and namespace, with the default codec (JSON) and
    /// [`DEFAULT_SUBSCRIPTION_BUFFER`]. Connects for subscriptions on the first subscribe.
    pub fn new(manager: RedisManager) -> Self {
        Self {
            manager,
            codec: Codec::default(),
            buffer: BufferLimits::DEFAULT,
            shared: Arc::new(Shared { registry: Arc::default(), driver: Mutex::new(None) }),
            metrics: Instruments::new("pubsub"),
        }
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

    /// Test aid: how many live subscriptions there are (channel and pattern ones).
    pub fn subscription_count(&self) -> usize {
        lock(&self.shared.registry).len()
    }

    /// Test aid: how many received messages wait in subscription queues, all subscriptions together. Bounded
    /// by the number of subscriptions times the buffer size, however far subscribers fall behind.
    pub fn buffered_messages(&self) -> usize {
        lock(&self.shared.registry).queues().map(|q| q.buffered().0).sum()
    }

    /// Test aid: the size of those messages ([`BufferLimits::size_of`]), all subscriptions together.
    pub fn buffered_bytes(&self) -> usize {
        lock(&self.shared.registry).queues().map(|q| q.buffered().1).sum()
    }

    /// The driver's mailbox, starting the driver task on first use (or again, should it have stopped).
    fn driver(&self) -> Result<UnboundedSender<Command>, KvError> {
        let mut driver = self.shared.driver.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = driver.as_ref().filter(|tx| !tx.is_closed()) {
            return Ok(tx.clone());
        }
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| KvError::backend("redis", "pub/sub subscriptions need a Tokio runtime"))?;
        let config = self.manager.config();
        let (tx, rx) = unbounded_channel();
        if self.manager.is_cluster() {
            runtime.spawn(ShardedDriver::new(config.clone(), Arc::clone(&self.shared.registry), rx).run());
        } else {
            let task = Driver::new(config.client()?, config.clone(), Arc::clone(&self.shared.registry), rx);
            runtime.spawn(task.run());
        }
        *driver = Some(tx.clone());
        Ok(tx)
    }

    async fn add(&self, kind: Kind, topic: String) -> Result<Subscription, KvError> {
        let driver = self.driver()?;
        // Registered first, so no message that arrives once the server confirms can miss it; if this future is
        // dropped or the subscribe fails, dropping the feed undoes it.
        let feed = register(&self.shared.registry, driver.clone(), kind, &topic, self.buffer);
        let (done, confirmed) = oneshot::channel();
        let stopped = || KvError::Unavailable { backend: "redis", reason: "the pub/sub task has stopped".into() };
        driver.send(Command::Subscribe { kind, topic, done }).map_err(|_| stopped())?;
        confirmed.await.map_err(|_| stopped())??;
        Ok(Subscription::new(feed))
    }
}

#[async_trait]
impl PubSub for PubSubManager {
    async fn publish_bytes(&self, channel: &Channel, payload: Bytes) -> Result<u64, KvError> {
        cpc_ports::check_payload(&payload)?;
        self.metrics
            .run(PubSubOp::Publish, async {
                let mut cmd = redis::cmd(if self.manager.is_cluster() { "SPUBLISH" } else { "PUBLISH" });
                cmd.arg(self.manager.key(channel.as_str())).arg(payload.as_ref());
                self.manager.query(&cmd, "publish").await
            })
            .await
    }

    async fn subscribe_bytes(&self, channel: &Channel) -> Result<Subscription, KvError> {
        self.metrics
            .run(PubSubOp::Subscribe, async { self.add(Kind::Channel, self.manager.key(channel.as_str())).await })
            .await
    }

    async fn psubscribe_bytes(&self, pattern: &ChannelPattern) -> Result<Subscription, KvError> {
        self.metrics
            .run(PubSubOp::Psubscribe, async {
                if self.manager.is_cluster() {
                    return Err(patterns_unsupported());
                }
                let topic = format!("{}{}", escape_glob(&self.manager.config().namespace), pattern.as_str());
                self.add(Kind::Pattern, topic).await
            })
            .await
    }

    fn codec(&self) -> Codec {
        self.codec.clone()
    }

    /// Everything on one server; no pattern subscriptions on a cluster (sharded pub/sub has no pattern form).
    fn capabilities(&self) -> PubSubCapabilities {
        if self.manager.is_cluster() { PubSubCapabilities::all().without_patterns() } else { PubSubCapabilities::all() }
    }
}

/// What a pattern subscription on a Redis Cluster answers.
fn patterns_unsupported() -> KvError {
    KvError::Unsupported {
        backend: "redis",
        operation: "pattern subscriptions on a Redis Cluster",
        reason: "sharded pub/sub (SSUBSCRIBE) has no pattern form; subscribe to each channel instead",
    }
}

#[cfg(test)]
mod tests {
    use super::escape_glob;

    #[test]
    fn glob_characters_of_the_namespace_are_escaped() {
        assert_eq!(escape_glob("app:"), "app:");
        assert_eq!(escape_glob("a*b?[c-d]^\\:"), "a\\*b\\?\\[c\\-d\\]\\^\\\\:");
    }
}
