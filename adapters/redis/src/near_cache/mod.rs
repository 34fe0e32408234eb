//! [`NearCache`]: a two-tier [`Cache`], a bounded in-process tier in front of a Redis [`CacheManager`], kept
//! coherent by Redis server-assisted client-side caching (RESP3 `CLIENT TRACKING`).

mod config;
mod local;
mod tracking;

pub use self::config::{NEAR_CACHE_ENV, NearCacheConfig};

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use cpc_ports::{Bytes, Cache, CacheKey, Codec, KeyTtl, KvError, SingleFlight};

use self::local::{LocalTier, Lookup, Ticket};
use self::tracking::{TaskGuard, Tracker};
use crate::CacheManager;
use crate::error::classify;
use crate::metrics::{FlushCause, Instruments, operations};

operations!(NearOp { Get = "get", GetMany = "get_many" });

/// What a [`NearCache`]'s local tier has done since it was built ([`NearCache::stats`]); the same counts are
/// exported as metrics (`cpc_redis_near_cache_*`, see the crate's metrics table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct NearCacheStats {
    /// Reads answered by the local tier.
    pub hits: u64,
    /// Reads the local tier could not answer while tracking was live (read from Redis, then filled).
    pub misses: u64,
    /// Reads that skipped the local tier because tracking was down.
    pub bypassed: u64,
    /// Local entries dropped because the server said their key changed (another client's write, an expiry, an
    /// eviction, or a write of this near cache echoed back).
    pub pushed_invalidations: u64,
    /// Local entries dropped because this near cache wrote their key.
    pub own_invalidations: u64,
    /// Times the local tier was emptied whole (a server flush, a lost or regained invalidation connection, a
    /// `delete_prefix`).
    pub flushes: u64,
    /// Whether invalidations are being received now (the local tier is in use).
    pub tracking: bool,
    /// Entries in the local tier now.
    pub entries: u64,
    /// Bytes charged to the local tier now (each entry at least `max_bytes / max_entries`).
    pub bytes: u64,
}

