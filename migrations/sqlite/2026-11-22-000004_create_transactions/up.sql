CREATE TABLE transactions (
    id            TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36),
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    amount_minor  BIGINT NOT NULL CHECK (amount_minor > 0),
    currency      TEXT NOT NULL CHECK (length(currency) = 3 AND currency = upper(currency)),
    kind          TEXT NOT NULL CHECK (kind IN ('credit', 'debit')),
    description   TEXT NOT NULL DEFAULT '' CHECK (length(description) <= 500),
    occurred_at   TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    version       BIGINT NOT NULL DEFAULT 1 CHECK (version >= 1)
);
CREATE INDEX transactions_user_occurred_idx ON transactions (user_id, occurred_at DESC, id);
