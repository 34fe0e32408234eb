//! [`CacheManager`]: the [`Cache`] port over Redis strings with `PX` expiry.

use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use async_trait::async_trait;
use cpc_ports::cache::{DEFAULT_COMPUTE_WAIT, decode_counter};
use cpc_ports::{Bytes, Cache, CacheKey, Codec, CodecError, KeyTtl, KvError, SingleFlight};
use redis::Script;

use super::RedisManager;
use super::cluster::by_slot;
use super::error::classify;
use super::metrics::{Instruments, operations};
use super::ttl::ttl_millis;

operations!(CacheOp {
    Get = "get",
    Set = "set",
    SetIfAbsent = "set_if_absent",
    Delete = "delete",
    Exists = "exists",
    Ttl = "ttl",
    GetMany = "get_many",
    SetMany = "set_many",
    DeletePrefix = "delete_prefix",
    IncrementBy = "increment_by",
    Expire = "expire",
    GetAndDelete = "get_and_delete",
});

/// `KEYS[1]` counter; `ARGV` delta, ttl ms. `INCRBY`, then `PEXPIRE` only if the key did not exist before (an
/// existing key keeps its TTL). Returns the new value as the text `GET` reads (exact: no Lua number, which is a
/// double, touches it), or `-1` when the stored value is not an integer (or not a string), `-2` when the sum
/// would overflow; then nothing changed.
static INCREMENT_BY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local existed = redis.call('EXISTS', KEYS[1])
local added = redis.pcall('INCRBY', KEYS[1], ARGV[1])
if type(added) == 'table' and added.err then
  if string.find(added.err, 'overflow', 1, true) then return -2 end
  return -1
end
if existed == 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return redis.call('GET', KEYS[1])
",
    )
});

/// How many keys one `SCAN` step asks for, and the most one `UNLINK` deletes, in [`Cache::delete_prefix`].
const SCAN_BATCH: usize = 1000;

/// The Redis [`Cache`]: each entry is a Redis string under the manager's namespace
/// and the cache's own prefix (`<namespace>cache:<key>`, [`CacheManager::stored_key`]), written with `SET .. PX`,
/// so every key this cache writes expires (with the TTL given or the default TTL).
///
/// * `get`/`set`/`delete`/`exists`/`ttl` are `GET`, `SET PX`, `UNLINK`, `EXISTS`, `PTTL`; `set_if_absent` is
///   `SET NX PX`; `get_many` is one `MGET`; `set_many` one `MULTI`/`EXEC` of `SET PX`s (one round trip, all or
///   nothing). On a Redis Cluster, the `MGET` is split by hash slot by the cluster client and its answers put
///   back in order, and `set_many` sends one `MULTI`/`EXEC` per hash slot, concurrently: all or nothing per
///   slot, not across slots.
/// * `delete_prefix` walks the namespace with `SCAN MATCH` (never `KEYS`), the prefix glob-escaped so it is taken
///   literally, and deletes what it finds with `UNLINK` in batches of 1000. It only ever touches this cache's
///   entries (`<namespace>cache:<prefix>*`), never another adapter's keys in the same namespace. A key written while the walk runs may survive it. On a cluster it walks every master.
/// * `increment_by` is one script: `INCRBY`, and `PEXPIRE` only when it created the key, its new value read back
///   as text (exact over the whole `i64` range); `expire` is `PEXPIRE`; `get_and_delete` is `GETDEL` (Redis 6.2
///   or later).
/// * [`CacheExt::get_or_set`](cpc_ports::CacheExt::get_or_set) computes a missing value once per key and
///   process (single flight, in a group shared by clones, [`Cache::single_flight`]); callers waiting for
///   another's computation get its value or its error, and wait at most [`CacheManager::with_compute_wait`]
///   (default 10 s).
/// * [`CacheManager::with_ttl_jitter`] spreads expiry times so entries written together do not expire together.
/// * Values over [`CacheManager::with_max_value_bytes`] (default 8 MiB) are refused with [`KvError::TooLarge`]
///   before anything is sent.
///
/// TTLs are rounded down to whole milliseconds (at least 1 ms), so [`Cache::ttl`] never reports more than was
/// asked for. Cheap to clone; clones share the connection and the single-flight map.
///
/// ```no_run
/// # async fn demo() -> Result<(), cpc_ports::KvError> {
/// use std::time::Duration;
/// use cpc_redis::{CacheManager, RedisConfig, RedisManager};
/// use cpc_ports::{CacheExt, CacheKey};
///
/// let manager = RedisManager::new(&RedisConfig::from_env()?).await?;
/// let cache = CacheManager::new(manager, Duration::from_secs(300)).with_ttl_jitter(0.1);
/// let key = CacheKey::new("balance:42")?;
/// cache.set(&key, &1250_i64, Some(Duration::from_secs(60))).await?;
/// let balance: Option<i64> = cache.get(&key).await?;
/// let report: String = cache.get_or_set(&CacheKey::new("report")?, None, || async { Ok("computed".to_owned()) }).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct CacheManager {
    manager: RedisManager,
    default_ttl: Duration,
    codec: Codec,
    max_value_bytes: usize,
    jitter: f64,
    compute_wait: Duration,
    shared: Arc<Shared>,
    metrics: Arc<Instruments<CacheOp>>,
}

