//! Cases on [`UserRepository`]: creation, lookups, uniqueness, optimistic updates, deletion. Each is generic, so
//! it runs against a concrete repository or `dyn UserRepository` alike.

use chrono::{Duration, Timelike, Utc};
use cpc_domain::{Email, NewUser, UpdateUser, UserId, Username, Version};
use cpc_ports::{RepoError, RepositoryExt, UserRepository};

use super::fixtures::{Names, assert_duplicate, assert_stale};

/// How far the database clock may be from ours.
const CLOCK_SLACK: Duration = Duration::seconds(5);

/// `create` returns the row as given, with an id, [`Version::FIRST`], and `created_at == updated_at` close to
/// now at microsecond precision.
pub async fn create_returns_the_row_with_first_version_and_timestamps<R: UserRepository + ?Sized>(users: &R) {
    let names = Names::new("create_returns_the_row_with_first_version_and_timestamps");
    let new = names.user(1);
    let before = Utc::now() - CLOCK_SLACK;
    let user = users.create(new.clone()).await.expect("create");
    let after = Utc::now() + CLOCK_SLACK;
    assert_eq!((&user.username, &user.email), (&new.username, &new.email), "fields as given");
    assert_eq!(user.version, Version::FIRST, "a new row has the first version");
    assert_eq!(user.created_at, user.updated_at, "created_at and updated_at start equal");
    assert!(before <= user.created_at && user.created_at <= after, "created_at {} is not now", user.created_at);
    assert_eq!(user.created_at.nanosecond() % 1000, 0, "timestamps are stored with microsecond precision");
    let other = users.create(names.user(2)).await.expect("create another");
    assert_ne!(user.id, other.id, "each row gets its own id");
}

/// `find_by_id` returns exactly what `create` returned; unknown ids are `None` (and `NotFound` for `get`).
pub async fn find_by_id_round_trips_and_unknown_ids_are_none<R: UserRepository + ?Sized>(users: &R) {
    let names = Names::new("find_by_id_round_trips_and_unknown_ids_are_none");
    let user = users.create(names.user(1)).await.expect("create");
    assert_eq!(users.find_by_id(&user.id).await.expect("find"), Some(user.clone()), "round trip");
    assert!(users.exists(&user.id).await.expect("exists"), "exists after create");
    let unknown = UserId::new();
    assert_eq!(users.find_by_id(&unknown).await.expect("find unknown"), None, "unknown id");
    assert!(!users.exists(&unknown).await.expect("exists unknown"), "unknown id does not exist");
    match users.get(&unknown).await {
        Err(RepoError::NotFound { entity: "user", id }) => assert_eq!(id, unknown.to_string()),
        other => panic!("get(unknown): expected NotFound, got {other:?}"),
    }
}

/// A second user with the same e-mail in another case is a `Duplicate` conflict naming `email`; lookups by
/// e-mail ignore case.
pub async fn duplicate_email_in_another_case_is_a_conflict_naming_email<R: UserRepository + ?Sized>(users: &R) {
    let names = Names::new("duplicate_email_in_another_case_is_a_conflict_naming_email");
    let mixed = names.email(1).replacen(names.tag(), &names.tag().to_uppercase(), 1);
    let first = users.create(NewUser::new(&names.username(1), &mixed).expect("user")).await.expect("create");
    let shouting = NewUser::new(&names.username(2), &names.email(1).to_uppercase()).expect("user");
    assert_duplicate(users.create(shouting).await, "user", "email", "same e-mail, other case");
    assert_eq!(users.count(&[names.users()]).await.expect("count"), 1, "the duplicate was not stored");
    let lower = Email::parse(&names.email(1)).expect("email");
    assert_eq!(users.find_by_email(&lower).await.expect("find"), Some(first.clone()), "lookup ignores case");
    assert_eq!(first.email.as_str(), mixed, "the address is kept as typed");
}

