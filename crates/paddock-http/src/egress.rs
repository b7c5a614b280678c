//! REST for the egress gateway: rules, the decision log, shields, the
//! pending list and verdicts with a scope.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use paddock_clearance::{PendingView, VerdictError, VerdictRequest, VerdictRequestError};
use paddock_egress::{Action, BoxIdentity, Egress, EgressError, PortRange, Rule, Scope, Target};
use paddock_store::AuditQuery;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::auth::{Caller, Named};
use crate::error::{ErrorCode, json_body as body};
use crate::routes::Routes;
use crate::{ApiError, AppState};

pub(crate) fn routes(routes: Routes) -> Routes {
    routes
        .bind("GET /api/v1/egress/rules", list_rules)
        .bind("POST /api/v1/egress/rules", add_rule)
        .bind("DELETE /api/v1/egress/rules/{id}", delete_rule)
        .bind("GET /api/v1/egress/log", log)
        .bind("GET /api/v1/egress/pending", pending)
        .bind("POST /api/v1/egress/verdicts", verdict)
        .bind("PUT /api/v1/boxes/{id}/shield", shield)
}

pub(crate) fn gateway(s: &AppState) -> Result<&Arc<Egress>, ApiError> {
    crate::egress_gateway(s)
}

impl From<EgressError> for ApiError {
    fn from(e: EgressError) -> Self {
        match e {
            EgressError::Invalid(_) | EgressError::Policy(_) | EgressError::Http(_) => {
                ApiError::bad_request(e.to_string())
            }
            EgressError::Store(ref store) => {
                let (status, code) = crate::error::store_failure(store);
                ApiError {
                    status,
                    code,
                    message: e.to_string(),
                }
            }
            other => {
                tracing::warn!(error = %other, "egress request failed");
                ApiError {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    code: ErrorCode::EgressError,
                    message: other.to_string(),
                }
            }
        }
    }
}

#[derive(Serialize)]
pub(crate) struct RuleView {
    id: i64,
    scope: &'static str,
    subject: String,
    target: String,
    ports: Option<String>,
    action: &'static str,
    expires_at: Option<i64>,
    created_by: String,
}

impl From<&Rule> for RuleView {
    fn from(r: &Rule) -> Self {
        Self {
            id: r.id,
            scope: r.scope.kind(),
            subject: r.scope.subject().to_owned(),
            target: r.target.to_string(),
            ports: r.ports.map(|p| p.to_string()),
            action: r.action.as_str(),
            expires_at: r.expires_at,
            created_by: r.created_by.clone(),
        }
    }
}

/// The project a rule belongs to, for listings and checks: its own for a
/// project rule, its box's for a box rule (none if the box is gone).
fn rule_project(s: &AppState, scope: &Scope) -> Option<String> {
    match scope {
        Scope::Project(p) => Some(p.clone()),
        Scope::Box(b) => s.boxes.get(b).ok().map(|v| v.project),
    }
}

/// The rules the caller sees, freshly read.
pub(crate) fn visible_rules(s: &AppState, caller: &Caller) -> Result<Vec<Rule>, ApiError> {
    let egress = gateway(s)?;
    egress.reload_rules()?;
    Ok(egress
        .rules()
        .iter()
        .filter(|r| sees_scope(s, caller, &r.scope))
        .cloned()
        .collect())
}

/// Whether a listing shows the caller a rule of this scope.
pub(crate) fn sees_scope(s: &AppState, caller: &Caller, scope: &Scope) -> bool {
    rule_project(s, scope).is_some_and(|p| caller.sees(&p)) || caller.sees_every_project()
}

/// The scope a new rule names (exactly one of a box the caller sees and a
/// project), checked.
pub(crate) fn rule_scope(
    s: &AppState,
    caller: &Caller,
    box_id: Option<String>,
    project: Option<String>,
) -> Result<Scope, ApiError> {
    match (box_id, project) {
        (Some(b), None) => {
            let view = s.boxes.get_here(&b)?;
            if !caller.sees(&view.project) {
                return Err(paddock_core::CoreError::NotFound(b).into());
            }
            Ok(Scope::Box(b))
        }
        (None, Some(p)) => {
            paddock_core::validate::project(&p)?;
            Ok(Scope::Project(p))
        }
        _ => Err(ApiError::bad_request(
            "name exactly one of box_id and project",
        )),
    }
}

