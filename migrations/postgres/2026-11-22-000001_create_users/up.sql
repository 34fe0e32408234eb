-- Users. Text columns that queries sort on use the "C" collation, so the database orders text by bytes,
-- exactly as the in-memory fake does.
CREATE TABLE users (
    id          UUID PRIMARY KEY,
    username    TEXT COLLATE "C" NOT NULL CHECK (length(username) BETWEEN 3 AND 32),
    email       TEXT COLLATE "C" NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    version     BIGINT NOT NULL DEFAULT 1 CHECK (version >= 1)
);
CREATE UNIQUE INDEX users_username_key ON users (username);
-- E-mail addresses are unique regardless of case.
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
