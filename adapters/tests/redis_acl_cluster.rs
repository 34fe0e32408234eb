//! Redis ACL on a Redis Cluster: an ACL user created on every node, limited to the app's key and channel patterns
//! and to the commands the adapters need on one server plus what a cluster client sends
//! ([`common::acl::CLUSTER_COMMANDS`]). Every adapter passes its contract suite under that user (pub/sub with
//! sharded channels, without patterns, as on any cluster), and every node refuses a key outside the namespace as
//! `KvError::Authentication`. One cluster for the whole test: starting one costs a few seconds.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "redis")]

#[allow(dead_code)]
mod common;

use std::sync::Arc;
use std::time::Duration;

use common::acl::{CLUSTER_COMMANDS, COMMANDS, assert_refused, set_user};
use cpc_adapters::redis::{
    CacheManager, DistributedLock, PubSubManager, RedisConfig, RedisHealthChecker, RedisJobQueue, RedisManager,
    RedisRateLimiter, SessionManager,
};
use cpc_ports::{Bytes, Cache, CacheKey, HealthCheck, HealthStatus, Lock, LockKey};
use cpc_test_servers::PrivateRedisCluster;

const PASSWORD: &str = "acl-cluster-password";
const TTL: Duration = Duration::from_secs(60);

/// `ACL SETUSER app ...` on every node of `cluster`: keys and channels under `root`, [`COMMANDS`] and
/// [`CLUSTER_COMMANDS`].
async fn create_app_user(cluster: &PrivateRedisCluster, root: &str) {
    let rules = [format!("~{root}*"), format!("&{root}*")];
    for port in cluster.ports() {
        set_user(port, "app", PASSWORD, &rules, COMMANDS.iter().chain(CLUSTER_COMMANDS)).await;
    }
}

/// A manager logged in as `app` on every seed node, under `namespace`.
async fn manager(cluster: &PrivateRedisCluster, namespace: String) -> RedisManager {
    let urls: Vec<String> = cluster.ports().iter().map(|p| format!("redis://app:{PASSWORD}@127.0.0.1:{p}")).collect();
    let config = RedisConfig::from_lookup(|name| match name {
        "REDIS_CLUSTER_URLS" => Some(urls.join(",")),
        "REDIS_NAMESPACE" => Some(namespace.clone()),
        _ => None,
    })
    .unwrap();
    assert!(config.is_cluster());
    RedisManager::new(&config).await.unwrap_or_else(|e| panic!("the app user reaches the cluster: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_adapter_passes_its_contract_on_a_cluster_under_an_acl_user_and_keys_outside_are_refused() {
    let cluster = PrivateRedisCluster::start().await;
    let root = format!("cpc:acl:{}:", uuid::Uuid::new_v4().simple());
    create_app_user(&cluster, &root).await;
    let fresh = || manager(&cluster, format!("{root}{}:", uuid::Uuid::new_v4().simple()));
    let test = async {
        cpc_testkit::cache_contract!(
            async {
                Arc::new(
                    CacheManager::new(fresh().await, TTL).with_compute_wait(cpc_testkit::contract::cache::COMPUTE_WAIT),
                )
            },
            inline
        );
        cpc_testkit::lock_contract!(async { Arc::new(DistributedLock::new(fresh().await)) }, inline);
        cpc_testkit::rate_limit_contract!(async { Arc::new(RedisRateLimiter::new(fresh().await)) }, inline);
        cpc_testkit::session_contract!(async { Arc::new(SessionManager::new(fresh().await)) }, inline);
        cpc_testkit::job_queue_contract!(async { Arc::new(RedisJobQueue::new(fresh().await)) }, inline);
        cpc_testkit::pubsub_contract!(async { Arc::new(PubSubManager::new(fresh().await)) }, inline);

        // Outside the namespace, on whichever master holds each key: 12 keys spread over the slots.
        let outside = manager(&cluster, "other-app:".to_owned()).await;
        let cache = CacheManager::new(outside.clone(), TTL);
        for i in 0..12 {
            let key = CacheKey::new(format!("k{i}")).unwrap();
            assert_refused(cache.set_bytes(&key, Bytes::from_static(b"v"), None).await, "a cache set outside");
        }
        assert_refused(DistributedLock::new(outside).try_acquire(&LockKey::new("k").unwrap(), TTL).await, "a lock");
        let inside = CacheManager::new(fresh().await, TTL);
        let key = CacheKey::new("k").unwrap();
        inside.set_bytes(&key, Bytes::from_static(b"v"), None).await.unwrap();
        assert_eq!(inside.get_bytes(&key).await.unwrap(), Some(Bytes::from_static(b"v")), "inside works");
        let report = RedisHealthChecker::new(fresh().await).check().await;
        assert_eq!(report.status, HealthStatus::Healthy, "the health check under the app user: {report:?}");
        assert_eq!(report.details.get("cluster_state").map(String::as_str), Some("ok"), "{report:?}");
        assert!(report.details.contains_key("maxmemory_policy"), "each master's policy is read: {report:?}");
    };
    tokio::time::timeout(Duration::from_secs(240), test).await.expect("the test ends within 4 minutes");
}
