//! [`PgRateLimiter`]: the [`RateLimiter`] port on PostgreSQL, one `INSERT ... ON CONFLICT DO UPDATE` per decision.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cpc_pool::postgres::PgPool;
use cpc_pool::postgres::kv::{self, column};
use cpc_ports::{KvError, RateLimitDecision, RateLimitKey, RateLimitPolicy, RateLimiter};
use tokio_postgres::types::ToSql;

use crate::sweeper::{Pass, Sweeper};

/// The server's clock, read once, as a FROM item: `n.ts` (timestamptz) and `n.now_us` (microseconds since the
/// Unix epoch, exact numeric).
const CLOCK: &str =
    "(SELECT clock_timestamp() AS ts) c, LATERAL (SELECT c.ts, extract(epoch FROM c.ts) * 1000000 AS now_us) n";

/// The bucket's parameters as GCRA times in microseconds, as a FROM item: `p.t` the time one token takes to
/// refill (`$5` the refill interval in µs, `$6` the tokens per interval), `p.cost` what the check moves the
/// bucket's TAT by (`$3` tokens), `p.lim` how far the TAT may run ahead of now (`$4`, the capacity). Exact numeric.
const BUCKET: &str = "(SELECT $3::text::numeric * x.t AS cost, $4::text::numeric * x.t AS lim, x.t \
     FROM (SELECT $5::text::numeric / $6::text::numeric AS t) x) p";

/// The longest expiry a row gets: 100 years, in microseconds (a policy with a refill interval of centuries still
/// writes a valid timestamp).
const MAX_EXPIRY_US: &str = "3155760000000000";

/// GCRA, the token bucket as one number, in one statement (`$1` namespace, `$2` key; see [`BUCKET`] for the
/// rest). A missing row is a full bucket: it is inserted with `tat = now + cost` (a cost never exceeds the
/// capacity, so a full bucket always allows it). Otherwise the row is locked (a concurrent check on the key waits
/// for this one to commit) and, with `start = max(tat, now)` (a NaN or infinite `tat` written by hand counts as
/// now), the check is allowed iff `start - now + cost <= capacity * T`; then `tat = start + cost` and the row
/// expires when the bucket is full again. A refusal keeps `tat` and the expiry. The decision is written into the
/// row and returned: remaining `floor((capacity * T - (tat - now)) / T)`, `retry_us` the excess over the
/// tolerance (refusals only), `reset_us` `tat - now`, each rounded up to whole microseconds.
fn token_bucket_sql() -> String {
    format!(
        "INSERT INTO cpc_rate_limits AS r \
           (namespace, key, algorithm, tat, expires_at, allowed, remaining, retry_us, reset_us) \
         SELECT $1, $2, 'token_bucket', n.now_us + p.cost, \
           n.ts + least(ceil(p.cost), {MAX_EXPIRY_US})::float8 * interval '1 microsecond', \
           true, floor((p.lim - p.cost) / p.t), NULL, least(ceil(p.cost), 9223372036854775807)::bigint \
         FROM {CLOCK}, {BUCKET} \
         ON CONFLICT (namespace, key, algorithm) DO UPDATE SET \
           (tat, expires_at, allowed, remaining, retry_us, reset_us) = ( \
           SELECT CASE WHEN d.ok THEN d.start + p.cost ELSE r.tat END, \
             CASE WHEN d.ok THEN n.ts + least(ceil(d.start + p.cost - n.now_us), {MAX_EXPIRY_US})::float8 \
               * interval '1 microsecond' ELSE r.expires_at END, \
             d.ok, \
             greatest(0, floor((p.lim - d.ahead - CASE WHEN d.ok THEN p.cost ELSE 0 END) / p.t)), \
             CASE WHEN d.ok THEN NULL \
               ELSE least(greatest(1, ceil(d.ahead + p.cost - p.lim)), 9223372036854775807)::bigint END, \
             least(ceil(d.ahead + CASE WHEN d.ok THEN p.cost ELSE 0 END), 9223372036854775807)::bigint \
           FROM {CLOCK}, {BUCKET}, \
             LATERAL (SELECT greatest(n.now_us, CASE WHEN r.tat < 'Infinity' THEN r.tat END) AS start) s, \
             LATERAL (SELECT s.start, s.start - n.now_us AS ahead, s.start - n.now_us + p.cost <= p.lim AS ok) d) \
         RETURNING allowed, remaining::text, retry_us, reset_us"
    )
}

