//! [`SqliteRateLimiter`]: the [`RateLimiter`] port over a SQLite table, exact token buckets and sliding logs on
//! SQLite's clock.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use cpc_pool::sqlite::SqlitePool;
use cpc_ports::rate_limit::math::{TokenBucket, nanos, sliding_window};
use cpc_ports::{KvError, RateLimitDecision, RateLimitKey, RateLimitPolicy, RateLimiter};
use rusqlite::{OptionalExtension, Transaction, params};

use crate::kv::write;

const NANOS_PER_MS: u128 = 1_000_000;
/// How many idle rows a check deletes at most.
const SWEEP_BATCH: i64 = 100;
const BUCKET: &str = "token_bucket";
const WINDOW: &str = "sliding_window";

const NOW: &str = concat!("SELECT ", now_ms!());
const LOAD: &str = "SELECT state FROM cpc_rate_limits WHERE key = ?1 AND algorithm = ?2";
const STORE: &str = "INSERT INTO cpc_rate_limits (key, algorithm, state, idle_at) VALUES (?1, ?2, ?3, ?4) \
     ON CONFLICT (key, algorithm) DO UPDATE SET state = excluded.state, idle_at = excluded.idle_at";
/// Deletes up to `?2` rows that describe a full allowance since before `?1` (ms).
const SWEEP: &str =
    "DELETE FROM cpc_rate_limits WHERE rowid IN (SELECT rowid FROM cpc_rate_limits WHERE idle_at <= ?1 LIMIT ?2)";
const RESET: &str = "DELETE FROM cpc_rate_limits WHERE key = ?1";

/// The SQLite [`RateLimiter`]: the table `cpc_rate_limits` of migration `2026-12-06-000004_create_rate_limits`
/// (run the library's SQLite migrations first), shared by every connection and process on the database file.
///
/// The same algorithms as the in-process limiter, on SQLite's clock (whole milliseconds):
///
/// * Token bucket: starts full, refills continuously, in integer arithmetic (a token is split into
///   `refill_interval` nanoseconds' worth of units), so no allowance is lost or made up by rounding.
/// * Sliding window: an exact log of what was spent when; a unit counts while `now - spent_at < window`.
///
/// A check reads the key's row, decides, and writes it back inside one `BEGIN IMMEDIATE` transaction, so concurrent
/// callers (of this pool, other pools or other processes) are serialized by SQLite's write lock and never get more
/// than the limit. A refused check spends nothing; its `retry_after` is the exact time after which the same check
/// is allowed if nobody else spends. State is kept per key and algorithm, so the two algorithms on one key are
/// independent; a later check with other parameters for the same algorithm reuses the state.
///
/// **Cost.** One write transaction per check, behind the pool's writer gate: a clock read, a row read and written,
/// and a sweep of up to 100 rows that describe a full allowance again (so idle keys do not pile up). A
/// sliding-window row holds 16 bytes per check in the window, rewritten by every check of the key: keep window
/// limits modest (hundreds to a few thousand) and use a token bucket for large allowances.
#[derive(Clone)]
pub struct SqliteRateLimiter {
    pool: SqlitePool,
}

impl SqliteRateLimiter {
    /// A rate limiter on `pool`.
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }

    /// The pool this limiter runs on.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

impl fmt::Debug for SqliteRateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteRateLimiter").field("pool", &self.pool.inner().name()).finish()
    }
}

/// `d` in whole milliseconds, rounded up (an instant "after `d`" is never early), saturating.
fn ceil_ms(d: Duration) -> i64 {
    i64::try_from(d.as_nanos().div_ceil(NANOS_PER_MS)).unwrap_or(i64::MAX)
}

/// A state column that does not parse (a row edited by hand) is a backend error, never a panic.
fn bad_state(algorithm: &str) -> KvError {
    KvError::backend("sqlite", format!("cpc_rate_limits holds a {algorithm} state that does not parse"))
}

/// A token bucket ([`TokenBucket`]) and when it was last refilled (ns on SQLite's clock).
struct Bucket {
    tokens: TokenBucket,
    updated_ns: u128,
}

impl Bucket {
    /// The stored bucket (`<level> <unit> <updated_ms>`), or a full one as of `now_ns`.
    fn load(
        state: Option<&[u8]>,
        capacity: u64,
        refill_tokens: u64,
        interval: Duration,
        now_ns: u128,
    ) -> Result<Self, KvError> {
        let fresh = TokenBucket::full(capacity, refill_tokens, interval);
        let Some(state) = state else {
            return Ok(Self { tokens: fresh, updated_ns: now_ns });
        };
        let text = std::str::from_utf8(state).map_err(|_| bad_state(BUCKET))?;
        let mut parts = text.split(' ').map(str::parse::<u128>);
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(Ok(level)), Some(Ok(unit)), Some(Ok(updated_ms)), None) if unit > 0 => Ok(Self {
                tokens: TokenBucket { level, unit, ..fresh },
                updated_ns: updated_ms.saturating_mul(NANOS_PER_MS),
            }),
            _ => Err(bad_state(BUCKET)),
        }
    }

    fn store(&self) -> Vec<u8> {
        format!("{} {} {}", self.tokens.level, self.tokens.unit, self.updated_ns / NANOS_PER_MS).into_bytes()
    }

    fn check(&mut self, cost: u64, now_ns: u128, policy: (u64, u64, Duration)) -> RateLimitDecision {
        self.tokens.refill(now_ns.saturating_sub(self.updated_ns));
        self.updated_ns = now_ns.max(self.updated_ns);
        let (capacity, refill_tokens, interval) = policy;
        self.tokens.configure(capacity, refill_tokens, interval);
        self.tokens.check(cost)
    }
}

