//! Browsers are not callers we authenticate yet, but they must not be
//! turned against paddock: every request must name an allowed `Host` (DNS
//! rebinding), and a WebSocket from a page must come from paddock's own
//! origin (cross-site WebSocket hijacking — WebSockets skip CORS).

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::ApiError;
use crate::error::ErrorCode;

/// `host` or `host:port` split into its parts (IPv6 in brackets).
fn split_authority(authority: &str) -> (&str, Option<&str>) {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']').unwrap_or((rest, ""));
        return (host, after.strip_prefix(':'));
    }
    if authority.matches(':').count() > 1 {
        return (authority, None); // a bare IPv6 address
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    }
}

/// An entry without a port allows the host on any port.
pub(crate) fn host_allowed(authority: &str, allowed: &[String]) -> bool {
    let (host, port) = split_authority(authority);
    allowed.iter().any(|entry| {
        let (eh, ep) = split_authority(entry);
        eh.eq_ignore_ascii_case(host) && (ep.is_none() || ep == port)
    })
}

fn forbidden(message: &str) -> Response {
    ApiError {
        status: StatusCode::FORBIDDEN,
        code: ErrorCode::Forbidden,
        message: message.to_owned(),
    }
    .into_response()
}

pub(crate) async fn guard(
    State(allowed): State<std::sync::Arc<Vec<String>>>,
    request: Request,
    next: Next,
) -> Response {
    if let Err(message) = check(request.headers(), &allowed) {
        return forbidden(message);
    }
    next.run(request).await
}

fn check(headers: &HeaderMap, allowed: &[String]) -> Result<(), &'static str> {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .ok_or("the request names no Host")?;
    if !host_allowed(host, allowed) {
        return Err("this Host is not one paddock serves (server.allowed_hosts)");
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().map_err(|_| "unreadable Origin")?;
        let authority = origin
            .split_once("://")
            .map(|(_, rest)| rest.trim_end_matches('/'))
            .ok_or("a request from a page of another origin")?;
        if !authority.eq_ignore_ascii_case(host) {
            return Err("a request from a page of another origin");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(host: &str, origin: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, host.parse().unwrap());
        if let Some(o) = origin {
            h.insert(header::ORIGIN, o.parse().unwrap());
        }
        h
    }

    #[test]
    fn only_allowed_hosts_and_our_own_origin() {
        let allowed = vec![
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
            "paddock.example:8443".to_owned(),
        ];
        assert!(check(&headers("127.0.0.1:7878", None), &allowed).is_ok());
        assert!(check(&headers("[::1]:7878", None), &allowed).is_ok());
        assert!(check(&headers("paddock.example:8443", None), &allowed).is_ok());
        assert!(check(&headers("paddock.example:9999", None), &allowed).is_err());
        assert!(
            check(&headers("evil.example", None), &allowed).is_err(),
            "DNS rebinding"
        );
        assert!(
            check(
                &headers("127.0.0.1:7878", Some("http://127.0.0.1:7878")),
                &allowed
            )
            .is_ok()
        );
        assert!(
            check(
                &headers("127.0.0.1:7878", Some("https://evil.example")),
                &allowed
            )
            .is_err()
        );
        assert!(check(&headers("127.0.0.1:7878", Some("null")), &allowed).is_err());
    }
}
