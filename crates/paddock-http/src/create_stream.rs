//! A create that reports as it goes: asked for with `Accept:
//! application/x-ndjson`, `POST /api/v1/boxes` answers 200 at once and
//! streams one JSON object per line — `{"progress": {...}}` while the
//! box's image is pulled, then `{"created": {...}}` or `{"error": {"code",
//! "message"}, "status"}` (the status the plain request would have
//! answered) — so a person sees a pull of a large image move. The
//! create runs to its end even if the client goes away (the journal needs
//! no help with that), and its outcome is the same as the plain request's.

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use paddock_core::{CreateBox, PullProgress};
use serde_json::json;

use crate::{ApiError, AppState};

pub(crate) const NDJSON: &str = "application/x-ndjson";

/// Whether the client asked for the streamed form.
pub(crate) fn wanted(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|part| part.trim().starts_with(NDJSON)))
}

fn line(value: serde_json::Value) -> Result<axum::body::Bytes, std::io::Error> {
    let mut text = value.to_string();
    text.push('\n');
    Ok(text.into())
}

pub(crate) fn create(state: AppState, request: CreateBox) -> Response {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let progress_tx = tx.clone();
        let report = move |p: PullProgress| {
            let _ = progress_tx.send(json!({"progress": {
                "layers_total": p.layers_total,
                "layers_done": p.layers_done,
                "bytes_done": p.bytes_done,
                "bytes_total": p.bytes_total,
                "status": p.status,
            }}));
        };
        let last = match state.boxes.create_reporting(request, &report).await {
            Ok(created) => json!({"created": created}),
            Err(e) => {
                let e = ApiError::from(e);
                json!({"error": {"code": e.code.as_str(), "message": e.message}, "status": e.status.as_u16()})
            }
        };
        let _ = tx.send(last);
    });
    let lines = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|value| (value, rx))
    });
    let body = Body::from_stream(lines.map(line));
    (StatusCode::OK, [(header::CONTENT_TYPE, NDJSON)], body).into_response()
}