/// A two-tier [`Cache`]: a bounded in-process tier (moka, least recently used evicted first, entry and byte
/// bounds, [`NearCacheConfig`]) in front of a Redis [`CacheManager`], whose key names, codec, TTL rules, value
/// limit and metrics it keeps. Reads are served from the local tier when it holds the key; a miss reads Redis
/// (`GET` and `PTTL` in one round trip) and fills the local tier for the shorter of
/// [`NearCacheConfig::max_local_ttl`] and the key's remaining TTL. Every write goes to Redis through the
/// `CacheManager` and then drops the key locally (`delete_prefix` empties the whole local tier). Counters
/// ([`Cache::increment_by`]), [`Cache::expire`] and [`Cache::get_and_delete_bytes`] run on Redis, atomic as
/// there; `get_or_set` ([`cpc_ports::CacheExt::get_or_set`]) shares the `CacheManager`'s single-flight group.
///
/// # Coherence
///
/// A dedicated RESP3 connection runs `CLIENT TRACKING ON BCAST PREFIX <namespace>cache:`: the server pushes an
/// `invalidate` message naming every key under the cache's prefix that any client changes (a write, a delete,
/// an expiry, an eviction), and a null one when the database is flushed. Each named key is dropped from the
/// local tier; a flush empties it.
///
/// Broadcast mode rather than the default (per-read) mode with `REDIRECT`: the reads then go over the shared
/// multiplexed connection as usual and need no `CLIENT TRACKING` of their own, which that connection (a
/// reconnecting `ConnectionManager` shared with the other adapters) could not keep across its reconnections;
/// and the server keeps no per-key table of who read what (its memory does not grow with the reads). The cost is
/// an invalidation for every change under the prefix, also of keys this process never read: fine for a cache,
/// whose writes are far fewer than its reads.
///
/// A write through this near cache comes back as an invalidation too (its connection is not the tracking one):
/// arriving after a later read filled the key, it drops that copy again, costing one more miss, never a stale
/// value.
///
/// A read that missed and fetched from Redis stores what it got only if no invalidation of that key (nor an
/// emptying of the tier) arrived since it started (a version per stripe of keys and a generation, checked
/// and stored under the locks invalidations take), so a value the server already declared stale never lands
/// in the local tier after its invalidation.
///
/// # Staleness bound
///
/// A local hit never returns a value older than the last write another client completed, beyond the time
/// the server takes to deliver that write's invalidation to this process (the network's one-way delay, usually
/// well under a millisecond on one network) and in any case beyond [`NearCacheConfig::max_local_ttl`]
/// (default 5 s), which bounds it even if the invalidation connection died silently (noticed within
/// [`NearCacheConfig::keepalive`] plus the response timeout). A write through this near cache is read back by
/// the next read here (read your writes).
///
/// # Losing the invalidation connection
///
/// When the connection is lost (a disconnection, a `PING` unanswered within the response timeout), the local tier
/// is emptied and bypassed: every read goes to Redis, nothing is stored locally, until a background task has
/// reconnected (at once, then with backoff from 50 ms to 1 s) and turned tracking on again; then the tier
/// (emptied once more) is used again. The task ends when the last clone of the near cache is dropped.
///
/// # Redis Cluster
///
/// Refused at construction with [`KvError::Unsupported`]: invalidations come from the node that owns each key,
/// so a near cache on a cluster needs a tracking connection per master, kept in step with slot migrations and
/// failovers. Use the [`CacheManager`] on its own there.
///
/// ```no_run
/// # async fn demo() -> Result<(), cpc_ports::KvError> {
/// use std::time::Duration;
/// use cpc_redis::{CacheManager, NearCache, NearCacheConfig, RedisConfig, RedisManager};
/// use cpc_ports::{CacheExt, CacheKey};
///
/// let manager = RedisManager::new(&RedisConfig::from_env()?).await?;
/// let remote = CacheManager::new(manager, Duration::from_secs(300));
/// let cache = NearCache::new(remote, NearCacheConfig::default().with_max_entries(50_000)).await?;
/// let key = CacheKey::new("product:42")?;
/// cache.set(&key, &"a lamp", None).await?;
/// let first: Option<String> = cache.get(&key).await?; // from Redis, now kept locally
/// let again: Option<String> = cache.get(&key).await?; // from the local tier, until someone writes the key
/// assert_eq!(cache.stats().hits, 1);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct NearCache {
    remote: CacheManager,
    config: NearCacheConfig,
    tier: Arc<LocalTier>,
    client_id: Arc<AtomicI64>,
    metrics: Arc<Instruments<NearOp>>,
    _task: Arc<TaskGuard>,
}

impl std::fmt::Debug for NearCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NearCache").field("config", &self.config).field("stats", &self.stats()).finish()
    }
}

impl NearCache {
    /// A near cache in front of `remote`: opens the invalidation connection and turns tracking on before it
    /// returns, so its local tier is in use at once.
    ///
    /// # Errors
    /// [`KvError::Unsupported`] on a Redis Cluster; [`KvError::Validation`] naming the field for a zero bound;
    /// the connection's error (unreachable, refused credentials, a server before Redis 6 without RESP3, an ACL
    /// user without `CLIENT`) if tracking cannot be turned on.
    pub async fn new(remote: CacheManager, config: NearCacheConfig) -> Result<Self, KvError> {
        if remote.manager().is_cluster() {
            return Err(KvError::Unsupported {
                backend: "redis",
                operation: "near cache",
                reason: "invalidations come from each key's master; use the CacheManager on a Redis Cluster",
            });
        }
        config.validate()?;
        let tier = Arc::new(LocalTier::new(&config));
        let client_id = Arc::new(AtomicI64::new(0));
        let prefix = remote.stored_key("");
        let tracker = Tracker::new(
            remote.manager().config(),
            prefix,
            config.keepalive,
            Arc::clone(&tier),
            Arc::clone(&client_id),
        )?;
        let first = tracker.connect().await?;
        tier.go_live();
        let task = TaskGuard(tokio::spawn(tracker.run(first)));
        Ok(Self { remote, config, tier, client_id, metrics: Instruments::new("near_cache"), _task: Arc::new(task) })
    }

