//! # cpc-worker
//!
//! A worker loop over any [`JobQueue`] (feature `worker`): `N` concurrent handlers, retries with exponential
//! backoff, graceful shutdown, metrics and tracing spans. It depends on the port only, so it runs the same on the
//! in-memory queue, Redis, or a mock.
//!
//! ```
//! # async fn demo() {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use cpc_memory::InMemoryJobQueue;
//! use cpc_worker::{Worker, WorkerConfig};
//! use cpc_ports::{EnqueueOptions, JobQueue, JobQueueExt, QueueName};
//!
//! let queue: Arc<dyn JobQueue> = Arc::new(InMemoryJobQueue::new());
//! let thumbnails = QueueName::new("thumbnails").unwrap();
//! queue.enqueue(&thumbnails, &"photo-1.jpg", EnqueueOptions::default()).await.unwrap();
//! let worker = Worker::spawn(queue.clone(), WorkerConfig::new(thumbnails.clone()).concurrency(4), |job| async move {
//!     let _image: String = cpc_ports::Codec::json().decode(&job.payload)?;
//!     Ok(())
//! });
//! while queue.stats(&thumbnails).await.unwrap().pending > 0 {
//!     tokio::time::sleep(Duration::from_millis(5)).await;
//! }
//! let report = worker.shutdown(Duration::from_secs(5)).await;
//! assert_eq!(report.processed, 1);
//! # }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo());
//! ```
//!
//! # Metrics
//!
//! | name | kind | labels | meaning |
//! |---|---|---|---|
//! | `cpc_jobs_processed_total` | counter | `queue` | jobs handled successfully and acked |
//! | `cpc_jobs_failed_total` | counter | `queue` | handler errors and panics (each one is then retried or dead) |
//! | `cpc_jobs_panicked_total` | counter | `queue` | handlers that panicked (also counted as failed) |
//! | `cpc_jobs_retried_total` | counter | `queue` | failed jobs nacked for a retry after a backoff |
//! | `cpc_jobs_dead_total` | counter | `queue` | failed jobs that had their last attempt (dead-lettered) |
//! | `cpc_jobs_released_total` | counter | `queue` | jobs given back unfinished at shutdown |
//! | `cpc_job_handling_seconds` | histogram | `queue` | time a handler took, failures included |
//!
//! Every job is handled inside a `job` span with the fields `queue`, `job_id` and `attempt`.
//!
//! # Batches
//!
//! One fetcher task reserves jobs for every free handler slot at once ([`JobQueue::reserve_many`]: one round
//! trip on PostgreSQL and Redis, however many slots are free) and hands them to the slots; it never reserves more
//! jobs than there are free slots, so no reserved job waits in the worker for a slot. A job whose handler
//! succeeded is acked by one acker task, which acks every success waiting at that moment in one call
//! ([`JobQueue::ack_many`]). A job is acked only after its handler succeeded, so delivery stays at least once: a
//! worker that dies before the ack has its job redelivered after the visibility timeout. Failures are nacked by
//! their slot at once, one by one (each with its own backoff).
//!
//! # Prefetch
//!
//! With [`WorkerConfig::prefetch`] at `n` (0 by default), the fetcher also reserves up to `n` jobs beyond the free
//! slots, so that a slot that finishes a job finds the next one waiting instead of waiting a round trip for it
//! (worth it when handlers are short against the queue's latency). A waiting job's reservation runs from the
//! moment it was reserved: a slot that takes a job which waited a third of the visibility timeout or more extends
//! its reservation before calling the handler, and drops it unhandled if the reservation is gone (another worker
//! has it by then); so keep `n` at what the slots work through well within the timeout. At shutdown the jobs
//! still waiting are given back to the queue at once (counted in [`WorkerReport::released`]), not started.
//!
//! # Handlers slower than the visibility timeout
//!
//! While a handler runs, its slot extends the job's reservation ([`JobQueue::extend`]) every third of the
//! visibility timeout, so a handler that takes longer than the timeout is not redelivered to another worker while
//! it still runs. A failed extend is logged and counted in [`WorkerReport::queue_errors`]; when the reservation is
//! gone (`NotFound`: the job was redelivered, e.g. after the worker stalled past its timeout) the slot stops
//! extending and the handler runs to its end, its ack then failing as the job belongs to someone else. The
//! visibility timeout is then how long a *crashed* worker's job waits before it is redelivered, not a limit on
//! how long a handler may take.
//!
//! # Panics in handlers
//!
//! A handler that panics fails its attempt like one that returns `Err`: the job is nacked with the backoff
//! (retried, then dead-lettered after its last attempt) and the slot goes on to the next job. The panic is caught
//! with [`FutureExt::catch_unwind`](futures::FutureExt::catch_unwind) around the handler's future, in the slot's
//! own task: no task is spawned per job, a shutdown that interrupts the handler still simply drops it, and the
//! `job` span stays current. (A process built with `panic = "abort"` cannot catch panics at all: there the
//! process ends, and the job is redelivered after its visibility timeout, as for any crash.)

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cpc_ports::error::BoxError;
use cpc_ports::{JobQueue, KvError, NackOutcome, QueueName, ReservedJob};
use futures::FutureExt as _;
use metrics::{Counter, Histogram, counter, histogram};
use tokio::sync::{Mutex, Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tracing::Instrument as _;

/// How a [`Worker`] works a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerConfig {
    /// The queue to work.
    pub queue: QueueName,
    /// How many jobs are handled at the same time (at least 1).
    pub concurrency: usize,
    /// The visibility timeout of each reservation, extended every third of it while the handler runs: how long a
    /// crashed worker's job waits before another worker gets it.
    pub visibility_timeout: Duration,
    /// How long the fetcher waits before asking an empty queue again (or after a queue error).
    pub poll_interval: Duration,
    /// The backoff after the first failure; it doubles with each attempt, up to `max_backoff`.
    pub base_backoff: Duration,
    /// The longest backoff.
    pub max_backoff: Duration,
    /// How many jobs the worker reserves ahead of its free handlers (0 by default): see
    /// [Prefetch](self#prefetch).
    pub prefetch: usize,
}

