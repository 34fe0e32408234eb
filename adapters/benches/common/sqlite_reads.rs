//! The `sqlite-reads` group of the instructions bench (`#[path = "common/sqlite_reads.rs"] mod sqlite_reads;` in
//! `instructions.rs`): the repository's SQLite reads other than `find_by_id` (issue 20), each against the same
//! statement written by hand for rusqlite (a cached prepared statement through `SqlitePool::interact`, rows
//! decoded to the same types). Every subject's inputs are built before the measured part, so a call costs only
//! its read: ours its `Arc<dyn UserRepository>` call, rusqlite its `interact` with a clone of the text it binds.

use std::sync::Arc;

use cpc_adapters::diesel::DbManager;
use cpc_adapters::pool::{PoolConfig, PoolFactory};
use cpc_adapters::sqlite::{SqliteConfig, SqlitePool};
use cpc_domain::{Email, User, UserId, Username};
use cpc_ports::{Filter, Query, UserField, UserRepository, Value};

use crate::users_row::{UserTuple, sqlite_row};

/// Rows a page of `page-*` returns (the repository reads one more, to know whether a next page exists).
const PAGE: u32 = 20;

/// The subjects: `(name, what it runs)`; `OP-cpc` against `OP-rusqlite`.
pub const SUBJECTS: &[(&str, &str)] = &[
    ("exists-cpc", "Repository::exists on SQLite (DbManager::users())"),
    ("exists-rusqlite", "rusqlite: SELECT EXISTS(SELECT 1 FROM users WHERE id = ?1) through SqlitePool::interact"),
    ("email-cpc", "UserRepository::find_by_email on SQLite"),
    ("email-rusqlite", "rusqlite: SELECT .. FROM users WHERE lower(email) = lower(?1), decoded to the same types"),
    ("username-cpc", "UserRepository::find_by_username on SQLite (a one-row select)"),
    ("username-rusqlite", "rusqlite: SELECT .. FROM users WHERE username = ?1 ORDER BY id LIMIT 1"),
    ("count-cpc", "Repository::count with one filter (username = ..) on SQLite"),
    ("count-rusqlite", "rusqlite: SELECT COUNT(*) FROM users WHERE username = ?1"),
    ("page-cpc", "Repository::find_page: username >= .., sorted by username, keyset page of 20 (reads 21 rows)"),
    ("page-rusqlite", "rusqlite: SELECT .. WHERE username >= ?1 ORDER BY username, id LIMIT 21, decoded"),
];

const EXISTS: &str = "SELECT EXISTS(SELECT 1 FROM users WHERE id = ?1)";
const BY_EMAIL: &str =
    "SELECT id, username, email, created_at, updated_at, version FROM users WHERE lower(email) = lower(?1)";
const BY_USERNAME: &str =
    "SELECT id, username, email, created_at, updated_at, version FROM users WHERE username = ?1 ORDER BY id LIMIT 1";
const COUNT: &str = "SELECT COUNT(*) FROM users WHERE username = ?1";
const PAGE_SQL: &str = "SELECT id, username, email, created_at, updated_at, version FROM users \
     WHERE username >= ?1 ORDER BY username ASC, id ASC LIMIT 21";

/// Whether `name` is a subject of this group.
pub fn has(name: &str) -> bool {
    SUBJECTS.iter().any(|(n, _)| *n == name)
}

/// The operation a subject runs.
#[derive(Clone, Copy)]
pub enum Op {
    Exists,
    Email,
    Username,
    Count,
    Page,
}

/// What the calls of one operation read, built once (call `i` takes entry `i % len`).
pub struct Inputs {
    ids: Vec<UserId>,
    emails: Vec<Email>,
    usernames: Vec<Username>,
    counts: Vec<Vec<Filter<UserField>>>,
    pages: Vec<Query<UserField>>,
    /// What rusqlite binds for the same call, as text.
    text: Vec<String>,
}

/// One subject, cloned once per task.
#[derive(Clone)]
pub enum Reads {
    Cpc(Arc<dyn UserRepository>, Op, Arc<Inputs>),
    Rusqlite(SqlitePool, Op, Arc<Inputs>),
}

