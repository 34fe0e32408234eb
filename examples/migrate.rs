//! Applies, reverts or lists the embedded migrations of the database named by the environment.
//!
//! ```text
//! cargo run --example migrate --features diesel -- status     # the default
//! cargo run --example migrate --features diesel -- up         # apply every pending migration
//! cargo run --example migrate --features diesel -- down [N]   # revert the N (default 1) latest
//! ```
//!
//! The database: SQLite when `SQLITE_PATH` is set or `DATABASE_URL` is a `sqlite:` URL, else PostgreSQL from
//! `DATABASE_URL` and the libpq `PG*` variables. On error it prints one line to stderr and exits with status 1
//! (2 for a usage error).

use std::process::ExitCode;

use cpc_adapters::diesel::migrations::{self, MigrationTarget};

/// What to do.
#[derive(Debug, PartialEq, Eq)]
enum Command {
    Status,
    Up,
    Down(usize),
}

const USAGE: &str = "usage: migrate [status | up | down [N]]";

fn parse(args: &[String]) -> Result<Command, String> {
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        [] | ["status"] => Ok(Command::Status),
        ["up"] => Ok(Command::Up),
        ["down"] => Ok(Command::Down(1)),
        ["down", n] => n.parse().map(Command::Down).map_err(|_| format!("N must be a count, not {n:?}; {USAGE}")),
        _ => Err(USAGE.to_owned()),
    }
}

async fn run(command: Command) -> Result<(), Box<dyn std::error::Error>> {
    let target = MigrationTarget::from_env()?;
    let on = format!("{} {}", target.backend_name(), target.describe());
    match command {
        Command::Status => {
            let status = migrations::status(&target).await?;
            println!("{on}: {} applied, {} pending", status.applied.len(), status.pending.len());
            status.applied.iter().for_each(|v| println!("  applied  {v}"));
            status.pending.iter().for_each(|v| println!("  pending  {v}"));
        }
        Command::Up => {
            let applied = migrations::run_pending(&target).await?;
            println!("{on}: applied {} migration(s)", applied.len());
            applied.iter().for_each(|v| println!("  applied  {v}"));
        }
        Command::Down(n) => {
            let reverted = migrations::revert_last(&target, n).await?;
            println!("{on}: reverted {} migration(s)", reverted.len());
            reverted.iter().for_each(|v| println!("  reverted {v}"));
        }
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match parse(&args) {
        Ok(c) => c,
        Err(usage) => {
            eprintln!("migrate: {usage}");
            return ExitCode::from(2);
        }
    };
    match run(command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("migrate: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_the_commands() {
        assert_eq!(parse(&args(&[])), Ok(Command::Status));
        assert_eq!(parse(&args(&["status"])), Ok(Command::Status));
        assert_eq!(parse(&args(&["up"])), Ok(Command::Up));
        assert_eq!(parse(&args(&["down"])), Ok(Command::Down(1)));
        assert_eq!(parse(&args(&["down", "3"])), Ok(Command::Down(3)));
        assert!(parse(&args(&["down", "-1"])).is_err());
        assert!(parse(&args(&["sideways"])).is_err());
        assert!(parse(&args(&["up", "now"])).is_err());
    }
}
