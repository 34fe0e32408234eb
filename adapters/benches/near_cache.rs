//! `NearCache` against a plain `CacheManager` on the same Redis, in one run. Run (needs Redis 6+; `REDIS_URL`
//! defaults to the local server):
//!
//! ```sh
//! cargo bench -p cpc-adapters --features redis --bench near_cache
//! ```
//!
//! Prints two markdown tables:
//!
//! * one `get` of a key the near cache holds locally, one task, mean latency: the near cache's local hit
//!   against `CacheManager::get` (one round trip);
//! * a read-mostly workload (99 % gets, 1 % sets through the cache under test; 10,000 keys of 100 bytes, 90 % of
//!   the reads on 1,000 hot keys) at 1 and 64 tasks: operations per second of each, and the near cache's local
//!   hit rate over the measured calls.
//!
//! Each figure is the best of 3 rounds run in rotating order; 3 s counted per figure after 300 ms of warm-up.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{best, per_sec, random, rotated};

use cpc_adapters::redis::{CacheManager, NearCache, NearCacheConfig, RedisManager};
use cpc_ports::{Bytes, Cache, CacheKey};
use futures::future::BoxFuture;

/// Keys in the data set, and how many of them are hot.
const KEYS: u64 = 10_000;
const HOT: u64 = 1_000;
const ROUNDS: usize = 3;
const WARM_UP: Duration = Duration::from_millis(300);
const RUN: Duration = Duration::from_secs(3);

fn key(i: u64) -> CacheKey {
    CacheKey::new(format!("k{i}")).unwrap()
}

/// The key of a read-mostly call: 90 % of them on the hot keys.
fn skewed(r: u64) -> CacheKey {
    let pick = r >> 8;
    key(if r % 10 < 9 { pick % HOT } else { pick % KEYS })
}

/// Operations per second of `tasks` tasks each doing 99 gets for 1 set on `cache`.
fn read_mostly(cache: Arc<dyn Cache>, tasks: usize, value: Bytes) -> BoxFuture<'static, f64> {
    Box::pin(per_sec(tasks, WARM_UP, RUN, move |t, n| {
        let (cache, value) = (Arc::clone(&cache), value.clone());
        async move {
            let r = random(t, n);
            if r.is_multiple_of(100) {
                cache.set_bytes(&skewed(r), value, None).await.unwrap();
            } else {
                cache.get_bytes(&skewed(r)).await.unwrap().unwrap();
            }
        }
    }))
}

/// Gets of one key per second, one task.
fn one_key(cache: Arc<dyn Cache>) -> BoxFuture<'static, f64> {
    Box::pin(per_sec(1, WARM_UP, RUN, move |_, _| {
        let cache = Arc::clone(&cache);
        async move {
            cache.get_bytes(&key(0)).await.unwrap().unwrap();
        }
    }))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !common::started_by_cargo_bench() {
        return;
    }
    let (_, config) = common::redis_config("cpc-bench-near");
    let manager = RedisManager::new(&config).await.expect("Redis");
    let plain = CacheManager::new(manager.clone(), Duration::from_secs(600));
    let value = Bytes::from(vec![b'x'; 100]);
    for i in 0..KEYS {
        plain.set_bytes(&key(i), value.clone(), None).await.unwrap();
    }
    // Its own connections, as another process would have.
    let near_remote = CacheManager::new(RedisManager::new(&config).await.unwrap(), Duration::from_secs(600));
    let near = Arc::new(NearCache::new(near_remote, NearCacheConfig::default()).await.unwrap());
    let plain: Arc<dyn Cache> = Arc::new(plain);
    let near_dyn: Arc<dyn Cache> = near.clone();

    let mut latency = [0.0; 2];
    for round in 0..ROUNDS {
        rotated(round, vec![one_key(plain.clone()), one_key(near_dyn.clone())], &mut latency).await;
    }
    let [plain_get, near_hit] = latency.map(|per_sec| 1e6 / per_sec);
    println!("| one get, 1 task | CacheManager (µs) | NearCache local hit (µs) | speed-up |");
    println!("|---|---:|---:|---:|");
    println!("| mean latency | {plain_get:.2} | {near_hit:.3} | {:.0}x |", plain_get / near_hit);
    println!();

    println!(
        "| read-mostly (99 % get, 1 % set) | tasks | CacheManager (ops/s) | NearCache (ops/s) | ratio | NearCache local hit rate |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for tasks in [1_usize, 64] {
        let mut figures = [0.0; 2];
        let mut hit_rate: f64 = 0.0;
        for round in 0..ROUNDS {
            let before = near.stats();
            let mut round_figures = [0.0; 2];
            let runs = vec![
                read_mostly(plain.clone(), tasks, value.clone()),
                read_mostly(near_dyn.clone(), tasks, value.clone()),
            ];
            rotated(round, runs, &mut round_figures).await;
            let after = near.stats();
            let (hits, misses) =
                (after.hits - before.hits, after.misses - before.misses + after.bypassed - before.bypassed);
            for (b, r) in figures.iter_mut().zip(round_figures) {
                best(b, r);
            }
            hit_rate = hit_rate.max(hits as f64 / (hits + misses).max(1) as f64);
        }
        let [ours_plain, ours_near] = figures;
        println!(
            "| ops/s | {tasks} | {ours_plain:.0} | {ours_near:.0} | {:.1}x | {:.1} % |",
            ours_near / ours_plain,
            hit_rate * 100.0
        );
    }
    let stats = near.stats();
    println!();
    println!(
        "near cache at the end: {} entries, {} bytes charged, {} invalidations pushed, {} own, tracking {}",
        stats.entries, stats.bytes, stats.pushed_invalidations, stats.own_invalidations, stats.tracking
    );
    plain.delete_prefix("k").await.unwrap();
}
