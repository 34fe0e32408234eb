//! The learning example: an app with tables and migrations of its own (courses, lessons, course
//! completions and their lesson rows) beside the library's, on the public API only.
//!
//! `cargo run --example learning` (embedded), or with `DATABASE_URL` and `REDIS_URL` set (PostgreSQL + Redis).

#[path = "../common/mod.rs"]
#[allow(dead_code, reason = "an app with records of its own uses `main_with`, not `main`")]
mod common;
mod demo;
mod records;
mod service;
// waits on: the in-memory fake for any record (`InMemoryDatabase::register::<T>()`, `impl RecordStore for
// InMemoryDatabase` handing out the app's records, `tx.repo::<T>()` on its units of work), being finished on main.
#[cfg(test)]
mod tests_fakes;
#[cfg(test)]
mod tests_mocks;
#[cfg(test)]
mod tests_run;

use std::process::ExitCode;

use cpc_data::wiring::AppData;

/// The app's records and migrations, handed to the wiring at start-up.
pub fn app_data() -> AppData {
    AppData::new()
        .record::<records::Course>()
        .record::<records::Lesson>()
        .record::<records::Completion>()
        .record::<records::Progress>()
        .migrations(records::MIGRATIONS)
}

#[tokio::main]
async fn main() -> ExitCode {
    common::main_with("learning", &app_data(), async |ports, out| demo::run(ports, out).await).await
}
