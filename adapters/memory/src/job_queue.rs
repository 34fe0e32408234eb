//! [`InMemoryJobQueue`]: the [`JobQueue`] port in process memory, on tokio's clock.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use cpc_ports::job_queue::{check_batch_delays, check_visibility_timeout, not_dead, not_reserved};
use cpc_ports::{
    Codec, DeadJob, EnqueueOptions, JobId, JobQueue, JobQueueSettings, KvError, NackOutcome, NewJob, QueueName,
    QueueStats, ReservedJob,
};
use tokio::time::Instant;

/// The fewest stored idempotency keys that trigger a sweep of expired ones.
const IDEMPOTENCY_SWEEP_MIN: usize = 1024;

/// A [`JobQueue`] in process memory that behaves like the Redis one: FIFO per queue, delays, visibility
/// timeouts, retries with backoff, dead letters and idempotency keys, all on tokio's clock (so tests can
/// `tokio::time::pause()` and `advance()` through delays and timeouts).
///
/// Single-process, like every `memory` adapter: jobs are lost when the process ends, so it suits tests, a CLI
/// or a quickstart; a deployment wires the Redis queue.
pub struct InMemoryJobQueue {
    queues: Mutex<HashMap<QueueName, Queue>>,
    settings: JobQueueSettings,
}

struct Job {
    payload: Bytes,
    attempts: u32,
    max_attempts: u32,
}

struct Queue {
    jobs: HashMap<JobId, Job>,
    ready: VecDeque<JobId>,
    /// (due, sequence) -> job; the sequence keeps equal instants in enqueue order.
    delayed: BTreeMap<(Instant, u64), JobId>,
    /// (visibility deadline, sequence) -> job, and the key of each reserved job in it.
    in_flight: BTreeMap<(Instant, u64), JobId>,
    reserved: HashMap<JobId, (Instant, u64)>,
    /// Death sequence -> (job, time of death), and the sequence of each dead job. Sequences grow with time, so
    /// the first entry is the oldest dead letter.
    dead: BTreeMap<u64, (JobId, Instant)>,
    dead_seq: HashMap<JobId, u64>,
    idempotency: HashMap<String, (JobId, Instant)>,
    /// Expired idempotency keys are swept when this many are stored (twice the live ones after the last sweep).
    idempotency_sweep_at: usize,
    seq: u64,
}

impl Default for Queue {
    fn default() -> Self {
        Self {
            jobs: HashMap::new(),
            ready: VecDeque::new(),
            delayed: BTreeMap::new(),
            in_flight: BTreeMap::new(),
            reserved: HashMap::new(),
            dead: BTreeMap::new(),
            dead_seq: HashMap::new(),
            idempotency: HashMap::new(),
            idempotency_sweep_at: IDEMPOTENCY_SWEEP_MIN,
            seq: 0,
        }
    }
}

