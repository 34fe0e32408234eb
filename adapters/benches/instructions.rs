//! One subject's operation run `N` times, for counting instructions per operation under callgrind
//! (`scripts/instructions.sh` runs it; see docs/BENCHMARKS.md, "Instructions per operation"). Alone:
//!
//! ```sh
//! cargo bench -p cpc-adapters --features redis,diesel --bench instructions -- SUBJECT N [TASKS]
//! ```
//!
//! It sets the subject up (connects, seeds), runs its operation `N` times in total over `TASKS` tasks (default 1)
//! on a current-thread tokio runtime (in [`measured`]), and exits. The script runs each subject for two values
//! of `N` under `valgrind --tool=callgrind --collect-atstart=no`, collecting only inside [`measured`] on the main
//! thread and on tokio's blocking threads (where the SQLite subjects do their work), and divides the difference
//! of the two runs' instructions by the difference of `N`: what the measured part costs once per run (spawning
//! the tasks, the blocking threads' share of the set-up) cancels, and what is left is the steady-state cost of
//! one operation. `list` prints the subjects.
//!
//! Needs Redis at `REDIS_URL` (default `redis://127.0.0.1:6379`) for the cache subjects; every key it writes
//! expires within a minute.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "common/bare_redis.rs"]
mod bare_redis;
mod common;
#[path = "common/noop.rs"]
mod noop;
#[path = "common/sqlite_reads.rs"]
mod sqlite_reads;
#[path = "common/users.rs"]
mod users_row;

use std::sync::Arc;
use std::time::Duration;

use bare_redis::{Bare, Kind};
use cpc_adapters::diesel::migrations::{self, MigrationTarget};
use cpc_adapters::diesel::repos::{DbTime, DbUuid};
use cpc_adapters::diesel::schema::sqlite::users as sqlite_users;
use cpc_adapters::diesel::{DbManager, DieselSqliteBackend};
use cpc_adapters::pool::{Pool, PoolConfig, PoolFactory};
use cpc_adapters::redis::{CacheManager, RedisManager, RedisRateLimiter};
use cpc_adapters::sqlite::{SqliteConfig, SqlitePool};
use cpc_domain::{NewUser, UserId};
use cpc_ports::{Bytes, Cache, CacheKey, RateLimitKey, RateLimitPolicy, RateLimiter, UserRepository};
use diesel::{ExpressionMethods, OptionalExtension, QueryDsl};
use noop::{NoopBackend, NoopBb8};
use users_row::{SQLITE_FIND, sqlite_row};

/// Keys the cache subjects read and write (`k0` .. `k999`), each holding [`VALUE`].
const KEYS: u64 = 1000;
/// The value under every key: 3 bytes, as `redis-benchmark` writes.
const VALUE: &[u8] = b"xxx";
/// The TTL of every write (the cache's default TTL, and the bare clients' `PX`).
const TTL: Duration = Duration::from_secs(60);
/// [`TTL`] in milliseconds, as the bare clients send it.
const TTL_MS: u64 = 60_000;
/// Users seeded for `find_by_id`.
const USERS: usize = 1000;
/// Rate-limit keys the `rl-` subjects check (`u0` .. `u9999`), as the `redis_ops` bench does.
const RL_KEYS: u64 = 10_000;
/// The token bucket of the `rl-` subjects (the `redis_ops` bench's).
const TOKEN_BUCKET: RateLimitPolicy =
    RateLimitPolicy::TokenBucket { capacity: 1000, refill_tokens: 100, refill_interval: Duration::from_secs(1) };
/// The sliding window of the `rl-` subjects (the `redis_ops` bench's).
const SLIDING_WINDOW: RateLimitPolicy = RateLimitPolicy::SlidingWindow { limit: 100, window: Duration::from_secs(1) };

