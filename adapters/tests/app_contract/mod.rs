//! The app records the record contract runs on (on the Diesel backends in `diesel_app_records.rs`, on the
//! in-memory fake in `cpc-testkit`'s `memory_record_contract.rs`, which includes this file): `Project` (UUID keys
//! made by the library, versioned, timestamps, a unique `code`, referring to a built-in user) and `Task` (`i64`
//! keys the database assigns, unversioned, referring to a project), with their fixtures.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cpc_domain::{NewUser, User};
use cpc_ports::{Filter, RecordStore, RecordStoreExt, RepoError, Value};
use cpc_testkit::contract::record::RecordFixture;
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
