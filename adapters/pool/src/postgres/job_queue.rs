//! [`PgJobQueue`]: the [`JobQueue`] port over a PostgreSQL table, taken with `FOR UPDATE SKIP LOCKED`.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use cpc_ports::job_queue::{
    batch_error, check_batch_delays, check_visibility_timeout, not_dead, not_reserved, repeated_keys,
};
use cpc_ports::{
    Codec, DeadJob, EnqueueOptions, JobId, JobQueue, JobQueueSettings, KvError, NackOutcome, NewJob, QueueName,
    QueueStats, ReservedJob,
};
use tokio_postgres::types::ToSql;

use super::PgPool;
use super::kv::{self, column as col, millis};

/// Makes the statement's own (autocommit) transaction commit without waiting for the WAL flush, for the moves
/// that at-least-once delivery lets a server crash undo (see [`PgJobQueue`]). A CTE joined into the statement, so
/// it runs in the same round trip: `SET LOCAL` would need a transaction block of its own.
macro_rules! no_flush_wait {
    () => {
        "WITH async_commit AS (SELECT set_config('synchronous_commit', 'off', true)) "
    };
}

/// How often a queue instance runs [`HOUSEKEEPING`] for a queue it reserves from, by default.
pub const DEFAULT_HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(1);

/// The queues whose housekeeping time a queue instance remembers; past it the memory is cleared (each queue then
/// has its housekeeping run at its next reserve).
const HOUSEKEEPING_MEMORY: usize = 1024;

/// The housekeeping a reserve does first (at most once per housekeeping interval), in one statement: dead-letters the reservations of queue `$1` that ran
/// out of time on their last attempt (their worker died too often); deletes the queue's dead letters older than
/// `$2` ms; deletes up to 100 expired idempotency keys of any queue, skipping those another session holds. Returns
/// how many jobs it buried.
const HOUSEKEEPING: &str = concat!(
    no_flush_wait!(),
    ", buried AS ( \
       UPDATE cpc_jobs SET state = 'dead', dead_seq = nextval('cpc_jobs_dead_seq'), dead_at = now() \
       FROM async_commit \
       WHERE queue = $1 AND state = 'reserved' AND run_at <= now() AND attempts >= max_attempts RETURNING 1), \
     aged AS ( \
       DELETE FROM cpc_jobs WHERE queue = $1 AND state = 'dead' \
         AND dead_at <= now() - $2::bigint * interval '1 millisecond'), \
     stale_keys AS ( \
       DELETE FROM cpc_job_keys WHERE ctid = ANY(ARRAY( \
         SELECT ctid FROM cpc_job_keys WHERE expires_at <= now() LIMIT 100 FOR UPDATE SKIP LOCKED))) \
     SELECT count(*) FROM buried"
);

/// Deletes the oldest dead letters of queue `$1` beyond the newest `$2`.
const CAP_DEAD: &str = concat!(
    no_flush_wait!(),
    "DELETE FROM cpc_jobs USING async_commit WHERE queue = $1 AND state = 'dead' AND dead_seq <= ( \
       SELECT dead_seq FROM cpc_jobs WHERE queue = $1 AND state = 'dead' ORDER BY dead_seq DESC OFFSET $2 LIMIT 1)"
);

/// Takes the `$3` due jobs first in line (ready, or reserved with its visibility timeout over and attempts left),
/// skipping rows other workers hold locked, and reserves them for `$2` milliseconds. A reservation that ran out on
/// its last attempt is left for [`HOUSEKEEPING`] to bury. Rows come back in line order.
const RESERVE: &str = concat!(
    no_flush_wait!(),
    ", next AS ( \
       SELECT id, run_at, seq FROM cpc_jobs WHERE queue = $1 AND state <> 'dead' AND run_at <= now() \
         AND (state = 'ready' OR attempts < max_attempts) \
       ORDER BY run_at, seq LIMIT $3 FOR UPDATE SKIP LOCKED), \
     taken AS ( \
       UPDATE cpc_jobs j SET state = 'reserved', attempts = j.attempts + 1, \
         run_at = now() + $2::bigint * interval '1 millisecond' \
       FROM next, async_commit WHERE j.id = next.id \
       RETURNING j.id, j.payload, j.attempts, j.max_attempts, next.run_at AS due, next.seq) \
     SELECT id, payload, attempts, max_attempts FROM taken ORDER BY due, seq"
);

