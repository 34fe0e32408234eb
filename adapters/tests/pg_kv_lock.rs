//! `PgLock` on PostgreSQL: the `Lock` contract (concrete and as `dyn Lock`, a fresh migrated database per case),
//! plus what only a real server shows: holders on separate pools exclude each other, tokens keep growing across
//! a new pool, a lease is a row (no advisory lock), and a table altered by hand is a typed error.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(all(feature = "pg-kv", feature = "diesel"))]

#[allow(dead_code)]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::harness::DynHarness;
use common::pg_kv::pool;
use cpc_adapters::pg_kv::PgLock;
use cpc_ports::{KvError, Lock, LockKey};
use cpc_test_servers::TestDatabase;

const LONG: Duration = Duration::from_secs(10);

type Harness = common::pg_kv::Harness<PgLock>;

async fn harness() -> Harness {
    common::pg_kv::harness(PgLock::new).await
}

/// The port as `Arc<dyn Lock>` (what an app holds), which the guard cases clone.
async fn dyn_harness() -> DynHarness<Arc<dyn Lock>, TestDatabase> {
    harness().await.into_dyn(|p| Arc::new(Arc::new(p) as Arc<dyn Lock>))
}

mod contract_concrete {
    cpc_testkit::lock_contract!(super::harness());
}

mod contract_dyn {
    cpc_testkit::lock_contract!(super::dyn_harness());
}