/// State shared by clones: the single-flight map (handing out the encoded value) and the jitter's random
/// sequence.
struct Shared {
    flights: Arc<SingleFlight<Bytes>>,
    rng: AtomicU64,
}

impl CacheManager {
    /// The default largest value: 8 MiB.
    pub const DEFAULT_MAX_VALUE_BYTES: usize = 8 * 1024 * 1024;

    /// The cache's own sub-namespace: every entry is stored under `<namespace>cache:<key>`. No key of the other
    /// Redis adapters starts with it (locks `{lock:`, rate limits `{rl:`, sessions `session:`, job queues `jq:`),
    /// so nothing written, read or deleted through the cache, `delete_prefix` included, can reach their data.
    pub const KEY_PREFIX: &'static str = "cache:";

    /// The name under which the cache stores `key`: the manager's namespace, [`Self::KEY_PREFIX`], then `key`.
    pub fn stored_key(&self, key: &str) -> String {
        // Every call builds one: one allocation of the final size, no formatting machinery, no regrowth
        // (`format!` and then `push_str` cost a get about 900 instructions more; docs/BENCHMARKS.md).
        [self.manager.config().namespace.as_str(), Self::KEY_PREFIX, key].concat()
    }

    /// A cache over `manager` whose entries live for `default_ttl` when written without a TTL, with the JSON
    /// codec, an 8 MiB value limit and no jitter. A zero `default_ttl` makes every write without an explicit TTL
    /// a [`KvError::Validation`], as a zero TTL is.
    pub fn new(manager: RedisManager, default_ttl: Duration) -> Self {
        let seed = RandomState::new().hash_one(0x5EED_u64);
        Self {
            manager,
            default_ttl,
            codec: Codec::json(),
            max_value_bytes: Self::DEFAULT_MAX_VALUE_BYTES,
            jitter: 0.0,
            compute_wait: DEFAULT_COMPUTE_WAIT,
            shared: Arc::new(Shared { flights: Arc::new(SingleFlight::new()), rng: AtomicU64::new(seed) }),
            metrics: Instruments::new("cache"),
        }
    }

    /// The same cache, with `codec` (JSON or MessagePack, optionally compressed above a threshold) for the typed
    /// methods of [`cpc_ports::CacheExt`], `get_or_set` included.
    #[must_use]
    pub fn with_codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// The same cache, refusing values longer than `max` bytes with [`KvError::TooLarge`] (nothing is written).
    #[must_use]
    pub fn with_max_value_bytes(mut self, max: usize) -> Self {
        self.max_value_bytes = max;
        self
    }

    /// The same cache, shortening every TTL it writes by a random amount of up to `fraction` of it, so entries
    /// written at the same moment (a warm-up, a burst of misses) do not all expire, and get recomputed, at the
    /// same moment. An entry asked to live for `ttl` lives between `ttl × (1 − fraction)` and `ttl`: the spread
    /// is one-sided because [`Cache::ttl`] promises never to report more than the TTL set.
    ///
    /// `fraction` is clamped to `0.0..=1.0` (`NaN` counts as 0); the result is never below 1 ms.
    #[must_use]
    pub fn with_ttl_jitter(mut self, fraction: f64) -> Self {
        self.jitter = if fraction.is_nan() { 0.0 } else { fraction.clamp(0.0, 1.0) };
        self
    }

