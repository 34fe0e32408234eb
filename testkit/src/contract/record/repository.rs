//! The repository cases of the record contract, generic over a [`RecordFixture`].

use cpc_domain::Version;
use cpc_ports::{ConflictKind, Query, Record, RecordId, RecordStore, RepoError};

use super::RecordFixture;
use super::support::{assert_duplicate, assert_validation, both, count_scope, ids, scope_rows, setup};

/// `create` returns the row as stored: [`Version::FIRST`], `updated_at` set where the record keeps it, and
/// `find_by_id` gives back the same row.
pub async fn create_returns_the_row_with_first_version<F: RecordFixture>(fixture: &F, store: &dyn RecordStore) {
    let (ctx, repo) = setup(fixture, store).await;
    let before = chrono::SubsecRound::trunc_subsecs(chrono::Utc::now(), 6);
    let row = repo.create(fixture.new_row(&ctx, 1)).await.expect("create");
    assert_eq!(row.version(), Version::FIRST, "a new row has the first version");
    if let Some(at) = row.updated_at() {
        assert!(at >= before, "updated_at is set to the time of creation");
    }
    let found = repo.find_by_id(row.id()).await.expect("find_by_id").expect("the created row is found");
    assert_eq!(format!("{found:?}"), format!("{row:?}"), "what create returns is what is stored");
}

/// `find_by_id` round-trips every row made, and an id never stored is `None`.
pub async fn find_by_id_round_trips_and_unknown_ids_are_none<F: RecordFixture>(fixture: &F, store: &dyn RecordStore) {
    let (ctx, repo) = setup(fixture, store).await;
    for n in 1..=3 {
        let row = repo.create(fixture.new_row(&ctx, n)).await.expect("create");
        let found = repo.find_by_id(row.id()).await.expect("find_by_id").expect("found");
        assert_eq!(format!("{found:?}"), format!("{row:?}"), "row {n} round-trips");
    }
    let unknown = unknown_id::<F::Record>();
    assert!(repo.find_by_id(&unknown).await.expect("find_by_id").is_none(), "an unknown id is None");
}

/// `create_many` stores every row of a valid batch; a batch with a duplicate (or, for a record that refers to
/// nothing without unique keys, a missing reference) stores none of it.
pub async fn create_many_is_all_or_nothing<F: RecordFixture>(fixture: &F, store: &dyn RecordStore) {
    let (ctx, repo) = setup(fixture, store).await;
    let made = repo.create_many((1..=3).map(|n| fixture.new_row(&ctx, n)).collect()).await.expect("create_many");
    assert_eq!(made.len(), 3);
    assert_eq!(ids(&made), ids(&scope_rows(fixture, &ctx, &*repo).await), "every row of the batch is stored");
    let bad = fixture
        .duplicate_of(&ctx, 4)
        .map(|(new, _)| new)
        .or_else(|| fixture.missing_reference(&ctx, 5).map(|(new, _)| new));
    match bad {
        Some(bad) => {
            // Two good rows around one that must fail (it clashes with row 4, made just before it).
            let batch = vec![fixture.new_row(&ctx, 4), fixture.new_row(&ctx, 6), bad, fixture.new_row(&ctx, 7)];
            let e = repo.create_many(batch).await.expect_err("a batch with a bad row fails");
            assert!(matches!(e, RepoError::Conflict { .. } | RepoError::Validation(_)), "got {e:?}");
            assert_eq!(count_scope(fixture, &ctx, &*repo).await, 3, "nothing of the failed batch is kept");
        }
        None => {
            assert!(
                made[0].unique_keys().is_empty() && F::Record::REFERENCES.is_empty(),
                "the fixture gives no failing row, but the record declares unique keys or references"
            );
        }
    }
}

/// `update` applies the change and bumps the version (versioned records) or keeps it at the first one
/// (unversioned), never moving `updated_at` backwards; `find_by_id` then sees the change.
pub async fn update_changes_fields_and_bumps_the_version<F: RecordFixture>(fixture: &F, store: &dyn RecordStore) {
    let (ctx, repo) = setup(fixture, store).await;
    let row = repo.create(fixture.new_row(&ctx, 1)).await.expect("create");
    let (changes, field, expected) = fixture.changes(&ctx, 1);
    assert_ne!(row.value(field), expected, "the fixture's change changes something");
    let updated = repo.update(row.id(), row.version(), changes).await.expect("update");
    assert_eq!(updated.value(field), expected, "the change is applied");
    let next = if F::Record::VERSIONED { row.version().next() } else { Version::FIRST };
    assert_eq!(updated.version(), next, "the version after an update");
    if let (Some(before), Some(after)) = (row.updated_at(), updated.updated_at()) {
        assert!(after >= before, "updated_at never moves backwards");
    }
    let stored = repo.find_by_id(row.id()).await.expect("find").expect("found");
    assert_eq!(stored.value(field), expected, "the change is stored");
    assert_eq!(stored.version(), next);
}