/// Stores job `$1` on queue `$2` with payload `$3` (bytea), due in `$4` ms, with `$5` attempts (integer).
pub const INSERT: &str = "INSERT INTO cpc_jobs (id, queue, payload, state, run_at, max_attempts) \
     VALUES ($1, $2, $3, 'ready', now() + $4::bigint * interval '1 millisecond', $5)";

/// A keyed enqueue in ONE statement (so one transaction): claims the idempotency key `$6` for `$7` milliseconds
/// unless a live claim holds it, inserts the job only if the claim succeeded, and returns the id of the job that
/// holds the key: the new one, or the live holder's. A crash, a killed connection or a cancelled call can never
/// leave the key claimed without its job, nor the job without its key.
///
/// No row comes back when another enqueue claimed the key concurrently and committed after this statement
/// started: its row is not in this statement's snapshot, so the caller reads the holder again ([`KEY_HOLDER`]).
pub const ENQUEUE_KEYED: &str = "WITH claim AS ( \
       INSERT INTO cpc_job_keys (queue, key, job_id, expires_at) \
       VALUES ($2, $6, $1, now() + $7::bigint * interval '1 millisecond') \
       ON CONFLICT (queue, key) DO UPDATE SET job_id = EXCLUDED.job_id, expires_at = EXCLUDED.expires_at \
         WHERE cpc_job_keys.expires_at <= now() \
       RETURNING job_id), \
     job AS ( \
       INSERT INTO cpc_jobs (id, queue, payload, state, run_at, max_attempts) \
       SELECT $1, $2, $3, 'ready', now() + $4::bigint * interval '1 millisecond', $5 FROM claim \
       RETURNING id) \
     SELECT id FROM job \
     UNION ALL \
     SELECT job_id FROM cpc_job_keys WHERE queue = $2 AND key = $6 AND NOT EXISTS (SELECT 1 FROM claim)";

/// A batch enqueue in ONE statement (so one transaction, all or nothing) on queue `$1`: the jobs are the rows of
/// `unnest($2 ids, $3 payloads, $4 delays in ms, $5 max attempts, $6 idempotency keys or NULL)`, no key twice (the
/// caller maps a key repeated inside the batch to its first job). Claims the keys as [`ENQUEUE_KEYED`] does (in key
/// order, so two batches never wait on each other's keys in a cycle), inserts in batch order the jobs without a key
/// and those whose claim succeeded, and returns one row per job, in order: its id, the live holder's for a key
/// held before, or NULL for a key another enqueue claimed concurrently and committed after this statement started
/// (the caller reads those holders again, [`KEY_HOLDER`]).
const ENQUEUE_MANY: &str = "WITH input AS ( \
       SELECT * FROM unnest($2::text[], $3::bytea[], $4::bigint[], $5::int[], $6::text[]) \
         WITH ORDINALITY AS t(id, payload, delay, max_attempts, key, ord)), \
     claim AS ( \
       INSERT INTO cpc_job_keys (queue, key, job_id, expires_at) \
       SELECT $1::text, key, id, now() + $7::bigint * interval '1 millisecond' FROM input WHERE key IS NOT NULL \
       ORDER BY key \
       ON CONFLICT (queue, key) DO UPDATE SET job_id = EXCLUDED.job_id, expires_at = EXCLUDED.expires_at \
         WHERE cpc_job_keys.expires_at <= now() \
       RETURNING job_id), \
     job AS ( \
       INSERT INTO cpc_jobs (id, queue, payload, state, run_at, max_attempts) \
       SELECT id, $1::text, payload, 'ready', now() + delay * interval '1 millisecond', max_attempts FROM input \
       WHERE key IS NULL OR id IN (SELECT job_id FROM claim) \
       ORDER BY ord \
       RETURNING id) \
     SELECT CASE WHEN i.key IS NULL OR i.id IN (SELECT job_id FROM claim) THEN i.id \
       ELSE (SELECT k.job_id FROM cpc_job_keys k WHERE k.queue = $1 AND k.key = i.key) END \
     FROM input i ORDER BY i.ord";

