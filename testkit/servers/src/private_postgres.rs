//! [`PrivatePostgres`]: a PostgreSQL instance of the test's own, from the installed binaries.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_postgres::{Client, Config};

use super::os::PgTools;
use super::postgres::{connect_config, describe, parse_config};
use super::tls::TestCertificates;
use super::{encode_userinfo, quote_ident, quote_literal};

/// A host name the test certificate is not valid for. Use it with `hostaddr=127.0.0.1` (see
/// [`PrivatePostgres::tls_mismatch_url`]): the connection reaches the server, and `verify-full` must fail.
pub const TLS_MISMATCH_HOST: &str = "not-the-server.invalid";

/// The IP of the server's TCP listener that every URL uses, and the one in the certificate.
const HOST: &str = "127.0.0.1";

/// A second loopback address the server also listens on, which is not in the certificate.
const SECOND_LOOPBACK: &str = "127.0.0.2";

/// The superuser `initdb` creates.
const SUPERUSER: &str = "postgres";

/// The harness's own settings file in the data directory, included from `postgresql.conf`.
const CONF_FILE: &str = "cpc_testkit.conf";

/// Marks a temporary directory as a private server's; holds the pid of the test process that owns it.
const OWNER_FILE: &str = "cpc-testkit-owner.pid";

/// Prefix of the temporary directories.
const DIR_PREFIX: &str = "cpc-pg-";

/// Options for [`PrivatePostgres`]; start with [`PrivatePostgres::builder`].
#[derive(Clone, Default)]
pub struct PrivatePostgresBuilder {
    tls: bool,
    require_tls: bool,
    password: Option<String>,
    settings: Vec<(String, String)>,
    replication: bool,
}

impl std::fmt::Debug for PrivatePostgresBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivatePostgresBuilder")
            .field("tls", &self.tls)
            .field("require_tls", &self.require_tls)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("settings", &self.settings)
            .field("replication", &self.replication)
            .finish()
    }
}

impl PrivatePostgresBuilder {
    /// Makes the server a primary that streaming replicas can copy and follow: `wal_level = replica`,
    /// `max_wal_senders`, some WAL kept for a replica that was down a while, and a `pg_hba.conf` line trusting
    /// replication connections from 127.0.0.1. [`PrivateReplicaPair`](super::PrivateReplicaPair) uses it.
    pub fn replication(mut self, on: bool) -> Self {
        self.replication = on;
        self
    }

    /// Serves TLS with a fresh [`TestCertificates`] set (`ssl = on`); plain connections are still accepted unless
    /// [`require_tls`](Self::require_tls) is set.
    pub fn tls(mut self, on: bool) -> Self {
        self.tls = on;
        self
    }

    /// Accepts TCP connections over TLS only (`hostssl` lines in `pg_hba.conf`; a plain connection gets "no
    /// pg_hba.conf entry ... no encryption"). `true` implies [`tls(true)`](Self::tls).
    pub fn require_tls(mut self, on: bool) -> Self {
        self.require_tls = on;
        if on {
            self.tls = true;
        }
        self
    }

