//! The composition half that names adapter types: the Prometheus recorder, the `Observed` decorators around the
//! wired ports (so the key-value ports show up in `/metrics` on the in-process default too), and serving.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use cpc_data::adapters::observe::{Observe, Observed};
use cpc_data::wiring::{DatabaseSettings, KvSettings, Ports, Settings};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Installs the process-wide Prometheus recorder, once; later calls get the same handle. Call it before wiring:
/// pools and adapters register their metrics when they are built.
pub fn metrics() -> Result<PrometheusHandle, String> {
    static HANDLE: std::sync::OnceLock<Result<PrometheusHandle, String>> = std::sync::OnceLock::new();
    HANDLE.get_or_init(|| PrometheusBuilder::new().install_recorder().map_err(|e| e.to_string())).clone()
}

/// The `db.system` values of what `settings` wires: the database's, then the key-value ports'.
pub fn systems(settings: &Settings) -> (&'static str, &'static str) {
    let db = match settings.database {
        DatabaseSettings::Sqlite(_) => "sqlite",
        DatabaseSettings::Postgres(_) | DatabaseSettings::PostgresWithReplicas(_) => "postgresql",
    };
    let kv = match settings.kv {
        KvSettings::Redis(_) => "redis",
        KvSettings::Postgres => "postgresql",
        KvSettings::Sqlite => "sqlite",
        _ => "memory",
    };
    (db, kv)
}

/// `ports` with every port the app uses wrapped in [`Observed`]: a `cpc.port` span and the `cpc_port_*` metrics
/// per call. `systems` as from [`systems`].
pub fn observed(mut ports: Ports, (db, kv): (&'static str, &'static str)) -> Ports {
    let (data, keys) = (Observe::new(db, "web"), Observe::new(kv, "web"));
    ports.users = Arc::new(Observed::from_arc(ports.users, data.clone()));
    ports.transactions = Arc::new(Observed::from_arc(ports.transactions, data.clone()));
    ports.unit_of_work = Arc::new(Observed::from_arc(ports.unit_of_work, data));
    ports.cache = Arc::new(Observed::from_arc(ports.cache, keys.clone()));
    ports.lock = Arc::new(Observed::from_arc(ports.lock, keys.clone()));
    ports.rate_limiter = Arc::new(Observed::from_arc(ports.rate_limiter, keys.clone()));
    ports.sessions = Arc::new(Observed::from_arc(ports.sessions, keys));
    ports
}

/// Serves `app` on `addr` in the background (with the peer address for the per-IP rate limit); returns the
/// bound address.
pub async fn serve(app: Router, addr: &str) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await;
    });
    Ok(bound)
}
