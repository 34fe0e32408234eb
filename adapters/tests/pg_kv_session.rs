//! `PgSessionStore` on PostgreSQL: the `SessionStore` contract (concrete and as `dyn SessionStore`, a fresh migrated
//! database per case), plus what only a real server shows: concurrent `cycle_id`s of one session leave exactly one
//! winner, expiry follows the server's clock, the absolute expiry caps extends, expired rows are swept, and rows
//! altered by hand are typed errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(all(feature = "pg-kv", feature = "diesel"))]

#[allow(dead_code)]
mod common;

use std::sync::Arc;
use std::time::Duration;

use common::harness::DynHarness;
use common::pg_kv::pool;
use cpc_adapters::pg_kv::PgSessionStore;
use cpc_adapters::pg_kv::session::{SWEEP_BATCH, SWEEP_EVERY};
use cpc_ports::{Bytes, KvError, SessionId, SessionStore, SessionStoreExt};
use cpc_test_servers::TestDatabase;

const LONG: Duration = Duration::from_secs(600);

type Harness = common::pg_kv::Harness<PgSessionStore>;

async fn harness() -> Harness {
    common::pg_kv::harness(PgSessionStore::new).await
}

async fn dyn_harness() -> DynHarness<dyn SessionStore, TestDatabase> {
    harness().await.into_dyn(|p| Arc::new(p) as Arc<dyn SessionStore>)
}

mod contract_concrete {
    cpc_testkit::session_contract!(super::harness());
}

mod contract_dyn {
    cpc_testkit::session_contract!(super::dyn_harness());
}

async fn rows(db: &TestDatabase) -> i64 {
    db.connect().await.query_one("SELECT count(*) FROM cpc_sessions", &[]).await.unwrap().get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_concurrent_cycles_of_one_session_leave_exactly_one_winner() {
    let h = harness().await;
    let other = PgSessionStore::new(pool(&h.db).await);
    let old = h.create(&"alice", LONG).await.unwrap();
    let cycles = (0..16).map(|n| {
        let store = if n % 2 == 0 { h.port.clone() } else { other.clone() };
        let old = old.clone();
        tokio::spawn(async move { store.cycle_id(&old).await })
    });
    let results: Vec<_> = futures::future::join_all(cycles).await.into_iter().map(Result::unwrap).collect();
    let winners: Vec<&SessionId> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "exactly one cycle_id wins: {results:?}");
    for r in &results {
        assert!(matches!(r, Ok(_) | Err(KvError::NotFound { .. })), "the losers see the session gone: {r:?}");
    }
    assert_eq!(h.load::<String>(&old).await.unwrap(), None, "the old id is unreadable");
    assert_eq!(h.load::<String>(winners[0]).await.unwrap().as_deref(), Some("alice"));
    assert_eq!(rows(&h.db).await, 1, "one row moved, none copied");
}

#[tokio::test]
async fn expiry_follows_the_servers_clock() {
    let h = harness().await;
    let id = h.create_bytes(Bytes::from_static(b"x"), LONG).await.unwrap();
    let client = h.db.connect().await;
    let left_ms: f64 = client
        .query_one(
            "SELECT extract(epoch FROM (expires_at - now()))::float8 * 1000 FROM cpc_sessions WHERE id = $1",
            &[&id.as_str()],
        )
        .await
        .unwrap()
        .get(0);
    assert!(left_ms > 590_000.0 && left_ms <= 600_000.0, "expires_at is the server's now() + ttl: {left_ms} ms");
    // Past its expiry by the server's clock, whatever this process thinks: gone for every method.
    client.execute("UPDATE cpc_sessions SET expires_at = now() - interval '1 second'", &[]).await.unwrap();
    assert_eq!(h.load_bytes(&id).await.unwrap(), None);
    assert_eq!(h.ttl(&id).await.unwrap(), None);
    assert!(matches!(h.save_bytes(&id, Bytes::new()).await, Err(KvError::NotFound { .. })));
    assert!(matches!(h.extend(&id, LONG).await, Err(KvError::NotFound { .. })));
    assert!(matches!(h.cycle_id(&id).await, Err(KvError::NotFound { .. })));
    assert!(!h.destroy(&id).await.unwrap(), "an expired session does not count as existing");
    // An id whose row expired can be used again.
    let reused = h.create_bytes(Bytes::from_static(b"y"), LONG).await.unwrap();
    client.execute("UPDATE cpc_sessions SET expires_at = now() - interval '1 second'", &[]).await.unwrap();
    assert!(h.insert_bytes(&reused, Bytes::from_static(b"z"), LONG).await.unwrap(), "an expired row is replaced");
    assert_eq!(h.load_bytes(&reused).await.unwrap(), Some(Bytes::from_static(b"z")));
}

