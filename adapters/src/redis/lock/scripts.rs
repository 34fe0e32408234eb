//! The Lua scripts of [`DistributedLock`](super::DistributedLock) and [`Redlock`](super::Redlock). Each runs
//! atomically on the server; redis-rs sends them with `EVALSHA` and falls back to `EVAL` on `NOSCRIPT`.

use std::sync::LazyLock;

use redis::Script;

/// `KEYS[1]` lock, `KEYS[2]` fencing counter (same hash tag); `ARGV[1]` owner, `ARGV[2]` lease in ms,
/// `ARGV[3]` the counter's TTL in ms (`0`: none).
///
/// Takes the lock with `SET NX PX` and, only then, increments the counter in the same step, so tokens grow in
/// the order holders got the lock. Returns `{1, token}` when taken, `{0, pttl}` (the holder's remaining lease in
/// ms, negative when unknown) when not.
pub(super) const ACQUIRE: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local token = redis.call('INCR', KEYS[2])
  if ARGV[3] ~= '0' then
    redis.call('PEXPIRE', KEYS[2], ARGV[3])
  end
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
/// TTL in ms (`0`: none). Resets the lease (and the counter's TTL, so it outlives the lease) only if `ARGV[1]`
/// still holds the lock; returns 1 if it did.
pub(super) const EXTEND: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  if ARGV[3] ~= '0' then
    redis.call('PEXPIRE', KEYS[2], ARGV[3])
  end
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
";

/// `KEYS[1]` lock, `KEYS[2]` fencing counter; `ARGV[1]` owner, `ARGV[2]` a fencing token. Used by
/// [`Redlock`](super::Redlock) after a quorum answered with different counters: raises the counter to at least
/// `ARGV[2]` (keeping its TTL), so every node of the quorum remembers the token handed out. Returns 1 if
/// `ARGV[1]` still holds the lock, 0 if not.
pub(super) const RAISE_FENCE: &str = r"
local current = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
if current < tonumber(ARGV[2]) then
  redis.call('SET', KEYS[2], ARGV[2], 'KEEPTTL')
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
