CREATE TABLE customers (
    id          TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36),
    email       TEXT NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    phone       TEXT CHECK (phone IS NULL OR length(phone) BETWEEN 1 AND 32),
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    version     BIGINT NOT NULL DEFAULT 1 CHECK (version >= 1)
);
CREATE UNIQUE INDEX customers_email_key ON customers (lower(email));
