//! The chart cache against a mockall mock: the per-entry TTL it asks for, and how it degrades when the cache fails.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cpc_data::ports::{Cache, CacheExt, CacheKey, Codec, KvError};
use cpc_testkit::memory::InMemoryCache;
use cpc_testkit::mocks::MockCache;

use crate::service::{Chart, ChartCache, SheetsError, Source};

fn chart() -> Chart {
    Chart { title: "t".into(), points: vec![("a".into(), 1.0)] }
}

/// A mock that encodes with the default codec, as every real cache does, and leaves `get_or_set` its
/// process-wide single-flight group.
fn mock() -> MockCache {
    let mut cache = MockCache::new();
    cache.expect_codec().returning(Codec::default);
    cache.expect_max_value_bytes().returning(|| usize::MAX);
    cache.expect_single_flight().returning(|| None);
    cache.expect_compute_wait().returning(|| Duration::from_secs(1));
    cache
}

async fn encoded(chart: &Chart) -> cpc_data::ports::Bytes {
    let scratch = InMemoryCache::default();
    let key = CacheKey::new("k").unwrap();
    scratch.set(&key, chart, None).await.unwrap();
    scratch.get_bytes(&key).await.unwrap().unwrap()
}

async fn get(cache: MockCache, ttl: Duration, renders: &AtomicUsize) -> Result<(Chart, Source), SheetsError> {
    ChartCache::new(Arc::new(cache))
        .chart("s1", "c1", ttl, || async {
            renders.fetch_add(1, Ordering::SeqCst);
            Ok(chart())
        })
        .await
}

#[tokio::test]
async fn a_miss_renders_and_caches_with_the_charts_own_ttl() {
    let mut cache = mock();
    // get_or_set reads, and reads again once it leads the computation (another process may have stored it).
    cache.expect_get_bytes().withf(|k| k.as_str() == "sheet:s1:chart:c1").times(2).returning(|_| Ok(None));
    cache
        .expect_set_bytes()
        .withf(|k, _, ttl| k.as_str() == "sheet:s1:chart:c1" && *ttl == Some(Duration::from_secs(42)))
        .times(1)
        .returning(|_, _, _| Ok(()));
    let renders = AtomicUsize::new(0);
    let (c, source) = get(cache, Duration::from_secs(42), &renders).await.unwrap();
    assert_eq!((c, source, renders.load(Ordering::SeqCst)), (chart(), Source::Rendered, 1));
}

#[tokio::test]
async fn a_hit_is_served_without_rendering_or_writing() {
    let bytes = encoded(&chart()).await;
    let mut cache = mock();
    cache.expect_get_bytes().times(1).returning(move |_| Ok(Some(bytes.clone())));
    cache.expect_set_bytes().times(0);
    let renders = AtomicUsize::new(0);
    let (c, source) = get(cache, Duration::from_secs(1), &renders).await.unwrap();
    assert_eq!((c, source, renders.load(Ordering::SeqCst)), (chart(), Source::Cache, 0));
}

#[tokio::test]
async fn an_unavailable_cache_still_renders_and_does_not_try_to_write() {
    let mut cache = mock();
    cache
        .expect_get_bytes()
        .returning(|_| Err(KvError::Unavailable { backend: "redis", reason: "connection refused".into() }));
    cache.expect_set_bytes().times(0);
    let renders = AtomicUsize::new(0);
    let (_, source) = get(cache, Duration::from_secs(1), &renders).await.unwrap();
    assert_eq!((source, renders.load(Ordering::SeqCst)), (Source::RenderedUncached, 1));
}

#[tokio::test]
async fn a_failed_write_still_returns_the_rendered_chart() {
    let mut cache = mock();
    cache.expect_get_bytes().returning(|_| Ok(None));
    cache
        .expect_set_bytes()
        .returning(|_, _, _| Err(KvError::Timeout { operation: "SET", after: Duration::from_secs(1) }));
    let renders = AtomicUsize::new(0);
    let (c, source) = get(cache, Duration::from_secs(1), &renders).await.unwrap();
    assert_eq!((c, source, renders.load(Ordering::SeqCst)), (chart(), Source::RenderedUncached, 1), "rendered once");
}

#[tokio::test]
async fn a_value_the_cache_cannot_decode_is_rendered_and_replaced() {
    let mut cache = mock();
    cache.expect_get_bytes().times(1).returning(|_| Ok(Some(cpc_data::ports::Bytes::from_static(b"garbage"))));
    cache.expect_set_bytes().times(1).returning(|_, _, _| Ok(()));
    let renders = AtomicUsize::new(0);
    let (c, source) = get(cache, Duration::from_secs(1), &renders).await.unwrap();
    assert_eq!((c, source, renders.load(Ordering::SeqCst)), (chart(), Source::Rendered, 1));
}

#[tokio::test]
async fn a_failed_render_is_reported_and_nothing_is_cached() {
    let mut cache = mock();
    cache.expect_get_bytes().returning(|_| Ok(None));
    cache.expect_set_bytes().times(0);
    let err = ChartCache::new(Arc::new(cache))
        .chart("s1", "c1", Duration::from_secs(1), || async { Err(SheetsError::Render("no data".into())) })
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "rendering failed: no data");
}

#[tokio::test]
async fn bad_ids_and_a_zero_ttl_never_reach_the_cache() {
    let charts = ChartCache::new(Arc::new(MockCache::new()));
    for (sheet, chart, ttl) in [("", "c", 1), ("a:b", "c", 1), ("s", "c:d", 1), ("s", "c", 0)] {
        let got = charts.chart(sheet, chart, Duration::from_secs(ttl), || async { Ok(self::chart()) }).await;
        assert!(matches!(got, Err(SheetsError::Invalid(_))), "{sheet:?} {chart:?} {ttl}: {got:?}");
    }
}
