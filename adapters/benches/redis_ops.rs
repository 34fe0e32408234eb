//! Redis adapters against `redis-benchmark` and against themselves, in one run on the same server. Run (needs
//! Redis and `redis-benchmark`; `REDIS_URL` defaults to the local server):
//!
//! ```sh
//! cargo bench -p cpc-adapters --all-features --bench redis_ops
//! ```
//!
//! Prints markdown tables: cache get/set throughput at 1 and 64 tasks against `redis-benchmark -c 1` / `-c 64`
//! (non-pipelined, 3-byte values as redis-benchmark uses), `get_many` of 100 keys against 100 single gets,
//! rate-limit decisions per second at 64 tasks (token bucket and sliding window) against plain GETs at the same
//! concurrency (`redis-benchmark -c 64`, target at least 0.8x) and against our own multiplexed cache gets, and one
//! uncontended lock acquire + release against one get round trip (target at most 2.5x).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{RUN, ops_per_sec};

use cpc_adapters::redis::{CacheManager, DistributedLock, RedisConfig, RedisManager, RedisRateLimiter};
use cpc_ports::{Bytes, Cache, CacheKey, Lock, LockKey, RateLimitKey, RateLimitPolicy, RateLimiter};

fn redis_benchmark(config: &RedisConfig, clients: usize, test: &str) -> f64 {
    let n = if clients == 1 { 100_000 } else { 600_000 };
    let out = Command::new("redis-benchmark")
        .args(["-h", &config.host, "-p", &config.port.to_string(), "-c", &clients.to_string()])
        .args(["-n", &n.to_string(), "-t", test, "--csv", "-q"])
        .output()
        .expect("redis-benchmark must be installed (Debian: redis-tools)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .filter(|l| l.starts_with(&format!("\"{}\"", test.to_uppercase())))
        .find_map(|l| l.split(',').nth(1).and_then(|v| v.trim_matches('"').parse().ok()))
        .unwrap_or_else(|| panic!("no {test} figure in redis-benchmark output:\n{text}"))
}

fn key(i: u64) -> CacheKey {
    CacheKey::new(format!("k{}", i % 10_000)).unwrap()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !common::started_by_cargo_bench() {
        return;
    }
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let mut config = RedisConfig::parse_url(&url, "REDIS_URL").unwrap();
    config.namespace = format!("cpc-bench:{}:", uuid::Uuid::new_v4());
    let manager = RedisManager::new(&config).await.expect("Redis");
    let cache = Arc::new(CacheManager::new(manager.clone(), Duration::from_secs(300)));
    let value = Bytes::from_static(b"xxx");
    for i in 0..10_000 {
        cache.set_bytes(&key(i), value.clone(), None).await.unwrap();
    }

    println!("| operation | tasks / clients | redis-benchmark (ops/s) | cpc CacheManager (ops/s) | ratio |");
    println!("|---|---:|---:|---:|---:|");
    for tasks in [1usize, 64] {
        let reference = redis_benchmark(&config, tasks, "get");
        let c = cache.clone();
        let ours = ops_per_sec(tasks, move |t, n| {
            let c = c.clone();
            async move {
                c.get_bytes(&key(t as u64 * 7919 + n)).await.unwrap();
            }
        })
        .await;
        println!("| get | {tasks} | {reference:.0} | {ours:.0} | {:.2}x |", ours / reference);
        let reference = redis_benchmark(&config, tasks, "set");
        let (c, v) = (cache.clone(), value.clone());
        let ours = ops_per_sec(tasks, move |t, n| {
            let (c, v) = (c.clone(), v.clone());
            async move {
                c.set_bytes(&key(t as u64 * 7919 + n), v, None).await.unwrap();
            }
        })
        .await;
        println!("| set | {tasks} | {reference:.0} | {ours:.0} | {:.2}x |", ours / reference);
    }

    let keys: Vec<CacheKey> = (0..100).map(key).collect();
    let rounds = 300;
    let started = Instant::now();
    for _ in 0..rounds {
        assert_eq!(cache.get_many_bytes(&keys).await.unwrap().len(), 100);
    }
    let batched = started.elapsed();
    let started = Instant::now();
    for _ in 0..rounds {
        for k in &keys {
            cache.get_bytes(k).await.unwrap();
        }
    }
    let single = started.elapsed();
    println!();
    println!("| 100 keys | time per 100 keys | speed-up |");
    println!("|---|---:|---:|");
    println!("| 100 single gets | {:?} | 1.00x |", single / rounds);
    println!("| one get_many (MGET) | {:?} | {:.1}x |", batched / rounds, single.as_secs_f64() / batched.as_secs_f64());

    rate_limit_table(&config, &manager, &cache).await;
    lock_table(&manager, &cache).await;

    cache.delete_prefix("k").await.unwrap();
    cache.delete_prefix("{rl:").await.unwrap();
    cache.delete_prefix("{lock:").await.unwrap();
}

