//! The query model of [`Repository::find_page`](crate::Repository::find_page): filters on declared fields,
//! sorting with a stable tie-break, offset or keyset paging. Adapters translate it into their query builder
//! (Diesel's, for the SQL adapters), so values never become SQL text.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cpc_domain::{Timestamp, ValidationError};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The type of a field's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueKind {
    /// Text.
    Text,
    /// An integer (`i32` and `i64` columns alike).
    Int,
    /// A UUID.
    Uuid,
    /// A UTC timestamp.
    Time,
    /// A boolean.
    Bool,
    /// A 64-bit float.
    Float,
    /// A calendar date.
    Date,
    /// A JSON document: stored and returned, never compared (only `IS NULL` / `IS NOT NULL` filters apply).
    Json,
    /// SQL `NULL`: the value of a nullable field that is not set.
    Null,
}

impl ValueKind {
    /// Whether values of this kind can be compared and sorted (every kind but JSON and null).
    pub const fn is_comparable(self) -> bool {
        !matches!(self, Self::Json | Self::Null)
    }
}

/// A value to compare a field with.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Value {
    /// Text.
    Text(String),
    /// An integer.
    Int(i64),
    /// A UUID.
    Uuid(Uuid),
    /// A UTC timestamp.
    Time(Timestamp),
    /// A boolean.
    Bool(bool),
    /// A float, totally ordered ([`f64::total_cmp`]).
    Float(Float),
    /// A calendar date.
    Date(chrono::NaiveDate),
    /// A JSON document, as its compact text (what [`Record::value`](super::Record::value) reports for a JSON field).
    Json(String),
    /// SQL `NULL`.
    Null,
}

impl Value {
    /// The kind of this value.
    pub fn kind(&self) -> ValueKind {
        match self {
            Self::Text(_) => ValueKind::Text,
            Self::Int(_) => ValueKind::Int,
            Self::Uuid(_) => ValueKind::Uuid,
            Self::Time(_) => ValueKind::Time,
            Self::Bool(_) => ValueKind::Bool,
            Self::Float(_) => ValueKind::Float,
            Self::Date(_) => ValueKind::Date,
            Self::Json(_) => ValueKind::Json,
            Self::Null => ValueKind::Null,
        }
    }
}

/// An `f64` with a total order, so [`Value`] can be compared, hashed and sorted (`-0.0 < 0.0`, NaN last).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Float(pub f64);

impl PartialEq for Float {
    fn eq(&self, other: &Self) -> bool {
        self.0.total_cmp(&other.0).is_eq()
    }
}
impl Eq for Float {}
impl PartialOrd for Float {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Float {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}
impl std::hash::Hash for Float {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.to_bits().hash(state);
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Self::Text(s.to_owned())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Self::Text(s)
    }
}
impl From<i64> for Value {
    fn from(n: i64) -> Self {
        Self::Int(n)
    }
}
impl From<Uuid> for Value {
    fn from(u: Uuid) -> Self {
        Self::Uuid(u)
    }
}
impl From<Timestamp> for Value {
    fn from(t: Timestamp) -> Self {
        Self::Time(t)
    }
}
impl From<i32> for Value {
    fn from(n: i32) -> Self {
        Self::Int(i64::from(n))
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Self::Bool(b)
    }
}
impl From<f64> for Value {
    fn from(x: f64) -> Self {
        Self::Float(Float(x))
    }
}
impl From<chrono::NaiveDate> for Value {
    fn from(d: chrono::NaiveDate) -> Self {
        Self::Date(d)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Self::Null, Into::into)
    }
}

/// A column of a record that queries may filter and sort on. Implemented by the `*Field` enums.
pub trait Field: Copy + Eq + fmt::Debug + Send + Sync + 'static {
    /// The column name, as in the database schema.
    fn name(self) -> &'static str;
    /// The type of its values.
    fn kind(self) -> ValueKind;
    /// Whether the column may be `NULL` (its value is then [`Value::Null`]). Nullable fields can be filtered on,
    /// not sorted on (the databases disagree on where `NULL`s sort).
    fn nullable(self) -> bool {
        false
    }
    /// Every field of the record, in schema order.
    fn all() -> &'static [Self];
    /// The field whose column is `name`, if the record has one.
    fn from_name(name: &str) -> Option<Self> {
        Self::all().iter().copied().find(|f| f.name() == name)
    }
}

/// The most values an [`Filter::In`] list may hold.
pub const MAX_IN_VALUES: usize = 1000;

