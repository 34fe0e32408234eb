//! The service over the testkit's in-memory fakes: the app's records registered with an `InMemoryDatabase`
//! (their unique keys and references enforced as the databases do), its units of work, and a real in-process
//! lock. Concurrent completions of one learner, a completion failing midway, the history paged while rows land.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use cpc_data::domain::NewUser;
use cpc_data::ports::{Filter, Lock, RecordStoreExt, RepoError, Repository};
use cpc_testkit::memory::{InMemoryDatabase, InMemoryLock};
use uuid::Uuid;

use crate::records::{Completion, CompletionField, Course, Lesson, NewLesson, NewProgress, Progress, ProgressField};
use crate::service::{Learning, LearningError, LearningPorts, LessonResult};

struct Fixture {
    db: InMemoryDatabase,
    lock: Arc<InMemoryLock>,
    learning: Arc<Learning>,
}

fn fixture() -> Fixture {
    let db = InMemoryDatabase::new();
    db.register::<Course>();
    db.register::<Lesson>();
    db.register::<Completion>();
    db.register::<Progress>();
    let lock = Arc::new(InMemoryLock::default());
    let ports = LearningPorts::from_store(&db, lock.clone()).expect("the app's records are registered");
    Fixture { db, lock, learning: Arc::new(Learning::new(ports)) }
}

impl Fixture {
    async fn learner(&self, name: &str) -> Uuid {
        let user = self.db.users().create(NewUser::new(name, &format!("{name}@example.org")).unwrap()).await.unwrap();
        *user.id.as_uuid()
    }

    async fn course(&self, slug: &str, lessons: usize) -> (Course, Vec<Lesson>) {
        let titles: Vec<String> = (1..=lessons).map(|i| format!("lesson {i}")).collect();
        let titles: Vec<&str> = titles.iter().map(String::as_str).collect();
        self.learning.create_course(slug, slug, &titles).await.unwrap()
    }

    async fn completions(&self, learner: Uuid) -> u64 {
        let repo = self.db.repo::<Completion>().unwrap();
        repo.count(&[Filter::Eq(CompletionField::learner_id, learner.into())]).await.unwrap()
    }

    async fn lesson_rows(&self, learner: Uuid) -> u64 {
        let repo = self.db.repo::<Progress>().unwrap();
        repo.count(&[Filter::Eq(ProgressField::learner_id, learner.into())]).await.unwrap()
    }
}