    /// Gives the `postgres` role this password and requires `scram-sha-256` for every TCP connection, so a wrong
    /// or missing password fails. [`PrivatePostgres::url`] then carries the password.
    pub fn password_auth(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// Adds a `postgresql.conf` setting, such as `("max_connections", "10")`; the value is written quoted.
    pub fn setting(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.settings.push((name.into(), value.into()));
        self
    }

    /// Creates the data directory (`initdb`), starts the server and waits until it accepts connections.
    ///
    /// # Panics
    ///
    /// If the PostgreSQL binaries or the `postgres` OS user (when running as root) are missing, or the server
    /// does not start (the message holds the server log). Nothing is left behind in that case.
    pub async fn start(self) -> PrivatePostgres {
        let password = self.password.clone();
        let server = blocking(move || PrivatePostgres::init(self)).await;
        if let Some(password) = password {
            let admin = server.admin_client().await;
            admin
                .batch_execute(&format!(
                    "ALTER ROLE {} WITH PASSWORD {}",
                    quote_ident(SUPERUSER),
                    quote_literal(&password)
                ))
                .await
                .unwrap_or_else(|e| panic!("could not set the postgres password: {}", describe(&e)));
        }
        server
    }
}

/// A private PostgreSQL server: its own data directory in a temporary folder, its own port on 127.0.0.1.
///
/// Started with [`PrivatePostgres::builder`] (or [`PrivatePostgres::start_default`]); the server runs as the
/// `postgres` OS user when the tests run as root. It listens on 127.0.0.1 (every URL uses that), on 127.0.0.2
/// (see [`tls_mismatch_ip`](Self::tls_mismatch_ip)), on ::1 when the machine has it, and on a Unix socket in its
/// folder that the harness uses for administration ([`admin_client`](Self::admin_client), always trusted).
/// `fsync` and `full_page_writes` are off for speed: a committed transaction survives [`kill`](Self::kill) (the
/// WAL reaches the OS on commit), not a crash of the machine, which a test never needs.
///
/// [`stop`](Self::stop), [`kill`](Self::kill) and [`start`](Self::start) let a test take the server away and
/// bring it back on the same port with the same data. Dropping the value kills the server and deletes the folder.
///
/// ```no_run
/// # async fn demo() {
/// use cpc_test_servers::PrivatePostgres;
///
/// let pg = PrivatePostgres::builder().password_auth("secret").start().await;
/// let client = cpc_test_servers::connect(&pg.url()).await.unwrap(); // the URL holds the password
/// pg.stop().await; // clients now get errors; new connections are refused
/// pg.start().await; // same port, same data
/// # drop(client);
/// # }
/// ```
pub struct PrivatePostgres {
    tools: PgTools,
    // Dropped (deleted) after `Drop::drop` has stopped the server.
    _root: tempfile::TempDir,
    root: PathBuf,
    data_dir: PathBuf,
    log_path: PathBuf,
    port: u16,
    listen_second_loopback: bool,
    listen_ipv6: bool,
    require_tls: bool,
    replication: bool,
    settings: Vec<(String, String)>,
    tls: Option<TlsFiles>,
    auth: Mutex<AuthState>,
}

struct TlsFiles {
    certificates: TestCertificates,
    ca_path: PathBuf,
    wrong_ca_path: PathBuf,
}

struct AuthState {
    /// The `postgres` role's password, if set.
    password: Option<String>,
    /// Whether TCP connections need `scram-sha-256` (else `trust`).
    scram: bool,
}

impl PrivatePostgres {
    /// Options: TLS, password authentication, extra settings.
    pub fn builder() -> PrivatePostgresBuilder {
        PrivatePostgresBuilder::default()
    }

    /// Starts a server with the default options (plain TCP, `trust` authentication).
    ///
    /// # Panics
    ///
    /// As [`PrivatePostgresBuilder::start`].
    pub async fn start_default() -> Self {
        Self::builder().start().await
    }

    /// Blocking set-up: folder, initdb, certificates, configuration, first start.
    fn init(options: PrivatePostgresBuilder) -> Self {
        Self::create(options, None)
    }

    /// Blocking set-up of a streaming replica of the primary listening on 127.0.0.1:`primary_port` (started with
    /// [`PrivatePostgresBuilder::replication`]): folder, `pg_basebackup -R` (which writes `standby.signal` and
    /// `primary_conninfo`), configuration, first start. `pg_ctl start -w` returns once it accepts read-only
    /// connections.
    pub(super) fn init_replica_of(primary_port: u16) -> Self {
        Self::create(PrivatePostgresBuilder::default().replication(true), Some(primary_port))
    }

