//! `/console/rules`: the egress rules the caller sees, a form to add one
//! (validated by the very function REST uses) and a remove button each.

use axum::extract::rejection::FormRejection;
use axum::extract::{Extension, Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use paddock_egress::Rule;
use serde::Deserialize;

use super::{CsrfOnly, Frame, Section, button, failed, form_allowed, when};
use crate::AppState;
use crate::auth::Caller;
use crate::egress::{NewRule, create_rule, remove_rule, visible_rules};
use crate::pages::escape;
use crate::routes::Routes;

pub(crate) fn routes(routes: Routes) -> Routes {
    routes
        .bind("GET /console/rules", list)
        .bind("POST /console/rules", add)
        .bind("POST /console/rules/{id}/delete", delete)
}

fn row(frame: &Frame<'_>, rule: &Rule) -> String {
    let expires = rule.expires_at.map_or_else(|| "never".to_owned(), when);
    format!(
        "<tr id=\"rule-{id}\"><td data-label=\"#\">{id}</td>\
         <td data-label=\"Scope\">{scope} <strong>{subject}</strong></td>\
         <td data-label=\"Target\">{target}</td><td data-label=\"Ports\">{ports}</td>\
         <td data-label=\"Action\" class=\"{class}\">{action}</td>\
         <td data-label=\"Expires\">{expires}</td><td data-label=\"By\">{by}</td>\
         <td class=\"actions\"><form method=\"post\" action=\"/console/rules/{id}/delete\" class=\"inline\">{csrf}\
         <button type=\"submit\" class=\"danger\" id=\"delete-rule-{id}\">Remove</button></form></td></tr>",
        id = rule.id,
        scope = rule.scope.kind(),
        subject = escape(rule.scope.subject()),
        target = escape(&rule.target.to_string()),
        ports = rule
            .ports
            .map_or_else(|| "any".to_owned(), |p| p.to_string()),
        class = if rule.action.as_str() == "deny" {
            "bad"
        } else {
            "ok"
        },
        action = rule.action.as_str(),
        by = escape(&rule.created_by),
        csrf = frame.csrf_field(),
    )
}

async fn list(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
) -> Response {
    let frame = Frame::new(&s, &headers, &caller, Section::Rules);
    let rules = match visible_rules(&s, &caller) {
        Ok(r) => r,
        Err(e) => return failed(e.status, &e.message, Section::Rules),
    };
    let rows: String = rules.iter().map(|r| row(&frame, r)).collect();
    let table = if rows.is_empty() {
        "<p class=\"muted\" id=\"no-rules\">No rules: every destination is asked about.</p>"
            .to_owned()
    } else {
        format!(
            "<table class=\"stack\" id=\"rules\"><thead><tr><th>#</th><th>Scope</th><th>Target</th>\
             <th>Ports</th><th>Action</th><th>Expires</th><th>By</th><th></th></tr></thead>\
             <tbody>{rows}</tbody></table>"
        )
    };
    frame.render(
        StatusCode::OK,
        &format!(
            "<form method=\"post\" action=\"/console/rules\" class=\"grid\" id=\"add-rule\">{csrf}\
             <label>Target <input name=\"target\" required placeholder=\"api.example.com, *.example.com or 10.0.0.0/8\"></label>\
             <label>Ports <input name=\"ports\" placeholder=\"443 or 8000-8100 (any)\"></label>\
             <label>Action <select name=\"action\"><option>allow</option><option>deny</option><option>ask</option></select></label>\
             <label>For <select name=\"scope\"><option value=\"project\">project</option><option value=\"box\">box</option></select></label>\
             <label>Project or box <input name=\"subject\" required></label>\
             <label>Lasts (seconds) <input name=\"ttl_secs\" type=\"number\" min=\"1\" placeholder=\"until removed\"></label>\
             <button type=\"submit\" id=\"add-rule-submit\">Add rule</button></form>{table}",
            csrf = frame.csrf_field(),
        ),
    )
}

#[derive(Deserialize)]
pub(crate) struct RuleForm {
    #[serde(default)]
    csrf: String,
    target: String,
    action: String,
    #[serde(default)]
    ports: String,
    scope: String,
    subject: String,
    #[serde(default)]
    ttl_secs: String,
}

async fn add(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    form: Result<Form<RuleForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return failed(
            StatusCode::BAD_REQUEST,
            "the form was incomplete",
            Section::Rules,
        );
    };
    if !form_allowed(&s, &headers, &caller, &form.csrf) {
        return crate::signin::csrf_refused();
    }
    let ttl_secs = match form.ttl_secs.trim() {
        "" => None,
        t => match t.parse::<u64>() {
            Ok(secs) => Some(secs),
            Err(_) => {
                return failed(
                    StatusCode::BAD_REQUEST,
                    "seconds must be a whole number",
                    Section::Rules,
                );
            }
        },
    };
    let subject = form.subject.trim().to_owned();
    let (box_id, project) = match form.scope.as_str() {
        "box" => (Some(subject), None),
        "project" => (None, Some(subject)),
        other => {
            return failed(
                StatusCode::BAD_REQUEST,
                &format!("a rule is for a box or a project, not {other:?}"),
                Section::Rules,
            );
        }
    };
    let ports = Some(form.ports.trim().to_owned()).filter(|p| !p.is_empty());
    let request = NewRule {
        target: form.target.trim().to_owned(),
        action: form.action,
        ports,
        box_id,
        project,
        ttl_secs,
    };
    match create_rule(&s, &caller, request).await {
        Ok(_) => crate::signin::redirect("/console/rules"),
        Err(e) => failed(e.status, &e.message, Section::Rules),
    }
}

async fn delete(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    form: Result<Form<CsrfOnly>, FormRejection>,
) -> Response {
    if let Some(refused) = button(&s, &headers, &caller, form) {
        return refused;
    }
    match remove_rule(&s, &caller, id).await {
        Ok(()) => crate::signin::redirect("/console/rules"),
        Err(e) => failed(e.status, &e.message, Section::Rules),
    }
}
