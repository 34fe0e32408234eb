//! The Diesel repositories against the same queries written by hand, side by side in one run. Run (needs
//! PostgreSQL; `DATABASE_URL` defaults to the local test server):
//!
//! ```sh
//! cargo bench -p cpc-adapters --all-features --bench diesel_repos
//! CPC_BENCH_ONLY=sqlite cargo bench -p cpc-adapters --all-features --bench diesel_repos   # SQLite only
//! ```
//!
//! PostgreSQL: it drops and recreates the database `cpc_bench_diesel`, migrates it with the embedded runner and
//! seeds `SEED_USERS` users. For 1 and 16 tasks, `find_by_id` (a random seeded id) and `create` (a new user) run
//! for `SECONDS` seconds each through `DbManager::users()`, through raw diesel-async (`AsyncPgConnection`s from a
//! `Pool<DieselPgBackend>`, the same `SELECT`/`INSERT` written with Diesel's DSL) and through raw tokio-postgres
//! (statements prepared once per connection with `prepare_cached`, from our `PgPool`); every pool holds as many
//! connections as there are tasks. Then `BULK` users inserted with one `create_many` against `BULK` `create`s one
//! after the other. SQLite: the same on a migrated temporary file (WAL), the repository against rusqlite with
//! cached prepared statements through `SqlitePool::interact` and against raw Diesel on the
//! `SyncConnectionWrapper<SqliteConnection>` the repository uses, both through the wrapper's `AsyncConnection` and
//! with Diesel's synchronous `RunQueryDsl` inside the wrapper's `spawn_blocking`.
//!
//! Rounds are interleaved (`ROUNDS` of each measurement) and the best round of each kept, as the machine is
//! shared.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use chrono::{SecondsFormat, Utc};
use cpc_adapters::diesel::migrations::{self, MigrationTarget};
use cpc_adapters::diesel::repos::{DbTime, DbUuid};
use cpc_adapters::diesel::schema::postgres::users;
use cpc_adapters::diesel::schema::sqlite::users as sqlite_users;
use cpc_adapters::diesel::{DbManager, DieselPgBackend, DieselSqliteBackend};
use cpc_adapters::pool::{Pool, PoolConfig, PoolFactory};
use cpc_adapters::postgres::PgConfig;
use cpc_adapters::sqlite::SqliteConfig;
use cpc_domain::{NewUser, UserId};
use cpc_ports::UserRepository;
use diesel::{ExpressionMethods, OptionalExtension, QueryDsl};
use futures::FutureExt;
use uuid::Uuid;

mod common;
#[path = "common/users.rs"]
mod users_row;
use common::{best, measure, rotated};
use users_row::{SQLITE_FIND, UserTuple, sqlite_row};

const ROUNDS: usize = 3;
const SEED_USERS: usize = 10_000;
const BULK: usize = 10_000;
const TASKS: [usize; 2] = [1, 16];
const DB: &str = "cpc_bench_diesel";

/// Unique usernames across the whole run.
static NEXT_NAME: AtomicU64 = AtomicU64::new(0);

fn fresh_name() -> (String, String) {
    let n = NEXT_NAME.fetch_add(1, Ordering::Relaxed);
    (format!("user{n:06}"), format!("user{n:06}@bench.example"))
}

fn fresh_user() -> NewUser {
    let (name, email) = fresh_name();
    NewUser::new(&name, &email).unwrap()
}

/// `CPC_BENCH_ONLY=bulk`: run only the `create_many` against one-by-one comparison.
fn bulk_only() -> bool {
    std::env::var("CPC_BENCH_ONLY").is_ok_and(|v| v == "bulk")
}

/// `CPC_BENCH_ONLY=sqlite`: run only the SQLite measurements (no PostgreSQL needed).
fn sqlite_only() -> bool {
    std::env::var("CPC_BENCH_ONLY").is_ok_and(|v| v == "sqlite")
}

/// A `users` row as raw Diesel loads it on SQLite.
type SqliteUserRow = (DbUuid, String, String, DbTime, DbTime, i64);

