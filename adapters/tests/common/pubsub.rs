//! Helpers shared by the pub/sub adapter tests.

use std::time::Duration;

use cpc_ports::{Channel, Message, Subscription};
use futures::StreamExt;
use tokio::time::timeout;

/// `name` as a channel.
pub fn channel(name: &str) -> Channel {
    Channel::new(name).unwrap()
}

/// The next message, skipping nothing: fails on an error item, a timeout (2 s) or the end of the stream.
pub async fn next_message(sub: &mut Subscription) -> Message {
    match timeout(Duration::from_secs(2), sub.next()).await {
        Ok(Some(Ok(m))) => m,
        other => panic!("expected a message, got {other:?}"),
    }
}
