//! The [`PubSub`] port: fire-and-forget messages to every current subscriber of a channel.

use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;
use futures::stream::BoxStream;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Channel, ChannelPattern, Codec, KvError};

mod glob;
pub mod queue;

pub use queue::SubscriberQueue;

/// Whether the channel name `channel` matches the Redis glob `pattern`, byte for byte as Redis's `PSUBSCRIBE`
/// matches (`*` any run, `?` one byte, `[abc]`, `[^a]`, `[a-z]`, `\` escapes; an unclosed `[` runs to the end).
/// For adapters that match patterns themselves (in process, or on a backend without patterns of its own).
///
/// ```
/// use cpc_ports::pubsub::glob_matches;
///
/// assert!(glob_matches(b"news.*", b"news.sport"));
/// assert!(!glob_matches(b"h[^e]llo", b"hello"));
/// ```
pub fn glob_matches(pattern: &[u8], channel: &[u8]) -> bool {
    glob::matches(pattern, channel)
}

impl ChannelPattern {
    /// Whether `channel` matches this pattern ([`glob_matches`]).
    pub fn matches(&self, channel: &Channel) -> bool {
        glob::matches(self.as_str().as_bytes(), channel.as_str().as_bytes())
    }
}

/// One received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The channel it was published on (for pattern subscriptions, the concrete channel).
    pub channel: String,
    /// The payload as published.
    pub payload: Bytes,
}

/// How much a subscription may hold undelivered before it drops its oldest messages (the subscriber then reads
/// one [`KvError::Lagged`] before the messages that were kept). Both bounds hold: a stalled subscriber costs at
/// most `bytes` of payload and channel names, and at most `messages` messages, however much is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferLimits {
    /// The most undelivered messages (at least 1).
    pub messages: usize,
    /// The most undelivered bytes, payloads and channel names together (at least 1). The newest message is
    /// always kept, even alone above this.
    pub bytes: usize,
}

impl BufferLimits {
    /// 1,024 messages and 16 MiB: room for two messages of [`MAX_PAYLOAD_BYTES`](crate::MAX_PAYLOAD_BYTES).
    pub const DEFAULT: Self = Self { messages: 1024, bytes: 16 * 1024 * 1024 };

    /// What `message` counts against [`BufferLimits::bytes`]: its payload and its channel name.
    pub fn size_of(message: &Message) -> usize {
        message.payload.len().saturating_add(message.channel.len())
    }

    /// Whether a queue holding `messages` messages of `bytes` in all must drop its oldest message before taking
    /// one of `incoming` bytes. Never true for an empty queue.
    pub fn must_drop(&self, messages: usize, bytes: usize, incoming: usize) -> bool {
        messages > 0 && (messages >= self.messages.max(1) || bytes.saturating_add(incoming) > self.bytes.max(1))
    }
}

impl Default for BufferLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A live subscription: a stream of messages that ends when the subscription is dropped or the backend closes
/// it. An `Err` item reports a problem (a lagging subscriber, a lost connection) without ending the stream
/// unless the backend cannot go on.
pub struct Subscription {
    inner: BoxStream<'static, Result<Message, KvError>>,
}

impl Subscription {
    /// Wraps any stream of messages.
    pub fn new(stream: impl Stream<Item = Result<Message, KvError>> + Send + 'static) -> Self {
        Self { inner: Box::pin(stream) }
    }

    /// Decodes each payload as `T` with `codec`.
    pub fn typed<T: DeserializeOwned>(self, codec: Codec) -> TypedSubscription<T> {
        TypedSubscription { inner: self, codec, _t: PhantomData }
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Subscription")
    }
}

impl Stream for Subscription {
    type Item = Result<Message, KvError>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

/// A [`Subscription`] that decodes payloads; a payload that does not decode is an `Err(KvError::Codec)` item,
/// and the stream goes on.
pub struct TypedSubscription<T> {
    inner: Subscription,
    codec: Codec,
    _t: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for TypedSubscription<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TypedSubscription")
    }
}

