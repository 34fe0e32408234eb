//! The [`Cache`] port: bytes under keys, with a time to live.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{CacheKey, Codec, KvError};

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
/// Implementations: Redis (`CacheManager` in `cpc-adapters`), in-process (`cpc-adapters`, feature `memory`;
/// re-exported by `cpc-testkit`).
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

    /// The codec the typed methods of [`CacheExt`] use.
    fn codec(&self) -> Codec;

    /// The largest value, in bytes, this cache stores.
    fn max_value_bytes(&self) -> usize;
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
}

impl<C: Cache + ?Sized> CacheExt for C {}
