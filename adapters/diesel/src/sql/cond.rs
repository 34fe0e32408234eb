//! [`Cond`]: a boolean condition on one table's rows, written as SQL text made of fixed pieces, declared column
//! names and bind parameters. Diesel caches the prepared statement of a query holding one (keyed by the query's
//! SQL text and bind types), where a `diesel::dsl::sql` literal would make it prepare the statement on every call.

use std::marker::PhantomData;

use chrono::NaiveDate;
use diesel::backend::Backend;
use diesel::expression::{AppearsOnTable, Expression, SelectableExpression, ValidGrouping, is_aggregate};
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::result::QueryResult;
use diesel::sql_types::{BigInt, Bool, Date, Double, Integer, Text};
use diesel::sqlite::Sqlite;

use crate::sql_types::{Timestamptz, Uuid};
use crate::values::{DbTime, DbUuid};

/// A boolean condition on the rows of table `Tab`, for backend `DB`: what a [`Filter`](cpc_ports::Filter) or a
/// keyset position becomes in a query's `WHERE`, built by a [`Dialect`](super::Dialect) and joined with
/// [`and`](Self::and) and [`or`](Self::or).
///
/// Its SQL holds only fixed text, column names from the record's declaration and bind placeholders, so a query
/// of a given shape writes the same SQL on every call and Diesel reuses its cached prepared statement. A
/// condition whose SQL grows with a list of values (an `IN` list written as one comparison per value) is marked
/// [`uncacheable`](Self::uncacheable): cached, it would leave one statement per list length in the cache.
pub struct Cond<Tab, DB> {
    parts: Vec<Part>,
    cacheable: bool,
    on: PhantomData<fn() -> (Tab, DB)>,
}

/// A bound value, with the SQL type it is bound as.
#[derive(Debug)]
pub(super) enum Bind {
    /// `Text`.
    Text(String),
    /// `Integer`.
    Integer(i32),
    /// `BigInt`.
    BigInt(i64),
    /// The portable `Uuid`.
    Uuid(DbUuid),
    /// The portable `Timestamptz`.
    Time(DbTime),
    /// `Bool`.
    Bool(bool),
    /// `Double`.
    Double(f64),
    /// `Date`.
    Date(NaiveDate),
}

/// One piece of a condition's SQL.
#[derive(Debug)]
pub(super) enum Part {
    /// Fixed SQL text.
    Sql(&'static str),
    /// A column name from the declaration, written as a quoted identifier.
    Col(&'static str),
    /// A bind parameter.
    Bind(Bind),
}

impl<Tab, DB> Cond<Tab, DB> {
    /// The condition written by `parts`, in order.
    pub(super) fn new<const N: usize>(parts: [Part; N]) -> Self {
        Self { parts: Vec::from(parts), cacheable: true, on: PhantomData }
    }

    /// A constant, bound as a parameter (`?` or `$n`).
    pub fn constant(value: bool) -> Self {
        Self::new([Part::Bind(Bind::Bool(value))])
    }

    /// `(a AND b)`.
    pub fn and(a: Self, b: Self) -> Self {
        Self::join(a, " AND ", b)
    }

    /// `(a OR b)`.
    pub fn or(a: Self, b: Self) -> Self {
        Self::join(a, " OR ", b)
    }

    fn join(a: Self, op: &'static str, b: Self) -> Self {
        let mut parts = Vec::with_capacity(a.parts.len() + b.parts.len() + 3);
        parts.push(Part::Sql("("));
        parts.extend(a.parts);
        parts.push(Part::Sql(op));
        parts.extend(b.parts);
        parts.push(Part::Sql(")"));
        Self { parts, cacheable: a.cacheable && b.cacheable, on: PhantomData }
    }

    /// The same condition, but a query holding it is never kept in Diesel's statement cache: for SQL whose text
    /// varies with the number of values it binds.
    pub fn uncacheable(mut self) -> Self {
        self.cacheable = false;
        self
    }

    /// Whether a query holding this condition may be kept in Diesel's statement cache.
    pub fn is_cacheable(&self) -> bool {
        self.cacheable
    }
}

impl<Tab, DB> std::fmt::Debug for Cond<Tab, DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cond").field("parts", &self.parts).field("cacheable", &self.cacheable).finish()
    }
}

