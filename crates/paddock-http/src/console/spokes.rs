//! `/console/spokes` (for `admin:spokes`): every enrolled spoke, whether it
//! is linked now (from where, since when, its version and load), and a
//! revoke button each. Revoking hangs up on the spoke and refuses its
//! certificate from then on.

use axum::extract::rejection::FormRejection;
use axum::extract::{Extension, Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::{CsrfOnly, Frame, Section, button, failed, when};
use crate::AppState;
use crate::auth::Caller;
use crate::pages::escape;
use crate::routes::Routes;

pub(crate) fn routes(routes: Routes) -> Routes {
    routes
        .bind("GET /console/spokes", list)
        .bind("POST /console/spokes/{name}/revoke", revoke)
}

async fn list(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
) -> Response {
    let frame = Frame::new(&s, &headers, &caller, Section::Spokes);
    let listed = match s.spokes.as_ref().map(|spokes| spokes.list()) {
        None => {
            return frame.render(
                StatusCode::OK,
                "<p class=\"muted\">Spokes are not set up in this paddock.</p>",
            );
        }
        Some(Ok(listed)) => listed,
        Some(Err(e)) => {
            return failed(
                StatusCode::INTERNAL_SERVER_ERROR,
                &e.to_string(),
                Section::Spokes,
            );
        }
    };
    let rows: String = listed
        .iter()
        .map(|spoke| {
            let name = escape(&spoke.name);
            let state = match (&spoke.link, spoke.revoked) {
                (_, true) => "<span class=\"bad\">revoked</span>".to_owned(),
                (Some(link), false) => format!(
                    "<span class=\"ok\">linked</span> from {peer} since {since} · v{version} · {boxes}/{max} boxes",
                    peer = escape(&link.peer),
                    since = when(link.connected_since_secs * 1000),
                    version = escape(&link.version),
                    boxes = link.boxes,
                    max = link.max_boxes,
                ),
                (None, false) => "<span class=\"muted\">not linked</span>".to_owned(),
            };
            let action = if spoke.revoked {
                String::new()
            } else {
                format!(
                    "<form method=\"post\" action=\"/console/spokes/{name}/revoke\" class=\"inline\">{csrf}\
                     <button type=\"submit\" class=\"danger\" id=\"revoke-{name}\">Revoke</button></form>",
                    csrf = frame.csrf_field()
                )
            };
            format!(
                "<tr id=\"spoke-{name}\"><td data-label=\"Spoke\">{name}</td><td data-label=\"State\">{state}</td>\
                 <td data-label=\"Certificate until\">{until}</td><td class=\"actions\">{action}</td></tr>",
                until = when(spoke.cert_not_after_secs * 1000),
            )
        })
        .collect();
    frame.render(
        StatusCode::OK,
        &format!(
            "<p class=\"muted\">Enrol a machine with <code>paddock spoke token create --name …</code> \
             here and <code>paddock spoke enroll</code> there; the token is shown once, where it is made.</p>\
             <table class=\"stack\" id=\"spokes\"><thead><tr><th>Spoke</th><th>State</th>\
             <th>Certificate until</th><th></th></tr></thead><tbody>{rows}</tbody></table>"
        ),
    )
}

async fn revoke(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Path(name): Path<String>,
    form: Result<Form<CsrfOnly>, FormRejection>,
) -> Response {
    if let Some(refused) = button(&s, &headers, &caller, form) {
        return refused;
    }
    let revoked = match s.spokes.as_ref() {
        Some(spokes) => spokes.revoke(&name).map_err(|e| e.to_string()),
        None => Err("spokes are not set up in this paddock".to_owned()),
    };
    match revoked {
        Ok(()) => crate::signin::redirect("/console/spokes"),
        Err(e) => failed(StatusCode::NOT_FOUND, &e, Section::Spokes),
    }
}
