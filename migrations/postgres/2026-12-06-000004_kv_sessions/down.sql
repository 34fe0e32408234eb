DROP TABLE cpc_sessions;
