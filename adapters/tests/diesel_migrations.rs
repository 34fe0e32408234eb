//! The embedded migrations on real databases: up, down and up again give the same schema; status, partial revert,
//! idempotence, failures named by migration; on current-thread and multi-thread runtimes.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "diesel")]

use cpc_adapters::diesel::migrations::{self, MIGRATIONS_BACKEND, MigrationStatus, MigrationTarget};
use cpc_adapters::postgres::DatabaseConfig;
use cpc_adapters::sqlite::SqliteConfig;
use cpc_ports::RepoError;
use cpc_testkit::harness::TestDatabase;

/// The migrations both backends have.
const ALL: [&str; 5] = ["20261122000001", "20261122000002", "20261122000003", "20261122000004", "20261122000005"];
/// PostgreSQL only: the job queue tables (`PgJobQueue`).
const PG_ONLY: [&str; 1] = ["20261122000006"];
const TABLES: [&str; 5] = ["audit_log", "customers", "entities", "transactions", "users"];
const PG_ONLY_TABLES: [&str; 2] = ["cpc_job_keys", "cpc_jobs"];

/// Every migration of `target`'s backend, oldest first.
fn all(target: &MigrationTarget) -> Vec<String> {
    match target {
        MigrationTarget::Postgres(_) => versions(&[&ALL[..], &PG_ONLY[..]].concat()),
        _ => versions(&ALL),
    }
}

/// Every table the migrations of `target`'s backend create, sorted; and those its newest migration creates.
fn tables_of(target: &MigrationTarget) -> (Vec<String>, Vec<String>) {
    match target {
        MigrationTarget::Postgres(_) => {
            let mut every = versions(&[&TABLES[..], &PG_ONLY_TABLES[..]].concat());
            every.sort();
            (every, versions(&PG_ONLY_TABLES))
        }
        _ => (versions(&TABLES), versions(&["audit_log"])),
    }
}

fn versions(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn pg_target(db: &TestDatabase) -> MigrationTarget {
    MigrationTarget::Postgres(DatabaseConfig::from_url(db.url()).unwrap())
}

fn sqlite_target(dir: &tempfile::TempDir) -> MigrationTarget {
    MigrationTarget::Sqlite(SqliteConfig::file(dir.path().join("nested/app.db")))
}

fn sqlite_path(target: &MigrationTarget) -> std::path::PathBuf {
    match target {
        MigrationTarget::Sqlite(c) => match &c.target {
            cpc_adapters::sqlite::SqliteTarget::File(p) => p.clone(),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
}

/// Every row of `sql` as text (NULL as `None`), through the simple query protocol.
async fn text_rows(client: &tokio_postgres::Client, sql: &str) -> Vec<Vec<Option<String>>> {
    client
        .simple_query(sql)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect())
            }
            _ => None,
        })
        .collect()
}

/// The public schema of a PostgreSQL database: columns, constraints (with their definitions) and indexes.
async fn pg_dump(db: &TestDatabase) -> Vec<Vec<Option<String>>> {
    let client = db.connect().await;
    let mut dump = text_rows(
        &client,
        "SELECT 'column', table_name::text, column_name::text, ordinal_position::text, data_type::text, \
                is_nullable::text, column_default::text, collation_name::text \
         FROM information_schema.columns WHERE table_schema = 'public' ORDER BY table_name, ordinal_position",
    )
    .await;
    dump.extend(
        text_rows(
            &client,
            "SELECT 'constraint', tc.table_name::text, tc.constraint_name::text, tc.constraint_type::text, \
                    pg_get_constraintdef(c.oid) \
             FROM information_schema.table_constraints tc \
             JOIN pg_constraint c ON c.conname = tc.constraint_name AND c.connamespace = 'public'::regnamespace \
             WHERE tc.table_schema = 'public' ORDER BY tc.table_name, tc.constraint_name",
        )
        .await,
    );
    dump.extend(
        text_rows(
            &client,
            "SELECT 'index', tablename::text, indexname::text, indexdef FROM pg_indexes \
             WHERE schemaname = 'public' ORDER BY tablename, indexname",
        )
        .await,
    );
    dump
}

async fn pg_tables(db: &TestDatabase) -> Vec<String> {
    let client = db.connect().await;
    text_rows(
        &client,
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
    )
    .await
    .into_iter()
    .map(|r| r[0].clone().unwrap())
    .collect()
}

fn sqlite_dump(target: &MigrationTarget) -> Vec<(String, String, String, Option<String>)> {
    let conn = rusqlite::Connection::open(sqlite_path(target)).unwrap();
    let mut stmt = conn.prepare("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name").unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))).unwrap().map(Result::unwrap).collect()
}

fn sqlite_tables(target: &MigrationTarget) -> Vec<String> {
    sqlite_dump(target).into_iter().filter(|(kind, ..)| kind == "table").map(|(_, name, ..)| name).collect()
}

/// The user tables present among `tables`.
fn ours(tables: &[String]) -> Vec<String> {
    tables.iter().filter(|t| TABLES.contains(&t.as_str()) || PG_ONLY_TABLES.contains(&t.as_str())).cloned().collect()
}

