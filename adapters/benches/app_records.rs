//! An app's own record (declared with `record!`) against the built-in `users` repository and raw diesel-async,
//! side by side in one run. Run (needs PostgreSQL; `DATABASE_URL` defaults to the local test server):
//!
//! ```sh
//! cargo bench -p cpc-adapters --all-features --bench app_records
//! ```
//!
//! It drops and recreates the database `cpc_bench_app_records`, migrates it with the embedded runner, creates the
//! app's table `accounts` (the same six columns and unique indexes as `users`) and seeds `SEED` rows in each. For
//! 1 and 16 tasks, `find_by_id` (a random seeded id) and `create` (a new row) run for 3 s each (after a warm-up)
//! through `DbManager::repository::<Account>()`, through `DbManager::users()`, and through raw diesel-async (the
//! same `SELECT`/`INSERT` on `accounts` written with Diesel's DSL on `AsyncPgConnection`s from a
//! `Pool<DieselPgBackend>`). Every pool holds as many connections as there are tasks. Rounds are interleaved
//! (`ROUNDS` of each, the one going first rotating) and the best round of each kept, as the machine is shared.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use cpc_adapters::diesel::migrations::{self, MigrationTarget};
use cpc_adapters::diesel::repos::{DbTime, DbUuid};
use cpc_adapters::diesel::{DbManager, DieselPgBackend};
use cpc_adapters::pool::{Pool, PoolConfig, PoolFactory};
use cpc_adapters::postgres::PgConfig;
use cpc_domain::{NewUser, UserId};
use diesel::{ExpressionMethods, OptionalExtension, QueryDsl};
use futures::FutureExt;
use uuid::Uuid;

mod common;
use common::{measure, rotated};

const ROUNDS: usize = 3;
const SEED: usize = 10_000;
const TASKS: [usize; 2] = [1, 16];
const DB: &str = "cpc_bench_app_records";

diesel::table! {
    use cpc_adapters::diesel::sql_types::*;
    accounts (id) {
        id -> Uuid,
        username -> Text,
        email -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        version -> BigInt,
    }
}

/// The app's record: six columns, like `users`.
#[derive(Debug, Clone, PartialEq, diesel::Queryable, diesel::Selectable)]
#[diesel(table_name = accounts)]
pub struct Account {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
}

#[derive(Debug, Clone)]
pub struct NewAccount {
    pub username: String,
    pub email: String,
}

#[derive(Debug, Clone, Default)]
pub struct AccountChanges {
    pub email: Option<String>,
}

cpc_adapters::record! {
    Account in accounts as "account" {
        key: id: Uuid,
        new: NewAccount,
        update: AccountChanges { email },
        fields: AccountField { username, email },
        version: version,
        created_at: created_at,
        updated_at: updated_at,
    }
}

const ACCOUNTS: &str = "CREATE TABLE accounts (
    id UUID PRIMARY KEY, username TEXT NOT NULL UNIQUE, email TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL, updated_at TIMESTAMPTZ NOT NULL, version BIGINT NOT NULL);
CREATE UNIQUE INDEX accounts_email_key ON accounts (lower(email));";

static NEXT_NAME: AtomicU64 = AtomicU64::new(0);

fn fresh_name() -> (String, String) {
    let n = NEXT_NAME.fetch_add(1, Ordering::Relaxed);
    (format!("user{n:06}"), format!("user{n:06}@bench.example"))
}

fn server() -> PgConfig {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    PgConfig::from_url(&url).expect("DATABASE_URL")
}

async fn admin(config: &PgConfig, sql: &str) {
    let admin = PoolFactory::create_postgres_pool(config, &PoolConfig::default().max_connections(1)).await.unwrap();
    admin.get().await.unwrap().batch_execute(sql).await.unwrap();
}