/// The subjects: `(name, what it runs)`. Pairs "ours" / "bare" are put side by side by the script.
const SUBJECTS: &[(&str, &str)] = &[
    ("pool-cpc", "cpc Pool (metrics on, default config, 8 connections, no-op backend): get + drop"),
    ("pool-bb8", "bare bb8 (defaults, 8 connections, no-op manager): get + drop"),
    ("get-cpc", "CacheManager::get_bytes of a present key"),
    ("get-multiplexed", "bare redis-rs MultiplexedConnection GET of the same stored key"),
    ("get-manager", "bare redis-rs ConnectionManager GET of the same stored key"),
    ("get-fred", "fred Client GET of the same stored key"),
    ("set-cpc", "CacheManager::set_bytes (default TTL)"),
    ("set-multiplexed", "bare redis-rs MultiplexedConnection SET .. PX, same key and value"),
    ("set-manager", "bare redis-rs ConnectionManager SET .. PX, same key and value"),
    ("set-fred", "fred Client SET .. PX, same key and value"),
    ("find-cpc", "UserRepository::find_by_id on SQLite (DbManager::users())"),
    ("find-rusqlite", "rusqlite: cached prepared SELECT through SqlitePool::interact, decoded to the same types"),
    ("find-diesel", "raw Diesel on the repository's SyncConnectionWrapper<SqliteConnection>, same pool type"),
    (
        "find-diesel-blocking",
        "raw Diesel, the synchronous RunQueryDsl in one spawn_blocking on the same wrapped connection and pool type",
    ),
    ("find-rusqlite-sync", "rusqlite on one connection, synchronous, no pool, no thread hop (the floor)"),
    ("rl-token-cpc", "RedisRateLimiter::check, token bucket (capacity 1000, 100/s), cost 1, over 10,000 keys"),
    ("rl-sliding-cpc", "RedisRateLimiter::check, sliding window (100 per second), cost 1, over 10,000 keys"),
    (
        "rl-sliding-script",
        "bare redis-rs MultiplexedConnection: one EVALSHA per check of a hand-written sliding log script",
    ),
];

/// A `users` row as raw Diesel loads it on SQLite.
type SqliteUserRow = (DbUuid, String, String, DbTime, DbTime, i64);

/// What one subject holds once set up.
enum Subject {
    PoolCpc(Pool<NoopBackend>),
    PoolBb8(bb8::Pool<NoopBb8>),
    GetCpc(Arc<CacheManager>),
    SetCpc(Arc<CacheManager>),
    /// A bare client's `GET` of the stored key (the cache's stored prefix, then the key).
    GetBare(Bare, Arc<str>),
    /// A bare client's `SET .. PX`.
    SetBare(Bare, Arc<str>),
    FindCpc(Arc<dyn UserRepository>, Arc<Vec<UserId>>),
    FindRusqlite(SqlitePool, Arc<Vec<String>>),
    /// Raw Diesel: through the wrapper's `AsyncConnection` (`false`), or the synchronous `RunQueryDsl` inside
    /// the wrapper's `spawn_blocking` (`true`).
    FindDiesel(Pool<DieselSqliteBackend>, Arc<Vec<DbUuid>>, bool),
    FindRusqliteSync(Arc<std::sync::Mutex<rusqlite::Connection>>, Arc<Vec<String>>),
    /// A rate-limit check with this policy.
    RateLimit(Arc<RedisRateLimiter>, RateLimitPolicy, Arc<Vec<RateLimitKey>>),
    /// `bare_redis::SLIDING_WINDOW` per check, keys under this prefix.
    SlidingScript(redis::aio::MultiplexedConnection, Arc<redis::Script>, Arc<str>),
    /// The `sqlite-reads` group.
    SqliteReads(sqlite_reads::Reads),
}

/// The cache key of call `i`, as the `redis_ops` bench names it.
fn cache_key(i: u64) -> CacheKey {
    CacheKey::new(format!("k{}", i % KEYS)).unwrap()
}

/// The stored name of call `i`'s key, as a bare client would write it: `prefix` is the cache's stored prefix.
fn stored_key(prefix: &str, i: u64) -> String {
    bare_redis::stored_key(prefix, i, KEYS)
}

/// A migrated SQLite file with [`USERS`] users, in a fresh temporary directory.
async fn sqlite_db() -> (SqliteConfig, Vec<UserId>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = SqliteConfig::file(dir.path().join("instructions.db"));
    migrations::run_pending(&MigrationTarget::Sqlite(config.clone())).await.unwrap();
    let manager = DbManager::sqlite(&config, &PoolConfig::default().max_connections(1)).await.unwrap();
    let users = (0..USERS).map(|n| NewUser::new(&format!("user{n:05}"), &format!("user{n:05}@bench.example")).unwrap());
    let made = manager.users().create_many(users.collect()).await.unwrap();
    (config, made.into_iter().map(|u| u.id).collect(), dir)
}

