//! Column values that are stored differently by the two backends, as one Rust type each: PostgreSQL has native
//! `uuid`, `timestamptz` and `jsonb`; the SQLite schema stores hyphenated UUID text, RFC 3339 UTC text with exactly
//! six fractional digits (so text order is time order) and JSON text. With these, row structs and queries are
//! written once for both backends.

use chrono::{DateTime, SecondsFormat, Utc};
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::{Jsonb, Text, Timestamptz};
use diesel::sqlite::{Sqlite, SqliteValue};
use uuid::Uuid;

use crate::sql_types as portable;

/// A UUID column: `uuid` on PostgreSQL, hyphenated lowercase text on SQLite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, AsExpression, FromSqlRow)]
#[diesel(sql_type = diesel::sql_types::Uuid)]
#[diesel(sql_type = Text)]
#[diesel(sql_type = portable::Uuid)]
pub struct DbUuid(pub Uuid);

/// A timestamp column: `timestamptz` on PostgreSQL, `YYYY-MM-DDTHH:MM:SS.ffffffZ` text on SQLite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, AsExpression, FromSqlRow)]
#[diesel(sql_type = Timestamptz)]
#[diesel(sql_type = Text)]
#[diesel(sql_type = portable::Timestamptz)]
pub struct DbTime(pub DateTime<Utc>);

/// A JSON column: `jsonb` on PostgreSQL, JSON text on SQLite.
#[derive(Debug, Clone, PartialEq, AsExpression, FromSqlRow)]
#[diesel(sql_type = Jsonb)]
#[diesel(sql_type = Text)]
#[diesel(sql_type = portable::Jsonb)]
pub struct DbJson(pub serde_json::Value);

impl DbTime {
    /// The SQLite text form: UTC, exactly six fractional digits, `Z`.
    pub fn to_text(&self) -> String {
        self.0.to_rfc3339_opts(SecondsFormat::Micros, true)
    }
}

impl ToSql<diesel::sql_types::Uuid, Pg> for DbUuid {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        <Uuid as ToSql<diesel::sql_types::Uuid, Pg>>::to_sql(&self.0, out)
    }
}

impl FromSql<diesel::sql_types::Uuid, Pg> for DbUuid {
    fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
        <Uuid as FromSql<diesel::sql_types::Uuid, Pg>>::from_sql(bytes).map(Self)
    }
}

impl ToSql<Text, Sqlite> for DbUuid {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(self.0.hyphenated().to_string());
        Ok(IsNull::No)
    }
}

impl FromSql<Text, Sqlite> for DbUuid {
    fn from_sql(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        let text = <String as FromSql<Text, Sqlite>>::from_sql(value)?;
        Ok(Self(Uuid::parse_str(&text)?))
    }
}

impl ToSql<Timestamptz, Pg> for DbTime {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        <DateTime<Utc> as ToSql<Timestamptz, Pg>>::to_sql(&self.0, out)
    }
}

impl FromSql<Timestamptz, Pg> for DbTime {
    fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
        <DateTime<Utc> as FromSql<Timestamptz, Pg>>::from_sql(bytes).map(Self)
    }
}

impl ToSql<Text, Sqlite> for DbTime {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(self.to_text());
        Ok(IsNull::No)
    }
}

impl FromSql<Text, Sqlite> for DbTime {
    fn from_sql(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        let text = <String as FromSql<Text, Sqlite>>::from_sql(value)?;
        Ok(Self(DateTime::parse_from_rfc3339(&text)?.with_timezone(&Utc)))
    }
}

impl ToSql<Jsonb, Pg> for DbJson {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        <serde_json::Value as ToSql<Jsonb, Pg>>::to_sql(&self.0, out)
    }
}

impl FromSql<Jsonb, Pg> for DbJson {
    fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
        <serde_json::Value as FromSql<Jsonb, Pg>>::from_sql(bytes).map(Self)
    }
}

impl ToSql<Text, Sqlite> for DbJson {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(serde_json::to_string(&self.0)?);
        Ok(IsNull::No)
    }
}

impl FromSql<Text, Sqlite> for DbJson {
    fn from_sql(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        let text = <String as FromSql<Text, Sqlite>>::from_sql(value)?;
        Ok(Self(serde_json::from_str(&text)?))
    }
}

/// `ToSql` in a portable type (see [`sql_types`](crate::sql_types)): the backend's native type on
/// PostgreSQL, text on SQLite.
macro_rules! portable {
    ($wrapper:ty, $portable:ty, $pg:ty) => {
        impl ToSql<$portable, Pg> for $wrapper {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
                <$wrapper as ToSql<$pg, Pg>>::to_sql(self, out)
            }
        }
        impl ToSql<$portable, Sqlite> for $wrapper {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
                <$wrapper as ToSql<Text, Sqlite>>::to_sql(self, out)
            }
        }
        impl FromSql<$portable, Pg> for $wrapper {
            fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
                <$wrapper as FromSql<$pg, Pg>>::from_sql(bytes)
            }
        }
        impl FromSql<$portable, Sqlite> for $wrapper {
            fn from_sql(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
                <$wrapper as FromSql<Text, Sqlite>>::from_sql(value)
            }
        }
    };
}

portable!(DbUuid, portable::Uuid, diesel::sql_types::Uuid);
portable!(DbTime, portable::Timestamptz, Timestamptz);
portable!(DbJson, portable::Jsonb, Jsonb);

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn sqlite_timestamps_have_six_digits_so_text_order_is_time_order() {
        let t = Utc.with_ymd_and_hms(2024, 3, 1, 12, 0, 0).single().unwrap();
        assert_eq!(DbTime(t).to_text(), "2024-03-01T12:00:00.000000Z");
        let later = t + chrono::Duration::microseconds(1);
        assert!(DbTime(t).to_text() < DbTime(later).to_text());
    }
}
