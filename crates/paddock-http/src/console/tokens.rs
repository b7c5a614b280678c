//! `/console/tokens` (for `admin:tokens`): every built-in API token, and a
//! revoke button each. Revoking ends the token's sockets and the console
//! sessions it opened.

use axum::extract::rejection::FormRejection;
use axum::extract::{Extension, Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::{CsrfOnly, Frame, Section, button, failed};
use crate::AppState;
use crate::auth::Caller;
use crate::pages::escape;
use crate::routes::Routes;

pub(crate) fn routes(routes: Routes) -> Routes {
    routes
        .bind("GET /console/tokens", list)
        .bind("POST /console/tokens/{id}/revoke", revoke)
}

async fn list(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
) -> Response {
    let frame = Frame::new(&s, &headers, &caller, Section::Tokens);
    let Some(book) = s.iam.tokens() else {
        return frame.render(
            StatusCode::OK,
            "<p class=\"muted\">Built-in tokens are not enabled in this paddock.</p>",
        );
    };
    let tokens = match book.list() {
        Ok(t) => t,
        Err(e) => {
            return failed(
                StatusCode::INTERNAL_SERVER_ERROR,
                &e.to_string(),
                Section::Tokens,
            );
        }
    };
    let rows: String = tokens
        .iter()
        .map(|t| {
            let id = escape(&t.id);
            let action = if t.revoked_at.is_some() {
                "<span class=\"muted\">revoked</span>".to_owned()
            } else {
                format!(
                    "<form method=\"post\" action=\"/console/tokens/{id}/revoke\" class=\"inline\">{csrf}\
                     <button type=\"submit\" class=\"danger\" id=\"revoke-{id}\">Revoke</button></form>",
                    csrf = frame.csrf_field()
                )
            };
            format!(
                "<tr id=\"token-{id}\"><td data-label=\"Id\">{id}</td><td data-label=\"Name\">{name}</td>\
                 <td data-label=\"Capabilities\">{caps}</td><td data-label=\"Projects\">{projects}</td>\
                 <td class=\"actions\">{action}</td></tr>",
                name = escape(&t.name),
                caps = escape(&t.capabilities.join(" ")),
                projects = escape(&t.projects.as_ref().map_or("all".to_owned(), |p| p.join(" "))),
            )
        })
        .collect();
    frame.render(
        StatusCode::OK,
        &format!(
            "<p class=\"muted\">Mint tokens with <code>paddock token create</code>; \
             a secret is shown once, where it is made.</p>\
             <table class=\"stack\" id=\"tokens\"><thead><tr><th>Id</th><th>Name</th><th>Capabilities</th>\
             <th>Projects</th><th></th></tr></thead><tbody>{rows}</tbody></table>"
        ),
    )
}

async fn revoke(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Result<Form<CsrfOnly>, FormRejection>,
) -> Response {
    if let Some(refused) = button(&s, &headers, &caller, form) {
        return refused;
    }
    match s.iam.revoke(&id) {
        Ok(_) => crate::signin::redirect("/console/tokens"),
        Err(e) => failed(StatusCode::NOT_FOUND, &e.to_string(), Section::Tokens),
    }
}