    /// The same cache, whose [`CacheExt::get_or_set`](cpc_ports::CacheExt::get_or_set) callers wait at most
    /// `wait` for another caller's computation of the same key ([`DEFAULT_COMPUTE_WAIT`] by default); past it
    /// they get [`KvError::Timeout`] while the computation goes on. Read back with [`Cache::compute_wait`].
    #[must_use]
    pub fn with_compute_wait(mut self, wait: Duration) -> Self {
        self.compute_wait = wait;
        self
    }

    /// The TTL of entries written without one.
    pub fn default_ttl(&self) -> Duration {
        self.default_ttl
    }

    /// The jitter fraction set by [`CacheManager::with_ttl_jitter`] (0 when off).
    pub fn ttl_jitter(&self) -> f64 {
        self.jitter
    }

    /// The Redis manager this cache runs on.
    pub fn manager(&self) -> &RedisManager {
        &self.manager
    }

    /// Test aid: how many keys have a [`CacheExt::get_or_set`](cpc_ports::CacheExt::get_or_set) computation
    /// running in this process on this cache or its clones. Zero once every call has returned (the
    /// single-flight map does not grow).
    pub fn in_flight(&self) -> usize {
        self.shared.flights.len()
    }

    fn error(&self, operation: &'static str) -> impl FnOnce(redis::RedisError) -> KvError + '_ {
        move |e| classify(e, operation, self.manager.config().response_timeout)
    }

    /// The `PX` argument for `ttl` (or the default): validated, rounded down to whole ms, jittered.
    fn px(&self, ttl: Option<Duration>) -> Result<u64, KvError> {
        Ok(self.jittered(ttl_millis(ttl.unwrap_or(self.default_ttl))?))
    }

    fn jittered(&self, millis: u64) -> u64 {
        if self.jitter <= 0.0 {
            return millis;
        }
        // `cut` is below `millis` (the unit draw is below 1 and the fraction at most 1), so this never grows.
        let cut = (millis as f64 * self.jitter * self.next_unit()) as u64;
        millis.saturating_sub(cut).max(1)
    }

    /// A uniform draw from `[0, 1)` (splitmix64 over a randomly seeded counter; not for secrets).
    fn next_unit(&self) -> f64 {
        let mut z = self.shared.rng.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    fn check_size(&self, value: &Bytes) -> Result<(), KvError> {
        if value.len() > self.max_value_bytes {
            return Err(KvError::TooLarge { size: value.len(), max: self.max_value_bytes });
        }
        Ok(())
    }
}

impl From<CacheManager> for RedisManager {
    /// The manager a cache runs on, e.g. to build a [`super::SessionManager`] from it (as the seeds do).
    fn from(cache: CacheManager) -> Self {
        cache.manager
    }
}

impl fmt::Debug for CacheManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheManager")
            .field("namespace", &self.manager.config().namespace)
            .field("default_ttl", &self.default_ttl)
            .field("codec", &self.codec)
            .field("max_value_bytes", &self.max_value_bytes)
            .field("ttl_jitter", &self.jitter)
            .field("compute_wait", &self.compute_wait)
            .finish()
    }
}

/// `text` with Redis glob metacharacters (`*`, `?`, `[`, `]`, `\`) escaped, so a `MATCH` pattern made from it
/// matches it literally.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[async_trait]
impl Cache for CacheManager {
    async fn get_bytes(&self, key: &CacheKey) -> Result<Option<Bytes>, KvError> {
        self.metrics
            .run(CacheOp::Get, async {
                let found: Option<Vec<u8>> =
                    self.manager.query(redis::cmd("GET").arg(self.stored_key(key.as_str())), "get").await?;
                Ok(found.map(Bytes::from))
            })
            .await
    }

