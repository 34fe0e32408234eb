//! [`SqliteJobQueue`]: the [`JobQueue`] port over a SQLite table, each move one `BEGIN IMMEDIATE` transaction.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use cpc_pool::sqlite::SqlitePool;
use cpc_pool::sqlite::enqueue_sql::{CLAIM_KEY, INSERT, KEY_HOLDER};
use cpc_ports::job_queue::{check_batch_delays, check_visibility_timeout, not_dead, not_reserved};
use cpc_ports::{
    Bytes, Codec, DeadJob, EnqueueOptions, JobId, JobQueue, JobQueueSettings, KvError, NackOutcome, QueueName,
    QueueStats, ReservedJob,
};
use rusqlite::{OptionalExtension, Transaction, params};

use crate::kv::{millis, read, to_u32, write};

/// The reservations of queue `?1` that ran out of time on their last attempt (their worker died too often), in
/// due order: the reserve buries them first.
const TIMED_OUT: &str = concat!(
    "SELECT seq FROM cpc_jobs WHERE queue = ?1 AND state = 'reserved' AND run_at <= ",
    now_ms!(),
    " AND attempts >= max_attempts ORDER BY run_at, seq"
);

/// Dead-letters job `?2` of queue `?1`, numbered after the queue's newest dead letter.
const BURY: &str = concat!(
    "UPDATE cpc_jobs SET state = 'dead', dead_at = ",
    now_ms!(),
    ", dead_seq = (SELECT coalesce(max(dead_seq), 0) + 1 FROM cpc_jobs WHERE queue = ?1 AND state = 'dead') \
     WHERE seq = ?2"
);

/// Deletes the dead letters of queue `?1` older than `?2` ms.
const DROP_AGED_DEAD: &str =
    concat!("DELETE FROM cpc_jobs WHERE queue = ?1 AND state = 'dead' AND dead_at <= ", now_ms!(), " - ?2");

/// Deletes up to 100 expired idempotency keys of any queue.
const SWEEP_KEYS: &str = concat!(
    "DELETE FROM cpc_job_keys WHERE rowid IN (SELECT rowid FROM cpc_job_keys WHERE expires_at <= ",
    now_ms!(),
    " LIMIT 100)"
);

/// Deletes the oldest dead letters of queue `?1` beyond the newest `?2`.
const CAP_DEAD: &str = "DELETE FROM cpc_jobs WHERE queue = ?1 AND state = 'dead' AND dead_seq <= ( \
       SELECT dead_seq FROM cpc_jobs WHERE queue = ?1 AND state = 'dead' ORDER BY dead_seq DESC LIMIT 1 OFFSET ?2)";

/// Takes the due job first in line on queue `?1` (ready, or reserved with its visibility timeout over) and
/// reserves it for `?2` milliseconds. The transaction holds SQLite's write lock, so no other writer can take the
/// same row between the `SELECT` and the `UPDATE`.
const RESERVE: &str = concat!(
    "UPDATE cpc_jobs SET state = 'reserved', attempts = attempts + 1, run_at = ",
    now_ms!(),
    " + ?2 \
     WHERE seq = (SELECT seq FROM cpc_jobs WHERE queue = ?1 AND state <> 'dead' AND run_at <= ",
    now_ms!(),
    " ORDER BY run_at, seq LIMIT 1) \
     RETURNING id, payload, attempts, max_attempts"
);

const ACK: &str = "DELETE FROM cpc_jobs WHERE queue = ?1 AND id = ?2 AND state = 'reserved' AND attempts = ?3";

/// Gives reservation `?2` (attempt `?3`) of queue `?1` back: ready again in `?4` ms, or dead after its last
/// attempt (numbered after the queue's newest dead letter).
const NACK: &str = concat!(
    "UPDATE cpc_jobs SET \
       state = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'ready' END, \
       dead_seq = CASE WHEN attempts >= max_attempts THEN ( \
         SELECT coalesce(max(dead_seq), 0) + 1 FROM cpc_jobs WHERE queue = ?1 AND state = 'dead') END, \
       dead_at = CASE WHEN attempts >= max_attempts THEN ",
    now_ms!(),
    " END, \
       run_at = ",
    now_ms!(),
    " + ?4 \
     WHERE queue = ?1 AND id = ?2 AND state = 'reserved' AND attempts = ?3 \
     RETURNING state"
);

/// Moves the end of a current reservation (`?3` its attempt) to `?4` milliseconds from now.
const EXTEND: &str = concat!(
    "UPDATE cpc_jobs SET run_at = ",
    now_ms!(),
    " + ?4 WHERE queue = ?1 AND id = ?2 AND state = 'reserved' AND attempts = ?3"
);