/// The job holding idempotency key `$2` on queue `$1` (column `job_id`).
pub const KEY_HOLDER: &str = "SELECT job_id FROM cpc_job_keys WHERE queue = $1 AND key = $2";

const ACK: &str = concat!(
    no_flush_wait!(),
    "DELETE FROM cpc_jobs USING async_commit \
     WHERE queue = $1 AND id = $2 AND state = 'reserved' AND attempts = $3 RETURNING id"
);

/// Acks the current reservations among (`$2` ids, `$3` attempts) of queue `$1` in one statement; returns the ids
/// it deleted.
const ACK_MANY: &str = concat!(
    no_flush_wait!(),
    "DELETE FROM cpc_jobs j USING async_commit, unnest($2::text[], $3::int[]) AS acked(id, attempts) \
     WHERE j.queue = $1 AND j.id = acked.id AND j.state = 'reserved' AND j.attempts = acked.attempts \
     RETURNING j.id"
);

const NACK: &str = concat!(
    no_flush_wait!(),
    "UPDATE cpc_jobs SET \
       state = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'ready' END, \
       dead_seq = CASE WHEN attempts >= max_attempts THEN nextval('cpc_jobs_dead_seq') END, \
       dead_at = CASE WHEN attempts >= max_attempts THEN now() END, \
       run_at = now() + $4::bigint * interval '1 millisecond' \
     FROM async_commit \
     WHERE queue = $1 AND id = $2 AND state = 'reserved' AND attempts = $3 \
     RETURNING state"
);

/// Moves the end of a current reservation (`$3` its attempt) to `$4` milliseconds from now.
const EXTEND: &str = concat!(
    no_flush_wait!(),
    "UPDATE cpc_jobs SET run_at = now() + $4::bigint * interval '1 millisecond' FROM async_commit \
     WHERE queue = $1 AND id = $2 AND state = 'reserved' AND attempts = $3 RETURNING id"
);

/// The dead letters of queue `$1` within the retention (`$3` ms), earliest death first, at most `$2`.
const DEAD_LETTERS: &str = "SELECT id, payload, attempts FROM cpc_jobs WHERE queue = $1 AND state = 'dead' \
     AND dead_at > now() - $3::bigint * interval '1 millisecond' ORDER BY dead_seq LIMIT $2";

const REQUEUE_DEAD: &str = "UPDATE cpc_jobs SET state = 'ready', attempts = 0, dead_seq = NULL, dead_at = NULL, \
       run_at = now() \
     WHERE queue = $1 AND id = $2 AND state = 'dead' AND dead_at > now() - $3::bigint * interval '1 millisecond' \
     RETURNING id";

const STATS: &str = "SELECT \
       count(*) FILTER (WHERE state <> 'dead' AND run_at <= now()), \
       count(*) FILTER (WHERE state = 'reserved' AND run_at > now()), \
       count(*) FILTER (WHERE state = 'ready' AND run_at > now()), \
       count(*) FILTER (WHERE state = 'dead' AND dead_at > now() - $2::bigint * interval '1 millisecond') \
     FROM cpc_jobs WHERE queue = $1";

