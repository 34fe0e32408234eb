//! Cases on [`TransactionRepository`]: the reference to users, history, filters on numbers and times.

use chrono::Duration;
use cpc_domain::{NewTransaction, Transaction, TransactionId, TransactionKind, UpdateTransaction, UserId, Version};
use cpc_ports::{
    Filter, PageRequest, Query, RepoError, TimeRange, TransactionField, TransactionRepository, UserRepository, Value,
};

use super::fixtures::{Names, assert_invalid_reference, at_hour, entry, eur, micros_now};

fn ids(rows: &[Transaction]) -> Vec<TransactionId> {
    rows.iter().map(|t| t.id).collect()
}

fn of_user(user: UserId) -> Filter<TransactionField> {
    Filter::Eq(TransactionField::UserId, Value::Uuid(*user.as_uuid()))
}

/// A transaction naming an unknown user is a validation error on `user_id` (a missing reference), alone or in a
/// batch, and stores nothing.
pub async fn transaction_for_an_unknown_user_is_a_validation_error_on_user_id<U, X>(users: &U, transactions: &X)
where
    U: UserRepository + ?Sized,
    X: TransactionRepository + ?Sized,
{
    let names = Names::new("transaction_for_an_unknown_user_is_a_validation_error_on_user_id");
    let ghost = UserId::new();
    let missing = |r, what| assert_invalid_reference(r, "user_id", RepoError::MISSING_REFERENCE, what);
    missing(transactions.create(entry(ghost, 100, at_hour(0))).await.map(drop), "ghost");
    let user = users.create(names.user(1)).await.expect("create user");
    let batch = vec![entry(user.id, 100, at_hour(0)), entry(ghost, 200, at_hour(1))];
    missing(transactions.create_many(batch).await.map(drop), "batch with a ghost");
    assert_eq!(transactions.count(&[of_user(ghost)]).await.expect("count"), 0, "nothing for the ghost");
    assert_eq!(transactions.count(&[of_user(user.id)]).await.expect("count"), 0, "the batch stored nothing");
}

/// A user with transactions cannot be deleted: a validation error on `user_id` (still referred to); once they are
/// gone, it can.
pub async fn deleting_a_user_with_transactions_is_a_validation_error_on_user_id<U, X>(users: &U, transactions: &X)
where
    U: UserRepository + ?Sized,
    X: TransactionRepository + ?Sized,
{
    let names = Names::new("deleting_a_user_with_transactions_is_a_validation_error_on_user_id");
    let user = users.create(names.user(1)).await.expect("create user");
    let t = transactions.create(entry(user.id, 100, at_hour(0))).await.expect("create transaction");
    let refused = users.delete(&user.id).await;
    assert_invalid_reference(refused, "user_id", RepoError::STILL_REFERENCED, "user still referenced");
    assert!(users.exists(&user.id).await.expect("exists"), "the user is still there");
    assert!(transactions.delete(&t.id).await.expect("delete transaction"), "transaction deleted");
    assert!(users.delete(&user.id).await.expect("delete user"), "now the user can go");
}

/// `history` returns one user's entries in `[from, to)`, newest first, ties by id ascending.
pub async fn history_is_half_open_newest_first_and_per_user<U, X>(users: &U, transactions: &X)
where
    U: UserRepository + ?Sized,
    X: TransactionRepository + ?Sized,
{
    let names = Names::new("history_is_half_open_newest_first_and_per_user");
    let ada = users.create(names.user(1)).await.expect("create ada");
    let bob = users.create(names.user(2)).await.expect("create bob");
    let mut batch: Vec<NewTransaction> = (0..10).map(|h| entry(ada.id, 100 + h, at_hour(h))).collect();
    batch.extend([entry(ada.id, 7, at_hour(3)), entry(ada.id, 8, at_hour(3))]);
    batch.extend((0..10).map(|h| entry(bob.id, 1, at_hour(h))));
    let stored = transactions.create_many(batch).await.expect("create");

    let range = TimeRange::new(at_hour(2), at_hour(6)).expect("range");
    let page = transactions.history(&ada.id, range, PageRequest::Offset { offset: 0, limit: 100 }).await;
    let page = page.expect("history");
    let mut expected: Vec<&Transaction> =
        stored.iter().filter(|t| t.user_id == ada.id && range.contains(t.occurred_at)).collect();
    expected.sort_by(|a, b| b.occurred_at.cmp(&a.occurred_at).then(a.id.cmp(&b.id)));
    assert_eq!(expected.len(), 6, "fixture: hours 2, 3 (three entries), 4, 5");
    assert_eq!(page.total, Some(6), "total");
    assert_eq!(ids(&page.items), expected.iter().map(|t| t.id).collect::<Vec<_>>(), "newest first, ties by id");
    assert!(page.items.iter().all(|t| t.occurred_at != at_hour(6)), "`to` is exclusive");
    assert!(page.items.iter().any(|t| t.occurred_at == at_hour(2)), "`from` is inclusive");
    let empty = TimeRange::new(at_hour(3), at_hour(3)).expect("empty range");
    let none = transactions.history(&ada.id, empty, PageRequest::default()).await.expect("empty history");
    assert!(none.items.is_empty(), "an empty range holds nothing");
}

