-- The learning app's own tables, beside the library's: courses and their lessons, a learner's course
-- completions, and the lesson rows (progress) each completion recorded. Learners are the library's users.
CREATE TABLE courses (
    id          UUID PRIMARY KEY,
    slug        TEXT COLLATE "C" NOT NULL UNIQUE CHECK (length(slug) BETWEEN 1 AND 100),
    title       TEXT NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    version     BIGINT NOT NULL DEFAULT 1 CHECK (version >= 1)
);

CREATE TABLE lessons (
    id          BIGSERIAL PRIMARY KEY,
    course_id   UUID NOT NULL REFERENCES courses (id) ON DELETE RESTRICT,
    position    INTEGER NOT NULL CHECK (position >= 1),
    title       TEXT NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    UNIQUE (course_id, position)
);

CREATE TABLE completions (
    id            UUID PRIMARY KEY,
    learner_id    UUID NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    course_id     UUID NOT NULL REFERENCES courses (id) ON DELETE RESTRICT,
    number        INTEGER NOT NULL CHECK (number >= 1),
    score         INTEGER NOT NULL CHECK (score BETWEEN 0 AND 100),
    completed_at  TIMESTAMPTZ NOT NULL,
    UNIQUE (learner_id, course_id)
);

CREATE TABLE progress (
    id             BIGSERIAL PRIMARY KEY,
    learner_id     UUID NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    lesson_id      BIGINT NOT NULL REFERENCES lessons (id) ON DELETE RESTRICT,
    completion_id  UUID NOT NULL REFERENCES completions (id) ON DELETE RESTRICT,
    score          INTEGER NOT NULL CHECK (score BETWEEN 0 AND 100),
    completed_at   TIMESTAMPTZ NOT NULL,
    UNIQUE (completion_id, lesson_id)
);
-- A learner's history, newest first.
CREATE INDEX progress_learner_history_idx ON progress (learner_id, completed_at DESC, id DESC);