/// The PostgreSQL [`JobQueue`]: the tables `cpc_jobs` and `cpc_job_keys` of migration
/// `2026-11-22-000006_create_job_queue` (run the embedded migrations first).
///
/// One row per job not yet acked, with its state (`ready`, `reserved`, `dead`) and `run_at`: when a ready job is
/// due (after its delay or retry backoff), or when a reservation's visibility timeout ends. `reserve` is one
/// `UPDATE ... FROM (SELECT ... ORDER BY run_at, seq LIMIT 1 FOR UPDATE SKIP LOCKED)`: concurrent workers skip
/// each other's rows instead of waiting, and a reservation whose timeout passed is simply due again. An ack
/// deletes the row. Times are the database server's clock (`now()`).
///
/// **Batches.** `reserve_many(queue, timeout, n)` is the same statement with `LIMIT n`: `n` jobs in one round trip
/// (`reserve` is `reserve_many` of one). `ack_many` is one `DELETE ... FROM unnest(ids, attempts)` per queue of the
/// batch, each job deleted only if it is still the reservation its receipt names (state and attempt), as `ack`.
/// `enqueue_many_bytes` is one statement for the whole batch (an `INSERT ... SELECT FROM unnest(...)` in batch
/// order, its idempotency keys claimed in the same statement): one round trip and one commit, all or nothing.
///
/// **Housekeeping** (burying reservations that ran out on their last attempt, deleting dead letters past the
/// retention, sweeping expired idempotency keys) is one statement that a reserve runs first at most once per
/// [housekeeping interval](Self::with_housekeeping_interval) per queue (1 s by default), and that
/// `dead_letters` and `requeue_dead` always run first. Until it runs, a reservation that ran out on its
/// last attempt is reserved by nobody (the reserve statement skips it); a worker calling reserve in a loop thus
/// pays one extra round trip per second, not one per job.
///
/// **Durability.** An enqueue commits as every write does, waiting for the WAL flush. A reservation, an ack and a
/// nack commit without waiting (`synchronous_commit = off` for their own transaction only): a server crash can undo
/// the last few hundred milliseconds of them, never corrupt anything, and each undo is one at-least-once delivery
/// already allows: a lost reservation or nack makes the job due again, a lost ack delivers it once more. On a disk
/// whose flush is slow this is most of the throughput (measured in `docs/BENCHMARKS.md`).
///
/// Idempotency keys live in `cpc_job_keys` for the window (24 h by default, see [`JobQueueSettings`]), claimed with
/// `INSERT ... ON CONFLICT DO UPDATE ... WHERE expired` in the same statement that inserts the job, so a key is
/// never claimed without its job. Expired keys are replaced when reused, and swept (100 at most per housekeeping).
///
/// **Retention.** Dead letters (migration `2026-11-30-000002_job_retention` records when each died) are kept for
/// [`JobQueueSettings::dead_letter_retention`] and at most [`JobQueueSettings::max_dead_letters`] per queue: older
/// ones are neither listed nor counted, and are deleted by the queue's next housekeeping; when a job dies past the count
/// bound, the oldest are deleted. A job still to be worked is never deleted.
#[derive(Clone)]
pub struct PgJobQueue {
    pool: PgPool,
    settings: JobQueueSettings,
    housekeeping_interval: Duration,
    /// When each queue last had its housekeeping run by this instance (or a clone of it).
    housekept: Arc<Mutex<HashMap<String, Instant>>>,
}

