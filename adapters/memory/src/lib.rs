//! # cpc-memory
//!
//! In-process implementations of the key-value ports (feature `memory`): [`InMemoryCache`], [`InMemoryLock`],
//! [`InMemoryRateLimiter`], [`InMemorySessionStore`], [`InMemoryPubSub`], [`InMemoryJobQueue`], and
//! [`StaticHealthCheck`].
//!
//! They behave like their Redis counterparts (TTLs, atomic set-if-absent, growing fencing tokens, exact rate
//! limits, glob patterns, bounded subscriber buffers) and pass the same contract suites, but they are
//! **single-process**: state lives in this process's memory, so two processes (or two replicas of a service) do
//! not share a cache, exclude each other with a lock, count against one rate limit or see each other's
//! messages. They are the embedded default for one process (a CLI, a desktop app, a quickstart, tests); a
//! deployment with more than one process wires the Redis adapters instead.
//!
//! Time is tokio's clock, so tests can `tokio::time::pause()` and `advance()` through TTLs and windows.
//! `cpc_testkit::memory` re-exports everything here.

mod cache;
mod health;
mod job_queue;
mod lock;
mod pubsub;
mod rate_limit;
mod session;

pub use cache::*;
pub use health::*;
pub use job_queue::*;
pub use lock::*;
pub use pubsub::*;
pub use rate_limit::*;
pub use session::*;