#[tokio::test]
async fn the_absolute_expiry_caps_creates_and_extends_and_survives_a_cycle() {
    let h = harness().await;
    let store = h.port.clone().with_absolute_ttl(Duration::from_millis(600));
    let id = store.create(&"bob", LONG).await.unwrap();
    let left = store.ttl(&id).await.unwrap().unwrap();
    assert!(left <= Duration::from_millis(600), "create is capped at the absolute expiry: {left:?}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let id = store.cycle_id(&id).await.unwrap();
    store.extend(&id, LONG).await.unwrap();
    let left = store.ttl(&id).await.unwrap().unwrap();
    assert!(left <= Duration::from_millis(400), "extend is capped at creation + 600 ms: {left:?}");
    assert!(left > Duration::from_millis(100), "{left:?}");
    store.extend(&id, Duration::from_millis(100)).await.unwrap();
    let left = store.ttl(&id).await.unwrap().unwrap();
    assert!(left <= Duration::from_millis(100), "a shorter sliding ttl still applies: {left:?}");
    store.extend(&id, LONG).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(store.load::<String>(&id).await.unwrap(), None, "gone at creation + 600 ms, extends or not");
    assert!(matches!(store.extend(&id, LONG).await, Err(KvError::NotFound { .. })));
    // Without an absolute expiry the sliding one goes on.
    let free = h.create(&"carol", Duration::from_millis(300)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    h.extend(&free, LONG).await.unwrap();
    assert!(h.ttl(&free).await.unwrap().unwrap() > Duration::from_secs(590));
}

#[tokio::test]
async fn expired_rows_are_swept_in_batches_and_live_ones_kept() {
    let h = harness().await;
    let live = h.create_bytes(Bytes::from_static(b"live"), LONG).await.unwrap();
    let client = h.db.connect().await;
    client
        .execute(
            "INSERT INTO cpc_sessions (id, data, created_at, expires_at) \
             SELECT 'expired-' || n, '\\x00', now() - interval '1 hour', now() - interval '1 minute' \
             FROM generate_series(1, 250) n",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(h.sweep_expired(100).await.unwrap(), 100, "one sweep deletes one batch");
    assert_eq!(rows(&h.db).await, 151);
    // Creates sweep by themselves, one batch every SWEEP_EVERY creates (this store made one create so far).
    let store = PgSessionStore::new(h.pool().clone());
    for _ in 0..SWEEP_EVERY - 1 {
        store.create_bytes(Bytes::from_static(b"new"), LONG).await.unwrap();
    }
    assert_eq!(rows(&h.db).await, 151 + i64::try_from(SWEEP_EVERY).unwrap() - 1, "no sweep yet");
    store.create_bytes(Bytes::from_static(b"new"), LONG).await.unwrap();
    let expired_left = 150 - i64::from(SWEEP_BATCH);
    let expired: i64 =
        client.query_one("SELECT count(*) FROM cpc_sessions WHERE expires_at <= now()", &[]).await.unwrap().get(0);
    assert_eq!(expired, expired_left, "the {SWEEP_EVERY}th create swept a batch");
    assert_eq!(h.sweep_expired(1000).await.unwrap(), u64::try_from(expired_left).unwrap());
    assert_eq!(h.load_bytes(&live).await.unwrap(), Some(Bytes::from_static(b"live")), "live sessions stay");
    assert_eq!(rows(&h.db).await, 1 + i64::try_from(SWEEP_EVERY).unwrap());
}

#[tokio::test]
async fn rows_altered_by_hand_are_typed_errors_never_panics() {
    let h = harness().await;
    let id = h.create(&vec![1u32, 2, 3], LONG).await.unwrap();
    let client = h.db.connect().await;
    client.execute("UPDATE cpc_sessions SET data = '\\xdeadbeefff00'", &[]).await.unwrap();
    assert_eq!(
        h.load_bytes(&id).await.unwrap(),
        Some(Bytes::from_static(b"\xde\xad\xbe\xef\xff\x00")),
        "the raw bytes load as they are"
    );
    let typed = h.load::<Vec<u32>>(&id).await;
    assert!(matches!(typed, Err(KvError::Codec(_))), "garbage data is a codec error: {typed:?}");
    client
        .batch_execute("ALTER TABLE cpc_sessions ALTER COLUMN data TYPE text USING encode(data, 'hex')")
        .await
        .unwrap();
    let loaded = h.load_bytes(&id).await;
    assert!(matches!(loaded, Err(KvError::Backend { .. })), "a data column of another type: {loaded:?}");
    client.batch_execute("ALTER TABLE cpc_sessions ALTER COLUMN expires_at TYPE text").await.unwrap();
    let left = h.ttl(&id).await;
    assert!(matches!(left, Err(KvError::Backend { .. })), "an expires_at column of another type: {left:?}");
}

#[tokio::test]
async fn a_session_created_through_one_pool_is_seen_and_destroyed_through_another() {
    let h = harness().await;
    let other = PgSessionStore::new(pool(&h.db).await);
    let id = h.create(&"dave", LONG).await.unwrap();
    assert_eq!(other.load::<String>(&id).await.unwrap().as_deref(), Some("dave"));
    assert!(other.destroy(&id).await.unwrap());
    assert_eq!(h.load::<String>(&id).await.unwrap(), None);
    assert_eq!(rows(&h.db).await, 0, "destroy deletes the row");
}
