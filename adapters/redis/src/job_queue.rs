//! [`RedisJobQueue`]: the [`JobQueue`] port over Redis Streams and consumer groups.

use std::fmt;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use async_trait::async_trait;
use cpc_ports::job_queue::{batch_error, check_batch_delays, check_visibility_timeout, not_dead, not_reserved};
use cpc_ports::{
    Bytes, Codec, DeadJob, EnqueueOptions, JobId, JobQueue, JobQueueSettings, KvError, NackOutcome, NewJob, QueueName,
    QueueStats, ReservedJob,
};
use redis::Script;

use super::RedisManager;
use super::error::classify;
use super::metrics::{Instruments, operations};
use super::ttl::MAX_TTL_MILLIS;

operations!(JobQueueOp {
    Enqueue = "enqueue",
    EnqueueMany = "enqueue_many",
    Reserve = "reserve",
    Ack = "ack",
    AckMany = "ack_many",
    Nack = "nack",
    Extend = "extend",
    DeadLetters = "dead_letters",
    RequeueDead = "requeue_dead",
    Stats = "stats",
});

/// How many due delayed jobs one reserve moves to the stream at most.
const PROMOTE_BATCH: u32 = 256;

/// The most jobs one [`ACK_MANY_LUA`] call acks; a larger `ack_many` of one queue is sent as several calls,
/// pipelined.
const ACK_CHUNK: usize = 256;

/// The Lua lines that make `stream` ready for a new entry: created with its consumer group `w` on first use, or
/// the idle TTL taken off an existing one (see `drop_entry`). Shared by the prelude's `append` and the lean enqueue
/// scripts, which inline it rather than carry the whole prelude.
macro_rules! open_stream {
    () => {
        r"
  local ttl = redis.call('PTTL', stream)
  if ttl == -2 then
    redis.call('XGROUP', 'CREATE', stream, 'w', '0', 'MKSTREAM')
  elseif ttl >= 0 then
    redis.call('PERSIST', stream)
  end
"
    };
}

/// Lua helpers shared by the scripts. Fields of job `id` in a jobs hash are `id:p` (payload), `id:a` (attempts),
/// `id:m` (max attempts), `id:e` (current stream entry; absent or empty while delayed) and, for a dead job, `id:t`
/// (time of death, ms). The scripts read a missing `id:a` as 0.
///
/// - `now_ms`: the server's clock in ms.
/// - `append`: appends a job to the stream (creating the stream and its consumer group `w` on first use, or taking
///   the idle TTL off an existing one) and returns the entry id; `push` also records it in the jobs hash.
/// - `is_current`: checks a receipt (job reserved, attempt matching).
/// - `drop_entry`: acknowledges and deletes the job's current stream entry; an empty stream (no ready or reserved
///   job left) is kept a day, then expires with its consumer group.
/// - `prune`: drops dead letters past the retention or the count bound, oldest first, at most 100 per call.
/// - `bury`: moves a job from the live jobs hash to the dead list and hash, whose TTL is the retention from the
///   latest death (every dead letter in them is younger than that).
macro_rules! prelude {
    () => {
        concat!(
            r"
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function idle(stream)
  if redis.call('XLEN', stream) == 0 then redis.call('PEXPIRE', stream, 86400000) end
end
local function append(stream, id)
",
            open_stream!(),
            r"
  return redis.call('XADD', stream, '*', 'j', id)
end
local function push(stream, jobs, id)
  redis.call('HSET', jobs, id .. ':e', append(stream, id))
end
local function is_current(in_flight, jobs, id, attempt)
  return redis.call('ZSCORE', in_flight, id) and redis.call('HGET', jobs, id .. ':a') == attempt
end
local function drop_entry(stream, jobs, id)
  local e = redis.call('HGET', jobs, id .. ':e')
  if e and e ~= '' then
    redis.call('XACK', stream, 'w', e)
    redis.call('XDEL', stream, e)
    redis.call('HSET', jobs, id .. ':e', '')
  end
  idle(stream)
end
local function forget(jobs, id)
  redis.call('HDEL', jobs, id .. ':p', id .. ':a', id .. ':m', id .. ':e', id .. ':t')
end
local function prune(dead, dead_jobs, now, retention, max)
  for _ = 1, 100 do
    local id = redis.call('LINDEX', dead, 0)
    if not id then return end
    local died = tonumber(redis.call('HGET', dead_jobs, id .. ':t') or 0)
    if died > now - retention and redis.call('LLEN', dead) <= max then return end
    redis.call('LPOP', dead)
    forget(dead_jobs, id)
  end
end
local function bury(stream, jobs, dead, dead_jobs, id, now, retention, max)
  drop_entry(stream, jobs, id)
  local f = redis.call('HMGET', jobs, id .. ':p', id .. ':a', id .. ':m')
  forget(jobs, id)
  redis.call('HSET', dead_jobs, id .. ':p', f[1], id .. ':a', f[2], id .. ':m', f[3], id .. ':t', now)
  redis.call('RPUSH', dead, id)
  prune(dead, dead_jobs, now, retention, max)
  redis.call('PEXPIRE', dead, retention)
  redis.call('PEXPIRE', dead_jobs, retention)
end
"
        )
    };
}

