//! The activation page: the only place an authorize URL is shown and the
//! only way a login code reaches a box.
//!
//! Responses are `no-store` and `no-referrer`, so neither the token in the
//! path nor the authorize URL leaks through caches or Referer headers.

use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use paddock_core::{CoreError, SubmitOutcome};
use serde::Deserialize;

use crate::AppState;
use crate::error::classify;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/activate/{token}", get(show).post(submit))
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · paddock</title><style>\
         body{{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem;color:#222}}\
         a.button,button{{display:inline-block;padding:.6rem 1rem;border-radius:.4rem;border:1px solid #335;background:#335;color:#fff;text-decoration:none;font-size:1rem}}\
         input{{font-size:1rem;padding:.5rem;width:100%;box-sizing:border-box;margin:.5rem 0}}\
         .muted{{color:#666}} .ok{{color:#060}} .bad{{color:#a00}}</style></head>\
         <body><h1>{title}</h1>{body}</body></html>",
        title = escape(title)
    );
    let mut response = (status, Html(html)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    response
}

fn error_page(e: CoreError) -> Response {
    let (status, _) = classify(&e);
    page(
        status,
        "Activation unavailable",
        &format!("<p class=\"bad\">{}</p>", escape(&e.to_string())),
    )
}

async fn show(State(s): State<AppState>, Path(token): Path<String>) -> Response {
    match s.boxes.activation_page(&token).await {
        Ok(p) => page(
            StatusCode::OK,
            "Activate your box",
            &format!(
                "<p>Box <strong>{box_id}</strong> for project <strong>{project}</strong> needs you to sign in.</p>\
                 <ol><li><a class=\"button\" id=\"authorize\" href=\"{url}\" target=\"_blank\" rel=\"noopener noreferrer\">Open the sign-in page</a></li>\
                 <li>Paste the code it gives you here. It goes straight to the box and nowhere else.\
                 <form method=\"post\"><input name=\"code\" id=\"code\" autocomplete=\"off\" required autofocus>\
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
}

async fn submit(
    State(s): State<AppState>,
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

#[cfg(test)]
mod tests {
    #[test]
    fn escape_neutralises_markup() {
        assert_eq!(
            super::escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