/// Prints one row per (operation, tasks): each implementation's ops/s and the repository's ratio to each.
fn print_table(title: &str, names: &[&str], rows: &[(&str, usize, Vec<f64>)]) {
    println!("\n### {title}\n");
    let mut header = "| operation | tasks |".to_owned();
    let mut rule = "|---|---:|".to_owned();
    for n in names {
        header += &format!(" {n} (ops/s) |");
        rule += "---:|";
    }
    for n in &names[1..] {
        header += &format!(" {} / {n} |", names[0]);
        rule += "---:|";
    }
    println!("{header}\n{rule}");
    for (op, tasks, values) in rows {
        let mut line = format!("| {op} | {tasks} |");
        for v in values {
            line += &format!(" {v:.0} |");
        }
        for v in &values[1..] {
            line += &format!(" {:.2}x |", values[0] / v);
        }
        println!("{line}");
    }
}

fn print_bulk(title: &str, rows: &[(&str, f64, f64)]) {
    println!("\n### {title}\n");
    println!("| backend | {BULK} x create, one by one (rows/s) | create_many({BULK}) (rows/s) | speedup |");
    println!("|---|---:|---:|---:|");
    for (backend, one, many) in rows {
        println!("| {backend} | {one:.0} | {many:.0} | {:.1}x |", many / one);
    }
}

/// Rows per second of `BULK` sequential `create`s and of one `create_many` (best of `ROUNDS` each).
async fn bulk(repo: &Arc<dyn UserRepository>) -> (f64, f64) {
    let (mut one, mut many) = (0.0, 0.0);
    for _ in 0..ROUNDS {
        let batch: Vec<NewUser> = (0..BULK).map(|_| fresh_user()).collect();
        let started = Instant::now();
        for u in batch {
            repo.create(u).await.unwrap();
        }
        best(&mut one, BULK as f64 / started.elapsed().as_secs_f64());
        let batch: Vec<NewUser> = (0..BULK).map(|_| fresh_user()).collect();
        let started = Instant::now();
        let made = repo.create_many(batch).await.unwrap();
        best(&mut many, BULK as f64 / started.elapsed().as_secs_f64());
        assert_eq!(made.len(), BULK);
    }
    (one, many)
}

// --- PostgreSQL -----------------------------------------------------------------------------------------------

const PG_FIND: &str = "SELECT id, username, email, created_at, updated_at, version FROM users WHERE id = $1";
const PG_INSERT: &str =
    "INSERT INTO users (id, username, email, created_at, updated_at, version) VALUES ($1, $2, $3, $4, $5, $6)";

fn server() -> PgConfig {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    PgConfig::from_url(&url).expect("DATABASE_URL")
}

async fn pg_admin(config: &PgConfig, sql: &str) {
    let admin = PoolFactory::create_postgres_pool(config, &PoolConfig::default().max_connections(1)).await.unwrap();
    admin.get().await.unwrap().batch_execute(sql).await.unwrap();
}

