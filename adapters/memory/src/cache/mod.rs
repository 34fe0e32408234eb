//! [`InMemoryCache`]: the [`Cache`] port in process memory, with Redis semantics, bounded in entries and bytes.

mod bounds;
pub mod metrics;

use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use cpc_ports::cache::{DEFAULT_COMPUTE_WAIT, add_to_counter, decode_counter, encode_counter};
use cpc_ports::keys::MAX_KEY_BYTES;
use cpc_ports::{Cache, CacheKey, Codec, ConfigError, KeyTtl, KvError};
use moka::notification::RemovalCause;
use moka::ops::compute::Op;
use moka::policy::EvictionPolicy;
use tokio::time::Instant;

pub use bounds::{CacheBounds, MAX_BYTES_ENV, MAX_ENTRIES_ENV};
use metrics::Instruments;

/// The fewest writes between two sweeps of expired entries.
const SWEEP_MIN_WRITES: usize = 128;

/// The share of the capacity written (by weight) after which a write applies moka's pending writes itself:
/// 1/16, so the bounds are exceeded by at most that (and one entry) between two housekeepings.
const HOUSEKEEPING_SHARE: u64 = 16;

/// How many write locks the keys are spread over.
const WRITE_STRIPES: usize = 64;

/// A [`Cache`] in process memory that behaves like Redis, bounded like a Redis with `maxmemory-policy
/// allkeys-lru`: every key expires after its TTL (on tokio's clock, so tests can `tokio::time::pause()` and
/// `advance()`), `set_if_absent`, `increment_by`, `expire` and `get_and_delete` are atomic per key, `set_many`
/// checks every size before writing any, `delete_prefix` takes the prefix literally.
///
/// **Bounds.** At most [`CacheBounds::max_entries`] entries and [`CacheBounds::max_bytes`] bytes (keys and values;
/// 10,000 and 64 MiB by default, [`InMemoryCache::builder`]); past either, the least recently used entries are
/// evicted (the store is [moka](https://docs.rs/moka) with its LRU policy), and each eviction counts in
/// `cpc_memory_cache_evictions_total` ([`metrics`]). [`CacheBounds`] says how both bounds hold with moka's one
/// weighted capacity. moka applies writes to its eviction order in batches on the calling threads, and a write
/// applies them itself once 1/16 of the capacity was written since, so between two applications the store holds
/// at most 1/16 of the capacity (and one entry) more than the bounds; [`InMemoryCache::entry_count`] applies them
/// first. A value above [`Cache::max_value_bytes`] is refused with [`KvError::TooLarge`]: the smaller of
/// [`InMemoryCache::with_max_value_bytes`] (8 MiB by default) and `max_bytes` less 4 KiB (the longest key), so
/// a value within it fits under any key.
///
/// **Expiry.** An entry keeps its deadline on tokio's clock and reads as missing once it passed; moka's own
/// timers are not used, as they run on the real clock, which a paused tokio clock does not follow. Expired
/// entries are removed when touched, by a full scan (`delete_prefix`), and by a sweep after every `max(128,
/// live entries)` writes, so they do not hold the bounds for long under churn, without a background task.
///
/// Counters (`increment_by`) are decimal text, as in Redis; `get_or_set` runs in the process-wide
/// single-flight group ([`Cache::single_flight`] is `None`), its waiters bounded by
/// [`InMemoryCache::with_compute_wait`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use cpc_ports::{CacheExt, CacheKey};
/// use cpc_memory::InMemoryCache;
/// let cache = InMemoryCache::builder().default_ttl(Duration::from_secs(60)).max_entries(1_000).build()?;
/// let key = CacheKey::new("greeting")?;
/// cache.set(&key, "hello", None).await?;
/// assert_eq!(cache.get::<String>(&key).await?.as_deref(), Some("hello"));
/// assert_eq!(cache.entry_count(), 1);
/// # Ok(()) }
/// ```
pub struct InMemoryCache {
    store: moka::sync::Cache<String, Entry>,
    stripes: Box<[Mutex<()>]>,
    stripe_hasher: RandomState,
    bounds: CacheBounds,
    name: String,
    default_ttl: Duration,
    codec: Codec,
    max_value_bytes: usize,
    compute_wait: Duration,
    writes_since_sweep: AtomicUsize,
    weight_since_housekeeping: AtomicU64,
    live_after_sweep: AtomicUsize,
    metrics: Instruments,
}

