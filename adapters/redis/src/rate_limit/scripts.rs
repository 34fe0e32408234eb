//! The Lua script of [`RedisRateLimiter`](super::RedisRateLimiter): one atomic script runs a batch of checks
//! (one or many, see `batch.rs`) in one round trip. redis-rs sends it with `EVALSHA` and falls back to `EVAL` on
//! `NOSCRIPT`.
//!
//! The time comes from the server (`redis.call('TIME')`, read once per batch, microseconds), never from a client,
//! so every app instance counts on one clock; the checks of one batch all happen at that instant, in order, as if
//! each had run as a script of its own. Each check answers `{allowed (0 or 1), remaining, retry_after_us (-1 when
//! allowed), reset_after_us}`, every number clamped to 2^53 - 1 so it survives the conversion to an integer reply,
//! or `{-1, message}` when it failed (a key holding another type): one check's failure is its caller's alone.

use std::sync::LazyLock;

use redis::Script;

/// The epoch of the token bucket's stored times, in Unix seconds (2023-11-14 22:13:20 UTC). Times are kept as
/// microseconds since it, so a Lua number (a double) still resolves 1/64 µs (until 2028-04; 1/32 µs until 2032-10).
#[cfg_attr(not(test), allow(dead_code))] // read by the unit tests; the script spells it out
pub(super) const TOKEN_BUCKET_EPOCH_SECS: u64 = 1_700_000_000;

/// GCRA, the token bucket as one number: `token_bucket(key, interval, cost, limit)`. `key` holds the bucket, a
/// string holding its theoretical arrival time (TAT): the server time, in microseconds since
/// [`TOKEN_BUCKET_EPOCH_SECS`], at which the bucket is full again. `interval` is the emission interval T
/// (microseconds per token, may be fractional), `cost` the cost in microseconds (cost * T), `limit` the burst
/// tolerance (capacity * T plus a slack of at most 1/32 µs that absorbs the TAT's rounding; see
/// `RedisRateLimiter::decide`).
///
/// A missing (or unreadable, NaN included) bucket, or one whose TAT has passed, is full (TAT = now). A check is allowed iff
/// `TAT - now + cost * T <= capacity * T`; then `TAT += cost * T` is stored (rounded up, never in the caller's
/// favour) with `SET .. PX` to expire when the bucket is full again. A refused check writes nothing. Remaining
/// is `floor((capacity * T - (TAT - now)) / T)`, `retry_after` the excess over the tolerance, `reset_after`
/// `TAT - now`.
pub(super) const TOKEN_BUCKET: &str = r"
local function token_bucket(key, interval, cost, limit)
  local now = (sec - 1700000000) * 1000000 + usec
  local tat = tonumber(redis.call('GET', key))
  if tat == nil or not (tat >= now) then tat = now end
  local due = tat - now + cost
  if due > limit then
    return {0, math.min(max, math.floor((limit - tat + now) / interval)),
      math.min(max, math.ceil(due - limit)), math.min(max, math.ceil(tat - now))}
  end
  local new = tat + cost
  if new - tat < cost then new = new * 1.0000000000000002 end
  redis.call('SET', key, string.format('%.17g', new), 'PX', math.min(35184372088832, math.ceil((new - now) / 1000)))
  return {1, math.min(max, math.floor((limit - due) / interval)), -1, math.min(max, math.ceil(new - now))}
end
";

/// The exact sliding log: `sliding_window(key, limit, window, cost, nonce)`. `key` holds the log, a sorted set of
/// one member per unit spent (score: server microseconds); `window` is in microseconds; `nonce` is random and makes
/// members unique.
///
/// Drops what left the window (`ZREMRANGEBYSCORE`), counts the rest (`ZCARD`), and if the cost fits adds `cost`
/// members at `now` and sets the log to expire when they leave the window (the newest entry is then `now`, so the
/// reset is the whole window). A refusal writes nothing more; its `retry_after` is when the entry whose departure
/// makes room leaves the window, its reset when the newest entry does.
pub(super) const SLIDING_WINDOW: &str = r"
local function sliding_window(key, limit, window, cost, nonce)
  local now = sec * 1000000 + usec
  redis.call('ZREMRANGEBYSCORE', key, '-inf', string.format('%d', now - window))
  local count = redis.call('ZCARD', key)
  if count + cost <= limit then
    local first = 1
    while first <= cost do
      local last = math.min(cost, first + 499)
      local args = {}
      for i = first, last do
        args[#args + 1] = string.format('%d', now)
        args[#args + 1] = nonce .. ':' .. string.format('%d', i)
      end
      redis.call('ZADD', key, unpack(args))
      first = last + 1
    end
    redis.call('PEXPIRE', key, string.format('%d', math.min(2 ^ 45, math.ceil(window / 1000))))
    return {1, math.min(max, math.max(0, limit - count - cost)), -1, math.min(max, math.max(1, window))}
  end
  local nth = string.format('%d', count + cost - limit - 1)
  local entry = redis.call('ZRANGE', key, nth, nth, 'WITHSCORES')
  local retry = math.min(max, math.max(1, tonumber(entry[2]) + window - now))
  local reset = 0
  if count > 0 then
    local newest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
    reset = math.min(max, math.max(1, tonumber(newest[2]) + window - now))
  end
  return {0, math.min(max, math.max(0, limit - count)), retry, reset}
end
";

/// The batch: `KEYS[i]` is check i's key; `ARGV[5i-4 .. 5i]` its kind (`t` token bucket, `s` sliding window) and
/// four parameters (`interval, cost, limit, -` or `limit, window, cost, nonce`). Reads `TIME` once, runs the checks
/// in order, each under `pcall` so that a failing one (a key holding another type) answers `{-1, message}` and
/// leaves the others alone, and returns one answer per check.
pub(super) const BATCH: &str = r"
local out = {}
for i = 1, #KEYS do
  local a = (i - 1) * 5
  local ok, r
  if ARGV[a + 1] == 't' then
    ok, r = pcall(token_bucket, KEYS[i], tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4]))
  else
    ok, r = pcall(sliding_window, KEYS[i], tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4]),
      ARGV[a + 5])
  end
  if ok then
    out[i] = r
  elseif type(r) == 'table' and r.err then
    out[i] = {-1, r.err}
  else
    out[i] = {-1, tostring(r)}
  end
end
return out
";

/// What every check reads: the server's clock, once, and the largest integer a reply carries exactly.
const PRELUDE: &str = r"
local time = redis.call('TIME')
local sec = tonumber(time[1])
local usec = tonumber(time[2])
local max = 9007199254740991
";

/// The whole script: the clock, the two checks, the batch loop.
pub(super) static CHECKS_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| Script::new(&[PRELUDE, TOKEN_BUCKET, SLIDING_WINDOW, BATCH].concat()));
