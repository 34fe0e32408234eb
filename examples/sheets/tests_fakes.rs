//! The chart cache over the in-memory fake, on a paused clock: each entry expires after its own TTL.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cpc_testkit::memory::InMemoryCache;

use crate::service::{Chart, ChartCache, Source};

async fn source(charts: &ChartCache, sheet: &str, chart: &str, ttl_secs: u64) -> Source {
    let chart_data = Chart { title: chart.into(), points: Vec::new() };
    let (got, source) =
        charts.chart(sheet, chart, Duration::from_secs(ttl_secs), || async { Ok(chart_data) }).await.unwrap();
    assert_eq!(got.title, chart);
    source
}

#[tokio::test(start_paused = true)]
async fn each_chart_expires_after_its_own_ttl() {
    let charts = ChartCache::new(Arc::new(InMemoryCache::default()));
    assert_eq!(source(&charts, "s", "live", 5).await, Source::Rendered);
    assert_eq!(source(&charts, "s", "report", 3600).await, Source::Rendered);
    tokio::time::advance(Duration::from_secs(4)).await;
    assert_eq!(source(&charts, "s", "live", 5).await, Source::Cache);
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(source(&charts, "s", "live", 5).await, Source::Rendered, "5 s TTL ran out");
    assert_eq!(source(&charts, "s", "report", 3600).await, Source::Cache, "1 h TTL did not");
}

#[tokio::test]
async fn invalidating_a_sheet_drops_its_charts_only() {
    let charts = ChartCache::new(Arc::new(InMemoryCache::default()));
    for (sheet, chart) in [("s1", "a"), ("s1", "b"), ("s10", "a")] {
        source(&charts, sheet, chart, 60).await;
    }
    assert_eq!(charts.invalidate("s1").await.unwrap(), 2);
    assert_eq!(source(&charts, "s1", "a", 60).await, Source::Rendered);
    assert_eq!(source(&charts, "s10", "a", 60).await, Source::Cache, "another sheet sharing the prefix is kept");
}

#[tokio::test]
async fn concurrent_requests_for_one_missing_chart_render_it_once() {
    let charts = ChartCache::new(Arc::new(InMemoryCache::default()));
    let renders = AtomicUsize::new(0);
    let requests = (0..20).map(|_| {
        charts.chart("s", "slow", Duration::from_secs(60), || async {
            renders.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok(Chart { title: "slow".into(), points: Vec::new() })
        })
    });
    let got = futures::future::join_all(requests).await;
    assert_eq!(renders.load(Ordering::SeqCst), 1, "20 requests for one missing chart render it once");
    let sources: Vec<Source> = got.into_iter().map(|r| r.unwrap().1).collect();
    assert_eq!(sources.iter().filter(|s| **s == Source::Rendered).count(), 1, "{sources:?}");
    assert!(sources.iter().filter(|s| **s != Source::Rendered).all(|s| *s == Source::Cache), "{sources:?}");
}