impl Subject {
    /// Sets subject `name` up for `tasks` tasks; the SQLite subjects' database lives as long as the directory
    /// returned with them.
    async fn new(name: &str, tasks: usize) -> (Self, Option<tempfile::TempDir>) {
        if name.starts_with("pool-") {
            let pool_config = PoolConfig::default().max_connections(8);
            let subject = match name {
                "pool-cpc" => Self::PoolCpc(Pool::new(NoopBackend, &pool_config, "instructions").await.unwrap()),
                _ => Self::PoolBb8(bb8::Pool::builder().max_size(8).build(NoopBb8).await.unwrap()),
            };
            return (subject, None);
        }
        if sqlite_reads::has(name) {
            let (config, ids, dir) = sqlite_db().await;
            return (Self::SqliteReads(sqlite_reads::Reads::new(name, &config, ids, tasks).await), Some(dir));
        }
        if name.starts_with("find-") {
            let (config, ids, dir) = sqlite_db().await;
            let pool_config = PoolConfig::default().max_connections(tasks as u32);
            let text = |ids: &[UserId]| Arc::new(ids.iter().map(|id| id.as_uuid().hyphenated().to_string()).collect());
            let subject = match name {
                "find-cpc" => {
                    let manager = DbManager::sqlite(&config, &pool_config).await.unwrap();
                    Self::FindCpc(manager.users(), Arc::new(ids))
                }
                "find-rusqlite" => {
                    let pool = PoolFactory::create_sqlite_pool(&config, &pool_config).await.unwrap();
                    Self::FindRusqlite(pool, text(&ids))
                }
                "find-diesel" | "find-diesel-blocking" => {
                    let backend = DieselSqliteBackend::new(&config).unwrap();
                    let pool = Pool::new(backend, &pool_config, "instructions-diesel").await.unwrap();
                    let ids = Arc::new(ids.iter().map(|id| DbUuid(*id.as_uuid())).collect());
                    Self::FindDiesel(pool, ids, name == "find-diesel-blocking")
                }
                _ => {
                    let conn = rusqlite::Connection::open(dir.path().join("instructions.db")).unwrap();
                    Self::FindRusqliteSync(Arc::new(std::sync::Mutex::new(conn)), text(&ids))
                }
            };
            return (subject, Some(dir));
        }
        let (url, config) = common::redis_config("cpc-instructions");
        if let Some(kind) = name.strip_prefix("rl-") {
            let subject = match kind {
                "sliding-script" => {
                    let client = redis::Client::open(url.as_str()).unwrap();
                    let conn = client.get_multiplexed_async_connection().await.unwrap();
                    let script = Arc::new(redis::Script::new(bare_redis::SLIDING_WINDOW));
                    Self::SlidingScript(conn, script, config.namespace.clone().into())
                }
                _ => {
                    let limiter = Arc::new(RedisRateLimiter::new(RedisManager::new(&config).await.unwrap()));
                    let keys = (0..RL_KEYS).map(|i| RateLimitKey::new(format!("u{i}")).unwrap()).collect();
                    let policy = if kind == "token-cpc" { TOKEN_BUCKET } else { SLIDING_WINDOW };
                    Self::RateLimit(limiter, policy, Arc::new(keys))
                }
            };
            return (subject, None);
        }
        let cache = Arc::new(CacheManager::new(RedisManager::new(&config).await.unwrap(), TTL));
        let prefix: Arc<str> = cache.stored_key("").into();
        // Every key present (one pipeline), so each get is a hit, for every subject alike.
        let mut seed = redis::Client::open(url.as_str()).unwrap().get_multiplexed_async_connection().await.unwrap();
        let mut pipe = redis::pipe();
        for i in 0..KEYS {
            pipe.add_command(bare_redis::set_cmd(stored_key(&prefix, i), VALUE, TTL_MS)).ignore();
        }
        pipe.query_async::<()>(&mut seed).await.unwrap();
        let kind = match name.split_once('-').map(|(_, kind)| kind) {
            Some("cpc") => None,
            Some("multiplexed") => Some(Kind::Multiplexed),
            Some("manager") => Some(Kind::Manager),
            Some("fred") => Some(Kind::Fred),
            _ => panic!("unknown subject {name}; `list` prints them"),
        };
        let subject = match (name.starts_with("get-"), kind) {
            (true, None) => Self::GetCpc(cache),
            (false, None) => Self::SetCpc(cache),
            (true, Some(kind)) => Self::GetBare(Bare::connect(kind, &url).await, prefix),
            (false, Some(kind)) => Self::SetBare(Bare::connect(kind, &url).await, prefix),
        };
        (subject, None)
    }

    /// A handle for one task (a clone of the pool, cache or connection, made once per task, as an app would).
    fn for_task(&self) -> Self {
        match self {
            Self::PoolCpc(p) => Self::PoolCpc(p.clone()),
            Self::PoolBb8(p) => Self::PoolBb8(p.clone()),
            Self::GetCpc(c) => Self::GetCpc(c.clone()),
            Self::SetCpc(c) => Self::SetCpc(c.clone()),
            Self::GetBare(c, p) => Self::GetBare(c.clone(), p.clone()),
            Self::SetBare(c, p) => Self::SetBare(c.clone(), p.clone()),
            Self::FindCpc(r, ids) => Self::FindCpc(r.clone(), ids.clone()),
            Self::FindRusqlite(p, ids) => Self::FindRusqlite(p.clone(), ids.clone()),
            Self::FindDiesel(p, ids, blocking) => Self::FindDiesel(p.clone(), ids.clone(), *blocking),
            Self::FindRusqliteSync(c, ids) => Self::FindRusqliteSync(c.clone(), ids.clone()),
            Self::RateLimit(l, p, keys) => Self::RateLimit(l.clone(), *p, keys.clone()),
            Self::SlidingScript(c, s, p) => Self::SlidingScript(c.clone(), s.clone(), p.clone()),
            Self::SqliteReads(r) => Self::SqliteReads(r.clone()),
        }
    }