    /// The Redis tier: the `CacheManager` every miss and every write goes to.
    pub fn remote(&self) -> &CacheManager {
        &self.remote
    }

    /// The local tier's bounds.
    pub fn config(&self) -> &NearCacheConfig {
        &self.config
    }

    /// What the local tier has done so far, and its size now.
    pub fn stats(&self) -> NearCacheStats {
        self.tier.stats()
    }

    /// Whether invalidations are being received, so the local tier is in use.
    pub fn is_tracking(&self) -> bool {
        self.tier.is_live()
    }

    /// The server's client id of the invalidation connection (`CLIENT ID`; it is named `cpc-near-cache` in
    /// `CLIENT LIST`), `None` while it is down. For operators and tests (`CLIENT KILL ID <id>`).
    pub fn tracking_client_id(&self) -> Option<i64> {
        Some(self.client_id.load(Ordering::Acquire)).filter(|id| *id > 0)
    }

    /// `GET` and `PTTL` of each key, in one round trip: the value and its remaining TTL (`None` when it has
    /// none; a key gone between the two commands reads as a zero TTL, so it is not kept locally).
    async fn fetch(&self, keys: &[&CacheKey]) -> Result<Vec<(Option<Bytes>, Option<Duration>)>, KvError> {
        let mut pipe = redis::pipe();
        for key in keys {
            let stored = self.remote.stored_key(key.as_str());
            pipe.cmd("GET").arg(&stored).cmd("PTTL").arg(&stored);
        }
        let mut conn = self.remote.manager().connection();
        let replies: Vec<(Option<Vec<u8>>, i64)> = pipe
            .query_async(&mut conn)
            .await
            .map_err(|e| classify(e, "near cache: get", self.remote.manager().config().response_timeout))?;
        if replies.len() != keys.len() {
            return Err(KvError::backend("redis", format!("{} keys read, {} answered", keys.len(), replies.len())));
        }
        Ok(replies
            .into_iter()
            .map(|(value, pttl)| {
                let ttl = match pttl {
                    -1 => None,
                    millis => Some(Duration::from_millis(u64::try_from(millis).unwrap_or(0))),
                };
                (value.map(Bytes::from), ttl)
            })
            .collect())
    }

    /// Keeps what a miss read, if its ticket still holds.
    fn keep(&self, ticket: Option<Ticket>, key: &CacheKey, found: &(Option<Bytes>, Option<Duration>)) {
        if let (Some(ticket), (Some(bytes), ttl)) = (ticket, found) {
            self.tier.fill(ticket, key.as_str(), bytes.clone(), *ttl);
        }
    }

    /// Runs a write on Redis, then drops `keys` locally whatever its outcome (a write that failed may have
    /// been applied).
    async fn written<T>(
        &self,
        keys: &[&CacheKey],
        write: impl Future<Output = Result<T, KvError>>,
    ) -> Result<T, KvError> {
        let result = write.await;
        for key in keys {
            self.tier.invalidate(key.as_str(), false);
        }
        result
    }
}

#[async_trait]
impl Cache for NearCache {
    async fn get_bytes(&self, key: &CacheKey) -> Result<Option<Bytes>, KvError> {
        self.metrics
            .run(NearOp::Get, async {
                let ticket = match self.tier.lookup(key.as_str()) {
                    Lookup::Hit(bytes) => return Ok(Some(bytes)),
                    Lookup::Bypass => return self.remote.get_bytes(key).await,
                    Lookup::Miss(ticket) => ticket,
                };
                let mut found = self.fetch(&[key]).await?;
                let found = found.pop().unwrap_or((None, None));
                self.keep(Some(ticket), key, &found);
                Ok(found.0)
            })
            .await
    }

