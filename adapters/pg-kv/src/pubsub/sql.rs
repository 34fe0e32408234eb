//! The statements of [`PgPubSub`](super::PgPubSub), each one round trip. Tables: `cpc_pubsub_subscriptions` (who
//! listens to what) and `cpc_pubsub_messages` (messages too large for a NOTIFY), created by the migration
//! `2026-12-06-000005_kv_pubsub`.

/// Whether the subscription row `s` belongs to a live connection: its backend still runs and is the same one
/// (a reused process id has another start time; the start time is hidden from roles without the right to see
/// another role's sessions, and then the process id alone decides).
macro_rules! live {
    () => {
        "EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = s.listener_pid \
           AND (a.backend_start IS NULL OR a.backend_start = s.listener_start))"
    };
}

/// The receivers of channel `$1` (bytea): the live connections listening to it, and the patterns live
/// connections listen to (matched by the caller).
macro_rules! receivers {
    () => {
        concat!(
            "(SELECT count(*) FROM cpc_pubsub_subscriptions s WHERE NOT s.is_pattern AND s.digest = sha256($1) AND ",
            live!(),
            "), (SELECT coalesce(array_agg(s.topic), '{}') FROM cpc_pubsub_subscriptions s WHERE s.is_pattern AND ",
            live!(),
            ")"
        )
    };
}

/// Sends the NOTIFY payload `$2` (text) for channel `$1` (bytea); returns the receivers ([`receivers!`]).
pub(super) const PUBLISH_INLINE: &str =
    concat!("SELECT ", receivers!(), " FROM pg_notify('cpc_pubsub', $2::text) AS sent");

/// Stores channel `$1` and payload `$2` (both bytea) as a message row, deletes rows older than a minute, and
/// sends a NOTIFY naming the new row; returns the receivers ([`receivers!`]). The row and the NOTIFY commit
/// together, so a listener that receives the NOTIFY finds the row.
pub(super) const PUBLISH_STORED: &str = concat!(
    "WITH stored AS (INSERT INTO cpc_pubsub_messages (channel, payload) VALUES ($1, $2) RETURNING id), \
     swept AS (DELETE FROM cpc_pubsub_messages WHERE created_at < now() - interval '1 minute') \
     SELECT ",
    receivers!(),
    " FROM stored, pg_notify('cpc_pubsub', 'cpc1 r ' || stored.id) AS sent"
);

/// Reads stored message `$1`: its channel and payload.
pub(super) const FETCH: &str = "SELECT channel, payload FROM cpc_pubsub_messages WHERE id = $1";

/// Records that this connection listens to each topic of `$2` (bytea[]), a pattern where `$1` (bool[]) says so.
pub(super) const ADD: &str = "INSERT INTO cpc_pubsub_subscriptions \
       (listener_pid, listener_start, is_pattern, digest, topic) \
     SELECT a.pid, a.backend_start, u.is_pattern, sha256(u.topic), u.topic \
     FROM unnest($1::bool[], $2::bytea[]) AS u(is_pattern, topic) \
     JOIN pg_stat_activity a ON a.pid = pg_backend_pid() \
     ON CONFLICT DO NOTHING";

/// This connection no longer listens to topic `$2` (bytea), a pattern if `$1`.
pub(super) const REMOVE: &str = "DELETE FROM cpc_pubsub_subscriptions \
     WHERE listener_pid = pg_backend_pid() AND is_pattern = $1 AND digest = sha256($2)";

/// This connection listens to nothing any more.
pub(super) const REMOVE_ALL: &str = "DELETE FROM cpc_pubsub_subscriptions WHERE listener_pid = pg_backend_pid()";

/// Deletes the rows of connections that are gone (this one's from before, should its process id be reused).
pub(super) const SWEEP: &str =
    concat!("DELETE FROM cpc_pubsub_subscriptions s WHERE NOT ", live!(), " OR s.listener_pid = pg_backend_pid()");

/// Starts receiving the bus's notifications.
pub(super) const LISTEN: &str = "LISTEN cpc_pubsub";

/// Stops receiving them.
pub(super) const UNLISTEN: &str = "UNLISTEN cpc_pubsub";
