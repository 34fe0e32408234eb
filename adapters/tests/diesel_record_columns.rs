//! An app's own records declared with `record!`, on PostgreSQL and SQLite: every column type the declaration
//! supports (text, i32, i64, bool, f64, timestamps, dates, UUIDs, JSON, and nullable forms) round-trips and can be
//! filtered (=, ranges, IN, IS NULL, IS NOT NULL, OR, prefixes); database-assigned `i64` keys; a table without
//! version or timestamps; audit rows for integer keys; a unit of work handing out the app's repository and running
//! the app's own SQL; a declaration that does not match its table refused at start-up, naming table and column.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
#![cfg(feature = "diesel")]

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use cpc_adapters::diesel::{AuditConfig, DbManager, DbPool, DieselConn, with_connection};
use cpc_adapters::pool::PoolConfig;
use cpc_adapters::postgres::PgConfig;
use cpc_adapters::sqlite::SqliteConfig;
use cpc_domain::Version;
use cpc_ports::{Filter, Query, RecordStoreExt, RepoError, TxExt, UnitOfWorkExt, Value};
use cpc_test_servers::TestDatabase;
use diesel::sql_types::BigInt;
use diesel_async::{AsyncConnection, RunQueryDsl, SimpleAsyncConnection};
use uuid::Uuid;

diesel::table! {
    use cpc_adapters::diesel::sql_types::*;
    samples (id) {
        id -> Uuid,
        label -> Text,
        small -> Integer,
        big -> BigInt,
        flag -> Bool,
        ratio -> Double,
        at -> Timestamptz,
        day -> Date,
        other -> Uuid,
        doc -> Jsonb,
        maybe_label -> Nullable<Text>,
        maybe_small -> Nullable<Integer>,
        maybe_flag -> Nullable<Bool>,
        maybe_ratio -> Nullable<Double>,
        maybe_at -> Nullable<Timestamptz>,
        maybe_day -> Nullable<Date>,
        maybe_other -> Nullable<Uuid>,
        maybe_doc -> Nullable<Jsonb>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        version -> BigInt,
    }
}

diesel::table! {
    use cpc_adapters::diesel::sql_types::*;
    tags (id) {
        id -> BigInt,
        name -> Text,
        sample_id -> Nullable<Uuid>,
    }
}

/// A record with a column of every supported type.
#[derive(Debug, Clone, PartialEq, diesel::Queryable, diesel::Selectable)]
#[diesel(table_name = samples)]
pub struct Sample {
    pub id: Uuid,
    pub label: String,
    pub small: i32,
    pub big: i64,
    pub flag: bool,
    pub ratio: f64,
    pub at: DateTime<Utc>,
    pub day: NaiveDate,
    pub other: Uuid,
    pub doc: serde_json::Value,
    pub maybe_label: Option<String>,
    pub maybe_small: Option<i32>,
    pub maybe_flag: Option<bool>,
    pub maybe_ratio: Option<f64>,
    pub maybe_at: Option<DateTime<Utc>>,
    pub maybe_day: Option<NaiveDate>,
    pub maybe_other: Option<Uuid>,
    pub maybe_doc: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
}

/// What creating a sample takes.
#[derive(Debug, Clone)]
pub struct NewSample {
    pub label: String,
    pub small: i32,
    pub big: i64,
    pub flag: bool,
    pub ratio: f64,
    pub at: DateTime<Utc>,
    pub day: NaiveDate,
    pub other: Uuid,
    pub doc: serde_json::Value,
    pub maybe_label: Option<String>,
    pub maybe_small: Option<i32>,
    pub maybe_flag: Option<bool>,
    pub maybe_ratio: Option<f64>,
    pub maybe_at: Option<DateTime<Utc>>,
    pub maybe_day: Option<NaiveDate>,
    pub maybe_other: Option<Uuid>,
    pub maybe_doc: Option<serde_json::Value>,
}

