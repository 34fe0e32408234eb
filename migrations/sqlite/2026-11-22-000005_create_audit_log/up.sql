CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    table_name  TEXT NOT NULL,
    row_id      TEXT NOT NULL,
    action      TEXT NOT NULL CHECK (action IN ('create', 'update', 'delete')),
    actor       TEXT,
    at          TEXT NOT NULL
);
CREATE INDEX audit_log_row_idx ON audit_log (table_name, row_id, at);