/// A stored value and when it expires.
#[derive(Clone)]
struct Entry {
    value: Bytes,
    expires_at: Instant,
}

impl Entry {
    fn is_expired(&self, now: Instant) -> bool {
        now >= self.expires_at
    }
}

/// Builds an [`InMemoryCache`] with bounds other than the defaults: [`InMemoryCache::builder`].
#[derive(Debug, Clone)]
pub struct InMemoryCacheBuilder {
    default_ttl: Duration,
    bounds: CacheBounds,
    name: String,
}

impl InMemoryCacheBuilder {
    /// The TTL of entries written without one (default [`InMemoryCache::DEFAULT_TTL`], 300 s).
    #[must_use]
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = ttl;
        self
    }

    /// The most entries kept (default 10,000).
    #[must_use]
    pub fn max_entries(mut self, n: u64) -> Self {
        self.bounds.max_entries = n;
        self
    }

    /// The most bytes kept, keys and values together (default 64 MiB).
    #[must_use]
    pub fn max_bytes(mut self, n: u64) -> Self {
        self.bounds.max_bytes = n;
        self
    }

    /// Both bounds at once (e.g. [`CacheBounds::from_env`]).
    #[must_use]
    pub fn bounds(mut self, bounds: CacheBounds) -> Self {
        self.bounds = bounds;
        self
    }

    /// The `cache` label of this cache's [`metrics`] (default `"cache"`): give each cache of a process its own.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The cache, empty, with the JSON codec and an 8 MiB value limit (change them with
    /// [`InMemoryCache::with_codec`] and the other `with_` methods). Registers its [`metrics`] with the recorder
    /// in place.
    ///
    /// # Errors
    /// A [`ConfigError`] naming `max_entries` or `max_bytes` when one is 0.
    pub fn build(self) -> Result<InMemoryCache, ConfigError> {
        self.bounds.validate()?;
        Ok(self.assemble())
    }

    /// The cache, bounds unchecked (0 stores nothing).
    fn assemble(self) -> InMemoryCache {
        let metrics = Instruments::new(&self.name);
        let evictions = metrics.evictions.clone();
        let bounds = self.bounds;
        let store = moka::sync::Cache::builder()
            .max_capacity(self.bounds.capacity())
            .eviction_policy(EvictionPolicy::lru())
            .weigher(move |key: &String, entry: &Entry| bounds.weight((key.len() + entry.value.len()) as u64))
            .eviction_listener(move |_, _, cause| {
                if cause == RemovalCause::Size {
                    evictions.increment(1);
                }
            })
            .build();
        InMemoryCache {
            store,
            stripes: (0..WRITE_STRIPES).map(|_| Mutex::new(())).collect(),
            stripe_hasher: RandomState::new(),
            bounds: self.bounds,
            name: self.name,
            default_ttl: self.default_ttl,
            codec: Codec::json(),
            max_value_bytes: InMemoryCache::DEFAULT_MAX_VALUE_BYTES,
            compute_wait: DEFAULT_COMPUTE_WAIT,
            writes_since_sweep: AtomicUsize::new(0),
            weight_since_housekeeping: AtomicU64::new(0),
            live_after_sweep: AtomicUsize::new(0),
            metrics,
        }
    }
}

impl InMemoryCache {
    /// The default largest value: 8 MiB.
    pub const DEFAULT_MAX_VALUE_BYTES: usize = 8 * 1024 * 1024;
    /// The default TTL of [`InMemoryCache::default`]: 300 s.
    pub const DEFAULT_TTL: Duration = Duration::from_secs(300);

    /// A builder with the defaults: a 300 s default TTL, [`CacheBounds::default`] (10,000 entries, 64 MiB), the
    /// metrics label `"cache"`.
    pub fn builder() -> InMemoryCacheBuilder {
        InMemoryCacheBuilder {
            default_ttl: Self::DEFAULT_TTL,
            bounds: CacheBounds::default(),
            name: "cache".to_owned(),
        }
    }

    /// An empty cache with the default bounds (10,000 entries, 64 MiB) whose entries live for `default_ttl` when
    /// set without a TTL, with the JSON codec and an 8 MiB value limit. A zero `default_ttl` makes every write
    /// without an explicit TTL a [`KvError::Validation`], as a zero TTL is.
    pub fn new(default_ttl: Duration) -> Self {
        Self::builder().default_ttl(default_ttl).assemble()
    }

