//! The realtime demo on the embedded default and on PostgreSQL + Redis, checked by what it printed.

use crate::common::testing::{Wired, assert_printed, embedded, on_servers, printed};
use crate::demo;

async fn check(wired: Wired, backend: &str) {
    let (outcome, log) = printed(&wired, async |ports, out| demo::run(ports, out).await).await;
    assert_printed(
        &log,
        &[
            backend,
            "joined: 3 peers on doc-",
            "sent offer from alice-",
            "(the broker counted ",
            "received in order: offer, answer, ice-candidate",
            "received: nothing",
            ": 10 sent, 5 rate-limited",
        ],
    );
    assert_eq!(outcome.received, [3, 3, 3]);
    assert_eq!(outcome.flood, (10, 5));
}

#[tokio::test]
async fn the_demo_runs_on_the_embedded_default() {
    check(embedded("realtime").await, "+ jobs, sessions, locks and rate limits on SQLite").await;
}

#[tokio::test]
async fn the_demo_runs_on_postgres_and_redis() {
    check(on_servers("realtime").await, "+ Redis ").await;
}
