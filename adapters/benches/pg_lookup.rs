//! Primary-key lookup throughput through the cpc PostgreSQL pool against `pgbench -S -M prepared` with the same
//! number of clients, on the same server, in the same run. Run (needs PostgreSQL and pgbench; `DATABASE_URL`
//! defaults to the local test server):
//!
//! ```sh
//! cargo bench -p cpc-adapters --all-features --bench pg_lookup
//! ```
//!
//! It creates a database `cpc_bench_lookup` (pgbench scale 4: 400,000 accounts), then for 1, 16 and 64 clients
//! runs pgbench for `SECONDS` seconds and the pool for as long, and prints transactions per second and the ratio.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::{per_sec, random};

use cpc_adapters::pool::{PoolConfig, PoolFactory};
use cpc_adapters::postgres::PgConfig;

const SECONDS: u64 = 5;
const SCALE: i32 = 4;
const DB: &str = "cpc_bench_lookup";

fn server() -> PgConfig {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    PgConfig::from_url(&url).expect("DATABASE_URL")
}

fn pgbench(args: &[&str], config: &PgConfig) -> String {
    let out = Command::new("pgbench")
        .args(["-h", &config.host, "-p", &config.port.to_string(), "-U", &config.user])
        .args(args)
        .arg(DB)
        .output()
        .expect("pgbench must be installed (Debian: postgresql-client)");
    assert!(out.status.success(), "pgbench {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn pgbench_tps(clients: usize, config: &PgConfig) -> f64 {
    let c = clients.to_string();
    let j = clients.min(2).to_string();
    let t = SECONDS.to_string();
    let out = pgbench(&["-n", "-S", "-M", "prepared", "-c", &c, "-j", &j, "-T", &t], config);
    out.lines()
        .find_map(|l| l.strip_prefix("tps = ").and_then(|r| r.split_whitespace().next()).and_then(|v| v.parse().ok()))
        .unwrap_or_else(|| panic!("no tps in pgbench output:\n{out}"))
}

async fn pool_tps(clients: usize, config: &PgConfig) -> f64 {
    let mut db = config.clone();
    db.database = DB.into();
    let pool = PoolFactory::create_postgres_pool(&db, &PoolConfig::default().max_connections(clients as u32))
        .await
        .expect("pool");
    per_sec(clients, Duration::ZERO, Duration::from_secs(SECONDS), move |t, n| {
        let pool = pool.clone();
        async move {
            let aid = (random(t, n) % (SCALE as u64 * 100_000)) as i32 + 1;
            let mut conn = pool.get().await.expect("checkout");
            let stmt = conn.prepare_cached("SELECT abalance FROM pgbench_accounts WHERE aid = $1").await.unwrap();
            let row = conn.query_one(&stmt, &[&aid]).await.expect("lookup");
            let _: i32 = row.get(0);
        }
    })
    .await
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !common::started_by_cargo_bench() {
        return;
    }
    let config = server();
    let admin = PoolFactory::create_postgres_pool(&config, &PoolConfig::default()).await.expect("admin pool");
    let conn = admin.get().await.unwrap();
    conn.batch_execute(&format!("DROP DATABASE IF EXISTS {DB} WITH (FORCE)")).await.unwrap();
    conn.batch_execute(&format!("CREATE DATABASE {DB}")).await.unwrap();
    drop(conn);
    pgbench(&["-i", "-q", "-s", &SCALE.to_string()], &config);
    println!("| clients | pgbench -S -M prepared (tps) | cpc pool (lookups/s) | ratio |");
    println!("|---:|---:|---:|---:|");
    for clients in [1, 16, 64] {
        let reference = pgbench_tps(clients, &config);
        let ours = pool_tps(clients, &config).await;
        println!("| {clients} | {reference:.0} | {ours:.0} | {:.2}x |", ours / reference);
    }
    let conn = admin.get().await.unwrap();
    conn.batch_execute(&format!("DROP DATABASE IF EXISTS {DB} WITH (FORCE)")).await.unwrap();
}