/// The exact sliding log in one statement: `$1` namespace, `$2` key, `$3` cost, `$4` limit, `$5` window (µs). The
/// row keeps one entry per allowed check (time in server microseconds, cost), oldest first. A missing row is an
/// empty log: it is inserted with this check's entry. Otherwise the row is locked (a concurrent check on the key
/// waits for this one to commit), the entries that left the window (`at + window <= now`) are dropped, and the
/// check is allowed iff the costs left plus its own fit the limit; then its entry is appended and the row expires
/// one window from now. A refusal keeps the entries (and the expiry); its `retry_us` is when the oldest entry whose
/// departure makes room leaves the window, its `reset_us` when the newest does.
fn sliding_window_sql() -> String {
    format!(
        "INSERT INTO cpc_rate_limits AS r \
           (namespace, key, algorithm, log_at, log_cost, expires_at, allowed, remaining, retry_us, reset_us) \
         SELECT $1, $2, 'sliding_window', ARRAY[floor(n.now_us)::bigint], ARRAY[$3::bigint], \
           n.ts + least($5::bigint, {MAX_EXPIRY_US})::float8 * interval '1 microsecond', \
           true, $4::bigint - $3::bigint, NULL, $5::bigint \
         FROM {CLOCK} \
         ON CONFLICT (namespace, key, algorithm) DO UPDATE SET \
           (log_at, log_cost, expires_at, allowed, remaining, retry_us, reset_us) = ( \
           SELECT CASE WHEN d.ok THEN l.ats || m.now ELSE l.ats END, \
             CASE WHEN d.ok THEN l.costs || $3::bigint ELSE l.costs END, \
             CASE WHEN d.ok THEN n.ts + least($5::bigint, {MAX_EXPIRY_US})::float8 * interval '1 microsecond' \
               ELSE r.expires_at END, \
             d.ok, \
             greatest(0, $4::bigint - l.spent - CASE WHEN d.ok THEN $3::bigint ELSE 0 END), \
             CASE WHEN NOT d.ok THEN greatest(1, ( \
               SELECT e.at + $5::bigint - m.now FROM ( \
                 SELECT e.at, sum(e.cost) OVER (ORDER BY e.at, e.i) AS freed \
                 FROM unnest(l.ats, l.costs) WITH ORDINALITY AS e(at, cost, i)) e \
               WHERE e.freed >= l.spent + $3::bigint - $4::bigint ORDER BY e.at LIMIT 1)) END, \
             CASE WHEN d.ok THEN $5::bigint WHEN l.newest IS NULL THEN 0 \
               ELSE greatest(1, l.newest + $5::bigint - m.now) END \
           FROM {CLOCK}, LATERAL (SELECT floor(n.now_us)::bigint AS now) m, \
             LATERAL (SELECT coalesce(array_agg(e.at ORDER BY e.at), '{{}}') AS ats, \
                 coalesce(array_agg(e.cost ORDER BY e.at), '{{}}') AS costs, \
                 coalesce(sum(e.cost), 0) AS spent, max(e.at) AS newest \
               FROM unnest(r.log_at, r.log_cost) AS e(at, cost) \
               WHERE e.at > m.now - $5::bigint AND e.cost > 0) l, \
             LATERAL (SELECT l.spent + $3::bigint <= $4::bigint AS ok) d) \
         RETURNING allowed, remaining::text, retry_us, reset_us"
    )
}

const RESET: &str = "DELETE FROM cpc_rate_limits WHERE namespace = $1 AND key = $2";

/// Sweeps one batch of rows describing a full allowance again (of any namespace), skipping rows a check holds.
const SWEEP: &str = "WITH gone AS (DELETE FROM cpc_rate_limits WHERE ctid = ANY(ARRAY( \
       SELECT ctid FROM cpc_rate_limits WHERE expires_at <= now() LIMIT $1 FOR UPDATE SKIP LOCKED)) RETURNING 1) \
     SELECT count(*) FROM gone";

/// The most batches one sweep pass deletes, so a pass always ends; the next pass takes the rest.
const MAX_SWEEP_BATCHES: u32 = 1000;

/// The longest sliding window, in microseconds (10^15 ms, as every duration the PostgreSQL ports take).
const MAX_WINDOW_US: u128 = 1_000_000_000_000_000_000;

