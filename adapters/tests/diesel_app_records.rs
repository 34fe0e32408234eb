//! The record contract (`cpc_testkit::record_contract!`) on two app records declared with `record!`, on
//! PostgreSQL and SQLite: `Project` (UUID keys made by the library, versioned, timestamps, a unique `code`,
//! referring to a built-in user) and `Task` (`i64` keys the database assigns, unversioned, referring to a
//! project). Each case gets its own database (a fresh PostgreSQL database, a fresh SQLite file).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
#![cfg(feature = "diesel")]

use std::any::{Any, TypeId};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cpc_adapters::diesel::{DbManager, DbPool};
use cpc_adapters::pool::PoolConfig;
use cpc_adapters::postgres::DatabaseConfig;
use cpc_adapters::sqlite::SqliteConfig;
use cpc_domain::{NewUser, User};
use cpc_ports::{Filter, RecordStore, RecordStoreExt, RepoError, UnitOfWork, Value};
use cpc_testkit::contract::record::RecordFixture;
use cpc_testkit::harness::TestDatabase;
use diesel_async::{AsyncConnection, SimpleAsyncConnection};
use uuid::Uuid;

diesel::table! {
    use cpc_adapters::diesel::sql_types::*;
    projects (id) {
        id -> Uuid,
        user_id -> Uuid,
        code -> Text,
        name -> Text,
        rank -> Integer,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        version -> BigInt,
    }
}

diesel::table! {
    use cpc_adapters::diesel::sql_types::*;
    tasks (id) {
        id -> BigInt,
        project_id -> Uuid,
        title -> Text,
        done -> Bool,
    }
}

/// A project, owned by a user; its code is unique.
#[derive(Debug, Clone, PartialEq, diesel::Queryable, diesel::Selectable)]
#[diesel(table_name = projects)]
pub struct Project {
    pub id: Uuid,
    pub user_id: Uuid,
    pub code: String,
    pub name: String,
    pub rank: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
}

#[derive(Debug, Clone)]
pub struct NewProject {
    pub user_id: Uuid,
    pub code: String,
    pub name: String,
    pub rank: i32,
}

#[derive(Debug, Clone, Default)]
pub struct ProjectChanges {
    pub name: Option<String>,
    pub rank: Option<i32>,
}

cpc_adapters::record! {
    Project in projects as "project" {
        key: id: Uuid,
        new: NewProject,
        update: ProjectChanges { name, rank },
        fields: ProjectField { user_id, code, name, rank },
        version: version,
        created_at: created_at,
        updated_at: updated_at,
        unique: { "code" => |p| Some(p.code.clone()) },
        references: { user_id => User },
    }
}

/// A task of a project: a database-assigned key, no version.
#[derive(Debug, Clone, PartialEq, diesel::Queryable, diesel::Selectable)]
#[diesel(table_name = tasks)]
pub struct Task {
    pub id: i64,
    pub project_id: Uuid,
    pub title: String,
    pub done: bool,
}

#[derive(Debug, Clone)]
pub struct NewTask {
    pub project_id: Uuid,
    pub title: String,
}

#[derive(Debug, Clone, Default)]
pub struct TaskChanges {
    pub title: Option<String>,
    pub done: Option<bool>,
}

cpc_adapters::record! {
    Task in tasks as "task" {
        key: id: i64,
        new: NewTask,
        update: TaskChanges { title, done },
        fields: TaskField { project_id, title, done = false },
        references: { project_id => Project },
    }
}

const PG_TABLES: &str = "
CREATE TABLE projects (
    id UUID PRIMARY KEY, user_id UUID NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    code TEXT NOT NULL UNIQUE, name TEXT NOT NULL, rank INTEGER NOT NULL,
    created_at TIMESTAMPTZ NOT NULL, updated_at TIMESTAMPTZ NOT NULL, version BIGINT NOT NULL);
CREATE TABLE tasks (
    id BIGSERIAL PRIMARY KEY, project_id UUID NOT NULL REFERENCES projects (id) ON DELETE RESTRICT,
    title TEXT NOT NULL, done BOOLEAN NOT NULL);";

