//! The HTTP face of the service: an axum [`Router`] built from [`Ports`] alone. Handlers know the service and the
//! ports; the tower glue (sessions, rate limit) is built here over the same ports.
//!
//! | route | does | answers |
//! |---|---|---|
//! | `POST /signup` `{"username","email"}` | creates the user with a 100.00 EUR opening deposit | 201, 400, 409 |
//! | `POST /login` `{"username","email"}` | logs in (a fresh session id), e-mail as the demo credential | 200, 401 |
//! | `GET /me` | who is logged in, and their balance | 200, 401 |
//! | `POST /transfer` `{"to","amount_minor"}` | moves money to another user, under both accounts' locks | 200, 400, 401, 404, 409, 422 |
//! | `POST /logout` | ends the session | 204 |
//! | `GET /health` | every backend's health check, as JSON | 200 if all are healthy, else 503 |
//! | `GET /metrics` | every metric, in Prometheus text format | 200 |
//!
//! Every route but `/health` and `/metrics` is rate-limited per logged-in user, or per client IP when nobody is
//! logged in, under [`AppConfig::rate_limit`]: over it, `429` with `Retry-After`. A limiter that is down lets
//! requests through (fail open). A backend that is down is `503`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cpc_data::adapters::tower::{ClientIp, KeyExtractor, RateLimitLayer, RequestView, TowerSessionStore};
use cpc_data::domain::{Money, UserId, ValidationError};
use cpc_data::ports::{HealthStatus, RateLimitPolicy};
use cpc_data::wiring::Ports;
use metrics_exporter_prometheus::PrometheusHandle;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tower_sessions::{Expiry, Session, SessionManagerLayer};

use crate::service::{AccountError, AccountPorts, Accounts, CURRENCY};

/// Where the logged-in user is kept in the session.
const USER_KEY: &str = "user";

/// The knobs of the app.
#[derive(Debug, Clone, Copy)]
pub struct AppConfig {
    /// Per user (or per client IP before log-in), on every route but `/health` and `/metrics`.
    pub rate_limit: RateLimitPolicy,
    /// A session ends after this long without a request.
    pub session_idle: Duration,
}

impl Default for AppConfig {
    /// Bursts of 20 requests, then 5 a second; sessions end after an hour of inactivity.
    fn default() -> Self {
        Self { rate_limit: RateLimitPolicy::token_bucket(20, 5), session_idle: Duration::from_secs(3600) }
    }
}

/// Who is logged in: what the session holds, and what the request carries once the session is read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentUser {
    /// Their id.
    pub id: UserId,
    /// Their handle.
    pub username: String,
}

#[derive(Clone)]
struct AppState {
    accounts: Arc<Accounts>,
    ports: Ports,
}

/// The app: the routes above over `ports`, `/metrics` rendered by `metrics`.
pub fn router(ports: &Ports, metrics: PrometheusHandle, config: &AppConfig) -> Result<Router, ValidationError> {
    let accounts = Accounts::new(AccountPorts {
        users: ports.users.clone(),
        transactions: ports.transactions.clone(),
        unit_of_work: ports.unit_of_work.clone(),
        lock: ports.lock.clone(),
        cache: ports.cache.clone(),
    });
    let state = AppState { accounts: Arc::new(accounts), ports: ports.clone() };
    let rate_limit = RateLimitLayer::new(ports.rate_limiter.clone(), config.rate_limit, user_or_ip)?.scope("web");
    let idle = time_duration(config.session_idle);
    // `with_secure(false)` so the cookie also travels over plain HTTP on localhost; behind TLS, drop it.
    let sessions = SessionManagerLayer::new(TowerSessionStore::new(ports.sessions.clone()))
        .with_secure(false)
        .with_expiry(Expiry::OnInactivity(idle));
    Ok(Router::new()
        .route("/signup", post(sign_up))
        .route("/login", post(log_in))
        .route("/me", get(me))
        .route("/transfer", post(transfer))
        .route("/logout", post(log_out))
        // Layers wrap the routes above; the last one added runs first: session, then who is logged in, then
        // the rate limit keyed by them.
        .layer(rate_limit)
        .layer(middleware::from_fn(current_user))
        .layer(sessions)
        .route("/health", get(health))
        .route("/metrics", get(move || std::future::ready(metrics.render())))
        .with_state(state))
}

