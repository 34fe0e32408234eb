//! The service unit-tested with mockall mocks of the ports: call expectations and error paths.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use cpc_data::domain::{Email, User, UserId, Username, Version};
use cpc_data::ports::{Codec, ConflictKind, KvError, RateLimitDecision, RepoError, SessionId};
use cpc_testkit::mocks::{MockRateLimiter, MockSessionStore, MockUserRepository};
use mockall::predicate::always;

use crate::service::{SignupError, SignupService};

fn allowed() -> RateLimitDecision {
    RateLimitDecision { allowed: true, limit: 3, remaining: 2, retry_after: None, reset_after: Duration::from_secs(60) }
}

fn stored(username: &str, email: &str) -> User {
    let now = Utc::now();
    User {
        id: UserId::new(),
        username: Username::parse(username).unwrap(),
        email: Email::parse(email).unwrap(),
        created_at: now,
        updated_at: now,
        version: Version::FIRST,
    }
}

fn service(users: MockUserRepository, limiter: MockRateLimiter, sessions: MockSessionStore) -> SignupService {
    SignupService::new(Arc::new(users), Arc::new(limiter), Arc::new(sessions))
}

#[tokio::test]
async fn signup_checks_the_limit_creates_the_user_and_starts_a_session() {
    let mut limiter = MockRateLimiter::new();
    limiter
        .expect_check()
        .withf(|key, policy, cost| key.as_str() == "signup:10.0.0.1" && policy.limit() == 3 && *cost == 1)
        .times(1)
        .returning(|_, _, _| Ok(allowed()));
    let mut users = MockUserRepository::new();
    users
        .expect_create()
        .withf(|new| new.username.as_str() == "ada" && new.email.as_str() == "ada@example.org")
        .times(1)
        .returning(|new| Ok(stored(new.username.as_str(), new.email.as_str())));
    let mut sessions = MockSessionStore::new();
    sessions.expect_codec().return_const(Codec::json());
    let sid = SessionId::generate();
    let returned = sid.clone();
    sessions
        .expect_create_bytes()
        .withf(|data, ttl| {
            let v: serde_json::Value = Codec::json().decode(data).unwrap();
            v["username"] == "ada" && *ttl == Duration::from_secs(86_400)
        })
        .times(1)
        .returning(move |_, _| Ok(returned.clone()));

    let (user, session) = service(users, limiter, sessions).signup("10.0.0.1", "ada", "ada@example.org").await.unwrap();
    assert_eq!(user.username.as_str(), "ada");
    assert_eq!(session, sid);
}

#[tokio::test]
async fn invalid_input_touches_no_port() {
    let mut limiter = MockRateLimiter::new();
    limiter.expect_check().never();
    let mut users = MockUserRepository::new();
    users.expect_create().never();
    let err = service(users, limiter, MockSessionStore::new()).signup("10.0.0.1", "ada", "not-an-email").await;
    match err {
        Err(SignupError::Invalid(v)) => assert_eq!(v.field, "email"),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[tokio::test]
async fn a_refused_rate_limit_creates_nothing_and_reports_retry_after() {
    let mut limiter = MockRateLimiter::new();
    limiter.expect_check().times(1).returning(|_, _, _| {
        Ok(RateLimitDecision { allowed: false, remaining: 0, retry_after: Some(Duration::from_secs(42)), ..allowed() })
    });
    let mut users = MockUserRepository::new();
    users.expect_create().never();
    let mut sessions = MockSessionStore::new();
    sessions.expect_create_bytes().never();
    match service(users, limiter, sessions).signup("10.0.0.1", "ada", "ada@example.org").await {
        Err(SignupError::RateLimited { retry_after }) => assert_eq!(retry_after, Some(Duration::from_secs(42))),
        other => panic!("expected RateLimited, got {other:?}"),
    }
}

#[tokio::test]
async fn a_duplicate_email_is_reported_as_taken_and_starts_no_session() {
    let mut limiter = MockRateLimiter::new();
    limiter.expect_check().returning(|_, _, _| Ok(allowed()));
    let mut users = MockUserRepository::new();
    users.expect_create().with(always()).times(1).returning(|_| {
        Err(RepoError::Conflict { entity: "user", kind: ConflictKind::Duplicate { field: "email".into() } })
    });
    let mut sessions = MockSessionStore::new();
    sessions.expect_create_bytes().never();
    match service(users, limiter, sessions).signup("10.0.0.1", "ada", "ada@example.org").await {
        Err(SignupError::Taken { field }) => assert_eq!(field, "email"),
        other => panic!("expected Taken, got {other:?}"),
    }
}

#[tokio::test]
async fn an_unavailable_limiter_fails_closed_without_creating_the_user() {
    let mut limiter = MockRateLimiter::new();
    limiter
        .expect_check()
        .returning(|_, _, _| Err(KvError::Unavailable { backend: "redis", reason: "connection refused".into() }));
    let mut users = MockUserRepository::new();
    users.expect_create().never();
    match service(users, limiter, MockSessionStore::new()).signup("10.0.0.1", "ada", "ada@example.org").await {
        Err(SignupError::Unavailable(msg)) => assert!(msg.contains("connection refused"), "{msg}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn a_session_store_failure_surfaces_after_the_user_was_created() {
    let mut limiter = MockRateLimiter::new();
    limiter.expect_check().returning(|_, _, _| Ok(allowed()));
    let mut users = MockUserRepository::new();
    users.expect_create().times(1).returning(|new| Ok(stored(new.username.as_str(), new.email.as_str())));
    let mut sessions = MockSessionStore::new();
    sessions.expect_codec().return_const(Codec::json());
    sessions
        .expect_create_bytes()
        .times(1)
        .returning(|_, _| Err(KvError::Timeout { operation: "create session", after: Duration::from_secs(1) }));
    let err = service(users, limiter, sessions).signup("10.0.0.1", "ada", "ada@example.org").await.unwrap_err();
    assert!(matches!(err, SignupError::Unavailable(ref m) if m.contains("timed out")), "{err:?}");
}
