//! `TowerSessionStore` end to end: tower-sessions' own `SessionManagerLayer` in a real axum server on
//! 127.0.0.1, real HTTP requests carrying the cookie by hand (so the store, not the client, decides what a
//! cookie still opens), and sessions on a real Redis server (a namespace per test) or in memory.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(all(feature = "tower", feature = "redis"))]

#[allow(dead_code)]
mod common;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use common::http::{serve, set_cookie};
use cpc_adapters::redis::SessionManager;
use cpc_adapters::tower::TowerSessionStore;
use cpc_ports::SessionStore;
use cpc_testkit::memory::InMemorySessionStore;
use tower_sessions::session::Id;
use tower_sessions::{Expiry, Session, SessionManagerLayer, SessionStore as _};

/// Counts visits (creating a session before any login).
async fn visit(session: Session) -> String {
    let visits = session.get::<u32>("visits").await.unwrap().unwrap_or(0) + 1;
    session.insert("visits", visits).await.unwrap();
    visits.to_string()
}

/// Logs in: a fresh id against session fixation, then the user.
async fn login(session: Session) -> &'static str {
    session.cycle_id().await.unwrap();
    session.insert("user", "ann").await.unwrap();
    "ok"
}

async fn me(session: Session) -> String {
    session.get::<String>("user").await.unwrap().unwrap_or_else(|| "anonymous".into())
}

/// The app and the store behind it.
async fn app(store: Arc<dyn SessionStore>, inactivity: Duration) -> (String, TowerSessionStore<dyn SessionStore>) {
    let store = TowerSessionStore::new(store);
    let layer = SessionManagerLayer::new(store.clone())
        .with_secure(false)
        .with_expiry(Expiry::OnInactivity(time::Duration::try_from(inactivity).unwrap()));
    let router =
        Router::new().route("/visit", get(visit)).route("/login", post(login)).route("/me", get(me)).layer(layer);
    (serve(router).await, store)
}

struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    /// Sends a request with `cookie` (the session id) if given; returns the body and the id the response sets.
    async fn send(&self, post: bool, path: &str, cookie: Option<&str>) -> (String, Option<String>) {
        let url = format!("{}{path}", self.base);
        let mut request = if post { self.http.post(url) } else { self.http.get(url) };
        if let Some(id) = cookie {
            request = request.header("cookie", format!("id={id}"));
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        let cookie = set_cookie(&response, "id");
        (response.text().await.unwrap(), cookie)
    }
}

async fn login_stores_data_the_cookie_reads_back(store: Arc<dyn SessionStore>) {
    let (base, _) = app(store, Duration::from_secs(600)).await;
    let client = Client { base, http: reqwest::Client::new() };
    let (body, cookie) = client.send(true, "/login", None).await;
    assert_eq!(body, "ok");
    let cookie = cookie.expect("the login sets a session cookie");
    assert_eq!(client.send(false, "/me", Some(&cookie)).await.0, "ann");
    assert_eq!(client.send(false, "/me", None).await.0, "anonymous");
    let forged = Id::default().to_string();
    assert_eq!(client.send(false, "/me", Some(&forged)).await.0, "anonymous", "an unknown id opens nothing");
}

async fn cycle_id_at_login_changes_the_id_and_the_old_id_no_longer_loads(store: Arc<dyn SessionStore>) {
    let (base, sessions) = app(store, Duration::from_secs(600)).await;
    let client = Client { base, http: reqwest::Client::new() };
    let (visits, before) = client.send(false, "/visit", None).await;
    assert_eq!(visits, "1");
    let before = before.expect("a first visit sets a cookie");
    assert!(sessions.load(&Id::from_str(&before).unwrap()).await.unwrap().is_some());

    let (_, after) = client.send(true, "/login", Some(&before)).await;
    let after = after.expect("the login sets the new id");
    assert_ne!(after, before, "cycle_id changed the id");
    assert_eq!(client.send(false, "/me", Some(&after)).await.0, "ann");
    assert_eq!(client.send(false, "/visit", Some(&after)).await.0, "2", "the data came along");
    assert_eq!(client.send(false, "/me", Some(&before)).await.0, "anonymous", "the old id opens nothing");
    assert!(sessions.load(&Id::from_str(&before).unwrap()).await.unwrap().is_none(), "the old id no longer loads");
}