impl Queue {
    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Moves jobs whose delay has passed to the back of the ready list, earliest due first.
    fn promote_due(&mut self, now: Instant) {
        while let Some(entry) = self.delayed.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let id = entry.remove();
            self.ready.push_back(id);
        }
    }

    /// The reserved job whose visibility timeout passed first, taken out of the in-flight set.
    fn take_expired(&mut self, now: Instant) -> Option<JobId> {
        let entry = self.in_flight.first_entry()?;
        if entry.key().0 > now {
            return None;
        }
        let id = entry.remove();
        self.reserved.remove(&id);
        Some(id)
    }

    /// Moves `id` to the dead letters, then drops the dead letters past the retention or the count bound.
    fn bury(&mut self, id: JobId, now: Instant, settings: &JobQueueSettings) {
        let seq = self.next_seq();
        self.dead.insert(seq, (id.clone(), now));
        self.dead_seq.insert(id, seq);
        self.prune_dead(now, settings);
    }

    /// Deletes the dead letters older than the retention, and the oldest beyond the count bound.
    fn prune_dead(&mut self, now: Instant, settings: &JobQueueSettings) {
        let cutoff = expiry_cutoff(now, settings);
        let max = settings.effective_max_dead_letters() as usize;
        while let Some(entry) = self.dead.first_entry() {
            let over = self.dead_seq.len() > max;
            let (_, died) = entry.get();
            if !over && cutoff.is_none_or(|cutoff| *died > cutoff) {
                break;
            }
            let (id, _) = entry.remove();
            self.dead_seq.remove(&id);
            self.jobs.remove(&id);
        }
    }

    /// The dead letters still within the retention, oldest first.
    fn live_dead(&self, now: Instant, settings: &JobQueueSettings) -> impl Iterator<Item = &JobId> {
        let cutoff = expiry_cutoff(now, settings);
        self.dead.values().filter(move |(_, died)| cutoff.is_none_or(|c| *died > c)).map(|(id, _)| id)
    }

    /// Ends the reservation `job` if it is the current one.
    fn release(&mut self, job: &ReservedJob) -> Result<(), KvError> {
        let current = self.jobs.get(&job.id).is_some_and(|j| j.attempts == job.attempt);
        let key = self.reserved.get(&job.id).filter(|_| current).copied().ok_or_else(not_reserved)?;
        self.reserved.remove(&job.id);
        self.in_flight.remove(&key);
        Ok(())
    }

    /// Stores a checked job (or, for an idempotency key still remembered, returns the earlier job's id).
    fn store(
        &mut self,
        settings: &JobQueueSettings,
        now: Instant,
        payload: Bytes,
        max_attempts: u32,
        due: Option<Instant>,
        idempotency_key: Option<String>,
    ) -> JobId {
        let id = JobId::generate();
        if let Some(key) = idempotency_key {
            match self.idempotency.get(&key) {
                Some((earlier, until)) if *until > now => return earlier.clone(),
                _ => {
                    let until = now.checked_add(settings.idempotency_window).unwrap_or(now);
                    self.idempotency.insert(key, (id.clone(), until));
                }
            }
            if self.idempotency.len() >= self.idempotency_sweep_at {
                self.idempotency.retain(|_, (_, until)| *until > now);
                self.idempotency_sweep_at = (2 * self.idempotency.len()).max(IDEMPOTENCY_SWEEP_MIN);
            }
        }
        self.jobs.insert(id.clone(), Job { payload, attempts: 0, max_attempts });
        match due {
            Some(due) => {
                let seq = self.next_seq();
                self.delayed.insert((due, seq), id.clone());
            }
            None => self.ready.push_back(id.clone()),
        }
        id
    }

    fn count_in_flight(&self, now: Instant) -> (u64, u64) {
        let live = self.in_flight.keys().filter(|(deadline, _)| *deadline > now).count() as u64;
        (live, self.in_flight.len() as u64 - live)
    }
}

impl InMemoryJobQueue {
    /// Empty queues, the default settings (JSON, 24-hour idempotency window).
    pub fn new() -> Self {
        Self { queues: Mutex::new(HashMap::new()), settings: JobQueueSettings::default() }
    }

    /// The same queue with other settings (codec, idempotency window, dead-letter retention).
    #[must_use]
    pub fn with_settings(mut self, settings: JobQueueSettings) -> Self {
        self.settings = settings;
        self
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<QueueName, Queue>> {
        self.queues.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Default for InMemoryJobQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for InMemoryJobQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryJobQueue").field("queues", &self.lock().len()).finish()
    }
}

/// The instant at or before which a dead letter has outlived the retention (`None`: nothing has yet).
fn expiry_cutoff(now: Instant, settings: &JobQueueSettings) -> Option<Instant> {
    now.checked_sub(settings.effective_dead_letter_retention())
}

fn after(now: Instant, d: Duration, field: &'static str) -> Result<Instant, KvError> {
    now.checked_add(d).ok_or_else(|| KvError::invalid(field, "is too large to represent"))
}

#[async_trait]
impl JobQueue for InMemoryJobQueue {
    async fn enqueue_bytes(
        &self,
        queue: &QueueName,
        payload: Bytes,
        options: EnqueueOptions,
    ) -> Result<JobId, KvError> {
        cpc_ports::check_payload(&payload)?;
        let max_attempts = options.validate()?;
        let now = Instant::now();
        let due = options.delay.filter(|d| !d.is_zero()).map(|d| after(now, d, "delay")).transpose()?;
        let mut queues = self.lock();
        let q = queues.entry(queue.clone()).or_default();
        Ok(q.store(&self.settings, now, payload, max_attempts, due, options.idempotency_key))
    }

    /// Checks the whole batch, then stores it under one lock: no reserve sees part of it.
    async fn enqueue_many_bytes(&self, queue: &QueueName, jobs: Vec<NewJob>) -> Result<Vec<JobId>, KvError> {
        let now = Instant::now();
        let (max_attempts, dues) =
            check_batch_delays(&jobs, |d| (!d.is_zero()).then(|| after(now, d, "delay")).transpose())?;
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let mut queues = self.lock();
        let q = queues.entry(queue.clone()).or_default();
        Ok(jobs
            .into_iter()
            .zip(max_attempts)
            .zip(dues)
            .map(|((job, max_attempts), due)| {
                q.store(&self.settings, now, job.payload, max_attempts, due, job.options.idempotency_key)
            })
            .collect())
    }

