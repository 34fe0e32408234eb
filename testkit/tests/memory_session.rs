//! The session contract suite against [`InMemorySessionStore`], directly and as `Arc<dyn SessionStore>`, plus
//! what only the fake can show: lifetimes on tokio's paused clock, and purging of expired sessions.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cpc_ports::{Codec, KvError, SessionStore, SessionStoreExt};
use cpc_testkit::memory::InMemorySessionStore;
use tokio::time::advance;

mod concrete {
    cpc_testkit::session_contract!(async { std::sync::Arc::new(cpc_testkit::memory::InMemorySessionStore::new()) });
}

mod as_dyn {
    use std::sync::Arc;

    use cpc_ports::SessionStore;
    use cpc_testkit::memory::InMemorySessionStore;

    cpc_testkit::session_contract!(async { Arc::new(InMemorySessionStore::new()) as Arc<dyn SessionStore> });
}

mod msgpack {
    use std::sync::Arc;

    use cpc_ports::{Codec, SessionStore};
    use cpc_testkit::memory::InMemorySessionStore;

    cpc_testkit::session_contract!(async {
        Arc::new(InMemorySessionStore::new().with_codec(Codec::msgpack())) as Arc<dyn SessionStore>
    });
}

const SEC: Duration = Duration::from_secs(1);

#[tokio::test(start_paused = true)]
async fn lifetime_follows_the_paused_tokio_clock_exactly() {
    let store = InMemorySessionStore::new();
    let id = store.create_bytes(Bytes::from_static(b"x"), 10 * SEC).await.unwrap();
    advance(9 * SEC).await;
    assert_eq!(store.ttl(&id).await.unwrap(), Some(SEC));
    advance(SEC - Duration::from_millis(1)).await;
    assert_eq!(store.load_bytes(&id).await.unwrap(), Some(Bytes::from_static(b"x")), "alive 1 ms before the end");
    advance(Duration::from_millis(1)).await;
    assert_eq!(store.load_bytes(&id).await.unwrap(), None, "gone exactly at the end of its lifetime");
    assert_eq!(store.ttl(&id).await.unwrap(), None);
}

#[tokio::test(start_paused = true)]
async fn save_and_cycle_keep_the_exact_remaining_lifetime_and_extend_resets_it() {
    let store = InMemorySessionStore::new();
    let id = store.create_bytes(Bytes::from_static(b"a"), 10 * SEC).await.unwrap();
    advance(4 * SEC).await;
    store.save_bytes(&id, Bytes::from_static(b"b")).await.unwrap();
    assert_eq!(store.ttl(&id).await.unwrap(), Some(6 * SEC), "save keeps the remaining lifetime");
    advance(SEC).await;
    let new = store.cycle_id(&id).await.unwrap();
    assert_eq!(store.ttl(&new).await.unwrap(), Some(5 * SEC), "cycle_id keeps the remaining lifetime");
    store.extend(&new, 20 * SEC).await.unwrap();
    assert_eq!(store.ttl(&new).await.unwrap(), Some(20 * SEC), "extend resets the lifetime");
    advance(19 * SEC).await;
    assert_eq!(store.load_bytes(&new).await.unwrap(), Some(Bytes::from_static(b"b")));
    advance(SEC).await;
    assert_eq!(store.load_bytes(&new).await.unwrap(), None);
}

#[tokio::test(start_paused = true)]
async fn expired_sessions_are_purged_when_touched() {
    let store = InMemorySessionStore::new();
    let id = store.create_bytes(Bytes::from_static(b"x"), SEC).await.unwrap();
    advance(2 * SEC).await;
    assert_eq!(store.len(), 1, "nothing has touched the expired session yet");
    assert_eq!(store.load_bytes(&id).await.unwrap(), None);
    assert_eq!(store.len(), 0, "loading an expired session removes it");
    assert!(store.is_empty());
}

#[tokio::test(start_paused = true)]
async fn expired_sessions_are_swept_by_later_writes() {
    let store = InMemorySessionStore::new();
    for _ in 0..100 {
        store.create_bytes(Bytes::from_static(b"short"), SEC).await.unwrap();
    }
    assert_eq!(store.len(), 100);
    advance(2 * SEC).await;
    for _ in 0..200 {
        store.create_bytes(Bytes::from_static(b"long"), 60 * SEC).await.unwrap();
    }
    assert_eq!(store.len(), 200, "the 100 expired sessions must have been swept, never touched directly");
}

