//! Projects' secrets over REST: set (value, variable, bindings), list
//! (never a value), remove. A value arrives in a body and leaves only on
//! the wire to a bound host: no answer, log line or error here carries it.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use paddock_vault::{BindingSpec, SecretInfo, SecretUpdate, VaultError};
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::auth::{Caller, Named};
use crate::error::ErrorCode;
use crate::routes::Routes;
use crate::{ApiError, AppState};

pub(crate) fn routes(routes: Routes) -> Routes {
    routes
        .bind("GET /api/v1/secrets", list)
        .bind("PUT /api/v1/projects/{project}/secrets/{name}", put)
        .bind("DELETE /api/v1/projects/{project}/secrets/{name}", remove)
}

impl From<VaultError> for ApiError {
    fn from(e: VaultError) -> Self {
        match e {
            VaultError::Invalid(_) => ApiError::bad_request(e.to_string()),
            VaultError::NotFound { .. } => ApiError {
                status: StatusCode::NOT_FOUND,
                code: ErrorCode::NotFound,
                message: e.to_string(),
            },
            VaultError::Store(ref store) => {
                let (status, code) = crate::error::store_failure(store);
                ApiError {
                    status,
                    code,
                    message: e.to_string(),
                }
            }
            VaultError::Key(_) => ApiError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                code: ErrorCode::StoreError,
                message: e.to_string(),
            },
        }
    }
}

/// Absent: keep what is there; `null`: clear it; a value: set it.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretBody {
    value: Option<Zeroizing<String>>,
    #[serde(default, deserialize_with = "present")]
    env: Option<Option<String>>,
    bindings: Option<Vec<BindingSpec>>,
}

/// serde's messages quote what they could not read, and the value may be
/// what it could not read: the answer names the shape instead.
fn unreadable(rejection: &JsonRejection) -> ApiError {
    ApiError::bad_request(format!(
        "the body must be JSON {{\"value\"?: string, \"env\"?: string or null, \"bindings\"?: [{{\"hosts\": [...], \"header\"|\"basic\"|\"query\": string}}]}} ({})",
        rejection.status()
    ))
}

async fn put(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((project, name)): Path<(String, String)>,
    payload: Result<Json<SecretBody>, JsonRejection>,
) -> Result<Json<SecretInfo>, ApiError> {
    caller.check(&s, Named::Project(&project)).await?;
    let Json(body) = payload.map_err(|e| unreadable(&e))?;
    let update = SecretUpdate {
        value: body.value.map(|v| Zeroizing::new(v.as_bytes().to_vec())),
        env: body.env,
        bindings: body.bindings,
    };
    let info = s
        .vault
        .set(&project, &name, update, paddock_store::clock::now_ms())?;
    tracing::info!(principal = caller.principal(), %project, secret = %name, "secret set");
    Ok(Json(info))
}

async fn remove(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((project, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    caller.check(&s, Named::Project(&project)).await?;
    s.vault.remove(&project, &name)?;
    tracing::info!(principal = caller.principal(), %project, secret = %name, "secret removed");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    project: Option<String>,
}

async fn list(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let secrets: Vec<SecretInfo> = s
        .vault
        .list(q.project.as_deref())?
        .into_iter()
        .filter(|info| caller.sees(&info.project))
        .collect();
    Ok(Json(json!({ "secrets": secrets })))
}
