//! [`PgPubSub`]: the [`PubSub`] port on PostgreSQL `LISTEN`/`NOTIFY`, with a dedicated listener connection that
//! reconnects and listens again by itself.

mod command;
mod driver;
pub mod metrics;
mod queue;
mod sql;
mod wire;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use cpc_pool::postgres::PgPool;
use cpc_pool::postgres::kv::{column, query};
use cpc_ports::pubsub::glob_matches;
use cpc_ports::{BufferLimits, Channel, ChannelPattern, Codec, KvError, PubSub, PubSubCapabilities, Subscription};
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use tokio::sync::oneshot;

use self::command::{Command, Kind};
use self::driver::Driver;
use self::metrics::Instruments;
use self::queue::{Feed, Queue};

/// How many undelivered messages a subscription holds by default before it starts dropping the oldest
/// ([`BufferLimits::DEFAULT`] also bounds their bytes).
pub const DEFAULT_SUBSCRIPTION_BUFFER: usize = BufferLimits::DEFAULT.messages;

/// Publish/subscribe on PostgreSQL alone: `NOTIFY` to publish, `LISTEN` on a dedicated connection to receive.
///
/// # How messages travel
///
/// Every message is a `NOTIFY` on one PostgreSQL channel, `cpc_pubsub`, whose payload carries the port's channel
/// name and the message (both base64, so any channel name and any bytes work: PostgreSQL's own channel names are
/// identifiers of at most 63 bytes, and its payloads text). The listener matches channels and Redis-style glob
/// patterns itself ([`glob_matches`], the same matcher as the in-process bus), so patterns cost nothing on the
/// server. NOTIFY payloads must be under 8000 bytes: a larger message (up to
/// [`MAX_PAYLOAD_BYTES`](cpc_ports::MAX_PAYLOAD_BYTES)) is stored in `cpc_pubsub_messages` by the same statement,
/// the NOTIFY names its row, and the listener reads it (one more round trip on the listener connection). The
/// next large publish deletes stored messages older than a minute, so the table holds about a minute of large
/// messages; a listener more than a minute behind skips what was deleted (counted in
/// [`metrics::SKIPPED`] with `reason="expired"`).
///
/// Since all buses of a database share the one PostgreSQL channel, every listening connection receives every
/// message published in the database and keeps those it has subscriptions for: fine for the usual few
/// processes, but a database with many listening processes and heavy traffic pays for it on each of them.
/// Delivery is at most once, like Redis pub/sub: a NOTIFY reaches the connections listening when it commits.
/// Messages from one publisher arrive in publish order. A NOTIFY on `cpc_pubsub` from another program (a
/// payload this library does not write) is skipped and counted (`reason="foreign"`), never delivered.
///
/// # What a call costs
///
/// * `publish_bytes`: one statement on a pooled connection. It also counts the receivers in
///   `cpc_pubsub_subscriptions` (migration `2026-12-06-000005_kv_pubsub`): one per listening connection and
///   channel, plus one per listening connection and matching pattern, as Redis counts, among connections still
///   alive (`pg_stat_activity`). Pattern rows are returned and matched by the publisher, so a publish costs more
///   with many distinct patterns subscribed.
/// * `subscribe_bytes` / `psubscribe_bytes`: the first one of a bus opens its listener connection (a
///   connection of its own, with the pool's configuration and TLS, not taken from the pool) and sends `LISTEN`;
///   the first subscription of a topic records it (one statement); later ones of the same topic cost nothing
///   on the server. A subscription is active when the call returns. Dropping a [`Subscription`] removes the
///   topic's row when it was the topic's last, and the last of all sends `UNLISTEN`.
///
/// # Lost connections
///
/// When the listener connection breaks (server restart, `pg_terminate_backend`, network failure; an idle
/// connection is checked every 10 s), every subscription reads one `Err(KvError::Unavailable)` item at that point
/// of its stream, and the listener reconnects at once, then with exponential backoff (50 ms doubling up to
/// 1 s), and listens to every live channel and pattern again. The streams go on; **messages published while
/// the connection was down are lost**. A subscribe made while the server is unreachable fails with
/// `Unavailable` (or `Timeout`). Rows of a connection that died are ignored by publishes and deleted when a
/// listener next connects.
///
/// # Slow subscribers
///
/// Notifications are read from the socket as fast as they arrive and put into each subscription's own queue of
/// at most [`with_buffer`](Self::with_buffer) messages and [`with_buffer_bytes`](Self::with_buffer_bytes) bytes
/// ([`BufferLimits::DEFAULT`]: 1,024 messages, 16 MiB). When a queue is full its oldest message is dropped and
/// counted; the subscriber then reads one `Err(KvError::Lagged { missed })` item before the messages that were
/// kept, and goes on with newer ones, as with the Redis and in-process buses. A stalled subscriber thus costs
/// at most its buffer and never slows the others or the server (a listener that stopped reading would hold back
/// PostgreSQL's notification queue for the whole database).
///
/// ```no_run
/// # async fn demo(pool: cpc_pool::postgres::PgPool) -> Result<(), cpc_ports::KvError> {
/// use cpc_pg_kv::PgPubSub;
/// use cpc_ports::{Channel, PubSubExt};
/// use futures::StreamExt;
///
/// let bus = PgPubSub::new(pool);
/// let news = Channel::new("news")?;
/// let mut sub = bus.subscribe::<String>(&news).await?;
/// bus.publish(&news, "hello").await?;
/// assert_eq!(sub.next().await.transpose()?.as_deref(), Some("hello"));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PgPubSub {
    pool: PgPool,
    codec: Codec,
    buffer: BufferLimits,
    shared: Arc<Shared>,
}

