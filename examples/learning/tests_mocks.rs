//! The service against mockall mocks of the ports (`MockRepository<T>` of the app's own records, `MockUnitOfWork`
//! and `MockTx`, `MockLock`): the order of the calls (lock, unit of work, writes, commit, release) and every
//! failure path, including a lesson row failing midway, which must roll the unit of work back.

use std::any::TypeId;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use cpc_data::ports::{
    ConflictKind, Direction, FencingToken, Filter, KvError, LockKey, LockLease, PageRequest, Record, RepoError,
    Repository, Sort, Value,
};
use cpc_testkit::mocks::{MockLock, MockRepository, MockTx, MockUnitOfWork};
use uuid::Uuid;

use crate::records::{Completion, CompletionField, Course, Lesson, LessonField, Progress, ProgressField};
use crate::service::{Learning, LearningError, LearningPorts, LessonResult};

/// What the mocks saw, in order.
type Log = Arc<Mutex<Vec<String>>>;

fn note(log: &Log, what: impl Into<String>) {
    log.lock().unwrap().push(what.into());
}

fn lease(key: &LockKey) -> LockLease {
    LockLease { key: key.clone(), owner: "me".into(), token: FencingToken(7), ttl: Duration::from_secs(10) }
}

/// A lock that grants `learner`'s key once and expects it back once, noting both.
fn granting_lock(learner: Uuid, log: &Log) -> MockLock {
    let mut lock = MockLock::new();
    let key = Learning::learner_lock(learner).unwrap();
    let (l1, l2) = (log.clone(), log.clone());
    lock.expect_acquire().withf(move |k, _, _| *k == key).times(1).returning(move |k, _, _| {
        note(&l1, "acquire");
        Ok(lease(k))
    });
    lock.expect_release().times(1).returning(move |_| {
        note(&l2, "release");
        Ok(())
    });
    lock
}

/// Makes `tx` hand out `repo` for record `T` (what `tx.repo::<T>()` asks for).
fn hand_out<T: Record>(tx: &mut MockTx, repo: MockRepository<T>) {
    let repo: Arc<dyn Repository<T>> = Arc::new(repo);
    tx.expect_repository().withf(|t| *t == TypeId::of::<T>()).returning(move |_| Some(Box::new(repo.clone())));
}

/// A unit of work that begins `tx` once.
fn unit_of_work(log: &Log, tx: impl FnOnce() -> MockTx + Send + 'static) -> MockUnitOfWork {
    let mut uow = MockUnitOfWork::new();
    let log = log.clone();
    let mut tx = Some(tx);
    uow.expect_begin().times(1).returning(move || {
        note(&log, "begin");
        Ok(Box::new(tx.take().expect("begun once")()))
    });
    uow
}

fn expect_end(tx: &mut MockTx, log: &Log, committed: bool) {
    let (l1, l2) = (log.clone(), log.clone());
    tx.expect_commit().times(usize::from(committed)).returning(move || {
        note(&l1, "commit");
        Ok(())
    });
    tx.expect_rollback().times(usize::from(!committed)).returning(move || {
        note(&l2, "rollback");
        Ok(())
    });
}

fn service(uow: MockUnitOfWork, lock: MockLock) -> Learning {
    Learning::new(LearningPorts {
        courses: Arc::new(MockRepository::new()),
        lessons: Arc::new(MockRepository::new()),
        completions: Arc::new(MockRepository::new()),
        progress: Arc::new(MockRepository::new()),
        unit_of_work: Arc::new(uow),
        lock: Arc::new(lock),
    })
}

/// A course of three lessons (ids 11, 12, 13) and the learner's results in them.
struct World {
    learner: Uuid,
    course: Uuid,
    /// Every lesson the database knows (the course's, and any other).
    lessons: Vec<Lesson>,
    results: Vec<LessonResult>,
}

fn world() -> World {
    let course = Uuid::now_v7();
    let lessons: Vec<Lesson> = (1..=3)
        .map(|p| Lesson { id: 10 + i64::from(p), course_id: course, position: p, title: format!("lesson {p}") })
        .collect();
    let results = lessons.iter().map(|l| LessonResult { lesson: l.id, score: 70 + l.position }).collect();
    World { learner: Uuid::now_v7(), course, lessons, results }
}

