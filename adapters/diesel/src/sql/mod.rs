//! The SQL side of every repository, public so an app's records get exactly what the built-in ones get:
//! [`SqlTable`] (a record's table operations on one connection type, implemented by [`sql_table!`](crate::sql_table)
//! and [`record!`](crate::record)), [`RecordConn`] (the two connection types), and the query-building helpers the
//! macros expand to. Every value reaches the database as a bind parameter; identifiers come from the declaration.

mod bind;
mod cond;
mod dialect;
mod keys;
mod macros;
mod page;
mod record;

use std::future::Future;

use cpc_domain::Version;
use cpc_ports::{Direction, Field, Filter, RepoError, Sort, Value};
use diesel_async::AsyncConnection;

pub use bind::{BindAs, bind_as};
pub use cond::Cond;
pub use dialect::{Dialect, like_prefix};
pub use keys::SqlKey;
pub use page::SqlitePage;

use crate::audit_row::AuditEntry;
use crate::error::ErrorContext;

diesel::define_sql_function! {
    /// SQL `lower(text)`.
    fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

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

impl Op {
    /// The SQL operator.
    pub const fn sql(self) -> &'static str {
        match self {
            Self::Eq => " = ",
            Self::Gt => " > ",
            Self::Ge => " >= ",
            Self::Lt => " < ",
        }
    }
}

/// The SQLite connection the repositories use: Diesel's synchronous connection, run on tokio's blocking pool.
pub type AsyncSqliteConnection = diesel_async::sync_connection_wrapper::SyncConnectionWrapper<diesel::SqliteConnection>;

/// A connection type records are stored through: `AsyncPgConnection` or the SQLite one (implemented in
/// [`builtin`](crate::builtin), beside the `audit_log` table it writes).
pub trait RecordConn: AsyncConnection + Send + 'static {
    /// Its Diesel backend.
    type Db: Dialect;
    /// `"postgres"` or `"sqlite"`.
    const BACKEND: &'static str;
    /// Inserts `audit_log` rows with one multi-row `INSERT`.
    fn write_audit<'a>(
        &'a mut self,
        entries: &'a [AuditEntry],
    ) -> impl Future<Output = Result<(), RepoError>> + Send + 'a;
}

/// `field <op> value` on table `Tab`, given a field.
pub type CmpFn<'f, F, Tab, DB> = &'f dyn Fn(F, Op, &Value) -> Result<Cond<Tab, DB>, RepoError>;
/// `field` starts with a text, on table `Tab`.
pub type PrefixFn<'f, F, Tab, DB> = &'f dyn Fn(F, &str) -> Result<Cond<Tab, DB>, RepoError>;
/// Combines two conditions.
type JoinFn<Tab, DB> = fn(Cond<Tab, DB>, Cond<Tab, DB>) -> Cond<Tab, DB>;

/// How a table's conditions are built, given per-field closures: `cmp(field, op, value)`, `prefix(field, text)`,
/// `null(field, is_null)`.
pub struct FieldConds<'f, F, Tab, DB> {
    /// `field <op> value`.
    pub cmp: CmpFn<'f, F, Tab, DB>,
    /// `field` starts with the text.
    pub prefix: PrefixFn<'f, F, Tab, DB>,
    /// `field IS NULL` (`true`) or `IS NOT NULL` (`false`).
    pub null: &'f dyn Fn(F, bool) -> Cond<Tab, DB>,
}

/// The condition of a filter (nested ones included).
pub fn filter_cond<F, Tab, DB>(
    filter: &Filter<F>,
    conds: &FieldConds<'_, F, Tab, DB>,
) -> Result<Cond<Tab, DB>, RepoError>
where
    F: Field,
    Tab: 'static,
    DB: Dialect,
{
    let combine = |all: &[Filter<F>], join: JoinFn<Tab, DB>, empty: bool| {
        let mut acc: Option<Cond<Tab, DB>> = None;
        for f in all {
            let c = filter_cond(f, conds)?;
            acc = Some(match acc {
                None => c,
                Some(before) => join(before, c),
            });
        }
        Ok(acc.unwrap_or_else(|| Cond::constant(empty)))
    };
    match filter {
        Filter::Eq(f, v) => (conds.cmp)(*f, Op::Eq, v),
        Filter::Range { field, from, to } => match (from, to) {
            (Some(a), Some(b)) => Ok(Cond::and((conds.cmp)(*field, Op::Ge, a)?, (conds.cmp)(*field, Op::Lt, b)?)),
            (Some(a), None) => (conds.cmp)(*field, Op::Ge, a),
            (None, Some(b)) => (conds.cmp)(*field, Op::Lt, b),
            (None, None) => Ok((conds.null)(*field, false)),
        },
        Filter::Prefix(f, p) => (conds.prefix)(*f, p),
        Filter::In(f, values) => {
            let eqs: Vec<Filter<F>> = values.iter().map(|v| Filter::Eq(*f, v.clone())).collect();
            // One comparison per value: SQL whose text grows with the list, so never cached.
            combine(&eqs, Cond::or, false).map(Cond::uncacheable)
        }
        Filter::IsNull(f) => Ok((conds.null)(*f, true)),
        Filter::IsNotNull(f) => Ok((conds.null)(*f, false)),
        Filter::Or(all) => combine(all, Cond::or, false),
        Filter::And(all) => combine(all, Cond::and, true),
    }
}

