//! # cpc-adapters
//!
//! Implementations of the [`cpc_ports`](https://docs.rs/cpc-ports) traits over real backends: one crate per backend
//! family (under `adapters/`), brought in by one cargo feature each and re-exported here at a stable module path.
//!
//! | feature    | module | crate | what it brings |
//! |------------|--------|-------|----------------|
//! | `postgres` | `pool`, `postgres` | `cpc-pool` | the generic pool core (health, metrics) and the PostgreSQL pools: tokio-postgres, TLS, timeouts, `PgJobQueue` |
//! | `sqlite`   | `pool`, `sqlite` | `cpc-pool` | the generic pool core and the SQLite pools over rusqlite |
//! | `diesel`   | `diesel` | `cpc-diesel` | diesel-async repositories, units of work, read replicas, embedded migrations; the `record!` and `sql_table!` macros |
//! | `redis`    | `redis` (and `pool`) | `cpc-redis` | config, connection manager, health, and the cache, lock, rate limiter, session, pub/sub and job queue adapters |
//! | `observe`  | `observe` | `cpc-observe` | tracing + metrics, timeout and retry decorators for every port |
//! | `tower`    | `tower` | `cpc-tower` | a rate-limit `tower::Layer` over any `RateLimiter`, a tower-sessions store over any `SessionStore` |
//! | `memory`   | `memory` | `cpc-memory` | in-process cache, lock, rate limiter, sessions, pub/sub, job queue (the single-process embedded default) |
//! | `pg-kv`    | `pg_kv` | `cpc-pg-kv` | cache, lock, rate limiter, sessions and pub/sub on PostgreSQL alone |
//! | `sqlite-kv` | `sqlite_kv` | `cpc-sqlite-kv` | a job queue and sessions on SQLite that survive a restart (the embedded default) |
//! | `worker`   | `worker` | `cpc-worker` | a worker loop over any `JobQueue` (concurrent handlers, retries, graceful shutdown, metrics) |
//!
//! App code never names these types: the composition root (an app's `main`, or one of `examples/`) builds them
//! and hands them on as `Arc<dyn Port>`.

#[cfg(feature = "diesel")]
pub use cpc_diesel as diesel;
#[cfg(feature = "diesel")]
pub use cpc_diesel::{record, sql_table};
#[cfg(feature = "memory")]
pub use cpc_memory as memory;
#[cfg(feature = "observe")]
pub use cpc_observe as observe;
#[cfg(feature = "pg-kv")]
pub use cpc_pg_kv as pg_kv;
#[cfg(feature = "postgres")]
pub use cpc_pool::postgres;
#[cfg(feature = "sqlite")]
pub use cpc_pool::sqlite;
#[cfg(feature = "redis")]
pub use cpc_redis as redis;
#[cfg(feature = "sqlite-kv")]
pub use cpc_sqlite_kv as sqlite_kv;
#[cfg(feature = "tower")]
pub use cpc_tower as tower;
#[cfg(feature = "worker")]
pub use cpc_worker as worker;

/// Connection pools (`cpc_pool::pool`) and [`PoolFactory`](cpc_pool::PoolFactory), which builds one on the backend it is asked for.
#[cfg(any(feature = "postgres", feature = "sqlite", feature = "redis"))]
pub mod pool {
    #[cfg(all(feature = "postgres", feature = "sqlite"))]
    pub use cpc_pool::DatabaseTarget;
    pub use cpc_pool::PoolFactory;
    pub use cpc_pool::pool::*;
}