    async fn set_bytes(&self, key: &CacheKey, value: Bytes, ttl: Option<Duration>) -> Result<(), KvError> {
        self.written(&[key], self.remote.set_bytes(key, value, ttl)).await
    }

    async fn set_if_absent_bytes(&self, key: &CacheKey, value: Bytes, ttl: Option<Duration>) -> Result<bool, KvError> {
        self.written(&[key], self.remote.set_if_absent_bytes(key, value, ttl)).await
    }

    async fn delete(&self, key: &CacheKey) -> Result<bool, KvError> {
        self.written(&[key], self.remote.delete(key)).await
    }

    async fn exists(&self, key: &CacheKey) -> Result<bool, KvError> {
        self.remote.exists(key).await
    }

    async fn ttl(&self, key: &CacheKey) -> Result<KeyTtl, KvError> {
        self.remote.ttl(key).await
    }

    async fn get_many_bytes(&self, keys: &[CacheKey]) -> Result<Vec<Option<Bytes>>, KvError> {
        self.metrics
            .run(NearOp::GetMany, async {
                let mut values = vec![None; keys.len()];
                let mut missed = Vec::new();
                for (slot, key) in keys.iter().enumerate() {
                    match self.tier.lookup(key.as_str()) {
                        Lookup::Hit(bytes) => values[slot] = Some(bytes),
                        Lookup::Miss(ticket) => missed.push((slot, Some(ticket))),
                        Lookup::Bypass => missed.push((slot, None)),
                    }
                }
                if missed.is_empty() {
                    return Ok(values);
                }
                let wanted: Vec<&CacheKey> = missed.iter().map(|(slot, _)| &keys[*slot]).collect();
                let found = self.fetch(&wanted).await?;
                for ((slot, ticket), found) in missed.into_iter().zip(found) {
                    self.keep(ticket, &keys[slot], &found);
                    values[slot] = found.0;
                }
                Ok(values)
            })
            .await
    }

    async fn set_many_bytes(&self, entries: Vec<(CacheKey, Bytes)>, ttl: Option<Duration>) -> Result<(), KvError> {
        let keys: Vec<CacheKey> = entries.iter().map(|(key, _)| key.clone()).collect();
        let keys: Vec<&CacheKey> = keys.iter().collect();
        self.written(&keys, self.remote.set_many_bytes(entries, ttl)).await
    }

    /// Deletes in Redis, then empties the whole local tier: the keys under `prefix` that reads in flight are
    /// about to store cannot be listed, only refused all at once.
    async fn delete_prefix(&self, prefix: &str) -> Result<u64, KvError> {
        let result = self.remote.delete_prefix(prefix).await;
        if !prefix.is_empty() {
            self.tier.clear(FlushCause::DeletePrefix);
        }
        result
    }

    async fn increment_by(&self, key: &CacheKey, delta: i64, ttl: Option<Duration>) -> Result<i64, KvError> {
        self.written(&[key], self.remote.increment_by(key, delta, ttl)).await
    }

    /// Sets the TTL in Redis, then drops the key locally: a local copy kept for the old TTL must not outlive a
    /// shorter new one.
    async fn expire(&self, key: &CacheKey, ttl: Option<Duration>) -> Result<bool, KvError> {
        self.written(&[key], self.remote.expire(key, ttl)).await
    }

    async fn get_and_delete_bytes(&self, key: &CacheKey) -> Result<Option<Bytes>, KvError> {
        self.written(&[key], self.remote.get_and_delete_bytes(key)).await
    }

    fn codec(&self) -> Codec {
        self.remote.codec()
    }

    fn max_value_bytes(&self) -> usize {
        self.remote.max_value_bytes()
    }

    /// The remote `CacheManager`'s group: both name the same entries, so a computation is shared by the near
    /// cache, its clones and the `CacheManager` it wraps.
    fn single_flight(&self) -> Option<Arc<SingleFlight<Bytes>>> {
        self.remote.single_flight()
    }

    fn compute_wait(&self) -> Duration {
        self.remote.compute_wait()
    }
}