/// Up, dump, down (all), up, dump: the two dumps must match; status and table lists are checked on the way.
async fn up_down_up<D, F>(target: &MigrationTarget, dump: impl Fn() -> F)
where
    F: std::future::Future<Output = D>,
    D: std::fmt::Debug + PartialEq + IntoTables,
{
    assert_eq!(
        migrations::status(target).await.unwrap(),
        MigrationStatus { applied: vec![], pending: all(target) },
        "a fresh database has every migration pending"
    );
    assert_eq!(migrations::run_pending(target).await.unwrap(), all(target));
    let first = dump().await;
    assert_eq!(ours(&first.tables()), tables_of(target).0, "every table exists after the migrations: {first:?}");

    let reverted = migrations::revert_last(target, all(target).len()).await.unwrap();
    let mut newest_first = all(target);
    newest_first.reverse();
    assert_eq!(reverted, newest_first);
    assert_eq!(migrations::status(target).await.unwrap(), MigrationStatus { applied: vec![], pending: all(target) });
    let empty = dump().await;
    assert!(ours(&empty.tables()).is_empty(), "reverting everything drops every table: {empty:?}");
    assert_ne!(first, empty, "sanity: the dump does tell the difference");

    assert_eq!(migrations::run_pending(target).await.unwrap(), all(target));
    let second = dump().await;
    assert_eq!(first, second, "up, down, up must recreate exactly the same schema");
}

/// Something that lists table names (the dumps do, the table lists are one).
trait IntoTables {
    fn tables(&self) -> Vec<String>;
}

impl IntoTables for Vec<String> {
    fn tables(&self) -> Vec<String> {
        self.clone()
    }
}

impl IntoTables for Vec<Vec<Option<String>>> {
    fn tables(&self) -> Vec<String> {
        let mut t: Vec<String> = self.iter().filter_map(|r| r[1].clone()).collect();
        t.sort();
        t.dedup();
        t
    }
}

impl IntoTables for Vec<(String, String, String, Option<String>)> {
    fn tables(&self) -> Vec<String> {
        self.iter().filter(|(kind, ..)| kind == "table").map(|(_, name, ..)| name.clone()).collect()
    }
}

/// revert_last(1) removes only the newest migration's tables; running pending twice is a no-op; reverting more
/// than is applied reverts what there is.
async fn partial_revert_and_idempotence<D, F>(target: &MigrationTarget, tables: impl Fn() -> F)
where
    F: std::future::Future<Output = D>,
    D: IntoTables,
{
    let every = all(target);
    let (newest, older) = every.split_last().unwrap();
    let (every_table, newest_tables) = tables_of(target);
    assert_eq!(migrations::run_pending(target).await.unwrap(), every);
    assert_eq!(migrations::run_pending(target).await.unwrap(), Vec::<String>::new(), "nothing left to apply");
    assert_eq!(migrations::status(target).await.unwrap(), MigrationStatus { applied: every.clone(), pending: vec![] });

    assert_eq!(migrations::revert_last(target, 1).await.unwrap(), vec![newest.clone()]);
    let without_newest: Vec<String> = every_table.iter().filter(|t| !newest_tables.contains(t)).cloned().collect();
    assert_eq!(ours(&tables().await.tables()), without_newest);
    assert_eq!(
        migrations::status(target).await.unwrap(),
        MigrationStatus { applied: older.to_vec(), pending: vec![newest.clone()] }
    );
    assert_eq!(migrations::revert_last(target, 0).await.unwrap(), Vec::<String>::new());

    assert_eq!(migrations::run_pending(target).await.unwrap(), vec![newest.clone()], "only the reverted one");
    assert_eq!(migrations::run_pending(target).await.unwrap(), Vec::<String>::new());
    assert_eq!(ours(&tables().await.tables()), every_table);

    assert_eq!(migrations::revert_last(target, 99).await.unwrap().len(), every.len(), "reverts what is applied");
    assert_eq!(migrations::revert_last(target, 1).await.unwrap(), Vec::<String>::new(), "nothing left to revert");
}

