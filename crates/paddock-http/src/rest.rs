//! REST: `/api/v1/boxes[/{id}[/exec|/logs|/stop|/start]]`.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use paddock_core::{BoxView, CreateBox, CreatedBox, ExecResult};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::auth::{Caller, Named};
use crate::create_stream;
use crate::error::json_body as body;
use crate::routes::Routes;
use crate::{ApiError, AppState};

pub(crate) fn routes(routes: Routes) -> Routes {
    routes
        .bind("GET /api/v1/boxes", list)
        .bind("POST /api/v1/boxes", create)
        .bind("GET /api/v1/boxes/{id}", get_one)
        .bind("DELETE /api/v1/boxes/{id}", destroy)
        .bind("POST /api/v1/boxes/{id}/stop", stop)
        .bind("POST /api/v1/boxes/{id}/start", start)
        .bind("POST /api/v1/boxes/{id}/exec", exec)
        .bind("GET /api/v1/boxes/{id}/logs", logs)
}

#[derive(Serialize)]
struct BoxList {
    boxes: Vec<Value>,
}

/// A box as REST shows it: its view, and its shield when egress is on.
pub(crate) fn with_shield(s: &AppState, view: &BoxView) -> Value {
    let mut view = view.clone();
    // A spoke's box carries the spoke's shield already.
    if view.spoke.is_none()
        && let Some(egress) = &s.egress
    {
        let shield = egress.shield_of(&view.box_id);
        view.shield = Some(shield.as_str().to_owned());
        view.shield_until_ms = shield.until_ms();
    }
    serde_json::to_value(view).unwrap_or_default()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// Ask the engine what each running box uses (one request per box).
    #[serde(default)]
    usage: bool,
}

async fn list(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<BoxList>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let mut boxes = if query.usage {
        s.boxes.list_with_usage().await?
    } else {
        s.boxes.list()?
    };
    boxes.retain(|b| caller.sees(&b.project));
    let boxes = boxes.iter().map(|b| with_shield(&s, b)).collect();
    Ok(Json(BoxList { boxes }))
}

async fn create(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    payload: Result<Json<CreateBox>, JsonRejection>,
) -> Result<Response, ApiError> {
    let request = body(payload)?;
    caller.check(&s, Named::Project(&request.project)).await?;
    if create_stream::wanted(&headers) {
        return Ok(create_stream::create(s, request));
    }
    let created: CreatedBox = s.boxes.create(request).await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

async fn get_one(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(with_shield(&s, &s.boxes.get_with_usage(&id).await?)))
}

async fn destroy(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.boxes.destroy(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn stop(State(s): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    Ok(Json(with_shield(&s, &s.boxes.stop(&id).await?)))
}

async fn start(State(s): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    Ok(Json(with_shield(&s, &s.boxes.start(&id).await?)))
}

/// Either a shell command line (`command`, run with `/bin/sh -c`) or the
/// words of a command (`argv`, run as they are) — exactly one.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExecRequest {
    #[serde(default)]
    command: Option<String>,
    #[serde(default)]
    argv: Option<Vec<String>>,
}

async fn exec(
    State(s): State<AppState>,
    Path(id): Path<String>,
    payload: Result<Json<ExecRequest>, JsonRejection>,
) -> Result<Json<ExecResult>, ApiError> {
    let req = body(payload)?;
    let result = match (req.command, req.argv) {
        (Some(command), None) => s.boxes.exec(&id, &command).await?,
        (None, Some(argv)) => s.boxes.exec_argv(&id, argv).await?,
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one of command (a shell command line) or argv (the words of a command)",
            ));
        }
    };
    Ok(Json(result))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogsQuery {
    tail: Option<u32>,
}

#[derive(Serialize)]
struct Logs {
    logs: String,
}

async fn logs(
    State(s): State<AppState>,
    Path(id): Path<String>,
    query: Result<Query<LogsQuery>, QueryRejection>,
) -> Result<Json<Logs>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    Ok(Json(Logs {
        logs: s.boxes.logs(&id, q.tail).await?,
    }))
}
