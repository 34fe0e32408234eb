//! The service over the testkit's in-memory fake: the app's record registered with an `InMemoryDatabase`, its
//! unique key `purpose` (active grants only) enforced as the databases' partial index is. A second active grant,
//! revoking twice, concurrent grants of one purpose, the current state and the history paged while grants land.

use std::collections::HashSet;
use std::sync::Arc;

use cpc_data::ports::{ConflictKind, Filter, RecordStoreExt, RepoError};
use cpc_testkit::memory::InMemoryDatabase;

use crate::records::{ACTIVE_GRANT_FIELD, Consent, ConsentField, NewConsent};
use crate::service::{ConsentError, ConsentPorts, Consents};

fn fixture() -> (InMemoryDatabase, Arc<Consents>) {
    let db = InMemoryDatabase::new();
    db.register::<Consent>();
    let ports = ConsentPorts::from_store(&db).expect("the app's record is registered");
    (db, Arc::new(Consents::new(ports)))
}

async fn active(db: &InMemoryDatabase, subject: &str, purpose: &str) -> u64 {
    let repo = db.repo::<Consent>().unwrap();
    repo.count(&[
        Filter::Eq(ConsentField::subject, subject.into()),
        Filter::Eq(ConsentField::purpose, purpose.into()),
        Filter::IsNull(ConsentField::revoked_at),
    ])
    .await
    .unwrap()
}

#[tokio::test]
async fn the_fake_reports_a_second_active_grant_as_purpose_like_the_databases() {
    let (db, consents) = fixture();
    let repo = db.repo::<Consent>().unwrap();
    let new = || NewConsent { subject: "ada".into(), purpose: "newsletter".into(), source: String::new() };
    repo.create(new()).await.unwrap();
    match repo.create(new()).await {
        Err(RepoError::Conflict { kind: ConflictKind::Duplicate { field }, .. }) => {
            assert_eq!(field, ACTIVE_GRANT_FIELD)
        }
        other => panic!("expected a duplicate on purpose, got {other:?}"),
    }
    assert!(matches!(
        consents.grant("ada", "newsletter", "").await,
        Err(ConsentError::AlreadyGranted { ref subject, ref purpose }) if subject == "ada" && purpose == "newsletter"
    ));
    // Once revoked, the key no longer applies: the purpose can be granted again.
    consents.revoke("ada", "newsletter").await.unwrap().expect("revoked");
    consents.grant("ada", "newsletter", "again").await.unwrap();
    assert_eq!(repo.count(&[]).await.unwrap(), 2);
    assert_eq!(active(&db, "ada", "newsletter").await, 1);
}

#[tokio::test]
async fn revoking_twice_writes_nothing() {
    let (db, consents) = fixture();
    let repo = db.repo::<Consent>().unwrap();
    let granted = consents.grant("ada", "newsletter", "form").await.unwrap();
    let revoked = consents.revoke("ada", "newsletter").await.unwrap().expect("revoked");
    assert_eq!((revoked.id, revoked.version), (granted.id, granted.version + 1));
    assert!(consents.revoke("ada", "newsletter").await.unwrap().is_none());
    assert!(consents.revoke("ada", "never-granted").await.unwrap().is_none());
    assert_eq!(repo.find_by_id(&granted.id).await.unwrap().unwrap(), revoked, "the second revocation wrote nothing");
    assert_eq!(repo.count(&[]).await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_grants_of_one_purpose_leave_one_active_row() {
    let (db, consents) = fixture();
    let attempts: Vec<_> = (0..8)
        .map(|i| {
            let consents = consents.clone();
            tokio::spawn(async move { consents.grant("ada", "marketing", &format!("tab-{i}")).await })
        })
        .collect();
    let outcomes: Vec<_> = futures::future::join_all(attempts).await.into_iter().map(Result::unwrap).collect();
    assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 1, "{outcomes:?}");
    let refused = outcomes.iter().filter(|o| matches!(o, Err(ConsentError::AlreadyGranted { .. }))).count();
    assert_eq!(refused, 7, "{outcomes:?}");
    assert_eq!(active(&db, "ada", "marketing").await, 1);
}

#[tokio::test]
async fn the_current_state_and_the_history() {
    let (_db, consents) = fixture();
    for purpose in ["profiling", "analytics", "newsletter"] {
        consents.grant("ada", purpose, "form").await.unwrap();
    }
    consents.grant("bob", "analytics", "form").await.unwrap();
    consents.revoke("ada", "profiling").await.unwrap().expect("revoked");
    let current: Vec<String> = consents.current("ada").await.unwrap().into_iter().map(|c| c.purpose).collect();
    assert_eq!(current, ["analytics", "newsletter"]);

    // Paged two at a time, newest grant first; a grant landing between pages shifts nothing.
    let first = consents.history("ada", None, 2).await.unwrap();
    consents.grant("ada", "marketing", "form").await.unwrap();
    let second = consents.history("ada", first.next_cursor.clone(), 2).await.unwrap();
    assert!(second.next_cursor.is_none());
    let seen: Vec<&str> = first.items.iter().chain(&second.items).map(|c| c.purpose.as_str()).collect();
    assert_eq!(seen, ["newsletter", "analytics", "profiling"]);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 3);
    assert!(second.items[0].revoked_at.is_some(), "the history keeps revoked grants");
}
