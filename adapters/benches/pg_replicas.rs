//! Replica-routed reads against primary-only reads, side by side in one run. Run (needs the PostgreSQL server
//! binaries, as the test harness does; it starts its own primary and streaming replica on 127.0.0.1):
//!
//! ```sh
//! cargo bench -p cpc-adapters --all-features --bench pg_replicas
//! ```
//!
//! A private primary + replica pair (`PrivateReplicaPair`, same settings as the tests: `fsync` off) gets a
//! migrated database with `SEED_USERS` users, replayed on the replica. Then, for 1, 16 and 64 tasks,
//! `find_by_id` of a random seeded user runs through `DbManager::users()` (strong: every read on the primary)
//! and through `DbManager::stale_reads().users()` (every read on the replica: the view never writes, so
//! read-your-writes never sends it to the primary), with a pool of `tasks` connections per server (at most 32).
//! Rounds are interleaved (`ROUNDS` of each, the order rotating) and the best round of each kept.
//!
//! On the 2-core machine the figures in docs/BENCHMARKS.md come from, primary and replica share the same two
//! cores (with the benchmark itself): routing moves work between two servers on one CPU, so it cannot show a
//! capacity gain there, only what routing costs or saves per read.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

use cpc_adapters::diesel::migrations::{self, MigrationTarget};
use cpc_adapters::diesel::{DbManager, ReplicaConfig};
use cpc_adapters::pool::PoolConfig;
use cpc_adapters::postgres::PgConfig;
use cpc_domain::{NewUser, UserId};
use cpc_ports::UserRepository;
use cpc_test_servers::PrivateReplicaPair;
use futures::FutureExt;

mod common;
use common::{measure, rotated};

const ROUNDS: usize = 3;
const SEED_USERS: usize = 10_000;
const TASKS: [usize; 3] = [1, 16, 64];

/// Read throughput of `users` at `tasks` tasks, each reading random ids of `ids`.
async fn reads(users: Arc<dyn UserRepository>, ids: Arc<Vec<UserId>>, tasks: usize) -> f64 {
    measure(tasks, move |r| {
        let (users, ids) = (users.clone(), ids.clone());
        async move {
            let id = &ids[(r % ids.len() as u64) as usize];
            assert!(users.find_by_id(id).await.unwrap().is_some());
        }
    })
    .await
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !common::started_by_cargo_bench() {
        return;
    }
    let pair = PrivateReplicaPair::start().await;
    let (primary_url, replica_url) = pair.create_database("bench").await;
    let primary = PgConfig::from_url(&primary_url).unwrap();
    migrations::run_pending(&MigrationTarget::Postgres(primary.clone())).await.unwrap();

    let mut rows = Vec::new();
    for tasks in TASKS {
        let config = ReplicaConfig::builder(primary.clone())
            .replica(PgConfig::from_url(&replica_url).unwrap())
            .pool(PoolConfig::default().max_connections(tasks.min(32) as u32))
            .build()
            .unwrap();
        let db = DbManager::postgres_with_replicas(&config).await.unwrap();
        if rows.is_empty() {
            let new = (0..SEED_USERS)
                .map(|i| NewUser::new(&format!("user{i:05}"), &format!("user{i:05}@bench.example")).unwrap());
            db.users().create_many(new.collect()).await.unwrap();
            pair.wait_replayed().await;
        }
        let ids: Vec<UserId> = {
            let page = cpc_ports::Query::new().offset(0, 1000);
            db.users().find_page(&page).await.unwrap().items.into_iter().map(|u| u.id).collect()
        };
        let ids = Arc::new(ids);
        let (strong, stale) = (db.users(), db.stale_reads().users());
        let mut best = [0.0; 2];
        for round in 0..ROUNDS {
            let runs = vec![
                reads(strong.clone(), ids.clone(), tasks).boxed(),
                reads(stale.clone(), ids.clone(), tasks).boxed(),
            ];
            rotated(round, runs, &mut best).await;
        }
        // The routed reads the replica served (the others fell back to the primary: the replica was out of
        // rotation for a while, e.g. a recheck timed out on the loaded machine).
        let set = db.replica_set().unwrap();
        let stats = set.stats();
        let on_replica = stats.replica_reads[0] as f64 / (stats.replica_reads[0] + stats.primary_reads) as f64;
        if let Some(why) = &set.replicas()[0].last_error {
            eprintln!("tasks {tasks}: the replica was out of rotation at some point: {why}");
        }
        rows.push((tasks, best, on_replica));
    }

    println!("\n### find_by_id: primary only vs replica-routed (stale reads allowed)\n");
    println!(
        "| tasks | primary only (reads/s) | replica-routed (reads/s) | routed / primary | routed reads served by the replica |"
    );
    println!("|---:|---:|---:|---:|---:|");
    for (tasks, [strong, stale], on_replica) in rows {
        println!("| {tasks} | {strong:.0} | {stale:.0} | {:.2}x | {:.1}% |", stale / strong, on_replica * 100.0);
    }
}