    /// Folder, data directory (`initdb`, or a base backup of the primary on `replica_of`), certificates,
    /// configuration, first start.
    fn create(options: PrivatePostgresBuilder, replica_of: Option<u16>) -> Self {
        let tools = PgTools::discover();
        reap_orphans(&tools);

        let base = if Path::new("/tmp").is_dir() { PathBuf::from("/tmp") } else { std::env::temp_dir() };
        let dir = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir_in(&base)
            .unwrap_or_else(|e| panic!("could not create a temporary directory in {}: {e}", base.display()));
        let root = dir.path().to_path_buf();
        std::fs::write(root.join(OWNER_FILE), std::process::id().to_string()).expect("write the owner file");
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).expect("chmod the temporary directory");
        tools.hand_over(&root).unwrap_or_else(|e| panic!("could not chown {} to postgres: {e}", root.display()));

        let mut server = PrivatePostgres {
            data_dir: root.join("data"),
            log_path: root.join("postgres.log"),
            port: 0,
            listen_second_loopback: can_bind(SECOND_LOOPBACK),
            listen_ipv6: can_bind("::1"),
            require_tls: options.require_tls,
            replication: options.replication,
            settings: options.settings,
            tls: None,
            auth: Mutex::new(AuthState { scram: options.password.is_some(), password: options.password }),
            tools,
            _root: dir,
            root,
        };

        match replica_of {
            None => server.initdb(),
            // The copy holds the primary's postgresql.conf, which already includes the harness's settings file;
            // `write_conf` below replaces that file with the replica's own port and socket folder.
            Some(primary_port) => server.base_backup(primary_port),
        }
        if options.tls {
            server.tls = Some(server.write_certificates());
        }
        server.write_hba();

        // The free port may be taken between probing and binding: retry with another one.
        let mut last_error = String::new();
        for _ in 0..5 {
            server.port = free_port(server.listen_second_loopback, server.listen_ipv6);
            server.write_conf();
            match pg_ctl_start(&server.tools, &server.root, &server.data_dir, &server.log_path) {
                Ok(()) => return server,
                Err(e) if e.contains("in use") || e.contains("could not bind") => last_error = e,
                Err(e) => panic!("{e}"),
            }
        }
        panic!("the private PostgreSQL server found no free port: {last_error}");
    }

    /// A fresh cluster in the data directory, including the harness's settings file from `postgresql.conf`.
    fn initdb(&self) {
        let mut initdb = self.tools.command("initdb", &self.root);
        initdb.arg("-D").arg(&self.data_dir).args([
            "-A",
            "trust",
            "-U",
            SUPERUSER,
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]);
        self.tools.run(initdb).unwrap_or_else(|e| panic!("initdb failed: {e}"));
        let conf = self.data_dir.join("postgresql.conf");
        let mut main_conf = std::fs::read_to_string(&conf).expect("read postgresql.conf");
        main_conf.push_str(&format!("\n# Added by cpc-testkit.\ninclude '{CONF_FILE}'\n"));
        self.write_data_file("postgresql.conf", &main_conf, 0o600);
    }

    /// A copy of the primary on 127.0.0.1:`primary_port`, set up to follow it (`pg_basebackup -R -X stream`).
    fn base_backup(&self, primary_port: u16) {
        let tool = self.tools.tool("pg_basebackup");
        assert!(
            tool.is_file(),
            "{} not found: a streaming replica is made with pg_basebackup, which ships with the PostgreSQL server \
             binaries (`apt-get install postgresql`); set PG_BINDIR to the folder that holds it",
            tool.display()
        );
        let mut backup = self.tools.command("pg_basebackup", &self.root);
        backup.arg("-D").arg(&self.data_dir).args(["-h", HOST, "-p"]).arg(primary_port.to_string()).args([
            "-U",
            SUPERUSER,
            "-X",
            "stream",
            "-R",
            "--no-sync",
            "-c",
            "fast",
        ]);
        self.tools.run(backup).unwrap_or_else(|e| panic!("pg_basebackup of the primary failed: {e}"));
    }