impl<T: DeserializeOwned> Stream for TypedSubscription<T> {
    type Item = Result<T, KvError>;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let codec = &this.codec;
        Pin::new(&mut this.inner)
            .poll_next(cx)
            .map(|item| item.map(|msg| msg.and_then(|m| codec.decode::<T>(&m.payload).map_err(KvError::from))))
    }
}

/// Publish/subscribe messaging. At-most-once: a message reaches the subscribers present when it is published.
///
/// Implementations: Redis (`PubSubManager` in `cpc-adapters`), in-process (`cpc-adapters`, feature `memory`;
/// re-exported by `cpc-testkit`).
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait PubSub: Send + Sync + 'static {
    /// Sends `payload` to every current subscriber of `channel` (and of every pattern matching it); returns how
    /// many receivers the backend counted: 0 exactly when nobody received it. Backends count differently (Redis
    /// counts subscribed connections, and one connection may carry many subscriptions), so beyond "zero or not"
    /// the number is informative only.
    ///
    /// MUST deliver to every subscription whose `subscribe` call returned before the publish began, in publish
    /// order per publisher, with the payload byte for byte (empty payloads included).
    async fn publish_bytes(&self, channel: &Channel, payload: Bytes) -> Result<u64, KvError>;

    /// Subscribes to one channel. The subscription MUST be active when this returns.
    async fn subscribe_bytes(&self, channel: &Channel) -> Result<Subscription, KvError>;

    /// Subscribes to every channel matching a Redis-style glob `pattern`. MUST be active when this returns.
    async fn psubscribe_bytes(&self, pattern: &ChannelPattern) -> Result<Subscription, KvError>;

    /// The codec the typed methods of [`PubSubExt`] use.
    fn codec(&self) -> Codec;

    /// What this implementation supports beyond the core contract. The default is everything; an implementation
    /// that lacks something says so here, and MUST then refuse it with [`KvError::Unsupported`] (the contract suite
    /// checks both sides).
    fn capabilities(&self) -> PubSubCapabilities {
        PubSubCapabilities::all()
    }
}

/// What a [`PubSub`] implementation supports beyond the core contract ([`PubSub::capabilities`]), so an app (or a
/// contract suite) can choose instead of failing at the first call.
///
/// ```
/// use cpc_ports::PubSubCapabilities;
///
/// assert!(PubSubCapabilities::all().patterns);
/// assert!(!PubSubCapabilities::all().without_patterns().patterns);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PubSubCapabilities {
    /// Pattern subscriptions ([`PubSub::psubscribe_bytes`]). A Redis Cluster's sharded pub/sub has none.
    pub patterns: bool,
}

impl PubSubCapabilities {
    /// Everything the port describes.
    pub const fn all() -> Self {
        Self { patterns: true }
    }

    /// The same, without pattern subscriptions.
    #[must_use]
    pub const fn without_patterns(self) -> Self {
        Self { patterns: false }
    }
}

impl Default for PubSubCapabilities {
    /// [`PubSubCapabilities::all`].
    fn default() -> Self {
        Self::all()
    }
}

/// Typed messages over any [`PubSub`]. Blanket-implemented, `dyn PubSub` included.
#[async_trait]
pub trait PubSubExt: PubSub {
    /// Encodes and publishes a message.
    async fn publish<T: Serialize + Sync + ?Sized>(&self, channel: &Channel, message: &T) -> Result<u64, KvError> {
        let bytes = self.codec().encode(message)?;
        self.publish_bytes(channel, bytes).await
    }

    /// Subscribes to a channel, decoding messages as `T`.
    async fn subscribe<T: DeserializeOwned>(&self, channel: &Channel) -> Result<TypedSubscription<T>, KvError> {
        Ok(self.subscribe_bytes(channel).await?.typed(self.codec()))
    }

    /// Subscribes to a pattern, decoding messages as `T`.
    async fn psubscribe<T: DeserializeOwned>(&self, pattern: &ChannelPattern) -> Result<TypedSubscription<T>, KvError> {
        Ok(self.psubscribe_bytes(pattern).await?.typed(self.codec()))
    }
}

impl<P: PubSub + ?Sized> PubSubExt for P {}
