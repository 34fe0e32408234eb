//! What differs between PostgreSQL and SQLite when a condition is built: [`Dialect`]. A condition names its
//! column (an identifier from the record's declaration, quoted) and binds its value with the SQL type of the
//! value's kind, so one implementation serves every column of every record.

use cpc_domain::ValidationError;
use cpc_ports::{RepoError, Value};
use diesel::pg::Pg;
use diesel::sqlite::Sqlite;

use super::cond::{Bind, Part};
use super::{Cond, Op};
use crate::values::{DbTime, DbUuid};

/// A Diesel backend the repositories build conditions for: PostgreSQL or SQLite.
pub trait Dialect: diesel::backend::Backend + Sized + 'static {
    /// `column <op> value`.
    fn compare<Tab: 'static>(column: &'static str, op: Op, value: &Value) -> Result<Cond<Tab, Self>, RepoError> {
        let bind = match value {
            Value::Text(s) => Bind::Text(s.clone()),
            Value::Int(n) => Bind::BigInt(*n),
            Value::Uuid(u) => Bind::Uuid(DbUuid(*u)),
            Value::Time(t) => Bind::Time(DbTime(*t)),
            Value::Bool(b) => Bind::Bool(*b),
            Value::Float(x) => Bind::Double(x.0),
            Value::Date(d) => Bind::Date(*d),
            other @ (Value::Json(_) | Value::Null) => return Err(not_comparable(column, other)),
        };
        Ok(Cond::new([Part::Col(column), Part::Sql(op.sql()), Part::Bind(bind)]))
    }

    /// `column` starts with `prefix`, literally (`%` and `_` are not wildcards), case-sensitively.
    fn prefix<Tab: 'static>(column: &'static str, prefix: &str) -> Result<Cond<Tab, Self>, RepoError>;

    /// `column IS NULL` (or `IS NOT NULL`).
    fn null<Tab: 'static>(column: &'static str, is_null: bool) -> Cond<Tab, Self> {
        let test = if is_null { " IS NULL" } else { " IS NOT NULL" };
        Cond::new([Part::Col(column), Part::Sql(test)])
    }
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

/// PostgreSQL: `LIKE 'p%' ESCAPE '\'` (case-sensitive there).
impl Dialect for Pg {
    fn prefix<Tab: 'static>(column: &'static str, prefix: &str) -> Result<Cond<Tab, Self>, RepoError> {
        Ok(Cond::new([
            Part::Col(column),
            Part::Sql(" LIKE "),
            Part::Bind(Bind::Text(like_prefix(prefix))),
            Part::Sql(" ESCAPE '\\'"),
        ]))
    }
}

/// SQLite: its `LIKE` ignores ASCII case, so `substr(col, 1, n) = p` (in characters, like the prefix).
impl Dialect for Sqlite {
    fn prefix<Tab: 'static>(column: &'static str, prefix: &str) -> Result<Cond<Tab, Self>, RepoError> {
        let n = i32::try_from(prefix.chars().count())
            .map_err(|_| RepoError::Validation(ValidationError::new("prefix", "is too long")))?;
        Ok(Cond::new([
            Part::Sql("substr("),
            Part::Col(column),
            Part::Sql(", 1, "),
            Part::Bind(Bind::Integer(n)),
            Part::Sql(") = "),
            Part::Bind(Bind::Text(prefix.to_owned())),
        ]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_wildcards_and_the_escape_character() {
        assert_eq!(like_prefix("100%"), r"100\%%");
        assert_eq!(like_prefix("a_b"), r"a\_b%");
        assert_eq!(like_prefix(r"a\"), r"a\\%");
        assert_eq!(like_prefix(""), "%");
    }
}