/// `KEYS` stream, delayed, idempotency key, jobs; `ARGV` id, payload, max attempts, delay ms, idempotency window
/// ms (0: no key). Returns the id stored, or the earlier job's id for a known idempotency key.
///
/// Lean: none of the [`prelude!`] helpers, only the lines an enqueue runs ([`open_stream!`] inlined, not
/// `append`), since Lua re-creates every `local function` of a script on each call; no `:e` while delayed
/// (each hash field costs the server about a microsecond, measured in `docs/BENCHMARKS.md`, issue 20). `:a` is
/// written, 0: the `RESERVE` script of an earlier build compares it as a number, so without it that build's
/// workers could not take this build's jobs during a rolling upgrade.
const ENQUEUE_LUA: &str = concat!(
    r"
local id = ARGV[1]
if tonumber(ARGV[5]) > 0 then
  local earlier = redis.call('GET', KEYS[3])
  if earlier then return earlier end
  redis.call('SET', KEYS[3], id, 'PX', ARGV[5])
end
local jobs = KEYS[4]
local delay = tonumber(ARGV[4])
if delay > 0 then
  local t = redis.call('TIME')
  redis.call('HSET', jobs, id .. ':p', ARGV[2], id .. ':a', 0, id .. ':m', ARGV[3])
  redis.call('ZADD', KEYS[2], tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + delay, id)
  return id
end
local stream = KEYS[1]
",
    open_stream!(),
    r"
local e = redis.call('XADD', stream, '*', 'j', id)
redis.call('HSET', jobs, id .. ':p', ARGV[2], id .. ':a', 0, id .. ':m', ARGV[3], id .. ':e', e)
return id
"
);
static ENQUEUE: LazyLock<Script> = LazyLock::new(|| Script::new(ENQUEUE_LUA));

