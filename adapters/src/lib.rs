//! # cpc-adapters
//!
//! Implementations of the [`cpc_ports`] traits over real backends, one cargo feature per backend:
//!
//! | feature    | what it brings                                                              |
//! |------------|-----------------------------------------------------------------------------|
//! | `postgres` | `pool` + `postgres`: bb8 + tokio-postgres pools, TLS, health, metrics (db_pool) |
//! | `sqlite`   | `pool` + `sqlite`: bb8 + rusqlite pools, health, metrics (db_pool)     |
//! | `diesel`   | diesel-async repositories, unit of work, embedded migrations (db_abstraction; to come) |
//! | `redis`    | `redis`: config, connection manager, health (redis_utils; the port adapters are to come) |
//!
//! App code never names these types: the composition root (an app's `main`, or one of `examples/`) builds them
//! and hands them on as `Arc<dyn Port>`.

#[cfg(feature = "diesel")]
pub mod diesel;
#[cfg(any(feature = "postgres", feature = "sqlite", feature = "redis"))]
pub mod pool;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "sqlite")]
pub mod sqlite;