/// The keyset condition "the row sorts after `values`", for sort keys `keys` (each in its direction; the last is
/// the id, ascending): `k0 ≻ v0 OR (k0 = v0 AND k1 ≻ v1) OR ...`, where `≻` is `>` for ascending keys and `<` for
/// descending ones.
pub fn keyset_cond<F, Tab, DB>(
    keys: &[(F, Direction)],
    values: &[Value],
    cmp: CmpFn<'_, F, Tab, DB>,
) -> Result<Option<Cond<Tab, DB>>, RepoError>
where
    F: Field,
    Tab: 'static,
    DB: Dialect,
{
    let mut any: Option<Cond<Tab, DB>> = None;
    for (i, ((field, direction), value)) in keys.iter().zip(values).enumerate() {
        let after = if *direction == Direction::Asc { Op::Gt } else { Op::Lt };
        let mut term = cmp(*field, after, value)?;
        for ((earlier, _), v) in keys[..i].iter().zip(values).rev() {
            term = Cond::and(cmp(*earlier, Op::Eq, v)?, term);
        }
        any = Some(match any {
            None => term,
            Some(before) => Cond::or(before, term),
        });
    }
    Ok(any)
}

/// The operations of one record's table on connection type `C`: implemented by [`sql_table!`](crate::sql_table)
/// (and so by [`record!`](crate::record)); the repositories, units of work and replica routing are written once
/// over it.
pub trait SqlTable<C>: cpc_ports::Record {
    /// Where errors on this table happen.
    const CONTEXT: ErrorContext;

    /// The row with this id.
    fn find<'a>(conn: &'a mut C, id: &'a Self::Id)
    -> impl Future<Output = Result<Option<Self>, RepoError>> + Send + 'a;

    /// The stored version of the row with this id ([`Version::FIRST`] for a table without versions).
    fn stored_version<'a>(
        conn: &'a mut C,
        id: &'a Self::Id,
    ) -> impl Future<Output = Result<Option<Version>, RepoError>> + Send + 'a;

    /// Whether a row with this id exists.
    fn exists<'a>(conn: &'a mut C, id: &'a Self::Id) -> impl Future<Output = Result<bool, RepoError>> + Send + 'a;

    /// Inserts fully built rows (one multi-row `INSERT` where the ids are made here; one `INSERT ... RETURNING`
    /// per row where the database assigns them, which are then set on the rows).
    fn insert<'a>(conn: &'a mut C, rows: &'a mut [Self]) -> impl Future<Output = Result<(), RepoError>> + Send + 'a;

    /// Writes `row` over the stored one if that is still at version `expected` (any version, for a table
    /// without versions); returns whether it was.
    fn overwrite<'a>(
        conn: &'a mut C,
        row: &'a Self,
        expected: Version,
    ) -> impl Future<Output = Result<bool, RepoError>> + Send + 'a;

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

    /// Reads no row but names every column the declaration selects, so a declaration that does not match the
    /// database's table fails at start-up with an error naming the table and the column, not at the first query.
    fn verify<'a>(conn: &'a mut C) -> impl Future<Output = Result<(), RepoError>> + Send + 'a;
}

/// Tables with a case-insensitively unique e-mail address.
pub trait EmailTable<C>: SqlTable<C> {
    /// The row whose `lower(email)` equals `lower(email)`.
    fn find_by_email<'a>(
        conn: &'a mut C,
        email: &'a str,
    ) -> impl Future<Output = Result<Option<Self>, RepoError>> + Send + 'a;
}

/// What a start-up check of a declaration reports when the table does not match it.
pub fn mismatch(table: &'static str, error: diesel::result::Error) -> RepoError {
    RepoError::Validation(cpc_domain::ValidationError::new(
        table,
        format!("the table does not match its record declaration: {error}"),
    ))
}

/// The first name of `names`, or `default` (for the macros, in constants).
pub const fn first_or(names: &[&'static str], default: &'static str) -> &'static str {
    match names {
        [first, ..] => first,
        [] => default,
    }
}

/// Used by the macros' expansions; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use async_trait;
    pub use cpc_domain::{Timestamp, ValidationError, Version};
    pub use cpc_ports::{
        Direction, Field, FieldValue, Filter, Record, RecordId, Reference, RepoError, Sort, UniqueKey, Value, ValueKind,
    };
    pub use diesel;
    pub use diesel_async;
    pub use diesel_async::{AsyncPgConnection, RunQueryDsl};

    pub use super::AsyncSqliteConnection;
    pub use super::{
        Cond, Dialect, EmailTable, FieldConds, Op, RecordConn, SqlKey, SqlTable, bind_as, filter_cond, first_or,
        keyset_cond, lower, mismatch,
    };
    pub use crate::error::ErrorContext;

    /// The kind and nullability of a model field's type, from an accessor.
    pub fn kind_of<M, T: FieldValue>(_: fn(&M) -> &T) -> (ValueKind, bool) {
        (T::KIND, T::NULLABLE)
    }

    /// The kind of a key type.
    pub fn key_kind<M, K: SqlKey>(_: fn(&M) -> &K) -> (ValueKind, bool) {
        (K::KIND, false)
    }
}
