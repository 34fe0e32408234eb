-- Sessions of the PostgreSQL session store (`PgSessionStore` in cpc-pg-kv): one row per session, under its id
-- (43 characters of URL-safe base64). `created_at` anchors the absolute expiry; a row whose `expires_at` has
-- passed is never returned and is deleted by a later sweep.
CREATE TABLE cpc_sessions (
    id          TEXT PRIMARY KEY,
    data        BYTEA NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL
);
-- The sweep of expired sessions takes the oldest first.
CREATE INDEX cpc_sessions_expires_at_idx ON cpc_sessions (expires_at);
