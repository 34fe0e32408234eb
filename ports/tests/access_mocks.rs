//! The access-controlled views on a mock repository, with rows of two tenants (Ada's and Bob's transactions):
//! what they forward to the inner repository, and what they never forward. A call the test did not expect makes
//! the mock panic, so every `never()` below is checked twice.
#![cfg(feature = "mocks")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use cpc_domain::{
    Customer, Money, NewCustomer, NewTransaction, Transaction, TransactionId, TransactionKind, UpdateCustomer,
    UpdateTransaction, UserId, Version,
};
use cpc_ports::mocks::MockRepository;
use cpc_ports::{
    AccessExt, ConflictKind, CustomerField, Filter, Page, Query, Record, RepoError, Repository, Scope, Scoped,
    TransactionField, Value, ValueKind,
};

fn entry(user: UserId) -> NewTransaction {
    NewTransaction::new(user, Money::new(500, "EUR").unwrap(), TransactionKind::Credit, "", chrono::Utc::now()).unwrap()
}

fn row(user: UserId) -> Transaction {
    Transaction::build(TransactionId::new(), entry(user), chrono::Utc::now())
}

fn mine(ada: UserId) -> Filter<TransactionField> {
    Filter::Eq(TransactionField::UserId, Value::from(ada))
}

fn scoped(mock: MockRepository<Transaction>, ada: UserId) -> Arc<dyn Repository<Transaction>> {
    let inner: Arc<dyn Repository<Transaction>> = Arc::new(mock);
    inner.scoped(TransactionField::UserId, ada).unwrap()
}

fn assert_forbidden<T: std::fmt::Debug>(result: Result<T, RepoError>, operation: &str) {
    match result {
        Err(RepoError::Forbidden { entity, operation: op, reason }) => {
            assert_eq!((entity, op), (Transaction::ENTITY, operation));
            assert!(reason.contains("user_id"), "the reason names the field: {reason}");
        }
        other => panic!("expected Forbidden on {operation}, got {other:?}"),
    }
}

#[tokio::test]
async fn a_scoped_create_of_another_tenants_row_never_reaches_the_inner_repository() {
    let (ada, bob) = (UserId::new(), UserId::new());
    let mut mock = MockRepository::<Transaction>::new();
    mock.expect_create().never();
    mock.expect_create_many().never();
    let view = scoped(mock, ada);
    assert_forbidden(view.create(entry(bob)).await, "create");
    // One outsider in a batch refuses the whole batch.
    assert_forbidden(view.create_many(vec![entry(ada), entry(bob), entry(ada)]).await, "create_many");
}

#[tokio::test]
async fn a_scoped_create_in_the_scope_is_forwarded_once() {
    let ada = UserId::new();
    let mut mock = MockRepository::<Transaction>::new();
    mock.expect_create()
        .withf(move |new| new.user_id == ada)
        .times(1)
        .returning(|new| Ok(Transaction::build(TransactionId::new(), new, chrono::Utc::now())));
    mock.expect_create_many().withf(|batch| batch.len() == 2).times(1).returning(|batch| {
        Ok(batch.into_iter().map(|new| Transaction::build(TransactionId::new(), new, chrono::Utc::now())).collect())
    });
    let view = scoped(mock, ada);
    assert_eq!(view.create(entry(ada)).await.unwrap().user_id, ada);
    assert_eq!(view.create_many(vec![entry(ada), entry(ada)]).await.unwrap().len(), 2);
}

