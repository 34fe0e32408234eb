//! The gallery demo on the embedded default and on PostgreSQL + Redis, checked by what it printed.

use crate::common::testing::{Wired, assert_printed, embedded, on_servers, printed};
use crate::demo;

async fn check(wired: Wired, backend: &str) {
    let (outcome, log) = printed(&wired, async |ports, out| demo::run(ports, out).await).await;
    assert_printed(
        &log,
        &[
            backend,
            "the repeated upload got the same job: true",
            "worker: 4 processed, 3 failed, 2 retried, 1 dead",
            "thumbnails made: 4 of 4",
            "dead letters: broken-",
        ],
    );
    assert!(outcome.deduplicated);
    assert_eq!((outcome.report.processed, outcome.report.dead, outcome.thumbnails), (4, 1, 4));
    assert_eq!(outcome.dead.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_on_the_embedded_default() {
    check(embedded("gallery").await, "+ jobs, sessions, locks and rate limits on SQLite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_on_postgres_and_redis() {
    check(on_servers("gallery").await, "+ Redis ").await;
}
