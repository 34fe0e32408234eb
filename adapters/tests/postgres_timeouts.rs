//! Server-side limits on every PostgreSQL connection (`QueryTimeouts`: `statement_timeout`, `lock_timeout`,
//! `idle_in_transaction_session_timeout`): a repository update blocked by another session's row lock, a slow query
//! on the pool, a job enqueue blocked by a table lock and a unit of work left idle each end as a typed error within
//! the configured limit instead of waiting forever; the limits come from the environment and the URL and reach the
//! server; migrations run without the statement and lock limits.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "diesel")]

use std::time::{Duration, Instant};

use cpc_adapters::diesel::DbManager;
use cpc_adapters::diesel::migrations::{self, MigrationTarget};
use cpc_adapters::pool::{DatabaseError, PoolConfig, PoolFactory};
use cpc_adapters::postgres::{PgConfig, PgJobQueue, QueryTimeouts};
use cpc_domain::{NewUser, UpdateUser, Username};
use cpc_ports::{EnqueueOptions, JobQueue, KvError, QueueName, RepoError};
use cpc_test_servers::TestDatabase;

const MS: fn(u64) -> Duration = Duration::from_millis;

/// A migrated database and a config for it with `timeouts`.
async fn database(timeouts: QueryTimeouts) -> (TestDatabase, PgConfig) {
    let db = TestDatabase::create().await;
    let mut config = PgConfig::from_url(db.url()).unwrap();
    config.timeouts = timeouts;
    migrations::run_pending(&MigrationTarget::Postgres(config.clone())).await.unwrap();
    (db, config)
}

/// Blocks until `f` ends, asserting it took at least `limit` and less than `limit` + 3 s.
async fn within<T>(limit: Duration, f: impl std::future::Future<Output = T>) -> T {
    let started = Instant::now();
    let out = tokio::time::timeout(limit + Duration::from_secs(3), f).await.expect("the limit did not end the call");
    assert!(started.elapsed() >= limit, "ended after {:?}, before the {limit:?} limit", started.elapsed());
    out
}

/// Another session holds the user's row with `SELECT ... FOR UPDATE` until the returned client is dropped.
async fn hold_row(db: &TestDatabase, id: uuid::Uuid) -> tokio_postgres::Client {
    let client = db.connect().await;
    client.batch_execute("BEGIN").await.unwrap();
    client.query("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", &[&id]).await.unwrap();
    client
}

