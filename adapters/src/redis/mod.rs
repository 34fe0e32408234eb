//! Redis (feature `redis`, the seeds' `redis_utils`): [`RedisConfig`], [`RedisManager`] and
//! [`RedisHealthCheck`]. The cache, lock, rate limiter, session and pub/sub adapters build on the manager.

mod config;
mod error;
mod health;
mod lock;
mod manager;
mod rate_limit;

pub use config::{RedisConfig, RedisConfigBuilder};
pub use health::RedisHealthCheck;
pub use lock::{DistributedLock, KeyedLock, LockGuard};
pub use manager::RedisManager;
pub use rate_limit::{RedisRateLimiter, rate_limit_headers};
