//! The worker loop against misbehaving handlers, on the in-memory queue, Redis and PostgreSQL: a handler that
//! panics fails its attempt (retried, then dead-lettered) and its slot keeps serving (one slot, `concurrency(1)`,
//! so "the slot survived" cannot be another slot doing the work); a handler that runs three times its visibility
//! timeout keeps its reservation (a second slot stands ready to take a redelivery) and is not run twice; a
//! prefetched job redelivered to another consumer while it waited is dropped, not run twice.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(all(feature = "worker", feature = "memory", feature = "redis", feature = "diesel"))]

#[allow(dead_code)]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use cpc_adapters::diesel::migrations::{self, MigrationTarget};
use cpc_adapters::memory::InMemoryJobQueue;
use cpc_adapters::pool::{PoolConfig, PoolFactory};
use cpc_adapters::postgres::{PgConfig, PgJobQueue};
use cpc_adapters::redis::RedisJobQueue;
use cpc_adapters::worker::{Worker, WorkerConfig, WorkerReport};
use cpc_ports::{EnqueueOptions, JobQueue, QueueName, QueueStats};
use cpc_test_servers::TestDatabase;

/// A queue on one of the three backends; `_db` keeps a PostgreSQL database alive for the test.
struct Backend {
    queue: Arc<dyn JobQueue>,
    _db: Option<TestDatabase>,
}

async fn memory() -> Backend {
    Backend { queue: Arc::new(InMemoryJobQueue::new()), _db: None }
}

async fn redis() -> Backend {
    Backend { queue: Arc::new(RedisJobQueue::new(common::redis::shared_manager("worker-robustness").await)), _db: None }
}

async fn postgres() -> Backend {
    let db = TestDatabase::create().await;
    let config = PgConfig::from_url(db.url()).unwrap();
    migrations::run_pending(&MigrationTarget::Postgres(config.clone())).await.unwrap();
    let pool = PoolFactory::create_postgres_pool(&config, &PoolConfig::default().max_connections(8)).await.unwrap();
    Backend { queue: Arc::new(PgJobQueue::new(pool)), _db: Some(db) }
}

fn unique_queue() -> QueueName {
    QueueName::new(format!("robust-{}", uuid::Uuid::new_v4().simple())).unwrap()
}

/// One slot, fast polling, 20 ms backoff.
fn one_slot(queue: &QueueName) -> WorkerConfig {
    WorkerConfig::new(queue.clone())
        .concurrency(1)
        .poll_interval(Duration::from_millis(5))
        .backoff(Duration::from_millis(20), Duration::from_millis(20))
}

