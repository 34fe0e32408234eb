//! # cpc-adapters
//!
//! Implementations of the [`cpc_ports`] traits over real backends, one cargo feature per backend:
//!
//! | feature    | what it brings                                                              |
//! |------------|-----------------------------------------------------------------------------|
//! | `postgres` | `pool` + `postgres`: bb8 + tokio-postgres pools, TLS, health, metrics (db_pool) |
//! | `sqlite`   | `pool` + `sqlite`: bb8 + rusqlite pools, health, metrics (db_pool)     |
//! | `diesel`   | diesel-async repositories, unit of work, embedded migrations (db_abstraction; to come) |
//! | `redis`    | `redis`: config, connection manager, health, and the cache, lock, rate limiter, session, pub/sub and job queue adapters (redis_utils) |
//! | `observe`  | `observe`: tracing + metrics, timeout and retry decorators for every port                   |
//! | `tower`    | `tower`: a rate-limit `tower::Layer` over any `RateLimiter`, a tower-sessions store over any `SessionStore` |
//! | `memory`   | `memory`: in-process cache, lock, rate limiter, sessions, pub/sub, job queue (single-process embedded default) |
//! | `worker`   | `worker`: a worker loop over any `JobQueue` (concurrent handlers, retries, graceful shutdown, metrics) |
//!
//! App code never names these types: the composition root (an app's `main`, or one of `examples/`) builds them
//! and hands them on as `Arc<dyn Port>`.

#[cfg(feature = "diesel")]
pub mod diesel;
#[cfg(any(feature = "redis", feature = "observe"))]
mod jitter;
#[cfg(feature = "memory")]
pub mod memory;
#[cfg(feature = "observe")]
pub mod observe;
#[cfg(any(feature = "postgres", feature = "sqlite", feature = "redis"))]
pub mod pool;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "sqlite")]
pub mod sqlite;
#[cfg(feature = "tower")]
pub mod tower;
#[cfg(feature = "worker")]
pub mod worker;
