//! The access-control contract: what the [`ReadOnly`](cpc_ports::ReadOnly) and [`Scoped`](cpc_ports::Scoped)
//! views must do over every backend, as named cases on a [`DataPorts`] bundle, with rows of two tenants (two
//! users' ledger entries, or customers of two names). [`access_contract!`](crate::access_contract) runs them.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::sync::Arc;
//! use cpc_domain::{Money, NewTransaction, NewUser, Transaction, TransactionKind, UserId};
//! use cpc_ports::{AccessExt, RepoError, Repository, TransactionField};
//! use cpc_testkit::memory::InMemoryDatabase;
//!
//! let db = InMemoryDatabase::new();
//! let ada = db.users().create(NewUser::new("ada", "ada@example.org")?).await?;
//! let bob = db.users().create(NewUser::new("bob", "bob@example.org")?).await?;
//! let entry = |user: UserId| {
//!     NewTransaction::new(user, Money::new(500, "EUR").unwrap(), TransactionKind::Credit, "", chrono::Utc::now())
//! };
//! let all: Arc<dyn Repository<Transaction>> = Arc::new(db.transactions());
//! let bobs = all.create(entry(bob.id)?).await?;
//!
//! let adas = all.scoped(TransactionField::UserId, ada.id)?;
//! adas.create(entry(ada.id)?).await?;
//! assert_eq!(adas.count(&[]).await?, 1); // Ada's row only
//! assert_eq!(adas.find_by_id(&bobs.id).await?, None); // Bob's row looks absent
//! assert!(!adas.delete(&bobs.id).await?); // and cannot be deleted
//! let refused = adas.create(entry(bob.id)?).await;
//! assert!(matches!(refused, Err(RepoError::Forbidden { operation: "create", .. })));
//! assert_eq!(all.count(&[]).await?, 2); // nothing written
//!
//! let report = adas.read_only();
//! assert!(matches!(report.create(entry(ada.id)?).await, Err(RepoError::Forbidden { .. })));
//! # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
//! ```

use std::fmt::Debug;
use std::sync::Arc;

use cpc_domain::{NewCustomer, Transaction, UpdateCustomer, UpdateTransaction, UpdateUser, User};
use cpc_ports::{AccessExt, CustomerField, Filter, Query, RepoError, Repository, TransactionField, UserField, Value};

use super::repository::DataPorts;
use super::repository::fixtures::{Names, assert_stale, assert_validation, at_hour, entry};

/// Asserts a [`RepoError::Forbidden`] on `entity` for `operation`.
#[track_caller]
fn assert_forbidden<T: Debug>(result: Result<T, RepoError>, entity: &str, operation: &str, what: &str) {
    match result {
        Err(RepoError::Forbidden { entity: e, operation: o, .. }) if e == entity && o == operation => {}
        other => panic!("{what}: expected {operation} on {entity} to be forbidden, got {other:?}"),
    }
}

/// Two users (tenants) with three entries for Ada and two for Bob, written through the unscoped repository.
async fn two_tenants(ports: &DataPorts, case: &str) -> (User, User, Vec<Transaction>, Vec<Transaction>) {
    let names = Names::new(case);
    let ada = ports.users.create(names.user(1)).await.expect("create ada");
    let bob = ports.users.create(names.user(2)).await.expect("create bob");
    let adas = (0..3).map(|h| entry(ada.id, 100 + h, at_hour(h))).collect();
    let bobs = (0..2).map(|h| entry(bob.id, 200 + h, at_hour(h))).collect();
    let adas = ports.transactions.create_many(adas).await.expect("create ada's entries");
    let bobs = ports.transactions.create_many(bobs).await.expect("create bob's entries");
    (ada, bob, adas, bobs)
}

fn all_transactions(ports: &DataPorts) -> Arc<dyn Repository<Transaction>> {
    ports.transactions.clone()
}

fn of_user(user: &User) -> Filter<TransactionField> {
    Filter::Eq(TransactionField::UserId, user.id.into())
}

