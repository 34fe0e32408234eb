//! The [`JobQueue`] contract: every implementation (Redis, in-memory, `dyn JobQueue` of either) must pass these
//! cases.
//!
//! Run them all with [`job_queue_contract!`](crate::job_queue_contract):
//!
//! ```
//! mod memory_job_queue {
//!     cpc_testkit::job_queue_contract!(async {
//!         std::sync::Arc::new(cpc_testkit::memory::InMemoryJobQueue::new())
//!     });
//! }
//! # fn main() {}
//! ```
//!
//! Each case works on a queue with a random name and uses real (short) sleeps, so it runs unchanged against a
//! shared real server.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use cpc_ports::{
    EnqueueOptions, JobId, JobQueue, JobQueueExt, JobQueueSettings, KvError, NackOutcome, NewJob, QueueName,
    QueueStats, ReservedJob,
};
use tokio::time::sleep;

use super::concurrently;

/// Runs every case of the [`JobQueue`] contract as a `#[tokio::test]`. `$factory` is an async expression
/// yielding a fresh queue behind anything that derefs to it (`Arc<InMemoryJobQueue>`, `Arc<dyn JobQueue>`).
/// `job_queue_contract!(factory, inline)` expands instead to a block that runs every case in turn, inside a test
/// of the caller's (for a server costly to start, such as a Redis Cluster, that the factory may then borrow).
#[macro_export]
macro_rules! job_queue_contract {
    ($factory:expr $(, $mode:ident)?) => {
        $crate::__contract_cases!(
            $crate::contract::job_queue,
            $factory,
            [
                jobs_of_one_producer_are_reserved_in_order,
                an_empty_or_unknown_queue_reserves_nothing,
                queues_are_independent,
                a_delayed_job_is_not_reserved_before_its_delay,
                a_reserved_job_is_invisible_until_its_visibility_timeout_then_redelivered,
                an_acked_job_is_gone_and_never_redelivered,
                nack_retries_after_the_backoff_then_dead_letters_after_max_attempts,
                a_job_whose_worker_keeps_dying_ends_in_the_dead_letters,
                dead_letters_are_listed_in_order_and_can_be_requeued,
                an_idempotency_key_enqueues_the_job_once,
                ack_or_nack_of_an_unknown_or_finished_job_is_not_found,
                extend_keeps_a_job_reserved_past_its_original_timeout,
                extend_of_a_finished_or_lost_reservation_is_not_found,
                concurrent_workers_never_get_the_same_job_while_it_is_reserved,
                stats_count_pending_in_flight_delayed_and_dead,
                typed_payloads_round_trip_through_the_codec,
                invalid_arguments_are_validation_errors,
                an_oversized_payload_is_too_large_and_nothing_is_enqueued,
                reserve_many_takes_at_most_max_jobs_each_reserved_as_by_reserve,
                ack_many_acks_current_reservations_and_reports_the_rest_not_found,
                enqueue_many_stores_the_batch_in_order_and_returns_its_ids,
                enqueue_many_honours_idempotency_keys_inside_the_batch_and_across,
                a_batch_with_one_invalid_job_stores_nothing,
            ] $(, $mode)?
        );
    };
}

/// Runs the retention cases of the [`JobQueue`] contract as `#[tokio::test]`s. `$factory` is a closure taking the
/// [`JobQueueSettings`] to build the queue with ([`RETENTION`]: dead letters kept 600 ms, 3 per queue) and
/// returning a future of a fresh queue, as for [`job_queue_contract!`](crate::job_queue_contract).
///
/// ```
/// mod memory_job_retention {
///     cpc_testkit::job_queue_retention_contract!(|settings| async move {
///         std::sync::Arc::new(cpc_testkit::memory::InMemoryJobQueue::new().with_settings(settings))
///     });
/// }
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! job_queue_retention_contract {
    ($factory:expr $(, $mode:ident)?) => {
        $crate::__contract_cases!(
            $crate::contract::job_queue::retention,
            ($factory)($crate::contract::job_queue::RETENTION),
            [
                dead_letters_past_the_retention_are_neither_listed_nor_counted_nor_requeued,
                past_the_count_bound_the_oldest_dead_letters_are_dropped,
                jobs_still_to_be_worked_outlive_the_retention,
            ] $(, $mode)?
        );
    };
}

/// The settings the retention cases expect their queue to be built with: dead letters kept 600 ms, at most 3.
pub const RETENTION: JobQueueSettings = JobQueueSettings {
    codec: cpc_ports::Codec::json(),
    idempotency_window: cpc_ports::job_queue::DEFAULT_IDEMPOTENCY_WINDOW,
    dead_letter_retention: Duration::from_millis(600),
    max_dead_letters: 3,
};

const LONG: Duration = Duration::from_secs(30);
const SHORT: Duration = Duration::from_millis(200);
const PAST_SHORT: Duration = Duration::from_millis(450);

/// A queue no other case or run shares.
fn queue(case: &str) -> QueueName {
    let text = format!("contract:{}:{}", &case[..case.len().min(40)], uuid::Uuid::new_v4().simple());
    QueueName::new(text.clone()).unwrap_or_else(|e| panic!("test queue {text:?} should be valid: {e}"))
}

fn body(n: u32) -> bytes::Bytes {
    bytes::Bytes::from(format!("job-{n}"))
}

async fn put<P: JobQueue + ?Sized>(port: &P, q: &QueueName, n: u32, options: EnqueueOptions) -> JobId {
    port.enqueue_bytes(q, body(n), options).await.unwrap()
}

