//! Cases on [`CustomerRepository`] and [`EntityRepository`]: odd text kept verbatim, e-mail lookups, partial
//! updates, JSON attributes, and listing entities by kind.

use cpc_domain::{Email, Entity, EntityId, NewCustomer, NewEntity, UpdateCustomer, UpdateEntity, Version};
use cpc_ports::{CustomerField, CustomerRepository, EntityRepository, PageRequest, Query};
use serde_json::json;

use super::fixtures::{Names, assert_duplicate, assert_stale};

/// SQL-looking text, quotes, backslashes, control characters and unicode are stored and returned verbatim, and
/// found by `eq` and `prefix` filters.
pub async fn odd_text_is_stored_verbatim_and_found_by_filters<C: CustomerRepository + ?Sized>(customers: &C) {
    let names = Names::new("odd_text_is_stored_verbatim_and_found_by_filters");
    let tag = names.tag();
    let odd = [
        "Robert'); DROP TABLE customers; --",
        "'; DROP TABLE users; --",
        r#"O'Brien "Bob" \ back\slash \' \""#,
        "Zoë Ünïcødé 日本語 עברית 🎉👩‍💻",
        "tab\there\nnew line\r\nand $1 ? :name %s {}",
    ];
    for (i, text) in odd.iter().enumerate() {
        let name = format!("{tag} {text}");
        let phone = format!("+1 '{i}' \"x\" \\");
        let created = customers.create(NewCustomer::new(&names.email(i), &name, Some(&phone)).expect("customer"));
        let created = created.await.expect("create");
        assert_eq!(created.name, name, "returned verbatim: {text:?}");
        assert_eq!(created.phone.as_deref(), Some(phone.as_str()), "phone verbatim");
        let found = customers.find_by_id(&created.id).await.expect("find");
        assert_eq!(found.as_ref(), Some(&created), "stored verbatim: {text:?}");
        let by_eq = customers.find_page(&Query::new().eq(CustomerField::Name, name.clone())).await.expect("eq");
        assert_eq!(by_eq.items, vec![created.clone()], "found by eq: {text:?}");
        let by_prefix = Query::new().prefix(CustomerField::Name, name.clone());
        let by_prefix = customers.find_page(&by_prefix).await.expect("prefix");
        assert_eq!(by_prefix.items, vec![created], "found by prefix: {text:?}");
    }
    assert_eq!(customers.count(&[names.customers()]).await.expect("count"), odd.len() as u64, "all stored");
}

/// Customer e-mails are unique ignoring case, and `find_by_email` ignores case.
pub async fn customer_email_is_unique_and_found_ignoring_case<C: CustomerRepository + ?Sized>(customers: &C) {
    let names = Names::new("customer_email_is_unique_and_found_ignoring_case");
    let mixed = names.email(1).replacen(names.tag(), &names.tag().to_uppercase(), 1);
    let ada = customers.create(NewCustomer::new(&mixed, "Ada", None).expect("customer")).await.expect("create");
    for spelling in [names.email(1), names.email(1).to_uppercase(), mixed.clone()] {
        let email = Email::parse(&spelling).expect("email");
        assert_eq!(customers.find_by_email(&email).await.expect("find"), Some(ada.clone()), "{spelling}");
    }
    let twin = NewCustomer::new(&names.email(1), "Ada's twin", None).expect("customer");
    assert_duplicate(customers.create(twin).await, "customer", "email", "same e-mail, other case");
    let unknown = Email::parse(&names.email(2)).expect("email");
    assert_eq!(customers.find_by_email(&unknown).await.expect("find unknown"), None, "unknown e-mail");
}

/// A partial update changes only the given fields (`phone: Some(None)` clears the phone) and checks versions.
pub async fn customer_update_changes_only_given_fields<C: CustomerRepository + ?Sized>(customers: &C) {
    let names = Names::new("customer_update_changes_only_given_fields");
    let new = NewCustomer::new(&names.email(1), "Ada", Some("+44 20 7946 0000")).expect("customer");
    let ada = customers.create(new).await.expect("create");
    let renamed = customers.update(&ada.id, Version::FIRST, UpdateCustomer::name("Ada L.").expect("name"));
    let renamed = renamed.await.expect("rename");
    assert_eq!((renamed.name.as_str(), renamed.phone.as_deref()), ("Ada L.", ada.phone.as_deref()), "rename only");
    let clear = UpdateCustomer { phone: Some(None), ..UpdateCustomer::default() };
    let cleared = customers.update(&ada.id, renamed.version, clear.clone()).await.expect("clear phone");
    assert_eq!((cleared.phone, cleared.name.as_str(), cleared.version), (None, "Ada L.", Version::new(3)), "cleared");
    assert_stale(
        customers.update(&ada.id, Version::FIRST, clear).await,
        "customer",
        Version::FIRST,
        Version::new(3),
        "stale",
    );
}

