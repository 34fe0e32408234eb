//! # cpc-pool
//!
//! Connection pools, the ground the database adapters stand on:
//!
//! * [`pool`]: the generic pool over any [`Backend`](pool::Backend) ([`Pool`](pool::Pool)), its configuration,
//!   errors ([`DatabaseError`](pool::DatabaseError)), health check and metrics. It names no backend.
//! * [`postgres`] (feature `postgres`): the PostgreSQL backend over tokio-postgres with rustls TLS and server-side
//!   timeouts, and [`PgJobQueue`](postgres::PgJobQueue), the `JobQueue` port on a table.
//! * [`sqlite`] (feature `sqlite`): the SQLite backend over rusqlite.
//! * [`PoolFactory`]: builds a pool on the backend it is asked for; the one place that chooses one.
//! * [`DatabaseTarget`] (features `postgres` and `sqlite`): PostgreSQL or SQLite, read from the environment by
//!   the one rule that tells them apart.
//!
//! Apps reach these through `cpc-adapters` (`cpc_adapters::pool`, `cpc_adapters::postgres`,
//! `cpc_adapters::sqlite`), or through a composition root.

mod factory;
pub mod pool;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "sqlite")]
pub mod sqlite;
#[cfg(all(feature = "postgres", feature = "sqlite"))]
mod target;

pub use factory::PoolFactory;
#[cfg(all(feature = "postgres", feature = "sqlite"))]
pub use target::DatabaseTarget;