async fn take<P: JobQueue + ?Sized>(port: &P, q: &QueueName, visibility: Duration) -> ReservedJob {
    port.reserve(q, visibility).await.unwrap().unwrap_or_else(|| panic!("a job should be ready on {q}"))
}

async fn assert_empty<P: JobQueue + ?Sized>(port: &P, q: &QueueName, why: &str) {
    let got = port.reserve(q, LONG).await.unwrap();
    assert!(got.is_none(), "{why}, yet reserve gave {got:?}");
}

fn assert_not_found<T: std::fmt::Debug>(result: Result<T, KvError>, what: &str) {
    match result {
        Err(KvError::NotFound { .. }) => {}
        other => panic!("{what} must be NotFound, got {other:?}"),
    }
}

/// 20 jobs enqueued one after another come out in that order, each with attempt 1 and its own payload.
pub async fn jobs_of_one_producer_are_reserved_in_order<P: JobQueue + ?Sized>(port: &P) {
    let q = queue("jobs_of_one_producer_are_reserved_in_order");
    let mut ids = Vec::new();
    for n in 0..20 {
        ids.push(put(port, &q, n, EnqueueOptions::default()).await);
    }
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 20, "every job gets its own id");
    for (n, id) in ids.iter().enumerate() {
        let job = take(port, &q, LONG).await;
        assert_eq!((&job.id, &job.payload, job.attempt), (id, &body(n as u32), 1), "job {n} out of order");
        assert_eq!(job.queue, q);
        port.ack(&job).await.unwrap();
    }
    assert_empty(port, &q, "all 20 jobs were acked").await;
}

/// `reserve` on a queue never used, or drained, answers `None` at once.
pub async fn an_empty_or_unknown_queue_reserves_nothing<P: JobQueue + ?Sized>(port: &P) {
    let q = queue("an_empty_or_unknown_queue_reserves_nothing");
    assert_empty(port, &q, "the queue was never used").await;
    assert_eq!(port.stats(&q).await.unwrap(), QueueStats::default());
    assert!(port.dead_letters(&q, 10).await.unwrap().is_empty());
    put(port, &q, 1, EnqueueOptions::default()).await;
    let job = take(port, &q, LONG).await;
    port.ack(&job).await.unwrap();
    assert_empty(port, &q, "the only job was acked").await;
}

/// A job enqueued on one queue is never reserved from another.
pub async fn queues_are_independent<P: JobQueue + ?Sized>(port: &P) {
    let (a, b) = (queue("queues_are_independent_a"), queue("queues_are_independent_b"));
    let id = put(port, &a, 1, EnqueueOptions::default()).await;
    assert_empty(port, &b, "the job went to another queue").await;
    let job = take(port, &a, LONG).await;
    assert_eq!(job.id, id);
    assert_not_found(port.ack(&ReservedJob { queue: b.clone(), ..job.clone() }).await, "ack on the wrong queue");
    port.ack(&job).await.unwrap();
}

/// A delayed job stays invisible (and counted as delayed) until its delay has passed; a job without delay
/// enqueued after it comes out first.
pub async fn a_delayed_job_is_not_reserved_before_its_delay<P: JobQueue + ?Sized>(port: &P) {
    let q = queue("a_delayed_job_is_not_reserved_before_its_delay");
    let late = put(port, &q, 1, EnqueueOptions::default().delayed(Duration::from_millis(400))).await;
    let now = put(port, &q, 2, EnqueueOptions::default()).await;
    assert_eq!(port.stats(&q).await.unwrap().delayed, 1);
    let first = take(port, &q, LONG).await;
    assert_eq!(first.id, now, "the undelayed job comes first");
    assert_empty(port, &q, "the delayed job's delay has not passed").await;
    sleep(Duration::from_millis(700)).await;
    let second = take(port, &q, LONG).await;
    assert_eq!((second.id, second.attempt), (late, 1), "after its delay the job is delivered");
}

/// A reserved job is hidden from other workers within its visibility timeout; once it passes without an ack,
/// the job is delivered again with attempt 2, and the first worker can no longer ack it.
pub async fn a_reserved_job_is_invisible_until_its_visibility_timeout_then_redelivered<P: JobQueue + ?Sized>(port: &P) {
    let q = queue("a_reserved_job_is_invisible_until_its_visibility_timeout");
    let id = put(port, &q, 1, EnqueueOptions::default()).await;
    let first = take(port, &q, SHORT).await;
    assert_eq!((&first.id, first.attempt), (&id, 1));
    assert_empty(port, &q, "the job is reserved").await;
    assert_eq!(port.stats(&q).await.unwrap().in_flight, 1);
    sleep(PAST_SHORT).await;
    let again = take(port, &q, LONG).await;
    assert_eq!((&again.id, again.attempt, &again.payload), (&id, 2, &body(1)), "redelivered with attempt 2");
    assert_not_found(port.ack(&first).await, "the first worker's ack after the redelivery");
    assert_not_found(port.nack(&first, SHORT).await, "the first worker's nack after the redelivery");
    port.ack(&again).await.unwrap();
    assert_empty(port, &q, "the redelivered job was acked by its holder").await;
}

/// After an ack the job is gone: not redelivered after the visibility timeout, not counted anywhere.
pub async fn an_acked_job_is_gone_and_never_redelivered<P: JobQueue + ?Sized>(port: &P) {
    let q = queue("an_acked_job_is_gone_and_never_redelivered");
    put(port, &q, 1, EnqueueOptions::default()).await;
    let job = take(port, &q, SHORT).await;
    port.ack(&job).await.unwrap();
    sleep(PAST_SHORT).await;
    assert_empty(port, &q, "the job was acked before its visibility timeout").await;
    assert_eq!(port.stats(&q).await.unwrap(), QueueStats::default());
}

