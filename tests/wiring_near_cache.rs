//! `CPC_NEAR_CACHE=on` in the environment puts a `NearCache` in front of the Redis cache the composition root
//! wires: two app instances wired from the same environment share Redis, each answers repeated reads from its
//! local tier (counted in the near cache's metrics), and a write in one is read by the other within the
//! invalidation's delivery time. Needs Redis at `REDIS_URL` (default `redis://127.0.0.1:6379`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use cpc_data::ports::{CacheExt, CacheKey, HealthStatus};
use cpc_data::wiring::{Ports, Settings};
use metrics_exporter_prometheus::PrometheusBuilder;

/// One app instance wired from the environment an operator would set.
async fn instance(data_dir: &std::path::Path, namespace: &str) -> Ports {
    let redis_url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let env = [
        ("CPC_DATA_DIR", data_dir.display().to_string()),
        ("REDIS_URL", redis_url),
        ("REDIS_NAMESPACE", namespace.to_owned()),
        ("CPC_NEAR_CACHE", "on".to_owned()),
        ("CPC_NEAR_CACHE_MAX_ENTRIES", "100".to_owned()),
    ];
    let settings = Settings::from_lookup("near", |k| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone()));
    let settings = settings.unwrap();
    assert_eq!(settings.near_cache.as_ref().map(|c| c.max_entries), Some(100));
    Ports::wire(&settings)
        .await
        .unwrap_or_else(|e| panic!("{e}. Start Redis (./scripts/test.sh does) or set REDIS_URL to a Redis 6 or later"))
}

/// The value of the local-tier counter for `outcome` in the recorder's text output.
fn local_reads(text: &str, outcome: &str) -> u64 {
    let label = format!("outcome=\"{outcome}\"");
    text.lines()
        .filter(|l| l.starts_with("cpc_redis_near_cache_local_total") && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

// One thread, so the recorder set for this thread sees every call, the tracking task's included.
#[tokio::test(flavor = "current_thread")]
async fn the_environment_turns_on_a_coherent_near_cache_in_front_of_redis() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let metrics = recorder.handle();
    let _local = metrics::set_default_local_recorder(&recorder);

    let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let namespace = format!("cpc-test:near-wiring:{}:", uuid::Uuid::new_v4());
    let writer = instance(dirs.0.path(), &namespace).await;
    let reader = instance(dirs.1.path(), &namespace).await;
    assert!(reader.description.contains("near cache"), "{}", reader.description);
    for check in &reader.health_checks {
        let report = check.check().await;
        assert_eq!(report.status, HealthStatus::Healthy, "{report:?}");
    }

    let key = CacheKey::new("greeting").unwrap();
    writer.cache.set(&key, &"hello", Some(Duration::from_secs(60))).await.unwrap();
    let hits_before = local_reads(&metrics.render(), "hit");
    for _ in 0..3 {
        assert_eq!(reader.cache.get::<String>(&key).await.unwrap().as_deref(), Some("hello"));
    }
    let hits = local_reads(&metrics.render(), "hit") - hits_before;
    assert!(hits >= 2, "the second and third reads come from the local tier, hits = {hits}");

    writer.cache.set(&key, &"bonjour", Some(Duration::from_secs(60))).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let seen = reader.cache.get::<String>(&key).await.unwrap();
        if seen.as_deref() == Some("bonjour") {
            break;
        }
        assert!(Instant::now() < deadline, "the other instance still reads {seen:?} 2 s after the write");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(local_reads(&metrics.render(), "miss") >= 1, "the invalidated key was read again from Redis");
    writer.cache.delete(&key).await.unwrap();
}