impl WorkerConfig {
    /// One handler, 30 s visibility, 50 ms polling, backoff from 1 s to 5 min.
    pub fn new(queue: QueueName) -> Self {
        Self {
            queue,
            concurrency: 1,
            visibility_timeout: Duration::from_secs(30),
            poll_interval: Duration::from_millis(50),
            base_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            prefetch: 0,
        }
    }

    /// The same config with `n` concurrent handlers (at least 1).
    #[must_use]
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// The same config with another visibility timeout.
    #[must_use]
    pub fn visibility_timeout(mut self, timeout: Duration) -> Self {
        self.visibility_timeout = timeout;
        self
    }

    /// The same config with another idle polling interval.
    #[must_use]
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// The same config with another backoff range.
    #[must_use]
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.base_backoff = base;
        self.max_backoff = max;
        self
    }

    /// The same config reserving up to `n` jobs ahead of the free handlers (see [Prefetch](self#prefetch)).
    #[must_use]
    pub fn prefetch(mut self, n: usize) -> Self {
        self.prefetch = n;
        self
    }

    /// The backoff before retrying a job that failed on `attempt` (1-based): `base * 2^(attempt - 1)`, capped.
    pub fn backoff_for(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(30));
        self.base_backoff.saturating_mul(factor).min(self.max_backoff)
    }
}

/// What a [`Worker`] did, returned by [`WorkerHandle::shutdown`] (and readable any time with
/// [`WorkerHandle::report`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerReport {
    /// Jobs handled successfully and acked.
    pub processed: u64,
    /// Failed attempts: handler errors and panics.
    pub failed: u64,
    /// Handlers that panicked (each also counted in `failed`, then retried or dead-lettered like an error).
    pub panicked: u64,
    /// Failed jobs nacked for a retry.
    pub retried: u64,
    /// Failed jobs dead-lettered.
    pub dead: u64,
    /// Jobs given back unfinished at shutdown.
    pub released: u64,
    /// Queue errors (reserve, extend, ack or nack failed); the loop logs them and carries on.
    pub queue_errors: u64,
}

