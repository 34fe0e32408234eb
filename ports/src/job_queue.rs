//! The [`JobQueue`] port: background jobs enqueued by one part of an app and worked by another (for example
//! thumbnails made after an upload, e-mails sent after a sign-up).
//!
//! # Delivery: at least once
//!
//! A job is handed to one worker at a time by [`JobQueue::reserve`], for a *visibility timeout*. The worker then
//! [`ack`](JobQueue::ack)s it (done, removed) or [`nack`](JobQueue::nack)s it (failed, retried after a backoff).
//! A worker that dies without doing either has its job **redelivered** once the visibility timeout passes, with
//! its attempt number raised. So every job is delivered **at least once**, and may be delivered more than once
//! (a worker that finishes its work but dies before its ack, or outlives its visibility timeout): handlers must
//! be idempotent. A worker whose job takes longer than planned keeps its reservation with
//! [`extend`](JobQueue::extend) (the worker loop in `cpc-adapters` does so on its own while a handler runs).
//! After `max_attempts` deliveries a failing job goes to the queue's **dead-letter** list, where it can be listed
//! and requeued. Dead letters are kept for a bounded time and number ([`JobQueueSettings::dead_letter_retention`],
//! [`JobQueueSettings::max_dead_letters`]; 7 days and 10,000 per queue by default), then dropped oldest first, so a
//! queue whose jobs keep failing does not grow without end. A job that is still to be worked is never dropped.
//!
//! ```
//! # async fn demo(queue: &dyn cpc_ports::JobQueue) -> Result<(), cpc_ports::KvError> {
//! use std::time::Duration;
//! use cpc_ports::{EnqueueOptions, JobQueueExt, QueueName};
//!
//! let thumbnails = QueueName::new("thumbnails")?;
//! queue.enqueue(&thumbnails, &("photo-42.jpg", 256), EnqueueOptions::default()).await?;
//! if let Some(job) = queue.reserve_as::<(String, u32)>(&thumbnails, Duration::from_secs(30)).await? {
//!     let (image, size) = &job.data;
//!     assert!(!image.is_empty() && *size > 0); // ... make the thumbnail, then:
//!     queue.ack(&job.job).await?;
//! }
//! # Ok(()) }
//! ```

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use cpc_domain::ValidationError;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Codec, KvError};

mod batch;

pub use batch::{NewJob, check_batch, check_batch_delays, in_batch, repeated_keys};

/// The longest queue name accepted, in bytes.
pub const MAX_QUEUE_NAME_BYTES: usize = 128;
/// The longest idempotency key accepted, in bytes.
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 512;
/// The attempts a job gets when [`EnqueueOptions::max_attempts`] is not set.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
/// How long a queue remembers an idempotency key by default: 24 hours.
pub const DEFAULT_IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// How long a dead letter is kept by default: 7 days.
pub const DEFAULT_DEAD_LETTER_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// How many dead letters a queue keeps by default; past it the oldest are dropped.
pub const DEFAULT_MAX_DEAD_LETTERS: u32 = 10_000;

/// What every [`JobQueue`] implementation is configured with, whatever its backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobQueueSettings {
    /// The codec of the typed methods ([`JobQueue::codec`]).
    pub codec: Codec,
    /// How long an idempotency key is remembered after its job was enqueued.
    pub idempotency_window: Duration,
    /// How long a dead letter is kept after its job died; older ones are no longer listed or counted, and are
    /// deleted by the queue's next writes. Zero is taken as one millisecond.
    pub dead_letter_retention: Duration,
    /// How many dead letters each queue keeps at most; when a job dies past it, the oldest are deleted. Zero is
    /// taken as one.
    pub max_dead_letters: u32,
}

