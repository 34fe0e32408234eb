//! At-least-once delivery when a worker dies: a worker is killed mid-job (its tasks aborted: no ack, no nack,
//! exactly what a crashed process leaves behind), a second worker takes over, and every job is processed at least
//! once; the duplicates (jobs the dead worker finished but never acked) are counted and bounded by the jobs it had
//! in flight. Run on the in-memory queue, Redis (one server and a cluster) and PostgreSQL, with a few thousand jobs; set
//! `CPC_RELIABILITY_JOBS` (e.g. 100000) for the figure in `docs/RELIABILITY.md`.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(all(feature = "worker", feature = "memory", feature = "redis", feature = "diesel"))]

#[allow(dead_code)]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use cpc_adapters::diesel::migrations::{self, MigrationTarget};
use cpc_adapters::memory::InMemoryJobQueue;
use cpc_adapters::pool::{PoolConfig, PoolFactory};
use cpc_adapters::postgres::{PgConfig, PgJobQueue};
use cpc_adapters::redis::{RedisConfig, RedisJobQueue, RedisManager};
use cpc_adapters::worker::{Worker, WorkerConfig};
use cpc_ports::{EnqueueOptions, JobQueue, JobQueueExt, QueueName};
use cpc_test_servers::{PrivateRedisCluster, TestDatabase};

const HANDLERS: usize = 8;

/// `CPC_RELIABILITY_JOBS` if set, else `default`.
fn jobs_or(default: usize) -> usize {
    match std::env::var("CPC_RELIABILITY_JOBS") {
        Ok(n) => n.parse().unwrap_or_else(|_| panic!("CPC_RELIABILITY_JOBS={n:?} is not a number")),
        Err(_) => default,
    }
}

/// What a run saw.
#[derive(Debug)]
struct Tally {
    jobs: usize,
    processed: usize,
    duplicates: u64,
    redelivered: u32,
    /// Enqueueing every job, one call after another.
    enqueue: Duration,
    /// From the first worker's start until the queue was empty.
    work: Duration,
}