/// Waits (at most 10 s) until nothing is pending, in flight or delayed, and returns the stats.
async fn drained(queue: &dyn JobQueue, q: &QueueName) -> QueueStats {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let s = queue.stats(q).await.unwrap();
            if s.pending + s.in_flight + s.delayed == 0 {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the queue drains within 10 s")
}

/// `first` panics on its first attempt only; `later` is enqueued after it. Both end acked by the same slot.
async fn a_panic_is_a_failed_attempt_and_the_slot_keeps_serving(backend: Backend) {
    let (queue, q) = (backend.queue.clone(), unique_queue());
    queue.enqueue_bytes(&q, "first".into(), EnqueueOptions::default().max_attempts(3)).await.unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let seen = calls.clone();
    let worker = Worker::spawn(queue.clone(), one_slot(&q), move |job| {
        seen.fetch_add(1, Ordering::SeqCst);
        async move {
            if job.payload.as_ref() == b"first" && job.attempt == 1 {
                panic!("thumbnailer bug on {}", job.id);
            }
            Ok(())
        }
    });
    // Enqueued once the panic has happened (or is about to): the slot must still be there to take it.
    tokio::time::timeout(Duration::from_secs(10), async {
        while worker.report().panicked == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the handler panicked within 10 s");
    queue.enqueue_bytes(&q, "later".into(), EnqueueOptions::default()).await.unwrap();
    let stats = drained(&*queue, &q).await;
    let report = worker.shutdown(Duration::from_secs(5)).await;
    assert_eq!(stats.dead, 0, "nothing was dead-lettered: {stats:?}");
    assert_eq!(
        report,
        WorkerReport { processed: 2, failed: 1, panicked: 1, retried: 1, ..WorkerReport::default() },
        "the panic was one failed attempt, retried; both jobs were then done by the one slot"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 3, "first twice (panic, success), later once");
}

/// A handler that always panics: the job is dead-lettered after its max attempts, and the slot still serves.
async fn a_job_that_always_panics_is_dead_lettered(backend: Backend) {
    let (queue, q) = (backend.queue.clone(), unique_queue());
    queue.enqueue_bytes(&q, "doomed".into(), EnqueueOptions::default().max_attempts(3)).await.unwrap();
    let worker = Worker::spawn(queue.clone(), one_slot(&q), |job| async move {
        if job.payload.as_ref() == b"doomed" {
            panic!("always");
        }
        Ok(())
    });
    let stats = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let s = queue.stats(&q).await.unwrap();
            if s.dead == 1 {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the job is dead-lettered within 10 s");
    assert_eq!(stats.pending + stats.in_flight + stats.delayed, 0, "{stats:?}");
    queue.enqueue_bytes(&q, "fine".into(), EnqueueOptions::default()).await.unwrap();
    drained(&*queue, &q).await;
    let report = worker.shutdown(Duration::from_secs(5)).await;
    assert_eq!(
        report,
        WorkerReport { processed: 1, failed: 3, panicked: 3, retried: 2, dead: 1, ..WorkerReport::default() }
    );
    let dead = queue.dead_letters(&q, 10).await.unwrap();
    assert_eq!((dead.len(), dead[0].payload.as_ref(), dead[0].attempts), (1, &b"doomed"[..], 3));
}

/// One job whose handler takes 900 ms under a 300 ms visibility timeout, two slots: the idle slot would take a
/// redelivery, yet the handler runs once and the job is acked once.
async fn a_slow_handler_keeps_its_reservation(backend: Backend) {
    let (queue, q) = (backend.queue.clone(), unique_queue());
    queue.enqueue_bytes(&q, "slow".into(), EnqueueOptions::default()).await.unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let seen = calls.clone();
    let config = one_slot(&q).concurrency(2).visibility_timeout(Duration::from_millis(300));
    let worker = Worker::spawn(queue.clone(), config, move |_job| {
        seen.fetch_add(1, Ordering::SeqCst);
        async move {
            tokio::time::sleep(Duration::from_millis(900)).await;
            Ok(())
        }
    });
    let stats = drained(&*queue, &q).await;
    let report = worker.shutdown(Duration::from_secs(5)).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the job was not redelivered while its handler ran");
    assert_eq!(report, WorkerReport { processed: 1, ..WorkerReport::default() }, "acked once, no queue error");
    assert_eq!(stats, QueueStats::default());
}

/// With a prefetch, a job that waited behind a slow handler past its visibility timeout and was redelivered to
/// another consumer is dropped when its turn comes (its reservation is no longer this worker's), not run twice.
async fn a_prefetched_job_redelivered_elsewhere_is_dropped(backend: Backend) {
    let (queue, q) = (backend.queue.clone(), unique_queue());
    for name in ["first", "second"] {
        queue.enqueue_bytes(&q, name.into(), EnqueueOptions::default()).await.unwrap();
    }
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    let config = one_slot(&q).prefetch(1).visibility_timeout(Duration::from_millis(300));
    let worker = Worker::spawn(queue.clone(), config, move |job| {
        s.lock().unwrap().push(job.payload.to_vec());
        async move {
            tokio::time::sleep(Duration::from_millis(800)).await;
            Ok(())
        }
    });
    // "second" waits, prefetched, behind "first"'s 800 ms handler; its 300 ms reservation runs out.
    let other = tokio::time::timeout(Duration::from_secs(5), async {
        while queue.stats(&q).await.unwrap().in_flight < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        loop {
            if let Some(job) = queue.reserve(&q, Duration::from_secs(30)).await.unwrap() {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the prefetched job is redelivered once its reservation runs out");
    assert_eq!((other.payload.as_ref(), other.attempt), (&b"second"[..], 2));
    tokio::time::sleep(Duration::from_millis(900)).await;
    let report = worker.shutdown(Duration::from_secs(5)).await;
    assert_eq!(seen.lock().unwrap().clone(), vec![b"first".to_vec()], "the worker did not run the second job");
    assert_eq!((report.processed, report.failed, report.released), (1, 0, 0), "{report:?}");
    assert!(report.queue_errors >= 1, "the lost reservation is counted: {report:?}");
    queue.ack(&other).await.expect("the other consumer still holds the second job");
    assert_eq!(drained(&*queue, &q).await, QueueStats::default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_a_prefetched_job_redelivered_elsewhere_is_dropped() {
    a_prefetched_job_redelivered_elsewhere_is_dropped(memory().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_a_prefetched_job_redelivered_elsewhere_is_dropped() {
    a_prefetched_job_redelivered_elsewhere_is_dropped(redis().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_prefetched_job_redelivered_elsewhere_is_dropped() {
    a_prefetched_job_redelivered_elsewhere_is_dropped(postgres().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_a_handler_slower_than_its_visibility_timeout_runs_once() {
    a_slow_handler_keeps_its_reservation(memory().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_a_handler_slower_than_its_visibility_timeout_runs_once() {
    a_slow_handler_keeps_its_reservation(redis().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_handler_slower_than_its_visibility_timeout_runs_once() {
    a_slow_handler_keeps_its_reservation(postgres().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_a_panicking_handler_is_retried_and_its_slot_survives() {
    a_panic_is_a_failed_attempt_and_the_slot_keeps_serving(memory().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_a_panicking_handler_is_retried_and_its_slot_survives() {
    a_panic_is_a_failed_attempt_and_the_slot_keeps_serving(redis().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_panicking_handler_is_retried_and_its_slot_survives() {
    a_panic_is_a_failed_attempt_and_the_slot_keeps_serving(postgres().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_a_handler_that_always_panics_ends_in_the_dead_letters() {
    a_job_that_always_panics_is_dead_lettered(memory().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_a_handler_that_always_panics_ends_in_the_dead_letters() {
    a_job_that_always_panics_is_dead_lettered(redis().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_handler_that_always_panics_ends_in_the_dead_letters() {
    a_job_that_always_panics_is_dead_lettered(postgres().await).await;
}