/// What updating a sample may change.
#[derive(Debug, Clone, Default)]
pub struct SampleChanges {
    pub label: Option<String>,
    pub maybe_at: Option<Option<DateTime<Utc>>>,
}

cpc_adapters::record! {
    Sample in samples as "sample" {
        key: id: Uuid,
        new: NewSample,
        update: SampleChanges { label, maybe_at },
        fields: SampleField {
            label, small, big, flag, ratio, at, day, other, doc, maybe_label, maybe_small, maybe_flag, maybe_ratio,
            maybe_at, maybe_day, maybe_other, maybe_doc,
        },
        version: version,
        created_at: created_at,
        updated_at: updated_at,
        unique: { "label" => |s| Some(s.label.clone()) },
    }
}

/// A record with a database-assigned key and neither version nor timestamps.
#[derive(Debug, Clone, PartialEq, diesel::Queryable, diesel::Selectable)]
#[diesel(table_name = tags)]
pub struct Tag {
    pub id: i64,
    pub name: String,
    pub sample_id: Option<Uuid>,
}

/// What creating a tag takes.
#[derive(Debug, Clone)]
pub struct NewTag {
    pub name: String,
}

/// What updating a tag may change.
#[derive(Debug, Clone, Default)]
pub struct TagChanges {
    pub name: Option<String>,
    pub sample_id: Option<Option<Uuid>>,
}

cpc_adapters::record! {
    Tag in tags as "tag" {
        key: id: i64,
        new: NewTag,
        update: TagChanges { name, sample_id },
        fields: TagField { name, sample_id = None },
        references: { sample_id => Sample },
    }
}

/// The same table as `samples` declared with a column the table lacks.
mod drifted {
    diesel::table! {
        use cpc_adapters::diesel::sql_types::*;
        tags (id) {
            id -> BigInt,
            name -> Text,
            colour -> Text,
        }
    }

    #[derive(Debug, Clone, diesel::Queryable, diesel::Selectable)]
    #[diesel(table_name = tags)]
    pub struct Drifted {
        pub id: i64,
        pub name: String,
        pub colour: String,
    }

    #[derive(Debug, Clone)]
    pub struct NewDrifted {
        pub name: String,
        pub colour: String,
    }

    cpc_adapters::record! {
        Drifted in tags as "drifted" {
            key: id: i64,
            new: NewDrifted,
            update: NewDrifted {},
            fields: DriftedField { name, colour },
        }
    }
}

const PG_TABLES: &str = "
CREATE TABLE samples (
    id UUID PRIMARY KEY, label TEXT NOT NULL UNIQUE, small INTEGER NOT NULL, big BIGINT NOT NULL,
    flag BOOLEAN NOT NULL, ratio DOUBLE PRECISION NOT NULL, at TIMESTAMPTZ NOT NULL, day DATE NOT NULL,
    other UUID NOT NULL, doc JSONB NOT NULL, maybe_label TEXT, maybe_small INTEGER, maybe_flag BOOLEAN,
    maybe_ratio DOUBLE PRECISION, maybe_at TIMESTAMPTZ, maybe_day DATE, maybe_other UUID, maybe_doc JSONB,
    created_at TIMESTAMPTZ NOT NULL, updated_at TIMESTAMPTZ NOT NULL, version BIGINT NOT NULL);
CREATE TABLE tags (id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL,
    sample_id UUID REFERENCES samples (id) ON DELETE RESTRICT);";

const SQLITE_TABLES: &str = "
CREATE TABLE samples (
    id TEXT PRIMARY KEY, label TEXT NOT NULL UNIQUE, small INTEGER NOT NULL, big INTEGER NOT NULL,
    flag BOOLEAN NOT NULL, ratio REAL NOT NULL, at TEXT NOT NULL, day TEXT NOT NULL,
    other TEXT NOT NULL, doc TEXT NOT NULL, maybe_label TEXT, maybe_small INTEGER, maybe_flag BOOLEAN,
    maybe_ratio REAL, maybe_at TEXT, maybe_day TEXT, maybe_other TEXT, maybe_doc TEXT,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL, version INTEGER NOT NULL);
