-- The consent app's own table: one row per grant, revoked in place (revoked_at), so the table is the history.
-- UUIDs and timestamps are text, as the library's portable SQL types store them on SQLite.
CREATE TABLE consents (
    id          TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36),
    subject     TEXT NOT NULL CHECK (length(subject) BETWEEN 1 AND 200),
    purpose     TEXT NOT NULL CHECK (length(purpose) BETWEEN 1 AND 100),
    source      TEXT NOT NULL CHECK (length(source) <= 200),
    granted_at  TEXT NOT NULL,
    revoked_at  TEXT,
    updated_at  TEXT NOT NULL,
    version     BIGINT NOT NULL DEFAULT 1 CHECK (version >= 1)
);
-- At most one active grant per subject and purpose. Led by `purpose` so SQLite's message
-- ("UNIQUE constraint failed: consents.purpose, consents.subject") names the field `purpose`, as PostgreSQL's
-- index name `consents_purpose_key` does.
CREATE UNIQUE INDEX consents_purpose_key ON consents (purpose, subject) WHERE revoked_at IS NULL;
-- A subject's history, newest first.
CREATE INDEX consents_subject_history_idx ON consents (subject, granted_at DESC, id DESC);
