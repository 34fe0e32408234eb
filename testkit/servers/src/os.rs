//! Operating-system helpers for the private server: finding the PostgreSQL binaries, running them as the
//! `postgres` OS user when the tests run as root, and handing files over to that user.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Environment variables that would change what the PostgreSQL tools do (data dir, port, host): removed from every
/// command the harness runs.
const PG_ENV: &[&str] = &[
    "PGDATA",
    "PGPORT",
    "PGHOST",
    "PGHOSTADDR",
    "PGUSER",
    "PGDATABASE",
    "PGOPTIONS",
    "PGPASSWORD",
    "PGSSLMODE",
    "PGCTLTIMEOUT",
];

/// Where the server binaries live and as whom they run.
#[derive(Debug, Clone)]
pub(crate) struct PgTools {
    bindir: PathBuf,
    /// `Some` when the tests run as root: run the tools as this user (PostgreSQL refuses to run as root).
    run_as: Option<OsUser>,
}

/// An OS user the server runs as.
#[derive(Debug, Clone)]
pub(crate) struct OsUser {
    name: String,
    uid: u32,
    gid: u32,
}

impl PgTools {
    /// Finds the binaries and decides the OS user; panics with install hints if either is missing.
    pub(crate) fn discover() -> Self {
        let bindir = find_bindir().unwrap_or_else(|| {
            panic!(
                "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found: looked at $PG_BINDIR, \
                 `pg_config --bindir`, /usr/lib/postgresql/*/bin and /usr/local/pgsql/bin. Install them \
                 (`apt-get install postgresql`) or set PG_BINDIR to the folder that holds initdb and pg_ctl"
            )
        });
        let run_as = if effective_uid() == Some(0) {
            Some(OsUser::lookup("postgres").unwrap_or_else(|cause| {
                panic!(
                    "the tests run as root, and PostgreSQL refuses to run as root, so the private server runs as \
                     the `postgres` OS user, which was not found ({cause}). `apt-get install postgresql` creates \
                     it, or run the tests as an ordinary user"
                )
            }))
        } else {
            None
        };
        PgTools { bindir, run_as }
    }

    /// The full path of a tool in the bin dir.
    pub(crate) fn tool(&self, name: &str) -> PathBuf {
        self.bindir.join(name)
    }

    /// A command that runs `tool` (as the `postgres` user when needed) in `cwd`, with no PG* variables and stdin
    /// from /dev/null (a server that pg_ctl forks must not hold on to our pipes).
    pub(crate) fn command(&self, tool: &str, cwd: &Path) -> Command {
        let mut cmd = match &self.run_as {
            Some(user) => {
                let mut cmd = Command::new("runuser");
                cmd.arg("-u").arg(&user.name).arg("--").arg(self.tool(tool));
                cmd
            }
            None => Command::new(self.tool(tool)),
        };
        for var in PG_ENV {
            cmd.env_remove(var);
        }
        cmd.current_dir(cwd).stdin(Stdio::null());
        cmd
    }

    /// Runs a command built by [`PgTools::command`] and returns its output, or an error text holding its
    /// command line, exit status, stdout and stderr.
    pub(crate) fn run(&self, mut cmd: Command) -> Result<Output, String> {
        let line = format!("{cmd:?}");
        let output = cmd.output().map_err(|e| format!("could not run {line}: {e}"))?;
        if output.status.success() {
            Ok(output)
        } else {
            Err(format!(
                "{line} failed ({}):\n{}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }

    /// Gives `path` (recursively) to the server's OS user; a no-op when the tests do not run as root.
    pub(crate) fn hand_over(&self, path: &Path) -> std::io::Result<()> {
        match &self.run_as {
            Some(user) => chown_recursive(path, user.uid, user.gid),
            None => Ok(()),
        }
    }
}

impl OsUser {
    fn lookup(name: &str) -> Result<Self, String> {
        let id = |flag: &str| -> Result<u32, String> {
            let out = Command::new("id").arg(flag).arg(name).output().map_err(|e| format!("`id`: {e}"))?;
            if !out.status.success() {
                return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
            }
            String::from_utf8_lossy(&out.stdout).trim().parse().map_err(|e| format!("`id {flag} {name}`: {e}"))
        };
        Ok(OsUser { name: name.to_owned(), uid: id("-u")?, gid: id("-g")? })
    }
}

/// The effective user id of this process (from /proc, else `id -u`).
fn effective_uid() -> Option<u32> {
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        // "Uid:\t<real>\t<effective>\t<saved>\t<fs>"
        if let Some(line) = status.lines().find(|l| l.starts_with("Uid:")) {
            return line.split_whitespace().nth(2).and_then(|v| v.parse().ok());
        }
    }
    let out = Command::new("id").arg("-u").output().ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// `$PG_BINDIR`, then `pg_config --bindir`, then the newest `/usr/lib/postgresql/<major>/bin`, then
/// `/usr/local/pgsql/bin`: the first that holds both `initdb` and `pg_ctl`.
fn find_bindir() -> Option<PathBuf> {
    let has_tools = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(dir) = std::env::var_os("PG_BINDIR") {
        candidates.push(dir.into());
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        candidates.push(String::from_utf8_lossy(&out.stdout).trim().into());
    }
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<(u32, PathBuf)> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let major = e.file_name().to_string_lossy().parse::<u32>().ok()?;
                Some((major, e.path().join("bin")))
            })
            .collect();
        versions.sort_by_key(|(major, _)| std::cmp::Reverse(*major));
        candidates.extend(versions.into_iter().map(|(_, dir)| dir));
    }
    candidates.push("/usr/local/pgsql/bin".into());
    candidates.into_iter().find(|dir| has_tools(dir))
}

fn chown_recursive(path: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
    if path.symlink_metadata()?.is_dir() {
        for entry in std::fs::read_dir(path)? {
            chown_recursive(&entry?.path(), uid, gid)?;
        }
    }
    Ok(())
}

/// The postmaster of the server in `data_dir` (the first line of `postmaster.pid`), if it runs.
fn postmaster(data_dir: &Path) -> Option<u32> {
    std::fs::read_to_string(data_dir.join("postmaster.pid"))
        .ok()
        .and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<u32>().ok()))
}

/// The children of process `parent` now (their parent, read from `/proc/<pid>/stat`).
fn children(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // `pid (comm) state ppid ...`: comm may hold spaces and parentheses, so read after the last `)`.
            let ppid = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse::<u32>().ok()?;
            (ppid == parent).then_some(pid)
        })
        .collect()
}

/// Sends `signal` (a `kill` name: `STOP`, `CONT`) to the server in `data_dir`: its postmaster first (a stopped
/// postmaster starts no new backend), then every child it has. A child that ends meanwhile is no error.
pub(crate) fn signal_server(data_dir: &Path, signal: &str) -> Result<(), String> {
    let postmaster = postmaster(data_dir).ok_or("the server is not running")?;
    kill(postmaster, signal)?;
    for child in children(postmaster) {
        let _ = kill(child, signal); // It may have exited since it was listed.
    }
    Ok(())
}

fn kill(pid: u32, signal: &str) -> Result<(), String> {
    let output = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .output()
        .map_err(|e| format!("could not run kill: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!("kill -{signal} {pid} failed: {}", String::from_utf8_lossy(&output.stderr).trim()))
    }
}
