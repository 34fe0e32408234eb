//! The bounds of the in-process cache (`InMemoryCache`): at most `max_entries` entries and `max_bytes` bytes,
//! least recently used evicted first, evictions counted in metrics, a value the bound cannot hold refused, and
//! the atomic operations atomic per key under contention while the store evicts and sweeps.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "memory")]

#[allow(dead_code)]
mod common;

use std::sync::Arc;
use std::time::Duration;

use common::recorded::{find, series};
use cpc_adapters::memory::{CacheBounds, InMemoryCache};
use cpc_ports::{Bytes, Cache, CacheKey, KvError};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

fn key(s: &str) -> CacheKey {
    CacheKey::new(s).unwrap()
}

fn bounded(max_entries: u64, max_bytes: u64) -> InMemoryCache {
    InMemoryCache::builder().max_entries(max_entries).max_bytes(max_bytes).build().unwrap()
}

async fn fill(cache: &InMemoryCache, prefix: &str, range: std::ops::Range<usize>, value: &Bytes) {
    for i in range {
        cache.set_bytes(&key(&format!("{prefix}{i}")), value.clone(), None).await.unwrap();
    }
}

/// The keys `prefix0..prefix{n-1}` still there.
async fn present(cache: &InMemoryCache, prefix: &str, n: usize) -> Vec<usize> {
    let mut found = Vec::new();
    for i in 0..n {
        if cache.exists(&key(&format!("{prefix}{i}"))).await.unwrap() {
            found.push(i);
        }
    }
    found
}

#[tokio::test]
async fn writing_past_max_entries_keeps_exactly_max_entries_the_newest() {
    let cache = bounded(100, CacheBounds::DEFAULT_MAX_BYTES);
    fill(&cache, "k", 0..150, &Bytes::from_static(b"v")).await;
    assert_eq!(cache.entry_count(), 100, "small entries fill the entry bound exactly, no more");
    let kept = present(&cache, "k", 150).await;
    assert_eq!(kept, (50..150).collect::<Vec<_>>(), "the 50 least recently written went first");
}

#[tokio::test]
async fn the_byte_bound_holds_with_big_values() {
    let cache = bounded(1_000, 10_000);
    let value = Bytes::from(vec![7u8; 1_000]);
    fill(&cache, "big:", 10..30, &value).await; // keys of 6 bytes: 1,006 bytes an entry
    assert_eq!(cache.entry_count(), 9, "9 entries of 1,006 bytes fit in 10,000");
    let kept = present(&cache, "big:", 30).await;
    let stored: usize = kept.len() * 1_006;
    assert!(stored <= 10_000, "{stored} bytes stored over a 10,000 byte bound");
    assert_eq!(kept, (21..30).collect::<Vec<_>>(), "9 entries of 1,006 bytes fit in 10,000, the newest");
    assert!(cache.weighted_size() <= cache.bounds().capacity());
}

#[tokio::test]
async fn writes_not_yet_applied_exceed_the_bound_by_a_sixteenth_at_most() {
    let cache = bounded(1_000, 100_000);
    let value = Bytes::from(vec![7u8; 4_000]);
    for i in 0..500 {
        cache.set_bytes(&key(&format!("w{i}")), value.clone(), None).await.unwrap();
        // No entry_count(): what a reader sees right after each write, pending writes included.
        if i % 50 == 49 {
            let visible = present(&cache, "w", 500).await.len() * 4_004;
            assert!(visible <= 100_000 + 100_000 / 16 + 4_004, "{visible} bytes readable after {i} writes");
        }
    }
}

#[tokio::test]
async fn mixed_sizes_keep_both_bounds() {
    let cache = bounded(50, 5_000);
    for i in 0..400 {
        let len = if i % 3 == 0 { 900 } else { 3 };
        cache.set_bytes(&key(&format!("m{i:03}")), Bytes::from(vec![1u8; len]), None).await.unwrap();
    }
    assert!(cache.entry_count() <= 50);
    let mut bytes = 0;
    for i in 0..400 {
        let k = format!("m{i:03}");
        if let Some(v) = cache.get_bytes(&key(&k)).await.unwrap() {
            bytes += k.len() + v.len();
        }
    }
    assert!(bytes <= 5_000, "{bytes} bytes stored over a 5,000 byte bound");
}