/// A nacked job comes back after its backoff (not before) with its attempt raised; after `max_attempts` the
/// nack answers `Dead` and the job is in the dead-letter list with its payload and attempts.
pub async fn nack_retries_after_the_backoff_then_dead_letters_after_max_attempts<P: JobQueue + ?Sized>(port: &P) {
    let q = queue("nack_retries_after_the_backoff_then_dead_letters");
    let id = put(port, &q, 7, EnqueueOptions::default().max_attempts(3)).await;
    for attempt in 1..=3 {
        let job = take(port, &q, LONG).await;
        assert_eq!((&job.id, job.attempt, job.max_attempts), (&id, attempt, 3));
        assert_eq!(job.is_last_attempt(), attempt == 3);
        let outcome = port.nack(&job, Duration::from_millis(300)).await.unwrap();
        if attempt < 3 {
            assert_eq!(outcome, NackOutcome::Retrying, "attempt {attempt} of 3 is retried");
            assert_empty(port, &q, "the backoff has not passed").await;
            assert_eq!(port.stats(&q).await.unwrap().delayed, 1, "a job in backoff counts as delayed");
            sleep(Duration::from_millis(550)).await;
        } else {
            assert_eq!(outcome, NackOutcome::Dead, "the third failure of three is final");
        }
    }
    sleep(Duration::from_millis(400)).await;
    assert_empty(port, &q, "a dead job is not delivered").await;
    let dead = port.dead_letters(&q, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!((&dead[0].id, &dead[0].payload, dead[0].attempts), (&id, &body(7), 3));
}

/// A job reserved and never acked (its worker died, every time) is dead-lettered once its last visibility
/// timeout passes, instead of circulating for ever.
pub async fn a_job_whose_worker_keeps_dying_ends_in_the_dead_letters<P: JobQueue + ?Sized>(port: &P) {
    let q = queue("a_job_whose_worker_keeps_dying_ends_in_the_dead_letters");
    let id = put(port, &q, 1, EnqueueOptions::default().max_attempts(2)).await;
    assert_eq!(take(port, &q, SHORT).await.attempt, 1);
    sleep(PAST_SHORT).await;
    assert_eq!(take(port, &q, SHORT).await.attempt, 2);
    sleep(PAST_SHORT).await;
    assert_empty(port, &q, "the job had its 2 attempts").await;
    let dead = port.dead_letters(&q, 10).await.unwrap();
    assert_eq!(dead.iter().map(|d| (&d.id, d.attempts)).collect::<Vec<_>>(), vec![(&id, 2)]);
}

/// Dead jobs are listed earliest first, `limit` bounds the list, and a requeued job is delivered again with a
/// fresh attempt count; requeuing it twice, or a job that is not dead, is `NotFound`.
pub async fn dead_letters_are_listed_in_order_and_can_be_requeued<P: JobQueue + ?Sized>(port: &P) {
    let q = queue("dead_letters_are_listed_in_order_and_can_be_requeued");
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(put(port, &q, n, EnqueueOptions::default().max_attempts(1)).await);
    }
    for _ in 0..3 {
        let job = take(port, &q, LONG).await;
        assert_eq!(port.nack(&job, Duration::ZERO).await.unwrap(), NackOutcome::Dead);
    }
    let dead = port.dead_letters(&q, 10).await.unwrap();
    assert_eq!(dead.iter().map(|d| &d.id).collect::<Vec<_>>(), ids.iter().collect::<Vec<_>>(), "death order");
    assert_eq!(port.dead_letters(&q, 2).await.unwrap().len(), 2, "limit bounds the list");
    assert_eq!(port.stats(&q).await.unwrap().dead, 3);

    port.requeue_dead(&q, &ids[1]).await.unwrap();
    assert_not_found(port.requeue_dead(&q, &ids[1]).await, "requeuing a job no longer dead");
    assert_not_found(port.requeue_dead(&q, &JobId::new("no-such-job")).await, "requeuing an unknown job");
    let again = take(port, &q, LONG).await;
    assert_eq!((&again.id, again.attempt, &again.payload), (&ids[1], 1, &body(1)), "a fresh set of attempts");
    port.ack(&again).await.unwrap();
    let left: Vec<_> = port.dead_letters(&q, 10).await.unwrap().into_iter().map(|d| d.id).collect();
    assert_eq!(left, vec![ids[0].clone(), ids[2].clone()]);
}

/// A second enqueue with the same idempotency key stores nothing and returns the first job's id, even after the
/// first job was worked; other keys, or no key, enqueue normally.
pub async fn an_idempotency_key_enqueues_the_job_once<P: JobQueue + ?Sized>(port: &P) {
    let q = queue("an_idempotency_key_enqueues_the_job_once");
    let keyed = || EnqueueOptions::default().idempotency_key("thumbnail:photo-42");
    let first = put(port, &q, 1, keyed()).await;
    let second = put(port, &q, 2, keyed()).await;
    assert_eq!(first, second, "the same key gives the first job's id");
    let other = put(port, &q, 3, EnqueueOptions::default().idempotency_key("thumbnail:photo-43")).await;
    assert_ne!(other, first);
    assert_eq!(port.stats(&q).await.unwrap().pending, 2, "the duplicate was not stored");
    let job = take(port, &q, LONG).await;
    assert_eq!((&job.id, &job.payload), (&first, &body(1)), "the first payload is kept");
    port.ack(&job).await.unwrap();
    assert_eq!(put(port, &q, 4, keyed()).await, first, "the key is remembered after the job was done");
    assert_eq!(take(port, &q, LONG).await.id, other);
    assert_empty(port, &q, "only two jobs were stored").await;
}