CREATE TABLE tags (id INTEGER PRIMARY KEY, name TEXT NOT NULL,
    sample_id TEXT REFERENCES samples (id) ON DELETE RESTRICT);";

/// A migrated PostgreSQL database with the test tables; the database lives as long as the returned guard.
async fn postgres() -> (DbManager, TestDatabase) {
    let db = TestDatabase::create().await;
    let config = PgConfig::from_url(db.url()).unwrap();
    let target = cpc_adapters::diesel::migrations::MigrationTarget::Postgres(config.clone());
    cpc_adapters::diesel::migrations::run_pending(&target).await.unwrap();
    let mut conn = diesel_async::AsyncPgConnection::establish(db.url()).await.unwrap();
    conn.batch_execute(PG_TABLES).await.unwrap();
    let manager = DbManager::postgres(&config, &PoolConfig::default()).await.unwrap();
    (manager, db)
}

/// A migrated SQLite file with the test tables.
async fn sqlite() -> (DbManager, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = SqliteConfig::file(dir.path().join("app.db"));
    let target = cpc_adapters::diesel::migrations::MigrationTarget::Sqlite(config.clone());
    cpc_adapters::diesel::migrations::run_pending(&target).await.unwrap();
    let manager = DbManager::sqlite(&config, &PoolConfig::default()).await.unwrap();
    let DbPool::Sqlite(pool) = manager.pool() else { unreachable!() };
    let mut conn = pool.get().await.unwrap();
    conn.batch_execute(SQLITE_TABLES).await.unwrap();
    drop(conn);
    (manager, dir)
}

fn at(secs: i64, micros: u32) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, micros * 1000).single().unwrap()
}

fn new_sample(n: i64, with_options: bool) -> NewSample {
    let some = |v| if with_options { Some(v) } else { None };
    NewSample {
        label: format!("sample-{n:03} 'quoted' ✓"),
        small: i32::try_from(n).unwrap() - 50,
        big: n * 1_000_000_000_000,
        flag: n % 2 == 0,
        ratio: n as f64 / 8.0,
        at: at(1_700_000_000 + n, 123_456),
        day: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap() + chrono::Days::new(n as u64),
        other: Uuid::from_u128(n as u128),
        doc: serde_json::json!({"n": n, "tags": ["a", "b"], "nested": {"ok": true}}),
        maybe_label: some(format!("maybe-{n}")),
        maybe_small: with_options.then_some(7),
        maybe_flag: with_options.then_some(true),
        maybe_ratio: with_options.then_some(-0.5),
        maybe_at: with_options.then(|| at(1_600_000_000, 1)),
        maybe_day: with_options.then(|| NaiveDate::from_ymd_opt(1999, 12, 31).unwrap()),
        maybe_other: with_options.then(|| Uuid::from_u128(u128::MAX - n as u128)),
        maybe_doc: with_options.then(|| serde_json::json!([1, 2, 3])),
    }
}

async fn every_column_round_trips(db: &DbManager) {
    let samples = db.repository::<Sample>();
    let full = samples.create(new_sample(1, true)).await.unwrap();
    let empty = samples.create(new_sample(2, false)).await.unwrap();
    assert_eq!(samples.find_by_id(&full.id).await.unwrap().as_ref(), Some(&full));
    assert_eq!(samples.find_by_id(&empty.id).await.unwrap().as_ref(), Some(&empty));
    assert_eq!(full.version, 1);
    assert_eq!(full.doc["nested"]["ok"], serde_json::json!(true));
    assert_eq!(empty.maybe_doc, None);
    // The page reads back the same rows, in id order (UUIDv7: creation order).
    let page = samples.find_page(&Query::new()).await.unwrap();
    assert_eq!(page.items, vec![full, empty]);
}

