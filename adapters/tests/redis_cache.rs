//! `CacheManager` against the shared Redis (`REDIS_URL`): the `Cache` contract (concrete and as `dyn Cache`),
//! and what the adapter adds: single-flight `get_or_set`, `SCAN`-based literal `delete_prefix`, TTLs on every key,
//! TTL jitter, the value size limit, codecs and foreign bytes. Each test runs in its own key namespace.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "redis")]

#[allow(dead_code)]
mod common;

use common::redis::{namespace_keys, shared_manager};

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cpc_adapters::redis::{CacheManager, RedisConfig, RedisManager};
use cpc_ports::{Bytes, Cache, CacheExt, CacheKey, Codec, Compression, KeyTtl, KvError};
use cpc_test_servers::PrivateRedis;

async fn cache(namespace: &str) -> CacheManager {
    CacheManager::new(shared_manager(namespace).await, Duration::from_secs(60))
}

fn key(text: &str) -> CacheKey {
    CacheKey::new(text).unwrap()
}

/// A cache for the contract suite: its `get_or_set` waiters give up after the suite's `COMPUTE_WAIT`.
async fn contract_cache(namespace: &str) -> CacheManager {
    cache(namespace).await.with_compute_wait(cpc_testkit::contract::cache::COMPUTE_WAIT)
}

mod contract_concrete {
    cpc_testkit::cache_contract!(async { std::sync::Arc::new(super::contract_cache("cache-contract").await) });
}

mod contract_dyn {
    use std::sync::Arc;

    use cpc_ports::Cache;

