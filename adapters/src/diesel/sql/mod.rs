//! The SQL side of the repositories: the per-table operations ([`SqlTable`], implemented for each model on each
//! backend by [`table_ops!`](crate::diesel::repos::macros)), and the query-building helpers they share. Every
//! value reaches the database as a bind parameter of Diesel's query builder; no SQL text is built from values.

use std::future::Future;

use cpc_domain::{Timestamp, ValidationError, Version};
use cpc_ports::{Direction, Field, Filter, RepoError, Sort, Value};
use diesel::backend::Backend;
use diesel::expression::{AsExpression, BoxableExpression};
use diesel::sql_types::{Bool, Text};
use diesel::{BoolExpressionMethods, ExpressionMethods, dsl};

use super::audit::AuditEntry;
use super::model::Model;
use super::values::{DbTime, DbUuid};
use crate::diesel::error::ErrorContext;

diesel::define_sql_function! {
    /// SQL `lower(text)`.
    fn lower(x: Text) -> Text;
}

diesel::define_sql_function! {
    /// SQL `substr(text, start, length)` (1-based, in characters).
    fn substr(x: Text, start: diesel::sql_types::Integer, length: diesel::sql_types::Integer) -> Text;
}

/// A boxed boolean condition on table `Tab` for backend `DB`.
pub type Cond<Tab, DB> = Box<dyn BoxableExpression<Tab, DB, SqlType = Bool>>;

/// A comparison a condition makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `=`
    Eq,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
}

/// `col <op> value`, boxed.
pub fn compare<Tab, DB, C, V>(col: C, op: Op, value: V) -> Cond<Tab, DB>
where
    DB: Backend,
    C: ExpressionMethods,
    C::SqlType: diesel::sql_types::SqlType,
    V: AsExpression<C::SqlType>,
    dsl::Eq<C, V>: BoxableExpression<Tab, DB, SqlType = Bool> + 'static,
    dsl::Gt<C, V>: BoxableExpression<Tab, DB, SqlType = Bool> + 'static,
    dsl::GtEq<C, V>: BoxableExpression<Tab, DB, SqlType = Bool> + 'static,
    dsl::Lt<C, V>: BoxableExpression<Tab, DB, SqlType = Bool> + 'static,
{
    match op {
        Op::Eq => Box::new(col.eq(value)),
        Op::Gt => Box::new(col.gt(value)),
        Op::Ge => Box::new(col.ge(value)),
        Op::Lt => Box::new(col.lt(value)),
    }
}

/// `a AND b`.
pub fn and<Tab, DB>(a: Cond<Tab, DB>, b: Cond<Tab, DB>) -> Cond<Tab, DB>
where
    DB: Backend,
    dsl::And<Cond<Tab, DB>, Cond<Tab, DB>>: BoxableExpression<Tab, DB, SqlType = Bool> + 'static,
{
    Box::new(a.and(b))
}

/// `a OR b`.
pub fn or<Tab, DB>(a: Cond<Tab, DB>, b: Cond<Tab, DB>) -> Cond<Tab, DB>
where
    DB: Backend,
    dsl::Or<Cond<Tab, DB>, Cond<Tab, DB>>: BoxableExpression<Tab, DB, SqlType = Bool> + 'static,
{
    Box::new(a.or(b))
}

/// The condition of a filter on one field, given how to compare that field with a value.
pub fn filter_cond<F, Tab, DB>(
    filter: &Filter<F>,
    cmp: impl Fn(Op, &Value) -> Result<Cond<Tab, DB>, RepoError>,
    prefix: impl FnOnce(&str) -> Result<Cond<Tab, DB>, RepoError>,
) -> Result<Cond<Tab, DB>, RepoError>
where
    F: Field,
    DB: Backend,
    dsl::And<Cond<Tab, DB>, Cond<Tab, DB>>: BoxableExpression<Tab, DB, SqlType = Bool> + 'static,
    bool: AsExpression<Bool>,
    dsl::AsExprOf<bool, Bool>: BoxableExpression<Tab, DB, SqlType = Bool> + 'static,
{
    match filter {
        Filter::Eq(_, v) => cmp(Op::Eq, v),
        Filter::Range { from, to, .. } => match (from, to) {
            (Some(f), Some(t)) => Ok(and(cmp(Op::Ge, f)?, cmp(Op::Lt, t)?)),
            (Some(f), None) => cmp(Op::Ge, f),
            (None, Some(t)) => cmp(Op::Lt, t),
            (None, None) => Ok(Box::new(<bool as AsExpression<Bool>>::as_expression(true))),
        },
        Filter::Prefix(_, p) => prefix(p),
    }
}

