//! The finance demo on the embedded default and on PostgreSQL + Redis, checked by what it printed.

use crate::common::testing::{Wired, assert_printed, embedded, on_servers, printed};
use crate::demo;

async fn check(wired: Wired, backend: &[&str]) {
    let (outcome, log) = printed(&wired, async |ports, out| demo::run(ports, out).await).await;
    assert_printed(&log, backend);
    assert_printed(
        &log,
        &[
            "record: 5 transactions under lock account:",
            "concurrent writers: 1 and 1 transaction(s) recorded",
            "history page 1 of the last 7 days (6 in all): ",
            "history page 3 of the last 7 days (6 in all): ",
            "balance: 1990.05 EUR this week, 2990.05 EUR in all",
            "refused: no account ",
            "refused: invalid amount: must be positive",
        ],
    );
    assert_eq!(outcome.pages, [2, 2, 2]);
    assert_eq!(outcome.balances, (199_005, 299_005));
}

#[tokio::test]
async fn the_demo_runs_on_the_embedded_default() {
    check(embedded("finance").await, &["wired: SQLite "]).await;
}

#[tokio::test]
async fn the_demo_runs_on_postgres_and_redis() {
    check(on_servers("finance").await, &["wired: PostgreSQL ", "+ Redis "]).await;
}
