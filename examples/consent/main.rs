//! The consent example: an app with a table and migrations of its own (consents granted and
//! revoked per purpose, the history kept) beside the library's, on the public API only.
//!
//! `cargo run --example consent` (embedded), or with `DATABASE_URL` and `REDIS_URL` set (PostgreSQL + Redis).

#[path = "../common/mod.rs"]
#[allow(dead_code, reason = "an app with records of its own uses `main_with`, not `main`")]
mod common;
mod demo;
mod records;
mod service;
#[cfg(test)]
mod tests_fakes;
#[cfg(test)]
mod tests_mocks;
#[cfg(test)]
mod tests_run;

use std::process::ExitCode;

use cpc_data::wiring::AppData;

/// The app's record and migrations, handed to the wiring at start-up.
pub fn app_data() -> AppData {
    AppData::new().record::<records::Consent>().migrations(records::MIGRATIONS)
}

#[tokio::main]
async fn main() -> ExitCode {
    common::main_with("consent", &app_data(), async |ports, out| demo::run(ports, out).await).await
}
