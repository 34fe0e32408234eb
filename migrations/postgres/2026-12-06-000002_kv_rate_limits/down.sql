DROP TABLE cpc_rate_limits;
