//! The four built-in records (users, entities, customers, transactions) and the audit trail's table. They are
//! built on the same public API as an app's own records: a portable `table!` ([`schema`]), row structs
//! ([`rows`]), and one [`sql_table!`](crate::sql_table) each. Nothing here uses a path an app cannot.

pub mod rows;
pub mod schema;

use cpc_domain::{Customer, Entity, Transaction, User};
use cpc_ports::{CustomerField, EntityField, RepoError, TransactionField, UserField};
use diesel::ExpressionMethods;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use self::rows::{CustomerRow, EntityRow, TransactionRow, UserRow};
use self::schema::{audit_log, customers, entities, transactions, users};
use crate::audit_row::{AuditEntry, audit_context};
use crate::sql::{AsyncSqliteConnection, RecordConn};
use crate::values::{DbJson, DbTime, DbUuid};

/// One `audit_log` row as insert values.
type AuditValues = (
    diesel::dsl::Eq<audit_log::table_name, String>,
    diesel::dsl::Eq<audit_log::row_id, String>,
    diesel::dsl::Eq<audit_log::action, &'static str>,
    diesel::dsl::Eq<audit_log::actor, Option<String>>,
    diesel::dsl::Eq<audit_log::at, DbTime>,
);

/// The `audit_log` rows of `entries`, as insert values.
fn audit_values(entries: &[AuditEntry]) -> Vec<AuditValues> {
    entries
        .iter()
        .map(|e| {
            (
                audit_log::table_name.eq(e.table.to_owned()),
                audit_log::row_id.eq(e.row_id.clone()),
                audit_log::action.eq(e.action.as_str()),
                audit_log::actor.eq(e.actor.clone()),
                audit_log::at.eq(DbTime(e.at)),
            )
        })
        .collect()
}

impl RecordConn for AsyncPgConnection {
    type Db = diesel::pg::Pg;
    const BACKEND: &'static str = "postgres";
    /// Inserts `audit_log` rows on PostgreSQL with one multi-row `INSERT`.
    async fn write_audit(&mut self, entries: &[AuditEntry]) -> Result<(), RepoError> {
        let values = audit_values(entries);
        crate::sql_table!(@insert pg, self, audit_log::table, values)
            .map(drop)
            .map_err(|e| audit_context("postgres").map(e))
    }
}

impl RecordConn for AsyncSqliteConnection {
    type Db = diesel::sqlite::Sqlite;
    const BACKEND: &'static str = "sqlite";
    /// Inserts `audit_log` rows on SQLite with one multi-row `INSERT`.
    async fn write_audit(&mut self, entries: &[AuditEntry]) -> Result<(), RepoError> {
        let values = audit_values(entries);
        crate::sql_table!(@insert sqlite, self, audit_log::table, values)
            .map(drop)
            .map_err(|e| audit_context("sqlite").map(e))
    }
}

crate::sql_table! {
    record: User,
    table: users,
    row: UserRow = users::all_columns => User::try_from,
    key: id,
    version: version,
    references: [],
    fields: UserField {
        Id => id,
        Username => username,
        Email => email,
        CreatedAt => created_at,
        UpdatedAt => updated_at,
    },
    insert: |r: &User| (
        users::id.eq(DbUuid(*r.id.as_uuid())),
        users::username.eq(r.username.as_str().to_owned()),
        users::email.eq(r.email.as_str().to_owned()),
        users::created_at.eq(DbTime(r.created_at)),
        users::updated_at.eq(DbTime(r.updated_at)),
        users::version.eq(r.version.get()),
    ),
    update: |r: &User| (
        users::username.eq(r.username.as_str().to_owned()),
        users::email.eq(r.email.as_str().to_owned()),
        users::updated_at.eq(DbTime(r.updated_at)),
        users::version.eq(r.version.get()),
    ),
    email: email,
}

crate::sql_table! {
    record: Entity,
    table: entities,
    row: EntityRow = entities::all_columns => Entity::try_from,
    key: id,
    version: version,
    references: [],
    fields: EntityField {
        Id => id,
        Kind => kind,
        Name => name,
        CreatedAt => created_at,
        UpdatedAt => updated_at,
    },
    insert: |r: &Entity| (
        entities::id.eq(DbUuid(*r.id.as_uuid())),
        entities::kind.eq(r.kind.as_str().to_owned()),
        entities::name.eq(r.name.clone()),
        entities::attributes.eq(DbJson(r.attributes.clone())),
        entities::created_at.eq(DbTime(r.created_at)),
        entities::updated_at.eq(DbTime(r.updated_at)),
        entities::version.eq(r.version.get()),
    ),
    // The kind is written too: `update` never changes it, `upsert` may.
    update: |r: &Entity| (
        entities::kind.eq(r.kind.as_str().to_owned()),
        entities::name.eq(r.name.clone()),
        entities::attributes.eq(DbJson(r.attributes.clone())),
        entities::updated_at.eq(DbTime(r.updated_at)),
        entities::version.eq(r.version.get()),
    ),
}

crate::sql_table! {
    record: Customer,
    table: customers,
    row: CustomerRow = customers::all_columns => Customer::try_from,
    key: id,
    version: version,
    references: [],
    fields: CustomerField {
        Id => id,
        Email => email,
        Name => name,
        CreatedAt => created_at,
        UpdatedAt => updated_at,
    },
    insert: |r: &Customer| (
        customers::id.eq(DbUuid(*r.id.as_uuid())),
        customers::email.eq(r.email.as_str().to_owned()),
        customers::name.eq(r.name.clone()),
        customers::phone.eq(r.phone.clone()),
        customers::created_at.eq(DbTime(r.created_at)),
        customers::updated_at.eq(DbTime(r.updated_at)),
        customers::version.eq(r.version.get()),
    ),
    update: |r: &Customer| (
        customers::email.eq(r.email.as_str().to_owned()),
        customers::name.eq(r.name.clone()),
        customers::phone.eq(r.phone.clone()),
        customers::updated_at.eq(DbTime(r.updated_at)),
        customers::version.eq(r.version.get()),
    ),
    email: email,
}

crate::sql_table! {
    record: Transaction,
    table: transactions,
    row: TransactionRow = transactions::all_columns => Transaction::try_from,
    key: id,
    version: version,
    references: ["user_id"],
    fields: TransactionField {
        Id => id,
        UserId => user_id,
        Kind => kind,
        Currency => currency,
        AmountMinor => amount_minor,
        OccurredAt => occurred_at,
        CreatedAt => created_at,
        UpdatedAt => updated_at,
    },
    insert: |r: &Transaction| (
        transactions::id.eq(DbUuid(*r.id.as_uuid())),
        transactions::user_id.eq(DbUuid(*r.user_id.as_uuid())),
        transactions::amount_minor.eq(r.amount.amount_minor()),
        transactions::currency.eq(r.amount.currency().as_str().to_owned()),
        transactions::kind.eq(r.kind.as_str().to_owned()),
        transactions::description.eq(r.description.clone()),
        transactions::occurred_at.eq(DbTime(r.occurred_at)),
        transactions::created_at.eq(DbTime(r.created_at)),
        transactions::updated_at.eq(DbTime(r.updated_at)),
        transactions::version.eq(r.version.get()),
    ),
    update: |r: &Transaction| (
        transactions::description.eq(r.description.clone()),
        transactions::updated_at.eq(DbTime(r.updated_at)),
        transactions::version.eq(r.version.get()),
    ),
}