#[derive(Default)]
struct Counts {
    processed: AtomicU64,
    failed: AtomicU64,
    panicked: AtomicU64,
    retried: AtomicU64,
    dead: AtomicU64,
    released: AtomicU64,
    queue_errors: AtomicU64,
}

impl Counts {
    fn report(&self) -> WorkerReport {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        WorkerReport {
            processed: get(&self.processed),
            failed: get(&self.failed),
            panicked: get(&self.panicked),
            retried: get(&self.retried),
            dead: get(&self.dead),
            released: get(&self.released),
            queue_errors: get(&self.queue_errors),
        }
    }
}

struct Metrics {
    processed: Counter,
    failed: Counter,
    panicked: Counter,
    retried: Counter,
    dead: Counter,
    released: Counter,
    seconds: Histogram,
}

impl Metrics {
    fn new(queue: &QueueName) -> Self {
        let q = queue.as_str().to_owned();
        Self {
            processed: counter!("cpc_jobs_processed_total", "queue" => q.clone()),
            failed: counter!("cpc_jobs_failed_total", "queue" => q.clone()),
            panicked: counter!("cpc_jobs_panicked_total", "queue" => q.clone()),
            retried: counter!("cpc_jobs_retried_total", "queue" => q.clone()),
            dead: counter!("cpc_jobs_dead_total", "queue" => q.clone()),
            released: counter!("cpc_jobs_released_total", "queue" => q.clone()),
            seconds: histogram!("cpc_job_handling_seconds", "queue" => q),
        }
    }
}

/// Starts worker loops: see the [module docs](self).
#[derive(Debug, Clone, Copy)]
pub struct Worker;

/// A running worker. Stop it with [`WorkerHandle::shutdown`]. Dropping it aborts the handlers at once, like a
/// crash: their jobs are neither acked nor given back, and are delivered again after their visibility timeout.
pub struct WorkerHandle {
    stop: watch::Sender<bool>,
    abort: watch::Sender<bool>,
    tasks: JoinSet<()>,
    counts: Arc<Counts>,
}

/// The most successes the acker acks in one call.
const ACK_BATCH: usize = 256;

struct Shared<F> {
    queue: Arc<dyn JobQueue>,
    config: WorkerConfig,
    handler: F,
    counts: Arc<Counts>,
    metrics: Metrics,
    /// One permit per handler slot waiting for a job and not yet given one, plus one per place left in the
    /// prefetch.
    free: Semaphore,
}

impl Worker {
    /// Spawns `config.concurrency` handler loops on the current tokio runtime, fed by one fetcher that reserves
    /// jobs for every free loop in one call, and one acker (see [Batches](self#batches)). Each loop runs
    /// `handler` on its job inside a `job` span, then has it acked (`Ok`) or nacks it with the backoff (`Err` or a
    /// panic); the queue dead-letters it after its last attempt. Must be called within a tokio runtime.
    pub fn spawn<F, Fut>(queue: Arc<dyn JobQueue>, config: WorkerConfig, handler: F) -> WorkerHandle
    where
        F: Fn(ReservedJob) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        let (stop, _) = watch::channel(false);
        let (abort, _) = watch::channel(false);
        let counts = Arc::new(Counts::default());
        let metrics = Metrics::new(&config.queue);
        let slots = config.concurrency.max(1);
        let free = Semaphore::new(slots.saturating_add(config.prefetch).min(Semaphore::MAX_PERMITS));
        let shared = Arc::new(Shared { queue, config, handler, counts: counts.clone(), metrics, free });
        let (jobs_tx, jobs_rx) = mpsc::unbounded_channel();
        let (acks_tx, acks_rx) = mpsc::unbounded_channel();
        let jobs_rx = Arc::new(Mutex::new(jobs_rx));
        let mut tasks = JoinSet::new();
        tasks.spawn(fetch(shared.clone(), jobs_tx, stop.subscribe()));
        for slot in 0..slots {
            let signals = Signals { stop: stop.subscribe(), abort: abort.subscribe() };
            tasks.spawn(run_slot(shared.clone(), slot, jobs_rx.clone(), acks_tx.clone(), signals));
        }
        drop(acks_tx);
        tasks.spawn(ack_batches(shared, acks_rx));
        WorkerHandle { stop, abort, tasks, counts }
    }
}

