//! The per-table SQL, written once and expanded for each backend: [`table_ops!`] implements
//! [`SqlTable`](super::sql::SqlTable) for one model, [`all_tables!`] does it for the four (and writes the shared
//! `audit_log` insert). They expand inside a backend module that defines `Db` (the Diesel backend), `Conn` (the
//! connection), `BACKEND` (its name) and imports the backend's `table!` modules. The `dialect` argument (`pg` or
//! `sqlite`) picks what differs: prefix filters (`LIKE 'p%' ESCAPE '\'` on PostgreSQL; `substr(col, 1, n) = p` on
//! SQLite, whose `LIKE` ignores ASCII case) and how a multi-row `INSERT` is sent.

/// Implements `SqlTable<Conn>` (and `EmailTable<Conn>` when `email:` is given) for one model.
macro_rules! table_ops {
    (@prefix pg, as_text, $col:expr, $p:expr) => {
        Ok(Box::new($col.like(like_prefix($p)).escape('\\')))
    };
    (@prefix sqlite, as_text, $col:expr, $p:expr) => {{
        let n = i32::try_from($p.chars().count()).map_err(|_| {
            RepoError::Validation(cpc_domain::ValidationError::new("prefix", "is too long"))
        })?;
        Ok(Box::new(substr($col, 1, n).eq($p.to_owned())))
    }};
    // A multi-row INSERT: through the async connection on PostgreSQL; on SQLite, Diesel writes multi-row inserts
    // only through its synchronous `ExecuteDsl`, so the statement runs on the wrapped connection directly.
    // One row goes as a plain single-row INSERT: Diesel caches that prepared statement per connection, whereas a
    // `Vec` insert is never cached (re-prepared on every call: one more round trip on PostgreSQL).
    (@insert pg, $conn:ident, $table:expr, $values:expr) => {
        match <[_; 1]>::try_from($values) {
            Ok([one]) => diesel::insert_into($table).values(one).execute($conn).await,
            Err(values) => diesel::insert_into($table).values(values).execute($conn).await,
        }
    };
    (@insert sqlite, $conn:ident, $table:expr, $values:expr) => {{
        let values = $values;
        $conn
            .spawn_blocking(move |c| match <[_; 1]>::try_from(values) {
                Ok([one]) => diesel::RunQueryDsl::execute(diesel::insert_into($table).values(one), c),
                Err(values) => diesel::RunQueryDsl::execute(diesel::insert_into($table).values(values), c),
            })
            .await
    }};
    (@prefix $how:ident, $conv:ident, $col:expr, $p:expr) => {
        Err(RepoError::Validation(cpc_domain::ValidationError::new(
            Field::name(FIELD),
            "prefix filters need a text field",
        )))
    };
    (
        dialect: $how:ident,
        model: $model:ty,
        row: $row:ty,
        table: $table:ident,
        module: $module:ident,
        reference: $reference:literal,
        fields: $fty:ident { $($var:ident => $col:ident : $conv:ident),+ $(,)? },
        insert: $insert:expr,
        update: $update:expr,
        $(email: $email:ident,)?
    ) => {
        mod $module {
            #![allow(unused_imports)]
            use super::*;

            /// The boxed select of this table.
            pub(super) type Boxed = diesel::dsl::IntoBoxed<'static, $table::table, Db>;
            /// A condition on this table.
            pub(super) type C = Cond<$table::table, Db>;

            /// `field <op> value`.
            pub(super) fn cmp(field: $fty, op: Op, value: &Value) -> Result<C, RepoError> {
                Ok(match field {
                    $($fty::$var => compare($table::$col, op, $conv(value)?),)+
                })
            }

            /// `field` starts with `p`.
            pub(super) fn prefix(field: $fty, p: &str) -> Result<C, RepoError> {
                match field {
                    $($fty::$var => {
                        #[allow(dead_code)]
                        const FIELD: $fty = $fty::$var;
                        table_ops!(@prefix $how, $conv, $table::$col, p)
                    })+
                }
            }

            /// The condition of one filter.
            pub(super) fn filter(f: &Filter<$fty>) -> Result<C, RepoError> {
                let field = f.field();
                filter_cond(f, |op, v| cmp(field, op, v), |p| prefix(field, p))
            }

            /// Adds one sort key.
            pub(super) fn order(q: Boxed, s: &Sort<$fty>) -> Boxed {
                match (s.field, s.direction) {
                    $(
                        ($fty::$var, Direction::Asc) => q.then_order_by($table::$col.asc()),
                        ($fty::$var, Direction::Desc) => q.then_order_by($table::$col.desc()),
                    )+
                }
            }
        }

        impl SqlTable<Conn> for $model {
            const CONTEXT: ErrorContext = ErrorContext {
                backend: BACKEND,
                table: stringify!($table),
                entity: <$model as Record>::ENTITY,
                reference_field: $reference,
            };

            async fn find<'a>(conn: &'a mut Conn, id: &'a <Self as Record>::Id) -> Result<Option<Self>, RepoError> {
                let row: Option<$row> = $table::table
                    .filter($table::id.eq(DbUuid(*id.as_uuid())))
                    .get_result(conn)
                    .await
                    .optional()
                    .map_err(|e| <Self as SqlTable<Conn>>::CONTEXT.map(e))?;
                row.map(Self::try_from).transpose()
            }

            async fn stored_version<'a>(
                conn: &'a mut Conn,
                id: &'a <Self as Record>::Id,
            ) -> Result<Option<Version>, RepoError> {
                let version: Option<i64> = $table::table
                    .filter($table::id.eq(DbUuid(*id.as_uuid())))
                    .select($table::version)
                    .get_result(conn)
                    .await
                    .optional()
                    .map_err(|e| <Self as SqlTable<Conn>>::CONTEXT.map(e))?;
                Ok(version.map(Version::new))
            }

            async fn exists<'a>(conn: &'a mut Conn, id: &'a <Self as Record>::Id) -> Result<bool, RepoError> {
                diesel::select(diesel::dsl::exists($table::table.filter($table::id.eq(DbUuid(*id.as_uuid())))))
                    .get_result(conn)
                    .await
                    .map_err(|e| <Self as SqlTable<Conn>>::CONTEXT.map(e))
            }

            async fn insert<'a>(conn: &'a mut Conn, rows: &'a [Self]) -> Result<(), RepoError> {
                let values: Vec<_> = rows.iter().map($insert).collect();
                table_ops!(@insert $how, conn, $table::table, values)
                    .map(drop)
                    .map_err(|e| <Self as SqlTable<Conn>>::CONTEXT.map(e))
            }

            async fn overwrite<'a>(conn: &'a mut Conn, row: &'a Self, expected: Version) -> Result<bool, RepoError> {
                let target = $table::table
                    .filter($table::id.eq(DbUuid(*row.id.as_uuid())))
                    .filter($table::version.eq(expected.get()));
                let changed = diesel::update(target)
                    .set(($update)(row))
                    .execute(conn)
                    .await
                    .map_err(|e| <Self as SqlTable<Conn>>::CONTEXT.map(e))?;
                Ok(changed > 0)
            }

            async fn audit<'a>(conn: &'a mut Conn, entries: &'a [AuditEntry]) -> Result<(), RepoError> {
                write_audit(conn, entries).await
            }

            async fn remove<'a>(conn: &'a mut Conn, id: &'a <Self as Record>::Id) -> Result<bool, RepoError> {
                let deleted = diesel::delete($table::table.filter($table::id.eq(DbUuid(*id.as_uuid()))))
                    .execute(conn)
                    .await
                    .map_err(|e| <Self as SqlTable<Conn>>::CONTEXT.map_delete(e))?;
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
                let mut q = $table::table.into_boxed::<Db>();
                for f in filters {
                    q = q.filter($module::filter(f)?);
                }
                if let Some(values) = after {
                    let keys: Vec<($fty, Direction)> = sort
                        .iter()
                        .map(|s| (s.field, s.direction))
                        .chain(std::iter::once((<Self as Record>::ID_FIELD, Direction::Asc)))
                        .collect();
                    if let Some(after) = keyset_cond(&keys, &values, $module::cmp)? {
                        q = q.filter(after);
                    }
                }
                for s in sort {
                    q = $module::order(q, s);
                }
                let rows: Vec<$row> = q
                    .then_order_by($table::id.asc())
                    .offset(offset)
                    .limit(limit)
                    .load(conn)
                    .await
                    .map_err(|e| <Self as SqlTable<Conn>>::CONTEXT.map(e))?;
                rows.into_iter().map(Self::try_from).collect()
            }

            async fn count<'a>(conn: &'a mut Conn, filters: &'a [Filter<$fty>]) -> Result<u64, RepoError> {
                let mut q = $table::table.select(diesel::dsl::count_star()).into_boxed::<Db>();
                for f in filters {
                    q = q.filter($module::filter(f)?);
                }
                let n: i64 = q.get_result(conn).await.map_err(|e| <Self as SqlTable<Conn>>::CONTEXT.map(e))?;
                Ok(u64::try_from(n).unwrap_or_default())
            }
        }

        $(
            impl EmailTable<Conn> for $model {
                async fn find_by_email<'a>(conn: &'a mut Conn, email: &'a str) -> Result<Option<Self>, RepoError> {
                    let row: Option<$row> = $table::table
                        .filter(lower($table::$email).eq(lower(email.to_owned())))
                        .get_result(conn)
                        .await
                        .optional()
                        .map_err(|e| <Self as SqlTable<Conn>>::CONTEXT.map(e))?;
                    row.map(Self::try_from).transpose()
                }
            }
        )?
    };
}

