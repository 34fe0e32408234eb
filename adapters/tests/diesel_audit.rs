//! The optional audit trail of the Diesel layer ([`DbManager::with_audit`]) and the manager as a health check, on
//! PostgreSQL (a fresh migrated database per case) and SQLite (a fresh migrated file per case): every case runs on
//! both backends.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "diesel")]

use cpc_adapters::diesel::migrations::{self, MigrationTarget};
use cpc_adapters::diesel::repos::DbTime;
use cpc_adapters::diesel::{AuditConfig, DbManager, DbPool};
use cpc_adapters::pool::PoolConfig;
use cpc_adapters::postgres::PgConfig;
use cpc_adapters::sqlite::SqliteConfig;
use cpc_domain::{
    Email, Money, NewCustomer, NewEntity, NewTransaction, NewUser, Timestamp, TransactionKind, UpdateUser, Username,
    Version,
};
use cpc_ports::{ConflictKind, HealthCheck, HealthStatus, RepoError};
use cpc_test_servers::TestDatabase;
use diesel::prelude::*;
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
use uuid::Uuid;

/// A migrated database with a (not audited) manager on it; `_keep` (the test database or the temporary
/// directory) is dropped after the manager.
struct Db {
    manager: DbManager,
    _keep: Box<dyn std::any::Any>,
}

async fn postgres() -> Db {
    let db = TestDatabase::create().await;
    let config = PgConfig::from_url(db.url()).unwrap();
    migrations::run_pending(&MigrationTarget::Postgres(config.clone())).await.unwrap();
    let manager = DbManager::postgres(&config, &PoolConfig::default().max_connections(4)).await.unwrap();
    Db { manager, _keep: Box::new(db) }
}

async fn sqlite() -> Db {
    let dir = tempfile::tempdir().unwrap();
    let config = SqliteConfig::file(dir.path().join("data.db"));
    migrations::run_pending(&MigrationTarget::Sqlite(config.clone())).await.unwrap();
    let manager = DbManager::sqlite(&config, &PoolConfig::default().max_connections(4)).await.unwrap();
    Db { manager, _keep: Box::new(dir) }
}

/// One `audit_log` row as read back.
#[derive(Debug, Clone, PartialEq)]
struct AuditRow {
    table: String,
    row_id: Uuid,
    action: String,
    actor: Option<String>,
    at: Timestamp,
}

type RawRow = (String, String, String, Option<String>, DbTime);

fn row((table, row_id, action, actor, at): RawRow) -> AuditRow {
    // Keys are stored as text (records may have integer keys); the built-in records' are hyphenated UUIDs.
    let row_id = Uuid::parse_str(&row_id).expect("a built-in record's key is a UUID");
    AuditRow { table, row_id, action, actor, at: at.0 }
}

/// Every `audit_log` row, in insertion order.
async fn audit_rows(db: &DbManager) -> Vec<AuditRow> {
    let rows: Vec<RawRow> = match db.pool() {
        DbPool::Postgres(pool) => {
            use cpc_adapters::diesel::schema::postgres::audit_log::dsl::*;
            let mut conn = pool.get().await.unwrap();
            audit_log.select((table_name, row_id, action, actor, at)).order(id).load(&mut *conn).await.unwrap()
        }
        DbPool::Sqlite(pool) => {
            use cpc_adapters::diesel::schema::sqlite::audit_log::dsl::*;
            let mut conn = pool.get().await.unwrap();
            audit_log.select((table_name, row_id, action, actor, at)).order(id).load(&mut *conn).await.unwrap()
        }
    };
    rows.into_iter().map(row).collect()
}

/// Runs raw SQL on one of the manager's connections.
async fn execute(db: &DbManager, sql: &str) {
    match db.pool() {
        DbPool::Postgres(pool) => pool.get().await.unwrap().batch_execute(sql).await.unwrap(),
        DbPool::Sqlite(pool) => pool.get().await.unwrap().batch_execute(sql).await.unwrap(),
    }
}

fn user(name: &str) -> NewUser {
    NewUser::new(name, &format!("{name}@example.org")).unwrap()
}

fn rename(name: &str) -> UpdateUser {
    UpdateUser { username: Some(Username::parse(name).unwrap()), email: None }
}

fn audit(table: &str, id: Uuid, action: &str, actor: Option<&str>, at: Timestamp) -> AuditRow {
    AuditRow { table: table.to_owned(), row_id: id, action: action.to_owned(), actor: actor.map(str::to_owned), at }
}

// ---------------------------------------------------------------------------------------------------------------
// Cases, each run on both backends (see the bottom of the file).
// ---------------------------------------------------------------------------------------------------------------

