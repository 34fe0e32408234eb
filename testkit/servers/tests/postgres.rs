//! The PostgreSQL harness against real servers: the shared one (`DATABASE_URL`) and private ones started from the
//! installed binaries. TLS and password checks go through `psql` (libpq), independent of any adapter code.

use std::io::ErrorKind;
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use cpc_test_servers::{
    PrivatePostgres, TLS_MISMATCH_HOST, TestCertificates, TestDatabase, connect, database_url, redact_url,
};
use tokio_postgres::error::SqlState;

/// Runs one statement through psql with a libpq connection string; `Ok(stdout)` or `Err(stderr)`.
fn psql(conninfo: &str, password: Option<&str>, sql: &str) -> Result<String, String> {
    let mut cmd = Command::new("psql");
    cmd.args(["-w", "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", "-d", conninfo, "-c", sql]);
    for var in ["PGPASSWORD", "PGSSLMODE", "PGSSLROOTCERT", "PGHOST", "PGHOSTADDR", "PGPORT", "PGUSER", "PGDATABASE"] {
        cmd.env_remove(var);
    }
    cmd.env("PGCONNECT_TIMEOUT", "5");
    if let Some(password) = password {
        cmd.env("PGPASSWORD", password);
    }
    let out = cmd.output().expect("psql is installed (apt-get install postgresql-client)");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn tls_conninfo(host: &str, port: u16, ca: &Path, extra: &str) -> String {
    format!(
        "host={host} port={port} user=postgres dbname=postgres sslmode=verify-full sslrootcert={} {extra}",
        ca.display()
    )
}

fn refused(port: u16) -> bool {
    matches!(TcpStream::connect(("127.0.0.1", port)), Err(e) if e.kind() == ErrorKind::ConnectionRefused)
}

async fn database_exists(name: &str) -> bool {
    let admin = connect(&database_url()).await.expect("shared server reachable");
    admin.query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name]).await.expect("query").is_some()
}

async fn select_one(url: &str) -> i32 {
    let client = connect(url).await.unwrap_or_else(|e| panic!("connect to {}: {e:?}", redact_url(url)));
    client.query_one("SELECT 1", &[]).await.expect("select 1").get(0)
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs()
}

#[tokio::test]
async fn test_database_is_usable_and_dropped_when_the_value_is_dropped() {
    let db = TestDatabase::create().await;
    let name = db.name().to_owned();
    let suffix = name.strip_prefix("cpc_test_").expect("name prefix");
    let (secs, hex) = suffix.split_once('_').expect("cpc_test_<secs>_<hex>");
    assert!(unix_now().abs_diff(secs.parse::<u64>().expect("timestamp")) < 120, "timestamp in {name}");
    assert_eq!(hex.len(), 16, "16 hex digits in {name}");
    assert!(hex.chars().all(|c| c.is_ascii_hexdigit()), "hex in {name}");

    let shared = tokio_postgres::Config::from_str(&database_url()).expect("DATABASE_URL parses");
    assert_eq!(Some(db.port()), shared.get_ports().first().copied().or(Some(5432)));
    assert_eq!(Some(db.user()), shared.get_user());
    assert!(db.url().starts_with("postgres"), "url {}", db.url());
    assert!(db.url().contains(&name), "url {} names the database", db.url());
    assert!(!db.host().is_empty());

    let client = connect(db.url()).await.expect("connect via url()");
    let current: String = client.query_one("SELECT current_database()", &[]).await.expect("query").get(0);
    assert_eq!(current, name);
    client.batch_execute("CREATE TABLE t (id int); INSERT INTO t VALUES (7)").await.expect("ddl");
    let via_config = db.connect().await;
    let id: i32 = via_config.query_one("SELECT id FROM t", &[]).await.expect("select").get(0);
    assert_eq!(id, 7);
    assert!(database_exists(&name).await);

    // Dropped even though connections to it are still open (WITH (FORCE)), from inside async code.
    drop(db);
    assert!(!database_exists(&name).await, "{name} still in pg_database after drop");
    assert!(client.simple_query("SELECT 1").await.is_err(), "the open connection was ended");
}