/// The dead letters of queue `?1` within the retention (`?3` ms), earliest death first, at most `?2`.
const DEAD_LETTERS: &str = concat!(
    "SELECT id, payload, attempts FROM cpc_jobs WHERE queue = ?1 AND state = 'dead' AND dead_at > ",
    now_ms!(),
    " - ?3 ORDER BY dead_seq LIMIT ?2"
);

const REQUEUE_DEAD: &str = concat!(
    "UPDATE cpc_jobs SET state = 'ready', attempts = 0, dead_seq = NULL, dead_at = NULL, run_at = ",
    now_ms!(),
    " WHERE queue = ?1 AND id = ?2 AND state = 'dead' AND dead_at > ",
    now_ms!(),
    " - ?3"
);

const STATS: &str = concat!(
    "WITH t AS (SELECT ",
    now_ms!(),
    " AS now) SELECT \
       count(*) FILTER (WHERE state <> 'dead' AND run_at <= t.now), \
       count(*) FILTER (WHERE state = 'reserved' AND run_at > t.now), \
       count(*) FILTER (WHERE state = 'ready' AND run_at > t.now), \
       count(*) FILTER (WHERE state = 'dead' AND dead_at > t.now - ?2) \
     FROM cpc_jobs, t WHERE queue = ?1"
);

/// The SQLite [`JobQueue`]: the tables `cpc_jobs` and `cpc_job_keys` of migration
/// `2026-12-06-000001_create_job_queue` (run the library's SQLite migrations first). Jobs survive a restart of
/// the app: they are rows in the database file.
///
/// One row per job not yet acked, with its state (`ready`, `reserved`, `dead`) and `run_at`: when a ready job is
/// due (after its delay or retry backoff), or when a reservation's visibility timeout ends. SQLite has no
/// `SKIP LOCKED`; it needs none, since it has one writer at a time: `reserve` is one
/// `UPDATE ... WHERE seq = (SELECT ... ORDER BY run_at, seq LIMIT 1) RETURNING ...` inside a `BEGIN IMMEDIATE`
/// transaction, which holds the database's write lock from its first statement. Writers of one pool queue at the
/// pool's writer gate; writers of other pools or processes on the same file wait for the lock up to the
/// connection's `busy_timeout` (a lock not obtained then is [`KvError::Unavailable`], retryable). So two workers
/// never reserve the same job at once, and a reservation whose timeout passed is simply due again. An ack deletes
/// the row. Times are milliseconds on SQLite's clock (see the [crate docs](crate)).
///
/// **Cost.** Every move is one short write transaction (a few indexed statements, no network; a batch of
/// `enqueue_many_bytes` is one transaction for all its jobs, all or nothing): `enqueue`,
/// `ack`, `nack` and `extend` one statement or two; `reserve` first buries the queue's reservations that timed out
/// on their last attempt, deletes its dead letters past the retention and up to 100 expired idempotency keys,
/// then takes the job. With WAL and `synchronous = NORMAL` (the pool's defaults) a commit does not wait for the
/// disk: a power loss can undo the last commits, never corrupt the file, and at-least-once delivery already allows
/// each undo (a lost reservation or nack makes the job due again, a lost ack delivers it once more); a lost enqueue
/// is a job never stored, as if the app had stopped just before it. `dead_letters` and `stats` are reads and run
/// concurrently with everything.
///
/// Idempotency keys live in `cpc_job_keys` for the window (24 h by default, see [`JobQueueSettings`]), claimed
/// with `INSERT ... ON CONFLICT DO UPDATE ... WHERE expired` in the same transaction that inserts the job, so a key
/// is never claimed without its job. Expired keys are replaced when reused, and swept by reserves.
///
/// **Retention.** Dead letters are kept for [`JobQueueSettings::dead_letter_retention`] and at most
/// [`JobQueueSettings::max_dead_letters`] per queue: older ones are neither listed nor counted, and are deleted by
/// the queue's next reserve; when a job dies past the count bound, the oldest are deleted. A job still to be
/// worked is never deleted.
#[derive(Clone)]
pub struct SqliteJobQueue {
    pool: SqlitePool,
    settings: JobQueueSettings,
}

impl SqliteJobQueue {
    /// A job queue on `pool`, with the default settings (JSON, 24-hour idempotency window, dead letters kept 7 days
    /// and 10,000 per queue).
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool, settings: JobQueueSettings::default() }
    }

    /// The same queue with other settings (codec, idempotency window, dead-letter retention).
    #[must_use]
    pub fn with_settings(mut self, settings: JobQueueSettings) -> Self {
        self.settings = settings;
        self
    }

    /// The pool this queue runs on.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The dead-letter retention in milliseconds (at least one).
    fn retention(&self) -> Result<i64, KvError> {
        millis(self.settings.effective_dead_letter_retention(), "dead_letter_retention").map(|ms| ms.max(1))
    }

    /// The dead letters each queue keeps at most.
    fn keep(&self) -> i64 {
        i64::from(self.settings.effective_max_dead_letters())
    }
}

