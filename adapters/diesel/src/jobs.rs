//! Background jobs enqueued inside a unit of work (the transactional outbox): [`TxJobsExt::jobs`] on an open
//! transaction.
//!
//! A job enqueued with `tx.jobs().enqueue(...)` is a row inserted into the job queue's table (`cpc_jobs`) on the
//! transaction's own connection, so it lands exactly when the transaction's other writes do: a worker reserving
//! from `PgJobQueue` (PostgreSQL) or `SqliteJobQueue` (SQLite, `cpc-sqlite-kv`) on the same database sees it only
//! once the transaction commits, and never if it rolls back (a returned error, a panic in the unit of work's
//! closure, or a unit-of-work future dropped before it finished). So "create the user and queue the welcome
//! e-mail" can never store one without the other.
//!
//! ```no_run
//! # async fn demo(uow: &dyn cpc_ports::UnitOfWork, ada: cpc_domain::NewUser) -> Result<(), cpc_ports::RepoError> {
//! use cpc_diesel::jobs::TxJobsExt;
//! use cpc_ports::{EnqueueOptions, QueueName, UnitOfWorkExt};
//!
//! let mails = QueueName::new("welcome-mails")?;
//! uow.run(|tx| Box::pin(async move {
//!     let user = tx.users().create(ada).await?;
//!     let key = format!("welcome:{}", user.id);
//!     tx.jobs().enqueue(&mails, &user.id, EnqueueOptions::default().idempotency_key(key)).await?;
//!     Ok::<_, cpc_ports::RepoError>(())
//! })).await?;
//! # Ok(()) }
//! ```

use std::time::Duration;

use cpc_domain::ValidationError;
use cpc_ports::{Bytes, EnqueueOptions, JobId, JobQueueSettings, KvError, QueueName, RepoError, Tx};
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Binary, Integer, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;

use crate::connection::AsyncSqliteConnection;
use crate::error::ErrorContext;
use crate::uow::{DieselConn, with_connection};

/// Enqueues jobs inside an open transaction: [`jobs`](TxJobsExt::jobs) on any `dyn Tx` (a `Box<dyn Tx>` from
/// `begin`, or the `&dyn Tx` a unit-of-work closure gets). See the [module docs](self).
pub trait TxJobsExt {
    /// The job queue inside this transaction, with the default [`JobQueueSettings`] (JSON payloads, 24-hour
    /// idempotency window): use [`TxJobs::with_settings`] to match a queue configured otherwise.
    fn jobs(&self) -> TxJobs<'_>;
}

impl TxJobsExt for dyn Tx + '_ {
    fn jobs(&self) -> TxJobs<'_> {
        TxJobs { tx: self, settings: JobQueueSettings::default() }
    }
}

/// The job queue inside one open transaction, from [`TxJobsExt::jobs`]. Its jobs go into the queue's table on
/// the transaction's connection, at the transaction's level (in a savepoint of their own, so a failed enqueue
/// leaves the transaction usable), and become visible to the queue's workers when the top-level transaction
/// commits.
///
/// Enqueue rules are the [`JobQueue`](cpc_ports::JobQueue) port's: the options are validated the same way, a
/// delay or an idempotency key behaves the same. An idempotency key is claimed in the same statement as the job is
/// stored, so it too is claimed only if the transaction commits; until then, a concurrent enqueue with the same
/// key on PostgreSQL waits for this transaction to finish (SQLite has one writer at a time anyway).
///
/// Works on a Diesel unit of work whose database has the job queue's tables (PostgreSQL: migrations
/// `2026-11-22-000006_create_job_queue` and `2026-11-30-000002_job_retention`; SQLite:
/// `2026-12-06-000001_create_job_queue`). On any other `Tx` (the in-memory fake) it fails with
/// [`RepoError::Validation`] naming `tx`.
#[derive(Clone)]
pub struct TxJobs<'t> {
    tx: &'t dyn Tx,
    settings: JobQueueSettings,
}