/// `ack` and `nack` of a job never enqueued, already acked, or dead are `NotFound`, and change nothing.
pub async fn ack_or_nack_of_an_unknown_or_finished_job_is_not_found<P: JobQueue + ?Sized>(port: &P) {
    let q = queue("ack_or_nack_of_an_unknown_or_finished_job_is_not_found");
    let forged = |id: JobId| ReservedJob {
        id,
        queue: q.clone(),
        payload: body(1),
        attempt: 1,
        max_attempts: cpc_ports::job_queue::DEFAULT_MAX_ATTEMPTS,
    };
    assert_not_found(port.ack(&forged(JobId::new("never-enqueued"))).await, "ack of an unknown job");
    assert_not_found(port.nack(&forged(JobId::new("never-enqueued")), SHORT).await, "nack of an unknown job");
    let waiting = put(port, &q, 1, EnqueueOptions::default()).await;
    let _ = put(port, &q, 2, EnqueueOptions::default().max_attempts(1)).await;
    assert_not_found(port.ack(&forged(waiting)).await, "ack of a job not yet reserved");
    let job = take(port, &q, LONG).await;
    port.ack(&job).await.unwrap();
    assert_not_found(port.ack(&job).await, "a second ack");
    assert_not_found(port.nack(&job, SHORT).await, "nack after ack");
    let stale = ReservedJob { attempt: 2, ..take(port, &q, LONG).await };
    assert_not_found(port.ack(&stale).await, "ack with a wrong attempt (not the current reservation)");
    let doomed = ReservedJob { attempt: 1, ..stale };
    assert_eq!(port.nack(&doomed, SHORT).await.unwrap(), NackOutcome::Dead);
    assert_not_found(port.ack(&doomed).await, "ack of a dead job");
    assert_eq!(port.stats(&q).await.unwrap(), QueueStats { dead: 1, ..QueueStats::default() });
}

/// A reservation extended before its visibility timeout ends stays hidden past the original timeout (and
/// counted in flight), its holder can still ack it, and it is redelivered once the extended timeout passes.
pub async fn extend_keeps_a_job_reserved_past_its_original_timeout<P: JobQueue + ?Sized>(port: &P) {
    let q = queue("extend_keeps_a_job_reserved_past_its_original_timeout");
    let id = put(port, &q, 1, EnqueueOptions::default()).await;
    let job = take(port, &q, SHORT).await;
    sleep(Duration::from_millis(100)).await;
    port.extend(&job, Duration::from_millis(700)).await.unwrap();
    sleep(PAST_SHORT).await;
    assert_empty(port, &q, "the reservation was extended past its original 200 ms").await;
    assert_eq!(port.stats(&q).await.unwrap().in_flight, 1);
    port.extend(&job, SHORT).await.unwrap();
    sleep(PAST_SHORT).await;
    let again = take(port, &q, LONG).await;
    assert_eq!((&again.id, again.attempt), (&id, 2), "redelivered once the extended timeout passed");
    port.ack(&again).await.unwrap();

    let other = put(port, &q, 2, EnqueueOptions::default()).await;
    let job = take(port, &q, SHORT).await;
    assert_eq!(job.id, other);
    port.extend(&job, LONG).await.unwrap();
    sleep(PAST_SHORT).await;
    assert_empty(port, &q, "the reservation was extended").await;
    port.ack(&job).await.unwrap();
    assert_eq!(port.stats(&q).await.unwrap(), QueueStats::default());
}

/// `extend` of a reservation that is not current (never made, acked, nacked, dead, or redelivered to another
/// worker) is `NotFound` and changes nothing; a zero timeout is a validation error.
pub async fn extend_of_a_finished_or_lost_reservation_is_not_found<P: JobQueue + ?Sized>(port: &P) {
    let q = queue("extend_of_a_finished_or_lost_reservation_is_not_found");
    let forged = ReservedJob {
        id: JobId::new("never-enqueued"),
        queue: q.clone(),
        payload: body(1),
        attempt: 1,
        max_attempts: cpc_ports::job_queue::DEFAULT_MAX_ATTEMPTS,
    };
    assert_not_found(port.extend(&forged, LONG).await, "extend of an unknown job");
    put(port, &q, 1, EnqueueOptions::default()).await;
    let acked = take(port, &q, LONG).await;
    assert!(matches!(port.extend(&acked, Duration::ZERO).await, Err(KvError::Validation(_))), "zero timeout");
    port.ack(&acked).await.unwrap();
    assert_not_found(port.extend(&acked, LONG).await, "extend after ack");

    put(port, &q, 2, EnqueueOptions::default().max_attempts(2)).await;
    let first = take(port, &q, SHORT).await;
    sleep(PAST_SHORT).await;
    let second = take(port, &q, SHORT).await;
    assert_eq!((&second.id, second.attempt), (&first.id, 2));
    assert_not_found(port.extend(&first, LONG).await, "extend by the worker whose reservation was redelivered");
    assert_eq!(port.nack(&second, Duration::ZERO).await.unwrap(), NackOutcome::Dead);
    assert_not_found(port.extend(&second, LONG).await, "extend of a dead job");

    put(port, &q, 3, EnqueueOptions::default()).await;
    let nacked = take(port, &q, LONG).await;
    assert_eq!(port.nack(&nacked, LONG).await.unwrap(), NackOutcome::Retrying);
    assert_not_found(port.extend(&nacked, LONG).await, "extend after nack");
    assert_eq!(port.stats(&q).await.unwrap(), QueueStats { delayed: 1, dead: 1, ..QueueStats::default() });
}

