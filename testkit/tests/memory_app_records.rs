//! The in-memory fake keeps an app's own records by their declarations, as the databases do: unique keys,
//! references (`ON DELETE RESTRICT`, nullable ones, a record referring to itself), versions or last-write-wins,
//! keys the database assigns, filters and paging, and units of work spanning app and built-in records.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::app_records::{NewProject, NewTask, Project, ProjectChanges, ProjectField, Task, TaskChanges, TaskField};
use cpc_domain::{NewUser, Version};
use cpc_ports::{
    ConflictKind, Filter, Query, RecordStore, RecordStoreExt, RepoError, Repository, TxExt, UnitOfWorkExt, Value,
};
use cpc_testkit::memory::InMemoryDatabase;
use uuid::Uuid;

fn db() -> InMemoryDatabase {
    let db = InMemoryDatabase::new();
    db.register::<Project>().register::<Task>();
    db
}

async fn owner(db: &InMemoryDatabase, name: &str) -> Uuid {
    let user = db.users().create(NewUser::new(name, &format!("{name}@example.org")).unwrap()).await.unwrap();
    *user.id.as_uuid()
}

fn project(owner_id: Uuid, name: &str) -> NewProject {
    NewProject { owner_id, name: name.to_owned(), budget: None }
}

fn task(project_id: Uuid, parent_id: Option<i64>, title: &str) -> NewTask {
    NewTask { project_id, parent_id, title: title.to_owned() }
}

fn field_of(e: &RepoError) -> &str {
    match e {
        RepoError::Validation(v) => &v.field,
        other => panic!("expected a validation error, got {other:?}"),
    }
}

#[tokio::test]
async fn an_unregistered_record_is_a_validation_error_naming_it_and_registering_twice_is_harmless() {
    let db = InMemoryDatabase::new();
    let err = db.repo::<Project>().err().expect("not registered yet");
    assert!(err.to_string().contains("project"), "{err}");
    assert!(db.repository(std::any::TypeId::of::<Project>()).is_none());
    db.register::<Project>().register::<Project>();
    let projects = db.repo::<Project>().unwrap();
    let ada = owner(&db, "ada").await;
    projects.create(project(ada, "apollo")).await.unwrap();
    db.register::<Project>();
    assert_eq!(projects.count(&[]).await.unwrap(), 1, "registering again keeps the rows");
}

#[tokio::test]
async fn versioned_records_get_create_update_and_stale_version_refusals() {
    let db = db();
    let projects = db.repo::<Project>().unwrap();
    let ada = owner(&db, "ada").await;
    let p = projects.create(project(ada, "apollo")).await.unwrap();
    assert_eq!((p.version, p.created_at), (1, p.updated_at));
    assert_eq!(projects.find_by_id(&p.id).await.unwrap(), Some(p.clone()));
    assert_eq!(projects.count(&[Filter::Eq(ProjectField::owner_id, Value::Uuid(ada))]).await.unwrap(), 1);
    let changes = ProjectChanges { budget: Some(Some(12.5)), ..ProjectChanges::default() };
    let v2 = projects.update(&p.id, Version::FIRST, changes.clone()).await.unwrap();
    assert_eq!((v2.version, v2.budget, v2.name.as_str()), (2, Some(12.5), "apollo"));
    let stale = projects.update(&p.id, Version::FIRST, changes).await.unwrap_err();
    assert!(matches!(stale, RepoError::Conflict { kind: ConflictKind::StaleVersion { .. }, .. }), "{stale:?}");
    assert_eq!(projects.find_by_id(&p.id).await.unwrap(), Some(v2), "a stale update changes nothing");
    let missing = projects.update(&Uuid::now_v7(), Version::FIRST, ProjectChanges::default()).await.unwrap_err();
    assert!(matches!(missing, RepoError::NotFound { entity: "project", .. }), "{missing:?}");
}

