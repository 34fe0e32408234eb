//! The realtime demo: three peers join one document and a fourth another; an offer, an answer and an ICE
//! candidate reach every peer of the document and no one else; a peer that floods cursor moves is rate-limited.

use std::io::Write;
use std::time::Duration;

use cpc_data::wiring::Ports;
use futures::StreamExt;

use crate::common::{FlowError, run_tag};
use crate::service::{Envelope, Hub, Signal, SignalError};

/// What the demo saw, for tests.
#[cfg_attr(not(test), allow(dead_code, reason = "read by the tests"))]
#[derive(Debug)]
pub struct Outcome {
    /// How many signals each of the three peers of the document received.
    pub received: [usize; 3],
    /// How many cursor moves of the flood were sent, and how many refused.
    pub flood: (u32, u32),
}

/// Runs the demo, writing what happens to `out`.
pub async fn run(ports: &Ports, out: &mut impl Write) -> Result<Outcome, FlowError> {
    writeln!(out, "wired: {}", ports.description)?;
    let hub = Hub::new(ports.pubsub.clone(), ports.rate_limiter.clone());
    let tag = run_tag();
    let (doc, other) = (format!("doc-{tag}"), format!("other-{tag}"));
    let peers = ["alice", "bob", "carol"].map(|p| format!("{p}-{tag}"));
    let mut subscriptions = Vec::new();
    for _ in &peers {
        subscriptions.push(hub.join(&doc).await?);
    }
    let mut outsider = hub.join(&other).await?;
    writeln!(out, "joined: 3 peers on {doc}, 1 peer on {other}")?;

    let signals = [
        (&peers[0], Signal::Offer { sdp: "v=0 o=alice".into() }),
        (&peers[1], Signal::Answer { sdp: "v=0 o=bob".into() }),
        (&peers[0], Signal::IceCandidate { candidate: "candidate:1 1 UDP 2122252543 192.0.2.1 54400 typ host".into() }),
    ];
    for (from, signal) in &signals {
        let reached = hub.send(&doc, from, signal.clone()).await?;
        writeln!(out, "sent {} from {from} (the broker counted {reached} receiver(s))", kind(signal))?;
    }
    let mut received = [0; 3];
    for (i, subscription) in subscriptions.iter_mut().enumerate() {
        let mut got: Vec<Envelope> = Vec::new();
        for _ in &signals {
            let next = tokio::time::timeout(Duration::from_secs(5), subscription.next()).await;
            got.push(next.map_err(|_| "a signal did not arrive within 5 s")?.ok_or("the subscription ended")??);
        }
        received[i] = got.len();
        let kinds: Vec<&str> = got.iter().map(|e| kind(&e.signal)).collect();
        writeln!(out, "{} received in order: {}", peers[i], kinds.join(", "))?;
    }
    let leaked = tokio::time::timeout(Duration::from_millis(200), outsider.next()).await.is_ok();
    writeln!(out, "peer on {other} received: {}", if leaked { "something (wrong!)" } else { "nothing" })?;

    let (mut sent, mut refused) = (0, 0);
    for i in 0..15 {
        match hub.send(&doc, &peers[2], Signal::Cursor { line: i, column: 0 }).await {
            Ok(_) => sent += 1,
            Err(SignalError::RateLimited { .. }) => refused += 1,
            Err(e) => return Err(e.into()),
        }
    }
    writeln!(out, "flood of 15 cursor moves from {}: {sent} sent, {refused} rate-limited", peers[2])?;
    Ok(Outcome { received, flood: (sent, refused) })
}

fn kind(signal: &Signal) -> &'static str {
    match signal {
        Signal::Offer { .. } => "offer",
        Signal::Answer { .. } => "answer",
        Signal::IceCandidate { .. } => "ice-candidate",
        Signal::Cursor { .. } => "cursor",
    }
}
