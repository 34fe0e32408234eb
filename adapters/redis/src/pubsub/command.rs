//! What the pub/sub connection's driver task is asked to do, and the two kinds of subscription.

use cpc_ports::KvError;
use tokio::sync::oneshot;

/// What a subscription listens to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Kind {
    /// `SUBSCRIBE`: one channel, by its exact name.
    Channel,
    /// `PSUBSCRIBE`: every channel matching a glob.
    Pattern,
}

/// What the driver is asked to do.
pub(super) enum Command {
    /// Make the server subscription for `topic` active (it is already in the registry), then answer.
    Subscribe { kind: Kind, topic: String, done: oneshot::Sender<Result<(), KvError>> },
    /// The last subscription of `topic` was dropped: unsubscribe unless a new one came meanwhile.
    Unsubscribe { kind: Kind, topic: String },
    /// The bus was dropped: end every subscription's stream and stop.
    Shutdown,
}