async fn kill_a_worker_mid_run(queue: Arc<dyn JobQueue>, jobs: usize) -> Tally {
    let q = QueueName::new(format!("reliability-{}", uuid::Uuid::new_v4().simple())).unwrap();
    let enqueue_started = Instant::now();
    for i in 0..jobs {
        queue.enqueue(&q, &(i as u32), EnqueueOptions::default().max_attempts(20)).await.unwrap();
    }
    let seen: Arc<Vec<AtomicU32>> = Arc::new((0..jobs).map(|_| AtomicU32::new(0)).collect());
    let redelivered = Arc::new(AtomicU32::new(0));
    let inside = Arc::new(AtomicU32::new(0));
    let config = WorkerConfig::new(q.clone())
        .concurrency(HANDLERS)
        .visibility_timeout(Duration::from_millis(500))
        .poll_interval(Duration::from_millis(5));
    let handler = |seen: Arc<Vec<AtomicU32>>, redelivered: Arc<AtomicU32>, inside: Arc<AtomicU32>| {
        move |job: cpc_ports::ReservedJob| {
            let (seen, redelivered, inside) = (seen.clone(), redelivered.clone(), inside.clone());
            async move {
                if job.attempt > 1 {
                    redelivered.fetch_add(1, Ordering::SeqCst);
                }
                inside.fetch_add(1, Ordering::SeqCst);
                let i: u32 = cpc_ports::Codec::json().decode(&job.payload)?;
                tokio::time::sleep(Duration::from_millis(3)).await;
                seen[i as usize].fetch_add(1, Ordering::SeqCst);
                // The kill can land here: processed, not yet acked.
                tokio::task::yield_now().await;
                inside.fetch_sub(1, Ordering::SeqCst);
                Ok(())
            }
        }
    };
    let enqueue = enqueue_started.elapsed();
    let work_started = Instant::now();
    let doomed =
        Worker::spawn(queue.clone(), config.clone(), handler(seen.clone(), redelivered.clone(), inside.clone()));
    let total = |seen: &[AtomicU32]| seen.iter().map(|c| u64::from(c.load(Ordering::SeqCst))).sum::<u64>();
    // The kill lands after a third of the jobs, while at least half the handlers are inside a job.
    while total(&seen) < (jobs / 3) as u64 || inside.load(Ordering::SeqCst) < (HANDLERS / 2) as u32 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    drop(doomed); // aborts its tasks mid-job: nothing acked or nacked from here on
    inside.store(0, Ordering::SeqCst);
    let survivor = Worker::spawn(queue.clone(), config, handler(seen.clone(), redelivered.clone(), inside.clone()));
    // Bounds a hang, not the speed: generous enough for PostgreSQL on a loaded 2-core machine (about 500 jobs/s
    // measured while two builds ran beside it), so a figure run of 100,000 jobs is not cut short.
    let deadline = Instant::now() + Duration::from_secs(60) + Duration::from_millis(5 * jobs as u64);
    loop {
        let s = queue.stats(&q).await.unwrap();
        if s.pending + s.in_flight + s.delayed == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the survivor did not finish: {s:?}");
        // `stats` counts the queue's rows: polled gently, so the watching does not slow the workers it watches.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let work = work_started.elapsed();
    let report = survivor.shutdown(Duration::from_secs(10)).await;
    assert_eq!(report.failed + report.dead + report.queue_errors, 0, "{report:?}");
    assert!(queue.dead_letters(&q, 1).await.unwrap().is_empty());
    Tally {
        jobs,
        processed: seen.iter().filter(|c| c.load(Ordering::SeqCst) > 0).count(),
        duplicates: total(&seen) - jobs as u64,
        redelivered: redelivered.load(Ordering::SeqCst),
        enqueue,
        work,
    }
}

fn check(tally: Tally) {
    eprintln!("{tally:?}");
    let rate = tally.jobs as f64 / tally.work.as_secs_f64().max(1e-9);
    eprintln!("{} jobs enqueued in {:.1?}, worked in {:.1?} ({rate:.0} jobs/s)", tally.jobs, tally.enqueue, tally.work);
    assert_eq!(tally.processed, tally.jobs, "every job is processed at least once: {tally:?}");
    assert!(tally.redelivered >= 1, "the kill left jobs in flight, redelivered to the survivor: {tally:?}");
    assert!(tally.duplicates <= HANDLERS as u64, "only jobs in flight at the kill may run twice: {tally:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_no_job_is_lost_when_a_worker_dies_mid_job() {
    check(kill_a_worker_mid_run(Arc::new(InMemoryJobQueue::new()), jobs_or(3_000)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_no_job_is_lost_when_a_worker_dies_mid_job() {
    let queue = RedisJobQueue::new(common::redis::shared_manager("reliability").await);
    check(kill_a_worker_mid_run(Arc::new(queue), jobs_or(3_000)).await);
}

/// The same run on a Redis Cluster of 3 masters and 3 replicas started by the harness: the queue's keys share a
/// hash tag, so its scripts run on one slot, and the takeover works as on one server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_no_job_is_lost_when_a_worker_dies_mid_job() {
    let cluster = PrivateRedisCluster::start().await;
    let namespace = format!("reliability:{}:", uuid::Uuid::new_v4().simple());
    let config = RedisConfig::from_lookup(|name| match name {
        "REDIS_CLUSTER_URLS" => Some(cluster.urls()),
        "REDIS_NAMESPACE" => Some(namespace.clone()),
        _ => None,
    })
    .unwrap();
    let manager = RedisManager::new(&config).await.unwrap();
    check(kill_a_worker_mid_run(Arc::new(RedisJobQueue::new(manager)), jobs_or(3_000)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_no_job_is_lost_when_a_worker_dies_mid_job() {
    let db = TestDatabase::create().await;
    let config = PgConfig::from_url(db.url()).unwrap();
    migrations::run_pending(&MigrationTarget::Postgres(config.clone())).await.unwrap();
    let pool = PoolFactory::create_postgres_pool(&config, &PoolConfig::default().max_connections(16)).await.unwrap();
    check(kill_a_worker_mid_run(Arc::new(PgJobQueue::new(pool)), jobs_or(1_000)).await);
}