/// Rate-limit decisions per second at 64 tasks, each algorithm against cache gets at 64 tasks, interleaved, best
/// of 2 rounds each. 10,000 keys, limits high enough that most decisions allow (a denial costs the same).
async fn rate_limit_table(config: &RedisConfig, manager: &RedisManager, cache: &Arc<CacheManager>) {
    const TASKS: usize = 64;
    let limiter = Arc::new(RedisRateLimiter::new(manager.clone()));
    let policies = [
        (
            "token bucket",
            RateLimitPolicy::TokenBucket {
                capacity: 1000,
                refill_tokens: 100,
                refill_interval: Duration::from_secs(1),
            },
        ),
        ("sliding window", RateLimitPolicy::SlidingWindow { limit: 100, window: Duration::from_secs(1) }),
    ];
    let rl_keys: Arc<Vec<RateLimitKey>> =
        Arc::new((0..10_000).map(|i| RateLimitKey::new(format!("u{i}")).unwrap()).collect());
    let mut best_get = 0f64;
    let mut best_plain = 0f64;
    let mut best = [0f64; 2];
    for _ in 0..2 {
        best_plain = best_plain.max(redis_benchmark(config, TASKS, "get"));
        let c = cache.clone();
        let get = ops_per_sec(TASKS, move |t, n| {
            let c = c.clone();
            async move {
                c.get_bytes(&key(t as u64 * 7919 + n)).await.unwrap();
            }
        })
        .await;
        best_get = best_get.max(get);
        for (i, (_, policy)) in policies.iter().enumerate() {
            let (l, keys, policy) = (limiter.clone(), rl_keys.clone(), *policy);
            let rate = ops_per_sec(TASKS, move |t, n| {
                let (l, keys) = (l.clone(), keys.clone());
                async move {
                    let k = &keys[((t as u64 * 7919 + n) % keys.len() as u64) as usize];
                    l.check(k, &policy, 1).await.unwrap();
                }
            })
            .await;
            best[i] = best[i].max(rate);
        }
    }
    println!();
    println!(
        "| operation ({TASKS} tasks / clients) | ops/s | vs plain GET (redis-benchmark -c {TASKS}) | vs cache get (multiplexed) |"
    );
    println!("|---|---:|---:|---:|");
    println!("| plain GET, redis-benchmark -c {TASKS} | {best_plain:.0} | 1.00x | {:.2}x |", best_plain / best_get);
    println!("| cache get | {best_get:.0} | {:.2}x | 1.00x |", best_get / best_plain);
    for (i, (name, _)) in policies.iter().enumerate() {
        println!(
            "| rate limit check, {name} | {:.0} | {:.2}x | {:.2}x |",
            best[i],
            best[i] / best_plain,
            best[i] / best_get
        );
    }
}

/// Mean latency of `op` run back to back by one task for [`RUN`].
async fn mean_latency<F, Fut>(mut op: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let started = Instant::now();
    let mut n = 0u32;
    while started.elapsed() < RUN {
        op().await;
        n += 1;
    }
    started.elapsed() / n
}

/// One uncontended lock acquire + release (two scripts, two round trips) against one cache get, one task,
/// interleaved, best of 3 rounds each.
async fn lock_table(manager: &RedisManager, cache: &Arc<CacheManager>) {
    let lock = DistributedLock::new(manager.clone()).with_fence_ttl(Duration::from_secs(60));
    let lk = LockKey::new("bench").unwrap();
    let k = key(1);
    let (mut get, mut cycle) = (Duration::MAX, Duration::MAX);
    for _ in 0..3 {
        get = get.min(
            mean_latency(|| async {
                cache.get_bytes(&k).await.unwrap();
            })
            .await,
        );
        cycle = cycle.min(
            mean_latency(|| async {
                let lease = lock.try_acquire(&lk, Duration::from_secs(5)).await.unwrap().expect("uncontended");
                lock.release(lease).await.unwrap();
            })
            .await,
        );
    }
    println!();
    println!("| operation (1 task, uncontended) | mean latency | vs one get |");
    println!("|---|---:|---:|");
    println!("| cache get (one round trip) | {get:?} | 1.00x |");
    println!("| lock try_acquire + release | {cycle:?} | {:.2}x |", cycle.as_secs_f64() / get.as_secs_f64());
}
