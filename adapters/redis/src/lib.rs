//! # cpc-redis
//!
//! Redis (feature `redis`): [`RedisConfig`] and [`RedisManager`] own the connections;
//! [`CacheManager`], [`DistributedLock`], [`RedisRateLimiter`], [`SessionManager`], [`PubSubManager`] and
//! [`RedisJobQueue`] implement the `Cache`, `Lock`, `RateLimiter`, `SessionStore`, `PubSub` and `JobQueue` ports
//! over them; [`Redlock`] implements `Lock` over several independent servers ([`RedlockConfig`]);
//! [`RedisHealthChecker`] reports on the server; [`NearCache`] puts a bounded in-process tier in front of the
//! [`CacheManager`], kept coherent by RESP3 client-side caching invalidations. Every adapter runs on one server or on a Redis Cluster, as the
//! [`RedisConfig`] says ([`RedisConnection`]).

mod cache;
mod cluster;
mod config;
mod connection;
mod error;
mod health;
mod job_queue;
mod lock;
mod manager;
mod metrics;
mod near_cache;
mod pubsub;
mod rate_limit;
mod session;
mod ttl;

pub use cache::CacheManager;
pub use config::{RedisConfig, RedisConfigBuilder};
pub use connection::RedisConnection;
pub use health::RedisHealthChecker;

/// The Redis health checker's former name (the port is `HealthCheck`; the pools' and Redis's checkers are
/// `HealthChecker` and `RedisHealthChecker`).
#[deprecated(since = "0.1.0", note = "renamed RedisHealthChecker, as the pools' HealthChecker")]
pub type RedisHealthCheck = RedisHealthChecker;
pub use job_queue::RedisJobQueue;
pub use lock::{
    DEFAULT_CLOCK_DRIFT_FACTOR, DEFAULT_CLOCK_DRIFT_FLOOR, DEFAULT_FENCE_TTL, DEFAULT_NODE_TIMEOUT, DistributedLock,
    KeyedLock, Redlock, RedlockConfig, RedlockConfigBuilder,
};

/// The guard `DistributedLock::acquire_guard` used to return. Every lock has one now, through
/// [`LockExt::acquire_guard`](cpc_ports::LockExt::acquire_guard); its `lost()` is now
/// [`is_lost`](cpc_ports::LeaseGuard::is_lost), and `lost()` is a future that resolves when the lease is lost.
#[deprecated(since = "0.1.0", note = "use cpc_ports::LeaseGuard, from LockExt::acquire_guard on any lock")]
pub type LockGuard = cpc_ports::LeaseGuard;
pub use manager::{ExclusiveBackend, ExclusiveConnection, RedisManager, TrackedRedisConnection};
pub use near_cache::{NEAR_CACHE_ENV, NearCache, NearCacheConfig, NearCacheStats};
pub use pubsub::{DEFAULT_SUBSCRIPTION_BUFFER, PubSubManager};
pub use rate_limit::{RedisRateLimiter, rate_limit_headers};
pub use session::SessionManager;