/// A scoped view reads only its tenant's rows: `count` and `find_page` (offset and keyset, with the caller's own
/// filters) add the scope; `find_by_id` and `exists` answer as if the other tenant's rows were absent.
pub async fn scoped_reads_see_only_their_tenant(ports: &DataPorts) {
    let (ada, bob, adas, bobs) = two_tenants(ports, "scoped_reads_see_only_their_tenant").await;
    let view = all_transactions(ports).scoped(TransactionField::UserId, ada.id).expect("scope");
    assert_eq!(view.count(&[]).await.expect("count"), 3, "Ada's three entries");
    assert_eq!(view.count(&[of_user(&bob)]).await.expect("count"), 0, "asking for Bob's gives nothing");
    let page = view.find_page(&Query::new().asc(TransactionField::AmountMinor).offset(0, 100)).await;
    let page = page.expect("find_page");
    assert_eq!(page.items, adas, "only Ada's rows, in order");
    assert_eq!(page.total, Some(3), "the total counts the scope only");
    let cheap = Query::new().range(TransactionField::AmountMinor, None, Some(Value::Int(202))).offset(0, 100);
    let cheap = view.find_page(&cheap).await.expect("find_page with a filter");
    assert_eq!(cheap.items, adas, "the caller's filter (which Bob's rows pass too) is ANDed with the scope");
    let mut walked = Vec::new();
    let mut cursor = None;
    loop {
        let page = view.find_page(&Query::new().after(cursor, 2)).await.expect("keyset page");
        walked.extend(page.items);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(walked.len(), 3, "keyset paging walks Ada's rows only: {walked:?}");
    assert!(walked.iter().all(|t| t.user_id == ada.id), "keyset paging stays in the scope");
    assert_eq!(view.find_by_id(&adas[0].id).await.expect("find own"), Some(adas[0].clone()), "own row found");
    assert!(view.exists(&adas[0].id).await.expect("exists own"), "own row exists");
    assert_eq!(view.find_by_id(&bobs[0].id).await.expect("find other"), None, "Bob's row looks absent");
    assert!(!view.exists(&bobs[0].id).await.expect("exists other"), "Bob's row does not exist in the view");
}

/// A scoped view refuses to create a row outside its scope with `Forbidden`, alone or in a batch (the whole
/// batch is refused, nothing is written), and creates rows inside it.
pub async fn scoped_creates_outside_the_scope_are_forbidden_and_write_nothing(ports: &DataPorts) {
    let (ada, bob, _, _) = two_tenants(ports, "scoped_creates_outside_the_scope_are_forbidden_and_write_nothing").await;
    let all = all_transactions(ports);
    let view = all.scoped(TransactionField::UserId, ada.id).expect("scope");
    let refused = view.create(entry(bob.id, 1, at_hour(9))).await;
    assert_forbidden(refused, "transaction", "create", "a row for Bob");
    let batch = vec![entry(ada.id, 1, at_hour(9)), entry(bob.id, 2, at_hour(9))];
    assert_forbidden(view.create_many(batch).await, "transaction", "create_many", "a batch with a row for Bob");
    assert_eq!(all.count(&[of_user(&ada)]).await.expect("count"), 3, "the batch wrote nothing for Ada");
    assert_eq!(all.count(&[of_user(&bob)]).await.expect("count"), 2, "nothing was written for Bob");
    let own = view.create(entry(ada.id, 7, at_hour(9))).await.expect("create own");
    assert_eq!(own.user_id, ada.id);
    let many = view.create_many(vec![entry(ada.id, 8, at_hour(9)), entry(ada.id, 9, at_hour(9))]).await;
    assert_eq!(many.expect("create_many own").len(), 2);
    assert_eq!(view.count(&[]).await.expect("count"), 6, "three more for Ada");
    assert_eq!(all.count(&[of_user(&bob)]).await.expect("count"), 2, "still two for Bob");
}

/// A scoped view updates and deletes only its tenant's rows: another tenant's row is `NotFound` for `update` and
/// `Ok(false)` for `delete`, and stays unchanged.
pub async fn scoped_updates_and_deletes_only_touch_their_tenant(ports: &DataPorts) {
    let (ada, _bob, adas, bobs) = two_tenants(ports, "scoped_updates_and_deletes_only_touch_their_tenant").await;
    let all = all_transactions(ports);
    let view = all.scoped(TransactionField::UserId, ada.id).expect("scope");
    let change = UpdateTransaction::description("changed").expect("valid description");
    match view.update(&bobs[0].id, bobs[0].version, change.clone()).await {
        Err(RepoError::NotFound { entity: "transaction", .. }) => {}
        other => panic!("updating Bob's row through Ada's view: expected NotFound, got {other:?}"),
    }
    assert!(!view.delete(&bobs[1].id).await.expect("delete other"), "Bob's row is not deleted");
    assert_eq!(all.find_by_id(&bobs[0].id).await.expect("find"), Some(bobs[0].clone()), "Bob's row unchanged");
    assert!(all.exists(&bobs[1].id).await.expect("exists"), "Bob's other row still there");
    let updated = view.update(&adas[0].id, adas[0].version, change).await.expect("update own");
    assert_eq!((updated.description.as_str(), updated.version), ("changed", adas[0].version.next()));
    let stale = view.update(&adas[0].id, adas[0].version, UpdateTransaction::default()).await;
    assert_stale(stale, "transaction", adas[0].version, adas[0].version.next(), "a stale update in the scope");
    assert!(view.delete(&adas[1].id).await.expect("delete own"), "own row deleted");
    assert!(!all.exists(&adas[1].id).await.expect("exists"), "and gone");
}

/// An update that would move a row out of a scoped view's scope is `Forbidden` and changes nothing; one that
/// keeps it inside goes through. (Customers scoped by name: two names are two tenants.)
pub async fn scoped_update_cannot_move_a_row_out_of_the_scope(ports: &DataPorts) {
    let names = Names::new("scoped_update_cannot_move_a_row_out_of_the_scope");
    let (tenant_a, tenant_b) = (format!("{}-a", names.tag()), format!("{}-b", names.tag()));
    let all: Arc<dyn Repository<cpc_domain::Customer>> = ports.customers.clone();
    let view = all.scoped(CustomerField::Name, tenant_a.as_str()).expect("scope");
    let mine = view.create(names.customer(1, &tenant_a)).await.expect("create in scope");
    let theirs = all.create(names.customer(2, &tenant_b)).await.expect("create outside");
    let away = view.update(&mine.id, mine.version, UpdateCustomer::name(&tenant_b).expect("valid name")).await;
    assert_forbidden(away, "customer", "update", "renaming out of the scope");
    assert_eq!(all.find_by_id(&mine.id).await.expect("find"), Some(mine.clone()), "unchanged");
    let phone = UpdateCustomer { phone: Some(Some("+1 555 0100".to_owned())), ..UpdateCustomer::default() };
    let kept = view.update(&mine.id, mine.version, phone).await.expect("an update inside the scope");
    assert_eq!((kept.name.as_str(), kept.version), (tenant_a.as_str(), mine.version.next()));
    let back = UpdateCustomer::name(&tenant_a).expect("valid name");
    match view.update(&theirs.id, theirs.version, back).await {
        Err(RepoError::NotFound { entity: "customer", .. }) => {}
        other => panic!("renaming a row of the other tenant into the scope: expected NotFound, got {other:?}"),
    }
    let other = NewCustomer::new(&names.email(3), &tenant_b, None).expect("valid customer");
    assert_forbidden(view.create(other).await, "customer", "create", "a customer of the other name");
    assert_eq!(all.count(&[Filter::Eq(CustomerField::Name, tenant_b.as_str().into())]).await.expect("count"), 1);
}

/// A read-only view refuses every write with `Forbidden` (nothing changes) and reads exactly what the
/// repository it wraps reads; over a scoped view it reads the scope only.
pub async fn read_only_refuses_every_write_and_reads_through(ports: &DataPorts) {
    let names = Names::new("read_only_refuses_every_write_and_reads_through");
    let all: Arc<dyn Repository<User>> = ports.users.clone();
    let ada = all.create(names.user(1)).await.expect("create");
    let view = all.read_only();
    assert_forbidden(view.create(names.user(2)).await, "user", "create", "create");
    assert_forbidden(view.create_many(vec![names.user(3)]).await, "user", "create_many", "create_many");
    let rename =
        UpdateUser { username: Some(cpc_domain::Username::parse(&names.username(4)).expect("valid")), email: None };
    assert_forbidden(view.update(&ada.id, ada.version, rename).await, "user", "update", "update");
    assert_forbidden(view.delete(&ada.id).await, "user", "delete", "delete");
    let mine = [names.users()];
    assert_eq!(all.count(&mine).await.expect("count"), 1, "nothing was created");
    assert_eq!(all.find_by_id(&ada.id).await.expect("find"), Some(ada.clone()), "nothing was changed");
    assert_eq!(view.find_by_id(&ada.id).await.expect("read"), Some(ada.clone()), "reads go through");
    assert!(view.exists(&ada.id).await.expect("exists"));
    assert_eq!(view.count(&mine).await.expect("count"), 1);
    let page = view.find_page(&Query::new().filter(names.users())).await.expect("find_page");
    assert_eq!(page.items, vec![ada.clone()]);

    let (tenant, _bob, adas, bobs) = two_tenants(ports, "read_only_over_a_scoped_view").await;
    let scoped = all_transactions(ports).scoped(TransactionField::UserId, tenant.id).expect("scope").read_only();
    assert_eq!(scoped.count(&[]).await.expect("count"), 3, "the scope still applies");
    assert_eq!(scoped.find_by_id(&bobs[0].id).await.expect("find"), None);
    assert_forbidden(scoped.delete(&adas[0].id).await, "transaction", "delete", "delete through both views");
}

/// A scoped view of a repository inside a unit of work behaves the same, and its writes belong to the unit:
/// rolled back with it, kept by its commit.
pub async fn scoped_views_work_inside_a_unit_of_work(ports: &DataPorts) {
    let (ada, bob, _, bobs) = two_tenants(ports, "scoped_views_work_inside_a_unit_of_work").await;
    let all = all_transactions(ports);
    for commit in [false, true] {
        let tx = ports.uow.begin().await.expect("begin");
        let in_tx: Arc<dyn Repository<Transaction>> = tx.transactions();
        let view = in_tx.scoped(TransactionField::UserId, ada.id).expect("scope");
        let own = view.create(entry(ada.id, 42, at_hour(20))).await.expect("create own in the unit");
        assert_forbidden(view.create(entry(bob.id, 1, at_hour(20))).await, "transaction", "create", "Bob's row");
        assert_eq!(view.count(&[]).await.expect("count"), 4, "the unit sees its own write, in the scope");
        assert_eq!(view.find_by_id(&bobs[0].id).await.expect("find"), None, "Bob's row looks absent");
        assert!(!view.delete(&bobs[0].id).await.expect("delete"), "and cannot be deleted");
        if commit {
            tx.commit().await.expect("commit");
            assert_eq!(all.find_by_id(&own.id).await.expect("find"), Some(own), "committed");
        } else {
            tx.rollback().await.expect("rollback");
            assert!(!all.exists(&own.id).await.expect("exists"), "rolled back");
        }
    }
    assert_eq!(all.count(&[of_user(&ada)]).await.expect("count"), 4, "three, and the committed one");
    assert_eq!(all.count(&[of_user(&bob)]).await.expect("count"), 2, "Bob's rows untouched");
}

/// A scope whose value is `NULL` or of another kind than its field is a validation error naming the field.
pub async fn invalid_scopes_are_validation_errors_naming_the_field(ports: &DataPorts) {
    let all = all_transactions(ports);
    assert_validation(all.scoped(TransactionField::UserId, "ada").map(drop), "user_id", "text for a UUID field");
    assert_validation(all.scoped(TransactionField::AmountMinor, Value::Null).map(drop), "amount_minor", "NULL");
    let users: Arc<dyn Repository<User>> = ports.users.clone();
    assert_validation(users.scoped(UserField::CreatedAt, 5_i64).map(drop), "created_at", "an integer for a time");
}

/// Defines `CASES` and `all()` for the cases above, as the other data-port suites have them.
macro_rules! access_cases {
    ($($case:ident),+ $(,)?) => {
        /// The name of every case, for checking that a suite macro runs them all.
        #[doc(hidden)]
        pub const CASES: &[&str] = &[$(stringify!($case)),+];

        /// Every case with its name, to run them all in one test.
        pub fn all() -> Vec<(&'static str, $crate::contract::repository::Case)> {
            vec![$((stringify!($case), (|ports| Box::pin($case(ports))) as $crate::contract::repository::Case)),+]
        }
    };
}

access_cases!(
    scoped_reads_see_only_their_tenant,
    scoped_creates_outside_the_scope_are_forbidden_and_write_nothing,
    scoped_updates_and_deletes_only_touch_their_tenant,
    scoped_update_cannot_move_a_row_out_of_the_scope,
    read_only_refuses_every_write_and_reads_through,
    scoped_views_work_inside_a_unit_of_work,
    invalid_scopes_are_validation_errors_naming_the_field,
);

/// Runs the access-control contract: one `#[tokio::test]` per case, named after it. `$factory` is an async
/// expression yielding something that derefs to a [`DataPorts`] (e.g. `Arc<DataPorts>`), evaluated per case.
#[macro_export]
macro_rules! access_contract {
    ($factory:expr) => {
        $crate::__data_contract_cases!(
            $crate::contract::access,
            access_contract_runs_every_case,
            $factory,
            [
                scoped_reads_see_only_their_tenant,
                scoped_creates_outside_the_scope_are_forbidden_and_write_nothing,
                scoped_updates_and_deletes_only_touch_their_tenant,
                scoped_update_cannot_move_a_row_out_of_the_scope,
                read_only_refuses_every_write_and_reads_through,
                scoped_views_work_inside_a_unit_of_work,
                invalid_scopes_are_validation_errors_naming_the_field,
            ]
        );
    };
}
