-- The rate limiter on PostgreSQL (`PgRateLimiter` in cpc-pg-kv): one row per (namespace, key, algorithm), locked
-- and rewritten by each check in one `INSERT ... ON CONFLICT DO UPDATE`, on the server clock. UNLOGGED: limits
-- need no WAL; after a server crash PostgreSQL empties the table, so every key starts again with its full
-- allowance (a standby does not have the table's rows either).
--
-- token_bucket:   `tat`, the bucket's theoretical arrival time (GCRA): microseconds since the Unix epoch at which
--                 the bucket is full again (exact numeric).
-- sliding_window: `log_at` / `log_cost`, the exact log of the checks allowed in the window: server time in
--                 microseconds since the Unix epoch, and cost, oldest first.
-- The decision columns hold the answer of the last check, which the statement returns (RETURNING sees the new
-- row only). `expires_at` is when the row describes a full allowance again (the bucket full, the log empty): a
-- sweeper deletes such rows in small batches.
CREATE UNLOGGED TABLE cpc_rate_limits (
    namespace   TEXT NOT NULL DEFAULT '',
    key         BYTEA NOT NULL,
    algorithm   TEXT NOT NULL CHECK (algorithm IN ('token_bucket', 'sliding_window')),
    tat         NUMERIC,
    log_at      BIGINT[],
    log_cost    BIGINT[],
    expires_at  TIMESTAMPTZ NOT NULL,
    allowed     BOOLEAN NOT NULL,
    remaining   NUMERIC NOT NULL,
    retry_us    BIGINT,
    reset_us    BIGINT NOT NULL,
    PRIMARY KEY (namespace, key, algorithm)
);
CREATE INDEX cpc_rate_limits_expires_idx ON cpc_rate_limits (expires_at);
-- Every check rewrites its row: vacuum after 1,000 dead versions or 5% of the table.
ALTER TABLE cpc_rate_limits SET (
    autovacuum_vacuum_scale_factor = 0.05,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_cost_delay = 0
);