impl<Tab, DB> Expression for Cond<Tab, DB> {
    type SqlType = Bool;
}

impl<Tab, DB> AppearsOnTable<Tab> for Cond<Tab, DB> {}

impl<Tab, DB> SelectableExpression<Tab> for Cond<Tab, DB> {}

impl<Tab, DB> ValidGrouping<()> for Cond<Tab, DB> {
    type IsAggregate = is_aggregate::Never;
}

impl<Tab, DB> QueryId for Cond<Tab, DB> {
    type QueryId = ();
    // The SQL varies with the condition's shape: cached by its text, not by its type.
    const HAS_STATIC_QUERY_ID: bool = false;
}

/// Writes a column name as a quoted identifier, `"name"` (an inner `"` doubled).
fn push_column<DB: Backend>(out: &mut AstPass<'_, '_, DB>, column: &str) {
    out.push_sql("\"");
    if column.contains('"') {
        out.push_sql(&column.replace('"', "\"\""));
    } else {
        out.push_sql(column);
    }
    out.push_sql("\"");
}

macro_rules! render {
    ($db:ty) => {
        impl<Tab> QueryFragment<$db> for Cond<Tab, $db> {
            fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, $db>) -> QueryResult<()> {
                if !self.cacheable {
                    out.unsafe_to_cache_prepared();
                }
                for part in &self.parts {
                    match part {
                        Part::Sql(s) => out.push_sql(s),
                        Part::Col(c) => push_column(&mut out, c),
                        Part::Bind(Bind::Text(v)) => out.push_bind_param::<Text, _>(v)?,
                        Part::Bind(Bind::Integer(v)) => out.push_bind_param::<Integer, _>(v)?,
                        Part::Bind(Bind::BigInt(v)) => out.push_bind_param::<BigInt, _>(v)?,
                        Part::Bind(Bind::Uuid(v)) => out.push_bind_param::<Uuid, _>(v)?,
                        Part::Bind(Bind::Time(v)) => out.push_bind_param::<Timestamptz, _>(v)?,
                        Part::Bind(Bind::Bool(v)) => out.push_bind_param::<Bool, _>(v)?,
                        Part::Bind(Bind::Double(v)) => out.push_bind_param::<Double, _>(v)?,
                        Part::Bind(Bind::Date(v)) => out.push_bind_param::<Date, _>(v)?,
                    }
                }
                Ok(())
            }
        }
    };
}

render!(Pg);
render!(Sqlite);

#[cfg(test)]
mod tests {
    use cpc_ports::{Direction, Field, Filter, UserField, Value};
    use diesel::dsl::sql;
    use diesel::expression::BoxableExpression;
    use diesel::query_builder::QueryBuilder;
    use diesel::{QueryDsl, debug_query};

    use super::*;
    use crate::sql::{Dialect, FieldConds, Op, filter_cond, keyset_cond, like_prefix};

    /// What a condition was built from before [`Cond`]: Diesel SQL literals, boxed.
    type Literal<Tab, DB> = Box<dyn BoxableExpression<Tab, DB, SqlType = Bool>>;

    fn quoted(column: &str) -> String {
        format!("\"{column}\"")
    }

