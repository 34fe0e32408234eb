//! [`PrivateRedisSet`]: several independent private `redis-server`s, for multi-node adapters (Redlock).

use super::PrivateRedis;

/// `n` independent [`PrivateRedis`] servers, each on its own free port of 127.0.0.1, started concurrently.
/// Dropping the set kills them all. Stop one with [`PrivateRedisSet::kill`] to simulate a node failure.
#[derive(Debug)]
pub struct PrivateRedisSet {
    servers: Vec<PrivateRedis>,
}

impl PrivateRedisSet {
    /// Starts `n` servers without passwords.
    pub async fn start(n: usize) -> Self {
        let servers = futures::future::join_all((0..n).map(|_| PrivateRedis::start())).await;
        Self { servers }
    }

    /// The servers' URLs (`redis://127.0.0.1:<port>/0`), in order.
    pub fn urls(&self) -> Vec<String> {
        self.servers.iter().map(PrivateRedis::url).collect()
    }

    /// Server `i`.
    ///
    /// # Panics
    /// If `i` is out of range.
    pub fn server(&self, i: usize) -> &PrivateRedis {
        &self.servers[i]
    }

    /// How many servers the set has.
    pub fn len(&self) -> usize {
        self.servers.len()
    }

    /// Whether the set has no server.
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
    }

    /// Kills server `i` at once (`SIGKILL`), as a crash would.
    ///
    /// # Panics
    /// If `i` is out of range.
    pub fn kill(&self, i: usize) {
        self.servers[i].kill();
    }
}
