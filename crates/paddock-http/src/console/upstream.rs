//! The console's way home for a project's work: under Boxes, each project
//! the caller sees that has an upstream gets a form sending one of its
//! agent branches there — the same operation, and capability
//! (`git:upstream`), as `paddock git push-upstream`.

use axum::extract::rejection::FormRejection;
use axum::extract::{Extension, Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use super::{Frame, Section, failed, form_allowed};
use crate::AppState;
use crate::auth::{Caller, Named};
use crate::pages::escape;
use crate::routes::Routes;

pub(crate) fn routes(routes: Routes) -> Routes {
    routes.bind("POST /console/projects/{project}/push-upstream", push)
}

/// The forms for the projects with an upstream the caller sees (empty when
/// there are none).
pub(crate) fn section(s: &AppState, frame: &Frame<'_>, caller: &Caller) -> String {
    let Some(upstream) = &s.upstream else {
        return String::new();
    };
    let csrf = frame.csrf_field();
    let rows: String = upstream
        .projects()
        .into_iter()
        .filter(|(project, _)| caller.sees(project))
        .map(|(project, url)| {
            let p = escape(&project);
            format!(
                "<tr><td data-label=\"Project\"><strong>{p}</strong></td><td data-label=\"Upstream\">{url}</td>\
                 <td class=\"actions\"><form method=\"post\" action=\"/console/projects/{p}/push-upstream\" class=\"inline\">{csrf}\
                 <input type=\"text\" name=\"ref\" value=\"agent/\" aria-label=\"branch\" id=\"push-ref-{p}\">\
                 <button type=\"submit\" id=\"push-upstream-{p}\">Push upstream</button></form></td></tr>",
                url = escape(&url)
            )
        })
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    format!(
        "<h2>Upstreams</h2><table class=\"stack\"><thead><tr><th>Project</th><th>Upstream</th><th></th></tr></thead>\
         <tbody>{rows}</tbody></table>"
    )
}

#[derive(Deserialize)]
pub(crate) struct PushForm {
    #[serde(default)]
    csrf: String,
    #[serde(rename = "ref")]
    git_ref: String,
}

async fn push(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Path(project): Path<String>,
    form: Result<Form<PushForm>, FormRejection>,
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
    if let Err(e) = caller.check(&s, Named::Project(&project)).await {
        return failed(e.status, &e.message, Section::Boxes);
    }
    let Some(upstream) = &s.upstream else {
        return failed(
            StatusCode::NOT_FOUND,
            "no project has an upstream",
            Section::Boxes,
        );
    };
    match upstream.push(&project, form.git_ref.trim()).await {
        Ok((pushed, url)) => {
            tracing::info!(principal = caller.principal(), %project, git_ref = %pushed, "pushed to the upstream");
            Frame::new(&s, &headers, &caller, Section::Boxes).render(
                StatusCode::OK,
                &format!(
                    "<p class=\"ok\" id=\"result\">Pushed {} of {} to {}.</p><p><a href=\"/console/boxes\">Back to boxes</a></p>",
                    escape(&pushed),
                    escape(&project),
                    escape(&url)
                ),
            )
        }
        Err(e) => {
            let e = crate::ApiError::from(e);
            failed(e.status, &e.message, Section::Boxes)
        }
    }
}
