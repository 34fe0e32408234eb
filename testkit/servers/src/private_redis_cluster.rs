//! [`PrivateRedisCluster`]: a Redis Cluster of the test's own (3 masters, 3 replicas) on free ports of 127.0.0.1.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::TestCertificates;
use super::cluster_nodes::{self, NodeLine};
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
/// [`PrivateRedisCluster::manual_failover`] swaps a master and its replica the way an operator does
/// (`CLUSTER FAILOVER` on the replica): no node goes down, the old master just becomes a replica.
///
/// [`PrivateRedisCluster::with_tls`] starts TLS-only nodes instead (clients, the cluster bus and replication
/// all speak TLS), with a certificate for `127.0.0.1`/`localhost` signed by a throw-away CA.
///
/// Needs `redis-server` and `redis-cli` (Redis 7 for sharded pub/sub, built with TLS for `with_tls`) on the
/// `PATH`; without them it panics saying how to get them.
#[derive(Debug)]
pub struct PrivateRedisCluster {
    dir: tempfile::TempDir,
    nodes: Vec<Node>,
    tls: Option<TestCertificates>,
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

/// How many times the nodes are started on fresh ports when another process took one first.
const PORT_ATTEMPTS: u32 = 3;

/// A free port `p` of 127.0.0.1 whose cluster bus port `p + 10000` is free as well.
fn free_port_pair() -> u16 {
    free_port(|port| port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok())
}

impl PrivateRedisCluster {
    /// Starts the six servers, creates the cluster and waits until every node reports `cluster_state:ok`.
    pub async fn start() -> Self {
        Self::start_inner(None).await
    }

    /// Like [`PrivateRedisCluster::start`], but every node listens for TLS only (`--port 0 --tls-port <port>`,
    /// `tls-cluster` and `tls-replication` on, client certificates not required). The certificate is valid for
    /// `localhost` and `127.0.0.1` and signed by a throw-away CA ([`PrivateRedisCluster::ca_cert_path`]); a
    /// second, unrelated CA is at [`PrivateRedisCluster::wrong_ca_cert_path`]. [`urls`](Self::urls) and
    /// [`cluster_url`](Self::cluster_url) then use the `rediss` schemes.
    pub async fn with_tls() -> Self {
        Self::start_inner(Some(TestCertificates::generate())).await
    }

    async fn start_inner(tls: Option<TestCertificates>) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory for the cluster's files");
        if let Some(certificates) = &tls {
            for (name, pem) in [
                ("ca.crt", certificates.ca_cert_pem()),
                ("server.crt", certificates.server_cert_pem()),
                ("server.key", certificates.server_key_pem()),
                ("client.crt", certificates.client_cert_pem()),
                ("client.key", certificates.client_key_pem()),
                ("wrong-ca.crt", certificates.wrong_ca_cert_pem()),
            ] {
                std::fs::write(dir.path().join(name), pem).expect("writing a TLS file");
            }
        }
        let mut cluster = Self { dir, nodes: Vec::new(), tls };
        // A port found free can be taken by another test's server before ours binds it (ours then exits, and the
        // other answers on the port): start the nodes again on other ports until every port is one of ours.
        for attempt in 1..=PORT_ATTEMPTS {
            for port in (0..2 * MASTERS).map(|_| free_port_pair()) {
                let child = cluster.spawn(port);
                cluster.nodes.push(Node { port, child: Mutex::new(Some(child)) });
            }
            for node in &cluster.nodes {
                wait_for_port(node.port).await;
            }
            match cluster.foreign_node() {
                None => break,
                Some(port) => {
                    assert!(attempt < PORT_ATTEMPTS, "port {port} was taken by another server {PORT_ATTEMPTS} times");
                    for node in cluster.nodes.drain(..) {
                        node.kill();
                    }
                }
            }
        }
        let addresses: Vec<String> = cluster.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
        let mut args = vec!["--cluster", "create"];
        args.extend(addresses.iter().map(String::as_str));
        args.extend(["--cluster-replicas", "1", "--cluster-yes"]);
        let created = cluster.cli(&args);
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
                let out = self.cli(&["-p", &node.port.to_string(), "info", "replication"]);
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