/// A transaction over `w` in which the learner has `earlier` completions of other courses and the lesson rows
/// fail from the `fail_at`-th on (1-based), with `failure`.
fn completion_tx(w: &World, log: &Log, earlier: u64, fail_at: Option<(usize, RepoError)>) -> MockTx {
    let mut tx = MockTx::new();
    let mut courses = MockRepository::<Course>::new();
    let course = w.course;
    courses.expect_exists().withf(move |id| *id == course).times(1).returning(|_| Ok(true));
    hand_out(&mut tx, courses);

    let mut completions = MockRepository::<Completion>::new();
    let (learner, log2) = (w.learner, log.clone());
    completions
        .expect_count()
        .withf(move |f| {
            f.len() == 2
                && f.contains(&Filter::Eq(CompletionField::learner_id, Value::Uuid(learner)))
                && f.contains(&Filter::Eq(CompletionField::course_id, Value::Uuid(course)))
        })
        .times(1)
        .returning(|_| Ok(0));
    completions
        .expect_count()
        .withf(move |f| *f == [Filter::Eq(CompletionField::learner_id, Value::Uuid(learner))])
        .times(1)
        .returning(move |_| Ok(earlier));
    completions.expect_create().times(1).returning(move |n| {
        note(&log2, format!("completion #{} score {}", n.number, n.score));
        Ok(Completion::build(Uuid::now_v7(), n, Utc::now()))
    });
    hand_out(&mut tx, completions);

    let mut lessons = MockRepository::<Lesson>::new();
    let n = w.lessons.iter().filter(|l| l.course_id == course).count() as u64;
    lessons
        .expect_count()
        .withf(move |f| *f == [Filter::Eq(LessonField::course_id, Value::Uuid(course))])
        .times(1)
        .returning(move |_| Ok(n));
    let known = w.lessons.clone();
    lessons.expect_find_by_id().returning(move |id| Ok(known.iter().find(|l| l.id == *id).cloned()));
    hand_out(&mut tx, lessons);

    let mut progress = MockRepository::<Progress>::new();
    let (log3, mut written, mut fail_at) = (log.clone(), 0usize, fail_at);
    progress.expect_create().returning(move |n| {
        written += 1;
        if let Some((at, _)) = &fail_at
            && written >= *at
        {
            note(&log3, format!("lesson row {} failed", n.lesson_id));
            return Err(fail_at.take().expect("one failure").1);
        }
        note(&log3, format!("lesson row {} score {}", n.lesson_id, n.score));
        Ok(Progress::build(0, n, Utc::now()))
    });
    hand_out(&mut tx, progress);
    tx
}

#[tokio::test]
async fn a_completion_takes_the_learners_lock_and_writes_everything_in_one_unit_of_work() {
    let w = world();
    let log = Log::default();
    let mut tx = completion_tx(&w, &log, 2, None);
    expect_end(&mut tx, &log, true);
    let learning = service(unit_of_work(&log, move || tx), granting_lock(w.learner, &log));
    let done = learning.complete_course(w.learner, w.course, &w.results).await.unwrap();
    assert_eq!((done.learner_id, done.course_id, done.number, done.score), (w.learner, w.course, 3, 72));
    assert_eq!(
        *log.lock().unwrap(),
        [
            "acquire",
            "begin",
            "completion #3 score 72",
            "lesson row 11 score 71",
            "lesson row 12 score 72",
            "lesson row 13 score 73",
            "commit",
            "release",
        ]
    );
}

#[tokio::test]
async fn a_lesson_row_failing_midway_rolls_the_completion_back_and_releases_the_lock() {
    let w = world();
    let log = Log::default();
    let lost = RepoError::Unavailable { backend: "postgres", reason: "connection reset".into() };
    let mut tx = completion_tx(&w, &log, 0, Some((2, lost)));
    expect_end(&mut tx, &log, false);
    let learning = service(unit_of_work(&log, move || tx), granting_lock(w.learner, &log));
    let err = learning.complete_course(w.learner, w.course, &w.results).await.unwrap_err();
    assert!(matches!(err, LearningError::Unavailable(ref m) if m.contains("connection reset")), "{err:?}");
    assert_eq!(
        *log.lock().unwrap(),
        [
            "acquire",
            "begin",
            "completion #1 score 72",
            "lesson row 11 score 71",
            "lesson row 12 failed",
            "rollback",
            "release"
        ]
    );
}

#[tokio::test]
async fn a_lesson_of_another_course_midway_is_not_in_course_and_rolled_back() {
    let mut w = world();
    let log = Log::default();
    // The course still has three lessons; the second result names a lesson of another course.
    w.lessons.push(Lesson { id: 99, course_id: Uuid::now_v7(), position: 1, title: "elsewhere".into() });
    w.results[1].lesson = 99;
    let mut tx = completion_tx(&w, &log, 0, None);
    expect_end(&mut tx, &log, false);
    let learning = service(unit_of_work(&log, move || tx), granting_lock(w.learner, &log));
    let err = learning.complete_course(w.learner, w.course, &w.results).await.unwrap_err();
    assert!(matches!(err, LearningError::NotInCourse { lesson: 99, course } if course == w.course), "{err:?}");
    assert_eq!(
        *log.lock().unwrap(),
        ["acquire", "begin", "completion #1 score 72", "lesson row 11 score 71", "rollback", "release"]
    );
}

