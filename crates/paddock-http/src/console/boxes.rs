//! `/console/boxes`: every box the caller sees, with its shield and the
//! actions a person takes on a box — raise, lower (for a while) or block
//! its shield, read its log's tail, renew its activation link, destroy it.
//! Each action is a CSRF-checked form bound to the same operation (and so
//! the same capability) as its REST twin.

use axum::extract::rejection::FormRejection;
use axum::extract::{Extension, Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use paddock_core::BoxView;
use paddock_egress::Shield;
use serde::Deserialize;

use super::{CsrfOnly, Frame, Section, button, failed, form_allowed, when};
use crate::AppState;
use crate::auth::Caller;
use crate::pages::escape;
use crate::routes::Routes;

/// Log lines shown on a box's log page.
const LOG_TAIL: u32 = 200;

pub(crate) fn routes(routes: Routes) -> Routes {
    routes
        .bind("GET /console/boxes", list)
        .bind("GET /console/boxes/{id}/logs", logs)
        .bind("POST /console/boxes/{id}/shield", shield)
        .bind("POST /console/boxes/{id}/destroy", destroy)
        .bind("POST /console/boxes/{id}/activation", activation)
}

/// How long ago, in the largest whole unit.
fn age(created_at: &str) -> String {
    let Ok(t) =
        time::OffsetDateTime::parse(created_at, &time::format_description::well_known::Rfc3339)
    else {
        return String::new();
    };
    let secs = (time::OffsetDateTime::now_utc() - t).whole_seconds().max(0);
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3600),
        s => format!("{} d", s / 86_400),
    }
}

fn shield_cell(s: &AppState, view: &BoxView) -> String {
    if let Some(spoke) = &view.spoke {
        let away = if view.unreachable {
            " <span class=\"bad\">unreachable</span>"
        } else {
            ""
        };
        let state = view.shield.as_deref().unwrap_or("unknown");
        return format!(
            "{} <span class=\"muted\">on spoke</span> {}{away}",
            escape(state),
            escape(spoke)
        );
    }
    let Some(egress) = &s.egress else {
        return "<span class=\"muted\">egress off</span>".into();
    };
    match egress.shield_of(&view.box_id) {
        Shield::Down { until_ms } => format!(
            "<span class=\"warn\">down</span> <span class=\"muted\">until {}</span>",
            when(until_ms)
        ),
        Shield::Block => "<span class=\"bad\">block</span>".into(),
        Shield::Up => "<span class=\"ok\">up</span>".into(),
    }
}

fn row(s: &AppState, frame: &Frame<'_>, view: &BoxView) -> String {
    let id = escape(&view.box_id);
    let csrf = frame.csrf_field();
    let state = escape(&format!("{:?}", view.state).to_lowercase());
    let activation = if state == "pendingactivation" {
        format!(
            "<form method=\"post\" action=\"/console/boxes/{id}/activation\" class=\"inline\">{csrf}\
             <button type=\"submit\" class=\"quiet\">New activation link</button></form>"
        )
    } else {
        String::new()
    };
    // A spoke's box: its shield is set there and its terminal opened
    // there (both routed through the link).
    let here = view.spoke.is_none();
    let shield_forms = if s.egress.is_some() || !here {
        format!(
            "<form method=\"post\" action=\"/console/boxes/{id}/shield\" class=\"inline\">{csrf}\
             <input type=\"hidden\" name=\"state\" value=\"up\">\
             <button type=\"submit\" class=\"quiet\">Raise</button></form>\
             <form method=\"post\" action=\"/console/boxes/{id}/shield\" class=\"inline\">{csrf}\
             <input type=\"hidden\" name=\"state\" value=\"down\">\
             <input type=\"number\" name=\"ttl_secs\" min=\"1\" value=\"600\" aria-label=\"seconds\" class=\"short\">\
             <button type=\"submit\" class=\"quiet\">Lower</button></form>\
             <form method=\"post\" action=\"/console/boxes/{id}/shield\" class=\"inline\">{csrf}\
             <input type=\"hidden\" name=\"state\" value=\"block\">\
             <button type=\"submit\" class=\"quiet\">Block</button></form>"
        )
    } else {
        String::new()
    };
    format!(
        "<tr id=\"box-{id}\"><td data-label=\"Box\"><strong>{id}</strong></td>\
         <td data-label=\"Project\">{project}</td><td data-label=\"Image\">{image}</td>\
         <td data-label=\"Age\">{age}</td><td data-label=\"State\">{state_text}</td>\
         <td data-label=\"Shield\">{shield}</td>\
         <td class=\"actions\">{shield_forms}{activation}<a href=\"/console/boxes/{id}/logs\">Logs</a> \
         <a href=\"/console/boxes/{id}/terminal\" id=\"terminal-{id}\">Terminal</a> \
         <form method=\"post\" action=\"/console/boxes/{id}/destroy\" class=\"inline\">{csrf}\
         <button type=\"submit\" class=\"danger\" id=\"destroy-{id}\">Destroy</button></form></td></tr>",
        project = escape(&view.project),
        image = escape(&view.image),
        age = age(&view.created_at),
        state_text = state.replace("pendingactivation", "pending activation"),
        shield = shield_cell(s, view),
    )
}

