//! The replica set's series in the `metrics` crate (any installed recorder or exporter receives them), beside the
//! snapshot of [`ReplicaSet::stats`](super::ReplicaSet::stats) and [`ReplicaSet::replicas`](super::ReplicaSet::replicas):
//!
//! | name | kind, labels | what |
//! |---|---|---|
//! | `cpc_db_replica_reads_total` | counter, `server` = a replica's `host:port` or `primary` | routed reads (those that allow stale data), by where they ran |
//! | `cpc_db_replica_fallbacks_total` | counter | routed reads run on the primary after their replica failed or timed out |
//! | `cpc_db_replica_up` | gauge, `replica` = `host:port` | 1 while the replica is in rotation, else 0 |
//! | `cpc_db_replica_taken_out_total` | counter, `replica` = `host:port` | times the replica left the rotation |
//!
//! Handles are registered once, when the set is built, with the recorder installed then.

use metrics::{Counter, Gauge, counter, gauge};

/// One replica's series.
pub(super) struct ReplicaSeries {
    pub(super) reads: Counter,
    pub(super) up: Gauge,
    pub(super) taken_out: Counter,
}

impl ReplicaSeries {
    /// The series of the replica at `address`, its gauge set to `up`.
    pub(super) fn new(address: &str, up: bool) -> Self {
        let series = Self {
            reads: counter!("cpc_db_replica_reads_total", "server" => address.to_owned()),
            up: gauge!("cpc_db_replica_up", "replica" => address.to_owned()),
            taken_out: counter!("cpc_db_replica_taken_out_total", "replica" => address.to_owned()),
        };
        series.up.set(if up { 1.0 } else { 0.0 });
        series
    }
}

/// The primary's share of the routed reads.
pub(super) struct PrimarySeries {
    pub(super) reads: Counter,
    pub(super) fallbacks: Counter,
}

impl PrimarySeries {
    pub(super) fn new() -> Self {
        Self {
            reads: counter!("cpc_db_replica_reads_total", "server" => "primary"),
            fallbacks: counter!("cpc_db_replica_fallbacks_total"),
        }
    }
}
