//! `SqliteLock` on a SQLite file: the `Lock` contract (concrete and as `dyn Lock`, a fresh migrated database file
//! per case), plus what only a real database file shows: holders on separate connections exclude each other, and
//! fencing tokens keep growing across a restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(all(feature = "sqlite-kv", feature = "diesel"))]

#[allow(dead_code)]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::harness::DynHarness;
use common::sqlite_kv::pool;
use cpc_adapters::sqlite_kv::SqliteLock;
use cpc_ports::{KvError, Lock, LockKey};

type Harness = common::sqlite_kv::Harness<SqliteLock>;

async fn harness() -> Harness {
    common::sqlite_kv::harness("locks.db", SqliteLock::new).await
}

/// The port as `Arc<dyn Lock>` (what an app holds), which the guard cases clone.
async fn dyn_harness() -> DynHarness<Arc<dyn Lock>, tempfile::TempDir> {
    harness().await.into_dyn(|p| Arc::new(Arc::new(p) as Arc<dyn Lock>))
}

mod contract_concrete {
    cpc_testkit::lock_contract!(super::harness());
}

mod contract_dyn {
    cpc_testkit::lock_contract!(super::dyn_harness());
}

/// Six workers, each with its own pool (no shared writer gate, no shared wake-up), take one key 10 times each:
/// never two holders at once, every token distinct.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn holders_on_separate_connections_exclude_each_other() {
    let h = harness().await;
    let key = LockKey::new("report:nightly").unwrap();
    let inside = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..6 {
        let lock = SqliteLock::new(pool(&h.path, 1).await);
        let (key, inside) = (key.clone(), inside.clone());
        workers.push(tokio::spawn(async move {
            let mut tokens = Vec::new();
            for _ in 0..10 {
                let lease = lock.acquire(&key, Duration::from_secs(10), Duration::from_secs(30)).await.unwrap();
                assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "another holder is inside");
                tokio::time::sleep(Duration::from_millis(2)).await;
                inside.fetch_sub(1, Ordering::SeqCst);
                tokens.push(lease.token);
                lock.release(lease).await.unwrap();
            }
            tokens
        }));
    }
    let mut tokens = Vec::new();
    for worker in workers {
        tokens.extend(worker.await.unwrap());
    }
    tokens.sort();
    tokens.dedup();
    assert_eq!(tokens.len(), 60, "every acquisition got its own token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fencing_tokens_keep_growing_across_a_restart() {
    let h = harness().await;
    let key = LockKey::new("migrations").unwrap();
    let first = h.try_acquire(&key, Duration::from_secs(60)).await.unwrap().unwrap();
    let Harness { port: lock, path, dir: _dir } = h;
    drop(lock); // the process dies holding the lock

    let reopened = SqliteLock::new(pool(&path, 2).await);
    assert!(reopened.try_acquire(&key, Duration::from_secs(1)).await.unwrap().is_none(), "the lease outlived the pool");
    assert!(reopened.is_held(&first).await.unwrap());
    reopened.release(first.clone()).await.unwrap();
    let second = reopened.try_acquire(&key, Duration::from_secs(1)).await.unwrap().unwrap();
    assert!(second.token > first.token, "{:?} after {:?}", second.token, first.token);
    assert!(matches!(reopened.release(first).await, Err(KvError::LeaseLost { .. })));
}