impl std::fmt::Debug for TxJobs<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxJobs").field("settings", &self.settings).finish_non_exhaustive()
    }
}

/// A job checked and converted for the statements.
struct NewJob {
    id: String,
    queue: String,
    payload: Vec<u8>,
    delay: i64,
    max_attempts: u32,
    /// The idempotency key and its window in ms.
    key: Option<(String, i64)>,
}

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = Text)]
    id: String,
}

#[derive(QueryableByName)]
struct HolderRow {
    #[diesel(sql_type = Text)]
    job_id: String,
}

impl<'t> TxJobs<'t> {
    /// The same jobs with other settings (the codec of [`enqueue`](Self::enqueue), the idempotency window): use
    /// those of the queue that works the jobs.
    #[must_use]
    pub fn with_settings(mut self, settings: JobQueueSettings) -> Self {
        self.settings = settings;
        self
    }

    /// Encodes `payload` with the settings' codec and enqueues it on `queue` in this transaction; returns the
    /// job's id (with an idempotency key already claimed, the earlier job's id, and nothing is stored).
    ///
    /// # Errors
    /// [`RepoError::Validation`] for invalid options or a payload over the size limit; the database's failure
    /// mapped as every Diesel error is (a missing `cpc_jobs` table is [`RepoError::Backend`]).
    pub async fn enqueue<T: Serialize + Sync + ?Sized>(
        &self,
        queue: &QueueName,
        payload: &T,
        options: EnqueueOptions,
    ) -> Result<JobId, RepoError> {
        let bytes = self.settings.codec.encode(payload).map_err(|e| repo_error(KvError::Codec(e)))?;
        self.enqueue_bytes(queue, bytes, options).await
    }

    /// Enqueues `payload` as it is on `queue` in this transaction; see [`enqueue`](Self::enqueue).
    ///
    /// # Errors
    /// As [`enqueue`](Self::enqueue).
    pub async fn enqueue_bytes(
        &self,
        queue: &QueueName,
        payload: Bytes,
        options: EnqueueOptions,
    ) -> Result<JobId, RepoError> {
        cpc_ports::check_payload(&payload).map_err(repo_error)?;
        let max_attempts = options.validate().map_err(repo_error)?;
        let delay = millis(options.delay.unwrap_or_default(), "delay")?;
        let key = match options.idempotency_key {
            Some(key) => Some((key, millis(self.settings.idempotency_window, "idempotency_window")?)),
            None => None,
        };
        let job = NewJob {
            id: JobId::generate().as_str().to_owned(),
            queue: queue.as_str().to_owned(),
            payload: payload.to_vec(),
            delay,
            max_attempts,
            key,
        };
        let id = with_connection(self.tx, move |conn| {
            Box::pin(async move {
                match conn {
                    DieselConn::Postgres(c) => enqueue_pg(c, job).await,
                    DieselConn::Sqlite(c) => enqueue_sqlite(c, job).await,
                }
            })
        })
        .await?;
        Ok(JobId::new(id))
    }
}

fn context(backend: &'static str) -> ErrorContext {
    ErrorContext { backend, table: "cpc_jobs", entity: "job", reference_field: "" }
}

/// The queue port's refusals as the unit of work's error.
fn repo_error(e: KvError) -> RepoError {
    match e {
        KvError::Validation(v) => RepoError::Validation(v),
        KvError::TooLarge { max, .. } => {
            RepoError::Validation(ValidationError::new("payload", format!("must be at most {max} bytes")))
        }
        e => RepoError::backend("job queue", e),
    }
}

/// `d` in whole milliseconds; over 10^15 ms is a validation error naming `field`.
fn millis(d: Duration, field: &'static str) -> Result<i64, RepoError> {
    const MAX: i64 = 1_000_000_000_000_000;
    i64::try_from(d.as_millis())
        .ok()
        .filter(|ms| *ms <= MAX)
        .ok_or_else(|| RepoError::Validation(ValidationError::new(field, "must be at most 10^15 milliseconds")))
}