/// The rows of a queue's dead letters beyond the newest `keep`, deleted.
fn cap_dead(tx: &Transaction<'_>, queue: &str, keep: i64) -> rusqlite::Result<()> {
    tx.prepare_cached(CAP_DEAD)?.execute(params![queue, keep])?;
    Ok(())
}

/// Enqueues a job in `tx` (see [`SqliteJobQueue`]); returns the id of the job stored, or of the job already holding
/// the idempotency key.
fn enqueue_in(tx: &Transaction<'_>, job: &NewJob) -> rusqlite::Result<String> {
    if let Some((key, window)) = &job.key {
        let claimed: Option<String> = tx
            .prepare_cached(CLAIM_KEY)?
            .query_row(params![job.queue, key, job.id, window], |r| r.get(0))
            .optional()?;
        if claimed.is_none() {
            return tx.prepare_cached(KEY_HOLDER)?.query_row(params![job.queue, key], |r| r.get(0));
        }
    }
    tx.prepare_cached(INSERT)?.execute(params![
        job.id,
        job.queue,
        job.payload.as_ref(),
        job.delay,
        job.max_attempts
    ])?;
    Ok(job.id.clone())
}

/// A job to store, checked and converted for the statements.
struct NewJob {
    id: String,
    queue: String,
    payload: Bytes,
    delay: i64,
    max_attempts: i64,
    /// The idempotency key and its window in ms.
    key: Option<(String, i64)>,
}

impl fmt::Debug for SqliteJobQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteJobQueue")
            .field("pool", &self.pool.inner().name())
            .field("settings", &self.settings)
            .finish()
    }
}

#[async_trait]
impl JobQueue for SqliteJobQueue {
    async fn enqueue_bytes(
        &self,
        queue: &QueueName,
        payload: Bytes,
        options: EnqueueOptions,
    ) -> Result<JobId, KvError> {
        cpc_ports::check_payload(&payload)?;
        let max_attempts = i64::from(options.validate()?);
        let delay = millis(options.delay.unwrap_or_default(), "delay")?;
        let key = match options.idempotency_key {
            Some(key) => Some((key, millis(self.settings.idempotency_window, "idempotency_window")?)),
            None => None,
        };
        let job = NewJob {
            id: JobId::generate().as_str().to_owned(),
            queue: queue.as_str().to_owned(),
            payload,
            delay,
            max_attempts,
            key,
        };
        let id = write(&self.pool, "enqueue job", move |tx| enqueue_in(tx, &job)).await?;
        Ok(JobId::new(id))
    }

    /// Checks the whole batch, then stores it in one `BEGIN IMMEDIATE` transaction (one statement or two per job,
    /// no network): all or nothing.
    async fn enqueue_many_bytes(&self, queue: &QueueName, jobs: Vec<cpc_ports::NewJob>) -> Result<Vec<JobId>, KvError> {
        let (max_attempts, delays) = check_batch_delays(&jobs, |d| millis(d, "delay"))?;
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let window = millis(self.settings.idempotency_window, "idempotency_window")?;
        let batch: Vec<NewJob> = jobs
            .into_iter()
            .zip(max_attempts)
            .zip(delays)
            .map(|((job, max_attempts), delay)| NewJob {
                id: JobId::generate().as_str().to_owned(),
                queue: queue.as_str().to_owned(),
                payload: job.payload,
                delay,
                max_attempts: i64::from(max_attempts),
                key: job.options.idempotency_key.map(|key| (key, window)),
            })
            .collect();
        let ids = write(&self.pool, "enqueue jobs", move |tx| {
            batch.iter().map(|job| enqueue_in(tx, job)).collect::<rusqlite::Result<Vec<String>>>()
        })
        .await?;
        Ok(ids.into_iter().map(JobId::new).collect())
    }

