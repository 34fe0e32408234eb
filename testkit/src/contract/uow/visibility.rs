//! Cases on what a unit of work's writes look like from inside and outside: before and after commit, rollback
//! and drop.

use cpc_domain::{Email, UpdateUser, User, UserId, Username, Version};
use cpc_ports::{
    Query, RepoError, TimeRange, TransactionRepository, UnitOfWork, UnitOfWorkExt, UserField, UserRepository,
};

use crate::contract::repository::fixtures::{Names, at_hour, entry};

async fn absent<U: UserRepository + ?Sized>(users: &U, id: &UserId, what: &str) {
    assert_eq!(users.find_by_id(id).await.expect("find"), None, "{what}");
}

/// What `run` commits is visible to everyone afterwards, and `run` returns the closure's value.
pub async fn committed_writes_are_visible<W, U, X>(uow: &W, users: &U, transactions: &X)
where
    W: UnitOfWork + ?Sized,
    U: UserRepository + ?Sized,
    X: TransactionRepository + ?Sized,
{
    let names = Names::new("committed_writes_are_visible");
    let new = names.user(1);
    let user: User = uow
        .run(|tx| {
            Box::pin(async move {
                let user = tx.users().create(new).await?;
                let repo = tx.transactions();
                repo.create(entry(user.id, 100, at_hour(0))).await?;
                repo.create(entry(user.id, 200, at_hour(1))).await?;
                Ok::<_, RepoError>(user)
            })
        })
        .await
        .expect("run");
    assert_eq!(users.find_by_id(&user.id).await.expect("find"), Some(user.clone()), "the user is committed");
    let range = TimeRange::new(at_hour(0), at_hour(2)).expect("range");
    let history = transactions.history(&user.id, range, Default::default()).await.expect("history");
    assert_eq!(history.total, Some(2), "both transactions are committed");
}

/// After `rollback`, none of the unit's writes exist, and its unique values are free.
pub async fn rolled_back_writes_are_gone<W, U, X>(uow: &W, users: &U, transactions: &X)
where
    W: UnitOfWork + ?Sized,
    U: UserRepository + ?Sized,
    X: TransactionRepository + ?Sized,
{
    let names = Names::new("rolled_back_writes_are_gone");
    let tx = uow.begin().await.expect("begin");
    let user = tx.users().create(names.user(1)).await.expect("create in tx");
    let t = tx.transactions().create(entry(user.id, 100, at_hour(0))).await.expect("create transaction in tx");
    tx.rollback().await.expect("rollback");
    absent(users, &user.id, "the user was rolled back").await;
    assert!(!transactions.exists(&t.id).await.expect("exists"), "the transaction was rolled back");
    users.create(names.user(1)).await.expect("its username and e-mail are free again");
}

/// Dropping an unfinished `Tx` rolls it back: its writes are gone and repositories it handed out fail with
/// `TransactionFinished`.
pub async fn a_dropped_transaction_rolls_back<W, U, X>(uow: &W, users: &U, _transactions: &X)
where
    W: UnitOfWork + ?Sized,
    U: UserRepository + ?Sized,
    X: TransactionRepository + ?Sized,
{
    let names = Names::new("a_dropped_transaction_rolls_back");
    let tx = uow.begin().await.expect("begin");
    let kept = tx.users();
    let user = kept.create(names.user(1)).await.expect("create in tx");
    drop(tx);
    absent(users, &user.id, "the dropped transaction's user").await;
    let late = kept.find_by_id(&user.id).await;
    assert!(matches!(late, Err(RepoError::TransactionFinished)), "a repository of a dropped Tx: got {late:?}");
    users.create(names.user(1)).await.expect("its username and e-mail are free again");
}