impl PgJobQueue {
    /// A job queue on `pool`, with the default settings (JSON, 24-hour idempotency window).
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            settings: JobQueueSettings::default(),
            housekeeping_interval: DEFAULT_HOUSEKEEPING_INTERVAL,
            housekept: Arc::default(),
        }
    }

    /// The same queue running its housekeeping (burying reservations that ran out on their last attempt, deleting
    /// dead letters past the retention, sweeping expired idempotency keys) at most once per `interval` per queue
    /// on reserve (1 s by default; zero runs it before every reserve).
    #[must_use]
    pub fn with_housekeeping_interval(mut self, interval: Duration) -> Self {
        self.housekeeping_interval = interval;
        self
    }

    /// The same queue with other settings (codec, idempotency window, dead-letter retention).
    #[must_use]
    pub fn with_settings(mut self, settings: JobQueueSettings) -> Self {
        self.settings = settings;
        self
    }

    /// The pool this queue runs on.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The dead-letter retention in milliseconds (at least one).
    fn retention(&self) -> Result<i64, KvError> {
        millis(self.settings.effective_dead_letter_retention(), "dead_letter_retention").map(|ms| ms.max(1))
    }

    /// Runs [`HOUSEKEEPING`] on `queue` (then the count bound if it buried a job), unless `when_due` and this
    /// instance ran it on `queue` within the housekeeping interval.
    async fn housekeep(&self, queue: &str, when_due: bool) -> Result<(), KvError> {
        if when_due && !self.housekeeping_due(queue) {
            return Ok(());
        }
        let rows = self.query(HOUSEKEEPING, &[&queue, &self.retention()?], "dead-letter expired jobs").await?;
        if rows.first().map(|row| col::<i64>(row, 0)).transpose()?.unwrap_or(0) > 0 {
            self.cap_dead(queue).await?;
        }
        Ok(())
    }

    /// Whether `queue`'s housekeeping is due, marking it done now if so. A poisoned memory (a panic while it was
    /// held) only makes it due.
    fn housekeeping_due(&self, queue: &str) -> bool {
        let now = Instant::now();
        let Ok(mut housekept) = self.housekept.lock() else {
            return true;
        };
        if let Some(last) = housekept.get(queue)
            && now.duration_since(*last) < self.housekeeping_interval
        {
            return false;
        }
        if housekept.len() >= HOUSEKEEPING_MEMORY {
            housekept.clear();
        }
        housekept.insert(queue.to_owned(), now);
        true
    }

    /// Deletes the oldest dead letters of `queue` beyond the count bound.
    async fn cap_dead(&self, queue: &str) -> Result<(), KvError> {
        let keep = i64::from(self.settings.effective_max_dead_letters());
        self.query(CAP_DEAD, &[&queue, &keep], "drop the oldest dead jobs").await?;
        Ok(())
    }
    /// Runs `sql` on a pooled connection (a cached prepared statement) and returns its rows.
    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        operation: &'static str,
    ) -> Result<Vec<tokio_postgres::Row>, KvError> {
        kv::query(&self.pool, sql, params, operation).await
    }

    /// The job holding idempotency key `key` on `queue`: read when an enqueue found the key claimed by another.
    async fn key_holder(&self, queue: &str, key: &str) -> Result<String, KvError> {
        let rows = self.query(KEY_HOLDER, &[&queue, &key], "read idempotency key").await?;
        let row = rows
            .first()
            .ok_or_else(|| KvError::backend("postgres", "the idempotency key was neither claimed nor held by a job"))?;
        col::<String>(row, 0)
    }
}

fn attempts(n: i32) -> u32 {
    u32::try_from(n).unwrap_or(0)
}

impl fmt::Debug for PgJobQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgJobQueue").field("pool", &self.pool.name()).field("settings", &self.settings).finish()
    }
}

#[async_trait]
impl JobQueue for PgJobQueue {
    async fn enqueue_bytes(
        &self,
        queue: &QueueName,
        payload: cpc_ports::Bytes,
        options: EnqueueOptions,
    ) -> Result<JobId, KvError> {
        cpc_ports::check_payload(&payload)?;
        let max_attempts = i32::try_from(options.validate()?).unwrap_or(i32::MAX);
        let delay = millis(options.delay.unwrap_or_default(), "delay")?;
        let id = JobId::generate();
        let q = queue.as_str();
        if let Some(key) = &options.idempotency_key {
            let window = millis(self.settings.idempotency_window, "idempotency_window")?;
            let params: [&(dyn ToSql + Sync); 7] =
                [&id.as_str(), &q, &payload.as_ref(), &delay, &max_attempts, key, &window];
            let rows = self.query(ENQUEUE_KEYED, &params, "enqueue keyed job").await?;
            return Ok(JobId::new(match rows.first() {
                Some(row) => col::<String>(row, 0)?,
                None => self.key_holder(q, key).await?,
            }));
        }
        self.query(INSERT, &[&id.as_str(), &q, &payload.as_ref(), &delay, &max_attempts], "enqueue job").await?;
        Ok(id)
    }

