//! # cpc-pg-kv
//!
//! The key-value ports on PostgreSQL alone, for an app that runs one PostgreSQL and nothing else: each adapter
//! passes the same contract suite as the Redis and in-process ones, on tables created by the library's migrations
//! (`migrations/postgres`). The job queue on PostgreSQL is [`PgJobQueue`](cpc_pool::postgres::PgJobQueue).

pub mod cache;
mod get_batch;
pub mod lock;
pub mod pubsub;
pub mod rate_limit;
pub mod session;
mod sweeper;

pub use cache::PgCache;
pub use lock::PgLock;
pub use pubsub::PgPubSub;
pub use rate_limit::PgRateLimiter;
pub use session::PgSessionStore;
