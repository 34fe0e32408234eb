//! The same service over the testkit's in-memory fakes: real behaviour (unique e-mails, an exact sliding window,
//! expiring sessions), no expectations.

use std::sync::Arc;
use std::time::Duration;

use cpc_data::ports::UserRepository;
use cpc_testkit::memory::{InMemoryDatabase, InMemoryRateLimiter, InMemorySessionStore};

use crate::service::{SignupError, SignupService};

fn wired() -> (SignupService, Arc<dyn UserRepository>) {
    let db = InMemoryDatabase::new();
    let users: Arc<dyn UserRepository> = Arc::new(db.users());
    let service = SignupService::new(
        users.clone(),
        Arc::new(InMemoryRateLimiter::default()),
        Arc::new(InMemorySessionStore::default()),
    );
    (service, users)
}

#[tokio::test]
async fn a_signed_up_user_is_stored_and_their_session_loads() {
    let (service, users) = wired();
    let (user, session) = service.signup("10.0.0.1", "ada", "Ada@Example.org").await.unwrap();
    let stored = users.find_by_username(&user.username).await.unwrap().expect("the user must be stored");
    assert_eq!(stored, user);
    let me = service.whoami(&session).await.unwrap().expect("the session must load");
    assert_eq!(me.user_id, user.id);
    assert_eq!(me.username, "ada");
}

#[tokio::test]
async fn the_same_email_in_another_case_is_taken() {
    let (service, _) = wired();
    service.signup("10.0.0.1", "ada", "ada@example.org").await.unwrap();
    let err = service.signup("10.0.0.2", "ada2", "ADA@example.org").await.unwrap_err();
    assert!(matches!(err, SignupError::Taken { ref field } if field == "email"), "{err:?}");
}

#[tokio::test]
async fn the_fourth_signup_from_one_client_is_rate_limited_but_another_client_is_not() {
    let (service, users) = wired();
    for n in 0..3 {
        service.signup("10.0.0.1", &format!("user{n}"), &format!("u{n}@example.org")).await.unwrap();
    }
    match service.signup("10.0.0.1", "user3", "u3@example.org").await {
        Err(SignupError::RateLimited { retry_after: Some(after) }) => {
            assert!(after > Duration::ZERO && after <= Duration::from_secs(60), "{after:?}")
        }
        other => panic!("expected RateLimited with a retry_after, got {other:?}"),
    }
    assert_eq!(users.count(&[]).await.unwrap(), 3, "a refused sign-up must not create the user");
    service.signup("10.0.0.2", "user3", "u3@example.org").await.unwrap();
}

#[tokio::test]
async fn invalid_input_spends_no_rate_limit() {
    let (service, _) = wired();
    for _ in 0..5 {
        assert!(matches!(service.signup("10.0.0.1", "x", "bad").await, Err(SignupError::Invalid(_))));
    }
    service.signup("10.0.0.1", "valid_one", "v@example.org").await.unwrap();
}