    async fn set_bytes(&self, key: &CacheKey, value: Bytes, ttl: Option<Duration>) -> Result<(), KvError> {
        self.metrics
            .run(CacheOp::Set, async {
                let px = self.px(ttl)?;
                self.check_size(&value)?;
                let mut cmd = redis::cmd("SET");
                cmd.arg(self.stored_key(key.as_str())).arg(value.as_ref()).arg("PX").arg(px);
                self.manager.query::<()>(&cmd, "set").await
            })
            .await
    }

    async fn set_if_absent_bytes(&self, key: &CacheKey, value: Bytes, ttl: Option<Duration>) -> Result<bool, KvError> {
        self.metrics
            .run(CacheOp::SetIfAbsent, async {
                let px = self.px(ttl)?;
                self.check_size(&value)?;
                let mut cmd = redis::cmd("SET");
                cmd.arg(self.stored_key(key.as_str())).arg(value.as_ref()).arg("NX").arg("PX").arg(px);
                let reply: Option<String> = self.manager.query(&cmd, "set if absent").await?;
                Ok(reply.is_some())
            })
            .await
    }

    async fn delete(&self, key: &CacheKey) -> Result<bool, KvError> {
        self.metrics
            .run(CacheOp::Delete, async {
                let n: u64 =
                    self.manager.query(redis::cmd("UNLINK").arg(self.stored_key(key.as_str())), "delete").await?;
                Ok(n > 0)
            })
            .await
    }

    async fn exists(&self, key: &CacheKey) -> Result<bool, KvError> {
        self.metrics
            .run(CacheOp::Exists, async {
                let n: u64 =
                    self.manager.query(redis::cmd("EXISTS").arg(self.stored_key(key.as_str())), "exists").await?;
                Ok(n > 0)
            })
            .await
    }

    async fn ttl(&self, key: &CacheKey) -> Result<KeyTtl, KvError> {
        self.metrics
            .run(CacheOp::Ttl, async {
                let millis: i64 =
                    self.manager.query(redis::cmd("PTTL").arg(self.stored_key(key.as_str())), "ttl").await?;
                Ok(match millis {
                    -1 => KeyTtl::Persistent,
                    m if m < 0 => KeyTtl::Missing,
                    m => KeyTtl::ExpiresIn(Duration::from_millis(m.unsigned_abs())),
                })
            })
            .await
    }

    async fn get_many_bytes(&self, keys: &[CacheKey]) -> Result<Vec<Option<Bytes>>, KvError> {
        self.metrics
            .run(CacheOp::GetMany, async {
                if keys.is_empty() {
                    return Ok(Vec::new());
                }
                let mut cmd = redis::cmd("MGET");
                for key in keys {
                    cmd.arg(self.stored_key(key.as_str()));
                }
                let found: Vec<Option<Vec<u8>>> = self.manager.query(&cmd, "get many").await?;
                if found.len() != keys.len() {
                    return Err(KvError::backend(
                        "redis",
                        format!("MGET of {} keys answered {} values", keys.len(), found.len()),
                    ));
                }
                Ok(found.into_iter().map(|v| v.map(Bytes::from)).collect())
            })
            .await
    }