async fn every_kind_of_filter_works(db: &DbManager) {
    let samples = db.repository::<Sample>();
    let rows = samples.create_many((1..=6).map(|n| new_sample(n, n % 3 != 0)).collect()).await.unwrap();
    let count = |filters: Vec<Filter<SampleField>>| {
        let samples = samples.clone();
        async move { samples.count(&filters).await.unwrap() }
    };
    assert_eq!(count(vec![Filter::Eq(SampleField::small, Value::from(-48))]).await, 1);
    assert_eq!(count(vec![Filter::Eq(SampleField::flag, Value::from(true))]).await, 3);
    assert_eq!(
        count(vec![Filter::Range { field: SampleField::ratio, from: Some(0.25.into()), to: Some(0.5.into()) }]).await,
        2
    );
    let day3 = NaiveDate::from_ymd_opt(2026, 1, 4).unwrap();
    assert_eq!(count(vec![Filter::Range { field: SampleField::day, from: Some(day3.into()), to: None }]).await, 4);
    assert_eq!(count(vec![Filter::Range { field: SampleField::at, from: None, to: Some(rows[2].at.into()) }]).await, 2);
    assert_eq!(count(vec![Filter::Eq(SampleField::other, Value::Uuid(Uuid::from_u128(5)))]).await, 1);
    assert_eq!(count(vec![Filter::any_of(SampleField::big, [1_000_000_000_000_i64, 6_000_000_000_000, 9])]).await, 2);
    assert_eq!(count(vec![Filter::any_of(SampleField::big, Vec::<i64>::new())]).await, 0);
    assert_eq!(count(vec![Filter::IsNull(SampleField::maybe_at)]).await, 2);
    assert_eq!(count(vec![Filter::IsNotNull(SampleField::maybe_doc)]).await, 4);
    assert_eq!(count(vec![Filter::IsNull(SampleField::maybe_doc)]).await, 2);
    let either =
        Filter::Or(vec![Filter::IsNull(SampleField::maybe_label), Filter::Eq(SampleField::small, Value::from(-49))]);
    assert_eq!(count(vec![either.clone()]).await, 3);
    assert_eq!(count(vec![either, Filter::Eq(SampleField::flag, Value::from(false))]).await, 2);
    assert_eq!(count(vec![Filter::Prefix(SampleField::label, "sample-00".into())]).await, 6);
    assert_eq!(count(vec![Filter::Prefix(SampleField::label, "SAMPLE".into())]).await, 0);
    // A comparison with a nullable column set to NULL is never true (SQL semantics, as the fake has them).
    assert_eq!(count(vec![Filter::Eq(SampleField::maybe_small, Value::from(7))]).await, 4);
    // Refused before reaching the database, naming the field.
    let refused = samples.count(&[Filter::Eq(SampleField::doc, Value::Json("{}".into()))]).await.unwrap_err();
    assert!(matches!(&refused, RepoError::Validation(v) if v.field == "doc"), "{refused:?}");
    let refused = samples.find_page(&Query::new().asc(SampleField::maybe_at)).await.unwrap_err();
    assert!(matches!(&refused, RepoError::Validation(v) if v.field == "maybe_at"), "{refused:?}");
    // Keyset paging on a non-key column goes through every row once.
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = samples
            .find_page(&Query::new().desc(SampleField::flag).asc(SampleField::ratio).after(cursor, 4))
            .await
            .unwrap();
        seen.extend(page.items.iter().map(|s| s.id));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let mut expected: Vec<_> = rows.iter().map(|s| s.id).collect();
    expected.sort_by_key(|id| rows.iter().find(|s| s.id == *id).map(|s| (!s.flag, (s.ratio * 8.0) as i64)));
    assert_eq!(seen, expected);
}

