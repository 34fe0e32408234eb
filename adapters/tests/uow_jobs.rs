//! Jobs enqueued inside a Diesel unit of work (`tx.jobs().enqueue(...)`, the transactional outbox), on PostgreSQL
//! (`PgJobQueue` reserves) and SQLite (`SqliteJobQueue` reserves): a job is reservable once its transaction
//! commits, and never after a rollback, an error, a panic in the unit of work's closure or a dropped unit-of-work
//! future; its idempotency key is claimed only with the commit.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(all(feature = "diesel", feature = "sqlite-kv"))]

use std::sync::Arc;
use std::time::Duration;

use cpc_adapters::diesel::migrations::{self, MigrationTarget};
use cpc_adapters::diesel::{DbManager, TxJobsExt};
use cpc_adapters::pool::{PoolConfig, PoolFactory};
use cpc_adapters::postgres::{PgConfig, PgJobQueue};
use cpc_adapters::sqlite::SqliteConfig;
use cpc_adapters::sqlite_kv::SqliteJobQueue;
use cpc_ports::{EnqueueOptions, JobQueue, JobQueueExt, QueueName, RepoError, UnitOfWork, UnitOfWorkExt};
use cpc_test_servers::TestDatabase;

/// A unit of work and a job queue on one migrated database; the guard keeps the database alive.
struct Harness {
    uow: Arc<dyn UnitOfWork>,
    queue: Arc<dyn JobQueue>,
    _guard: Box<dyn std::any::Any + Send>,
}

async fn postgres() -> Harness {
    let db = TestDatabase::create().await;
    let config = PgConfig::from_url(db.url()).unwrap();
    migrations::run_pending(&MigrationTarget::Postgres(config.clone())).await.unwrap();
    let manager = DbManager::postgres(&config, &PoolConfig::default().max_connections(4)).await.unwrap();
    let pool = PoolFactory::create_postgres_pool(&config, &PoolConfig::default().max_connections(4)).await.unwrap();
    Harness { uow: manager.unit_of_work(), queue: Arc::new(PgJobQueue::new(pool)), _guard: Box::new(db) }
}

async fn sqlite() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let config = SqliteConfig::file(dir.path().join("outbox.db"));
    migrations::run_pending(&MigrationTarget::Sqlite(config.clone())).await.unwrap();
    let manager = DbManager::sqlite(&config, &PoolConfig::default().max_connections(4)).await.unwrap();
    let pool = PoolFactory::create_sqlite_pool(&config, &PoolConfig::default().max_connections(4)).await.unwrap();
    Harness { uow: manager.unit_of_work(), queue: Arc::new(SqliteJobQueue::new(pool)), _guard: Box::new(dir) }
}

fn mails() -> QueueName {
    QueueName::new("welcome-mails").unwrap()
}

const VISIBILITY: Duration = Duration::from_secs(30);

/// Nothing reservable on the queue, now and a moment later (a rollback that runs on a spawned task included).
async fn assert_nothing_reservable(h: &Harness, what: &str) {
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(h.queue.stats(&mails()).await.unwrap(), Default::default(), "{what}: no job stored");
    assert!(h.queue.reserve(&mails(), VISIBILITY).await.unwrap().is_none(), "{what}: nothing reservable");
}

async fn a_committed_job_is_reservable_and_invisible_before_the_commit(h: Harness) {
    let tx = h.uow.begin().await.unwrap();
    let id = tx.jobs().enqueue(&mails(), &("ada@example.com", 7), EnqueueOptions::default()).await.unwrap();
    assert_eq!(h.queue.stats(&mails()).await.unwrap().pending, 0, "not visible before the commit");
    tx.commit().await.unwrap();
    let job = h.queue.reserve_as::<(String, u32)>(&mails(), VISIBILITY).await.unwrap().expect("committed job");
    assert_eq!((&job.job.id, &job.data), (&id, &("ada@example.com".to_owned(), 7)));
    assert_eq!((job.job.attempt, job.job.max_attempts), (1, cpc_ports::job_queue::DEFAULT_MAX_ATTEMPTS));
    h.queue.ack(&job.job).await.unwrap();
}

async fn a_job_enqueued_in_run_lands_with_the_commit_and_keeps_its_options(h: Harness) {
    let options = EnqueueOptions::default().delayed(Duration::from_millis(300)).max_attempts(2);
    let id = h
        .uow
        .run(|tx| Box::pin(async move { tx.jobs().enqueue_bytes(&mails(), "welcome".into(), options).await }))
        .await
        .unwrap();
    assert_eq!(h.queue.stats(&mails()).await.unwrap().delayed, 1);
    assert!(h.queue.reserve(&mails(), VISIBILITY).await.unwrap().is_none(), "delayed");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let job = h.queue.reserve(&mails(), VISIBILITY).await.unwrap().unwrap();
    assert_eq!((job.id, job.payload.as_ref(), job.max_attempts), (id, &b"welcome"[..], 2));
}

async fn a_rolled_back_job_is_never_reservable(h: Harness) {
    let tx = h.uow.begin().await.unwrap();
    tx.jobs().enqueue(&mails(), "ada", EnqueueOptions::default()).await.unwrap();
    tx.rollback().await.unwrap();
    assert_nothing_reservable(&h, "rollback").await;
}