fn time_duration(d: Duration) -> tower_sessions::cookie::time::Duration {
    tower_sessions::cookie::time::Duration::milliseconds(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The rate-limit key: the logged-in user, else the client's IP address.
fn user_or_ip(req: RequestView<'_>) -> Option<String> {
    match req.extensions.get::<CurrentUser>() {
        Some(user) => Some(format!("user:{}", user.id)),
        None => ClientIp::peer().key(req),
    }
}

/// Reads the session's user into the request's extensions, for the rate limit and the handlers.
async fn current_user(session: Session, mut req: Request, next: Next) -> Response {
    match session.get::<CurrentUser>(USER_KEY).await {
        Ok(Some(user)) => {
            req.extensions_mut().insert(user);
        }
        Ok(None) => {}
        Err(e) => return ApiError::Unavailable(format!("sessions: {e}")).into_response(),
    }
    next.run(req).await
}

/// A handler's failure, as a status code and `{"error": "..."}`.
#[derive(Debug)]
enum ApiError {
    Account(AccountError),
    NotLoggedIn,
    Unavailable(String),
}

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> Self {
        Self::Account(e)
    }
}

impl From<tower_sessions::session::Error> for ApiError {
    fn from(e: tower_sessions::session::Error) -> Self {
        Self::Unavailable(format!("sessions: {e}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            Self::Account(e) => {
                let status = match &e {
                    AccountError::Invalid(_) => StatusCode::BAD_REQUEST,
                    AccountError::Taken { .. } | AccountError::Busy(_) => StatusCode::CONFLICT,
                    AccountError::BadCredentials => StatusCode::UNAUTHORIZED,
                    AccountError::UnknownRecipient(_) => StatusCode::NOT_FOUND,
                    AccountError::InsufficientFunds { .. } => StatusCode::UNPROCESSABLE_ENTITY,
                    AccountError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
                };
                (status, e.to_string())
            }
            Self::NotLoggedIn => (StatusCode::UNAUTHORIZED, "not logged in".to_owned()),
            Self::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, format!("service unavailable: {m}")),
        };
        (status, Json(json!({ "error": message }))).into_response()
    }
}

/// The logged-in user, or `401`.
struct LoggedIn(CurrentUser);

impl<S: Send + Sync> FromRequestParts<S> for LoggedIn {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts.extensions.get::<CurrentUser>().cloned().map(Self).ok_or(ApiError::NotLoggedIn)
    }
}

#[derive(Debug, Deserialize)]
struct Credentials {
    username: String,
    email: String,
}

#[derive(Debug, Deserialize)]
struct TransferRequest {
    to: String,
    amount_minor: i64,
}

/// Minor units for display: `10000` is `100.00 EUR`.
fn money(minor: i64) -> String {
    Money::new(minor, CURRENCY).map_or_else(|_| minor.to_string(), |m| m.to_string())
}

async fn sign_up(State(s): State<AppState>, Json(c): Json<Credentials>) -> Result<impl IntoResponse, ApiError> {
    let user = s.accounts.sign_up(&c.username, &c.email).await?;
    let balance = s.accounts.balance(user.id).await?;
    let body = json!({
        "id": user.id, "username": user.username, "email": user.email,
        "balance_minor": balance, "balance": money(balance),
    });
    Ok((StatusCode::CREATED, Json(body)))
}

async fn log_in(
    State(s): State<AppState>,
    session: Session,
    Json(c): Json<Credentials>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let user = s.accounts.log_in(&c.username, &c.email).await?;
    // A fresh id at log-in: an id planted before (session fixation) or seen before no longer loads.
    session.cycle_id().await?;
    session.insert(USER_KEY, CurrentUser { id: user.id, username: user.username.to_string() }).await?;
    Ok(Json(json!({ "id": user.id, "username": user.username })))
}

async fn me(State(s): State<AppState>, LoggedIn(user): LoggedIn) -> Result<Json<serde_json::Value>, ApiError> {
    let balance = s.accounts.balance(user.id).await?;
    Ok(Json(json!({
        "id": user.id, "username": user.username, "balance_minor": balance, "balance": money(balance),
    })))
}

async fn transfer(
    State(s): State<AppState>,
    LoggedIn(user): LoggedIn,
    Json(t): Json<TransferRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let receipt = s.accounts.transfer(user.id, &t.to, t.amount_minor).await?;
    Ok(Json(json!({
        "debit": receipt.debit.id, "credit": receipt.credit.id, "amount": receipt.debit.amount.to_string(),
        "balance_minor": receipt.balance, "balance": money(receipt.balance),
    })))
}

async fn log_out(session: Session) -> Result<StatusCode, ApiError> {
    session.flush().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Every health check of the ports at once: `{"status": "healthy", "components": [...]}`.
async fn health(State(s): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    let (status, reports) = s.ports.health().await;
    let components: Vec<_> = reports
        .iter()
        .map(|r| {
            json!({
                "component": r.component, "status": r.status,
                "latency_ms": r.latency.as_secs_f64() * 1000.0, "details": r.details,
            })
        })
        .collect();
    let code = if status == HealthStatus::Healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(json!({ "status": status, "components": components })))
}