async fn updates_are_versioned_and_uniques_conflict(db: &DbManager) {
    let samples = db.repository::<Sample>();
    let s = samples.create(new_sample(1, true)).await.unwrap();
    let changes = SampleChanges { maybe_at: Some(None), ..SampleChanges::default() };
    let updated = samples.update(&s.id, Version::FIRST, changes.clone()).await.unwrap();
    assert_eq!((updated.version, updated.maybe_at, updated.created_at), (2, None, s.created_at));
    assert!(updated.updated_at >= s.updated_at);
    assert_eq!(samples.find_by_id(&s.id).await.unwrap(), Some(updated));
    let stale = samples.update(&s.id, Version::FIRST, changes).await.unwrap_err();
    assert!(matches!(stale, RepoError::Conflict { entity: "sample", .. }), "{stale:?}");
    let taken = samples.create(new_sample(1, false)).await.unwrap_err();
    assert!(
        matches!(&taken, RepoError::Conflict { kind: cpc_ports::ConflictKind::Duplicate { field }, .. } if field == "label"),
        "{taken:?}"
    );
}

async fn serial_keys_are_assigned_and_unversioned_rows_take_the_last_write(db: &DbManager) {
    let tags = db.repository::<Tag>();
    let a = tags.create(NewTag { name: "a".into() }).await.unwrap();
    let many = tags.create_many(vec![NewTag { name: "b".into() }, NewTag { name: "c".into() }]).await.unwrap();
    assert!(a.id > 0 && many[0].id > a.id && many[1].id > many[0].id, "{a:?} {many:?}");
    assert_eq!(tags.find_by_id(&many[1].id).await.unwrap().as_ref(), Some(&many[1]));
    // No version column: any expected version is accepted, the last write wins.
    let renamed = tags
        .update(&a.id, Version::new(41), TagChanges { name: Some("z".into()), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(renamed.name, "z");
    assert_eq!(tags.find_by_id(&a.id).await.unwrap().unwrap().name, "z");
    let page = tags.find_page(&Query::new().asc(TagField::name)).await.unwrap();
    assert_eq!(page.items.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["b", "c", "z"]);
    assert!(tags.delete(&many[0].id).await.unwrap());
    assert!(!tags.exists(&many[0].id).await.unwrap());
    assert!(matches!(
        tags.update(&many[0].id, Version::FIRST, TagChanges::default()).await,
        Err(RepoError::NotFound { .. })
    ));
}

async fn references_are_enforced_and_named(db: &DbManager) {
    let samples = db.repository::<Sample>();
    let tags = db.repository::<Tag>();
    let tag = tags.create(NewTag { name: "t".into() }).await.unwrap();
    let missing = tags
        .update(&tag.id, Version::FIRST, TagChanges { sample_id: Some(Some(Uuid::now_v7())), ..Default::default() })
        .await
        .unwrap_err();
    assert!(matches!(&missing, RepoError::Validation(v) if v.field == "sample_id"), "{missing:?}");
    let s = samples.create(new_sample(1, false)).await.unwrap();
    tags.update(&tag.id, Version::FIRST, TagChanges { sample_id: Some(Some(s.id)), ..Default::default() })
        .await
        .unwrap();
    let referenced = samples.delete(&s.id).await.unwrap_err();
    assert!(matches!(&referenced, RepoError::Validation(v) if v.field == "sample_id"), "{referenced:?}");
    assert!(samples.exists(&s.id).await.unwrap());
}

async fn integer_keys_are_audited(db: &DbManager) {
    let audited = db.with_audit(AuditConfig::actor("auditor"));
    let tag = audited.repository::<Tag>().create(NewTag { name: "x".into() }).await.unwrap();
    let rows = audit_rows(db).await;
    assert_eq!(rows, vec![("tags".to_owned(), tag.id.to_string(), "create".to_owned())]);
}

async fn audit_rows(db: &DbManager) -> Vec<(String, String, String)> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        table_name: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        row_id: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        action: String,
    }
    let query = diesel::sql_query("SELECT table_name, row_id, action FROM audit_log ORDER BY id");
    let rows: Vec<Row> = match db.pool() {
        DbPool::Postgres(pool) => query.load(&mut *pool.get().await.unwrap()).await.unwrap(),
        DbPool::Sqlite(pool) => query.load(&mut *pool.get().await.unwrap()).await.unwrap(),
    };
    rows.into_iter().map(|r| (r.table_name, r.row_id, r.action)).collect()
}

