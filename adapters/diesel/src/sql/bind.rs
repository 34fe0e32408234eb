//! [`BindAs`]: the value a model field is written as, for its column's SQL type. Plain Rust types bind as
//! themselves; `uuid::Uuid`, `DateTime<Utc>` and `serde_json::Value` bind through the library's wrappers in the
//! portable types of [`sql_types`](crate::sql_types) (Diesel's own impls cannot be extended to them).

use chrono::{DateTime, NaiveDate, Utc};
use diesel::sql_types::{BigInt, Bool, Date, Double, Integer, Nullable, Text};

use crate::sql_types::{Jsonb, Timestamptz, Uuid};
use crate::values::{DbJson, DbTime, DbUuid};

/// How a Rust field value is bound for a column of SQL type `ST`.
pub trait BindAs<ST> {
    /// The bind value (an `AsExpression<ST>`).
    type Out;
    /// Converts.
    fn bind_as(self) -> Self::Out;
}

macro_rules! bind_as {
    ($rust:ty => $st:ty, |$v:ident| $out:ty = $conv:expr) => {
        impl BindAs<$st> for $rust {
            type Out = $out;
            fn bind_as(self) -> $out {
                let $v = self;
                $conv
            }
        }
    };
}

bind_as!(String => Text, |v| String = v);
bind_as!(i32 => Integer, |v| i32 = v);
bind_as!(i64 => BigInt, |v| i64 = v);
bind_as!(bool => Bool, |v| bool = v);
bind_as!(f64 => Double, |v| f64 = v);
bind_as!(NaiveDate => Date, |v| NaiveDate = v);
bind_as!(uuid::Uuid => Uuid, |v| DbUuid = DbUuid(v));
bind_as!(DateTime<Utc> => Timestamptz, |v| DbTime = DbTime(v));
bind_as!(serde_json::Value => Jsonb, |v| DbJson = DbJson(v));

impl<T: BindAs<ST>, ST> BindAs<Nullable<ST>> for Option<T> {
    type Out = Option<T::Out>;
    fn bind_as(self) -> Self::Out {
        self.map(T::bind_as)
    }
}

/// `value` as the bind value of a column of SQL type `ST` (the macros name `ST` as the column's type).
pub fn bind_as<ST, T: BindAs<ST>>(value: T) -> T::Out {
    value.bind_as()
}