async fn list(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
) -> Response {
    let frame = Frame::new(&s, &headers, &caller, Section::Boxes);
    let mut boxes = match s.boxes.list() {
        Ok(b) => b,
        Err(e) => {
            return failed(
                StatusCode::INTERNAL_SERVER_ERROR,
                &e.to_string(),
                Section::Boxes,
            );
        }
    };
    boxes.retain(|b| caller.sees(&b.project));
    let rows: String = boxes.iter().map(|b| row(&s, &frame, b)).collect();
    let body = if rows.is_empty() {
        "<p class=\"muted\" id=\"no-boxes\">No boxes.</p>".to_owned()
    } else {
        format!(
            "<table class=\"stack\"><thead><tr><th>Box</th><th>Project</th><th>Image</th><th>Age</th>\
             <th>State</th><th>Shield</th><th></th></tr></thead><tbody>{rows}</tbody></table>"
        )
    };
    let body = format!("{body}{}", super::upstream::section(&s, &frame, &caller));
    frame.render(StatusCode::OK, &body)
}

async fn logs(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let frame = Frame::new(&s, &headers, &caller, Section::Boxes);
    match s.boxes.logs(&id, Some(LOG_TAIL)).await {
        Ok(text) => frame.render(
            StatusCode::OK,
            &format!(
                "<h2>{id}: the last {LOG_TAIL} lines</h2><pre id=\"logs\">{}</pre>\
                 <p><a href=\"/console/boxes\">Back to boxes</a></p>",
                escape(&text),
                id = escape(&id)
            ),
        ),
        Err(e) => failed(StatusCode::NOT_FOUND, &e.to_string(), Section::Boxes),
    }
}

#[derive(Deserialize)]
pub(crate) struct ShieldForm {
    #[serde(default)]
    csrf: String,
    state: String,
    #[serde(default)]
    ttl_secs: Option<String>,
}

async fn shield(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Result<Form<ShieldForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return failed(
            StatusCode::BAD_REQUEST,
            "the form was incomplete",
            Section::Boxes,
        );
    };
    if !form_allowed(&s, &headers, &caller, &form.csrf) {
        return crate::signin::csrf_refused();
    }
    let ttl_secs = match form
        .ttl_secs
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        None => None,
        Some(t) => match t.parse::<u64>() {
            Ok(secs) => Some(secs),
            Err(_) => {
                return failed(
                    StatusCode::BAD_REQUEST,
                    "seconds must be a whole number",
                    Section::Boxes,
                );
            }
        },
    };
    match crate::egress::set_shield(&s, &id, &form.state, ttl_secs, caller.principal()).await {
        Ok(_) => crate::signin::redirect("/console/boxes"),
        Err(e) => failed(e.status, &e.message, Section::Boxes),
    }
}

async fn destroy(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Result<Form<CsrfOnly>, FormRejection>,
) -> Response {
    if let Some(refused) = button(&s, &headers, &caller, form) {
        return refused;
    }
    match s.boxes.destroy(&id).await {
        Ok(()) => crate::signin::redirect("/console/boxes"),
        Err(e) => failed(StatusCode::NOT_FOUND, &e.to_string(), Section::Boxes),
    }
}

async fn activation(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Result<Form<CsrfOnly>, FormRejection>,
) -> Response {
    if let Some(refused) = button(&s, &headers, &caller, form) {
        return refused;
    }
    let frame = Frame::new(&s, &headers, &caller, Section::Boxes);
    match s.boxes.renew_activation_link(&id).await {
        Ok(url) => frame.render(
            StatusCode::OK,
            &format!(
                "<p>A new activation link for <strong>{id}</strong> (the earlier one no longer \
                 works). It is shown once:</p><p><a id=\"activation-link\" href=\"{url}\">{url}</a></p>\
                 <p><a href=\"/console/boxes\">Back to boxes</a></p>",
                id = escape(&id),
                url = escape(&url)
            ),
        ),
        Err(e) => failed(StatusCode::CONFLICT, &e.to_string(), Section::Boxes),
    }
}
