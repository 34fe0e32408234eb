//! Cases on [`Repository::find_page`](cpc_ports::Repository::find_page) and
//! [`Repository::count`](cpc_ports::Repository::count): filters, sorting, offset and keyset paging, and the
//! validation of queries. Run on customers (whose names may repeat, so sorts have ties) and users.

use std::collections::HashSet;

use cpc_domain::{Customer, CustomerId};
use cpc_ports::{Cursor, CustomerField, CustomerRepository, Filter, Query, UserField, UserRepository, Value};

use super::fixtures::{Names, assert_validation};

/// Stores customers of this case named `name(i)` for `i` in `0..n`.
async fn seed<C: CustomerRepository + ?Sized>(
    customers: &C,
    names: &Names,
    n: usize,
    name: impl Fn(usize) -> String,
) -> Vec<Customer> {
    let batch = (0..n).map(|i| names.customer(i, &name(i))).collect();
    customers.create_many(batch).await.expect("seed customers")
}

/// This case's customers, with `query`'s sort, in one page.
async fn all<C: CustomerRepository + ?Sized>(
    customers: &C,
    names: &Names,
    query: Query<CustomerField>,
) -> Vec<Customer> {
    let mut query = query.offset(0, 1000);
    query.filters.push(names.customers());
    customers.find_page(&query).await.expect("find_page").items
}

/// Walks every keyset page of `query` (page size `limit`), checking `next_cursor` along the way.
async fn walk<C: CustomerRepository + ?Sized>(
    customers: &C,
    query: Query<CustomerField>,
    limit: u32,
) -> Vec<Vec<Customer>> {
    let mut pages = Vec::new();
    let mut cursor = None;
    loop {
        let page = customers.find_page(&query.clone().after(cursor, limit)).await.expect("keyset page");
        assert_eq!(page.total, None, "keyset pages carry no total");
        assert!(page.items.len() <= limit as usize, "a page holds at most `limit` rows");
        cursor = page.next_cursor.clone();
        let last = cursor.is_none();
        pages.push(page.items);
        if last {
            return pages;
        }
        assert!(pages.len() <= 1000, "keyset paging does not end");
    }
}

fn ids(rows: &[Customer]) -> Vec<CustomerId> {
    rows.iter().map(|c| c.id).collect()
}

/// Filters combine with AND: `eq`, half-open `range` (either end open) and `prefix`; `count` agrees.
pub async fn filters_combine_with_and<C: CustomerRepository + ?Sized>(customers: &C) {
    let names = Names::new("filters_combine_with_and");
    seed(customers, &names, 6, |i| format!("n{i}")).await;
    let mine = names.customers();
    let name_of = |rows: Vec<Customer>| rows.into_iter().map(|c| c.name).collect::<Vec<_>>();
    let q = Query::new().eq(CustomerField::Name, "n2");
    assert_eq!(name_of(all(customers, &names, q).await), ["n2"], "eq");
    let q = Query::new().range(CustomerField::Name, Some("n1".into()), Some("n4".into())).asc(CustomerField::Name);
    assert_eq!(name_of(all(customers, &names, q).await), ["n1", "n2", "n3"], "range is [from, to)");
    let q = Query::new().range(CustomerField::Name, Some("n4".into()), None).asc(CustomerField::Name);
    assert_eq!(name_of(all(customers, &names, q).await), ["n4", "n5"], "range open above");
    let q = Query::new().range(CustomerField::Name, None, Some("n1".into()));
    assert_eq!(name_of(all(customers, &names, q).await), ["n0"], "range open below");
    let q = Query::new().eq(CustomerField::Name, "n2").range(CustomerField::Name, Some("n3".into()), None);
    assert!(all(customers, &names, q).await.is_empty(), "contradicting filters match nothing (AND)");
    let both =
        [mine.clone(), Filter::Prefix(CustomerField::Name, "n".into()), Filter::Eq(CustomerField::Name, "n5".into())];
    assert_eq!(customers.count(&both).await.expect("count"), 1, "count combines filters with AND");
    assert_eq!(customers.count(&[mine]).await.expect("count"), 6, "count of the case's rows");
}