#[tokio::test]
async fn unique_keys_and_references_are_enforced_naming_the_field() {
    let db = db();
    let (projects, tasks) = (db.repo::<Project>().unwrap(), db.repo::<Task>().unwrap());
    let ada = owner(&db, "ada").await;
    let p = projects.create(project(ada, "apollo")).await.unwrap();
    let dup = projects.create(project(ada, "APOLLO")).await.unwrap_err();
    assert!(
        matches!(&dup, RepoError::Conflict { entity: "project", kind: ConflictKind::Duplicate { field } } if field == "name"),
        "{dup:?}"
    );
    let orphan = projects.create(project(Uuid::now_v7(), "gemini")).await.unwrap_err();
    assert_eq!(field_of(&orphan), "owner_id");
    let bad_parent = tasks.create(task(p.id, Some(999), "x")).await.unwrap_err();
    assert_eq!(field_of(&bad_parent), "parent_id", "a nullable reference is checked when set");
    let root = tasks.create(task(p.id, None, "root")).await.unwrap();
    let child = tasks.create(task(p.id, Some(root.id), "child")).await.unwrap();
    // ON DELETE RESTRICT, through a self-reference and across records, the built-in users included.
    assert_eq!(field_of(&tasks.delete(&root.id).await.unwrap_err()), "parent_id");
    assert_eq!(field_of(&projects.delete(&p.id).await.unwrap_err()), "project_id");
    let user_id = cpc_domain::UserId::from_uuid(ada);
    assert_eq!(field_of(&db.users().delete(&user_id).await.unwrap_err()), "owner_id");
    assert!(tasks.exists(&root.id).await.unwrap() && projects.exists(&p.id).await.unwrap(), "nothing was deleted");
    assert!(tasks.delete(&child.id).await.unwrap());
    assert!(tasks.delete(&root.id).await.unwrap());
    assert!(projects.delete(&p.id).await.unwrap());
    assert!(!projects.delete(&p.id).await.unwrap());
}

#[tokio::test]
async fn database_assigned_keys_count_up_and_are_never_reused_and_unversioned_updates_last_write_wins() {
    let db = db();
    let (projects, tasks) = (db.repo::<Project>().unwrap(), db.repo::<Task>().unwrap());
    let p = projects.create(project(owner(&db, "ada").await, "apollo")).await.unwrap();
    let first = tasks.create(task(p.id, None, "one")).await.unwrap();
    let many = tasks.create_many(vec![task(p.id, None, "two"), task(p.id, None, "three")]).await.unwrap();
    assert_eq!([first.id, many[0].id, many[1].id], [1, 2, 3]);
    assert!(!first.done, "the declared default");
    tasks.delete(&many[1].id).await.unwrap();
    assert_eq!(tasks.create(task(p.id, None, "four")).await.unwrap().id, 4, "a deleted key is not reused");
    // Without a version column the expected version is not compared: the last write wins.
    let a = tasks.update(&first.id, Version::FIRST, TaskChanges { done: Some(true), ..TaskChanges::default() });
    let a = a.await.unwrap();
    let b =
        tasks.update(&first.id, Version::new(7), TaskChanges { title: Some("uno".into()), ..TaskChanges::default() });
    let b = b.await.unwrap();
    assert!(a.done);
    assert_eq!((b.done, b.title.as_str()), (true, "uno"), "the second write kept the first's change and won");
}

#[tokio::test]
async fn create_many_is_all_or_nothing() {
    let db = db();
    let (projects, tasks) = (db.repo::<Project>().unwrap(), db.repo::<Task>().unwrap());
    let p = projects.create(project(owner(&db, "ada").await, "apollo")).await.unwrap();
    let err = tasks.create_many(vec![task(p.id, None, "fine"), task(Uuid::now_v7(), None, "orphan")]).await;
    assert_eq!(field_of(&err.unwrap_err()), "project_id");
    assert_eq!(tasks.count(&[]).await.unwrap(), 0, "the valid row was not kept");
}