/// `[find_by_id, create]` x `TASKS` ops/s for the repository, raw diesel-async and raw tokio-postgres.
async fn pg_round(round: usize, db: &PgConfig, ids: &Arc<Vec<Uuid>>, out: &mut [[[f64; 3]; 2]; 2]) {
    for (t, &tasks) in TASKS.iter().enumerate() {
        let pool_config = PoolConfig::default().max_connections(tasks as u32);
        let manager = DbManager::postgres(db, &pool_config).await.unwrap();
        let diesel_pool = Pool::new(DieselPgBackend::new(db).unwrap(), &pool_config, "bench-diesel").await.unwrap();
        let pg_pool = PoolFactory::create_postgres_pool(db, &pool_config).await.unwrap();

        let (repo, ids_) = (manager.users(), ids.clone());
        let repo_find = measure(tasks, move |r| {
            let (repo, id) = (repo.clone(), ids_[r as usize % ids_.len()]);
            async move {
                let user = repo.find_by_id(&UserId::from_uuid(id)).await.unwrap();
                assert!(user.is_some());
            }
        });
        let (pool, ids_) = (diesel_pool.clone(), ids.clone());
        let diesel_find = measure(tasks, move |r| {
            let (pool, id) = (pool.clone(), ids_[r as usize % ids_.len()]);
            async move {
                let mut conn = pool.get().await.unwrap();
                let query = users::table.filter(users::id.eq(id));
                let row: Option<UserTuple> =
                    diesel_async::RunQueryDsl::get_result(query, &mut *conn).await.optional().unwrap();
                assert!(row.is_some());
            }
        });
        let (pool, ids_) = (pg_pool.clone(), ids.clone());
        let pg_find = measure(tasks, move |r| {
            let (pool, id) = (pool.clone(), ids_[r as usize % ids_.len()]);
            async move {
                let mut conn = pool.get().await.unwrap();
                let stmt = conn.prepare_cached(PG_FIND).await.unwrap();
                let row = conn.query_opt(&stmt, &[&id]).await.unwrap().unwrap();
                let decoded: UserTuple = (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4), row.get(5));
                std::hint::black_box(decoded);
            }
        });
        rotated(round, vec![repo_find.boxed(), diesel_find.boxed(), pg_find.boxed()], &mut out[0][t]).await;

        let repo = manager.users();
        let repo_create = measure(tasks, move |_| {
            let repo = repo.clone();
            async move {
                repo.create(fresh_user()).await.unwrap();
            }
        });
        let pool = diesel_pool.clone();
        let diesel_create = measure(tasks, move |_| {
            let pool = pool.clone();
            async move {
                let (name, email) = fresh_name();
                let now = Utc::now();
                let mut conn = pool.get().await.unwrap();
                let insert = diesel::insert_into(users::table).values((
                    users::id.eq(Uuid::now_v7()),
                    users::username.eq(name),
                    users::email.eq(email),
                    users::created_at.eq(now),
                    users::updated_at.eq(now),
                    users::version.eq(1i64),
                ));
                diesel_async::RunQueryDsl::execute(insert, &mut *conn).await.unwrap();
            }
        });
        let pool = pg_pool.clone();
        let pg_create = measure(tasks, move |_| {
            let pool = pool.clone();
            async move {
                let (name, email) = fresh_name();
                let now = Utc::now();
                let mut conn = pool.get().await.unwrap();
                let stmt = conn.prepare_cached(PG_INSERT).await.unwrap();
                let id = Uuid::now_v7();
                tokio_postgres::Client::execute(&conn, &stmt, &[&id, &name, &email, &now, &now, &1i64]).await.unwrap();
            }
        });
        rotated(round, vec![repo_create.boxed(), diesel_create.boxed(), pg_create.boxed()], &mut out[1][t]).await;
    }
}

