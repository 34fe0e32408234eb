//! The `migrate` command line, for the library's `migrate` example and an app's own `migrate` binary.

use std::fmt::Write as _;
use std::process::ExitCode;

use super::{MigrationSet, MigrationState, MigrationTarget, revert_last_with, run_pending_with, status_with};
use crate::DbError;

const USAGE: &str = "usage: migrate [status | up | down [N]]";

/// What the command line asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Command {
    Status,
    Up,
    Down(usize),
}

fn parse<S: AsRef<str>>(args: &[S]) -> Result<Command, String> {
    match args.iter().map(AsRef::as_ref).collect::<Vec<&str>>().as_slice() {
        [] | ["status"] => Ok(Command::Status),
        ["up"] => Ok(Command::Up),
        ["down"] => Ok(Command::Down(1)),
        ["down", n] => n.parse().map(Command::Down).map_err(|_| format!("N must be a count, not {n:?}; {USAGE}")),
        _ => Err(USAGE.to_owned()),
    }
}

/// Why [`cli_on`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// The arguments are not `[status | up | down [N]]`; the message says what is expected.
    #[error("{0}")]
    Usage(String),
    /// The environment does not name a database, or names it wrongly; the error names the variable.
    #[error(transparent)]
    Config(#[from] cpc_ports::ConfigError),
    /// The database or the migrations failed (an unreachable server, a failing migration, sets that cannot run
    /// together...).
    #[error(transparent)]
    Failed(#[from] DbError),
}

impl CliError {
    /// The process exit status for it: 2 for a usage error, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) => 2,
            Self::Config(_) | Self::Failed(_) => 1,
        }
    }
}

/// The `migrate` command line on the database the environment names ([`MigrationTarget::from_env`]), with the
/// library's migrations and `sets` (an app's own, see [`MigrationSet`]):
///
/// ```text
/// migrate [status]   list every migration of every set, applied or pending, and applied ones no set knows
/// migrate up         apply every pending migration, by version across the sets
/// migrate down [N]   revert the N (default 1) newest applied migrations, whichever set has them
/// ```
///
/// `args` are the arguments after the program name. It prints the result to stdout, an error as one line to
/// stderr, and returns the exit status: 0, 1 on error, 2 for a usage error. An app's `migrate` binary is:
///
/// ```no_run
/// # use cpc_diesel::migrations::{self, MigrationSet};
/// # const APP: MigrationSet = migrations::LIBRARY;
/// #[tokio::main(flavor = "current_thread")]
/// async fn main() -> std::process::ExitCode {
///     migrations::cli(std::env::args().skip(1), &[APP]).await
/// }
/// ```
pub async fn cli<I, S>(args: I, sets: &[MigrationSet]) -> ExitCode
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let args: Vec<String> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    // A usage error is reported before the environment is read.
    let result = match parse(&args) {
        Err(usage) => Err(CliError::Usage(usage)),
        Ok(_) => match MigrationTarget::from_env() {
            Ok(target) => cli_on(&target, &args, sets).await,
            Err(e) => Err(e.into()),
        },
    };
    match result {
        Ok(output) => {
            print!("{output}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("migrate: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// [`cli`] on `target`, returning what it would print instead of printing it.
pub async fn cli_on<S: AsRef<str>>(
    target: &MigrationTarget,
    args: &[S],
    sets: &[MigrationSet],
) -> Result<String, CliError> {
    let command = parse(args).map_err(CliError::Usage)?;
    let on = format!("{} {}", target.backend_name(), target.describe());
    let mut out = String::new();
    // Writing to a String cannot fail.
    match command {
        Command::Status => {
            let report = status_with(target, sets).await?;
            let count = |s| report.in_state(s).count();
            let _ = write!(
                out,
                "{on}: {} applied, {} pending",
                count(MigrationState::Applied),
                count(MigrationState::Pending)
            );
            match count(MigrationState::Unknown) {
                0 => out.push('\n'),
                n => {
                    let _ = writeln!(out, ", {n} applied but in no set given");
                }
            }
            let width = report.entries.iter().map(|e| e.set_label().len()).max().unwrap_or(0);
            for e in &report.entries {
                let what = e.name.as_deref().unwrap_or(&e.version);
                let _ = writeln!(out, "  {:<8} {:<width$}  {what}", e.state.as_str(), e.set_label());
            }
        }
        Command::Up | Command::Down(_) => {
            let (done, verb) = match command {
                Command::Down(n) => (revert_last_with(target, n, sets).await?, "reverted"),
                _ => (run_pending_with(target, sets).await?, "applied"),
            };
            let _ = writeln!(out, "{on}: {verb} {} migration(s)", done.len());
            let width = done.iter().map(|m| m.set.len()).max().unwrap_or(0);
            for m in &done {
                let _ = writeln!(out, "  {verb:<8} {:<width$}  {}", m.set, m.name);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_commands() {
        assert_eq!(parse::<&str>(&[]), Ok(Command::Status));
        assert_eq!(parse(&["status"]), Ok(Command::Status));
        assert_eq!(parse(&["up"]), Ok(Command::Up));
        assert_eq!(parse(&["down"]), Ok(Command::Down(1)));
        assert_eq!(parse(&["down", "3"]), Ok(Command::Down(3)));
        assert!(parse(&["down", "-1"]).is_err());
        assert!(parse(&["sideways"]).is_err());
        assert!(parse(&["up", "now"]).is_err());
    }

    #[test]
    fn a_usage_error_exits_with_2_and_others_with_1() {
        assert_eq!(CliError::Usage(USAGE.into()).exit_code(), 2);
        assert_eq!(CliError::Failed(DbError::backend("migrations", "boom")).exit_code(), 1);
    }
}