fn results(lessons: &[Lesson], score: i32) -> Vec<LessonResult> {
    lessons.iter().map(|l| LessonResult { lesson: l.id, score }).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_completions_of_one_course_record_exactly_one() {
    let f = fixture();
    let ada = f.learner("ada").await;
    let (course, lessons) = f.course("rust-101", 3).await;
    let attempts = (0..2).map(|_| {
        let (learning, results) = (f.learning.clone(), results(&lessons, 90));
        tokio::spawn(async move { learning.complete_course(ada, course.id, &results).await })
    });
    let outcomes: Vec<_> = futures::future::join_all(attempts).await.into_iter().map(Result::unwrap).collect();
    let recorded = outcomes.iter().filter(|o| o.is_ok()).count();
    // The loser waited for the lock and then saw the winner's row: a clean refusal, not a collision.
    let refused = outcomes.iter().filter(|o| matches!(o, Err(LearningError::AlreadyCompleted { .. }))).count();
    assert_eq!((recorded, refused), (1, 1), "{outcomes:?}");
    assert_eq!(f.completions(ada).await, 1);
    assert_eq!(f.lesson_rows(ada).await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_completions_of_one_learner_are_numbered_without_gaps_or_repeats() {
    // The number is counted and written under the learner's lock; without it two completions would read the
    // same count and share a number (no unique index guards it).
    let f = fixture();
    let ada = f.learner("ada").await;
    let mut courses = Vec::new();
    for i in 0..6 {
        courses.push(f.course(&format!("course-{i}"), 2).await);
    }
    let attempts = courses.into_iter().map(|(course, lessons)| {
        let learning = f.learning.clone();
        tokio::spawn(async move { learning.complete_course(ada, course.id, &results(&lessons, 80)).await })
    });
    let mut numbers: Vec<i32> =
        futures::future::join_all(attempts).await.into_iter().map(|o| o.unwrap().unwrap().number).collect();
    numbers.sort_unstable();
    assert_eq!(numbers, [1, 2, 3, 4, 5, 6]);
    assert_eq!(f.lesson_rows(ada).await, 12);
}

#[tokio::test]
async fn a_completion_failing_midway_leaves_no_completion_and_no_lesson_row() {
    let f = fixture();
    let ada = f.learner("ada").await;
    let (course, lessons) = f.course("rust-101", 3).await;
    let (_, other) = f.course("sql-101", 1).await;
    // The completion row and the first lesson row are written before the second result fails.
    let mut of_another_course = results(&lessons, 90);
    of_another_course[1].lesson = other[0].id;
    let err = f.learning.complete_course(ada, course.id, &of_another_course).await.unwrap_err();
    assert!(matches!(err, LearningError::NotInCourse { lesson, .. } if lesson == other[0].id), "{err:?}");
    let mut unknown = results(&lessons, 90);
    unknown[2].lesson = 999_999;
    let err = f.learning.complete_course(ada, course.id, &unknown).await.unwrap_err();
    assert!(matches!(err, LearningError::UnknownLesson(999_999)), "{err:?}");
    assert_eq!((f.completions(ada).await, f.lesson_rows(ada).await), (0, 0));
    // Nothing half-written blocks the real completion, which is the learner's first.
    let done = f.learning.complete_course(ada, course.id, &results(&lessons, 90)).await.unwrap();
    assert_eq!(done.number, 1);
    assert_eq!((f.completions(ada).await, f.lesson_rows(ada).await), (1, 3));
}

#[tokio::test]
async fn the_history_pages_newest_first_without_gaps_or_repeats_while_rows_land() {
    let f = fixture();
    let (ada, bob) = (f.learner("ada").await, f.learner("bob").await);
    let mut courses = Vec::new();
    for (slug, n) in [("a", 3), ("b", 2), ("c", 4), ("late", 2)] {
        courses.push(f.course(slug, n).await);
    }
    for (course, lessons) in &courses[..3] {
        f.learning.complete_course(ada, course.id, &results(lessons, 75)).await.unwrap();
    }
    f.learning.complete_course(bob, courses[0].0.id, &results(&courses[0].1, 50)).await.unwrap();
    let before = f.learning.history(ada, None, 1000).await.unwrap().items;
    assert_eq!(before.len(), 9);
    assert!(before.iter().all(|p| p.learner_id == ada), "only the learner's rows");
    assert!(before.windows(2).all(|w| (w[0].completed_at, w[0].id) > (w[1].completed_at, w[1].id)), "newest first");

    let (mut seen, mut cursor, mut pages) = (Vec::new(), None, 0);
    loop {
        let page = f.learning.history(ada, cursor, 4).await.unwrap();
        assert!(page.items.len() <= 4);
        seen.extend(page.items.iter().map(|p| p.id));
        pages += 1;
        if pages == 1 {
            // A completion after the first page: newer than every row, so the later pages do not shift.
            let (late, lessons) = &courses[3];
            f.learning.complete_course(ada, late.id, &results(lessons, 99)).await.unwrap();
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, before.iter().map(|p| p.id).collect::<Vec<_>>(), "every row once, in order");
    let now = f.learning.history(ada, None, 2).await.unwrap().items;
    assert!(now.iter().all(|p| p.score == 99), "the late rows are the newest: {now:?}");
}

#[tokio::test]
async fn the_fake_enforces_the_declared_references() {
    let f = fixture();
    let ada = f.learner("ada").await;
    let lessons = f.db.repo::<Lesson>().unwrap();
    let orphan = NewLesson { course_id: Uuid::now_v7(), position: 1, title: "orphan".into() };
    let err = lessons.create(orphan).await.unwrap_err();
    assert!(matches!(&err, RepoError::Validation(v) if v.field == "course_id"), "{err:?}");
    let (course, course_lessons) = f.course("rust-101", 1).await;
    let done = f.learning.complete_course(ada, course.id, &results(&course_lessons, 60)).await.unwrap();
    // A lesson row needs its completion; a lesson with rows cannot be deleted.
    let row = NewProgress { learner_id: ada, lesson_id: course_lessons[0].id, completion_id: Uuid::now_v7(), score: 1 };
    let err = f.db.repo::<Progress>().unwrap().create(row).await.unwrap_err();
    assert!(matches!(&err, RepoError::Validation(v) if v.field == "completion_id"), "{err:?}");
    let err = lessons.delete(&course_lessons[0].id).await.unwrap_err();
    assert!(matches!(&err, RepoError::Validation(v) if v.field == "lesson_id"), "{err:?}");
    assert!(f.db.repo::<Completion>().unwrap().exists(&done.id).await.unwrap());
    // A learner who is no user is refused, and leaves nothing behind.
    let stranger = Uuid::now_v7();
    let err = f.learning.complete_course(stranger, course.id, &results(&course_lessons, 60)).await.unwrap_err();
    assert!(matches!(err, LearningError::UnknownLearner(l) if l == stranger), "{err:?}");
    assert_eq!(f.completions(stranger).await, 0);
}

#[tokio::test]
async fn a_taken_slug_is_slug_taken_and_its_lessons_are_not_stored() {
    let f = fixture();
    let (course, _) = f.course("rust-101", 2).await;
    let err = f.learning.create_course("rust-101", "Again", &["x", "y", "z"]).await.unwrap_err();
    assert!(matches!(err, LearningError::SlugTaken(ref s) if s == "rust-101"), "{err:?}");
    assert_eq!(f.db.repo::<Lesson>().unwrap().count(&[]).await.unwrap(), 2);
    let lessons = f.learning.lessons(course.id).await.unwrap();
    assert_eq!(lessons.iter().map(|l| l.position).collect::<Vec<_>>(), [1, 2]);
    let ids: HashSet<i64> = lessons.iter().map(|l| l.id).collect();
    assert_eq!(ids.len(), 2, "database-assigned keys are distinct");
}

#[tokio::test(start_paused = true)]
async fn a_learner_locked_elsewhere_is_busy_after_the_wait_and_nothing_is_written() {
    let f = fixture();
    let ada = f.learner("ada").await;
    let (course, lessons) = f.course("rust-101", 1).await;
    let key = Learning::learner_lock(ada).unwrap();
    let _held = f.lock.try_acquire(&key, Duration::from_secs(60)).await.unwrap().expect("free");
    let err = f.learning.complete_course(ada, course.id, &results(&lessons, 60)).await.unwrap_err();
    assert!(matches!(err, LearningError::Busy(l) if l == ada), "{err:?}");
    assert_eq!(f.completions(ada).await, 0);
}
