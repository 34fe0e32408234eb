//! `SqliteJobQueue` on a SQLite file: the `JobQueue` contract (concrete and as `dyn JobQueue`, a fresh migrated
//! database file per case), plus what only a real database file shows: jobs survive a restart, workers on separate
//! connections never take the same job, and bad rows, a missing table or a busy database are typed errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(all(feature = "sqlite-kv", feature = "diesel"))]

#[allow(dead_code)]
mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::harness::DynHarness;
use common::sqlite_kv::pool;
use cpc_adapters::pool::{PoolConfig, PoolFactory};
use cpc_adapters::sqlite::SqliteConfig;
use cpc_adapters::sqlite_kv::SqliteJobQueue;
use cpc_ports::{EnqueueOptions, JobQueue, JobQueueSettings, KvError, QueueName};

type Harness = common::sqlite_kv::Harness<SqliteJobQueue>;

async fn harness() -> Harness {
    harness_with(JobQueueSettings::default()).await
}

async fn harness_with(settings: JobQueueSettings) -> Harness {
    common::sqlite_kv::harness("jobs.db", |pool| SqliteJobQueue::new(pool).with_settings(settings)).await
}

async fn dyn_harness() -> DynHarness<dyn JobQueue, tempfile::TempDir> {
    harness().await.into_dyn(|p| Arc::new(p) as Arc<dyn JobQueue>)
}

mod contract_concrete {
    cpc_testkit::job_queue_contract!(super::harness());
}

mod contract_dyn {
    cpc_testkit::job_queue_contract!(super::dyn_harness());
}

mod retention {
    cpc_testkit::job_queue_retention_contract!(super::harness_with);
}

