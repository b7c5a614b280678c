//! The gate's own answers — the ones git's backend does not give: plain
//! refusals, git's error packet for a push whose policy cannot run, the
//! answer to git's probe — and the record every refusal leaves.

use std::path::Path;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Response, StatusCode, header};

/// Every answer's body: the backend's output streamed, or a few bytes.
pub type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, std::io::Error>;

pub fn text(status: StatusCode, body: &str) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(
            Full::new(Bytes::from(body.to_owned()))
                .map_err(|e| match e {})
                .boxed_unsync(),
        )
        .expect("static response")
}

/// What `git receive-pack --stateless-rpc` sends for a flush packet alone.
pub(crate) fn empty_push_result() -> Response<Body> {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::EXPIRES, "Fri, 01 Jan 1980 00:00:00 GMT")
        .header(header::PRAGMA, "no-cache")
        .header(
            header::CACHE_CONTROL,
            "no-cache, max-age=0, must-revalidate",
        )
        .header(
            header::CONTENT_TYPE,
            "application/x-git-receive-pack-result",
        )
        .body(
            Full::new(Bytes::new())
                .map_err(|e| match e {})
                .boxed_unsync(),
        )
        .expect("static response")
}

pub(crate) fn unauthorized() -> Response<Body> {
    let mut r = text(
        StatusCode::UNAUTHORIZED,
        "a token is required (HTTP Basic, token as the user name)\n",
    );
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Basic realm=\"paddock git gate\""),
    );
    r
}

pub(crate) fn not_found() -> Response<Body> {
    text(StatusCode::NOT_FOUND, "repository not found\n")
}

/// A request refused before git saw it, on the audit log beside the
/// push decisions (nothing is refused off the record).
pub(crate) fn record_refusal(
    audit_log: Option<&Path>,
    principal: &str,
    project: &str,
    path: &str,
    status: StatusCode,
    reason: &str,
) {
    let path: String = path.chars().take(256).collect();
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    crate::hook::audit(
        audit_log,
        serde_json::json!({
            "time": now, "project": project, "principal": principal,
            "request": path, "outcome": "refused", "status": status.as_u16(),
            "reason": reason,
        }),
    );
}

/// Refuses a push whose policy hooks cannot run. To the advertisement
/// request, git's own error packet (shown as `remote error: …`);
/// to the POST, a 503.
pub(crate) fn hooks_broken(project: &str, why: &str, advertisement: bool) -> Response<Body> {
    tracing::error!(
        project,
        reason = why,
        "refusing a push: its policy hooks cannot run"
    );
    let message = format!(
        "paddock git gate: pushes are refused because the push policy cannot run ({why}); restart the gate"
    );
    if !advertisement {
        return text(StatusCode::SERVICE_UNAVAILABLE, &format!("{message}\n"));
    }
    let mut body = Vec::new();
    for line in [
        "# service=git-receive-pack\n".to_owned(),
        format!("ERR {message}\n"),
    ] {
        body.extend_from_slice(format!("{:04x}", line.len() + 4).as_bytes());
        body.extend_from_slice(line.as_bytes());
        if line.starts_with('#') {
            body.extend_from_slice(b"0000");
        }
    }
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CACHE_CONTROL, "no-cache")
        .header(
            header::CONTENT_TYPE,
            "application/x-git-receive-pack-advertisement",
        )
        .body(
            Full::new(Bytes::from(body))
                .map_err(|e| match e {})
                .boxed_unsync(),
        )
        .unwrap_or_else(|_| text(StatusCode::SERVICE_UNAVAILABLE, &message))
}
