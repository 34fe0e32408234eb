//! [`PrivateReplicaPair`]: a private PostgreSQL primary and one streaming replica of it, on 127.0.0.1.

use std::time::{Duration, Instant};

use tokio_postgres::Client;

use super::postgres::describe;
use super::private_postgres::blocking;
use super::{PrivatePostgres, quote_ident};

/// How long the harness waits for the replica to stream or to replay the primary's latest WAL.
const WAIT: Duration = Duration::from_secs(60);

/// A primary started for replication ([`PrivatePostgresBuilder::replication`](super::PrivatePostgresBuilder::replication))
/// and a hot-standby replica made from it with `pg_basebackup -R`, streaming its WAL. Each is a whole
/// [`PrivatePostgres`] (its own folder, port, log), so a test can [`kill`](PrivatePostgres::kill) the replica and
/// [`start`](PrivatePostgres::start) it again; it resumes following the primary. Dropping the pair kills both.
///
/// ```no_run
/// # async fn demo() {
/// use cpc_test_servers::PrivateReplicaPair;
///
/// let pair = PrivateReplicaPair::start().await; // returns once the replica streams
/// let (primary_url, replica_url) = pair.create_database("app").await; // on the primary, replayed on the replica
/// pair.replica().kill();
/// pair.restart_replica().await; // streaming again
/// # let _ = (primary_url, replica_url);
/// # }
/// ```
pub struct PrivateReplicaPair {
    // Declared first: dropped (killed) before the primary it follows.
    replica: PrivatePostgres,
    primary: PrivatePostgres,
}

impl std::fmt::Debug for PrivateReplicaPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateReplicaPair").field("primary", &self.primary).field("replica", &self.replica).finish()
    }
}

impl PrivateReplicaPair {
    /// Starts the primary, copies it into a replica (another free port), starts the replica and waits until it is
    /// in recovery and the primary lists it as `streaming` in `pg_stat_replication`. Takes a few seconds.
    ///
    /// # Panics
    ///
    /// If the PostgreSQL binaries (`initdb`, `pg_ctl`, `pg_basebackup`) or the `postgres` OS user (when running as
    /// root) are missing (`apt-get install postgresql`, or set `PG_BINDIR`), or the replica does not start or
    /// stream within a minute (the message holds both logs).
    pub async fn start() -> Self {
        let primary = PrivatePostgres::builder().replication(true).start().await;
        let port = primary.port();
        let replica = blocking(move || PrivatePostgres::init_replica_of(port)).await;
        let pair = Self { replica, primary };
        pair.wait_streaming().await;
        pair
    }

    /// The primary (read-write).
    pub fn primary(&self) -> &PrivatePostgres {
        &self.primary
    }

    /// The replica (read-only, in recovery).
    pub fn replica(&self) -> &PrivatePostgres {
        &self.replica
    }

    /// Starts the replica again after [`PrivatePostgres::kill`] or [`PrivatePostgres::stop`] and waits until it
    /// streams again.
    ///
    /// # Panics
    ///
    /// As [`PrivateReplicaPair::start`].
    pub async fn restart_replica(&self) {
        self.replica.start().await;
        self.wait_streaming().await;
    }

    /// Creates database `name` on the primary, waits until the replica has replayed it, and returns the URLs of
    /// that database on the primary and on the replica.
    ///
    /// # Panics
    ///
    /// If the database exists or a server is down.
    pub async fn create_database(&self, name: &str) -> (String, String) {
        let primary_url = self.primary.create_database(name).await;
        self.wait_replayed().await;
        (primary_url, self.replica.url_for_database(name))
    }

    /// Waits until the replica has replayed everything the primary has written so far (its
    /// `pg_last_wal_replay_lsn()` reached the primary's `pg_current_wal_lsn()`).
    ///
    /// # Panics
    ///
    /// If a server is down, replay is paused, or it takes longer than a minute.
    pub async fn wait_replayed(&self) {
        let lsn: String = self.query_primary("SELECT pg_current_wal_lsn()::text").await;
        let replica = self.replica.admin_client().await;
        let started = Instant::now();
        loop {
            let row = replica
                .query_one("SELECT pg_last_wal_replay_lsn() >= $1::text::pg_lsn", &[&lsn])
                .await
                .unwrap_or_else(|e| panic!("could not ask the replica how far it replayed: {}", describe(&e)));
            if row.get::<_, Option<bool>>(0) == Some(true) {
                return;
            }
            self.give_up_after(started, &format!("the replica did not replay up to {lsn}"));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Pauses WAL replay on the replica (`pg_wal_replay_pause()`): it keeps answering, with data as of now, while
    /// the primary moves on. A test's way of making the replica visibly stale.
    ///
    /// # Panics
    ///
    /// If the replica is down.
    pub async fn pause_replay(&self) {
        self.replica_statement("SELECT pg_wal_replay_pause()").await;
    }

    /// Resumes WAL replay after [`pause_replay`](Self::pause_replay) and waits until the replica caught up.
    ///
    /// # Panics
    ///
    /// If the replica is down or does not catch up within a minute.
    pub async fn resume_replay(&self) {
        self.replica_statement("SELECT pg_wal_replay_resume()").await;
        self.wait_replayed().await;
    }

    /// Drops database `name` on the primary (the replica follows).
    ///
    /// # Panics
    ///
    /// If the primary is down or the statement fails.
    pub async fn drop_database(&self, name: &str) {
        self.primary
            .admin_client()
            .await
            .batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(name)))
            .await
            .unwrap_or_else(|e| panic!("could not drop database {name}: {}", describe(&e)));
    }

    /// Polls until the replica is in recovery and the primary has a `streaming` WAL sender.
    async fn wait_streaming(&self) {
        let started = Instant::now();
        loop {
            let streaming: i64 =
                self.query_primary("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'").await;
            let in_recovery = match self.replica.admin_client().await.query_one("SELECT pg_is_in_recovery()", &[]).await
            {
                Ok(row) => row.get::<_, bool>(0),
                Err(_) => false,
            };
            if streaming > 0 && in_recovery {
                return;
            }
            self.give_up_after(started, "the replica did not start streaming from the primary");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn query_primary<T>(&self, sql: &str) -> T
    where
        T: for<'a> tokio_postgres::types::FromSql<'a>,
    {
        let client: Client = self.primary.admin_client().await;
        let row = client
            .query_one(sql, &[])
            .await
            .unwrap_or_else(|e| panic!("`{sql}` failed on the primary: {}", describe(&e)));
        row.get(0)
    }

    async fn replica_statement(&self, sql: &str) {
        self.replica
            .admin_client()
            .await
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("`{sql}` failed on the replica: {}", describe(&e)));
    }

    fn give_up_after(&self, started: Instant, what: &str) {
        if started.elapsed() > WAIT {
            panic!(
                "{what} within {WAIT:?}\n--- primary log ---\n{}\n--- replica log ---\n{}",
                self.primary.log_contents(),
                self.replica.log_contents()
            );
        }
    }
}
