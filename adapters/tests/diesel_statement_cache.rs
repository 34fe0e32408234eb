//! Filtered reads keep their prepared statements, on PostgreSQL and SQLite: a `select` with a filter, a `count`
//! with a filter and a keyset page each prepare their statement once per connection (Diesel's `CacheQuery`
//! instrumentation event fires on the first call only) and still return the rows of each call's own values; an
//! `IN` list, whose SQL grows with the list, is never cached.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "diesel")]

use std::path::Path;
use std::sync::{Arc, Mutex};

use cpc_adapters::diesel::migrations::{self, MigrationTarget};
use cpc_adapters::diesel::sql::SqlTable;
use cpc_adapters::diesel::{AsyncSqliteConnection, DbManager, DbPool};
use cpc_adapters::pool::PoolConfig;
use cpc_adapters::postgres::PgConfig;
use cpc_adapters::sqlite::SqliteConfig;
use cpc_domain::{NewUser, User};
use cpc_ports::{Direction, Filter, Sort, UserField, Value};
use cpc_test_servers::TestDatabase;
use diesel::connection::InstrumentationEvent;
use diesel_async::AsyncConnection;

/// What a connection reported: a statement run (its SQL and binds, as Diesel shows them) or a statement put in
/// the cache (its SQL).
#[derive(Debug, Clone)]
enum Event {
    Run(String),
    Cached(String),
}

/// The events a connection reported, in order.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<Event>>>);

impl Log {
    /// Starts recording `conn`'s events.
    fn attach<C: AsyncConnection>(&self, conn: &mut C) {
        let events = Arc::clone(&self.0);
        conn.set_instrumentation(move |event: InstrumentationEvent<'_>| match event {
            InstrumentationEvent::StartQuery { query, .. } => {
                events.lock().unwrap().push(Event::Run(query.to_string()))
            }
            InstrumentationEvent::CacheQuery { sql, .. } => events.lock().unwrap().push(Event::Cached(sql.to_owned())),
            _ => {}
        });
    }

    /// The events of running `call`: how many statements ran and the SQL of those put in the cache.
    async fn during<T>(&self, call: impl Future<Output = T>) -> (T, usize, Vec<String>) {
        let before = self.0.lock().unwrap().len();
        let out = call.await;
        let events = self.0.lock().unwrap()[before..].to_vec();
        let runs = events.iter().filter(|e| matches!(e, Event::Run(_))).count();
        let cached = events.into_iter().filter_map(|e| if let Event::Cached(sql) = e { Some(sql) } else { None });
        (out, runs, cached.collect())
    }

    /// The SQL of the last statement run (without the binds Diesel shows after it).
    fn last_sql(&self) -> String {
        let events = self.0.lock().unwrap();
        let shown = events.iter().rev().find_map(|e| if let Event::Run(q) = e { Some(q.clone()) } else { None });
        let shown = shown.expect("a statement ran");
        shown.split(" -- binds: ").next().unwrap().to_owned()
    }
}

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

fn names(users: &[User]) -> Vec<&str> {
    users.iter().map(|u| u.username.as_str()).collect()
}

/// Seeds `alice`, `albert`, `bob`, `carol` and `dave`; returns them by name.
async fn seed(db: &DbManager) -> Vec<User> {
    let users = db.users();
    let mut made = Vec::new();
    for name in ["alice", "albert", "bob", "carol", "dave"] {
        made.push(users.create(NewUser::new(name, &format!("{name}@example.org")).unwrap()).await.unwrap());
    }
    made
}

