-- Finance ledger entries. Amounts are integer minor units, always positive; kind gives the direction.
CREATE TABLE transactions (
    id            UUID PRIMARY KEY,
    user_id       UUID NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    amount_minor  BIGINT NOT NULL CHECK (amount_minor > 0),
    currency      TEXT COLLATE "C" NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    kind          TEXT COLLATE "C" NOT NULL CHECK (kind IN ('credit', 'debit')),
    description   TEXT COLLATE "C" NOT NULL DEFAULT '' CHECK (length(description) <= 500),
    occurred_at   TIMESTAMPTZ NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    version       BIGINT NOT NULL DEFAULT 1 CHECK (version >= 1)
);
-- A user's history in a time range, newest first.
CREATE INDEX transactions_user_occurred_idx ON transactions (user_id, occurred_at DESC, id);
