//! A web service on the ports, with axum: sign-up and log-in with sessions, per-user rate limiting, a transfer
//! under per-account locks, `/health` over every backend and `/metrics` in Prometheus text format (see `app.rs`
//! for the routes).
//!
//! ```text
//! cargo run --example web --features tower,observe          # embedded; DATABASE_URL / REDIS_URL for servers
//! curl -i -c jar -H 'content-type: application/json' -d '{"username":"ada","email":"ada@example.org"}' \
//!      http://127.0.0.1:3000/signup                         # then /login with the same body, /me with -b jar
//! ```
//!
//! `CPC_WEB_ADDR` sets the address (default `127.0.0.1:3000`).

mod app;
#[allow(dead_code, reason = "the service serves: it runs no flow through `common::main`")]
#[path = "../common/mod.rs"]
mod common;
mod compose;
mod service;
#[cfg(test)]
mod tests_fakes;
#[cfg(test)]
mod tests_http;
#[cfg(test)]
mod tests_mocks;

use std::process::ExitCode;

use cpc_data::wiring::{Ports, Settings};

/// Where the service listens unless `CPC_WEB_ADDR` says otherwise.
const DEFAULT_ADDR: &str = "127.0.0.1:3000";

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), common::FlowError> {
    // The recorder first: the pool and the adapters register their metrics when they are built.
    let metrics = compose::metrics()?;
    let settings = Settings::from_env("web")?;
    let ports = compose::observed(Ports::wire(&settings).await?, compose::systems(&settings));
    let app = app::router(&ports, metrics, &app::AppConfig::default())?;
    let addr = std::env::var("CPC_WEB_ADDR").unwrap_or_else(|_| DEFAULT_ADDR.to_owned());
    let bound = compose::serve(app, &addr).await?;
    println!("wired: {}", ports.description);
    println!("serving http://{bound}/ (signup, login, me, transfer, logout, health, metrics); Ctrl-C to stop");
    std::future::pending::<()>().await;
    Ok(())
}