async fn units_of_work_hand_out_app_records_and_run_app_sql(db: &DbManager) {
    db.register::<Tag>();
    let uow = db.unit_of_work();
    let counted = uow
        .run(|tx| {
            Box::pin(async move {
                let tags = tx.repo::<Tag>()?;
                tags.create(NewTag { name: "in-tx".into() }).await?;
                // The app's own SQL on the transaction's connection sees the uncommitted row.
                let n = with_connection(tx, |conn| {
                    Box::pin(async move {
                        #[derive(diesel::QueryableByName)]
                        struct N {
                            #[diesel(sql_type = BigInt)]
                            n: i64,
                        }
                        let q = diesel::sql_query("SELECT count(*) AS n FROM tags");
                        let row: N = match conn {
                            DieselConn::Postgres(c) => q.get_result(c).await,
                            DieselConn::Sqlite(c) => q.get_result(c).await,
                        }
                        .map_err(|e| RepoError::backend("test", e))?;
                        Ok(row.n)
                    })
                })
                .await?;
                Ok::<_, RepoError>(n)
            })
        })
        .await
        .unwrap();
    assert_eq!(counted, 1);
    // Rolled back with the unit: nothing of it stays.
    let outcome: Result<(), RepoError> = uow
        .run(|tx| {
            Box::pin(async move {
                tx.repo::<Tag>()?.create(NewTag { name: "rolled back".into() }).await?;
                tx.users().create(cpc_domain::NewUser::new("ada", "ada@example.org").unwrap()).await?;
                Err(RepoError::TransactionFinished)
            })
        })
        .await;
    assert!(outcome.is_err());
    assert_eq!(db.repository::<Tag>().count(&[]).await.unwrap(), 1);
    assert_eq!(db.users().count(&[]).await.unwrap(), 0);
    // The record store hands out the same repository; an unknown record is a clear error.
    let store: Arc<dyn cpc_ports::RecordStore> = Arc::new(db.clone());
    assert_eq!(store.repo::<Tag>().unwrap().count(&[]).await.unwrap(), 1);
    let Err(unknown) = store.repo::<drifted::Drifted>() else { panic!("an unregistered record has no repository") };
    assert!(
        matches!(&unknown, RepoError::Validation(v) if v.field == "record" && v.rule.contains("drifted")),
        "{unknown:?}"
    );
}

async fn a_declaration_that_does_not_match_is_refused_naming_the_column(db: &DbManager) {
    db.register::<Sample>().register::<Tag>();
    db.verify_records().await.unwrap();
    db.register::<drifted::Drifted>();
    let refused = db.verify_records().await.unwrap_err();
    match &refused {
        RepoError::Validation(v) => {
            assert_eq!(v.field, "tags");
            assert!(v.rule.contains("colour"), "{v:?}");
        }
        other => panic!("expected a validation error, got {other:?}"),
    }
}

macro_rules! on_both {
    ($($case:ident),+ $(,)?) => {
        mod on_postgres {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let (db, _guard) = postgres().await;
                    super::$case(&db).await;
                }
            )+
        }
        mod on_sqlite {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let (db, _guard) = sqlite().await;
                    super::$case(&db).await;
                }
            )+
        }
    };
}

on_both!(
    every_column_round_trips,
    every_kind_of_filter_works,
    updates_are_versioned_and_uniques_conflict,
    serial_keys_are_assigned_and_unversioned_rows_take_the_last_write,
    references_are_enforced_and_named,
    integer_keys_are_audited,
    units_of_work_hand_out_app_records_and_run_app_sql,
    a_declaration_that_does_not_match_is_refused_naming_the_column,
);