/// The keyset condition "the row sorts after `values`", for sort keys `keys` (each in its direction; the last is
/// the id, ascending): `k0 ≻ v0 OR (k0 = v0 AND k1 ≻ v1) OR ...`, where `≻` is `>` for ascending keys and `<` for
/// descending ones.
pub fn keyset_cond<F, Tab, DB>(
    keys: &[(F, Direction)],
    values: &[Value],
    cmp: impl Fn(F, Op, &Value) -> Result<Cond<Tab, DB>, RepoError>,
) -> Result<Option<Cond<Tab, DB>>, RepoError>
where
    F: Field,
    DB: Backend,
    dsl::And<Cond<Tab, DB>, Cond<Tab, DB>>: BoxableExpression<Tab, DB, SqlType = Bool> + 'static,
    dsl::Or<Cond<Tab, DB>, Cond<Tab, DB>>: BoxableExpression<Tab, DB, SqlType = Bool> + 'static,
{
    let mut any: Option<Cond<Tab, DB>> = None;
    for (i, ((field, direction), value)) in keys.iter().zip(values).enumerate() {
        let after = if *direction == Direction::Asc { Op::Gt } else { Op::Lt };
        let mut term = cmp(*field, after, value)?;
        for ((earlier, _), v) in keys[..i].iter().zip(values).rev() {
            term = and(cmp(*earlier, Op::Eq, v)?, term);
        }
        any = Some(match any {
            None => term,
            Some(before) => or(before, term),
        });
    }
    Ok(any)
}

fn wrong_kind(value: &Value) -> RepoError {
    RepoError::Validation(ValidationError::new("value", format!("unexpected value kind {:?}", value.kind())))
}

/// A text value.
pub fn as_text(v: &Value) -> Result<String, RepoError> {
    match v {
        Value::Text(s) => Ok(s.clone()),
        other => Err(wrong_kind(other)),
    }
}

/// A UUID value.
pub fn as_uuid(v: &Value) -> Result<DbUuid, RepoError> {
    match v {
        Value::Uuid(u) => Ok(DbUuid(*u)),
        other => Err(wrong_kind(other)),
    }
}

/// A time value.
pub fn as_time(v: &Value) -> Result<DbTime, RepoError> {
    match v {
        Value::Time(t) => Ok(DbTime(*t)),
        other => Err(wrong_kind(other)),
    }
}

/// An integer value.
pub fn as_int(v: &Value) -> Result<i64, RepoError> {
    match v {
        Value::Int(n) => Ok(*n),
        other => Err(wrong_kind(other)),
    }
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

/// A timestamp as a bind value.
pub fn time(t: Timestamp) -> DbTime {
    DbTime(t)
}

/// The operations of one model's table on connection type `C`. Public only because the repositories' generic
/// impls name it; it lives in a private module, so nothing outside this crate can name or implement it.
pub trait SqlTable<C>: Model {
    /// Where errors on this table happen.
    const CONTEXT: ErrorContext;

    /// The row with this id.
    fn find<'a>(conn: &'a mut C, id: &'a Self::Id)
    -> impl Future<Output = Result<Option<Self>, RepoError>> + Send + 'a;

    /// The stored version of the row with this id.
    fn stored_version<'a>(
        conn: &'a mut C,
        id: &'a Self::Id,
    ) -> impl Future<Output = Result<Option<Version>, RepoError>> + Send + 'a;

    /// Whether a row with this id exists.
    fn exists<'a>(conn: &'a mut C, id: &'a Self::Id) -> impl Future<Output = Result<bool, RepoError>> + Send + 'a;

    /// Inserts fully built rows with one multi-row `INSERT`.
    fn insert<'a>(conn: &'a mut C, rows: &'a [Self]) -> impl Future<Output = Result<(), RepoError>> + Send + 'a;

    /// Writes `row` over the stored one if that is still at version `expected`; returns whether it was.
    fn overwrite<'a>(
        conn: &'a mut C,
        row: &'a Self,
        expected: Version,
    ) -> impl Future<Output = Result<bool, RepoError>> + Send + 'a;

    /// Inserts `audit_log` rows (each entry names its table) with one multi-row `INSERT`.
    fn audit<'a>(conn: &'a mut C, entries: &'a [AuditEntry])
    -> impl Future<Output = Result<(), RepoError>> + Send + 'a;

    /// Deletes the row; returns whether it existed.
    fn remove<'a>(conn: &'a mut C, id: &'a Self::Id) -> impl Future<Output = Result<bool, RepoError>> + Send + 'a;

    /// Rows matching every filter and (for keyset paging) sorting after `after`, ordered by `sort` then id,
    /// skipping `offset` and returning at most `limit`.
    fn select<'a>(
        conn: &'a mut C,
        filters: &'a [Filter<Self::Field>],
        sort: &'a [Sort<Self::Field>],
        after: Option<Vec<Value>>,
        offset: i64,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<Self>, RepoError>> + Send + 'a;

    /// How many rows match every filter.
    fn count<'a>(
        conn: &'a mut C,
        filters: &'a [Filter<Self::Field>],
    ) -> impl Future<Output = Result<u64, RepoError>> + Send + 'a;
}

/// Tables with a case-insensitively unique e-mail address.
pub trait EmailTable<C>: SqlTable<C> {
    /// The row whose `lower(email)` equals `lower(email)`.
    fn find_by_email<'a>(
        conn: &'a mut C,
        email: &'a str,
    ) -> impl Future<Output = Result<Option<Self>, RepoError>> + Send + 'a;
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
