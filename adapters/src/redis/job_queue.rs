//! [`RedisJobQueue`]: the [`JobQueue`] port over Redis Streams and consumer groups.

use std::fmt;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use async_trait::async_trait;
use cpc_ports::job_queue::{not_dead, not_reserved};
use cpc_ports::{
    Bytes, Codec, DeadJob, EnqueueOptions, JobId, JobQueue, JobQueueSettings, KvError, NackOutcome, QueueName,
    QueueStats, ReservedJob,
};
use redis::Script;

use super::RedisManager;
use super::error::classify;
use super::metrics::{Instruments, operations};
use super::ttl::MAX_TTL_MILLIS;

operations!(JobQueueOp {
    Enqueue = "enqueue",
    Reserve = "reserve",
    Ack = "ack",
    Nack = "nack",
    Extend = "extend",
    DeadLetters = "dead_letters",
    RequeueDead = "requeue_dead",
    Stats = "stats",
});

/// How many due delayed jobs one reserve moves to the stream at most.
const PROMOTE_BATCH: u32 = 256;

/// Lua helpers shared by the scripts: the server's clock in ms; `push` appends a job to the stream (creating the
/// stream and its consumer group `w` on first use) and records the entry id in the job's hash; `is_current` checks
/// a receipt (job reserved, attempt matching); `drop_entry` acknowledges and deletes the job's current stream entry.
macro_rules! prelude {
    () => {
        r"
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function push(stream, job, id)
  if redis.call('EXISTS', stream) == 0 then
    redis.call('XGROUP', 'CREATE', stream, 'w', '0', 'MKSTREAM')
  end
  redis.call('HSET', job, 'e', redis.call('XADD', stream, '*', 'j', id))
end
local function is_current(in_flight, job, id, attempt)
  return redis.call('ZSCORE', in_flight, id) and redis.call('HGET', job, 'a') == attempt
end
local function drop_entry(stream, job)
  local e = redis.call('HGET', job, 'e')
  if e and e ~= '' then
    redis.call('XACK', stream, 'w', e)
    redis.call('XDEL', stream, e)
    redis.call('HSET', job, 'e', '')
  end
end
"
    };
}

/// `KEYS` stream, delayed, idempotency key, job; `ARGV` id, payload, max attempts, delay ms, idempotency window
/// ms (0: no key). Returns the id stored, or the earlier job's id for a known idempotency key.
static ENQUEUE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        r"
local id = ARGV[1]
if tonumber(ARGV[5]) > 0 then
  local earlier = redis.call('GET', KEYS[3])
  if earlier then return earlier end
  redis.call('SET', KEYS[3], id, 'PX', ARGV[5])
end
local job = KEYS[4]
redis.call('HSET', job, 'p', ARGV[2], 'a', 0, 'm', ARGV[3], 'e', '')
local delay = tonumber(ARGV[4])
if delay > 0 then
  redis.call('ZADD', KEYS[2], now_ms() + delay, id)
else
  push(KEYS[1], job, id)
end
return id
"
    ))
});

/// `KEYS` stream, delayed, in flight, dead; `ARGV` visibility ms, consumer, job key prefix, promote batch.
/// Moves due delayed jobs to the stream; then takes the reservation that expired first (`XAUTOCLAIM` of its entry)
/// or else the next new entry (`XREADGROUP >`). A job past its last attempt goes to the dead list instead.
/// Returns `{id, payload, attempt, max}` or nil.
static RESERVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        r"
local now = now_ms()
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, tonumber(ARGV[4]))
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[2], id)
  push(KEYS[1], ARGV[3] .. id, id)
end
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
while true do
  local id
  local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 1)
  if #expired > 0 then
    id = expired[1]
    redis.call('ZREM', KEYS[3], id)
    local e = redis.call('HGET', ARGV[3] .. id, 'e')
    if e and e ~= '' then
      redis.call('XAUTOCLAIM', KEYS[1], 'w', ARGV[2], 0, e, 'COUNT', 1)
    end
  else
    local r = redis.call('XREADGROUP', 'GROUP', 'w', ARGV[2], 'COUNT', 1, 'STREAMS', KEYS[1], '>')
    if not r then return false end
    local entry = r[1][2][1]
    if not entry then return false end
    id = entry[2][2]
    if redis.call('EXISTS', ARGV[3] .. id) == 0 then
      redis.call('XACK', KEYS[1], 'w', entry[1])
      redis.call('XDEL', KEYS[1], entry[1])
      id = nil
    end
  end
  if id then
    local job = ARGV[3] .. id
    local f = redis.call('HMGET', job, 'p', 'a', 'm')
    local attempt, max = tonumber(f[2]), tonumber(f[3])
    if f[1] and attempt < max then
      attempt = attempt + 1
      redis.call('HSET', job, 'a', attempt)
      redis.call('ZADD', KEYS[3], now + tonumber(ARGV[1]), id)
      return {id, f[1], attempt, max}
    end
    if f[1] then
      drop_entry(KEYS[1], job)
      redis.call('RPUSH', KEYS[4], id)
    end
  end