    /// The server's TCP port (on 127.0.0.1 and the other listen addresses); it stays the same across restarts.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The host every URL uses: `127.0.0.1`.
    pub fn host(&self) -> &'static str {
        HOST
    }

    /// `postgres://postgres[:password]@127.0.0.1:<port>/postgres`: the superuser, with the password when one
    /// was set ([`PrivatePostgresBuilder::password_auth`], or [`set_password`](Self::set_password) of
    /// `postgres`). No TLS parameters: add `?sslmode=...` as the test needs.
    pub fn url(&self) -> String {
        self.url_for_database("postgres")
    }

    /// Like [`url`](Self::url), for another database (see [`create_database`](Self::create_database)).
    pub fn url_for_database(&self, database: &str) -> String {
        let password = self.password();
        self.build_url(SUPERUSER, password.as_deref(), HOST, database)
    }

    /// A URL for database `postgres` as `user` with `password` (none: no password in the URL), for example to
    /// check that a wrong password fails.
    pub fn url_for_user(&self, user: &str, password: Option<&str>) -> String {
        self.build_url(user, password, HOST, "postgres")
    }

    /// Like [`url`](Self::url) with another host, such as `localhost` (in the certificate) or
    /// [`tls_mismatch_ip`](Self::tls_mismatch_ip) (not in it). IPv6 addresses are bracketed for you.
    pub fn url_for_host(&self, host: &str) -> String {
        let password = self.password();
        self.build_url(SUPERUSER, password.as_deref(), host, "postgres")
    }

    /// A URL that reaches this server under a name the certificate is not valid for:
    /// `postgres://postgres@not-the-server.invalid:<port>/postgres?hostaddr=127.0.0.1`. tokio-postgres (and
    /// libpq) connect to `hostaddr` and check the certificate against the host, so `verify-full` must fail with a
    /// name mismatch while the CA is right. The host never needs to resolve.
    pub fn tls_mismatch_url(&self) -> String {
        format!("{}?hostaddr={HOST}", self.url_for_host(TLS_MISMATCH_HOST))
    }

    /// `127.0.0.2`: an IP the server listens on that the certificate does not name. Connecting there with
    /// `verify-full` must fail with a name mismatch ([`url_for_host`](Self::url_for_host) builds the URL).
    ///
    /// # Panics
    ///
    /// If 127.0.0.2 could not be bound on this machine (it always can on Linux, which routes all of 127.0.0.0/8
    /// to the loopback device); use [`tls_mismatch_url`](Self::tls_mismatch_url) there.
    pub fn tls_mismatch_ip(&self) -> &'static str {
        assert!(
            self.listen_second_loopback,
            "127.0.0.2 is not a loopback address on this machine, so the server does not listen there; \
             use tls_mismatch_url() (host name + hostaddr) instead"
        );
        SECOND_LOOPBACK
    }

    /// The `postgres` role's current password, if one was set.
    pub fn password(&self) -> Option<String> {
        self.auth.lock().unwrap_or_else(|e| e.into_inner()).password.clone()
    }

    /// The data directory (`PGDATA`).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The folder holding the Unix socket (`.s.PGSQL.<port>`), the log and the TLS files; deleted on drop.
    pub fn socket_dir(&self) -> &Path {
        &self.root
    }

    /// The server log (`pg_ctl -l`); worth printing when a test fails.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The server log's content so far (empty if it cannot be read).
    pub fn log_contents(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The certificates behind TLS mode.
    ///
    /// # Panics
    ///
    /// If the server was started without [`PrivatePostgresBuilder::tls`].
    pub fn certificates(&self) -> &TestCertificates {
        &self.tls_files().certificates
    }

    /// The CA certificate (PEM) that signed the server certificate: what a verifying client must trust.
    ///
    /// # Panics
    ///
    /// If the server was started without [`PrivatePostgresBuilder::tls`].
    pub fn ca_cert_pem(&self) -> &str {
        self.tls_files().certificates.ca_cert_pem()
    }

    /// A file holding [`ca_cert_pem`](Self::ca_cert_pem), readable by anyone (for `sslrootcert=`).
    ///
    /// # Panics
    ///
    /// If the server was started without [`PrivatePostgresBuilder::tls`].
    pub fn ca_cert_path(&self) -> &Path {
        &self.tls_files().ca_path
    }

    /// An unrelated CA certificate (PEM): a client trusting only this one must reject the server.
    ///
    /// # Panics
    ///
    /// If the server was started without [`PrivatePostgresBuilder::tls`].
    pub fn wrong_ca_cert_pem(&self) -> &str {
        self.tls_files().certificates.wrong_ca_cert_pem()
    }

    /// A file holding [`wrong_ca_cert_pem`](Self::wrong_ca_cert_pem), readable by anyone.
    ///
    /// # Panics
    ///
    /// If the server was started without [`PrivatePostgresBuilder::tls`].
    pub fn wrong_ca_cert_path(&self) -> &Path {
        &self.tls_files().wrong_ca_path
    }

    /// Whether the server is up (`pg_ctl status`).
    pub fn is_running(&self) -> bool {
        let mut cmd = self.tools.command("pg_ctl", &self.root);
        cmd.arg("status").arg("-D").arg(&self.data_dir);
        self.tools.run(cmd).is_ok()
    }

    /// Stops the server in fast mode (`pg_ctl -m fast stop`: open sessions are ended, a clean shutdown) and waits
    /// until it is gone; connections are refused afterwards. Does nothing if it is not running.
    ///
    /// # Panics
    ///
    /// If `pg_ctl` fails.
    pub async fn stop(&self) {
        let (tools, root, data_dir) = (self.tools.clone(), self.root.clone(), self.data_dir.clone());
        blocking(move || pg_ctl_stop(&tools, &root, &data_dir, "fast")).await.unwrap_or_else(|e| panic!("{e}"));
    }

    /// Kills the server at once (`pg_ctl -m immediate stop`, like a crash: no shutdown checkpoint; the next
    /// [`start`](Self::start) runs crash recovery). Blocks until the server is gone (milliseconds). Does nothing
    /// if it is not running.
    ///
    /// # Panics
    ///
    /// If `pg_ctl` fails.
    pub fn kill(&self) {
        pg_ctl_stop(&self.tools, &self.root, &self.data_dir, "immediate").unwrap_or_else(|e| panic!("{e}"));
    }

    /// Freezes the server (SIGSTOP to the postmaster and every backend): connections stay open and new ones are
    /// accepted by the kernel, but nothing answers, as with a hung host or a half-open network path. Undo with
    /// [`thaw`](Self::thaw); dropping the server thaws it first.
    ///
    /// # Panics
    ///
    /// If the server is not running or cannot be signalled.
    pub fn freeze(&self) {
        super::os::signal_server(&self.data_dir, "STOP")
            .unwrap_or_else(|e| panic!("could not freeze the private PostgreSQL: {e}"));
    }

    /// Lets a [`freeze`](Self::freeze)d server run again (SIGCONT to the postmaster and every backend).
    ///
    /// # Panics
    ///
    /// If the server is not running or cannot be signalled.
    pub fn thaw(&self) {
        super::os::signal_server(&self.data_dir, "CONT")
            .unwrap_or_else(|e| panic!("could not thaw the private PostgreSQL: {e}"));
    }

    /// Starts the server again after [`stop`](Self::stop) or [`kill`](Self::kill): same data, same port, same
    /// authentication and TLS files. Waits until it accepts connections.
    ///
    /// # Panics
    ///
    /// If it is already running or does not start (the message holds the server log).
    pub async fn start(&self) {
        let (tools, root, data_dir, log) =
            (self.tools.clone(), self.root.clone(), self.data_dir.clone(), self.log_path.clone());
        blocking(move || pg_ctl_start(&tools, &root, &data_dir, &log)).await.unwrap_or_else(|e| panic!("{e}"));
    }

    /// A superuser connection over the server's Unix socket, which is always trusted (no password, no TLS).
    ///
    /// # Panics
    ///
    /// If the server is not running.
    pub async fn admin_client(&self) -> Client {
        let mut config = Config::new();
        config
            .host_path(&self.root)
            .port(self.port)
            .user(SUPERUSER)
            .dbname("postgres")
            .connect_timeout(Duration::from_secs(5));
        connect_config(&config)
            .await
            .unwrap_or_else(|e| panic!("could not connect to the private server's socket: {}", describe(&e)))
    }

    /// Creates a database owned by `postgres` and returns its URL (as [`url_for_database`](Self::url_for_database)).
    ///
    /// # Panics
    ///
    /// If the server is not running or the database exists.
    pub async fn create_database(&self, name: &str) -> String {
        self.admin_client()
            .await
            .batch_execute(&format!("CREATE DATABASE {}", quote_ident(name)))
            .await
            .unwrap_or_else(|e| panic!("could not create database {name}: {}", describe(&e)));
        self.url_for_database(name)
    }

    /// Gives `user` (created as a `LOGIN` role if missing, with no other rights) the password `password`, and
    /// from then on requires `scram-sha-256` for every TCP connection (`pg_hba.conf` rewritten and reloaded; the
    /// call returns once the reload took effect). The Unix socket stays trusted. Setting `postgres`'s password
    /// also updates [`url`](Self::url).
    ///
    /// # Panics
    ///
    /// If the server is not running or a statement fails.
    pub async fn set_password(&self, user: &str, password: &str) {
        let admin = self.admin_client().await;
        fn ok<T>(result: Result<T, tokio_postgres::Error>, user: &str) -> T {
            result.unwrap_or_else(|e| panic!("could not set the password of {user}: {}", describe(&e)))
        }
        let exists = ok(admin.query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&user]).await, user);
        if exists.is_none() {
            ok(admin.batch_execute(&format!("CREATE ROLE {} LOGIN", quote_ident(user))).await, user);
        }
        let alter = format!("ALTER ROLE {} WITH LOGIN PASSWORD {}", quote_ident(user), quote_literal(password));
        ok(admin.batch_execute(&alter).await, user);

        let switch = {
            let mut auth = self.auth.lock().unwrap_or_else(|e| e.into_inner());
            if user == SUPERUSER {
                auth.password = Some(password.to_owned());
            }
            !std::mem::replace(&mut auth.scram, true)
        };
        if switch {
            self.write_hba();
            ok(admin.batch_execute("SELECT pg_reload_conf()").await, user);
            self.wait_for_password_required(user).await;
        }
    }

    /// Polls until a password-less TCP connection as `user` is refused, i.e. the postmaster reloaded pg_hba.conf.
    async fn wait_for_password_required(&self, user: &str) {
        let url = self.build_url(user, None, HOST, "postgres");
        for _ in 0..200 {
            let Ok(config) = parse_config(&url) else { return };
            if connect_config(&config).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("pg_hba.conf was reloaded but password-less connections are still accepted");
    }

    fn tls_files(&self) -> &TlsFiles {
        self.tls
            .as_ref()
            .expect("this PrivatePostgres was started without TLS: use PrivatePostgres::builder().tls(true)")
    }

    fn build_url(&self, user: &str, password: Option<&str>, host: &str, database: &str) -> String {
        let password = password.map(|p| format!(":{}", encode_userinfo(p))).unwrap_or_default();
        let host = if host.contains(':') && !host.starts_with('[') { format!("[{host}]") } else { host.to_owned() };
        format!("postgres://{}{password}@{host}:{}/{database}", encode_userinfo(user), self.port)
    }

    /// Writes a file into the data directory with `mode`, owned by the server's user.
    fn write_data_file(&self, name: &str, contents: &str, mode: u32) -> PathBuf {
        let path = self.data_dir.join(name);
        write_file(&self.tools, &path, contents, mode);
        path
    }

    fn write_certificates(&self) -> TlsFiles {
        let certificates = TestCertificates::generate();
        self.write_data_file("server.crt", certificates.server_cert_pem(), 0o600);
        self.write_data_file("server.key", certificates.server_key_pem(), 0o600);
        let dir = self.root.join("tls");
        std::fs::create_dir(&dir).expect("create the tls folder");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod the tls folder");
        let ca_path = dir.join("ca.crt");
        let wrong_ca_path = dir.join("wrong-ca.crt");
        write_file(&self.tools, &ca_path, certificates.ca_cert_pem(), 0o644);
        write_file(&self.tools, &wrong_ca_path, certificates.wrong_ca_cert_pem(), 0o644);
        TlsFiles { certificates, ca_path, wrong_ca_path }
    }

    fn write_conf(&self) {
        let mut listen = vec![HOST];
        if self.listen_second_loopback {
            listen.push(SECOND_LOOPBACK);
        }
        if self.listen_ipv6 {
            listen.push("::1");
        }
        let mut settings: Vec<(String, String)> = vec![
            ("port".into(), self.port.to_string()),
            ("listen_addresses".into(), listen.join(",")),
            ("unix_socket_directories".into(), self.root.display().to_string()),
            ("fsync".into(), "off".into()),
            ("full_page_writes".into(), "off".into()),
            ("password_encryption".into(), "scram-sha-256".into()),
        ];
        if self.tls.is_some() {
            settings.push(("ssl".into(), "on".into()));
            settings.push(("ssl_cert_file".into(), "server.crt".into()));
            settings.push(("ssl_key_file".into(), "server.key".into()));
        }
        if self.replication {
            settings.push(("wal_level".into(), "replica".into()));
            settings.push(("max_wal_senders".into(), "10".into()));
            settings.push(("wal_keep_size".into(), "256MB".into()));
        }
        settings.extend(self.settings.iter().cloned());
        let mut text = String::from("# Written by cpc-testkit's PrivatePostgres.\n");
        for (name, value) in settings {
            text.push_str(&format!("{name} = {}\n", quote_literal(&value)));
        }
        self.write_data_file(CONF_FILE, &text, 0o600);
    }

    fn write_hba(&self) {
        let scram = self.auth.lock().unwrap_or_else(|e| e.into_inner()).scram;
        let method = if scram { "scram-sha-256" } else { "trust" };
        let kind = if self.require_tls { "hostssl" } else { "host" };
        let mut text = format!(
            "# Written by cpc-testkit's PrivatePostgres. The Unix socket is the harness's trusted admin door.\n\
             local all all trust\n\
             {kind} all all 127.0.0.0/8 {method}\n\
             {kind} all all ::1/128 {method}\n"
        );
        if self.replication {
            text.push_str(&format!("{kind} replication all 127.0.0.1/32 trust\n"));
        }
        self.write_data_file("pg_hba.conf", &text, 0o600);
    }
}

