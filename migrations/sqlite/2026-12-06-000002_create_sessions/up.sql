-- Sessions of the SQLite session store (`SqliteSessionStore` in cpc-sqlite-kv): one row per session, under its id
-- (43 characters of URL-safe base64). Times are milliseconds since the Unix epoch on SQLite's clock
-- (`unixepoch('subsec')`); a row whose `expires_at` has passed is never returned and is deleted by a later sweep.
CREATE TABLE cpc_sessions (
    id          TEXT PRIMARY KEY,
    data        BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
-- The sweep of expired sessions takes the oldest first.
CREATE INDEX cpc_sessions_expires_at_idx ON cpc_sessions (expires_at);