end
"
    ))
});

/// `KEYS` stream, in flight, job; `ARGV` id, attempt. Acks the reservation if it is the current one
/// and deletes the job. Returns 1, or 0 if it is not.
static ACK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        r"
local job = KEYS[3]
if not is_current(KEYS[2], job, ARGV[1], ARGV[2]) then return 0 end
drop_entry(KEYS[1], job)
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('DEL', job)
return 1
"
    ))
});

/// `KEYS` stream, in flight, delayed, dead, job; `ARGV` id, attempt, retry ms. Ends the reservation if
/// it is the current one, then delays the job by the backoff or, on its last attempt, moves it to the dead list.
/// Returns 1 (retrying), 2 (dead), or 0 (not the current reservation).
static NACK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        r"
local job = KEYS[5]
if not is_current(KEYS[2], job, ARGV[1], ARGV[2]) then return 0 end
drop_entry(KEYS[1], job)
redis.call('ZREM', KEYS[2], ARGV[1])
if tonumber(ARGV[2]) >= tonumber(redis.call('HGET', job, 'm')) then
  redis.call('RPUSH', KEYS[4], ARGV[1])
  return 2
end
redis.call('ZADD', KEYS[3], now_ms() + tonumber(ARGV[3]), ARGV[1])
return 1
"
    ))
});

/// `KEYS` in flight, job; `ARGV` id, attempt, visibility ms. Moves the end of the reservation to `visibility` ms
/// from now if it is the current one. Returns 1, or 0 if it is not.
static EXTEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        r"
if not is_current(KEYS[1], KEYS[2], ARGV[1], ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], 'XX', now_ms() + tonumber(ARGV[3]), ARGV[1])
return 1
"
    ))
});

/// `KEYS` dead; `ARGV` limit, job key prefix. Returns `{id, payload, attempts, ...}` of the first `limit` dead.
static DEAD_LETTERS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local out = {}
for _, id in ipairs(redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)) do
  local f = redis.call('HMGET', ARGV[2] .. id, 'p', 'a')
  if f[1] then
    table.insert(out, id)
    table.insert(out, f[1])
    table.insert(out, f[2])
  end
end
return out
",
    )
});

/// `KEYS` stream, dead, job; `ARGV` id. Moves a dead job back to the stream with no attempts used.
/// Returns 1, or 0 if it is not dead.
static REQUEUE_DEAD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        r"
if redis.call('LREM', KEYS[2], 1, ARGV[1]) == 0 then return 0 end
local job = KEYS[3]
redis.call('HSET', job, 'a', 0)
push(KEYS[1], job, ARGV[1])
return 1
"
    ))
});

/// `KEYS` stream, delayed, in flight, dead. Returns `{pending, in_flight, delayed, dead}`.
static STATS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        prelude!(),
        r"
local now = now_ms()
local entries = redis.call('XLEN', KEYS[1])
local reserved = redis.call('ZCARD', KEYS[3])
local live = redis.call('ZCOUNT', KEYS[3], '(' .. now, '+inf')
local delayed = redis.call('ZCARD', KEYS[2])
local waiting = redis.call('ZCOUNT', KEYS[2], '(' .. now, '+inf')
return {entries - reserved + (reserved - live) + (delayed - waiting), live, waiting, redis.call('LLEN', KEYS[4])}
"
    ))
});

/// The Redis [`JobQueue`]: one Redis Stream per queue, worked through a consumer group.
///
/// Keys, under the manager's namespace and the hash tag `{queue}` (so a queue lives on one cluster slot):
///
/// | key | type | holds |
/// |---|---|---|
/// | `jq:{q}:s` | stream, group `w` | one entry per ready or reserved job (`XADD`, `XREADGROUP`, `XACK`, `XDEL`) |
/// | `jq:{q}:d` | sorted set | delayed jobs (delay or retry backoff) scored by due time |
/// | `jq:{q}:f` | sorted set | reserved jobs scored by the end of their visibility timeout |
/// | `jq:{q}:x` | list | the dead letters, earliest first |
/// | `jq:{q}:j:<id>` | hash | payload `p`, attempts `a`, max attempts `m`, current stream entry `e` |
/// | `jq:{q}:i:<key>` | string | idempotency key -> job id, expiring after the idempotency window (`SET NX PX`) |
///
/// Every operation is one Lua script, so it is atomic. `reserve` first moves due delayed jobs into the stream,
/// then takes the reservation whose visibility timeout ended first (`XAUTOCLAIM` of its entry to this consumer)
/// or else a new entry (`XREADGROUP ... >`); times are the server's clock. A job is acked with `XACK` + `XDEL`,
/// and its hash deleted. Job ids are UUIDv7 (the stream entry id changes when a job is delayed and re-added).
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
    dead: String,
    job_prefix: String,
    base: String,
}

