-- The job queue (`PgJobQueue`): one row per job not yet acked. Workers take jobs with FOR UPDATE SKIP LOCKED.
-- `run_at` is when a ready job may be reserved (its delay or retry backoff) or when a reserved job's visibility
-- timeout ends; `seq` keeps enqueue order among jobs due at the same instant.
CREATE TABLE cpc_jobs (
    id            TEXT PRIMARY KEY,
    queue         TEXT NOT NULL,
    payload       BYTEA NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('ready', 'reserved', 'dead')),
    run_at        TIMESTAMPTZ NOT NULL,
    seq           BIGSERIAL NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts  INTEGER NOT NULL CHECK (max_attempts >= 1),
    dead_seq      BIGINT,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- Every reservation and ack leaves a dead row version behind, at the head of the due index where every reserve
-- starts. Vacuum after 1,000 of them rather than after 20% of the table (the default), without cost delay.
ALTER TABLE cpc_jobs SET (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_cost_delay = 0,
    autovacuum_analyze_scale_factor = 0.05
);
CREATE INDEX cpc_jobs_due_idx ON cpc_jobs (queue, run_at, seq) WHERE state <> 'dead';
-- Reservations alone, for finding those that timed out on their last attempt without scanning every due job.
CREATE INDEX cpc_jobs_reserved_idx ON cpc_jobs (queue, run_at) WHERE state = 'reserved';
CREATE INDEX cpc_jobs_dead_idx ON cpc_jobs (queue, dead_seq) WHERE state = 'dead';
CREATE SEQUENCE cpc_jobs_dead_seq;

-- Idempotency keys, remembered for the queue's window even after their job was acked.
CREATE TABLE cpc_job_keys (
    queue       TEXT NOT NULL,
    key         TEXT NOT NULL,
    job_id      TEXT NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (queue, key)
);