/// Each filtered read twice with other values on one connection: right rows both times, one statement each time,
/// cached on the first call only (so prepared once); the `IN` list never cached.
async fn filtered_reads_prepare_once<C>(conn: &mut C, seeded: &[User])
where
    C: AsyncConnection,
    User: SqlTable<C>,
{
    let log = Log::default();
    log.attach(conn);
    let by = |name: &str| seeded.iter().find(|u| u.username.as_str() == name).unwrap();

    // A one-row select with one filter (what find_by_username runs).
    let eq = |name: &str| vec![Filter::Eq(UserField::Username, text(name))];
    let (rows, runs, cached) = log.during(User::select(conn, &eq("alice"), &[], None, 0, 1)).await;
    assert_eq!(names(&rows.unwrap()), ["alice"]);
    assert_eq!(runs, 1);
    assert!(matches!(&cached[..], [sql] if sql.contains(r#""username" = "#)), "cached on the first call: {cached:?}");
    let (rows, runs, cached) = log.during(User::select(conn, &eq("bob"), &[], None, 0, 1)).await;
    assert_eq!(names(&rows.unwrap()), ["bob"], "the second call's own value, not the cached first one");
    assert_eq!((runs, cached), (1, vec![]), "the statement came from the cache");

    // A count with a prefix filter (two binds: the length and the text).
    let prefix = |p: &str| vec![Filter::Prefix(UserField::Username, p.into())];
    let (n, _, cached) = log.during(User::count(conn, &prefix("al"))).await;
    assert_eq!(n.unwrap(), 2);
    assert_eq!(cached.len(), 1, "{cached:?}");
    let (n, runs, cached) = log.during(User::count(conn, &prefix("b"))).await;
    assert_eq!(n.unwrap(), 1);
    assert_eq!((runs, cached), (1, vec![]));

    // Keyset pages: username ascending after (username, id), with a range filter.
    let from_a = vec![Filter::Range { field: UserField::Username, from: Some(text("a")), to: None }];
    let sort = [Sort { field: UserField::Username, direction: Direction::Asc }];
    let after = |name: &str| Some(vec![text(name), Value::Uuid(*by(name).id.as_uuid())]);
    let (rows, _, cached) = log.during(User::select(conn, &from_a, &sort, after("albert"), 0, 2)).await;
    assert_eq!(names(&rows.unwrap()), ["alice", "bob"]);
    assert_eq!(cached.len(), 1, "{cached:?}");
    let (rows, runs, cached) = log.during(User::select(conn, &from_a, &sort, after("bob"), 0, 2)).await;
    assert_eq!(names(&rows.unwrap()), ["carol", "dave"]);
    assert_eq!((runs, cached), (1, vec![]));

    // An IN list of the same length twice: never cached.
    let list = |a: &str, b: &str| vec![Filter::In(UserField::Username, vec![text(a), text(b)])];
    let sorted = [Sort { field: UserField::Username, direction: Direction::Asc }];
    for (a, b) in [("alice", "carol"), ("bob", "dave")] {
        let (rows, runs, cached) = log.during(User::select(conn, &list(a, b), &sorted, None, 0, 10)).await;
        assert_eq!(names(&rows.unwrap()), [a, b]);
        assert_eq!((runs, cached), (1, vec![]), "an IN list is not cached");
    }
}

/// Runs `check` on the one connection of a manager on a migrated SQLite file holding the seeded users, with the
/// users and the file's path.
async fn on_sqlite(check: impl AsyncFnOnce(&mut AsyncSqliteConnection, &[User], &Path)) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data.db");
    let config = SqliteConfig::file(&file);
    migrations::run_pending(&MigrationTarget::Sqlite(config.clone())).await.unwrap();
    let db = DbManager::sqlite(&config, &PoolConfig::default().max_connections(1)).await.unwrap();
    let seeded = seed(&db).await;
    let DbPool::Sqlite(pool) = db.pool() else { panic!("a sqlite pool") };
    let mut conn = pool.get().await.unwrap();
    check(&mut conn, &seeded, &file).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_filtered_reads_prepare_their_statements_once() {
    on_sqlite(async |conn, seeded, _| filtered_reads_prepare_once(conn, seeded).await).await;
}

/// SQLite prepares a statement again whenever a bare `LIMIT ?` is bound (it plans with the bound limit), so a
/// cached page read would be compiled at every run; the statement a page read runs binds its limit as `+?`, which
/// SQLite evaluates at run time: run twice with new binds it is never re-prepared (SQLite's own count), where the
/// same SQL with a bare `LIMIT ?` is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_page_reads_are_not_prepared_again_at_each_run() {
    on_sqlite(async |conn, _, file| {
        let log = Log::default();
        log.attach(conn);
        let from = |s: &str| vec![Filter::Range { field: UserField::Username, from: Some(text(s)), to: None }];
        let sort = [Sort { field: UserField::Username, direction: Direction::Asc }];
        let rows = User::select(conn, &from("b"), &sort, None, 1, 2).await.unwrap();
        assert_eq!(names(&rows), ["carol", "dave"], "LIMIT 2 OFFSET 1");
        let ours = log.last_sql();
        assert!(ours.ends_with(" LIMIT +? OFFSET ?"), "{ours}");

        let raw = rusqlite::Connection::open(file).unwrap();
        let reprepared = |sql: &str| {
            let mut statement = raw.prepare(sql).unwrap();
            for (start, limit, offset, expected) in [("a", 2, 0, 2), ("c", 5, 1, 1)] {
                statement.raw_bind_parameter(1, start).unwrap();
                statement.raw_bind_parameter(2, limit).unwrap();
                statement.raw_bind_parameter(3, offset).unwrap();
                let mut rows = statement.raw_query();
                let mut n = 0;
                while rows.next().unwrap().is_some() {
                    n += 1;
                }
                assert_eq!(n, expected, "{sql} from {start}");
            }
            statement.get_status(rusqlite::StatementStatus::RePrepare)
        };
        assert_eq!(reprepared(&ours), 0, "{ours}");
        let bare = ours.replace(" LIMIT +? ", " LIMIT ? ");
        assert!(reprepared(&bare) > 0, "the bare form is re-prepared (else this test shows nothing): {bare}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_filtered_reads_prepare_their_statements_once() {
    let test_db = TestDatabase::create().await;
    let config = PgConfig::from_url(test_db.url()).unwrap();
    migrations::run_pending(&MigrationTarget::Postgres(config.clone())).await.unwrap();
    let db = DbManager::postgres(&config, &PoolConfig::default().max_connections(1)).await.unwrap();
    let seeded = seed(&db).await;
    let DbPool::Postgres(pool) = db.pool() else { panic!("a postgres pool") };
    let mut conn = pool.get().await.unwrap();
    filtered_reads_prepare_once(&mut *conn, &seeded).await;
}
