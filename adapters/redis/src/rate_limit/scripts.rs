//! The Lua script of [`RedisRateLimiter`](super::RedisRateLimiter): one atomic script runs a batch of checks
//! (one or many, see `batch.rs`) in one round trip. redis-rs sends it with `EVALSHA` and falls back to `EVAL` on
//! `NOSCRIPT`.
//!
//! The time comes from the server (`redis.call('TIME')`, read once per batch, microseconds), never from a client,
//! so every app instance counts on one clock; the checks of one batch all happen at that instant, in order, as if
//! each had run as a script of its own. The reply is one flat array, four numbers per check: `allowed (0 or 1),
//! remaining, retry_after_us (-1 when allowed), reset_after_us`, every number clamped to 2^53 - 1 so it survives
//! the conversion to an integer reply; or `-1, message, 0, 0` when the check failed (a key holding another type):
//! one check's failure is its caller's alone.
//!
//! What a check costs the server is what bounds decisions per second under load (a GET is a few thousand
//! instructions in Redis; a script call tens of thousands), so the script avoids work per check that can be done
//! once per batch or not at all: the checks of a batch that share a policy and cost are sent as one group (its
//! parameters parsed once, not per check), numbers go to `redis.call` as Lua numbers (Redis formats them itself,
//! `%.17g`), the strings a sliding window writes (its cutoff, expiry and score) are formatted once per group, its
//! members take no number formatting (a batch's nonce and two bytes), its expiry is renewed about once a window
//! rather than on every check, and the reply is flat (a nested array per check costs the server an allocation
//! each).

use std::sync::LazyLock;

use redis::{Script, ScriptInvocation};

/// The epoch of the token bucket's stored times, in Unix seconds (2023-11-14 22:13:20 UTC). Times are kept as
/// microseconds since it, so a Lua number (a double) still resolves 1/64 µs (until 2028-04; 1/32 µs until 2032-10).
#[cfg_attr(not(test), allow(dead_code))] // read by the unit tests; the script spells it out
pub(super) const TOKEN_BUCKET_EPOCH_SECS: u64 = 1_700_000_000;

/// GCRA, the token bucket as one number: `token_bucket(key, interval, cost, limit, now)`. `key` holds the
/// bucket, a string holding its theoretical arrival time (TAT): the server time, in microseconds since
/// [`TOKEN_BUCKET_EPOCH_SECS`], at which the bucket is full again. `interval` is the emission interval T
/// (microseconds per token, may be fractional), `cost` the cost in microseconds (cost * T), `limit` the burst
/// tolerance (capacity * T plus a slack of at most 1/32 µs that absorbs the TAT's rounding; see `Gcra`), `now`
/// the batch's server time on the same scale.
///
/// A missing (or unreadable, NaN included) bucket, or one whose TAT has passed, is full (TAT = now). A check is
/// allowed iff `TAT - now + cost * T <= capacity * T`; then `TAT += cost * T` is stored (rounded up, never in the
/// caller's favour; Redis writes the number as `%.17g`, which reads back exactly) with `SET .. PX` to expire when
/// the bucket is full again. A refused check writes nothing. Remaining is `floor((capacity * T - (TAT - now)) /
/// T)`, `retry_after` the excess over the tolerance, `reset_after` `TAT - now`. Returns the four numbers.
pub(super) const TOKEN_BUCKET: &str = r"
local function token_bucket(key, interval, cost, limit, now)
  local tat = tonumber(call('GET', key))
  if tat == nil or not (tat >= now) then tat = now end
  local due = tat - now + cost
  if due > limit then
    return 0, min(max, floor((limit - tat + now) / interval)), min(max, ceil(due - limit)), min(max, ceil(tat - now))
  end
  local new = tat + cost
  if new - tat < cost then new = new * 1.0000000000000002 end
  call('SET', key, new, 'PX', min(35184372088832, ceil((new - now) / 1000)))
  return 1, min(max, floor((limit - due) / interval)), -1, min(max, ceil(new - now))
end
";