/// A condition on the rows. Several filters in a query are combined with AND; [`Filter::Or`] and
/// [`Filter::And`] nest.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter<F> {
    /// The field equals the value.
    Eq(F, Value),
    /// The field lies in `[from, to)`: `from` inclusive, `to` exclusive; either end may be open.
    Range {
        /// The field.
        field: F,
        /// Lower bound, inclusive.
        from: Option<Value>,
        /// Upper bound, exclusive.
        to: Option<Value>,
    },
    /// A text field starts with the given text (taken literally: `%` and `_` are not wildcards).
    Prefix(F, String),
    /// The field equals one of the values (SQL `IN`); an empty list matches nothing. At most [`MAX_IN_VALUES`].
    In(F, Vec<Value>),
    /// The field is `NULL`.
    IsNull(F),
    /// The field is not `NULL`.
    IsNotNull(F),
    /// At least one of the conditions holds; an empty list matches nothing.
    Or(Vec<Filter<F>>),
    /// Every condition holds; an empty list matches everything.
    And(Vec<Filter<F>>),
}

impl<F: Field> Filter<F> {
    /// `field IN (values...)`.
    pub fn any_of<V: Into<Value>>(field: F, values: impl IntoIterator<Item = V>) -> Self {
        Self::In(field, values.into_iter().map(Into::into).collect())
    }

    /// Every field this filter names, nested ones included.
    pub fn fields(&self) -> Vec<F> {
        let mut out = Vec::new();
        self.collect_fields(&mut out);
        out
    }

    fn collect_fields(&self, out: &mut Vec<F>) {
        match self {
            Self::Eq(f, _) | Self::Prefix(f, _) | Self::In(f, _) | Self::IsNull(f) | Self::IsNotNull(f) => out.push(*f),
            Self::Range { field, .. } => out.push(*field),
            Self::Or(all) | Self::And(all) => all.iter().for_each(|f| f.collect_fields(out)),
        }
    }

    /// Checks that values match their field's type (a comparable one), that prefixes are on text fields and that
    /// `IN` lists are not too long; the error names the field.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let check = |field: F, values: &mut dyn Iterator<Item = &Value>| -> Result<(), ValidationError> {
            if !field.kind().is_comparable() {
                return Err(ValidationError::new(
                    field.name(),
                    format!("{:?} fields can only be filtered with IS NULL / IS NOT NULL", field.kind()),
                ));
            }
            for v in values {
                if v.kind() == ValueKind::Null {
                    return Err(ValidationError::new(field.name(), "compare with NULL using is_null / is_not_null"));
                }
                if v.kind() != field.kind() {
                    return Err(ValidationError::new(
                        field.name(),
                        format!("filter value must be of kind {:?}", field.kind()),
                    ));
                }
            }
            Ok(())
        };
        match self {
            Self::Eq(f, v) => check(*f, &mut std::iter::once(v)),
            Self::Range { field, from, to } => check(*field, &mut from.iter().chain(to)),
            Self::Prefix(f, _) if f.kind() != ValueKind::Text => {
                Err(ValidationError::new(f.name(), "prefix filters need a text field"))
            }
            Self::Prefix(..) | Self::IsNull(_) | Self::IsNotNull(_) => Ok(()),
            Self::In(f, values) if values.len() > MAX_IN_VALUES => {
                Err(ValidationError::new(f.name(), format!("an IN list holds at most {MAX_IN_VALUES} values")))
            }
            Self::In(f, values) => check(*f, &mut values.iter()),
            Self::Or(all) | Self::And(all) => all.iter().try_for_each(Self::validate),
        }
    }

    /// Whether a row passes the filter, given the row's value of each field. For in-memory stores; SQL semantics
    /// (a comparison with `NULL` is never true).
    pub fn matches(&self, value_of: &dyn Fn(F) -> Value) -> bool {
        let set = |f: F| Some(value_of(f)).filter(|v| *v != Value::Null);
        match self {
            Self::Eq(f, v) => set(*f).is_some_and(|value| value == *v),
            Self::Range { field, from, to } => set(*field).is_some_and(|value| {
                from.as_ref().is_none_or(|f| value >= *f) && to.as_ref().is_none_or(|t| value < *t)
            }),
            Self::Prefix(f, p) => matches!(set(*f), Some(Value::Text(s)) if s.starts_with(p.as_str())),
            Self::In(f, values) => set(*f).is_some_and(|value| values.contains(&value)),
            Self::IsNull(f) => value_of(*f) == Value::Null,
            Self::IsNotNull(f) => value_of(*f) != Value::Null,
            Self::Or(all) => all.iter().any(|c| c.matches(value_of)),
            Self::And(all) => all.iter().all(|c| c.matches(value_of)),
        }
    }
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Direction {
    /// Smallest first.
    Asc,
    /// Largest first.
    Desc,
}