    /// Checks the whole batch, then stores it with ONE statement (`ENQUEUE_MANY`: a multi-row insert from
    /// `unnest`, keys claimed in the same statement), so one round trip and one commit, all or nothing.
    async fn enqueue_many_bytes(&self, queue: &QueueName, jobs: Vec<NewJob>) -> Result<Vec<JobId>, KvError> {
        let (max_attempts, delays) = check_batch_delays(&jobs, |d| millis(d, "delay"))?;
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let window = millis(self.settings.idempotency_window, "idempotency_window")?;
        let repeats = repeated_keys(&jobs);
        // The jobs sent: every job but the repeats of a key inside the batch.
        let sent: Vec<usize> = (0..jobs.len()).filter(|&i| repeats[i].is_none()).collect();
        let generated: Vec<JobId> = sent.iter().map(|_| JobId::generate()).collect();
        let ids: Vec<&str> = generated.iter().map(JobId::as_str).collect();
        let payloads: Vec<&[u8]> = sent.iter().map(|&i| jobs[i].payload.as_ref()).collect();
        let delays: Vec<i64> = sent.iter().map(|&i| delays[i]).collect();
        let tries: Vec<i32> = sent.iter().map(|&i| i32::try_from(max_attempts[i]).unwrap_or(i32::MAX)).collect();
        let keys: Vec<Option<&str>> = sent.iter().map(|&i| jobs[i].options.idempotency_key.as_deref()).collect();
        let q = queue.as_str();
        let params: [&(dyn ToSql + Sync); 7] = [&q, &ids, &payloads, &delays, &tries, &keys, &window];
        let rows = self.query(ENQUEUE_MANY, &params, "enqueue jobs").await?;
        if rows.len() != sent.len() {
            return Err(KvError::backend("postgres", "the batch enqueue returned a wrong number of ids"));
        }
        let mut stored: Vec<Option<JobId>> = vec![None; jobs.len()];
        for (row, (&i, key)) in rows.iter().zip(sent.iter().zip(&keys)) {
            let id = match (col::<Option<String>>(row, 0)?, key) {
                (Some(id), _) => id,
                (None, Some(key)) => self.key_holder(q, key).await?,
                (None, None) => return Err(KvError::backend("postgres", "the batch enqueue returned no id")),
            };
            stored[i] = Some(JobId::new(id));
        }
        for (i, earlier) in repeats.iter().enumerate() {
            if let Some(earlier) = earlier {
                stored[i] = stored[*earlier].clone();
            }
        }
        stored
            .into_iter()
            .map(|id| id.ok_or_else(|| KvError::backend("postgres", "the batch enqueue returned no id")))
            .collect()
    }

    async fn reserve(&self, queue: &QueueName, visibility_timeout: Duration) -> Result<Option<ReservedJob>, KvError> {
        Ok(self.reserve_many(queue, visibility_timeout, 1).await?.into_iter().next())
    }

    async fn reserve_many(
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
        let limit = i64::try_from(max).unwrap_or(i64::MAX);
        let q = queue.as_str();
        self.housekeep(q, true).await?;
        let rows = self.query(RESERVE, &[&q, &visibility, &limit], "reserve jobs").await?;
        rows.iter()
            .map(|row| {
                Ok(ReservedJob {
                    id: JobId::new(col::<String>(row, 0)?),
                    queue: queue.clone(),
                    payload: cpc_ports::Bytes::from(col::<Vec<u8>>(row, 1)?),
                    attempt: attempts(col(row, 2)?),
                    max_attempts: attempts(col(row, 3)?),
                })
            })
            .collect()
    }

    async fn ack(&self, job: &ReservedJob) -> Result<(), KvError> {
        let attempt = i32::try_from(job.attempt).map_err(|_| not_reserved())?;
        let deleted = self.query(ACK, &[&job.queue.as_str(), &job.id.as_str(), &attempt], "ack job").await?;
        if deleted.is_empty() { Err(not_reserved()) } else { Ok(()) }
    }