/// `PgJobQueue`'s own statements ([`cpc_pool::postgres::enqueue_sql`]) on the transaction's connection.
async fn enqueue_pg(c: &mut AsyncPgConnection, job: NewJob) -> Result<String, RepoError> {
    use cpc_pool::postgres::enqueue_sql::{ENQUEUE_KEYED, INSERT, KEY_HOLDER};
    let ctx = context("postgres");
    let max_attempts = i32::try_from(job.max_attempts).unwrap_or(i32::MAX);
    let Some((key, window)) = job.key else {
        diesel::sql_query(INSERT)
            .bind::<Text, _>(&job.id)
            .bind::<Text, _>(&job.queue)
            .bind::<Binary, _>(&job.payload)
            .bind::<BigInt, _>(job.delay)
            .bind::<Integer, _>(max_attempts)
            .execute(c)
            .await
            .map_err(|e| ctx.map(e))?;
        return Ok(job.id);
    };
    let claimed: Vec<IdRow> = diesel::sql_query(ENQUEUE_KEYED)
        .bind::<Text, _>(&job.id)
        .bind::<Text, _>(&job.queue)
        .bind::<Binary, _>(&job.payload)
        .bind::<BigInt, _>(job.delay)
        .bind::<Integer, _>(max_attempts)
        .bind::<Text, _>(&key)
        .bind::<BigInt, _>(window)
        .load(c)
        .await
        .map_err(|e| ctx.map(e))?;
    if let Some(row) = claimed.into_iter().next() {
        return Ok(row.id);
    }
    let rows = diesel::sql_query(KEY_HOLDER)
        .bind::<Text, _>(&job.queue)
        .bind::<Text, _>(&key)
        .load(c)
        .await
        .map_err(|e| ctx.map(e))?;
    holder(rows, "postgres")
}

/// `SqliteJobQueue`'s own statements ([`cpc_pool::sqlite::enqueue_sql`]) on the transaction's connection.
async fn enqueue_sqlite(c: &mut AsyncSqliteConnection, job: NewJob) -> Result<String, RepoError> {
    use cpc_pool::sqlite::enqueue_sql::{CLAIM_KEY, INSERT, KEY_HOLDER};
    let ctx = context("sqlite");
    if let Some((key, window)) = &job.key {
        let claimed: Vec<HolderRow> = diesel::sql_query(CLAIM_KEY)
            .bind::<Text, _>(&job.queue)
            .bind::<Text, _>(key)
            .bind::<Text, _>(&job.id)
            .bind::<BigInt, _>(*window)
            .load(c)
            .await
            .map_err(|e| ctx.map(e))?;
        if claimed.is_empty() {
            let rows = diesel::sql_query(KEY_HOLDER)
                .bind::<Text, _>(&job.queue)
                .bind::<Text, _>(key)
                .load(c)
                .await
                .map_err(|e| ctx.map(e))?;
            return holder(rows, "sqlite");
        }
    }
    diesel::sql_query(INSERT)
        .bind::<Text, _>(&job.id)
        .bind::<Text, _>(&job.queue)
        .bind::<Binary, _>(&job.payload)
        .bind::<BigInt, _>(job.delay)
        .bind::<BigInt, _>(i64::from(job.max_attempts))
        .execute(c)
        .await
        .map_err(|e| ctx.map(e))?;
    Ok(job.id)
}

/// The job holding a live claim on the key, from the key holder query's rows.
fn holder(rows: Vec<HolderRow>, backend: &'static str) -> Result<String, RepoError> {
    rows.into_iter()
        .next()
        .map(|row| row.job_id)
        .ok_or_else(|| RepoError::backend(backend, "the idempotency key was neither claimed nor held by a job"))
}
