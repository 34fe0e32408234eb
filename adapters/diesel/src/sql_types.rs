//! SQL types for one `diesel::table!` that works on PostgreSQL and SQLite alike.
//!
//! Diesel's own `Uuid`, `Timestamptz` and `Jsonb` exist on PostgreSQL only; the library's SQLite schema stores
//! those columns as text (hyphenated UUIDs, RFC 3339 UTC timestamps with exactly six fractional digits so text
//! order is time order, JSON text). The three types here are each PostgreSQL's native type on PostgreSQL and that
//! text on SQLite, and this module re-exports every other Diesel SQL type, so a `table!` written once serves both:
//!
//! ```
//! diesel::table! {
//!     use cpc_diesel::sql_types::*;
//!     consents (id) {
//!         id -> Uuid,
//!         subject -> Text,
//!         granted_at -> Timestamptz,
//!         revoked_at -> Nullable<Timestamptz>,
//!         details -> Nullable<Jsonb>,
//!         version -> BigInt,
//!     }
//! }
//! # fn main() {}
//! ```
//!
//! The model's fields are plain `uuid::Uuid`, `chrono::DateTime<Utc>` and `serde_json::Value` (or `Option`s of
//! them), which Diesel loads from these types; values are written through [`DbUuid`](crate::repos::DbUuid),
//! [`DbTime`](crate::repos::DbTime) and [`DbJson`](crate::repos::DbJson), which the record
//! macros apply for you ([`BindAs`](crate::sql::BindAs)). `diesel print-schema` output needs only its
//! `use` line changed.

use chrono::{DateTime, Utc};
use diesel::deserialize::{self, FromSql};
use diesel::pg::{Pg, PgValue};
use diesel::query_builder::QueryId;
use diesel::sql_types::SqlType;
use diesel::sqlite::{Sqlite, SqliteValue};

pub use diesel::sql_types::{
    Array, BigInt, Binary, Bool, Date, Double, Float, Int2, Int4, Int8, Integer, Interval, Nullable, Numeric, Range,
    SmallInt, Text, Time, Timestamp, VarChar,
};

/// A UUID: `uuid` on PostgreSQL, hyphenated lowercase text on SQLite. Rust type: `uuid::Uuid`.
#[derive(Debug, Clone, Copy, Default, QueryId, SqlType)]
#[diesel(postgres_type(oid = 2950, array_oid = 2951))]
#[diesel(sqlite_type(name = "Text"))]
pub struct Uuid;

/// A point in time: `timestamptz` on PostgreSQL, `YYYY-MM-DDTHH:MM:SS.ffffffZ` text on SQLite (microseconds, so
/// text order is time order). Rust type: `chrono::DateTime<Utc>`.
#[derive(Debug, Clone, Copy, Default, QueryId, SqlType)]
#[diesel(postgres_type(oid = 1184, array_oid = 1185))]
#[diesel(sqlite_type(name = "Text"))]
pub struct Timestamptz;

/// A JSON document: `jsonb` on PostgreSQL, JSON text on SQLite. Rust type: `serde_json::Value`.
#[derive(Debug, Clone, Copy, Default, QueryId, SqlType)]
#[diesel(postgres_type(oid = 3802, array_oid = 3807))]
#[diesel(sqlite_type(name = "Text"))]
pub struct Jsonb;

impl FromSql<Uuid, Pg> for uuid::Uuid {
    fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
        <uuid::Uuid as FromSql<diesel::sql_types::Uuid, Pg>>::from_sql(bytes)
    }
}
impl FromSql<Uuid, Sqlite> for uuid::Uuid {
    fn from_sql(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        let text = <String as FromSql<Text, Sqlite>>::from_sql(value)?;
        Ok(uuid::Uuid::parse_str(&text)?)
    }
}

impl FromSql<Timestamptz, Pg> for DateTime<Utc> {
    fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
        <DateTime<Utc> as FromSql<diesel::sql_types::Timestamptz, Pg>>::from_sql(bytes)
    }
}
impl FromSql<Timestamptz, Sqlite> for DateTime<Utc> {
    fn from_sql(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        let text = <String as FromSql<Text, Sqlite>>::from_sql(value)?;
        Ok(DateTime::parse_from_rfc3339(&text)?.with_timezone(&Utc))
    }
}

impl FromSql<Jsonb, Pg> for serde_json::Value {
    fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
        <serde_json::Value as FromSql<diesel::sql_types::Jsonb, Pg>>::from_sql(bytes)
    }
}
impl FromSql<Jsonb, Sqlite> for serde_json::Value {
    fn from_sql(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        let text = <String as FromSql<Text, Sqlite>>::from_sql(value)?;
        Ok(serde_json::from_str(&text)?)
    }
}

// `table!` gives columns named with a time type arithmetic with intervals, as for Diesel's own `Timestamptz`.
impl diesel::sql_types::ops::Add for Timestamptz {
    type Rhs = Interval;
    type Output = Timestamptz;
}
impl diesel::sql_types::ops::Sub for Timestamptz {
    type Rhs = Interval;
    type Output = Timestamptz;
}
