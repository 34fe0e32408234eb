//! The app code of `learning_core`: courses and their lessons, a learner completing a course (under the learner's
//! lock, the completion and its lesson rows in one unit of work), and a learner's history, newest first, page by
//! page. It knows only ports and its own records: no adapter type.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use cpc_data::domain::ValidationError;
use cpc_data::ports::{
    ConflictKind, Cursor, Filter, KvError, Lock, LockExt, LockKey, Page, Query, RecordStore, RecordStoreExt, RepoError,
    Repository, TxExt, UnitOfWork, UnitOfWorkExt,
};
use uuid::Uuid;

use crate::records::{
    Completion, CompletionField, Course, CourseField, Lesson, LessonField, NewCompletion, NewCourse, NewLesson,
    NewProgress, Progress, ProgressField,
};

/// Why a learning operation failed, in terms a caller (or an HTTP layer) can act on.
#[derive(Debug, thiserror::Error)]
pub enum LearningError {
    /// The input is invalid (400).
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// A course with this slug exists already (409).
    #[error("a course with slug {0} already exists")]
    SlugTaken(String),
    /// No such course (404).
    #[error("no course {0}")]
    UnknownCourse(Uuid),
    /// No such learner (404).
    #[error("no learner {0}")]
    UnknownLearner(Uuid),
    /// No such lesson (404).
    #[error("no lesson {0}")]
    UnknownLesson(i64),
    /// A submitted lesson belongs to another course (400).
    #[error("lesson {lesson} is not part of course {course}")]
    NotInCourse {
        /// The lesson.
        lesson: i64,
        /// The course being completed.
        course: Uuid,
    },
    /// Not every lesson of the course has a result (400).
    #[error("{submitted} of the course's {lessons} lessons submitted")]
    NotFinished {
        /// Results submitted.
        submitted: usize,
        /// Lessons in the course.
        lessons: u64,
    },
    /// The learner completed this course before (409; nothing to do).
    #[error("learner {learner} already completed course {course}")]
    AlreadyCompleted {
        /// The learner.
        learner: Uuid,
        /// The course.
        course: Uuid,
    },
    /// Another completion of this learner held the lock for longer than we wait (409; retry).
    #[error("learner {0} is busy; try again")]
    Busy(Uuid),
    /// A write collided with a concurrent one the lock should have kept out (409; retry).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A backend is down (503; retry later).
    #[error("learning unavailable: {0}")]
    Unavailable(String),
}

impl From<RepoError> for LearningError {
    fn from(e: RepoError) -> Self {
        match e {
            RepoError::Validation(v) => Self::Invalid(v),
            e @ RepoError::Conflict { .. } => Self::Conflict(e.to_string()),
            other => Self::Unavailable(other.to_string()),
        }
    }
}

impl From<KvError> for LearningError {
    fn from(e: KvError) -> Self {
        match e {
            KvError::Validation(v) => Self::Invalid(v),
            other => Self::Unavailable(other.to_string()),
        }
    }
}

/// A learner's result in one lesson.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LessonResult {
    /// The lesson.
    pub lesson: i64,
    /// 0 to 100.
    pub score: i32,
}

/// The ports the service runs on.
pub struct LearningPorts {
    /// Courses.
    pub courses: Arc<dyn Repository<Course>>,
    /// Lessons.
    pub lessons: Arc<dyn Repository<Lesson>>,
    /// Course completions.
    pub completions: Arc<dyn Repository<Completion>>,
    /// Lesson rows (a learner's history).
    pub progress: Arc<dyn Repository<Progress>>,
    /// Units of work spanning them all.
    pub unit_of_work: Arc<dyn UnitOfWork>,
    /// The learners' locks.
    pub lock: Arc<dyn Lock>,
}

impl LearningPorts {
    /// The app's repositories and units of work from a database that knows its records, and `lock`.
    pub fn from_store(store: &dyn RecordStore, lock: Arc<dyn Lock>) -> Result<Self, RepoError> {
        Ok(Self {
            courses: store.repo()?,
            lessons: store.repo()?,
            completions: store.repo()?,
            progress: store.repo()?,
            unit_of_work: store.unit_of_work(),
            lock,
        })
    }
}