/// 8 workers reserving at once from 200 jobs: no job is held by two workers at a time, and every job is
/// delivered exactly once (all are acked well within their visibility timeout).
pub async fn concurrent_workers_never_get_the_same_job_while_it_is_reserved<P: JobQueue + ?Sized>(port: &P) {
    let q = queue("concurrent_workers_never_get_the_same_job_while_reserved");
    let mut enqueued = HashSet::new();
    for n in 0..200 {
        enqueued.insert(put(port, &q, n, EnqueueOptions::default()).await);
    }
    let held: Mutex<HashSet<JobId>> = Mutex::new(HashSet::new());
    let (q_ref, held_ref) = (&q, &held);
    let per_worker = concurrently(8, |_| async move {
        let mut mine = Vec::new();
        while let Some(job) = port.reserve(q_ref, LONG).await.unwrap() {
            assert!(held_ref.lock().unwrap().insert(job.id.clone()), "job {} handed to two workers", job.id);
            tokio::task::yield_now().await;
            held_ref.lock().unwrap().remove(&job.id);
            port.ack(&job).await.unwrap();
            mine.push(job.id);
        }
        mine
    })
    .await;
    let delivered: Vec<JobId> = per_worker.into_iter().flatten().collect();
    assert_eq!(delivered.len(), 200, "every job delivered once");
    assert_eq!(delivered.into_iter().collect::<HashSet<_>>(), enqueued);
}

/// `stats` counts each job in exactly one state, and a job whose visibility timeout passed counts as pending.
pub async fn stats_count_pending_in_flight_delayed_and_dead<P: JobQueue + ?Sized>(port: &P) {
    let q = queue("stats_count_pending_in_flight_delayed_and_dead");
    for n in 0..4 {
        put(port, &q, n, EnqueueOptions::default().max_attempts(1)).await;
    }
    put(port, &q, 9, EnqueueOptions::default().delayed(LONG)).await;
    let dying = take(port, &q, LONG).await;
    port.nack(&dying, Duration::ZERO).await.unwrap();
    let _held = take(port, &q, LONG).await;
    let _abandoned = take(port, &q, SHORT).await;
    let stats = port.stats(&q).await.unwrap();
    assert_eq!(stats, QueueStats { pending: 1, in_flight: 2, delayed: 1, dead: 1 });
    sleep(PAST_SHORT).await;
    let stats = port.stats(&q).await.unwrap();
    assert_eq!((stats.pending, stats.in_flight), (2, 1), "an expired reservation is pending again: {stats:?}");
}

/// `enqueue` / `reserve_as` carry a typed payload through the queue's codec.
pub async fn typed_payloads_round_trip_through_the_codec<P: JobQueue + ?Sized>(port: &P) {
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Thumbnail {
        image: String,
        sizes: Vec<u32>,
    }
    let q = queue("typed_payloads_round_trip_through_the_codec");
    let sent = Thumbnail { image: "gallery/ünïcode photo.jpg".into(), sizes: vec![64, 256] };
    let id = port.enqueue(&q, &sent, EnqueueOptions::default()).await.unwrap();
    let job = port.reserve_as::<Thumbnail>(&q, LONG).await.unwrap().unwrap();
    assert_eq!((job.job.id, job.data), (id, sent));
    put(port, &q, 1, EnqueueOptions::default()).await;
    let err = port.reserve_as::<Thumbnail>(&q, LONG).await.unwrap_err();
    assert!(matches!(err, KvError::Codec(_)), "bytes not made by a codec are a Codec error: {err:?}");
}

/// A zero visibility timeout, zero max attempts or an empty idempotency key are refused before anything is
/// stored.
pub async fn invalid_arguments_are_validation_errors<P: JobQueue + ?Sized>(port: &P) {
    let q = queue("invalid_arguments_are_validation_errors");
    let bad = [EnqueueOptions::default().max_attempts(0), EnqueueOptions::default().idempotency_key("")];
    for options in bad {
        let err = port.enqueue_bytes(&q, body(1), options.clone()).await.unwrap_err();
        assert!(matches!(err, KvError::Validation(_)), "{options:?}: {err:?}");
    }
    assert_eq!(port.stats(&q).await.unwrap(), QueueStats::default(), "nothing was stored");
    put(port, &q, 1, EnqueueOptions::default()).await;
    let err = port.reserve(&q, Duration::ZERO).await.unwrap_err();
    assert!(matches!(err, KvError::Validation(_)), "zero visibility timeout: {err:?}");
    assert_eq!(take(port, &q, LONG).await.attempt, 1, "the refused reserve took nothing");
}

/// A payload over [`cpc_ports::MAX_PAYLOAD_BYTES`] is [`KvError::TooLarge`] and enqueues nothing.
pub async fn an_oversized_payload_is_too_large_and_nothing_is_enqueued<P: JobQueue + ?Sized>(port: &P) {
    let q = queue("an_oversized_payload_is_too_large_and_nothing_is_enqueued");
    let oversized = bytes::Bytes::from(vec![7u8; cpc_ports::MAX_PAYLOAD_BYTES + 1]);
    match port.enqueue_bytes(&q, oversized, EnqueueOptions::default()).await {
        Err(KvError::TooLarge { size, max }) => {
            assert_eq!((size, max), (cpc_ports::MAX_PAYLOAD_BYTES + 1, cpc_ports::MAX_PAYLOAD_BYTES));
        }
        other => panic!("an oversized payload must be TooLarge, got {other:?}"),
    }
    assert_empty(port, &q, "a refused enqueue stores nothing").await;
}

