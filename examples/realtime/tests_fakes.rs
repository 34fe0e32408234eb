//! The hub over the in-memory fakes: real fan-out per document, a real token bucket on a paused clock.

use std::sync::Arc;
use std::time::Duration;

use cpc_testkit::memory::{InMemoryPubSub, InMemoryRateLimiter};
use futures::StreamExt;

use crate::service::{Envelope, Hub, Signal, SignalError};

fn hub() -> Hub {
    Hub::new(Arc::new(InMemoryPubSub::new()), Arc::new(InMemoryRateLimiter::default()))
}

#[tokio::test]
async fn every_peer_of_the_document_receives_the_signal_and_other_documents_nothing() {
    let hub = hub();
    let mut peers = vec![hub.join("d1").await.unwrap(), hub.join("d1").await.unwrap(), hub.join("d1").await.unwrap()];
    let mut other = hub.join("d2").await.unwrap();
    let offer = Signal::Offer { sdp: "v=0".into() };
    assert_eq!(hub.send("d1", "alice", offer.clone()).await.unwrap(), 3);
    for p in &mut peers {
        assert_eq!(p.next().await.unwrap().unwrap(), Envelope { from: "alice".into(), signal: offer.clone() });
    }
    assert!(tokio::time::timeout(Duration::from_millis(50), other.next()).await.is_err(), "d2 got a d1 signal");
}

#[tokio::test(start_paused = true)]
async fn a_peer_gets_ten_signals_at_once_then_ten_a_second_and_others_are_unaffected() {
    let hub = hub();
    let cursor = || Signal::Cursor { line: 0, column: 0 };
    for _ in 0..10 {
        hub.send("d1", "alice", cursor()).await.unwrap();
    }
    let err = hub.send("d1", "alice", cursor()).await.unwrap_err();
    assert!(matches!(err, SignalError::RateLimited { retry_after: Some(_), .. }), "{err:?}");
    hub.send("d1", "bob", cursor()).await.expect("bob has his own allowance");
    tokio::time::advance(Duration::from_millis(100)).await;
    hub.send("d1", "alice", cursor()).await.expect("one token back after 100 ms");
}
