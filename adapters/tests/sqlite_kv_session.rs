//! `SqliteSessionStore` on a SQLite file: the `SessionStore` contract (concrete and as `dyn SessionStore`, a fresh
//! migrated database file per case), plus what only a real database file shows: sessions survive a restart,
//! lifetimes are on SQLite's clock, `cycle_id` is atomic across connections, expired rows are swept, and a bad row
//! is a typed error.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(all(feature = "sqlite-kv", feature = "diesel"))]

#[allow(dead_code)]
mod common;

use std::sync::Arc;
use std::time::Duration;

use common::harness::DynHarness;
use common::sqlite_kv::pool;
use cpc_adapters::sqlite_kv::SqliteSessionStore;
use cpc_ports::{KvError, SessionStore};

type Harness = common::sqlite_kv::Harness<SqliteSessionStore>;

async fn harness() -> Harness {
    common::sqlite_kv::harness("sessions.db", SqliteSessionStore::new).await
}

async fn dyn_harness() -> DynHarness<dyn SessionStore, tempfile::TempDir> {
    harness().await.into_dyn(|p| Arc::new(p) as Arc<dyn SessionStore>)
}

mod contract_concrete {
    cpc_testkit::session_contract!(super::harness());
}

mod contract_dyn {
    cpc_testkit::session_contract!(super::dyn_harness());
}

/// Rows in the table, expired ones included.
async fn rows(store: &SqliteSessionStore) -> i64 {
    store.pool().interact(|c| c.query_row("SELECT count(*) FROM cpc_sessions", [], |r| r.get(0))).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_survive_a_restart_with_their_remaining_lifetime() {
    let h = harness().await;
    let id = h.create_bytes("alice".into(), Duration::from_secs(60)).await.unwrap();
    let cycled = h.create_bytes("bob".into(), Duration::from_secs(60)).await.unwrap();
    let cycled = h.cycle_id(&cycled).await.unwrap();
    let Harness { port: store, path, dir: _dir } = h;
    drop(store); // the only pool on the file: every connection is closed

    let reopened = SqliteSessionStore::new(pool(&path, 2).await);
    assert_eq!(reopened.load_bytes(&id).await.unwrap().unwrap(), "alice");
    assert_eq!(reopened.load_bytes(&cycled).await.unwrap().unwrap(), "bob");
    let left = reopened.ttl(&id).await.unwrap().unwrap();
    assert!(left > Duration::from_secs(55) && left <= Duration::from_secs(60), "{left:?}");
}

/// Expiry is SQLite's clock against the stored `expires_at`: a row moved into the past by hand is gone for every
/// call at once, though still in the table until swept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_is_decided_by_the_database_clock_and_expired_rows_are_swept() {
    let h = harness().await;
    let id = h.create_bytes("alice".into(), Duration::from_secs(3600)).await.unwrap();
    let kept = h.create_bytes("bob".into(), Duration::from_secs(3600)).await.unwrap();
    let sql = "UPDATE cpc_sessions SET expires_at = CAST(unixepoch('subsec') * 1000 AS INTEGER) - 1 WHERE id = ?1";
    let expired = id.as_str().to_owned();
    h.pool().write(move |tx| tx.execute(sql, [expired])).await.unwrap();
    assert_eq!(h.load_bytes(&id).await.unwrap(), None);
    assert_eq!(h.ttl(&id).await.unwrap(), None);
    assert!(matches!(h.save_bytes(&id, "x".into()).await, Err(KvError::NotFound { .. })));
    assert!(matches!(h.extend(&id, Duration::from_secs(60)).await, Err(KvError::NotFound { .. })));
    assert!(matches!(h.cycle_id(&id).await, Err(KvError::NotFound { .. })));
    assert_eq!(rows(&h).await, 2, "the expired row is still stored");
    assert!(h.insert_bytes(&id, "new".into(), Duration::from_secs(60)).await.unwrap(), "an expired id is free");
    assert_eq!(h.load_bytes(&id).await.unwrap().unwrap(), "new");

    let short = h.create_bytes("short".into(), Duration::from_millis(50)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert_eq!(h.purge_expired().await.unwrap(), 1);
    assert_eq!(rows(&h).await, 2);
    assert_eq!(h.load_bytes(&short).await.unwrap(), None);
    assert_eq!(h.load_bytes(&kept).await.unwrap().unwrap(), "bob");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_sweep_expired_rows() {
    let h = harness().await;
    for _ in 0..150 {
        h.create_bytes("old".into(), Duration::from_millis(1)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    h.create_bytes("new".into(), Duration::from_secs(60)).await.unwrap();
    assert!(rows(&h).await <= 51, "one create deleted a batch of 100 expired rows");
    h.create_bytes("new".into(), Duration::from_secs(60)).await.unwrap();
    assert_eq!(rows(&h).await, 2, "the next create deleted the rest");
}

/// Two workers on separate pools cycle the same session at once: exactly one gets a new id, the other finds the
/// session gone, and only the winner's id loads.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_cycles_from_separate_connections_move_the_session_once() {
    let h = harness().await;
    for _ in 0..20 {
        let id = h.create_bytes("alice".into(), Duration::from_secs(60)).await.unwrap();
        let (a, b) = (SqliteSessionStore::new(pool(&h.path, 1).await), SqliteSessionStore::new(pool(&h.path, 1).await));
        let (ida, idb) = (id.clone(), id.clone());
        let (ra, rb) = tokio::join!(
            tokio::spawn(async move { a.cycle_id(&ida).await }),
            tokio::spawn(async move { b.cycle_id(&idb).await })
        );
        let results = [ra.unwrap(), rb.unwrap()];
        let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(winners.len(), 1, "{results:?}");
        assert!(results.iter().any(|r| matches!(r, Err(KvError::NotFound { .. }))), "{results:?}");
        assert_eq!(h.load_bytes(winners[0]).await.unwrap().unwrap(), "alice");
        assert_eq!(h.load_bytes(&id).await.unwrap(), None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_of_the_wrong_type_is_a_backend_error_and_an_unmigrated_database_too() {
    let h = harness().await;
    let id = h.create_bytes("alice".into(), Duration::from_secs(60)).await.unwrap();
    h.pool().write(|tx| tx.execute("UPDATE cpc_sessions SET data = 'text, not a blob'", [])).await.unwrap();
    let err = h.load_bytes(&id).await.unwrap_err();
    assert!(matches!(err, KvError::Backend { backend: "sqlite", .. }), "{err:?}");

    let dir = tempfile::tempdir().unwrap();
    let unmigrated = SqliteSessionStore::new(pool(&dir.path().join("empty.db"), 1).await);
    let err = unmigrated.create_bytes("x".into(), Duration::from_secs(1)).await.unwrap_err();
    assert!(matches!(err, KvError::Backend { backend: "sqlite", .. }), "{err:?}");
}