/// Implements the table operations of the four models for the backend module it expands in.
macro_rules! all_tables {
    (dialect: $how:ident) => {
        /// Inserts `audit_log` rows with one multi-row `INSERT` (shared by the four tables' `SqlTable::audit`).
        async fn write_audit(conn: &mut Conn, entries: &[AuditEntry]) -> Result<(), RepoError> {
            let values: Vec<_> = entries
                .iter()
                .map(|e| {
                    (
                        audit_log::table_name.eq(e.table),
                        audit_log::row_id.eq(DbUuid(e.row_id)),
                        audit_log::action.eq(e.action.as_str()),
                        audit_log::actor.eq(e.actor.clone()),
                        audit_log::at.eq(time(e.at)),
                    )
                })
                .collect();
            table_ops!(@insert $how, conn, audit_log::table, values)
                .map(drop)
                .map_err(|e| audit_context(BACKEND).map(e))
        }

        table_ops! {
            dialect: $how,
            model: User,
            row: UserRow,
            table: users,
            module: users_sql,
            reference: "user_id",
            fields: UserField {
                Id => id: as_uuid,
                Username => username: as_text,
                Email => email: as_text,
                CreatedAt => created_at: as_time,
                UpdatedAt => updated_at: as_time,
            },
            insert: |r: &User| (
                users::id.eq(DbUuid(*r.id.as_uuid())),
                users::username.eq(r.username.as_str().to_owned()),
                users::email.eq(r.email.as_str().to_owned()),
                users::created_at.eq(time(r.created_at)),
                users::updated_at.eq(time(r.updated_at)),
                users::version.eq(r.version.get()),
            ),
            update: |r: &User| (
                users::username.eq(r.username.as_str().to_owned()),
                users::email.eq(r.email.as_str().to_owned()),
                users::updated_at.eq(time(r.updated_at)),
                users::version.eq(r.version.get()),
            ),
            email: email,
        }

        table_ops! {
            dialect: $how,
            model: Entity,
            row: EntityRow,
            table: entities,
            module: entities_sql,
            reference: "entity_id",
            fields: EntityField {
                Id => id: as_uuid,
                Kind => kind: as_text,
                Name => name: as_text,
                CreatedAt => created_at: as_time,
                UpdatedAt => updated_at: as_time,
            },
            insert: |r: &Entity| (
                entities::id.eq(DbUuid(*r.id.as_uuid())),
                entities::kind.eq(r.kind.as_str().to_owned()),
                entities::name.eq(r.name.clone()),
                entities::attributes.eq(DbJson(r.attributes.clone())),
                entities::created_at.eq(time(r.created_at)),
                entities::updated_at.eq(time(r.updated_at)),
                entities::version.eq(r.version.get()),
            ),
            // The kind is written too: `update` never changes it, `upsert` may.
            update: |r: &Entity| (
                entities::kind.eq(r.kind.as_str().to_owned()),
                entities::name.eq(r.name.clone()),
                entities::attributes.eq(DbJson(r.attributes.clone())),
                entities::updated_at.eq(time(r.updated_at)),
                entities::version.eq(r.version.get()),
            ),
        }

        table_ops! {
            dialect: $how,
            model: Customer,
            row: CustomerRow,
            table: customers,
            module: customers_sql,
            reference: "customer_id",
            fields: CustomerField {
                Id => id: as_uuid,
                Email => email: as_text,
                Name => name: as_text,
                CreatedAt => created_at: as_time,
                UpdatedAt => updated_at: as_time,
            },
            insert: |r: &Customer| (
                customers::id.eq(DbUuid(*r.id.as_uuid())),
                customers::email.eq(r.email.as_str().to_owned()),
                customers::name.eq(r.name.clone()),
                customers::phone.eq(r.phone.clone()),
                customers::created_at.eq(time(r.created_at)),
                customers::updated_at.eq(time(r.updated_at)),
                customers::version.eq(r.version.get()),
            ),
            update: |r: &Customer| (
                customers::email.eq(r.email.as_str().to_owned()),
                customers::name.eq(r.name.clone()),
                customers::phone.eq(r.phone.clone()),
                customers::updated_at.eq(time(r.updated_at)),
                customers::version.eq(r.version.get()),
            ),
            email: email,
        }

        table_ops! {
            dialect: $how,
            model: Transaction,
            row: TransactionRow,
            table: transactions,
            module: transactions_sql,
            reference: "user_id",
            fields: TransactionField {
                Id => id: as_uuid,
                UserId => user_id: as_uuid,
                Kind => kind: as_text,
                Currency => currency: as_text,
                AmountMinor => amount_minor: as_int,
                OccurredAt => occurred_at: as_time,
                CreatedAt => created_at: as_time,
                UpdatedAt => updated_at: as_time,
            },
            insert: |r: &Transaction| (
                transactions::id.eq(DbUuid(*r.id.as_uuid())),
                transactions::user_id.eq(DbUuid(*r.user_id.as_uuid())),
                transactions::amount_minor.eq(r.amount.amount_minor()),
                transactions::currency.eq(r.amount.currency().as_str().to_owned()),
                transactions::kind.eq(r.kind.as_str().to_owned()),
                transactions::description.eq(r.description.clone()),
                transactions::occurred_at.eq(time(r.occurred_at)),
                transactions::created_at.eq(time(r.created_at)),
                transactions::updated_at.eq(time(r.updated_at)),
                transactions::version.eq(r.version.get()),
            ),
            update: |r: &Transaction| (
                transactions::description.eq(r.description.clone()),
                transactions::updated_at.eq(time(r.updated_at)),
                transactions::version.eq(r.version.get()),
            ),
        }
    };
}