/// The learning service.
pub struct Learning {
    ports: LearningPorts,
    lease: Duration,
    wait: Duration,
}

impl Learning {
    /// A service that holds a learner's lock for at most 10 s and waits at most 5 s for it.
    pub fn new(ports: LearningPorts) -> Self {
        Self { ports, lease: Duration::from_secs(10), wait: Duration::from_secs(5) }
    }

    /// The lock a learner's completions are serialised by.
    pub fn learner_lock(learner: Uuid) -> Result<LockKey, LearningError> {
        Ok(LockKey::new(format!("learning:learner:{learner}"))?)
    }

    /// Creates a course and its lessons (positions 1, 2, ... in order) together: both or neither.
    pub async fn create_course(
        &self,
        slug: &str,
        title: &str,
        lessons: &[&str],
    ) -> Result<(Course, Vec<Lesson>), LearningError> {
        let slug = slug.trim().to_owned();
        if slug.is_empty() || !slug.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
            return Err(ValidationError::new("slug", "must be lowercase letters, digits and '-'").into());
        }
        if title.trim().is_empty() {
            return Err(ValidationError::new("title", "must not be empty").into());
        }
        if lessons.is_empty() || lessons.iter().any(|l| l.trim().is_empty()) {
            return Err(ValidationError::new("lessons", "a course has at least one lesson, each with a title").into());
        }
        let new = NewCourse { slug: slug.clone(), title: title.trim().to_owned() };
        let titles: Vec<String> = lessons.iter().map(|l| l.trim().to_owned()).collect();
        self.ports
            .unit_of_work
            .run(|tx| {
                Box::pin(async move {
                    let course = match tx.repo::<Course>()?.create(new).await {
                        Ok(course) => course,
                        Err(RepoError::Conflict { kind: ConflictKind::Duplicate { .. }, .. }) => {
                            return Err(LearningError::SlugTaken(slug));
                        }
                        Err(e) => return Err(e.into()),
                    };
                    let lessons = tx.repo::<Lesson>()?;
                    let mut created = Vec::with_capacity(titles.len());
                    for (position, title) in (1..).zip(titles) {
                        created.push(lessons.create(NewLesson { course_id: course.id, position, title }).await?);
                    }
                    Ok((course, created))
                })
            })
            .await
    }

    /// The course with this slug, if any.
    pub async fn course_by_slug(&self, slug: &str) -> Result<Option<Course>, LearningError> {
        let query = Query::new().eq(CourseField::slug, slug).offset(0, 1);
        Ok(self.ports.courses.find_page(&query).await?.items.into_iter().next())
    }

    /// A course's lessons, in order.
    pub async fn lessons(&self, course: Uuid) -> Result<Vec<Lesson>, LearningError> {
        let query = Query::new().eq(LessonField::course_id, course).asc(LessonField::position).offset(0, 1000);
        Ok(self.ports.lessons.find_page(&query).await?.items)
    }

    /// Records that `learner` completed `course` with `results` (one per lesson of the course).
    ///
    /// Holds the learner's lock throughout, so two completions of one learner never interleave: the second sees
    /// the first (an [`AlreadyCompleted`](LearningError::AlreadyCompleted) for the same course, the next
    /// `number` for another). The completion and its lesson rows are written in one unit of work: a lesson row
    /// that fails (a lesson of another course, a lost database) leaves no completion and no lesson row behind.
    pub async fn complete_course(
        &self,
        learner: Uuid,
        course: Uuid,
        results: &[LessonResult],
    ) -> Result<Completion, LearningError> {
        // Validate before taking the lock: bad input costs no round trip.
        if results.is_empty() {
            return Err(ValidationError::new("results", "must not be empty").into());
        }
        if let Some(r) = results.iter().find(|r| !(0..=100).contains(&r.score)) {
            return Err(ValidationError::new("score", format!("{} is not between 0 and 100", r.score)).into());
        }
        let mut seen = HashSet::new();
        if let Some(r) = results.iter().find(|r| !seen.insert(r.lesson)) {
            return Err(ValidationError::new("results", format!("lesson {} is listed twice", r.lesson)).into());
        }
        let key = Self::learner_lock(learner)?;
        let results = results.to_vec();
        let uow = self.ports.unit_of_work.clone();
        let outcome = self
            .ports
            .lock
            .with_lock(&key, self.lease, self.wait, move |_lease| async move {
                uow.run(move |tx| Box::pin(async move { record_completion(tx, learner, course, results).await })).await
            })
            .await;
        match outcome {
            Ok(done) => done,
            Err(KvError::Timeout { .. }) => Err(LearningError::Busy(learner)),
            Err(e) => Err(e.into()),
        }
    }

    /// One page of `learner`'s lesson rows, newest first; pass the page's `next_cursor` back for the next one.
    /// Keyset paging: rows recorded meanwhile never shift a page, and no row is skipped or repeated.
    pub async fn history(
        &self,
        learner: Uuid,
        after: Option<Cursor>,
        limit: u32,
    ) -> Result<Page<Progress>, LearningError> {
        let query = Query::new()
            .eq(ProgressField::learner_id, learner)
            .desc(ProgressField::completed_at)
            .desc(ProgressField::id)
            .after(after, limit);
        Ok(self.ports.progress.find_page(&query).await?)
    }

    /// `learner`'s completions, in the order they were recorded.
    pub async fn completions(&self, learner: Uuid) -> Result<Vec<Completion>, LearningError> {
        let query = Query::new().eq(CompletionField::learner_id, learner).asc(CompletionField::number).offset(0, 1000);
        Ok(self.ports.completions.find_page(&query).await?.items)
    }
}