/// Versioned records: an update at a stale version is refused with a stale-version conflict and changes
/// nothing. Unversioned ones: the last write wins, whatever version the caller passes.
pub async fn stale_version_is_refused_or_the_last_write_wins<F: RecordFixture>(fixture: &F, store: &dyn RecordStore) {
    let (ctx, repo) = setup(fixture, store).await;
    let row = repo.create(fixture.new_row(&ctx, 1)).await.expect("create");
    let (changes, field, expected) = fixture.changes(&ctx, 1);
    let stale = Version::new(row.version().get() + 5);
    let outcome = repo.update(row.id(), stale, changes).await;
    let stored = repo.find_by_id(row.id()).await.expect("find").expect("found");
    if F::Record::VERSIONED {
        match outcome {
            Err(RepoError::Conflict { kind: ConflictKind::StaleVersion { expected: e, actual }, .. }) => {
                assert_eq!((e, actual), (stale, row.version()), "the conflict reports both versions");
            }
            other => panic!("a stale update must be a stale-version conflict, got {other:?}"),
        }
        assert_eq!(stored.value(field), row.value(field), "a refused update changes nothing");
        assert_eq!(stored.version(), row.version());
    } else {
        let updated = outcome.expect("an unversioned record takes the last write");
        assert_eq!(updated.value(field), expected);
        assert_eq!(stored.value(field), expected);
        assert_eq!(stored.version(), Version::FIRST, "an unversioned row stays at the first version");
    }
}

