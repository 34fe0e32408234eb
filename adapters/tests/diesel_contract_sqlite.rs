//! The Diesel repositories and unit of work on SQLite: the repository and unit-of-work contract suites (a fresh,
//! migrated database file per case), plus SQL-looking text stored verbatim, a cancelled transaction never leaking
//! into the pool, and a busy database reported as a retryable conflict.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "diesel")]

use std::ops::Deref;
use std::path::Path;
use std::time::Duration;

use cpc_adapters::diesel::error::{ErrorContext, map_diesel_error};
use cpc_adapters::diesel::migrations::{self, MigrationTarget};
use cpc_adapters::diesel::{DbManager, DbPool, DieselSqliteBackend};
use cpc_adapters::pool::{Pool, PoolConfig};
use cpc_adapters::sqlite::SqliteConfig;
use cpc_domain::{NewCustomer, NewUser};
use cpc_ports::{ConflictKind, CustomerField, Query, RepoError};
use cpc_testkit::contract::repository::DataPorts;
use diesel::sql_types::BigInt;
use diesel_async::{AsyncConnection, RunQueryDsl, SimpleAsyncConnection};

/// Runs every `migrations/sqlite/*/up.sql`, in folder-name order. (Stands in for the embedded migration runner
/// until it lands.)
async fn migrate(path: &Path) {
    migrations::run_pending(&MigrationTarget::Sqlite(SqliteConfig::file(path))).await.unwrap();
}

/// A migrated database file in a temporary directory, with a `DbManager` on it; derefs to the ports.
struct Harness {
    ports: DataPorts,
    manager: DbManager,
    config: SqliteConfig,
    _dir: tempfile::TempDir,
}

impl Deref for Harness {
    type Target = DataPorts;
    fn deref(&self) -> &DataPorts {
        &self.ports
    }
}

async fn harness_with(pool: PoolConfig) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.db");
    migrate(&path).await;
    let config = SqliteConfig::file(&path);
    let manager = DbManager::sqlite(&config, &pool).await.unwrap();
    let ports = DataPorts {
        users: manager.users(),
        entities: manager.entities(),
        customers: manager.customers(),
        transactions: manager.transactions(),
        uow: manager.unit_of_work(),
    };
    Harness { ports, manager, config, _dir: dir }
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
    let DbPool::Sqlite(pool) = h.manager.pool() else { panic!("a sqlite pool") };
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

/// Prefix filters are case-sensitive, as on PostgreSQL (SQLite's own `LIKE` would ignore ASCII case).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefix_filters_are_case_sensitive() {
    let h = harness().await;
    for (i, name) in ["Alpha", "alpha", "ALPHA"].iter().enumerate() {
        h.customers.create(NewCustomer::new(&format!("c{i}@example.org"), name, None).unwrap()).await.unwrap();
    }
    let found = h.customers.find_page(&Query::new().prefix(CustomerField::Name, "al")).await.unwrap();
    assert_eq!(found.items.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["alpha"]);
}

/// A future dropped (by a timeout) inside a transaction must not hand the connection, still inside that
/// transaction, to the next checkout: the pool discards it, and its insert is never seen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_transaction_never_returns_to_the_pool_open() {
    let h = harness().await;
    let pool = Pool::new(DieselSqliteBackend::new(&h.config).unwrap(), &PoolConfig::default().max_connections(1), "t")
        .await
        .unwrap();
    let mut conn = pool.get().await.unwrap();
    let work = conn.transaction(async |c| {
        diesel::sql_query(
            "INSERT INTO users (id, username, email, created_at, updated_at) \
             VALUES ('00000000-0000-7000-8000-000000000001', 'ghost', 'ghost@example.org', 'x', 'x')",
        )
        .execute(c)
        .await?;
        // About a second of work, so the timeout fires while the transaction is open.
        diesel::sql_query(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000000) \
             SELECT count(*) FROM n",
        )
        .execute(c)
        .await?;
        Ok::<_, diesel::result::Error>(())
    });
    assert!(tokio::time::timeout(Duration::from_millis(100), work).await.is_err(), "the timeout fired");
    drop(conn);

    let mut next = pool.get().await.unwrap();
    let ghosts: i64 =
        diesel::select(diesel::dsl::sql::<BigInt>("(SELECT count(*) FROM users WHERE username = 'ghost')"))
            .get_result(&mut *next)
            .await
            .unwrap();
    assert_eq!(ghosts, 0, "not the cancelled transaction's connection (it would see its own insert)");
    next.batch_execute("BEGIN; ROLLBACK").await.expect("the connection handed out is not inside a transaction");
}

/// A write that cannot get the lock within `busy_timeout` is a retryable `Concurrent` conflict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_database_maps_to_a_retryable_conflict() {
    let h = harness().await;
    let config = h.config.clone().busy_timeout(Duration::from_millis(50));
    let pool = Pool::new(DieselSqliteBackend::new(&config).unwrap(), &PoolConfig::default().max_connections(2), "t")
        .await
        .unwrap();
    let (mut a, mut b) = (pool.get().await.unwrap(), pool.get().await.unwrap());
    a.batch_execute("BEGIN IMMEDIATE").await.unwrap();
    let failure = b.batch_execute("BEGIN IMMEDIATE").await.expect_err("the write lock is taken");
    let ctx = ErrorContext { backend: "sqlite", table: "users", entity: "user", reference_field: "user_id" };
    let mapped = map_diesel_error(&ctx, failure);
    assert!(
        matches!(mapped, RepoError::Conflict { entity: "user", kind: ConflictKind::Concurrent }),
        "expected a concurrency conflict, got {mapped:?}"
    );
    assert!(mapped.is_retryable());
    a.batch_execute("ROLLBACK").await.unwrap();
}