async fn list_rules(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    let rules: Vec<RuleView> = visible_rules(&s, &caller)?
        .iter()
        .map(RuleView::from)
        .collect();
    Ok(Json(json!({ "rules": rules })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewRule {
    pub target: String,
    pub action: String,
    #[serde(default)]
    pub ports: Option<String>,
    #[serde(default)]
    pub box_id: Option<String>,
    #[serde(default)]
    pub project: Option<String>,
    #[serde(default)]
    pub ttl_secs: Option<u64>,
}

/// Validates and adds a rule for `caller` (REST and the console alike);
/// also names the action of a rule it replaced, when that differed.
pub(crate) async fn create_rule(
    s: &AppState,
    caller: &Caller,
    req: NewRule,
) -> Result<(Rule, Option<&'static str>), ApiError> {
    let egress = gateway(s)?;
    let target: Target = req.target.parse().map_err(EgressError::from)?;
    let action: Action = req.action.parse().map_err(EgressError::from)?;
    let ports = req
        .ports
        .as_deref()
        .map(str::parse::<PortRange>)
        .transpose()
        .map_err(EgressError::from)?;
    let scope = rule_scope(s, caller, req.box_id, req.project)?;
    let ttl = match req.ttl_secs {
        Some(0) => return Err(ApiError::bad_request("ttl_secs must be positive")),
        other => other.map(Duration::from_secs),
    };
    caller.check(s, Named::Rule(&scope)).await?;
    // A rule for the same target and ports replaces the one there: say so
    // when that changes what happens (an allow over a deny, say).
    let replaced = egress
        .rules()
        .iter()
        .find(|r| r.scope == scope && r.target == target && r.ports == ports && r.action != action)
        .map(|r| r.action.as_str());
    let rule = egress.put_rule(scope, target, ports, action, ttl, caller.principal())?;
    Ok((rule, replaced))
}

async fn add_rule(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    payload: Result<Json<NewRule>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (rule, replaced) = create_rule(&s, &caller, body(payload)?).await?;
    let mut view = serde_json::to_value(RuleView::from(&rule)).unwrap_or_default();
    if let (Some(replaced), Some(fields)) = (replaced, view.as_object_mut()) {
        fields.insert("replaced_action".into(), replaced.into());
    }
    Ok((StatusCode::CREATED, Json(view)))
}

/// Removes a rule the caller may remove (REST and the console alike).
pub(crate) async fn remove_rule(s: &AppState, caller: &Caller, id: i64) -> Result<(), ApiError> {
    let egress = gateway(s)?;
    egress.reload_rules()?;
    if let Some(rule) = egress.rules().iter().find(|r| r.id == id) {
        caller.check(s, Named::Rule(&rule.scope)).await?;
    }
    if egress.delete_rule(id, caller.principal())? {
        Ok(())
    } else {
        Err(ApiError {
            status: StatusCode::NOT_FOUND,
            code: ErrorCode::NotFound,
            message: format!("no egress rule #{id}"),
        })
    }
}

async fn delete_rule(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    remove_rule(&s, &caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogQuery {
    box_id: Option<String>,
    project: Option<String>,
    after: Option<i64>,
    limit: Option<u32>,
}

async fn log(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<LogQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let egress = gateway(&s)?;
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let rows = egress
        .store()
        .egress_audit(&AuditQuery {
            box_id: q.box_id,
            project: q.project,
            after: q.after,
            limit: q.limit.unwrap_or(100).min(10_000),
            ..AuditQuery::default()
        })
        .map_err(EgressError::from)?;
    let entries: Vec<Value> = rows
        .iter()
        .filter(|r| caller.sees(&r.project))
        .map(audit_json)
        .collect();
    Ok(Json(json!({ "entries": entries })))
}

/// A decision log entry as the API (and the console's export) shows it.
pub(crate) fn audit_json(r: &paddock_store::AuditRow) -> Value {
    paddock_export::jsonl(r)
}

/// Every held request the caller sees, oldest first.
pub(crate) fn visible_pending(s: &AppState, caller: &Caller) -> Vec<PendingView> {
    s.hub
        .pending()
        .iter()
        .map(PendingView::from)
        .filter(|p| caller.sees(&p.project))
        .collect()
}

async fn pending(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "requests": visible_pending(&s, &caller) })))
}

/// A verdict request refused before it reached the hub: a bad scope or TTL.
pub(crate) fn request_error(e: VerdictRequestError) -> ApiError {
    ApiError::bad_request(e.to_string())
}

pub(crate) fn verdict_error(e: VerdictError) -> ApiError {
    let (status, code) = match &e {
        VerdictError::UnknownRequest { .. } => (StatusCode::NOT_FOUND, ErrorCode::UnknownRequest),
        VerdictError::AlreadyEnded { .. } => (StatusCode::CONFLICT, ErrorCode::RequestAlreadyEnded),
        VerdictError::VerdictTupleMismatch { .. } => {
            (StatusCode::CONFLICT, ErrorCode::VerdictTupleMismatch)
        }
        VerdictError::InvalidAction { .. } => (StatusCode::BAD_REQUEST, ErrorCode::InvalidAction),
        VerdictError::ApplyFailed { .. } => (StatusCode::BAD_GATEWAY, ErrorCode::ApplyFailed),
    };
    ApiError {
        status,
        code,
        message: e.to_string(),
    }
}

async fn verdict(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    payload: Result<Json<VerdictRequest>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let request = body(payload)?;
    caller.check(&s, Named::Box(&request.container)).await?;
    let verdict = request
        .into_verdict(caller.principal())
        .map_err(request_error)?;
    let ok = s.hub.verdict(verdict).await.map_err(verdict_error)?;
    Ok(Json(json!({ "ok": ok })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ShieldRequest {
    state: String,
    #[serde(default)]
    ttl_secs: Option<u64>,
}

async fn shield(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    payload: Result<Json<ShieldRequest>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let req = body(payload)?;
    let set = set_shield(&s, &id, &req.state, req.ttl_secs, caller.principal()).await?;
    Ok(Json(
        json!({ "box_id": id, "state": set.state, "until_ms": set.until_ms }),
    ))
}

/// Sets a box's shield where its gateway is: this machine's, or its
/// spoke's (every surface that sets one comes here).
pub(crate) async fn set_shield(
    s: &AppState,
    id: &str,
    state: &str,
    ttl_secs: Option<u64>,
    by: &str,
) -> Result<paddock_core::remote::ShieldSet, ApiError> {
    if s.boxes.spoke_of(id)?.is_some() {
        return Ok(s.boxes.shield_on_spoke(id, state, ttl_secs, by).await?);
    }
    let egress = gateway(s)?;
    let view = s.boxes.get_here(id)?;
    let who = BoxIdentity {
        box_id: view.box_id,
        project: view.project,
    };
    let shield = egress.set_shield(&who, state, ttl_secs.map(Duration::from_secs), by)?;
    Ok(paddock_core::remote::ShieldSet {
        state: shield.as_str().to_owned(),
        until_ms: shield.until_ms(),
    })
}