impl Reads {
    /// Sets subject `name` up on the seeded database at `config` (`ids`: its users, `user{n:05}` in creation
    /// order), with one connection per task.
    pub async fn new(name: &str, config: &SqliteConfig, ids: Vec<UserId>, tasks: usize) -> Self {
        let (op, side) = name.split_once('-').expect("a subject of this group");
        let op = match op {
            "exists" => Op::Exists,
            "email" => Op::Email,
            "username" => Op::Username,
            "count" => Op::Count,
            _ => Op::Page,
        };
        let n = ids.len();
        let name = |k: usize| format!("user{k:05}");
        let email = |k: usize| format!("user{k:05}@bench.example");
        // A page starts early enough that it always has 21 rows.
        let page_start = |k: usize| k % (n - PAGE as usize - 1);
        let text: Vec<String> = match op {
            Op::Exists => ids.iter().map(|id| id.as_uuid().hyphenated().to_string()).collect(),
            Op::Email => (0..n).map(email).collect(),
            Op::Username | Op::Count => (0..n).map(name).collect(),
            Op::Page => (0..n).map(|k| name(page_start(k))).collect(),
        };
        let inputs = Arc::new(Inputs {
            emails: (0..n).map(|k| Email::parse(&email(k)).unwrap()).collect(),
            usernames: (0..n).map(|k| Username::parse(&name(k)).unwrap()).collect(),
            counts: (0..n).map(|k| vec![Filter::Eq(UserField::Username, Value::Text(name(k)))]).collect(),
            pages: (0..n)
                .map(|k| {
                    Query::new()
                        .range(UserField::Username, Some(Value::Text(name(page_start(k)))), None)
                        .asc(UserField::Username)
                        .after(None, PAGE)
                })
                .collect(),
            ids,
            text,
        });
        let pool_config = PoolConfig::default().max_connections(tasks as u32);
        if side == "cpc" {
            let manager = DbManager::sqlite(config, &pool_config).await.unwrap();
            Self::Cpc(manager.users(), op, inputs)
        } else {
            Self::Rusqlite(PoolFactory::create_sqlite_pool(config, &pool_config).await.unwrap(), op, inputs)
        }
    }

    /// Call `i` of the operation; asserts what it read, so a subject that reads nothing fails.
    pub async fn call(&self, i: u64) {
        let k = i as usize;
        match self {
            Self::Cpc(repo, op, inp) => match op {
                Op::Exists => assert!(repo.exists(&inp.ids[k % inp.ids.len()]).await.unwrap()),
                Op::Email => assert!(repo.find_by_email(&inp.emails[k % inp.emails.len()]).await.unwrap().is_some()),
                Op::Username => {
                    let found: Option<User> =
                        repo.find_by_username(&inp.usernames[k % inp.usernames.len()]).await.unwrap();
                    assert!(found.is_some());
                }
                Op::Count => assert_eq!(repo.count(&inp.counts[k % inp.counts.len()]).await.unwrap(), 1),
                Op::Page => {
                    let page = repo.find_page(&inp.pages[k % inp.pages.len()]).await.unwrap();
                    assert_eq!(page.items.len(), PAGE as usize);
                }
            },
            Self::Rusqlite(pool, op, inp) => {
                let bind = inp.text[k % inp.text.len()].clone();
                match op {
                    Op::Exists => {
                        let found: bool = pool
                            .interact(move |c| c.prepare_cached(EXISTS)?.query_row([bind], |r| r.get(0)))
                            .await
                            .unwrap();
                        assert!(found);
                    }
                    Op::Email | Op::Username => {
                        let sql = if matches!(op, Op::Email) { BY_EMAIL } else { BY_USERNAME };
                        let row = pool.interact(move |c| c.prepare_cached(sql)?.query_row([bind], sqlite_row)).await;
                        std::hint::black_box(row.unwrap());
                    }
                    Op::Count => {
                        let n: i64 = pool
                            .interact(move |c| c.prepare_cached(COUNT)?.query_row([bind], |r| r.get(0)))
                            .await
                            .unwrap();
                        assert_eq!(n, 1);
                    }
                    Op::Page => {
                        let rows = pool
                            .interact(move |c| {
                                c.prepare_cached(PAGE_SQL)?
                                    .query_map([bind], sqlite_row)?
                                    .collect::<rusqlite::Result<Vec<UserTuple>>>()
                            })
                            .await
                            .unwrap();
                        assert_eq!(rows.len(), PAGE as usize + 1);
                    }
                }
            }
        }
    }
}
