//! [`KeyExtractor`]: what a request is rate-limited by (client IP, a header, the authenticated user, a closure).

use std::marker::PhantomData;
use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use http::{Extensions, HeaderMap, HeaderName, Method, Uri};

/// The parts of a request a [`KeyExtractor`] may look at (the body is never read).
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    /// The method.
    pub method: &'a Method,
    /// The URI.
    pub uri: &'a Uri,
    /// The headers.
    pub headers: &'a HeaderMap,
    /// The extensions: the peer address (`ConnectInfo`), an authenticated user put there by an auth layer...
    pub extensions: &'a Extensions,
}

impl<'a, B> From<&'a http::Request<B>> for RequestView<'a> {
    fn from(req: &'a http::Request<B>) -> Self {
        Self { method: req.method(), uri: req.uri(), headers: req.headers(), extensions: req.extensions() }
    }
}

/// What a [`RateLimitLayer`](super::RateLimitLayer) counts a request against. `None` means the request has no
/// key (e.g. no user is logged in, for a per-user limit): it is let through and counted as `unkeyed`.
///
/// Closures `Fn(RequestView<'_>) -> Option<String>` are extractors.
pub trait KeyExtractor: Send + Sync + 'static {
    /// The key of `req`, or `None`.
    fn key(&self, req: RequestView<'_>) -> Option<String>;
}

impl<F> KeyExtractor for F
where
    F: Fn(RequestView<'_>) -> Option<String> + Send + Sync + 'static,
{
    fn key(&self, req: RequestView<'_>) -> Option<String> {
        self(req)
    }
}

/// The client's IP address: the peer address axum records with `into_make_service_with_connect_info::<SocketAddr>()`
/// (`ConnectInfo<SocketAddr>`), or, behind proxies you trust, the address the outermost of them saw, read from
/// `X-Forwarded-For`.
///
/// `X-Forwarded-For` is opt-in because any client can send one: with [`ClientIp::behind_proxies`]`(n)` the
/// `n`-th address from the right is taken (the one your first trusted proxy appended), never one the client
/// wrote. A request with fewer entries, or none that parse, falls back to the peer address.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientIp {
    trusted_proxies: usize,
}

impl ClientIp {
    /// The peer address only.
    pub const fn peer() -> Self {
        Self { trusted_proxies: 0 }
    }

    /// The address seen by the outermost of `n` trusted reverse proxies in front of the app (0: the peer).
    pub const fn behind_proxies(n: usize) -> Self {
        Self { trusted_proxies: n }
    }

    fn forwarded(&self, headers: &HeaderMap) -> Option<IpAddr> {
        let n = self.trusted_proxies.checked_sub(1)?;
        let chain: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        chain.iter().rev().nth(n)?.parse().ok()
    }
}

impl KeyExtractor for ClientIp {
    fn key(&self, req: RequestView<'_>) -> Option<String> {
        let peer = || req.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        self.forwarded(req.headers).or_else(peer).map(|ip| format!("ip:{ip}"))
    }
}

/// The value of one request header (an API key, a tenant id). A missing or non-UTF-8 value is no key.
///
/// The value becomes part of the limiter's key (a Redis key name, for the Redis limiter): hash secrets first
/// with a closure extractor if the store must not see them.
#[derive(Debug, Clone)]
pub struct HeaderKey {
    name: HeaderName,
}

impl HeaderKey {
    /// Keys by the header `name`.
    pub fn new(name: HeaderName) -> Self {
        Self { name }
    }
}

impl KeyExtractor for HeaderKey {
    fn key(&self, req: RequestView<'_>) -> Option<String> {
        let value = req.headers.get(&self.name)?.to_str().ok()?.trim();
        (!value.is_empty()).then(|| format!("{}:{value}", self.name))
    }
}

/// A value an earlier layer put in the request's extensions, typically the authenticated user: `ExtensionKey::new(|u:
/// &CurrentUser| u.id.to_string())`. A request without it is no key.
pub struct ExtensionKey<T, F> {
    key: F,
    _t: PhantomData<fn(&T)>,
}

impl<T, F> ExtensionKey<T, F>
where
    T: Send + Sync + 'static,
    F: Fn(&T) -> String + Send + Sync + 'static,
{
    /// Keys by `key` of the extension `T`.
    pub fn new(key: F) -> Self {
        Self { key, _t: PhantomData }
    }
}

impl<T, F> std::fmt::Debug for ExtensionKey<T, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExtensionKey").field("type", &std::any::type_name::<T>()).finish()
    }
}

impl<T, F> KeyExtractor for ExtensionKey<T, F>
where
    T: Send + Sync + 'static,
    F: Fn(&T) -> String + Send + Sync + 'static,
{
    fn key(&self, req: RequestView<'_>) -> Option<String> {
        req.extensions.get::<T>().map(|t| format!("user:{}", (self.key)(t)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(forwarded: &[&str], peer: Option<&str>) -> http::Request<()> {
        let mut req = http::Request::new(());
        for f in forwarded {
            req.headers_mut().append("x-forwarded-for", f.parse().unwrap());
        }
        if let Some(p) = peer {
            req.extensions_mut().insert(ConnectInfo(p.parse::<SocketAddr>().unwrap()));
        }
        req
    }

    #[test]
    fn client_ip_trusts_forwarded_for_only_as_far_as_told() {
        let req = request(&["6.6.6.6, 1.2.3.4", "10.0.0.1"], Some("10.0.0.2:4000"));
        assert_eq!(ClientIp::peer().key((&req).into()).as_deref(), Some("ip:10.0.0.2"));
        assert_eq!(ClientIp::behind_proxies(1).key((&req).into()).as_deref(), Some("ip:10.0.0.1"));
        assert_eq!(ClientIp::behind_proxies(2).key((&req).into()).as_deref(), Some("ip:1.2.3.4"));
        assert_eq!(ClientIp::behind_proxies(9).key((&req).into()).as_deref(), Some("ip:10.0.0.2"), "falls back");
        let garbled = request(&["not-an-ip"], None);
        assert_eq!(ClientIp::behind_proxies(1).key((&garbled).into()), None);
    }

    #[test]
    fn header_and_extension_keys_are_none_when_absent() {
        #[derive(Clone)]
        struct User(u32);
        let mut req = request(&[], None);
        let by_header = HeaderKey::new(HeaderName::from_static("x-api-key"));
        let by_user = ExtensionKey::new(|u: &User| u.0.to_string());
        assert_eq!((by_header.key((&req).into()), by_user.key((&req).into())), (None, None));
        req.headers_mut().insert("x-api-key", "k1".parse().unwrap());
        req.extensions_mut().insert(User(42));
        assert_eq!(by_header.key((&req).into()).as_deref(), Some("x-api-key:k1"));
        assert_eq!(by_user.key((&req).into()).as_deref(), Some("user:42"));
        let closure = |r: RequestView<'_>| Some(r.uri.path().to_owned());
        assert_eq!(closure.key((&req).into()).as_deref(), Some("/"));
    }
}
