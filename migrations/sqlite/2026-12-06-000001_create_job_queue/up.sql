-- The job queue (`SqliteJobQueue`): one row per job not yet acked, as `cpc_jobs` on PostgreSQL. Times are
-- milliseconds since the Unix epoch on SQLite's clock (`unixepoch('subsec')`). `run_at` is when a ready job may be
-- reserved (its delay or retry backoff) or when a reserved job's visibility timeout ends; `seq` keeps enqueue order
-- among jobs due at the same instant; `dead_seq` orders a queue's dead letters and `dead_at` is when each died.
CREATE TABLE cpc_jobs (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    id            TEXT NOT NULL UNIQUE,
    queue         TEXT NOT NULL,
    payload       BLOB NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('ready', 'reserved', 'dead')),
    run_at        INTEGER NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts  INTEGER NOT NULL CHECK (max_attempts >= 1),
    dead_seq      INTEGER,
    dead_at       INTEGER,
    created_at    INTEGER NOT NULL DEFAULT (CAST(unixepoch('subsec') * 1000 AS INTEGER))
);
CREATE INDEX cpc_jobs_due_idx ON cpc_jobs (queue, run_at, seq) WHERE state <> 'dead';
-- Reservations alone, for finding those that timed out on their last attempt without scanning every due job.
CREATE INDEX cpc_jobs_reserved_idx ON cpc_jobs (queue, run_at) WHERE state = 'reserved';
CREATE INDEX cpc_jobs_dead_idx ON cpc_jobs (queue, dead_seq) WHERE state = 'dead';
CREATE INDEX cpc_jobs_dead_at_idx ON cpc_jobs (queue, dead_at) WHERE state = 'dead';

-- Idempotency keys, remembered for the queue's window even after their job was acked.
CREATE TABLE cpc_job_keys (
    queue       TEXT NOT NULL,
    key         TEXT NOT NULL,
    job_id      TEXT NOT NULL,
    expires_at  INTEGER NOT NULL,
    PRIMARY KEY (queue, key)
);
-- Expired idempotency keys, found without scanning the live ones.
CREATE INDEX cpc_job_keys_expires_idx ON cpc_job_keys (expires_at);
