-- The cache on PostgreSQL (`PgCache` in cpc-pg-kv): one row per entry, under the cache's namespace. UNLOGGED: a
-- cache needs no WAL, and after a server crash PostgreSQL empties the table (every entry a miss), which is what a
-- cache may do. Keys are bytes (UTF-8 text that may hold NUL, which a TEXT column refuses); the primary key's
-- btree orders them bytewise, so a prefix is one index range (`key >= prefix AND key < successor(prefix)`).
-- Every entry expires: a read ignores a row whose `expires_at` has passed on the server clock, and a sweeper
-- deletes such rows in small batches (index on `expires_at`), which also orders eviction (soonest to expire first).
CREATE UNLOGGED TABLE cpc_cache (
    namespace   TEXT NOT NULL DEFAULT '',
    key         BYTEA NOT NULL,
    value       BYTEA NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (namespace, key)
);
CREATE INDEX cpc_cache_expires_idx ON cpc_cache (expires_at);
-- Every write leaves a dead row version behind: vacuum after 1,000 of them or 5% of the table.
ALTER TABLE cpc_cache SET (
    autovacuum_vacuum_scale_factor = 0.05,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_cost_delay = 0
);