impl WorkerHandle {
    /// What the worker did so far.
    pub fn report(&self) -> WorkerReport {
        self.counts.report()
    }

    /// Stops reserving jobs, lets the handlers running now finish for up to `grace`, then interrupts the rest
    /// and gives their jobs back to the queue (a nack without backoff: the attempt counts), and returns the
    /// report. No job is lost: a job given back, or whose give-back fails, is delivered again.
    pub async fn shutdown(mut self, grace: Duration) -> WorkerReport {
        let _ = self.stop.send(true);
        let finished = tokio::time::timeout(grace, async { while self.tasks.join_next().await.is_some() {} }).await;
        if finished.is_err() {
            let _ = self.abort.send(true);
            while self.tasks.join_next().await.is_some() {}
        }
        self.counts.report()
    }
}

/// A reserved job on its way to a slot, and when it was reserved (its reservation runs from then).
struct Fetched {
    job: ReservedJob,
    reserved_at: tokio::time::Instant,
}

/// What a slot listens to: the worker stopping (give back what has not started) and aborting (give back what runs).
struct Signals {
    stop: watch::Receiver<bool>,
    abort: watch::Receiver<bool>,
}

/// Reserves jobs for the free handler slots and the prefetch, all of them in one call, and hands them to the
/// slots, until the worker is told to stop; then drops its sender, so each slot ends once the jobs already handed
/// out are done (or given back, for those not started).
async fn fetch<F>(shared: Arc<Shared<F>>, jobs: mpsc::UnboundedSender<Fetched>, mut stop: watch::Receiver<bool>) {
    let config = &shared.config;
    loop {
        let first = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => break,
            permit = shared.free.acquire() => permit,
        };
        let Ok(first) = first else { break };
        first.forget();
        let mut want = 1;
        let more = shared.free.available_permits();
        if more > 0
            && let Ok(permits) = shared.free.try_acquire_many(u32::try_from(more).unwrap_or(u32::MAX))
        {
            want += permits.num_permits();
            permits.forget();
        }
        let reserved_at = tokio::time::Instant::now();
        match shared.queue.reserve_many(&config.queue, config.visibility_timeout, want).await {
            Ok(batch) => {
                shared.free.add_permits(want.saturating_sub(batch.len()));
                let empty = batch.is_empty();
                for job in batch {
                    // The slots end only once this sender is dropped: the send cannot fail while they run.
                    let _ = jobs.send(Fetched { job, reserved_at });
                }
                if empty {
                    idle(&mut stop, config.poll_interval).await;
                }
            }
            Err(e) => {
                shared.free.add_permits(want);
                shared.counts.queue_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(queue = %config.queue, error = %e, "reserving jobs failed");
                idle(&mut stop, config.poll_interval).await;
            }
        }
    }
}

