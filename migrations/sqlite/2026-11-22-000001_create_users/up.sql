-- Users. UUIDs are stored as their hyphenated text; timestamps as RFC 3339 text in UTC with microseconds,
-- which sorts chronologically. Text compares by bytes (SQLite's BINARY collation), as in PostgreSQL's "C".
CREATE TABLE users (
    id          TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36),
    username    TEXT NOT NULL CHECK (length(username) BETWEEN 3 AND 32),
    email       TEXT NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    version     BIGINT NOT NULL DEFAULT 1 CHECK (version >= 1)
);
CREATE UNIQUE INDEX users_username_key ON users (username);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
