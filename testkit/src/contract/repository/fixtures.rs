//! Test data for the data-port suites: names unique per case (so cases never see each other's rows, even on a
//! shared database), and assertions on the error variants the ports promise.

use std::fmt::Debug;

use chrono::{DateTime, SubsecRound, TimeZone, Utc};
use cpc_domain::{
    EntityKind, Money, NewCustomer, NewTransaction, NewUser, Timestamp, TransactionKind, UserId, Version,
};
use cpc_ports::{ConflictKind, CustomerField, Filter, RepoError, UserField};
use uuid::Uuid;

/// Unique names for one case: a random tag (`t` + 10 hex digits) that starts every username and e-mail.
pub(crate) struct Names {
    tag: String,
    domain: String,
}

impl Names {
    /// Names for the case called `case` (which ends up in e-mail domains, to help debugging).
    pub(crate) fn new(case: &str) -> Self {
        let hex = Uuid::new_v4().simple().to_string();
        Self { tag: format!("t{}", &hex[..10]), domain: format!("{}.example.org", case.replace('_', "-")) }
    }

    /// The tag: a prefix of every username and e-mail of this case.
    pub(crate) fn tag(&self) -> &str {
        &self.tag
    }

    /// The `i`th username.
    pub(crate) fn username(&self, i: usize) -> String {
        format!("{}-{i:03}", self.tag)
    }

    /// The `i`th e-mail address (lowercase).
    pub(crate) fn email(&self, i: usize) -> String {
        format!("{}.{i:03}@{}", self.tag, self.domain)
    }

    /// The `i`th new user.
    pub(crate) fn user(&self, i: usize) -> NewUser {
        NewUser::new(&self.username(i), &self.email(i)).expect("valid fixture user")
    }

    /// The `i`th new customer, called `name`.
    pub(crate) fn customer(&self, i: usize, name: &str) -> NewCustomer {
        NewCustomer::new(&self.email(i), name, None).expect("valid fixture customer")
    }

    /// An entity kind unique to this case; `suffix` tells several apart.
    pub(crate) fn kind(&self, suffix: &str) -> EntityKind {
        EntityKind::parse(&format!("{}{suffix}", self.tag)).expect("valid fixture kind")
    }

    /// Selects this case's users.
    pub(crate) fn users(&self) -> Filter<UserField> {
        Filter::Prefix(UserField::Username, self.tag.clone())
    }

    /// Selects this case's customers.
    pub(crate) fn customers(&self) -> Filter<CustomerField> {
        Filter::Prefix(CustomerField::Email, self.tag.clone())
    }
}

/// `minor` euro cents.
pub(crate) fn eur(minor: i64) -> Money {
    Money::new(minor, "EUR").expect("valid money")
}

/// A fixed instant, plus `hours` hours (microsecond precision, as databases store it).
pub(crate) fn at_hour(hours: i64) -> Timestamp {
    let base: DateTime<Utc> = Utc.with_ymd_and_hms(2024, 3, 1, 12, 0, 0).single().expect("valid date");
    base + chrono::Duration::hours(hours)
}

/// The current time, truncated to microseconds.
pub(crate) fn micros_now() -> Timestamp {
    Utc::now().trunc_subsecs(6)
}

/// A credit of `minor` cents for `user`, at `when`.
pub(crate) fn entry(user: UserId, minor: i64, when: Timestamp) -> NewTransaction {
    NewTransaction::new(user, eur(minor), TransactionKind::Credit, "fixture", when).expect("valid transaction")
}

/// Asserts a `Conflict` on `entity` whose kind passes `check`.
#[track_caller]
pub(crate) fn assert_conflict<T: Debug>(
    result: Result<T, RepoError>,
    entity: &str,
    check: impl FnOnce(&ConflictKind) -> bool,
    what: &str,
) {
    match result {
        Err(RepoError::Conflict { entity: e, kind }) if e == entity && check(&kind) => {}
        other => panic!("{what}: expected a conflict on {entity}, got {other:?}"),
    }
}

/// Asserts a `Duplicate` conflict on `entity` naming `field`.
#[track_caller]
pub(crate) fn assert_duplicate<T: Debug>(result: Result<T, RepoError>, entity: &str, field: &str, what: &str) {
    assert_conflict(result, entity, |k| matches!(k, ConflictKind::Duplicate { field: f } if f == field), what);
}

/// Asserts a `Validation` error naming `field` with exactly `rule` (e.g. [`RepoError::MISSING_REFERENCE`]), so
/// every implementation reports broken references in the same words.
#[track_caller]
pub(crate) fn assert_invalid_reference<T: Debug>(result: Result<T, RepoError>, field: &str, rule: &str, what: &str) {
    match result {
        Err(RepoError::Validation(e)) if e.field == field && e.rule == rule => {}
        other => panic!("{what}: expected a validation error on {field} ({rule}), got {other:?}"),
    }
}

/// Asserts a `StaleVersion` conflict on `entity` with these versions.
#[track_caller]
pub(crate) fn assert_stale<T: Debug>(
    result: Result<T, RepoError>,
    entity: &str,
    expected: Version,
    actual: Version,
    what: &str,
) {
    assert_conflict(
        result,
        entity,
        |k| matches!(k, ConflictKind::StaleVersion { expected: e, actual: a } if *e == expected && *a == actual),
        what,
    );
}

/// Asserts a `Validation` error naming `field`.
#[track_caller]
pub(crate) fn assert_validation<T: Debug>(result: Result<T, RepoError>, field: &str, what: &str) {
    match result {
        Err(RepoError::Validation(e)) if e.field == field => {}
        other => panic!("{what}: expected a validation error naming `{field}`, got {other:?}"),
    }
}
