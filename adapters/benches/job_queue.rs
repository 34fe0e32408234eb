//! Job queue throughput, end to end: `JOBS` jobs enqueued by 16 concurrent producers, then worked by a `Worker`
//! with 16 handlers (a handler that only decodes the payload), on Redis (`REDIS_URL`), on PostgreSQL
//! (`DATABASE_URL`, a fresh database `cpc_bench_jobs`) and in memory for scale. Run:
//!
//! ```sh
//! cargo bench -p cpc-adapters --all-features --bench job_queue
//! ```
//!
//! Prints jobs enqueued per second, jobs worked per second (from the first reservation to the last ack), and the
//! whole run's jobs per second.
//!
//! On Redis it also runs, in the same rounds, the loop an app could write instead with no library
//! (`common/bare_streams.rs`: redis-rs `XADD`, then 16 consumers `XREADGROUP` + `XACK`/`XDEL` on a fresh stream),
//! reading one entry per call and, batched, 16 per call, its producers sending one `XADD` per call or 16 pipelined;
//! ours with producers enqueueing one job per call, or 16 per `enqueue_many` (and then also with the worker
//! prefetching 16 jobs beyond its handlers, `WorkerConfig::prefetch`). [`ROUNDS`] rounds in rotating order,
//! the best figure of each kept, with the ratios ours / bare. `CPC_BENCH_ONLY=redis` runs only that comparison. The figures are
//! printed, not asserted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/bare_streams.rs"]
mod bare_streams;
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cpc_adapters::diesel::migrations::{self, MigrationTarget};
use cpc_adapters::memory::InMemoryJobQueue;
use cpc_adapters::pool::{PoolConfig, PoolFactory};
use cpc_adapters::postgres::{PgConfig, PgJobQueue};
use cpc_adapters::redis::{RedisConfig, RedisJobQueue, RedisManager};
use cpc_adapters::worker::{Worker, WorkerConfig};
use cpc_ports::{EnqueueOptions, JobQueue, JobQueueExt, QueueName};

const JOBS: u64 = 20_000;
const PRODUCERS: u64 = 16;
const HANDLERS: usize = 16;
/// Rounds of the Redis comparison.
const ROUNDS: usize = 3;
/// Entries per `XREADGROUP` of the batched bare loop.
const BARE_BATCH: usize = 16;
/// Jobs per `enqueue_many` of our batched producers, and `XADD`s per pipeline of the pipelined bare producers.
const BATCH: usize = 16;

