//! Evaluates a [`Query`] over rows in memory the way the SQL adapters do: filters combined with AND, ordering by
//! the sort keys then id ascending, offset paging with a total, keyset paging with a cursor.

use std::cmp::Ordering;
use std::iter;

use cpc_ports::{Cursor, Direction, Field, Filter, Page, PageRequest, Query, Record, RepoError, Sort, Value};

/// Whether `row` passes every filter.
pub(crate) fn matches_all<T: Record>(row: &T, filters: &[Filter<T::Field>]) -> bool {
    filters.iter().all(|f| f.matches(&|field| row.value(field)))
}

/// Counts the rows passing every filter, after validating the filters.
pub(crate) fn count<'a, T: Record>(
    rows: impl Iterator<Item = &'a T>,
    filters: &[Filter<T::Field>],
) -> Result<u64, RepoError> {
    filters.iter().try_for_each(Filter::validate)?;
    Ok(rows.filter(|row| matches_all(*row, filters)).count() as u64)
}

/// The page of `rows` that `query` asks for.
pub(crate) fn page<'a, T: Record>(
    rows: impl Iterator<Item = &'a T>,
    query: &Query<T::Field>,
) -> Result<Page<T>, RepoError> {
    query.validate()?;
    let mut keyed: Vec<(Vec<Value>, &T)> =
        rows.filter(|row| matches_all(*row, &query.filters)).map(|row| (sort_key(row, &query.sort), row)).collect();
    keyed.sort_by(|a, b| compare(&a.0, &b.0, &query.sort));

    match &query.page {
        PageRequest::Offset { offset, limit } => {
            let total = keyed.len() as u64;
            let skip = usize::try_from(*offset).unwrap_or(usize::MAX);
            let items = keyed.into_iter().skip(skip).take(*limit as usize).map(|(_, row)| row.clone()).collect();
            Ok(Page { items, total: Some(total), next_cursor: None })
        }
        PageRequest::Keyset { after, limit } => {
            let start = match after {
                None => 0,
                Some(cursor) => {
                    let kinds: Vec<_> =
                        query.sort.iter().map(|s| s.field.kind()).chain(iter::once(T::ID_FIELD.kind())).collect();
                    let position = cursor.decode(&kinds)?;
                    keyed.partition_point(|(key, _)| compare(key, &position, &query.sort) != Ordering::Greater)
                }
            };
            let rest = &keyed[start..];
            let limit = *limit as usize;
            let items: Vec<T> = rest.iter().take(limit).map(|(_, row)| (*row).clone()).collect();
            // A next page exists exactly when a row follows the last one returned.
            let next_cursor =
                if rest.len() > limit { rest.get(limit - 1).map(|(key, _)| Cursor::encode(key)) } else { None };
            Ok(Page { items, total: None, next_cursor })
        }
    }
}

/// The row's sort-key values followed by its id: what a cursor holds.
fn sort_key<T: Record>(row: &T, sort: &[Sort<T::Field>]) -> Vec<Value> {
    sort.iter().map(|s| row.value(s.field)).chain(iter::once(T::id_value(row.id()))).collect()
}

/// Compares two sort keys: each sort key in its direction, then the id ascending.
fn compare<F>(a: &[Value], b: &[Value], sort: &[Sort<F>]) -> Ordering {
    let directions = sort.iter().map(|s| s.direction).chain(iter::once(Direction::Asc));
    a.iter()
        .zip(b)
        .zip(directions)
        .map(|((x, y), direction)| match direction {
            Direction::Asc => x.cmp(y),
            Direction::Desc => y.cmp(x),
        })
        .find(|o| o.is_ne())
        .unwrap_or(Ordering::Equal)
}
