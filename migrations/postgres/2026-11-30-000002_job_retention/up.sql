-- Job retention (`PgJobQueue`): dead letters are kept for a bounded time and number, and expired idempotency keys
-- are swept. `dead_at` is when a job died; jobs already dead are taken to have died now.
ALTER TABLE cpc_jobs ADD COLUMN dead_at TIMESTAMPTZ;
UPDATE cpc_jobs SET dead_at = now() WHERE state = 'dead';
CREATE INDEX cpc_jobs_dead_at_idx ON cpc_jobs (queue, dead_at) WHERE state = 'dead';
-- Expired idempotency keys, found without scanning the live ones.
CREATE INDEX cpc_job_keys_expires_idx ON cpc_job_keys (expires_at);