fn rename(name: &str) -> UpdateUser {
    UpdateUser { username: Some(Username::parse(name).unwrap()), email: None }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_blocked_by_another_sessions_row_lock_times_out_at_lock_timeout() {
    let (db, config) = database(QueryTimeouts { lock: MS(300), ..QueryTimeouts::default() }).await;
    let manager = DbManager::postgres(&config, &PoolConfig::default()).await.unwrap();
    let ada = manager.users().create(NewUser::new("ada", "ada@example.org").unwrap()).await.unwrap();
    let holder = hold_row(&db, *ada.id.as_uuid()).await;
    let err = within(MS(300), manager.users().update(&ada.id, ada.version, rename("ada2"))).await.unwrap_err();
    match err {
        RepoError::Timeout { operation, after } => {
            assert_eq!(operation, "lock_timeout");
            assert!(after >= MS(300), "{after:?}");
        }
        other => panic!("expected a lock_timeout Timeout, got {other:?}"),
    }
    assert!(RepoError::Timeout { operation: "lock_timeout", after: MS(1) }.is_retryable());
    holder.batch_execute("COMMIT").await.unwrap();
    let renamed = manager.users().update(&ada.id, ada.version, rename("ada2")).await.unwrap();
    assert_eq!(renamed.username.as_str(), "ada2", "once the lock is gone the same update goes through");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_lock_limit_the_blocked_update_times_out_at_statement_timeout() {
    let timeouts = QueryTimeouts { statement: MS(400), lock: Duration::ZERO, ..QueryTimeouts::default() };
    let (db, config) = database(timeouts).await;
    let manager = DbManager::postgres(&config, &PoolConfig::default()).await.unwrap();
    let ada = manager.users().create(NewUser::new("ada", "ada@example.org").unwrap()).await.unwrap();
    let _holder = hold_row(&db, *ada.id.as_uuid()).await;
    let err = within(MS(400), manager.users().update(&ada.id, ada.version, rename("ada2"))).await.unwrap_err();
    assert!(matches!(err, RepoError::Timeout { operation: "statement_timeout", .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_query_on_the_pool_is_cut_off_and_the_connection_stays_usable() {
    let (_db, config) = database(QueryTimeouts { statement: MS(300), ..QueryTimeouts::default() }).await;
    let pool = PoolFactory::create_postgres_pool(&config, &PoolConfig::default().max_connections(1)).await.unwrap();
    let conn = pool.get().await.unwrap();
    let err = within(MS(300), conn.query("SELECT pg_sleep(5)", &[])).await.unwrap_err();
    let classified = pool.backend().classify(err);
    assert!(
        matches!(classified, DatabaseError::QueryTimeout { setting: "statement_timeout", after } if after == MS(300)),
        "{classified:?}"
    );
    assert!(classified.is_retryable());
    let one: i32 = conn.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1, "the same connection serves the next statement");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_enqueue_blocked_by_a_table_lock_is_a_timeout() {
    let (db, config) = database(QueryTimeouts { lock: MS(300), ..QueryTimeouts::default() }).await;
    let pool = PoolFactory::create_postgres_pool(&config, &PoolConfig::default()).await.unwrap();
    let jobs = PgJobQueue::new(pool);
    let blocker = db.connect().await;
    blocker.batch_execute("BEGIN; LOCK TABLE cpc_jobs IN SHARE ROW EXCLUSIVE MODE").await.unwrap();
    let q = QueueName::new("mail").unwrap();
    let err = within(MS(300), jobs.enqueue_bytes(&q, "x".into(), EnqueueOptions::default())).await.unwrap_err();
    assert!(matches!(err, KvError::Timeout { after, .. } if after == MS(300)), "{err:?}");
    blocker.batch_execute("ROLLBACK").await.unwrap();
    jobs.enqueue_bytes(&q, "x".into(), EnqueueOptions::default()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_of_work_left_idle_past_the_limit_is_rolled_back_by_the_server() {
    let (_db, config) = database(QueryTimeouts { idle_in_transaction: MS(300), ..QueryTimeouts::default() }).await;
    let manager = DbManager::postgres(&config, &PoolConfig::default()).await.unwrap();
    let tx = manager.unit_of_work().begin().await.unwrap();
    let ada = tx.users().create(NewUser::new("ada", "ada@example.org").unwrap()).await.unwrap();
    tokio::time::sleep(MS(900)).await;
    let next = tx.users().create(NewUser::new("bob", "bob@example.org").unwrap()).await;
    let outcome = match next {
        Err(e) => Err(e),
        Ok(_) => tx.commit().await,
    };
    assert!(outcome.is_err(), "the server closed the idle transaction: nothing can commit");
    assert_eq!(manager.users().find_by_id(&ada.id).await.unwrap(), None, "its write was rolled back");
    let carol = manager.users().create(NewUser::new("carol", "carol@example.org").unwrap()).await.unwrap();
    assert!(manager.users().exists(&carol.id).await.unwrap(), "the pool serves on");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limits_come_from_the_environment_and_the_url_and_reach_the_server() {
    let db = TestDatabase::create().await;
    let url = db.url().to_owned();
    let from_env = PgConfig::from_lookup(|name| match name {
        "DATABASE_URL" => Some(url.clone()),
        "DATABASE_STATEMENT_TIMEOUT" => Some("2s".into()),
        "DATABASE_LOCK_TIMEOUT" => Some("250ms".into()),
        "DATABASE_IDLE_IN_TRANSACTION_TIMEOUT" => Some("0".into()),
        _ => None,
    })
    .unwrap();
    assert_eq!(
        from_env.timeouts,
        QueryTimeouts { statement: MS(2000), lock: MS(250), idle_in_transaction: Duration::ZERO }
    );
    let pool = PoolFactory::create_postgres_pool(&from_env, &PoolConfig::default()).await.unwrap();
    let conn = pool.get().await.unwrap();
    let show = |name: &'static str| {
        let conn = &conn;
        async move { conn.query_one(&format!("SHOW {name}"), &[]).await.unwrap().get::<_, String>(0) }
    };
    assert_eq!(show("statement_timeout").await, "2s");
    assert_eq!(show("lock_timeout").await, "250ms");
    assert_eq!(show("idle_in_transaction_session_timeout").await, "0");

    let sep = if url.contains('?') { '&' } else { '?' };
    let from_url = PgConfig::from_url(&format!("{url}{sep}lock_timeout=1min")).unwrap();
    assert_eq!(from_url.timeouts.lock, Duration::from_secs(60));
    let defaults = PgConfig::from_url(&url).unwrap().timeouts;
    assert_eq!(defaults, QueryTimeouts::default(), "30 s, 10 s, 60 s unless configured");
    let bad = PgConfig::from_lookup(|name| match name {
        "DATABASE_URL" => Some(url.clone()),
        "DATABASE_STATEMENT_TIMEOUT" => Some("soon".into()),
        _ => None,
    })
    .unwrap_err();
    assert_eq!(bad.key(), "DATABASE_STATEMENT_TIMEOUT", "{bad}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_run_without_the_statement_and_lock_limits() {
    let db = TestDatabase::create().await;
    let mut config = PgConfig::from_url(db.url()).unwrap();
    config.timeouts = QueryTimeouts { statement: MS(1), lock: MS(1), ..QueryTimeouts::default() };
    migrations::run_pending(&MigrationTarget::Postgres(config.clone())).await.expect("1 ms limits do not apply");
    let status = migrations::status(&MigrationTarget::Postgres(config)).await.unwrap();
    assert!(!status.applied.is_empty() && status.pending.is_empty(), "every migration applied: {status:?}");
}
