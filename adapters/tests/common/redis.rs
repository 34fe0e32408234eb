//! Helpers shared by the Redis adapter tests: a manager on the shared server under a namespace of its own, and
//! a SCAN of that namespace.

use cpc_adapters::redis::{RedisConfig, RedisManager};

pub fn shared_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

pub async fn shared_manager(namespace: &str) -> RedisManager {
    let mut config = RedisConfig::parse_url(&shared_url(), "REDIS_URL").unwrap();
    config.namespace = format!("cpc-test:{namespace}:{}:", uuid::Uuid::new_v4());
    RedisManager::new(&config).await.unwrap_or_else(|e| {
        panic!("Redis not reachable at {config}: {e}. Start it (./scripts/test.sh does) or set REDIS_URL")
    })
}

/// Every key stored under the manager's namespace, found with SCAN.
pub async fn namespace_keys(m: &RedisManager) -> Vec<String> {
    let pattern = format!("{}*", m.key(""));
    let mut conn = m.connection();
    let mut cursor = 0u64;
    let mut all = Vec::new();
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .unwrap();
        all.extend(keys);
        if next == 0 {
            return all;
        }
        cursor = next;
    }
}