impl Default for JobQueueSettings {
    /// JSON, a 24-hour idempotency window, dead letters kept 7 days and 10,000 per queue.
    fn default() -> Self {
        Self {
            codec: Codec::json(),
            idempotency_window: DEFAULT_IDEMPOTENCY_WINDOW,
            dead_letter_retention: DEFAULT_DEAD_LETTER_RETENTION,
            max_dead_letters: DEFAULT_MAX_DEAD_LETTERS,
        }
    }
}

impl JobQueueSettings {
    /// The same settings with dead letters kept for `retention` (at least one millisecond).
    #[must_use]
    pub fn with_dead_letter_retention(mut self, retention: Duration) -> Self {
        self.dead_letter_retention = retention;
        self
    }

    /// The same settings with at most `max` dead letters per queue (at least one).
    #[must_use]
    pub fn with_max_dead_letters(mut self, max: u32) -> Self {
        self.max_dead_letters = max;
        self
    }

    /// [`dead_letter_retention`](Self::dead_letter_retention) as every implementation applies it: at least 1 ms.
    pub fn effective_dead_letter_retention(&self) -> Duration {
        self.dead_letter_retention.max(Duration::from_millis(1))
    }

    /// [`max_dead_letters`](Self::max_dead_letters) as every implementation applies it: at least 1.
    pub fn effective_max_dead_letters(&self) -> u32 {
        self.max_dead_letters.max(1)
    }
}

/// The error of [`JobQueue::ack`], [`JobQueue::nack`] and [`JobQueue::extend`] for a job that is not a current
/// reservation.
pub fn not_reserved() -> KvError {
    KvError::NotFound { what: "reserved job" }
}

/// The error each job of an [`JobQueue::ack_many`] gets when the batch failed as a whole (`error`: the backend
/// was unreachable, the call timed out): the same kind where it can be copied (timeout, unavailable,
/// authentication), else a [`KvError::Backend`] with `error`'s text.
pub fn batch_error(error: &KvError) -> KvError {
    match error {
        KvError::Timeout { operation, after } => KvError::Timeout { operation, after: *after },
        KvError::Unavailable { backend, reason } => KvError::Unavailable { backend, reason: reason.clone() },
        KvError::Authentication { backend, reason } => KvError::Authentication { backend, reason: reason.clone() },
        KvError::Backend { backend, source } => KvError::backend(backend, source.to_string()),
        other => KvError::backend("job queue", other.to_string()),
    }
}

/// The check every [`JobQueue::reserve`], [`JobQueue::reserve_many`] and [`JobQueue::extend`] makes first: a
/// zero `visibility_timeout` is [`KvError::Validation`] naming it.
///
/// # Errors
/// [`KvError::Validation`] for a zero duration.
pub fn check_visibility_timeout(visibility_timeout: Duration) -> Result<(), KvError> {
    if visibility_timeout.is_zero() {
        return Err(KvError::invalid("visibility_timeout", "must be greater than zero"));
    }
    Ok(())
}

/// The error of [`JobQueue::requeue_dead`] for a job that is not in the dead-letter list.
pub fn not_dead() -> KvError {
    KvError::NotFound { what: "dead job" }
}

/// The name of a queue: 1 to 128 ASCII letters, digits, `_`, `-`, `.` or `:`. The restriction keeps names safe
/// inside backend keys and table columns, and readable in metrics.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueName(String);

impl QueueName {
    /// Validates `s`.
    pub fn new(s: impl Into<String>) -> Result<Self, ValidationError> {
        let s = s.into();
        if s.is_empty() || s.len() > MAX_QUEUE_NAME_BYTES {
            return Err(ValidationError::new("queue", "must be 1 to 128 bytes"));
        }
        if !s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':')) {
            return Err(ValidationError::new("queue", "may hold only ASCII letters, digits, `_`, `-`, `.` and `:`"));
        }
        Ok(Self(s))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for QueueName {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl fmt::Display for QueueName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The id of a job, given by the queue at enqueue; opaque text, unique within its queue.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(String);

impl JobId {
    /// Wraps an id read back from a backend (or typed by an operator requeuing a dead job). Any text is accepted:
    /// an id no queue holds is a [`KvError::NotFound`] when used.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// A fresh random id (UUIDv7, so ids sort roughly by creation time).
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().simple().to_string())
    }

    /// The text of the id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How to enqueue a job. `EnqueueOptions::default()` is: ready at once, no idempotency key,
