//! The learning demo: a learner, three courses with their lessons, two concurrent completions of one course
//! (the learner's lock lets exactly one record it), a completion refused midway that leaves nothing behind, and
//! the learner's history paged newest first while a new completion lands between two pages.

use std::io::Write;
use std::sync::Arc;

use cpc_data::domain::NewUser;
use cpc_data::ports::{Filter, RecordStoreExt};
use cpc_data::wiring::Ports;

use crate::common::{FlowError, run_tag};
use crate::records::{Completion, CompletionField, Lesson, Progress, ProgressField};
use crate::service::{Learning, LearningError, LearningPorts, LessonResult};

/// What the demo computed, for tests.
#[cfg_attr(not(test), allow(dead_code, reason = "read by the tests"))]
#[derive(Debug)]
pub struct Outcome {
    /// How many lesson rows each history page held.
    pub pages: Vec<usize>,
    /// The lesson rows seen across the pages, in order (ids).
    pub seen: Vec<i64>,
    /// The learner's completions' numbers, in order.
    pub numbers: Vec<i32>,
}

fn results(lessons: &[Lesson], score: i32) -> Vec<LessonResult> {
    lessons.iter().enumerate().map(|(i, l)| LessonResult { lesson: l.id, score: score + i as i32 }).collect()
}

/// Runs the demo, writing what happens to `out`.
pub async fn run(ports: &Ports, out: &mut impl Write) -> Result<Outcome, FlowError> {
    writeln!(out, "wired: {}", ports.description)?;
    let learning = Arc::new(Learning::new(LearningPorts::from_store(&*ports.records, ports.lock.clone())?));
    let tag = run_tag();
    let learner =
        ports.users.create(NewUser::new(&format!("learner{tag}"), &format!("learner{tag}@example.org"))?).await?;
    let me = *learner.id.as_uuid();
    writeln!(out, "learner: {}", learner.username)?;

    let (rust, rust_lessons) = learning
        .create_course(&format!("rust-101-{tag}"), "Rust 101", &["Ownership", "Borrowing", "Lifetimes"])
        .await?;
    let (sql, sql_lessons) = learning.create_course(&format!("sql-101-{tag}"), "SQL 101", &["SELECT", "JOIN"]).await?;
    let (tx, tx_lessons) = learning.create_course(&format!("tx-101-{tag}"), "Transactions", &["ACID"]).await?;
    for course in [&rust, &sql, &tx] {
        let found = learning.course_by_slug(&course.slug).await?.ok_or("a course was not found by its slug")?;
        let lessons = learning.lessons(found.id).await?;
        let titles: Vec<String> = lessons.iter().map(|l| format!("{}. {} (#{})", l.position, l.title, l.id)).collect();
        writeln!(out, "course {}: {}", course.title, titles.join(", "))?;
    }
    match learning.create_course(&format!("rust-101-{tag}"), "Rust again", &["Again"]).await {
        Err(e @ LearningError::SlugTaken(_)) => writeln!(out, "conflict: {e}")?,
        other => return Err(format!("expected a taken slug, got {other:?}").into()),
    }

    // Two completions of one course by one learner at once: the learner's lock serialises them.
    let rust_results = results(&rust_lessons, 80);
    let (a, b) = tokio::join!(
        learning.complete_course(me, rust.id, &rust_results),
        learning.complete_course(me, rust.id, &rust_results)
    );
    let (done, already) = match (a, b) {
        (Ok(c), Err(LearningError::AlreadyCompleted { .. })) | (Err(LearningError::AlreadyCompleted { .. }), Ok(c)) => {
            (c, "already completed")
        }
        other => return Err(format!("expected one completion and one refusal, got {other:?}").into()),
    };
    let completions = ports.records.repo::<Completion>()?;
    let progress = ports.records.repo::<Progress>()?;
    let of_rust = [Filter::Eq(CompletionField::course_id, rust.id.into())];
    writeln!(
        out,
        "concurrent completions: #{} recorded with score {}, the other {already}; {} completion row(s) for {}",
        done.number,
        done.score,
        completions.count(&of_rust).await?,
        rust.title
    )?;

    // A completion whose second lesson row fails (a lesson of another course) leaves nothing behind.
    let mut wrong = results(&sql_lessons, 70);
    wrong[1].lesson = rust_lessons[0].id;
    let mine_c = [Filter::Eq(CompletionField::learner_id, me.into())];
    let mine_p = [Filter::Eq(ProgressField::learner_id, me.into())];
    match learning.complete_course(me, sql.id, &wrong).await {
        Err(e @ LearningError::NotInCourse { .. }) => writeln!(
            out,
            "refused midway: {e}; still {} completion(s) and {} lesson row(s)",
            completions.count(&mine_c).await?,
            progress.count(&mine_p).await?
        )?,
        other => return Err(format!("expected a lesson of another course to be refused, got {other:?}").into()),
    }
    let sql_done = learning.complete_course(me, sql.id, &results(&sql_lessons, 90)).await?;
    writeln!(out, "completed {}: #{} with score {}", sql.title, sql_done.number, sql_done.score)?;
    match learning.complete_course(uuid::Uuid::now_v7(), tx.id, &results(&tx_lessons, 50)).await {
        Err(e @ LearningError::UnknownLearner(_)) => writeln!(out, "refused: {e}")?,
        other => return Err(format!("expected an unknown learner to be refused, got {other:?}").into()),
    }

    // The history, newest first, two rows a page; a completion lands after the first page.
    let (mut pages, mut seen, mut cursor) = (Vec::new(), Vec::new(), None);
    loop {
        let page = learning.history(me, cursor, 2).await?;
        let rows: Vec<String> =
            page.items.iter().map(|p| format!("lesson #{} scored {}", p.lesson_id, p.score)).collect();
        writeln!(out, "history page {}: {}", pages.len() + 1, rows.join("; "))?;
        pages.push(page.items.len());
        seen.extend(page.items.iter().map(|p| p.id));
        if pages.len() == 1 {
            let late = learning.complete_course(me, tx.id, &results(&tx_lessons, 100)).await?;
            writeln!(out, "completed {} between pages: #{}", tx.title, late.number)?;
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let distinct: std::collections::HashSet<i64> = seen.iter().copied().collect();
    if distinct.len() != seen.len() {
        return Err(format!("a history row was repeated across pages: {seen:?}").into());
    }
    let newest = learning.history(me, None, 1).await?;
    let newest = newest.items.first().ok_or("the history is empty")?;
    writeln!(
        out,
        "history: {} rows over {} pages, none repeated; newest now lesson #{}",
        seen.len(),
        pages.len(),
        newest.lesson_id
    )?;
    let numbers = learning.completions(me).await?.iter().map(|c| c.number).collect();
    writeln!(out, "completions: {numbers:?}")?;
    Ok(Outcome { pages, seen, numbers })
}
