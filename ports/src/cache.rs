//! The [`Cache`] port: bytes under keys, with a time to live; counters; single-flight `get_or_set`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{CacheKey, Codec, CodecError, Joined, KvError, SingleFlight};

/// How long, by default, a [`CacheExt::get_or_set`] caller waits for another caller's computation of the same
/// key before it gives up with [`KvError::Timeout`]: 10 s ([`Cache::compute_wait`]).
pub const DEFAULT_COMPUTE_WAIT: Duration = Duration::from_secs(10);

/// The single-flight group of the caches whose [`Cache::single_flight`] is `None`: their flights are keyed by the
/// cache's address and the key, so two caches never share one.
static FALLBACK_FLIGHTS: LazyLock<SingleFlight<Bytes>> = LazyLock::new(SingleFlight::new);

/// The longest decimal `i64` (`-9223372036854775808`).
const MAX_COUNTER_LEN: usize = 20;

/// Reads a counter as every [`Cache`] stores it: a decimal `i64` in ASCII, `0` or an optional `-` followed by
/// digits without a leading zero (what Redis `INCRBY` accepts and writes).
///
/// # Errors
/// [`CodecError::NotAnInteger`] for anything else: a `+` sign, spaces, leading zeros, `-0`, other bytes, a
/// number outside `i64`, an empty value.
///
/// ```
/// use cpc_ports::cache::{decode_counter, encode_counter};
/// assert_eq!(decode_counter(b"-42"), Ok(-42));
/// assert_eq!(decode_counter(&encode_counter(i64::MIN)), Ok(i64::MIN));
/// assert!(decode_counter(b"007").is_err());
/// assert!(decode_counter(b"9223372036854775808").is_err());
/// ```
pub fn decode_counter(bytes: &[u8]) -> Result<i64, CodecError> {
    let digits = bytes.strip_prefix(b"-").unwrap_or(bytes);
    let well_formed = bytes.len() <= MAX_COUNTER_LEN
        && !digits.is_empty()
        && digits.iter().all(u8::is_ascii_digit)
        && (digits[0] != b'0' || bytes == b"0");
    if !well_formed {
        return Err(CodecError::NotAnInteger);
    }
    std::str::from_utf8(bytes).ok().and_then(|text| text.parse().ok()).ok_or(CodecError::NotAnInteger)
}

/// A counter as every [`Cache`] stores it: its decimal ASCII text (`b"42"`), as Redis `INCRBY` writes it.
pub fn encode_counter(value: i64) -> Bytes {
    Bytes::from(value.to_string())
}

/// `current + delta`, or [`CodecError::CounterOverflow`]: the step of [`Cache::increment_by`] for caches that
/// add in process.
///
/// # Errors
/// [`CodecError::CounterOverflow`] when the sum is outside `i64`.
pub fn add_to_counter(current: i64, delta: i64) -> Result<i64, CodecError> {
    current.checked_add(delta).ok_or(CodecError::CounterOverflow)
}

/// How long a key has left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyTtl {
    /// No such key (or it already expired).
    Missing,
    /// The key exists and never expires (written by something that set no TTL).
    Persistent,
    /// The key expires after this long.
    ExpiresIn(Duration),
}