/// [`DEFAULT_MAX_ATTEMPTS`] attempts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnqueueOptions {
    /// Do not deliver the job before this much time has passed.
    pub delay: Option<Duration>,
    /// Enqueue the job only if no job with this key was enqueued on the same queue within the queue's
    /// idempotency window (24 hours by default); otherwise return the earlier job's id. 1 to 512 bytes.
    pub idempotency_key: Option<String>,
    /// Deliveries after which a failing job goes to the dead-letter list (at least 1).
    pub max_attempts: Option<u32>,
}

impl EnqueueOptions {
    /// The options with `delay`.
    #[must_use]
    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// The options with an idempotency key.
    #[must_use]
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// The options with at most `attempts` deliveries.
    #[must_use]
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = Some(attempts);
        self
    }

    /// Checks the options; implementations call it before storing anything. Returns the max attempts to use.
    pub fn validate(&self) -> Result<u32, KvError> {
        if let Some(key) = &self.idempotency_key
            && (key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_BYTES)
        {
            return Err(KvError::invalid("idempotency_key", "must be 1 to 512 bytes"));
        }
        match self.max_attempts {
            Some(0) => Err(KvError::invalid("max_attempts", "must be at least 1")),
            Some(n) => Ok(n),
            None => Ok(DEFAULT_MAX_ATTEMPTS),
        }
    }
}

/// A job handed to a worker by [`JobQueue::reserve`]: the payload, and the receipt to pass to [`JobQueue::ack`]
/// or [`JobQueue::nack`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservedJob {
    /// The job's id.
    pub id: JobId,
    /// The queue it came from.
    pub queue: QueueName,
    /// The payload as enqueued.
    pub payload: Bytes,
    /// Which delivery this is: 1 the first time, 2 after one retry or one redelivery, and so on.
    pub attempt: u32,
    /// The deliveries the job gets before it goes to the dead-letter list.
    pub max_attempts: u32,
}

impl ReservedJob {
    /// Whether a failure now sends the job to the dead-letter list rather than to a retry.
    pub fn is_last_attempt(&self) -> bool {
        self.attempt >= self.max_attempts
    }
}

/// A reserved job with its payload decoded, from [`JobQueueExt::reserve_as`].
#[derive(Debug, Clone, PartialEq)]
pub struct TypedJob<T> {
    /// The job as reserved (id, attempt, raw payload).
    pub job: ReservedJob,
    /// The decoded payload.
    pub data: T,
}

/// A job in the dead-letter list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadJob {
    /// The job's id: pass it to [`JobQueue::requeue_dead`].
    pub id: JobId,
    /// The payload as enqueued.
    pub payload: Bytes,
    /// The deliveries it had.
    pub attempts: u32,
}

/// What a [`JobQueue::nack`] did with the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NackOutcome {
    /// The job will be delivered again after the backoff.
    Retrying,
    /// The job had its last attempt and went to the dead-letter list.
    Dead,
}

/// How many jobs a queue holds, by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Ready to be reserved now (including jobs whose visibility timeout or delay has passed).
    pub pending: u64,
    /// Reserved, within their visibility timeout, not yet acked or nacked.
    pub in_flight: u64,
    /// Waiting for their delay or retry backoff to pass.
    pub delayed: u64,
    /// In the dead-letter list.
    pub dead: u64,
}

