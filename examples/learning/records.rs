//! The learning app's own tables: one portable `diesel::table!` each (PostgreSQL and SQLite), the model, its
//! create and update forms, and one `record!` declaration; and the migration set that creates them.
//!
//! * `courses`: UUID keys made by the library, a unique slug, versions and timestamps.
//! * `lessons`: `i64` keys the database assigns (`BIGSERIAL` / `INTEGER PRIMARY KEY`), each in one course.
//! * `completions`: a learner finishing a course (UUID keys; one per learner and course; the learner's n-th).
//! * `progress`: the lesson rows a completion recorded (`i64` keys), a learner's history.
//!
//! Learners are the library's users: `learner_id` references `users`.

#![cfg_attr(not(test), allow(dead_code, reason = "some fields and forms are used by the tests only"))]

use chrono::{DateTime, Utc};
use cpc_data::adapters::diesel::migrations::{EmbeddedMigrations, MigrationSet, embed_migrations};
use cpc_data::domain::User;
use uuid::Uuid;

static POSTGRES: EmbeddedMigrations = embed_migrations!("examples/learning/migrations/postgres");
static SQLITE: EmbeddedMigrations = embed_migrations!("examples/learning/migrations/sqlite");

/// The app's migrations, run beside the library's at start-up.
pub const MIGRATIONS: MigrationSet = MigrationSet::new("learning", &POSTGRES, &SQLITE);

diesel::table! {
    use cpc_data::adapters::diesel::sql_types::*;
    courses (id) {
        id -> Uuid,
        slug -> Text,
        title -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        version -> BigInt,
    }
}

diesel::table! {
    use cpc_data::adapters::diesel::sql_types::*;
    lessons (id) {
        id -> BigInt,
        course_id -> Uuid,
        position -> Integer,
        title -> Text,
    }
}

diesel::table! {
    use cpc_data::adapters::diesel::sql_types::*;
    completions (id) {
        id -> Uuid,
        learner_id -> Uuid,
        course_id -> Uuid,
        number -> Integer,
        score -> Integer,
        completed_at -> Timestamptz,
    }
}

diesel::table! {
    use cpc_data::adapters::diesel::sql_types::*;
    progress (id) {
        id -> BigInt,
        learner_id -> Uuid,
        lesson_id -> BigInt,
        completion_id -> Uuid,
        score -> Integer,
        completed_at -> Timestamptz,
    }
}

/// A course.
#[derive(Debug, Clone, PartialEq, diesel::Queryable, diesel::Selectable)]
#[diesel(table_name = courses)]
pub struct Course {
    /// Made by the library (UUIDv7).
    pub id: Uuid,
    /// Unique, e.g. `rust-101`.
    pub slug: String,
    /// Shown to learners.
    pub title: String,
    /// Set by the library.
    pub created_at: DateTime<Utc>,
    /// Set by the library.
    pub updated_at: DateTime<Utc>,
    /// Optimistic locking.
    pub version: i64,
}

/// What creating a course takes.
#[derive(Debug, Clone, PartialEq)]
pub struct NewCourse {
    /// Unique.
    pub slug: String,
    /// Shown to learners.
    pub title: String,
}

/// What updating a course may change.
#[derive(Debug, Clone, Default)]
pub struct CourseChanges {
    /// A new title.
    pub title: Option<String>,
}

cpc_data::adapters::record! {
    Course in courses as "course" {
        key: id: Uuid,
        new: NewCourse,
        update: CourseChanges { title },
        fields: CourseField { slug, title },
        version: version,
        created_at: created_at,
        updated_at: updated_at,
        unique: { "slug" => |c| Some(c.slug.clone()) },
    }
}

/// A lesson of a course.
#[derive(Debug, Clone, PartialEq, diesel::Queryable, diesel::Selectable)]
#[diesel(table_name = lessons)]
pub struct Lesson {
    /// Assigned by the database.
    pub id: i64,
    /// The course it belongs to.
    pub course_id: Uuid,
    /// 1, 2, ... within the course (unique there).
    pub position: i32,
    /// Shown to learners.
    pub title: String,
}

/// What creating a lesson takes.
#[derive(Debug, Clone, PartialEq)]
pub struct NewLesson {
    /// The course it belongs to.
    pub course_id: Uuid,
    /// 1, 2, ... within the course.
    pub position: i32,
    /// Shown to learners.
    pub title: String,
}

cpc_data::adapters::record! {
    Lesson in lessons as "lesson" {
        key: id: i64,
        new: NewLesson,
        update: NewLesson {},
        fields: LessonField { course_id, position, title },
        unique: { "position" => |l| Some(format!("{}/{}", l.course_id, l.position)) },
        references: { course_id => Course },
    }
}

/// A learner finishing a course.
#[derive(Debug, Clone, PartialEq, diesel::Queryable, diesel::Selectable)]
#[diesel(table_name = completions)]
pub struct Completion {
    /// Made by the library (UUIDv7).
    pub id: Uuid,
    /// The learner (a user).
    pub learner_id: Uuid,
    /// The course finished.
    pub course_id: Uuid,
    /// The learner's n-th completed course (1, 2, ...): counted under the learner's lock.
    pub number: i32,
    /// The mean of the lesson scores, 0 to 100.
    pub score: i32,
    /// When it was recorded (set by the library).
    pub completed_at: DateTime<Utc>,
}

/// What recording a completion takes.
#[derive(Debug, Clone, PartialEq)]
pub struct NewCompletion {
    /// The learner (a user).
    pub learner_id: Uuid,
    /// The course finished.
    pub course_id: Uuid,
    /// The learner's n-th completed course.
    pub number: i32,
    /// The mean of the lesson scores.
    pub score: i32,
}

cpc_data::adapters::record! {
    Completion in completions as "completion" {
        key: id: Uuid,
        new: NewCompletion,
        update: NewCompletion {},
        fields: CompletionField { learner_id, course_id, number, score },
        created_at: completed_at,
        unique: { "course_id" => |c| Some(format!("{}/{}", c.learner_id, c.course_id)) },
        references: { learner_id => User, course_id => Course },
    }
}

/// A lesson a learner completed, recorded with the course completion it belongs to.
#[derive(Debug, Clone, PartialEq, diesel::Queryable, diesel::Selectable)]
#[diesel(table_name = progress)]
pub struct Progress {
    /// Assigned by the database.
    pub id: i64,
    /// The learner (a user).
    pub learner_id: Uuid,
    /// The lesson.
    pub lesson_id: i64,
    /// The course completion that recorded it.
    pub completion_id: Uuid,
    /// 0 to 100.
    pub score: i32,
    /// When it was recorded (set by the library).
    pub completed_at: DateTime<Utc>,
}

/// What recording a lesson row takes.
#[derive(Debug, Clone, PartialEq)]
pub struct NewProgress {
    /// The learner.
    pub learner_id: Uuid,
    /// The lesson.
    pub lesson_id: i64,
    /// The course completion recording it.
    pub completion_id: Uuid,
    /// 0 to 100.
    pub score: i32,
}

cpc_data::adapters::record! {
    Progress in progress as "progress" {
        key: id: i64,
        new: NewProgress,
        update: NewProgress {},
        fields: ProgressField { learner_id, lesson_id, completion_id, score },
        created_at: completed_at,
        unique: { "lesson_id" => |p| Some(format!("{}/{}", p.completion_id, p.lesson_id)) },
        references: { learner_id => User, lesson_id => Lesson, completion_id => Completion },
    }
}
