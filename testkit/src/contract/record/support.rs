//! What the record cases share: a case's tag and context, and error checks.

use std::sync::Arc;

use cpc_ports::{ConflictKind, Filter, Query, Record, RecordStore, RecordStoreExt, RepoError, Repository};

use super::RecordFixture;

/// A tag unique to one case run: `t` and 12 hex digits (valid in usernames, e-mail local parts, slugs).
pub(super) fn tag() -> String {
    format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// The fixture's context for a fresh tag, and the record's repository.
pub(super) async fn setup<F: RecordFixture>(
    fixture: &F,
    store: &dyn RecordStore,
) -> (F::Ctx, Arc<dyn Repository<F::Record>>) {
    let ctx = fixture.prepare(store, &tag()).await.expect("the fixture prepares its parent rows");
    let repo = store.repo::<F::Record>().expect("the record is registered with the store");
    (ctx, repo)
}

/// How many rows of the case's scope exist.
pub(super) async fn count_scope<F: RecordFixture>(fixture: &F, ctx: &F::Ctx, repo: &dyn Repository<F::Record>) -> u64 {
    repo.count(&[fixture.scope(ctx)]).await.expect("count")
}

/// The case's rows, in id order (at most 1000).
pub(super) async fn scope_rows<F: RecordFixture>(
    fixture: &F,
    ctx: &F::Ctx,
    repo: &dyn Repository<F::Record>,
) -> Vec<F::Record> {
    let query = Query::new().filter(fixture.scope(ctx)).offset(0, 1000);
    repo.find_page(&query).await.expect("find_page").items
}

/// Panics unless `e` is a duplicate conflict on `field`.
pub(super) fn assert_duplicate(e: &RepoError, field: &str) {
    match e {
        RepoError::Conflict { kind: ConflictKind::Duplicate { field: got }, .. } => {
            assert_eq!(got, field, "the duplicate names the unique field");
        }
        other => panic!("expected a duplicate conflict on `{field}`, got {other:?}"),
    }
}

/// Panics unless `e` is a validation error naming `field`.
pub(super) fn assert_validation(e: &RepoError, field: &str) {
    match e {
        RepoError::Validation(v) => assert_eq!(v.field, field, "the validation error names the field: {v:?}"),
        other => panic!("expected a validation error on `{field}`, got {other:?}"),
    }
}

/// The ids of rows, for comparing sets of rows.
pub(super) fn ids<T: Record>(rows: &[T]) -> Vec<String> {
    let mut ids: Vec<String> = rows.iter().map(|r| r.id().to_string()).collect();
    ids.sort();
    ids
}

/// A filter both `a` and `b` must hold.
pub(super) fn both<F>(a: Filter<F>, b: Filter<F>) -> Filter<F> {
    Filter::And(vec![a, b])
}