/// A queue of background jobs with at-least-once delivery (see the [module docs](self)). The byte-level core;
/// [`JobQueueExt`] adds typed payloads through the [`Codec`].
///
/// Implementations: Redis Streams (`RedisJobQueue` in `cpc-adapters`), in-process (`cpc-adapters`, feature
/// `memory`; re-exported by `cpc-testkit`). The worker loop over any of them is `cpc_adapters::worker`.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait JobQueue: Send + Sync + 'static {
    /// Stores a job on `queue` and returns its id.
    ///
    /// MUST NOT deliver it before `options.delay` has passed. With an idempotency key already used on this queue
    /// within the idempotency window, MUST store nothing and return the earlier job's id. MUST refuse invalid
    /// options with [`KvError::Validation`].
    async fn enqueue_bytes(&self, queue: &QueueName, payload: Bytes, options: EnqueueOptions)
    -> Result<JobId, KvError>;

    /// Stores a batch of jobs on `queue` and returns their ids, in the order of `jobs`: one call for the batch,
    /// as Sidekiq's `push_bulk` or BullMQ's `addBulk`.
    ///
    /// MUST check every job before storing any ([`check_batch`]): one oversized payload is [`KvError::TooLarge`],
    /// one invalid option (a zero `max_attempts`, an empty idempotency key; in the backends of this library also a
    /// delay too long for the backend) a [`KvError::Validation`] whose field names the job
    /// (`jobs[3].max_attempts`, see [`in_batch`]), and then nothing is stored.
    /// Each job MUST be stored as [`JobQueue::enqueue_bytes`] would store it, in the order of `jobs` (jobs of the
    /// batch without delays come out in that order), and MUST get the id `enqueue_bytes` would return: a job whose
    /// idempotency key was used on this queue within the window (by an earlier call, or by an earlier job of the
    /// same batch) stores nothing and gets the earlier job's id. An empty batch stores nothing and returns no id.
    ///
    /// Atomicity is the backend's: the Redis, PostgreSQL, SQLite and in-memory queues store the batch all or
    /// nothing (one script call, one transaction, one lock), so no worker sees part of it and a failure stores
    /// none of it. This default implementation, for other implementations, checks the whole batch then calls
    /// `enqueue_bytes` for each job in turn: a failure part way leaves the jobs before it stored.
    async fn enqueue_many_bytes(&self, queue: &QueueName, jobs: Vec<NewJob>) -> Result<Vec<JobId>, KvError> {
        check_batch(&jobs)?;
        let mut ids = Vec::with_capacity(jobs.len());
        for job in jobs {
            ids.push(self.enqueue_bytes(queue, job.payload, job.options).await?);
        }
        Ok(ids)
    }

    /// Reserves the next ready job, or `None` if there is none. Does not wait.
    ///
    /// Jobs of one producer without delays or failures MUST come out in the order they were enqueued. A reserved
    /// job MUST NOT be handed to anyone else until `visibility_timeout` has passed; then, if not acked or nacked,
    /// it MUST be delivered again with its attempt raised by one, or go to the dead-letter list if it had its
    /// last attempt. MUST refuse a zero `visibility_timeout` with [`KvError::Validation`].
    async fn reserve(&self, queue: &QueueName, visibility_timeout: Duration) -> Result<Option<ReservedJob>, KvError>;

    /// Reserves up to `max` ready jobs in one call, for a worker with several free handler slots. Returns fewer
    /// (possibly none) when fewer are ready; does not wait.
    ///
    /// MUST return at most `max` jobs, each reserved exactly as [`JobQueue::reserve`] would reserve it (the same
    /// visibility timeout, attempt numbering, redelivery and dead-lettering), in the order `reserve` would have
    /// handed them out one by one, and never the same job twice. `max` zero returns no job (after validating
    /// `visibility_timeout`). MUST refuse a zero `visibility_timeout` with [`KvError::Validation`].
    ///
    /// The default implementation calls `reserve` up to `max` times, stopping at the first `None`; backends
    /// override it to take the batch in one round trip.
    async fn reserve_many(
        &self,
        queue: &QueueName,
        visibility_timeout: Duration,
        max: usize,
    ) -> Result<Vec<ReservedJob>, KvError> {
        check_visibility_timeout(visibility_timeout)?;
        let mut jobs = Vec::with_capacity(max.min(64));
        while jobs.len() < max {
            match self.reserve(queue, visibility_timeout).await? {
                Some(job) => jobs.push(job),
                None => break,
            }
        }
        Ok(jobs)
    }

    /// Marks a reserved job done and removes it. `job` is the reservation [`JobQueue::reserve`] returned: it is the
    /// receipt, so a worker whose visibility timeout passed cannot ack the job another worker now holds.
    ///
    /// MUST return [`KvError::NotFound`] when `job` is not a current reservation: never enqueued, already acked or
    /// nacked, dead, or redelivered (to anyone) after its visibility timeout.
    async fn ack(&self, job: &ReservedJob) -> Result<(), KvError>;

    /// Acks several reservations in one call: returns one result per job of `jobs`, in the same order, each what
    /// [`JobQueue::ack`] of that job alone would return. A job that is not a current reservation gets
    /// [`KvError::NotFound`] and does not stop the others from being acked.
    ///
    /// The default implementation calls `ack` for every job concurrently (on a multiplexed connection, such as
    /// Redis's, the acks travel pipelined); backends override it to ack the batch in one statement.
    async fn ack_many(&self, jobs: &[ReservedJob]) -> Vec<Result<(), KvError>> {
        futures::future::join_all(jobs.iter().map(|job| self.ack(job))).await
    }

    /// Gives a reserved job back as failed: it is delivered again after `retry_after`, or goes to the
    /// dead-letter list if this was its last attempt.
    ///
    /// MUST return [`KvError::NotFound`] when `job` is not a current reservation, like [`JobQueue::ack`].
    async fn nack(&self, job: &ReservedJob, retry_after: Duration) -> Result<NackOutcome, KvError>;

    /// Extends a reservation: `job` stays hidden from every other worker until `visibility_timeout` from now
    /// (instead of the end of its current visibility timeout), for a handler that needs longer than planned.
    /// A worker calls it periodically while it works (a heartbeat), well before the current timeout ends.
    ///
    /// MUST return [`KvError::NotFound`] ([`not_reserved`]) when `job` is not a current reservation, like
    /// [`JobQueue::ack`]: its holder must then expect the job to run elsewhere. A reservation whose timeout passed
    /// but that nobody took yet may still be extended. MUST refuse a zero `visibility_timeout` with
    /// [`KvError::Validation`].
    async fn extend(&self, job: &ReservedJob, visibility_timeout: Duration) -> Result<(), KvError>;

    /// Up to `limit` jobs of the dead-letter list, the earliest dead first.
    async fn dead_letters(&self, queue: &QueueName, limit: usize) -> Result<Vec<DeadJob>, KvError>;

    /// Moves a dead job back to the queue, ready at once with a fresh set of attempts.
    ///
    /// MUST return [`KvError::NotFound`] if the job is not in the dead-letter list.
    async fn requeue_dead(&self, queue: &QueueName, id: &JobId) -> Result<(), KvError>;

    /// How many jobs the queue holds, by state.
    async fn stats(&self, queue: &QueueName) -> Result<QueueStats, KvError>;

    /// The codec the typed methods of [`JobQueueExt`] use.
    fn codec(&self) -> Codec;
}

