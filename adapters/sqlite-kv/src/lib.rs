//! # cpc-sqlite-kv
//!
//! The durable ports on SQLite, for the embedded default (a desktop or CLI app on one SQLite file): queued jobs
//! ([`SqliteJobQueue`]) and sessions ([`SqliteSessionStore`]) survive a restart; [`SqliteLock`] and
//! [`SqliteRateLimiter`] are a lock and a rate limiter shared by every connection and process on the file. Each
//! adapter passes the same contract suite as the Redis and in-process ones, on tables created by the library's
//! migrations (`migrations/sqlite`; run them first, for example with
//! `cpc_adapters::diesel::migrations::run_pending`).
//!
//! Every time the adapters store or compare is milliseconds since the Unix epoch on SQLite's clock
//! (`unixepoch('subsec')`), read inside the statement that uses it, so every connection and process on one
//! database file agrees on it. Writes run in `BEGIN IMMEDIATE` transactions behind the pool's writer gate
//! ([`SqlitePool::write`](cpc_pool::sqlite::SqlitePool::write)); reads run concurrently (WAL).

/// SQLite's clock in whole milliseconds since the Unix epoch, as an SQL expression. SQLite reads the clock once
/// per statement, so every use within one statement sees the same instant.
macro_rules! now_ms {
    () => {
        "CAST(unixepoch('subsec') * 1000 AS INTEGER)"
    };
}

pub mod job_queue;
mod kv;
pub mod lock;
pub mod rate_limit;
pub mod session;

pub use job_queue::SqliteJobQueue;
pub use lock::SqliteLock;
pub use rate_limit::SqliteRateLimiter;
pub use session::SqliteSessionStore;