    /// The same cache, with `codec` for the typed methods of [`cpc_ports::CacheExt`].
    #[must_use]
    pub fn with_codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// The same cache, refusing values longer than `max` bytes with [`KvError::TooLarge`] (the bytes bound
    /// caps it too: [`Cache::max_value_bytes`] is the smaller of `max` and `max_bytes` less 4 KiB, the longest
    /// key).
    #[must_use]
    pub fn with_max_value_bytes(mut self, max: usize) -> Self {
        self.max_value_bytes = max;
        self
    }

    /// The same cache, whose [`CacheExt::get_or_set`](cpc_ports::CacheExt::get_or_set) callers wait at most
    /// `wait` for another caller's computation of the same key (10 s by default), then get
    /// [`KvError::Timeout`].
    #[must_use]
    pub fn with_compute_wait(mut self, wait: Duration) -> Self {
        self.compute_wait = wait;
        self
    }

    /// The TTL of entries written without one.
    pub fn default_ttl(&self) -> Duration {
        self.default_ttl
    }

    /// The bounds this cache keeps.
    pub fn bounds(&self) -> CacheBounds {
        self.bounds
    }

    /// How many entries are stored, counting expired ones not yet purged, once moka has applied the writes
    /// pending in its batches (it does so first; exact when no other thread writes meanwhile).
    pub fn entry_count(&self) -> u64 {
        self.store.run_pending_tasks();
        self.store.entry_count()
    }

    /// The weight stored, out of [`CacheBounds::capacity`] (each entry weighs [`CacheBounds::weight`] of its key
    /// and value bytes), after applying the pending writes as [`InMemoryCache::entry_count`] does.
    pub fn weighted_size(&self) -> u64 {
        self.store.run_pending_tasks();
        self.store.weighted_size()
    }

    /// Test aid: [`InMemoryCache::entry_count`] as a `usize`. Lets a test show that expired entries do not pile
    /// up.
    pub fn len(&self) -> usize {
        usize::try_from(self.entry_count()).unwrap_or(usize::MAX)
    }

    /// Test aid: whether nothing is stored, not even expired entries awaiting purge.
    pub fn is_empty(&self) -> bool {
        self.entry_count() == 0
    }

    /// When an entry written now with `ttl` (or the default) expires.
    fn expiry(&self, ttl: Option<Duration>, now: Instant) -> Result<Instant, KvError> {
        let ttl = ttl.unwrap_or(self.default_ttl);
        if ttl.is_zero() {
            return Err(KvError::invalid("ttl", "must be greater than zero"));
        }
        now.checked_add(ttl).ok_or_else(|| KvError::invalid("ttl", "is too large to represent"))
    }

    /// Refuses a value above [`Cache::max_value_bytes`], or one the bytes bound cannot hold with its key (only
    /// with a `max_bytes` under 4 KiB); else the bytes of key and value.
    fn check_size(&self, key: &CacheKey, value: &Bytes) -> Result<usize, KvError> {
        let (max, bytes) = (self.max_value_bytes(), key.as_str().len() + value.len());
        if value.len() > max || bytes as u64 > self.bounds.max_entry_bytes() {
            return Err(KvError::TooLarge { size: value.len(), max });
        }
        Ok(bytes)
    }

    /// The live entry under `key`, removing it if it expired.
    fn live(&self, key: &str, now: Instant) -> Option<Entry> {
        let entry = self.store.get(key)?;
        if entry.is_expired(now) {
            self.remove_if_expired(key, now);
            return None;
        }
        Some(entry)
    }

    /// The write lock of `key`'s stripe: every write of a key holds it, so a read-modify-write of one key
    /// (`increment_by`, `set_if_absent`...) never interleaves with another write of it.
    fn write_lock(&self, key: &str) -> MutexGuard<'_, ()> {
        let stripe = self.stripe_hasher.hash_one(key) as usize % self.stripes.len();
        self.stripes[stripe].lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Removes `key` if it holds an expired entry (atomically: a fresh write in between stays).
    fn remove_if_expired(&self, key: &str, now: Instant) {
        self.compute(key, now, |_| Op::Nop);
    }

