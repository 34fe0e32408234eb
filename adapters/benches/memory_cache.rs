//! The in-process cache (`InMemoryCache`) through `Arc<dyn Cache>`: reads of present keys, writes, counter
//! increments and writes of ever new keys (churn: past the entry bound, each write evicts one), each kind on a
//! cache of its own with the default bounds (10,000 entries). Run:
//!
//! ```sh
//! cargo bench -p cpc-adapters --features memory --bench memory_cache
//! ```
//!
//! Each figure is the best of [`ROUNDS`] rounds of [`RUN`] (after [`WARM_UP`] uncounted), the rows rotating so
//! none always runs first. Prints a markdown table: operation, tasks, ops/s.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use common::{per_sec, rotated};

use cpc_adapters::memory::InMemoryCache;
use cpc_ports::{Bytes, Cache, CacheKey};

/// Rounds per figure; the best is kept.
const ROUNDS: usize = 3;
/// Counted time per measurement.
const RUN: Duration = Duration::from_secs(2);
/// Uncounted time at the start of each measurement.
const WARM_UP: Duration = Duration::from_millis(200);
/// Keys read, written and incremented (all present after the warm-up writes).
const KEYS: u64 = 10_000;

/// Key `i` of the [`KEYS`] keys.
fn key(i: u64) -> CacheKey {
    CacheKey::new(format!("k{}", i % KEYS)).unwrap()
}

/// The measurement of `op` on `cache` at `tasks` tasks, its `n`th call of task `t` given `(cache, t, n)`.
fn measured<F, Fut>(cache: &Arc<dyn Cache>, tasks: usize, op: F) -> BoxFuture<'static, f64>
where
    F: Fn(Arc<dyn Cache>, usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let cache = cache.clone();
    Box::pin(per_sec(tasks, WARM_UP, RUN, move |t, n| op(cache.clone(), t, n)))
}

/// The caches of the rows: reads and writes of the [`KEYS`] keys share one, counters and new keys have one
/// each, so that neither evicts the keys the reads expect.
struct Caches {
    keys: Arc<dyn Cache>,
    counters: Arc<dyn Cache>,
    churn: Arc<dyn Cache>,
}

/// The rows: a name, the tasks, and the measurement to run.
fn rows(caches: &Caches, tasks: usize) -> Vec<(String, BoxFuture<'static, f64>)> {
    let Caches { keys: cache, counters, churn } = caches;
    vec![
        (
            format!("get (hit) | {tasks}"),
            measured(cache, tasks, |c, t, n| async move {
                assert!(c.get_bytes(&key(t as u64 * 7919 + n)).await.unwrap().is_some());
            }),
        ),
        (
            format!("set | {tasks}"),
            measured(cache, tasks, |c, t, n| async move {
                c.set_bytes(&key(t as u64 * 7919 + n), Bytes::from_static(b"xxx"), None).await.unwrap();
            }),
        ),
        (
            format!("increment_by | {tasks}"),
            measured(counters, tasks, |c, t, n| async move {
                let k = CacheKey::new(format!("n{}", (t as u64 * 7919 + n) % KEYS)).unwrap();
                c.increment_by(&k, 1, None).await.unwrap();
            }),
        ),
        (
            format!("set of new keys (churn) | {tasks}"),
            measured(churn, tasks, |c, t, n| async move {
                let k = CacheKey::new(format!("churn:{t}:{n}")).unwrap();
                c.set_bytes(&k, Bytes::from_static(b"xxx"), None).await.unwrap();
            }),
        ),
    ]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !common::started_by_cargo_bench() {
        return;
    }
    let new = || Arc::new(InMemoryCache::new(Duration::from_secs(300))) as Arc<dyn Cache>;
    let caches = Caches { keys: new(), counters: new(), churn: new() };
    for i in 0..KEYS {
        caches.keys.set_bytes(&key(i), Bytes::from_static(b"xxx"), None).await.unwrap();
    }
    let names: Vec<String> = [1, 2].iter().flat_map(|&t| rows(&caches, t).into_iter().map(|(name, _)| name)).collect();
    let mut best = vec![0.0; names.len()];
    for round in 0..ROUNDS {
        let runs = [1, 2].iter().flat_map(|&t| rows(&caches, t).into_iter().map(|(_, run)| run)).collect();
        rotated(round, runs, &mut best).await;
    }
    println!("| operation | tasks | ops/s |\n|---|---|---|");
    for (name, ops) in names.iter().zip(best) {
        println!("| {name} | {ops:.0} |");
    }
}
