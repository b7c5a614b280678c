//! The work goes home: pushing a project's agent branch from the gate to
//! the project's upstream forge, when a person says so. The pushing is the
//! binary's (it owns the gate and paddock's own way through the gateway);
//! this is its REST surface.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use paddock_core::BoxFuture;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{Caller, Named};
use crate::error::ErrorCode;
use crate::routes::Routes;
use crate::{ApiError, AppState};

/// Pushes a ref of a project's gate repository to its upstream.
pub trait GitUpstream: Send + Sync {
    /// The ref as pushed (`refs/heads/agent/x`) and the upstream's URL.
    fn push<'a>(
        &'a self,
        project: &'a str,
        git_ref: &'a str,
    ) -> BoxFuture<'a, Result<(String, String), UpstreamPushError>>;

    /// Every project with an upstream, and its URL.
    fn projects(&self) -> Vec<(String, String)>;
}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamPushError {
    #[error("project {0:?} has no upstream (`[[git.projects]] upstream`)")]
    NoUpstream(String),
    /// The ref may not go (not an agent branch) or does not exist.
    #[error("{0}")]
    Refused(String),
    #[error("the push to the upstream failed: {0}")]
    Failed(String),
}

impl From<UpstreamPushError> for ApiError {
    fn from(e: UpstreamPushError) -> Self {
        let (status, code) = match &e {
            UpstreamPushError::NoUpstream(_) => (StatusCode::NOT_FOUND, ErrorCode::NotFound),
            UpstreamPushError::Refused(_) => (StatusCode::BAD_REQUEST, ErrorCode::Invalid),
            UpstreamPushError::Failed(_) => (StatusCode::BAD_GATEWAY, ErrorCode::EgressError),
        };
        ApiError {
            status,
            code,
            message: e.to_string(),
        }
    }
}

pub(crate) fn routes(routes: Routes) -> Routes {
    routes.bind("POST /api/v1/projects/{project}/git/push-upstream", push)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PushBody {
    #[serde(rename = "ref")]
    git_ref: String,
}

async fn push(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(project): Path<String>,
    payload: Result<Json<PushBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    paddock_core::validate::project(&project)?;
    caller.check(&s, Named::Project(&project)).await?;
    let Json(body) = payload.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let upstream = s
        .upstream
        .as_ref()
        .ok_or_else(|| UpstreamPushError::NoUpstream(project.clone()))?;
    let (pushed, url) = upstream.push(&project, &body.git_ref).await?;
    tracing::info!(principal = caller.principal(), %project, git_ref = %pushed, "pushed to the upstream");
    Ok(Json(
        json!({ "project": project, "ref": pushed, "upstream": url }),
    ))
}