/// `[find_by_id, create]` x `TASKS` ops/s for the app record, `users` and raw diesel-async.
async fn round(round: usize, db: &PgConfig, ids: &Arc<(Vec<Uuid>, Vec<Uuid>)>, out: &mut [[[f64; 3]; 2]; 2]) {
    for (t, &tasks) in TASKS.iter().enumerate() {
        let pool_config = PoolConfig::default().max_connections(tasks as u32);
        let manager = DbManager::postgres(db, &pool_config).await.unwrap();
        let raw_pool = Pool::new(DieselPgBackend::new(db).unwrap(), &pool_config, "bench-raw").await.unwrap();

        let (repo, ids_) = (manager.repository::<Account>(), ids.clone());
        let app_find = measure(tasks, move |r| {
            let (repo, id) = (repo.clone(), ids_.0[r as usize % ids_.0.len()]);
            async move { assert!(repo.find_by_id(&id).await.unwrap().is_some()) }
        });
        let (repo, ids_) = (manager.users(), ids.clone());
        let users_find = measure(tasks, move |r| {
            let (repo, id) = (repo.clone(), ids_.1[r as usize % ids_.1.len()]);
            async move { assert!(repo.find_by_id(&UserId::from_uuid(id)).await.unwrap().is_some()) }
        });
        let (pool, ids_) = (raw_pool.clone(), ids.clone());
        let raw_find = measure(tasks, move |r| {
            let (pool, id) = (pool.clone(), ids_.0[r as usize % ids_.0.len()]);
            async move {
                let mut conn = pool.get().await.unwrap();
                let query = accounts::table.filter(accounts::id.eq(DbUuid(id)));
                let row: Option<(DbUuid, String, String, DbTime, DbTime, i64)> =
                    diesel_async::RunQueryDsl::get_result(query, &mut *conn).await.optional().unwrap();
                assert!(row.is_some());
            }
        });
        rotated(round, vec![app_find.boxed(), users_find.boxed(), raw_find.boxed()], &mut out[0][t]).await;

        let repo = manager.repository::<Account>();
        let app_create = measure(tasks, move |_| {
            let repo = repo.clone();
            async move {
                let (username, email) = fresh_name();
                repo.create(NewAccount { username, email }).await.unwrap();
            }
        });
        let repo = manager.users();
        let users_create = measure(tasks, move |_| {
            let repo = repo.clone();
            async move {
                let (name, email) = fresh_name();
                repo.create(NewUser::new(&name, &email).unwrap()).await.unwrap();
            }
        });
        let pool = raw_pool.clone();
        let raw_create = measure(tasks, move |_| {
            let pool = pool.clone();
            async move {
                let (name, email) = fresh_name();
                let now = DbTime(cpc_ports::repository::stored_now());
                let mut conn = pool.get().await.unwrap();
                let insert = diesel::insert_into(accounts::table).values((
                    accounts::id.eq(DbUuid(Uuid::now_v7())),
                    accounts::username.eq(name),
                    accounts::email.eq(email),
                    accounts::created_at.eq(now),
                    accounts::updated_at.eq(now),
                    accounts::version.eq(1i64),
                ));
                diesel_async::RunQueryDsl::execute(insert, &mut *conn).await.unwrap();
            }
        });
        rotated(round, vec![app_create.boxed(), users_create.boxed(), raw_create.boxed()], &mut out[1][t]).await;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !common::started_by_cargo_bench() {
        return;
    }
    let server = server();
    admin(&server, &format!("DROP DATABASE IF EXISTS {DB} WITH (FORCE)")).await;
    admin(&server, &format!("CREATE DATABASE {DB}")).await;
    let mut db = server.clone();
    db.database = DB.into();
    migrations::run_pending(&MigrationTarget::Postgres(db.clone())).await.unwrap();
    admin(&db, ACCOUNTS).await;

    let manager = DbManager::postgres(&db, &PoolConfig::default().max_connections(4)).await.unwrap();
    let names = || (0..SEED).map(|_| fresh_name()).collect::<Vec<_>>();
    let accounts = manager
        .repository::<Account>()
        .create_many(names().into_iter().map(|(username, email)| NewAccount { username, email }).collect())
        .await
        .unwrap();
    let users =
        manager.users().create_many(names().iter().map(|(n, e)| NewUser::new(n, e).unwrap()).collect()).await.unwrap();
    let ids = Arc::new((accounts.iter().map(|a| a.id).collect(), users.iter().map(|u| *u.id.as_uuid()).collect()));
    drop(manager);

    let mut out = [[[0.0; 3]; 2]; 2];
    for r in 0..ROUNDS {
        round(r, &db, &ids, &mut out).await;
    }
    println!("\n### PostgreSQL: an app-declared record vs the built-in users repository vs raw diesel-async\n");
    println!(
        "| operation | tasks | app record (ops/s) | users (ops/s) | raw diesel-async (ops/s) | app / users | app / raw diesel-async |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (o, op) in ["find_by_id", "create"].iter().enumerate() {
        for (t, tasks) in TASKS.iter().enumerate() {
            let [app, users, raw] = out[o][t];
            println!("| {op} | {tasks} | {app:.0} | {users:.0} | {raw:.0} | {:.2}x | {:.2}x |", app / users, app / raw);
        }
    }
}
