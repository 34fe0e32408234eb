//! `SessionManager` against the shared Redis (`REDIS_URL`): the `SessionStore` contract (concrete and as
//! `dyn SessionStore`), and what the adapter adds: the seed-named typed methods, malformed ids refused without a
//! round trip, the absolute expiry, TTLs on every key, and cycling within one hash slot. Each test runs in its
//! own key namespace.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "redis")]

#[allow(dead_code)]
mod common;

use common::redis::{namespace_keys, shared_manager};

use std::time::{Duration, Instant};

use cpc_adapters::redis::{CacheManager, RedisConfig, RedisManager, SessionManager};
use cpc_ports::{Codec, KvError, SessionId, SessionStore, SessionStoreExt};
use cpc_test_servers::PrivateRedis;
use serde::{Deserialize, Serialize};

async fn sessions(namespace: &str) -> SessionManager {
    SessionManager::new(shared_manager(namespace).await)
}

mod contract_concrete {
    cpc_testkit::session_contract!(async { std::sync::Arc::new(super::sessions("session-contract").await) });
}

mod contract_dyn {
    use std::sync::Arc;

    use cpc_ports::SessionStore;

    cpc_testkit::session_contract!(async {
        Arc::new(super::sessions("session-contract-dyn").await) as Arc<dyn SessionStore>
    });
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct UserData {
    user_id: u64,
    name: String,
}

fn alice() -> UserData {
    UserData { user_id: 42, name: "Alice Ünïcode".into() }
}

#[tokio::test]
async fn seed_named_methods_create_get_and_extend_typed_sessions() {
    let manager = shared_manager("seed-api").await;
    let cache_manager = CacheManager::new(manager, Duration::from_secs(300)).with_codec(Codec::msgpack());
    let session_manager = SessionManager::from(cache_manager.clone());
    assert_eq!(session_manager.codec(), Codec::msgpack(), "From<CacheManager> keeps the cache's codec");
    assert_eq!(SessionManager::new(cache_manager).codec(), Codec::json(), "new() takes the manager only");

    let session_id = session_manager.create_session(&alice(), Duration::from_secs(2)).await.unwrap();
    let data: Option<UserData> = session_manager.get_session(&session_id).await.unwrap();
    assert_eq!(data, Some(alice()));
    let from_cookie: Option<UserData> = session_manager.get_session_str(session_id.as_str()).await.unwrap();
    assert_eq!(from_cookie, Some(alice()), "a well-formed id string loads the session");

    session_manager.extend_session(&session_id, Duration::from_secs(3600)).await.unwrap();
    let left = session_manager.ttl(&session_id).await.unwrap().unwrap();
    assert!(left > Duration::from_secs(3590), "extend_session resets the lifetime: {left:?}");

    assert!(session_manager.destroy(&session_id).await.unwrap());
    let gone = session_manager.extend_session(&session_id, Duration::from_secs(60)).await;
    assert!(matches!(gone, Err(KvError::NotFound { .. })), "{gone:?}");
    assert_eq!(session_manager.get_session::<UserData>(&session_id).await.unwrap(), None);
}

#[tokio::test]
async fn a_malformed_id_is_none_without_any_round_trip() {
    let server = PrivateRedis::start().await;
    let config = RedisConfig::builder()
        .port(server.port())
        .connect_timeout(Duration::from_millis(300))
        .response_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let store = SessionManager::new(RedisManager::new(&config).await.unwrap());
    let real = store.create_session(&alice(), Duration::from_secs(60)).await.unwrap();
    let calls_before = total_calls(store.manager()).await;
    for bad in ["", "short", "../../etc/passwd", &"!".repeat(43), &format!("{}=", &real.as_str()[..42]), "*"] {
        assert_eq!(store.get_session_str::<UserData>(bad).await.unwrap(), None, "{bad:?} is no session");
    }
    // Only the first INFO of `total_calls` itself reached the server in between.
    let calls_after = total_calls(store.manager()).await;
    assert_eq!(calls_after - calls_before, 1, "malformed ids must not send commands");

    drop(server); // killed: any round trip now fails
    let started = Instant::now();
    assert_eq!(store.get_session_str::<UserData>("not-a-session-id").await.unwrap(), None);
    assert!(started.elapsed() < Duration::from_millis(50), "no I/O for a malformed id: {:?}", started.elapsed());
    let err = store.get_session_str::<UserData>(real.as_str()).await;
    assert!(err.is_err(), "a well-formed id does go to the (dead) server: {err:?}");
}

/// The server's total command count (INFO commandstats, summed), itself counted as one INFO call.
async fn total_calls(m: &RedisManager) -> u64 {
    let info: String = m.query(redis::cmd("INFO").arg("commandstats"), "info").await.unwrap();
    info.lines()
        .filter(|l| l.starts_with("cmdstat_"))
        .filter_map(|l| l.split(',').find_map(|f| f.split_once("calls=").map(|(_, n)| n)))
        .filter_map(|n| n.parse::<u64>().ok())
        .sum()
}

#[tokio::test]
async fn the_absolute_expiry_caps_creates_and_extends() {
    let store = sessions("absolute").await.with_absolute_ttl(Duration::from_millis(1000));
    assert_eq!(store.absolute_ttl(), Some(Duration::from_millis(1000)));
    let started = Instant::now();
    let id = store.create_bytes("d".into(), Duration::from_secs(60)).await.unwrap();
    let left = store.ttl(&id).await.unwrap().unwrap();
    assert!(left <= Duration::from_millis(1000), "create is capped at the absolute expiry: {left:?}");

    let idle = store.create_bytes("i".into(), Duration::from_millis(400)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    store.extend(&idle, Duration::from_millis(400)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(store.load_bytes(&idle).await.unwrap().is_some(), "sliding expiry: extended past its first TTL");
    store.extend(&idle, Duration::from_secs(60)).await.unwrap();
    let left = store.ttl(&idle).await.unwrap().unwrap();
    let cap = Duration::from_millis(1000).saturating_sub(started.elapsed()) + Duration::from_millis(10);
    assert!(left <= cap, "an extend never goes past created + absolute: {left:?} left, at most {cap:?}");
    tokio::time::sleep(Duration::from_millis(1050).saturating_sub(started.elapsed())).await;
    assert_eq!(store.load_bytes(&idle).await.unwrap(), None, "the session ends at created + absolute");
    let late = store.extend(&idle, Duration::from_secs(60)).await;
    assert!(matches!(late, Err(KvError::NotFound { .. })), "{late:?}");
    assert_eq!(store.load_bytes(&id).await.unwrap(), None, "the capped create ended too");
    assert!(SessionManager::new(store.manager().clone()).with_absolute_ttl(Duration::ZERO).absolute_ttl().is_none());
}

#[tokio::test]
async fn cycling_keeps_the_creation_time_so_the_absolute_expiry_still_applies() {
    let store = sessions("absolute-cycle").await.with_absolute_ttl(Duration::from_millis(600));
    let old = store.create_bytes("d".into(), Duration::from_secs(60)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let new = store.cycle_id(&old).await.unwrap();
    store.extend(&new, Duration::from_secs(60)).await.unwrap();
    let left = store.ttl(&new).await.unwrap().unwrap();
    assert!(left <= Duration::from_millis(310), "the cycled session keeps its creation time: {left:?}");
    assert_eq!(&old.as_str()[..1], &new.as_str()[..1], "the new id shares the old one's hash tag");
    let keys = namespace_keys(store.manager()).await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    let tag = |k: &str| k[k.find('{').unwrap()..=k.find('}').unwrap()].to_owned();
    assert_eq!(tag(&keys[0]), format!("{{{}}}", &old.as_str()[..1]), "the key carries the hash tag: {keys:?}");
}

#[tokio::test]
async fn every_session_key_has_a_ttl() {
    let m = shared_manager("every-key-ttl").await;
    let store = SessionManager::new(m.clone()).with_absolute_ttl(Duration::from_secs(120));
    let a = store.create(&alice(), Duration::from_secs(30)).await.unwrap();
    let b = store.create_bytes("b".into(), Duration::from_secs(600)).await.unwrap();
    store.save(&a, &alice()).await.unwrap();
    store.extend(&a, Duration::from_secs(90)).await.unwrap();
    let c = store.cycle_id(&b).await.unwrap();
    store.save_bytes(&c, "c".into()).await.unwrap();
    let d = store.create_bytes(Default::default(), Duration::from_secs(10)).await.unwrap();
    store.destroy(&d).await.unwrap();
    let _ = store.save_bytes(&b, "revive?".into()).await;
    let _ = store.extend(&b, Duration::from_secs(10)).await;
    let keys = namespace_keys(&m).await;
    assert_eq!(keys.len(), 2, "sessions a and c, nothing revived: {keys:?}");
    for k in keys {
        let left: i64 = m.query(redis::cmd("PTTL").arg(&k), "pttl").await.unwrap();
        assert!(left > 0 && left <= 120_000, "{k} must expire within the absolute ttl (PTTL {left})");
    }
}

#[tokio::test]
async fn foreign_bytes_in_a_session_key_are_a_codec_error() {
    let m = shared_manager("foreign").await;
    let store = SessionManager::new(m.clone());
    let id = store.create_bytes("placeholder".into(), Duration::from_secs(60)).await.unwrap();
    let keys = namespace_keys(&m).await;
    let _: () = m.query(redis::cmd("HSET").arg(&keys[0]).arg("d").arg(&b"\x00\xffraw"[..]), "raw hset").await.unwrap();
    let err = store.get_session::<UserData>(&id).await;
    assert!(matches!(err, Err(KvError::Codec(_))), "{err:?}");
    assert_eq!(store.load_bytes(&id).await.unwrap().as_deref(), Some(&b"\x00\xffraw"[..]));
}

#[tokio::test]
async fn the_session_id_is_not_in_debug_output() {
    let store = sessions("debug").await;
    let id = store.create_bytes("x".into(), Duration::from_secs(5)).await.unwrap();
    let shown = format!("{store:?} {id:?}");
    assert!(!shown.contains(id.as_str()), "{shown}");
    let id2 = SessionId::parse(id.as_str()).unwrap();
    assert!(store.destroy(&id2).await.unwrap(), "a parsed id reaches the same session");
}
