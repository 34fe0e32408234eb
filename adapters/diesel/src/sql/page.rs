//! [`SqlitePage`]: the `LIMIT` and `OFFSET` of a page read on SQLite, written so the statement stays prepared.

use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::result::QueryResult;
use diesel::sql_types::BigInt;
use diesel::sqlite::Sqlite;

/// `query LIMIT +? OFFSET ?` on SQLite, both bound.
///
/// SQLite (3.47 and later) plans a statement whose `LIMIT` is a bare bind parameter with the value bound to it,
/// and so prepares the statement again every time that parameter is bound, which Diesel does on every run: a page
/// read through a cached statement would still be compiled on every call. Written `+?`, the limit is an ordinary
/// expression evaluated when the statement runs (as every `LIMIT` was before SQLite 3.47), so the cached statement
/// is used as it is. The rows are the same.
#[derive(Debug, Clone, QueryId)]
pub struct SqlitePage<Q> {
    query: Q,
    offset: i64,
    limit: i64,
}

impl<Q> SqlitePage<Q> {
    /// At most `limit` rows of `query` (all of them for a negative `limit`), skipping the first `offset`.
    pub const fn new(query: Q, offset: i64, limit: i64) -> Self {
        Self { query, offset, limit }
    }
}

impl<Q: Query> Query for SqlitePage<Q> {
    type SqlType = Q::SqlType;
}

impl<Q: QueryFragment<Sqlite>> QueryFragment<Sqlite> for SqlitePage<Q> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        self.query.walk_ast(out.reborrow())?;
        out.push_sql(" LIMIT +");
        out.push_bind_param::<BigInt, _>(&self.limit)?;
        out.push_sql(" OFFSET ");
        out.push_bind_param::<BigInt, _>(&self.offset)
    }
}

impl<Q, Conn> diesel::RunQueryDsl<Conn> for SqlitePage<Q> {}