/// The PostgreSQL [`RateLimiter`]: the UNLOGGED table `cpc_rate_limits` of migration
/// `2026-12-06-000002_kv_rate_limits` (run the embedded migrations first), one row per (namespace, key,
/// algorithm), so the two algorithms on one key never share state and [`RateLimiter::reset`] deletes both rows.
///
/// **One round trip per decision, exact under concurrency.** Each check is ONE statement, an
/// `INSERT ... ON CONFLICT DO UPDATE SET (...) = (SELECT ...) RETURNING` that does the arithmetic on the server:
/// concurrent checks on one key queue on its row lock, and each computes from the version the previous one
/// committed, so with N concurrent callers no more than the limit is ever allowed. Time is the server's clock
/// (`clock_timestamp()`, read after the row lock is taken, so a check that waited counts from when it ran).
///
/// * [`RateLimitPolicy::TokenBucket`]: GCRA, the bucket kept as its theoretical arrival time (`tat`, exact
///   numeric microseconds: no rounding drift however long it runs). A refused check spends nothing.
/// * [`RateLimitPolicy::SlidingWindow`]: an exact sliding log (as the Redis adapter's), one entry per allowed
///   check (time and cost) in two arrays of the row, so a check costs time proportional to the checks still in
///   the window; prefer a token bucket for large limits.
///
/// The statement writes the decision into the row (columns `allowed`, `remaining`, `retry_us`, `reset_us`) and
/// returns it, so a refusal rewrites the row with its state unchanged. The state is kept per (key, algorithm): a
/// later check with other parameters for the same algorithm reuses it, as on Redis.
///
/// **Cleanup.** Each row carries `expires_at`, when it describes a full allowance again (the bucket full, the log
/// empty); such rows are exactly equivalent to no row. A background sweeper deletes them every
/// [`PgRateLimiter::with_sweep_interval`] (default 60 s) in batches of 500 rows, each a
/// `DELETE ... WHERE ctid = ANY(ARRAY(SELECT ctid ... LIMIT 500 FOR UPDATE SKIP LOCKED))` that skips rows a check
/// holds. It starts on the first check (on that call's tokio runtime) and stops when the last clone of the limiter
/// is dropped; with `None`, call [`PgRateLimiter::sweep`] yourself.
///
/// The table is UNLOGGED (no WAL): after a server crash, or on a promoted standby, every key starts again with its
/// full allowance. Keys live under the limiter's namespace ([`PgRateLimiter::with_namespace`], empty by default).
#[derive(Clone)]
pub struct PgRateLimiter {
    settings: Arc<Settings>,
    sweeper: Arc<Sweeper>,
}

struct Settings {
    pool: PgPool,
    namespace: String,
    sweep_interval: Option<Duration>,
    token_bucket: String,
    sliding_window: String,
}

impl PgRateLimiter {
    /// How often the sweeper runs by default: every 60 s.
    pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(60);
    /// How many rows one sweep statement deletes at most.
    pub const SWEEP_BATCH: i64 = 500;

    /// A limiter on `pool` (the migrations run), in the empty namespace, sweeping every 60 s.
    pub fn new(pool: PgPool) -> Self {
        Self::build(pool, String::new(), Some(Self::DEFAULT_SWEEP_INTERVAL))
    }

    fn build(pool: PgPool, namespace: String, sweep_interval: Option<Duration>) -> Self {
        let settings = Arc::new(Settings {
            pool,
            namespace,
            sweep_interval,
            token_bucket: token_bucket_sql(),
            sliding_window: sliding_window_sql(),
        });
        let pool = settings.pool.clone();
        let pass: Pass = Arc::new(move || {
            let pool = pool.clone();
            Box::pin(async move { sweep(&pool).await })
        });
        Self { sweeper: Arc::new(Sweeper::new(sweep_interval, "PgRateLimiter", pass)), settings }
    }

    /// The same limiter in `namespace`: its keys count apart from those of every other namespace. Has a sweeper
    /// of its own.
    #[must_use]
    pub fn with_namespace(self, namespace: impl Into<String>) -> Self {
        Self::build(self.settings.pool.clone(), namespace.into(), self.settings.sweep_interval)
    }

    /// The same limiter, sweeping every `interval` in the background, or never with `None` (then call
    /// [`PgRateLimiter::sweep`]). Has a sweeper of its own.
    #[must_use]
    pub fn with_sweep_interval(self, interval: Option<Duration>) -> Self {
        Self::build(self.settings.pool.clone(), self.settings.namespace.clone(), interval)
    }

    /// The namespace of this limiter's keys.
    pub fn namespace(&self) -> &str {
        &self.settings.namespace
    }

    /// The pool this limiter runs on.
    pub fn pool(&self) -> &PgPool {
        &self.settings.pool
    }

    /// Runs one sweep pass now: deletes rows (of every namespace) that describe a full allowance again, in
    /// batches of [`Self::SWEEP_BATCH`]; returns how many.
    ///
    /// # Errors
    /// The pool's or the server's failure.
    pub async fn sweep(&self) -> Result<u64, KvError> {
        sweep(&self.settings.pool).await
    }

