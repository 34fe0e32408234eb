//! The directory against a mockall mock: what it asks the repository, and how it reports each failure.

use std::sync::Arc;

use chrono::Utc;
use cpc_data::domain::{Customer, NewCustomer, Version};
use cpc_data::ports::{ConflictKind, RepoError};
use cpc_testkit::mocks::MockCustomerRepository;

use crate::service::{CrmError, Directory};

fn stored(new: NewCustomer) -> Customer {
    let now = Utc::now();
    let NewCustomer { email, name, phone } = new;
    Customer { id: Default::default(), email, name, phone, created_at: now, updated_at: now, version: Version::FIRST }
}

#[tokio::test]
async fn register_creates_the_validated_customer() {
    let mut repo = MockCustomerRepository::new();
    repo.expect_create()
        .withf(|n| n.email.as_str() == "ada@example.org" && n.name == "Ada")
        .times(1)
        .returning(|n| Ok(stored(n)));
    let c = Directory::new(Arc::new(repo)).register("ada@example.org", "Ada", None).await.unwrap();
    assert_eq!(c.name, "Ada");
}

#[tokio::test]
async fn a_duplicate_email_is_email_taken() {
    let mut repo = MockCustomerRepository::new();
    repo.expect_create().times(1).returning(|_| {
        Err(RepoError::Conflict { entity: "customer", kind: ConflictKind::Duplicate { field: "email".into() } })
    });
    let err = Directory::new(Arc::new(repo)).register("ada@example.org", "Ada", None).await.unwrap_err();
    assert!(matches!(err, CrmError::EmailTaken(ref e) if e == "ada@example.org"), "{err:?}");
    assert_eq!(err.to_string(), "a customer with e-mail ada@example.org already exists");
}

#[tokio::test]
async fn an_unavailable_database_is_unavailable() {
    let mut repo = MockCustomerRepository::new();
    repo.expect_find_by_email()
        .times(1)
        .returning(|_| Err(RepoError::Unavailable { backend: "postgres", reason: "connection refused".into() }));
    let err = Directory::new(Arc::new(repo)).find_by_email("ada@example.org").await.unwrap_err();
    assert!(matches!(err, CrmError::Unavailable(ref m) if m.contains("connection refused")), "{err:?}");
}

#[tokio::test]
async fn find_by_email_asks_for_the_parsed_address() {
    let mut repo = MockCustomerRepository::new();
    repo.expect_find_by_email().withf(|e| e.as_str() == "ada@example.org").times(1).returning(|_| Ok(None));
    assert!(Directory::new(Arc::new(repo)).find_by_email("ada@example.org").await.unwrap().is_none());
}

#[tokio::test]
async fn invalid_input_never_reaches_the_repository() {
    // A mock without expectations fails the test on any call.
    let directory = Directory::new(Arc::new(MockCustomerRepository::new()));
    assert!(matches!(directory.register("nope", "Ada", None).await, Err(CrmError::Invalid(_))));
    assert!(matches!(directory.register("ada@example.org", "", None).await, Err(CrmError::Invalid(_))));
    assert!(matches!(directory.find_by_email("nope").await, Err(CrmError::Invalid(_))));
}
