//! The console's stylesheet and script, embedded in the binary: nothing
//! to build, nothing fetched from elsewhere. Served by name from a fixed
//! list; anything else is a 404.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

const FILES: [(&str, &str, &str); 4] = [
    (
        "console.css",
        "text/css; charset=utf-8",
        include_str!("assets/console.css"),
    ),
    ("icon.svg", "image/svg+xml", include_str!("assets/icon.svg")),
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/console.js"),
    ),
    (
        "terminal.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/terminal.js"),
    ),
];

pub(crate) async fn serve(Path(file): Path<String>) -> Response {
    let Some((_, content_type, body)) = FILES.iter().find(|(name, _, _)| *name == file) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let mut response = (StatusCode::OK, *body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Same binary, same bytes: a short cache spares reloads, and a new
    // paddock is picked up within minutes.
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=300"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}
