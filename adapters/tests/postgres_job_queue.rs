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
use cpc_adapters::postgres::{DatabaseConfig, PgJobQueue};
use cpc_ports::{EnqueueOptions, JobQueue, QueueName};
use cpc_testkit::harness::TestDatabase;

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
    let db = TestDatabase::create().await;
    let config = DatabaseConfig::from_url(db.url()).unwrap();
    migrations::run_pending(&MigrationTarget::Postgres(config.clone())).await.unwrap();
    let pool = PoolFactory::create_postgres_pool(&config, &PoolConfig::default().max_connections(16)).await.unwrap();
    Harness { queue: PgJobQueue::new(pool), db }
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