/// One sort key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort<F> {
    /// The field.
    pub field: F,
    /// The direction.
    pub direction: Direction,
}

/// The largest page a query may ask for.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// Which page to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageRequest {
    /// Skip `offset` rows, return up to `limit`, and count the total.
    Offset {
        /// Rows to skip.
        offset: u64,
        /// Rows to return, 1 to [`MAX_PAGE_SIZE`].
        limit: u32,
    },
    /// Return up to `limit` rows after the row the cursor points at (from the start when `None`). Stable under
    /// concurrent inserts, and as fast on page 1000 as on page 1.
    Keyset {
        /// Where the previous page ended.
        after: Option<Cursor>,
        /// Rows to return, 1 to [`MAX_PAGE_SIZE`].
        limit: u32,
    },
}

impl PageRequest {
    /// The first page of `limit` rows, keyset-paged.
    pub const fn first(limit: u32) -> Self {
        Self::Keyset { after: None, limit }
    }

    /// The requested page size.
    pub const fn limit(&self) -> u32 {
        match self {
            Self::Offset { limit, .. } | Self::Keyset { limit, .. } => *limit,
        }
    }

    /// Checks the page size; the error names `limit`.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if !(1..=MAX_PAGE_SIZE).contains(&self.limit()) {
            return Err(ValidationError::new("limit", "must be between 1 and 1000"));
        }
        Ok(())
    }
}

impl Default for PageRequest {
    fn default() -> Self {
        Self::Offset { offset: 0, limit: 50 }
    }
}

/// A filtered, sorted page request. Rows are ordered by the sort keys, then by id ascending, so every order is
/// total and pages never overlap or skip.
#[derive(Debug, Clone, PartialEq)]
pub struct Query<F> {
    /// Conditions, combined with AND.
    pub filters: Vec<Filter<F>>,
    /// Sort keys, most significant first; the id is always the final tie-break.
    pub sort: Vec<Sort<F>>,
    /// Which page.
    pub page: PageRequest,
}

impl<F> Default for Query<F> {
    fn default() -> Self {
        Self { filters: Vec::new(), sort: Vec::new(), page: PageRequest::default() }
    }
}

impl<F: Field> Query<F> {
    /// Every row, first page of 50, in id order.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `field = value`.
    pub fn eq(mut self, field: F, value: impl Into<Value>) -> Self {
        self.filters.push(Filter::Eq(field, value.into()));
        self
    }

    /// Adds `from <= field < to`.
    pub fn range(mut self, field: F, from: Option<Value>, to: Option<Value>) -> Self {
        self.filters.push(Filter::Range { field, from, to });
        self
    }

    /// Adds `field` starts with `prefix`.
    pub fn prefix(mut self, field: F, prefix: impl Into<String>) -> Self {
        self.filters.push(Filter::Prefix(field, prefix.into()));
        self
    }

    /// Adds `field IN (values...)`.
    pub fn any_of<V: Into<Value>>(mut self, field: F, values: impl IntoIterator<Item = V>) -> Self {
        self.filters.push(Filter::any_of(field, values));
        self
    }

    /// Adds `field IS NULL`.
    pub fn is_null(mut self, field: F) -> Self {
        self.filters.push(Filter::IsNull(field));
        self
    }

    /// Adds `field IS NOT NULL`.
    pub fn is_not_null(mut self, field: F) -> Self {
        self.filters.push(Filter::IsNotNull(field));
        self
    }

    /// Adds a condition (for example a [`Filter::Or`]).
    pub fn filter(mut self, filter: Filter<F>) -> Self {
        self.filters.push(filter);
        self
    }

    /// Sorts by `field` ascending (after earlier sort keys).
    pub fn asc(mut self, field: F) -> Self {
        self.sort.push(Sort { field, direction: Direction::Asc });
        self
    }

    /// Sorts by `field` descending (after earlier sort keys).
    pub fn desc(mut self, field: F) -> Self {
        self.sort.push(Sort { field, direction: Direction::Desc });
        self
    }

    /// Offset paging.
    pub fn offset(mut self, offset: u64, limit: u32) -> Self {
        self.page = PageRequest::Offset { offset, limit };
        self
    }

    /// Keyset paging after `cursor` (from the start when `None`).
    pub fn after(mut self, cursor: Option<Cursor>, limit: u32) -> Self {
        self.page = PageRequest::Keyset { after: cursor, limit };
        self
    }

    /// Validates filters, sort keys (comparable, non-nullable fields) and page size.
    pub fn validate(&self) -> Result<(), ValidationError> {
        self.filters.iter().try_for_each(Filter::validate)?;
        for s in &self.sort {
            if !s.field.kind().is_comparable() || s.field.nullable() {
                return Err(ValidationError::new(s.field.name(), "cannot sort on a nullable or JSON field"));
            }
        }
        self.page.validate()
    }
}