/// (enqueued per second, worked per second, end to end per second). Producers enqueue one job per call
/// (`batch` 1) or `batch` jobs per `enqueue_many`; the worker reserves `prefetch` jobs ahead of its handlers.
async fn run(queue: Arc<dyn JobQueue>, batch: usize, prefetch: usize) -> (f64, f64, f64) {
    let q = QueueName::new(format!("bench-{}", uuid::Uuid::new_v4().simple())).unwrap();
    let started = Instant::now();
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let (queue, q) = (queue.clone(), q.clone());
            tokio::spawn(async move {
                let mine: Vec<u64> = (p..JOBS).step_by(PRODUCERS as usize).collect();
                for chunk in mine.chunks(batch.max(1)) {
                    if let [i] = chunk {
                        queue.enqueue(&q, i, EnqueueOptions::default()).await.unwrap();
                    } else {
                        queue.enqueue_many(&q, chunk, EnqueueOptions::default()).await.unwrap();
                    }
                }
            })
        })
        .collect();
    for p in producers {
        p.await.unwrap();
    }
    let enqueued_in = started.elapsed();
    let done = Arc::new(AtomicU64::new(0));
    let working = Instant::now();
    let config =
        WorkerConfig::new(q.clone()).concurrency(HANDLERS).prefetch(prefetch).poll_interval(Duration::from_millis(1));
    let counter = done.clone();
    let worker = Worker::spawn(queue.clone(), config, move |job: cpc_ports::ReservedJob| {
        let counter = counter.clone();
        async move {
            let _: u64 = cpc_ports::Codec::json().decode(&job.payload)?;
            counter.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
    });
    while done.load(Ordering::Relaxed) < JOBS {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // The last acks: wait until the queue is empty.
    loop {
        let s = queue.stats(&q).await.unwrap();
        if s.pending + s.in_flight + s.delayed == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let worked_in = working.elapsed();
    let report = worker.shutdown(Duration::from_secs(10)).await;
    assert_eq!(report.failed + report.dead, 0, "{report:?}");
    let jobs = JOBS as f64;
    (jobs / enqueued_in.as_secs_f64(), jobs / worked_in.as_secs_f64(), jobs / started.elapsed().as_secs_f64())
}

/// Ours against the bare Streams loop on Redis, [`ROUNDS`] rounds in rotating order, best of each; prints the table
/// and the ratios.
async fn redis_against_bare(redis_url: &str) {
    let names = [
        "cpc RedisJobQueue + Worker, enqueue one by one",
        "cpc RedisJobQueue + Worker, enqueue_many of 16",
        "cpc RedisJobQueue + Worker prefetching 16, enqueue_many of 16",
        "bare redis-rs, XADD one by one, XREADGROUP COUNT 1",
        "bare redis-rs, XADD one by one, XREADGROUP COUNT 16",
        "bare redis-rs, 16 XADDs pipelined, XREADGROUP COUNT 1",
        "bare redis-rs, 16 XADDs pipelined, XREADGROUP COUNT 16",
    ];
    let mut best = [(0.0, 0.0, 0.0); 7];
    let prefix = format!("cpc-bench-bare-jobs:{}:", uuid::Uuid::new_v4().simple());
    for round in 0..ROUNDS {
        for k in 0..names.len() {
            let i = (k + round) % names.len();
            let (count, pipelined) =
                [(1, 1), (1, 1), (1, 1), (1, 1), (BARE_BATCH, 1), (1, BATCH), (BARE_BATCH, BATCH)][i];
            let rates = match i {
                0 => run(Arc::new(redis_queue(redis_url).await), 1, 0).await,
                1 => run(Arc::new(redis_queue(redis_url).await), BATCH, 0).await,
                2 => run(Arc::new(redis_queue(redis_url).await), BATCH, HANDLERS).await,
                _ => bare_streams::run(redis_url, &prefix, JOBS, PRODUCERS, HANDLERS, count, pipelined).await,
            };
            let b = &mut best[i];
            common::best(&mut b.0, rates.0);
            common::best(&mut b.1, rates.1);
            common::best(&mut b.2, rates.2);
        }
    }
    println!(
        "| Redis, best of {ROUNDS} | jobs | enqueued/s | worked/s | end to end jobs/s | ours one by one / this | \
         ours batched / this |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (name, (enqueued, worked, total)) in names.iter().zip(best) {
        let (one, batched) = (best[0].2 / total, best[1].2 / total);
        println!("| {name} | {JOBS} | {enqueued:.0} | {worked:.0} | {total:.0} | {one:.2}x | {batched:.2}x |");
    }
    println!();
    println!("| ratio | enqueued/s | worked/s | end to end |");
    println!("|---|---:|---:|---:|");
    for (name, ours, bare) in [
        ("ours one by one / bare one by one (COUNT 1)", 0, 3),
        ("ours batched / bare one by one (COUNT 1)", 1, 3),
        ("ours batched, prefetching / bare one by one (COUNT 1)", 2, 3),
        ("ours batched / bare pipelined (COUNT 1)", 1, 5),
        ("ours batched, prefetching / bare pipelined (COUNT 16)", 2, 6),
        ("ours batched / bare pipelined (COUNT 16)", 1, 6),
    ] {
        let (o, b) = (best[ours], best[bare]);
        println!("| {name} | {:.2}x | {:.2}x | {:.2}x |", o.0 / b.0, o.1 / b.1, o.2 / b.2);
    }
    println!();
}

/// A `RedisJobQueue` on a fresh namespace.
async fn redis_queue(redis_url: &str) -> RedisJobQueue {
    let mut config = RedisConfig::parse_url(redis_url, "REDIS_URL").unwrap();
    config.namespace = format!("cpc-bench-jobs:{}:", uuid::Uuid::new_v4().simple());
    RedisJobQueue::new(RedisManager::new(&config).await.expect("Redis"))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !common::started_by_cargo_bench() {
        return;
    }
    let redis_url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    redis_against_bare(&redis_url).await;
    if std::env::var("CPC_BENCH_ONLY").is_ok_and(|v| v == "redis") {
        return;
    }
    let redis = redis_queue(&redis_url).await;

    let pg_url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let server = PgConfig::from_url(&pg_url).unwrap();
    let admin = PoolFactory::create_postgres_pool(&server, &PoolConfig::default().max_connections(1)).await.unwrap();
    admin.get().await.unwrap().batch_execute("DROP DATABASE IF EXISTS cpc_bench_jobs WITH (FORCE)").await.unwrap();
    admin.get().await.unwrap().batch_execute("CREATE DATABASE cpc_bench_jobs").await.unwrap();
    let mut db = server.clone();
    db.database = "cpc_bench_jobs".into();
    migrations::run_pending(&MigrationTarget::Postgres(db.clone())).await.unwrap();
    let pool = PoolFactory::create_postgres_pool(&db, &PoolConfig::default().max_connections(16)).await.unwrap();
    let pg = PgJobQueue::new(pool);

    println!("| backend | jobs | enqueued/s (16 producers) | worked/s (16 handlers) | end to end jobs/s |");
    println!("|---|---:|---:|---:|---:|");
    for (name, queue) in [
        ("redis", Arc::new(redis) as Arc<dyn JobQueue>),
        ("postgres", Arc::new(pg) as Arc<dyn JobQueue>),
        ("in-memory", Arc::new(InMemoryJobQueue::new()) as Arc<dyn JobQueue>),
    ] {
        let (enqueued, worked, total) = run(queue, 1, 0).await;
        println!("| {name} | {JOBS} | {enqueued:.0} | {worked:.0} | {total:.0} |");
    }
    admin.get().await.unwrap().batch_execute("DROP DATABASE IF EXISTS cpc_bench_jobs WITH (FORCE)").await.unwrap();
}