#[tokio::test]
async fn postgres_up_down_up_recreates_the_same_schema_on_a_current_thread_runtime() {
    let db = TestDatabase::create().await;
    let target = pg_target(&db);
    up_down_up(&target, || pg_dump(&db)).await;
    // The table list of the last step, through the real query.
    assert_eq!(ours(&pg_tables(&db).await), tables_of(&target).0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_up_down_up_recreates_the_same_schema_on_a_multi_thread_runtime() {
    let db = TestDatabase::create().await;
    let target = pg_target(&db);
    up_down_up(&target, || pg_dump(&db)).await;
}

#[tokio::test]
async fn postgres_partial_revert_status_and_idempotence() {
    let db = TestDatabase::create().await;
    partial_revert_and_idempotence(&pg_target(&db), || pg_tables(&db)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_concurrent_migrators_apply_each_migration_once() {
    let db = TestDatabase::create().await;
    let target = pg_target(&db);
    let (a, b, c) = tokio::join!(
        migrations::run_pending(&target),
        migrations::run_pending(&target),
        migrations::run_pending(&target)
    );
    let mut applied: Vec<String> = [a.unwrap(), b.unwrap(), c.unwrap()].concat();
    applied.sort();
    assert_eq!(applied, all(&target), "the advisory lock serialises migrators: each version applied once");
}

#[tokio::test]
async fn sqlite_up_down_up_recreates_the_same_schema_on_a_current_thread_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let target = sqlite_target(&dir);
    up_down_up(&target, || async { sqlite_dump(&target) }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_up_down_up_recreates_the_same_schema_on_a_multi_thread_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let target = sqlite_target(&dir);
    up_down_up(&target, || async { sqlite_dump(&target) }).await;
}

#[tokio::test]
async fn sqlite_partial_revert_status_and_idempotence() {
    let dir = tempfile::tempdir().unwrap();
    let target = sqlite_target(&dir);
    partial_revert_and_idempotence(&target, || async { sqlite_tables(&target) }).await;
}

#[tokio::test]
async fn sqlite_migrations_leave_the_file_in_wal_mode_as_the_pool_sets_it() {
    let dir = tempfile::tempdir().unwrap();
    let target = sqlite_target(&dir);
    migrations::run_pending(&target).await.unwrap();
    let conn = rusqlite::Connection::open(sqlite_path(&target)).unwrap();
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal", "the file is left in WAL mode, as the pool configures it");
}

#[tokio::test]
async fn postgres_a_failing_migration_is_named_and_the_earlier_ones_stay_applied() {
    let db = TestDatabase::create().await;
    db.connect().await.batch_execute("CREATE TABLE customers (id int)").await.unwrap();
    let target = pg_target(&db);
    let err = migrations::run_pending(&target).await.unwrap_err();
    match &err {
        RepoError::Backend { backend, .. } => assert_eq!(*backend, MIGRATIONS_BACKEND),
        other => panic!("{other:?}"),
    }
    let message = err.to_string();
    assert!(message.contains("2026-11-22-000003_create_customers"), "{message}");
    assert!(message.contains("already exists"), "the database's reason is kept: {message}");
    assert_eq!(
        migrations::status(&target).await.unwrap(),
        MigrationStatus { applied: versions(&ALL[..2]), pending: all(&target)[2..].to_vec() },
        "the failing migration rolled back; the ones before it stay"
    );
}

#[tokio::test]
async fn sqlite_a_failing_migration_is_named_and_the_earlier_ones_stay_applied() {
    let dir = tempfile::tempdir().unwrap();
    let target = sqlite_target(&dir);
    std::fs::create_dir_all(sqlite_path(&target).parent().unwrap()).unwrap();
    rusqlite::Connection::open(sqlite_path(&target)).unwrap().execute_batch("CREATE TABLE entities (id int)").unwrap();
    let err = migrations::run_pending(&target).await.unwrap_err();
    assert!(matches!(err, RepoError::Backend { backend: MIGRATIONS_BACKEND, .. }), "{err:?}");
    assert!(err.to_string().contains("2026-11-22-000002_create_entities"), "{err}");
    assert_eq!(migrations::status(&target).await.unwrap().applied, versions(&ALL[..1]));
}

#[tokio::test]
async fn an_unreachable_postgres_server_is_unavailable() {
    let config = DatabaseConfig::builder()
        .host("127.0.0.1")
        .port(1)
        .connect_timeout(std::time::Duration::from_secs(2))
        .build()
        .unwrap();
    let err = migrations::status(&MigrationTarget::Postgres(config)).await.unwrap_err();
    assert!(matches!(err, RepoError::Unavailable { .. }), "{err:?}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn a_sqlite_file_that_is_not_a_database_is_unavailable_not_a_migration_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbage.db");
    std::fs::write(&path, vec![0x42u8; 4096]).unwrap();
    let err = migrations::run_pending(&MigrationTarget::Sqlite(SqliteConfig::file(&path))).await.unwrap_err();
    assert!(matches!(err, RepoError::Unavailable { .. }), "{err:?}");
}

#[test]
fn the_target_comes_from_the_environment() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    };
    let t = MigrationTarget::from_lookup(env(&[("DATABASE_URL", "sqlite:data/app.db")])).unwrap();
    assert!(matches!(t, MigrationTarget::Sqlite(_)), "{t:?}");
    assert_eq!(t.describe(), "data/app.db");
    let t =
        MigrationTarget::from_lookup(env(&[("SQLITE_PATH", "x.db"), ("DATABASE_URL", "postgres://u@h/d")])).unwrap();
    assert_eq!(t.backend_name(), "sqlite");
    let t = MigrationTarget::from_lookup(env(&[("DATABASE_URL", "postgres://u@db.example:6543/app")])).unwrap();
    assert_eq!(t.backend_name(), "postgres");
    assert_eq!(t.describe(), "db.example:6543/app");
    assert!(MigrationTarget::from_lookup(env(&[("SQLITE_PATH", ":memory:")])).is_err());
}