async fn audit_is_off_by_default(db: Db) {
    let db = db.manager;
    assert_eq!(db.audit(), None, "no audit configuration by default");
    let users = db.users();
    let u = users.create(user("ada")).await.unwrap();
    let u = users.update(&u.id, u.version, rename("ada2")).await.unwrap();
    users.create_many(vec![user("bob"), user("cyd")]).await.unwrap();
    assert!(users.delete(&u.id).await.unwrap());
    db.transaction(|tx| Box::pin(async move { tx.users().create(user("dee")).await })).await.unwrap();
    assert_eq!(audit_rows(&db).await, vec![], "nothing audited when the audit trail is off");
}

async fn create_update_and_delete_each_write_one_audit_row(db: Db) {
    let db = db.manager.with_audit(AuditConfig::actor("alice"));
    assert_eq!(db.audit(), Some(&AuditConfig::actor("alice")));
    let users = db.users();

    let created = users.create(user("ada")).await.unwrap();
    let id = *created.id.as_uuid();
    assert_eq!(
        audit_rows(&db).await,
        vec![audit("users", id, "create", Some("alice"), created.updated_at)],
        "one create row, timed by the row itself"
    );

    let updated = users.update(&created.id, created.version, rename("ada2")).await.unwrap();
    let rows = audit_rows(&db).await;
    assert_eq!(rows.len(), 2, "one more row for the update: {rows:?}");
    assert_eq!(rows[1], audit("users", id, "update", Some("alice"), updated.updated_at));

    let before_delete = chrono::Utc::now() - chrono::Duration::seconds(1);
    assert!(users.delete(&created.id).await.unwrap());
    let rows = audit_rows(&db).await;
    assert_eq!(rows.len(), 3, "one more row for the delete: {rows:?}");
    let deleted = &rows[2];
    assert_eq!((deleted.table.as_str(), deleted.row_id, deleted.action.as_str()), ("users", id, "delete"));
    assert_eq!(deleted.actor.as_deref(), Some("alice"));
    assert!(deleted.at >= updated.updated_at && deleted.at > before_delete, "deleted now: {deleted:?}");

    // Deleting what is not there deletes nothing, so audits nothing.
    assert!(!users.delete(&created.id).await.unwrap());
    assert_eq!(audit_rows(&db).await.len(), 3, "a delete that deleted nothing is not audited");
}

async fn every_table_is_audited_under_its_name_and_the_actor_is_optional(db: Db) {
    let db = db.manager.with_audit(AuditConfig::anonymous());
    let u = db.users().create(user("ada")).await.unwrap();
    let e = db.entities().create(NewEntity::new("device", "probe", serde_json::json!({"a": 1})).unwrap()).await;
    let e = e.unwrap();
    let c = db.customers().create(NewCustomer::new("c@example.org", "Cee", None).unwrap()).await.unwrap();
    let money = Money::new(1_250, "EUR").unwrap();
    let t = NewTransaction::new(u.id, money, TransactionKind::Credit, "salary", u.created_at).unwrap();
    let t = db.transactions().create(t).await.unwrap();
    assert_eq!(
        audit_rows(&db).await,
        vec![
            audit("users", *u.id.as_uuid(), "create", None, u.updated_at),
            audit("entities", *e.id.as_uuid(), "create", None, e.updated_at),
            audit("customers", *c.id.as_uuid(), "create", None, c.updated_at),
            audit("transactions", *t.id.as_uuid(), "create", None, t.updated_at),
        ]
    );
}

async fn create_many_writes_one_audit_row_per_row(db: Db) {
    let db = db.manager.with_audit(AuditConfig::actor("batch"));
    let made = db.users().create_many(vec![user("ada"), user("bob"), user("cyd")]).await.unwrap();
    let expected: Vec<AuditRow> =
        made.iter().map(|u| audit("users", *u.id.as_uuid(), "create", Some("batch"), u.updated_at)).collect();
    assert_eq!(audit_rows(&db).await, expected, "three rows, one per created user, in order");
}

async fn a_create_many_larger_than_one_statement_is_audited_per_row(db: Db) {
    let db = db.manager.with_audit(AuditConfig::actor("bulk"));
    let many: Vec<NewUser> = (0..501).map(|i| user(&format!("user{i}"))).collect();
    let made = db.users().create_many(many).await.unwrap();
    let rows = audit_rows(&db).await;
    assert_eq!(rows.len(), 501);
    let audited: Vec<Uuid> = rows.iter().map(|r| r.row_id).collect();
    let created: Vec<Uuid> = made.iter().map(|u| *u.id.as_uuid()).collect();
    assert_eq!(audited, created);
}

