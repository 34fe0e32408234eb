//! The Diesel repositories over a PostgreSQL primary and a streaming replica, both real servers started by the
//! harness (`PrivateReplicaPair`): where reads go (stale-allowed reads on the replica, strong reads, writes and
//! units of work on the primary), read-your-writes, a replica killed and brought back, a lagging replica taken
//! out, and the repository and unit-of-work contract suites over the replica set.
//!
//! A paused replica (`pause_replay`) is how a test proves where a read went: it keeps answering with old data,
//! so a read that sees the latest write ran on the primary, and one that misses it ran on the replica. Each test
//! starts its own pair (nextest runs every test in a process of its own), in a couple of seconds.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "diesel")]

#[allow(dead_code)]
mod common;

use std::time::{Duration, Instant};

use cpc_adapters::diesel::DieselPgBackend;
use cpc_adapters::diesel::migrations::{self, MigrationTarget};
use cpc_adapters::diesel::{DbManager, ReadConsistency, ReplicaConfig, ReplicaPolicy, ReplicaSet};
use cpc_adapters::pool::{DatabaseError, Pool, PoolConfig};
use cpc_adapters::postgres::PgConfig;
use cpc_domain::{NewUser, UpdateUser};
use cpc_ports::{HealthStatus, RepoError};
use cpc_test_servers::PrivateReplicaPair;
use cpc_testkit::contract::repository::DataPorts;

/// A migrated database `app` on a primary + replica pair, and a manager over both (strong reads).
struct Setup {
    db: DbManager,
    pair: PrivateReplicaPair,
}

impl Setup {
    async fn start(policy: ReplicaPolicy) -> Self {
        let (pair, config) = prepare(policy).await;
        let db = DbManager::postgres_with_replicas(&config).await.unwrap();
        Self { db, pair }
    }

    async fn with_defaults() -> Self {
        Self::start(ReplicaPolicy::default().recheck_interval(Duration::from_millis(200))).await
    }

    fn set(&self) -> &ReplicaSet<DieselPgBackend> {
        self.db.replica_set().expect("a replica set")
    }

    fn replica_reads(&self) -> u64 {
        self.set().stats().replica_reads[0]
    }

    fn primary_reads(&self) -> u64 {
        self.set().stats().primary_reads
    }

    /// A user created through the strong manager, replayed on the replica.
    async fn replicated_user(&self, name: &str) -> cpc_domain::User {
        let user = self.db.users().create(NewUser::new(name, &format!("{name}@example.org")).unwrap()).await.unwrap();
        self.pair.wait_replayed().await;
        user
    }

    /// User `ada`, replayed on the replica, then renamed `ada2` on the primary with replay paused: the replica
    /// shows the first version, the primary the second. Returns both.
    async fn renamed_behind_the_replica(&self) -> (cpc_domain::User, cpc_domain::User) {
        let user = self.replicated_user("ada").await;
        self.pair.pause_replay().await;
        let renamed = self.db.users().update(&user.id, user.version, rename("ada2")).await.unwrap();
        (user, renamed)
    }
}

/// A started pair with database `app` migrated and replayed, and the configuration of a set over it.
async fn prepare(policy: ReplicaPolicy) -> (PrivateReplicaPair, ReplicaConfig) {
    let pair = PrivateReplicaPair::start().await;
    let (primary_url, replica_url) = pair.create_database("app").await;
    let primary = PgConfig::from_url(&primary_url).unwrap();
    migrations::run_pending(&MigrationTarget::Postgres(primary.clone())).await.unwrap();
    pair.wait_replayed().await;
    let config = ReplicaConfig::builder(primary)
        .replica(PgConfig::from_url(&replica_url).unwrap())
        .pool(PoolConfig::default().max_connections(4))
        .policy(policy)
        .build()
        .unwrap();
    (pair, config)
}

fn rename(name: &str) -> UpdateUser {
    UpdateUser { username: Some(cpc_domain::Username::parse(name).unwrap()), ..UpdateUser::default() }
}

