//! The learning demo on the embedded default and on PostgreSQL + Redis (the app's migrations run beside the
//! library's), checked by what it printed and what it computed.

use crate::app_data;
use crate::common::testing::{Wired, assert_printed, embedded_with, on_servers_with, printed};
use crate::demo;

async fn check(wired: Wired, backend: &str) {
    let (outcome, log) = printed(&wired, async |ports, out| demo::run(ports, out).await).await;
    assert_printed(
        &log,
        &[
            backend,
            "course Rust 101: 1. Ownership (#",
            "2. Borrowing (#",
            "course SQL 101: 1. SELECT (#",
            "conflict: a course with slug rust-101-",
            "already exists",
            // The learner's lock: one of two concurrent completions records, the other sees it.
            "concurrent completions: #1 recorded with score 81, the other already completed; 1 completion row(s)",
            // The unit of work: the completion written before the failing lesson row is gone again.
            "refused midway: lesson ",
            "is not part of course",
            "still 1 completion(s) and 3 lesson row(s)",
            "completed SQL 101: #2 with score 90",
            "refused: no learner ",
            "completed Transactions between pages: #3",
            "history: 5 rows over 3 pages, none repeated",
            "completions: [1, 2, 3]",
        ],
    );
    // Newest first, and the completion recorded between pages did not shift them: the SQL rows (page 1), then
    // the Rust rows (pages 2 and 3), each page in descending order.
    assert_eq!(outcome.pages, [2, 2, 1], "{log}");
    assert!(outcome.seen.windows(2).all(|w| w[0] > w[1]), "newest first: {:?}\n{log}", outcome.seen);
    assert_eq!(outcome.numbers, [1, 2, 3], "{log}");
}

#[tokio::test]
async fn the_demo_runs_on_the_embedded_default() {
    check(embedded_with("learning", &app_data()).await, "wired: SQLite ").await;
}

#[tokio::test]
async fn the_demo_runs_on_postgres_and_redis() {
    check(on_servers_with("learning", &app_data()).await, "wired: PostgreSQL ").await;
}