/// One handler slot: handles the jobs the fetcher hands it, one at a time, until the fetcher stops. With a
/// prefetch, a job it takes once the worker is stopping has not started: it is given back instead. (Without one,
/// every job handed out was reserved for a slot that was free: it is handled, as a job already started.)
async fn run_slot<F, Fut>(
    shared: Arc<Shared<F>>,
    slot: usize,
    jobs: Arc<Mutex<mpsc::UnboundedReceiver<Fetched>>>,
    acks: mpsc::UnboundedSender<ReservedJob>,
    mut signals: Signals,
) where
    F: Fn(ReservedJob) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
{
    let config = &shared.config;
    loop {
        let next = jobs.lock().await.recv().await;
        let Some(Fetched { job, reserved_at }) = next else { break };
        let span = tracing::info_span!("job", queue = %config.queue, slot, job_id = %job.id, attempt = job.attempt);
        if config.prefetch > 0 && *signals.stop.borrow() {
            release(&shared, &job).instrument(span).await;
        } else {
            handle(&shared, job, reserved_at, &acks, &mut signals.abort).instrument(span).await;
        }
        shared.free.add_permits(1);
    }
}

/// Gives `job` back to the queue unfinished (a nack without backoff: the attempt counts) and counts it released.
async fn release<F>(shared: &Shared<F>, job: &ReservedJob) {
    match shared.queue.nack(job, Duration::ZERO).await {
        Ok(_) => {
            shared.counts.released.fetch_add(1, Ordering::Relaxed);
            shared.metrics.released.increment(1);
        }
        Err(e) => {
            shared.counts.queue_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, "giving the job back failed; it will be redelivered after its timeout");
        }
    }
}

/// Makes sure `job`, reserved at `reserved_at`, is still this worker's before its handler starts: a job that
/// waited a third of the visibility timeout or more (prefetched) has its reservation extended first. Returns when
/// the reservation was last renewed, or `None` when the job must not run: its reservation is gone (another worker
/// has it), or could not be extended and may have run out.
async fn still_reserved<F>(
    shared: &Shared<F>,
    job: &ReservedJob,
    reserved_at: tokio::time::Instant,
) -> Option<tokio::time::Instant> {
    let timeout = shared.config.visibility_timeout;
    let waited = reserved_at.elapsed();
    if waited < renewal_period(timeout) {
        return Some(reserved_at);
    }
    let renewed = tokio::time::Instant::now();
    match shared.queue.extend(job, timeout).await {
        Ok(()) => Some(renewed),
        Err(e) => {
            shared.counts.queue_errors.fetch_add(1, Ordering::Relaxed);
            let gone = matches!(e, KvError::NotFound { .. }) || reserved_at.elapsed() >= timeout;
            if gone {
                tracing::warn!(error = %e, ?waited, "a prefetched job's reservation is gone before it started; dropped");
                return None;
            }
            tracing::warn!(error = %e, "extending a prefetched job's reservation failed; it runs on its reservation");
            Some(reserved_at)
        }
    }
}

/// Acks the jobs whose handler succeeded, every success waiting at that moment in one call, until every slot
/// has ended.
async fn ack_batches<F>(shared: Arc<Shared<F>>, mut acks: mpsc::UnboundedReceiver<ReservedJob>) {
    let (counts, metrics) = (&shared.counts, &shared.metrics);
    let mut batch = Vec::with_capacity(ACK_BATCH);
    while acks.recv_many(&mut batch, ACK_BATCH).await > 0 {
        let results = shared.queue.ack_many(&batch).await;
        let missing = batch.len().saturating_sub(results.len());
        for (job, result) in batch.iter().zip(results) {
            match result {
                Ok(()) => {
                    counts.processed.fetch_add(1, Ordering::Relaxed);
                    metrics.processed.increment(1);
                }
                Err(e) => {
                    counts.queue_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(queue = %job.queue, job_id = %job.id, error = %e,
                        "acking the job failed; it will be redelivered after its timeout");
                }
            }
        }
        if missing > 0 {
            counts.queue_errors.fetch_add(missing as u64, Ordering::Relaxed);
            tracing::warn!(missing, "the queue gave fewer ack results than jobs; those jobs will be redelivered");
        }
        batch.clear();
    }
}

/// Waits `interval`, or less if the worker is told to stop.
async fn idle(stop: &mut watch::Receiver<bool>, interval: Duration) {
    let _ = tokio::time::timeout(interval, stop.wait_for(|s| *s)).await;
}

