//! The Lua scripts of [`DistributedLock`](super::DistributedLock) and [`Redlock`](super::Redlock). Each runs
//! atomically on the server; redis-rs sends them with `EVALSHA` and falls back to `EVAL` on `NOSCRIPT`.

use std::sync::LazyLock;

use redis::Script;

/// `KEYS[1]` lock, `KEYS[2]` fencing counter (same hash tag); `ARGV[1]` owner, `ARGV[2]` lease in ms,
/// `ARGV[3]` the counter's TTL in ms, `ARGV[4]` (optional) the clock to use, in microseconds since the Unix epoch.
///
/// Takes the lock with `SET NX PX` and, only then, in the same step, issues the next fencing token: one more than
/// the counter, but never less than the clock: `ARGV[4]` when given (Redlock sends its own, the same to every
/// node, so that the nodes' counters agree), else the server's (`TIME`). So tokens
/// grow in the order holders got the lock, and a counter that is gone (expired, evicted, or lost with a restart
/// without persistence) starts again from the clock, above every token handed out before, instead of from 1.
/// Returns `{1, token}` when taken, `{0, pttl}` (the holder's remaining lease in ms, negative when unknown)
/// when not.
///
/// Lua numbers are doubles, exact up to 2^53: the clock in microseconds reaches that in the year 2255. `%d`
/// writes the counter back as an integer (Lua's own conversion would write `1.7e+15`).
pub(super) const ACQUIRE: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local token = (tonumber(redis.call('GET', KEYS[2]) or '0') or 0) + 1
  local clock = tonumber(ARGV[4] or '')
  if not clock then
    local now = redis.call('TIME')
    clock = tonumber(now[1]) * 1000000 + tonumber(now[2])
  end
  if token < clock then
    token = clock
  end
  redis.call('SET', KEYS[2], string.format('%d', token), 'PX', ARGV[3])
  return {1, token}
end
return {0, redis.call('PTTL', KEYS[1])}
";

/// `KEYS[1]` lock; `ARGV[1]` owner. Deletes the lock only if `ARGV[1]` still holds it; returns 1 if deleted.
pub(super) const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// `KEYS[1]` lock, `KEYS[2]` fencing counter; `ARGV[1]` owner, `ARGV[2]` lease in ms, `ARGV[3]` the counter's
/// TTL in ms. Resets the lease (and the counter's TTL, so it outlives the lease) only if `ARGV[1]` still holds
/// the lock; returns 1 if it did.
pub(super) const EXTEND: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
";

/// `KEYS[1]` lock, `KEYS[2]` fencing counter; `ARGV[1]` owner, `ARGV[2]` a fencing token, `ARGV[3]` the
/// counter's TTL in ms. Used by [`Redlock`](super::Redlock) after a quorum answered with different counters:
/// raises the counter to at least `ARGV[2]` (with the counter's TTL), so every node of the quorum remembers the
/// token handed out. Returns 1 if `ARGV[1]` still holds the lock, 0 if not.
pub(super) const RAISE_FENCE: &str = r"
local current = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
if current < tonumber(ARGV[2]) then
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return 1
end
return 0
";

pub(super) static ACQUIRE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(ACQUIRE));
pub(super) static RELEASE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RELEASE));
pub(super) static EXTEND_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(EXTEND));
pub(super) static RAISE_FENCE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RAISE_FENCE));
