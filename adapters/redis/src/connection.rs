//! [`RedisConnection`]: the one connection type every Redis adapter sends its commands through, whether the
//! configuration names one server or a Redis Cluster.

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};

/// The shared, multiplexed connection of a [`RedisManager`](super::RedisManager): a redis-rs
/// [`ConnectionManager`] to one server, or a redis-rs async [`ClusterConnection`] to a Redis Cluster (which routes
/// each command to the master of its key's hash slot, follows `MOVED`/`ASK` redirections and refreshes the slot
/// map after a failover). It implements [`ConnectionLike`], so commands, pipelines and scripts
/// (`Script::invoke_async`, with its `NOSCRIPT` fallback on whichever node owns the slot) run on either, and
/// the adapters are written once. Cheap to clone; clones share the sockets.
#[derive(Clone)]
pub enum RedisConnection {
    /// One server.
    Single(ConnectionManager),
    /// A Redis Cluster.
    Cluster(ClusterConnection),
}

/// Where one `SCAN` walk runs: the one server, or one master of a cluster (`host`, `port`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ScanTarget {
    /// The one server.
    Server,
    /// A cluster master.
    Node(String, u16),
}

impl RedisConnection {
    /// Whether this is a cluster connection.
    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }

    /// The servers a `SCAN` must walk to see every key: the server, or every master of the cluster (from
    /// `CLUSTER NODES`).
    pub(crate) async fn scan_targets(&mut self) -> RedisResult<Vec<ScanTarget>> {
        match self {
            Self::Single(_) => Ok(vec![ScanTarget::Server]),
            Self::Cluster(conn) => {
                let nodes: String = redis::cmd("CLUSTER").arg("NODES").query_async(conn).await?;
                Ok(super::cluster::masters(&nodes)
                    .into_iter()
                    .map(|(host, port)| ScanTarget::Node(host, port))
                    .collect())
            }
        }
    }

    /// Runs `cmd` (a `SCAN` step) on `target`; a reply of another shape is a type error.
    pub(crate) async fn query_on<T: redis::FromRedisValue>(
        &mut self,
        target: &ScanTarget,
        cmd: &Cmd,
    ) -> RedisResult<T> {
        match (self, target) {
            (Self::Cluster(conn), ScanTarget::Node(host, port)) => {
                let route =
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host: host.clone(), port: *port });
                let value = conn.route_command(cmd.clone(), route).await?;
                Ok(redis::from_redis_value(value)?)
            }
            (conn, _) => cmd.query_async(conn).await,
        }
    }
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}
