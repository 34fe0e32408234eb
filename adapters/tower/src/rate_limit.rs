//! [`RateLimitLayer`]: a `tower::Layer` that checks every request against a [`RateLimiter`].

use std::sync::Arc;
use std::task::{Context, Poll};

use cpc_domain::ValidationError;
use cpc_ports::keys::MAX_KEY_BYTES;
use cpc_ports::{RateLimitDecision, RateLimitKey, RateLimitPolicy, RateLimiter, rate_limit_headers};
use futures::future::BoxFuture;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use metrics::counter;

use super::{KeyExtractor, RequestView};

/// What a [`RateLimitLayer`] does when the limiter itself fails (Redis down, a timeout).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailurePolicy {
    /// Let the request through, without rate-limit headers: availability first.
    #[default]
    FailOpen,
    /// Refuse it with `503 Service Unavailable`: protection first.
    FailClosed,
}

/// A [`tower::Layer`](::tower::Layer) that spends `cost` of the request's key (from a [`KeyExtractor`]) under one
/// [`RateLimitPolicy`] before calling the service:
///
/// * allowed: the service's response, with the `RateLimit-Policy` and `RateLimit` headers
///   ([`rate_limit_headers`], IETF draft-ietf-httpapi-ratelimit-headers);
/// * refused: `429 Too Many Requests` with those headers and `Retry-After`, and the service is not called;
/// * no key (the extractor returned `None`): the service's response, unlimited;
/// * the limiter failed: per the [`FailurePolicy`], with a `WARN` log line naming the policy and the error kind,
///   and the `cpc_http_rate_limit_total{outcome="failed_open"|"failed_closed"}` counter.
///
/// Keys are `<scope>:<extracted key>`, so two layers with different scopes on one limiter do not share counts.
///
/// ```
/// use std::sync::Arc;
/// use cpc_tower::{ClientIp, FailurePolicy, RateLimitLayer};
/// use cpc_ports::RateLimitPolicy;
/// use cpc_memory::InMemoryRateLimiter;
///
/// let limiter = Arc::new(InMemoryRateLimiter::new());
/// let layer = RateLimitLayer::new(limiter, RateLimitPolicy::token_bucket(20, 5), ClientIp::peer())
///     .expect("a valid policy")
///     .scope("api")
///     .on_failure(FailurePolicy::FailClosed);
/// // axum::Router::new().route(..).layer(layer)
/// ```
pub struct RateLimitLayer<L: ?Sized, K> {
    limiter: Arc<L>,
    extractor: Arc<K>,
    policy: RateLimitPolicy,
    cost: u64,
    scope: Arc<str>,
    on_failure: FailurePolicy,
}

impl<L: ?Sized, K> Clone for RateLimitLayer<L, K> {
    fn clone(&self) -> Self {
        Self {
            limiter: Arc::clone(&self.limiter),
            extractor: Arc::clone(&self.extractor),
            policy: self.policy,
            cost: self.cost,
            scope: Arc::clone(&self.scope),
            on_failure: self.on_failure,
        }
    }
}

impl<L: ?Sized, K> std::fmt::Debug for RateLimitLayer<L, K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("policy", &self.policy)
            .field("cost", &self.cost)
            .field("scope", &self.scope)
            .field("on_failure", &self.on_failure)
            .finish_non_exhaustive()
    }
}

impl<L: RateLimiter + ?Sized, K: KeyExtractor> RateLimitLayer<L, K> {
    /// A layer spending 1 unit per request under `policy`, in scope `http`, failing open. Refuses an invalid
    /// policy, naming the field.
    pub fn new(limiter: Arc<L>, policy: RateLimitPolicy, extractor: K) -> Result<Self, ValidationError> {
        policy.validate(1)?;
        Ok(Self {
            limiter,
            extractor: Arc::new(extractor),
            policy,
            cost: 1,
            scope: Arc::from("http"),
            on_failure: FailurePolicy::default(),
        })
    }

    /// Spends `cost` units per request; refuses a cost of 0 or above the policy's limit.
    pub fn cost(mut self, cost: u64) -> Result<Self, ValidationError> {
        self.policy.validate(cost)?;
        self.cost = cost;
        Ok(self)
    }

    /// The prefix of every key this layer counts against.
    #[must_use]
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = scope.into().into();
        self
    }

    /// What to do when the limiter fails.
    #[must_use]
    pub fn on_failure(mut self, policy: FailurePolicy) -> Self {
        self.on_failure = policy;
        self
    }
}