async fn handle<F, Fut>(
    shared: &Shared<F>,
    job: ReservedJob,
    reserved_at: tokio::time::Instant,
    acks: &mpsc::UnboundedSender<ReservedJob>,
    abort: &mut watch::Receiver<bool>,
) where
    F: Fn(ReservedJob) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
{
    let (counts, metrics, queue) = (&shared.counts, &shared.metrics, &shared.queue);
    let Some(renewed) = still_reserved(shared, &job, reserved_at).await else { return };
    let started = Instant::now();
    // The handler is called inside the caught future, so a panic before its future exists is caught too.
    let run = AssertUnwindSafe(async { (shared.handler)(job.clone()).await }).catch_unwind();
    let outcome = tokio::select! {
        result = run => Some(result.unwrap_or_else(|panic| {
            counts.panicked.fetch_add(1, Ordering::Relaxed);
            metrics.panicked.increment(1);
            Err(format!("the handler panicked: {}", panic_message(&*panic)).into())
        })),
        _ = abort.wait_for(|a| *a) => None,
        never = keep_reserved(shared, &job, renewed) => match never {},
    };
    metrics.seconds.record(started.elapsed().as_secs_f64());
    let queue_result = match outcome {
        // The acker acks it (and counts it processed) with the other successes of the moment.
        Some(Ok(())) => match acks.send(job) {
            Ok(()) => Ok(()),
            Err(mpsc::error::SendError(job)) => queue.ack(&job).await.map(|()| {
                counts.processed.fetch_add(1, Ordering::Relaxed);
                metrics.processed.increment(1);
            }),
        },
        Some(Err(error)) => {
            counts.failed.fetch_add(1, Ordering::Relaxed);
            metrics.failed.increment(1);
            tracing::warn!(error = %error, "job failed");
            queue.nack(&job, shared.config.backoff_for(job.attempt)).await.map(|outcome| match outcome {
                NackOutcome::Retrying => {
                    counts.retried.fetch_add(1, Ordering::Relaxed);
                    metrics.retried.increment(1);
                }
                NackOutcome::Dead => {
                    counts.dead.fetch_add(1, Ordering::Relaxed);
                    metrics.dead.increment(1);
                }
            })
        }
        None => {
            release(shared, &job).await;
            Ok(())
        }
    };
    if let Err(e) = queue_result {
        counts.queue_errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(error = %e, "acking or nacking the job failed; it will be redelivered after its timeout");
    }
}

/// Extends `job`'s reservation, last renewed at `renewed`, every third of the visibility timeout, for as long as
/// it is polled (the handler runs); never returns. Stops extending, and only waits, once the reservation is gone.
async fn keep_reserved<F>(
    shared: &Shared<F>,
    job: &ReservedJob,
    renewed: tokio::time::Instant,
) -> std::convert::Infallible {
    let timeout = shared.config.visibility_timeout;
    let period = renewal_period(timeout);
    let mut ticks = tokio::time::interval_at(renewed + period, period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match shared.queue.extend(job, timeout).await {
            Ok(()) => {}
            Err(e) => {
                shared.counts.queue_errors.fetch_add(1, Ordering::Relaxed);
                if matches!(e, KvError::NotFound { .. }) {
                    tracing::warn!("the job's reservation was lost (redelivered); the handler runs on");
                    return std::future::pending().await;
                }
                tracing::warn!(error = %e, "extending the job's reservation failed; trying again");
            }
        }
    }
}

/// How often a handled job's reservation is renewed, and how long a prefetched one may wait before it is renewed
/// first: a third of the visibility `timeout` (at least 1 ms).
fn renewal_period(timeout: Duration) -> Duration {
    (timeout / 3).max(Duration::from_millis(1))
}

/// The text a panic was raised with (`panic!("...")` gives a `&str` or a `String`), or a placeholder.
fn panic_message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a non-text payload")
}
