//! The CRM demo on the embedded default and on PostgreSQL + Redis, checked by what it printed.

use crate::common::testing::{Wired, assert_printed, embedded, on_servers, printed};
use crate::demo;

async fn check(wired: Wired, backend: &str) {
    let ((), log) = printed(&wired, async |ports, out| demo::run(ports, out).await).await;
    assert_printed(
        &log,
        &[
            backend,
            "registered: Ada Lovelace <ada.",
            "phone +44 20 7946 0001",
            "registered: Bob Noyce <bob.",
            "@EXAMPLE.ORG: Ada Lovelace (registered as ada.",
            "conflict: a customer with e-mail ADA.",
            "already exists",
            "invalid: ",
            "@example.org: none",
        ],
    );
}

#[tokio::test]
async fn the_demo_runs_on_the_embedded_default() {
    check(embedded("crm").await, "wired: SQLite ").await;
}

#[tokio::test]
async fn the_demo_runs_on_postgres_and_redis() {
    check(on_servers("crm").await, "wired: PostgreSQL ").await;
}
