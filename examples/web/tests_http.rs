//! The whole service over HTTP, on the embedded default and on PostgreSQL + Redis: started in-process as `main`
//! starts it (recorder first, then the wired ports, observed), driven with reqwest, checked by what it served.

use std::time::Instant;

use reqwest::header::{COOKIE, SET_COOKIE};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

use crate::app::{AppConfig, router};
use crate::common::testing::{Wired, embedded, on_servers};
use crate::compose;

/// One browser: a client that keeps the session cookie (`id=...`) the server sets.
struct Browser {
    http: reqwest::Client,
    base: String,
    cookie: Option<String>,
}

impl Browser {
    fn new(base: &str) -> Self {
        Self { http: reqwest::Client::new(), base: base.to_owned(), cookie: None }
    }

    async fn send(&mut self, method: reqwest::Method, path: &str, body: Option<Value>) -> Response {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(cookie) = &self.cookie {
            request = request.header(COOKIE, cookie);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the server answers");
        if let Some(set) = response.headers().get(SET_COOKIE) {
            let pair = set.to_str().unwrap().split(';').next().unwrap().to_owned();
            self.cookie = Some(pair);
        }
        response
    }

    async fn get(&mut self, path: &str) -> Response {
        self.send(reqwest::Method::GET, path, None).await
    }

    async fn post(&mut self, path: &str, body: Value) -> Response {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    async fn me(&mut self) -> (StatusCode, Value) {
        let response = self.get("/me").await;
        (response.status(), response.json().await.unwrap_or(Value::Null))
    }
}

fn credentials(name: &str) -> Value {
    json!({ "username": name, "email": format!("{name}@example.org") })
}

/// Runs the app on `wired` as `main` would, with `systems` as `db.system` labels; returns its base URL.
async fn start(wired: &Wired, systems: (&'static str, &'static str)) -> String {
    let metrics = compose::metrics().unwrap();
    let ports = compose::observed(wired.ports.clone(), systems);
    let app = router(&ports, metrics, &AppConfig::default()).unwrap();
    format!("http://{}", compose::serve(app, "127.0.0.1:0").await.unwrap())
}

async fn check(wired: Wired, systems: (&'static str, &'static str), components: &[&str], kv_series: &str) {
    let base = start(&wired, systems).await;
    let mut ann = Browser::new(&base);

    // Sign-up: 201 with the opening deposit; the same again is a conflict; bad input is 400.
    let created = ann.post("/signup", credentials("ann")).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let body: Value = created.json().await.unwrap();
    assert_eq!((body["username"].as_str(), body["balance_minor"].as_i64()), (Some("ann"), Some(10_000)));
    assert_eq!(ann.post("/signup", credentials("bob")).await.status(), StatusCode::CREATED);
    let duplicate = ann.post("/signup", json!({ "username": "ann2", "email": "ANN@example.org" })).await;
    assert_eq!(duplicate.status(), StatusCode::CONFLICT);
    assert!(duplicate.text().await.unwrap().contains("already taken"));
    let bad = ann.post("/signup", json!({ "username": "x y", "email": "nope" })).await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert_eq!(ann.cookie, None, "no session before log-in");

    // Log-in sets the session cookie; /me works with it; logging in again cycles the id.
    assert_eq!(ann.me().await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(ann.post("/login", json!({ "username": "ann", "email": "bob@example.org" })).await.status(), 401);
    assert_eq!(ann.post("/login", credentials("ann")).await.status(), StatusCode::OK);
    let first = ann.cookie.clone().expect("log-in sets the session cookie");
    let (status, me) = ann.me().await;
    assert_eq!(
        (status, me["username"].as_str(), me["balance"].as_str()),
        (StatusCode::OK, Some("ann"), Some("100.00 EUR"))
    );
    assert_eq!(ann.post("/login", credentials("ann")).await.status(), StatusCode::OK);
    let second = ann.cookie.clone().unwrap();
    assert_ne!(first, second, "a fresh session id at log-in");
    let mut stale = Browser { cookie: Some(first), ..Browser::new(&base) };
    assert_eq!(stale.me().await.0, StatusCode::UNAUTHORIZED, "the old id no longer loads");

    // A transfer moves money under both accounts' locks: balances after, on both sides.
    let sent = ann.post("/transfer", json!({ "to": "bob", "amount_minor": 2_550 })).await;
    assert_eq!(sent.status(), StatusCode::OK);
    assert_eq!(sent.json::<Value>().await.unwrap()["balance_minor"], 7_450);
    assert_eq!(ann.me().await.1["balance_minor"], 7_450);
    let mut bob = Browser::new(&base);
    assert_eq!(bob.post("/login", credentials("bob")).await.status(), StatusCode::OK);
    assert_eq!(bob.me().await.1["balance"], "125.50 EUR");
    let too_much = ann.post("/transfer", json!({ "to": "bob", "amount_minor": 1_000_000 })).await;
    assert_eq!(too_much.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(ann.post("/transfer", json!({ "to": "nobody", "amount_minor": 1 })).await.status(), 404);

    // A burst from ann runs into her limit (bursts of 20, 5 a second): 429 with Retry-After. Bob is not hit.
    let started = Instant::now();
    let (mut allowed, mut refused) = (0u64, None);
    for _ in 0..60 {
        let response = ann.get("/me").await;
        match response.status() {
            StatusCode::OK => allowed += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                refused = Some(response.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap());
                break;
            }
            other => panic!("unexpected {other}"),
        }
    }
    let refill = 5 * started.elapsed().as_secs() + 5;
    assert!(refused.is_some_and(|secs| secs >= 1), "the burst was never refused ({allowed} allowed)");
    assert!(allowed <= 20 + refill, "{allowed} allowed in {:?}", started.elapsed());
    assert_eq!(bob.me().await.0, StatusCode::OK, "the limit is per user");
    let response = bob.post("/logout", json!({})).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(bob.me().await.0, StatusCode::UNAUTHORIZED, "logged out");

    // /health lists every backend, all healthy.
    let health = ann.get("/health").await;
    assert_eq!(health.status(), StatusCode::OK);
    let health: Value = health.json().await.unwrap();
    assert_eq!(health["status"], "healthy", "{health}");
    let names: Vec<&str> =
        health["components"].as_array().unwrap().iter().map(|c| c["component"].as_str().unwrap()).collect();
    assert_eq!(names, components, "{health}");
    assert_eq!(names.len(), wired.ports.health_checks.len());

    // /metrics: the pool's, the key-value ports', the rate limit layer's.
    let scrape = ann.get("/metrics").await;
    assert_eq!(scrape.status(), StatusCode::OK);
    let text = scrape.text().await.unwrap();
    for series in [
        "cpc_db_pool_acquire_seconds",
        "cpc_db_pool_connections",
        "cpc_port_calls_total{port=\"cache\",operation=\"get_bytes\"}",
        "cpc_port_calls_total{port=\"session\"",
        "cpc_port_calls_total{port=\"unit_of_work\",operation=\"begin\"}",
        "cpc_http_rate_limit_total{outcome=\"refused\"}",
        kv_series,
    ] {
        assert!(text.contains(series), "no {series} in the scrape:\n{text}");
    }
}

#[tokio::test]
async fn the_service_runs_on_the_embedded_default() {
    compose::metrics().unwrap(); // before wiring, as in main
    let wired = embedded("web").await;
    check(wired, ("sqlite", "sqlite"), &["sqlite", "ports", "in-process"], "cpc_port_calls_total{port=\"rate_limit\"")
        .await;
}

#[tokio::test]
async fn the_service_runs_on_postgres_and_redis() {
    compose::metrics().unwrap(); // before wiring, as in main
    let wired = on_servers("web").await;
    check(
        wired,
        ("postgresql", "redis"),
        &["postgres", "ports", "redis"],
        "cpc_redis_commands_total{adapter=\"cache\"",
    )
    .await;
}
