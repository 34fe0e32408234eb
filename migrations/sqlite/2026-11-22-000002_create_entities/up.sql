CREATE TABLE entities (
    id          TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36),
    kind        TEXT NOT NULL CHECK (length(kind) BETWEEN 1 AND 64),
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    attributes  TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(attributes) AND json_type(attributes) = 'object'),
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    version     BIGINT NOT NULL DEFAULT 1 CHECK (version >= 1)
);
CREATE INDEX entities_kind_name_idx ON entities (kind, name, id);
