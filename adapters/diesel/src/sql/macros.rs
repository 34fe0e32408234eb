//! [`sql_table!`](crate::sql_table) and [`record!`](crate::record): how a record gets its table operations on
//! PostgreSQL and SQLite. The four built-in records use `sql_table!` (their fields are domain types); an app's
//! records usually use `record!`, which also implements [`Record`](cpc_ports::Record) from the model struct.

/// Implements [`SqlTable`](crate::sql::SqlTable) for a record on PostgreSQL and on SQLite (and
/// [`EmailTable`](crate::sql::EmailTable) with `email:`), from a portable `diesel::table!` (see
/// [`sql_types`](crate::sql_types)). The record must implement [`Record`](cpc_ports::Record) with an id
/// that implements [`SqlKey`](crate::sql::SqlKey).
///
/// ```text
/// cpc_diesel::sql_table! {
///     record: User,                                   // the Record
///     table: users,                                   // the table! module (in scope)
///     row: UserRow = users::all_columns => User::try_from,  // what is loaded, and how it becomes a User
///     key: id,                                        // the key column
///     version: version,                               // optional: the optimistic-locking column
///     references: ["user_id"],                        // own foreign-key fields, for SQLite's unnamed errors
///     fields: UserField { Id => id, Username => username, ... },  // each field's column
///     insert: |r: &User| (users::id.eq(..), ...),     // every column of a new row
///     update: |r: &User| (users::username.eq(..), ...),  // the SET of an update
///     email: email,                                   // optional: EmailTable on this column
/// }
/// ```
///
/// Where the database assigns ids (`Record::new_id` is `None`), rows are inserted one by one with
/// `serial_insert: |r| (...)` (every column but the key), and the assigned id read back.
///
/// On SQLite every statement runs on the wrapped synchronous connection inside one blocking call, so the values
/// `insert`, `serial_insert` and `update` return own their data (`r.name.clone()`, not `&r.name`).
#[macro_export]
macro_rules! sql_table {
    (
        record: $model:ty,
        table: $table:ident,
        row: $row:ty = $select:expr => $from_row:expr,
        key: $key:ident,
        $(version: $version:ident,)?
        references: [$($reference:expr),* $(,)?],
        fields: $fty:ident { $($var:ident => $col:ident),+ $(,)? },
        insert: $insert:expr,
        $(serial_insert: $serial:expr,)?
        update: $update:expr
        $(, email: $email:ident)?
        $(,)?
    ) => {
        const _: () = {
            type Conn = $crate::sql::__private::AsyncPgConnection;
            type Db = $crate::sql::__private::diesel::pg::Pg;
            $crate::sql_table!(@impl pg, $model, $table, $row, $select, $from_row, $key, [$($version)?],
                [$($reference),*], $fty, [$($var => $col),+], $insert, [$($serial)?], $update, [$($email)?]);
        };
        const _: () = {
            type Conn = $crate::sql::__private::AsyncSqliteConnection;
            type Db = $crate::sql::__private::diesel::sqlite::Sqlite;
            $crate::sql_table!(@impl sqlite, $model, $table, $row, $select, $from_row, $key, [$($version)?],
                [$($reference),*], $fty, [$($var => $col),+], $insert, [$($serial)?], $update, [$($email)?]);
        };
    };

    // A multi-row INSERT: through the async connection on PostgreSQL; on SQLite, Diesel writes multi-row inserts
    // only through its synchronous `ExecuteDsl`, so the statement runs on the wrapped connection directly. One row
    // goes as a plain single-row INSERT: Diesel caches that prepared statement per connection, whereas a `Vec`
    // insert is never cached (re-prepared on every call: one more round trip on PostgreSQL).
    (@insert pg, $conn:ident, $table:expr, $values:expr) => {
        match <[_; 1]>::try_from($values) {
            Ok([one]) => $crate::sql::__private::diesel::insert_into($table).values(one).execute($conn).await,
            Err(values) => $crate::sql::__private::diesel::insert_into($table).values(values).execute($conn).await,
        }
    };
    (@insert sqlite, $conn:ident, $table:expr, $values:expr) => {{
        use $crate::sql::__private::diesel;
        let values = $values;
        $conn
            .spawn_blocking(move |c| match <[_; 1]>::try_from(values) {
                Ok([one]) => diesel::RunQueryDsl::execute(diesel::insert_into($table).values(one), c),
                Err(values) => diesel::RunQueryDsl::execute(diesel::insert_into($table).values(values), c),
            })
            .await
    }};
    // Exactly one row, at most one row, every row, and a statement's count of changed rows. On SQLite the query
    // runs on the wrapped synchronous connection inside one blocking call, as the synchronous `RunQueryDsl` would
    // run it, rather than through the async wrapper's `AsyncConnection`, which on every call builds the SQL text,
    // copies the binds into owned values, looks the statement up by that text and copies the row into an owned
    // row before decoding it. The synchronous connection finds a query with a static `QueryId` in its statement
    // cache by type, without building its SQL, and decodes the row straight from the statement
    // (docs/BENCHMARKS.md, "SQLite reads against raw rusqlite").
    (@one pg, $conn:ident, $query:expr) => {
        $query.get_result($conn).await
    };
    (@one sqlite, $conn:ident, $query:expr) => {{
        let query = $query;
        $conn.spawn_blocking(move |c| $crate::sql::__private::diesel::RunQueryDsl::get_result(query, c)).await
    }};
    (@optional $how:ident, $conn:ident, $query:expr) => {
        $crate::sql::__private::diesel::OptionalExtension::optional($crate::sql_table!(@one $how, $conn, $query))
    };
    (@load pg, $conn:ident, $query:expr) => {
        $query.load($conn).await
    };
    (@load sqlite, $conn:ident, $query:expr) => {{
        let query = $query;
        $conn.spawn_blocking(move |c| $crate::sql::__private::diesel::RunQueryDsl::load(query, c)).await
    }};
    // A page's `LIMIT` and `OFFSET`; on SQLite written so the cached statement is not prepared again at each run
    // (see `SqlitePage`).
    (@page pg, $query:expr, $offset:expr, $limit:expr) => {
        $query.offset($offset).limit($limit)
    };
    (@page sqlite, $query:expr, $offset:expr, $limit:expr) => {
        $crate::sql::SqlitePage::new($query, $offset, $limit)
    };
    (@execute pg, $conn:ident, $query:expr) => {
        $query.execute($conn).await
    };
    (@execute sqlite, $conn:ident, $query:expr) => {{
        let query = $query;
        $conn.spawn_blocking(move |c| $crate::sql::__private::diesel::RunQueryDsl::execute(query, c)).await
    }};
    // One row with a database-assigned key; evaluates to the key as an `i64`.
    (@insert_serial pg, $conn:ident, $table:ident, $key:ident, $values:expr) => {{
        use $crate::sql::__private::diesel;
        let key = diesel::dsl::sql::<diesel::sql_types::BigInt>(concat!("\"", stringify!($key), "\""));
        diesel::insert_into($table::table).values($values).returning(key).get_result::<i64>($conn).await
    }};
    (@insert_serial sqlite, $conn:ident, $table:ident, $key:ident, $values:expr) => {{
        use $crate::sql::__private::diesel;
        let values = $values;
        $conn
            .spawn_blocking(move |c| {
                diesel::RunQueryDsl::execute(diesel::insert_into($table::table).values(values), c)?;
                let rowid = diesel::dsl::sql::<diesel::sql_types::BigInt>("last_insert_rowid()");
                diesel::RunQueryDsl::get_result::<i64>(diesel::select(rowid), c)
            })
            .await
    }};
    (@serial $how:ident, $conn:ident, $table:ident, $key:ident, $rows:ident, []) => {
        Err($crate::sql::__private::RepoError::Validation($crate::sql::__private::ValidationError::new(
            stringify!($key),
            "the database assigns this key but the declaration has no `serial_insert`",
        )))
    };
    (@serial $how:ident, $conn:ident, $table:ident, $key:ident, $rows:ident, [$serial:expr]) => {{
        let mut result = Ok(());
        for row in $rows.iter_mut() {
            let assigned = $crate::sql_table!(@insert_serial $how, $conn, $table, $key, ($serial)(&*row))
                .map_err(|e| CONTEXT.map(e));
            match assigned.and_then(|id| {
                <<Self as Record>::Id as $crate::sql::__private::RecordId>::from_value(&Value::Int(id))
                    .ok_or_else(|| RepoError::backend(<Conn as RecordConn>::BACKEND, "the database returned no usable key"))
            }) {
                Ok(id) => row.set_id(id),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        result
    }};
    (@stored_version $how:ident, [], $conn:ident, $table:ident, $key:ident, $bind:expr) => {{
        use $crate::sql::__private::diesel;
        let query = diesel::select(diesel::dsl::exists($table::table.filter($table::$key.eq($bind))));
        $crate::sql_table!(@one $how, $conn, query)
            .map(|found: bool| found.then_some(Version::FIRST))
            .map_err(|e| CONTEXT.map(e))
    }};
    (@stored_version $how:ident, [$version:ident], $conn:ident, $table:ident, $key:ident, $bind:expr) => {{
        let query = $table::table.filter($table::$key.eq($bind)).select($table::$version);
        $crate::sql_table!(@optional $how, $conn, query)
            .map(|v: Option<i64>| v.map(Version::new))
            .map_err(|e| CONTEXT.map(e))
    }};
    (@email $how:ident, $model:ty, $table:ident, $row:ty, $select:expr, $from_row:expr, []) => {};
    (@email $how:ident, $model:ty, $table:ident, $row:ty, $select:expr, $from_row:expr, [$email:ident]) => {
        impl EmailTable<Conn> for $model {
            async fn find_by_email<'a>(conn: &'a mut Conn, email: &'a str) -> Result<Option<Self>, RepoError> {
                let query = $table::table.filter(lower($table::$email).eq(lower(email.to_owned()))).select($select);
                let row: Option<$row> =
                    $crate::sql_table!(@optional $how, conn, query).map_err(|e| CONTEXT.map(e))?;
                row.map($from_row).transpose()
            }
        }
    };

    (@impl $how:ident, $model:ty, $table:ident, $row:ty, $select:expr, $from_row:expr, $key:ident,
        [$($version:ident)?], [$($reference:expr),*], $fty:ident, [$($var:ident => $col:ident),+], $insert:expr,
        [$($serial:expr)?], $update:expr, [$($email:ident)?]) => {
        #[allow(unused_imports)]
        use $crate::sql::__private::{
            diesel::{ExpressionMethods, OptionalExtension, QueryDsl},
            Cond, Dialect, Direction, EmailTable, ErrorContext, Field, FieldConds, Filter, Op, Record, RecordConn,
            RepoError, RunQueryDsl, Sort, SqlKey, SqlTable, Value, Version, filter_cond, first_or, keyset_cond, lower,
            mismatch,
        };

        type Tab = $table::table;
        type Boxed = $crate::sql::__private::diesel::dsl::IntoBoxed<'static, Tab, Db>;

        const CONTEXT: ErrorContext = ErrorContext {
            backend: <Conn as RecordConn>::BACKEND,
            table: stringify!($table),
            entity: <$model as Record>::ENTITY,
            reference_field: first_or(&[$($reference),*], ""),
        };

        fn cmp(field: $fty, op: Op, value: &Value) -> Result<Cond<Tab, Db>, RepoError> {
            match field { $($fty::$var => <Db as Dialect>::compare(stringify!($col), op, value),)+ }
        }
        fn prefix(field: $fty, p: &str) -> Result<Cond<Tab, Db>, RepoError> {
            match field { $($fty::$var => <Db as Dialect>::prefix(stringify!($col), p),)+ }
        }
        fn null(field: $fty, is_null: bool) -> Cond<Tab, Db> {
            match field { $($fty::$var => <Db as Dialect>::null(stringify!($col), is_null),)+ }
        }
        fn filter(f: &Filter<$fty>) -> Result<Cond<Tab, Db>, RepoError> {
            filter_cond(f, &FieldConds { cmp: &cmp, prefix: &prefix, null: &null })
        }
        fn order(q: Boxed, s: &Sort<$fty>) -> Boxed {
            match (s.field, s.direction) {
                $(
                    ($fty::$var, Direction::Asc) => q.then_order_by($table::$col.asc()),
                    ($fty::$var, Direction::Desc) => q.then_order_by($table::$col.desc()),
                )+
            }
        }

        impl SqlTable<Conn> for $model {
            const CONTEXT: ErrorContext = CONTEXT;

            async fn find<'a>(conn: &'a mut Conn, id: &'a <Self as Record>::Id) -> Result<Option<Self>, RepoError> {
                let query = $table::table.filter($table::$key.eq(SqlKey::bind(id))).select($select);
                let row: Option<$row> =
                    $crate::sql_table!(@optional $how, conn, query).map_err(|e| CONTEXT.map(e))?;
                row.map($from_row).transpose()
            }

            async fn stored_version<'a>(
                conn: &'a mut Conn,
                id: &'a <Self as Record>::Id,
            ) -> Result<Option<Version>, RepoError> {
                $crate::sql_table!(@stored_version $how, [$($version)?], conn, $table, $key, SqlKey::bind(id))
            }

            async fn exists<'a>(conn: &'a mut Conn, id: &'a <Self as Record>::Id) -> Result<bool, RepoError> {
                use $crate::sql::__private::diesel;
                let query = diesel::select(diesel::dsl::exists($table::table.filter($table::$key.eq(SqlKey::bind(id)))));
                $crate::sql_table!(@one $how, conn, query).map_err(|e| CONTEXT.map(e))
            }

            async fn insert<'a>(conn: &'a mut Conn, rows: &'a mut [Self]) -> Result<(), RepoError> {
                if <Self as Record>::new_id().is_none() {
                    return $crate::sql_table!(@serial $how, conn, $table, $key, rows, [$($serial)?]);
                }
                let values: Vec<_> = rows.iter().map($insert).collect();
                $crate::sql_table!(@insert $how, conn, $table::table, values).map(drop).map_err(|e| CONTEXT.map(e))
            }

            async fn overwrite<'a>(conn: &'a mut Conn, row: &'a Self, expected: Version) -> Result<bool, RepoError> {
                let target = $table::table.filter($table::$key.eq(SqlKey::bind(row.id())));
                $(let target = target.filter($table::$version.eq(expected.get()));)?
                let _ = expected;
                let query = $crate::sql::__private::diesel::update(target).set(($update)(row));
                let changed = $crate::sql_table!(@execute $how, conn, query).map_err(|e| CONTEXT.map(e))?;
                Ok(changed > 0)
            }

            async fn remove<'a>(conn: &'a mut Conn, id: &'a <Self as Record>::Id) -> Result<bool, RepoError> {
                let query =
                    $crate::sql::__private::diesel::delete($table::table.filter($table::$key.eq(SqlKey::bind(id))));
                let deleted = $crate::sql_table!(@execute $how, conn, query).map_err(|e| CONTEXT.map_delete(e))?;
                Ok(deleted > 0)
            }

            async fn select<'a>(
                conn: &'a mut Conn,
                filters: &'a [Filter<$fty>],
                sort: &'a [Sort<$fty>],
                after: Option<Vec<Value>>,
                offset: i64,
                limit: i64,
            ) -> Result<Vec<Self>, RepoError> {
                let mut q: Boxed = $table::table.into_boxed::<Db>();
                for f in filters {
                    q = q.filter(filter(f)?);
                }
                if let Some(values) = after {
                    let keys: Vec<($fty, Direction)> = sort
                        .iter()
                        .map(|s| (s.field, s.direction))
                        .chain(std::iter::once((<Self as Record>::ID_FIELD, Direction::Asc)))
                        .collect();
                    if let Some(after) = keyset_cond(&keys, &values, &cmp)? {
                        q = q.filter(after);
                    }
                }
                for s in sort {
                    q = order(q, s);
                }
                let query = $crate::sql_table!(@page $how, q.then_order_by($table::$key.asc()).select($select), offset, limit);
                let rows: Vec<$row> = $crate::sql_table!(@load $how, conn, query).map_err(|e| CONTEXT.map(e))?;
                rows.into_iter().map($from_row).collect()
            }

            async fn count<'a>(conn: &'a mut Conn, filters: &'a [Filter<$fty>]) -> Result<u64, RepoError> {
                let mut q = $table::table
                    .select($crate::sql::__private::diesel::dsl::count_star())
                    .into_boxed::<Db>();
                for f in filters {
                    q = q.filter(filter(f)?);
                }
                let n: i64 = $crate::sql_table!(@one $how, conn, q).map_err(|e| CONTEXT.map(e))?;
                Ok(u64::try_from(n).unwrap_or_default())
            }

            #[allow(clippy::needless_lifetimes)]
            async fn verify<'a>(conn: &'a mut Conn) -> Result<(), RepoError> {
                let query = $table::table.select($select).limit(0);
                let rows: Vec<$row> =
                    $crate::sql_table!(@load $how, conn, query).map_err(|e| mismatch(stringify!($table), e))?;
                drop(rows);
                Ok(())
            }
        }

        $crate::sql_table!(@email $how, $model, $table, $row, $select, $from_row, [$($email)?]);
    };
}
