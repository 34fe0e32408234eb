//! The sheets demo on the embedded default and on PostgreSQL + Redis, checked by what it printed.

use crate::common::testing::{Wired, assert_printed, embedded, on_servers, printed};
use crate::demo;

async fn check(wired: Wired, backend: &str) {
    let (renders, log) = printed(&wired, async |ports, out| demo::run(ports, out).await).await;
    let expected = [
        "live (ttl 1s): Rendered, 3 points\nlive (ttl 1s): Cache, 3 points\nreport (ttl 3600s): Rendered, 3 points",
        "after 1.3s:\nlive (ttl 1s): Rendered, 3 points\nreport (ttl 3600s): Cache, 3 points",
        "sheet edited: 2 cached charts dropped\nreport (ttl 3600s): Rendered, 3 points",
        "broken: rendering failed: the sheet has no numeric column\nrenders: 4",
    ];
    assert_printed(&log, &[backend]);
    assert_printed(&log, &expected);
    assert_eq!(renders, 4);
}

#[tokio::test]
async fn the_demo_runs_on_the_embedded_default() {
    check(embedded("sheets").await, "+ jobs, sessions, locks and rate limits on SQLite").await;
}

#[tokio::test]
async fn the_demo_runs_on_postgres_and_redis() {
    check(on_servers("sheets").await, "+ Redis ").await;
}
