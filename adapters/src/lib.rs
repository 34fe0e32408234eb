//! # cpc-adapters
//!
//! Implementations of the [`cpc_ports`] traits over real backends, one cargo feature per backend:
//!
//! | feature    | what it brings (as it lands)                                               |
//! |------------|----------------------------------------------------------------------------|
//! | `postgres` | bb8 + tokio-postgres pools, health checks, metrics, TLS (the seeds' db_pool) |
//! | `sqlite`   | bb8 + rusqlite pools (the seeds' db_pool)                                  |
//! | `diesel`   | diesel-async repositories, unit of work, embedded migrations (db_abstraction) |
//! | `redis`    | cache, lock, rate limiter, sessions, pub/sub over redis-rs (redis_utils)   |
//!
//! App code never names these types: the composition root (an app's `main`, or one of `examples/`) builds them
//! and hands them on as `Arc<dyn Port>`.
