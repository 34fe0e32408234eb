DROP TABLE cpc_locks;