async fn expiry_ends_the_session(store: Arc<dyn SessionStore>) {
    let (base, sessions) = app(Arc::clone(&store), Duration::from_secs(1)).await;
    let client = Client { base, http: reqwest::Client::new() };
    let cookie = client.send(true, "/login", None).await.1.unwrap();
    let id = Id::from_str(&cookie).unwrap();
    let left = store.ttl(&TowerSessionStore::<dyn SessionStore>::session_id(&id)).await.unwrap().unwrap();
    assert!(left <= Duration::from_secs(1) && left > Duration::from_millis(500), "the store keeps it 1 s: {left:?}");
    assert_eq!(client.send(false, "/me", Some(&cookie)).await.0, "ann");
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(client.send(false, "/me", Some(&cookie)).await.0, "anonymous", "the cookie outlived its session");
    assert!(sessions.load(&id).await.unwrap().is_none());
}

/// A logout (delete) in one request racing a save of the same session in another: the session stays gone.
async fn a_save_racing_a_logout_does_not_bring_the_session_back(store: Arc<dyn SessionStore>) {
    use tower_sessions::session::Record;
    let sessions = TowerSessionStore::new(Arc::clone(&store));
    let mut record = Record {
        id: Id::default(),
        data: [("user".to_owned(), serde_json::json!("ann"))].into(),
        expiry_date: time::OffsetDateTime::now_utc() + time::Duration::minutes(5),
    };
    sessions.create(&mut record).await.unwrap();
    assert!(sessions.load(&record.id).await.unwrap().is_some());
    sessions.delete(&record.id).await.unwrap(); // the logout
    sessions.save(&record).await.unwrap(); // the other request, finishing after it
    assert!(sessions.load(&record.id).await.unwrap().is_none(), "the logged-out session stays gone");
    assert!(!store.destroy(&TowerSessionStore::<dyn SessionStore>::session_id(&record.id)).await.unwrap());
}

/// A session the store keeps for thousands of years (beyond the dates tower-sessions can represent) loads
/// with the latest representable expiry instead of panicking.
async fn a_session_with_a_huge_ttl_loads_without_panicking(store: Arc<dyn SessionStore>) {
    let sessions = TowerSessionStore::new(Arc::clone(&store));
    let data = store.codec().encode(&std::collections::HashMap::<String, serde_json::Value>::new()).unwrap();
    let ten_thousand_years = Duration::from_secs(10_000 * 366 * 24 * 3600);
    let id = Id::default();
    let sid = TowerSessionStore::<dyn SessionStore>::session_id(&id);
    assert!(store.insert_bytes(&sid, data, ten_thousand_years).await.unwrap());
    let record = sessions.load(&id).await.unwrap().expect("the session loads");
    assert_eq!(record.expiry_date, time::PrimitiveDateTime::MAX.assume_utc());
}

async fn redis(test: &str) -> Arc<dyn SessionStore> {
    Arc::new(SessionManager::new(common::redis::shared_manager(test).await))
}

fn memory() -> Arc<dyn SessionStore> {
    Arc::new(InMemorySessionStore::new())
}

/// Runs each case as a test on Redis and one in memory.
macro_rules! on_both_backends {
    ($($case:ident),+ $(,)?) => {
        mod on_redis {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(super::redis("tower-sessions").await).await;
                }
            )+
        }
        mod in_memory {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(super::memory()).await;
                }
            )+
        }
    };
}

on_both_backends!(
    login_stores_data_the_cookie_reads_back,
    cycle_id_at_login_changes_the_id_and_the_old_id_no_longer_loads,
    expiry_ends_the_session,
    a_save_racing_a_logout_does_not_bring_the_session_back,
    a_session_with_a_huge_ttl_loads_without_panicking,
);