    /// Runs `f` on the live entry under `key` (`None` if missing or expired) while no other write of `key`
    /// runs, and applies the [`Op`] it returns; an expired entry is removed when `f` leaves it alone.
    fn compute(&self, key: &str, now: Instant, f: impl FnOnce(Option<&Entry>) -> Op<Entry>) {
        let _write = self.write_lock(key);
        let found = self.store.get(key);
        match (f(found.as_ref().filter(|e| !e.is_expired(now))), found) {
            (Op::Put(entry), _) => self.store.insert(key.to_owned(), entry),
            (Op::Remove, Some(_)) => self.store.invalidate(key),
            (Op::Nop, Some(e)) if e.is_expired(now) => self.store.invalidate(key),
            _ => {}
        }
    }

    /// Stores `value` under `key` until `expires_at`, replacing anything there.
    fn put(&self, key: &CacheKey, value: Bytes, expires_at: Instant) {
        let _write = self.write_lock(key.as_str());
        self.store.insert(key.as_str().to_owned(), Entry { value, expires_at });
    }

    /// After each write of `bytes` (key and value): applies moka's pending writes once 1/16 of the capacity was
    /// written since the last time, sweeps expired entries every `max(128, live after the last sweep)` writes,
    /// and reports the store's size.
    fn wrote(&self, bytes: usize, now: Instant) {
        let weight = u64::from(self.bounds.weight(bytes as u64));
        let pending = self.weight_since_housekeeping.fetch_add(weight, Ordering::Relaxed) + weight;
        let due = self.bounds.capacity() / HOUSEKEEPING_SHARE;
        if pending > due && self.weight_since_housekeeping.swap(0, Ordering::Relaxed) > due {
            self.store.run_pending_tasks();
        }
        let writes = self.writes_since_sweep.fetch_add(1, Ordering::Relaxed) + 1;
        let due = SWEEP_MIN_WRITES.max(self.live_after_sweep.load(Ordering::Relaxed));
        // `swap` lets one of the writers that reach the mark at once sweep.
        if writes >= due && self.writes_since_sweep.swap(0, Ordering::Relaxed) >= due {
            let mut live = 0;
            for (key, entry) in &self.store {
                if entry.is_expired(now) {
                    self.remove_if_expired(&key, now);
                } else {
                    live += 1;
                }
            }
            self.live_after_sweep.store(live, Ordering::Relaxed);
        }
        self.metrics.observe(self.store.entry_count(), self.store.weighted_size(), self.bounds.capacity());
    }
}

impl Default for InMemoryCache {
    /// A cache with a 300 s default TTL, the default bounds, the JSON codec and an 8 MiB value limit.
    fn default() -> Self {
        Self::new(Self::DEFAULT_TTL)
    }
}

impl fmt::Debug for InMemoryCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryCache")
            .field("name", &self.name)
            .field("entries", &self.store.entry_count())
            .field("bounds", &self.bounds)
            .field("default_ttl", &self.default_ttl)
            .field("codec", &self.codec)
            .field("max_value_bytes", &self.max_value_bytes)
            .field("compute_wait", &self.compute_wait)
            .finish()
    }
}

#[async_trait]
impl Cache for InMemoryCache {
    async fn get_bytes(&self, key: &CacheKey) -> Result<Option<Bytes>, KvError> {
        Ok(self.live(key.as_str(), Instant::now()).map(|e| e.value))
    }

    async fn set_bytes(&self, key: &CacheKey, value: Bytes, ttl: Option<Duration>) -> Result<(), KvError> {
        let now = Instant::now();
        let expires_at = self.expiry(ttl, now)?;
        let bytes = self.check_size(key, &value)?;
        self.put(key, value, expires_at);
        self.wrote(bytes, now);
        Ok(())
    }

    async fn set_if_absent_bytes(&self, key: &CacheKey, value: Bytes, ttl: Option<Duration>) -> Result<bool, KvError> {
        let now = Instant::now();
        let expires_at = self.expiry(ttl, now)?;
        let bytes = self.check_size(key, &value)?;
        let mut stored = false;
        self.compute(key.as_str(), now, |live| {
            if live.is_some() {
                return Op::Nop;
            }
            stored = true;
            Op::Put(Entry { value, expires_at })
        });
        if stored {
            self.wrote(bytes, now);
        }
        Ok(stored)
    }

    async fn delete(&self, key: &CacheKey) -> Result<bool, KvError> {
        let now = Instant::now();
        let mut existed = false;
        self.compute(key.as_str(), now, |live| {
            existed = live.is_some();
            if existed { Op::Remove } else { Op::Nop }
        });
        Ok(existed)
    }