impl Keys {
    /// The hash holding job `id` (payload, attempts, max attempts, stream entry).
    fn job(&self, id: &JobId) -> String {
        format!("{}{id}", self.job_prefix)
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

    /// The same queue with other settings (codec, idempotency window).
    #[must_use]
    pub fn with_settings(mut self, settings: JobQueueSettings) -> Self {
        self.settings = settings;
        self
    }

    /// The Redis manager this queue runs on.
    pub fn manager(&self) -> &RedisManager {
        &self.manager
    }

    fn keys(&self, queue: &QueueName) -> Keys {
        let base = self.manager.key(&format!("jq:{{{queue}}}:"));
        Keys {
            stream: format!("{base}s"),
            delayed: format!("{base}d"),
            in_flight: format!("{base}f"),
            dead: format!("{base}x"),
            job_prefix: format!("{base}j:"),
            base,
        }
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
                    Some(key) => (
                        format!("{}i:{key}", keys.base),
                        millis(self.settings.idempotency_window, "idempotency_window")?.max(1),
                    ),
                    None => (format!("{}i:", keys.base), 0),
                };
                let id = JobId::generate();
                let mut invocation = ENQUEUE.key(&keys.stream);
                invocation.key(&keys.delayed).key(idempotency_key).key(keys.job(&id));
                invocation.arg(id.as_str()).arg(payload.as_ref()).arg(max_attempts).arg(delay).arg(window);
                let stored: String = self.run(&invocation, "enqueue job").await?;
                Ok(JobId::new(stored))
            })
            .await
    }

    async fn reserve(&self, queue: &QueueName, visibility_timeout: Duration) -> Result<Option<ReservedJob>, KvError> {
        self.metrics
            .run(JobQueueOp::Reserve, async {
                if visibility_timeout.is_zero() {
                    return Err(KvError::invalid("visibility_timeout", "must be greater than zero"));
                }
                let visibility = millis(visibility_timeout, "visibility_timeout")?.max(1);
                let keys = self.keys(queue);
                let mut invocation = RESERVE.key(&keys.stream);
                invocation.key(&keys.delayed).key(&keys.in_flight).key(&keys.dead);
                invocation.arg(visibility).arg(&self.consumer).arg(&keys.job_prefix).arg(PROMOTE_BATCH);
                let found: Option<(String, Vec<u8>, u32, u32)> = self.run(&invocation, "reserve job").await?;
                Ok(found.map(|(id, payload, attempt, max_attempts)| ReservedJob {
                    id: JobId::new(id),
                    queue: queue.clone(),
                    payload: Bytes::from(payload),
                    attempt,
                    max_attempts,
                }))
            })
            .await
    }

    async fn ack(&self, job: &ReservedJob) -> Result<(), KvError> {
        self.metrics
            .run(JobQueueOp::Ack, async {
                let keys = self.keys(&job.queue);
                let mut invocation = ACK.key(&keys.stream);
                invocation.key(&keys.in_flight).key(keys.job(&job.id));
                invocation.arg(job.id.as_str()).arg(job.attempt);
                let acked: i64 = self.run(&invocation, "ack job").await?;
                if acked == 1 { Ok(()) } else { Err(not_reserved()) }
            })
            .await
    }

    async fn nack(&self, job: &ReservedJob, retry_after: Duration) -> Result<NackOutcome, KvError> {
        self.metrics
            .run(JobQueueOp::Nack, async {
                let retry = millis(retry_after, "retry_after")?;
                let keys = self.keys(&job.queue);
                let mut invocation = NACK.key(&keys.stream);
                invocation.key(&keys.in_flight).key(&keys.delayed).key(&keys.dead).key(keys.job(&job.id));
                invocation.arg(job.id.as_str()).arg(job.attempt).arg(retry);
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
                if visibility_timeout.is_zero() {
                    return Err(KvError::invalid("visibility_timeout", "must be greater than zero"));
                }
                let visibility = millis(visibility_timeout, "visibility_timeout")?.max(1);
                let keys = self.keys(&job.queue);
                let mut invocation = EXTEND.key(&keys.in_flight);
                invocation.key(keys.job(&job.id));
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
                invocation.arg(limit.min(i64::MAX as usize)).arg(&keys.job_prefix);
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
                invocation.key(&keys.dead).key(keys.job(id));
                invocation.arg(id.as_str());
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
                invocation.key(&keys.delayed).key(&keys.in_flight).key(&keys.dead);
                let (pending, in_flight, delayed, dead): (u64, u64, u64, u64) =
                    self.run(&invocation, "queue stats").await?;
                Ok(QueueStats { pending, in_flight, delayed, dead })
            })
            .await
    }

    fn codec(&self) -> Codec {
        self.settings.codec
    }
}
