//! The [`JobQueue`] port of a [`Decorated`] port: every method goes through [`Decorate::around`].
//!
//! Which calls a [`Retry`](super::Retry) may repeat: an enqueue only when it carries an idempotency key (the queue
//! then stores it once however often it is sent), a batch enqueue only when each of its jobs does, reads and
//! `extend` always (an extend sent twice sets the same deadline), and never `reserve`, `reserve_many`, `ack`,
//! `ack_many`, `nack` or `requeue_dead`, whose second attempt after a lost reply would find the job already moved.

use std::time::Duration;

use async_trait::async_trait;
use cpc_ports::job_queue::batch_error;
use cpc_ports::{
    Bytes, Codec, DeadJob, EnqueueOptions, JobId, JobQueue, KvError, NackOutcome, NewJob, QueueName, QueueStats,
    ReservedJob,
};

use super::{Decorate, Decorated, Op};

#[async_trait]
impl<P: JobQueue + ?Sized, D: Decorate> JobQueue for Decorated<P, D> {
    async fn enqueue_bytes(
        &self,
        queue: &QueueName,
        payload: Bytes,
        options: EnqueueOptions,
    ) -> Result<JobId, KvError> {
        let op = if options.idempotency_key.is_some() {
            Op::idempotent("job_queue", "enqueue_bytes")
        } else {
            Op::once("job_queue", "enqueue_bytes")
        };
        self.decorator.around(op, move || self.inner.enqueue_bytes(queue, payload.clone(), options.clone())).await
    }

    /// The batch goes to the inner queue whole (one call, so its atomicity is kept). A [`Retry`](super::Retry)
    /// may repeat it only when every job carries an idempotency key.
    async fn enqueue_many_bytes(&self, queue: &QueueName, jobs: Vec<NewJob>) -> Result<Vec<JobId>, KvError> {
        let op = if !jobs.is_empty() && jobs.iter().all(|job| job.options.idempotency_key.is_some()) {
            Op::idempotent("job_queue", "enqueue_many_bytes")
        } else {
            Op::once("job_queue", "enqueue_many_bytes")
        };
        self.decorator.around(op, move || self.inner.enqueue_many_bytes(queue, jobs.clone())).await
    }

    async fn reserve(&self, queue: &QueueName, visibility_timeout: Duration) -> Result<Option<ReservedJob>, KvError> {
        let op = Op::once("job_queue", "reserve");
        self.decorator.around(op, move || self.inner.reserve(queue, visibility_timeout)).await
    }

    async fn ack(&self, job: &ReservedJob) -> Result<(), KvError> {
        self.decorator.around(Op::once("job_queue", "ack"), move || self.inner.ack(job)).await
    }

    async fn reserve_many(
        &self,
        queue: &QueueName,
        visibility_timeout: Duration,
        max: usize,
    ) -> Result<Vec<ReservedJob>, KvError> {
        let op = Op::once("job_queue", "reserve_many");
        self.decorator.around(op, move || self.inner.reserve_many(queue, visibility_timeout, max)).await
    }

    async fn ack_many(&self, jobs: &[ReservedJob]) -> Vec<Result<(), KvError>> {
        let op = Op::once("job_queue", "ack_many");
        let batch = self.decorator.around(op, move || async move { Ok::<_, KvError>(self.inner.ack_many(jobs).await) });
        match batch.await {
            Ok(results) => results,
            Err(error) => jobs.iter().map(|_| Err(batch_error(&error))).collect(),
        }
    }

    async fn nack(&self, job: &ReservedJob, retry_after: Duration) -> Result<NackOutcome, KvError> {
        self.decorator.around(Op::once("job_queue", "nack"), move || self.inner.nack(job, retry_after)).await
    }

    async fn extend(&self, job: &ReservedJob, visibility_timeout: Duration) -> Result<(), KvError> {
        let op = Op::idempotent("job_queue", "extend");
        self.decorator.around(op, move || self.inner.extend(job, visibility_timeout)).await
    }

    async fn dead_letters(&self, queue: &QueueName, limit: usize) -> Result<Vec<DeadJob>, KvError> {
        let op = Op::idempotent("job_queue", "dead_letters");
        self.decorator.around(op, move || self.inner.dead_letters(queue, limit)).await
    }

    async fn requeue_dead(&self, queue: &QueueName, id: &JobId) -> Result<(), KvError> {
        let op = Op::once("job_queue", "requeue_dead");
        self.decorator.around(op, move || self.inner.requeue_dead(queue, id)).await
    }

    async fn stats(&self, queue: &QueueName) -> Result<QueueStats, KvError> {
        self.decorator.around(Op::idempotent("job_queue", "stats"), move || self.inner.stats(queue)).await
    }

    fn codec(&self) -> Codec {
        self.inner.codec()
    }
}
