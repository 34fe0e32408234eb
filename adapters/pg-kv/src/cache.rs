//! [`PgCache`]: the [`Cache`] port on an UNLOGGED PostgreSQL table, entries expiring on the server clock.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use cpc_pool::postgres::PgPool;
use cpc_pool::postgres::kv::{self, column, millis};
use cpc_ports::cache::{DEFAULT_COMPUTE_WAIT, decode_counter};
use cpc_ports::{Cache, CacheKey, Codec, CodecError, KeyTtl, KvError, SingleFlight};
use tokio_postgres::types::ToSql;

use crate::get_batch::{self, GetBatcher};
use crate::sweeper::{Pass, Sweeper};

/// The expiry a write gives its row: `$ttl` ms from now, shortened by a random fraction of up to `$jitter` of it
/// (at least 1 ms). `random()` is drawn per row, so the entries of one `set_many` do not expire together.
macro_rules! expiry {
    ($ttl:literal, $jitter:literal) => {
        concat!(
            "now() + greatest(1, ",
            $ttl,
            "::bigint - floor(random() * ",
            $jitter,
            "::float8 * ",
            $ttl,
            "::bigint)::bigint) * interval '1 millisecond'"
        )
    };
}

const GET: &str = "SELECT value FROM cpc_cache WHERE namespace = $1 AND key = $2 AND expires_at > now()";

const SET: &str = concat!(
    "INSERT INTO cpc_cache (namespace, key, value, expires_at) VALUES ($1, $2, $3, ",
    expiry!("$4", "$5"),
    ") ON CONFLICT (namespace, key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at"
);

/// Inserts, or takes over a row whose expiry has passed; returns a row only if it stored. Concurrent callers on
/// one missing key: one inserts, the others wait for its commit on the primary key, then find a live row.
const SET_IF_ABSENT: &str = concat!(
    "INSERT INTO cpc_cache (namespace, key, value, expires_at) VALUES ($1, $2, $3, ",
    expiry!("$4", "$5"),
    ") ON CONFLICT (namespace, key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at \
     WHERE cpc_cache.expires_at <= now() RETURNING 1"
);

/// Deletes the row, live or expired; answers whether it was live.
const DELETE: &str = "DELETE FROM cpc_cache WHERE namespace = $1 AND key = $2 RETURNING expires_at > now()";

const EXISTS: &str = "SELECT 1 FROM cpc_cache WHERE namespace = $1 AND key = $2 AND expires_at > now()";

/// What is left of a live entry, in whole microseconds (rounded down, so never more than the TTL set).
const TTL: &str = "SELECT floor(extract(epoch FROM expires_at - now()) * 1000000)::bigint \
     FROM cpc_cache WHERE namespace = $1 AND key = $2 AND expires_at > now()";

const GET_MANY: &str =
    "SELECT key, value FROM cpc_cache WHERE namespace = $1 AND key = ANY($2::bytea[]) AND expires_at > now()";

const SET_MANY: &str = concat!(
    "INSERT INTO cpc_cache (namespace, key, value, expires_at) SELECT $1, e.key, e.value, ",
    expiry!("$4", "$5"),
    " FROM unnest($2::bytea[], $3::bytea[]) AS e(key, value) \
     ON CONFLICT (namespace, key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at"
);

/// Sweeps one batch of expired rows of any namespace, skipping rows another session holds (a write in flight).
const SWEEP_EXPIRED: &str = "WITH gone AS (DELETE FROM cpc_cache WHERE ctid = ANY(ARRAY( \
       SELECT ctid FROM cpc_cache WHERE expires_at <= now() LIMIT $1 FOR UPDATE SKIP LOCKED)) RETURNING 1) \
     SELECT count(*) FROM gone";

const COUNT: &str = "SELECT count(*) FROM cpc_cache WHERE namespace = $1";

/// The value of a live row as text for the counter checks: `encode(.., 'escape')` leaves ASCII as it is and
/// writes any other byte as `\nnn`, so only decimal ASCII matches [`COUNTER_FORM`].
macro_rules! counter_text {
    () => {
        "encode(cpc_cache.value, 'escape')"
    };
}