/// Typed payloads over any [`JobQueue`]. Blanket-implemented, `dyn JobQueue` included.
#[async_trait]
pub trait JobQueueExt: JobQueue {
    /// Encodes `payload` with the queue's codec and enqueues it.
    async fn enqueue<T: Serialize + Sync + ?Sized>(
        &self,
        queue: &QueueName,
        payload: &T,
        options: EnqueueOptions,
    ) -> Result<JobId, KvError> {
        let bytes = self.codec().encode(payload)?;
        self.enqueue_bytes(queue, bytes, options).await
    }

    /// Encodes each of `payloads` with the queue's codec and enqueues them as one batch
    /// ([`JobQueue::enqueue_many_bytes`]), each with `options`; returns their ids in order.
    ///
    /// # Errors
    /// [`KvError::Codec`] if a payload does not encode, and [`KvError::Validation`] naming `idempotency_key` if
    /// `options` has one (it would make every job after the first a repeat of it: give each job its own key with
    /// [`JobQueue::enqueue_many_bytes`]); nothing is stored then. Otherwise what `enqueue_many_bytes` returns.
    ///
    /// ```
    /// # async fn demo(queue: &dyn cpc_ports::JobQueue) -> Result<(), cpc_ports::KvError> {
    /// use cpc_ports::{EnqueueOptions, JobQueueExt, QueueName};
    ///
    /// let thumbnails = QueueName::new("thumbnails")?;
    /// let ids = queue.enqueue_many(&thumbnails, &["a.jpg", "b.jpg", "c.jpg"], EnqueueOptions::default()).await?;
    /// assert_eq!(ids.len(), 3);
    /// # Ok(()) }
    /// ```
    async fn enqueue_many<T: Serialize + Sync>(
        &self,
        queue: &QueueName,
        payloads: &[T],
        options: EnqueueOptions,
    ) -> Result<Vec<JobId>, KvError> {
        if options.idempotency_key.is_some() {
            return Err(KvError::invalid(
                "idempotency_key",
                "cannot be shared by a batch: give each job its own with enqueue_many_bytes",
            ));
        }
        let codec = self.codec();
        let jobs = payloads
            .iter()
            .map(|payload| Ok(NewJob { payload: codec.encode(payload)?, options: options.clone() }))
            .collect::<Result<Vec<_>, KvError>>()?;
        self.enqueue_many_bytes(queue, jobs).await
    }

