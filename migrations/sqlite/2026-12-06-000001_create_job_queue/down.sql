DROP INDEX cpc_job_keys_expires_idx;
DROP TABLE cpc_job_keys;
DROP INDEX cpc_jobs_dead_at_idx;
DROP INDEX cpc_jobs_dead_idx;
DROP INDEX cpc_jobs_reserved_idx;
DROP INDEX cpc_jobs_due_idx;
DROP TABLE cpc_jobs;
