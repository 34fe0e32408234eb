//! The directory over the in-memory fake: real uniqueness, case-insensitive e-mail lookups.

use std::sync::Arc;

use cpc_testkit::memory::InMemoryDatabase;

use crate::service::{CrmError, Directory};

fn directory() -> Directory {
    Directory::new(Arc::new(InMemoryDatabase::new().customers()))
}

#[tokio::test]
async fn a_registered_customer_is_found_by_email_in_any_case() {
    let d = directory();
    let ada = d.register("Ada@Example.org", "Ada", Some("+44 1")).await.unwrap();
    let found = d.find_by_email("ADA@EXAMPLE.ORG").await.unwrap().expect("found");
    assert_eq!(found, ada);
    assert!(d.find_by_email("bob@example.org").await.unwrap().is_none());
}

#[tokio::test]
async fn the_same_email_in_another_case_is_taken_and_nothing_is_stored() {
    let d = directory();
    d.register("ada@example.org", "Ada", None).await.unwrap();
    let err = d.register("ADA@example.org", "Other", None).await.unwrap_err();
    assert!(matches!(err, CrmError::EmailTaken(_)), "{err:?}");
    assert_eq!(d.find_by_email("ada@example.org").await.unwrap().unwrap().name, "Ada");
}