/// A prefix is literal text: `%`, `_` and `\` are not wildcards or escapes.
pub async fn prefix_filters_take_wildcards_literally<C: CustomerRepository + ?Sized>(customers: &C) {
    let names = Names::new("prefix_filters_take_wildcards_literally");
    let tag = names.tag().to_owned();
    let texts = ["100% off", "1000 off", "a_b", "axb", r"a\b", r"a\\b"];
    seed(customers, &names, texts.len(), |i| format!("{tag} {}", texts[i])).await;
    let prefixed = |p: &str| Query::new().prefix(CustomerField::Name, format!("{tag} {p}"));
    for (prefix, expected) in
        [("100%", vec!["100% off"]), ("a_", vec!["a_b"]), (r"a\", vec![r"a\b", r"a\\b"]), (r"a\\", vec![r"a\\b"])]
    {
        // Compared as sorted sets: how a collation orders punctuation is not this case's business.
        let mut found: Vec<String> =
            all(customers, &names, prefixed(prefix)).await.into_iter().map(|c| c.name).collect();
        found.sort();
        let mut expected: Vec<String> = expected.iter().map(|t| format!("{tag} {t}")).collect();
        expected.sort();
        assert_eq!(found, expected, "prefix {prefix:?}");
    }
    assert_eq!(all(customers, &names, prefixed("")).await.len(), texts.len(), "a bare prefix matches all");
}

/// Sorting by a field with ties orders the ties by id ascending, in both directions; no sort means id order.
pub async fn sorts_break_ties_by_id_ascending<C: CustomerRepository + ?Sized>(customers: &C) {
    let names = Names::new("sorts_break_ties_by_id_ascending");
    seed(customers, &names, 12, |i| format!("n{}", i % 3)).await;
    for descending in [false, true] {
        let q = if descending { Query::new().desc(CustomerField::Name) } else { Query::new().asc(CustomerField::Name) };
        let rows = all(customers, &names, q).await;
        assert_eq!(rows.len(), 12, "every row");
        for pair in rows.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            let in_order = if descending { a.name >= b.name } else { a.name <= b.name };
            assert!(in_order, "names out of order (descending: {descending}): {} then {}", a.name, b.name);
            if a.name == b.name {
                assert!(a.id < b.id, "ties must be ordered by id ascending (descending: {descending})");
            }
        }
    }
    let unsorted = ids(&all(customers, &names, Query::new()).await);
    let mut by_id = unsorted.clone();
    by_id.sort();
    assert_eq!(unsorted, by_id, "without sort keys rows come in id order");
}

/// Offset paging slices the sorted rows and reports the total on every page, past the end too.
pub async fn offset_paging_reports_the_total_and_slices_in_order<C: CustomerRepository + ?Sized>(customers: &C) {
    let names = Names::new("offset_paging_reports_the_total_and_slices_in_order");
    seed(customers, &names, 25, |i| format!("n{}", i % 4)).await;
    let base = Query::new().prefix(CustomerField::Email, names.tag()).desc(CustomerField::Name);
    let full = all(customers, &names, Query::new().desc(CustomerField::Name)).await;
    let mut paged = Vec::new();
    for offset in [0, 7, 14, 21, 25, 1000] {
        let page = customers.find_page(&base.clone().offset(offset, 7)).await.expect("page");
        assert_eq!(page.total, Some(25), "total at offset {offset}");
        assert_eq!(page.next_cursor, None, "offset pages carry no cursor");
        let expected = 25usize.saturating_sub(offset as usize).min(7);
        assert_eq!(page.items.len(), expected, "rows at offset {offset}");
        paged.extend(page.items);
    }
    assert_eq!(ids(&paged), ids(&full), "pages concatenate to the whole ordered result");
}

/// Keyset paging over 25 rows, 7 at a time, sorted descending on a field with ties, returns every row exactly
/// once, in the same order as one big page, with a cursor on every page but the last.
pub async fn keyset_paging_walks_every_row_once<C: CustomerRepository + ?Sized>(customers: &C) {
    let names = Names::new("keyset_paging_walks_every_row_once");
    seed(customers, &names, 25, |i| format!("n{}", i % 4)).await;
    let query = Query::new().prefix(CustomerField::Email, names.tag()).desc(CustomerField::Name);
    let pages = walk(customers, query, 7).await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [7, 7, 7, 4], "page sizes");
    let walked: Vec<CustomerId> = pages.iter().flat_map(|p| ids(p)).collect();
    assert_eq!(walked.iter().collect::<HashSet<_>>().len(), 25, "no row twice");
    let full = all(customers, &names, Query::new().desc(CustomerField::Name)).await;
    assert_eq!(walked, ids(&full), "same order as a single page");
}

/// `next_cursor` is set exactly when more rows follow: not on an exactly full last page, nor on an empty result.
pub async fn keyset_cursor_is_none_exactly_when_no_rows_follow<C: CustomerRepository + ?Sized>(customers: &C) {
    let names = Names::new("keyset_cursor_is_none_exactly_when_no_rows_follow");
    seed(customers, &names, 14, |i| format!("n{i:02}")).await;
    let query = Query::new().prefix(CustomerField::Email, names.tag()).asc(CustomerField::Name);
    let pages = walk(customers, query.clone(), 7).await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [7, 7], "two full pages, no empty third");
    let one = customers.find_page(&query.clone().after(None, 1000)).await.expect("one page");
    assert_eq!((one.items.len(), one.next_cursor), (14, None), "everything fits: no cursor");
    let none = Query::new().prefix(CustomerField::Email, format!("{}-nobody", names.tag())).after(None, 5);
    let empty = customers.find_page(&none).await.expect("empty");
    assert!(empty.items.is_empty() && empty.next_cursor.is_none(), "an empty result has no cursor");
}