async fn a_rolled_back_unit_of_work_leaves_no_audit_rows(db: Db) {
    let db = db.manager.with_audit(AuditConfig::actor("alice"));
    // Explicit rollback.
    let tx = db.unit_of_work().begin().await.unwrap();
    let ghost = tx.users().create(user("ghost")).await.unwrap();
    tx.users().update(&ghost.id, ghost.version, rename("ghost2")).await.unwrap();
    tx.rollback().await.unwrap();
    // Work that fails: `run` rolls back.
    let failed = db
        .transaction(|tx| {
            Box::pin(async move {
                tx.users().create(user("phantom")).await?;
                Err::<(), _>(RepoError::Validation(cpc_domain::ValidationError::new("test", "abort")))
            })
        })
        .await;
    assert!(failed.is_err());
    assert_eq!(audit_rows(&db).await, vec![], "rolled-back writes leave no audit rows");
    assert_eq!(db.users().count(&[]).await.unwrap(), 0, "and no users");

    // A committed unit of work keeps its audit rows, with the actor.
    let kept = db.transaction(|tx| Box::pin(async move { tx.users().create(user("kept")).await })).await.unwrap();
    assert_eq!(
        audit_rows(&db).await,
        vec![audit("users", *kept.id.as_uuid(), "create", Some("alice"), kept.updated_at)]
    );
}

async fn a_failing_write_writes_no_audit_row(db: Db) {
    let db = db.manager.with_audit(AuditConfig::actor("alice"));
    let ada = db.users().create(user("ada")).await.unwrap();
    let duplicate = NewUser::new("other", "ADA@example.org").unwrap();
    let err = db.users().create(duplicate.clone()).await.unwrap_err();
    assert!(
        matches!(&err, RepoError::Conflict { kind: ConflictKind::Duplicate { field }, .. } if field == "email"),
        "a duplicate e-mail: {err:?}"
    );
    let stale = db.users().update(&ada.id, Version::new(7), rename("ada2")).await.unwrap_err();
    assert!(matches!(stale, RepoError::Conflict { kind: ConflictKind::StaleVersion { .. }, .. }), "{stale:?}");
    // Inside a unit of work: the failed write is undone with its savepoint, the rest commits.
    let bob = db
        .transaction(|tx| {
            Box::pin(async move {
                assert!(tx.users().create(duplicate).await.is_err());
                tx.users().create(user("bob")).await
            })
        })
        .await
        .unwrap();
    assert_eq!(
        audit_rows(&db).await,
        vec![
            audit("users", *ada.id.as_uuid(), "create", Some("alice"), ada.updated_at),
            audit("users", *bob.id.as_uuid(), "create", Some("alice"), bob.updated_at),
        ],
        "only the writes that happened are audited"
    );
}

async fn a_failing_audit_insert_fails_the_write(db: Db) {
    let plain = db.manager.clone();
    let ada = plain.users().create(user("ada")).await.unwrap();
    execute(&plain, "DROP TABLE audit_log").await;
    let audited = plain.with_audit(AuditConfig::actor("alice"));

    assert!(audited.users().create(user("bob")).await.is_err(), "create fails with its audit insert");
    let bob = Email::parse("bob@example.org").unwrap();
    assert_eq!(plain.users().find_by_email(&bob).await.unwrap(), None, "and its row is not kept");
    assert!(audited.users().create_many(vec![user("cyd"), user("dee")]).await.is_err());
    assert!(audited.users().update(&ada.id, ada.version, rename("ada2")).await.is_err(), "update fails");
    assert!(audited.users().delete(&ada.id).await.is_err(), "delete fails");
    assert_eq!(plain.users().find_by_id(&ada.id).await.unwrap(), Some(ada), "ada is untouched");
    assert_eq!(plain.users().count(&[]).await.unwrap(), 1, "nothing was created");
    // Without the audit trail, writes still work.
    plain.users().create(user("eve")).await.unwrap();
}

async fn the_manager_reports_healthy_with_the_server_version(db: Db) {
    let db = db.manager;
    for report in [db.check().await, db.health_check().check().await] {
        assert_eq!(report.status, HealthStatus::Healthy, "{report:?}");
        assert_eq!(report.component, db.backend());
        let version = report.details.get("server_version").map(String::as_str).unwrap_or_default();
        assert!(version.chars().next().is_some_and(|c| c.is_ascii_digit()), "a version number: {report:?}");
    }
}

macro_rules! on_both_backends {
    ($($case:ident),+ $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::postgres().await).await
                }
            )+
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::sqlite().await).await
                }
            )+
        }
    };
}

on_both_backends!(
    audit_is_off_by_default,
    create_update_and_delete_each_write_one_audit_row,
    every_table_is_audited_under_its_name_and_the_actor_is_optional,
    create_many_writes_one_audit_row_per_row,
    a_create_many_larger_than_one_statement_is_audited_per_row,
    a_rolled_back_unit_of_work_leaves_no_audit_rows,
    a_failing_write_writes_no_audit_row,
    a_failing_audit_insert_fails_the_write,
    the_manager_reports_healthy_with_the_server_version,
);
