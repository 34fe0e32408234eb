//! Throughput measurement shared by the benchmarks: tasks calling an operation in a loop for a fixed time, and
//! rounds of several measurements run one after the other in rotating order, keeping each one's best. Include
//! with `#[path = "common/throughput.rs"] mod throughput;`.

#![allow(dead_code)]

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;

/// Seconds counted per measurement.
pub const SECONDS: u64 = 3;
/// Uncounted time at the start of each measurement.
pub const WARM_UP: Duration = Duration::from_millis(300);

/// One xorshift step: cheap pseudo-random numbers for picking rows.
pub fn xorshift(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

/// Operations per second of `tasks` tasks each calling `op` (with a random number) in a loop: `WARM_UP`
/// uncounted (connections opened, statements prepared), then `SECONDS` counted.
pub async fn measure<F, Fut>(tasks: usize, op: F) -> f64
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let op = Arc::new(op);
    let done = Arc::new(AtomicU64::new(0));
    let counted_from = Instant::now() + WARM_UP;
    let deadline = counted_from + Duration::from_secs(SECONDS);
    let handles: Vec<_> = (0..tasks)
        .map(|i| {
            let (op, done) = (op.clone(), done.clone());
            tokio::spawn(async move {
                let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ (i as u64 + 1);
                let mut n = 0u64;
                loop {
                    let started = Instant::now();
                    if started >= deadline {
                        break;
                    }
                    op(xorshift(&mut seed)).await;
                    if started >= counted_from {
                        n += 1;
                    }
                }
                done.fetch_add(n, Ordering::Relaxed);
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    AtomicU64::load(&done, Ordering::Relaxed) as f64 / counted_from.elapsed().as_secs_f64()
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

pub fn best(a: &mut f64, b: f64) {
    if b > *a {
        *a = b;
    }
}
