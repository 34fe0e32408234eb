//! The service against a mockall mock of its one port (`MockRepository<Consent>`): the calls it makes (a grant
//! is one insert with no read first, the current state is one query, a revocation is one read and at most one
//! versioned update) and how it maps the repository's errors. A mock with no expectation for a call panics when
//! it is made: those tests prove the service wrote nothing.

use std::sync::Arc;

use chrono::Utc;
use cpc_data::domain::Version;
use cpc_data::ports::{ConflictKind, Direction, Filter, Page, PageRequest, Query, Record, RepoError, Sort, Value};
use cpc_testkit::mocks::MockRepository;
use uuid::Uuid;

use crate::records::{Consent, ConsentField, NewConsent};
use crate::service::{ConsentError, ConsentPorts, Consents};

fn service(repo: MockRepository<Consent>) -> Consents {
    Consents::new(ConsentPorts { consents: Arc::new(repo) })
}

fn grant_of(subject: &str, purpose: &str) -> Consent {
    let new = NewConsent { subject: subject.into(), purpose: purpose.into(), source: "form".into() };
    Consent::build(Uuid::now_v7(), new, Utc::now())
}

fn page(items: Vec<Consent>) -> Page<Consent> {
    Page { items, total: None, next_cursor: None }
}

fn duplicate(field: &str) -> RepoError {
    RepoError::Conflict { entity: "consent", kind: ConflictKind::Duplicate { field: field.into() } }
}

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

/// The query a revocation reads the active grant with.
fn is_active_lookup(q: &Query<ConsentField>, subject: &str, purpose: &str) -> bool {
    q.filters
        == [
            Filter::Eq(ConsentField::subject, text(subject)),
            Filter::Eq(ConsentField::purpose, text(purpose)),
            Filter::IsNull(ConsentField::revoked_at),
        ]
        && q.page == PageRequest::Keyset { after: None, limit: 1 }
}

#[tokio::test]
async fn a_grant_is_one_insert_with_trimmed_input() {
    let mut repo = MockRepository::<Consent>::new();
    repo.expect_create()
        .withf(|n| *n == NewConsent { subject: "ada".into(), purpose: "newsletter".into(), source: "form".into() })
        .times(1)
        .returning(|n| Ok(Consent::build(Uuid::now_v7(), n, Utc::now())));
    let c = service(repo).grant(" ada ", " newsletter ", " form ").await.unwrap();
    assert_eq!((c.subject.as_str(), c.purpose.as_str(), c.revoked_at), ("ada", "newsletter", None));
    assert_eq!(c.version, 1);
}

#[tokio::test]
async fn a_duplicate_on_purpose_is_already_granted() {
    let mut repo = MockRepository::<Consent>::new();
    // No find_page expectation: the service does not read before it inserts; the unique index decides.
    repo.expect_create().times(1).returning(|_| Err(duplicate("purpose")));
    let err = service(repo).grant("ada", "newsletter", "").await.unwrap_err();
    match err {
        ConsentError::AlreadyGranted { subject, purpose } => {
            assert_eq!((subject, purpose), ("ada".into(), "newsletter".into()))
        }
        other => panic!("expected AlreadyGranted, got {other:?}"),
    }
}

#[tokio::test]
async fn a_duplicate_on_another_field_is_a_plain_conflict() {
    let mut repo = MockRepository::<Consent>::new();
    repo.expect_create().times(1).returning(|_| Err(duplicate("id")));
    let err = service(repo).grant("ada", "newsletter", "").await.unwrap_err();
    assert!(matches!(err, ConsentError::Conflict(ref m) if m.contains("id")), "{err:?}");
}

#[tokio::test]
async fn bad_input_names_the_field_and_touches_no_port() {
    let consents = service(MockRepository::new());
    for (subject, purpose, source, field) in [
        ("", "newsletter", "", "subject"),
        ("  ", "newsletter", "", "subject"),
        ("ada", "", "", "purpose"),
        ("ada", &"p".repeat(101), "", "purpose"),
        ("ada", "newsletter", &"s".repeat(201), "source"),
    ] {
        match consents.grant(subject, purpose, source).await {
            Err(ConsentError::Invalid(v)) => assert_eq!(v.field, field),
            other => panic!("expected an invalid {field}, got {other:?}"),
        }
    }
    assert!(matches!(consents.revoke("", "x").await, Err(ConsentError::Invalid(v)) if v.field == "subject"));
    assert!(matches!(consents.current(" ").await, Err(ConsentError::Invalid(v)) if v.field == "subject"));
}