fn key(s: &str) -> LockKey {
    LockKey::new(s).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holders_on_separate_pools_exclude_each_other_and_a_release_frees_the_lock_for_the_other() {
    let h = harness().await;
    let other = PgLock::new(pool(&h.db).await);
    let k = key("orders");
    let a = h.try_acquire(&k, LONG).await.unwrap().expect("the lock is free");
    assert_eq!(other.try_acquire(&k, LONG).await.unwrap(), None, "another pool cannot take a held lock");
    let waited = other.acquire(&k, LONG, Duration::from_millis(200)).await;
    assert!(matches!(waited, Err(KvError::Timeout { .. })), "waiting on another pool times out: {waited:?}");
    assert!(h.is_held(&a).await.unwrap());
    assert!(other.is_held(&a).await.unwrap(), "a lease is visible through any pool");
    h.release(a.clone()).await.unwrap();
    let b = other.acquire(&k, LONG, Duration::from_secs(2)).await.unwrap();
    assert!(b.token > a.token, "{} after {}", b.token, a.token);
    assert_eq!(h.try_acquire(&k, LONG).await.unwrap(), None, "now the first pool is shut out");
    assert!(matches!(h.release(a).await, Err(KvError::LeaseLost { .. })));
    other.release(b).await.unwrap();
}

#[tokio::test]
async fn an_expired_lease_is_taken_by_another_pool_and_the_stale_release_changes_nothing() {
    let h = harness().await;
    let other = PgLock::new(pool(&h.db).await);
    let k = key("expiring");
    let stale = h.try_acquire(&k, Duration::from_millis(150)).await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let fresh = other.try_acquire(&k, LONG).await.unwrap().expect("an expired lease is free");
    assert!(fresh.token > stale.token);
    let client = h.db.connect().await;
    let row = client.query_one("SELECT owner, fence FROM cpc_locks WHERE key = 'expiring'", &[]).await.unwrap();
    let before: (Option<String>, i64) = (row.get(0), row.get(1));
    assert!(matches!(h.release(stale.clone()).await, Err(KvError::LeaseLost { .. })));
    assert!(matches!(h.extend(&stale, LONG).await, Err(KvError::LeaseLost { .. })));
    let after = client.query_one("SELECT owner, fence FROM cpc_locks WHERE key = 'expiring'", &[]).await.unwrap();
    assert_eq!((after.get::<_, Option<String>>(0), after.get::<_, i64>(1)), before, "a stale release changes nothing");
    assert_eq!(before.0.as_deref(), Some(fresh.owner.as_str()), "the row names the new owner");
    assert!(other.is_held(&fresh).await.unwrap());
}

#[tokio::test]
async fn fences_grow_over_100_acquisitions_and_across_a_new_pool() {
    let h = harness().await;
    let k = key("fenced");
    let mut last = None;
    for n in 0..100 {
        let lease = h.try_acquire(&k, LONG).await.unwrap().unwrap();
        if let Some(last) = last {
            assert!(lease.token > last, "acquisition {n}: {} after {last}", lease.token);
        }
        last = Some(lease.token);
        // Every fourth lease runs out instead of being released.
        if n % 4 == 3 {
            let short = h.extend(&lease, Duration::from_millis(1)).await.unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
            assert!(!h.is_held(&short).await.unwrap());
        } else {
            h.release(lease).await.unwrap();
        }
    }
    let last = last.unwrap();
    // A restart of the app: a new pool, a new lock value, nothing shared in memory.
    let Harness { port: lock, db, .. } = h;
    drop(lock);
    let restarted = PgLock::new(pool(&db).await);
    let next = restarted.try_acquire(&k, LONG).await.unwrap().unwrap();
    assert!(next.token > last, "after a new pool: {} after {last}", next.token);
    let rows: i64 = db.connect().await.query_one("SELECT count(*) FROM cpc_locks", &[]).await.unwrap().get(0);
    assert_eq!(rows, 1, "one row per lock key, kept across releases and expiries");
}

#[tokio::test]
async fn tokens_start_from_the_server_clock_and_a_counter_ahead_of_it_goes_on_counting() {
    let h = harness().await;
    let client = h.db.connect().await;
    let micros = "SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint";
    let before: i64 = client.query_one(micros, &[]).await.unwrap().get(0);
    let first = h.try_acquire(&key("clock"), LONG).await.unwrap().unwrap();
    let after: i64 = client.query_one(micros, &[]).await.unwrap().get(0);
    let token = i64::try_from(first.token.0).unwrap();
    assert!((before..=after).contains(&token), "{before} <= {token} <= {after}");
    h.release(first).await.unwrap();
    let ahead = after + 1_000_000_000_000;
    client.execute("UPDATE cpc_locks SET fence = $1 WHERE key = 'clock'", &[&ahead]).await.unwrap();
    let next = h.try_acquire(&key("clock"), LONG).await.unwrap().unwrap();
    assert_eq!(next.token.0, u64::try_from(ahead + 1).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_acquirers_on_two_pools_hold_the_lock_one_at_a_time() {
    let h = harness().await;
    // Separate lock values: no local wake-ups shared, only the table decides.
    let locks: Vec<PgLock> = vec![h.port.clone(), PgLock::new(pool(&h.db).await)];
    let k = key("contended");
    let inside = Arc::new(AtomicUsize::new(0));
    let overlaps = Arc::new(AtomicUsize::new(0));
    let tasks = (0..32).map(|n| {
        let lock = PgLock::new(locks[n % 2].pool().clone());
        let (k, inside, overlaps) = (k.clone(), inside.clone(), overlaps.clone());
        tokio::spawn(async move {
            let lease = lock.acquire(&k, LONG, Duration::from_secs(20)).await?;
            if inside.fetch_add(1, Ordering::SeqCst) != 0 {
                overlaps.fetch_add(1, Ordering::SeqCst);
            }
            tokio::time::sleep(Duration::from_millis(3)).await;
            inside.fetch_sub(1, Ordering::SeqCst);
            let token = lease.token;
            lock.release(lease).await.map(|()| token)
        })
    });
    let results = futures::future::join_all(tasks).await;
    assert_eq!(overlaps.load(Ordering::SeqCst), 0, "two acquirers held the lock at once");
    let mut tokens: Vec<_> = results.into_iter().map(|r| r.unwrap().unwrap()).collect();
    tokens.sort();
    tokens.dedup();
    assert_eq!(tokens.len(), 32, "every acquirer got the lock, each with its own token");
}

#[tokio::test]
async fn a_lease_is_a_row_and_never_an_advisory_lock() {
    let h = harness().await;
    let lease = h.try_acquire(&key("no-advisory"), LONG).await.unwrap().unwrap();
    let client = h.db.connect().await;
    // This database's only: other tests' migrations take advisory locks in theirs.
    let advisory: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(advisory, 0, "holding a lease keeps no advisory lock on any connection");
    let row = client.query_one("SELECT owner FROM cpc_locks WHERE key = 'no-advisory'", &[]).await.unwrap();
    assert_eq!(row.get::<_, Option<String>>(0).as_deref(), Some(lease.owner.as_str()));
    h.release(lease).await.unwrap();
    let row = client.query_one("SELECT owner FROM cpc_locks WHERE key = 'no-advisory'", &[]).await.unwrap();
    assert_eq!(row.get::<_, Option<String>>(0), None, "a release frees the row and keeps it");
}

#[tokio::test]
async fn a_key_with_a_nul_is_a_validation_error_and_a_table_altered_by_hand_a_backend_error() {
    let h = harness().await;
    let nul = key("a\0b");
    assert!(matches!(h.try_acquire(&nul, LONG).await, Err(KvError::Validation(_))));
    let lease = h.try_acquire(&key("altered"), LONG).await.unwrap().unwrap();
    let client = h.db.connect().await;
    client.batch_execute("ALTER TABLE cpc_locks DROP CONSTRAINT cpc_locks_fence_check").await.unwrap();
    client.batch_execute("ALTER TABLE cpc_locks ALTER COLUMN fence TYPE text").await.unwrap();
    let taken = h.try_acquire(&key("another"), LONG).await;
    assert!(matches!(taken, Err(KvError::Backend { .. })), "a fence column of another type: {taken:?}");
    client.batch_execute("ALTER TABLE cpc_locks ALTER COLUMN fence TYPE bigint USING fence::bigint").await.unwrap();
    h.release(lease).await.unwrap();
    client.execute("UPDATE cpc_locks SET fence = -5 WHERE key = 'altered'", &[]).await.unwrap();
    // GREATEST(-5 + 1, clock) is the clock: a negative counter is overtaken, never returned.
    let retaken = h.try_acquire(&key("altered"), LONG).await.unwrap().unwrap();
    assert!(retaken.token.0 > 1_000_000_000_000_000, "{}", retaken.token);
}
