//! Schema drift: the `diesel::table!` definitions (`adapters/diesel/src/schema/`) must match what the migrations
//! create. For each backend: the column names, order, types and nullability of every table are compared with the
//! database's catalog, and a row goes into every table through the definitions (every column named) and comes back
//! equal, so a column renamed, retyped or added in SQL but not in schema.rs (or the reverse) fails here. Also: the
//! case-insensitive unique e-mail indexes and the foreign key on `transactions.user_id` are enforced.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "diesel")]

use chrono::{DateTime, Utc};
use cpc_adapters::diesel::migrations::{self, MigrationTarget};
use cpc_adapters::postgres::DatabaseConfig;
use cpc_adapters::sqlite::SqliteConfig;
use cpc_test_servers::TestDatabase;
use diesel::pg::{Pg, PgMetadataLookup, PgTypeMetadata};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::{HasSqlType, SqlType, is_nullable};
use diesel::sqlite::{Sqlite, SqliteConnection, SqliteType};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use uuid::Uuid;

/// One column as the definitions describe it, or as the catalog does.
#[derive(Debug, PartialEq, Eq)]
struct Column<T> {
    name: String,
    ty: T,
    nullable: bool,
}

/// Whether a diesel SQL type is `Nullable<_>`.
trait Nullness {
    const NULLABLE: bool;
}
impl Nullness for is_nullable::IsNullable {
    const NULLABLE: bool = true;
}
impl Nullness for is_nullable::NotNull {
    const NULLABLE: bool = false;
}

fn nullable<ST: SqlType>() -> bool
where
    ST::IsNull: Nullness,
{
    <ST::IsNull as Nullness>::NULLABLE
}

/// The schema only uses built-in PostgreSQL types, whose OIDs diesel knows without asking the server.
struct BuiltinTypesOnly;
impl PgMetadataLookup for BuiltinTypesOnly {
    fn lookup_type(&mut self, type_name: &str, _schema: Option<&str>) -> PgTypeMetadata {
        panic!("the schema uses {type_name}, which is not a built-in type: extend this test")
    }
}

fn pg_oid<ST>() -> u32
where
    Pg: HasSqlType<ST>,
{
    <Pg as HasSqlType<ST>>::metadata(&mut BuiltinTypesOnly).oid().unwrap()
}

fn sqlite_type<ST>() -> SqliteType
where
    Sqlite: HasSqlType<ST>,
{
    <Sqlite as HasSqlType<ST>>::metadata(&mut ())
}

/// The columns of a table in the definitions. Listing them is checked at compile time to be exactly the table's
/// `all_columns`, in order, so the list cannot fall behind schema.rs.
macro_rules! defined_columns {
    ($schema:ident, $type_of:ident, $table:ident: $($col:ident),+ $(,)?) => {{
        use cpc_adapters::diesel::schema::$schema::$table;
        let _exactly_all_columns: <$table::table as diesel::Table>::AllColumns = ($($table::$col,)+);
        (
            stringify!($table),
            vec![$(Column {
                name: <$table::$col as diesel::Column>::NAME.to_owned(),
                ty: $type_of::<<$table::$col as diesel::Expression>::SqlType>(),
                nullable: nullable::<<$table::$col as diesel::Expression>::SqlType>(),
            }),+],
        )
    }};
}

macro_rules! every_table {
    ($schema:ident, $type_of:ident) => {
        vec![
            defined_columns!($schema, $type_of, users: id, username, email, created_at, updated_at, version),
            defined_columns!($schema, $type_of, entities: id, kind, name, attributes, created_at, updated_at, version),
            defined_columns!($schema, $type_of, customers: id, email, name, phone, created_at, updated_at, version),
            defined_columns!(
                $schema, $type_of,
                transactions: id, user_id, amount_minor, currency, kind, description, occurred_at, created_at,
                updated_at, version
            ),
            defined_columns!($schema, $type_of, audit_log: id, table_name, row_id, action, actor, at),
        ]
    };
}

fn at(secs: i64, micros: u32) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, micros * 1000).unwrap()
}

fn is_kind(e: &DieselError, kind: DatabaseErrorKind) -> bool {
    matches!(e, DieselError::DatabaseError(k, _) if std::mem::discriminant(k) == std::mem::discriminant(&kind))
}

// ---------------------------------------------------------------- PostgreSQL

