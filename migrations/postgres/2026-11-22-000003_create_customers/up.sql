-- CRM customers; the e-mail address is unique regardless of case.
CREATE TABLE customers (
    id          UUID PRIMARY KEY,
    email       TEXT COLLATE "C" NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
    name        TEXT COLLATE "C" NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    phone       TEXT CHECK (phone IS NULL OR length(phone) BETWEEN 1 AND 32),
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    version     BIGINT NOT NULL DEFAULT 1 CHECK (version >= 1)
);
CREATE UNIQUE INDEX customers_email_key ON customers (lower(email));