    async fn reserve(&self, queue: &QueueName, visibility_timeout: Duration) -> Result<Option<ReservedJob>, KvError> {
        check_visibility_timeout(visibility_timeout)?;
        let now = Instant::now();
        let deadline = after(now, visibility_timeout, "visibility_timeout")?;
        let mut queues = self.lock();
        let Some(q) = queues.get_mut(queue) else {
            return Ok(None);
        };
        q.promote_due(now);
        q.prune_dead(now, &self.settings);
        loop {
            let Some(id) = q.take_expired(now).or_else(|| q.ready.pop_front()) else {
                return Ok(None);
            };
            let Some(job) = q.jobs.get_mut(&id) else { continue };
            if job.attempts >= job.max_attempts {
                // Its last delivery timed out: a worker died on it (or outlived its timeout) too often.
                q.bury(id, now, &self.settings);
                continue;
            }
            job.attempts += 1;
            let reserved = ReservedJob {
                id: id.clone(),
                queue: queue.clone(),
                payload: job.payload.clone(),
                attempt: job.attempts,
                max_attempts: job.max_attempts,
            };
            let seq = q.next_seq();
            q.in_flight.insert((deadline, seq), id.clone());
            q.reserved.insert(id, (deadline, seq));
            return Ok(Some(reserved));
        }
    }

    async fn ack(&self, job: &ReservedJob) -> Result<(), KvError> {
        let mut queues = self.lock();
        let q = queues.get_mut(&job.queue).ok_or_else(not_reserved)?;
        q.release(job)?;
        q.jobs.remove(&job.id);
        Ok(())
    }

    async fn nack(&self, job: &ReservedJob, retry_after: Duration) -> Result<NackOutcome, KvError> {
        let now = Instant::now();
        let due = after(now, retry_after, "retry_after")?;
        let mut queues = self.lock();
        let q = queues.get_mut(&job.queue).ok_or_else(not_reserved)?;
        q.release(job)?;
        if q.jobs.get(&job.id).is_none_or(|stored| stored.attempts >= stored.max_attempts) {
            q.bury(job.id.clone(), now, &self.settings);
            return Ok(NackOutcome::Dead);
        }
        let seq = q.next_seq();
        q.delayed.insert((due, seq), job.id.clone());
        Ok(NackOutcome::Retrying)
    }

    async fn extend(&self, job: &ReservedJob, visibility_timeout: Duration) -> Result<(), KvError> {
        check_visibility_timeout(visibility_timeout)?;
        let deadline = after(Instant::now(), visibility_timeout, "visibility_timeout")?;
        let mut queues = self.lock();
        let q = queues.get_mut(&job.queue).ok_or_else(not_reserved)?;
        q.release(job)?;
        let seq = q.next_seq();
        q.in_flight.insert((deadline, seq), job.id.clone());
        q.reserved.insert(job.id.clone(), (deadline, seq));
        Ok(())
    }

    async fn dead_letters(&self, queue: &QueueName, limit: usize) -> Result<Vec<DeadJob>, KvError> {
        let now = Instant::now();
        let queues = self.lock();
        let Some(q) = queues.get(queue) else {
            return Ok(Vec::new());
        };
        Ok(q.live_dead(now, &self.settings)
            .filter_map(|id| {
                q.jobs.get(id).map(|job| DeadJob {
                    id: id.clone(),
                    payload: job.payload.clone(),
                    attempts: job.attempts,
                })
            })
            .take(limit)
            .collect())
    }

    async fn requeue_dead(&self, queue: &QueueName, id: &JobId) -> Result<(), KvError> {
        let mut queues = self.lock();
        let q = queues.get_mut(queue).ok_or_else(not_dead)?;
        q.prune_dead(Instant::now(), &self.settings);
        let seq = q.dead_seq.remove(id).ok_or_else(not_dead)?;
        q.dead.remove(&seq);
        if let Some(job) = q.jobs.get_mut(id) {
            job.attempts = 0;
        }
        q.ready.push_back(id.clone());
        Ok(())
    }

    async fn stats(&self, queue: &QueueName) -> Result<QueueStats, KvError> {
        let now = Instant::now();
        let queues = self.lock();
        let Some(q) = queues.get(queue) else {
            return Ok(QueueStats::default());
        };
        let (in_flight, expired) = q.count_in_flight(now);
        let due = q.delayed.keys().filter(|(due, _)| *due <= now).count() as u64;
        Ok(QueueStats {
            pending: q.ready.len() as u64 + expired + due,
            in_flight,
            delayed: q.delayed.len() as u64 - due,
            dead: q.live_dead(now, &self.settings).count() as u64,
        })
    }

    fn codec(&self) -> Codec {
        self.settings.codec.clone()
    }
}