const SQLITE_TABLES: &str = "
CREATE TABLE projects (
    id TEXT PRIMARY KEY, user_id TEXT NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    code TEXT NOT NULL UNIQUE, name TEXT NOT NULL, rank INTEGER NOT NULL,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL, version INTEGER NOT NULL);
CREATE TABLE tasks (
    id INTEGER PRIMARY KEY, project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE RESTRICT,
    title TEXT NOT NULL, done BOOLEAN NOT NULL);";

/// A store that keeps its database (a `TestDatabase`, a temporary directory) alive as long as it is used.
struct Held {
    db: DbManager,
    _guard: Box<dyn Any + Send + Sync>,
}

impl RecordStore for Held {
    fn repository(&self, record: TypeId) -> Option<Box<dyn Any + Send>> {
        RecordStore::repository(&self.db, record)
    }
    fn unit_of_work(&self) -> Arc<dyn UnitOfWork> {
        RecordStore::unit_of_work(&self.db)
    }
}

fn registered(db: DbManager, guard: Box<dyn Any + Send + Sync>) -> Arc<dyn RecordStore> {
    db.register::<Project>().register::<Task>();
    Arc::new(Held { db, _guard: guard })
}

/// A migrated PostgreSQL database with the app's tables and records.
async fn postgres() -> Arc<dyn RecordStore> {
    let test_db = TestDatabase::create().await;
    let config = DatabaseConfig::from_url(test_db.url()).unwrap();
    let target = cpc_adapters::diesel::migrations::MigrationTarget::Postgres(config.clone());
    cpc_adapters::diesel::migrations::run_pending(&target).await.unwrap();
    let mut conn = diesel_async::AsyncPgConnection::establish(test_db.url()).await.unwrap();
    conn.batch_execute(PG_TABLES).await.unwrap();
    let db = DbManager::postgres(&config, &PoolConfig::default()).await.unwrap();
    registered(db, Box::new(test_db))
}

/// A migrated SQLite file with the app's tables and records.
async fn sqlite() -> Arc<dyn RecordStore> {
    let dir = tempfile::tempdir().unwrap();
    let config = SqliteConfig::file(dir.path().join("app.db"));
    let target = cpc_adapters::diesel::migrations::MigrationTarget::Sqlite(config.clone());
    cpc_adapters::diesel::migrations::run_pending(&target).await.unwrap();
    let db = DbManager::sqlite(&config, &PoolConfig::default()).await.unwrap();
    let DbPool::Sqlite(pool) = db.pool() else { unreachable!() };
    let mut conn = pool.get().await.unwrap();
    conn.batch_execute(SQLITE_TABLES).await.unwrap();
    drop(conn);
    registered(db, Box::new(dir))
}

/// A user for a case, named after its tag.
async fn user(store: &dyn RecordStore, tag: &str) -> Result<User, RepoError> {
    store.repo::<User>()?.create(NewUser::new(tag, &format!("{tag}@example.org"))?).await
}

/// The fixture of [`Project`]: each case's projects belong to a user of its own, their codes start with its tag.
pub struct Projects;

/// A case's tag and owner.
pub struct ProjectsCtx {
    tag: String,
    owner: User,
}

impl ProjectsCtx {
    fn code(&self, n: u32) -> String {
        format!("{}-{n:03}", self.tag)
    }
}

#[async_trait]
impl RecordFixture for Projects {
    type Record = Project;
    type Ctx = ProjectsCtx;

