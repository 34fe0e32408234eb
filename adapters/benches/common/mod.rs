//! What the benches share: one loop measuring operations per second of many tasks, the two ways the benches use
//! it ([`ops_per_sec`], [`measure`]), and rounds run in rotating order keeping each figure's best. Each bench
//! uses part of it (`mod common;`).

#![allow(dead_code, clippy::unwrap_used)]

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;

/// Whether `cargo bench` started this binary (it passes `--bench`). A test runner listing or running every target
/// does not, and must not start a benchmark: each bench's `main` returns at once when this is false.
pub fn started_by_cargo_bench() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// The 1-, 5- and 15-minute load averages (`/proc/loadavg`), to print beside wall-clock figures.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// The Redis at `REDIS_URL` (default `redis://127.0.0.1:6379`) and its configuration under a fresh namespace
/// `<prefix>:<uuid>:`, so a run never meets another's keys.
#[cfg(feature = "redis")]
pub fn redis_config(prefix: &str) -> (String, cpc_adapters::redis::RedisConfig) {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let mut config = cpc_adapters::redis::RedisConfig::parse_url(&url, "REDIS_URL").unwrap();
    config.namespace = format!("{prefix}:{}:", uuid::Uuid::new_v4());
    (url, config)
}

/// How long one [`ops_per_sec`] measurement runs.
pub const RUN: Duration = Duration::from_secs(3);
/// Seconds counted per [`measure`] measurement.
pub const SECONDS: u64 = 3;
/// Uncounted time at the start of each [`measure`] measurement.
pub const WARM_UP: Duration = Duration::from_millis(300);

/// Operations per second of `tasks` tasks each calling `op(task, n)` (its `n`th call) in a loop: `warm_up`
/// uncounted, then `run` counted.
pub async fn per_sec<F, Fut>(tasks: usize, warm_up: Duration, run: Duration, op: F) -> f64
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let done = Arc::new(AtomicU64::new(0));
    let counted_from = Instant::now() + warm_up;
    let deadline = counted_from + run;
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let (op, done) = (op.clone(), done.clone());
            tokio::spawn(async move {
                let (mut calls, mut counted) = (0u64, 0u64);
                loop {
                    let started = Instant::now();
                    if started >= deadline {
                        break;
                    }
                    op(t, calls).await;
                    calls += 1;
                    if started >= counted_from {
                        counted += 1;
                    }
                }
                done.fetch_add(counted, Ordering::Relaxed);
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / counted_from.elapsed().as_secs_f64()
}

/// [`per_sec`] for [`RUN`], nothing uncounted.
pub async fn ops_per_sec<F, Fut>(tasks: usize, op: F) -> f64
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    per_sec(tasks, Duration::ZERO, RUN, op).await
}

/// [`per_sec`] with `op` given a pseudo-random number per call (for picking rows): [`WARM_UP`] uncounted
/// (connections opened, statements prepared), then [`SECONDS`] counted.
pub async fn measure<F, Fut>(tasks: usize, op: F) -> f64
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    per_sec(tasks, WARM_UP, Duration::from_secs(SECONDS), move |t, n| op(random(t, n))).await
}

/// A pseudo-random number for call `n` of task `t` (splitmix64 of both).
pub fn random(t: usize, n: u64) -> u64 {
    let mut z = (t as u64).wrapping_shl(40) ^ n ^ 0x9E37_79B9_7F4A_7C15;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Runs the measurements one after the other, starting with a different one each round (so none is always
/// first, right after the pools opened), keeping the best figure of each.
pub async fn rotated(round: usize, mut runs: Vec<BoxFuture<'static, f64>>, best_of: &mut [f64]) {
    let n = runs.len();
    let mut results = vec![0.0; n];
    for k in 0..n {
        let i = (k + round) % n;
        results[i] = std::mem::replace(&mut runs[i], Box::pin(async { 0.0 })).await;
    }
    for (b, r) in best_of.iter_mut().zip(results) {
        best(b, r);
    }
}

/// Keeps the larger figure in `a`.
pub fn best(a: &mut f64, b: f64) {
    if b > *a {
        *a = b;
    }
}