    /// Both backends: the same tests on `users` of each schema.
    macro_rules! backend_tests {
        ($name:ident, $db:ty, $users:path, |$col:ident, $p:ident| $old_prefix:expr) => {
            mod $name {
                use super::*;
                use $users as users;

                type Tab = users::table;
                type Db = $db;

                fn conds() -> FieldConds<'static, UserField, Tab, Db> {
                    FieldConds {
                        cmp: &|f: UserField, op, v: &Value| <Db as Dialect>::compare(f.name(), op, v),
                        prefix: &|f: UserField, p: &str| <Db as Dialect>::prefix(f.name(), p),
                        null: &|f: UserField, is_null| <Db as Dialect>::null(f.name(), is_null),
                    }
                }

                /// The query the repositories run, with `cond` as its `WHERE`: its SQL with its binds, and whether
                /// Diesel may cache its prepared statement.
                fn rendered<C>(cond: C) -> (String, bool)
                where
                    C: Expression<SqlType = Bool> + AppearsOnTable<Tab> + diesel::expression::NonAggregate,
                    C: QueryFragment<Db> + Send + 'static,
                {
                    let query = users::table.select(users::id).into_boxed::<Db>().filter(cond);
                    let shown = debug_query::<Db, _>(&query).to_string();
                    (shown, QueryFragment::<Db>::is_safe_to_cache_prepared(&query, &<$db>::default()).unwrap())
                }

                fn sql_text(cond: Cond<Tab, Db>) -> String {
                    let query = users::table.select(users::id).into_boxed::<Db>().filter(cond);
                    let mut builder = <Db as Backend>::QueryBuilder::default();
                    QueryFragment::<Db>::to_sql(&query, &mut builder, &<$db>::default()).unwrap();
                    builder.finish()
                }

                fn old_cmp(column: &str, op: Op, value: &Value) -> Literal<Tab, Db> {
                    let head = sql::<Bool>(&format!("{}{}", quoted(column), op.sql()));
                    match value {
                        Value::Text(s) => Box::new(head.bind::<Text, _>(s.clone())),
                        Value::Int(n) => Box::new(head.bind::<BigInt, _>(*n)),
                        Value::Uuid(u) => Box::new(head.bind::<Uuid, _>(DbUuid(*u))),
                        Value::Time(t) => Box::new(head.bind::<Timestamptz, _>(DbTime(*t))),
                        Value::Bool(b) => Box::new(head.bind::<Bool, _>(*b)),
                        Value::Float(x) => Box::new(head.bind::<Double, _>(x.0)),
                        Value::Date(d) => Box::new(head.bind::<Date, _>(*d)),
                        other => panic!("not comparable: {other:?}"),
                    }
                }

                fn old_prefix($col: &str, $p: &str) -> Literal<Tab, Db> {
                    $old_prefix
                }

                fn old_null(column: &str, is_null: bool) -> Literal<Tab, Db> {
                    let test = if is_null { " IS NULL" } else { " IS NOT NULL" };
                    Box::new(sql::<Bool>(&format!("{}{test}", quoted(column))))
                }

                fn old_and(a: Literal<Tab, Db>, b: Literal<Tab, Db>) -> Literal<Tab, Db> {
                    use diesel::BoolExpressionMethods;
                    Box::new(a.and(b))
                }

                fn old_or(a: Literal<Tab, Db>, b: Literal<Tab, Db>) -> Literal<Tab, Db> {
                    use diesel::BoolExpressionMethods;
                    Box::new(a.or(b))
                }

                /// Each leaf, and them joined, write the SQL and binds the `diesel::dsl::sql` literals wrote, and
                /// unlike them leave the statement cacheable.
                #[test]
                fn conditions_render_as_the_literals_did_and_stay_cacheable() {
                    let at = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
                    let id = uuid::Uuid::from_u128(7);
                    let day = chrono::NaiveDate::from_ymd_opt(2026, 12, 7).unwrap();
                    let values = [
                        Value::Text("o'brien".into()),
                        Value::Int(-3),
                        Value::Uuid(id),
                        Value::Time(at.into()),
                        Value::Bool(true),
                        Value::Float(cpc_ports::Float(1.5)),
                        Value::Date(day),
                    ];
                    for (op, value) in [Op::Eq, Op::Gt, Op::Ge, Op::Lt].into_iter().zip(values.iter().cycle()) {
                        let new = <Db as Dialect>::compare::<Tab>("username", op, value).unwrap();
                        let (shown, cacheable) = rendered(new);
                        assert_eq!(shown, rendered(old_cmp("username", op, value)).0, "{op:?} {value:?}");
                        assert!(cacheable, "{shown}");
                    }
                    for value in &values {
                        let new = <Db as Dialect>::compare::<Tab>("email", Op::Eq, value).unwrap();
                        assert_eq!(rendered(new).0, rendered(old_cmp("email", Op::Eq, value)).0);
                    }
                    for p in ["al", "100%_", ""] {
                        let (shown, cacheable) = rendered(<Db as Dialect>::prefix::<Tab>("username", p).unwrap());
                        assert_eq!(shown, rendered(old_prefix("username", p)).0);
                        assert!(cacheable, "{shown}");
                    }
                    for is_null in [true, false] {
                        let (shown, cacheable) = rendered(<Db as Dialect>::null::<Tab>("email", is_null));
                        assert_eq!(shown, rendered(old_null("email", is_null)).0);
                        assert!(cacheable, "{shown}");
                    }
                    let text = |s: &str| Value::Text(s.into());
                    let new = Cond::or(
                        Cond::and(
                            <Db as Dialect>::compare("username", Op::Ge, &text("a")).unwrap(),
                            <Db as Dialect>::compare("username", Op::Lt, &text("b")).unwrap(),
                        ),
                        <Db as Dialect>::null("email", false),
                    );
                    let old = old_or(
                        old_and(old_cmp("username", Op::Ge, &text("a")), old_cmp("username", Op::Lt, &text("b"))),
                        old_null("email", false),
                    );
                    let (shown, cacheable) = rendered(new);
                    assert_eq!(shown, rendered(old).0);
                    assert!(cacheable, "{shown}");
                }

                /// A keyset position `(username, id) > (u, i)` writes `k0 > v0 OR (k0 = v0 AND k1 > v1)` as
                /// before; the SQL does not hold the values, so a later page reuses the statement.
                #[test]
                fn keyset_conditions_render_as_before_and_hold_no_values() {
                    let keys = [(UserField::Username, Direction::Desc), (UserField::Id, Direction::Asc)];
                    let at = |name: &str, id: u128| {
                        let values = [Value::Text(name.into()), Value::Uuid(uuid::Uuid::from_u128(id))];
                        keyset_cond(&keys, &values, conds().cmp).unwrap().unwrap()
                    };
                    let old = old_or(
                        old_cmp("username", Op::Lt, &Value::Text("m".into())),
                        old_and(
                            old_cmp("username", Op::Eq, &Value::Text("m".into())),
                            old_cmp("id", Op::Gt, &Value::Uuid(uuid::Uuid::from_u128(9))),
                        ),
                    );
                    let (shown, cacheable) = rendered(at("m", 9));
                    assert_eq!(shown, rendered(old).0);
                    assert!(cacheable);
                    assert_eq!(sql_text(at("m", 9)), sql_text(at("zed", 12)), "the values are binds only");
                }

                /// An `IN` list is one comparison per value: never cached (one statement per length otherwise);
                /// every other filter is, and the same filter shape writes the same SQL whatever its values.
                #[test]
                fn only_in_lists_are_uncacheable() {
                    let text = |s: &str| Value::Text(s.into());
                    let cond = |f: &Filter<UserField>| filter_cond(f, &conds()).unwrap();
                    let list = Filter::In(UserField::Username, vec![text("a"), text("b")]);
                    let (shown, cacheable) = rendered(cond(&list));
                    assert!(!cacheable, "{shown}");
                    assert!(!cond(&Filter::In(UserField::Username, vec![])).is_cacheable());
                    let nested = Filter::And(vec![Filter::Eq(UserField::Email, text("e")), list.clone()]);
                    assert!(!cond(&nested).is_cacheable(), "an IN list anywhere in the condition");
                    let others = [
                        Filter::Eq(UserField::Username, text("a")),
                        Filter::Range { field: UserField::Username, from: Some(text("a")), to: Some(text("b")) },
                        Filter::Prefix(UserField::Username, "a".into()),
                        Filter::IsNull(UserField::Email),
                        Filter::Or(vec![Filter::Eq(UserField::Email, text("x")), Filter::IsNotNull(UserField::Email)]),
                        Filter::And(vec![]),
                    ];
                    for filter in &others {
                        let (shown, cacheable) = rendered(cond(filter));
                        assert!(cacheable, "{filter:?}: {shown}");
                    }
                    let eq = |s: &str| sql_text(cond(&Filter::Eq(UserField::Username, text(s))));
                    assert_eq!(eq("a"), eq("another name"));
                }
            }
        };
    }

    backend_tests!(sqlite, Sqlite, crate::schema::sqlite::users, |column, p| {
        let n = i32::try_from(p.chars().count()).unwrap();
        let head = sql::<Bool>(&format!("substr({}, 1, ", quoted(column)));
        Box::new(head.bind::<Integer, _>(n).sql(") = ").bind::<Text, _>(p.to_owned()))
    });

    backend_tests!(pg, Pg, crate::schema::postgres::users, |column, p| {
        let head = sql::<Bool>(&format!("{} LIKE ", quoted(column)));
        Box::new(head.bind::<Text, _>(like_prefix(p)).sql(" ESCAPE '\\'"))
    });
}
