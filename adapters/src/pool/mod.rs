//! Connection pools: [`PoolConfig`], [`DatabaseError`], [`MetricsCollector`], [`PoolFactory`], and the
//! generic [`Pool`] the PostgreSQL and SQLite pools are made of.

mod clock;
mod config;
mod core;
mod error;
mod factory;
mod health;
mod leak;
mod metrics;
mod slot;
mod stripes;

pub use config::PoolConfig;
pub use core::{Backend, Pool, PoolState, PooledConn, Tracked};
pub use error::DatabaseError;
pub use factory::PoolFactory;
pub use health::HealthChecker;
pub use metrics::{CloseReason, MetricsCollector, PoolMetricsSnapshot};