/// Rows inserted between two keyset pages neither shift the walk nor make it repeat a row: a row sorting after
/// the cursor shows up, one sorting before it does not.
pub async fn keyset_paging_is_stable_under_inserts<C: CustomerRepository + ?Sized>(customers: &C) {
    let names = Names::new("keyset_paging_is_stable_under_inserts");
    let seeded = seed(customers, &names, 10, |i| format!("n{i:02}")).await;
    let query = Query::new().prefix(CustomerField::Email, names.tag()).asc(CustomerField::Name);
    let first = customers.find_page(&query.clone().after(None, 4)).await.expect("page 1");
    let before = customers.create(names.customer(20, "n00b")).await.expect("insert before the cursor");
    let after = customers.create(names.customer(21, "n05b")).await.expect("insert after the cursor");
    let mut walked = ids(&first.items);
    let mut cursor = first.next_cursor;
    while let Some(c) = cursor {
        let page = customers.find_page(&query.clone().after(Some(c), 4)).await.expect("next page");
        walked.extend(ids(&page.items));
        cursor = page.next_cursor;
    }
    let unique: HashSet<_> = walked.iter().collect();
    assert_eq!(unique.len(), walked.len(), "no row twice");
    assert!(seeded.iter().all(|c| unique.contains(&c.id)), "every original row once");
    assert!(unique.contains(&after.id), "a row inserted after the cursor is reached");
    assert!(!unique.contains(&before.id), "a row inserted before the cursor is not");
}

/// A filter value of the wrong kind, or a prefix on a non-text field, is a validation error naming the field,
/// in `find_page` and `count`.
pub async fn filters_of_the_wrong_kind_are_validation_errors<R: UserRepository + ?Sized>(users: &R) {
    let q = Query::new().eq(UserField::Email, 5i64);
    assert_validation(users.find_page(&q).await, "email", "eq with an int on a text field");
    let q = Query::new().prefix(UserField::CreatedAt, "2024");
    assert_validation(users.find_page(&q).await, "created_at", "prefix on a time field");
    let q = Query::new().range(UserField::Username, Some(Value::Int(1)), None);
    assert_validation(users.find_page(&q).await, "username", "range with an int on a text field");
    let filter = Filter::Eq(UserField::Id, Value::Text("not a uuid".into()));
    assert_validation(users.count(&[filter]).await, "id", "count with text on a uuid field");
}

/// Page sizes of 0 and 1001 are validation errors naming `limit`, in both paging modes; 1 and 1000 are fine.
pub async fn page_sizes_outside_1_to_1000_are_validation_errors<R: UserRepository + ?Sized>(users: &R) {
    for limit in [0, 1001, u32::MAX] {
        assert_validation(users.find_page(&Query::new().offset(0, limit)).await, "limit", "offset limit");
        assert_validation(users.find_page(&Query::new().after(None, limit)).await, "limit", "keyset limit");
    }
    for limit in [1, 1000] {
        users.find_page(&Query::new().offset(0, limit)).await.expect("offset limit in range");
        users.find_page(&Query::new().after(None, limit)).await.expect("keyset limit in range");
    }
}

/// A garbled cursor, or one from a query with other sort keys, is a validation error naming `cursor`.
pub async fn garbled_cursors_are_validation_errors<C: CustomerRepository + ?Sized>(customers: &C) {
    let names = Names::new("garbled_cursors_are_validation_errors");
    seed(customers, &names, 3, |i| format!("n{i}")).await;
    let by_name = Query::new().prefix(CustomerField::Email, names.tag()).asc(CustomerField::Name);
    let garbage = Cursor::from_string("not a cursor!");
    assert_validation(customers.find_page(&by_name.clone().after(Some(garbage), 2)).await, "cursor", "garbage");
    let real = customers.find_page(&by_name.clone().after(None, 2)).await.expect("page").next_cursor;
    let real = real.expect("a cursor, since a third row follows");
    let other_shape = Query::new().prefix(CustomerField::Email, names.tag()).after(Some(real.clone()), 2);
    assert_validation(customers.find_page(&other_shape).await, "cursor", "cursor of another sort");
    let wrong_kinds = Cursor::encode(&[Value::Int(1), Value::Int(2)]);
    assert_validation(customers.find_page(&by_name.clone().after(Some(wrong_kinds), 2)).await, "cursor", "kinds");
    customers.find_page(&by_name.after(Some(real), 2)).await.expect("the real cursor still works");
}