/// `reserve_many` hands out at most `max` jobs, in enqueue order, each reserved as `reserve` would: attempt 1,
/// invisible to everyone until its visibility timeout, then redelivered (again in a batch) with attempt 2. `max`
/// zero or an empty queue gives none; a zero visibility timeout is a validation error.
pub async fn reserve_many_takes_at_most_max_jobs_each_reserved_as_by_reserve<P: JobQueue + ?Sized>(port: &P) {
    let q = queue("reserve_many_takes_at_most_max_jobs");
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(put(port, &q, n, EnqueueOptions::default()).await);
    }
    assert!(port.reserve_many(&q, LONG, 0).await.unwrap().is_empty(), "max 0 reserves nothing");
    match port.reserve_many(&q, Duration::ZERO, 2).await {
        Err(KvError::Validation(_)) => {}
        other => panic!("a zero visibility timeout must be a validation error, got {other:?}"),
    }
    let first = port.reserve_many(&q, SHORT, 3).await.unwrap();
    let got: Vec<_> = first.iter().map(|j| (j.id.clone(), j.payload.clone(), j.attempt, j.queue.clone())).collect();
    let want: Vec<_> = (0..3).map(|n| (ids[n].clone(), body(n as u32), 1, q.clone())).collect();
    assert_eq!(got, want, "the first three, in order, attempt 1");
    let rest = port.reserve_many(&q, LONG, 10).await.unwrap();
    assert_eq!(rest.iter().map(|j| &j.id).collect::<Vec<_>>(), ids[3..].iter().collect::<Vec<_>>(), "the last two");
    assert!(port.reserve_many(&q, LONG, 10).await.unwrap().is_empty(), "every job is reserved");
    assert_empty(port, &q, "reserve_many's jobs are reserved for everyone").await;
    sleep(PAST_SHORT).await;
    let again = port.reserve_many(&q, LONG, 10).await.unwrap();
    let redelivered: Vec<_> = again.iter().map(|j| (&j.id, j.attempt)).collect();
    assert_eq!(redelivered, ids[..3].iter().map(|id| (id, 2)).collect::<Vec<_>>(), "redelivered with attempt 2");
    for job in again.iter().chain(&rest) {
        port.ack(job).await.unwrap();
    }
    assert_empty(port, &q, "all five were acked").await;
}

/// `ack_many` gives one result per job, in order: the current reservations are acked (never redelivered), while a
/// job already acked, a stale receipt (its job was redelivered) and a job never enqueued are `NotFound` without
/// stopping the others. An empty batch gives no result.
pub async fn ack_many_acks_current_reservations_and_reports_the_rest_not_found<P: JobQueue + ?Sized>(port: &P) {
    let q = queue("ack_many_acks_current_reservations");
    assert!(port.ack_many(&[]).await.is_empty());
    let stale_id = put(port, &q, 0, EnqueueOptions::default()).await;
    let stale = take(port, &q, SHORT).await;
    assert_eq!(stale.id, stale_id);
    sleep(PAST_SHORT).await;
    let current = take(port, &q, LONG).await;
    assert_eq!((&current.id, current.attempt), (&stale_id, 2), "redelivered");
    for n in 1..4 {
        put(port, &q, n, EnqueueOptions::default()).await;
    }
    let batch = port.reserve_many(&q, LONG, 3).await.unwrap();
    assert_eq!(batch.len(), 3);
    port.ack(&batch[0]).await.unwrap();
    let mut never = batch[1].clone();
    never.id = JobId::new("never-enqueued");
    let jobs = [batch[0].clone(), stale, batch[1].clone(), never, batch[2].clone()];
    let results = port.ack_many(&jobs).await;
    assert_eq!(results.len(), 5, "one result per job: {results:?}");
    let ok: Vec<bool> = results.iter().map(Result::is_ok).collect();
    assert_eq!(ok, vec![false, false, true, false, true], "{results:?}");
    for (i, result) in results.iter().enumerate() {
        if let Err(e) = result {
            assert!(matches!(e, KvError::NotFound { .. }), "job {i} must be NotFound, got {e:?}");
        }
    }
    port.ack(&current).await.expect("the stale receipt left the current reservation alone");
    assert_empty(port, &q, "every job was acked").await;
}

