//! Redis adapters against `redis-benchmark` and against themselves, in one run on the same server. Run (needs
//! Redis and `redis-benchmark`; `REDIS_URL` defaults to the local server):
//!
//! ```sh
//! cargo bench -p cpc-adapters --all-features --bench redis_ops
//! ```
//!
//! Prints markdown tables: cache get/set throughput at 1 and 64 tasks through `CacheManager` against the clients
//! an app could use instead, on the same keys and values (bare redis-rs `MultiplexedConnection` and
//! `ConnectionManager`, and fred), against `redis-benchmark -c 1` / `-c 64` (non-pipelined, 3-byte values as
//! redis-benchmark uses), and `redis-benchmark -c 64 -P 16` as the server's ceiling (`CLIENT_ROUNDS` interleaved
//! rounds, best kept; targets: at least 0.95x bare redis-rs, at 64 tasks at least 0.9x fred; `CPC_BENCH_ONLY=clients`
//! runs only this table), `get_many` of 100 keys against 100 single gets,
//! rate-limit decisions per second at 64 tasks (token bucket and sliding window) against plain GETs at the same
//! concurrency (`redis-benchmark -c 64`, target at least 0.9x; `CPC_BENCH_ONLY=rate_limit` runs only this table,
//! best of 3 rounds) and against our own multiplexed cache gets, and one
//! uncontended lock acquire + release against one get round trip (target at most 2.5x).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/bare_redis.rs"]
mod bare_redis;
mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bare_redis::{Bare, Kind};
use common::{RUN, load_average, ops_per_sec, per_sec, rotated};
use futures::FutureExt;
use futures::future::BoxFuture;

use cpc_adapters::redis::{CacheManager, DistributedLock, RedisConfig, RedisManager, RedisRateLimiter};
use cpc_ports::{Bytes, Cache, CacheKey, Lock, LockKey, RateLimitKey, RateLimitPolicy, RateLimiter};

fn redis_benchmark(config: &RedisConfig, clients: usize, test: &str) -> f64 {
    let n = if clients == 1 { 100_000 } else { 600_000 };
    redis_benchmark_with(config, clients, 1, n, test)
}

/// `redis-benchmark -c clients -P pipeline -n n -t test`: requests per second.
fn redis_benchmark_with(config: &RedisConfig, clients: usize, pipeline: usize, n: usize, test: &str) -> f64 {
    let out = Command::new("redis-benchmark")
        .args(["-h", &config.host, "-p", &config.port.to_string(), "-c", &clients.to_string()])
        .args(["-P", &pipeline.to_string(), "-n", &n.to_string(), "-t", test, "--csv", "-q"])
        .output()
        .expect("redis-benchmark must be installed (Debian: redis-tools)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .filter(|l| l.starts_with(&format!("\"{}\"", test.to_uppercase())))
        .find_map(|l| l.split(',').nth(1).and_then(|v| v.trim_matches('"').parse().ok()))
        .unwrap_or_else(|| panic!("no {test} figure in redis-benchmark output:\n{text}"))
}

/// Keys the cache benches read and write (`k0` .. `k9999`).
const KEYS: u64 = 10_000;

fn key(i: u64) -> CacheKey {
    CacheKey::new(format!("k{}", i % KEYS)).unwrap()
}

/// Rounds of the clients table.
const CLIENT_ROUNDS: usize = 3;
/// Counted time per figure of the clients table (after 200 ms uncounted).
const CLIENT_RUN: Duration = Duration::from_secs(2);
/// The `PX` of every write: the cache's default TTL.
const TTL: Duration = Duration::from_secs(300);

