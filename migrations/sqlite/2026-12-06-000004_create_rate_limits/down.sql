DROP INDEX cpc_rate_limits_idle_idx;
DROP TABLE cpc_rate_limits;
