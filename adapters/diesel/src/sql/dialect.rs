//! What differs between PostgreSQL and SQLite when a condition is built: [`Dialect`]. A condition names its
//! column (an identifier from the record's declaration, quoted) and binds its value with the SQL type of the
//! value's kind, so one implementation serves every column of every record.

use cpc_domain::ValidationError;
use cpc_ports::{RepoError, Value};
use diesel::BoolExpressionMethods;
use diesel::dsl::sql;
use diesel::pg::Pg;
use diesel::sql_types::{BigInt, Bool, Date, Double, Integer, Text};
use diesel::sqlite::Sqlite;

use super::{Cond, Op};
use crate::sql_types::{Timestamptz, Uuid};
use crate::values::{DbTime, DbUuid};

/// A Diesel backend the repositories build conditions for: PostgreSQL or SQLite.
pub trait Dialect: diesel::backend::Backend + Sized + 'static {
    /// `column <op> value`.
    fn compare<Tab: 'static>(column: &'static str, op: Op, value: &Value) -> Result<Cond<Tab, Self>, RepoError>;
    /// `column` starts with `prefix`, literally (`%` and `_` are not wildcards), case-sensitively.
    fn prefix<Tab: 'static>(column: &'static str, prefix: &str) -> Result<Cond<Tab, Self>, RepoError>;
    /// `column IS NULL` (or `IS NOT NULL`).
    fn null<Tab: 'static>(column: &'static str, is_null: bool) -> Cond<Tab, Self>;
    /// `a AND b`.
    fn and<Tab: 'static>(a: Cond<Tab, Self>, b: Cond<Tab, Self>) -> Cond<Tab, Self>;
    /// `a OR b`.
    fn or<Tab: 'static>(a: Cond<Tab, Self>, b: Cond<Tab, Self>) -> Cond<Tab, Self>;
}

/// A quoted identifier.
fn quote(column: &str) -> String {
    format!("\"{}\"", column.replace('"', "\"\""))
}

fn not_comparable(column: &'static str, value: &Value) -> RepoError {
    RepoError::Validation(ValidationError::new(column, format!("{:?} values cannot be compared", value.kind())))
}

/// The `LIKE` pattern matching text that starts with `prefix` literally (`\` is the escape character).
pub fn like_prefix(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

macro_rules! dialect {
    ($db:ty, |$column:ident, $p:ident| $prefix:expr) => {
        impl Dialect for $db {
            fn compare<Tab: 'static>(
                column: &'static str,
                op: Op,
                value: &Value,
            ) -> Result<Cond<Tab, Self>, RepoError> {
                let head = sql::<Bool>(&format!("{}{}", quote(column), op.sql()));
                Ok(match value {
                    Value::Text(s) => Box::new(head.bind::<Text, _>(s.clone())),
                    Value::Int(n) => Box::new(head.bind::<BigInt, _>(*n)),
                    Value::Uuid(u) => Box::new(head.bind::<Uuid, _>(DbUuid(*u))),
                    Value::Time(t) => Box::new(head.bind::<Timestamptz, _>(DbTime(*t))),
                    Value::Bool(b) => Box::new(head.bind::<Bool, _>(*b)),
                    Value::Float(x) => Box::new(head.bind::<Double, _>(x.0)),
                    Value::Date(d) => Box::new(head.bind::<Date, _>(*d)),
                    other @ (Value::Json(_) | Value::Null) => return Err(not_comparable(column, other)),
                })
            }

            fn prefix<Tab: 'static>($column: &'static str, $p: &str) -> Result<Cond<Tab, Self>, RepoError> {
                $prefix
            }

            fn null<Tab: 'static>(column: &'static str, is_null: bool) -> Cond<Tab, Self> {
                let test = if is_null { " IS NULL" } else { " IS NOT NULL" };
                Box::new(sql::<Bool>(&format!("{}{test}", quote(column))))
            }

            fn and<Tab: 'static>(a: Cond<Tab, Self>, b: Cond<Tab, Self>) -> Cond<Tab, Self> {
                Box::new(a.and(b))
            }

            fn or<Tab: 'static>(a: Cond<Tab, Self>, b: Cond<Tab, Self>) -> Cond<Tab, Self> {
                Box::new(a.or(b))
            }
        }
    };
}

// PostgreSQL: `LIKE 'p%' ESCAPE '\'` (case-sensitive there).
dialect!(Pg, |column, p| {
    let head = sql::<Bool>(&format!("{} LIKE ", quote(column)));
    Ok(Box::new(head.bind::<Text, _>(like_prefix(p)).sql(" ESCAPE '\\'")))
});

// SQLite: its `LIKE` ignores ASCII case, so `substr(col, 1, n) = p` (in characters, like the prefix).
dialect!(Sqlite, |column, p| {
    let n = i32::try_from(p.chars().count())
        .map_err(|_| RepoError::Validation(ValidationError::new("prefix", "is too long")))?;
    let head = sql::<Bool>(&format!("substr({}, 1, ", quote(column)));
    Ok(Box::new(head.bind::<Integer, _>(n).sql(") = ").bind::<Text, _>(p.to_owned())))
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_wildcards_and_the_escape_character() {
        assert_eq!(like_prefix("100%"), r"100\%%");
        assert_eq!(like_prefix("a_b"), r"a\_b%");
        assert_eq!(like_prefix(r"a\"), r"a\\%");
        assert_eq!(like_prefix(""), "%");
        assert_eq!(quote(r#"we"ird"#), r#""we""ird""#);
    }
}
