//! The hub against mockall mocks: rate-limited peers publish nothing, broker failures are Unavailable.

use std::sync::Arc;
use std::time::Duration;

use cpc_data::ports::{Codec, KvError, RateLimitDecision};
use cpc_testkit::mocks::{MockPubSub, MockRateLimiter};

use crate::service::{Hub, Signal, SignalError};

fn decision(allowed: bool) -> RateLimitDecision {
    RateLimitDecision {
        allowed,
        limit: 10,
        remaining: if allowed { 9 } else { 0 },
        retry_after: (!allowed).then_some(Duration::from_millis(100)),
        reset_after: Duration::from_secs(1),
    }
}

fn limiter(allowed: bool) -> MockRateLimiter {
    let mut limiter = MockRateLimiter::new();
    limiter
        .expect_check()
        .withf(|key, _, cost| key.as_str() == "signal:alice" && *cost == 1)
        .times(1)
        .returning(move |_, _, _| Ok(decision(allowed)));
    limiter
}

fn cursor() -> Signal {
    Signal::Cursor { line: 1, column: 2 }
}

#[tokio::test]
async fn an_allowed_signal_is_published_on_the_documents_channel() {
    let mut pubsub = MockPubSub::new();
    pubsub.expect_codec().returning(Codec::default);
    pubsub.expect_publish_bytes().withf(|ch, _| ch.as_str() == "signal.doc-1").times(1).returning(|_, _| Ok(3));
    let hub = Hub::new(Arc::new(pubsub), Arc::new(limiter(true)));
    assert_eq!(hub.send("doc-1", "alice", cursor()).await.unwrap(), 3);
}

#[tokio::test]
async fn a_rate_limited_peer_publishes_nothing_and_learns_when_to_retry() {
    let mut pubsub = MockPubSub::new();
    pubsub.expect_publish_bytes().times(0);
    let hub = Hub::new(Arc::new(pubsub), Arc::new(limiter(false)));
    let err = hub.send("doc-1", "alice", cursor()).await.unwrap_err();
    let SignalError::RateLimited { peer, retry_after } = err else { panic!("expected RateLimited, got {err:?}") };
    assert_eq!((peer.as_str(), retry_after), ("alice", Some(Duration::from_millis(100))));
}

#[tokio::test]
async fn a_broker_that_is_down_is_unavailable() {
    let mut pubsub = MockPubSub::new();
    pubsub.expect_codec().returning(Codec::default);
    pubsub
        .expect_publish_bytes()
        .returning(|_, _| Err(KvError::Unavailable { backend: "redis", reason: "connection refused".into() }));
    let hub = Hub::new(Arc::new(pubsub), Arc::new(limiter(true)));
    let err = hub.send("doc-1", "alice", cursor()).await.unwrap_err();
    assert!(matches!(err, SignalError::Unavailable(ref m) if m.contains("connection refused")), "{err:?}");
}

#[tokio::test]
async fn a_rate_limiter_that_is_down_is_unavailable_and_nothing_is_sent() {
    let mut limiter = MockRateLimiter::new();
    limiter
        .expect_check()
        .returning(|_, _, _| Err(KvError::Timeout { operation: "EVALSHA", after: Duration::from_secs(1) }));
    let mut pubsub = MockPubSub::new();
    pubsub.expect_publish_bytes().times(0);
    let hub = Hub::new(Arc::new(pubsub), Arc::new(limiter));
    assert!(matches!(hub.send("doc-1", "alice", cursor()).await, Err(SignalError::Unavailable(_))));
}

#[tokio::test]
async fn a_document_id_with_glob_characters_is_refused_before_any_call() {
    let hub = Hub::new(Arc::new(MockPubSub::new()), Arc::new(MockRateLimiter::new()));
    for doc in ["", "doc*", "doc?", "doc[1]"] {
        assert!(matches!(hub.send(doc, "alice", cursor()).await, Err(SignalError::Invalid(_))), "{doc:?}");
        assert!(matches!(hub.join(doc).await, Err(SignalError::Invalid(_))), "{doc:?}");
    }
}
