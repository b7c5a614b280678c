//! Pages for people: one look, headers that keep secrets in the page
//! (`no-store`, referrers only to paddock itself, a strict CSP, no
//! framing), and escaping.
//!
//! `same-origin`, not `no-referrer`: under `no-referrer` browsers send
//! `Origin: null` with a page's own form posts, which the origin guard
//! (rightly) refuses; `same-origin` still keeps the path — and the token
//! in it — from every other site.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub(crate) fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · paddock</title><style>\
         body{{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem;color:#222}}\
         a.button,button{{display:inline-block;padding:.6rem 1rem;border-radius:.4rem;border:1px solid #335;background:#335;color:#fff;text-decoration:none;font-size:1rem}}\
         input{{font-size:1rem;padding:.5rem;width:100%;box-sizing:border-box;margin:.5rem 0}}\
         .muted{{color:#666}} .ok{{color:#060}} .bad{{color:#a00}} .code{{font:1.5rem monospace;letter-spacing:.1em;user-select:all}}</style></head>\
         <body><h1>{title}</h1>{body}</body></html>",
        title = escape(title)
    );
    with_page_headers(
        (status, Html(html)).into_response(),
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
    )
}

/// The headers every page answer carries: not cached, no referrer to
/// other sites, never framed, not sniffed, and its CSP.
pub(crate) fn with_page_headers(mut response: Response, csp: &'static str) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(csp),
    );
    response
}

#[cfg(test)]
mod tests {
    #[test]
    fn escape_neutralises_markup() {
        assert_eq!(
            super::escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