/// `enqueue_many_bytes` stores a batch as `enqueue_bytes` would store each job, in order: one id per job, in the
/// batch's order, each job with its own payload and options (a delayed job waits its delay, max attempts are
/// kept); an empty batch stores nothing and returns no id. The typed `enqueue_many` encodes with the codec, and
/// refuses an idempotency key shared by the whole batch.
pub async fn enqueue_many_stores_the_batch_in_order_and_returns_its_ids<P: JobQueue + ?Sized>(port: &P) {
    let q = queue("enqueue_many_stores_the_batch_in_order");
    assert_eq!(port.enqueue_many_bytes(&q, Vec::new()).await.unwrap(), Vec::<JobId>::new(), "empty batch");
    assert_eq!(port.stats(&q).await.unwrap(), QueueStats::default(), "an empty batch stores nothing");
    let mut batch: Vec<NewJob> = (0..8).map(|n| NewJob::new(body(n))).collect();
    batch[3].options = EnqueueOptions::default().delayed(SHORT);
    batch[5].options = EnqueueOptions::default().max_attempts(2);
    let ids = port.enqueue_many_bytes(&q, batch).await.unwrap();
    assert_eq!(ids.len(), 8, "one id per job");
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 8, "every job gets its own id");
    assert_eq!(port.stats(&q).await.unwrap().delayed, 1, "job 3 waits its delay");
    for n in [0, 1, 2, 4, 5, 6, 7] {
        let job = take(port, &q, LONG).await;
        assert_eq!((&job.id, &job.payload, job.attempt), (&ids[n], &body(n as u32), 1), "job {n} out of order");
        assert_eq!(job.max_attempts, if n == 5 { 2 } else { cpc_ports::job_queue::DEFAULT_MAX_ATTEMPTS });
        port.ack(&job).await.unwrap();
    }
    assert_empty(port, &q, "job 3 is delayed").await;
    sleep(PAST_SHORT).await;
    let late = take(port, &q, LONG).await;
    assert_eq!((&late.id, &late.payload), (&ids[3], &body(3)), "the delayed job after its delay");
    port.ack(&late).await.unwrap();

    let typed = port.enqueue_many(&q, &[10_u32, 11, 12], EnqueueOptions::default()).await.unwrap();
    for (n, id) in (10_u32..).zip(&typed) {
        let job = port.reserve_as::<u32>(&q, LONG).await.unwrap().expect("a typed job");
        assert_eq!((&job.job.id, job.data), (id, n), "typed jobs in order, decoded");
        port.ack(&job.job).await.unwrap();
    }
    let shared = EnqueueOptions::default().idempotency_key("one-key-for-all");
    match port.enqueue_many(&q, &[1_u32, 2], shared).await {
        Err(KvError::Validation(e)) => assert_eq!(e.field, "idempotency_key"),
        other => panic!("a key shared by a typed batch must be a validation error, got {other:?}"),
    }
    assert_empty(port, &q, "the refused typed batch stored nothing").await;
}

/// In a batch, a job whose idempotency key was used before (by an earlier enqueue, or by an earlier job of the same
/// batch) stores nothing and gets the earlier job's id; the others are stored, in order.
pub async fn enqueue_many_honours_idempotency_keys_inside_the_batch_and_across<P: JobQueue + ?Sized>(port: &P) {
    let q = queue("enqueue_many_honours_idempotency_keys");
    let keyed = |n: u32, key: &str| NewJob::new(body(n)).with_options(EnqueueOptions::default().idempotency_key(key));
    let first = put(port, &q, 1, EnqueueOptions::default().idempotency_key("a")).await;
    let batch = vec![keyed(10, "a"), NewJob::new(body(11)), keyed(12, "b"), keyed(13, "b"), keyed(14, "c")];
    let ids = port.enqueue_many_bytes(&q, batch).await.unwrap();
    assert_eq!(ids.len(), 5, "one id per job, repeats included");
    assert_eq!(ids[0], first, "key `a` was used by an earlier enqueue");
    assert_eq!(ids[3], ids[2], "key `b` repeated inside the batch gives the first job's id");
    let new: HashSet<_> = [&first, &ids[1], &ids[2], &ids[4]].into_iter().collect();
    assert_eq!(new.len(), 4, "the other jobs are new: {ids:?}");
    assert_eq!(port.stats(&q).await.unwrap().pending, 4, "the two repeats stored nothing");
    for (id, n) in [(&first, 1), (&ids[1], 11), (&ids[2], 12), (&ids[4], 14)] {
        let job = take(port, &q, LONG).await;
        assert_eq!((&job.id, &job.payload), (id, &body(n)), "the first payload of each key, in order");
        port.ack(&job).await.unwrap();
    }
    assert_empty(port, &q, "only four jobs were stored").await;
    let again = port.enqueue_many_bytes(&q, vec![keyed(20, "c"), keyed(21, "b")]).await.unwrap();
    assert_eq!(again, vec![ids[4].clone(), ids[2].clone()], "the batch's keys are remembered after their jobs");
    assert_empty(port, &q, "a batch of known keys stores nothing").await;
}

/// Every job of a batch is checked before any is stored: one invalid option is a [`KvError::Validation`] naming
/// the job (`jobs[2].max_attempts`), one oversized payload [`KvError::TooLarge`], and then no job of the batch is
/// stored, nor its idempotency keys claimed.
pub async fn a_batch_with_one_invalid_job_stores_nothing<P: JobQueue + ?Sized>(port: &P) {
    let q = queue("a_batch_with_one_invalid_job_stores_nothing");
    let keyed = NewJob::new(body(1)).with_options(EnqueueOptions::default().idempotency_key("k"));
    let bad_options = [
        (EnqueueOptions::default().max_attempts(0), "jobs[2].max_attempts"),
        (EnqueueOptions::default().idempotency_key(""), "jobs[2].idempotency_key"),
    ];
    for (options, field) in bad_options {
        let batch = vec![NewJob::new(body(0)), keyed.clone(), NewJob::new(body(2)).with_options(options)];
        match port.enqueue_many_bytes(&q, batch).await {
            Err(KvError::Validation(e)) => assert_eq!(e.field, field),
            other => panic!("an invalid job must be a validation error naming {field}, got {other:?}"),
        }
    }
    let oversized = NewJob::new(vec![7u8; cpc_ports::MAX_PAYLOAD_BYTES + 1]);
    match port.enqueue_many_bytes(&q, vec![NewJob::new(body(0)), keyed.clone(), oversized]).await {
        Err(KvError::TooLarge { size, .. }) => assert_eq!(size, cpc_ports::MAX_PAYLOAD_BYTES + 1),
        other => panic!("an oversized payload must be TooLarge, got {other:?}"),
    }
    assert_eq!(port.stats(&q).await.unwrap(), QueueStats::default(), "no job of a refused batch was stored");
    assert_empty(port, &q, "no job of a refused batch was stored").await;
    let stored = port.enqueue_many_bytes(&q, vec![keyed]).await.unwrap();
    let job = take(port, &q, LONG).await;
    assert_eq!((&job.id, &job.payload), (&stored[0], &body(1)), "the refused batches never claimed key `k`");
    port.ack(&job).await.unwrap();
}