#[tokio::test]
async fn a_key_read_lately_outlives_keys_not_read() {
    let cache = bounded(10, CacheBounds::DEFAULT_MAX_BYTES);
    fill(&cache, "lru", 0..10, &Bytes::from_static(b"v")).await;
    assert_eq!(cache.entry_count(), 10);
    assert!(cache.get_bytes(&key("lru0")).await.unwrap().is_some(), "lru0, the oldest write, is read");
    assert_eq!(cache.entry_count(), 10, "the read is applied to the eviction order");
    fill(&cache, "lru", 10..15, &Bytes::from_static(b"v")).await;
    assert_eq!(cache.entry_count(), 10);
    let kept = present(&cache, "lru", 15).await;
    assert_eq!(
        kept,
        [0, 6, 7, 8, 9, 10, 11, 12, 13, 14],
        "lru1..lru5, written after lru0 but not read since, went first"
    );
}

#[tokio::test]
async fn evictions_are_counted_in_metrics_and_deletes_are_not() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let cache = metrics::with_local_recorder(&recorder, || {
        InMemoryCache::builder().max_entries(10).name("bounded-test").build().unwrap()
    });
    fill(&cache, "e", 0..15, &Bytes::from_static(b"v")).await;
    assert_eq!(cache.entry_count(), 10);
    assert!(cache.delete(&key("e14")).await.unwrap());
    cache.set_bytes(&key("e13"), Bytes::from_static(b"w"), None).await.unwrap(); // replaced, not evicted
    assert_eq!(cache.entry_count(), 9);
    cache.set_bytes(&key("e13"), Bytes::from_static(b"x"), None).await.unwrap(); // the gauges see 9 entries

    let all = series(&snapshotter);
    let labels = [("cache", "bounded-test")];
    assert_eq!(find(&all, "cpc_memory_cache_evictions_total", &labels), &DebugValue::Counter(5));
    let gauge = |name| match find(&all, name, &labels) {
        DebugValue::Gauge(v) => v.into_inner(),
        other => panic!("{name} is not a gauge: {other:?}"),
    };
    assert_eq!(gauge("cpc_memory_cache_entries"), 9.0);
    assert!((gauge("cpc_memory_cache_fill_ratio") - 0.9).abs() < 1e-9, "9 of 10 small entries");
}

#[tokio::test]
async fn a_value_the_byte_bound_cannot_hold_is_too_large_and_the_old_value_stays() {
    let cache = bounded(100, 10_000);
    assert_eq!(cache.max_value_bytes(), 10_000 - 4_096, "the byte bound less the longest key caps the value limit");
    let longest_key = key(&"k".repeat(4_096));
    cache.set_bytes(&longest_key, Bytes::from(vec![1u8; 5_904]), None).await.unwrap();
    assert_eq!(cache.entry_count(), 1, "a value of max_value_bytes fits under the longest key");
    let err = cache.set_bytes(&longest_key, Bytes::from(vec![2u8; 5_905]), None).await.unwrap_err();
    assert!(matches!(err, KvError::TooLarge { size: 5_905, max: 5_904 }), "{err:?}");
    let err = cache.set_many_bytes(vec![(key("a"), Bytes::new()), (key("b"), Bytes::from(vec![0u8; 9_000]))], None);
    assert!(matches!(err.await.unwrap_err(), KvError::TooLarge { .. }));
    assert_eq!(cache.get_bytes(&longest_key).await.unwrap().map(|v| v.len()), Some(5_904));
    assert!(!cache.exists(&key("a")).await.unwrap(), "nothing of a refused batch is written");

    let tiny = bounded(10, 100);
    assert_eq!(tiny.max_value_bytes(), 0);
    tiny.set_bytes(&key("short"), Bytes::new(), None).await.unwrap();
    let err = tiny.set_bytes(&key(&"k".repeat(101)), Bytes::new(), None).await.unwrap_err();
    assert!(matches!(err, KvError::TooLarge { size: 0, max: 0 }), "a key the bound cannot hold: {err:?}");
}

#[test]
fn bounds_of_zero_or_not_numbers_are_errors_naming_the_setting() {
    let err = InMemoryCache::builder().max_entries(0).build().unwrap_err();
    assert_eq!(err.key(), "max_entries");
    let err = InMemoryCache::builder().max_bytes(0).build().unwrap_err();
    assert_eq!(err.key(), "max_bytes");
    for (var, value) in [("CPC_MEMORY_CACHE_MAX_ENTRIES", "0"), ("CPC_MEMORY_CACHE_MAX_BYTES", "64MiB")] {
        let err = CacheBounds::from_lookup(|k| (k == var).then(|| value.to_owned())).unwrap_err();
        assert_eq!(err.key(), var, "{value:?}");
    }
    let bounds = CacheBounds::from_lookup(|k| (k == "CPC_MEMORY_CACHE_MAX_BYTES").then(|| " 4096 ".to_owned()));
    assert_eq!(bounds.unwrap(), CacheBounds { max_entries: 10_000, max_bytes: 4_096 });
}