/// Whether the live row's value can take `$3` (the checks in order, so the cast only sees a well-formed number):
/// a decimal `i64` as `decode_counter` reads it, and the sum within `i64`.
macro_rules! counter_ok {
    () => {
        concat!(
            "CASE WHEN ",
            counter_text!(),
            " !~ '^(0|-?[1-9][0-9]{0,18})$' THEN false ELSE ",
            counter_text!(),
            "::numeric + $3::bigint BETWEEN -9223372036854775808 AND 9223372036854775807 END"
        )
    };
}

/// Adds `$3` to a live counter (keeping its expiry), or creates it as `$3` with the expiry of `$4` ms (`$5`
/// jitter) when missing or expired; a live value that is not a counter, or would overflow, is left alone and no
/// row is returned by `up`. Answers the new value, and (for the error) the value live before the statement.
const INCREMENT_BY: &str = concat!(
    "WITH before AS (SELECT value FROM cpc_cache WHERE namespace = $1 AND key = $2 AND expires_at > now()), ",
    "up AS (INSERT INTO cpc_cache (namespace, key, value, expires_at) ",
    "VALUES ($1, $2, convert_to($3::bigint::text, 'UTF8'), ",
    expiry!("$4", "$5"),
    ") ON CONFLICT (namespace, key) DO UPDATE SET ",
    "value = CASE WHEN cpc_cache.expires_at <= now() THEN EXCLUDED.value ELSE convert_to((",
    counter_text!(),
    "::numeric + $3::bigint)::bigint::text, 'UTF8') END, ",
    "expires_at = CASE WHEN cpc_cache.expires_at <= now() THEN EXCLUDED.expires_at ELSE cpc_cache.expires_at END ",
    "WHERE cpc_cache.expires_at <= now() OR ",
    counter_ok!(),
    " RETURNING value) ",
    "SELECT (SELECT value FROM up), (SELECT value FROM before)"
);

/// Sets a live row's expiry to `$3` ms from now (`$4` jitter); a row only if it was live.
const EXPIRE: &str = concat!(
    "UPDATE cpc_cache SET expires_at = ",
    expiry!("$3", "$4"),
    " WHERE namespace = $1 AND key = $2 AND expires_at > now() RETURNING 1"
);

/// Deletes the row, live or expired; answers its value and whether it was live. Of concurrent callers, the
/// first deletes the row; the others wait for its commit, then find nothing.
const GET_AND_DELETE: &str =
    "DELETE FROM cpc_cache WHERE namespace = $1 AND key = $2 RETURNING value, expires_at > now()";

/// How often [`Cache::increment_by`] runs its statement when a refused increment's value changed meanwhile,
/// before it reports the value as not a counter.
const INCREMENT_ATTEMPTS: usize = 3;

/// Evicts one batch of `$2` entries of the namespace, the soonest to expire first.
const EVICT: &str = "WITH gone AS (DELETE FROM cpc_cache WHERE ctid = ANY(ARRAY( \
       SELECT ctid FROM cpc_cache WHERE namespace = $1 ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)) \
       RETURNING 1) \
     SELECT count(*) FROM gone";

/// The most rows one sweep pass deletes (in batches), so a pass always ends; the next pass takes the rest.
const MAX_SWEEP_BATCHES: u64 = 1000;

/// What one [`PgCache::sweep`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Expired rows deleted (of any namespace).
    pub expired: u64,
    /// Live entries of this cache's namespace evicted to bring it back to [`PgCache::max_entries`].
    pub evicted: u64,
}