/// A second user with a taken username is a `Duplicate` conflict naming `username`.
pub async fn duplicate_username_is_a_conflict_naming_username<R: UserRepository + ?Sized>(users: &R) {
    let names = Names::new("duplicate_username_is_a_conflict_naming_username");
    users.create(names.user(1)).await.expect("create");
    let same_name = NewUser::new(&names.username(1), &names.email(2)).expect("user");
    assert_duplicate(users.create(same_name).await, "user", "username", "taken username");
    assert_eq!(users.count(&[names.users()]).await.expect("count"), 1, "the duplicate was not stored");
}

/// `find_by_username` matches exactly; `find_by_email` finds nothing for an unknown address.
pub async fn find_by_username_is_exact<R: UserRepository + ?Sized>(users: &R) {
    let names = Names::new("find_by_username_is_exact");
    let name = format!("{}-MiXed", names.tag());
    let user = users.create(NewUser::new(&name, &names.email(1)).expect("user")).await.expect("create");
    let exact = Username::parse(&name).expect("username");
    assert_eq!(users.find_by_username(&exact).await.expect("find"), Some(user), "exact match");
    let lower = Username::parse(&name.to_lowercase()).expect("username");
    assert_eq!(users.find_by_username(&lower).await.expect("find lower"), None, "another case is another name");
    let unknown = Email::parse(&names.email(9)).expect("email");
    assert_eq!(users.find_by_email(&unknown).await.expect("find unknown"), None, "unknown e-mail");
}

/// `create_many` stores every row or, when any conflicts (with a stored row or within the batch), none.
pub async fn create_many_is_all_or_nothing<R: UserRepository + ?Sized>(users: &R) {
    let names = Names::new("create_many_is_all_or_nothing");
    users.create(names.user(0)).await.expect("create");
    let clash = NewUser::new(&names.username(3), &names.email(0).to_uppercase()).expect("user");
    let batch = vec![names.user(1), names.user(2), clash];
    assert_duplicate(users.create_many(batch).await, "user", "email", "batch clashing with a stored row");
    let again = NewUser::new(&names.username(4), &names.email(5)).expect("user");
    let batch = vec![names.user(4), names.user(6), again];
    assert_duplicate(users.create_many(batch).await, "user", "username", "batch clashing with itself");
    assert_eq!(users.count(&[names.users()]).await.expect("count"), 1, "failed batches stored nothing");
    let one = Username::parse(&names.username(1)).expect("username");
    assert_eq!(users.find_by_username(&one).await.expect("find"), None, "no row of a failed batch remains");

    let stored = users.create_many(vec![names.user(7), names.user(8), names.user(9)]).await.expect("batch");
    assert_eq!(stored.len(), 3, "one row per input");
    assert!(stored.iter().all(|u| u.version == Version::FIRST), "new rows have the first version");
    assert_eq!(stored[1].username.as_str(), names.username(8), "rows come back in input order");
    assert!(stored[0].id != stored[1].id && stored[1].id != stored[2].id, "distinct ids");
    assert!(users.create_many(Vec::new()).await.expect("empty batch").is_empty(), "an empty batch is fine");
    assert_eq!(users.count(&[names.users()]).await.expect("count"), 4, "the good batch was stored");
}

/// `update` applies the changes, bumps the version, keeps `created_at` and moves `updated_at` to the update's
/// time; the old e-mail becomes free.
pub async fn update_bumps_the_version_and_changes_fields<R: UserRepository + ?Sized>(users: &R) {
    let names = Names::new("update_bumps_the_version_and_changes_fields");
    let user = users.create(names.user(1)).await.expect("create");
    let changes = UpdateUser {
        username: Some(Username::parse(&names.username(2)).expect("username")),
        email: Some(Email::parse(&names.email(2)).expect("email")),
    };
    // Let the clock move on, so the update's time is measurably later than the create's.
    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    let updated = users.update(&user.id, Version::FIRST, changes).await.expect("update");
    assert_eq!(updated.version, Version::FIRST.next(), "the version went up by one");
    assert_eq!(updated.username.as_str(), names.username(2), "username changed");
    assert_eq!(updated.email.as_str(), names.email(2), "email changed");
    assert_eq!(updated.created_at, user.created_at, "created_at is kept");
    assert!(updated.updated_at > user.updated_at, "updated_at moves to the time of the update");
    assert_eq!(users.find_by_id(&user.id).await.expect("find"), Some(updated.clone()), "the update is stored");
    let new_email = Email::parse(&names.email(2)).expect("email");
    assert_eq!(users.find_by_email(&new_email).await.expect("find").map(|u| u.id), Some(user.id), "new e-mail");
    users.create(NewUser::new(&names.username(3), &names.email(1)).expect("user")).await.expect("old e-mail is free");
    let touched = users.update(&user.id, updated.version, UpdateUser::default()).await.expect("empty update");
    assert_eq!(touched.version, Version::new(3), "an empty update still bumps the version");
}

