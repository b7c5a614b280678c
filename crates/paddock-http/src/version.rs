//! Versions between the CLI and the server. Every answer says which
//! paddock it is and which API it speaks (`paddock-version`,
//! `paddock-api`); a client that says which API it speaks (`paddock-api`,
//! as paddock's CLI does) and is outside what this server serves is
//! refused with `version_skew`, naming both and which side to upgrade.
//! Clients that say nothing — curl, scripts — are served as always.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, ErrorCode};

/// The REST API's version: it goes up when an answer changes in a way an
/// older client would misread.
pub const API_VERSION: u32 = 1;
/// The oldest client API this server still serves.
pub const OLDEST_CLIENT_API: u32 = 1;

pub static API_HEADER: HeaderName = HeaderName::from_static("paddock-api");
pub static VERSION_HEADER: HeaderName = HeaderName::from_static("paddock-version");

/// Why a client's API is not served, if it is not.
fn skew(client_api: &str) -> Option<String> {
    let Ok(api) = client_api.trim().parse::<u32>() else {
        return Some(format!("paddock-api must be a number, not {client_api:?}"));
    };
    let server = env!("CARGO_PKG_VERSION");
    if api < OLDEST_CLIENT_API {
        Some(format!(
            "this client speaks API {api}, older than paddock {server} serves (API {OLDEST_CLIENT_API} to {API_VERSION}): upgrade the client"
        ))
    } else if api > API_VERSION {
        Some(format!(
            "this client speaks API {api}, newer than paddock {server} serves (API {OLDEST_CLIENT_API} to {API_VERSION}): upgrade the server, or use a client of its version"
        ))
    } else {
        None
    }
}

pub(crate) async fn guard(request: Request, next: Next) -> Response {
    let refused = request
        .headers()
        .get(&API_HEADER)
        .map(|v| v.to_str().map_or_else(|_| skew(""), skew))
        .and_then(|s| s);
    let mut response = match refused {
        Some(message) => ApiError {
            status: StatusCode::BAD_REQUEST,
            code: ErrorCode::VersionSkew,
            message,
        }
        .into_response(),
        None => next.run(request).await,
    };
    let headers = response.headers_mut();
    headers.insert(API_HEADER.clone(), HeaderValue::from(API_VERSION));
    headers.insert(
        VERSION_HEADER.clone(),
        HeaderValue::from_static(env!("CARGO_PKG_VERSION")),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_apis_served_pass() {
        assert_eq!(skew(&API_VERSION.to_string()), None);
        assert!(skew("0").unwrap().contains("upgrade the client"));
        assert!(skew("99").unwrap().contains("upgrade the server"));
        assert!(skew("one").unwrap().contains("must be a number"));
    }
}