impl std::fmt::Debug for PrivatePostgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivatePostgres")
            .field("port", &self.port)
            .field("data_dir", &self.data_dir)
            .field("tls", &self.tls.is_some())
            .field("require_tls", &self.require_tls)
            .finish_non_exhaustive()
    }
}

impl Drop for PrivatePostgres {
    /// Kills the server (immediate mode, then SIGKILL if it is still there); the folder is deleted afterwards.
    fn drop(&mut self) {
        // A frozen server would not act on the stop signal: let it run first (harmless when it was not frozen).
        let _ = super::os::signal_server(&self.data_dir, "CONT");
        shut_down_hard(&self.tools, &self.root, &self.data_dir);
    }
}

/// Runs blocking work on tokio's blocking pool, re-raising its panic in the caller.
pub(super) async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => value,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("the harness's blocking task was cancelled: {e}"),
    }
}

fn write_file(tools: &PgTools, path: &Path, contents: &str, mode: u32) {
    std::fs::write(path, contents).unwrap_or_else(|e| panic!("could not write {}: {e}", path.display()));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("could not chmod {}: {e}", path.display()));
    tools.hand_over(path).unwrap_or_else(|e| panic!("could not chown {}: {e}", path.display()));
}

fn pg_ctl_start(tools: &PgTools, root: &Path, data_dir: &Path, log: &Path) -> Result<(), String> {
    let log_len = std::fs::metadata(log).map(|m| m.len()).unwrap_or(0);
    let mut cmd = tools.command("pg_ctl", root);
    cmd.arg("start").arg("-w").args(["-t", "60"]).arg("-D").arg(data_dir).arg("-l").arg(log);
    tools.run(cmd).map(|_| ()).map_err(|e| {
        // Only this attempt's part of the log.
        let text = std::fs::read(log).unwrap_or_default();
        let new = String::from_utf8_lossy(text.get(log_len as usize..).unwrap_or_default()).into_owned();
        format!("the private PostgreSQL server did not start: {e}\n--- server log ---\n{new}")
    })
}

