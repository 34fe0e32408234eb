//! Helpers for the tower/axum tests: a real axum server on 127.0.0.1, and the session cookie of a response.

use std::net::SocketAddr;

/// Serves `router` on a free port of 127.0.0.1 (with the peer address as `ConnectInfo`); returns its base URL.
pub async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>()).await.unwrap();
    });
    format!("http://{addr}")
}

/// The value of the cookie `name` a response sets, if it sets one.
pub fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next()?.trim().strip_prefix(&format!("{name}=")).map(str::to_owned))
        .next()
}

/// The text of a header of `response`.
pub fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}