/// A key-value cache whose entries expire. The byte-level core; [`CacheExt`] adds typed access through the
/// cache's [`Codec`].
///
/// Implementations: Redis (`CacheManager` in `cpc-adapters`), PostgreSQL (`PgCache`), in-process (`cpc-adapters`,
/// feature `memory`; re-exported by `cpc-testkit`).
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait Cache: Send + Sync + 'static {
    /// Returns the bytes stored under `key`.
    ///
    /// MUST return `Ok(None)` for a key that was never set, was deleted, or whose TTL has passed.
    /// MUST return exactly the bytes last stored, however odd the key (unicode, spaces, newlines, 4 KiB).
    async fn get_bytes(&self, key: &CacheKey) -> Result<Option<Bytes>, KvError>;

    /// Stores `value` under `key`, replacing any value, for `ttl` or, when `None`, the cache's default TTL.
    ///
    /// MUST refuse a zero `ttl` with [`KvError::Validation`]. MUST refuse a value longer than
    /// [`Cache::max_value_bytes`] with [`KvError::TooLarge`] and leave the stored value unchanged.
    /// Empty values MUST be stored and read back as empty (not as missing).
    async fn set_bytes(&self, key: &CacheKey, value: Bytes, ttl: Option<Duration>) -> Result<(), KvError>;

    /// Stores `value` only if `key` holds nothing; returns whether it stored.
    ///
    /// MUST be atomic: of many concurrent callers on one missing key, exactly one gets `true`.
    /// Same TTL and size rules as [`Cache::set_bytes`].
    async fn set_if_absent_bytes(&self, key: &CacheKey, value: Bytes, ttl: Option<Duration>) -> Result<bool, KvError>;

    /// Removes `key`; returns whether it existed.
    async fn delete(&self, key: &CacheKey) -> Result<bool, KvError>;

    /// Whether `key` holds a live value. MUST agree with [`Cache::get_bytes`].
    async fn exists(&self, key: &CacheKey) -> Result<bool, KvError>;

    /// How long `key` has left. MUST be [`KeyTtl::Missing`] for absent or expired keys, and never more than the
    /// TTL it was set with.
    async fn ttl(&self, key: &CacheKey) -> Result<KeyTtl, KvError>;

    /// Reads many keys in one round trip; the result has one entry per key, in order.
    ///
    /// MUST return `Ok(vec![])` for no keys. Missing keys MUST be `None` in their place.
    async fn get_many_bytes(&self, keys: &[CacheKey]) -> Result<Vec<Option<Bytes>>, KvError>;

    /// Writes many entries in one round trip, all with the same TTL rule as [`Cache::set_bytes`].
    ///
    /// MUST check every value's size before writing any: one oversized value means nothing is written.
    async fn set_many_bytes(&self, entries: Vec<(CacheKey, Bytes)>, ttl: Option<Duration>) -> Result<(), KvError>;

    /// Deletes every key that starts with `prefix` (taken literally: `*` or `?` in it match only themselves);
    /// returns how many were deleted.
    ///
    /// MUST refuse an empty prefix with [`KvError::Validation`] (use a namespace, not a flush).
    /// MUST NOT touch keys that merely contain the prefix elsewhere. Implementations over Redis use SCAN, never KEYS.
    async fn delete_prefix(&self, prefix: &str) -> Result<u64, KvError>;

    /// Adds `delta` to the counter under `key` and returns the new value.
    ///
    /// MUST be atomic: concurrent increments of one key all count. A missing (or expired) key counts as 0 and
    /// is created with `ttl` or, when `None`, the cache's default TTL (a zero `ttl` is refused with
    /// [`KvError::Validation`], as for [`Cache::set_bytes`], and nothing is written); an existing key keeps its
    /// TTL. Counters are stored as decimal ASCII text on every implementation ([`encode_counter`]), so
    /// [`Cache::get_bytes`] reads `b"42"` and a counter can be set with `set_bytes(key, "42")`.
    /// A stored value that is not a decimal `i64` ([`decode_counter`]) MUST be
    /// [`KvError::Codec`]`(`[`CodecError::NotAnInteger`]`)`, a sum outside `i64`
    /// [`KvError::Codec`]`(`[`CodecError::CounterOverflow`]`)`; either way the value is left unchanged.
    /// Not idempotent: a retried call counts twice.
    async fn increment_by(&self, key: &CacheKey, delta: i64, ttl: Option<Duration>) -> Result<i64, KvError>;

    /// Sets the TTL of a live `key` to `ttl` or, when `None`, the cache's default TTL, leaving its value alone;
    /// returns whether the key was there.
    ///
    /// MUST return `false` (and create nothing) for a missing or expired key. MUST refuse a zero `ttl` with
    /// [`KvError::Validation`]. [`Cache::ttl`] afterwards reports at most `ttl`.
    async fn expire(&self, key: &CacheKey, ttl: Option<Duration>) -> Result<bool, KvError>;

    /// Removes `key` and returns the value it held (`None` if it was missing or expired).
    ///
    /// MUST be atomic: of many concurrent callers on one key, exactly one gets the value. Not idempotent.
    async fn get_and_delete_bytes(&self, key: &CacheKey) -> Result<Option<Bytes>, KvError>;

    /// The codec the typed methods of [`CacheExt`] use.
    fn codec(&self) -> Codec;

    /// The largest value, in bytes, this cache stores.
    fn max_value_bytes(&self) -> usize;

    /// The single-flight group [`CacheExt::get_or_set`] runs its computations in. An implementation whose clones
    /// share one store should return one group shared by its clones (so a computation is not run once per
    /// clone). `None` (the default) uses a process-wide group, keyed by this cache's address and the key: single
    /// flight per cache value, so a cache written by a third party gets it too.
    fn single_flight(&self) -> Option<Arc<SingleFlight<Bytes>>> {
        None
    }

    /// How long a [`CacheExt::get_or_set`] caller waits for another caller's computation of the same key before
    /// it gets [`KvError::Timeout`]. [`DEFAULT_COMPUTE_WAIT`] (10 s) unless the implementation is configured
    /// otherwise.
    fn compute_wait(&self) -> Duration {
        DEFAULT_COMPUTE_WAIT
    }
}

