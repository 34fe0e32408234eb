-- Leases of the SQLite lock (`SqliteLock` in cpc-sqlite-kv): one row per lock key ever taken. `owner` is the random
-- id of the current acquisition (NULL once released), `expires_at` when its lease ends (or ended) in milliseconds
-- since the Unix epoch on SQLite's clock, `fence` the last fencing token issued for the key. A release or an expiry
-- leaves the row in place, so the next token is always above the last one.
CREATE TABLE cpc_locks (
    key         TEXT PRIMARY KEY,
    owner       TEXT,
    fence       INTEGER NOT NULL CHECK (fence > 0),
    expires_at  INTEGER NOT NULL
);