/// The retention cases: run on a queue built with [`RETENTION`] (see
/// [`job_queue_retention_contract!`](crate::job_queue_retention_contract)).
pub mod retention {
    use super::*;

    /// Kills `n` jobs of `q` (one attempt each, nacked), returning their ids in death order.
    async fn kill<P: JobQueue + ?Sized>(port: &P, q: &QueueName, first: u32, n: u32) -> Vec<JobId> {
        let mut ids = Vec::new();
        for k in first..first + n {
            put(port, q, k, EnqueueOptions::default().max_attempts(1)).await;
            let job = take(port, q, LONG).await;
            assert_eq!(port.nack(&job, Duration::ZERO).await.unwrap(), NackOutcome::Dead);
            ids.push(job.id);
        }
        ids
    }

    fn ids(dead: &[cpc_ports::DeadJob]) -> Vec<&JobId> {
        dead.iter().map(|d| &d.id).collect()
    }

    /// A dead letter older than the retention is no longer listed, counted or requeued, while a younger one is.
    pub async fn dead_letters_past_the_retention_are_neither_listed_nor_counted_nor_requeued<P: JobQueue + ?Sized>(
        port: &P,
    ) {
        let q = queue("dead_letters_past_the_retention");
        let old = kill(port, &q, 0, 2).await;
        assert_eq!(ids(&port.dead_letters(&q, 10).await.unwrap()), old.iter().collect::<Vec<_>>());
        sleep(Duration::from_millis(400)).await;
        let young = kill(port, &q, 10, 1).await;
        sleep(Duration::from_millis(350)).await; // the first two are now 750+ ms dead, the third 350 ms
        assert_eq!(ids(&port.dead_letters(&q, 10).await.unwrap()), young.iter().collect::<Vec<_>>(), "past 600 ms");
        assert_eq!(port.stats(&q).await.unwrap().dead, 1, "only the young dead letter counts");
        assert_not_found(port.requeue_dead(&q, &old[0]).await, "requeuing an expired dead letter");
        port.requeue_dead(&q, &young[0]).await.unwrap();
        let again = take(port, &q, LONG).await;
        assert_eq!((&again.id, again.attempt), (&young[0], 1), "the young one is requeued with fresh attempts");
        port.ack(&again).await.unwrap();
        assert_eq!(port.stats(&q).await.unwrap(), QueueStats::default(), "nothing is left");
    }

    /// With at most 3 dead letters, the fourth and fifth deaths drop the two oldest; the rest keep their order.
    pub async fn past_the_count_bound_the_oldest_dead_letters_are_dropped<P: JobQueue + ?Sized>(port: &P) {
        let q = queue("past_the_count_bound");
        let dead = kill(port, &q, 0, 5).await;
        let listed = port.dead_letters(&q, 10).await.unwrap();
        assert_eq!(ids(&listed), dead[2..].iter().collect::<Vec<_>>(), "the newest three, earliest death first");
        assert_eq!(listed[0].payload, body(2), "each keeps its payload");
        assert_eq!(port.stats(&q).await.unwrap().dead, 3);
        assert_not_found(port.requeue_dead(&q, &dead[0]).await, "requeuing a dropped dead letter");
    }

    /// Reserved, retried and delayed jobs are not dead letters: they outlive the retention, deaths past the count
    /// bound do not touch them, and they are worked.
    pub async fn jobs_still_to_be_worked_outlive_the_retention<P: JobQueue + ?Sized>(port: &P) {
        let q = queue("jobs_still_to_be_worked_outlive");
        let backoff = Duration::from_millis(1500);
        put(port, &q, 1, EnqueueOptions::default()).await;
        let held = take(port, &q, LONG).await;
        let retried = put(port, &q, 2, EnqueueOptions::default()).await;
        let failing = take(port, &q, LONG).await;
        assert_eq!(failing.id, retried);
        assert_eq!(port.nack(&failing, backoff).await.unwrap(), NackOutcome::Retrying);
        let delayed = put(port, &q, 3, EnqueueOptions::default().delayed(backoff)).await;
        sleep(Duration::from_millis(700)).await; // past the retention
        kill(port, &q, 10, 4).await; // deaths prune, past the count bound too
        assert_eq!(port.stats(&q).await.unwrap().dead, 3, "the count bound holds");
        sleep(Duration::from_millis(1000)).await; // the retried and the delayed job are due
        let mut worked = Vec::new();
        while let Some(job) = port.reserve(&q, LONG).await.unwrap() {
            worked.push(job.id.clone());
            port.ack(&job).await.unwrap();
        }
        worked.sort();
        let mut expected = vec![retried, delayed];
        expected.sort();
        assert_eq!(worked, expected, "the retried and the delayed job are still there");
        port.ack(&held).await.expect("the reservation held all along is still current");
        assert_eq!(port.stats(&q).await.unwrap(), QueueStats::default(), "the dead letters expired in turn");
    }
}
