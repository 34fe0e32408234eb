//! Cache throughput at 64 tasks on a Redis Cluster (3 masters + 3 replicas) against one Redis server, both
//! private servers started by the test harness on this machine, measured interleaved in one run. Run (needs
//! `redis-server` and `redis-cli`):
//!
//! ```sh
//! cargo bench -p cpc-adapters --features redis --bench redis_cluster
//! ```
//!
//! Prints a markdown table: `get` and `set` (3-byte values, 10,000 keys spread over every slot) per second through
//! `CacheManager`, single node and cluster alternating for 3 rounds of 3 s each; the median round is reported.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::ops_per_sec;
use cpc_adapters::redis::{CacheManager, RedisConfig, RedisManager};
use cpc_ports::{Bytes, Cache, CacheKey};
use cpc_test_servers::{PrivateRedis, PrivateRedisCluster};

const TASKS: usize = 64;
const ROUNDS: usize = 3;
const KEYS: u64 = 10_000;

fn key(i: u64) -> CacheKey {
    CacheKey::new(format!("k{}", i % KEYS)).unwrap()
}

async fn cache(lookup: (&'static str, String)) -> Arc<CacheManager> {
    let config = RedisConfig::from_lookup(|name| (name == lookup.0).then(|| lookup.1.clone())).unwrap();
    let manager = RedisManager::new(&config).await.expect("the private Redis");
    let cache = Arc::new(CacheManager::new(manager, Duration::from_secs(300)));
    for i in 0..KEYS {
        cache.set_bytes(&key(i), Bytes::from_static(b"xxx"), None).await.unwrap();
    }
    cache
}

/// One measurement of `op` (`get` or `set`) on `cache` at [`TASKS`] tasks.
async fn measure(cache: &Arc<CacheManager>, op: &'static str) -> f64 {
    let c = cache.clone();
    ops_per_sec(TASKS, move |t, n| {
        let c = c.clone();
        async move {
            let k = key(t as u64 * 7919 + n);
            if op == "get" {
                c.get_bytes(&k).await.unwrap();
            } else {
                c.set_bytes(&k, Bytes::from_static(b"xxx"), None).await.unwrap();
            }
        }
    })
    .await
}

fn median(mut figures: Vec<f64>) -> f64 {
    figures.sort_by(f64::total_cmp);
    figures[figures.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !common::started_by_cargo_bench() {
        return;
    }
    let server = PrivateRedis::start().await;
    let cluster = PrivateRedisCluster::start().await;
    let single = cache(("REDIS_URL", server.url())).await;
    let clustered = cache(("REDIS_CLUSTER_URLS", cluster.urls())).await;

    println!(
        "| operation | tasks | one server (ops/s) | cluster, 3 masters + 3 replicas (ops/s) | cluster / one server |"
    );
    println!("|---|---:|---:|---:|---:|");
    for op in ["get", "set"] {
        let (mut one, mut many) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            one.push(measure(&single, op).await);
            many.push(measure(&clustered, op).await);
        }
        let (one, many) = (median(one), median(many));
        println!("| {op} | {TASKS} | {one:.0} | {many:.0} | {:.2}x |", many / one);
    }
}
