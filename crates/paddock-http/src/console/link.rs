//! One-time console links for a single-user machine: `paddock console`
//! asks `POST /api/v1/console/links` with its token and prints the link.
//! The secret rides in the link's fragment, which browsers never send to
//! a server (so it is in no request log); the sign-in page's script takes
//! it out of the address bar and history at once and posts it, and the
//! answer is the usual session cookie. The link works once, within
//! [`paddock_iam::LINK_TTL`]; the session acts with exactly the minting
//! token's capabilities and projects and ends when that token is revoked.

use std::time::Duration;

use axum::Json;
use axum::extract::rejection::FormRejection;
use axum::extract::{Extension, Form, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::message_page;
use crate::auth::Caller;
use crate::error::ErrorCode;
use crate::routes::Routes;
use crate::{ApiError, AppState};

/// How long a session opened by a link lasts (the token's expiry, if
/// sooner, ends it first).
const LINK_SESSION_TTL: Duration = Duration::from_secs(8 * 3600);

pub(crate) fn mint_route(routes: Routes) -> Routes {
    routes.bind("POST /api/v1/console/links", mint)
}

fn session_error(e: paddock_iam::SessionError) -> ApiError {
    let (status, code) = match e {
        paddock_iam::SessionError::TooManySessions | paddock_iam::SessionError::TooManyLinks => {
            (StatusCode::TOO_MANY_REQUESTS, ErrorCode::LimitReached)
        }
        _ => (StatusCode::BAD_REQUEST, ErrorCode::Invalid),
    };
    ApiError {
        status,
        code,
        message: e.to_string(),
    }
}

async fn mint(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let secret = s
        .iam
        .sessions()
        .mint_link(caller.identity.clone(), LINK_SESSION_TTL)
        .map_err(session_error)?;
    tracing::info!(principal = %caller.principal(), "minted a console link");
    let base = s.boxes.config().public_url.trim_end_matches('/').to_owned();
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "url": format!("{base}/console/signin#{secret}"),
            "expires_in_secs": paddock_iam::LINK_TTL.as_secs(),
            "principal": caller.principal(),
        })),
    ))
}

/// The landing page of a link: its script posts the fragment.
pub(crate) async fn signin_page() -> Response {
    message_page(
        StatusCode::OK,
        "Opening the console",
        "<form method=\"post\" action=\"/console/signin\" id=\"link-form\">\
         <input type=\"hidden\" name=\"link\" id=\"link\" value=\"\">\
         <p id=\"result\">Signing you in…</p></form>\
         <noscript><p class=\"bad\">The console needs JavaScript.</p></noscript>\
         <script type=\"module\" src=\"/console/assets/console.js\"></script>",
    )
}

#[derive(Deserialize)]
pub(crate) struct LinkForm {
    link: String,
}

pub(crate) async fn redeem(
    State(s): State<AppState>,
    form: Result<Form<LinkForm>, FormRejection>,
) -> Response {
    let secret = form.map(|Form(f)| f.link).unwrap_or_default();
    if secret.trim().is_empty() {
        return message_page(
            StatusCode::BAD_REQUEST,
            "No link",
            "<p class=\"bad\" id=\"result\">This sign-in carried no link; run <code>paddock console</code> and open the link it prints.</p>",
        );
    }
    match s.iam.sessions().redeem_link(secret.trim()) {
        Ok(opened) => {
            tracing::info!(principal = %opened.principal, "a console link opened a session");
            let mut r = crate::signin::redirect("/console");
            crate::signin::start_session(&s, &mut r, &opened);
            r
        }
        Err(e) => {
            tracing::info!(reason = %e, "a console link was refused");
            message_page(
                StatusCode::FORBIDDEN,
                "Link refused",
                &format!(
                    "<p class=\"bad\" id=\"result\">{}</p>",
                    crate::pages::escape(&e.to_string())
                ),
            )
        }
    }
    .into_response()
}