#[tokio::test]
async fn every_find_page_and_count_carries_the_scope_condition() {
    let ada = UserId::new();
    let theirs = Filter::Eq(TransactionField::Currency, Value::from("EUR"));
    let mut mock = MockRepository::<Transaction>::new();
    let expected = vec![theirs.clone(), mine(ada)];
    mock.expect_find_page()
        .withf(move |q| q.filters == expected && q.page.limit() == 7 && q.sort.len() == 1)
        .times(1)
        .returning(|_| Ok(Page { items: Vec::new(), total: Some(0), next_cursor: None }));
    let (with, alone) = (vec![theirs.clone(), mine(ada)], vec![mine(ada)]);
    mock.expect_count().withf(move |f| f == with.as_slice()).times(1).returning(|_| Ok(3));
    mock.expect_count().withf(move |f| f == alone.as_slice()).times(1).returning(|_| Ok(5));
    let view = scoped(mock, ada);

    let mut query = Query::new().eq(TransactionField::Currency, "EUR").desc(TransactionField::OccurredAt);
    query.page = cpc_ports::PageRequest::Offset { offset: 0, limit: 7 };
    assert_eq!(view.find_page(&query).await.unwrap().total, Some(0));
    assert_eq!(view.count(std::slice::from_ref(&theirs)).await.unwrap(), 3);
    assert_eq!(view.count(&[]).await.unwrap(), 5, "no filters still means the scope's rows only");
}

#[tokio::test]
async fn another_tenants_row_looks_absent_and_is_never_updated_or_deleted() {
    let (ada, bob) = (UserId::new(), UserId::new());
    let bobs = row(bob);
    let mut mock = MockRepository::<Transaction>::new();
    let found = bobs.clone();
    mock.expect_find_by_id().returning(move |_| Ok(Some(found.clone())));
    mock.expect_update().never();
    mock.expect_delete().never();
    mock.expect_exists().never();
    let view = scoped(mock, ada);

    assert_eq!(view.find_by_id(&bobs.id).await.unwrap(), None);
    assert!(!view.exists(&bobs.id).await.unwrap());
    let update = view.update(&bobs.id, Version::FIRST, UpdateTransaction::description("mine now").unwrap()).await;
    assert!(matches!(update, Err(RepoError::NotFound { entity: "transaction", .. })), "{update:?}");
    assert!(!view.delete(&bobs.id).await.unwrap(), "as if absent");
}

#[tokio::test]
async fn own_rows_are_updated_and_deleted_through_the_inner_repository() {
    let ada = UserId::new();
    let adas = row(ada);
    let mut mock = MockRepository::<Transaction>::new();
    let found = adas.clone();
    mock.expect_find_by_id().returning(move |_| Ok(Some(found.clone())));
    let id = adas.id;
    let updated = adas.clone();
    mock.expect_update().withf(move |i, v, _| *i == id && *v == Version::FIRST).times(1).returning(move |_, _, c| {
        let mut row = updated.clone();
        row.apply(c);
        Ok(row)
    });
    mock.expect_delete().withf(move |i| *i == id).times(1).returning(|_| Ok(true));
    let view = scoped(mock, ada);

    assert_eq!(view.find_by_id(&adas.id).await.unwrap(), Some(adas.clone()));
    assert!(view.exists(&adas.id).await.unwrap());
    let changed = view.update(&adas.id, Version::FIRST, UpdateTransaction::description("rent").unwrap()).await;
    assert_eq!(changed.unwrap().description, "rent");
    assert!(view.delete(&adas.id).await.unwrap());
}

#[tokio::test]
async fn a_stale_version_is_refused_before_the_check_so_the_check_and_the_write_see_one_row() {
    let ada = UserId::new();
    let mut adas = row(ada);
    adas.version = Version::new(3);
    let mut mock = MockRepository::<Transaction>::new();
    let found = adas.clone();
    mock.expect_find_by_id().returning(move |_| Ok(Some(found.clone())));
    mock.expect_update().never();
    let view = scoped(mock, ada);
    let result = view.update(&adas.id, Version::new(2), UpdateTransaction::description("x").unwrap()).await;
    match result {
        Err(RepoError::Conflict { kind: ConflictKind::StaleVersion { expected, actual }, .. }) => {
            assert_eq!((expected, actual), (Version::new(2), Version::new(3)));
        }
        other => panic!("expected a stale version, got {other:?}"),
    }
}