/// Ops/s of `tasks` tasks each doing `op` (`get` or `set`) through `CacheManager`.
fn cache_run(cache: &Arc<CacheManager>, op: &'static str, tasks: usize) -> BoxFuture<'static, f64> {
    let c = cache.clone();
    per_sec(tasks, Duration::from_millis(200), CLIENT_RUN, move |t, n| {
        let c = c.clone();
        async move {
            let k = key(t as u64 * 7919 + n);
            if op == "get" {
                assert!(c.get_bytes(&k).await.unwrap().is_some());
            } else {
                c.set_bytes(&k, Bytes::from_static(b"xxx"), None).await.unwrap();
            }
        }
    })
    .boxed()
}

/// Ops/s of `tasks` tasks each doing `op` through a bare client on the same stored keys.
fn bare_run(bare: &Bare, prefix: &Arc<str>, op: &'static str, tasks: usize) -> BoxFuture<'static, f64> {
    let (b, p) = (bare.clone(), prefix.clone());
    per_sec(tasks, Duration::from_millis(200), CLIENT_RUN, move |t, n| {
        let (mut b, p) = (b.clone(), p.clone());
        async move {
            let k = bare_redis::stored_key(&p, t as u64 * 7919 + n, KEYS);
            if op == "get" {
                assert!(b.get(k).await);
            } else {
                b.set(k, b"xxx", TTL.as_millis() as u64).await;
            }
        }
    })
    .boxed()
}

/// `CacheManager` get and set at 1 and 64 tasks against the bare clients, `redis-benchmark` at the same
/// concurrency, and `redis-benchmark -c 64 -P 16` (the server's ceiling); interleaved rounds, best of each.
async fn clients_table(url: &str, config: &RedisConfig, cache: &Arc<CacheManager>) {
    let prefix: Arc<str> = cache.stored_key("").into();
    let mut bare = Vec::new();
    for kind in Kind::ALL {
        bare.push(Bare::connect(kind, url).await);
    }
    println!("load average before the clients table: {}", load_average());
    let mut header = "| operation | tasks | redis-benchmark (ops/s) |".to_owned();
    for kind in Kind::ALL {
        header += &format!(" {} (ops/s) |", kind.name());
    }
    header += " CacheManager (ops/s) | ours / multiplexed | ours / connection manager | ours / fred | ours / redis-benchmark |";
    println!("{header}");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for op in ["get", "set"] {
        for tasks in [1usize, 64] {
            // [redis-benchmark, bare clients..., ours]
            let mut best = [0f64; 2 + Kind::ALL.len()];
            for round in 0..CLIENT_ROUNDS {
                let rb_config = config.clone();
                let mut runs: Vec<BoxFuture<'static, f64>> = vec![
                    async move {
                        let n = if tasks == 1 { 60_000 } else { 400_000 };
                        tokio::task::spawn_blocking(move || redis_benchmark_with(&rb_config, tasks, 1, n, op))
                            .await
                            .unwrap()
                    }
                    .boxed(),
                ];
                runs.extend(bare.iter().map(|b| bare_run(b, &prefix, op, tasks)));
                runs.push(cache_run(cache, op, tasks));
                rotated(round, runs, &mut best).await;
            }
            let ours = best[best.len() - 1];
            let mut line = format!("| {op} | {tasks} |");
            for v in &best {
                line += &format!(" {v:.0} |");
            }
            for v in &best[1..best.len() - 1] {
                line += &format!(" {:.2}x |", ours / v);
            }
            line += &format!(" {:.2}x |", ours / best[0]);
            println!("{line}");
        }
    }
    for op in ["get", "set"] {
        let mut ceiling = 0f64;
        for _ in 0..CLIENT_ROUNDS {
            let c = config.clone();
            let rate = tokio::task::spawn_blocking(move || redis_benchmark_with(&c, 64, 16, 2_000_000, op));
            common::best(&mut ceiling, rate.await.unwrap());
        }
        println!("| {op}, redis-benchmark -c 64 -P 16 (the server's ceiling) | 64 | {ceiling:.0} | | | | | | | | |");
    }
    println!("load average after the clients table: {}", load_average());
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !common::started_by_cargo_bench() {
        return;
    }
    let (url, config) = common::redis_config("cpc-bench");
    let manager = RedisManager::new(&config).await.expect("Redis");
    let cache = Arc::new(CacheManager::new(manager.clone(), TTL));
    let value = Bytes::from_static(b"xxx");
    for i in 0..KEYS {
        cache.set_bytes(&key(i), value.clone(), None).await.unwrap();
    }

    let only = std::env::var("CPC_BENCH_ONLY").ok();
    if only.as_deref() == Some("rate_limit") {
        rate_limit_table(&url, &config, &manager, &cache, 3).await;
        cache.delete_prefix("k").await.unwrap();
        cache.delete_prefix("{rl:").await.unwrap();
        return;
    }
    clients_table(&url, &config, &cache).await;
    if only.as_deref() == Some("clients") {
        cache.delete_prefix("k").await.unwrap();
        return;
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

    rate_limit_table(&url, &config, &manager, &cache, 2).await;
    lock_table(&manager, &cache).await;

    cache.delete_prefix("k").await.unwrap();
    cache.delete_prefix("{rl:").await.unwrap();
    cache.delete_prefix("{lock:").await.unwrap();
}

/// Rate-limit decisions per second at 64 tasks, each algorithm against plain GETs (`redis-benchmark -c 64`), cache
/// gets at 64 tasks and the sliding log an app would write by hand (one `EVALSHA` per check), interleaved (which goes first rotates), best of `rounds` rounds each. 10,000 keys,
/// limits high enough that most decisions allow (a denial costs the same).
async fn rate_limit_table(
    url: &str,
    config: &RedisConfig,
    manager: &RedisManager,
    cache: &Arc<CacheManager>,
    rounds: usize,
) {
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
    println!("load average before the rate limit table: {}", load_average());
    // [plain GET, cache get, token bucket, sliding window, hand-written sliding window script per check]
    let mut best = [0f64; 5];
    for round in 0..rounds {
        let rb_config = config.clone();
        let mut runs: Vec<BoxFuture<'static, f64>> = vec![
            async move { tokio::task::spawn_blocking(move || redis_benchmark(&rb_config, TASKS, "get")).await.unwrap() }
                .boxed(),
        ];
        let c = cache.clone();
        runs.push(
            ops_per_sec(TASKS, move |t, n| {
                let c = c.clone();
                async move {
                    c.get_bytes(&key(t as u64 * 7919 + n)).await.unwrap();
                }
            })
            .boxed(),
        );
        for (_, policy) in &policies {
            let (l, keys, policy) = (limiter.clone(), rl_keys.clone(), *policy);
            runs.push(
                ops_per_sec(TASKS, move |t, n| {
                    let (l, keys) = (l.clone(), keys.clone());
                    async move {
                        let k = &keys[((t as u64 * 7919 + n) % keys.len() as u64) as usize];
                        l.check(k, &policy, 1).await.unwrap();
                    }
                })
                .boxed(),
            );
        }
        let (url, prefix) = (url.to_owned(), format!("{}bare-sw:", config.namespace));
        runs.push(
            async move {
                let client = redis::Client::open(url.as_str()).unwrap();
                let conn = client.get_multiplexed_async_connection().await.unwrap();
                let script = Arc::new(redis::Script::new(bare_redis::SLIDING_WINDOW));
                ops_per_sec(TASKS, move |t, n| {
                    let (mut conn, script, prefix) = (conn.clone(), script.clone(), prefix.clone());
                    async move {
                        let key = format!("{prefix}u{}", (t as u64 * 7919 + n) % 10_000);
                        let member = (t as u64) << 40 | n;
                        bare_redis::sliding_window(&mut conn, &script, key, 100, 1_000_000, member).await;
                    }
                })
                .await
            }
            .boxed(),
        );
        rotated(round, runs, &mut best).await;
    }
    let [best_plain, best_get, ..] = best;
    println!("load average after the rate limit table: {}", load_average());
    println!();
    println!(
        "| operation ({TASKS} tasks / clients) | ops/s | vs plain GET (redis-benchmark -c {TASKS}) | vs cache get (multiplexed) |"
    );
    println!("|---|---:|---:|---:|");
    println!("| plain GET, redis-benchmark -c {TASKS} | {best_plain:.0} | 1.00x | {:.2}x |", best_plain / best_get);
    println!("| cache get | {best_get:.0} | {:.2}x | 1.00x |", best_get / best_plain);
    for (i, (name, _)) in policies.iter().enumerate() {
        let rate = best[2 + i];
        println!("| rate limit check, {name} | {rate:.0} | {:.2}x | {:.2}x |", rate / best_plain, rate / best_get);
    }
    let bare = best[4];
    println!(
        "| hand-written sliding log script, one EVALSHA per check (redis-rs MultiplexedConnection) | {bare:.0} | {:.2}x | {:.2}x |",
        bare / best_plain,
        bare / best_get
    );
    println!();
    println!("sliding window, ours / the hand-written script: {:.2}x", best[3] / bare);
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
