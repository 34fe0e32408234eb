//! The embedded migrations on real databases: up, down and up again give the same schema; status, partial revert,
//! idempotence, failures named by migration; on current-thread and multi-thread runtimes. An app's own migration set
//! (`tests/fixtures/app_migrations/`) beside the library's: run, status, down, the `migrate` command line, and the
//! sets refused before anything runs.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "diesel")]

use cpc_adapters::diesel::migrations::{
    self, CHECK_SETS, EmbeddedMigrations, LIBRARY, MIGRATIONS_BACKEND, MigrationEntry, MigrationFailure, MigrationRef,
    MigrationSet, MigrationState, MigrationStatus, MigrationTarget, POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS,
    embed_migrations,
};
use cpc_adapters::postgres::PgConfig;
use cpc_adapters::sqlite::SqliteConfig;
use cpc_ports::RepoError;
use cpc_test_servers::TestDatabase;

/// The migrations both backends have.
const ALL: [&str; 5] = ["20261122000001", "20261122000002", "20261122000003", "20261122000004", "20261122000005"];
/// PostgreSQL only: the job queue tables (`PgJobQueue`), `audit_log.row_id` as text (SQLite's already is), job
/// retention, and the tables of `cpc-pg-kv`'s cache, rate limiter, lock, session store and pub/sub.
const PG_ONLY: [&str; 8] = [
    "20261122000006",
    "20261130000001",
    "20261130000002",
    "20261206000001",
    "20261206000002",
    "20261206000003",
    "20261206000004",
    "20261206000005",
];
/// SQLite only: the job queue tables (`SqliteJobQueue`), sessions (`SqliteSessionStore`), locks (`SqliteLock`) and
/// rate limits (`SqliteRateLimiter`).
const SQLITE_ONLY: [&str; 4] = ["20261206000001", "20261206000002", "20261206000003", "20261206000004"];
const TABLES: [&str; 5] = ["audit_log", "customers", "entities", "transactions", "users"];
/// The job queue tables, on both backends.
const JOB_TABLES: [&str; 2] = ["cpc_job_keys", "cpc_jobs"];
/// PostgreSQL only: the tables of `cpc-pg-kv`.
const PG_ONLY_TABLES: [&str; 6] =
    ["cpc_cache", "cpc_locks", "cpc_pubsub_messages", "cpc_pubsub_subscriptions", "cpc_rate_limits", "cpc_sessions"];
/// The tables the newest PostgreSQL migration creates.
const PG_NEWEST_TABLES: [&str; 2] = ["cpc_pubsub_messages", "cpc_pubsub_subscriptions"];
/// SQLite only: the sessions, locks and rate limits tables.
const SQLITE_ONLY_TABLES: [&str; 3] = ["cpc_locks", "cpc_rate_limits", "cpc_sessions"];

/// Every migration of `target`'s backend, oldest first.
fn all(target: &MigrationTarget) -> Vec<String> {
    match target {
        MigrationTarget::Postgres(_) => versions(&[&ALL[..], &PG_ONLY[..]].concat()),
        _ => versions(&[&ALL[..], &SQLITE_ONLY[..]].concat()),
    }
}

/// Every table the migrations of `target`'s backend create, sorted; and those its newest migration creates (the
/// pub/sub tables on PostgreSQL, the rate limits table on SQLite).
fn tables_of(target: &MigrationTarget) -> (Vec<String>, Vec<String>) {
    let (extra, newest): (&[&str], _) = match target {
        MigrationTarget::Postgres(_) => (&PG_ONLY_TABLES, versions(&PG_NEWEST_TABLES)),
        _ => (&SQLITE_ONLY_TABLES, versions(&["cpc_rate_limits"])),
    };
    let mut every = versions(&[&TABLES[..], &JOB_TABLES[..], extra].concat());
    every.sort();
    (every, newest)
}