#[tokio::test]
async fn an_update_moving_a_row_out_of_the_scope_is_forbidden_and_never_forwarded() {
    let acme = Customer::build(
        cpc_domain::CustomerId::new(),
        NewCustomer::new("a@acme.example", "acme", None).unwrap(),
        chrono::Utc::now(),
    );
    let mut mock = MockRepository::<Customer>::new();
    let found = acme.clone();
    mock.expect_find_by_id().returning(move |_| Ok(Some(found.clone())));
    mock.expect_update().never();
    let inner: Arc<dyn Repository<Customer>> = Arc::new(mock);
    let view = inner.scoped(CustomerField::Name, "acme").unwrap();
    match view.update(&acme.id, Version::FIRST, UpdateCustomer::name("globex").unwrap()).await {
        Err(RepoError::Forbidden { entity: "customer", operation: "update", reason }) => {
            assert!(reason.contains("`name`"), "{reason}");
        }
        other => panic!("expected Forbidden, got {other:?}"),
    }
}

#[tokio::test]
async fn a_read_only_view_forwards_reads_and_never_writes() {
    let ada = UserId::new();
    let adas = row(ada);
    let mut mock = MockRepository::<Transaction>::new();
    mock.expect_create().never();
    mock.expect_create_many().never();
    mock.expect_update().never();
    mock.expect_delete().never();
    let found = adas.clone();
    mock.expect_find_by_id().times(1).returning(move |_| Ok(Some(found.clone())));
    mock.expect_exists().times(1).returning(|_| Ok(true));
    mock.expect_count().withf(|f| f.is_empty()).times(1).returning(|_| Ok(1));
    let listed = adas.clone();
    mock.expect_find_page()
        .withf(|q| q.filters.is_empty())
        .times(1)
        .returning(move |_| Ok(Page { items: vec![listed.clone()], total: Some(1), next_cursor: None }));
    let inner: Arc<dyn Repository<Transaction>> = Arc::new(mock);
    let view = inner.read_only();

    assert_eq!(view.find_by_id(&adas.id).await.unwrap(), Some(adas.clone()));
    assert!(view.exists(&adas.id).await.unwrap());
    assert_eq!(view.count(&[]).await.unwrap(), 1);
    assert_eq!(view.find_page(&Query::new()).await.unwrap().items, vec![adas.clone()]);
    for (operation, result) in [
        ("create", view.create(entry(ada)).await.map(drop)),
        ("create_many", view.create_many(vec![entry(ada)]).await.map(drop)),
        ("update", view.update(&adas.id, Version::FIRST, UpdateTransaction::default()).await.map(drop)),
        ("delete", view.delete(&adas.id).await.map(drop)),
    ] {
        match result {
            Err(RepoError::Forbidden { entity: "transaction", operation: op, reason }) => {
                assert_eq!(op, operation);
                assert!(reason.contains("read-only"), "{reason}");
            }
            other => panic!("expected Forbidden on {operation}, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn views_compose_a_read_only_scoped_view_filters_and_refuses() {
    let ada = UserId::new();
    let mut mock = MockRepository::<Transaction>::new();
    mock.expect_create().never();
    let condition = vec![mine(ada)];
    mock.expect_count().withf(move |f| f == condition.as_slice()).times(1).returning(|_| Ok(2));
    let view = scoped(mock, ada).read_only();
    assert_eq!(view.count(&[]).await.unwrap(), 2);
    assert!(matches!(view.create(entry(ada)).await, Err(RepoError::Forbidden { .. })));
}

#[test]
fn a_scope_value_must_match_the_field_and_not_be_null() {
    let inner = || -> Arc<dyn Repository<Transaction>> { Arc::new(MockRepository::<Transaction>::new()) };
    let cases: [(Value, &str); 3] = [(Value::from("ada"), "kind"), (Value::Null, "NULL"), (Value::Int(7), "kind")];
    for (value, rule) in cases {
        match Scope::new(TransactionField::UserId, value.clone()) {
            Err(RepoError::Validation(e)) => {
                assert_eq!(e.field, "user_id", "{value:?}");
                assert!(e.rule.contains(rule), "{value:?}: {}", e.rule);
            }
            other => panic!("expected a validation error for {value:?}, got {other:?}"),
        }
    }
    let ada = UserId::new();
    let view = Scoped::new(inner(), Scope::new(TransactionField::UserId, ada).unwrap());
    assert_eq!((view.scope().field(), view.scope().value()), (TransactionField::UserId, &Value::from(ada)));
    assert_eq!(view.scope().value().kind(), ValueKind::Uuid);
}
