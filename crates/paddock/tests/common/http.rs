//! HTTP clients for the tests, and reading an answer as JSON.

use serde_json::Value;

/// reqwest is built with rustls and no built-in crypto provider (paddock
/// installs ring at start); a test process installs it the same way.
fn install_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A plain HTTP client (no credential).
pub fn http() -> reqwest::Client {
    install_tls();
    reqwest::Client::new()
}

/// A client that follows no redirect and keeps no cookies: the test
/// carries them by hand, so it can look at each one.
pub fn raw_http() -> reqwest::Client {
    install_tls();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub fn authorised_client(token: &str) -> reqwest::Client {
    install_tls();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

pub(crate) async fn status_json(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, value)
}