/// The PostgreSQL [`Cache`]: the UNLOGGED table `cpc_cache` of migration `2026-12-06-000001_kv_cache` (run the
/// embedded migrations first), one row per entry: `(namespace, key, value, expires_at)`.
///
/// **Key space.** The cache reads and writes its own table only, under its namespace ([`PgCache::with_namespace`],
/// empty by default; like the Redis cache's namespace, several caches or apps can share one database apart). No
/// call through it, `delete_prefix` included, can reach another port's rows (locks, sessions, rate limits and
/// jobs have tables of their own). Keys are stored as their UTF-8 bytes (`bytea`: a key may hold NUL).
///
/// **Cost per call.** Every method is one statement, one round trip (`delete_prefix`: one per 10,000 rows), run as
/// a cached prepared statement on a pooled connection, using the primary-key index:
/// * `get`/`exists`/`ttl` are a `SELECT ... WHERE expires_at > now()`: an expired row is never returned, whether
///   or not it has been swept yet. Time is the server's clock (`now()`), never the app's. Concurrent `get`s are
///   batched by default: at most 4 lookups run at once, each answering every get queued meanwhile (up to 128) with
///   one `SELECT ... WHERE key = ANY($keys)` (see [`PgCache::with_get_batching`]); a lone get is sent at once.
/// * `set` is an `INSERT ... ON CONFLICT DO UPDATE`; `set_if_absent` the same with `WHERE expires_at <= now()`, so
///   it takes a missing or expired key, and of concurrent callers on one key exactly one stores.
/// * `get_many` is one `SELECT ... WHERE key = ANY($keys)`; `set_many` one `INSERT ... SELECT FROM unnest($keys,
///   $values) ON CONFLICT DO UPDATE` (one transaction: all or nothing; a key given twice keeps its last value).
/// * `increment_by` is one `INSERT ... ON CONFLICT DO UPDATE` that adds in SQL (`numeric`, range-checked) to a
///   live row holding a decimal `i64`, keeping its expiry, or creates the row; `expire` one `UPDATE` of a live
///   row's expiry; `get_and_delete` one `DELETE ... RETURNING` (of concurrent callers, exactly one gets the value).
/// * `get_or_set` runs in a single-flight group shared by the cache's clones, waiters bounded by
///   [`PgCache::with_compute_wait`].
/// * `delete_prefix` deletes through the primary key's btree range `key >= prefix AND key < successor(prefix)`
///   (bytewise, so `*`, `?`, `%`, `_` and `\` are literal and no sequential scan happens), 10,000 rows per
///   statement, until none is left. A key written while it runs may survive it.
///
/// **Expiry and the size bound.** Every entry expires (the TTL given or [`PgCache::with_default_ttl`], optionally
/// shortened by [`PgCache::with_ttl_jitter`]). Expired rows are deleted by a background sweeper, not by reads or
/// writes (so a write pays nothing for it): every [`PgCache::with_sweep_interval`] (default 30 s) a task deletes
/// expired rows of every namespace in batches of [`PgCache::with_sweep_batch`] (default 500) rows, each batch a
/// `DELETE ... WHERE ctid = ANY(ARRAY(SELECT ctid ... LIMIT n FOR UPDATE SKIP LOCKED))`: short transactions that
/// skip rows a writer holds, so the sweep never makes a read or write wait. With [`PgCache::with_max_entries`] the
/// same pass then evicts the namespace's entries that expire soonest until it holds at most that many: the bound
/// is enforced at each pass, so between passes the table may exceed it by what was written meanwhile. The task
/// starts on the first call (on that call's tokio runtime), and stops when the last clone of the cache is
/// dropped; with the interval set to `None`, call [`PgCache::sweep`] yourself (a cron job, a worker).
///
/// Values over [`PgCache::with_max_value_bytes`] (default 8 MiB) are refused with [`KvError::TooLarge`] before
/// anything is sent. The table is UNLOGGED: no WAL is written for it, and after a server crash it is empty (a
/// cache may lose its entries; a standby never has them). Cheap to clone: clones share the pool and the sweeper.
///
/// ```no_run
/// # async fn demo(pool: cpc_pool::postgres::PgPool) -> Result<(), cpc_ports::KvError> {
/// use std::time::Duration;
/// use cpc_pg_kv::PgCache;
/// use cpc_ports::{CacheExt, CacheKey};
///
/// let cache = PgCache::new(pool).with_namespace("billing").with_default_ttl(Duration::from_secs(60)).with_max_entries(100_000);
/// let key = CacheKey::new("balance:42")?;
/// cache.set(&key, &1250_i64, None).await?;
/// let balance: Option<i64> = cache.get(&key).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PgCache {
    settings: Arc<Settings>,
    sweeper: Arc<Sweeper>,
    /// `None` when gets are not batched ([`PgCache::with_get_batching`] of 0).
    batcher: Option<Arc<GetBatcher>>,
    /// The `get_or_set` computations running, shared by clones.
    flights: Arc<SingleFlight<Bytes>>,
}