fn versions(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn pg_target(db: &TestDatabase) -> MigrationTarget {
    MigrationTarget::Postgres(PgConfig::from_url(db.url()).unwrap())
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
    tables
        .iter()
        .filter(|t| {
            [&TABLES[..], &JOB_TABLES[..], &PG_ONLY_TABLES[..], &SQLITE_ONLY_TABLES[..]].concat().contains(&t.as_str())
        })
        .cloned()
        .collect()
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
    let config = PgConfig::builder()
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

// ---- An app's own migration set beside the library's ----

// Through the re-export, as an app that does not depend on diesel_migrations itself would.
use cpc_adapters::diesel::migrations::diesel_migrations;

static APP_POSTGRES: EmbeddedMigrations = embed_migrations!("tests/fixtures/app_migrations/postgres");
static APP_SQLITE: EmbeddedMigrations = embed_migrations!("tests/fixtures/app_migrations/sqlite");
/// The test app's set: one migration, `widgets`, newer than every library one.
const APP: MigrationSet = MigrationSet::new("app", &APP_POSTGRES, &APP_SQLITE);
/// The same migrations under another name: every version clashes with [`APP`]'s.
const APP_COPY: MigrationSet = MigrationSet::new("app-copy", &APP_POSTGRES, &APP_SQLITE);
/// The library's directories under another name: every version clashes with the library's.
const IMPOSTOR: MigrationSet = MigrationSet::new("impostor", &POSTGRES_MIGRATIONS, &SQLITE_MIGRATIONS);
/// Another set named like the app's.
const APP_AGAIN: MigrationSet = MigrationSet::postgres_only("app", &POSTGRES_MIGRATIONS);

static PLUGIN_POSTGRES: EmbeddedMigrations = embed_migrations!("tests/fixtures/plugin_migrations/postgres");
static PLUGIN_SQLITE: EmbeddedMigrations = embed_migrations!("tests/fixtures/plugin_migrations/sqlite");
/// A second app set (a plugin's): one migration, `gadgets`, newer than [`APP`]'s.
const PLUGIN: MigrationSet = MigrationSet::new("plugin", &PLUGIN_POSTGRES, &PLUGIN_SQLITE);

/// The app's and the plugin's migrations are dated far ahead, so they stay newer than every library migration
/// (as an app's own are when it writes them), whatever the library adds later.
const WIDGETS: &str = "20990101000001";
const GADGETS: &str = "20990102000001";
const WIDGETS_NAME: &str = "2099-01-01-000001_create_widgets";

fn app_ref() -> MigrationRef {
    MigrationRef { set: "app", version: WIDGETS.into(), name: WIDGETS_NAME.into() }
}

fn library_refs(target: &MigrationTarget) -> Vec<MigrationRef> {
    all(target)
        .into_iter()
        .map(|version| {
            let name = library_name(target, &version);
            MigrationRef { set: "cpc-data", version, name }
        })
        .collect()
}

/// The folder name of a library migration of `target`'s backend, from its version.
fn library_name(target: &MigrationTarget, version: &str) -> String {
    let backend = match target {
        MigrationTarget::Postgres(_) => "postgres",
        _ => "sqlite",
    };
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations").join(backend);
    let dashed = format!("{}-{}-{}-{}", &version[..4], &version[4..6], &version[6..8], &version[8..]);
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .find(|n| n.starts_with(&dashed))
        .unwrap_or_else(|| panic!("no library migration {version}"))
}

/// The status entries of the library's set and the app's, every one in `library` / `app` state.
fn entries(target: &MigrationTarget, library: MigrationState, app: MigrationState) -> Vec<MigrationEntry> {
    let mut e: Vec<MigrationEntry> = library_refs(target)
        .into_iter()
        .map(|m| MigrationEntry { set: Some("cpc-data"), version: m.version, name: Some(m.name), state: library })
        .collect();
    e.push(MigrationEntry { set: Some("app"), version: WIDGETS.into(), name: Some(WIDGETS_NAME.into()), state: app });
    e
}

/// The `MigrationFailure` inside a migrations error.
fn migration_failure(err: &RepoError) -> &MigrationFailure {
    match err {
        RepoError::Backend { backend, source } => {
            assert_eq!(*backend, MIGRATIONS_BACKEND);
            source.downcast_ref::<MigrationFailure>().unwrap_or_else(|| panic!("{err:?}"))
        }
        other => panic!("{other:?}"),
    }
}

/// Run applies both sets (the app's last, by version); status labels each migration with its set; down 1 reverts the
/// app's (newest) migration and leaves the library's; run again re-applies only it.
async fn app_set_beside_the_library<F, Fut>(target: &MigrationTarget, tables: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Vec<String>>,
{
    let status = migrations::status_with(target, &[APP]).await.unwrap();
    assert_eq!(status.entries, entries(target, MigrationState::Pending, MigrationState::Pending));

    let mut both = library_refs(target);
    both.push(app_ref());
    assert_eq!(migrations::run_pending_with(target, &[APP]).await.unwrap(), both, "both sets, by version");
    assert!(tables().await.contains(&"widgets".to_owned()), "the app's table exists");
    assert!(tables().await.contains(&"users".to_owned()), "the library's tables exist");
    assert_eq!(migrations::run_pending_with(target, &[APP]).await.unwrap(), vec![], "nothing left to apply");

    let status = migrations::status_with(target, &[APP]).await.unwrap();
    assert_eq!(status.entries, entries(target, MigrationState::Applied, MigrationState::Applied));
    assert_eq!(status.of_set("app").count(), 1);
    assert_eq!(status.of_set("cpc-data").count(), all(target).len());
    // Listing the library's set explicitly changes nothing.
    assert_eq!(migrations::status_with(target, &[LIBRARY, APP]).await.unwrap(), status);

    // Without the app's set, its migration is applied but unknown, which is no error for run or status.
    let library_only = migrations::status_with(target, &[]).await.unwrap();
    let unknown: Vec<&MigrationEntry> = library_only.in_state(MigrationState::Unknown).collect();
    assert_eq!(
        unknown,
        vec![&MigrationEntry { set: None, version: WIDGETS.into(), name: None, state: MigrationState::Unknown }]
    );
    assert_eq!(unknown[0].set_label(), "unknown");
    assert_eq!(migrations::run_pending(target).await.unwrap(), Vec::<String>::new());
    let mut applied = all(target);
    applied.push(WIDGETS.into());
    assert_eq!(migrations::status(target).await.unwrap(), MigrationStatus { applied, pending: vec![] });

    assert_eq!(migrations::revert_last_with(target, 1, &[APP]).await.unwrap(), vec![app_ref()]);
    let after = tables().await;
    assert!(!after.contains(&"widgets".to_owned()), "the app's table is gone: {after:?}");
    assert_eq!(ours(&after), tables_of(target).0, "the library's tables stay");
    let status = migrations::status_with(target, &[APP]).await.unwrap();
    assert_eq!(status.entries, entries(target, MigrationState::Applied, MigrationState::Pending));

    assert_eq!(migrations::run_pending_with(target, &[APP]).await.unwrap(), vec![app_ref()], "only the app's");
    assert!(tables().await.contains(&"widgets".to_owned()));

    // down N crosses sets, newest first: the app's, then the library's newest.
    let reverted = migrations::revert_last_with(target, 2, &[APP]).await.unwrap();
    assert_eq!(reverted, vec![app_ref(), library_refs(target).pop().unwrap()]);
    assert_eq!(migrations::run_pending_with(target, &[APP]).await.unwrap().len(), 2);
}

/// A library-only revert after the app's set was applied: the newest migration is the app's, which the library
/// does not know, so it refuses, names it, and reverts nothing, even when asked for more than that one.
async fn library_revert_refuses_the_apps_migration<F, Fut>(target: &MigrationTarget, tables: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Vec<String>>,
{
    migrations::run_pending_with(target, &[APP]).await.unwrap();
    let before = migrations::status_with(target, &[APP]).await.unwrap();
    for n in [1, 3] {
        let err = migrations::revert_last(target, n).await.unwrap_err();
        let failure = migration_failure(&err);
        assert_eq!(failure.action, "revert");
        assert_eq!(failure.migration.as_deref(), Some(WIDGETS), "{err}");
        let message = err.to_string();
        assert!(message.contains(WIDGETS) && message.contains("nothing was reverted"), "{message}");
        assert!(message.contains("cpc-data"), "names the sets it was given: {message}");
        assert_eq!(migrations::status_with(target, &[APP]).await.unwrap(), before, "nothing reverted (n = {n})");
        assert!(tables().await.contains(&"widgets".to_owned()));
        assert_eq!(ours(&tables().await), tables_of(target).0, "the library's tables all stay (n = {n})");
    }
    // A set named "app" that does not have it is no better: on PostgreSQL it clashes with the library (it has the
    // library's versions) and is refused; on SQLite it has no migrations, so the app's one is still unknown.
    let err = migrations::revert_last_with(target, 1, &[APP_AGAIN]).await.unwrap_err();
    match target {
        MigrationTarget::Postgres(_) => assert_eq!(migration_failure(&err).action, CHECK_SETS, "{err}"),
        _ => assert_eq!(migration_failure(&err).migration.as_deref(), Some(WIDGETS), "{err}"),
    }
    assert_eq!(migrations::status_with(target, &[APP]).await.unwrap(), before);
    // With the app's set it works.
    assert_eq!(migrations::revert_last_with(target, 1, &[APP]).await.unwrap(), vec![app_ref()]);
}

/// Sets that cannot run together are refused before anything touches the database: a version in two sets (named
/// with both sets), a version clashing with the library's, two sets with one name.
async fn clashing_sets_are_refused_before_anything_runs<F, Fut>(target: &MigrationTarget, tables: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Vec<String>>,
{
    let err = migrations::run_pending_with(target, &[APP, APP_COPY]).await.unwrap_err();
    let failure = migration_failure(&err);
    assert_eq!(failure.action, CHECK_SETS);
    let message = err.to_string();
    for part in [WIDGETS, "\"app\"", "\"app-copy\"", WIDGETS_NAME] {
        assert!(message.contains(part), "{part} missing from: {message}");
    }

    let err = migrations::run_pending_with(target, &[IMPOSTOR]).await.unwrap_err();
    let message = err.to_string();
    assert_eq!(migration_failure(&err).action, CHECK_SETS);
    assert!(message.contains("\"cpc-data\"") && message.contains("\"impostor\""), "{message}");
    assert!(message.contains(ALL[0]), "names the first clashing version: {message}");

    let err = migrations::run_pending_with(target, &[APP, APP_AGAIN]).await.unwrap_err();
    assert_eq!(migration_failure(&err).action, CHECK_SETS);
    assert!(err.to_string().contains("two migration sets are named \"app\""), "{err}");

    for (op, result) in [
        ("revert", migrations::revert_last_with(target, 1, &[APP, APP_COPY]).await.map(drop)),
        ("status", migrations::status_with(target, &[APP, APP_COPY]).await.map(drop)),
    ] {
        assert_eq!(migration_failure(&result.unwrap_err()).action, CHECK_SETS, "{op}");
    }
    assert_eq!(tables().await, Vec::<String>::new(), "nothing ran, not even diesel's bookkeeping table");
}

/// Three sets (library, app, plugin) run as one list by version; a revert whose N newest include one no given set
/// knows (the app's, below the plugin's) refuses before reverting any, even the plugin's it knows.
async fn a_revert_reaching_an_unknown_migration_reverts_nothing<F, Fut>(target: &MigrationTarget, tables: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Vec<String>>,
{
    let applied = migrations::run_pending_with(target, &[PLUGIN, APP]).await.unwrap();
    let tail: Vec<(&str, &str)> = applied.iter().rev().take(2).map(|m| (m.set, m.version.as_str())).collect();
    assert_eq!(tail, [("plugin", GADGETS), ("app", WIDGETS)], "by version, whatever the order of the sets");
    let before = migrations::status_with(target, &[APP, PLUGIN]).await.unwrap();

    let err = migrations::revert_last_with(target, 2, &[PLUGIN]).await.unwrap_err();
    assert_eq!(migration_failure(&err).migration.as_deref(), Some(WIDGETS), "{err}");
    assert!(err.to_string().contains("cpc-data, plugin"), "names the sets it was given: {err}");
    assert_eq!(migrations::status_with(target, &[APP, PLUGIN]).await.unwrap(), before, "the plugin's stays too");
    assert!(tables().await.contains(&"gadgets".to_owned()));

    // Its newest alone is fine.
    let reverted = migrations::revert_last_with(target, 1, &[PLUGIN]).await.unwrap();
    assert_eq!(reverted.iter().map(|m| m.version.as_str()).collect::<Vec<_>>(), [GADGETS]);
    assert!(!tables().await.contains(&"gadgets".to_owned()));
}

fn sqlite_all_tables(target: &MigrationTarget) -> Vec<String> {
    if !sqlite_path(target).exists() {
        return vec![];
    }
    sqlite_tables(target)
}

#[tokio::test]
async fn postgres_an_app_set_runs_beside_the_library() {
    let db = TestDatabase::create().await;
    app_set_beside_the_library(&pg_target(&db), || pg_tables(&db)).await;
}

#[tokio::test]
async fn sqlite_an_app_set_runs_beside_the_library() {
    let dir = tempfile::tempdir().unwrap();
    let target = sqlite_target(&dir);
    app_set_beside_the_library(&target, || async { sqlite_all_tables(&target) }).await;
}

#[tokio::test]
async fn postgres_a_library_only_revert_refuses_the_apps_migration_and_reverts_nothing() {
    let db = TestDatabase::create().await;
    library_revert_refuses_the_apps_migration(&pg_target(&db), || pg_tables(&db)).await;
}

#[tokio::test]
async fn sqlite_a_library_only_revert_refuses_the_apps_migration_and_reverts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let target = sqlite_target(&dir);
    library_revert_refuses_the_apps_migration(&target, || async { sqlite_all_tables(&target) }).await;
}

#[tokio::test]
async fn postgres_a_revert_reaching_an_unknown_migration_reverts_nothing() {
    let db = TestDatabase::create().await;
    a_revert_reaching_an_unknown_migration_reverts_nothing(&pg_target(&db), || pg_tables(&db)).await;
}

#[tokio::test]
async fn sqlite_a_revert_reaching_an_unknown_migration_reverts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let target = sqlite_target(&dir);
    a_revert_reaching_an_unknown_migration_reverts_nothing(&target, || async { sqlite_all_tables(&target) }).await;
}

#[tokio::test]
async fn postgres_clashing_sets_are_refused_before_anything_runs() {
    let db = TestDatabase::create().await;
    clashing_sets_are_refused_before_anything_runs(&pg_target(&db), || pg_tables(&db)).await;
}

#[tokio::test]
async fn sqlite_clashing_sets_are_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let target = sqlite_target(&dir);
    clashing_sets_are_refused_before_anything_runs(&target, || async { sqlite_all_tables(&target) }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_concurrent_migrators_with_an_app_set_apply_each_migration_once() {
    let db = TestDatabase::create().await;
    let target = pg_target(&db);
    let (a, b, c) = tokio::join!(
        migrations::run_pending_with(&target, &[APP]),
        migrations::run_pending_with(&target, &[APP]),
        migrations::run_pending(&target)
    );
    let mut applied: Vec<String> = [a.unwrap(), b.unwrap()].concat().into_iter().map(|m| m.version).collect();
    applied.extend(c.unwrap());
    applied.sort();
    let mut expected = all(&target);
    expected.push(WIDGETS.into());
    assert_eq!(applied, expected, "the advisory lock serialises migrators of both sets: each version applied once");
}

#[tokio::test]
async fn the_migrate_command_line_runs_the_apps_set() {
    let db = TestDatabase::create().await;
    let target = pg_target(&db);
    let out = migrations::cli_on(&target, &["up"], &[APP]).await.unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], format!("postgres {}: applied {} migration(s)", target.describe(), all(&target).len() + 1));
    assert_eq!(lines.last().unwrap().split_whitespace().collect::<Vec<_>>(), ["applied", "app", WIDGETS_NAME]);
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["applied", "cpc-data", &library_name(&target, ALL[0])]
    );

    let out = migrations::cli_on(&target, &["status"], &[APP]).await.unwrap();
    assert!(out.starts_with(&format!(
        "postgres {}: {} applied, 0 pending\n",
        target.describe(),
        all(&target).len() + 1
    )));
    assert!(out.lines().any(|l| l.split_whitespace().eq(["applied", "app", WIDGETS_NAME])), "{out}");
    // The library's own `migrate` (no app set) lists the app's migration as unknown, and its `down` refuses.
    let out = migrations::cli_on::<&str>(&target, &[], &[]).await.unwrap();
    assert!(out.lines().next().unwrap().ends_with(", 1 applied but in no set given"), "{out}");
    assert!(out.lines().any(|l| l.split_whitespace().eq(["unknown", "unknown", WIDGETS])), "{out}");
    let err = migrations::cli_on(&target, &["down"], &[]).await.unwrap_err();
    assert_eq!(err.exit_code(), 1);
    assert!(err.to_string().contains(WIDGETS), "{err}");

    let out = migrations::cli_on(&target, &["down", "1"], &[APP]).await.unwrap();
    assert_eq!(out.lines().nth(1).unwrap().split_whitespace().collect::<Vec<_>>(), ["reverted", "app", WIDGETS_NAME]);
    let err = migrations::cli_on(&target, &["down", "many"], &[APP]).await.unwrap_err();
    assert_eq!(err.exit_code(), 2, "{err}");
    let status = migrations::status_with(&target, &[APP]).await.unwrap();
    assert_eq!(status.entries, entries(&target, MigrationState::Applied, MigrationState::Pending));
}
