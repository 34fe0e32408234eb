//! What the listener task is asked to do, and the two kinds of subscription. Generic over the subscription's queue,
//! so this file needs neither the task nor the queue (both use it).

use std::sync::Arc;

use cpc_ports::KvError;
use tokio::sync::oneshot;

/// What a subscription listens to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Kind {
    /// One channel, by its exact name.
    Channel,
    /// Every channel matching a glob.
    Pattern,
}

/// What the listener task is asked to do.
pub(super) enum Command<Q> {
    /// Listen to `topic` for subscription `id` (whose queue is `queue`), then answer.
    Subscribe { kind: Kind, topic: String, id: u64, queue: Arc<Q>, done: oneshot::Sender<Result<(), KvError>> },
    /// Subscription `id` was dropped.
    Unsubscribe { kind: Kind, topic: String, id: u64 },
    /// The bus was dropped: end every subscription's stream and stop.
    Shutdown,
}
