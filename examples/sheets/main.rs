//! The sheets example: a visualization cache over `Cache`, with a TTL per chart.
//!
//! `cargo run --example sheets` (embedded), or with `REDIS_URL` set (Redis).

#[path = "../common/mod.rs"]
mod common;
mod demo;
mod service;
#[cfg(test)]
mod tests_fakes;
#[cfg(test)]
mod tests_mocks;
#[cfg(test)]
mod tests_run;

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    common::main("sheets", async |ports, out| demo::run(ports, out).await).await
}
