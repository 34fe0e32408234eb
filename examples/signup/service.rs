//! The app code: a sign-up service that knows only ports. It validates the input, rate-limits per client IP,
//! creates the user and starts a session. Nothing here names an adapter.

use std::sync::Arc;
use std::time::Duration;

use cpc_data::domain::{NewUser, User, UserId, ValidationError};
use cpc_data::ports::{
    ConflictKind, KvError, RateLimitKey, RateLimitPolicy, RateLimiter, RepoError, SessionId, SessionStore,
    SessionStoreExt, UserRepository,
};
use serde::{Deserialize, Serialize};

/// What a session of a signed-up user holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionData {
    /// Who is logged in.
    pub user_id: UserId,
    /// Their handle, for display.
    pub username: String,
}

/// Why a sign-up did not happen, in terms the HTTP layer maps to a status code.
#[derive(Debug, thiserror::Error)]
pub enum SignupError {
    /// The input is invalid (400).
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// Too many attempts from this client (429).
    #[error("too many sign-ups from this client; retry after {retry_after:?}")]
    RateLimited {
        /// When to try again.
        retry_after: Option<Duration>,
    },
    /// The username or e-mail is taken (409).
    #[error("{field} is already taken")]
    Taken {
        /// Which field.
        field: String,
    },
    /// A backend is down (503); worth retrying later.
    #[error("service unavailable: {0}")]
    Unavailable(String),
}

impl From<RepoError> for SignupError {
    fn from(e: RepoError) -> Self {
        match e {
            RepoError::Conflict { kind: ConflictKind::Duplicate { field }, .. } => Self::Taken { field },
            RepoError::Validation(v) => Self::Invalid(v),
            other => Self::Unavailable(other.to_string()),
        }
    }
}

impl From<KvError> for SignupError {
    fn from(e: KvError) -> Self {
        match e {
            KvError::Validation(v) => Self::Invalid(v),
            other => Self::Unavailable(other.to_string()),
        }
    }
}

/// Sign-up: validate, rate-limit per client, create the user, start a session.
pub struct SignupService {
    users: Arc<dyn UserRepository>,
    limiter: Arc<dyn RateLimiter>,
    sessions: Arc<dyn SessionStore>,
    policy: RateLimitPolicy,
    session_ttl: Duration,
}

impl SignupService {
    /// Three sign-ups per client per minute; sessions last a day.
    pub fn new(users: Arc<dyn UserRepository>, limiter: Arc<dyn RateLimiter>, sessions: Arc<dyn SessionStore>) -> Self {
        Self {
            users,
            limiter,
            sessions,
            policy: RateLimitPolicy::sliding_window(3, Duration::from_secs(60)),
            session_ttl: Duration::from_secs(24 * 3600),
        }
    }

    /// Signs a user up from `client_ip`; returns the user and the id of their new session.
    pub async fn signup(&self, client_ip: &str, username: &str, email: &str) -> Result<(User, SessionId), SignupError> {
        // Validation costs no I/O, so it comes first and bad input spends no rate-limit allowance.
        let new = NewUser::new(username, email)?;
        let key = RateLimitKey::new(format!("signup:{client_ip}"))?;
        let decision = self.limiter.check(&key, &self.policy, 1).await?;
        if !decision.allowed {
            return Err(SignupError::RateLimited { retry_after: decision.retry_after });
        }
        let user = self.users.create(new).await?;
        let data = SessionData { user_id: user.id, username: user.username.to_string() };
        let session = self.sessions.create(&data, self.session_ttl).await?;
        Ok((user, session))
    }

    /// The user a session belongs to, if the session is live.
    pub async fn whoami(&self, session: &SessionId) -> Result<Option<SessionData>, SignupError> {
        Ok(self.sessions.load::<SessionData>(session).await?)
    }
}