/// The unit of work of a completion: checks against what is stored, then the completion, then its lesson rows.
async fn record_completion(
    tx: &dyn cpc_data::ports::Tx,
    learner: Uuid,
    course: Uuid,
    results: Vec<LessonResult>,
) -> Result<Completion, LearningError> {
    let (completions, lessons, progress) = (tx.repo::<Completion>()?, tx.repo::<Lesson>()?, tx.repo::<Progress>()?);
    if !tx.repo::<Course>()?.exists(&course).await? {
        return Err(LearningError::UnknownCourse(course));
    }
    let mine = Filter::Eq(CompletionField::learner_id, learner.into());
    if completions.count(&[mine.clone(), Filter::Eq(CompletionField::course_id, course.into())]).await? > 0 {
        return Err(LearningError::AlreadyCompleted { learner, course });
    }
    let in_course = lessons.count(&[Filter::Eq(LessonField::course_id, course.into())]).await?;
    if results.len() as u64 != in_course {
        return Err(LearningError::NotFinished { submitted: results.len(), lessons: in_course });
    }
    // The learner's n-th completion: a read-then-write only the learner's lock keeps exact.
    let number = i32::try_from(completions.count(&[mine]).await? + 1).unwrap_or(i32::MAX);
    let score = mean(&results);
    let completion = match completions
        .create(NewCompletion { learner_id: learner, course_id: course, number, score })
        .await
    {
        Ok(c) => c,
        Err(RepoError::Validation(v)) if v.field == "learner_id" => return Err(LearningError::UnknownLearner(learner)),
        Err(e) => return Err(e.into()),
    };
    for r in results {
        // Checked as each row is written: a failure here, after the completion and earlier rows, undoes them all.
        let lesson = lessons.find_by_id(&r.lesson).await?.ok_or(LearningError::UnknownLesson(r.lesson))?;
        if lesson.course_id != course {
            return Err(LearningError::NotInCourse { lesson: r.lesson, course });
        }
        let row =
            NewProgress { learner_id: learner, lesson_id: r.lesson, completion_id: completion.id, score: r.score };
        match progress.create(row).await {
            Ok(_) => {}
            Err(RepoError::Validation(v)) if v.field == "lesson_id" => {
                return Err(LearningError::UnknownLesson(r.lesson));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(completion)
}

/// The mean score, rounded down.
fn mean(results: &[LessonResult]) -> i32 {
    let total: i64 = results.iter().map(|r| i64::from(r.score)).sum();
    i32::try_from(total / results.len().max(1) as i64).unwrap_or(0)
}
