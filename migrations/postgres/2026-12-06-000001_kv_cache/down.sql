DROP TABLE cpc_cache;
