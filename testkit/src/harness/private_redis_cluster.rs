//! [`PrivateRedisCluster`]: a Redis Cluster of the test's own (3 masters, 3 replicas) on free ports of 127.0.0.1.

use std::net::TcpListener;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::ports::free_port;

/// How many masters the cluster has; each has one replica.
const MASTERS: usize = 3;
/// `cluster-node-timeout`: how long a master may be unreachable before its replica takes over. Short, so a
/// failover test stays short.
pub const NODE_TIMEOUT: Duration = Duration::from_millis(1000);
/// The most the harness waits for the cluster to form (or to report `cluster_state:ok` again).
const FORM_TIMEOUT: Duration = Duration::from_secs(30);

/// How to get the binaries, for failure messages.
const INSTALL_HINT: &str = "install them (apt-get install redis-server; ./scripts/test.sh does)";

/// Six private `redis-server`s with `cluster-enabled yes` on free ports of 127.0.0.1 (each with its cluster bus
/// port, the port + 10000, free too), joined by `redis-cli --cluster create --cluster-replicas 1` into three
/// masters with one replica each. [`PrivateRedisCluster::start`] returns once every node reports
/// `cluster_state:ok` and every replica has synced with its master. Their files (`nodes.conf`) live in a
/// temporary directory. Dropping the value kills every server and removes the directory.
///
/// The nodes run with `cluster-node-timeout` [`NODE_TIMEOUT`], so after [`PrivateRedisCluster::kill`] of a
/// master its replica is promoted within a few seconds ([`PrivateRedisCluster::wait_until_ok`]).
///
/// Needs `redis-server` and `redis-cli` (Redis 7 for sharded pub/sub) on the `PATH`; without them it panics
/// saying how to get them.
#[derive(Debug)]
pub struct PrivateRedisCluster {
    dir: tempfile::TempDir,
    nodes: Vec<Node>,
}

#[derive(Debug)]
struct Node {
    port: u16,
    child: Mutex<Option<Child>>,
}

