//! The Lua scripts of [`RedisRateLimiter`](super::RedisRateLimiter): one atomic script, one round trip per
//! check. redis-rs sends them with `EVALSHA` and falls back to `EVAL` on `NOSCRIPT`.
//!
//! Both read the time from the server (`redis.call('TIME')`, microseconds), never from a client, so every app
//! instance counts on one clock. Both return `{allowed (0 or 1), remaining, retry_after_us (-1 when allowed),
//! reset_after_us}`, every number clamped to 2^53 - 1 so it survives the conversion to an integer reply.

use std::sync::LazyLock;

use redis::Script;

/// The epoch of the token bucket's stored times, in Unix seconds (2023-11-14 22:13:20 UTC). Times are kept as
/// microseconds since it, so a Lua number (a double) still resolves 1/64 µs (until 2028-04; 1/32 µs until 2032-10).
#[cfg_attr(not(test), allow(dead_code))] // read by the unit tests; the script spells it out
pub(super) const TOKEN_BUCKET_EPOCH_SECS: u64 = 1_700_000_000;

/// GCRA, the token bucket as one number. `KEYS[1]` the bucket, a string holding its theoretical arrival time
/// (TAT): the server time, in microseconds since [`TOKEN_BUCKET_EPOCH_SECS`], at which the bucket is full again.
/// `ARGV[1]` the emission interval T (microseconds per token, may be fractional), `ARGV[2]` the cost in
/// microseconds (cost * T), `ARGV[3]` the burst tolerance (capacity * T plus a slack of at most 1/32 µs that
/// absorbs the TAT's rounding; see `RedisRateLimiter::decide`).
///
/// A missing (or unreadable, NaN included) bucket, or one whose TAT has passed, is full (TAT = now). A check is allowed iff
/// `TAT - now + cost * T <= capacity * T`; then `TAT += cost * T` is stored (rounded up, never in the caller's
/// favour) with `SET .. PX` to expire when the bucket is full again. A refused check writes nothing. Remaining
/// is `floor((capacity * T - (TAT - now)) / T)`, `retry_after` the excess over the tolerance, `reset_after`
/// `TAT - now`.
pub(super) const TOKEN_BUCKET: &str = r"
local interval = tonumber(ARGV[1])
local cost = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local time = redis.call('TIME')
local now = (time[1] - 1700000000) * 1000000 + time[2]
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or not (tat >= now) then tat = now end
local due = tat - now + cost
if due > limit then
  return {0, math.min(9007199254740991, math.floor((limit - tat + now) / interval)),
    math.min(9007199254740991, math.ceil(due - limit)), math.min(9007199254740991, math.ceil(tat - now))}
end
local new = tat + cost
if new - tat < cost then new = new * 1.0000000000000002 end
redis.call('SET', KEYS[1], string.format('%.17g', new), 'PX', math.min(35184372088832, math.ceil((new - now) / 1000)))
return {1, math.min(9007199254740991, math.floor((limit - due) / interval)), -1,
  math.min(9007199254740991, math.ceil(new - now))}
";

/// `KEYS[1]` the log, a sorted set of one member per unit spent (score: server microseconds); `ARGV[1]`
/// limit, `ARGV[2]` window in microseconds, `ARGV[3]` cost, `ARGV[4]` a random nonce making members unique.
///
/// Drops what left the window (`ZREMRANGEBYSCORE`), counts the rest (`ZCARD`), and if the cost fits adds `cost`
/// members at `now`. A refusal's `retry_after` is when the entry whose departure makes room leaves the window.
/// The set expires when its newest entry leaves the window.
pub(super) const SLIDING_WINDOW: &str = r"
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local max = 9007199254740991
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', now - window))
local count = redis.call('ZCARD', KEYS[1])
local allowed = 0
local retry = -1
if count + cost <= limit then
  allowed = 1
  local first = 1
  while first <= cost do
    local last = math.min(cost, first + 499)
    local args = {}
    for i = first, last do
      args[#args + 1] = string.format('%d', now)
      args[#args + 1] = ARGV[4] .. ':' .. string.format('%d', i)
    end
    redis.call('ZADD', KEYS[1], unpack(args))
    first = last + 1
  end
  count = count + cost
else
  local nth = string.format('%d', count + cost - limit - 1)
  local entry = redis.call('ZRANGE', KEYS[1], nth, nth, 'WITHSCORES')
  retry = math.min(max, math.max(1, tonumber(entry[2]) + window - now))
end
local reset = 0
if count > 0 then
  local newest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  reset = math.min(max, math.max(1, tonumber(newest[2]) + window - now))
  redis.call('PEXPIRE', KEYS[1], string.format('%d', math.min(2 ^ 45, math.ceil(reset / 1000))))
end
return {allowed, math.min(max, math.max(0, limit - count)), retry, reset}
";

pub(super) static TOKEN_BUCKET_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(TOKEN_BUCKET));
pub(super) static SLIDING_WINDOW_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(SLIDING_WINDOW));
