//! How a Rust column type becomes a query [`Value`] and back: [`FieldValue`], implemented for every column type
//! a declared record may hold (text, integers, booleans, floats, timestamps, dates, UUIDs, JSON, and `Option` of
//! each), and [`RecordId`] for the key types (UUIDs, `i64`, and the domain's id newtypes, which also convert into a
//! [`Value`] with `From`, so `Query::new().eq(TransactionField::UserId, user.id)` reads as it should).

use std::fmt;
use std::hash::Hash;

use chrono::NaiveDate;
use cpc_domain::{CustomerId, EntityId, Timestamp, TransactionId, UserId};
use uuid::Uuid;

use super::query::{Float, Value, ValueKind};

/// A Rust type a record field may have: what kind of [`Value`] it is, and how to convert.
pub trait FieldValue: Sized {
    /// The kind of its values.
    const KIND: ValueKind;
    /// Whether it may be `NULL` (an `Option`).
    const NULLABLE: bool = false;
    /// The value as a query [`Value`].
    fn to_value(&self) -> Value;
    /// The Rust value of a query [`Value`] of the right kind; `None` for any other kind.
    fn from_value(value: &Value) -> Option<Self>;
}

macro_rules! field_value {
    ($ty:ty, $kind:ident, |$v:ident| $to:expr, $pat:pat => $from:expr) => {
        impl FieldValue for $ty {
            const KIND: ValueKind = ValueKind::$kind;
            fn to_value(&self) -> Value {
                let $v = self;
                $to
            }
            fn from_value(value: &Value) -> Option<Self> {
                match value {
                    $pat => $from,
                    _ => None,
                }
            }
        }
    };
}

field_value!(String, Text, |v| Value::Text(v.clone()), Value::Text(s) => Some(s.clone()));
field_value!(i64, Int, |v| Value::Int(*v), Value::Int(n) => Some(*n));
field_value!(i32, Int, |v| Value::Int(i64::from(*v)), Value::Int(n) => i32::try_from(*n).ok());
field_value!(bool, Bool, |v| Value::Bool(*v), Value::Bool(b) => Some(*b));
field_value!(f64, Float, |v| Value::Float(Float(*v)), Value::Float(x) => Some(x.0));
field_value!(Timestamp, Time, |v| Value::Time(*v), Value::Time(t) => Some(*t));
field_value!(NaiveDate, Date, |v| Value::Date(*v), Value::Date(d) => Some(*d));
field_value!(Uuid, Uuid, |v| Value::Uuid(*v), Value::Uuid(u) => Some(*u));
field_value!(serde_json::Value, Json, |v| Value::Json(v.to_string()), Value::Json(s) => serde_json::from_str(s).ok());

impl<T: FieldValue> FieldValue for Option<T> {
    const KIND: ValueKind = T::KIND;
    const NULLABLE: bool = true;
    fn to_value(&self) -> Value {
        self.as_ref().map_or(Value::Null, T::to_value)
    }
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Null => Some(None),
            other => T::from_value(other).map(Some),
        }
    }
}

/// The key of a record: a UUID (made by the library, UUIDv7) or an `i64` (a `BIGSERIAL` / `INTEGER PRIMARY KEY`
/// the database assigns), or a newtype over either.
pub trait RecordId: Clone + Eq + Hash + fmt::Debug + fmt::Display + Send + Sync + 'static {
    /// The id as a query [`Value`].
    fn to_value(&self) -> Value;
    /// The id of a query [`Value`] of the right kind.
    fn from_value(value: &Value) -> Option<Self>;
    /// A fresh id for a new row, or `None` when the database assigns ids of this type.
    fn generate() -> Option<Self>;
}

impl RecordId for Uuid {
    fn to_value(&self) -> Value {
        Value::Uuid(*self)
    }
    fn generate() -> Option<Self> {
        Some(Uuid::now_v7())
    }
    fn from_value(value: &Value) -> Option<Self> {
        <Uuid as FieldValue>::from_value(value)
    }
}

impl RecordId for i64 {
    fn to_value(&self) -> Value {
        Value::Int(*self)
    }
    fn generate() -> Option<Self> {
        None
    }
    fn from_value(value: &Value) -> Option<Self> {
        <i64 as FieldValue>::from_value(value)
    }
}

macro_rules! uuid_record_id {
    ($($id:ty),+) => {$(
        impl RecordId for $id {
            fn to_value(&self) -> Value {
                Value::Uuid(*self.as_uuid())
            }
            fn generate() -> Option<Self> {
                Some(<$id>::new())
            }
            fn from_value(value: &Value) -> Option<Self> {
                <Uuid as FieldValue>::from_value(value).map(<$id>::from_uuid)
            }
        }

        impl From<$id> for Value {
            fn from(id: $id) -> Self {
                Value::Uuid(*id.as_uuid())
            }
        }
    )+};
}

uuid_record_id!(UserId, EntityId, CustomerId, TransactionId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_refuse_other_kinds() {
        assert_eq!(Option::<i32>::from_value(&Value::Null), Some(None));
        assert_eq!(Option::<i32>::from_value(&Value::Int(7)), Some(Some(7)));
        assert_eq!(i32::from_value(&Value::Int(i64::MAX)), None);
        assert_eq!(String::from_value(&Value::Int(1)), None);
        let doc = serde_json::json!({"a": [1, 2]});
        assert_eq!(serde_json::Value::from_value(&doc.to_value()), Some(doc));
        assert_eq!(<Option<f64> as FieldValue>::KIND, ValueKind::Float);
        assert_eq!((<Option<f64> as FieldValue>::NULLABLE, <f64 as FieldValue>::NULLABLE), (true, false));
    }
}
