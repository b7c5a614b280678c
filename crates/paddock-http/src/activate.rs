//! The activation page: the only place an authorize URL is shown and the
//! only way a login code reaches a box.
//!
//! Responses are `no-store` and `same-origin` referrer, so neither the
//! token in the path nor the authorize URL leaks through caches or to
//! another site's Referer.
//!
//! With sign-in set up, only a signed-in person reaches the page (the IAM
//! guard sends others to the login) and the form carries the session's
//! CSRF token. Without it the link itself is the credential, and a form
//! token would add nothing an attacker holding the link could not read;
//! cross-site posts are refused by the origin guard either way.

use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, State};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use paddock_core::{CoreError, SubmitOutcome};
use serde::Deserialize;

use crate::AppState;
use crate::error::classify;
use crate::pages::{escape, page};

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/activate/{token}", get(show).post(submit))
}

fn error_page(e: CoreError) -> Response {
    let (status, _) = classify(&e);
    page(
        status,
        "Activation unavailable",
        &format!("<p class=\"bad\">{}</p>", escape(&e.to_string())),
    )
}

async fn show(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Response {
    let csrf = crate::signin::csrf_field(&s, &headers);
    match s.boxes.activation_page(&token).await {
        Ok(p) => page(
            StatusCode::OK,
            "Activate your box",
            &format!(
                "<p>Box <strong>{box_id}</strong> for project <strong>{project}</strong> needs you to sign in.</p>\
                 <ol><li><a class=\"button\" id=\"authorize\" href=\"{url}\" target=\"_blank\" rel=\"noopener noreferrer\">Open the sign-in page</a></li>\
                 <li>Paste the code it gives you here. It goes straight to the box and nowhere else.\
                 <form method=\"post\">{csrf}<input name=\"code\" id=\"code\" autocomplete=\"off\" required autofocus>\
                 <button type=\"submit\">Activate</button></form></li></ol>\
                 <p class=\"muted\">This link works once.</p>",
                box_id = escape(&p.box_id),
                project = escape(&p.project),
                url = escape(&p.authorize_url),
            ),
        ),
        Err(e) => error_page(e),
    }
}

#[derive(Deserialize)]
struct CodeForm {
    code: String,
    #[serde(default)]
    csrf: Option<String>,
}

async fn submit(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
    form: Result<Form<CodeForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return page(
            StatusCode::BAD_REQUEST,
            "Activation failed",
            "<p class=\"bad\">The form did not carry a code.</p>",
        );
    };
    if s.signin.is_some()
        && crate::signin::session_form(&s, &headers, form.csrf.as_deref()).is_none()
    {
        return page(
            StatusCode::FORBIDDEN,
            "Activation refused",
            "<p class=\"bad\" id=\"result\">This form has expired or did not come from paddock. Reload the page.</p>",
        );
    }
    match s.boxes.submit_code(&token, &form.code).await {
        Ok(SubmitOutcome::Ready) => page(
            StatusCode::OK,
            "Box activated",
            "<p class=\"ok\" id=\"result\">Signed in. The box is ready; you can close this page.</p>",
        ),
        Ok(SubmitOutcome::Failed(message)) => page(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Activation failed",
            &format!("<p class=\"bad\" id=\"result\">{}</p>", escape(&message)),
        ),
        Err(e) => error_page(e),
    }
}