    /// Call `i` of the operation.
    async fn op(&mut self, i: u64) {
        match self {
            Self::PoolCpc(p) => drop(p.get().await.unwrap()),
            Self::PoolBb8(p) => drop(p.get().await.unwrap()),
            Self::GetCpc(c) => assert!(c.get_bytes(&cache_key(i)).await.unwrap().is_some()),
            Self::SetCpc(c) => c.set_bytes(&cache_key(i), Bytes::from_static(VALUE), None).await.unwrap(),
            Self::GetBare(c, p) => assert!(c.get(stored_key(p, i)).await),
            Self::SetBare(c, p) => c.set(stored_key(p, i), VALUE, TTL_MS).await,
            Self::FindCpc(repo, ids) => {
                let id = &ids[i as usize % ids.len()];
                assert!(repo.find_by_id(id).await.unwrap().is_some());
            }
            Self::FindRusqlite(pool, ids) => {
                let id = ids[i as usize % ids.len()].clone();
                let row = pool.interact(move |c| c.prepare_cached(SQLITE_FIND)?.query_row([id], sqlite_row)).await;
                std::hint::black_box(row.unwrap());
            }
            Self::FindDiesel(pool, ids, blocking) => {
                let id = ids[i as usize % ids.len()];
                let mut conn = pool.get().await.unwrap();
                let query = sqlite_users::table.filter(sqlite_users::id.eq(id));
                let row: Option<SqliteUserRow> = if *blocking {
                    conn.spawn_blocking(move |c| diesel::RunQueryDsl::get_result(query, c).optional()).await.unwrap()
                } else {
                    diesel_async::RunQueryDsl::get_result(query, &mut *conn).await.optional().unwrap()
                };
                assert!(row.is_some());
            }
            Self::FindRusqliteSync(conn, ids) => {
                let id = &ids[i as usize % ids.len()];
                let conn = conn.lock().unwrap();
                let row = conn.prepare_cached(SQLITE_FIND).unwrap().query_row([id], sqlite_row);
                std::hint::black_box(row.unwrap());
            }
            Self::RateLimit(limiter, policy, keys) => {
                let key = &keys[(i % RL_KEYS) as usize];
                std::hint::black_box(limiter.check(key, policy, 1).await.unwrap());
            }
            Self::SlidingScript(conn, script, prefix) => {
                let key = format!("{prefix}sw:u{}", i % RL_KEYS);
                std::hint::black_box(bare_redis::sliding_window(conn, script, key, 100, 1_000_000, i).await);
            }
            Self::SqliteReads(r) => r.call(i).await,
        }
    }
}

/// Runs `n` calls of `subject`'s operation over `tasks` tasks (task `t` makes calls `t, t + tasks, ...`), each
/// task on its own handle.
async fn run(subject: &Subject, n: u64, tasks: usize) {
    let handles: Vec<_> = (0..tasks as u64)
        .map(|t| {
            let mut own = subject.for_task();
            tokio::spawn(async move {
                for i in (t..n).step_by(tasks) {
                    own.op(i).await;
                }
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let Some(name) = args.first() else {
        eprintln!("usage: instructions SUBJECT N [TASKS] | list (scripts/instructions.sh runs it under callgrind)");
        return;
    };
    if name == "list" {
        for (name, what) in SUBJECTS.iter().chain(sqlite_reads::SUBJECTS) {
            println!("{name}\t{what}");
        }
        return;
    }
    let n: u64 = args.get(1).map_or(1000, |s| s.parse().expect("N: a number of calls"));
    let tasks: usize = args.get(2).map_or(1, |s| s.parse().expect("TASKS: a number of tasks"));
    assert!(tasks >= 1, "TASKS must be at least 1");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (subject, _dir) = runtime.block_on(Subject::new(name, tasks));
    measured(&runtime, &subject, n, tasks);
}

/// The measured part: everything the main thread runs here (the calls, the runtime's scheduler and I/O driver,
/// the clients' connection tasks) is what the script counts, with `--toggle-collect` on this function and on
/// tokio's blocking threads; the set-up before it (connecting, seeding, the pool clock's calibration, which runs
/// for a wall-clock time and so a varying number of instructions) is not.
#[inline(never)]
fn measured(runtime: &tokio::runtime::Runtime, subject: &Subject, n: u64, tasks: usize) {
    runtime.block_on(run(subject, n, tasks));
}
