//! `PgJobQueue` on PostgreSQL: the `JobQueue` contract (concrete and as `dyn JobQueue`, a fresh migrated database
//! per case), plus what only a real server shows: workers on separate connections skip each other's locked rows,
//! and the rows left behind.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "diesel")]

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use cpc_adapters::diesel::migrations::{self, MigrationTarget};
use cpc_adapters::pool::{PoolConfig, PoolFactory};
use cpc_adapters::postgres::{PgConfig, PgJobQueue};
use cpc_ports::{EnqueueOptions, JobQueue, JobQueueSettings, QueueName};
use cpc_test_servers::TestDatabase;

/// A migrated database with a job queue on it; derefs to the queue. The database is dropped last.
struct Harness {
    queue: PgJobQueue,
    db: TestDatabase,
}

impl Deref for Harness {
    type Target = PgJobQueue;
    fn deref(&self) -> &PgJobQueue {
        &self.queue
    }
}

async fn harness() -> Harness {
    harness_with(JobQueueSettings::default()).await
}

async fn harness_with(settings: JobQueueSettings) -> Harness {
    let db = TestDatabase::create().await;
    let config = PgConfig::from_url(db.url()).unwrap();
    migrations::run_pending(&MigrationTarget::Postgres(config.clone())).await.unwrap();
    let pool = PoolFactory::create_postgres_pool(&config, &PoolConfig::default().max_connections(16)).await.unwrap();
    Harness { queue: PgJobQueue::new(pool).with_settings(settings), db }
}

/// `Arc<dyn JobQueue>` that keeps its database alive.
struct DynHarness {
    queue: Arc<dyn JobQueue>,
    _db: TestDatabase,
}

impl Deref for DynHarness {
    type Target = dyn JobQueue;
    fn deref(&self) -> &(dyn JobQueue + 'static) {
        &*self.queue
    }
}

async fn dyn_harness() -> DynHarness {
    let Harness { queue, db } = harness().await;
    DynHarness { queue: Arc::new(queue), _db: db }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reserved_row_is_locked_out_for_other_workers_and_acks_delete_rows() {
    let h = harness().await;
    let q = QueueName::new("thumbnails").unwrap();
    for n in 0..3 {
        h.enqueue_bytes(&q, format!("job-{n}").into(), EnqueueOptions::default()).await.unwrap();
    }
    let (a, b, c) = tokio::join!(
        h.reserve(&q, Duration::from_secs(30)),
        h.reserve(&q, Duration::from_secs(30)),
        h.reserve(&q, Duration::from_secs(30))
    );
    let jobs = [a.unwrap().unwrap(), b.unwrap().unwrap(), c.unwrap().unwrap()];
    let mut payloads: Vec<_> = jobs.iter().map(|j| j.payload.clone()).collect();
    payloads.sort();
    assert_eq!(payloads, vec!["job-0", "job-1", "job-2"], "three workers at once took three different jobs");
    for job in &jobs {
        h.ack(job).await.unwrap();
    }
    let client = h.db.connect().await;
    let left: i64 = client.query_one("SELECT count(*) FROM cpc_jobs", &[]).await.unwrap().get(0);
    assert_eq!(left, 0, "acked jobs are deleted");
}

/// Keyed enqueues whose job row never landed: every idempotency key must point at a job that exists (no job is
/// acked in the tests that use this).
async fn phantom_keys(db: &TestDatabase) -> i64 {
    let client = db.connect().await;
    let row = client
        .query_one(
            "SELECT count(*) FROM cpc_job_keys k LEFT JOIN cpc_jobs j ON j.id = k.job_id WHERE j.id IS NULL",
            &[],
        )
        .await
        .unwrap();
    row.get(0)
}

/// Waits until a backend of `db` is waiting on a lock (our blocked enqueue) and returns its pid.
async fn blocked_backend(db: &TestDatabase) -> i32 {
    let client = db.connect().await;
    for _ in 0..200 {
        let rows = client
            .query(
                "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock' \
                 AND query LIKE '%cpc_jobs%'",
                &[&db.name()],
            )
            .await
            .unwrap();
        if let Some(row) = rows.first() {
            return row.get(0);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the keyed enqueue never blocked on the locked cpc_jobs table");
}

fn keyed(key: &str) -> EnqueueOptions {
    EnqueueOptions { idempotency_key: Some(key.to_owned()), ..EnqueueOptions::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_enqueue_killed_mid_statement_leaves_no_key_without_its_job() {
    let h = harness().await;
    let q = QueueName::new("invoices").unwrap();
    // Another session holds writes to cpc_jobs off, so the enqueue is stuck inside the server when it is killed:
    // the moment a crash or a dropped connection would hit it.
    let blocker = h.db.connect().await;
    blocker.batch_execute("BEGIN; LOCK TABLE cpc_jobs IN SHARE ROW EXCLUSIVE MODE").await.unwrap();
    let queue = h.queue.clone();
    let (q2, options) = (q.clone(), keyed("invoice-7"));
    let first = tokio::spawn(async move { queue.enqueue_bytes(&q2, "send".into(), options).await });
    let pid = blocked_backend(&h.db).await;
    let admin = h.db.connect().await;
    admin.execute("SELECT pg_terminate_backend($1)", &[&pid]).await.unwrap();
    assert!(first.await.unwrap().is_err(), "the killed enqueue reports an error");
    blocker.batch_execute("ROLLBACK").await.unwrap();

    assert_eq!(phantom_keys(&h.db).await, 0, "the key was not claimed without its job");
    // The caller retries with the same key, as the Retry decorator does: the job is enqueued now, and exists.
    let id = h.enqueue_bytes(&q, "send".into(), keyed("invoice-7")).await.unwrap();
    let job = h.reserve(&q, Duration::from_secs(30)).await.unwrap().expect("the retried job is there to reserve");
    assert_eq!((job.id, job.payload), (id, "send".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_enqueues_cancelled_at_any_point_leave_no_key_without_its_job() {
    let h = harness().await;
    let q = QueueName::new("invoices").unwrap();
    // Cancel 60 keyed enqueues after 0, 50, 100, ... microseconds: before, during and after the round trip.
    for n in 0..60u64 {
        let call = h.enqueue_bytes(&q, format!("job-{n}").into(), keyed(&format!("key-{n}")));
        let _ = tokio::time::timeout(Duration::from_micros(n * 50), call).await;
    }
    // A cancelled call's statement may still finish on the server; give it the time to.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(phantom_keys(&h.db).await, 0, "every claimed key points at its job");
    // Retrying every key gives a job that exists: 60 distinct jobs, each reservable once.
    let mut ids = std::collections::HashSet::new();
    for n in 0..60u64 {
        ids.insert(h.enqueue_bytes(&q, format!("job-{n}").into(), keyed(&format!("key-{n}"))).await.unwrap());
    }
    let mut reserved = std::collections::HashSet::new();
    while let Some(job) = h.reserve(&q, Duration::from_secs(30)).await.unwrap() {
        reserved.insert(job.id);
    }
    assert_eq!((ids.len(), reserved), (60, ids), "each key's job exists exactly once");
}