/// What the clones of one bus share: the listener task's mailbox and the counters.
struct Shared {
    driver: Mutex<Option<UnboundedSender<Command<Queue>>>>,
    next_id: AtomicU64,
    metrics: Arc<Instruments>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(driver) = self.driver.get_mut().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = driver.send(Command::Shutdown);
        }
    }
}

impl std::fmt::Debug for PgPubSub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgPubSub").field("codec", &self.codec).field("buffer", &self.buffer).finish_non_exhaustive()
    }
}

impl PgPubSub {
    /// A bus on `pool`'s database (migrated with the library's migrations), with the default codec (JSON) and
    /// [`DEFAULT_SUBSCRIPTION_BUFFER`]. Opens its listener connection on the first subscribe. Its counters
    /// ([`metrics`]) go to the `metrics` recorder in place now.
    pub fn new(pool: PgPool) -> Self {
        let shared = Shared { driver: Mutex::new(None), next_id: AtomicU64::new(0), metrics: Instruments::new() };
        Self { pool, codec: Codec::default(), buffer: BufferLimits::DEFAULT, shared: Arc::new(shared) }
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

    /// The pool publishes go through.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The listener task's mailbox, starting the task on first use (or again, should it have stopped).
    fn driver(&self) -> Result<UnboundedSender<Command<Queue>>, KvError> {
        let mut driver = self.shared.driver.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = driver.as_ref().filter(|tx| !tx.is_closed()) {
            return Ok(tx.clone());
        }
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| KvError::backend("postgres", "pub/sub subscriptions need a Tokio runtime"))?;
        let (tx, rx) = unbounded_channel();
        runtime.spawn(Driver::new(self.pool.clone(), rx, Arc::clone(&self.shared.metrics)).run());
        *driver = Some(tx.clone());
        Ok(tx)
    }

    async fn add(&self, kind: Kind, topic: String) -> Result<Subscription, KvError> {
        let driver = self.driver()?;
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let queue = Arc::new(Queue::new(self.buffer, Arc::clone(&self.shared.metrics)));
        // Should this future be dropped (or the subscribe fail), dropping the feed unsubscribes: its request is
        // queued after the subscribe, so the listener task undoes whatever the subscribe did.
        let feed = Feed { queue: Arc::clone(&queue), commands: driver.clone(), kind, topic: topic.clone(), id };
        let (done, confirmed) = oneshot::channel();
        let stopped = || KvError::Unavailable { backend: "postgres", reason: "the pub/sub task has stopped".into() };
        driver.send(Command::Subscribe { kind, topic, id, queue, done }).map_err(|_| stopped())?;
        confirmed.await.map_err(|_| stopped())??;
        Ok(Subscription::new(feed))
    }
}

#[async_trait]
impl PubSub for PgPubSub {
    async fn publish_bytes(&self, channel: &Channel, payload: Bytes) -> Result<u64, KvError> {
        cpc_ports::check_payload(&payload)?;
        let name = channel.as_str().as_bytes();
        let rows = match wire::inline(channel.as_str(), &payload) {
            Some(text) => query(&self.pool, sql::PUBLISH_INLINE, &[&name, &text], "publish").await?,
            None => query(&self.pool, sql::PUBLISH_STORED, &[&name, &payload.as_ref()], "publish").await?,
        };
        let Some(row) = rows.first() else {
            return Err(KvError::backend("postgres", "the publish statement returned no row"));
        };
        let direct: i64 = column(row, 0)?;
        let patterns: Vec<Vec<u8>> = column(row, 1)?;
        let matching = patterns.iter().filter(|pattern| glob_matches(pattern, name)).count();
        Ok(u64::try_from(direct).unwrap_or(0).saturating_add(matching as u64))
    }

    async fn subscribe_bytes(&self, channel: &Channel) -> Result<Subscription, KvError> {
        self.add(Kind::Channel, channel.as_str().to_owned()).await
    }

    async fn psubscribe_bytes(&self, pattern: &ChannelPattern) -> Result<Subscription, KvError> {
        self.add(Kind::Pattern, pattern.as_str().to_owned()).await
    }

    fn codec(&self) -> Codec {
        self.codec.clone()
    }

    /// Everything the port describes, patterns included.
    fn capabilities(&self) -> PubSubCapabilities {
        PubSubCapabilities::all()
    }
}