#[tokio::test(start_paused = true)]
async fn memory_stays_bounded_under_churn() {
    let store = InMemorySessionStore::new();
    for _ in 0..10_000 {
        store.create_bytes(Bytes::from_static(b"churn"), Duration::from_millis(1)).await.unwrap();
        advance(Duration::from_millis(2)).await;
    }
    assert!(store.len() <= 100, "expired sessions pile up: {} held", store.len());
}

#[tokio::test(start_paused = true)]
async fn purge_expired_drops_exactly_the_expired_sessions() {
    let store = InMemorySessionStore::new();
    for _ in 0..5 {
        store.create_bytes(Bytes::new(), SEC).await.unwrap();
    }
    let kept = store.create_bytes(Bytes::from_static(b"kept"), 60 * SEC).await.unwrap();
    advance(2 * SEC).await;
    assert_eq!(store.purge_expired(), 5);
    assert_eq!(store.len(), 1);
    assert_eq!(store.purge_expired(), 0);
    assert_eq!(store.load_bytes(&kept).await.unwrap(), Some(Bytes::from_static(b"kept")));
}

#[tokio::test(start_paused = true)]
async fn destroying_an_expired_session_reports_false_and_frees_it() {
    let store = InMemorySessionStore::new();
    let id = store.create_bytes(Bytes::new(), SEC).await.unwrap();
    advance(SEC).await;
    assert!(!store.destroy(&id).await.unwrap());
    assert!(store.is_empty());
}

#[tokio::test]
async fn extend_refuses_a_zero_ttl_and_leaves_the_session_alone() {
    let store = InMemorySessionStore::new();
    let id = store.create_bytes(Bytes::from_static(b"x"), 60 * SEC).await.unwrap();
    let extended = store.extend(&id, Duration::ZERO).await;
    assert!(matches!(extended, Err(KvError::Validation(_))), "got {extended:?}");
    assert_eq!(store.load_bytes(&id).await.unwrap(), Some(Bytes::from_static(b"x")));
    assert!(store.ttl(&id).await.unwrap().is_some_and(|t| t > 59 * SEC));
}

#[tokio::test]
async fn a_ttl_beyond_the_clock_is_a_validation_error_not_a_panic() {
    let store = InMemorySessionStore::new();
    let created = store.create_bytes(Bytes::new(), Duration::MAX).await;
    assert!(matches!(created, Err(KvError::Validation(_))), "got {created:?}");
    assert!(store.is_empty(), "nothing may be stored");
    let id = store.create_bytes(Bytes::new(), SEC).await.unwrap();
    let extended = store.extend(&id, Duration::MAX).await;
    assert!(matches!(extended, Err(KvError::Validation(_))), "got {extended:?}");
}

#[tokio::test]
async fn the_configured_codec_is_used_and_reported() {
    let store = InMemorySessionStore::new().with_codec(Codec::msgpack());
    assert_eq!(store.codec(), Codec::msgpack());
    let id = store.create(&vec![1u8, 2, 3], 60 * SEC).await.unwrap();
    let raw = store.load_bytes(&id).await.unwrap().unwrap();
    assert_eq!(raw[2], b'm', "typed data must be written as MessagePack");
    assert_eq!(store.load::<Vec<u8>>(&id).await.unwrap(), Some(vec![1, 2, 3]));
    assert_eq!(InMemorySessionStore::default().codec(), Codec::json(), "the default codec is JSON");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_tasks_get_distinct_sessions() {
    let store = Arc::new(InMemorySessionStore::new());
    let tasks: Vec<_> = (0..8u8)
        .map(|t| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for n in 0..100u8 {
                    ids.push((store.create_bytes(Bytes::from(vec![t, n]), 60 * SEC).await.unwrap(), vec![t, n]));
                }
                ids
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    assert_eq!(store.len(), 800, "every create must make its own session");
    for (id, data) in all {
        assert_eq!(store.load_bytes(&id).await.unwrap(), Some(Bytes::from(data)));
    }
}
