//! The quickstart: one realistic flow through every port, on whatever the environment wires.
//!
//! ```sh
//! cargo run --example quickstart                       # embedded: SQLite under ./.cpc-data, in-process ports
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//! REDIS_URL=redis://127.0.0.1:6379 cargo run --example quickstart   # the same flow on PostgreSQL and Redis
//! ```
//!
//! `main` is the composition root: it wires the ports once ((`Ports::from_env`)) and hands them to the flow,
//! which names no adapter type.

#[path = "../common/mod.rs"]
mod common;
mod flow;
#[cfg(test)]
mod tests;

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    common::main("quickstart", async |ports, out| flow::run(ports, out).await).await
}
