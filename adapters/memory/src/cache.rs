//! [`InMemoryCache`]: the [`Cache`] port in process memory, with Redis semantics.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use cpc_ports::cache::{DEFAULT_COMPUTE_WAIT, add_to_counter, decode_counter, encode_counter};
use cpc_ports::{Cache, CacheKey, Codec, KeyTtl, KvError};
use tokio::time::Instant;

/// The fewest writes between two sweeps of expired entries.
const SWEEP_MIN_WRITES: usize = 128;

/// A [`Cache`] in process memory that behaves like Redis: every key expires after its TTL (on tokio's clock, so
/// tests can `tokio::time::pause()` and `advance()`), `set_if_absent` is atomic (`SET NX`), `set_many` writes all
/// or nothing (`MSET` after size checks), `delete_prefix` takes the prefix literally.
///
/// Expired entries are removed lazily when touched, and by a sweep after every `max(128, live entries)` writes,
/// so memory stays bounded under churn without a background task. Counters (`increment_by`) are decimal text,
/// as in Redis; `get_or_set` runs in the process-wide single-flight group ([`Cache::single_flight`] is `None`),
/// its waiters bounded by [`InMemoryCache::with_compute_wait`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cpc_ports::KvError> {
/// use std::time::Duration;
/// use cpc_ports::{CacheExt, CacheKey};
/// use cpc_memory::InMemoryCache;
/// let cache = InMemoryCache::new(Duration::from_secs(60));
/// let key = CacheKey::new("greeting")?;
/// cache.set(&key, "hello", None).await?;
/// assert_eq!(cache.get::<String>(&key).await?.as_deref(), Some("hello"));
/// # Ok(()) }
/// ```
pub struct InMemoryCache {
    state: Mutex<State>,
    default_ttl: Duration,
    codec: Codec,
    max_value_bytes: usize,
    compute_wait: Duration,
}

#[derive(Default)]
struct State {
    entries: HashMap<String, Entry>,
    writes_since_sweep: usize,
    live_after_sweep: usize,
}

struct Entry {
    value: Bytes,
    expires_at: Instant,
}

impl Entry {
    fn is_expired(&self, now: Instant) -> bool {
        now >= self.expires_at
    }
}

impl State {
    /// The live entry under `key`, removing it first if it expired.
    fn live(&mut self, key: &str, now: Instant) -> Option<&Entry> {
        if self.entries.get(key).is_some_and(|e| e.is_expired(now)) {
            self.entries.remove(key);
        }
        self.entries.get(key)
    }

    fn write(&mut self, key: &str, value: Bytes, expires_at: Instant, now: Instant) {
        self.entries.insert(key.to_owned(), Entry { value, expires_at });
        self.writes_since_sweep += 1;
        if self.writes_since_sweep >= self.live_after_sweep.max(SWEEP_MIN_WRITES) {
            self.entries.retain(|_, e| !e.is_expired(now));
            self.writes_since_sweep = 0;
            self.live_after_sweep = self.entries.len();
        }
    }
}

impl InMemoryCache {
    /// The default largest value: 8 MiB.
    pub const DEFAULT_MAX_VALUE_BYTES: usize = 8 * 1024 * 1024;
    /// The default TTL of [`InMemoryCache::default`]: 300 s.
    pub const DEFAULT_TTL: Duration = Duration::from_secs(300);

    /// An empty cache whose entries live for `default_ttl` when set without a TTL, with the JSON codec and an
    /// 8 MiB value limit. A zero `default_ttl` makes every write without an explicit TTL a
    /// [`KvError::Validation`], as a zero TTL is.
    pub fn new(default_ttl: Duration) -> Self {
        Self {
            state: Mutex::new(State::default()),
            default_ttl,
            codec: Codec::json(),
            max_value_bytes: Self::DEFAULT_MAX_VALUE_BYTES,
            compute_wait: DEFAULT_COMPUTE_WAIT,
        }
    }

    /// The same cache, with `codec` for the typed methods of [`cpc_ports::CacheExt`].
    #[must_use]
    pub fn with_codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// The same cache, refusing values longer than `max` bytes with [`KvError::TooLarge`].
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

    /// Test aid: how many entries are stored, counting expired ones not yet purged. Lets a test show that
    /// expired entries do not pile up.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Test aid: whether nothing is stored, not even expired entries awaiting purge.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// When an entry written now with `ttl` (or the default) expires.
    fn expiry(&self, ttl: Option<Duration>, now: Instant) -> Result<Instant, KvError> {
        let ttl = ttl.unwrap_or(self.default_ttl);
        if ttl.is_zero() {
            return Err(KvError::invalid("ttl", "must be greater than zero"));
        }
        now.checked_add(ttl).ok_or_else(|| KvError::invalid("ttl", "is too large to represent"))
    }