    async fn reserve(&self, queue: &QueueName, visibility_timeout: Duration) -> Result<Option<ReservedJob>, KvError> {
        check_visibility_timeout(visibility_timeout)?;
        let visibility = millis(visibility_timeout, "visibility_timeout")?.max(1);
        let retention = self.retention()?;
        let keep = self.keep();
        let q = queue.as_str().to_owned();
        let row = write(&self.pool, "reserve job", move |tx| {
            let timed_out: Vec<i64> =
                tx.prepare_cached(TIMED_OUT)?.query_map(params![q], |r| r.get(0))?.collect::<Result<_, _>>()?;
            for seq in &timed_out {
                tx.prepare_cached(BURY)?.execute(params![q, seq])?;
            }
            tx.prepare_cached(DROP_AGED_DEAD)?.execute(params![q, retention])?;
            tx.prepare_cached(SWEEP_KEYS)?.execute([])?;
            if !timed_out.is_empty() {
                cap_dead(tx, &q, keep)?;
            }
            tx.prepare_cached(RESERVE)?
                .query_row(params![q, visibility], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?, r.get::<_, i64>(2)?, r.get::<_, i64>(3)?))
                })
                .optional()
        })
        .await?;
        Ok(row.map(|(id, payload, attempt, max_attempts)| ReservedJob {
            id: JobId::new(id),
            queue: queue.clone(),
            payload: Bytes::from(payload),
            attempt: to_u32(attempt),
            max_attempts: to_u32(max_attempts),
        }))
    }

    async fn ack(&self, job: &ReservedJob) -> Result<(), KvError> {
        let (q, id, attempt) = (job.queue.as_str().to_owned(), job.id.as_str().to_owned(), i64::from(job.attempt));
        let deleted =
            write(&self.pool, "ack job", move |tx| tx.prepare_cached(ACK)?.execute(params![q, id, attempt])).await?;
        if deleted == 0 { Err(not_reserved()) } else { Ok(()) }
    }

    async fn nack(&self, job: &ReservedJob, retry_after: Duration) -> Result<NackOutcome, KvError> {
        let retry = millis(retry_after, "retry_after")?;
        let keep = self.keep();
        let (q, id, attempt) = (job.queue.as_str().to_owned(), job.id.as_str().to_owned(), i64::from(job.attempt));
        let state = write(&self.pool, "nack job", move |tx| {
            let state: Option<String> =
                tx.prepare_cached(NACK)?.query_row(params![q, id, attempt, retry], |r| r.get(0)).optional()?;
            if state.as_deref() == Some("dead") {
                cap_dead(tx, &q, keep)?;
            }
            Ok(state)
        })
        .await?;
        match state.as_deref() {
            Some("dead") => Ok(NackOutcome::Dead),
            Some(_) => Ok(NackOutcome::Retrying),
            None => Err(not_reserved()),
        }
    }

    async fn extend(&self, job: &ReservedJob, visibility_timeout: Duration) -> Result<(), KvError> {
        check_visibility_timeout(visibility_timeout)?;
        let visibility = millis(visibility_timeout, "visibility_timeout")?.max(1);
        let (q, id, attempt) = (job.queue.as_str().to_owned(), job.id.as_str().to_owned(), i64::from(job.attempt));
        let extended = write(&self.pool, "extend job reservation", move |tx| {
            tx.prepare_cached(EXTEND)?.execute(params![q, id, attempt, visibility])
        })
        .await?;
        if extended == 0 { Err(not_reserved()) } else { Ok(()) }
    }

    async fn dead_letters(&self, queue: &QueueName, limit: usize) -> Result<Vec<DeadJob>, KvError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let retention = self.retention()?;
        let q = queue.as_str().to_owned();
        read(&self.pool, "list dead jobs", move |c| {
            let mut statement = c.prepare_cached(DEAD_LETTERS)?;
            let rows = statement.query_map(params![q, limit, retention], |r| {
                Ok(DeadJob {
                    id: JobId::new(r.get::<_, String>(0)?),
                    payload: Bytes::from(r.get::<_, Vec<u8>>(1)?),
                    attempts: to_u32(r.get(2)?),
                })
            })?;
            rows.collect()
        })
        .await
    }

    async fn requeue_dead(&self, queue: &QueueName, id: &JobId) -> Result<(), KvError> {
        let retention = self.retention()?;
        let (q, id) = (queue.as_str().to_owned(), id.as_str().to_owned());
        let moved = write(&self.pool, "requeue dead job", move |tx| {
            tx.prepare_cached(REQUEUE_DEAD)?.execute(params![q, id, retention])
        })
        .await?;
        if moved == 0 { Err(not_dead()) } else { Ok(()) }
    }

    async fn stats(&self, queue: &QueueName) -> Result<QueueStats, KvError> {
        let retention = self.retention()?;
        let q = queue.as_str().to_owned();
        let counts = read(&self.pool, "queue stats", move |c| {
            c.prepare_cached(STATS)?
                .query_row(params![q, retention], |r| Ok([r.get::<_, i64>(0)?, r.get(1)?, r.get(2)?, r.get(3)?]))
        })
        .await?;
        let [pending, in_flight, delayed, dead] = counts.map(|n| u64::try_from(n).unwrap_or(0));
        Ok(QueueStats { pending, in_flight, delayed, dead })
    }

    fn codec(&self) -> Codec {
        self.settings.codec.clone()
    }
}
