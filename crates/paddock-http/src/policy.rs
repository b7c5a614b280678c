//! Policy as code over REST: a project's document (`GET`), a document
//! planned and applied (`PUT`, `?dry_run=true` for the plan alone), and
//! the shipped presets.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Extension, Path, Query, State};
use paddock_iam::{Capability, Resource};
use paddock_policy::{PolicyDoc, PolicyError};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{Caller, Named};
use crate::egress::gateway;
use crate::routes::Routes;
use crate::{ApiError, AppState};

pub(crate) fn routes(routes: Routes) -> Routes {
    routes
        .bind("GET /api/v1/projects/{project}/policy", get_policy)
        .bind("PUT /api/v1/projects/{project}/policy", put_policy)
        .bind("GET /api/v1/policy/presets", list_presets)
}

impl From<PolicyError> for ApiError {
    fn from(e: PolicyError) -> Self {
        match e {
            PolicyError::Invalid(_) => ApiError::bad_request(e.to_string()),
            PolicyError::Egress(e) => e.into(),
            PolicyError::Vault(e) => e.into(),
        }
    }
}

async fn get_policy(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(project): Path<String>,
) -> Result<Json<PolicyDoc>, ApiError> {
    paddock_core::validate::project(&project)?;
    caller.check(&s, Named::Project(&project)).await?;
    let egress = gateway(&s)?;
    egress.reload_rules()?;
    egress.reload_http_rules()?;
    Ok(Json(paddock_policy::export(&project, egress, &s.vault)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApplyQuery {
    #[serde(default)]
    dry_run: bool,
}

async fn put_policy(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(project): Path<String>,
    query: Result<Query<ApplyQuery>, QueryRejection>,
    payload: Result<Json<PolicyDoc>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    paddock_core::validate::project(&project)?;
    caller.check(&s, Named::Project(&project)).await?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let Json(doc) = payload.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let egress = gateway(&s)?;
    egress.reload_rules()?;
    egress.reload_http_rules()?;
    let plan = paddock_policy::plan(&project, &doc, egress, &s.vault)?;
    // Bindings say where a secret goes: writing them takes secret:write
    // on top of egress:rules.
    if plan.touches_secrets() {
        caller
            .check_capability(Capability::SecretWrite, Resource::Project(project.clone()))
            .await?;
    }
    let applied = !query.dry_run;
    if applied {
        paddock_policy::apply(
            &plan,
            egress,
            &s.vault,
            caller.principal(),
            paddock_store::clock::now_ms(),
        )?;
        tracing::info!(principal = caller.principal(), %project, changes = plan.changes.len(), "policy applied");
    }
    let lines: Vec<String> = plan.changes.iter().map(ToString::to_string).collect();
    Ok(Json(json!({
        "project": project,
        "applied": applied,
        "changes": lines,
        "plan": plan.changes,
    })))
}

async fn list_presets() -> Result<Json<Value>, ApiError> {
    let presets = paddock_policy::presets()?;
    Ok(Json(json!({ "presets": presets })))
}