    cpc_testkit::cache_contract!(async {
        Arc::new(super::contract_cache("cache-contract-dyn").await) as Arc<dyn Cache>
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn get_or_set_computes_once_for_a_hundred_concurrent_callers() {
    let cache = Arc::new(cache("get-or-set").await);
    let computed = Arc::new(AtomicUsize::new(0));
    let k = key("expensive");
    let barrier = Arc::new(tokio::sync::Barrier::new(100));
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let (cache, computed, k, barrier) = (cache.clone(), computed.clone(), k.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                cache
                    .get_or_set(&k, None, || async move {
                        computed.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        Ok(format!("computed by task {i}"))
                    })
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut values = Vec::new();
    for t in tasks {
        values.push(t.await.unwrap());
    }
    assert_eq!(computed.load(Ordering::SeqCst), 1, "100 concurrent callers must compute the value once");
    assert!(values.iter().all(|v| *v == values[0]), "every caller gets the one computed value: {values:?}");
    assert_eq!(cache.get::<String>(&k).await.unwrap().as_ref(), Some(&values[0]), "the value is stored");
    assert_eq!(cache.in_flight(), 0, "the single-flight map is emptied afterwards");
    assert!(matches!(cache.ttl(&k).await.unwrap(), KeyTtl::ExpiresIn(_)), "the stored value expires");
}

#[tokio::test]
async fn get_or_set_reads_a_stored_value_and_does_not_store_a_failed_computation() {
    let cache = cache("get-or-set-errors").await;
    let k = key("k");
    cache.set(&k, &7_u32, None).await.unwrap();
    let got: u32 = cache.get_or_set(&k, None, || async { panic!("must not compute a stored value") }).await.unwrap();
    assert_eq!(got, 7);

    let missing = key("missing");
    let err = cache
        .get_or_set::<u32, _, _>(&missing, None, || async { Err(KvError::invalid("source", "down")) })
        .await
        .unwrap_err();
    assert!(matches!(err, KvError::Validation(_)), "the computation's error comes back as it is: {err:?}");
    assert!(!cache.exists(&missing).await.unwrap(), "a failed computation stores nothing");
    assert_eq!(cache.in_flight(), 0);
    let got: u32 = cache.get_or_set(&missing, Some(Duration::from_secs(5)), || async { Ok(9) }).await.unwrap();
    assert_eq!(got, 9, "the next call computes again");
    match cache.ttl(&missing).await.unwrap() {
        KeyTtl::ExpiresIn(left) => assert!(left <= Duration::from_secs(5) && left > Duration::from_secs(3)),
        other => panic!("{other:?}"),
    }

    let err = cache.get_or_set::<u32, _, _>(&key("zero"), Some(Duration::ZERO), || async { Ok(1) }).await;
    assert!(matches!(err, Err(KvError::Validation(_))), "a zero TTL is refused: {err:?}");
}

#[tokio::test]
async fn a_cancelled_get_or_set_frees_the_key_for_the_next_caller() {
    let cache = cache("get-or-set-cancel").await;
    let k = key("k");
    let slow = cache.get_or_set::<u32, _, _>(&k, None, || async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        Ok(1)
    });
    assert!(tokio::time::timeout(Duration::from_millis(200), slow).await.is_err(), "the slow call is cancelled");
    assert_eq!(cache.in_flight(), 0, "a cancelled caller leaves nothing in the map");
    let got = tokio::time::timeout(Duration::from_secs(2), cache.get_or_set(&k, None, || async { Ok(2_u32) }))
        .await
        .expect("the key must not stay locked")
        .unwrap();
    assert_eq!(got, 2);
}

/// A waiting caller's task: its result and how long it took.
type Waiter = tokio::task::JoinHandle<(Result<u32, KvError>, Duration)>;

/// 20 callers waiting on one key's leader, spawned once the leader is computing.
fn waiters_on<F, Fut>(cache: &CacheManager, k: &CacheKey, compute: F) -> Vec<Waiter>
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<u32, KvError>> + Send,
{
    (0..20)
        .map(|_| {
            let (cache, k, compute) = (cache.clone(), k.clone(), compute.clone());
            tokio::spawn(async move {
                let started = std::time::Instant::now();
                let result = cache.get_or_set(&k, None, compute).await;
                (result, started.elapsed())
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_computation_runs_once_and_every_waiter_gets_its_error() {
    let cache = cache("get-or-set-fails").await;
    let computed = Arc::new(AtomicUsize::new(0));
    let k = key("fails");
    let failing = {
        let computed = computed.clone();
        move || {
            let computed = computed.clone();
            async move {
                computed.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(300)).await;
                Err::<u32, _>(KvError::backend("source", std::io::Error::other("source down")))
            }
        }
    };
    let (started, leader_started) = tokio::sync::oneshot::channel();
    let leader = {
        let (cache, k, failing) = (cache.clone(), k.clone(), failing.clone());
        tokio::spawn(async move {
            cache
                .get_or_set(&k, None, || {
                    let _ = started.send(());
                    failing()
                })
                .await
        })
    };
    leader_started.await.unwrap();
    let waiters = waiters_on(&cache, &k, failing);
    let leader_error = tokio::time::timeout(Duration::from_secs(10), leader).await.unwrap().unwrap().unwrap_err();
    assert!(matches!(leader_error, KvError::Backend { backend: "source", .. }), "{leader_error:?}");
    for waiter in waiters {
        let (result, took) = tokio::time::timeout(Duration::from_secs(10), waiter).await.unwrap().unwrap();
        let error = result.unwrap_err();
        assert!(matches!(error, KvError::Backend { backend: "source", .. }), "a waiter gets the error: {error:?}");
        assert_eq!(error.to_string(), leader_error.to_string(), "the same error");
        assert!(took < Duration::from_secs(1), "a waiter does not compute again: {took:?}");
    }
    assert_eq!(computed.load(Ordering::SeqCst), 1, "21 callers, one failing computation");
    assert_eq!(cache.in_flight(), 0);
    assert!(!cache.exists(&k).await.unwrap(), "a failed computation stores nothing");
    let got = cache.get_or_set(&k, None, || async { Ok(5_u32) }).await.unwrap();
    assert_eq!(got, 5, "the next call computes again");
}

/// A caller computing 1 for `k` in `takes`, spawned; returns once its computation has started.
async fn slow_leader(
    cache: &CacheManager,
    k: &CacheKey,
    takes: Duration,
) -> tokio::task::JoinHandle<Result<u32, KvError>> {
    let (started, leader_started) = tokio::sync::oneshot::channel();
    let (cache, k) = (cache.clone(), k.clone());
    let leader = tokio::spawn(async move {
        cache
            .get_or_set(&k, None, || async move {
                let _ = started.send(());
                tokio::time::sleep(takes).await;
                Ok(1_u32)
            })
            .await
    });
    leader_started.await.unwrap();
    leader
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn waiters_give_up_after_the_compute_wait_while_the_leader_goes_on() {
    let wait = Duration::from_millis(300);
    let cache = cache("get-or-set-wait").await.with_compute_wait(wait);
    assert_eq!(cache.compute_wait(), wait);
    assert_eq!(cpc_ports::DEFAULT_COMPUTE_WAIT, Duration::from_secs(10));
    let k = key("slow");
    let leader = slow_leader(&cache, &k, Duration::from_millis(1500)).await;
    let waiters = waiters_on(&cache, &k, || async { Ok(2_u32) });
    for waiter in waiters {
        let (result, took) = tokio::time::timeout(Duration::from_secs(10), waiter).await.unwrap().unwrap();
        assert!(matches!(result, Err(KvError::Timeout { after, .. }) if after == wait), "{result:?}");
        assert!(took <= wait + Duration::from_millis(250), "a waiter gave up after {took:?}");
    }
    assert_eq!(tokio::time::timeout(Duration::from_secs(5), leader).await.unwrap().unwrap().unwrap(), 1);
    assert_eq!(cache.get::<u32>(&k).await.unwrap(), Some(1), "the leader's value is stored");
    assert_eq!(cache.in_flight(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_computes_in_place_of_a_cancelled_leader() {
    let cache = cache("get-or-set-takeover").await;
    let k = key("k");
    let leader = slow_leader(&cache, &k, Duration::from_secs(30)).await;
    let waiter = {
        let (cache, k) = (cache.clone(), k.clone());
        tokio::spawn(async move { cache.get_or_set(&k, None, || async { Ok(2_u32) }).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiter.is_finished(), "the waiter waits for the leader");
    leader.abort();
    let got = tokio::time::timeout(Duration::from_secs(2), waiter).await.expect("the waiter takes over").unwrap();
    assert_eq!(got.unwrap(), 2, "the waiter computes in the cancelled leader's place");
    assert_eq!(cache.get::<u32>(&k).await.unwrap(), Some(2));
    assert_eq!(cache.in_flight(), 0);
}

#[tokio::test]
async fn delete_prefix_with_a_glob_looking_prefix_deletes_only_literal_matches_of_thousands() {
    let cache = cache("delete-prefix-bulk").await;
    let prefix = r"p*?[x]\:";
    let inside: Vec<(CacheKey, Bytes)> =
        (0..3000).map(|i| (key(&format!("{prefix}{i}")), Bytes::from_static(b"v"))).collect();
    // Keys the prefix would match if it were read as a glob (`p`, any run, one character, `x`, `:`), and keys
    // that merely contain it.
    let outside: Vec<(CacheKey, Bytes)> = (0..500)
        .flat_map(|i| {
            [
                key(&format!("pABx:{i}")),
                key(&format!("p??x:{i}")),
                key(&format!(r"p*?x:{i}")),
                key(&format!("before {prefix}{i}")),
            ]
        })
        .map(|k| (k, Bytes::from_static(b"w")))
        .collect();
    for chunk in inside.chunks(500).chain(outside.chunks(500)) {
        cache.set_many_bytes(chunk.to_vec(), None).await.unwrap();
    }
    let deleted = cache.delete_prefix(prefix).await.unwrap();
    assert_eq!(deleted, 3000, "every key under the literal prefix is deleted");
    let left = namespace_keys(cache.manager()).await;
    assert_eq!(left.len(), outside.len(), "no key outside the prefix is deleted");
    let ns = cache.stored_key("");
    assert!(left.iter().all(|k| !k[ns.len()..].starts_with(prefix)), "nothing under the prefix survives");
    assert_eq!(cache.delete_prefix(prefix).await.unwrap(), 0);
}

#[tokio::test]
async fn delete_prefix_walks_with_scan_never_keys_and_stays_in_its_namespace() {
    let server = PrivateRedis::start().await;
    let config = |ns: &str| {
        let mut c = RedisConfig::builder().port(server.port()).build().unwrap();
        c.namespace = ns.into();
        c
    };
    let mine = CacheManager::new(RedisManager::new(&config("app:")).await.unwrap(), Duration::from_secs(60));
    let theirs = CacheManager::new(RedisManager::new(&config("other:")).await.unwrap(), Duration::from_secs(60));
    let entries: Vec<_> = (0..2500).map(|i| (key(&format!("user:{i}")), Bytes::from_static(b"v"))).collect();
    mine.set_many_bytes(entries.clone(), None).await.unwrap();
    theirs.set_many_bytes(entries, None).await.unwrap();
    let stats_before = command_stats(mine.manager()).await;

    assert_eq!(mine.delete_prefix("user:").await.unwrap(), 2500);

    let stats = command_stats(mine.manager()).await;
    let calls = |name: &str, s: &HashMap<String, u64>| s.get(name).copied().unwrap_or(0);
    assert_eq!(calls("keys", &stats), 0, "KEYS must never be sent");
    assert!(calls("scan", &stats) > calls("scan", &stats_before), "SCAN walks the keyspace: {stats:?}");
    assert!(calls("scan", &stats) - calls("scan", &stats_before) >= 3, "5000 keys take several SCAN steps");
    assert!(calls("unlink", &stats) > calls("unlink", &stats_before), "UNLINK deletes: {stats:?}");
    let dbsize: u64 = theirs.manager().query(&redis::cmd("DBSIZE"), "dbsize").await.unwrap();
    assert_eq!(dbsize, 2500, "the other namespace's keys with the same prefix are untouched");
    assert!(theirs.exists(&key("user:7")).await.unwrap());
}

/// `INFO commandstats` as a map of command name to calls.
async fn command_stats(m: &RedisManager) -> HashMap<String, u64> {
    let info: String = m.query(redis::cmd("INFO").arg("commandstats"), "info").await.unwrap();
    info.lines()
        .filter_map(|line| {
            let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest.split(',').find_map(|f| f.strip_prefix("calls="))?.parse().ok()?;
            Some((name.to_owned(), calls))
        })
        .collect()
}

#[tokio::test]
async fn every_key_written_has_a_ttl() {
    let cache = cache("every-key-ttl").await.with_ttl_jitter(0.3);
    let ttl = Some(Duration::from_secs(30));
    cache.set(&key("a"), &1, None).await.unwrap();
    cache.set(&key("b"), &2, ttl).await.unwrap();
    cache.set_bytes(&key("c"), Bytes::new(), None).await.unwrap();
    cache.set_if_absent(&key("d"), &4, None).await.unwrap();
    cache.set_if_absent(&key("d"), &5, ttl).await.unwrap();
    cache.set_many(&[(key("e"), 5), (key("f"), 6)], None).await.unwrap();
    cache.set_many(&[(key("g"), 7)], ttl).await.unwrap();
    cache.get_or_set(&key("h"), None, || async { Ok(8) }).await.unwrap();
    cache.get_or_set(&key("i"), ttl, || async { Ok(9) }).await.unwrap();
    cache.set(&key("a"), &10, ttl).await.unwrap();
    let keys = namespace_keys(cache.manager()).await;
    assert_eq!(keys.len(), 9, "{keys:?}");
    for k in keys {
        let left: i64 = cache.manager().query(redis::cmd("PTTL").arg(&k), "pttl").await.unwrap();
        assert!(left > 0, "{k} has no TTL (PTTL {left})");
        assert!(left <= 60_000, "{k} has a TTL over the default ({left} ms)");
    }
}

#[tokio::test]
async fn ttl_jitter_spreads_expiry_within_bounds_and_never_above_the_ttl() {
    let cache = cache("jitter").await.with_ttl_jitter(0.2);
    let ttl = Duration::from_secs(10);
    let keys: Vec<CacheKey> = (0..200).map(|i| key(&format!("k{i}"))).collect();
    for k in &keys[..100] {
        cache.set_bytes(k, Bytes::from_static(b"v"), Some(ttl)).await.unwrap();
    }
    cache
        .set_many_bytes(keys[100..].iter().map(|k| (k.clone(), Bytes::from_static(b"v"))).collect(), Some(ttl))
        .await
        .unwrap();
    let mut lefts = Vec::new();
    for k in &keys {
        match cache.ttl(k).await.unwrap() {
            KeyTtl::ExpiresIn(left) => lefts.push(left),
            other => panic!("{k} must expire: {other:?}"),
        }
    }
    let (min, max) = (lefts.iter().min().unwrap(), lefts.iter().max().unwrap());
    assert!(*max <= ttl, "jitter must never lengthen a TTL: {max:?}");
    assert!(*min >= Duration::from_millis(7_900), "jitter of 0.2 shortens by at most 20 %: {min:?}");
    assert!(*max - *min > Duration::from_millis(1_000), "200 jittered TTLs must spread: {min:?}..{max:?}");
    let below_nine = lefts.iter().filter(|l| **l < Duration::from_secs(9)).count();
    assert!((50..=150).contains(&below_nine), "about half fall in the lower half of the range: {below_nine}");

    let plain = cache.clone().with_ttl_jitter(0.0);
    plain.set_bytes(&key("plain"), Bytes::from_static(b"v"), Some(ttl)).await.unwrap();
    match plain.ttl(&key("plain")).await.unwrap() {
        KeyTtl::ExpiresIn(left) => assert!(left > Duration::from_millis(9_800), "no jitter: {left:?}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(CacheManager::new(cache.manager().clone(), ttl).with_ttl_jitter(f64::NAN).ttl_jitter(), 0.0);
    assert_eq!(CacheManager::new(cache.manager().clone(), ttl).with_ttl_jitter(7.0).ttl_jitter(), 1.0);
}

#[tokio::test]
async fn an_oversized_value_is_refused_and_nothing_is_written() {
    let cache = cache("too-large").await.with_max_value_bytes(1024);
    assert_eq!(cache.max_value_bytes(), 1024);
    assert_eq!(CacheManager::new(cache.manager().clone(), Duration::from_secs(1)).max_value_bytes(), 8 * 1024 * 1024);
    let big = Bytes::from(vec![1u8; 1025]);
    let err = cache.set_bytes(&key("big"), big.clone(), None).await.unwrap_err();
    assert!(matches!(err, KvError::TooLarge { size: 1025, max: 1024 }), "{err:?}");
    let err = cache.set(&key("typed"), &"x".repeat(2000), None).await.unwrap_err();
    assert!(matches!(err, KvError::TooLarge { .. }), "{err:?}");
    let err = cache.set_if_absent_bytes(&key("nx"), big.clone(), None).await.unwrap_err();
    assert!(matches!(err, KvError::TooLarge { .. }), "{err:?}");
    let err = cache
        .set_many_bytes(vec![(key("small"), Bytes::from_static(b"ok")), (key("big2"), big)], None)
        .await
        .unwrap_err();
    assert!(matches!(err, KvError::TooLarge { .. }), "{err:?}");
    let err = cache.get_or_set(&key("computed"), None, || async { Ok("y".repeat(5000)) }).await.unwrap_err();
    assert!(matches!(err, KvError::TooLarge { .. }), "{err:?}");
    assert!(namespace_keys(cache.manager()).await.is_empty(), "nothing may be written");
    cache.set_bytes(&key("fits"), Bytes::from(vec![1u8; 1024]), None).await.unwrap();
    assert_eq!(cache.get_bytes(&key("fits")).await.unwrap().map(|b| b.len()), Some(1024), "the limit is inclusive");
}

#[tokio::test]
async fn foreign_bytes_written_by_another_client_are_a_codec_error() {
    let cache = cache("foreign").await;
    let m = cache.manager();
    let raw = |k: &str, v: &[u8]| {
        let mut cmd = redis::cmd("SET");
        cmd.arg(cache.stored_key(k)).arg(v).arg("EX").arg(60);
        cmd
    };
    let _: () = m.query(&raw("json", br#"{"n":1}"#), "raw set").await.unwrap();
    let _: () = m.query(&raw("binary", &[0xCB, 0x01, b'j']), "raw set").await.unwrap();
    let _: () = m.query(&raw("text", b"hello"), "raw set").await.unwrap();
    for name in ["json", "binary", "text"] {
        let err = cache.get::<Vec<u32>>(&key(name)).await.unwrap_err();
        assert!(matches!(err, KvError::Codec(_)), "{name}: {err:?}");
        let err = cache.get_or_set(&key(name), None, || async { Ok(1_u8) }).await.unwrap_err();
        assert!(matches!(err, KvError::Codec(_)), "get_or_set on {name}: {err:?}");
    }
    assert_eq!(cache.get_bytes(&key("text")).await.unwrap(), Some(Bytes::from_static(b"hello")), "bytes untouched");
}

#[tokio::test]
async fn msgpack_with_compression_round_trips_and_stores_large_values_compressed() {
    let codec = Codec::msgpack().with_compression(Compression::above(256));
    let cache = cache("codec").await.with_codec(codec.clone());
    assert_eq!(cache.codec(), codec);
    let big: Vec<String> = vec!["repetitive text ".repeat(4); 500];
    cache.set(&key("big"), &big, None).await.unwrap();
    assert_eq!(cache.get::<Vec<String>>(&key("big")).await.unwrap(), Some(big.clone()));
    let stored: u64 = cache.manager().query(redis::cmd("STRLEN").arg(cache.stored_key("big")), "strlen").await.unwrap();
    let plain = Codec::msgpack().encode(&big).unwrap().len() as u64;
    assert!(stored * 10 < plain, "the value is stored compressed: {stored} bytes against {plain}");
    let json_reader = CacheManager::new(cache.manager().clone(), Duration::from_secs(60));
    assert_eq!(json_reader.get::<Vec<String>>(&key("big")).await.unwrap(), Some(big), "any codec reads it back");
}

#[tokio::test]
async fn persistent_keys_written_elsewhere_report_persistent() {
    let cache = cache("persistent").await;
    let m = cache.manager();
    let _: () = m.query(redis::cmd("SET").arg(cache.stored_key("forever")).arg("x"), "raw set").await.unwrap();
    assert_eq!(cache.ttl(&key("forever")).await.unwrap(), KeyTtl::Persistent);
    assert!(cache.delete(&key("forever")).await.unwrap());
}

#[tokio::test]
async fn sub_millisecond_ttls_round_down_but_never_to_zero() {
    let cache = cache("ttl-rounding").await;
    cache.set_bytes(&key("k"), Bytes::from_static(b"v"), Some(Duration::from_micros(1_999_500))).await.unwrap();
    match cache.ttl(&key("k")).await.unwrap() {
        KeyTtl::ExpiresIn(left) => assert!(left <= Duration::from_micros(1_999_500), "{left:?}"),
        other => panic!("{other:?}"),
    }
    cache.set_bytes(&key("tiny"), Bytes::from_static(b"v"), Some(Duration::from_micros(10))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!cache.exists(&key("tiny")).await.unwrap(), "a 10 µs TTL is 1 ms, not persistent");
    let err = cache.set_bytes(&key("huge"), Bytes::new(), Some(Duration::MAX)).await.unwrap_err();
    assert!(matches!(err, KvError::Validation(_)), "{err:?}");
}