async fn pg_migrated() -> (TestDatabase, AsyncPgConnection) {
    let db = TestDatabase::create().await;
    let target = MigrationTarget::Postgres(DatabaseConfig::from_url(db.url()).unwrap());
    migrations::run_pending(&target).await.unwrap();
    let conn = AsyncPgConnection::establish(db.url()).await.unwrap();
    (db, conn)
}

#[tokio::test]
async fn postgres_columns_match_the_definitions() {
    let (db, _conn) = pg_migrated().await;
    let client = db.connect().await;
    let tables = every_table!(postgres, pg_oid);
    assert_eq!(tables.len(), 5);
    for (table, defined) in tables {
        let rows = client
            .query(
                "SELECT a.attname::text, a.atttypid::oid, NOT a.attnotnull FROM pg_attribute a \
                 WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                &[&table.to_owned()],
            )
            .await
            .unwrap();
        let actual: Vec<Column<u32>> =
            rows.iter().map(|r| Column { name: r.get(0), ty: r.get(1), nullable: r.get(2) }).collect();
        assert_eq!(actual, defined, "table {table}: the catalog (left) differs from schema/postgres.rs (right)");
    }
    // Every table the migrations create is defined, but the library's own `cpc_*` tables (the job queue's, the
    // key-value ports'), which their adapters read with plain SQL.
    let created: i64 = client
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public' \
             AND table_name <> '__diesel_schema_migrations' AND table_name NOT LIKE 'cpc\\_%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(created, 5);
}