#[tokio::test]
async fn revoking_nothing_active_reads_once_and_writes_nothing() {
    let mut repo = MockRepository::<Consent>::new();
    repo.expect_find_page()
        .withf(|q| is_active_lookup(q, "ada", "newsletter"))
        .times(2)
        .returning(|_| Ok(page(Vec::new())));
    repo.expect_update().times(0);
    let consents = service(repo);
    // Revoked already (or never granted): twice over, each time Ok(None) and no update.
    assert!(consents.revoke("ada", "newsletter").await.unwrap().is_none());
    assert!(consents.revoke("ada", "newsletter").await.unwrap().is_none());
}

#[tokio::test]
async fn revoking_updates_the_version_read() {
    let active = grant_of("ada", "newsletter");
    let id = active.id;
    let mut repo = MockRepository::<Consent>::new();
    let found = active.clone();
    repo.expect_find_page()
        .withf(|q| is_active_lookup(q, "ada", "newsletter"))
        .times(1)
        .returning(move |_| Ok(page(vec![found.clone()])));
    repo.expect_update()
        .withf(move |i, v, c| *i == id && *v == Version::new(1) && matches!(c.revoked_at, Some(Some(_))))
        .times(1)
        .returning(move |_, _, c| {
            let mut row = active.clone();
            row.apply(c);
            row.version = 2;
            Ok(row)
        });
    let revoked = service(repo).revoke("ada", "newsletter").await.unwrap().expect("revoked");
    assert!(revoked.revoked_at.is_some());
    assert_eq!(revoked.version, 2);
}

#[tokio::test]
async fn a_revocation_that_loses_the_race_is_ok_and_none() {
    let active = grant_of("ada", "newsletter");
    let mut repo = MockRepository::<Consent>::new();
    repo.expect_find_page().times(1).returning(move |_| Ok(page(vec![active.clone()])));
    repo.expect_update().times(1).returning(|_, _, _| {
        Err(RepoError::Conflict {
            entity: "consent",
            kind: ConflictKind::StaleVersion { expected: Version::new(1), actual: Version::new(2) },
        })
    });
    assert!(service(repo).revoke("ada", "newsletter").await.unwrap().is_none());
}

#[tokio::test]
async fn the_current_state_is_one_query() {
    let rows = vec![grant_of("ada", "analytics"), grant_of("ada", "newsletter")];
    let mut repo = MockRepository::<Consent>::new();
    repo.expect_find_page()
        .withf(|q| {
            q.filters == [Filter::Eq(ConsentField::subject, text("ada")), Filter::IsNull(ConsentField::revoked_at)]
                && q.sort == [Sort { field: ConsentField::purpose, direction: Direction::Asc }]
                && q.page == PageRequest::Keyset { after: None, limit: crate::service::MAX_PURPOSES }
        })
        .times(1)
        .returning(move |_| Ok(page(rows.clone())));
    let current = service(repo).current("ada").await.unwrap();
    let purposes: Vec<&str> = current.iter().map(|c| c.purpose.as_str()).collect();
    assert_eq!(purposes, ["analytics", "newsletter"]);
}

#[tokio::test]
async fn the_history_is_keyset_paged_newest_first() {
    let mut repo = MockRepository::<Consent>::new();
    repo.expect_find_page()
        .withf(|q| {
            q.filters == [Filter::Eq(ConsentField::subject, text("ada"))]
                && q.sort
                    == [
                        Sort { field: ConsentField::granted_at, direction: Direction::Desc },
                        Sort { field: ConsentField::id, direction: Direction::Desc },
                    ]
                && q.page == PageRequest::Keyset { after: None, limit: 20 }
        })
        .times(1)
        .returning(|_| Ok(page(Vec::new())));
    assert!(service(repo).history("ada", None, 20).await.unwrap().items.is_empty());
}

#[tokio::test]
async fn a_lost_database_is_unavailable() {
    let mut repo = MockRepository::<Consent>::new();
    repo.expect_find_page()
        .returning(|_| Err(RepoError::Unavailable { backend: "postgres", reason: "connection reset".into() }));
    let err = service(repo).current("ada").await.unwrap_err();
    assert!(matches!(err, ConsentError::Unavailable(ref m) if m.contains("connection reset")), "{err:?}");
}

#[tokio::test]
async fn more_active_grants_than_the_limit_is_an_error_not_a_short_answer() {
    let mut repo = MockRepository::<Consent>::new();
    repo.expect_find_page().times(1).returning(|_| {
        let mut more = page(vec![grant_of("ada", "analytics")]);
        more.next_cursor = Some(cpc_data::ports::Cursor::from_string("more"));
        Ok(more)
    });
    let err = service(repo).current("ada").await.unwrap_err();
    assert!(matches!(err, ConsentError::Invalid(v) if v.field == "subject"), "a truncated state is never returned");
}
