-- The seeds' generic records: a kind, a name and JSON attributes.
CREATE TABLE entities (
    id          UUID PRIMARY KEY,
    kind        TEXT COLLATE "C" NOT NULL CHECK (length(kind) BETWEEN 1 AND 64),
    name        TEXT COLLATE "C" NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    attributes  JSONB NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(attributes) = 'object'),
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    version     BIGINT NOT NULL DEFAULT 1 CHECK (version >= 1)
);
CREATE INDEX entities_kind_name_idx ON entities (kind, name, id);