    async fn ack_many(&self, jobs: &[ReservedJob]) -> Vec<Result<(), KvError>> {
        let mut results: Vec<Result<(), KvError>> = jobs.iter().map(|_| Err(not_reserved())).collect();
        let mut by_queue: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, job) in jobs.iter().enumerate() {
            by_queue.entry(job.queue.as_str()).or_default().push(i);
        }
        for (queue, indexes) in by_queue {
            // An attempt past i32 is no reservation this table holds: it keeps its NotFound.
            let held: Vec<usize> = indexes.into_iter().filter(|&i| i32::try_from(jobs[i].attempt).is_ok()).collect();
            let ids: Vec<&str> = held.iter().map(|&i| jobs[i].id.as_str()).collect();
            let tries: Vec<i32> = held.iter().map(|&i| i32::try_from(jobs[i].attempt).unwrap_or(i32::MAX)).collect();
            match self.query(ACK_MANY, &[&queue, &ids, &tries], "ack jobs").await {
                Ok(rows) => {
                    let mut deleted = std::collections::HashSet::with_capacity(rows.len());
                    for row in &rows {
                        match col::<String>(row, 0) {
                            Ok(id) => {
                                deleted.insert(id);
                            }
                            Err(error) => {
                                for &i in &held {
                                    results[i] = Err(batch_error(&error));
                                }
                            }
                        }
                    }
                    for &i in &held {
                        if deleted.contains(jobs[i].id.as_str()) {
                            results[i] = Ok(());
                        }
                    }
                }
                Err(error) => {
                    for &i in &held {
                        results[i] = Err(batch_error(&error));
                    }
                }
            }
        }
        results
    }

    async fn nack(&self, job: &ReservedJob, retry_after: Duration) -> Result<NackOutcome, KvError> {
        let attempt = i32::try_from(job.attempt).map_err(|_| not_reserved())?;
        let retry = millis(retry_after, "retry_after")?;
        let params: [&(dyn ToSql + Sync); 4] = [&job.queue.as_str(), &job.id.as_str(), &attempt, &retry];
        let rows = self.query(NACK, &params, "nack job").await?;
        match rows.first().map(|row| col::<String>(row, 0)).transpose()? {
            Some(state) if state == "dead" => {
                self.cap_dead(job.queue.as_str()).await?;
                Ok(NackOutcome::Dead)
            }
            Some(_) => Ok(NackOutcome::Retrying),
            None => Err(not_reserved()),
        }
    }

    async fn extend(&self, job: &ReservedJob, visibility_timeout: Duration) -> Result<(), KvError> {
        check_visibility_timeout(visibility_timeout)?;
        let visibility = millis(visibility_timeout, "visibility_timeout")?.max(1);
        let attempt = i32::try_from(job.attempt).map_err(|_| not_reserved())?;
        let params: [&(dyn ToSql + Sync); 4] = [&job.queue.as_str(), &job.id.as_str(), &attempt, &visibility];
        let extended = self.query(EXTEND, &params, "extend job reservation").await?;
        if extended.is_empty() { Err(not_reserved()) } else { Ok(()) }
    }

    async fn dead_letters(&self, queue: &QueueName, limit: usize) -> Result<Vec<DeadJob>, KvError> {
        self.housekeep(queue.as_str(), false).await?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self.query(DEAD_LETTERS, &[&queue.as_str(), &limit, &self.retention()?], "list dead jobs").await?;
        rows.iter()
            .map(|row| {
                Ok(DeadJob {
                    id: JobId::new(col::<String>(row, 0)?),
                    payload: cpc_ports::Bytes::from(col::<Vec<u8>>(row, 1)?),
                    attempts: attempts(col(row, 2)?),
                })
            })
            .collect()
    }

    async fn requeue_dead(&self, queue: &QueueName, id: &JobId) -> Result<(), KvError> {
        self.housekeep(queue.as_str(), false).await?;
        let params: [&(dyn ToSql + Sync); 3] = [&queue.as_str(), &id.as_str(), &self.retention()?];
        let moved = self.query(REQUEUE_DEAD, &params, "requeue dead job").await?;
        if moved.is_empty() { Err(not_dead()) } else { Ok(()) }
    }

    async fn stats(&self, queue: &QueueName) -> Result<QueueStats, KvError> {
        let rows = self.query(STATS, &[&queue.as_str(), &self.retention()?], "queue stats").await?;
        let Some(row) = rows.first() else {
            return Ok(QueueStats::default());
        };
        let count = |i: usize| col::<i64>(row, i).map(|n| u64::try_from(n).unwrap_or(0));
        Ok(QueueStats { pending: count(0)?, in_flight: count(1)?, delayed: count(2)?, dead: count(3)? })
    }

    fn codec(&self) -> Codec {
        self.settings.codec.clone()
    }
}