#[derive(Clone)]
struct Settings {
    pool: PgPool,
    namespace: String,
    default_ttl: Duration,
    codec: Codec,
    max_value_bytes: usize,
    jitter: f64,
    max_entries: Option<u64>,
    sweep_interval: Option<Duration>,
    sweep_batch: i64,
    get_batches: usize,
    compute_wait: Duration,
}

impl PgCache {
    /// The default TTL of entries written without one: 5 minutes.
    pub const DEFAULT_TTL: Duration = Duration::from_secs(300);
    /// The default largest value: 8 MiB.
    pub const DEFAULT_MAX_VALUE_BYTES: usize = 8 * 1024 * 1024;
    /// How often the sweeper runs by default: every 30 s.
    pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(30);
    /// How many rows one sweep statement deletes at most by default.
    pub const DEFAULT_SWEEP_BATCH: u32 = 500;
    /// How many batched-get statements run at once by default (see [`PgCache::with_get_batching`]).
    pub const DEFAULT_GET_BATCHES: usize = 4;
    /// The most keys one batched-get statement asks for.
    pub const MAX_GET_BATCH_KEYS: usize = get_batch::MAX_KEYS;
    /// How many rows one statement of [`Cache::delete_prefix`] deletes at most.
    pub const DELETE_PREFIX_BATCH: i64 = 10_000;
    /// The statement [`Cache::delete_prefix`] runs until it deletes fewer than `$4` rows: a range of the primary
    /// key, `$1` the namespace, `$2` the prefix's bytes and `$3` the first byte string after every key starting
    /// with them. Public so an operator (or a test) can `EXPLAIN` it.
    pub const DELETE_PREFIX_SQL: &'static str = "WITH gone AS (DELETE FROM cpc_cache WHERE ctid = ANY(ARRAY( \
           SELECT ctid FROM cpc_cache WHERE namespace = $1 AND key >= $2 AND key < $3 LIMIT $4 FOR UPDATE)) \
           RETURNING expires_at) \
         SELECT count(*), count(*) FILTER (WHERE expires_at > now()) FROM gone";

    /// A cache on `pool` (the migrations run), in the empty namespace, with the defaults: 5-minute TTL, JSON codec,
    /// 8 MiB values, no jitter, no entry bound, a sweep every 30 s.
    pub fn new(pool: PgPool) -> Self {
        Self::from_settings(Settings {
            pool,
            namespace: String::new(),
            default_ttl: Self::DEFAULT_TTL,
            codec: Codec::json(),
            max_value_bytes: Self::DEFAULT_MAX_VALUE_BYTES,
            jitter: 0.0,
            max_entries: None,
            sweep_interval: Some(Self::DEFAULT_SWEEP_INTERVAL),
            sweep_batch: i64::from(Self::DEFAULT_SWEEP_BATCH),
            get_batches: Self::DEFAULT_GET_BATCHES,
            compute_wait: DEFAULT_COMPUTE_WAIT,
        })
    }

    fn from_settings(settings: Settings) -> Self {
        let settings = Arc::new(settings);
        let for_pass = Arc::clone(&settings);
        let pass: Pass = Arc::new(move || {
            let settings = Arc::clone(&for_pass);
            Box::pin(async move { sweep(&settings).await.map(|s| s.expired + s.evicted) })
        });
        let sweeper = Arc::new(Sweeper::new(settings.sweep_interval, "PgCache", pass));
        let batcher = (settings.get_batches > 0).then(|| Arc::new(GetBatcher::new(settings.get_batches)));
        Self { settings, sweeper, batcher, flights: Arc::new(SingleFlight::new()) }
    }

    /// Applies `change` to a copy of the settings; the result has a sweeper of its own (clones made before keep
    /// theirs).
    fn with(&self, change: impl FnOnce(&mut Settings)) -> Self {
        let mut settings = Settings::clone(&self.settings);
        change(&mut settings);
        Self::from_settings(settings)
    }

    /// The same cache in `namespace`: it sees and deletes only the entries written under the same namespace.
    #[must_use]
    pub fn with_namespace(self, namespace: impl Into<String>) -> Self {
        let namespace = namespace.into();
        self.with(|s| s.namespace = namespace)
    }

    /// The same cache, whose entries written without a TTL live for `ttl`. A zero `ttl` makes every such write a
    /// [`KvError::Validation`], as a zero TTL is.
    #[must_use]
    pub fn with_default_ttl(self, ttl: Duration) -> Self {
        self.with(|s| s.default_ttl = ttl)
    }