/// An update naming a version other than the stored one is a `StaleVersion` conflict and changes nothing.
pub async fn stale_version_update_is_refused_and_changes_nothing<R: UserRepository + ?Sized>(users: &R) {
    let names = Names::new("stale_version_update_is_refused_and_changes_nothing");
    let user = users.create(names.user(1)).await.expect("create");
    let to_email = |i| UpdateUser { email: Some(Email::parse(&names.email(i)).expect("email")), username: None };
    let v2 = users.update(&user.id, Version::FIRST, to_email(2)).await.expect("first update");
    assert_stale(users.update(&user.id, Version::FIRST, to_email(3)).await, "user", Version::FIRST, v2.version, "old");
    let future = Version::new(7);
    assert_stale(users.update(&user.id, future, to_email(4)).await, "user", future, v2.version, "future version");
    assert_eq!(users.find_by_id(&user.id).await.expect("find"), Some(v2), "the row is unchanged");
}

/// Updating an unknown id is `NotFound`; deleting one returns `false`.
pub async fn update_of_an_unknown_id_is_not_found<R: UserRepository + ?Sized>(users: &R) {
    let unknown = UserId::new();
    match users.update(&unknown, Version::FIRST, UpdateUser::default()).await {
        Err(RepoError::NotFound { entity: "user", id }) => assert_eq!(id, unknown.to_string(), "names the id"),
        other => panic!("update(unknown): expected NotFound, got {other:?}"),
    }
    assert!(!users.delete(&unknown).await.expect("delete unknown"), "deleting an unknown id returns false");
}

/// Changing an e-mail to one another user holds (in any case) is a `Duplicate` conflict; a user may change the
/// case of its own address.
pub async fn update_to_a_taken_email_is_a_duplicate_conflict<R: UserRepository + ?Sized>(users: &R) {
    let names = Names::new("update_to_a_taken_email_is_a_duplicate_conflict");
    let a = users.create(names.user(1)).await.expect("create a");
    let b = users.create(names.user(2)).await.expect("create b");
    let taken =
        UpdateUser { email: Some(Email::parse(&names.email(1).to_uppercase()).expect("email")), username: None };
    assert_duplicate(users.update(&b.id, Version::FIRST, taken.clone()).await, "user", "email", "taken e-mail");
    assert_eq!(users.find_by_id(&b.id).await.expect("find"), Some(b), "b is unchanged");
    let own = users.update(&a.id, Version::FIRST, taken).await.expect("own address in another case");
    assert_eq!(own.email.as_str(), names.email(1).to_uppercase(), "the new spelling is kept");
}

/// `delete` returns whether the row existed; `exists`, `find_by_id` and `count` agree with it.
pub async fn delete_exists_and_count_agree<R: UserRepository + ?Sized>(users: &R) {
    let names = Names::new("delete_exists_and_count_agree");
    let stored = users.create_many((1..=3).map(|i| names.user(i)).collect()).await.expect("create");
    assert_eq!(users.count(&[names.users()]).await.expect("count"), 3, "three rows");
    assert!(users.delete(&stored[1].id).await.expect("delete"), "delete returns true for an existing row");
    assert!(!users.delete(&stored[1].id).await.expect("delete again"), "and false the second time");
    assert!(!users.exists(&stored[1].id).await.expect("exists"), "gone");
    assert_eq!(users.find_by_id(&stored[1].id).await.expect("find"), None, "not found");
    assert!(users.exists(&stored[0].id).await.expect("exists"), "the others remain");
    assert_eq!(users.count(&[names.users()]).await.expect("count"), 2, "two rows");
    users.create(names.user(2)).await.expect("the deleted row's unique values are free again");
}
