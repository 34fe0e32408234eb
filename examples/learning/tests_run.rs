//! The learning demo on the embedded default and on PostgreSQL + Redis (the app's migrations run beside the
//! library's), checked by what it printed and what it computed.

use crate::app_data;
use crate::common::testing::{Wired, assert_printed, embedded_with, on_servers_with, printed};
use crate::demo;

async fn check(wired: Wired, backend: &str) {
    let (outcome, log) = printed(&wired, async |ports, out| demo::run(ports, out).await).await;
    assert_printed(
        &log,
        &[
            backend,
            "course Rust 101: 1. Ownership (#",
            "2. Borrowing (#",
            "course SQL 101: 1. SELECT (#",
            "conflict: a course with slug rust-101-",
            "already exists",
            // The learner's lock: one of two concurrent completions records, the other sees it.
            "concurrent completions: #1 recorded with score 81, the other already completed; 1 completion row(s)",
            // The unit of work: the completion written before the failing lesson row is gone again.
            "refused midway: lesson ",
            "is not part of course",
            "still 1 completion(s) and 3 lesson row(s)",
            "completed SQL 101: #2 with score 90",
            "refused: no learner ",
            "completed Transactions between pages: #3",
            "history: 5 rows over 3 pages, none repeated",
            "completions: [1, 2, 3]",
        ],
    );
    // Newest first, and the completion recorded between pages did not shift them: the SQL rows (page 1), then
    // the Rust rows (pages 2 and 3), each page in descending order.
    assert_eq!(outcome.pages, [2, 2, 1], "{log}");
    assert!(outcome.seen.windows(2).all(|w| w[0] > w[1]), "newest first: {:?}\n{log}", outcome.seen);
    assert_eq!(outcome.numbers, [1, 2, 3], "{log}");
}

#[tokio::test]
async fn the_demo_runs_on_the_embedded_default() {
    check(embedded_with("learning", &app_data()).await, "wired: SQLite ").await;
}

#[tokio::test]
async fn the_demo_runs_on_postgres_and_redis() {
    check(on_servers_with("learning", &app_data()).await, "wired: PostgreSQL ").await;
}

#[tokio::test]
async fn concurrent_completions_of_one_learner_are_numbered_one_by_one_on_postgres_and_redis() {
    // No unique index guards a learner's completion numbers: only the learner's lock (Redis here) keeps two
    // completions on PostgreSQL from reading the same count.
    use std::sync::Arc;

    use cpc_data::domain::NewUser;

    use crate::service::{Learning, LearningPorts, LessonResult};

    let wired = on_servers_with("learning", &app_data()).await;
    let ports = &wired.ports;
    let learning = Arc::new(Learning::new(LearningPorts::from_store(&*ports.records, ports.lock.clone()).unwrap()));
    let ada = ports.users.create(NewUser::new("ada", "ada@example.org").unwrap()).await.unwrap();
    let ada = *ada.id.as_uuid();
    let mut attempts = Vec::new();
    for i in 0..6 {
        let (course, lessons) =
            learning.create_course(&format!("course-{i}"), "Course", &["one", "two"]).await.unwrap();
        // Each course twice at the same time: the second is refused once the first is recorded.
        for score in [50, 60] {
            let results: Vec<LessonResult> = lessons.iter().map(|l| LessonResult { lesson: l.id, score }).collect();
            let learning = learning.clone();
            attempts.push(tokio::spawn(async move { learning.complete_course(ada, course.id, &results).await }));
        }
    }
    let outcomes: Vec<_> = futures::future::join_all(attempts).await.into_iter().map(Result::unwrap).collect();
    let mut numbers: Vec<i32> = outcomes.iter().filter_map(|o| o.as_ref().ok().map(|c| c.number)).collect();
    numbers.sort_unstable();
    assert_eq!(numbers, [1, 2, 3, 4, 5, 6], "{outcomes:?}");
    let refused =
        outcomes.iter().filter(|o| matches!(o, Err(crate::service::LearningError::AlreadyCompleted { .. }))).count();
    assert_eq!(refused, 6, "{outcomes:?}");
    let history = learning.history(ada, None, 100).await.unwrap();
    assert_eq!(history.items.len(), 12, "two lesson rows per completion, none from a refused one");
}
