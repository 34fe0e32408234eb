DROP INDEX cpc_job_keys_expires_idx;
DROP INDEX cpc_jobs_dead_at_idx;
ALTER TABLE cpc_jobs DROP COLUMN dead_at;
