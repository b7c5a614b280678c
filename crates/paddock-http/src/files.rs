//! REST: a box's files as tar archives, `GET`/`PUT
//! /api/v1/boxes/{id}/files?path=…` — what `paddock box cp` speaks.
//!
//! An upload is spooled, whole and capped, into an unnamed temporary file
//! (gone with the process, whatever happens) before the box service
//! checks it, so a refused archive leaves nothing in the box.

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use paddock_core::CoreError;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use crate::routes::Routes;
use crate::{ApiError, AppState};

pub(crate) fn routes(routes: Routes) -> Routes {
    routes
        .bind("GET /api/v1/boxes/{id}/files", download)
        .bind("PUT /api/v1/boxes/{id}/files", upload)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PathQuery {
    path: String,
}

fn path_of(query: Result<Query<PathQuery>, QueryRejection>) -> Result<String, ApiError> {
    query.map(|Query(q)| q.path).map_err(|e| {
        ApiError::bad_request(format!("{} (give ?path=/absolute/path)", e.body_text()))
    })
}

async fn download(
    State(s): State<AppState>,
    Path(id): Path<String>,
    query: Result<Query<PathQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let path = path_of(query)?;
    let stream = s.boxes.get_archive(&id, &path).await?;
    let body = Body::from_stream(stream.map(|chunk| chunk.map_err(std::io::Error::other)));
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-tar"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response())
}

#[derive(Serialize)]
struct Unpacked {
    entries: u64,
    file_bytes: u64,
}

async fn upload(
    State(s): State<AppState>,
    Path(id): Path<String>,
    query: Result<Query<PathQuery>, QueryRejection>,
    body: Body,
) -> Result<Json<Unpacked>, ApiError> {
    let path = path_of(query)?;
    // Before reading a byte: a box that does not exist, or a destination
    // that is not a directory there, costs no spooling.
    s.boxes.get(&id)?;
    s.boxes.check_upload_dir(&id, &path).await?;
    let limit_bytes = s
        .boxes
        .config()
        .boxes
        .copy_max_mib
        .saturating_mul(1024 * 1024);
    let started = std::time::Instant::now();
    let tar = spool(body, limit_bytes).await?;
    let spooled_ms = started.elapsed().as_millis();
    let summary = s.boxes.put_archive(&id, &path, tar).await?;
    tracing::debug!(
        box_id = %id,
        spooled_ms,
        unpacked_ms = started.elapsed().as_millis() - spooled_ms,
        bytes = summary.file_bytes,
        "archive unpacked into a box"
    );
    Ok(Json(Unpacked {
        entries: summary.entries,
        file_bytes: summary.file_bytes,
    }))
}

/// The request body in an unnamed temporary file, refused past
/// `limit_bytes` (the rest is not read).
async fn spool(body: Body, limit_bytes: u64) -> Result<std::fs::File, ApiError> {
    let io = |e: std::io::Error| {
        ApiError::from(CoreError::Invalid(format!("spooling the archive: {e}")))
    };
    let file = tokio::task::spawn_blocking(tempfile::tempfile)
        .await
        .map_err(|e| io(std::io::Error::other(e)))?
        .map_err(io)?;
    // A large buffer: each write of a tokio file is a trip to the
    // blocking pool.
    let mut file =
        tokio::io::BufWriter::with_capacity(1024 * 1024, tokio::fs::File::from_std(file));
    let mut stream = body.into_data_stream();
    let mut total_bytes = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::bad_request(format!("reading the archive: {e}")))?;
        total_bytes += chunk.len() as u64;
        if total_bytes > limit_bytes {
            return Err(CoreError::TooLarge {
                what: "the archive",
                limit_bytes,
            }
            .into());
        }
        file.write_all(&chunk).await.map_err(io)?;
    }
    file.flush().await.map_err(io)?;
    Ok(file.into_inner().into_std().await)
}
