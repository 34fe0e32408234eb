//! Batches of jobs for [`JobQueue::enqueue_many_bytes`](super::JobQueue::enqueue_many_bytes): [`NewJob`], and the
//! checks every implementation makes before it stores any job of a batch.

use bytes::Bytes;
use cpc_domain::ValidationError;

use super::EnqueueOptions;
use crate::KvError;

/// One job of a [`JobQueue::enqueue_many_bytes`](super::JobQueue::enqueue_many_bytes) batch: its payload and the
/// options it is enqueued with.
///
/// ```
/// use cpc_ports::{EnqueueOptions, NewJob};
///
/// let plain = NewJob::new("photo-42.jpg");
/// let keyed = NewJob::new("photo-43.jpg").with_options(EnqueueOptions::default().idempotency_key("photo-43"));
/// assert_eq!(plain.options, EnqueueOptions::default());
/// assert_eq!(keyed.options.idempotency_key.as_deref(), Some("photo-43"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    /// The payload, as [`JobQueue::enqueue_bytes`](super::JobQueue::enqueue_bytes) takes it.
    pub payload: Bytes,
    /// The job's options: delay, idempotency key, max attempts.
    pub options: EnqueueOptions,
}

impl NewJob {
    /// A job with `payload` and the default options (ready at once, no idempotency key, the default attempts).
    pub fn new(payload: impl Into<Bytes>) -> Self {
        Self { payload: payload.into(), options: EnqueueOptions::default() }
    }

    /// The same job with `options`.
    #[must_use]
    pub fn with_options(mut self, options: EnqueueOptions) -> Self {
        self.options = options;
        self
    }
}

impl From<(Bytes, EnqueueOptions)> for NewJob {
    fn from((payload, options): (Bytes, EnqueueOptions)) -> Self {
        Self { payload, options }
    }
}

/// The checks every implementation of [`JobQueue::enqueue_many_bytes`](super::JobQueue::enqueue_many_bytes) makes
/// before it stores anything: each payload's size ([`crate::check_payload`]) and each job's options
/// ([`EnqueueOptions::validate`]). Returns each job's max attempts, in order.
///
/// # Errors
/// The first bad job's error: [`KvError::TooLarge`] for an oversized payload, [`KvError::Validation`] for bad
/// options, its field prefixed with the job's index in the batch (`jobs[3].max_attempts`), as [`in_batch`] does.
pub fn check_batch(jobs: &[NewJob]) -> Result<Vec<u32>, KvError> {
    jobs.iter()
        .enumerate()
        .map(|(i, job)| {
            crate::check_payload(&job.payload)?;
            job.options.validate().map_err(|e| in_batch(i, e))
        })
        .collect()
}

/// [`check_batch`], then each job's delay (zero when it has none) through `delay`, the backend's conversion and
/// bound (milliseconds, say), an error of which names the job as [`in_batch`] does. Returns each job's max
/// attempts and converted delay, in order.
///
/// # Errors
/// What [`check_batch`] returns, or the first job's delay that `delay` refuses.
pub fn check_batch_delays<T>(
    jobs: &[NewJob],
    delay: impl Fn(std::time::Duration) -> Result<T, KvError>,
) -> Result<(Vec<u32>, Vec<T>), KvError> {
    let max_attempts = check_batch(jobs)?;
    let delays = jobs
        .iter()
        .enumerate()
        .map(|(i, job)| delay(job.options.delay.unwrap_or_default()).map_err(|e| in_batch(i, e)))
        .collect::<Result<Vec<_>, KvError>>()?;
    Ok((max_attempts, delays))
}

/// `error` as the error of job `index` of a batch: a [`KvError::Validation`] gets its field prefixed with
/// `jobs[index].` (so `delay` becomes `jobs[2].delay`); any other error is returned as it is.
pub fn in_batch(index: usize, error: KvError) -> KvError {
    match error {
        KvError::Validation(e) => {
            KvError::Validation(ValidationError::new(format!("jobs[{index}].{}", e.field), e.rule))
        }
        other => other,
    }
}

/// For each job of `jobs`, the index of the first earlier job of the batch with the same idempotency key (`None`
/// for a job without a key, or the first with its key). A job that has one is not stored: it gets that job's id.
pub fn repeated_keys(jobs: &[NewJob]) -> Vec<Option<usize>> {
    let mut first: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    jobs.iter()
        .enumerate()
        .map(|(i, job)| {
            let key = job.options.idempotency_key.as_deref()?;
            match first.get(key) {
                Some(&earlier) => Some(earlier),
                None => {
                    first.insert(key, i);
                    None
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_job_is_named_by_its_index() {
        let jobs = vec![
            NewJob::new("a"),
            NewJob::new("b").with_options(EnqueueOptions::default().max_attempts(3)),
            NewJob::new("c").with_options(EnqueueOptions::default().max_attempts(0)),
        ];
        match check_batch(&jobs) {
            Err(KvError::Validation(e)) => assert_eq!(e.field, "jobs[2].max_attempts"),
            other => panic!("want a validation error naming jobs[2], got {other:?}"),
        }
        assert_eq!(check_batch(&jobs[..2]).unwrap(), vec![super::super::DEFAULT_MAX_ATTEMPTS, 3]);
        let big = vec![NewJob::new(vec![0u8; crate::MAX_PAYLOAD_BYTES + 1])];
        assert!(matches!(check_batch(&big), Err(KvError::TooLarge { .. })));
        assert!(matches!(in_batch(1, KvError::NotFound { what: "x" }), KvError::NotFound { .. }));
    }

    #[test]
    fn repeated_keys_point_at_the_first_job_with_the_key() {
        let keyed = |k: &str| NewJob::new("p").with_options(EnqueueOptions::default().idempotency_key(k));
        let jobs = vec![keyed("a"), NewJob::new("p"), keyed("b"), keyed("a"), keyed("b"), keyed("a")];
        assert_eq!(repeated_keys(&jobs), vec![None, None, None, Some(0), Some(2), Some(0)]);
    }
}
