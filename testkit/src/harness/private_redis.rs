//! [`PrivateRedis`]: a redis-server of the test's own, on a free port, that the test may stop and start again.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A private `redis-server` on 127.0.0.1 and a free port, with no persistence. Dropping it kills the server.
#[derive(Debug)]
pub struct PrivateRedis {
    port: u16,
    password: Option<String>,
    child: Mutex<Option<Child>>,
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

    async fn start_with(password: Option<String>) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free TCP port on 127.0.0.1");
        let server = Self { port, password, child: Mutex::new(None) };
        server.spawn().await;
        server
    }

    async fn spawn(&self) {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
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

    /// `redis://[:password@]127.0.0.1:<port>/0`.
    pub fn url(&self) -> String {
        match &self.password {
            Some(p) => format!("redis://:{p}@127.0.0.1:{}/0", self.port),
            None => format!("redis://127.0.0.1:{}/0", self.port),
        }
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