/// A page of rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The rows, in query order.
    pub items: Vec<T>,
    /// With offset paging: how many rows match the filters in all. `None` with keyset paging.
    pub total: Option<u64>,
    /// With keyset paging: the cursor for the next page, or `None` when this is the last one.
    pub next_cursor: Option<Cursor>,
}

impl<T> Page<T> {
    /// Transforms the rows, keeping the paging information.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page { items: self.items.into_iter().map(f).collect(), total: self.total, next_cursor: self.next_cursor }
    }
}

/// An opaque position in a keyset-paged result: the sort-key values and the id of the last row of a page.
/// Callers pass it back unchanged; a garbled cursor is a validation error.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Cursor(String);

impl Cursor {
    /// Builds a cursor from the last row's sort-key values followed by its id.
    pub fn encode(values: &[Value]) -> Self {
        // Serializing a Vec<Value> cannot fail: every variant is plain data.
        let json = serde_json::to_vec(values).unwrap_or_default();
        Self(URL_SAFE_NO_PAD.encode(json))
    }

    /// The sort-key values and id this cursor holds, checked against the kinds the query expects.
    pub fn decode(&self, expected: &[ValueKind]) -> Result<Vec<Value>, ValidationError> {
        let bad = || ValidationError::new("cursor", "is not a cursor returned by this query");
        let bytes = URL_SAFE_NO_PAD.decode(&self.0).map_err(|_| bad())?;
        let values: Vec<Value> = serde_json::from_slice(&bytes).map_err(|_| bad())?;
        if values.len() != expected.len() || values.iter().zip(expected).any(|(v, k)| v.kind() != *k) {
            return Err(bad());
        }
        Ok(values)
    }

    /// Wraps the text form received from a client.
    pub fn from_string(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The text form, to hand to a client.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cursor({})", self.0)
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A half-open time range `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    /// Inclusive start.
    pub from: Timestamp,
    /// Exclusive end.
    pub to: Timestamp,
}

impl TimeRange {
    /// The range `[from, to)`; `from` must not be after `to`.
    pub fn new(from: Timestamp, to: Timestamp) -> Result<Self, ValidationError> {
        if from > to {
            return Err(ValidationError::new("range", "from must not be after to"));
        }
        Ok(Self { from, to })
    }

    /// Whether `t` lies in the range.
    pub fn contains(&self, t: Timestamp) -> bool {
        self.from <= t && t < self.to
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let id = Uuid::now_v7();
        let c = Cursor::encode(&[Value::Text("x".into()), Value::Uuid(id)]);
        let back = c.decode(&[ValueKind::Text, ValueKind::Uuid]).unwrap();
        assert_eq!(back, vec![Value::Text("x".into()), Value::Uuid(id)]);
        assert_eq!(c.decode(&[ValueKind::Uuid]).unwrap_err().field, "cursor");
        assert_eq!(Cursor::from_string("%%%").decode(&[]).unwrap_err().field, "cursor");
    }

    #[test]
    fn range_filters_are_half_open() {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        struct N;
        impl Field for N {
            fn name(self) -> &'static str {
                "n"
            }
            fn kind(self) -> ValueKind {
                ValueKind::Int
            }
            fn all() -> &'static [Self] {
                &[N]
            }
        }
        assert_eq!(N::from_name("n"), Some(N));
        assert_eq!(N::from_name("m"), None);
        let f = Filter::Range { field: N, from: Some(Value::Int(1)), to: Some(Value::Int(3)) };
        assert!(!f.matches(&|_| Value::Int(0)));
        assert!(f.matches(&|_| Value::Int(1)));
        assert!(!f.matches(&|_| Value::Int(3)));
        assert!(!f.matches(&|_| Value::Null));
        let either = Filter::Or(vec![Filter::IsNull(N), Filter::any_of(N, [7_i64, 9])]);
        assert!(either.matches(&|_| Value::Null));
        assert!(either.matches(&|_| Value::Int(9)));
        assert!(!either.matches(&|_| Value::Int(8)));
        assert!(!Filter::<N>::Or(vec![]).matches(&|_| Value::Int(8)));
        assert_eq!(Filter::Eq(N, Value::Null).validate().unwrap_err().field, "n");
        assert!(Filter::any_of(N, 0..1001_i64).validate().is_err());
        assert_eq!(Filter::Eq(N, Value::from("x")).validate().unwrap_err().field, "n");
        assert!(Filter::Prefix(N, "1".into()).validate().is_err());
        assert_eq!(Query::<N>::new().offset(0, 0).validate().unwrap_err().field, "limit");
    }
}
