-- The example of docs/guide/own-tables.md on SQLite: UUIDs and timestamps are text, as the library's portable SQL
-- types store them.
CREATE TABLE notes (
    id          INTEGER PRIMARY KEY,
    owner_id    TEXT NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    title       TEXT NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    done        BOOLEAN NOT NULL DEFAULT 0,
    due         TEXT,
    created_at  TEXT NOT NULL
);
CREATE INDEX notes_owner_id_idx ON notes (owner_id);