/// Until commit, nobody outside sees a unit's creates, updates or deletes; after it, everyone sees all of them.
pub async fn writes_are_invisible_outside_before_commit<W, U, X>(uow: &W, users: &U, transactions: &X)
where
    W: UnitOfWork + ?Sized,
    U: UserRepository + ?Sized,
    X: TransactionRepository + ?Sized,
{
    let names = Names::new("writes_are_invisible_outside_before_commit");
    let kept = users.create(names.user(1)).await.expect("create");
    let doomed = users.create(names.user(2)).await.expect("create");
    let tx = uow.begin().await.expect("begin");
    let new = tx.users().create(names.user(3)).await.expect("create in tx");
    let rename = UpdateUser { username: Some(Username::parse(&names.username(4)).expect("name")), email: None };
    tx.users().update(&kept.id, Version::FIRST, rename).await.expect("update in tx");
    assert!(tx.users().delete(&doomed.id).await.expect("delete in tx"), "deleted in tx");
    let t = tx.transactions().create(entry(new.id, 100, at_hour(0))).await.expect("transaction in tx");

    absent(users, &new.id, "a create is invisible before commit").await;
    assert_eq!(users.find_by_id(&kept.id).await.expect("find"), Some(kept.clone()), "an update is invisible");
    assert!(users.exists(&doomed.id).await.expect("exists"), "a delete is invisible");
    assert!(!transactions.exists(&t.id).await.expect("exists"), "the transaction is invisible");
    assert_eq!(users.count(&[names.users()]).await.expect("count"), 2, "counts see the committed rows only");

    tx.commit().await.expect("commit");
    assert!(users.exists(&new.id).await.expect("exists"), "the create is visible");
    let after = users.find_by_id(&kept.id).await.expect("find").expect("kept");
    assert_eq!((after.username.as_str(), after.version), (names.username(4).as_str(), Version::new(2)), "update");
    assert!(!users.exists(&doomed.id).await.expect("exists"), "the delete is visible");
    assert!(transactions.exists(&t.id).await.expect("exists"), "the transaction is visible");
}

/// Inside a unit, every read sees the unit's own writes: lookups, counts, pages, updates, references, deletes.
pub async fn a_transaction_sees_its_own_writes<W, U, X>(uow: &W, users: &U, _transactions: &X)
where
    W: UnitOfWork + ?Sized,
    U: UserRepository + ?Sized,
    X: TransactionRepository + ?Sized,
{
    let names = Names::new("a_transaction_sees_its_own_writes");
    let committed = users.create(names.user(1)).await.expect("create outside");
    let tx = uow.begin().await.expect("begin");
    let (tx_users, tx_transactions) = (tx.users(), tx.transactions());
    let user = tx_users.create(names.user(2)).await.expect("create in tx");
    assert_eq!(tx_users.find_by_id(&user.id).await.expect("find"), Some(user.clone()), "by id");
    let email = Email::parse(&names.email(2).to_uppercase()).expect("email");
    assert_eq!(tx_users.find_by_email(&email).await.expect("find").map(|u| u.id), Some(user.id), "by e-mail");
    assert_eq!(tx_users.count(&[names.users()]).await.expect("count"), 2, "committed row plus own row");
    let page = tx_users.find_page(&Query::new().prefix(UserField::Username, names.tag())).await.expect("page");
    assert_eq!(page.total, Some(2), "pages see both");
    assert!(tx_users.exists(&committed.id).await.expect("exists"), "committed rows are visible inside");
    let updated = tx_users.update(&user.id, Version::FIRST, UpdateUser::default()).await.expect("update own row");
    assert_eq!(updated.version, Version::new(2), "own row's version");
    let t = tx_transactions.create(entry(user.id, 100, at_hour(0))).await.expect("references see own rows");
    assert!(tx_transactions.delete(&t.id).await.expect("delete own transaction"), "own transaction deleted");
    assert!(tx_users.delete(&user.id).await.expect("delete own row"), "own row deleted");
    assert!(!tx_users.exists(&user.id).await.expect("exists"), "own delete visible");
    tx.commit().await.expect("commit");
    absent(users, &user.id, "created and deleted in the same unit: gone").await;
}

/// A unit may delete a user and create another with the same e-mail; after commit the new one holds it.
pub async fn a_transaction_can_free_and_retake_a_unique_email<W, U, X>(uow: &W, users: &U, _transactions: &X)
where
    W: UnitOfWork + ?Sized,
    U: UserRepository + ?Sized,
    X: TransactionRepository + ?Sized,
{
    let names = Names::new("a_transaction_can_free_and_retake_a_unique_email");
    let old = users.create(names.user(1)).await.expect("create");
    let successor = cpc_domain::NewUser::new(&names.username(2), &names.email(1)).expect("user");
    let new = uow
        .run(|tx| {
            Box::pin(async move {
                tx.users().delete(&old.id).await?;
                tx.users().create(successor).await
            })
        })
        .await
        .expect("run");
    let email = Email::parse(&names.email(1)).expect("email");
    assert_eq!(users.find_by_email(&email).await.expect("find"), Some(new), "the successor holds the e-mail");
}