async fn an_error_in_the_unit_of_work_drops_its_jobs(h: Harness) {
    let result: Result<(), RepoError> = h
        .uow
        .run(|tx| {
            Box::pin(async move {
                tx.jobs().enqueue(&mails(), "ada", EnqueueOptions::default()).await?;
                Err(RepoError::TransactionFinished)
            })
        })
        .await;
    assert!(matches!(result, Err(RepoError::TransactionFinished)));
    assert_nothing_reservable(&h, "error").await;
}

async fn a_panic_in_the_unit_of_work_drops_its_jobs(h: Harness) {
    let uow = h.uow.clone();
    let run = tokio::spawn(async move {
        uow.run(|tx| {
            Box::pin(async move {
                tx.jobs().enqueue(&mails(), "ada", EnqueueOptions::default()).await?;
                panic!("the handler failed after enqueueing");
                #[allow(unreachable_code)]
                Ok::<_, RepoError>(())
            })
        })
        .await
    });
    assert!(run.await.unwrap_err().is_panic());
    assert_nothing_reservable(&h, "panic").await;
}

async fn a_dropped_unit_of_work_future_drops_its_jobs(h: Harness) {
    let (enqueued_tx, enqueued) = tokio::sync::oneshot::channel();
    let run = h.uow.run(|tx| {
        Box::pin(async move {
            tx.jobs().enqueue(&mails(), "ada", EnqueueOptions::default()).await?;
            let _ = enqueued_tx.send(());
            std::future::pending::<()>().await;
            Ok::<_, RepoError>(())
        })
    });
    tokio::select! {
        _ = run => panic!("the unit of work never finishes"),
        _ = enqueued => {} // `run` is dropped here, mid-transaction, after the enqueue
    }
    assert_nothing_reservable(&h, "dropped future").await;
    h.queue.enqueue(&mails(), "after", EnqueueOptions::default()).await.unwrap();
    assert!(h.queue.reserve(&mails(), VISIBILITY).await.unwrap().is_some(), "the database is usable afterwards");
}

async fn an_idempotency_key_is_claimed_only_with_the_commit(h: Harness) {
    let keyed = || EnqueueOptions::default().idempotency_key("welcome:ada");
    let tx = h.uow.begin().await.unwrap();
    let dropped = tx.jobs().enqueue(&mails(), "first", keyed()).await.unwrap();
    assert_eq!(tx.jobs().enqueue(&mails(), "again", keyed()).await.unwrap(), dropped, "the key holds within the tx");
    tx.rollback().await.unwrap();

    let kept = h.uow.run(|tx| Box::pin(async move { tx.jobs().enqueue(&mails(), "second", keyed()).await })).await;
    let kept = kept.unwrap();
    assert_ne!(kept, dropped, "the rolled-back claim left the key free");
    assert_eq!(h.queue.enqueue(&mails(), "third", keyed()).await.unwrap(), kept, "the queue sees the committed claim");
    let job = h.queue.reserve_as::<String>(&mails(), VISIBILITY).await.unwrap().unwrap();
    assert_eq!((job.job.id, job.data.as_str()), (kept, "second"));
    assert!(h.queue.reserve(&mails(), VISIBILITY).await.unwrap().is_none(), "one job for the key");
}

async fn invalid_options_are_validation_errors_and_leave_the_transaction_usable(h: Harness) {
    let tx = h.uow.begin().await.unwrap();
    let err = tx.jobs().enqueue(&mails(), "x", EnqueueOptions::default().max_attempts(0)).await.unwrap_err();
    assert!(matches!(&err, RepoError::Validation(v) if v.field == "max_attempts"), "{err:?}");
    let big = vec![0u8; cpc_ports::MAX_PAYLOAD_BYTES + 1];
    let err = tx.jobs().enqueue_bytes(&mails(), big.into(), EnqueueOptions::default()).await.unwrap_err();
    assert!(matches!(&err, RepoError::Validation(v) if v.field == "payload"), "{err:?}");
    tx.jobs().enqueue(&mails(), "fine", EnqueueOptions::default()).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(h.queue.stats(&mails()).await.unwrap().pending, 1);
}

macro_rules! cases {
    ($harness:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                super::$case($harness().await).await;
            }
        )*
    };
}

macro_rules! all_cases {
    ($harness:path) => {
        cases!(
            $harness;
            a_committed_job_is_reservable_and_invisible_before_the_commit,
            a_job_enqueued_in_run_lands_with_the_commit_and_keeps_its_options,
            a_rolled_back_job_is_never_reservable,
            an_error_in_the_unit_of_work_drops_its_jobs,
            a_panic_in_the_unit_of_work_drops_its_jobs,
            a_dropped_unit_of_work_future_drops_its_jobs,
            an_idempotency_key_is_claimed_only_with_the_commit,
            invalid_options_are_validation_errors_and_leave_the_transaction_usable,
        );
    };
}

mod on_postgres {
    all_cases!(super::postgres);
}

mod on_sqlite {
    all_cases!(super::sqlite);
}