/// The exact sliding log: `sliding_window(key, limit, window, cost, now, score, cutoff, ttl, keep, member)`. `key`
/// holds the log, a sorted set of one member per unit spent (score: server microseconds since the Unix epoch);
/// `window` is in microseconds; `now` is the batch's server time, `score` the same as a string, `cutoff` the score
/// at and below which entries have left the window, `ttl` the window in milliseconds (rounded up, a number),
/// `keep` twice that as a string, `member` a string no other check shares (a random nonce per batch and the
/// check's place in it, two bytes), suffixed with the unit's index when the cost is above one.
///
/// Drops what left the window (`ZREMRANGEBYSCORE`), counts the rest (`ZCARD`), and if the cost fits adds `cost`
/// members at `now` (the newest entry is then `now`, so the reset is the whole window) and makes sure the log
/// outlives them: it needs at least `ttl` left, and when it has less (`PTTL`: a new log has none) it gets `keep`,
/// two windows, so a busy key renews its expiry about once a window instead of on every check (`PEXPIRE` costs the
/// server about three times what `PTTL` does, with its rewrite to `PEXPIREAT`). A log so expires between one and
/// two windows after its newest entry. A refusal writes nothing; its `retry_after` is when the entry whose
/// departure makes room leaves the window, its reset when the newest entry does. Returns the four numbers.
pub(super) const SLIDING_WINDOW: &str = r"
local function sliding_window(key, limit, window, cost, now, score, cutoff, ttl, keep, member)
  call('ZREMRANGEBYSCORE', key, '-inf', cutoff)
  local count = call('ZCARD', key)
  if count + cost <= limit then
    if cost == 1 then
      call('ZADD', key, score, member)
    else
      local first = 1
      while first <= cost do
        local last = min(cost, first + 499)
        local args = {}
        for i = first, last do
          args[#args + 1] = score
          args[#args + 1] = member .. ':' .. i
        end
        call('ZADD', key, unpack(args))
        first = last + 1
      end
    end
    if call('PTTL', key) < ttl then call('PEXPIRE', key, keep) end
    return 1, min(max, mmax(0, limit - count - cost)), -1, min(max, mmax(1, window))
  end
  local nth = count + cost - limit - 1
  local entry = call('ZRANGE', key, nth, nth, 'WITHSCORES')
  local retry = min(max, mmax(1, tonumber(entry[2]) + window - now))
  local reset = 0
  if count > 0 then
    local newest = call('ZRANGE', key, -1, -1, 'WITHSCORES')
    reset = min(max, mmax(1, tonumber(newest[2]) + window - now))
  end
  return 0, min(max, mmax(0, limit - count)), retry, reset
end
";

/// The batch: `ARGV[1]` is a random nonce (the sliding window's members); then one group after another, each
/// five arguments: its kind (`t` token bucket, `s` sliding window), three parameters (`interval, cost, limit` or
/// `limit, window, cost`) and `n`, how many of the keys that follow are its checks. `KEYS` are the checks' keys,
/// group by group. Runs the checks in that order, each under `pcall` so that a failing one (a key holding another
/// type) answers `-1, message, 0, 0` and leaves the others alone, and returns four values per check, flat.
pub(super) const BATCH: &str = r"
local out, k, a = {}, 0, 2
local nonce = ARGV[1]
local tnow = (sec - 1700000000) * 1000000 + usec
local snow = sec * 1000000 + usec
local score
while a < #ARGV do
  local kind, p1, p2, p3 = ARGV[a], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local last = k + tonumber(ARGV[a + 4])
  a = a + 5
  local cutoff, ttl, keep
  if kind == 's' then
    score = score or string.format('%d', snow)
    cutoff = string.format('%d', snow - p2)
    ttl = min(2 ^ 45, ceil(p2 / 1000))
    keep = string.format('%d', 2 * ttl)
  end
  while k < last do
    k = k + 1
    local ok, r1, r2, r3, r4
    if kind == 't' then
      ok, r1, r2, r3, r4 = pcall(token_bucket, KEYS[k], p1, p2, p3, tnow)
    else
      local member = nonce .. char(k % 256, floor(k / 256))
      ok, r1, r2, r3, r4 = pcall(sliding_window, KEYS[k], p1, p2, p3, snow, score, cutoff, ttl, keep, member)
    end
    local o = 4 * k - 4
    if not ok then
      if type(r1) == 'table' and r1.err then r1 = r1.err end
      r1, r2, r3, r4 = -1, tostring(r1), 0, 0
    end
    out[o + 1], out[o + 2], out[o + 3], out[o + 4] = r1, r2, r3, r4
  end
end
return out
";

/// What every check reads: the server's clock, once, the largest integer a reply carries exactly, and local
/// names for the functions the checks call (a local is cheaper to reach than a global).
const PRELUDE: &str = r"
local call, pcall, tonumber, char = redis.call, pcall, tonumber, string.char
local min, mmax, floor, ceil = math.min, math.max, math.floor, math.ceil
local time = call('TIME')
local sec = tonumber(time[1])
local usec = tonumber(time[2])
local max = 9007199254740991
";

/// The whole script: the clock, the two checks, the batch loop.
pub(super) static CHECKS_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| Script::new(&[PRELUDE, TOKEN_BUCKET, SLIDING_WINDOW, BATCH].concat()));

/// A check's policy and cost as the script takes them: checks with equal parameters in one batch form one group.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Params {
    /// `token_bucket`'s `interval, cost, limit` (see `Gcra`).
    TokenBucket { interval: f64, cost: f64, limit: f64 },
    /// `sliding_window`'s `limit, window (µs), cost`.
    SlidingWindow { limit: u64, window_us: u64, cost: u64 },
}

impl Params {
    /// Adds this group's five arguments to `invocation`, for `n` checks.
    pub(super) fn add_group(&self, invocation: &mut ScriptInvocation<'_>, n: usize) {
        match *self {
            Params::TokenBucket { interval, cost, limit } => {
                invocation.arg("t").arg(interval.to_string()).arg(cost.to_string()).arg(limit.to_string())
            }
            Params::SlidingWindow { limit, window_us, cost } => invocation.arg("s").arg(limit).arg(window_us).arg(cost),
        };
        invocation.arg(n);
    }

    /// Whether the group writes sliding window members (so the batch needs a nonce).
    pub(super) fn is_sliding_window(&self) -> bool {
        matches!(self, Params::SlidingWindow { .. })
    }
}