/// A sliding log: when each spend happened (ms) and how much it was, oldest first.
struct Log {
    spent: Vec<(i64, u64)>,
    window_ns: u128,
}

impl Log {
    fn load(state: Option<&[u8]>, window: Duration) -> Result<Self, KvError> {
        let state = state.unwrap_or_default();
        if !state.len().is_multiple_of(16) {
            return Err(bad_state(WINDOW));
        }
        let spent = state
            .chunks_exact(16)
            .map(|c| {
                let (at, cost) = c.split_at(8);
                let at = i64::from_le_bytes(at.try_into().map_err(|_| bad_state(WINDOW))?);
                let cost = u64::from_le_bytes(cost.try_into().map_err(|_| bad_state(WINDOW))?);
                Ok((at, cost))
            })
            .collect::<Result<_, KvError>>()?;
        Ok(Self { spent, window_ns: window.as_nanos() })
    }

    fn store(&self) -> Vec<u8> {
        self.spent.iter().flat_map(|(at, cost)| at.to_le_bytes().into_iter().chain(cost.to_le_bytes())).collect()
    }

    /// How long after `now_ms` a spend made at `at_ms` stops counting.
    fn until(&self, at_ms: i64, now_ms: i64) -> Duration {
        until(self.window_ns, at_ms, now_ms)
    }

    fn check(&mut self, limit: u64, cost: u64, now_ms: i64) -> RateLimitDecision {
        let window_ns = self.window_ns;
        self.spent.retain(|&(at, _)| !until(window_ns, at, now_ms).is_zero());
        let spent = self.spent.iter().map(|&(at, spent)| (spent, self.until(at, now_ms)));
        let decision = sliding_window(limit, cost, spent, self.until(now_ms, now_ms));
        if decision.allowed {
            self.spent.push((now_ms, cost));
        }
        decision
    }
}

/// How long after `now_ms` a spend made at `at_ms` stops counting, in a window of `window_ns`.
fn until(window_ns: u128, at_ms: i64, now_ms: i64) -> Duration {
    let end = u128::try_from(at_ms).unwrap_or(0).saturating_mul(NANOS_PER_MS).saturating_add(window_ns);
    nanos(end.saturating_sub(u128::try_from(now_ms).unwrap_or(0).saturating_mul(NANOS_PER_MS)))
}

/// Decides one check on the state read in `tx`, writes the new state back and sweeps idle rows.
fn check_in(
    tx: &Transaction<'_>,
    key: &str,
    policy: RateLimitPolicy,
    cost: u64,
) -> rusqlite::Result<Result<RateLimitDecision, KvError>> {
    let now_ms: i64 = tx.prepare_cached(NOW)?.query_row([], |r| r.get(0))?;
    let now_ns = u128::try_from(now_ms).unwrap_or(0).saturating_mul(NANOS_PER_MS);
    let algorithm = match policy {
        RateLimitPolicy::TokenBucket { .. } => BUCKET,
        RateLimitPolicy::SlidingWindow { .. } => WINDOW,
    };
    let state: Option<Vec<u8>> =
        tx.prepare_cached(LOAD)?.query_row(params![key, algorithm], |r| r.get(0)).optional()?;
    let decided = match policy {
        RateLimitPolicy::TokenBucket { capacity, refill_tokens, refill_interval } => {
            Bucket::load(state.as_deref(), capacity, refill_tokens, refill_interval, now_ns).map(|mut bucket| {
                let decision = bucket.check(cost, now_ns, (capacity, refill_tokens, refill_interval));
                (decision, bucket.store())
            })
        }
        RateLimitPolicy::SlidingWindow { limit, window } => Log::load(state.as_deref(), window).map(|mut log| {
            let decision = log.check(limit, cost, now_ms);
            (decision, log.store())
        }),
    };
    let (decision, state) = match decided {
        Ok(decided) => decided,
        Err(e) => return Ok(Err(e)),
    };
    let idle_at = now_ms.saturating_add(ceil_ms(decision.reset_after));
    tx.prepare_cached(STORE)?.execute(params![key, algorithm, state, idle_at])?;
    tx.prepare_cached(SWEEP)?.execute(params![now_ms, SWEEP_BATCH])?;
    Ok(Ok(decision))
}

#[async_trait]
impl RateLimiter for SqliteRateLimiter {
    async fn check(
        &self,
        key: &RateLimitKey,
        policy: &RateLimitPolicy,
        cost: u64,
    ) -> Result<RateLimitDecision, KvError> {
        policy.validate(cost)?;
        let (key, policy) = (key.as_str().to_owned(), *policy);
        write(&self.pool, "rate limit check", move |tx| check_in(tx, &key, policy, cost)).await?
    }

    async fn reset(&self, key: &RateLimitKey) -> Result<(), KvError> {
        let key = key.as_str().to_owned();
        write(&self.pool, "rate limit reset", move |tx| tx.prepare_cached(RESET)?.execute(params![key])).await?;
        Ok(())
    }
}