    /// The same cache, with `codec` for the typed methods of [`cpc_ports::CacheExt`].
    #[must_use]
    pub fn with_codec(self, codec: Codec) -> Self {
        self.with(|s| s.codec = codec)
    }

    /// The same cache, refusing values longer than `max` bytes with [`KvError::TooLarge`] (nothing is written).
    #[must_use]
    pub fn with_max_value_bytes(self, max: usize) -> Self {
        self.with(|s| s.max_value_bytes = max)
    }

    /// The same cache, shortening every TTL it writes by a random amount of up to `fraction` of it (drawn on the
    /// server for each row), so entries written together do not expire together. Clamped to `0.0..=1.0` (`NaN`
    /// counts as 0); a TTL never becomes shorter than 1 ms, nor longer than asked.
    #[must_use]
    pub fn with_ttl_jitter(self, fraction: f64) -> Self {
        let jitter = if fraction.is_nan() { 0.0 } else { fraction.clamp(0.0, 1.0) };
        self.with(|s| s.jitter = jitter)
    }

    /// The same cache, holding at most `max` entries in its namespace after each sweep: the pass evicts those that
    /// expire soonest (see the type's docs for when).
    #[must_use]
    pub fn with_max_entries(self, max: u64) -> Self {
        self.with(|s| s.max_entries = Some(max))
    }

    /// The same cache, sweeping every `interval` in the background, or never with `None` (then call
    /// [`PgCache::sweep`]).
    #[must_use]
    pub fn with_sweep_interval(self, interval: Option<Duration>) -> Self {
        self.with(|s| s.sweep_interval = interval)
    }

    /// The same cache, deleting at most `batch` rows per sweep statement (at least 1): smaller batches hold row
    /// locks for less time.
    #[must_use]
    pub fn with_sweep_batch(self, batch: u32) -> Self {
        self.with(|s| s.sweep_batch = i64::from(batch.max(1)))
    }

    /// The same cache, answering concurrent `get`s together: at most `max_in_flight` lookup statements run at
    /// once, and the gets that arrive while they run are queued and answered by the next statement, up to
    /// [`PgCache::MAX_GET_BATCH_KEYS`] keys in one `SELECT ... WHERE key = ANY($keys)`; a get that finds a free
    /// slot is sent at once, alone. `0` turns batching off: each get is its own statement on the caller's task.
    /// The default is [`PgCache::DEFAULT_GET_BATCHES`].
    ///
    /// A get's answer is unchanged: the statement that answers it starts after the get was called, so it sees
    /// every write that completed before. What batching changes is cost: one round trip and one pooled connection
    /// serve many concurrent gets (at 64 tasks about 4x the gets per second of one statement each, see
    /// docs/BENCHMARKS.md), and a busy cache holds at most `max_in_flight` connections for its gets. Each batch
    /// runs on a task of its own on the caller's tokio runtime, so a caller that stops waiting (a timeout)
    /// cancels nothing another get waits for.
    #[must_use]
    pub fn with_get_batching(self, max_in_flight: usize) -> Self {
        self.with(|s| s.get_batches = max_in_flight)
    }

    /// The same cache, whose [`CacheExt::get_or_set`](cpc_ports::CacheExt::get_or_set) callers wait at most
    /// `wait` for another caller's computation of the same key (10 s by default), then get
    /// [`KvError::Timeout`].
    #[must_use]
    pub fn with_compute_wait(self, wait: Duration) -> Self {
        self.with(|s| s.compute_wait = wait)
    }

    /// The pool this cache runs on.
    pub fn pool(&self) -> &PgPool {
        &self.settings.pool
    }

    /// The namespace of this cache's entries.
    pub fn namespace(&self) -> &str {
        &self.settings.namespace
    }

    /// The TTL of entries written without one.
    pub fn default_ttl(&self) -> Duration {
        self.settings.default_ttl
    }

    /// The entry bound set by [`PgCache::with_max_entries`], if any.
    pub fn max_entries(&self) -> Option<u64> {
        self.settings.max_entries
    }

    /// The background sweep interval (`None`: no background sweep).
    pub fn sweep_interval(&self) -> Option<Duration> {
        self.settings.sweep_interval
    }