impl Node {
    fn kill(&self) {
        if let Some(mut child) = self.child.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn is_running(&self) -> bool {
        self.child.lock().unwrap_or_else(|e| e.into_inner()).is_some()
    }
}

/// A free port `p` of 127.0.0.1 whose cluster bus port `p + 10000` is free as well.
fn free_port_pair() -> u16 {
    free_port(|port| port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok())
}

/// Runs `redis-cli` with `args`, panicking with the install hint if it cannot be started.
fn redis_cli(args: &[&str]) -> Output {
    Command::new("redis-cli")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run redis-cli ({e}); {INSTALL_HINT}"))
}

impl PrivateRedisCluster {
    /// Starts the six servers, creates the cluster and waits until every node reports `cluster_state:ok`.
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory for the cluster's files");
        let mut cluster = Self { dir, nodes: Vec::new() };
        for port in (0..2 * MASTERS).map(|_| free_port_pair()) {
            let child = cluster.spawn(port);
            cluster.nodes.push(Node { port, child: Mutex::new(Some(child)) });
        }
        for node in &cluster.nodes {
            wait_for_port(node.port).await;
        }
        let addresses: Vec<String> = cluster.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
        let mut args = vec!["--cluster", "create"];
        args.extend(addresses.iter().map(String::as_str));
        args.extend(["--cluster-replicas", "1", "--cluster-yes"]);
        let created = redis_cli(&args);
        assert!(
            created.status.success() && String::from_utf8_lossy(&created.stdout).contains("[OK]"),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&created.stdout),
            String::from_utf8_lossy(&created.stderr)
        );
        cluster.wait_until_ok().await;
        cluster.wait_for_replicas().await;
        cluster
    }

    /// Waits (at most 30 s) until every replica's link to its master is up (`master_link_status:up`), so a
    /// master killed from now on has a replica able to take over.
    async fn wait_for_replicas(&self) {
        let deadline = Instant::now() + FORM_TIMEOUT;
        for node in &self.nodes {
            loop {
                let out = redis_cli(&["-p", &node.port.to_string(), "info", "replication"]);
                let info = String::from_utf8_lossy(&out.stdout).into_owned();
                if info.contains("role:master") || info.contains("master_link_status:up") {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the replica on port {} did not sync within 30 s: {info}",
                    node.port
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    fn spawn(&self, port: u16) -> Child {
        let dir = self.dir.path().display().to_string();
        Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--dir", &dir])
            .args(["--cluster-enabled", "yes", "--cluster-config-file", &format!("nodes-{port}.conf")])
            .args(["--cluster-node-timeout", &NODE_TIMEOUT.as_millis().to_string()])
            // Replicas sync at once (the default waits 5 s for more replicas to share the transfer), and a replica
            // may take over however old its data: a failover test must not depend on replication timing.
            .args(["--repl-diskless-sync-delay", "0", "--cluster-replica-validity-factor", "0"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "no"])
            .args(["--loglevel", "warning"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start redis-server ({e}); {INSTALL_HINT}"))
    }

    /// The seed nodes, comma-separated as `REDIS_CLUSTER_URLS` takes them (`redis://127.0.0.1:<port>,...`).
    pub fn urls(&self) -> String {
        self.nodes.iter().map(|n| format!("redis://127.0.0.1:{}", n.port)).collect::<Vec<_>>().join(",")
    }

    /// The same nodes as one `redis+cluster://127.0.0.1:<port>,127.0.0.1:<port>,...` URL.
    pub fn cluster_url(&self) -> String {
        let hosts: Vec<String> = self.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
        format!("redis+cluster://{}", hosts.join(","))
    }

    /// The ports of the six nodes, in start order.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).collect()
    }

    /// The port of the master serving `key`'s hash slot now (asked with `CLUSTER KEYSLOT` and `CLUSTER NODES`
    /// on a running node).
    ///
    /// # Panics
    /// If no running node answers.
    pub fn master_of(&self, key: &str) -> u16 {
        self.find_master(key).unwrap_or_else(|e| panic!("{e}"))
    }

    fn find_master(&self, key: &str) -> Result<u16, String> {
        let port = self.running_port();
        let slot = String::from_utf8_lossy(&redis_cli(&["-p", &port.to_string(), "cluster", "keyslot", key]).stdout)
            .trim()
            .parse::<u16>()
            .map_err(|_| format!("CLUSTER KEYSLOT {key:?} did not answer a number"))?;
        // `CLUSTER NODES`: one line per node, `<id> <ip:port@bus> <flags> <master> <ping> <pong> <epoch> <link>
        // <slot ranges>...`; the slots are listed on the master that serves them.
        let nodes = redis_cli(&["-p", &port.to_string(), "cluster", "nodes"]);
        let text = String::from_utf8_lossy(&nodes.stdout).into_owned();
        for line in text.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 9 || !fields[2].contains("master") || fields[2].contains("fail") {
                continue;
            }
            let serves = fields[8..].iter().any(|range| {
                let mut ends = range.splitn(2, '-').map(|n| n.parse::<u16>());
                match (ends.next(), ends.next()) {
                    (Some(Ok(start)), Some(Ok(end))) => (start..=end).contains(&slot),
                    (Some(Ok(only)), None) => only == slot,
                    _ => false,
                }
            });
            let address = fields[1].split('@').next().unwrap_or_default();
            if serves && let Some(Ok(port)) = address.rsplit(':').next().map(str::parse::<u16>) {
                return Ok(port);
            }
        }
        Err(format!("no master serves slot {slot} according to CLUSTER NODES:\n{text}"))
    }

    fn running_port(&self) -> u16 {
        self.nodes.iter().find(|n| n.is_running()).map(|n| n.port).expect("a running cluster node")
    }

    /// Kills the node on `port` at once (`SIGKILL`), as a crash would. Its replica (if it was a master) is
    /// promoted after [`NODE_TIMEOUT`] and a vote; wait for that with [`PrivateRedisCluster::wait_until_ok`].
    ///
    /// # Panics
    /// If no node of this cluster has that port.
    pub fn kill(&self, port: u16) {
        self.nodes.iter().find(|n| n.port == port).expect("a node of this cluster").kill();
    }

    /// Waits (at most 30 s) until a master other than `old` serves `key`'s slot (a replica was promoted after
    /// `old` was killed) and the cluster is ok again; returns the new master's port.
    ///
    /// # Panics
    /// If that does not happen within 30 s.
    pub async fn wait_for_new_master(&self, key: &str, old: u16) -> u16 {
        let deadline = Instant::now() + FORM_TIMEOUT;
        loop {
            let master = self.find_master(key).ok();
            if let Some(new) = master.filter(|m| *m != old) {
                self.wait_until_ok().await;
                return new;
            }
            assert!(Instant::now() < deadline, "no replica took over from the master on port {old} within 30 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits (at most 30 s) until every running node reports `cluster_state:ok` and every slot is served
    /// (`cluster_slots_ok:16384`): after [`PrivateRedisCluster::start`], or after a failover.
    ///
    /// # Panics
    /// If that does not happen within 30 s.
    pub async fn wait_until_ok(&self) {
        let deadline = Instant::now() + FORM_TIMEOUT;
        loop {
            let mut last = String::new();
            let all_ok = self.nodes.iter().filter(|n| n.is_running()).all(|n| {
                let out = redis_cli(&["-p", &n.port.to_string(), "cluster", "info"]);
                last = String::from_utf8_lossy(&out.stdout).into_owned();
                last.contains("cluster_state:ok") && last.contains("cluster_slots_ok:16384")
            });
            if all_ok {
                return;
            }
            assert!(Instant::now() < deadline, "the Redis Cluster is not ok after {FORM_TIMEOUT:?}: {last}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Waits (at most 10 s) until something listens on `port` of 127.0.0.1.
async fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "redis-server on port {port} did not start within 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl Drop for PrivateRedisCluster {
    fn drop(&mut self) {
        for node in &self.nodes {
            node.kill();
        }
    }
}
