//! The finance example: a ledger over `TransactionRepository` and `Lock`.
//!
//! `cargo run --example finance` (embedded), or with `DATABASE_URL` and `REDIS_URL` set (PostgreSQL + Redis).

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
    common::main("finance", async |ports, out| demo::run(ports, out).await).await
}
