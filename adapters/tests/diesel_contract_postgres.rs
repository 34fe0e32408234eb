//! The Diesel repositories and unit of work on PostgreSQL: the repository and unit-of-work contract suites (a
//! fresh, migrated database per case), plus what only a real server shows: SQL-looking text stored verbatim, a
//! cancelled transaction never leaking into the pool, and serialization failures reported as retryable.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "diesel")]

use std::ops::Deref;
use std::time::Duration;

use cpc_adapters::diesel::error::{ErrorContext, map_diesel_error};
use cpc_adapters::diesel::migrations::{self, MigrationTarget};
use cpc_adapters::diesel::{DbManager, DbPool, DieselPgBackend};
use cpc_adapters::pool::{Pool, PoolConfig};
use cpc_adapters::postgres::PgConfig;
use cpc_domain::{NewCustomer, NewUser};
use cpc_ports::{ConflictKind, CustomerField, Query, RepoError, UnitOfWorkExt};
use cpc_test_servers::TestDatabase;
use cpc_testkit::contract::repository::DataPorts;
use diesel::sql_types::{Bool, Integer};
use diesel_async::{AsyncConnection, RunQueryDsl, SimpleAsyncConnection};

/// Runs every `migrations/postgres/*/up.sql`, in folder-name order. (Stands in for the embedded migration
/// runner until it lands.)
async fn migrate(db: &TestDatabase) {
    let target = MigrationTarget::Postgres(PgConfig::from_url(db.url()).unwrap());
    migrations::run_pending(&target).await.unwrap();
}

/// A migrated database with a `DbManager` on it; derefs to the ports. The database is dropped last.
struct Harness {
    ports: DataPorts,
    manager: DbManager,
    db: TestDatabase,
}

impl Deref for Harness {
    type Target = DataPorts;
    fn deref(&self) -> &DataPorts {
        &self.ports
    }
}

fn config(db: &TestDatabase) -> PgConfig {
    PgConfig::from_url(db.url()).unwrap()
}

async fn harness_with(pool: PoolConfig) -> Harness {
    let db = TestDatabase::create().await;
    migrate(&db).await;
    let manager = DbManager::postgres(&config(&db), &pool).await.unwrap();
    let ports = DataPorts {
        users: manager.users(),
        entities: manager.entities(),
        customers: manager.customers(),
        transactions: manager.transactions(),
        uow: manager.unit_of_work(),
    };
    Harness { ports, manager, db }
}

async fn harness() -> Harness {
    harness_with(PoolConfig::default().max_connections(8)).await
}

mod repository {
    cpc_testkit::repository_contract!(super::harness());
}

mod unit_of_work {
    cpc_testkit::uow_contract!(super::harness());
}

#[path = "common/nesting.rs"]
mod nesting;

/// Every way a unit of work with nested transactions can end leaves its connection outside any transaction: the
/// one-connection pool reuses it (savepoint bookkeeping matches the connection's), and only committed rows stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_ending_of_nested_transactions_reuses_the_connection() {
    let h = harness_with(PoolConfig::default().max_connections(1)).await;
    let DbPool::Postgres(pool) = h.manager.pool() else { panic!("a postgres pool") };
    nesting::every_ending_reuses_the_connection(&*h.uow, &*h.users, pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_looking_text_is_stored_verbatim_and_the_tables_survive() {
    let h = harness().await;
    let name = "'; DROP TABLE users; --";
    let email = "o'brien;--@example.org";
    let c = h.customers.create(NewCustomer::new(email, name, Some("1'; --")).unwrap()).await.unwrap();
    let found = h.customers.find_page(&Query::new().eq(CustomerField::Name, name)).await.unwrap();
    assert_eq!(found.items, vec![c.clone()], "found by its exact text");
    let u = h.users.create(NewUser::new("bobby.tables", email).unwrap()).await.unwrap();
    assert_eq!(h.users.find_by_email(&u.email).await.unwrap(), Some(u), "the users table is still there");
    let prefixed = h.customers.find_page(&Query::new().prefix(CustomerField::Name, "'; DROP")).await.unwrap();
    assert_eq!(prefixed.items, vec![c], "and found by prefix");
}

/// A future dropped (by a timeout) while its transaction sleeps in `pg_sleep` must not hand the connection,
/// still inside that transaction, to the next checkout: the pool discards it, and its insert is never seen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_transaction_never_returns_to_the_pool_open() {
    let db = TestDatabase::create().await;
    migrate(&db).await;
    let pool = Pool::new(DieselPgBackend::new(&config(&db)).unwrap(), &PoolConfig::default().max_connections(1), "t")
        .await
        .unwrap();
    let mut conn = pool.get().await.unwrap();
    let first_pid: i32 =
        diesel::select(diesel::dsl::sql::<Integer>("pg_backend_pid()")).get_result(&mut *conn).await.unwrap();
    let work = conn.transaction(async |c| {
        diesel::sql_query(
            "INSERT INTO users (id, username, email, created_at, updated_at) \
             VALUES (gen_random_uuid(), 'ghost', 'ghost@example.org', now(), now())",
        )
        .execute(c)
        .await?;
        diesel::sql_query("SELECT pg_sleep(3)").execute(c).await?;
        Ok::<_, diesel::result::Error>(())
    });
    assert!(tokio::time::timeout(Duration::from_millis(300), work).await.is_err(), "the timeout fired");
    drop(conn);

    let mut next = pool.get().await.unwrap();
    let pid: i32 =
        diesel::select(diesel::dsl::sql::<Integer>("pg_backend_pid()")).get_result(&mut *next).await.unwrap();
    assert_ne!(pid, first_pid, "the connection left inside a transaction was discarded, not reused");
    let in_tx: bool = diesel::select(diesel::dsl::sql::<Bool>("txid_current_if_assigned() IS NOT NULL"))
        .get_result(&mut *next)
        .await
        .unwrap();
    assert!(!in_tx, "the connection handed out is not inside a transaction");
    let ghosts: i64 = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
        "(SELECT count(*) FROM users WHERE username = 'ghost')",
    ))
    .get_result(&mut *next)
    .await
    .unwrap();
    assert_eq!(ghosts, 0, "the cancelled transaction's insert is not visible");
    next.batch_execute("BEGIN; ROLLBACK").await.expect("the new connection can run a transaction");
}