    /// Runs one sweep pass now: deletes expired rows (of every namespace), then evicts this namespace's
    /// soonest-expiring entries beyond [`PgCache::max_entries`]. Each batch is its own short statement; a pass
    /// deletes at most 1,000 batches of each kind, the next pass takes what is left.
    ///
    /// # Errors
    /// The pool's or the server's failure.
    pub async fn sweep(&self) -> Result<Swept, KvError> {
        sweep(&self.settings).await
    }

    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        operation: &'static str,
    ) -> Result<Vec<tokio_postgres::Row>, KvError> {
        self.sweeper.ensure_running();
        kv::query(&self.settings.pool, sql, params, operation).await
    }

    /// The TTL in milliseconds for `ttl` (or the default): at least 1 ms (rounded down), a zero TTL refused.
    fn ttl_millis(&self, ttl: Option<Duration>) -> Result<i64, KvError> {
        let ttl = ttl.unwrap_or(self.settings.default_ttl);
        if ttl.is_zero() {
            return Err(KvError::invalid("ttl", "must be greater than zero"));
        }
        Ok(millis(ttl, "ttl")?.max(1))
    }

    fn check_size(&self, value: &Bytes) -> Result<(), KvError> {
        let max = self.settings.max_value_bytes;
        if value.len() > max {
            return Err(KvError::TooLarge { size: value.len(), max });
        }
        Ok(())
    }
}

/// One sweep pass over `settings`' table and namespace.
async fn sweep(settings: &Settings) -> Result<Swept, KvError> {
    let pool = &settings.pool;
    let batch = settings.sweep_batch;
    let mut swept = Swept::default();
    for _ in 0..MAX_SWEEP_BATCHES {
        let rows = kv::query(pool, SWEEP_EXPIRED, &[&batch], "sweep expired cache entries").await?;
        let n = count(&rows)?;
        swept.expired += n;
        if n < batch.unsigned_abs() {
            break;
        }
    }
    let Some(max) = settings.max_entries else { return Ok(swept) };
    let rows = kv::query(pool, COUNT, &[&settings.namespace], "count cache entries").await?;
    let mut excess = count(&rows)?.saturating_sub(max);
    for _ in 0..MAX_SWEEP_BATCHES {
        if excess == 0 {
            break;
        }
        let n = i64::try_from(excess).unwrap_or(i64::MAX).min(batch);
        let rows = kv::query(pool, EVICT, &[&settings.namespace, &n], "evict cache entries").await?;
        let evicted = count(&rows)?;
        swept.evicted += evicted;
        if evicted == 0 {
            break;
        }
        excess = excess.saturating_sub(evicted);
    }
    Ok(swept)
}

/// The count in the first column of the only row.
fn count(rows: &[tokio_postgres::Row]) -> Result<u64, KvError> {
    let row = rows.first().ok_or_else(|| KvError::backend("postgres", "a count returned no row"))?;
    Ok(column::<i64>(row, 0)?.unsigned_abs())
}

/// The first byte string after every string starting with `prefix` (the prefix with its last byte below 0xFF
/// incremented and what follows dropped); `None` when there is none (a prefix of 0xFF bytes only, which UTF-8
/// text never holds).
fn successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let end = prefix.iter().rposition(|b| *b < 0xFF)?;
    let mut next = prefix[..=end].to_vec();
    next[end] += 1;
    Some(next)
}

impl fmt::Debug for PgCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.settings;
        f.debug_struct("PgCache")
            .field("namespace", &s.namespace)
            .field("default_ttl", &s.default_ttl)
            .field("codec", &s.codec)
            .field("max_value_bytes", &s.max_value_bytes)
            .field("ttl_jitter", &s.jitter)
            .field("max_entries", &s.max_entries)
            .field("sweep_interval", &s.sweep_interval)
            .field("sweep_batch", &s.sweep_batch)
            .field("get_batches", &s.get_batches)
            .field("compute_wait", &s.compute_wait)
            .finish()
    }
}

#[async_trait]
impl Cache for PgCache {
    async fn get_bytes(&self, key: &CacheKey) -> Result<Option<Bytes>, KvError> {
        if let Some(batcher) = &self.batcher {
            self.sweeper.ensure_running();
            return batcher.get(&self.settings.pool, &self.settings.namespace, key.as_str().as_bytes()).await;
        }
        let rows = self.query(GET, &[&self.settings.namespace, &key.as_str().as_bytes()], "get").await?;
        rows.first().map(|row| column::<Vec<u8>>(row, 0).map(Bytes::from)).transpose()
    }