#[tokio::test(flavor = "current_thread")]
async fn test_database_drop_now_drops_it_and_names_are_unique() {
    let a = TestDatabase::create().await;
    let b = TestDatabase::create().await;
    assert_ne!(a.name(), b.name());
    let (name_a, name_b) = (a.name().to_owned(), b.name().to_owned());
    a.drop_now().await;
    assert!(!database_exists(&name_a).await, "{name_a} dropped by drop_now");
    assert!(database_exists(&name_b).await, "{name_b} untouched");
    drop(b); // Drop works on a current-thread runtime too.
    assert!(!database_exists(&name_b).await);
}

#[test]
fn test_database_drop_works_outside_any_runtime() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let db = runtime.block_on(TestDatabase::create());
    let name = db.name().to_owned();
    drop(runtime);
    drop(db);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    assert!(!runtime.block_on(database_exists(&name)), "{name} dropped without a runtime");
}

#[tokio::test]
async fn test_database_drops_databases_leaked_over_an_hour_ago() {
    let hex = || uuid::Uuid::new_v4().simple().to_string()[..16].to_owned();
    let old = format!("cpc_test_{}_{}", unix_now() - 2 * 3600, hex());
    let recent = format!("cpc_test_{}_{}", unix_now() - 60, hex());
    let admin = connect(&database_url()).await.expect("shared server reachable");
    for name in [&old, &recent] {
        admin.batch_execute(&format!("CREATE DATABASE \"{name}\"")).await.expect("create");
    }
    let db = TestDatabase::create().await;
    assert!(!database_exists(&old).await, "two-hour-old {old} was cleaned up");
    assert!(database_exists(&recent).await, "one-minute-old {recent} was left alone");
    admin.batch_execute(&format!("DROP DATABASE \"{recent}\"")).await.expect("drop");
    db.drop_now().await;
}

#[tokio::test]
async fn test_database_on_an_unreachable_server_fails_with_how_to_start_one() {
    let url = "postgres://postgres:hunter2@127.0.0.1:1/postgres";
    let panic = tokio::spawn(TestDatabase::create_on(url)).await.expect_err("must panic").into_panic();
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("PostgreSQL not reachable at postgres://postgres@127.0.0.1:1/postgres"), "{message}");
    assert!(message.contains("./scripts/test.sh") && message.contains("DATABASE_URL"), "{message}");
    assert!(!message.contains("hunter2"), "password leaked: {message}");
}

