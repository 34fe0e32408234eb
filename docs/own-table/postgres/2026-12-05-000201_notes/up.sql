-- The example of docs/guide/own-tables.md: an app's notes, each owned by one of the library's users.
CREATE TABLE notes (
    id          BIGSERIAL PRIMARY KEY,
    owner_id    UUID NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    title       TEXT NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    done        BOOLEAN NOT NULL DEFAULT false,
    due         TIMESTAMPTZ,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX notes_owner_id_idx ON notes (owner_id);