fn queue() -> QueueName {
    QueueName::new("thumbnails").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_survive_a_restart() {
    let h = harness().await;
    let q = queue();
    let first = h.enqueue_bytes(&q, "photo-1".into(), EnqueueOptions::default()).await.unwrap();
    h.enqueue_bytes(&q, "photo-2".into(), EnqueueOptions::default().idempotency_key("upload-2")).await.unwrap();
    let Harness { port: queue, path, dir: _dir } = h;
    drop(queue); // the only pool on the file: every connection is closed

    let reopened = SqliteJobQueue::new(pool(&path, 2).await);
    let again = reopened
        .enqueue_bytes(&q, "photo-2 again".into(), EnqueueOptions::default().idempotency_key("upload-2"))
        .await
        .unwrap();
    let job = reopened.reserve(&q, Duration::from_secs(30)).await.unwrap().expect("the job outlived the pool");
    assert_eq!((job.id.clone(), job.payload.as_ref(), job.attempt), (first, &b"photo-1"[..], 1));
    reopened.ack(&job).await.unwrap();
    let second = reopened.reserve(&q, Duration::from_secs(30)).await.unwrap().unwrap();
    assert_eq!(second.id, again, "the idempotency key outlived the pool too");
    assert_eq!(second.payload.as_ref(), b"photo-2");
    assert!(reopened.reserve(&q, Duration::from_secs(30)).await.unwrap().is_none(), "nothing was enqueued twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_survives_a_restart_and_is_redelivered_after_its_timeout() {
    let h = harness().await;
    let q = queue();
    h.enqueue_bytes(&q, "job".into(), EnqueueOptions::default()).await.unwrap();
    let held = h.reserve(&q, Duration::from_millis(400)).await.unwrap().unwrap();
    let Harness { port: queue, path, dir: _dir } = h;
    drop(queue); // the worker's process died holding the job

    let reopened = SqliteJobQueue::new(pool(&path, 2).await);
    assert!(reopened.reserve(&q, Duration::from_secs(30)).await.unwrap().is_none(), "still reserved");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let again = reopened.reserve(&q, Duration::from_secs(30)).await.unwrap().unwrap();
    assert_eq!((again.id, again.attempt), (held.id, 2));
}

/// Eight workers, each on its own pool (so its own connections and no shared writer gate: only SQLite's write
/// lock keeps them apart), work 1,000 jobs: every job is worked exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_workers_on_separate_connections_work_every_job_exactly_once() {
    const JOBS: usize = 1_000;
    let h = harness().await;
    let q = queue();
    for n in 0..JOBS {
        h.enqueue_bytes(&q, format!("{n}").into(), EnqueueOptions::default()).await.unwrap();
    }
    let mut workers = Vec::new();
    for _ in 0..8 {
        let worker = SqliteJobQueue::new(pool(&h.path, 1).await);
        let q = q.clone();
        workers.push(tokio::spawn(async move {
            let mut worked = Vec::new();
            while let Some(job) = worker.reserve(&q, Duration::from_secs(600)).await.unwrap() {
                worked.push(String::from_utf8(job.payload.to_vec()).unwrap());
                worker.ack(&job).await.unwrap();
            }
            worked
        }));
    }
    let mut times: HashMap<String, usize> = HashMap::new();
    let mut busy_workers = 0;
    for worker in workers {
        let worked = worker.await.unwrap();
        busy_workers += usize::from(!worked.is_empty());
        for payload in worked {
            *times.entry(payload).or_default() += 1;
        }
    }
    assert_eq!(times.len(), JOBS, "every job was worked");
    assert!(times.values().all(|n| *n == 1), "no job was worked twice");
    assert!(busy_workers > 1, "the workers ran side by side ({busy_workers} did any work)");
    assert_eq!(h.stats(&q).await.unwrap(), Default::default());
}

/// The same idempotency key enqueued at once from eight pools on one file: one job, one id for all.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_enqueued_from_several_connections_at_once_stores_one_job() {
    let h = harness().await;
    let q = queue();
    let mut tasks = Vec::new();
    for n in 0..8 {
        let queue = SqliteJobQueue::new(pool(&h.path, 1).await);
        let q = q.clone();
        tasks.push(tokio::spawn(async move {
            let options = EnqueueOptions::default().idempotency_key("sign-up:ada");
            queue.enqueue_bytes(&q, format!("mail-{n}").into(), options).await.unwrap()
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.unwrap());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "every enqueue returned the one job's id: {ids:?}");
    assert_eq!(h.stats(&q).await.unwrap().pending, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_of_the_wrong_type_is_a_backend_error_and_the_job_stays_due() {
    let h = harness().await;
    let q = queue();
    h.enqueue_bytes(&q, "fine".into(), EnqueueOptions::default()).await.unwrap();
    h.pool().write(|tx| tx.execute("UPDATE cpc_jobs SET payload = 'text, not a blob'", [])).await.unwrap();
    let err = h.reserve(&q, Duration::from_secs(30)).await.unwrap_err();
    assert!(matches!(err, KvError::Backend { backend: "sqlite", .. }), "{err:?}");
    let stats = h.stats(&q).await.unwrap();
    assert_eq!((stats.pending, stats.in_flight), (1, 0), "the failed reserve was rolled back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmigrated_database_is_a_backend_error() {
    let dir = tempfile::tempdir().unwrap();
    let unmigrated = SqliteJobQueue::new(pool(&dir.path().join("empty.db"), 1).await);
    let err = unmigrated.enqueue_bytes(&queue(), "x".into(), EnqueueOptions::default()).await.unwrap_err();
    assert!(matches!(err, KvError::Backend { backend: "sqlite", .. }), "{err:?}");
    let err = unmigrated.stats(&queue()).await.unwrap_err();
    assert!(matches!(err, KvError::Backend { backend: "sqlite", .. }), "{err:?}");
}

/// Another process holding the write lock past `busy_timeout`: the enqueue fails as retryable, nothing is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_lock_held_elsewhere_past_busy_timeout_is_unavailable() {
    let h = harness().await;
    let config = SqliteConfig::file(&h.path).busy_timeout(Duration::from_millis(100));
    let impatient =
        SqliteJobQueue::new(PoolFactory::create_sqlite_pool(&config, &PoolConfig::default()).await.unwrap());
    let blocker = rusqlite::Connection::open(&h.path).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let err = impatient.enqueue_bytes(&queue(), "x".into(), EnqueueOptions::default()).await.unwrap_err();
    assert!(matches!(err, KvError::Unavailable { backend: "sqlite", .. }), "{err:?}");
    assert!(err.is_retryable());
    blocker.execute_batch("ROLLBACK").unwrap();
    assert_eq!(h.stats(&queue()).await.unwrap().pending, 0);
    impatient.enqueue_bytes(&queue(), "x".into(), EnqueueOptions::default()).await.unwrap();
    assert_eq!(h.stats(&queue()).await.unwrap().pending, 1, "the lock released, the same call works");
}