    /// Reserves the next job and decodes its payload. A payload that does not decode is a [`KvError::Codec`]
    /// and the job stays reserved: it is redelivered after the visibility timeout and, still failing, ends in
    /// the dead-letter list.
    async fn reserve_as<T: DeserializeOwned + Send>(
        &self,
        queue: &QueueName,
        visibility_timeout: Duration,
    ) -> Result<Option<TypedJob<T>>, KvError> {
        let Some(job) = self.reserve(queue, visibility_timeout).await? else {
            return Ok(None);
        };
        let data = self.codec().decode(&job.payload)?;
        Ok(Some(TypedJob { job, data }))
    }
}

impl<Q: JobQueue + ?Sized> JobQueueExt for Q {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names_are_restricted_to_safe_characters() {
        for good in ["thumbnails", "gallery:thumbs.v2", "a-b_c", &"q".repeat(128)] {
            assert_eq!(QueueName::new(good).unwrap().as_str(), good);
        }
        for bad in ["", "with space", "ünï", "a{b}", "new\nline", &"q".repeat(129)] {
            assert_eq!(QueueName::new(bad).unwrap_err().field, "queue", "{bad:?}");
        }
    }

    #[test]
    fn options_are_validated() {
        assert_eq!(EnqueueOptions::default().validate().unwrap(), DEFAULT_MAX_ATTEMPTS);
        assert_eq!(EnqueueOptions::default().max_attempts(2).validate().unwrap(), 2);
        assert!(matches!(EnqueueOptions::default().max_attempts(0).validate(), Err(KvError::Validation(_))));
        assert!(matches!(EnqueueOptions::default().idempotency_key("").validate(), Err(KvError::Validation(_))));
        let long = "k".repeat(MAX_IDEMPOTENCY_KEY_BYTES + 1);
        assert!(matches!(EnqueueOptions::default().idempotency_key(long).validate(), Err(KvError::Validation(_))));
        assert_ne!(JobId::generate(), JobId::generate());
    }
}
