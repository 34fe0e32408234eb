-- The consent app's own table: one row per grant, revoked in place (revoked_at), so the table is the history.
-- Subjects are opaque text ids (a user id, a customer number, a hashed e-mail): consent is often recorded for
-- people who have no account here.
CREATE TABLE consents (
    id          UUID PRIMARY KEY,
    subject     TEXT COLLATE "C" NOT NULL CHECK (length(subject) BETWEEN 1 AND 200),
    purpose     TEXT COLLATE "C" NOT NULL CHECK (length(purpose) BETWEEN 1 AND 100),
    source      TEXT NOT NULL CHECK (length(source) <= 200),
    granted_at  TIMESTAMPTZ NOT NULL,
    revoked_at  TIMESTAMPTZ CHECK (revoked_at IS NULL OR revoked_at >= granted_at),
    updated_at  TIMESTAMPTZ NOT NULL,
    version     BIGINT NOT NULL DEFAULT 1 CHECK (version >= 1)
);
-- At most one active grant per subject and purpose. Named `consents_purpose_key` and led by `purpose` so both
-- databases report a duplicate as the field `purpose` (PostgreSQL names the index, SQLite the first column).
CREATE UNIQUE INDEX consents_purpose_key ON consents (purpose, subject) WHERE revoked_at IS NULL;
-- A subject's current state (the partial index above serves it too) and history, newest first.
CREATE INDEX consents_subject_history_idx ON consents (subject, granted_at DESC, id DESC);
