//! Egress rules at the HTTP level over REST: listed (to the caller's
//! projects), added (for a box or project the caller may rule), removed.

use std::time::Duration;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use paddock_egress::{Action, EgressError, HttpRule, HttpRuleSpec};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::auth::{Caller, Named};
use crate::egress::{gateway, rule_scope, sees_scope};
use crate::error::ErrorCode;
use crate::routes::Routes;
use crate::{ApiError, AppState};

pub(crate) fn routes(routes: Routes) -> Routes {
    routes
        .bind("GET /api/v1/egress/http-rules", list)
        .bind("POST /api/v1/egress/http-rules", add)
        .bind("DELETE /api/v1/egress/http-rules/{id}", remove)
}

#[derive(Serialize)]
struct HttpRuleView {
    id: i64,
    scope: &'static str,
    subject: String,
    host: String,
    port: Option<u16>,
    request: String,
    refs: Vec<String>,
    action: &'static str,
    expires_at_ms: Option<i64>,
    created_by: String,
}

impl From<&HttpRule> for HttpRuleView {
    fn from(r: &HttpRule) -> Self {
        Self {
            id: r.id,
            scope: r.scope.kind(),
            subject: r.scope.subject().to_owned(),
            host: r.host.clone(),
            port: r.port,
            request: r.request_text(),
            refs: r.refs.clone(),
            action: r.action.as_str(),
            expires_at_ms: r.expires_at_ms,
            created_by: r.created_by.clone(),
        }
    }
}

fn visible(s: &AppState, caller: &Caller) -> Result<Vec<HttpRule>, ApiError> {
    let egress = gateway(s)?;
    egress.reload_http_rules()?;
    Ok(egress
        .http_rules()
        .iter()
        .filter(|r| sees_scope(s, caller, &r.scope))
        .cloned()
        .collect())
}

async fn list(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    let rules: Vec<HttpRuleView> = visible(&s, &caller)?
        .iter()
        .map(HttpRuleView::from)
        .collect();
    Ok(Json(json!({ "rules": rules })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewHttpRule {
    pub host: String,
    #[serde(default)]
    pub port: Option<u16>,
    /// `GET,HEAD /repos/acme/**`.
    pub request: String,
    #[serde(default)]
    pub refs: Vec<String>,
    pub action: String,
    #[serde(default)]
    pub box_id: Option<String>,
    #[serde(default)]
    pub project: Option<String>,
    #[serde(default)]
    pub ttl_secs: Option<u64>,
}

/// Validates and adds an HTTP rule for `caller` (REST; `policy apply`).
pub(crate) async fn create(
    s: &AppState,
    caller: &Caller,
    req: NewHttpRule,
) -> Result<HttpRule, ApiError> {
    let egress = gateway(s)?;
    let action: Action = req.action.parse().map_err(EgressError::from)?;
    let scope = rule_scope(s, caller, req.box_id, req.project)?;
    if req.port == Some(0) {
        return Err(ApiError::bad_request("port must be 1-65535"));
    }
    let ttl = match req.ttl_secs {
        Some(0) => return Err(ApiError::bad_request("ttl_secs must be positive")),
        other => other.map(Duration::from_secs),
    };
    caller.check(s, Named::Rule(&scope)).await?;
    let spec = HttpRuleSpec {
        scope,
        host: req.host,
        port: req.port,
        request: req.request,
        refs: req.refs,
        action,
        ttl,
    };
    Ok(egress.put_http_rule(spec, caller.principal())?)
}

async fn add(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    payload: Result<Json<NewHttpRule>, JsonRejection>,
) -> Result<(StatusCode, Json<HttpRuleView>), ApiError> {
    let Json(req) = payload.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let rule = create(&s, &caller, req).await?;
    Ok((StatusCode::CREATED, Json(HttpRuleView::from(&rule))))
}

async fn remove(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    let egress = gateway(&s)?;
    egress.reload_http_rules()?;
    if let Some(rule) = egress.http_rules().iter().find(|r| r.id == id) {
        caller.check(&s, Named::Rule(&rule.scope)).await?;
    }
    if egress.delete_http_rule(id, caller.principal())? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError {
            status: StatusCode::NOT_FOUND,
            code: ErrorCode::NotFound,
            message: format!("no HTTP rule #{id}"),
        })
    }
}