    fn check_size(&self, value: &Bytes) -> Result<(), KvError> {
        if value.len() > self.max_value_bytes {
            return Err(KvError::TooLarge { size: value.len(), max: self.max_value_bytes });
        }
        Ok(())
    }
}

impl Default for InMemoryCache {
    /// A cache with a 300 s default TTL, the JSON codec and an 8 MiB value limit.
    fn default() -> Self {
        Self::new(Self::DEFAULT_TTL)
    }
}

impl fmt::Debug for InMemoryCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryCache")
            .field("entries", &self.len())
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
        let now = Instant::now();
        Ok(self.lock().live(key.as_str(), now).map(|e| e.value.clone()))
    }

    async fn set_bytes(&self, key: &CacheKey, value: Bytes, ttl: Option<Duration>) -> Result<(), KvError> {
        let now = Instant::now();
        let expires_at = self.expiry(ttl, now)?;
        self.check_size(&value)?;
        self.lock().write(key.as_str(), value, expires_at, now);
        Ok(())
    }

    async fn set_if_absent_bytes(&self, key: &CacheKey, value: Bytes, ttl: Option<Duration>) -> Result<bool, KvError> {
        let now = Instant::now();
        let expires_at = self.expiry(ttl, now)?;
        self.check_size(&value)?;
        let mut state = self.lock();
        if state.live(key.as_str(), now).is_some() {
            return Ok(false);
        }
        state.write(key.as_str(), value, expires_at, now);
        Ok(true)
    }

    async fn delete(&self, key: &CacheKey) -> Result<bool, KvError> {
        let now = Instant::now();
        Ok(self.lock().entries.remove(key.as_str()).is_some_and(|e| !e.is_expired(now)))
    }

    async fn exists(&self, key: &CacheKey) -> Result<bool, KvError> {
        let now = Instant::now();
        Ok(self.lock().live(key.as_str(), now).is_some())
    }

    async fn ttl(&self, key: &CacheKey) -> Result<KeyTtl, KvError> {
        let now = Instant::now();
        Ok(match self.lock().live(key.as_str(), now) {
            Some(e) => KeyTtl::ExpiresIn(e.expires_at.saturating_duration_since(now)),
            None => KeyTtl::Missing,
        })
    }

    async fn get_many_bytes(&self, keys: &[CacheKey]) -> Result<Vec<Option<Bytes>>, KvError> {
        let now = Instant::now();
        let mut state = self.lock();
        Ok(keys.iter().map(|k| state.live(k.as_str(), now).map(|e| e.value.clone())).collect())
    }

    async fn set_many_bytes(&self, entries: Vec<(CacheKey, Bytes)>, ttl: Option<Duration>) -> Result<(), KvError> {
        let now = Instant::now();
        let expires_at = self.expiry(ttl, now)?;
        for (_, value) in &entries {
            self.check_size(value)?;
        }
        let mut state = self.lock();
        for (key, value) in entries {
            state.write(key.as_str(), value, expires_at, now);
        }
        Ok(())
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64, KvError> {
        if prefix.is_empty() {
            return Err(KvError::invalid("prefix", "must not be empty"));
        }
        let now = Instant::now();
        let mut deleted = 0;
        self.lock().entries.retain(|key, entry| {
            if entry.is_expired(now) {
                return false;
            }
            let hit = key.starts_with(prefix);
            deleted += u64::from(hit);
            !hit
        });
        Ok(deleted)
    }

    async fn increment_by(&self, key: &CacheKey, delta: i64, ttl: Option<Duration>) -> Result<i64, KvError> {
        let now = Instant::now();
        let expires_at = self.expiry(ttl, now)?;
        let mut state = self.lock();
        let (sum, expires_at) = match state.live(key.as_str(), now) {
            Some(entry) => (add_to_counter(decode_counter(&entry.value)?, delta)?, entry.expires_at),
            None => (delta, expires_at),
        };
        state.write(key.as_str(), encode_counter(sum), expires_at, now);
        Ok(sum)
    }

    async fn expire(&self, key: &CacheKey, ttl: Option<Duration>) -> Result<bool, KvError> {
        let now = Instant::now();
        let expires_at = self.expiry(ttl, now)?;
        let mut state = self.lock();
        if state.live(key.as_str(), now).is_none() {
            return Ok(false);
        }
        if let Some(entry) = state.entries.get_mut(key.as_str()) {
            entry.expires_at = expires_at;
        }
        Ok(true)
    }

    async fn get_and_delete_bytes(&self, key: &CacheKey) -> Result<Option<Bytes>, KvError> {
        let now = Instant::now();
        Ok(self.lock().entries.remove(key.as_str()).filter(|e| !e.is_expired(now)).map(|e| e.value))
    }

    fn codec(&self) -> Codec {
        self.codec
    }

    fn max_value_bytes(&self) -> usize {
        self.max_value_bytes
    }

    fn compute_wait(&self) -> Duration {
        self.compute_wait
    }
}