/// `update` of an id never stored is [`RepoError::NotFound`] naming the record, and creates nothing.
pub async fn update_of_an_unknown_id_is_not_found<F: RecordFixture>(fixture: &F, store: &dyn RecordStore) {
    let (ctx, repo) = setup(fixture, store).await;
    let (changes, _, _) = fixture.changes(&ctx, 1);
    let unknown = unknown_id::<F::Record>();
    match repo.update(&unknown, Version::FIRST, changes).await {
        Err(RepoError::NotFound { entity, id }) => {
            assert_eq!(entity, F::Record::ENTITY);
            assert_eq!(id, unknown.to_string());
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert_eq!(count_scope(fixture, &ctx, &*repo).await, 0);
}

/// `delete` removes exactly the row and says whether it existed; `exists` and `count` agree with it.
pub async fn delete_exists_and_count_agree<F: RecordFixture>(fixture: &F, store: &dyn RecordStore) {
    let (ctx, repo) = setup(fixture, store).await;
    let a = repo.create(fixture.new_row(&ctx, 1)).await.expect("create");
    let b = repo.create(fixture.new_row(&ctx, 2)).await.expect("create");
    assert_eq!(count_scope(fixture, &ctx, &*repo).await, 2);
    assert!(repo.exists(a.id()).await.expect("exists"));
    assert!(repo.delete(a.id()).await.expect("delete"), "deleting a stored row reports it existed");
    assert!(!repo.exists(a.id()).await.expect("exists"), "a deleted row no longer exists");
    assert!(repo.find_by_id(a.id()).await.expect("find").is_none());
    assert!(!repo.delete(a.id()).await.expect("delete"), "deleting it again reports it did not exist");
    assert!(repo.exists(b.id()).await.expect("exists"), "the other row is untouched");
    assert_eq!(count_scope(fixture, &ctx, &*repo).await, 1);
}

/// A create clashing on a unique field is a duplicate conflict naming the field, storing nothing. A fixture
/// without a duplicate claims the record has no unique key: the row's [`Record::unique_keys`] must be empty.
pub async fn duplicate_unique_is_a_conflict_naming_the_field<F: RecordFixture>(fixture: &F, store: &dyn RecordStore) {
    let (ctx, repo) = setup(fixture, store).await;
    let row = repo.create(fixture.new_row(&ctx, 1)).await.expect("create");
    match fixture.duplicate_of(&ctx, 1) {
        Some((dup, field)) => {
            let e = repo.create(dup).await.expect_err("a duplicate is refused");
            assert_duplicate(&e, field);
            assert_eq!(count_scope(fixture, &ctx, &*repo).await, 1, "the duplicate is not stored");
        }
        None => assert!(
            row.unique_keys().is_empty(),
            "the fixture gives no duplicate, but the record declares unique keys {:?}",
            row.unique_keys()
        ),
    }
}

/// A create referring to a row that does not exist is a validation error naming the referring field, storing
/// nothing. A fixture without one claims the record refers to nothing: [`Record::REFERENCES`] must be empty.
pub async fn missing_reference_is_a_validation_error_naming_the_field<F: RecordFixture>(
    fixture: &F,
    store: &dyn RecordStore,
) {
    let (ctx, repo) = setup(fixture, store).await;
    match fixture.missing_reference(&ctx, 1) {
        Some((orphan, field)) => {
            let e = repo.create(orphan).await.expect_err("a missing reference is refused");
            assert_validation(&e, field);
            assert!(F::Record::REFERENCES.iter().any(|r| r.field == field), "the record declares `{field}`");
            assert_eq!(count_scope(fixture, &ctx, &*repo).await, 0, "nothing is stored");
        }
        None => assert!(
            F::Record::REFERENCES.is_empty(),
            "the fixture gives no missing reference, but the record declares {:?}",
            F::Record::REFERENCES
        ),
    }
}

/// Deleting the parent row the case's rows refer to is refused, naming the referring field, and deletes
/// nothing; once the rows are gone it succeeds. A fixture without a parent claims the record refers to nothing.
pub async fn deleting_a_referenced_parent_is_refused_naming_the_field<F: RecordFixture>(
    fixture: &F,
    store: &dyn RecordStore,
) {
    let (ctx, repo) = setup(fixture, store).await;
    let row = repo.create(fixture.new_row(&ctx, 1)).await.expect("create");
    match fixture.delete_parent(store, &ctx).await {
        Some((outcome, field)) => {
            let e = outcome.expect_err("deleting a referenced parent is refused");
            assert_validation(&e, field);
            assert!(repo.exists(row.id()).await.expect("exists"), "the referring row is kept");
            assert!(repo.delete(row.id()).await.expect("delete"));
            let (outcome, _) = fixture.delete_parent(store, &ctx).await.expect("the parent is still there");
            assert!(outcome.expect("an unreferenced parent can be deleted"), "the parent existed until now");
        }
        None => assert!(
            F::Record::REFERENCES.is_empty(),
            "the fixture deletes no parent, but the record declares {:?}",
            F::Record::REFERENCES
        ),
    }
}

/// Keyset paging in id order walks every row of the scope exactly once, with a cursor exactly when more follow.
pub async fn keyset_paging_by_id_walks_every_row_once<F: RecordFixture>(fixture: &F, store: &dyn RecordStore) {
    let (ctx, repo) = setup(fixture, store).await;
    let made = repo.create_many((1..=7).map(|n| fixture.new_row(&ctx, n)).collect()).await.expect("create_many");
    let mut seen = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let query = Query::new().filter(fixture.scope(&ctx)).after(cursor.take(), 3);
        let page = repo.find_page(&query).await.expect("find_page");
        pages += 1;
        assert!(page.items.len() <= 3);
        seen.extend(page.items);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
        assert!(pages < 10, "paging ends");
    }
    assert_eq!(pages, 3, "7 rows in pages of 3");
    let in_order: Vec<String> = scope_rows(fixture, &ctx, &*repo).await.iter().map(|r| r.id().to_string()).collect();
    let seen_ids: Vec<String> = seen.iter().map(|r| r.id().to_string()).collect();
    assert_eq!(seen_ids, in_order, "pages come in id order with no row twice");
    assert_eq!(ids(&seen), ids(&made), "every row is seen once");
}

/// Offset paging reports the scope's total and slices it in id order.
pub async fn offset_paging_reports_the_total<F: RecordFixture>(fixture: &F, store: &dyn RecordStore) {
    let (ctx, repo) = setup(fixture, store).await;
    repo.create_many((1..=5).map(|n| fixture.new_row(&ctx, n)).collect()).await.expect("create_many");
    let all = scope_rows(fixture, &ctx, &*repo).await;
    assert_eq!(all.len(), 5);
    let first = repo.find_page(&Query::new().filter(fixture.scope(&ctx)).offset(0, 2)).await.expect("page");
    assert_eq!(first.total, Some(5), "offset paging reports the total");
    assert_eq!(ids(&first.items), ids(&all[..2]));
    let last = repo.find_page(&Query::new().filter(fixture.scope(&ctx)).offset(4, 2)).await.expect("page");
    assert_eq!(last.total, Some(5));
    assert_eq!(ids(&last.items), ids(&all[4..]));
    assert!(last.next_cursor.is_none(), "offset paging gives no cursor");
}

/// A filter on one of the record's own fields finds exactly the row it names, by `find_page` and `count`.
pub async fn a_filter_on_a_field_finds_exactly_its_row<F: RecordFixture>(fixture: &F, store: &dyn RecordStore) {
    let (ctx, repo) = setup(fixture, store).await;
    let made = repo.create_many((1..=3).map(|n| fixture.new_row(&ctx, n)).collect()).await.expect("create_many");
    for (n, row) in (1..=3).zip(&made) {
        let filter = both(fixture.scope(&ctx), fixture.only(&ctx, n));
        let page = repo.find_page(&Query::new().filter(filter.clone())).await.expect("find_page");
        assert_eq!(ids(&page.items), ids(std::slice::from_ref(row)), "the filter for row {n} finds it alone");
        assert_eq!(repo.count(&[filter]).await.expect("count"), 1);
    }
}

/// An id of the record that no row has: a fresh UUID, or an `i64` far beyond any sequence.
pub(super) fn unknown_id<T: Record>() -> T::Id {
    T::new_id()
        .or_else(|| T::Id::from_value(&cpc_ports::Value::Int(i64::MAX - 7)))
        .expect("the id is a UUID or an integer")
}
