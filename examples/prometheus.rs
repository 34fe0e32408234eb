//! Exports every metric of the library in Prometheus text format: the pool's (`cpc_db_pool_*`), the Redis
//! adapters' (`cpc_redis_*`: cache, lock, rate limiter, sessions, pub/sub), the port decorators'
//! (`cpc_port_*`) and the rate-limit layer's (`cpc_http_rate_limit_total`), through
//! `metrics-exporter-prometheus`, at `/metrics` of an axum app that also has a rate-limited, session-keeping
//! route.
//!
//! ```text
//! cargo run --example prometheus --features observe,tower,sqlite,redis   # Redis at REDIS_URL
//! curl http://127.0.0.1:9898/metrics                                     # METRICS_ADDR changes the address
//! ```
//!
//! The recorder is installed before anything is built: the pool and the adapters register their metric
//! handles when they are made.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use cpc_adapters::observe::{Observe, Observed};
use cpc_adapters::pool::PoolConfig;
use cpc_adapters::redis::{
    CacheManager, DistributedLock, PubSubManager, RedisConfig, RedisManager, RedisRateLimiter, SessionManager,
};
use cpc_adapters::sqlite::{SqliteConfig, SqlitePool};
use cpc_adapters::tower::{ClientIp, RateLimitLayer, TowerSessionStore};
use cpc_ports::{CacheExt, CacheKey, Channel, Lock, LockKey, PubSub, RateLimitPolicy, SessionStore};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tower_sessions::{Session, SessionManagerLayer};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Builds the adapters (each port observed), uses each once so every series exists, and returns the app:
/// `/` (rate-limited, counts visits in a session) and `/metrics`.
async fn app(handle: PrometheusHandle) -> Result<Router, Error> {
    let pool = SqlitePool::new(&SqliteConfig::shared_memory("prometheus-example"), &PoolConfig::default()).await?;
    let one = pool.interact(|c| c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))).await?;
    assert_eq!(one, 1);

    let mut config = RedisConfig::from_env()?;
    config.namespace = format!("cpc-example:prometheus:{}:", std::process::id());
    let redis = RedisManager::new(&config).await.map_err(|e| {
        format!("Redis is not reachable at {config}: {e}. Start it (./scripts/test.sh does) or set REDIS_URL")
    })?;
    let namespace = config.namespace.clone();
    let observe = Observe::new("redis", namespace);
    let cache = Observed::new(CacheManager::new(redis.clone(), Duration::from_secs(60)), observe.clone());
    let lock = Observed::new(DistributedLock::new(redis.clone()), observe.clone());
    let limiter = Arc::new(Observed::new(RedisRateLimiter::new(redis.clone()), observe.clone()));
    let sessions: Arc<dyn SessionStore> = Arc::new(Observed::new(SessionManager::new(redis.clone()), observe.clone()));
    let pubsub = Observed::new(PubSubManager::new(redis), observe);

    let key = CacheKey::new("greeting")?;
    cache.set(&key, "hello", None).await?;
    let _: Option<String> = cache.get(&key).await?;
    let lease = lock.try_acquire(&LockKey::new("startup")?, Duration::from_secs(5)).await?;
    if let Some(lease) = lease {
        lock.release(lease).await?;
    }
    pubsub.publish_bytes(&Channel::new("started")?, "up".into()).await?;

    let rate_limit = RateLimitLayer::new(limiter, RateLimitPolicy::token_bucket(100, 10), ClientIp::peer())?;
    let app = Router::new()
        .route("/", get(visit))
        .layer(SessionManagerLayer::new(TowerSessionStore::new(sessions)).with_secure(false))
        .layer(rate_limit)
        .route("/metrics", get(move || std::future::ready(handle.render())));
    Ok(app)
}

/// Counts the visitor's visits in their session.
async fn visit(session: Session) -> String {
    let visits = session.get::<u64>("visits").await.ok().flatten().unwrap_or(0) + 1;
    let _ = session.insert("visits", visits).await;
    format!("visit #{visits}\n")
}

/// Serves `app` on `addr`; returns the bound address.
async fn serve(app: Router, addr: &str) -> Result<SocketAddr, Error> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await;
    });
    Ok(bound)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let handle = PrometheusBuilder::new().install_recorder()?;
    let addr = std::env::var("METRICS_ADDR").unwrap_or_else(|_| "127.0.0.1:9898".into());
    let bound = serve(app(handle).await?, &addr).await?;
    println!("serving http://{bound}/ and the metrics at http://{bound}/metrics (Ctrl-C to stop)");
    std::future::pending::<()>().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn scraping_metrics_over_http_finds_the_pool_cache_and_layer_series() {
        let handle = PrometheusBuilder::new().install_recorder().expect("the only recorder of this test");
        let app = app(handle).await.unwrap_or_else(|e| panic!("{e}"));
        let base = format!("http://{}", serve(app, "127.0.0.1:0").await.unwrap());
        let client = reqwest::Client::new();
        let first = client.get(&base).send().await.unwrap();
        assert_eq!(first.status(), 200);
        assert!(first.headers().contains_key("ratelimit"), "{:?}", first.headers());
        assert_eq!(first.text().await.unwrap(), "visit #1\n");

        let scrape = client.get(format!("{base}/metrics")).send().await.unwrap();
        assert_eq!(scrape.status(), 200);
        let text = scrape.text().await.unwrap();
        for series in [
            "cpc_db_pool_acquire_seconds",
            "cpc_db_pool_connections",
            "cpc_redis_commands_total{adapter=\"cache\",operation=\"set\"}",
            "cpc_redis_commands_total{adapter=\"lock\"",
            "cpc_redis_commands_total{adapter=\"rate_limit\"",
            "cpc_redis_commands_total{adapter=\"session\"",
            "cpc_redis_commands_total{adapter=\"pubsub\"",
            "cpc_port_calls_total{port=\"cache\",operation=\"get_bytes\"} 1",
            "cpc_port_call_seconds",
            "cpc_http_rate_limit_total{outcome=\"allowed\"} 1",
        ] {
            assert!(text.contains(series), "no {series} in the scrape:\n{text}");
        }
        assert!(text.contains("# TYPE cpc_redis_command_seconds summary"), "{text}");
    }
}