#[test]
fn redact_url_removes_passwords_only() {
    assert_eq!(
        redact_url("postgres://app:s3cr%40t@db:5432/x?sslmode=require"),
        "postgres://app@db:5432/x?sslmode=require"
    );
    assert_eq!(redact_url("postgres://app@db/x"), "postgres://app@db/x");
    assert_eq!(redact_url("postgresql://db/x?password=p&user=u"), "postgresql://db/x?user=u");
    assert_eq!(redact_url("host=db password=p user=u"), "host=db user=u");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_postgres_starts_stops_and_restarts_on_the_same_port() {
    let pg = PrivatePostgres::start_default().await;
    let port = pg.port();
    assert_eq!(pg.url(), format!("postgres://postgres@127.0.0.1:{port}/postgres"));
    assert_eq!(select_one(&pg.url()).await, 1);
    assert!(pg.is_running());
    let client = connect(&pg.url()).await.expect("connect");

    pg.stop().await;
    assert!(!pg.is_running());
    assert!(refused(port), "port {port} still accepts connections after stop");
    assert!(client.simple_query("SELECT 1").await.is_err(), "open session ended by the fast shutdown");
    assert!(connect(&pg.url()).await.is_err());
    pg.stop().await; // idempotent

    pg.start().await;
    assert_eq!(pg.port(), port);
    assert_eq!(select_one(&pg.url()).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_postgres_kill_then_start_recovers_committed_data() {
    let pg = PrivatePostgres::start_default().await;
    let client = connect(&pg.url()).await.expect("connect");
    client
        .batch_execute("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('before the crash')")
        .await
        .expect("ddl");
    pg.kill();
    assert!(refused(pg.port()), "killed server still accepts connections");
    pg.start().await;
    let client = connect(&pg.url()).await.expect("connect after restart");
    let v: String = client.query_one("SELECT v FROM kept", &[]).await.expect("select").get(0);
    assert_eq!(v, "before the crash");
    assert!(pg.log_contents().contains("database system was interrupted"), "crash recovery ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_postgres_drop_stops_the_server_and_deletes_its_folder() {
    let pg = PrivatePostgres::start_default().await;
    let (port, folder) = (pg.port(), pg.socket_dir().to_path_buf());
    assert!(pg.data_dir().join("PG_VERSION").is_file());
    assert_eq!(select_one(&pg.url()).await, 1);
    drop(pg);
    assert!(refused(port), "server on {port} survived the drop");
    assert!(!folder.exists(), "{} survived the drop", folder.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_postgres_tls_verify_full_accepts_the_right_ca_and_names_only() {
    let pg = PrivatePostgres::builder().tls(true).start().await;
    let port = pg.port();
    let admin = pg.admin_client().await;
    let ssl: String = admin.query_one("SHOW ssl", &[]).await.expect("show").get(0);
    assert_eq!(ssl, "on");
    assert_eq!(std::fs::read_to_string(pg.ca_cert_path()).expect("ca file"), pg.ca_cert_pem());
    assert_ne!(pg.ca_cert_pem(), pg.wrong_ca_cert_pem());
    assert_eq!(TestCertificates::SERVER_NAMES, ["localhost", "127.0.0.1", "::1"]);

    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let key = std::fs::metadata(pg.data_dir().join("server.key")).expect("server.key");
    assert_eq!(key.permissions().mode() & 0o777, 0o600);
    assert_eq!(key.uid(), std::fs::metadata(pg.data_dir()).expect("data dir").uid(), "key owned by the server user");
    let ca = std::fs::metadata(pg.ca_cert_path()).expect("ca.crt");
    assert_eq!(ca.permissions().mode() & 0o777, 0o644);

    // Names in the certificate, right CA: accepted, and the session really is encrypted.
    let in_ssl = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";
    for host in ["localhost", "127.0.0.1"] {
        let out = psql(&tls_conninfo(host, port, pg.ca_cert_path(), ""), None, in_ssl);
        assert_eq!(out.as_deref(), Ok("t"), "verify-full to {host}");
    }
    // Wrong CA: rejected.
    let err =
        psql(&tls_conninfo("localhost", port, pg.wrong_ca_cert_path(), ""), None, "SELECT 1").expect_err("wrong CA");
    assert!(err.contains("certificate verify failed"), "{err}");

    // Same server under names not in the certificate: reachable (sslmode=require works) but verify-full fails.
    let ip = pg.tls_mismatch_ip();
    let by_name = format!("hostaddr=127.0.0.1 host={TLS_MISMATCH_HOST}");
    let unverified = format!("host={ip} port={port} user=postgres dbname=postgres sslmode=require");
    assert_eq!(psql(&unverified, None, in_ssl).as_deref(), Ok("t"), "{ip} reaches the server");
    let unverified = format!("{by_name} port={port} user=postgres dbname=postgres sslmode=require");
    assert_eq!(psql(&unverified, None, in_ssl).as_deref(), Ok("t"), "hostaddr reaches the server");
    let err = psql(&tls_conninfo(ip, port, pg.ca_cert_path(), ""), None, "SELECT 1").expect_err("IP mismatch");
    assert!(err.contains("does not match host name \"127.0.0.2\""), "{err}");
    let conninfo = format!(
        "{by_name} port={port} user=postgres dbname=postgres sslmode=verify-full sslrootcert={}",
        pg.ca_cert_path().display()
    );
    let err = psql(&conninfo, None, "SELECT 1").expect_err("name mismatch");
    assert!(err.contains(&format!("does not match host name \"{TLS_MISMATCH_HOST}\"")), "{err}");

    // The URL forms, as tokio-postgres reads them.
    let mismatch = tokio_postgres::Config::from_str(&pg.tls_mismatch_url()).expect("parses");
    assert_eq!(mismatch.get_hosts(), [tokio_postgres::config::Host::Tcp(TLS_MISMATCH_HOST.into())]);
    assert_eq!(mismatch.get_hostaddrs(), ["127.0.0.1".parse::<std::net::IpAddr>().expect("ip")]);
    assert_eq!(select_one(&pg.tls_mismatch_url()).await, 1, "tls_mismatch_url reaches the server");
    assert_eq!(select_one(&pg.url_for_host(ip)).await, 1, "url_for_host(127.0.0.2) reaches the server");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_postgres_require_tls_refuses_plain_connections() {
    let pg = PrivatePostgres::builder().require_tls(true).start().await;
    let plain = format!("host=127.0.0.1 port={} user=postgres dbname=postgres sslmode=disable", pg.port());
    let err = psql(&plain, None, "SELECT 1").expect_err("plain connection refused");
    assert!(err.contains("no encryption"), "{err}");
    assert!(connect(&pg.url()).await.is_err(), "tokio-postgres without TLS refused");
    let ok = psql(&tls_conninfo("127.0.0.1", pg.port(), pg.ca_cert_path(), ""), None, "SELECT 1");
    assert_eq!(ok.as_deref(), Ok("1"));
    let admin = pg.admin_client().await; // the socket stays open for the harness
    let one: i32 = admin.query_one("SELECT 1", &[]).await.expect("select").get(0);
    assert_eq!(one, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_postgres_password_auth_rejects_wrong_and_missing_passwords() {
    let pg = PrivatePostgres::builder().password_auth("s3cret pass").start().await;
    let port = pg.port();
    assert_eq!(pg.password().as_deref(), Some("s3cret pass"));
    assert_eq!(pg.url(), format!("postgres://postgres:s3cret%20pass@127.0.0.1:{port}/postgres"));

    let conninfo = format!("host=127.0.0.1 port={port} user=postgres dbname=postgres");
    assert_eq!(psql(&conninfo, Some("s3cret pass"), "SELECT 1").as_deref(), Ok("1"));
    let err = psql(&conninfo, Some("wrong"), "SELECT 1").expect_err("wrong password");
    assert!(err.contains("password authentication failed"), "{err}");
    let err = psql(&conninfo, None, "SELECT 1").expect_err("no password");
    assert!(err.contains("no password supplied"), "{err}");

    assert_eq!(select_one(&pg.url()).await, 1);
    let wrong = connect(&pg.url_for_user("postgres", Some("wrong"))).await.expect_err("wrong password");
    assert_eq!(wrong.code(), Some(&SqlState::INVALID_PASSWORD), "{wrong:?}");

    // The password survives a restart.
    pg.stop().await;
    pg.start().await;
    assert_eq!(select_one(&pg.url()).await, 1);
    assert!(connect(&pg.url_for_user("postgres", None)).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_postgres_set_password_switches_tcp_to_scram() {
    let pg = PrivatePostgres::start_default().await;
    assert_eq!(select_one(&pg.url_for_user("postgres", None)).await, 1, "trust before");

    pg.set_password("app user", "pw1").await;
    assert_eq!(select_one(&pg.url_for_user("app user", Some("pw1"))).await, 1);
    let wrong = connect(&pg.url_for_user("app user", Some("pw2"))).await.expect_err("wrong password");
    assert_eq!(wrong.code(), Some(&SqlState::INVALID_PASSWORD), "{wrong:?}");
    assert!(connect(&pg.url_for_user("postgres", None)).await.is_err(), "postgres now needs a password too");

    pg.set_password("postgres", "root pw").await;
    assert!(pg.url().contains(":root%20pw@"), "{}", pg.url());
    assert_eq!(select_one(&pg.url()).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_postgres_creates_databases_and_applies_settings() {
    let pg = PrivatePostgres::builder()
        .setting("max_connections", "17")
        .setting("application_name", "it's me")
        .start()
        .await;
    let url = pg.create_database("app_db").await;
    assert_eq!(url, format!("postgres://postgres@127.0.0.1:{}/app_db", pg.port()));
    let client = connect(&url).await.expect("connect");
    let row = client
        .query_one(
            "SELECT current_database(), current_setting('max_connections'), current_setting('application_name')",
            &[],
        )
        .await
        .expect("query");
    assert_eq!(row.get::<_, String>(0), "app_db");
    assert_eq!(row.get::<_, String>(1), "17");
    assert_eq!(row.get::<_, String>(2), "it's me");

    // TestDatabase works on a private server too, and cleans up there.
    let db = TestDatabase::create_on(&pg.url()).await;
    assert_eq!(db.port(), pg.port());
    assert_eq!(select_one(db.url()).await, 1);
    let name = db.name().to_owned();
    drop(db);
    let gone = pg
        .admin_client()
        .await
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .expect("query");
    assert!(gone.is_none());
}
