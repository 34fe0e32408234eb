//! `cpc-instances`: a small composition root meant to run as several OS processes against one database.
//!
//! Each run wires the ports with `Ports::from_env("instances")` (so `DATABASE_URL=postgres://...` with no
//! `REDIS_URL`, or `CPC_KV_BACKEND=postgres`, puts every key-value port on PostgreSQL), runs one command, and
//! prints what happened as one JSON object per line on stdout, starting with `{"event":"wired",...}`. An error
//! is one line on stderr and exit status 1; a command line it does not understand is exit status 2.
//!
//! Commands that must start together with another process (`spend`, `work`) print `{"event":"ready"}` and
//! wait for a line on stdin (or its end) before they begin; `hold-lock` holds its lock until then.
//! `cargo run -p cpc-example-instances -- help` lists the commands.

mod commands;

use std::process::ExitCode;

use cpc_data::prelude::*;

/// What `help` prints.
const USAGE: &str = "\
usage: cpc-instances COMMAND [ARGS]
  ping                               wire (and migrate), then exit
  hold-lock KEY                      take lock KEY, hold it until a line (or the end) on stdin, release it
  try-lock KEY WAIT_MS               try lock KEY for up to WAIT_MS: `acquired` (then release) or `busy`
  spend KEY CAPACITY COUNT POLICY    after a line on stdin, COUNT concurrent checks of cost 1 on KEY
                                     (POLICY `bucket`: a token bucket of CAPACITY refilled 1 an hour;
                                     `window`: CAPACITY per hour, sliding)
  create-session JSON                store JSON as a new session, print its id
  read-session ID                    print the session's data (or `missing`)
  subscribe CHANNEL COUNT            subscribe, print `ready`, print COUNT messages, exit
  publish CHANNEL MESSAGE...         publish each MESSAGE (a string) on CHANNEL
  enqueue QUEUE N                    enqueue N jobs {\"n\": 0..N}
  work QUEUE PAUSE_MS                after a line on stdin, reserve+ack until the queue is empty, pausing
                                     PAUSE_MS per job
  stats QUEUE                        print the queue's counts
  help                               this text
Environment: DATABASE_URL, CPC_KV_BACKEND, REDIS_URL, ... as `Settings::from_env` reads them.";

/// Why a run failed.
type Failure = Box<dyn std::error::Error + Send + Sync>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match commands::Command::parse(&args) {
        Ok(Some(command)) => command,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("cpc-instances: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cpc-instances: could not start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cpc-instances: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Wires the ports, says so, and runs `command` on them.
async fn run(command: commands::Command) -> Result<(), Failure> {
    let ports = Ports::from_env("instances").await?;
    commands::emit(&serde_json::json!({
        "event": "wired",
        "ports": ports.description,
        "pid": std::process::id(),
    }));
    command.run(&ports).await
}