/// `KEYS` stream, delayed, jobs, then one idempotency key per keyed job; `ARGV` idempotency window ms, then five
/// per job: id, payload, max attempts, delay ms, index in `KEYS` of its idempotency key (0: none). Stores the jobs
/// in order, each as [`ENQUEUE_LUA`] would (a key already held, by an earlier call or an earlier job of the batch,
/// stores nothing and gives the holder's id); the stream is created or made persistent once, the server clock read
/// once, and the jobs' fields written with one `HSET` per 1,000 jobs. Returns the ids, in order. Lean, like
/// [`ENQUEUE_LUA`].
const ENQUEUE_MANY_LUA: &str = concat!(
    r"
local stream, delayed, jobs = KEYS[1], KEYS[2], KEYS[3]
local window = ARGV[1]
local out, fields, now, live = {}, {}, nil, false
for i = 2, #ARGV, 5 do
  local id, k = ARGV[i], tonumber(ARGV[i + 4])
  local earlier = false
  if k > 0 then
    earlier = redis.call('GET', KEYS[k])
    if not earlier then redis.call('SET', KEYS[k], id, 'PX', window) end
  end
  if earlier then
    out[#out + 1] = earlier
  else
    local delay, e = tonumber(ARGV[i + 3]), nil
    if delay > 0 then
      if not now then
        local t = redis.call('TIME')
        now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
      end
      redis.call('ZADD', delayed, now + delay, id)
    else
      if not live then
",
    open_stream!(),
    r"
        live = true
      end
      e = redis.call('XADD', stream, '*', 'j', id)
    end
    local n = #fields
    fields[n + 1], fields[n + 2], fields[n + 3], fields[n + 4] = id .. ':p', ARGV[i + 1], id .. ':m', ARGV[i + 2]
    fields[n + 5], fields[n + 6] = id .. ':a', 0
    if e then fields[n + 7], fields[n + 8] = id .. ':e', e end
    if #fields >= 6000 then
      redis.call('HSET', jobs, unpack(fields))
      fields = {}
    end
    out[#out + 1] = id
  end
end
if #fields > 0 then redis.call('HSET', jobs, unpack(fields)) end
return out
"
);
static ENQUEUE_MANY: LazyLock<Script> = LazyLock::new(|| Script::new(ENQUEUE_MANY_LUA));

/// `KEYS` stream, delayed, in flight, jobs, dead, dead jobs; `ARGV` visibility ms, consumer, promote batch,
/// dead-letter retention ms, max dead letters, count. Moves due delayed jobs to the stream; then, until it holds
/// `count` jobs, takes the reservations that expired, earliest first (`XAUTOCLAIM` of each entry), or else the next
/// new entries (one `XREADGROUP >` for as many as are still wanted). A job past its last attempt goes to the dead
/// letters instead. The new attempt numbers and reservation ends are written with one `HSET` and one `ZADD` per
/// 1,000 jobs. Returns the reserved jobs, each `{id, payload, attempt, max attempts}`.
const RESERVE_LUA: &str = concat!(
    prelude!(),
    r"
local stream, delayed, in_flight, jobs = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now = now_ms()
local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(due) do
  redis.call('ZREM', delayed, id)
  push(stream, jobs, id)
end
if redis.call('EXISTS', stream) == 0 then return {} end
local out, count, reserved, attempts = {}, tonumber(ARGV[6]), {}, {}
local until_ms = now + tonumber(ARGV[1])
local function flush()
  if #reserved > 0 then
    redis.call('HSET', jobs, unpack(attempts))
    redis.call('ZADD', in_flight, unpack(reserved))
    reserved, attempts = {}, {}
  end
end
local function take(id, orphan)
  local f = redis.call('HMGET', jobs, id .. ':p', id .. ':a', id .. ':m')
  local attempt, max = tonumber(f[2] or 0), tonumber(f[3])
  if f[1] and attempt < max then
    attempt = attempt + 1
    attempts[#attempts + 1] = id .. ':a'
    attempts[#attempts + 1] = attempt
    reserved[#reserved + 1] = until_ms
    reserved[#reserved + 1] = id
    out[#out + 1] = {id, f[1], attempt, max}
    if #reserved >= 2000 then flush() end
  elseif f[1] then
    bury(stream, jobs, KEYS[5], KEYS[6], id, now, tonumber(ARGV[4]), tonumber(ARGV[5]))
  elseif orphan then
    redis.call('XACK', stream, 'w', orphan)
    redis.call('XDEL', stream, orphan)
    idle(stream)
  end
end
while #out < count do
  local want = math.min(count - #out, 1000)
  local expired = redis.call('ZRANGEBYSCORE', in_flight, '-inf', now, 'LIMIT', 0, want)
  if #expired > 0 then
    for _, id in ipairs(expired) do
      redis.call('ZREM', in_flight, id)
      local e = redis.call('HGET', jobs, id .. ':e')
      if e and e ~= '' then
        redis.call('XAUTOCLAIM', stream, 'w', ARGV[2], 0, e, 'COUNT', 1)
      end
      take(id, nil)
    end
  else
    local r = redis.call('XREADGROUP', 'GROUP', 'w', ARGV[2], 'COUNT', want, 'STREAMS', stream, '>')
    if not r or not r[1][2][1] then break end
    for _, entry in ipairs(r[1][2]) do
      take(entry[2][2], entry[1])
    end
  end
end
flush()
return out
"
);
static RESERVE: LazyLock<Script> = LazyLock::new(|| Script::new(RESERVE_LUA));

/// `KEYS` stream, in flight, jobs; `ARGV` id, attempt. Acks the reservation if it is the current one and deletes
/// the job. Returns 1, or 0 if it is not.
const ACK_LUA: &str = concat!(
    prelude!(),
    r"
local stream, in_flight, jobs, id = KEYS[1], KEYS[2], KEYS[3], ARGV[1]
if not is_current(in_flight, jobs, id, ARGV[2]) then return 0 end
drop_entry(stream, jobs, id)
redis.call('ZREM', in_flight, id)
forget(jobs, id)
return 1
"
);
static ACK: LazyLock<Script> = LazyLock::new(|| Script::new(ACK_LUA));

/// `KEYS` stream, in flight, jobs; `ARGV` id, attempt, id, attempt, ... (jobs of one queue). Acks each
/// reservation that is the current one and deletes its job, exactly as [`ACK_LUA`] one after the other would, then
/// acks and deletes their stream entries with one `XACK` and one `XDEL`. Returns one 1 or 0 per job, in order.
const ACK_MANY_LUA: &str = concat!(
    prelude!(),
    r"
local stream, in_flight, jobs = KEYS[1], KEYS[2], KEYS[3]
local out, entries = {}, {}
for i = 1, #ARGV, 2 do
  local id = ARGV[i]
  if is_current(in_flight, jobs, id, ARGV[i + 1]) then
    local e = redis.call('HGET', jobs, id .. ':e')
    if e and e ~= '' then entries[#entries + 1] = e end
    redis.call('ZREM', in_flight, id)
    forget(jobs, id)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
if #entries > 0 then
  redis.call('XACK', stream, 'w', unpack(entries))
  redis.call('XDEL', stream, unpack(entries))
  idle(stream)
end
return out
"
);
static ACK_MANY: LazyLock<Script> = LazyLock::new(|| Script::new(ACK_MANY_LUA));

/// `KEYS` stream, in flight, delayed, jobs, dead, dead jobs; `ARGV` id, attempt, retry ms, dead-letter retention
/// ms, max dead letters. Ends the reservation if it is the current one, then delays the job by the backoff or, on
/// its last attempt, moves it to the dead letters. Returns 1 (retrying), 2 (dead), or 0 (not the current
/// reservation).
const NACK_LUA: &str = concat!(
    prelude!(),
    r"
local stream, in_flight, delayed, jobs, id = KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1]
if not is_current(in_flight, jobs, id, ARGV[2]) then return 0 end
redis.call('ZREM', in_flight, id)
local now = now_ms()
if tonumber(ARGV[2]) >= tonumber(redis.call('HGET', jobs, id .. ':m')) then
  bury(stream, jobs, KEYS[5], KEYS[6], id, now, tonumber(ARGV[4]), tonumber(ARGV[5]))
  return 2
end
drop_entry(stream, jobs, id)
redis.call('ZADD', delayed, now + tonumber(ARGV[3]), id)
return 1
"
);
static NACK: LazyLock<Script> = LazyLock::new(|| Script::new(NACK_LUA));

/// `KEYS` in flight, jobs; `ARGV` id, attempt, visibility ms. Moves the end of the reservation to `visibility` ms
/// from now if it is the current one. Returns 1, or 0 if it is not.
const EXTEND_LUA: &str = concat!(
    prelude!(),
    r"
if not is_current(KEYS[1], KEYS[2], ARGV[1], ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], 'XX', now_ms() + tonumber(ARGV[3]), ARGV[1])
return 1
"
);
static EXTEND: LazyLock<Script> = LazyLock::new(|| Script::new(EXTEND_LUA));

/// `KEYS` dead, dead jobs; `ARGV` limit, dead-letter retention ms, max dead letters. Prunes, then returns
/// `{id, payload, attempts, ...}` of the first `limit` dead letters within the retention.
const DEAD_LETTERS_LUA: &str = concat!(
    prelude!(),
    r"
local now, retention = now_ms(), tonumber(ARGV[2])
prune(KEYS[1], KEYS[2], now, retention, tonumber(ARGV[3]))
local out = {}
for _, id in ipairs(redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)) do
  local f = redis.call('HMGET', KEYS[2], id .. ':p', id .. ':a', id .. ':t')
  if f[1] and tonumber(f[3]) > now - retention then
    table.insert(out, id)
    table.insert(out, f[1])
    table.insert(out, f[2])
  end
end
return out
"
);
static DEAD_LETTERS: LazyLock<Script> = LazyLock::new(|| Script::new(DEAD_LETTERS_LUA));

/// `KEYS` stream, jobs, dead, dead jobs; `ARGV` id, dead-letter retention ms, max dead letters. Moves a dead job
/// back to the stream with no attempts used. Returns 1, or 0 if it is not a dead letter within the retention.
const REQUEUE_DEAD_LUA: &str = concat!(
    prelude!(),
    r"
local stream, jobs, dead, dead_jobs, id = KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1]
local now, retention = now_ms(), tonumber(ARGV[2])
prune(dead, dead_jobs, now, retention, tonumber(ARGV[3]))
local f = redis.call('HMGET', dead_jobs, id .. ':p', id .. ':m', id .. ':t')
if not f[1] or tonumber(f[3]) <= now - retention then return 0 end
if redis.call('LREM', dead, 1, id) == 0 then return 0 end
forget(dead_jobs, id)
redis.call('HSET', jobs, id .. ':p', f[1], id .. ':a', 0, id .. ':m', f[2], id .. ':e', '')
push(stream, jobs, id)
return 1
"
);
static REQUEUE_DEAD: LazyLock<Script> = LazyLock::new(|| Script::new(REQUEUE_DEAD_LUA));

/// `KEYS` stream, delayed, in flight, dead, dead jobs; `ARGV` dead-letter retention ms, max dead letters. Prunes
/// the dead letters, then returns `{pending, in_flight, delayed, dead}`.
const STATS_LUA: &str = concat!(
    prelude!(),
    r"
local now = now_ms()
prune(KEYS[4], KEYS[5], now, tonumber(ARGV[1]), tonumber(ARGV[2]))
local entries = redis.call('XLEN', KEYS[1])
local reserved = redis.call('ZCARD', KEYS[3])
local live = redis.call('ZCOUNT', KEYS[3], '(' .. now, '+inf')
local backlog = redis.call('ZCARD', KEYS[2])
local waiting = redis.call('ZCOUNT', KEYS[2], '(' .. now, '+inf')
return {entries - reserved + (reserved - live) + (backlog - waiting), live, waiting, redis.call('LLEN', KEYS[4])}
"
);
static STATS: LazyLock<Script> = LazyLock::new(|| Script::new(STATS_LUA));

/// The Redis [`JobQueue`]: one Redis Stream per queue, worked through a consumer group.
///
/// Keys, under the manager's namespace and the hash tag `{queue}` (so a queue lives on one cluster slot):
///
/// | key | type | holds |
/// |---|---|---|
/// | `jq:{q}:s` | stream, group `w` | one entry per ready or reserved job (`XADD`, `XREADGROUP`, `XACK`, `XDEL`) |
/// | `jq:{q}:d` | sorted set | delayed jobs (delay or retry backoff) scored by due time |
/// | `jq:{q}:f` | sorted set | reserved jobs scored by the end of their visibility timeout |
/// | `jq:{q}:j` | hash | the jobs still to be worked: `<id>:p` payload, `<id>:a` attempts, `<id>:m` max attempts, `<id>:e` current stream entry (absent or empty while delayed) |
/// | `jq:{q}:x` | list | the dead letters' ids, earliest death first |
/// | `jq:{q}:xj` | hash | the dead letters: the same fields, and `<id>:t` the time of death |
/// | `jq:{q}:i:<key>` | string | idempotency key -> job id, expiring after the idempotency window (`SET NX PX`) |
///
/// Every operation is one Lua script, so it is atomic, and every key a script touches is one of its `KEYS`.
/// `reserve` first moves due delayed jobs into the stream, then takes the reservation whose visibility timeout
/// ended first (`XAUTOCLAIM` of its entry to this consumer) or else a new entry (`XREADGROUP ... >`); times are the
/// server's clock. A job is acked with `XACK` + `XDEL`, and its fields deleted. Batches take one script call:
/// `reserve_many` reads its new entries with one `XREADGROUP` and writes their attempts and reservation ends with
/// one `HSET` and one `ZADD`; `ack_many` acks each queue's jobs (up to 256 per call) with one `XACK` and one `XDEL`;
/// `enqueue_many_bytes` stores a whole batch (atomic, in order) with one script call. Job ids are UUIDv7 (the
/// stream entry id changes when a job is delayed and re-added).
///
/// **What is kept, and for how long.** A job still to be worked is never dropped, so the stream, `d`, `f` and `j`
/// have no TTL while they hold one (an empty hash or set does not exist; an empty stream expires after a day,
/// with its consumer group). Dead letters are kept for [`JobQueueSettings::dead_letter_retention`] and at most
/// [`JobQueueSettings::max_dead_letters`] per queue: each death drops the expired and the excess ones, oldest
/// first, and sets the TTL of `x` and `xj` to the retention, so a queue no one touches again leaves nothing behind.
///
/// Each `RedisJobQueue` value reads as one consumer of the group, named at random when it is built.
#[derive(Clone)]
pub struct RedisJobQueue {
    manager: RedisManager,
    settings: JobQueueSettings,
    consumer: String,
    metrics: Arc<Instruments<JobQueueOp>>,
}

/// The keys of one queue.
struct Keys {
    stream: String,
    delayed: String,
    in_flight: String,
    jobs: String,
    dead: String,
    dead_jobs: String,
    base: String,
}

impl Keys {
    /// The key holding idempotency key `key` of this queue (`jq:{q}:i:<key>`).
    fn idempotency(&self, key: &str) -> String {
        format!("{}i:{key}", self.base)
    }
}

impl RedisJobQueue {
    /// A job queue over `manager`, with the default settings (JSON, 24-hour idempotency window).
    pub fn new(manager: RedisManager) -> Self {
        Self {
            manager,
            settings: JobQueueSettings::default(),
            consumer: format!("c-{}", uuid::Uuid::new_v4().simple()),
            metrics: Instruments::new("job_queue"),
        }
    }

    /// The same queue with other settings (codec, idempotency window, dead-letter retention).
    #[must_use]
    pub fn with_settings(mut self, settings: JobQueueSettings) -> Self {
        self.settings = settings;
        self
    }

    /// The Redis manager this queue runs on.
    pub fn manager(&self) -> &RedisManager {
        &self.manager
    }

    /// Runs [`RESERVE_LUA`] for up to `max` jobs (one round trip).
    async fn reserve_batch(
        &self,
        queue: &QueueName,
        visibility_timeout: Duration,
        max: usize,
    ) -> Result<Vec<ReservedJob>, KvError> {
        check_visibility_timeout(visibility_timeout)?;
        let visibility = millis(visibility_timeout, "visibility_timeout")?.max(1);
        if max == 0 {
            return Ok(Vec::new());
        }
        let keys = self.keys(queue);
        let mut invocation = RESERVE.key(&keys.stream);
        invocation.key(&keys.delayed).key(&keys.in_flight).key(&keys.jobs).key(&keys.dead).key(&keys.dead_jobs);
        invocation.arg(visibility).arg(&self.consumer).arg(PROMOTE_BATCH);
        self.retention_args(&mut invocation)?;
        invocation.arg(max);
        let found: Vec<(String, Vec<u8>, u32, u32)> = self.run(&invocation, "reserve jobs").await?;
        Ok(found
            .into_iter()
            .map(|(id, payload, attempt, max_attempts)| ReservedJob {
                id: JobId::new(id),
                queue: queue.clone(),
                payload: Bytes::from(payload),
                attempt,
                max_attempts,
            })
            .collect())
    }

    /// Runs [`ACK_MANY_LUA`] for the jobs of `jobs` at the indexes `chunk` (all of one queue): one flag per job.
    async fn ack_chunk(&self, jobs: &[ReservedJob], chunk: &[usize]) -> Result<Vec<i64>, KvError> {
        let Some(&first) = chunk.first() else { return Ok(Vec::new()) };
        let keys = self.keys(&jobs[first].queue);
        let mut invocation = ACK_MANY.key(&keys.stream);
        invocation.key(&keys.in_flight).key(&keys.jobs);
        for &i in chunk {
            invocation.arg(jobs[i].id.as_str()).arg(jobs[i].attempt);
        }
        self.run(&invocation, "ack jobs").await
    }

    fn keys(&self, queue: &QueueName) -> Keys {
        let base = self.manager.key(&format!("jq:{{{queue}}}:"));
        Keys {
            stream: format!("{base}s"),
            delayed: format!("{base}d"),
            in_flight: format!("{base}f"),
            jobs: format!("{base}j"),
            dead: format!("{base}x"),
            dead_jobs: format!("{base}xj"),
            base,
        }
    }

    /// The idempotency window in milliseconds, at least 1 (the scripts' `SET .. PX`; 0 there means "no key").
    fn idempotency_window_ms(&self) -> Result<u64, KvError> {
        Ok(millis(self.settings.idempotency_window, "idempotency_window")?.max(1))
    }

    /// Appends the dead-letter retention (ms) and count bound to a script's `ARGV`.
    fn retention_args(&self, invocation: &mut redis::ScriptInvocation<'_>) -> Result<(), KvError> {
        let retention = millis(self.settings.effective_dead_letter_retention(), "dead_letter_retention")?.max(1);
        invocation.arg(retention).arg(self.settings.effective_max_dead_letters());
        Ok(())
    }

    async fn run<T: redis::FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
        operation: &'static str,
    ) -> Result<T, KvError> {
        let mut conn = self.manager.connection();
        invocation
            .invoke_async(&mut conn)
            .await
            .map_err(|e| classify(e, operation, self.manager.config().response_timeout))
    }
}

/// The indexes of `jobs` grouped by queue (in order of first appearance, each group in order), each group cut
/// into runs of at most `size`.
fn chunks_by_queue(jobs: &[ReservedJob], size: usize) -> Vec<Vec<usize>> {
    let mut groups: Vec<(&QueueName, Vec<usize>)> = Vec::new();
    for (i, job) in jobs.iter().enumerate() {
        match groups.iter_mut().find(|(q, _)| *q == &job.queue) {
            Some((_, group)) => group.push(i),
            None => groups.push((&job.queue, vec![i])),
        }
    }
    groups
        .into_iter()
        .flat_map(|(_, group)| group.chunks(size.max(1)).map(<[usize]>::to_vec).collect::<Vec<_>>())
        .collect()
}

/// `d` in whole milliseconds (zero allowed); absurdly long durations are validation errors naming `field`.
fn millis(d: Duration, field: &'static str) -> Result<u64, KvError> {
    let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    if ms > MAX_TTL_MILLIS {
        return Err(KvError::invalid(field, "must be at most 10^15 milliseconds"));
    }
    Ok(ms)
}

impl fmt::Debug for RedisJobQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisJobQueue")
            .field("namespace", &self.manager.config().namespace)
            .field("consumer", &self.consumer)
            .field("settings", &self.settings)
            .finish()
    }
}

#[async_trait]
impl JobQueue for RedisJobQueue {
    async fn enqueue_bytes(
        &self,
        queue: &QueueName,
        payload: Bytes,
        options: EnqueueOptions,
    ) -> Result<JobId, KvError> {
        cpc_ports::check_payload(&payload)?;
        self.metrics
            .run(JobQueueOp::Enqueue, async {
                let max_attempts = options.validate()?;
                let delay = millis(options.delay.unwrap_or_default(), "delay")?;
                let keys = self.keys(queue);
                let (idempotency_key, window) = match &options.idempotency_key {
                    Some(key) => (keys.idempotency(key), self.idempotency_window_ms()?),
                    None => (keys.idempotency(""), 0),
                };
                let id = JobId::generate();
                let mut invocation = ENQUEUE.key(&keys.stream);
                invocation.key(&keys.delayed).key(idempotency_key).key(&keys.jobs);
                invocation.arg(id.as_str()).arg(payload.as_ref()).arg(max_attempts).arg(delay).arg(window);
                let stored: String = self.run(&invocation, "enqueue job").await?;
                Ok(JobId::new(stored))
            })
            .await
    }

    /// One `ENQUEUE_MANY_LUA` script call for the whole batch, so it is atomic: no reserve sees part of it, and a
    /// batch refused by the checks or lost on the way stores nothing. The call blocks the server for its duration
    /// (a few microseconds a job, measured in `docs/BENCHMARKS.md`): split batches of many thousands of jobs.
    async fn enqueue_many_bytes(&self, queue: &QueueName, jobs: Vec<NewJob>) -> Result<Vec<JobId>, KvError> {
        self.metrics
            .run(JobQueueOp::EnqueueMany, async {
                let (max_attempts, delays) = check_batch_delays(&jobs, |d| millis(d, "delay"))?;
                if jobs.is_empty() {
                    return Ok(Vec::new());
                }
                let keyed = jobs.iter().any(|job| job.options.idempotency_key.is_some());
                let window = if keyed { self.idempotency_window_ms()? } else { 0 };
                let keys = self.keys(queue);
                let mut invocation = ENQUEUE_MANY.key(&keys.stream);
                invocation.key(&keys.delayed).key(&keys.jobs).arg(window);
                let mut next_key = 4_usize;
                for ((job, max_attempts), delay) in jobs.iter().zip(max_attempts).zip(delays) {
                    let id = JobId::generate();
                    invocation.arg(id.as_str()).arg(job.payload.as_ref()).arg(max_attempts).arg(delay);
                    match &job.options.idempotency_key {
                        Some(key) => {
                            invocation.key(keys.idempotency(key)).arg(next_key);
                            next_key += 1;
                        }
                        None => {
                            invocation.arg(0);
                        }
                    }
                }
                let stored: Vec<String> = self.run(&invocation, "enqueue jobs").await?;
                if stored.len() != jobs.len() {
                    return Err(KvError::backend("redis", "the enqueue script returned a wrong number of ids"));
                }
                Ok(stored.into_iter().map(JobId::new).collect())
            })
            .await
    }

    async fn reserve(&self, queue: &QueueName, visibility_timeout: Duration) -> Result<Option<ReservedJob>, KvError> {
        self.metrics
            .run(JobQueueOp::Reserve, async {
                Ok(self.reserve_batch(queue, visibility_timeout, 1).await?.into_iter().next())
            })
            .await
    }

    async fn reserve_many(
        &self,
        queue: &QueueName,
        visibility_timeout: Duration,
        max: usize,
    ) -> Result<Vec<ReservedJob>, KvError> {
        self.metrics.run(JobQueueOp::Reserve, self.reserve_batch(queue, visibility_timeout, max)).await
    }

    async fn ack(&self, job: &ReservedJob) -> Result<(), KvError> {
        self.metrics
            .run(JobQueueOp::Ack, async {
                let keys = self.keys(&job.queue);
                let mut invocation = ACK.key(&keys.stream);
                invocation.key(&keys.in_flight).key(&keys.jobs);
                invocation.arg(job.id.as_str()).arg(job.attempt);
                let acked: i64 = self.run(&invocation, "ack job").await?;
                if acked == 1 { Ok(()) } else { Err(not_reserved()) }
            })
            .await
    }

    /// Acks each queue's jobs with one script call (`XACK` and `XDEL` for the batch) per 256 jobs, the calls pipelined.
    async fn ack_many(&self, jobs: &[ReservedJob]) -> Vec<Result<(), KvError>> {
        let mut results: Vec<Result<(), KvError>> = Vec::with_capacity(jobs.len());
        let call = async {
            let chunks = chunks_by_queue(jobs, ACK_CHUNK);
            let acked = futures::future::join_all(chunks.iter().map(|chunk| self.ack_chunk(jobs, chunk))).await;
            results.extend(jobs.iter().map(|_| Err(not_reserved())));
            let mut failed = None;
            for (chunk, outcome) in chunks.iter().zip(acked) {
                for (k, &i) in chunk.iter().enumerate() {
                    results[i] = match &outcome {
                        Ok(flags) if flags.get(k) == Some(&1) => Ok(()),
                        Ok(_) => Err(not_reserved()),
                        Err(e) => Err(batch_error(e)),
                    };
                }
                if let Err(e) = outcome {
                    failed.get_or_insert(e);
                }
            }
            // A call that failed as a whole is counted as the operation's error; each job's result carries it.
            failed.map_or(Ok(()), Err)
        };
        let _ = self.metrics.run(JobQueueOp::AckMany, call).await;
        results
    }

    async fn nack(&self, job: &ReservedJob, retry_after: Duration) -> Result<NackOutcome, KvError> {
        self.metrics
            .run(JobQueueOp::Nack, async {
                let retry = millis(retry_after, "retry_after")?;
                let keys = self.keys(&job.queue);
                let mut invocation = NACK.key(&keys.stream);
                invocation.key(&keys.in_flight).key(&keys.delayed).key(&keys.jobs).key(&keys.dead).key(&keys.dead_jobs);
                invocation.arg(job.id.as_str()).arg(job.attempt).arg(retry);
                self.retention_args(&mut invocation)?;
                match self.run::<i64>(&invocation, "nack job").await? {
                    1 => Ok(NackOutcome::Retrying),
                    2 => Ok(NackOutcome::Dead),
                    _ => Err(not_reserved()),
                }
            })
            .await
    }

    async fn extend(&self, job: &ReservedJob, visibility_timeout: Duration) -> Result<(), KvError> {
        self.metrics
            .run(JobQueueOp::Extend, async {
                check_visibility_timeout(visibility_timeout)?;
                let visibility = millis(visibility_timeout, "visibility_timeout")?.max(1);
                let keys = self.keys(&job.queue);
                let mut invocation = EXTEND.key(&keys.in_flight);
                invocation.key(&keys.jobs);
                invocation.arg(job.id.as_str()).arg(job.attempt).arg(visibility);
                let extended: i64 = self.run(&invocation, "extend job reservation").await?;
                if extended == 1 { Ok(()) } else { Err(not_reserved()) }
            })
            .await
    }

    async fn dead_letters(&self, queue: &QueueName, limit: usize) -> Result<Vec<DeadJob>, KvError> {
        self.metrics
            .run(JobQueueOp::DeadLetters, async {
                if limit == 0 {
                    return Ok(Vec::new());
                }
                let keys = self.keys(queue);
                let mut invocation = DEAD_LETTERS.key(&keys.dead);
                invocation.key(&keys.dead_jobs).arg(limit.min(i64::MAX as usize));
                self.retention_args(&mut invocation)?;
                let flat: Vec<(String, Vec<u8>, u32)> = self.run(&invocation, "list dead jobs").await?;
                Ok(flat
                    .into_iter()
                    .map(|(id, payload, attempts)| DeadJob {
                        id: JobId::new(id),
                        payload: Bytes::from(payload),
                        attempts,
                    })
                    .collect())
            })
            .await
    }

    async fn requeue_dead(&self, queue: &QueueName, id: &JobId) -> Result<(), KvError> {
        self.metrics
            .run(JobQueueOp::RequeueDead, async {
                let keys = self.keys(queue);
                let mut invocation = REQUEUE_DEAD.key(&keys.stream);
                invocation.key(&keys.jobs).key(&keys.dead).key(&keys.dead_jobs);
                invocation.arg(id.as_str());
                self.retention_args(&mut invocation)?;
                let moved: i64 = self.run(&invocation, "requeue dead job").await?;
                if moved == 1 { Ok(()) } else { Err(not_dead()) }
            })
            .await
    }

    async fn stats(&self, queue: &QueueName) -> Result<QueueStats, KvError> {
        self.metrics
            .run(JobQueueOp::Stats, async {
                let keys = self.keys(queue);
                let mut invocation = STATS.key(&keys.stream);
                invocation.key(&keys.delayed).key(&keys.in_flight).key(&keys.dead).key(&keys.dead_jobs);
                self.retention_args(&mut invocation)?;
                let (pending, in_flight, delayed, dead): (u64, u64, u64, u64) =
                    self.run(&invocation, "queue stats").await?;
                Ok(QueueStats { pending, in_flight, delayed, dead })
            })
            .await
    }

    fn codec(&self) -> Codec {
        self.settings.codec.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names the scripts give to their `KEYS` (as locals, or as parameters of the prelude's functions).
    const KEY_NAMES: [&str; 7] = ["stream", "delayed", "in_flight", "jobs", "dead", "dead_jobs", "job"];

    /// Every key a script touches is one of its `KEYS` (item 14 of the reliability review): the key argument of
    /// each `redis.call` is `KEYS[n]` or a name bound to one, never a string built in the script (`ARGV[3] .. id`
    /// would be a key the server, a cluster proxy or an ACL check cannot see declared); and no key name is bound
    /// to anything but `KEYS`.
    #[test]
    fn scripts_touch_only_declared_keys() {
        let scripts = [
            ("ENQUEUE", ENQUEUE_LUA),
            ("ENQUEUE_MANY", ENQUEUE_MANY_LUA),
            ("RESERVE", RESERVE_LUA),
            ("ACK", ACK_LUA),
            ("ACK_MANY", ACK_MANY_LUA),
            ("NACK", NACK_LUA),
            ("EXTEND", EXTEND_LUA),
            ("DEAD_LETTERS", DEAD_LETTERS_LUA),
            ("REQUEUE_DEAD", REQUEUE_DEAD_LUA),
            ("STATS", STATS_LUA),
        ];
        let mut calls = 0;
        for (name, lua) in scripts {
            for call in lua.split("redis.call(").skip(1) {
                let call = &call[..call.find(')').unwrap_or(call.len())];
                let args: Vec<&str> = call.split(',').map(str::trim).collect();
                let command = args[0].trim_matches('\'');
                let key = match command {
                    "TIME" => continue,
                    // XGROUP CREATE <key> ...; XREADGROUP GROUP <g> <c> COUNT <n> STREAMS <key> <id>
                    "XGROUP" => args.get(2),
                    "XREADGROUP" => args.iter().position(|a| *a == "'STREAMS'").and_then(|i| args.get(i + 1)),
                    _ => args.get(1),
                };
                let key = key.copied().unwrap_or_default();
                let declared = (key.starts_with("KEYS[") && key.ends_with(']')) || KEY_NAMES.contains(&key);
                assert!(declared, "{name}: {command} touches `{key}`, which is not a declared key");
                calls += 1;
            }
            for line in lua.lines().map(str::trim).filter(|l| l.starts_with("local ") && l.contains(" = ")) {
                let (lhs, rhs) = line["local ".len()..].split_once(" = ").unwrap_or_default();
                for (var, value) in lhs.split(", ").zip(rhs.split(", ")) {
                    if KEY_NAMES.contains(&var) {
                        assert!(value.starts_with("KEYS["), "{name}: key name `{var}` bound to `{value}`");
                    }
                }
            }
        }
        assert!(calls > 60, "the check saw the scripts' calls ({calls})");
    }
}
