//! The cache contract against [`InMemoryCache`], directly and as `Arc<dyn Cache>`, plus what only the fake
//! can show: TTLs on tokio's (paused) clock and the purge of expired entries.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cpc_ports::{Cache, CacheExt, CacheKey, Codec, Format, KeyTtl, KvError};
use cpc_testkit::memory::InMemoryCache;

mod concrete {
    use cpc_testkit::contract::cache::COMPUTE_WAIT;
    use cpc_testkit::memory::InMemoryCache;

    cpc_testkit::cache_contract!(async {
        std::sync::Arc::new(InMemoryCache::default().with_compute_wait(COMPUTE_WAIT))
    });
}

mod as_dyn_port {
    use std::sync::Arc;

    use cpc_ports::Cache;
    use cpc_testkit::contract::cache::COMPUTE_WAIT;
    use cpc_testkit::memory::InMemoryCache;

    cpc_testkit::cache_contract!(async {
        Arc::new(InMemoryCache::default().with_compute_wait(COMPUTE_WAIT)) as Arc<dyn Cache>
    });
}

fn key(s: &str) -> CacheKey {
    CacheKey::new(s).expect("valid test key")
}

#[tokio::test(start_paused = true)]
async fn ttl_follows_tokios_clock_to_the_millisecond() {
    let cache = InMemoryCache::new(Duration::from_secs(60));
    cache.set_bytes(&key("explicit"), Bytes::from_static(b"v"), Some(Duration::from_secs(10))).await.unwrap();
    cache.set_bytes(&key("default"), Bytes::from_static(b"v"), None).await.unwrap();
    assert_eq!(cache.ttl(&key("default")).await.unwrap(), KeyTtl::ExpiresIn(Duration::from_secs(60)));
    tokio::time::advance(Duration::from_millis(9_999)).await;
    assert_eq!(cache.ttl(&key("explicit")).await.unwrap(), KeyTtl::ExpiresIn(Duration::from_millis(1)));
    assert!(cache.exists(&key("explicit")).await.unwrap(), "1 ms before expiry the key is there");
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(cache.get_bytes(&key("explicit")).await.unwrap(), None, "at its TTL the key is gone");
    assert_eq!(cache.ttl(&key("default")).await.unwrap(), KeyTtl::ExpiresIn(Duration::from_secs(50)));
    tokio::time::advance(Duration::from_secs(50)).await;
    assert!(!cache.exists(&key("default")).await.unwrap(), "the default TTL expires on tokio's clock too");
}

#[tokio::test(start_paused = true)]
async fn expired_entries_are_purged_under_churn() {
    let cache = InMemoryCache::default();
    let mut peak = 0;
    // 10 000 distinct keys, each living 1 s, one written every 10 ms: about 100 live at any time.
    for i in 0..10_000 {
        let k = key(&format!("churn:{i}"));
        cache.set_bytes(&k, Bytes::from_static(b"v"), Some(Duration::from_secs(1))).await.unwrap();
        peak = peak.max(cache.len());
        tokio::time::advance(Duration::from_millis(10)).await;
    }
    assert!(peak <= 400, "expired entries must be swept, yet up to {peak} entries were stored for ~100 live");
    tokio::time::advance(Duration::from_secs(2)).await;
    let before = cache.len();
    assert!(before > 0, "nothing swept yet without writes");
    cache.delete_prefix("churn:").await.unwrap();
    assert!(cache.is_empty(), "a full scan drops expired entries too");
}

#[tokio::test(start_paused = true)]
async fn reading_an_expired_key_removes_it() {
    let cache = InMemoryCache::default();
    cache.set_bytes(&key("a"), Bytes::from_static(b"v"), Some(Duration::from_millis(5))).await.unwrap();
    cache.set_bytes(&key("b"), Bytes::from_static(b"v"), Some(Duration::from_secs(5))).await.unwrap();
    tokio::time::advance(Duration::from_millis(5)).await;
    assert_eq!(cache.len(), 2, "expired but not yet touched");
    assert_eq!(cache.get_bytes(&key("a")).await.unwrap(), None);
    assert_eq!(cache.len(), 1, "reading the expired key purged it");
}

#[tokio::test(start_paused = true)]
async fn expired_key_does_not_count_in_delete_prefix() {
    let cache = InMemoryCache::default();
    cache.set_bytes(&key("p:old"), Bytes::from_static(b"v"), Some(Duration::from_millis(5))).await.unwrap();
    cache.set_bytes(&key("p:new"), Bytes::from_static(b"v"), Some(Duration::from_secs(5))).await.unwrap();
    tokio::time::advance(Duration::from_millis(5)).await;
    assert_eq!(cache.delete_prefix("p:").await.unwrap(), 1, "only live keys count as deleted");
    assert!(!cache.delete(&key("p:old")).await.unwrap());
}

#[tokio::test]
async fn builder_settings_are_honoured() {
    let cache = InMemoryCache::new(Duration::from_secs(5)).with_codec(Codec::msgpack()).with_max_value_bytes(16);
    assert_eq!(cache.codec().format(), Format::MessagePack);
    assert_eq!(cache.max_value_bytes(), 16);
    assert_eq!(cache.default_ttl(), Duration::from_secs(5));
    cache.set_bytes(&key("k"), Bytes::from(vec![0u8; 16]), None).await.unwrap();
    let err = cache.set_bytes(&key("k"), Bytes::from(vec![0u8; 17]), None).await.unwrap_err();
    assert!(matches!(err, KvError::TooLarge { size: 17, max: 16 }), "{err:?}");
    cache.set(&key("n"), &7_u8, None).await.unwrap();
    let stored = cache.get_bytes(&key("n")).await.unwrap().unwrap();
    assert_eq!(stored[2], b'm', "typed values are written with the configured codec");

    let defaults = InMemoryCache::default();
    assert_eq!(defaults.default_ttl(), Duration::from_secs(300));
    assert_eq!(defaults.max_value_bytes(), 8 * 1024 * 1024);
    assert_eq!(defaults.codec(), Codec::json());
}

#[tokio::test]
async fn a_zero_default_ttl_makes_writes_without_a_ttl_invalid() {
    let cache = InMemoryCache::new(Duration::ZERO);
    let err = cache.set_bytes(&key("k"), Bytes::new(), None).await.unwrap_err();
    assert!(matches!(err, KvError::Validation(_)), "{err:?}");
    cache.set_bytes(&key("k"), Bytes::new(), Some(Duration::from_secs(1))).await.unwrap();
}

#[tokio::test]
async fn an_unrepresentable_ttl_is_a_validation_error_not_a_panic() {
    let cache = InMemoryCache::default();
    let err = cache.set_bytes(&key("k"), Bytes::new(), Some(Duration::MAX)).await.unwrap_err();
    assert!(matches!(err, KvError::Validation(_)), "{err:?}");
}

#[tokio::test]
async fn dyn_cache_is_usable_through_the_extension_trait() {
    let cache: Arc<dyn Cache> = Arc::new(InMemoryCache::default());
    cache.set(&key("k"), &vec![1, 2, 3], None).await.unwrap();
    assert_eq!(cache.get::<Vec<i32>>(&key("k")).await.unwrap(), Some(vec![1, 2, 3]));
}