    async fn decide(
        &self,
        key: &RateLimitKey,
        policy: &RateLimitPolicy,
        cost: u64,
    ) -> Result<RateLimitDecision, KvError> {
        policy.validate(cost)?;
        self.sweeper.ensure_running();
        let (ns, k) = (&self.settings.namespace, key.as_str().as_bytes());
        let rows = match *policy {
            RateLimitPolicy::TokenBucket { capacity, refill_tokens, refill_interval } => {
                let ns_total = refill_interval.as_nanos();
                let interval_us = format!("{}.{:03}", ns_total / 1000, ns_total % 1000);
                let (cost, capacity, refill) = (cost.to_string(), capacity.to_string(), refill_tokens.to_string());
                let params: [&(dyn ToSql + Sync); 6] = [ns, &k, &cost, &capacity, &interval_us, &refill];
                kv::query(&self.settings.pool, &self.settings.token_bucket, &params, "check token bucket").await?
            }
            RateLimitPolicy::SlidingWindow { limit, window } => {
                let window_us = window.as_nanos().div_ceil(1000);
                if window_us > MAX_WINDOW_US {
                    return Err(KvError::invalid("window", "must be at most 10^15 milliseconds"));
                }
                // Validated above: limit and cost are at most 100,000, the window at most 10^18 µs.
                let (cost, limit, window_us) = (as_i64(u128::from(cost)), as_i64(u128::from(limit)), as_i64(window_us));
                let params: [&(dyn ToSql + Sync); 5] = [ns, &k, &cost, &limit, &window_us];
                kv::query(&self.settings.pool, &self.settings.sliding_window, &params, "check sliding window").await?
            }
        };
        let row = rows.first().ok_or_else(|| KvError::backend("postgres", "a rate limit check returned no row"))?;
        decision(row, policy.limit())
    }
}

fn as_i64(n: u128) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The decision in the row a check returned: `allowed, remaining (text), retry_us, reset_us`.
fn decision(row: &tokio_postgres::Row, limit: u64) -> Result<RateLimitDecision, KvError> {
    let allowed = column::<bool>(row, 0)?;
    let remaining = parse_count(&column::<String>(row, 1)?)
        .ok_or_else(|| KvError::backend("postgres", "a rate limit check returned an unreadable remaining count"))?;
    let retry_us = column::<Option<i64>>(row, 2)?;
    let reset_us = column::<i64>(row, 3)?;
    let micros = |us: i64| Duration::from_micros(us.max(0).unsigned_abs());
    Ok(RateLimitDecision {
        allowed,
        limit,
        remaining: remaining.min(limit),
        retry_after: (!allowed).then(|| micros(retry_us.unwrap_or(1)).max(Duration::from_micros(1))),
        reset_after: micros(reset_us),
    })
}

/// A non-negative whole number as numeric text (`"12"`, `"12.000"`), saturating at `u64::MAX`.
fn parse_count(text: &str) -> Option<u64> {
    let whole = text.split('.').next().unwrap_or(text);
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(whole.parse::<u64>().unwrap_or(u64::MAX))
}

/// One sweep pass over the table.
async fn sweep(pool: &PgPool) -> Result<u64, KvError> {
    let batch = PgRateLimiter::SWEEP_BATCH;
    let mut total = 0;
    for _ in 0..MAX_SWEEP_BATCHES {
        let rows = kv::query(pool, SWEEP, &[&batch], "sweep rate limits").await?;
        let row = rows.first().ok_or_else(|| KvError::backend("postgres", "a count returned no row"))?;
        let n = column::<i64>(row, 0)?.unsigned_abs();
        total += n;
        if n < batch.unsigned_abs() {
            break;
        }
    }
    Ok(total)
}

impl fmt::Debug for PgRateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgRateLimiter")
            .field("namespace", &self.settings.namespace)
            .field("sweep_interval", &self.settings.sweep_interval)
            .finish()
    }
}

#[async_trait]
impl RateLimiter for PgRateLimiter {
    async fn check(
        &self,
        key: &RateLimitKey,
        policy: &RateLimitPolicy,
        cost: u64,
    ) -> Result<RateLimitDecision, KvError> {
        self.decide(key, policy, cost).await
    }

    async fn reset(&self, key: &RateLimitKey) -> Result<(), KvError> {
        self.sweeper.ensure_running();
        let params: [&(dyn ToSql + Sync); 2] = [&self.settings.namespace, &key.as_str().as_bytes()];
        kv::query(&self.settings.pool, RESET, &params, "reset rate limit").await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_parse_from_numeric_text_and_garbage_does_not() {
        assert_eq!(parse_count("12"), Some(12));
        assert_eq!(parse_count("12.000"), Some(12));
        assert_eq!(parse_count("99999999999999999999999"), Some(u64::MAX));
        assert_eq!(parse_count("-1"), None);
        assert_eq!(parse_count("NaN"), None);
        assert_eq!(parse_count(""), None);
    }

    #[test]
    fn the_checks_time_with_the_server_clock_after_the_row_lock() {
        for sql in [token_bucket_sql(), sliding_window_sql()] {
            assert_eq!(sql.matches("clock_timestamp()").count(), 2, "once for a new row, once under the lock");
            assert!(!sql.contains("now()"), "one clock only");
            assert!(sql.contains("ON CONFLICT (namespace, key, algorithm) DO UPDATE SET"), "{sql}");
        }
    }
}