#[test]
fn the_weight_rule_keeps_both_bounds_for_awkward_numbers() {
    for (max_entries, max_bytes) in [(3, 10), (7, 1_000_003), (10_000, 64 << 20), (1, 1), (5, 1 << 40), (1 << 40, 3)] {
        let b = CacheBounds { max_entries, max_bytes };
        let floor = u64::from(b.entry_floor());
        assert!(b.capacity() / floor <= max_entries, "{b:?}: the floor lets at most max_entries in");
        let biggest = b.max_entry_bytes();
        assert!(u64::from(b.weight(biggest)) <= b.capacity(), "{b:?}: the largest entry fits");
        // n bytes weigh at least n * capacity / max_bytes, so a full cache holds at most max_bytes.
        for n in [1, 2, 9, biggest / 2, biggest].into_iter().filter(|&n| n <= biggest) {
            let w = u128::from(b.weight(n));
            assert!(w * u128::from(max_bytes) >= u128::from(n) * u128::from(b.capacity()), "{b:?} n={n}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn atomic_operations_stay_atomic_while_the_store_evicts_and_sweeps() {
    // A bound of 10,000 entries, with 8 writers of 32,000 new keys: half live long and are evicted, half expire
    // at once and are swept. A round's contended keys see far fewer than 10,000 other writes, so they stay.
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let cache = metrics::with_local_recorder(&recorder, || {
        Arc::new(InMemoryCache::builder().max_entries(10_000).name("contended").build().unwrap())
    });
    let churn: Vec<_> = (0..8)
        .map(|t| {
            let cache = cache.clone();
            tokio::spawn(async move {
                let ttl = (t % 2 == 0).then_some(Duration::from_millis(1));
                for i in 0..4_000 {
                    let k = key(&format!("churn:{t}:{i}"));
                    cache.set_bytes(&k, Bytes::from_static(b"x"), ttl).await.unwrap();
                    // The cache never makes a task wait: without this, a churn task would write its 4,000 keys
                    // while the contended tasks queue behind it, and evict their keys as least recently used.
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for round in 0..50 {
        let (counter, slot, taken) = (key(&format!("n{round}")), key(&format!("s{round}")), key(&format!("t{round}")));
        cache.set_bytes(&taken, Bytes::from_static(b"once"), None).await.unwrap();
        let tasks: Vec<_> = (0..8)
            .map(|t| {
                let (cache, counter, slot, taken) = (cache.clone(), counter.clone(), slot.clone(), taken.clone());
                tokio::spawn(async move {
                    let mut sum = 0;
                    for _ in 0..10 {
                        sum += i64::from(cache.increment_by(&counter, 1, None).await.is_ok());
                    }
                    let won = cache.set_if_absent_bytes(&slot, Bytes::from(vec![t]), None).await.unwrap();
                    let got = cache.get_and_delete_bytes(&taken).await.unwrap().is_some();
                    (sum, won, got)
                })
            })
            .collect();
        let results: Vec<_> = futures::future::join_all(tasks).await.into_iter().map(Result::unwrap).collect();
        assert_eq!(results.iter().map(|r| r.0).sum::<i64>(), 80);
        let counted = cache.get_bytes(&counter).await.unwrap();
        assert_eq!(counted.as_deref(), Some(&b"80"[..]), "round {round}: every increment counted once");
        assert_eq!(results.iter().filter(|r| r.1).count(), 1, "round {round}: one set_if_absent wins");
        assert_eq!(results.iter().filter(|r| r.2).count(), 1, "round {round}: one get_and_delete takes it");
    }
    for c in churn {
        c.await.unwrap();
    }
    assert!(cache.entry_count() <= 10_000);
    let all = series(&snapshotter);
    let evicted = find(&all, "cpc_memory_cache_evictions_total", &[("cache", "contended")]);
    assert!(matches!(evicted, DebugValue::Counter(n) if *n > 0), "the store evicted meanwhile: {evicted:?}");
}
