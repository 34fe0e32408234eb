//! Checkout + return cost of the cpc pool (metrics on; and with leak detection on too) against bare bb8 and
//! deadpool, each over
//! a connection manager that does nothing, so only pool overhead is measured. Run:
//!
//! ```sh
//! cargo bench -p cpc-adapters --all-features --bench pool_overhead
//! ```
//!
//! Prints ops/s per pool and the ratio of each to bare bb8 (time per op; lower is better), uncontended (1 task,
//! 8 connections), contended (64 tasks on 8 connections) and waiting (64 tasks on 8 connections, each holding its
//! connection across a yield to the scheduler). `CPC_BENCH_ONLY=uncontended` (or `contended`, `waiting`) runs one
//! scenario.
//!
//! In the contended scenario a checkout never waits: a task returns its connection before it next yields, so at
//! most one connection per worker thread is out, and what is measured is two threads hammering the pool's shared
//! state. In the waiting scenario connections really run out, and most checkouts queue for one.

mod common;
#[path = "common/noop.rs"]
mod noop;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cpc_adapters::pool::{Pool, PoolConfig};
use noop::{NoopBackend, NoopBb8, NoopDeadpool};

const RUN: Duration = Duration::from_secs(2);
const ROUNDS: usize = 3;

// --- harness --------------------------------------------------------------------------------------------------

#[derive(Clone)]
enum Subject {
    Bb8(bb8::Pool<NoopBb8>),
    Deadpool(deadpool::managed::Pool<NoopDeadpool>),
    Cpc(Pool<NoopBackend>),
}

/// Holds `conn` across a yield to the scheduler when `hold` is set, then returns it.
async fn release<C>(conn: C, hold: bool) {
    if hold {
        tokio::task::yield_now().await;
    }
    drop(conn);
}

impl Subject {
    async fn checkout(&self, hold: bool) {
        match self {
            Self::Bb8(p) => release(p.get().await.expect("bb8 checkout"), hold).await,
            Self::Deadpool(p) => release(p.get().await.expect("deadpool checkout"), hold).await,
            Self::Cpc(p) => release(p.get().await.expect("cpc checkout"), hold).await,
        }
    }
}

async fn throughput(subject: &Subject, tasks: usize, hold: bool) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + RUN;
    let started = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let (subject, done) = (subject.clone(), done.clone());
            tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    for _ in 0..64 {
                        subject.checkout(hold).await;
                    }
                    n += 64;
                }
                done.fetch_add(n, Ordering::Relaxed);
            })
        })
        .collect();
    for h in handles {
        h.await.expect("bench task");
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !common::started_by_cargo_bench() {
        return;
    }
    let bb8 = Subject::Bb8(bb8::Pool::builder().max_size(8).build(NoopBb8).await.expect("bb8"));
    let deadpool =
        Subject::Deadpool(deadpool::managed::Pool::builder(NoopDeadpool).max_size(8).build().expect("deadpool"));
    let cpc =
        Subject::Cpc(Pool::new(NoopBackend, &PoolConfig::default().max_connections(8), "bench").await.expect("cpc"));
    let leak_config = PoolConfig::default().max_connections(8).leak_detection_threshold(Some(Duration::from_secs(60)));
    let cpc_leak = Subject::Cpc(Pool::new(NoopBackend, &leak_config, "bench-leak").await.expect("cpc"));
    println!("| scenario | pool | checkouts/s | time per op vs bare bb8 |");
    println!("|---|---|---:|---:|");
    let only = std::env::var("CPC_BENCH_ONLY").unwrap_or_default();
    let scenarios = [
        ("uncontended (1 task, 8 conns)", 1, false),
        ("contended (64 tasks, 8 conns)", 64, false),
        ("waiting (64 tasks, 8 conns, held across a yield)", 64, true),
    ];
    for (scenario, tasks, hold) in scenarios {
        if !scenario.starts_with(only.as_str()) {
            continue;
        }
        // Interleave rounds so drift on a shared machine hits every pool alike; keep each pool's best round.
        let mut best = [0f64; 4];
        for _ in 0..ROUNDS {
            for (i, s) in [&bb8, &deadpool, &cpc, &cpc_leak].into_iter().enumerate() {
                best[i] = best[i].max(throughput(s, tasks, hold).await);
            }
        }
        for (name, s) in [("cpc", &cpc), ("cpc+leak", &cpc_leak)] {
            if let Subject::Cpc(p) = s {
                eprintln!("{scenario}: {name} pool state afterwards: {:?}", p.state());
            }
        }
        let names = ["bare bb8", "deadpool", "cpc (metrics on, default)", "cpc (metrics + leak detection)"];
        for (i, name) in names.into_iter().enumerate() {
            println!("| {scenario} | {name} | {:.0} | {:.2}x |", best[i], best[0] / best[i]);
        }
    }
}
