DROP TABLE cpc_pubsub_messages;
DROP TABLE cpc_pubsub_subscriptions;