impl<S, L: ?Sized, K> ::tower::Layer<S> for RateLimitLayer<L, K> {
    type Service = RateLimitService<S, L, K>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimitService { inner, layer: self.clone() }
    }
}

/// The service a [`RateLimitLayer`] wraps around `S`.
pub struct RateLimitService<S, L: ?Sized, K> {
    inner: S,
    layer: RateLimitLayer<L, K>,
}

impl<S: Clone, L: ?Sized, K> Clone for RateLimitService<S, L, K> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone(), layer: self.layer.clone() }
    }
}

impl<S, L: ?Sized, K> std::fmt::Debug for RateLimitService<S, L, K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimitService").field("layer", &self.layer).finish_non_exhaustive()
    }
}

/// How a request fared, as the `outcome` label.
fn count(outcome: &'static str) {
    counter!("cpc_http_rate_limit_total", "outcome" => outcome).increment(1);
}

/// Adds the decision's headers (and `Retry-After` on a refusal).
fn add_headers(headers: &mut HeaderMap, decision: &RateLimitDecision, policy: &RateLimitPolicy) {
    for (name, value) in rate_limit_headers(decision, policy) {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            headers.insert(name, value);
        }
    }
}

/// `<scope>:<key>`, cut to the longest key a limiter takes (at a character boundary), so an oversized header
/// cannot slip a request past the limit as unkeyed. `None` only for an empty key.
fn limit_key(scope: &str, key: &str) -> Option<RateLimitKey> {
    if key.is_empty() {
        return None;
    }
    let mut full = format!("{scope}:{key}");
    let mut end = full.len().min(MAX_KEY_BYTES);
    while !full.is_char_boundary(end) {
        end -= 1;
    }
    full.truncate(end);
    RateLimitKey::new(full).ok()
}

fn status_response<B: Default>(status: StatusCode) -> Response<B> {
    let mut response = Response::new(B::default());
    *response.status_mut() = status;
    response
}

impl<S, L, K, ReqB, ResB> ::tower::Service<Request<ReqB>> for RateLimitService<S, L, K>
where
    S: ::tower::Service<Request<ReqB>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    L: RateLimiter + ?Sized,
    K: KeyExtractor,
    ReqB: Send + 'static,
    ResB: Default + Send + 'static,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<ResB>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        // The clone is not ready; the one poll_ready readied is taken for this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        let key = layer.extractor.key(RequestView::from(&req)).and_then(|k| limit_key(&layer.scope, &k));
        Box::pin(async move {
            let Some(key) = key else {
                count("unkeyed");
                return inner.call(req).await;
            };
            match layer.limiter.check(&key, &layer.policy, layer.cost).await {
                Ok(decision) if decision.allowed => {
                    count("allowed");
                    let mut response = inner.call(req).await?;
                    add_headers(response.headers_mut(), &decision, &layer.policy);
                    Ok(response)
                }
                Ok(decision) => {
                    count("refused");
                    let mut response = status_response(StatusCode::TOO_MANY_REQUESTS);
                    add_headers(response.headers_mut(), &decision, &layer.policy);
                    Ok(response)
                }
                Err(e) => match layer.on_failure {
                    FailurePolicy::FailOpen => {
                        count("failed_open");
                        tracing::warn!(error.type = e.kind(), error = %e, policy = "fail_open", "rate limiter failed; request let through");
                        inner.call(req).await
                    }
                    FailurePolicy::FailClosed => {
                        count("failed_closed");
                        tracing::warn!(error.type = e.kind(), error = %e, policy = "fail_closed", "rate limiter failed; request refused");
                        Ok(status_response(StatusCode::SERVICE_UNAVAILABLE))
                    }
                },
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_scoped_and_oversized_ones_are_cut_not_dropped() {
        assert_eq!(limit_key("api", "ip:1.2.3.4").unwrap().as_str(), "api:ip:1.2.3.4");
        assert!(limit_key("api", "").is_none());
        let huge = "é".repeat(MAX_KEY_BYTES);
        let cut = limit_key("api", &huge).unwrap();
        assert!(cut.as_str().len() <= MAX_KEY_BYTES && cut.as_str().starts_with("api:é"));
        assert_eq!(cut, limit_key("api", &format!("{huge}different tail")).unwrap(), "same prefix, same bucket");
    }
}
