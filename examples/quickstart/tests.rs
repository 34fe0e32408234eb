//! The quickstart flow on the embedded default and on PostgreSQL + Redis, checked by what it printed.

use crate::common::testing::{Wired, assert_printed, embedded, on_servers, printed};
use crate::flow::{self, Outcome};

async fn run(wired: &Wired) -> (Outcome, String) {
    printed(wired, async |ports, out| flow::run(ports, out).await).await
}

/// Every step, as printed; the backend-specific lines are checked by the callers.
const EVERY_STEP: &[&str] = &[
    "migrations: applied at start-up",
    "sign-up: created user ada <ada@example.org>",
    "login: session for ada loads back",
    "finance: recorded 3 transactions under lock account:",
    "cache: balance 84.50 EUR cached for 60 s; read back 84.50 EUR",
    "rate limit: burst of 8 at 5/min: 5 allowed, 3 refused",
    "pub/sub: published to 1 subscriber(s) on balances.",
    "received balance 84.50 EUR",
    "health: Healthy",
];

#[tokio::test]
async fn the_flow_runs_on_the_embedded_default() {
    let wired = embedded("quickstart").await;
    let (outcome, log) = run(&wired).await;
    assert_printed(&log, EVERY_STEP);
    assert_printed(
        &log,
        &[
            "wired: SQLite ",
            "quickstart.db + jobs, sessions, locks and rate limits on SQLite",
            "sqlite: Healthy",
            "in-process: Healthy",
        ],
    );
    assert!(outcome.created);
    assert_eq!((outcome.balance_minor, outcome.burst), (8_450, (5, 3)));
    assert_eq!(outcome.received.user_id, outcome.user.id);
}

#[tokio::test]
async fn a_second_run_on_the_same_data_logs_the_user_in_and_adds_to_the_ledger() {
    let wired = embedded("quickstart").await;
    let (first, _) = run(&wired).await;
    let (second, log) = run(&wired).await;
    assert_printed(&log, &["sign-up: ada@example.org is already signed up (an earlier run); logging in"]);
    assert_eq!(second.user.id, first.user.id);
    assert!(!second.created);
    assert_eq!(second.balance_minor, 2 * 8_450, "the ledger keeps the first run's transactions");
    assert_eq!(second.burst, (5, 3), "each run starts its burst from a reset allowance");
}

#[tokio::test]
async fn the_flow_runs_on_postgres_and_redis() {
    let wired = on_servers("quickstart").await;
    let (outcome, log) = run(&wired).await;
    assert_printed(&log, EVERY_STEP);
    assert_printed(&log, &["wired: PostgreSQL ", "+ Redis redis://", "postgres: Healthy", "redis: Healthy"]);
    assert_eq!((outcome.balance_minor, outcome.burst), (8_450, (5, 3)));
}