fn pg_ctl_stop(tools: &PgTools, root: &Path, data_dir: &Path, mode: &str) -> Result<(), String> {
    if !data_dir.join("postmaster.pid").exists() {
        return Ok(());
    }
    let mut cmd = tools.command("pg_ctl", root);
    cmd.arg("stop").arg("-w").args(["-t", "60", "-m", mode]).arg("-D").arg(data_dir);
    tools.run(cmd).map(|_| ()).map_err(|e| format!("could not stop the private PostgreSQL server: {e}"))
}

/// Immediate stop, then SIGKILL of the postmaster if its pid file is still there. Never panics.
fn shut_down_hard(tools: &PgTools, root: &Path, data_dir: &Path) {
    let _ = pg_ctl_stop(tools, root, data_dir, "immediate");
    let pid_file = data_dir.join("postmaster.pid");
    if let Some(pid) = std::fs::read_to_string(&pid_file).ok().and_then(|t| t.lines().next().map(str::to_owned)) {
        let _ = std::process::Command::new("kill").args(["-9", pid.trim()]).output();
        let _ = std::fs::remove_file(pid_file);
    }
}

/// Stops and deletes the servers of test processes that died without dropping them (their owner pid is gone).
/// Best effort; only on machines with /proc.
fn reap_orphans(tools: &PgTools) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir("/tmp") else { return };
    for entry in entries.filter_map(|e| e.ok()) {
        let dir = entry.path();
        if !entry.file_name().to_string_lossy().starts_with(DIR_PREFIX) {
            continue;
        }
        let Some(owner) = std::fs::read_to_string(dir.join(OWNER_FILE)).ok().and_then(|t| t.trim().parse::<u32>().ok())
        else {
            continue;
        };
        if Path::new("/proc").join(owner.to_string()).exists() {
            continue;
        }
        shut_down_hard(tools, &dir, &dir.join("data"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}

fn can_bind(ip: &str) -> bool {
    TcpListener::bind((ip, 0)).is_ok()
}

/// A port free on 127.0.0.1 (and on the other listen addresses in use).
fn free_port(second_loopback: bool, ipv6: bool) -> u16 {
    super::ports::free_port(|port| {
        (!second_loopback || TcpListener::bind((SECOND_LOOPBACK, port)).is_ok())
            && (!ipv6 || TcpListener::bind(("::1", port)).is_ok())
    })
}

// Keeps the type `Send + Sync` (it is shared through `Arc` in tests); checked at compile time.
const _: fn() = || {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Arc<PrivatePostgres>>();
};
