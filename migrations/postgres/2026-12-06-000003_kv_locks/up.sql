-- Leases of the PostgreSQL lock (`PgLock` in cpc-pg-kv): one row per lock key ever taken. `owner` is the random
-- id of the current acquisition (NULL once released), `expires_at` when its lease ends (or ended), `fence` the
-- last fencing token issued for the key. A release or an expiry leaves the row in place, so the next token is
-- always above the last one.
CREATE TABLE cpc_locks (
    key         TEXT PRIMARY KEY,
    owner       TEXT,
    fence       BIGINT NOT NULL CHECK (fence > 0),
    expires_at  TIMESTAMPTZ NOT NULL
);
-- Every acquisition, extension and release rewrites a row: vacuum after 1,000 dead versions, not 20% of the table.
ALTER TABLE cpc_locks SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000);
