-- Pub/sub on LISTEN/NOTIFY (`PgPubSub` in cpc-pg-kv). Every message is a NOTIFY on the one channel `cpc_pubsub`
-- whose payload names the port's channel; these two tables hold what NOTIFY cannot.

-- Who listens to what, so a publish can count its receivers: one row per listening connection and channel (or
-- pattern), written by that connection, deleted when its last subscription of the topic goes. Rows of a
-- connection that died are ignored (the publish joins pg_stat_activity) and deleted when a listener connects.
-- `digest` (sha256 of `topic`) is the key, as a channel name may be too long for a btree entry.
CREATE TABLE cpc_pubsub_subscriptions (
    listener_pid   INTEGER NOT NULL,
    listener_start TIMESTAMPTZ NOT NULL,
    is_pattern     BOOLEAN NOT NULL,
    digest         BYTEA NOT NULL,
    topic          BYTEA NOT NULL,
    PRIMARY KEY (listener_pid, is_pattern, digest)
);
CREATE INDEX cpc_pubsub_subscriptions_topic_idx ON cpc_pubsub_subscriptions (is_pattern, digest);

-- Messages too large for a NOTIFY payload (under 8000 bytes): the body is stored here and the NOTIFY carries its
-- id. Rows older than a minute are deleted by the next large publish.
CREATE TABLE cpc_pubsub_messages (
    id         BIGSERIAL PRIMARY KEY,
    channel    BYTEA NOT NULL,
    payload    BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX cpc_pubsub_messages_created_idx ON cpc_pubsub_messages (created_at);
