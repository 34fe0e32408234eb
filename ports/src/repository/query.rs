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
    /// A 64-bit integer.
    Int,
    /// A UUID.
    Uuid,
    /// A UTC timestamp.
    Time,
}

/// A value to compare a field with.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Value {
    /// Text.
    Text(String),
    /// A 64-bit integer.
    Int(i64),
    /// A UUID.
    Uuid(Uuid),
    /// A UTC timestamp.
    Time(Timestamp),
}

impl Value {
    /// The kind of this value.
    pub fn kind(&self) -> ValueKind {
        match self {
            Self::Text(_) => ValueKind::Text,
            Self::Int(_) => ValueKind::Int,
            Self::Uuid(_) => ValueKind::Uuid,
            Self::Time(_) => ValueKind::Time,
        }
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

/// A column of a record that queries may filter and sort on. Implemented by the `*Field` enums.
pub trait Field: Copy + Eq + fmt::Debug + Send + Sync + 'static {
    /// The column name, as in the database schema.
    fn name(self) -> &'static str;
    /// The type of its values.
    fn kind(self) -> ValueKind;
}

/// One condition on a field. Several filters in a query are combined with AND.
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
}

impl<F: Field> Filter<F> {
    /// The field filtered on.
    pub fn field(&self) -> F {
        match self {
            Self::Eq(f, _) | Self::Prefix(f, _) => *f,
            Self::Range { field, .. } => *field,
        }
    }

    /// Checks that values match the field's type and that prefixes are on text fields; the error names the field.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let field = self.field();
        let wrong = || ValidationError::new(field.name(), format!("filter value must be of kind {:?}", field.kind()));
        match self {
            Self::Eq(_, v) if v.kind() != field.kind() => Err(wrong()),
            Self::Range { from, to, .. } => {
                if from.iter().chain(to).any(|v| v.kind() != field.kind()) {
                    return Err(wrong());
                }
                Ok(())
            }
            Self::Prefix(..) if field.kind() != ValueKind::Text => {
                Err(ValidationError::new(field.name(), "prefix filters need a text field"))
            }
            _ => Ok(()),
        }
    }

    /// Whether `value` (the record's value of this filter's field) passes the filter. For in-memory stores.
    pub fn matches(&self, value: &Value) -> bool {
        match self {
            Self::Eq(_, v) => value == v,
            Self::Range { from, to, .. } => {
                from.as_ref().is_none_or(|f| value >= f) && to.as_ref().is_none_or(|t| value < t)
            }
            Self::Prefix(_, p) => matches!(value, Value::Text(s) if s.starts_with(p.as_str())),
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

    /// Validates filters and page size.
    pub fn validate(&self) -> Result<(), ValidationError> {
        self.filters.iter().try_for_each(Filter::validate)?;
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
        }
        let f = Filter::Range { field: N, from: Some(Value::Int(1)), to: Some(Value::Int(3)) };
        assert!(!f.matches(&Value::Int(0)));
        assert!(f.matches(&Value::Int(1)));
        assert!(!f.matches(&Value::Int(3)));
        assert_eq!(Filter::Eq(N, Value::from("x")).validate().unwrap_err().field, "n");
        assert!(Filter::Prefix(N, "1".into()).validate().is_err());
        assert_eq!(Query::<N>::new().offset(0, 0).validate().unwrap_err().field, "limit");
    }
}
