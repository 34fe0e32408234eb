//! PostgreSQL read replicas for the Diesel repositories: a [`ReplicaSet`] of one primary pool and N replica
//! pools, configured with [`ReplicaConfig`] (a builder, or `DATABASE_URL` + `DATABASE_REPLICA_URLS`), and the
//! [`ReadConsistency`] a repository reads with.
//!
//! The routing rules, which the repositories apply:
//!
//! * writes, units of work (everything inside them, reads included) and [`ReadConsistency::Strong`] reads go to
//!   the primary;
//! * [`ReadConsistency::AllowStale`] reads go to the next replica in rotation (round robin) that is healthy and
//!   has replayed past the caller's own last write (read-your-writes: after each write the repository reads
//!   `pg_current_wal_insert_lsn()` on the primary; a replica whose `pg_last_wal_replay_lsn()` is behind it is
//!   skipped), else to the primary;
//! * a replica whose checkout or query fails with a connection error, or whose read has no answer within
//!   [`ReplicaPolicy::read_timeout`], is taken out of rotation at once, and the read is run again on the primary;
//!   a background recheck puts it back once it answers;
//! * a replica unreachable at start-up starts out of rotation ([`ReplicaSet::connect`]).
//!
//! The set reports its routing to the `metrics` crate (`cpc_db_replica_*`, listed in `metrics.rs`).
//!
//! Apps that depend on ports only never see any of this: the composition root hands them repositories of a
//! [`DbManager`](crate::DbManager) view, strong or [`stale_reads`](crate::DbManager::stale_reads).

mod config;
mod consistency;
mod metrics;
mod set;

pub use config::{REPLICA_URLS_ENV, ReplicaConfig, ReplicaConfigBuilder, ReplicaPolicy};
pub use consistency::ReadConsistency;
pub(crate) use consistency::Session;
pub use set::{ReplicaHealth, ReplicaSet, RoutingStats};
