//! The unit-of-work cases of the record contract: the app's record written through
//! [`TxExt::repo`], generic over a [`RecordFixture`].

use cpc_domain::{NewUser, User};
use cpc_ports::{Record, RecordStore, RecordStoreExt, RepoError, TxExt};

use super::RecordFixture;
use super::support::{count_scope, setup, tag};

/// Rows written in a unit are invisible outside until it commits, then visible.
pub async fn committed_rows_are_visible<F: RecordFixture>(fixture: &F, store: &dyn RecordStore) {
    let (ctx, repo) = setup(fixture, store).await;
    let tx = store.unit_of_work().begin().await.expect("begin");
    let row = tx.repo::<F::Record>().expect("repo in tx").create(fixture.new_row(&ctx, 1)).await.expect("create");
    assert!(tx.repo::<F::Record>().expect("repo").exists(row.id()).await.expect("exists"), "seen inside");
    assert!(!repo.exists(row.id()).await.expect("exists"), "invisible outside before commit");
    tx.commit().await.expect("commit");
    assert!(repo.exists(row.id()).await.expect("exists"), "visible after commit");
    assert_eq!(count_scope(fixture, &ctx, &*repo).await, 1);
}

/// Rows written in a unit that rolls back are gone.
pub async fn rolled_back_rows_are_gone<F: RecordFixture>(fixture: &F, store: &dyn RecordStore) {
    let (ctx, repo) = setup(fixture, store).await;
    let tx = store.unit_of_work().begin().await.expect("begin");
    let in_tx = tx.repo::<F::Record>().expect("repo");
    let made = in_tx.create_many(vec![fixture.new_row(&ctx, 1), fixture.new_row(&ctx, 2)]).await.expect("create_many");
    drop(in_tx);
    tx.rollback().await.expect("rollback");
    for row in &made {
        assert!(!repo.exists(row.id()).await.expect("exists"), "a rolled-back row is gone");
    }
    assert_eq!(count_scope(fixture, &ctx, &*repo).await, 0);
}

/// A unit dropped without commit rolls back.
pub async fn a_dropped_unit_rolls_back<F: RecordFixture>(fixture: &F, store: &dyn RecordStore) {
    let (ctx, repo) = setup(fixture, store).await;
    let id = {
        let tx = store.unit_of_work().begin().await.expect("begin");
        let row = tx.repo::<F::Record>().expect("repo").create(fixture.new_row(&ctx, 1)).await.expect("create");
        row.id().clone()
    };
    assert!(!repo.exists(&id).await.expect("exists"), "a dropped unit keeps nothing");
    // The store is still usable afterwards.
    repo.create(fixture.new_row(&ctx, 2)).await.expect("create after the drop");
    assert_eq!(count_scope(fixture, &ctx, &*repo).await, 1);
}

/// A savepoint rolled back undoes only its own rows; the enclosing unit's rows commit.
pub async fn a_rolled_back_savepoint_undoes_only_its_rows<F: RecordFixture>(fixture: &F, store: &dyn RecordStore) {
    let (ctx, repo) = setup(fixture, store).await;
    let tx = store.unit_of_work().begin().await.expect("begin");
    let outer = tx.repo::<F::Record>().expect("repo").create(fixture.new_row(&ctx, 1)).await.expect("create");
    let inner_tx = tx.savepoint().await.expect("savepoint");
    let inner = inner_tx.repo::<F::Record>().expect("repo").create(fixture.new_row(&ctx, 2)).await.expect("create");
    inner_tx.rollback().await.expect("rollback to the savepoint");
    let in_tx = tx.repo::<F::Record>().expect("repo");
    assert!(in_tx.exists(outer.id()).await.expect("exists"), "the outer row is kept");
    assert!(!in_tx.exists(inner.id()).await.expect("exists"), "the savepoint's row is undone");
    tx.commit().await.expect("commit");
    assert!(repo.exists(outer.id()).await.expect("exists"));
    assert!(!repo.exists(inner.id()).await.expect("exists"));
    assert_eq!(count_scope(fixture, &ctx, &*repo).await, 1);
}

/// An app row and a built-in user written in one unit roll back together and commit together.
pub async fn an_app_row_and_a_user_commit_and_roll_back_together<F: RecordFixture>(
    fixture: &F,
    store: &dyn RecordStore,
) {
    let (ctx, repo) = setup(fixture, store).await;
    let users = store.repo::<User>().expect("users are always registered");
    let ctx = &ctx;
    let both = |n: u32| async move {
        let tx = store.unit_of_work().begin().await?;
        let name = tag();
        let user = tx.repo::<User>()?.create(NewUser::new(&name, &format!("{name}@example.org"))?).await?;
        let row = tx.repo::<F::Record>()?.create(fixture.new_row(ctx, n)).await?;
        Ok::<_, RepoError>((tx, user, row))
    };
    let (tx, user, row) = both(1).await.expect("write both");
    tx.rollback().await.expect("rollback");
    assert!(!users.exists(&user.id).await.expect("exists"), "the user is rolled back");
    assert!(!repo.exists(row.id()).await.expect("exists"), "the app row is rolled back");
    let (tx, user, row) = both(2).await.expect("write both");
    tx.commit().await.expect("commit");
    assert!(users.exists(&user.id).await.expect("exists"), "the user is committed");
    assert!(repo.exists(row.id()).await.expect("exists"), "the app row is committed");
    assert_eq!(count_scope(fixture, ctx, &*repo).await, 1);
}