/// `history` pages with keyset and offset paging, in the same order.
pub async fn history_pages_with_keyset_and_offset<U, X>(users: &U, transactions: &X)
where
    U: UserRepository + ?Sized,
    X: TransactionRepository + ?Sized,
{
    let names = Names::new("history_pages_with_keyset_and_offset");
    let ada = users.create(names.user(1)).await.expect("create");
    let batch = (0..9).map(|i| entry(ada.id, 100 + i, at_hour(i / 2))).collect();
    transactions.create_many(batch).await.expect("create");
    let range = TimeRange::new(at_hour(0), at_hour(100)).expect("range");
    let full = transactions.history(&ada.id, range, PageRequest::Offset { offset: 0, limit: 100 }).await;
    let full = ids(&full.expect("full").items);
    assert_eq!(full.len(), 9, "all nine");
    let mut walked = Vec::new();
    let mut after = None;
    loop {
        let page = transactions.history(&ada.id, range, PageRequest::Keyset { after, limit: 4 }).await;
        let page = page.expect("keyset page");
        walked.extend(ids(&page.items));
        after = page.next_cursor;
        if after.is_none() {
            break;
        }
        assert!(walked.len() < 9, "a cursor after the last row");
    }
    assert_eq!(walked, full, "keyset walk");
    let middle = transactions.history(&ada.id, range, PageRequest::Offset { offset: 4, limit: 4 }).await;
    let middle = middle.expect("offset page");
    assert_eq!((ids(&middle.items), middle.total), (full[4..8].to_vec(), Some(9)), "offset page");
}

/// Every field round-trips (odd description text, money, kind, microsecond times); filters on the amount (an
/// integer range), the kind and the time work; only the description can be updated.
pub async fn transaction_fields_round_trip_and_filter<U, X>(users: &U, transactions: &X)
where
    U: UserRepository + ?Sized,
    X: TransactionRepository + ?Sized,
{
    let names = Names::new("transaction_fields_round_trip_and_filter");
    let ada = users.create(names.user(1)).await.expect("create user");
    let when = micros_now() - Duration::days(3);
    let text = "Rent for 'Flat 2'; DROP TABLE transactions; -- \"ok\" \\ 日本 🎉\n";
    let debit = NewTransaction::new(ada.id, eur(123_456), TransactionKind::Debit, text, when).expect("new");
    let stored = transactions.create(debit.clone()).await.expect("create");
    assert_eq!(
        (stored.user_id, stored.amount, stored.kind, stored.description.as_str(), stored.occurred_at),
        (debit.user_id, debit.amount, debit.kind, text, when),
        "fields as given"
    );
    assert_eq!(transactions.find_by_id(&stored.id).await.expect("find"), Some(stored.clone()), "round trip");
    let more = (1..=5).map(|i| entry(ada.id, i * 100, when + Duration::hours(i))).collect();
    transactions.create_many(more).await.expect("create more");

    let mine = of_user(ada.id);
    let amounts =
        Filter::Range { field: TransactionField::AmountMinor, from: Some(Value::Int(200)), to: Some(Value::Int(400)) };
    assert_eq!(transactions.count(&[mine.clone(), amounts]).await.expect("count"), 2, "amounts 200 and 300");
    let debits = Filter::Eq(TransactionField::Kind, Value::from("debit"));
    assert_eq!(transactions.count(&[mine.clone(), debits]).await.expect("count"), 1, "one debit");
    let q = Query::new().eq(TransactionField::UserId, *ada.id.as_uuid()).range(
        TransactionField::OccurredAt,
        Some(Value::Time(when + Duration::hours(2))),
        None,
    );
    assert_eq!(transactions.find_page(&q).await.expect("page").total, Some(4), "hours 2 to 5");

    let fixed = transactions.update(&stored.id, Version::FIRST, UpdateTransaction::description("fixed").expect("d"));
    let fixed = fixed.await.expect("update");
    assert_eq!((fixed.description.as_str(), fixed.version), ("fixed", Version::new(2)), "description and version");
    assert_eq!((fixed.amount, fixed.occurred_at), (stored.amount, stored.occurred_at), "the rest is kept");
}