/// Typed access to any [`Cache`], through its [`Codec`]. Blanket-implemented, `dyn Cache` included.
///
/// ```
/// # async fn demo(cache: &dyn cpc_ports::Cache) -> Result<(), cpc_ports::KvError> {
/// use cpc_ports::{CacheExt, CacheKey};
/// let key = CacheKey::new("balance:42")?;
/// cache.set(&key, &1250_i64, None).await?;
/// let balance: Option<i64> = cache.get(&key).await?;
/// # Ok(()) }
/// ```
#[async_trait]
pub trait CacheExt: Cache {
    /// Reads and decodes a value. Foreign or garbled bytes are a [`KvError::Codec`], never a panic.
    async fn get<T: DeserializeOwned + Send>(&self, key: &CacheKey) -> Result<Option<T>, KvError> {
        match self.get_bytes(key).await? {
            Some(bytes) => Ok(Some(self.codec().decode(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Encodes and stores a value for `ttl` or the default TTL.
    async fn set<T: Serialize + Sync + ?Sized>(
        &self,
        key: &CacheKey,
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<(), KvError> {
        let bytes = self.codec().encode(value)?;
        self.set_bytes(key, bytes, ttl).await
    }

    /// Encodes and stores a value unless the key is taken; returns whether it stored.
    async fn set_if_absent<T: Serialize + Sync + ?Sized>(
        &self,
        key: &CacheKey,
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<bool, KvError> {
        let bytes = self.codec().encode(value)?;
        self.set_if_absent_bytes(key, bytes, ttl).await
    }

    /// Reads and decodes many values in one round trip.
    async fn get_many<T: DeserializeOwned + Send>(&self, keys: &[CacheKey]) -> Result<Vec<Option<T>>, KvError> {
        let codec = self.codec();
        self.get_many_bytes(keys)
            .await?
            .into_iter()
            .map(|b| b.map(|b| codec.decode(&b)).transpose().map_err(KvError::from))
            .collect()
    }

    /// Encodes and stores many values in one round trip.
    async fn set_many<T: Serialize + Sync>(
        &self,
        entries: &[(CacheKey, T)],
        ttl: Option<Duration>,
    ) -> Result<(), KvError> {
        let codec = self.codec();
        let encoded =
            entries.iter().map(|(k, v)| Ok((k.clone(), codec.encode(v)?))).collect::<Result<Vec<_>, KvError>>()?;
        self.set_many_bytes(encoded, ttl).await
    }

    /// Reads many values into a map keyed by the keys found.
    async fn get_map<T: DeserializeOwned + Send>(&self, keys: &[CacheKey]) -> Result<HashMap<CacheKey, T>, KvError> {
        let values = self.get_many::<T>(keys).await?;
        Ok(keys.iter().cloned().zip(values).filter_map(|(k, v)| v.map(|v| (k, v))).collect())
    }

    /// Returns the value under `key`, or computes it with `compute`, stores it for `ttl` (or the default TTL)
    /// and returns it.
    ///
    /// Single flight: of many concurrent calls on one missing key in this process (on this cache, or on clones
    /// sharing its [`Cache::single_flight`] group), one, the leader, reads again, runs `compute` and stores the
    /// value; the others wait for it and get its outcome without reading the store again: the value (decoded
    /// from the bytes the leader stored), or the leader's error, so a failing `compute` runs once, not once per
    /// waiter, and every waiter gets the same error. Across processes it is once per process.
    ///
    /// A waiter waits at most [`Cache::compute_wait`] (default [`DEFAULT_COMPUTE_WAIT`]) and then gets
    /// [`KvError::Timeout`] (operation [`SingleFlight::WAIT_OPERATION`]); the leader is not cut short. A leader
    /// that is cancelled hands nothing out: a waiter computes in its place.
    ///
    /// Errors from `compute` are returned as they are and nothing is stored (the next call computes again). A
    /// zero `ttl` is a [`KvError::Validation`] before anything runs. A value already stored that does not decode
    /// as `T` is a [`KvError::Codec`]; a computed value over the size limit is a [`KvError::TooLarge`] (nothing
    /// is stored).
    ///
    /// ```
    /// # async fn demo(cache: &dyn cpc_ports::Cache) -> Result<(), cpc_ports::KvError> {
    /// use std::time::Duration;
    /// use cpc_ports::{CacheExt, CacheKey};
    /// let key = CacheKey::new("report:2026-05")?;
    /// let report: String = cache
    ///     .get_or_set(&key, Some(Duration::from_secs(600)), || async { Ok("rendered".to_owned()) })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    async fn get_or_set<T, F, Fut>(&self, key: &CacheKey, ttl: Option<Duration>, compute: F) -> Result<T, KvError>
    where
        T: Serialize + DeserializeOwned + Send,
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = Result<T, KvError>> + Send,
    {
        if ttl.is_some_and(|ttl| ttl.is_zero()) {
            return Err(KvError::invalid("ttl", "must be greater than zero"));
        }
        if let Some(found) = self.get::<T>(key).await? {
            return Ok(found);
        }
        let own = self.single_flight();
        let (flights, flight_key) = match &own {
            Some(flights) => (&**flights, key.as_str().to_owned()),
            None => (&*FALLBACK_FLIGHTS, format!("{:p}\u{0}{key}", std::ptr::from_ref(self).cast::<()>())),
        };
        match flights.join(&flight_key, self.compute_wait()).await {
            Joined::Waited(outcome) => Ok(self.codec().decode(&outcome?)?),
            Joined::Lead(leader) => match lead(self, key, ttl, compute).await {
                Ok((value, bytes)) => {
                    leader.finish(Ok(bytes))?;
                    Ok(value)
                }
                Err(error) => Err(leader.fail(error)),
            },
        }
    }

    /// Removes `key` and returns its decoded value ([`Cache::get_and_delete_bytes`]): of concurrent callers,
    /// exactly one gets it. Bytes that do not decode as `T` are a [`KvError::Codec`] (the key is gone all the
    /// same).
    async fn get_and_delete<T: DeserializeOwned + Send>(&self, key: &CacheKey) -> Result<Option<T>, KvError> {
        match self.get_and_delete_bytes(key).await? {
            Some(bytes) => Ok(Some(self.codec().decode(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Adds 1 to the counter under `key` and returns the new value ([`Cache::increment_by`]): a missing key
    /// starts at 0 and is created with `ttl` (or the default TTL); an existing one keeps its TTL.
    async fn increment(&self, key: &CacheKey, ttl: Option<Duration>) -> Result<i64, KvError> {
        self.increment_by(key, 1, ttl).await
    }

    /// Reads the counter under `key` (`None` if missing). A value that is not a decimal `i64` is
    /// [`KvError::Codec`]`(`[`CodecError::NotAnInteger`]`)`.
    async fn get_counter(&self, key: &CacheKey) -> Result<Option<i64>, KvError> {
        match self.get_bytes(key).await? {
            Some(bytes) => Ok(Some(decode_counter(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Resets the TTL of a live `key` to the cache's default TTL ([`Cache::expire`] with `None`); returns
    /// whether the key was there.
    async fn touch(&self, key: &CacheKey) -> Result<bool, KvError> {
        self.expire(key, None).await
    }
}

/// The leader's part of [`CacheExt::get_or_set`]: the value stored meanwhile (by an earlier leader, or another
/// process), or `compute`'s, stored; with its bytes for the waiters.
async fn lead<C, T, F, Fut>(cache: &C, key: &CacheKey, ttl: Option<Duration>, compute: F) -> Result<(T, Bytes), KvError>
where
    C: Cache + ?Sized,
    T: Serialize + DeserializeOwned,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, KvError>>,
{
    let codec = cache.codec();
    if let Some(bytes) = cache.get_bytes(key).await? {
        return Ok((codec.decode(&bytes)?, bytes));
    }
    let value = compute().await?;
    let bytes = codec.encode(&value)?;
    cache.set_bytes(key, bytes.clone(), ttl).await?;
    Ok((value, bytes))
}

impl<C: Cache + ?Sized> CacheExt for C {}
