//! Two records of an app, declared as apps declare them: `projects` (UUID keys made by the library, versioned,
//! a unique name, owned by a user) and `tasks` (`i64` keys the database assigns, unversioned, in a project,
//! optionally under a parent task).

use chrono::{DateTime, Utc};
use cpc_domain::User;
use uuid::Uuid;

diesel::table! {
    use cpc_adapters::diesel::sql_types::*;
    projects (id) {
        id -> Uuid,
        owner_id -> Uuid,
        name -> Text,
        budget -> Nullable<Double>,
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
        parent_id -> Nullable<BigInt>,
        title -> Text,
        done -> Bool,
    }
}

/// A project.
#[derive(Debug, Clone, PartialEq, diesel::Queryable, diesel::Selectable)]
#[diesel(table_name = projects)]
pub struct Project {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub name: String,
    pub budget: Option<f64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
}

#[derive(Debug, Clone)]
pub struct NewProject {
    pub owner_id: Uuid,
    pub name: String,
    pub budget: Option<f64>,
}

#[derive(Debug, Clone, Default)]
pub struct ProjectChanges {
    pub name: Option<String>,
    pub budget: Option<Option<f64>>,
}

cpc_adapters::record! {
    Project in projects as "project" {
        key: id: Uuid,
        new: NewProject,
        update: ProjectChanges { name, budget },
        fields: ProjectField { owner_id, name, budget },
        version: version,
        created_at: created_at,
        updated_at: updated_at,
        unique: { "name" => |p| Some(p.name.to_lowercase()) },
        references: { owner_id => User },
    }
}

/// A task of a project.
#[derive(Debug, Clone, PartialEq, diesel::Queryable, diesel::Selectable)]
#[diesel(table_name = tasks)]
pub struct Task {
    pub id: i64,
    pub project_id: Uuid,
    pub parent_id: Option<i64>,
    pub title: String,
    pub done: bool,
}

#[derive(Debug, Clone)]
pub struct NewTask {
    pub project_id: Uuid,
    pub parent_id: Option<i64>,
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
        fields: TaskField { project_id, parent_id, title, done = false },
        references: { project_id => Project, parent_id => Task },
    }
}
