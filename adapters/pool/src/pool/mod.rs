//! Connection pools: [`PoolConfig`], [`DatabaseError`], [`MetricsCollector`], [`HealthChecker`], and the
//! generic [`Pool`] over any [`Backend`]: the PostgreSQL and SQLite pools (and the Redis adapter's exclusive
//! connections) are made of it. This module names no backend; `PoolFactory`, at the crate root, chooses one.

mod clock;
mod config;
mod core;
mod error;
mod health;
mod leak;
mod metrics;
mod slot;
mod stripes;

pub use config::PoolConfig;
pub use core::{Backend, Pool, PoolState, PooledConn, Tracked};
pub use error::DatabaseError;
pub use health::HealthChecker;
pub use metrics::{CloseReason, MetricsCollector, PoolMetricsSnapshot};
