DROP INDEX cpc_sessions_expires_at_idx;
DROP TABLE cpc_sessions;