#[tokio::test]
async fn a_course_completed_before_is_already_completed_and_nothing_is_written() {
    let w = world();
    let log = Log::default();
    let mut tx = MockTx::new();
    let mut courses = MockRepository::<Course>::new();
    courses.expect_exists().times(1).returning(|_| Ok(true));
    hand_out(&mut tx, courses);
    let mut completions = MockRepository::<Completion>::new();
    completions.expect_count().times(1).returning(|_| Ok(1));
    completions.expect_create().times(0);
    hand_out(&mut tx, completions);
    let mut progress = MockRepository::<Progress>::new();
    progress.expect_create().times(0);
    hand_out(&mut tx, progress);
    hand_out(&mut tx, MockRepository::<Lesson>::new());
    expect_end(&mut tx, &log, false);
    let learning = service(unit_of_work(&log, move || tx), granting_lock(w.learner, &log));
    let err = learning.complete_course(w.learner, w.course, &w.results).await.unwrap_err();
    assert!(
        matches!(err, LearningError::AlreadyCompleted { learner, course } if learner == w.learner && course == w.course),
        "{err:?}"
    );
    assert_eq!(*log.lock().unwrap(), ["acquire", "begin", "rollback", "release"]);
}

#[tokio::test]
async fn a_learner_locked_by_another_completion_is_busy_and_no_unit_of_work_begins() {
    let w = world();
    let mut lock = MockLock::new();
    lock.expect_acquire()
        .times(1)
        .returning(|_, _, wait| Err(KvError::Timeout { operation: "acquire lock", after: wait }));
    lock.expect_release().times(0);
    // A unit of work without expectations fails the test if it is begun.
    let learning = service(MockUnitOfWork::new(), lock);
    let err = learning.complete_course(w.learner, w.course, &w.results).await.unwrap_err();
    assert!(matches!(err, LearningError::Busy(l) if l == w.learner), "{err:?}");
}

#[tokio::test]
async fn an_unreachable_lock_service_is_unavailable() {
    let w = world();
    let mut lock = MockLock::new();
    lock.expect_acquire()
        .returning(|_, _, _| Err(KvError::Unavailable { backend: "redis", reason: "connection refused".into() }));
    let learning = service(MockUnitOfWork::new(), lock);
    let err = learning.complete_course(w.learner, w.course, &w.results).await.unwrap_err();
    assert!(matches!(err, LearningError::Unavailable(ref m) if m.contains("connection refused")), "{err:?}");
}

#[tokio::test]
async fn invalid_results_touch_neither_the_lock_nor_the_database() {
    // Mocks without expectations fail the test on any call.
    let learning = service(MockUnitOfWork::new(), MockLock::new());
    let w = world();
    let twice = [w.results[0], w.results[0]];
    let too_high = [LessonResult { lesson: 11, score: 101 }];
    let negative = [LessonResult { lesson: 11, score: -1 }];
    for bad in [&[][..], &twice, &too_high, &negative] {
        let err = learning.complete_course(w.learner, w.course, bad).await.unwrap_err();
        assert!(matches!(err, LearningError::Invalid(_)), "{bad:?}: {err:?}");
    }
}

#[tokio::test]
async fn a_taken_slug_is_slug_taken_and_no_lesson_is_created() {
    let log = Log::default();
    let tx = {
        let log = log.clone();
        move || {
            let mut tx = MockTx::new();
            let mut courses = MockRepository::<Course>::new();
            courses.expect_create().withf(|n| n.slug == "rust-101").times(1).returning(|_| {
                Err(RepoError::Conflict { entity: "course", kind: ConflictKind::Duplicate { field: "slug".into() } })
            });
            hand_out(&mut tx, courses);
            let mut lessons = MockRepository::<Lesson>::new();
            lessons.expect_create().times(0);
            hand_out(&mut tx, lessons);
            expect_end(&mut tx, &log, false);
            tx
        }
    };
    let learning = service(unit_of_work(&log, tx), MockLock::new());
    let err = learning.create_course("rust-101", "Rust", &["Ownership"]).await.unwrap_err();
    assert!(matches!(err, LearningError::SlugTaken(ref s) if s == "rust-101"), "{err:?}");
    assert_eq!(*log.lock().unwrap(), ["begin", "rollback"]);
}

#[tokio::test]
async fn the_history_asks_for_the_learners_rows_newest_first_after_the_cursor() {
    let learner = Uuid::now_v7();
    let cursor = cpc_data::ports::Cursor::from_string("abc");
    let mut progress = MockRepository::<Progress>::new();
    let expected = cursor.clone();
    progress
        .expect_find_page()
        .withf(move |q| {
            q.filters == [Filter::Eq(ProgressField::learner_id, Value::Uuid(learner))]
                && q.sort
                    == [
                        Sort { field: ProgressField::completed_at, direction: Direction::Desc },
                        Sort { field: ProgressField::id, direction: Direction::Desc },
                    ]
                && q.page == PageRequest::Keyset { after: Some(expected.clone()), limit: 20 }
        })
        .times(1)
        .returning(|_| Ok(cpc_data::ports::Page { items: vec![], total: None, next_cursor: None }));
    let learning = Learning::new(LearningPorts {
        courses: Arc::new(MockRepository::new()),
        lessons: Arc::new(MockRepository::new()),
        completions: Arc::new(MockRepository::new()),
        progress: Arc::new(progress),
        unit_of_work: Arc::new(MockUnitOfWork::new()),
        lock: Arc::new(MockLock::new()),
    });
    let page = learning.history(learner, Some(cursor), 20).await.unwrap();
    assert!(page.items.is_empty() && page.next_cursor.is_none());
}
