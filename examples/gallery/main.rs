//! The gallery example: an upload handler enqueues a thumbnail job on the `JobQueue` port, a worker
//! makes the thumbnail. Jobs are delivered at least once, failing ones retried, then dead-lettered.
//!
//! `cargo run --example gallery` (embedded: in-process queue), or with `REDIS_URL` set (Redis Streams).

#[path = "../common/mod.rs"]
mod common;
mod demo;
mod service;
#[cfg(test)]
mod tests_run;

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    common::main("gallery", async |ports, out| demo::run(ports, out).await).await
}