/// Polls `done` every 50 ms until it holds, failing after `limit`.
async fn eventually(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_reads_land_on_the_replica_and_strong_reads_on_the_primary() {
    let s = Setup::with_defaults().await;
    let (user, renamed) = s.renamed_behind_the_replica().await;
    let stale = s.db.stale_reads();
    assert_eq!(stale.consistency(), ReadConsistency::AllowStale);
    assert_eq!(s.db.consistency(), ReadConsistency::Strong, "reads are strong unless the caller opts in");
    let seen = stale.users().find_by_id(&user.id).await.unwrap().unwrap();
    assert_eq!(seen, user, "the stale read ran on the paused replica: it misses the rename");
    assert_eq!((s.replica_reads(), s.primary_reads()), (1, 0));

    let strong = s.db.users().find_by_id(&user.id).await.unwrap().unwrap();
    assert_eq!(strong, renamed, "the strong read ran on the primary");
    assert_eq!(s.replica_reads(), 1, "and not on the replica");

    for _ in 0..3 {
        stale.users().count(&[]).await.unwrap();
    }
    assert_eq!(s.replica_reads(), 4, "every stale read of a caller that wrote nothing went to the replica");
    s.pair.resume_replay().await;
    assert_eq!(stale.users().find_by_id(&user.id).await.unwrap(), Some(renamed), "the replica caught up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callers_own_write_is_read_back_at_once_and_other_callers_read_the_replica() {
    let s = Setup::with_defaults().await;
    s.replicated_user("warm").await;
    s.pair.pause_replay().await;

    let me = s.db.stale_reads();
    let mine = me.users().create(NewUser::new("mine", "mine@example.org").unwrap()).await.unwrap();
    assert_eq!(me.users().find_by_id(&mine.id).await.unwrap(), Some(mine.clone()), "read-your-writes");
    assert_eq!(me.users().find_by_email(&mine.email).await.unwrap(), Some(mine.clone()));
    assert_eq!((s.replica_reads(), s.primary_reads()), (0, 2), "both reads went to the primary");

    let other = s.db.stale_reads();
    assert_eq!(other.users().find_by_id(&mine.id).await.unwrap(), None, "another caller reads the stale replica");
    assert_eq!(s.replica_reads(), 1);

    s.pair.resume_replay().await;
    assert_eq!(me.users().find_by_id(&mine.id).await.unwrap(), Some(mine), "a caught-up replica serves the writer");
    assert_eq!(s.replica_reads(), 2, "from the replica, once it replayed past the write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn units_of_work_run_on_the_primary_and_their_commits_count_as_the_callers_writes() {
    let s = Setup::with_defaults().await;
    let (user, renamed) = s.renamed_behind_the_replica().await;
    let stale = s.db.stale_reads();
    let (seen, created) = stale
        .transaction(|tx| {
            Box::pin(async move {
                let seen = tx.users().find_by_id(&user.id).await?;
                let created = tx.users().create(NewUser::new("grace", "grace@example.org").unwrap()).await?;
                Ok::<_, RepoError>((seen, created))
            })
        })
        .await
        .unwrap();
    assert_eq!(seen, Some(renamed), "the read inside the unit of work ran on the primary");
    assert_eq!(s.replica_reads(), 0, "nothing in the unit of work touched the replica");
    assert_eq!(
        stale.users().find_by_id(&created.id).await.unwrap(),
        Some(created),
        "the commit counts as the caller's write: its next read goes to the primary"
    );
    assert_eq!((s.replica_reads(), s.primary_reads()), (0, 1));
    s.pair.resume_replay().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_replica_is_taken_out_reads_fall_back_and_it_comes_back() {
    let s = Setup::with_defaults().await;
    let user = s.replicated_user("ada").await;
    let stale = s.db.stale_reads();
    assert_eq!(stale.users().find_by_id(&user.id).await.unwrap(), Some(user.clone()));
    assert_eq!(s.replica_reads(), 1);

    s.pair.replica().kill();
    for _ in 0..5 {
        let started = Instant::now();
        let read = tokio::time::timeout(Duration::from_secs(5), stale.users().find_by_id(&user.id)).await;
        assert_eq!(read.expect("bounded").unwrap(), Some(user.clone()), "the read fell back to the primary");
        assert!(started.elapsed() < Duration::from_secs(2), "fallback took {:?}", started.elapsed());
    }
    let health = &s.set().replicas()[0];
    assert!(!health.up, "the dead replica is out of rotation");
    assert!(health.last_error.is_some());
    assert_eq!(s.replica_reads(), 1, "no read was served by the dead replica");
    assert_eq!(s.primary_reads(), 5);
    assert_eq!(s.set().stats().fallbacks, 1, "only the first read tried the dead replica");
    let report = s.db.health_check().check().await;
    assert_eq!(report.details.get("replicas_up").map(String::as_str), Some("0/1"));
    assert_eq!(report.status, HealthStatus::Degraded, "working on the primary, short of a replica");

    s.pair.restart_replica().await;
    eventually(Duration::from_secs(10), "the replica back in rotation", || s.set().replicas()[0].up).await;
    let report = s.db.health_check().check().await;
    assert_eq!((report.status, report.details["replicas_up"].as_str()), (HealthStatus::Healthy, "1/1"));
    assert_eq!(stale.users().find_by_id(&user.id).await.unwrap(), Some(user));
    assert_eq!(s.replica_reads(), 2, "the replica serves stale reads again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_down_at_start_up_starts_out_of_rotation_and_joins_once_it_answers() {
    let (pair, config) = prepare(ReplicaPolicy::default().recheck_interval(Duration::from_millis(200))).await;
    pair.replica().kill();
    let started = Instant::now();
    let db = DbManager::postgres_with_replicas(&config).await.expect("a down replica does not stop the start");
    assert!(started.elapsed() < Duration::from_secs(2), "start-up took {:?}", started.elapsed());
    let set = db.replica_set().unwrap();
    let health = &set.replicas()[0];
    assert!(!health.up, "the unreachable replica starts out of rotation");
    let reason = health.last_error.clone().unwrap();
    assert!(reason.contains("unreachable at start-up"), "{reason}");

    let stale = db.stale_reads();
    let user = db.users().create(NewUser::new("ada", "ada@example.org").unwrap()).await.unwrap();
    assert_eq!(db.stale_reads().users().find_by_id(&user.id).await.unwrap(), Some(user.clone()));
    assert_eq!((set.stats().replica_reads[0], set.stats().primary_reads), (0, 1), "read on the primary");

    pair.restart_replica().await;
    pair.wait_replayed().await;
    eventually(Duration::from_secs(10), "the replica in rotation once it answers", || set.replicas()[0].up).await;
    assert_eq!(stale.users().find_by_id(&user.id).await.unwrap(), Some(user));
    assert_eq!(set.stats().replica_reads[0], 1, "the replica serves stale reads");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_refuses_its_configuration_fails_the_start_naming_the_cause() {
    let (pair, mut config) = prepare(ReplicaPolicy::default()).await;
    config.replicas[0] = PgConfig::from_url(&pair.replica().url_for_database("no_such_db")).unwrap();
    let error = DbManager::postgres_with_replicas(&config).await.expect_err("a misconfigured replica is an error");
    assert!(matches!(error, DatabaseError::DatabaseNotFound { .. }), "{error:?}");
    assert!(error.to_string().contains("no_such_db"), "{error}");
}

/// A replica that hangs (SIGSTOP: connections stay open, nothing answers) while its connection was just used:
/// the read itself gets no answer and is abandoned at `read_timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_replica_costs_one_bounded_read_then_reads_go_to_the_primary_until_it_answers() {
    hung_replica(false).await;
}

/// The same with its connection idle past the validation window: the checkout's validation ping gets no answer
/// and is abandoned at `check_timeout` (the recheck's checkout too, so it takes the replica out as well).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_replica_with_idle_connections_is_taken_out_at_checkout() {
    hung_replica(true).await;
}

async fn hung_replica(idle_first: bool) {
    let policy = ReplicaPolicy::default()
        .recheck_interval(Duration::from_millis(200))
        .check_timeout(Duration::from_millis(300))
        .read_timeout(Some(Duration::from_millis(500)));
    let s = Setup::start(policy).await;
    let user = s.replicated_user("ada").await;
    let stale = s.db.stale_reads();
    assert_eq!(stale.users().find_by_id(&user.id).await.unwrap(), Some(user.clone()));
    assert_eq!(s.replica_reads(), 1);
    if idle_first {
        // Past the pool's validation window (500 ms): the next checkout pings the connection first.
        tokio::time::sleep(Duration::from_millis(700)).await;
    }

    s.pair.replica().freeze();
    let started = Instant::now();
    let read = tokio::time::timeout(Duration::from_secs(5), stale.users().find_by_id(&user.id)).await;
    assert_eq!(read.expect("bounded").unwrap(), Some(user.clone()), "the read was run on the primary");
    assert!(started.elapsed() < Duration::from_secs(2), "the hung read took {:?}", started.elapsed());
    let health = &s.set().replicas()[0];
    assert!(!health.up, "the hung replica is out of rotation");
    let reason = health.last_error.clone().unwrap();
    assert!(reason.contains("no answer") || reason.contains("no connection"), "{reason}");
    for _ in 0..3 {
        let started = Instant::now();
        assert_eq!(stale.users().find_by_id(&user.id).await.unwrap(), Some(user.clone()));
        assert!(started.elapsed() < Duration::from_millis(500), "a later read took {:?}", started.elapsed());
    }
    // The recheck keeps it out while it hangs: its checkout is bounded too.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(!s.set().replicas()[0].up, "a recheck put the hung replica back");
    assert_eq!(s.replica_reads(), 1, "no read was served by the hung replica");
    assert_eq!((s.primary_reads(), s.set().stats().fallbacks), (4, 1));

    s.pair.replica().thaw();
    eventually(Duration::from_secs(10), "the thawed replica back in rotation", || s.set().replicas()[0].up).await;
    assert_eq!(stale.users().find_by_id(&user.id).await.unwrap(), Some(user));
    assert_eq!(s.replica_reads(), 2, "the replica serves stale reads again");
}

/// Routing reaches an installed `metrics` recorder: reads by server, fallbacks, the replica's up gauge and its
/// take-outs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_is_reported_to_the_metrics_recorder() {
    use common::recorded::{find, series};
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    let (pair, config) = prepare(ReplicaPolicy::default().recheck_interval(Duration::from_secs(60))).await;
    let pool = |c: &PgConfig, name: &str| {
        let (c, pool_config, name) = (c.clone(), config.pool.clone(), name.to_owned());
        async move { Pool::new(DieselPgBackend::new(&c).unwrap(), &pool_config, name).await.unwrap() }
    };
    let (primary, replica) = (pool(&config.primary, "p").await, pool(&config.replicas[0], "r").await);
    let replica_address = replica.address().to_owned();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let set = metrics::with_local_recorder(&recorder, || ReplicaSet::new(primary, vec![replica], config.policy));
    let db = DbManager::replicated(set);
    let (on_replica, replica) = ([("server", replica_address.as_str())], [("replica", replica_address.as_str())]);

    let stale = db.stale_reads();
    stale.users().count(&[]).await.unwrap();
    stale.users().count(&[]).await.unwrap();
    let before = series(&snapshotter);
    assert_eq!(find(&before, "cpc_db_replica_reads_total", &on_replica), &DebugValue::Counter(2));
    assert_eq!(find(&before, "cpc_db_replica_reads_total", &[("server", "primary")]), &DebugValue::Counter(0));
    assert_eq!(find(&before, "cpc_db_replica_up", &replica), &DebugValue::Gauge(1.0.into()));

    pair.replica().kill();
    stale.users().count(&[]).await.unwrap();
    let after = series(&snapshotter);
    assert_eq!(find(&after, "cpc_db_replica_reads_total", &[("server", "primary")]), &DebugValue::Counter(1));
    assert_eq!(find(&after, "cpc_db_replica_fallbacks_total", &[]), &DebugValue::Counter(1));
    assert_eq!(find(&after, "cpc_db_replica_taken_out_total", &replica), &DebugValue::Counter(1));
    assert_eq!(find(&after, "cpc_db_replica_reads_total", &on_replica), &DebugValue::Counter(0), "none since");
    // A snapshot also resets gauges, so the gauge is checked where it rises again: the replica back in rotation.
    assert!(!db.replica_set().unwrap().replicas()[0].up);
    pair.restart_replica().await;
    db.replica_set().unwrap().check_now().await;
    assert!(db.replica_set().unwrap().replicas()[0].up);
    assert_eq!(find(&series(&snapshotter), "cpc_db_replica_up", &replica), &DebugValue::Gauge(1.0.into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_lagging_past_max_lag_is_taken_out_until_it_catches_up() {
    let policy =
        ReplicaPolicy::default().recheck_interval(Duration::from_millis(100)).max_lag(Some(Duration::from_millis(300)));
    let s = Setup::start(policy).await;
    let user = s.replicated_user("ada").await;
    s.pair.pause_replay().await;
    // The replica receives this write but does not replay it: its lag grows from now on.
    s.db.users().update(&user.id, user.version, rename("ada2")).await.unwrap();
    eventually(Duration::from_secs(10), "the lagging replica out of rotation", || !s.set().replicas()[0].up).await;
    let last_error = s.set().replicas()[0].last_error.clone().unwrap();
    assert!(last_error.contains("lags"), "{last_error}");
    let renamed = s.db.stale_reads().users().find_by_id(&user.id).await.unwrap().unwrap();
    assert_eq!(renamed.username.as_str(), "ada2", "with the replica out, the stale read ran on the primary");

    s.pair.resume_replay().await;
    eventually(Duration::from_secs(10), "the caught-up replica back", || s.set().replicas()[0].up).await;
}

/// Every case of the repository and unit-of-work contract suites, through a stale-reads view (a new one per
/// case) over the replica set, on one shared database (the cases keep to their own rows).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_repository_and_unit_of_work_contracts_pass_over_the_replica_set() {
    let s = Setup::with_defaults().await;
    let cases = cpc_testkit::contract::repository::all()
        .into_iter()
        .chain(cpc_testkit::contract::uow::all())
        .collect::<Vec<_>>();
    assert!(cases.len() > 40, "both suites listed");
    for (name, case) in cases {
        let view = s.db.stale_reads();
        let ports = DataPorts {
            users: view.users(),
            entities: view.entities(),
            customers: view.customers(),
            transactions: view.transactions(),
            uow: view.unit_of_work(),
        };
        let started = Instant::now();
        case(&ports).await;
        tracing::debug!(case = name, took = ?started.elapsed());
    }
    let stats = s.set().stats();
    assert!(stats.replica_reads[0] > 0, "some contract reads were served by the replica: {stats:?}");
}

/// An app's own record, declared as an app declares it.
mod notes {
    #![allow(missing_docs)]

    diesel::table! {
        use cpc_adapters::diesel::sql_types::*;
        notes (id) {
            id -> Uuid,
            body -> Text,
            version -> BigInt,
        }
    }

    #[derive(Debug, Clone, PartialEq, diesel::Queryable, diesel::Selectable)]
    #[diesel(table_name = notes)]
    pub struct Note {
        pub id: uuid::Uuid,
        pub body: String,
        pub version: i64,
    }

    #[derive(Debug, Clone)]
    pub struct NewNote {
        pub body: String,
    }

    cpc_adapters::record! {
        Note in notes as "note" {
            key: id: uuid::Uuid,
            new: NewNote,
            update: NewNote {},
            fields: NoteField { body },
            version: version,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apps_record_reads_its_own_writes_and_other_callers_read_the_replica() {
    use diesel_async::SimpleAsyncConnection;
    use notes::{NewNote, Note};

    let (pair, config) = prepare(ReplicaPolicy::default().recheck_interval(Duration::from_millis(200))).await;
    let db = DbManager::postgres_with_replicas(&config).await.unwrap();
    let cpc_adapters::diesel::DbPool::Postgres(primary) = db.pool() else { unreachable!("a PostgreSQL manager") };
    let table = "CREATE TABLE notes (id UUID PRIMARY KEY, body TEXT NOT NULL, version BIGINT NOT NULL)";
    primary.get().await.unwrap().batch_execute(table).await.unwrap();
    db.register::<Note>();
    pair.wait_replayed().await;
    pair.pause_replay().await;
    let set = db.replica_set().unwrap().clone();
    let reads = move || (set.stats().replica_reads[0], set.stats().primary_reads);

    let me = db.stale_reads();
    let mine = me.repository::<Note>().create(NewNote { body: "mine".into() }).await.unwrap();
    assert_eq!(me.repository::<Note>().find_by_id(&mine.id).await.unwrap(), Some(mine.clone()), "read-your-writes");
    assert_eq!(reads(), (0, 1), "the writer's read went to the primary");
    let other = db.stale_reads();
    assert_eq!(
        other.repository::<Note>().find_by_id(&mine.id).await.unwrap(),
        None,
        "another caller reads the replica"
    );
    assert_eq!(reads(), (1, 1));
    pair.resume_replay().await;
    pair.wait_replayed().await;
    assert_eq!(other.repository::<Note>().find_by_id(&mine.id).await.unwrap(), Some(mine));
    assert_eq!(reads(), (2, 1), "from the caught-up replica");
}
