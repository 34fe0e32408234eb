DROP TABLE cpc_job_keys;
DROP SEQUENCE cpc_jobs_dead_seq;
DROP TABLE cpc_jobs;
