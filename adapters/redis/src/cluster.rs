//! Redis Cluster specifics: the async cluster client built from a [`RedisConfig`], the masters a cluster-wide
//! `SCAN` walks, and the grouping of keys by hash slot for scripts and transactions that must stay on one slot.

use std::time::Duration;

use cpc_domain::ValidationError;
use cpc_ports::KvError;
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_routing::Slot;

use super::RedisConfig;

/// The shortest and longest pause of the cluster client between two tries of a command (after a `MOVED`, a
/// refused connection, a failover in progress). redis-rs's default minimum (1.28 s) would outlast the whole
/// response timeout.
const MIN_RETRY_WAIT_MS: u64 = 10;
const MAX_RETRY_WAIT_MS: u64 = 500;

/// A redis-rs cluster client for `config`'s seed nodes, credentials, TLS roots and timeouts. With `resp3`, it
/// speaks RESP3 and hands server pushes (pub/sub messages) to `push` (the sharded pub/sub needs both).
pub(crate) fn client(
    config: &RedisConfig,
    push: Option<tokio::sync::mpsc::UnboundedSender<redis::PushInfo>>,
) -> Result<ClusterClient, KvError> {
    let urls: Vec<String> = config.cluster_nodes.iter().map(|(host, port)| config.node_url(host, *port)).collect();
    let mut builder = ClusterClientBuilder::new(urls)
        .connection_timeout(config.connect_timeout)
        .response_timeout(config.response_timeout)
        .min_retry_wait(MIN_RETRY_WAIT_MS)
        .max_retry_wait(MAX_RETRY_WAIT_MS);
    if let Some(certs) = config.tls_certificates()? {
        builder = builder.certs(certs);
    }
    if let Some(push) = push {
        builder = builder.use_protocol(redis::ProtocolVersion::RESP3).push_sender(push);
    }
    builder.build().map_err(|e| KvError::Validation(ValidationError::new("cluster_nodes", e.to_string())))
}

/// How long to wait for the first connection to a cluster: the connect timeout, plus time to read the slot map.
pub(crate) fn connect_limit(config: &RedisConfig) -> Duration {
    config.connect_timeout + config.response_timeout
}

/// The (`host`, `port`) of every master serving slots, from a `CLUSTER NODES` reply: one line per node,
/// `<id> <ip:port@bus[,hostname]> <flags> <master> <ping> <pong> <epoch> <link> <slots>...`.
pub(crate) fn masters(nodes: &str) -> Vec<(String, u16)> {
    nodes
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let flags = fields.get(2)?;
            if !flags.split(',').any(|f| f == "master") || flags.contains("fail") || fields.len() < 9 {
                return None;
            }
            let address = fields[1].split(['@', ',']).next()?;
            let (host, port) = address.rsplit_once(':')?;
            Some((host.trim_start_matches('[').trim_end_matches(']').to_owned(), port.parse().ok()?))
        })
        .collect()
}

/// `items` split into groups whose keys (`key_of`) share a hash slot, each group in the original order, groups
/// in order of their first item. On one server (`cluster` false) everything is one group.
pub(crate) fn by_slot<T>(items: Vec<T>, cluster: bool, key_of: impl Fn(&T) -> &[u8]) -> Vec<Vec<T>> {
    if !cluster {
        return if items.is_empty() { Vec::new() } else { vec![items] };
    }
    let mut groups: Vec<(Slot, Vec<T>)> = Vec::new();
    for item in items {
        let slot = Slot::for_key(key_of(&item));
        match groups.iter_mut().find(|(s, _)| *s == slot) {
            Some((_, group)) => group.push(item),
            None => groups.push((slot, vec![item])),
        }
    }
    groups.into_iter().map(|(_, group)| group).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masters_serving_slots_are_found_in_cluster_nodes() {
        let nodes = "\
a1 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460
b2 127.0.0.1:7001@17001,host-b master - 0 0 2 connected 5461-10922
c3 127.0.0.1:7002@17002 master,fail - 0 0 3 disconnected
d4 127.0.0.1:7003@17003 slave a1 0 0 1 connected
e5 127.0.0.1:7004@17004 master - 0 0 4 connected 10923-16383
";
        let ports: Vec<u16> = masters(nodes).into_iter().map(|(_, p)| p).collect();
        assert_eq!(ports, [7000, 7001, 7004]);
    }

    #[test]
    fn keys_are_grouped_by_hash_slot_in_order() {
        let keys = vec!["{a}1", "{b}1", "{a}2", "{b}2", "{a}3"];
        let groups = by_slot(keys.clone(), true, |k| k.as_bytes());
        assert_eq!(groups, vec![vec!["{a}1", "{a}2", "{a}3"], vec!["{b}1", "{b}2"]]);
        assert_eq!(by_slot(keys.clone(), false, |k| k.as_bytes()), vec![keys]);
        assert!(by_slot(Vec::<&str>::new(), false, |k| k.as_bytes()).is_empty());
    }
}
