//! The consent demo and service on the embedded default (SQLite) and on PostgreSQL + Redis (the app's migrations
//! run beside the library's): what the demo printed, the field a duplicate active grant is reported under by
//! each database, concurrent grants meeting the partial unique index, and a second revocation writing nothing.

use std::sync::Arc;

use cpc_data::ports::{ConflictKind, Filter, RecordStoreExt, RepoError};

use crate::app_data;
use crate::common::testing::{Wired, assert_printed, embedded_with, on_servers_with, printed};
use crate::demo;
use crate::records::{ACTIVE_GRANT_FIELD, Consent, ConsentField, NewConsent};
use crate::service::{ConsentError, ConsentPorts, Consents};

async fn check_demo(wired: Wired, backend: &str) {
    let (outcome, log) = printed(&wired, async |ports, out| demo::run(ports, out).await).await;
    assert_printed(
        &log,
        &[
            backend,
            "granted analytics (version 1)",
            "already consents to newsletter",
            "revoked newsletter (version 2)",
            "revoked again: nothing to do ; version still 2, 3 row(s)",
            "revoked never-granted telemetry: nothing to do",
            "granted newsletter again from settings-page",
            "concurrent grants: 1 recorded, 1 refused; 1 active marketing grant(s)",
            "current: analytics, marketing, newsletter, profiling",
            "history: 5 grants over 3 pages",
        ],
    );
    assert_eq!(outcome.current, ["analytics", "marketing", "newsletter", "profiling"], "{log}");
    assert_eq!(outcome.pages, [2, 2, 1], "{log}");
    assert_eq!(outcome.history.len(), 5, "{log}");
    assert_eq!(outcome.history.iter().filter(|h| h.ends_with("(revoked)")).count(), 1, "{log}");
    assert_eq!(outcome.history[0], "marketing", "newest grant first: {log}");
}

/// A second active grant written straight to the repository (no service in between) is refused by the database's
/// partial unique index, reported under [`ACTIVE_GRANT_FIELD`]; once the first is revoked, the same grant goes in.
async fn check_duplicate_field(wired: Wired) {
    let repo = wired.ports.records.repo::<Consent>().unwrap();
    let new = || NewConsent { subject: "s-1".into(), purpose: "newsletter".into(), source: String::new() };
    let first = repo.create(new()).await.unwrap();
    match repo.create(new()).await {
        Err(RepoError::Conflict { kind: ConflictKind::Duplicate { field }, .. }) => {
            assert_eq!(field, ACTIVE_GRANT_FIELD);
            assert_eq!(field, "purpose");
        }
        other => panic!("expected a duplicate on purpose, got {other:?}"),
    }
    // Another subject, or another purpose, is no duplicate.
    repo.create(NewConsent { subject: "s-2".into(), ..new() }).await.unwrap();
    repo.create(NewConsent { purpose: "analytics".into(), ..new() }).await.unwrap();
    let consents = Consents::new(ConsentPorts::from_store(&*wired.ports.records).unwrap());
    let revoked = consents.revoke("s-1", "newsletter").await.unwrap().expect("the active grant");
    assert_eq!(revoked.id, first.id);
    assert!(revoked.revoked_at.is_some());
    assert_eq!(revoked.version, first.version + 1);
    // The partial index no longer covers the revoked row.
    repo.create(new()).await.unwrap();
    let mine = Filter::Eq(ConsentField::subject, "s-1".into());
    assert_eq!(repo.count(std::slice::from_ref(&mine)).await.unwrap(), 3);
    assert_eq!(repo.count(&[mine, Filter::IsNull(ConsentField::revoked_at)]).await.unwrap(), 2);
}

/// Revoking twice, and revoking what was never granted, is `Ok(None)` and changes no row.
async fn check_revoke_twice(wired: Wired) {
    let consents = Consents::new(ConsentPorts::from_store(&*wired.ports.records).unwrap());
    let repo = wired.ports.records.repo::<Consent>().unwrap();
    consents.grant("s-1", "newsletter", "form").await.unwrap();
    let revoked = consents.revoke("s-1", "newsletter").await.unwrap().expect("revoked");
    assert!(consents.revoke("s-1", "newsletter").await.unwrap().is_none());
    assert!(consents.revoke("s-1", "never").await.unwrap().is_none());
    let stored = repo.find_by_id(&revoked.id).await.unwrap().unwrap();
    assert_eq!(stored, revoked, "the second revocation wrote nothing");
    assert_eq!(repo.count(&[]).await.unwrap(), 1);
    assert!(consents.current("s-1").await.unwrap().is_empty());
}

/// Eight grants of one subject and purpose at once: the unique index lets exactly one in, the others are told
/// it is granted already.
async fn check_concurrent_grants(wired: Wired) {
    let consents = Arc::new(Consents::new(ConsentPorts::from_store(&*wired.ports.records).unwrap()));
    let attempts: Vec<_> = (0..8)
        .map(|i| {
            let consents = consents.clone();
            tokio::spawn(async move { consents.grant("s-1", "marketing", &format!("tab-{i}")).await })
        })
        .collect();
    let outcomes: Vec<_> = futures::future::join_all(attempts).await.into_iter().map(Result::unwrap).collect();
    assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 1, "{outcomes:?}");
    let refused = outcomes.iter().filter(|o| matches!(o, Err(ConsentError::AlreadyGranted { .. }))).count();
    assert_eq!(refused, 7, "{outcomes:?}");
    let repo = wired.ports.records.repo::<Consent>().unwrap();
    assert_eq!(repo.count(&[]).await.unwrap(), 1);
    assert_eq!(consents.current("s-1").await.unwrap().len(), 1);
}

#[tokio::test]
async fn the_demo_runs_on_the_embedded_default() {
    check_demo(embedded_with("consent", &app_data()).await, "wired: SQLite ").await;
}

#[tokio::test]
async fn the_demo_runs_on_postgres_and_redis() {
    check_demo(on_servers_with("consent", &app_data()).await, "wired: PostgreSQL ").await;
}

#[tokio::test]
async fn sqlite_reports_a_second_active_grant_as_purpose() {
    check_duplicate_field(embedded_with("consent", &app_data()).await).await;
}

#[tokio::test]
async fn postgres_reports_a_second_active_grant_as_purpose() {
    check_duplicate_field(on_servers_with("consent", &app_data()).await).await;
}

#[tokio::test]
async fn revoking_twice_writes_nothing_on_sqlite() {
    check_revoke_twice(embedded_with("consent", &app_data()).await).await;
}

#[tokio::test]
async fn revoking_twice_writes_nothing_on_postgres() {
    check_revoke_twice(on_servers_with("consent", &app_data()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_grants_leave_one_active_row_on_sqlite() {
    check_concurrent_grants(embedded_with("consent", &app_data()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_grants_leave_one_active_row_on_postgres() {
    check_concurrent_grants(on_servers_with("consent", &app_data()).await).await;
}