    async fn exists(&self, key: &CacheKey) -> Result<bool, KvError> {
        Ok(self.live(key.as_str(), Instant::now()).is_some())
    }

    async fn ttl(&self, key: &CacheKey) -> Result<KeyTtl, KvError> {
        let now = Instant::now();
        Ok(match self.live(key.as_str(), now) {
            Some(e) => KeyTtl::ExpiresIn(e.expires_at.saturating_duration_since(now)),
            None => KeyTtl::Missing,
        })
    }

    async fn get_many_bytes(&self, keys: &[CacheKey]) -> Result<Vec<Option<Bytes>>, KvError> {
        let now = Instant::now();
        Ok(keys.iter().map(|k| self.live(k.as_str(), now).map(|e| e.value)).collect())
    }

    async fn set_many_bytes(&self, entries: Vec<(CacheKey, Bytes)>, ttl: Option<Duration>) -> Result<(), KvError> {
        let now = Instant::now();
        let expires_at = self.expiry(ttl, now)?;
        for (key, value) in &entries {
            self.check_size(key, value)?;
        }
        for (key, value) in entries {
            let bytes = key.as_str().len() + value.len();
            self.put(&key, value, expires_at);
            self.wrote(bytes, now);
        }
        Ok(())
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64, KvError> {
        if prefix.is_empty() {
            return Err(KvError::invalid("prefix", "must not be empty"));
        }
        let now = Instant::now();
        let mut deleted = 0;
        for (key, entry) in &self.store {
            if entry.is_expired(now) {
                self.remove_if_expired(&key, now);
            } else if key.starts_with(prefix) {
                self.compute(&key, now, |live| {
                    deleted += u64::from(live.is_some());
                    Op::Remove
                });
            }
        }
        Ok(deleted)
    }

    async fn increment_by(&self, key: &CacheKey, delta: i64, ttl: Option<Duration>) -> Result<i64, KvError> {
        let now = Instant::now();
        let expires_at = self.expiry(ttl, now)?;
        let mut outcome = None;
        self.compute(key.as_str(), now, |live| {
            let step = match live {
                Some(entry) => {
                    decode_counter(&entry.value).and_then(|n| add_to_counter(n, delta)).map_err(KvError::from)
                }
                None => Ok(delta),
            }
            .and_then(|sum| {
                let value = encode_counter(sum);
                let bytes = self.check_size(key, &value)?;
                Ok((sum, value, bytes))
            });
            match step {
                Ok((sum, value, bytes)) => {
                    outcome = Some(Ok((sum, bytes)));
                    Op::Put(Entry { value, expires_at: live.map_or(expires_at, |e| e.expires_at) })
                }
                Err(e) => {
                    outcome = Some(Err(e));
                    Op::Nop
                }
            }
        });
        let (sum, bytes) =
            outcome.unwrap_or_else(|| Err(KvError::backend("memory", "the counter was not computed")))?;
        self.wrote(bytes, now);
        Ok(sum)
    }

    async fn expire(&self, key: &CacheKey, ttl: Option<Duration>) -> Result<bool, KvError> {
        let now = Instant::now();
        let expires_at = self.expiry(ttl, now)?;
        let mut found = false;
        self.compute(key.as_str(), now, |live| match live {
            Some(entry) => {
                found = true;
                Op::Put(Entry { value: entry.value.clone(), expires_at })
            }
            None => Op::Nop,
        });
        Ok(found)
    }

    async fn get_and_delete_bytes(&self, key: &CacheKey) -> Result<Option<Bytes>, KvError> {
        let now = Instant::now();
        let mut taken = None;
        self.compute(key.as_str(), now, |live| {
            taken = live.map(|e| e.value.clone());
            if taken.is_some() { Op::Remove } else { Op::Nop }
        });
        Ok(taken)
    }

    fn codec(&self) -> Codec {
        self.codec.clone()
    }

    /// The smaller of [`InMemoryCache::with_max_value_bytes`] and what the bytes bound holds beside the longest
    /// key ([`MAX_KEY_BYTES`]), so that a value within it fits under any key.
    fn max_value_bytes(&self) -> usize {
        let room = self.bounds.max_entry_bytes().saturating_sub(MAX_KEY_BYTES as u64);
        self.max_value_bytes.min(usize::try_from(room).unwrap_or(usize::MAX))
    }

    fn compute_wait(&self) -> Duration {
        self.compute_wait
    }
}