    async fn set_bytes(&self, key: &CacheKey, value: Bytes, ttl: Option<Duration>) -> Result<(), KvError> {
        let ms = self.ttl_millis(ttl)?;
        self.check_size(&value)?;
        let (ns, k, v) = (&self.settings.namespace, key.as_str().as_bytes(), value.as_ref());
        self.query(SET, &[ns, &k, &v, &ms, &self.settings.jitter], "set").await?;
        Ok(())
    }

    async fn set_if_absent_bytes(&self, key: &CacheKey, value: Bytes, ttl: Option<Duration>) -> Result<bool, KvError> {
        let ms = self.ttl_millis(ttl)?;
        self.check_size(&value)?;
        let (ns, k, v) = (&self.settings.namespace, key.as_str().as_bytes(), value.as_ref());
        let rows = self.query(SET_IF_ABSENT, &[ns, &k, &v, &ms, &self.settings.jitter], "set if absent").await?;
        Ok(!rows.is_empty())
    }

    async fn delete(&self, key: &CacheKey) -> Result<bool, KvError> {
        let rows = self.query(DELETE, &[&self.settings.namespace, &key.as_str().as_bytes()], "delete").await?;
        match rows.first() {
            Some(row) => column::<bool>(row, 0),
            None => Ok(false),
        }
    }

    async fn exists(&self, key: &CacheKey) -> Result<bool, KvError> {
        let rows = self.query(EXISTS, &[&self.settings.namespace, &key.as_str().as_bytes()], "exists").await?;
        Ok(!rows.is_empty())
    }

    async fn ttl(&self, key: &CacheKey) -> Result<KeyTtl, KvError> {
        let rows = self.query(TTL, &[&self.settings.namespace, &key.as_str().as_bytes()], "ttl").await?;
        let Some(row) = rows.first() else { return Ok(KeyTtl::Missing) };
        let micros = column::<i64>(row, 0)?;
        Ok(KeyTtl::ExpiresIn(Duration::from_micros(micros.max(1).unsigned_abs())))
    }

