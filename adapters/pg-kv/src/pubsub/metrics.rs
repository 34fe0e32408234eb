//! The counters [`PgPubSub`](super::PgPubSub) reports through the `metrics` crate (registered with the
//! recorder in place when the bus is created).

use std::sync::Arc;

use metrics::{Counter, counter};

/// Messages handed to subscriptions, all subscriptions together.
pub const DELIVERED: &str = "cpc_pg_pubsub_delivered_total";
/// Messages dropped from a full subscription queue.
pub const DROPPED: &str = "cpc_pg_pubsub_dropped_total";
/// `Lagged` items read by subscribers.
pub const LAGGED: &str = "cpc_pg_pubsub_lagged_total";
/// Notifications on the bus's PostgreSQL channel skipped, by `reason`: `foreign` (not a payload this library
/// writes: another program's NOTIFY) or `expired` (a stored large message already deleted, or unreadable).
pub const SKIPPED: &str = "cpc_pg_pubsub_skipped_total";
/// Listener connections lost (and then re-established by the listener task).
pub const RECONNECTS: &str = "cpc_pg_pubsub_reconnects_total";

/// The counters, shared by the bus, its listener task and the subscriptions' queues.
pub(super) struct Instruments {
    pub(super) delivered: Counter,
    pub(super) dropped: Counter,
    pub(super) lagged: Counter,
    pub(super) skipped_foreign: Counter,
    pub(super) skipped_expired: Counter,
    pub(super) reconnects: Counter,
}

impl Instruments {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Self {
            delivered: counter!(DELIVERED),
            dropped: counter!(DROPPED),
            lagged: counter!(LAGGED),
            skipped_foreign: counter!(SKIPPED, "reason" => "foreign"),
            skipped_expired: counter!(SKIPPED, "reason" => "expired"),
            reconnects: counter!(RECONNECTS),
        })
    }
}