#[tokio::test]
async fn postgres_a_row_in_every_table_round_trips_through_the_definitions() {
    use cpc_adapters::diesel::schema::postgres::*;
    let (_db, mut conn) = pg_migrated().await;
    let (t0, t1, t2) = (at(1_790_000_000, 123_456), at(1_790_000_100, 1), at(1_790_000_200, 999_999));

    let user = (Uuid::new_v4(), "ada".to_owned(), "a@x.io".to_owned(), t0, t1, 3i64);
    diesel::insert_into(users::table)
        .values((
            users::id.eq(user.0),
            users::username.eq(&user.1),
            users::email.eq(&user.2),
            users::created_at.eq(user.3),
            users::updated_at.eq(user.4),
            users::version.eq(user.5),
        ))
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(users::table.find(user.0).first(&mut conn).await, Ok(user.clone()));

    let attributes = serde_json::json!({"colour": "blue", "nested": {"n": [1, 2.5, null]}, "ok": true});
    let entity = (Uuid::new_v4(), "widget".to_owned(), "Gizmo".to_owned(), attributes, t0, t2, 2i64);
    diesel::insert_into(entities::table)
        .values((
            entities::id.eq(entity.0),
            entities::kind.eq(&entity.1),
            entities::name.eq(&entity.2),
            entities::attributes.eq(&entity.3),
            entities::created_at.eq(entity.4),
            entities::updated_at.eq(entity.5),
            entities::version.eq(entity.6),
        ))
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(entities::table.find(entity.0).first(&mut conn).await, Ok(entity));

    for phone in [Some("+44 20 7946 0000".to_owned()), None] {
        let email = format!("c{}@x.io", phone.is_some());
        let customer = (Uuid::new_v4(), email, "Cleo".to_owned(), phone, t1, t1, 1i64);
        diesel::insert_into(customers::table)
            .values((
                customers::id.eq(customer.0),
                customers::email.eq(&customer.1),
                customers::name.eq(&customer.2),
                customers::phone.eq(&customer.3),
                customers::created_at.eq(customer.4),
                customers::updated_at.eq(customer.5),
                customers::version.eq(customer.6),
            ))
            .execute(&mut conn)
            .await
            .unwrap();
        assert_eq!(customers::table.find(customer.0).first(&mut conn).await, Ok(customer));
    }

    let tx =
        (Uuid::new_v4(), user.0, 12_345i64, "EUR".to_owned(), "debit".to_owned(), "rent".to_owned(), t2, t0, t1, 4i64);
    diesel::insert_into(transactions::table)
        .values((
            transactions::id.eq(tx.0),
            transactions::user_id.eq(tx.1),
            transactions::amount_minor.eq(tx.2),
            transactions::currency.eq(&tx.3),
            transactions::kind.eq(&tx.4),
            transactions::description.eq(&tx.5),
            transactions::occurred_at.eq(tx.6),
            transactions::created_at.eq(tx.7),
            transactions::updated_at.eq(tx.8),
            transactions::version.eq(tx.9),
        ))
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(transactions::table.find(tx.0).first(&mut conn).await, Ok(tx.clone()));
    // The join the definitions declare works.
    let (name, amount): (String, i64) = transactions::table
        .inner_join(users::table)
        .select((users::username, transactions::amount_minor))
        .first(&mut conn)
        .await
        .unwrap();
    assert_eq!((name.as_str(), amount), ("ada", 12_345));

    for actor in [Some("ada".to_owned()), None] {
        let id = if actor.is_some() { 7i64 } else { 8 };
        let entry = (id, "users".to_owned(), user.0.hyphenated().to_string(), "update".to_owned(), actor, t2);
        diesel::insert_into(audit_log::table)
            .values((
                audit_log::id.eq(entry.0),
                audit_log::table_name.eq(&entry.1),
                audit_log::row_id.eq(&entry.2),
                audit_log::action.eq(&entry.3),
                audit_log::actor.eq(&entry.4),
                audit_log::at.eq(entry.5),
            ))
            .execute(&mut conn)
            .await
            .unwrap();
        assert_eq!(audit_log::table.find(entry.0).first(&mut conn).await, Ok(entry));
    }
    // The sequence fills the id when it is left out.
    let generated: i64 = diesel::insert_into(audit_log::table)
        .values((
            audit_log::table_name.eq("users"),
            audit_log::row_id.eq(user.0.hyphenated().to_string()),
            audit_log::action.eq("delete"),
        ))
        .returning(audit_log::id)
        .get_result(&mut conn)
        .await
        .unwrap();
    assert!(generated >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_emails_are_unique_regardless_of_case_and_transactions_need_a_known_user() {
    use cpc_adapters::diesel::schema::postgres::*;
    let (_db, mut conn) = pg_migrated().await;
    let t = at(1_790_000_000, 0);
    let insert_user = |name: &'static str, email: &'static str| {
        diesel::insert_into(users::table).values((
            users::id.eq(Uuid::new_v4()),
            users::username.eq(name),
            users::email.eq(email),
            users::created_at.eq(t),
            users::updated_at.eq(t),
        ))
    };
    insert_user("ada", "a@x.io").execute(&mut conn).await.unwrap();
    let err = insert_user("bob", "A@x.io").execute(&mut conn).await.unwrap_err();
    assert!(is_kind(&err, DatabaseErrorKind::UniqueViolation), "{err:?}");
    match &err {
        DieselError::DatabaseError(_, info) => assert_eq!(info.constraint_name(), Some("users_email_key")),
        other => panic!("{other:?}"),
    }
    insert_user("bob", "b@x.io").execute(&mut conn).await.unwrap();
    let err = insert_user("ada", "c@x.io").execute(&mut conn).await.unwrap_err();
    assert!(is_kind(&err, DatabaseErrorKind::UniqueViolation), "usernames are unique too: {err:?}");

    let insert_customer = |email: &'static str| {
        diesel::insert_into(customers::table).values((
            customers::id.eq(Uuid::new_v4()),
            customers::email.eq(email),
            customers::name.eq("Cleo"),
            customers::created_at.eq(t),
            customers::updated_at.eq(t),
        ))
    };
    insert_customer("Cleo@X.io").execute(&mut conn).await.unwrap();
    let err = insert_customer("cleo@x.IO").execute(&mut conn).await.unwrap_err();
    assert!(is_kind(&err, DatabaseErrorKind::UniqueViolation), "{err:?}");

    let err = diesel::insert_into(transactions::table)
        .values((
            transactions::id.eq(Uuid::new_v4()),
            transactions::user_id.eq(Uuid::new_v4()),
            transactions::amount_minor.eq(1i64),
            transactions::currency.eq("EUR"),
            transactions::kind.eq("credit"),
            transactions::occurred_at.eq(t),
            transactions::created_at.eq(t),
            transactions::updated_at.eq(t),
        ))
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert!(is_kind(&err, DatabaseErrorKind::ForeignKeyViolation), "{err:?}");
}

// ---------------------------------------------------------------- SQLite

type SqliteAsync = SyncConnectionWrapper<SqliteConnection>;

async fn sqlite_migrated(dir: &tempfile::TempDir) -> SqliteAsync {
    let path = dir.path().join("schema.db");
    migrations::run_pending(&MigrationTarget::Sqlite(SqliteConfig::file(&path))).await.unwrap();
    let mut conn = SqliteAsync::establish(path.to_str().unwrap()).await.unwrap();
    conn.batch_execute("PRAGMA foreign_keys = ON").await.unwrap();
    conn
}

/// SQLite's column affinity for a declared type, as diesel's bind types need it.
fn affinity_matches(defined: SqliteType, declared: &str) -> bool {
    match defined {
        SqliteType::Text => declared == "TEXT",
        SqliteType::Long | SqliteType::Integer | SqliteType::SmallInt => declared == "BIGINT" || declared == "INTEGER",
        SqliteType::Double | SqliteType::Float => declared == "REAL" || declared == "DOUBLE",
        SqliteType::Binary => declared == "BLOB",
    }
}

#[derive(QueryableByName)]
struct TableInfo {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    #[diesel(column_name = type_)]
    declared: String,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    not_null: bool,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pk: i32,
}

#[tokio::test]
async fn sqlite_columns_match_the_definitions() {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = sqlite_migrated(&dir).await;
    let tables = every_table!(sqlite, sqlite_type);
    assert_eq!(tables.len(), 5);
    for (table, defined) in tables {
        let info: Vec<TableInfo> = diesel::sql_query(
            "SELECT name, type AS type_, \"notnull\" AS not_null, pk FROM pragma_table_info(?) ORDER BY cid",
        )
        .bind::<diesel::sql_types::Text, _>(&table)
        .load(&mut conn)
        .await
        .unwrap();
        assert_eq!(
            info.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            defined.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            "table {table}: column names and order"
        );
        for (actual, defined) in info.iter().zip(&defined) {
            assert!(
                affinity_matches(defined.ty, &actual.declared),
                "{table}.{}: declared {} but defined as {:?}",
                actual.name,
                actual.declared,
                defined.ty
            );
            // An INTEGER PRIMARY KEY is the rowid: never NULL though not declared NOT NULL.
            let db_nullable = !actual.not_null && actual.pk == 0;
            assert_eq!(db_nullable, defined.nullable, "{table}.{}: nullability", actual.name);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_row_in_every_table_round_trips_through_the_definitions() {
    use cpc_adapters::diesel::schema::sqlite::*;
    let dir = tempfile::tempdir().unwrap();
    let mut conn = sqlite_migrated(&dir).await;
    let (t0, t1, t2) = ("2026-11-22T10:00:00.123456Z", "2026-11-22T10:01:00.000001Z", "2026-11-22T10:02:00.999999Z");
    let s = |v: &str| v.to_owned();

    let uid = Uuid::new_v4().to_string();
    let user = (uid.clone(), s("ada"), s("a@x.io"), s(t0), s(t1), 3i64);
    diesel::insert_into(users::table)
        .values((
            users::id.eq(&user.0),
            users::username.eq(&user.1),
            users::email.eq(&user.2),
            users::created_at.eq(&user.3),
            users::updated_at.eq(&user.4),
            users::version.eq(user.5),
        ))
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(users::table.find(&uid).first(&mut conn).await, Ok(user));

    let entity = (
        Uuid::new_v4().to_string(),
        s("widget"),
        s("Gizmo"),
        s(r#"{"colour":"blue","n":[1,2.5]}"#),
        s(t0),
        s(t2),
        2i64,
    );
    diesel::insert_into(entities::table)
        .values((
            entities::id.eq(&entity.0),
            entities::kind.eq(&entity.1),
            entities::name.eq(&entity.2),
            entities::attributes.eq(&entity.3),
            entities::created_at.eq(&entity.4),
            entities::updated_at.eq(&entity.5),
            entities::version.eq(entity.6),
        ))
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(entities::table.find(&entity.0).first(&mut conn).await, Ok(entity));

    for phone in [Some(s("+44 20 7946 0000")), None] {
        let customer =
            (Uuid::new_v4().to_string(), format!("c{}@x.io", phone.is_some()), s("Cleo"), phone, s(t1), s(t1), 1i64);
        diesel::insert_into(customers::table)
            .values((
                customers::id.eq(&customer.0),
                customers::email.eq(&customer.1),
                customers::name.eq(&customer.2),
                customers::phone.eq(&customer.3),
                customers::created_at.eq(&customer.4),
                customers::updated_at.eq(&customer.5),
                customers::version.eq(customer.6),
            ))
            .execute(&mut conn)
            .await
            .unwrap();
        assert_eq!(customers::table.find(&customer.0).first(&mut conn).await, Ok(customer));
    }

    let tx = (
        Uuid::new_v4().to_string(),
        uid.clone(),
        12_345i64,
        s("EUR"),
        s("debit"),
        s("rent"),
        s(t2),
        s(t0),
        s(t1),
        4i64,
    );
    diesel::insert_into(transactions::table)
        .values((
            transactions::id.eq(&tx.0),
            transactions::user_id.eq(&tx.1),
            transactions::amount_minor.eq(tx.2),
            transactions::currency.eq(&tx.3),
            transactions::kind.eq(&tx.4),
            transactions::description.eq(&tx.5),
            transactions::occurred_at.eq(&tx.6),
            transactions::created_at.eq(&tx.7),
            transactions::updated_at.eq(&tx.8),
            transactions::version.eq(tx.9),
        ))
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(transactions::table.find(&tx.0).first(&mut conn).await, Ok(tx));

    for actor in [Some(s("ada")), None] {
        let id = if actor.is_some() { 7i64 } else { 8 };
        let entry = (id, s("users"), uid.clone(), s("update"), actor, s(t2));
        diesel::insert_into(audit_log::table)
            .values((
                audit_log::id.eq(entry.0),
                audit_log::table_name.eq(&entry.1),
                audit_log::row_id.eq(&entry.2),
                audit_log::action.eq(&entry.3),
                audit_log::actor.eq(&entry.4),
                audit_log::at.eq(&entry.5),
            ))
            .execute(&mut conn)
            .await
            .unwrap();
        assert_eq!(audit_log::table.find(entry.0).first(&mut conn).await, Ok(entry));
    }
}

#[tokio::test]
async fn sqlite_emails_are_unique_regardless_of_case_and_transactions_need_a_known_user() {
    use cpc_adapters::diesel::schema::sqlite::*;
    let dir = tempfile::tempdir().unwrap();
    let mut conn = sqlite_migrated(&dir).await;
    let t = "2026-11-22T10:00:00.000000Z";
    let insert_user = |name: &'static str, email: &'static str| {
        diesel::insert_into(users::table).values((
            users::id.eq(Uuid::new_v4().to_string()),
            users::username.eq(name),
            users::email.eq(email),
            users::created_at.eq(t),
            users::updated_at.eq(t),
        ))
    };
    insert_user("ada", "a@x.io").execute(&mut conn).await.unwrap();
    let err = insert_user("bob", "A@x.io").execute(&mut conn).await.unwrap_err();
    assert!(is_kind(&err, DatabaseErrorKind::UniqueViolation), "{err:?}");
    assert!(err.to_string().contains("users_email_key"), "{err}");
    insert_user("bob", "b@x.io").execute(&mut conn).await.unwrap();
    let err = insert_user("ada", "c@x.io").execute(&mut conn).await.unwrap_err();
    assert!(is_kind(&err, DatabaseErrorKind::UniqueViolation), "usernames are unique too: {err:?}");

    let insert_customer = |email: &'static str| {
        diesel::insert_into(customers::table).values((
            customers::id.eq(Uuid::new_v4().to_string()),
            customers::email.eq(email),
            customers::name.eq("Cleo"),
            customers::created_at.eq(t),
            customers::updated_at.eq(t),
        ))
    };
    insert_customer("Cleo@X.io").execute(&mut conn).await.unwrap();
    let err = insert_customer("cleo@x.IO").execute(&mut conn).await.unwrap_err();
    assert!(is_kind(&err, DatabaseErrorKind::UniqueViolation), "{err:?}");

    let err = diesel::insert_into(transactions::table)
        .values((
            transactions::id.eq(Uuid::new_v4().to_string()),
            transactions::user_id.eq(Uuid::new_v4().to_string()),
            transactions::amount_minor.eq(1i64),
            transactions::currency.eq("EUR"),
            transactions::kind.eq("credit"),
            transactions::occurred_at.eq(t),
            transactions::created_at.eq(t),
            transactions::updated_at.eq(t),
        ))
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert!(is_kind(&err, DatabaseErrorKind::ForeignKeyViolation), "{err:?}");
}
