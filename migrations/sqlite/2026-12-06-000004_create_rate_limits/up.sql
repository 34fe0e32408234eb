-- The rate limiter on SQLite (`SqliteRateLimiter` in cpc-sqlite-kv): one row per (key, algorithm), read and
-- rewritten by each check inside one `BEGIN IMMEDIATE` transaction, on SQLite's clock (milliseconds since the Unix
-- epoch).
--
-- token_bucket:   `state` is the text `<level> <unit> <updated_at>`: the bucket holds `level` units, one token being
--                 `unit` units (the refill interval in nanoseconds), as of `updated_at` (ms).
-- sliding_window: `state` is the exact log of the checks allowed in the window, oldest first: 16 bytes each, the
--                 time spent (ms, little-endian i64) then the cost (little-endian u64).
-- `idle_at` is when the row describes a full allowance again (the bucket full, the log empty): checks delete such
-- rows in small batches.
CREATE TABLE cpc_rate_limits (
    key        TEXT NOT NULL,
    algorithm  TEXT NOT NULL CHECK (algorithm IN ('token_bucket', 'sliding_window')),
    state      BLOB NOT NULL,
    idle_at    INTEGER NOT NULL,
    PRIMARY KEY (key, algorithm)
);
CREATE INDEX cpc_rate_limits_idle_idx ON cpc_rate_limits (idle_at);