    async fn set_many_bytes(&self, entries: Vec<(CacheKey, Bytes)>, ttl: Option<Duration>) -> Result<(), KvError> {
        self.metrics
            .run(CacheOp::SetMany, async {
                self.px(ttl)?;
                for (_, value) in &entries {
                    self.check_size(value)?;
                }
                let entries: Vec<(Bytes, String)> =
                    entries.into_iter().map(|(key, value)| (value, self.stored_key(key.as_str()))).collect();
                // One MULTI/EXEC per hash slot: all or nothing on one server; on a cluster, per slot (a
                // transaction cannot span slots), the slots' transactions sent concurrently.
                let mut pipes = Vec::new();
                for group in by_slot(entries, self.manager.is_cluster(), |(_, key)| key.as_bytes()) {
                    let mut pipe = redis::pipe();
                    pipe.atomic();
                    for (value, key) in &group {
                        // Each entry draws its own jitter, so a batch does not expire as one.
                        pipe.cmd("SET").arg(key).arg(value.as_ref()).arg("PX").arg(self.px(ttl)?).ignore();
                    }
                    pipes.push(pipe);
                }
                let sent = pipes.iter().map(|pipe| {
                    let mut conn = self.manager.connection();
                    async move { pipe.query_async::<()>(&mut conn).await }
                });
                futures::future::try_join_all(sent).await.map_err(self.error("set many"))?;
                Ok(())
            })
            .await
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64, KvError> {
        self.metrics
            .run(CacheOp::DeletePrefix, async {
                if prefix.is_empty() {
                    return Err(KvError::invalid("prefix", "must not be empty"));
                }
                let pattern = format!("{}*", glob_escape(&self.stored_key(prefix)));
                let mut conn = self.manager.connection();
                let mut deleted = 0;
                // A cluster's keys are spread over its masters: walk each one.
                for target in conn.scan_targets().await.map_err(self.error("delete prefix: nodes"))? {
                    let mut cursor: u64 = 0;
                    loop {
                        let mut scan = redis::cmd("SCAN");
                        scan.arg(cursor).arg("MATCH").arg(&pattern).arg("COUNT").arg(SCAN_BATCH);
                        let (next, keys): (u64, Vec<Vec<u8>>) =
                            conn.query_on(&target, &scan).await.map_err(self.error("delete prefix: scan"))?;
                        for batch in keys.chunks(SCAN_BATCH) {
                            let n: u64 = redis::cmd("UNLINK")
                                .arg(batch)
                                .query_async(&mut conn)
                                .await
                                .map_err(self.error("delete prefix: unlink"))?;
                            deleted += n;
                        }
                        if next == 0 {
                            break;
                        }
                        cursor = next;
                    }
                }
                Ok(deleted)
            })
            .await
    }

    async fn increment_by(&self, key: &CacheKey, delta: i64, ttl: Option<Duration>) -> Result<i64, KvError> {
        self.metrics
            .run(CacheOp::IncrementBy, async {
                let px = self.px(ttl)?;
                let mut invocation = INCREMENT_BY.key(self.stored_key(key.as_str()));
                invocation.arg(delta).arg(px);
                let mut conn = self.manager.connection();
                let reply: redis::Value =
                    invocation.invoke_async(&mut conn).await.map_err(self.error("increment by"))?;
                match reply {
                    redis::Value::BulkString(text) => Ok(decode_counter(&text)?),
                    redis::Value::Int(-1) => Err(CodecError::NotAnInteger.into()),
                    redis::Value::Int(-2) => Err(CodecError::CounterOverflow.into()),
                    other => Err(KvError::backend("redis", format!("increment script answered {other:?}"))),
                }
            })
            .await
    }

    async fn expire(&self, key: &CacheKey, ttl: Option<Duration>) -> Result<bool, KvError> {
        self.metrics
            .run(CacheOp::Expire, async {
                let px = self.px(ttl)?;
                let mut cmd = redis::cmd("PEXPIRE");
                cmd.arg(self.stored_key(key.as_str())).arg(px);
                let n: u64 = self.manager.query(&cmd, "expire").await?;
                Ok(n > 0)
            })
            .await
    }

    async fn get_and_delete_bytes(&self, key: &CacheKey) -> Result<Option<Bytes>, KvError> {
        self.metrics
            .run(CacheOp::GetAndDelete, async {
                let found: Option<Vec<u8>> = self
                    .manager
                    .query(redis::cmd("GETDEL").arg(self.stored_key(key.as_str())), "get and delete")
                    .await?;
                Ok(found.map(Bytes::from))
            })
            .await
    }

    fn codec(&self) -> Codec {
        self.codec.clone()
    }

    fn max_value_bytes(&self) -> usize {
        self.max_value_bytes
    }

    /// One group per cache, shared by its clones.
    fn single_flight(&self) -> Option<Arc<SingleFlight<Bytes>>> {
        Some(Arc::clone(&self.shared.flights))
    }

    fn compute_wait(&self) -> Duration {
        self.compute_wait
    }
}

#[cfg(test)]
mod tests {
    use super::glob_escape;

    #[test]
    fn glob_metacharacters_are_escaped() {
        assert_eq!(glob_escape("plain:ü"), "plain:ü");
        assert_eq!(glob_escape(r"a*b?c[d]e\f"), r"a\*b\?c\[d\]e\\f");
    }
}