    /// Runs `redis-cli` with `args` (and, for a TLS cluster, `--tls --cacert <ca>` in front), for at most 30 s
    /// (`--cluster create` waits forever for nodes that cannot reach each other).
    ///
    /// # Panics
    /// If it cannot be started (with the install hint), or does not finish within 30 s.
    /// The port of a node that is not the server this harness started on it (another process answers there, or
    /// ours is not a cluster node), if any: `INFO server` must report our child's process id and cluster mode.
    fn foreign_node(&self) -> Option<u16> {
        self.nodes.iter().find_map(|node| {
            let pid = node.child.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(Child::id)?;
            let port = node.port.to_string();
            let info = self.cli(&["-h", "127.0.0.1", "-p", &port, "INFO", "server"]);
            let text = String::from_utf8_lossy(&info.stdout);
            let ours = text.lines().any(|l| l.trim() == format!("process_id:{pid}"));
            (!ours).then_some(node.port)
        })
    }

    fn cli(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new("redis-cli");
        if self.tls.is_some() {
            cmd.args(["--tls", "--cacert", &self.file("ca.crt")]);
        }
        let mut child = cmd
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run redis-cli ({e}); {INSTALL_HINT}"));
        let deadline = Instant::now() + FORM_TIMEOUT;
        while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        let finished = matches!(child.try_wait(), Ok(Some(_)));
        if !finished {
            let _ = child.kill();
        }
        let output = child.wait_with_output().expect("the output of redis-cli");
        assert!(
            finished,
            "redis-cli {args:?} did not finish within {FORM_TIMEOUT:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// The path of `name` in the cluster's directory.
    fn file(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn spawn(&self, port: u16) -> Child {
        let dir = self.dir.path().display().to_string();
        let mut cmd = Command::new("redis-server");
        match &self.tls {
            None => cmd.args(["--port", &port.to_string()]),
            // The cluster bus port is the TLS port + 10000, as it is the client port + 10000 without TLS. Clients
            // need no certificate, but the cluster bus always checks the connecting node's: the nodes present a
            // client certificate of the same CA (the server certificate is for `serverAuth` only, and a bus
            // handshake with it fails with "certificate verify failed", so the cluster never forms).
            Some(_) => cmd
                .args(["--port", "0", "--tls-port", &port.to_string(), "--tls-auth-clients", "no"])
                .args(["--tls-cluster", "yes", "--tls-replication", "yes"])
                .args(["--tls-cert-file", &self.file("server.crt"), "--tls-key-file", &self.file("server.key")])
                .args(["--tls-client-cert-file", &self.file("client.crt")])
                .args(["--tls-client-key-file", &self.file("client.key")])
                .args(["--tls-ca-cert-file", &self.file("ca.crt")]),
        };
        cmd.args(["--bind", "127.0.0.1", "--dir", &dir])
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

    /// The seed nodes, comma-separated as `REDIS_CLUSTER_URLS` takes them (`redis://127.0.0.1:<port>,...`;
    /// `rediss://` for a TLS cluster).
    pub fn urls(&self) -> String {
        let scheme = self.scheme();
        self.nodes.iter().map(|n| format!("{scheme}://127.0.0.1:{}", n.port)).collect::<Vec<_>>().join(",")
    }

    /// The same nodes as one `redis+cluster://127.0.0.1:<port>,127.0.0.1:<port>,...` URL
    /// (`rediss+cluster://` for a TLS cluster).
    pub fn cluster_url(&self) -> String {
        let hosts: Vec<String> = self.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
        format!("{}+cluster://{}", self.scheme(), hosts.join(","))
    }

    fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "rediss" } else { "redis" }
    }

    /// Whether the nodes speak TLS only ([`PrivateRedisCluster::with_tls`]).
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The CA that signed a TLS cluster's certificate: the one clients must trust.
    ///
    /// # Panics
    /// If the cluster was not started [`with_tls`](PrivateRedisCluster::with_tls).
    pub fn ca_cert_path(&self) -> PathBuf {
        assert!(self.is_tls(), "the cluster was not started with_tls");
        self.dir.path().join("ca.crt")
    }

    /// A CA that did not sign a TLS cluster's certificate.
    ///
    /// # Panics
    /// If the cluster was not started [`with_tls`](PrivateRedisCluster::with_tls).
    pub fn wrong_ca_cert_path(&self) -> PathBuf {
        assert!(self.is_tls(), "the cluster was not started with_tls");
        self.dir.path().join("wrong-ca.crt")
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
        let port = self.running_port().to_string();
        let slot = String::from_utf8_lossy(&self.cli(&["-p", &port, "cluster", "keyslot", key]).stdout)
            .trim()
            .parse::<u16>()
            .map_err(|_| format!("CLUSTER KEYSLOT {key:?} did not answer a number"))?;
        let (nodes, text) = self.nodes_seen_by(self.running_port());
        nodes
            .iter()
            .find(|n| n.serves(slot))
            .map(|n| n.port)
            .ok_or_else(|| format!("no master serves slot {slot} according to CLUSTER NODES:\n{text}"))
    }

    /// The `CLUSTER NODES` table as the node on `port` sees it, parsed and as text (for messages).
    fn nodes_seen_by(&self, port: u16) -> (Vec<NodeLine>, String) {
        let text =
            String::from_utf8_lossy(&self.cli(&["-p", &port.to_string(), "cluster", "nodes"]).stdout).into_owned();
        (cluster_nodes::parse(&text), text)
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

    /// A manual failover of the master on `master` (`CLUSTER FAILOVER`, sent to its replica): the replica
    /// catches up with the master, takes over its slots and the old master becomes its replica, with no node
    /// going down. Returns once every running node's `CLUSTER NODES` shows the swapped roles, every node
    /// reports `cluster_state:ok` and the new replica has synced (so a later failover works too); returns the
    /// port of the new master.
    ///
    /// Clients connected to the old master keep their connections: a write sent there now answers `READONLY`
    /// (or `MOVED`), which is what a client library must cope with.
    ///
    /// # Panics
    /// If `master` is not a master with a replica, if the replica refuses, or if the roles have not swapped
    /// within 30 s.
    pub async fn manual_failover(&self, master: u16) -> u16 {
        let (nodes, text) = self.nodes_seen_by(master);
        let old = nodes.iter().find(|n| n.port == master && n.is_master);
        let old = old.unwrap_or_else(|| panic!("port {master} is not a master:\n{text}"));
        let replica = nodes.iter().find(|n| n.is_replica && !n.failed && n.master_id == old.id);
        let replica = replica.unwrap_or_else(|| panic!("the master on port {master} has no replica:\n{text}")).port;
        let reply = self.cli(&["-p", &replica.to_string(), "cluster", "failover"]);
        let reply = String::from_utf8_lossy(&reply.stdout).into_owned();
        assert_eq!(reply.trim(), "OK", "CLUSTER FAILOVER on port {replica} was refused");
        let deadline = Instant::now() + FORM_TIMEOUT;
        loop {
            let swapped = self.nodes.iter().filter(|n| n.is_running()).all(|n| {
                let (view, _) = self.nodes_seen_by(n.port);
                let role = |port: u16| view.iter().find(|line| line.port == port).cloned();
                matches!(
                    (role(replica), role(master)),
                    (Some(new), Some(old)) if new.is_master && !new.slots.is_empty() && old.is_replica
                )
            });
            if swapped {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the replica on port {replica} did not take over from {master} within 30 s:\n{}",
                self.nodes_seen_by(replica).1
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.wait_until_ok().await;
        self.wait_for_replicas().await;
        replica
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
                let out = self.cli(&["-p", &n.port.to_string(), "cluster", "info"]);
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