#[tokio::test]
async fn filters_and_paging_work_on_app_fields() {
    let db = db();
    let (projects, tasks) = (db.repo::<Project>().unwrap(), db.repo::<Task>().unwrap());
    let p = projects.create(project(owner(&db, "ada").await, "apollo")).await.unwrap();
    let root = tasks.create(task(p.id, None, "root")).await.unwrap();
    let titles = ["b", "a", "d", "c", "e"];
    for t in titles {
        tasks.create(task(p.id, Some(root.id), t)).await.unwrap();
    }
    assert_eq!(tasks.count(&[Filter::IsNull(TaskField::parent_id)]).await.unwrap(), 1);
    assert_eq!(tasks.count(&[Filter::IsNotNull(TaskField::parent_id)]).await.unwrap(), 5);
    let in_list = Filter::any_of(TaskField::title, ["a", "e", "zz"]);
    assert_eq!(tasks.count(&[in_list]).await.unwrap(), 2);
    let either =
        Filter::Or(vec![Filter::Eq(TaskField::title, "root".into()), Filter::Eq(TaskField::title, "c".into())]);
    assert_eq!(tasks.count(&[either]).await.unwrap(), 2);
    assert_eq!(tasks.count(&[Filter::Eq(TaskField::project_id, Value::Uuid(p.id))]).await.unwrap(), 6);
    // Keyset pages by title walk every child once, in order.
    let mut seen = Vec::new();
    let mut query = Query::new().filter(Filter::IsNotNull(TaskField::parent_id)).asc(TaskField::title).after(None, 2);
    loop {
        let page = tasks.find_page(&query).await.unwrap();
        seen.extend(page.items.iter().map(|t| t.title.clone()));
        match page.next_cursor {
            Some(cursor) => query = query.after(Some(cursor), 2),
            None => break,
        }
    }
    assert_eq!(seen, ["a", "b", "c", "d", "e"]);
    let offset = tasks.find_page(&Query::new().desc(TaskField::title).offset(1, 2)).await.unwrap();
    assert_eq!(offset.total, Some(6));
    assert_eq!(offset.items.iter().map(|t| t.title.as_str()).collect::<Vec<_>>(), ["e", "d"]);
    let sort_nullable = tasks.find_page(&Query::new().asc(TaskField::parent_id).offset(0, 10)).await.unwrap_err();
    assert_eq!(field_of(&sort_nullable), "parent_id", "nullable fields are not sortable, as on the databases");
}

#[tokio::test]
async fn a_unit_of_work_spans_app_and_built_in_records_with_savepoints() {
    let db = db();
    let uow = RecordStore::unit_of_work(&db);
    // Committed together.
    let (user, p) = uow
        .run(|tx| {
            Box::pin(async move {
                let user = tx.users().create(NewUser::new("ada", "ada@example.org")?).await?;
                let p = tx.repo::<Project>()?.create(project(*user.id.as_uuid(), "apollo")).await?;
                let t = tx.repo::<Task>()?.create(task(p.id, None, "one")).await?;
                // A savepoint rolled back undoes only its own row.
                let inner = tx.savepoint().await?;
                inner.repo::<Task>()?.create(task(p.id, None, "undone")).await?;
                inner.rollback().await?;
                assert_eq!(tx.repo::<Task>()?.find_by_id(&t.id).await?, Some(t));
                Ok::<_, RepoError>((user, p))
            })
        })
        .await
        .unwrap();
    let tasks = db.repo::<Task>().unwrap();
    assert_eq!(tasks.count(&[]).await.unwrap(), 1);
    assert!(db.users().exists(&user.id).await.unwrap() && db.repo::<Project>().unwrap().exists(&p.id).await.unwrap());

    // Rolled back together: an error after writes to both kinds of record keeps none of them.
    let failed: Result<(), RepoError> = uow
        .run(|tx| {
            Box::pin(async move {
                let bob = tx.users().create(NewUser::new("bob", "bob@example.org")?).await?;
                tx.repo::<Project>()?.create(project(*bob.id.as_uuid(), "gemini")).await?;
                tx.repo::<Project>()?.create(project(*bob.id.as_uuid(), "apollo")).await?; // taken
                Ok(())
            })
        })
        .await;
    assert!(matches!(failed, Err(RepoError::Conflict { .. })), "{failed:?}");
    assert_eq!(db.users().count(&[]).await.unwrap(), 1);
    assert_eq!(db.repo::<Project>().unwrap().count(&[]).await.unwrap(), 1);

    // Invisible outside before commit.
    let tx = uow.begin().await.unwrap();
    tx.repo::<Task>().unwrap().create(task(p.id, None, "pending")).await.unwrap();
    assert_eq!(tasks.count(&[]).await.unwrap(), 1);
    tx.commit().await.unwrap();
    assert_eq!(tasks.count(&[]).await.unwrap(), 2);
}

#[tokio::test]
async fn a_reference_to_a_record_not_registered_is_refused_naming_the_field() {
    let db = InMemoryDatabase::new();
    db.register::<Task>();
    let err = db.repo::<Task>().unwrap().create(task(Uuid::now_v7(), None, "x")).await.unwrap_err();
    assert_eq!(field_of(&err), "project_id");
    assert!(err.to_string().contains("not registered"), "{err}");
}
