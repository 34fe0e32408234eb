//! Real, isolated PostgreSQL servers and databases for adapter tests.
//!
//! * [`TestDatabase`]: a fresh database with a random name on the shared server named by `DATABASE_URL`
//!   (default [`DEFAULT_DATABASE_URL`]), dropped when the value is dropped. Cheap (tens of milliseconds): use it
//!   for every test that just needs an empty database.
//! * [`PrivatePostgres`]: a whole PostgreSQL instance of the test's own, started from the installed binaries in a
//!   temporary directory on a free port of 127.0.0.1. Costs about a second. Use it when a test must stop, kill or
//!   restart the server, or needs TLS ([`PrivatePostgresBuilder::tls`]) or password authentication
//!   ([`PrivatePostgresBuilder::password_auth`]). Dropping it kills the server and removes the directory.
//! * [`PrivateReplicaPair`]: a private primary and a streaming replica of it (`pg_basebackup`), for read-replica
//!   routing; the replica can be killed, restarted and have its replay paused.
//! * [`PrivateRedis`]: a `redis-server` of the test's own on a free port (optionally with a password), for tests
//!   that kill and restart Redis; [`PrivateRedisSet`]: several of them, for multi-node adapters (Redlock);
//!   [`PrivateRedisCluster`]: a Redis Cluster of 3 masters and 3 replicas, for the cluster adapters and failover
//!   (a killed master, or [`PrivateRedisCluster::manual_failover`]), optionally TLS-only
//!   ([`PrivateRedisCluster::with_tls`]).
//! * [`TestCertificates`]: the throw-away CA and server certificate behind the TLS mode, usable on their own.
//!
//! A test that needs a server and cannot get one **fails** with a message that says how to get one; nothing here
//! skips silently. `./scripts/test.sh` installs and starts the shared server; the private servers need the
//! PostgreSQL server binaries (`apt-get install postgresql`) and, when the tests run as root, the `postgres` OS user
//! (the servers run as that user, since PostgreSQL refuses to run as root).
//!
//! ```no_run
//! use cpc_test_servers::{PrivatePostgres, TestDatabase};
//!
//! # async fn demo() {
//! // An empty database on the shared server; dropped at the end of the scope.
//! let db = TestDatabase::create().await;
//! let client = db.connect().await;
//! client.batch_execute("create table t (id int)").await.unwrap();
//!
//! // A private server with TLS, stopped and started again on the same port.
//! let pg = PrivatePostgres::builder().tls(true).start().await;
//! let ca_file = pg.ca_cert_path(); // trust this CA, connect to pg.url() with sslmode=verify-full
//! pg.stop().await;
//! pg.start().await;
//! # let _ = ca_file;
//! # }
//! ```
//!
//! ## Testing a TLS host-name mismatch
//!
//! The server certificate is valid for exactly [`TestCertificates::SERVER_NAMES`] (`localhost`, `127.0.0.1`,
//! `::1`). Two ways reach the same server under a name the certificate does not cover, so `verify-full` must fail
//! with a name error while the CA is right:
//!
//! * by IP: the server also listens on `127.0.0.2` ([`PrivatePostgres::tls_mismatch_ip`]); Linux routes all of
//!   127.0.0.0/8 to the loopback device. Connect to `postgres://postgres@127.0.0.2:<port>/postgres`.
//! * by name: [`PrivatePostgres::tls_mismatch_url`] uses host [`TLS_MISMATCH_HOST`] (`not-the-server.invalid`)
//!   with `hostaddr=127.0.0.1`: both libpq and tokio-postgres open the TCP connection to `hostaddr` but check the
//!   certificate against `host`. No DNS override is needed.

mod cluster_nodes;
mod os;
mod ports;
mod postgres;
mod private_postgres;
mod private_redis;
mod private_redis_cluster;
mod private_redis_set;
mod private_replica;
mod tls;

pub use postgres::{DATABASE_URL_ENV, DEFAULT_DATABASE_URL, TestDatabase, connect, database_url, redact_url};
pub use private_postgres::{PrivatePostgres, PrivatePostgresBuilder, TLS_MISMATCH_HOST};
pub use private_redis::PrivateRedis;
pub use private_redis_cluster::{NODE_TIMEOUT as CLUSTER_NODE_TIMEOUT, PrivateRedisCluster};
pub use private_redis_set::PrivateRedisSet;
pub use private_replica::PrivateReplicaPair;
pub use tls::TestCertificates;

/// Quotes an SQL identifier (`"na""me"`).
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes an SQL string literal (`'it''s'`); the server runs with `standard_conforming_strings = on`.
pub(crate) fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// Percent-encodes a URL user-info part (user name or password).
pub(crate) fn encode_userinfo(part: &str) -> String {
    let mut out = String::with_capacity(part.len());
    for byte in part.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
