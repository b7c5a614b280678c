//! What the remote regimes share: one HTTP client (rustls with ring, the
//! platform's roots), bounded bodies, and claims read into grants.

use std::time::Duration;

use serde_json::Value;

use crate::capability::{Capabilities, Capability};
use crate::error::AuthError;
use crate::identity::ProjectScope;

/// Responses larger than this are not key sets or introspection answers.
const MAX_BODY: usize = 256 * 1024;

pub(crate) fn client(timeout: Duration) -> Result<reqwest::Client, String> {
    // Installing twice is harmless; whichever came first stays.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))
}

/// Reads a JSON body, refusing big ones; every failure is `Unavailable`:
/// the regime could not decide, so the caller is refused.
pub(crate) async fn json(response: reqwest::Response, what: &str) -> Result<Value, AuthError> {
    let status = response.status();
    if !status.is_success() {
        return Err(AuthError::Unavailable(format!(
            "{what} answered HTTP {}",
            status.as_u16()
        )));
    }
    let bytes = bounded_body(response)
        .await
        .map_err(|e| AuthError::Unavailable(format!("{what}: {e}")))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| AuthError::Unavailable(format!("{what}: not JSON ({e})")))
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    #[error("response too large")]
    TooLarge,
    #[error("{0}")]
    Read(String),
}

/// A response's body, refused past `MAX_BODY` while it arrives: a key
/// set, a token answer or a discovery document is never that big.
pub(crate) async fn bounded_body(mut response: reqwest::Response) -> Result<Vec<u8>, BodyError> {
    if response
        .content_length()
        .is_some_and(|n| n > MAX_BODY as u64)
    {
        return Err(BodyError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| BodyError::Read(without_url(&e)))?
    {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// What failed, without the endpoint's URL (reqwest errors name it; it
/// never carries the token, but the log need not repeat it either).
pub(crate) fn without_url(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".into();
    }
    if e.is_connect() {
        return "cannot connect".into();
    }
    let text = e.to_string();
    match e.url() {
        Some(url) => text.replace(url.as_str(), "<endpoint>"),
        None => text,
    }
}

/// Capabilities from a space-separated `scope` string or an array claim:
/// capability and role names; anything else grants nothing.
pub(crate) fn grants(claim: Option<&Value>, default: Capabilities) -> Capabilities {
    let names: Vec<&str> = match claim {
        Some(Value::String(s)) => s.split_whitespace().collect(),
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let mut set: Vec<Capability> = default.iter().collect();
    for name in names {
        if let Ok(found) = Capabilities::parse([name]) {
            set.extend(found.iter());
        }
    }
    set.into_iter().collect()
}

/// Projects from an array claim (or a space-separated string); a missing
/// claim is every project, an empty one is none.
pub(crate) fn projects(claim: Option<&Value>) -> ProjectScope {
    match claim {
        None | Some(Value::Null) => ProjectScope::All,
        Some(Value::String(s)) => ProjectScope::only(s.split_whitespace()),
        Some(Value::Array(a)) => ProjectScope::only(a.iter().filter_map(Value::as_str)),
        Some(_) => ProjectScope::only(Vec::<String>::new()),
    }
}
