//! The app code of the realtime-signaling example: peers editing one document exchange WebRTC signals (offers,
//! answers, ICE candidates) and cursor moves through a per-document channel. Every peer of a document receives
//! every signal, whichever app instance it is connected to (with Redis); other documents see nothing. Each peer
//! may send at most a few signals a second. It knows only the `PubSub` and `RateLimiter` ports.

use std::sync::Arc;
use std::time::Duration;

use cpc_data::domain::ValidationError;
use cpc_data::ports::{
    Channel, KvError, PubSub, PubSubExt, RateLimitKey, RateLimitPolicy, RateLimiter, TypedSubscription,
};
use serde::{Deserialize, Serialize};

/// What peers send each other.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Signal {
    /// A WebRTC session description offer.
    Offer {
        /// SDP.
        sdp: String,
    },
    /// The answer to an offer.
    Answer {
        /// SDP.
        sdp: String,
    },
    /// An ICE candidate.
    IceCandidate {
        /// The candidate line.
        candidate: String,
    },
    /// A cursor move in the document.
    Cursor {
        /// Line.
        line: u32,
        /// Column.
        column: u32,
    },
}

/// A signal and who sent it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// The sending peer.
    pub from: String,
    /// The signal.
    pub signal: Signal,
}

/// Why a signal was not sent.
#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    /// The document or peer id is invalid (400).
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The peer sends too fast (429).
    #[error("peer {peer} sends too fast; retry after {retry_after:?}")]
    RateLimited {
        /// The peer.
        peer: String,
        /// When it may send again.
        retry_after: Option<Duration>,
    },
    /// The broker is down (503).
    #[error("signaling unavailable: {0}")]
    Unavailable(String),
}

impl From<KvError> for SignalError {
    fn from(e: KvError) -> Self {
        match e {
            KvError::Validation(v) => Self::Invalid(v),
            other => Self::Unavailable(other.to_string()),
        }
    }
}

/// The signaling hub.
pub struct Hub {
    pubsub: Arc<dyn PubSub>,
    limiter: Arc<dyn RateLimiter>,
    policy: RateLimitPolicy,
}

impl Hub {
    /// A hub letting each peer send bursts of 10 signals, refilled at 10 a second.
    pub fn new(pubsub: Arc<dyn PubSub>, limiter: Arc<dyn RateLimiter>) -> Self {
        Self { pubsub, limiter, policy: RateLimitPolicy::token_bucket(10, 10) }
    }

    fn channel(document: &str) -> Result<Channel, ValidationError> {
        if document.is_empty() || document.contains(['*', '?', '[']) {
            return Err(ValidationError::new("document", "must be non-empty without glob characters"));
        }
        Channel::new(format!("signal.{document}"))
    }

    /// Joins `document`: the stream of every signal sent to it from now on.
    pub async fn join(&self, document: &str) -> Result<TypedSubscription<Envelope>, SignalError> {
        Ok(self.pubsub.subscribe::<Envelope>(&Self::channel(document)?).await?)
    }

    /// Sends `signal` from `peer` to every peer of `document` (the sender included; clients skip their own);
    /// returns how many receivers the broker counted (Redis counts connections: the subscriptions of one app
    /// instance share one, so they count once; the in-process broker counts each subscription).
    pub async fn send(&self, document: &str, peer: &str, signal: Signal) -> Result<u64, SignalError> {
        let channel = Self::channel(document)?;
        let key = RateLimitKey::new(format!("signal:{peer}"))?;
        let decision = self.limiter.check(&key, &self.policy, 1).await?;
        if !decision.allowed {
            return Err(SignalError::RateLimited { peer: peer.to_owned(), retry_after: decision.retry_after });
        }
        Ok(self.pubsub.publish(&channel, &Envelope { from: peer.to_owned(), signal }).await?)
    }
}
