//! The Redis ACL grants the adapters need (docs/guide/ports.md, "What the Redis server must allow and keep"), shared
//! by the ACL tests on one server and on a cluster.

/// The commands the adapters send on one server, as docs/guide/ports.md lists them (the
/// connection's `AUTH` and `HELLO` are always allowed). Scripts run with `EVALSHA` and are loaded with
/// `SCRIPT LOAD` when the server does not have them; the commands the scripts call are checked too.
pub const COMMANDS: &[&str] = &[
    // connections, health check
    "ping",
    "select",
    "info",
    // cache
    "get",
    "set",
    "mget",
    "exists",
    "pttl",
    "unlink",
    "scan",
    "multi",
    "exec",
    "getdel",
    "pexpire",
    "incrby",
    // near cache: its invalidation connection
    "client|setname",
    "client|id",
    "client|tracking",
    // scripts (lock, rate limiter, sessions, job queue)
    "evalsha",
    "script|load",
    "time",
    // lock
    "del",
    // rate limiter
    "zadd",
    "zcard",
    "zrange",
    "zremrangebyscore",
    // sessions
    "hget",
    "hset",
    "renamenx",
    // job queue
    "xadd",
    "xgroup|create",
    "xreadgroup",
    "xautoclaim",
    "xack",
    "xdel",
    "xlen",
    "hmget",
    "zscore",
    "zrem",
    "zrangebyscore",
    "zcount",
    "rpush",
    "lrange",
    "lrem",
    "llen",
    "lindex",
    "lpop",
    "hdel",
    "hexists",
    "persist",
    // pub/sub
    "publish",
    "subscribe",
    "unsubscribe",
    "psubscribe",
    "punsubscribe",
];

/// What the adapters send on a Redis Cluster on top of [`COMMANDS`]: the slot map (`CLUSTER SLOTS`), the masters
/// for `delete_prefix` (`CLUSTER NODES`), the health check's `CLUSTER INFO`, and sharded pub/sub. Exactly these: the
/// cluster test fails without any one of the first three (the pub/sub ones are the sharded forms of the granted
/// ones). A cluster being resharded also answers `ASK` redirections, which need `asking` (not exercised here).
pub const CLUSTER_COMMANDS: &[&str] =
    &["cluster|slots", "cluster|nodes", "cluster|info", "spublish", "ssubscribe", "sunsubscribe"];

/// `ACL SETUSER <name> reset on ><password> <rules...> -@all +<command>...` on the server at `port`, over the
/// default user.
pub async fn set_user<'a>(
    port: u16,
    name: &str,
    password: &str,
    rules: &[String],
    commands: impl IntoIterator<Item = &'a &'a str>,
) {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/0")).unwrap();
    let mut admin = client.get_multiplexed_async_connection().await.unwrap();
    let mut cmd = redis::cmd("ACL");
    cmd.arg("SETUSER").arg(name).arg("reset").arg("on").arg(format!(">{password}")).arg(rules).arg("-@all");
    for command in commands {
        cmd.arg(format!("+{command}"));
    }
    let () = cmd.query_async(&mut admin).await.unwrap();
}

/// The error is the server's refusal of a key, channel or command (`NOPERM`), reported as not retryable.
pub fn assert_refused<T: std::fmt::Debug>(result: Result<T, cpc_ports::KvError>, what: &str) {
    match result {
        Err(e @ cpc_ports::KvError::Authentication { .. }) => {
            assert!(e.to_string().contains("NOPERM") || e.to_string().contains("no permissions"), "{what}: {e}");
            assert!(!e.is_retryable(), "{what}: {e:?}");
        }
        other => panic!("{what}: expected the server's refusal as KvError::Authentication, got {other:?}"),
    }
}