/// A unit of work whose `run` is cancelled while a statement waits on a row lock leaves nothing behind, and the
/// pool keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_unit_of_work_keeps_nothing_and_the_pool_recovers() {
    let h = harness_with(PoolConfig::default().max_connections(2)).await;
    // Another session holds the username `blocker` in an uncommitted transaction.
    let blocker = h.db.connect().await;
    blocker
        .batch_execute(
            "BEGIN; INSERT INTO users (id, username, email, created_at, updated_at) \
             VALUES (gen_random_uuid(), 'blocker', 'blocker@example.org', now(), now())",
        )
        .await
        .unwrap();
    let first = NewUser::new("first", "first@example.org").unwrap();
    let blocked = NewUser::new("blocker", "other@example.org").unwrap();
    let run = h.uow.run(|tx| {
        Box::pin(async move {
            tx.users().create(first).await?;
            tx.users().create(blocked).await?; // waits for the other session's lock
            Ok::<_, RepoError>(())
        })
    });
    assert!(tokio::time::timeout(Duration::from_millis(500), run).await.is_err(), "the timeout fired");
    blocker.batch_execute("ROLLBACK").await.unwrap();
    for _ in 0..4 {
        let first = cpc_domain::Email::parse("first@example.org").unwrap();
        assert_eq!(h.users.find_by_email(&first).await.unwrap(), None, "the cancelled unit kept nothing");
    }
    let u = h.users.create(NewUser::new("first", "first@example.org").unwrap()).await.unwrap();
    assert_eq!(h.users.find_by_id(&u.id).await.unwrap(), Some(u), "the pool serves normally");
    let _ = &h.manager;
}

/// Two SERIALIZABLE transactions that each read what the other writes: one fails with a serialization failure,
/// which maps to a retryable `Concurrent` conflict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_serialization_failure_maps_to_a_retryable_conflict() {
    let db = TestDatabase::create().await;
    migrate(&db).await;
    let pool = Pool::new(DieselPgBackend::new(&config(&db)).unwrap(), &PoolConfig::default().max_connections(2), "t")
        .await
        .unwrap();
    let (mut a, mut b) = (pool.get().await.unwrap(), pool.get().await.unwrap());
    let insert = |name: &str| {
        format!(
            "INSERT INTO users (id, username, email, created_at, updated_at) \
             VALUES (gen_random_uuid(), '{name}', '{name}@example.org', now(), now())"
        )
    };
    let read = "SELECT count(*) FROM users";
    a.batch_execute(&format!("BEGIN ISOLATION LEVEL SERIALIZABLE; {read}")).await.unwrap();
    b.batch_execute(&format!("BEGIN ISOLATION LEVEL SERIALIZABLE; {read}")).await.unwrap();
    a.batch_execute(&insert("alpha")).await.unwrap();
    b.batch_execute(&insert("beta")).await.unwrap();
    a.batch_execute("COMMIT").await.unwrap();
    let failure = b.batch_execute("COMMIT").await.expect_err("the second commit must fail to serialize");
    let ctx = ErrorContext { backend: "postgres", table: "users", entity: "user", reference_field: "user_id" };
    let mapped = map_diesel_error(&ctx, failure);
    assert!(
        matches!(mapped, RepoError::Conflict { entity: "user", kind: ConflictKind::Concurrent }),
        "expected a concurrency conflict, got {mapped:?}"
    );
    assert!(mapped.is_retryable());
}
