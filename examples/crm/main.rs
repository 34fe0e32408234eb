//! The CRM example: a customer directory over `CustomerRepository`.
//!
//! `cargo run --example crm` (embedded), or with `DATABASE_URL` set (PostgreSQL).

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
    common::main("crm", async |ports, out| demo::run(ports, out).await).await
}