    async fn prepare(&self, store: &dyn RecordStore, tag: &str) -> Result<ProjectsCtx, RepoError> {
        Ok(ProjectsCtx { tag: tag.to_owned(), owner: user(store, tag).await? })
    }
    fn new_row(&self, ctx: &ProjectsCtx, n: u32) -> NewProject {
        let rank = i32::try_from(n).unwrap();
        NewProject { user_id: *ctx.owner.id.as_uuid(), code: ctx.code(n), name: format!("Project {n}"), rank }
    }
    fn scope(&self, ctx: &ProjectsCtx) -> Filter<ProjectField> {
        Filter::Prefix(ProjectField::code, format!("{}-", ctx.tag))
    }
    fn only(&self, ctx: &ProjectsCtx, n: u32) -> Filter<ProjectField> {
        Filter::Eq(ProjectField::code, Value::Text(ctx.code(n)))
    }
    fn changes(&self, _: &ProjectsCtx, n: u32) -> (ProjectChanges, ProjectField, Value) {
        let name = format!("Renamed {n}");
        (ProjectChanges { name: Some(name.clone()), rank: None }, ProjectField::name, Value::Text(name))
    }
    fn duplicate_of(&self, ctx: &ProjectsCtx, n: u32) -> Option<(NewProject, &'static str)> {
        Some((NewProject { name: "Another".into(), rank: 0, ..self.new_row(ctx, n) }, "code"))
    }
    fn missing_reference(&self, ctx: &ProjectsCtx, n: u32) -> Option<(NewProject, &'static str)> {
        Some((NewProject { user_id: Uuid::new_v4(), ..self.new_row(ctx, n) }, "user_id"))
    }
    async fn delete_parent(
        &self,
        store: &dyn RecordStore,
        ctx: &ProjectsCtx,
    ) -> Option<(Result<bool, RepoError>, &'static str)> {
        let users = match store.repo::<User>() {
            Ok(users) => users,
            Err(e) => return Some((Err(e), "user_id")),
        };
        Some((users.delete(&ctx.owner.id).await, "user_id"))
    }
}

/// The fixture of [`Task`]: each case's tasks belong to a project of its own, their titles start with its tag.
pub struct Tasks;

/// A case's tag and project.
pub struct TasksCtx {
    tag: String,
    project: Project,
}

impl TasksCtx {
    fn title(&self, n: u32) -> String {
        format!("{}-{n:03}", self.tag)
    }
}

#[async_trait]
impl RecordFixture for Tasks {
    type Record = Task;
    type Ctx = TasksCtx;

    async fn prepare(&self, store: &dyn RecordStore, tag: &str) -> Result<TasksCtx, RepoError> {
        let owner = user(store, tag).await?;
        let new = NewProject { user_id: *owner.id.as_uuid(), code: tag.to_owned(), name: "Tasks".into(), rank: 1 };
        let project = store.repo::<Project>()?.create(new).await?;
        Ok(TasksCtx { tag: tag.to_owned(), project })
    }
    fn new_row(&self, ctx: &TasksCtx, n: u32) -> NewTask {
        NewTask { project_id: ctx.project.id, title: ctx.title(n) }
    }
    fn scope(&self, ctx: &TasksCtx) -> Filter<TaskField> {
        Filter::Eq(TaskField::project_id, Value::Uuid(ctx.project.id))
    }
    fn only(&self, ctx: &TasksCtx, n: u32) -> Filter<TaskField> {
        Filter::Eq(TaskField::title, Value::Text(ctx.title(n)))
    }
    fn changes(&self, _: &TasksCtx, _: u32) -> (TaskChanges, TaskField, Value) {
        (TaskChanges { title: None, done: Some(true) }, TaskField::done, Value::Bool(true))
    }
    fn missing_reference(&self, ctx: &TasksCtx, n: u32) -> Option<(NewTask, &'static str)> {
        Some((NewTask { project_id: Uuid::new_v4(), ..self.new_row(ctx, n) }, "project_id"))
    }
    async fn delete_parent(
        &self,
        store: &dyn RecordStore,
        ctx: &TasksCtx,
    ) -> Option<(Result<bool, RepoError>, &'static str)> {
        let projects = match store.repo::<Project>() {
            Ok(projects) => projects,
            Err(e) => return Some((Err(e), "project_id")),
        };
        Some((projects.delete(&ctx.project.id).await, "project_id"))
    }
}

mod projects_on_postgres {
    use super::*;
    cpc_testkit::record_contract!(Projects, postgres());
}

mod projects_on_sqlite {
    use super::*;
    cpc_testkit::record_contract!(Projects, sqlite());
}

mod tasks_on_postgres {
    use super::*;
    cpc_testkit::record_contract!(Tasks, postgres());
}

mod tasks_on_sqlite {
    use super::*;
    cpc_testkit::record_contract!(Tasks, sqlite());
}
