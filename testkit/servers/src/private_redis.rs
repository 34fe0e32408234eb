//! [`PrivateRedis`]: a redis-server of the test's own, on a free port, that the test may stop and start again.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::TestCertificates;
use super::ports::free_port;

/// A private `redis-server` on 127.0.0.1 and a free port, with no persistence. Dropping it kills the server.
#[derive(Debug)]
pub struct PrivateRedis {
    port: u16,
    password: Option<String>,
    tls: Option<TlsFiles>,
    child: Mutex<Option<Child>>,
}

/// The certificate files of a TLS-only server.
#[derive(Debug)]
struct TlsFiles {
    dir: tempfile::TempDir,
    certificates: TestCertificates,
}

impl PrivateRedis {
    /// Starts a server without a password.
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// Starts a server that requires `password` (`requirepass`).
    pub async fn with_password(password: &str) -> Self {
        Self::start_with(Some(password.to_owned())).await
    }

    /// Starts a TLS-only server (`rediss://`) whose certificate, valid for `localhost` and `127.0.0.1`, is signed
    /// by a throw-away CA ([`PrivateRedis::ca_cert_path`]); a second, unrelated CA is at
    /// [`PrivateRedis::wrong_ca_cert_path`].
    pub async fn with_tls() -> Self {
        let certificates = TestCertificates::generate();
        let dir = tempfile::tempdir().expect("a temporary directory for TLS files");
        for (name, pem) in [
            ("ca.crt", certificates.ca_cert_pem()),
            ("server.crt", certificates.server_cert_pem()),
            ("server.key", certificates.server_key_pem()),
            ("wrong-ca.crt", certificates.wrong_ca_cert_pem()),
        ] {
            std::fs::write(dir.path().join(name), pem).expect("writing a TLS file");
        }
        Self::start_inner(None, Some(TlsFiles { dir, certificates })).await
    }

    async fn start_with(password: Option<String>) -> Self {
        Self::start_inner(password, None).await
    }

    async fn start_inner(password: Option<String>, tls: Option<TlsFiles>) -> Self {
        let port = free_port(|_| true);
        let server = Self { port, password, tls, child: Mutex::new(None) };
        server.spawn().await;
        server
    }

    async fn spawn(&self) {
        let mut cmd = Command::new("redis-server");
        match &self.tls {
            None => cmd.args(["--port", &self.port.to_string()]),
            Some(t) => {
                let file = |n: &str| t.dir.path().join(n).display().to_string();
                cmd.args(["--port", "0", "--tls-port", &self.port.to_string(), "--tls-auth-clients", "no"])
                    .args(["--tls-cert-file", &file("server.crt"), "--tls-key-file", &file("server.key")])
                    .args(["--tls-ca-cert-file", &file("ca.crt")])
            }
        };
        cmd.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--daemonize", "no", "--protected-mode", "no", "--loglevel", "warning"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(p) = &self.password {
            cmd.args(["--requirepass", p]);
        }
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!("cannot start redis-server ({e}); install it (apt-get install redis-server; ./scripts/test.sh does)")
        });
        *self.child.lock().unwrap_or_else(|e| e.into_inner()) = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server on port {} did not start within 10 s", self.port);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://[:password@]127.0.0.1:<port>/0` (`rediss://` for a TLS server).
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "rediss" } else { "redis" };
        match &self.password {
            Some(p) => format!("{scheme}://:{p}@127.0.0.1:{}/0", self.port),
            None => format!("{scheme}://127.0.0.1:{}/0", self.port),
        }
    }

    /// The CA that signed a TLS server's certificate.
    ///
    /// # Panics
    /// If the server was not started [`with_tls`](PrivateRedis::with_tls).
    pub fn ca_cert_path(&self) -> PathBuf {
        self.tls.as_ref().expect("started with_tls").dir.path().join("ca.crt")
    }

    /// A CA that did not sign the server's certificate.
    ///
    /// # Panics
    /// If the server was not started [`with_tls`](PrivateRedis::with_tls).
    pub fn wrong_ca_cert_path(&self) -> PathBuf {
        self.tls.as_ref().expect("started with_tls").dir.path().join("wrong-ca.crt")
    }

    /// The certificates of a TLS server, if any.
    pub fn certificates(&self) -> Option<&TestCertificates> {
        self.tls.as_ref().map(|t| &t.certificates)
    }

    /// Kills the server at once (`SIGKILL`), as a crash would; waits until the port is closed.
    pub fn kill(&self) {
        if let Some(mut child) = self.child.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (after [`PrivateRedis::kill`]).
    pub async fn restart(&self) {
        self.kill();
        self.spawn().await;
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}
