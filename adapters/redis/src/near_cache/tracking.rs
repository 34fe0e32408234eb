//! The invalidation connection of a [`NearCache`](super::NearCache): a dedicated RESP3 connection in
//! `CLIENT TRACKING ON BCAST PREFIX <namespace>cache:` mode, and the task that owns it: it applies the server's
//! invalidation pushes to the local tier, pings the connection so a silently dead one is noticed, and when the
//! connection is lost empties the tier, keeps it bypassed, and reconnects with backoff.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use cpc_ports::KvError;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, PushInfo, PushKind, Value};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use tokio::task::JoinHandle;
use tokio::time::{MissedTickBehavior, interval, sleep, timeout};

use super::local::LocalTier;
use crate::RedisConfig;
use crate::error::classify;
use crate::metrics::FlushCause;

/// The first wait before another connection attempt after a failed one; doubled on each failure up to
/// [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(50);
/// The longest wait between two connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// The name the invalidation connection gives itself (`CLIENT LIST` shows it).
pub(super) const CLIENT_NAME: &str = "cpc-near-cache";

/// Aborts the tracking task when the last clone of its near cache is dropped (the task owns the connection, so
/// this closes it).
pub(super) struct TaskGuard(pub(super) JoinHandle<()>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A tracking connection and the pushes it receives.
pub(super) struct Tracked {
    conn: MultiplexedConnection,
    pushes: UnboundedReceiver<PushInfo>,
}

/// What the tracking task needs: how to connect, what to track, where to apply it.
pub(super) struct Tracker {
    client: redis::Client,
    config: RedisConfig,
    /// The stored-key prefix tracked (`<namespace>cache:`); invalidated keys are local keys after it.
    prefix: String,
    keepalive: Duration,
    tier: Arc<LocalTier>,
    /// The server's id of the current tracking connection (0 while there is none).
    client_id: Arc<AtomicI64>,
}

impl Tracker {
    /// A tracker for keys under `prefix` on the server of `config`, applying invalidations to `tier`.
    pub(super) fn new(
        config: &RedisConfig,
        prefix: String,
        keepalive: Duration,
        tier: Arc<LocalTier>,
        client_id: Arc<AtomicI64>,
    ) -> Result<Self, KvError> {
        let client = config.client()?;
        let info = client.get_connection_info().clone();
        let resp3 = info.redis_settings().clone().set_protocol(redis::ProtocolVersion::RESP3);
        let client = redis::Client::open(info.set_redis_settings(resp3)).map_err(|e| KvError::backend("redis", e))?;
        Ok(Self { client, config: config.clone(), prefix, keepalive, tier, client_id })
    }

    /// Opens a RESP3 connection and turns broadcast tracking of the prefix on; the connection's pushes arrive
    /// on the returned receiver. Fails within the connect plus the response timeout.
    pub(super) async fn connect(&self) -> Result<Tracked, KvError> {
        let (sender, pushes) = unbounded_channel();
        let settings = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.config.connect_timeout))
            .set_response_timeout(Some(self.config.response_timeout))
            .set_push_sender(sender);
        let limit = self.config.connect_timeout + self.config.response_timeout;
        let error = |e| classify(e, "near cache: tracking", self.config.response_timeout);
        let opened = async {
            let mut conn = self.client.get_multiplexed_async_connection_with_config(&settings).await.map_err(error)?;
            let mut pipe = redis::pipe();
            pipe.cmd("CLIENT").arg("SETNAME").arg(CLIENT_NAME).ignore();
            pipe.cmd("CLIENT").arg("ID");
            pipe.cmd("CLIENT").arg("TRACKING").arg("ON").arg("BCAST").arg("PREFIX").arg(&self.prefix).ignore();
            let (id,): (i64,) = pipe.query_async(&mut conn).await.map_err(error)?;
            Ok::<_, KvError>((conn, id))
        };
        let (conn, id) = timeout(limit, opened)
            .await
            .map_err(|_| KvError::Timeout { operation: "near cache: tracking", after: limit })??;
        self.client_id.store(id, Ordering::Release);
        Ok(Tracked { conn, pushes })
    }

    /// The task: serves `first` (already live) until it is lost, then empties and bypasses the tier and
    /// reconnects with backoff, and so on until aborted.
    pub(super) async fn run(self, first: Tracked) {
        let mut tracked = first;
        loop {
            self.serve(&mut tracked).await;
            self.client_id.store(0, Ordering::Release);
            self.tier.go_down();
            tracing::warn!(server = %self.config.address(), "near cache: invalidation connection lost; local tier emptied and bypassed until it is back");
            tracked = self.reconnect().await;
            self.tier.go_live();
            tracing::info!(server = %self.config.address(), "near cache: invalidation connection back; local tier in use again");
        }
    }

    /// Connects again at once, then after waits doubling from [`MIN_BACKOFF`] to [`MAX_BACKOFF`].
    async fn reconnect(&self) -> Tracked {
        let mut backoff = MIN_BACKOFF;
        loop {
            match self.connect().await {
                Ok(tracked) => return tracked,
                Err(error) => {
                    tracing::debug!(%error, ?backoff, "near cache: reconnecting the invalidation connection failed");
                    sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Applies `tracked`'s pushes until the connection is lost: a disconnection push, the push channel closed,
    /// or a keepalive `PING` unanswered within the response timeout.
    async fn serve(&self, tracked: &mut Tracked) {
        let mut keepalive = interval(self.keepalive);
        keepalive.set_missed_tick_behavior(MissedTickBehavior::Delay);
        keepalive.reset();
        loop {
            tokio::select! {
                push = tracked.pushes.recv() => match push {
                    None | Some(PushInfo { kind: PushKind::Disconnection, .. }) => return,
                    Some(PushInfo { kind: PushKind::Invalidate, data }) => self.invalidate(&data),
                    Some(_) => {}
                },
                _ = keepalive.tick() => {
                    let ping = redis::cmd("PING");
                    let answered = timeout(self.config.response_timeout, ping.query_async::<Value>(&mut tracked.conn));
                    if !matches!(answered.await, Ok(Ok(_))) {
                        return;
                    }
                }
            }
        }
    }

    /// Applies one `invalidate` push: a list of keys drops those; a null (the server flushed) empties the tier.
    fn invalidate(&self, data: &[Value]) {
        for value in data {
            match value {
                Value::Nil => self.tier.clear(FlushCause::Flush),
                Value::Array(keys) | Value::Set(keys) => keys.iter().for_each(|key| self.invalidate_key(key)),
                key => self.invalidate_key(key),
            }
        }
    }

    fn invalidate_key(&self, key: &Value) {
        let stored = match key {
            Value::BulkString(bytes) => bytes.as_slice(),
            Value::SimpleString(text) => text.as_bytes(),
            _ => return,
        };
        // Broadcast tracking only sends keys under the prefix; a key that is not UTF-8 is no `CacheKey`.
        if let Some(key) = stored.strip_prefix(self.prefix.as_bytes()).and_then(|k| std::str::from_utf8(k).ok()) {
            self.tier.invalidate(key, true);
        }
    }
}