/// `find_by_kind` lists one kind's entities by name, ties by id, in offset and keyset pages.
pub async fn find_by_kind_orders_by_name_then_id<E: EntityRepository + ?Sized>(entities: &E) {
    let names = Names::new("find_by_kind_orders_by_name_then_id");
    let (kind, other) = (names.kind("a"), names.kind("b"));
    let batch = ["b", "a", "c", "a", "b"].iter().map(|n| NewEntity::new(kind.as_str(), n, json!({})).expect("entity"));
    let stored = entities.create_many(batch.collect()).await.expect("create");
    entities.create(NewEntity::new(other.as_str(), "a", json!({})).expect("entity")).await.expect("create other");
    let mut expected: Vec<&Entity> = stored.iter().collect();
    expected.sort_by(|x, y| (&x.name, x.id).cmp(&(&y.name, y.id)));
    let expected: Vec<EntityId> = expected.iter().map(|e| e.id).collect();

    let page = entities.find_by_kind(&kind, PageRequest::Offset { offset: 0, limit: 100 }).await.expect("page");
    assert_eq!(page.total, Some(5), "only this kind is counted");
    assert_eq!(page.items.iter().map(|e| e.id).collect::<Vec<_>>(), expected, "by name then id");

    let mut walked = Vec::new();
    let mut request = PageRequest::first(2);
    loop {
        let page = entities.find_by_kind(&kind, request).await.expect("keyset page");
        walked.extend(page.items.iter().map(|e| e.id));
        match page.next_cursor {
            Some(cursor) => request = PageRequest::Keyset { after: Some(cursor), limit: 2 },
            None => break,
        }
        assert!(walked.len() <= 5, "keyset paging does not end");
    }
    assert_eq!(walked, expected, "keyset pages walk the same order");
    let missing = names.kind("c");
    assert!(entities.find_by_kind(&missing, PageRequest::default()).await.expect("none").items.is_empty(), "no rows");
}

/// JSON attributes round-trip (odd strings, nesting, nulls); an update replaces them whole and bumps the version.
pub async fn entity_attributes_round_trip_and_are_replaced_whole<E: EntityRepository + ?Sized>(entities: &E) {
    let names = Names::new("entity_attributes_round_trip_and_are_replaced_whole");
    let attributes = json!({
        "sql": "'; DROP TABLE entities; --",
        "quotes": "it's \"quoted\" \\ ",
        "unicode": "日本語 🎉",
        "nested": { "list": [1, -2, { "deep": true }], "nothing": null },
        "big": 9_007_199_254_740_993_i64,
    });
    let new = NewEntity::new(names.kind("x").as_str(), "Sheet", attributes.clone()).expect("entity");
    let entity = entities.create(new).await.expect("create");
    assert_eq!(entity.attributes, attributes, "returned as given");
    assert_eq!(entities.find_by_id(&entity.id).await.expect("find"), Some(entity.clone()), "stored as given");
    let changes = UpdateEntity::new(Some("Sheet 2"), Some(json!({ "only": "this" }))).expect("update");
    let updated = entities.update(&entity.id, Version::FIRST, changes).await.expect("update");
    assert_eq!(updated.attributes, json!({ "only": "this" }), "replaced whole, not merged");
    assert_eq!((updated.name.as_str(), updated.version), ("Sheet 2", Version::new(2)), "name and version");
    assert_eq!(updated.kind, entity.kind, "the kind is kept");
}

/// `upsert` creates an entity under the given id, then replaces its kind, name and attributes in place: the
/// version grows, `created_at` stays, and what it returns is what is stored.
pub async fn upsert_creates_then_replaces_keeping_created_at<E: EntityRepository + ?Sized>(entities: &E) {
    let names = Names::new("upsert_creates_then_replaces_keeping_created_at");
    let id = EntityId::new();
    let first = NewEntity::new(names.kind("a").as_str(), "First", json!({ "n": 1 })).expect("entity");
    let created = entities.upsert(&id, first).await.expect("upsert creates");
    assert_eq!((created.id, created.version), (id, Version::FIRST), "created under the given id, first version");
    assert_eq!(entities.find_by_id(&id).await.expect("find"), Some(created.clone()), "stored as returned");
    let second = NewEntity::new(names.kind("b").as_str(), "Second", json!({ "m": 2 })).expect("entity");
    let replaced = entities.upsert(&id, second).await.expect("upsert replaces");
    assert_eq!(replaced.version, Version::new(2), "a replacement bumps the version");
    assert_eq!(replaced.created_at, created.created_at, "created_at is kept");
    assert!(replaced.updated_at >= created.updated_at, "updated_at does not go back");
    assert_eq!((replaced.kind.as_str(), replaced.name.as_str()), (names.kind("b").as_str(), "Second"));
    assert_eq!(replaced.attributes, json!({ "m": 2 }), "attributes replaced whole");
    assert_eq!(entities.find_by_id(&id).await.expect("find"), Some(replaced), "stored as returned");
}

/// Eight concurrent upserts of one new id leave exactly one row; each call either succeeded or failed with a
/// retryable `Concurrent` conflict, and the row's version counts exactly the calls that succeeded.
pub async fn concurrent_upserts_of_one_id_leave_one_consistent_row<E: EntityRepository + ?Sized>(entities: &E) {
    let names = Names::new("concurrent_upserts_of_one_id_leave_one_consistent_row");
    let id = EntityId::new();
    let kind = names.kind("race");
    let calls = (0..8).map(|i| {
        let new = NewEntity::new(kind.as_str(), &format!("writer {i}"), json!({ "i": i })).expect("entity");
        entities.upsert(&id, new)
    });
    let results = futures::future::join_all(calls).await;
    let mut succeeded = Vec::new();
    for result in results {
        match result {
            Ok(row) => succeeded.push(row.name),
            Err(e) => assert!(
                matches!(e, cpc_ports::RepoError::Conflict { kind: cpc_ports::ConflictKind::Concurrent, .. })
                    && e.is_retryable(),
                "a losing upsert must be a retryable Concurrent conflict: {e:?}"
            ),
        }
    }
    assert!(!succeeded.is_empty(), "at least one upsert succeeds");
    let stored = entities.find_by_id(&id).await.expect("find").expect("the row exists");
    assert_eq!(stored.version.get(), succeeded.len() as i64, "the version counts the successful upserts");
    assert!(succeeded.contains(&stored.name), "the stored name is one a successful upsert wrote");
    assert_eq!(
        entities
            .count(&[cpc_ports::Filter::Eq(cpc_ports::EntityField::Kind, kind.as_str().into())])
            .await
            .expect("count"),
        1
    );
}
