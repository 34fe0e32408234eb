//! The Lua scripts of [`RedisRateLimiter`](super::RedisRateLimiter): one atomic script, one round trip per
//! check. redis-rs sends them with `EVALSHA` and falls back to `EVAL` on `NOSCRIPT`.
//!
//! Both read the time from the server (`redis.call('TIME')`, microseconds), never from a client, so every app
//! instance counts on one clock. Both return `{allowed (0 or 1), remaining, retry_after_us (-1 when allowed),
//! reset_after_us}`, every number clamped to 2^53 - 1 so it survives the conversion to an integer reply.

use std::sync::LazyLock;

use redis::Script;

/// `KEYS[1]` the bucket, a hash `{tokens, ts}`; `ARGV[1]` capacity, `ARGV[2]` tokens per interval, `ARGV[3]`
/// interval in microseconds (may be fractional), `ARGV[4]` cost.
///
/// A missing bucket is full. Tokens are a float refilled continuously from `ts` (server microseconds); a
/// 1e-9-token tolerance absorbs float rounding so a check after its `retry_after` is allowed. A bucket left
/// full is deleted; otherwise it expires when it would be full again.
pub(super) const TOKEN_BUCKET: &str = r"
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2]) / tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local max = 9007199254740991
local eps = 1e-9
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = capacity
elseif now > ts then
  tokens = tokens + (now - ts) * rate
end
if tokens > capacity then tokens = capacity end
if tokens < 0 then tokens = 0 end
local allowed = 0
local retry = -1
if tokens + eps >= cost then
  allowed = 1
  tokens = math.max(0, tokens - cost)
else
  retry = math.min(max, math.max(1, math.ceil((cost - tokens) / rate)))
end
local reset = 0
if capacity - tokens > eps then
  reset = math.min(max, math.max(1, math.ceil((capacity - tokens) / rate)))
  redis.call('HSET', KEYS[1], 'tokens', tokens, 'ts', now)
  redis.call('PEXPIRE', KEYS[1], string.format('%d', math.min(2 ^ 45, math.ceil(reset / 1000))))
else
  redis.call('DEL', KEYS[1])
end
return {allowed, math.min(max, math.floor(tokens + eps)), retry, reset}
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