async fn postgres() -> (Vec<(&'static str, usize, Vec<f64>)>, (f64, f64)) {
    let server = server();
    pg_admin(&server, &format!("DROP DATABASE IF EXISTS {DB} WITH (FORCE)")).await;
    pg_admin(&server, &format!("CREATE DATABASE {DB}")).await;
    let mut db = server.clone();
    db.database = DB.into();
    migrations::run_pending(&MigrationTarget::Postgres(db.clone())).await.unwrap();

    let manager = DbManager::postgres(&db, &PoolConfig::default().max_connections(4)).await.unwrap();
    let seeded = manager.users().create_many((0..SEED_USERS).map(|_| fresh_user()).collect()).await.unwrap();
    let ids: Arc<Vec<Uuid>> = Arc::new(seeded.iter().map(|u| *u.id.as_uuid()).collect());

    let mut out = [[[0.0; 3]; 2]; 2];
    for round in (0..ROUNDS).filter(|_| !bulk_only()) {
        pg_round(round, &db, &ids, &mut out).await;
    }
    let bulk = bulk(&manager.users()).await;
    drop(manager);
    pg_admin(&server, &format!("DROP DATABASE IF EXISTS {DB} WITH (FORCE)")).await;
    (rows(&out), bulk)
}

fn rows<const N: usize>(out: &[[[f64; N]; 2]; 2]) -> Vec<(&'static str, usize, Vec<f64>)> {
    let mut rows = Vec::new();
    for (o, op) in ["find_by_id", "create"].into_iter().enumerate() {
        for (t, &tasks) in TASKS.iter().enumerate() {
            rows.push((op, tasks, out[o][t].to_vec()));
        }
    }
    rows
}

// --- SQLite ---------------------------------------------------------------------------------------------------

const SQLITE_INSERT: &str =
    "INSERT INTO users (id, username, email, created_at, updated_at, version) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

/// `[find_by_id, create]` x `TASKS` ops/s for the repository, raw rusqlite and raw Diesel on the wrapped
/// synchronous connection the repository uses (from a `Pool<DieselSqliteBackend>`), both through the wrapper's
/// `AsyncConnection` and with Diesel's synchronous `RunQueryDsl` inside the wrapper's `spawn_blocking`.
async fn sqlite_round(round: usize, config: &SqliteConfig, ids: &Arc<Vec<String>>, out: &mut [[[f64; 4]; 2]; 2]) {
    for (t, &tasks) in TASKS.iter().enumerate() {
        let pool_config = PoolConfig::default().max_connections(tasks as u32);
        let manager = DbManager::sqlite(config, &pool_config).await.unwrap();
        let raw = PoolFactory::create_sqlite_pool(config, &pool_config).await.unwrap();
        let diesel_pool =
            Pool::new(DieselSqliteBackend::new(config).unwrap(), &pool_config, "bench-diesel-sqlite").await.unwrap();

        let (repo, ids_) = (manager.users(), ids.clone());
        let repo_find = measure(tasks, move |r| {
            let (repo, id) = (repo.clone(), UserId::parse(&ids_[r as usize % ids_.len()]).unwrap());
            async move {
                assert!(repo.find_by_id(&id).await.unwrap().is_some());
            }
        });
        let (pool, ids_) = (raw.clone(), ids.clone());
        let raw_find = measure(tasks, move |r| {
            let (pool, id) = (pool.clone(), ids_[r as usize % ids_.len()].clone());
            async move {
                let row = pool.interact(move |c| c.prepare_cached(SQLITE_FIND)?.query_row([id], sqlite_row)).await;
                std::hint::black_box(row.unwrap());
            }
        });
        let (pool, ids_) = (diesel_pool.clone(), ids.clone());
        let diesel_find = measure(tasks, move |r| {
            let (pool, id) = (pool.clone(), Uuid::parse_str(&ids_[r as usize % ids_.len()]).unwrap());
            async move {
                let mut conn = pool.get().await.unwrap();
                let query = sqlite_users::table.filter(sqlite_users::id.eq(DbUuid(id)));
                let row: Option<SqliteUserRow> =
                    diesel_async::RunQueryDsl::get_result(query, &mut *conn).await.optional().unwrap();
                assert!(row.is_some());
            }
        });
        let (pool, ids_) = (diesel_pool.clone(), ids.clone());
        let blocking_find = measure(tasks, move |r| {
            let (pool, id) = (pool.clone(), Uuid::parse_str(&ids_[r as usize % ids_.len()]).unwrap());
            async move {
                let mut conn = pool.get().await.unwrap();
                let query = sqlite_users::table.filter(sqlite_users::id.eq(DbUuid(id)));
                let row: Option<SqliteUserRow> =
                    conn.spawn_blocking(move |c| diesel::RunQueryDsl::get_result(query, c).optional()).await.unwrap();
                assert!(row.is_some());
            }
        });
        let finds = vec![repo_find.boxed(), raw_find.boxed(), diesel_find.boxed(), blocking_find.boxed()];
        rotated(round, finds, &mut out[0][t]).await;

        let repo = manager.users();
        let repo_create = measure(tasks, move |_| {
            let repo = repo.clone();
            async move {
                repo.create(fresh_user()).await.unwrap();
            }
        });
        let pool = raw.clone();
        let raw_create = measure(tasks, move |_| {
            let pool = pool.clone();
            async move {
                let (name, email) = fresh_name();
                let now = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
                let id = Uuid::now_v7().hyphenated().to_string();
                pool.interact(move |c| {
                    c.prepare_cached(SQLITE_INSERT)?.execute(rusqlite::params![id, name, email, now, now, 1i64])
                })
                .await
                .unwrap();
            }
        });
        // Raw Diesel's insert: through the wrapper's `AsyncConnection`, or (`blocking`) the synchronous
        // `RunQueryDsl` inside the wrapper's `spawn_blocking`.
        let diesel_create = |blocking: bool| {
            let pool = diesel_pool.clone();
            measure(tasks, move |_| {
                let pool = pool.clone();
                async move {
                    let (name, email) = fresh_name();
                    let now = DbTime(Utc::now());
                    let mut conn = pool.get().await.unwrap();
                    let insert = diesel::insert_into(sqlite_users::table).values((
                        sqlite_users::id.eq(DbUuid(Uuid::now_v7())),
                        sqlite_users::username.eq(name),
                        sqlite_users::email.eq(email),
                        sqlite_users::created_at.eq(now),
                        sqlite_users::updated_at.eq(now),
                        sqlite_users::version.eq(1i64),
                    ));
                    if blocking {
                        conn.spawn_blocking(move |c| diesel::RunQueryDsl::execute(insert, c)).await.unwrap();
                    } else {
                        diesel_async::RunQueryDsl::execute(insert, &mut *conn).await.unwrap();
                    }
                }
            })
        };
        let (diesel_create, blocking_create) = (diesel_create(false), diesel_create(true));
        let creates = vec![repo_create.boxed(), raw_create.boxed(), diesel_create.boxed(), blocking_create.boxed()];
        rotated(round, creates, &mut out[1][t]).await;
    }
}

async fn sqlite() -> (Vec<(&'static str, usize, Vec<f64>)>, (f64, f64)) {
    let dir = tempfile::tempdir().unwrap();
    let config = SqliteConfig::file(dir.path().join("bench.db"));
    migrations::run_pending(&MigrationTarget::Sqlite(config.clone())).await.unwrap();

    let manager = DbManager::sqlite(&config, &PoolConfig::default().max_connections(4)).await.unwrap();
    let seeded = manager.users().create_many((0..SEED_USERS).map(|_| fresh_user()).collect()).await.unwrap();
    let ids: Arc<Vec<String>> = Arc::new(seeded.iter().map(|u| u.id.as_uuid().hyphenated().to_string()).collect());

    let mut out = [[[0.0; 4]; 2]; 2];
    for round in (0..ROUNDS).filter(|_| !bulk_only()) {
        sqlite_round(round, &config, &ids, &mut out).await;
    }
    let bulk = bulk(&manager.users()).await;
    (rows(&out), bulk)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !common::started_by_cargo_bench() {
        return;
    }
    let pg = if sqlite_only() { None } else { Some(postgres().await) };
    let (lite, lite_bulk) = sqlite().await;
    if !bulk_only() {
        if let Some((pg, _)) = &pg {
            print_table(
                "PostgreSQL: repository vs raw diesel-async vs raw tokio-postgres",
                &["repository", "raw diesel-async", "raw tokio-postgres"],
                pg,
            );
        }
        print_table(
            "SQLite: repository vs raw rusqlite vs raw Diesel",
            &["repository", "raw rusqlite", "raw diesel (AsyncConnection)", "raw diesel (sync, spawn_blocking)"],
            &lite,
        );
    }
    let mut bulk_rows = Vec::new();
    if let Some((_, (one, many))) = pg {
        bulk_rows.push(("postgres", one, many));
    }
    bulk_rows.push(("sqlite", lite_bulk.0, lite_bulk.1));
    print_bulk("create_many vs one-by-one create", &bulk_rows);
}