    async fn get_many_bytes(&self, keys: &[CacheKey]) -> Result<Vec<Option<Bytes>>, KvError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let wanted: Vec<&[u8]> = keys.iter().map(|k| k.as_str().as_bytes()).collect();
        let rows = self.query(GET_MANY, &[&self.settings.namespace, &wanted], "get many").await?;
        let mut found: HashMap<Vec<u8>, Bytes> = HashMap::with_capacity(rows.len());
        for row in &rows {
            found.insert(column::<Vec<u8>>(row, 0)?, Bytes::from(column::<Vec<u8>>(row, 1)?));
        }
        Ok(wanted.iter().map(|k| found.get(*k).cloned()).collect())
    }

    async fn set_many_bytes(&self, entries: Vec<(CacheKey, Bytes)>, ttl: Option<Duration>) -> Result<(), KvError> {
        let ms = self.ttl_millis(ttl)?;
        for (_, value) in &entries {
            self.check_size(value)?;
        }
        if entries.is_empty() {
            return Ok(());
        }
        // One row per key, the last value given winning (as consecutive SETs would): an INSERT ... ON CONFLICT
        // may not touch one row twice.
        let mut last: HashMap<&str, usize> = HashMap::with_capacity(entries.len());
        for (i, (key, _)) in entries.iter().enumerate() {
            last.insert(key.as_str(), i);
        }
        let kept = entries.iter().enumerate().filter(|(i, (key, _))| last.get(key.as_str()) == Some(i));
        let (keys, values): (Vec<&[u8]>, Vec<&[u8]>) =
            kept.map(|(_, (key, value))| (key.as_str().as_bytes(), value.as_ref())).unzip();
        let params: [&(dyn ToSql + Sync); 5] = [&self.settings.namespace, &keys, &values, &ms, &self.settings.jitter];
        self.query(SET_MANY, &params, "set many").await?;
        Ok(())
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64, KvError> {
        if prefix.is_empty() {
            return Err(KvError::invalid("prefix", "must not be empty"));
        }
        let from = prefix.as_bytes();
        let to = successor(from).ok_or_else(|| KvError::invalid("prefix", "has no key after it"))?;
        let mut deleted = 0;
        loop {
            let params: [&(dyn ToSql + Sync); 4] = [&self.settings.namespace, &from, &to, &Self::DELETE_PREFIX_BATCH];
            let rows = self.query(Self::DELETE_PREFIX_SQL, &params, "delete prefix").await?;
            let row = rows.first().ok_or_else(|| KvError::backend("postgres", "delete prefix returned no row"))?;
            deleted += column::<i64>(row, 1)?.unsigned_abs();
            if column::<i64>(row, 0)? < Self::DELETE_PREFIX_BATCH {
                return Ok(deleted);
            }
        }
    }

    async fn increment_by(&self, key: &CacheKey, delta: i64, ttl: Option<Duration>) -> Result<i64, KvError> {
        let ms = self.ttl_millis(ttl)?;
        let (ns, k) = (&self.settings.namespace, key.as_str().as_bytes());
        for _ in 0..INCREMENT_ATTEMPTS {
            let params: [&(dyn ToSql + Sync); 5] = [ns, &k, &delta, &ms, &self.settings.jitter];
            let rows = self.query(INCREMENT_BY, &params, "increment by").await?;
            let row = rows.first().ok_or_else(|| KvError::backend("postgres", "increment by returned no row"))?;
            if let Some(sum) = column::<Option<Vec<u8>>>(row, 0)? {
                return Ok(decode_counter(&sum)?);
            }
            // Refused: say why from the value live before the statement, unless it changed meanwhile.
            match column::<Option<Vec<u8>>>(row, 1)?.map(|before| decode_counter(&before)) {
                Some(Err(not_a_counter)) => return Err(not_a_counter.into()),
                Some(Ok(before)) if before.checked_add(delta).is_none() => {
                    return Err(CodecError::CounterOverflow.into());
                }
                _ => {}
            }
        }
        Err(CodecError::NotAnInteger.into())
    }

    async fn expire(&self, key: &CacheKey, ttl: Option<Duration>) -> Result<bool, KvError> {
        let ms = self.ttl_millis(ttl)?;
        let params: [&(dyn ToSql + Sync); 4] =
            [&self.settings.namespace, &key.as_str().as_bytes(), &ms, &self.settings.jitter];
        Ok(!self.query(EXPIRE, &params, "expire").await?.is_empty())
    }

    async fn get_and_delete_bytes(&self, key: &CacheKey) -> Result<Option<Bytes>, KvError> {
        let params: [&(dyn ToSql + Sync); 2] = [&self.settings.namespace, &key.as_str().as_bytes()];
        let rows = self.query(GET_AND_DELETE, &params, "get and delete").await?;
        let Some(row) = rows.first() else { return Ok(None) };
        Ok(column::<bool>(row, 1)?.then(|| column::<Vec<u8>>(row, 0).map(Bytes::from)).transpose()?)
    }

    fn codec(&self) -> Codec {
        self.settings.codec.clone()
    }

    fn max_value_bytes(&self) -> usize {
        self.settings.max_value_bytes
    }

    /// One group per cache, shared by its clones.
    fn single_flight(&self) -> Option<Arc<SingleFlight<Bytes>>> {
        Some(Arc::clone(&self.flights))
    }

    fn compute_wait(&self) -> Duration {
        self.settings.compute_wait
    }
}

#[cfg(test)]
mod tests {
    use super::successor;

    #[test]
    fn the_successor_of_a_prefix_bounds_exactly_the_keys_starting_with_it() {
        assert_eq!(successor(b"user:"), Some(b"user;".to_vec()));
        assert_eq!(successor(&[0x61, 0xFF, 0xFF]), Some(vec![0x62]));
        assert_eq!(successor("ü".as_bytes()), Some(vec![0xC3, 0xBD]));
        assert_eq!(successor(&[0xFF]), None);
        let (from, to) = (b"ab".to_vec(), successor(b"ab").unwrap());
        for (key, starts) in [(&b"ab"[..], true), (b"ab\xff\xff", true), (b"ac", false), (b"aa\xff", false)] {
            assert_eq!(key >= &from[..] && key < &to[..], starts, "{key:?}");
        }
    }
}
