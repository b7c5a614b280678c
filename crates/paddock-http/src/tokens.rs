//! REST for the built-in tokens (`admin:tokens`) and `whoami`.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use paddock_iam::{Capabilities, IamError, NewToken, ProjectScope, TokenBook};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::error::ErrorCode;
use crate::routes::Routes;
use crate::{ApiError, AppState};

pub(crate) fn routes(routes: Routes) -> Routes {
    routes
        .bind("GET /api/v1/whoami", whoami)
        .bind("GET /api/v1/tokens", list)
        .bind("POST /api/v1/tokens", create)
        .bind("DELETE /api/v1/tokens/{id}", revoke)
}

impl From<IamError> for ApiError {
    fn from(e: IamError) -> Self {
        let (status, code) = match &e {
            IamError::Invalid(_) => (StatusCode::BAD_REQUEST, ErrorCode::Invalid),
            IamError::NoSuchToken(_) => (StatusCode::NOT_FOUND, ErrorCode::NotFound),
            IamError::Store(e) => crate::error::store_failure(e),
        };
        Self {
            status,
            code,
            message: e.to_string(),
        }
    }
}

fn book(s: &AppState) -> Result<&TokenBook, ApiError> {
    s.iam.tokens().ok_or_else(|| ApiError {
        status: StatusCode::NOT_FOUND,
        code: ErrorCode::TokensDisabled,
        message: "built-in tokens are not enabled in this paddock".into(),
    })
}

async fn whoami(Extension(caller): Extension<Caller>) -> Json<Value> {
    let id = &caller.identity;
    Json(json!({
        "principal": &*id.principal,
        "source": id.source.to_string(),
        "projects": id.projects.to_list(),
        "expires_at": id.expires_at,
    }))
}

async fn list(State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "tokens": book(&s)?.list()? })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateToken {
    name: String,
    /// Capability and role names; `*` for all.
    capabilities: Vec<String>,
    /// Absent: every project.
    #[serde(default)]
    projects: Option<Vec<String>>,
    #[serde(default)]
    ttl_secs: Option<u64>,
}

async fn create(
    State(s): State<AppState>,
    payload: Result<Json<CreateToken>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let req = payload
        .map(|Json(v)| v)
        .map_err(|e| ApiError::bad_request(e.body_text()))?;
    let capabilities = Capabilities::parse(req.capabilities.iter().map(String::as_str))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let projects = match req.projects {
        None => ProjectScope::All,
        Some(list) => {
            for p in &list {
                paddock_core::validate::project(p)?;
            }
            ProjectScope::only(list)
        }
    };
    let ttl = match req.ttl_secs {
        Some(0) => return Err(ApiError::bad_request("ttl_secs must be positive")),
        other => other.map(std::time::Duration::from_secs),
    };
    let (info, secret) = book(&s)?.create(&NewToken {
        name: req.name,
        capabilities,
        projects,
        ttl,
    })?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "token": info, "secret": secret })),
    ))
}

async fn revoke(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    book(&s)?;
    Ok(Json(json!({ "token": s.iam.revoke(&id)? })))
}
