//! Helpers shared by the Redis adapter tests: a manager on the shared server under a namespace of its own, a
//! SCAN of that namespace, and a stall of a private server.

use std::time::Duration;

use cpc_adapters::redis::{RedisConfig, RedisManager};
use cpc_test_servers::PrivateRedis;

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

/// A manager on a private server, under `namespace`, with `response_timeout` and a 500 ms connect timeout.
pub async fn private_manager(server: &PrivateRedis, namespace: &str, response_timeout: Duration) -> RedisManager {
    let config = RedisConfig::builder()
        .port(server.port())
        .namespace(namespace)
        .response_timeout(response_timeout)
        .connect_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    RedisManager::new(&config).await.unwrap()
}

/// Makes `server` answer nobody for `busy`: another client runs a script that spins on `TIME` that long (keep it
/// below the server's 5 s busy-script threshold, so nobody gets `BUSY` either). Returns once the script runs;
/// the task ends when it does.
pub async fn stall(server: &PrivateRedis, busy: Duration) -> tokio::task::JoinHandle<()> {
    let script = format!(
        "local s = redis.call('TIME') local t0 = s[1] * 1000000 + s[2] \
         while true do local t = redis.call('TIME') \
         if t[1] * 1000000 + t[2] - t0 > {} then break end end return 1",
        busy.as_micros()
    );
    // No response timeout on this connection: the task ends when the script does.
    let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
    let client = redis::Client::open(server.url()).unwrap();
    let mut other = client.get_multiplexed_async_connection_with_config(&config).await.unwrap();
    let stuck = tokio::spawn(async move {
        let done: i64 = redis::cmd("EVAL").arg(script).arg(0).query_async(&mut other).await.unwrap();
        assert_eq!(done, 1, "the stalling script ran to its end");
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    stuck
}
