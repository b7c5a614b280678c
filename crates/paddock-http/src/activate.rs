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
//!
//! A login that must reach the network (its code exchange, say) is held
//! like any other connection. The page then shows what it waits for; a
//! signed-in person whose capabilities allow verdicts decides it here,
//! anyone else sees the command a person can run. The link alone never
//! decides: `create_box` hands it to the chatbot.

use axum::extract::rejection::FormRejection;
use axum::extract::{Extension, Form, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use paddock_clearance::{EventKind, PendingRequest, Verdict, VerdictScope};
use paddock_core::{ActivationPage, ActivationStatus, CoreError, LoginPrompt, SubmitOutcome};
use paddock_iam::{Capability, Resource};
use serde::Deserialize;

use crate::AppState;
use crate::auth::Caller;
use crate::error::classify;
use crate::pages::{escape, page};
use crate::routes::Routes;

/// How often a page showing a login under way reloads itself.
const REFRESH_SECS: &str = "3";

pub(crate) fn routes(routes: Routes) -> Routes {
    routes
        .bind("GET /activate/{token}", show)
        .bind("POST /activate/{token}", submit)
        .bind("POST /activate/{token}/verdict", verdict)
}

fn error_page(e: CoreError) -> Response {
    let (status, _) = classify(&e);
    page(
        status,
        "Activation unavailable",
        &format!("<p class=\"bad\">{}</p>", escape(&e.to_string())),
    )
}

/// What the box's connections wait for right now.
fn held_for(s: &AppState, box_id: &str) -> Vec<PendingRequest> {
    let mut held: Vec<PendingRequest> = s
        .hub
        .pending()
        .into_iter()
        .filter(|p| p.event.container == box_id)
        .collect();
    held.sort_by_key(|p| p.first_seen);
    held
}

/// Only a signed-in person whose capabilities allow verdicts on this box.
async fn may_decide(s: &AppState, caller: Option<&Caller>, box_id: &str, project: &str) -> bool {
    let (Some(_), Some(caller)) = (&s.signin, caller) else {
        return false;
    };
    caller
        .check_capability(
            Capability::EgressVerdict,
            Resource::Box {
                id: box_id.to_owned(),
                project: project.to_owned(),
            },
        )
        .await
        .is_ok()
}

/// The held connections of the box, each with its decision (for someone
/// who may decide) or the command a person can run.
fn held_section(
    token: &str,
    box_id: &str,
    held: &[PendingRequest],
    decide: bool,
    csrf: &str,
) -> String {
    if held.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "<h2>The login is waiting for a connection</h2>\
         <p>paddock holds these until a person allows or denies them:</p><ul id=\"held\">",
    );
    for p in held {
        let e = &p.event;
        let port = e.port;
        let dest = escape(&e.dest);
        out.push_str(&format!("<li><strong>{dest}:{port}</strong>"));
        if decide {
            out.push_str(&format!(
                "<form method=\"post\" action=\"/activate/{token}/verdict\">{csrf}\
                 <input type=\"hidden\" name=\"request_id\" value=\"{id}\">\
                 <button type=\"submit\" name=\"action\" value=\"allow\">Allow</button> \
                 <button type=\"submit\" name=\"action\" value=\"deny\">Deny</button></form>",
                token = escape(token),
                id = escape(&e.request_id),
            ));
        } else {
            out.push_str(&format!(
                "<p class=\"muted\">A person with the right to decide can run:</p>\
                 <pre><code>paddock egress allow {dest} --port {port} --box {box_id}</code></pre>",
                box_id = escape(box_id),
            ));
        }
        out.push_str("</li>");
    }
    out.push_str("</ul>");
    out
}

fn refreshing(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::REFRESH, HeaderValue::from_static(REFRESH_SECS));
    response
}

async fn show(
    State(s): State<AppState>,
    headers: HeaderMap,
    caller: Option<Extension<Caller>>,
    Path(token): Path<String>,
) -> Response {
    let csrf = crate::signin::csrf_field(&s, &headers);
    let status = match s.boxes.activation_status(&token).await {
        Ok(status) => status,
        Err(e) => return error_page(e),
    };
    let held = held_for(&s, status.box_id());
    let decide = may_decide(&s, caller.as_deref(), status.box_id(), status.project()).await;
    let held = held_section(&token, status.box_id(), &held, decide, &csrf);
    match status {
        ActivationStatus::Open(p) => open_page(&p, &csrf, &held),
        ActivationStatus::Waiting { box_id, .. } => refreshing(page(
            StatusCode::OK,
            "Signing in",
            &format!(
                "<p id=\"result\">The code went to box <strong>{}</strong>; its login is still running.</p>{held}",
                escape(&box_id)
            ),
        )),
        ActivationStatus::Ready { .. } => page(
            StatusCode::OK,
            "Box activated",
            "<p class=\"ok\" id=\"result\">Signed in. The box is ready; you can close this page.</p>",
        ),
        ActivationStatus::Failed { message, .. } => page(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Activation failed",
            &format!("<p class=\"bad\" id=\"result\">{}</p>", escape(&message)),
        ),
    }
}

/// A link whose login runs: what the person does now.
fn open_page(p: &ActivationPage, csrf: &str, held: &str) -> Response {
    let intro = format!(
        "<p>Box <strong>{}</strong> for project <strong>{}</strong> needs you to sign in.</p>",
        escape(&p.box_id),
        escape(&p.project)
    );
    match &p.prompt {
        LoginPrompt::Starting => refreshing(page(
            StatusCode::OK,
            "Starting the sign-in",
            &format!(
                "{intro}<p id=\"result\">The agent's login is starting; this page shows what to do as soon as it can.</p>{held}"
            ),
        )),
        LoginPrompt::PasteCode { authorize_url } => page(
            StatusCode::OK,
            "Activate your box",
            &format!(
                "{intro}<ol><li><a class=\"button\" id=\"authorize\" href=\"{url}\" target=\"_blank\" rel=\"noopener noreferrer\">Open the sign-in page</a></li>\
                 <li>Paste the code it gives you here. It goes straight to the box and nowhere else.\
                 <form method=\"post\">{csrf}<input name=\"code\" id=\"code\" autocomplete=\"off\" required autofocus>\
                 <button type=\"submit\">Activate</button></form></li></ol>{held}\
                 <p class=\"muted\">This link works once.</p>",
                url = escape(authorize_url),
            ),
        ),
        LoginPrompt::DeviceCode {
            verification_url,
            user_code,
        } => refreshing(page(
            StatusCode::OK,
            "Activate your box",
            &format!(
                "{intro}<ol><li><a class=\"button\" id=\"authorize\" href=\"{url}\" target=\"_blank\" rel=\"noopener noreferrer\">Open the sign-in page</a></li>\
                 <li>Enter this code there:<br><strong class=\"code\" id=\"user-code\">{code}</strong></li></ol>\
                 <p class=\"muted\">Nothing to paste here: the box notices the sign-in itself, and this page follows it.</p>{held}",
                url = escape(verification_url),
                code = escape(user_code),
            ),
        )),
    }
}

#[derive(Deserialize)]
struct CodeForm {
    code: String,
    #[serde(default)]
    csrf: Option<String>,
}

/// Resolves once the box has a connection held that it did not have.
async fn a_hold_of(subscription: paddock_clearance::Subscription, box_id: String) {
    while let Some(published) = subscription.next().await {
        let e = &published.event;
        if e.kind == EventKind::ConnectionBlocked.as_str()
            && e.container == box_id
            && !e.request_id.is_empty()
        {
            return;
        }
    }
    std::future::pending().await
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
    let box_id = match s.boxes.activation_status(&token).await {
        Ok(ActivationStatus::Open(p)) => p.box_id,
        Ok(_) => return error_page(CoreError::ActivationInvalid),
        Err(e) => return error_page(e),
    };
    // Subscribed before the code goes in, so no hold is missed.
    let holds = s.hub.subscribe();
    let submitted = s.boxes.submit_code(&token, &form.code);
    let outcome = tokio::select! {
        outcome = submitted => outcome,
        () = a_hold_of(holds, box_id) => {
            // The login waits on the network: say so now, and let the page
            // follow it (the link, spent, now shows how it goes).
            return Redirect::to(&format!("/activate/{token}")).into_response();
        }
    };
    match outcome {
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

#[derive(Deserialize)]
struct VerdictForm {
    request_id: String,
    action: String,
    #[serde(default)]
    csrf: Option<String>,
}

fn refused(message: &str) -> Response {
    page(
        StatusCode::FORBIDDEN,
        "Not yours to decide",
        &format!("<p class=\"bad\" id=\"result\">{}</p>", escape(message)),
    )
}

/// A signed-in person's verdict on a connection the box's login waits for.
async fn verdict(
    State(s): State<AppState>,
    headers: HeaderMap,
    caller: Option<Extension<Caller>>,
    Path(token): Path<String>,
    form: Result<Form<VerdictForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return page(
            StatusCode::BAD_REQUEST,
            "Verdict refused",
            "<p class=\"bad\">The form did not say what to decide.</p>",
        );
    };
    if s.signin.is_none()
        || crate::signin::session_form(&s, &headers, form.csrf.as_deref()).is_none()
    {
        return refused("Only a signed-in person decides here; the link alone decides nothing.");
    }
    let status = match s.boxes.activation_status(&token).await {
        Ok(status) => status,
        Err(e) => return error_page(e),
    };
    let (box_id, project) = (status.box_id().to_owned(), status.project().to_owned());
    let Some(Extension(caller)) = caller else {
        return refused("Only a signed-in person decides here.");
    };
    if !may_decide(&s, Some(&caller), &box_id, &project).await {
        return refused("Your sign-in does not allow egress verdicts for this box.");
    }
    let Some(held) = held_for(&s, &box_id)
        .into_iter()
        .find(|p| p.event.request_id == form.request_id)
    else {
        return page(
            StatusCode::CONFLICT,
            "Already decided",
            "<p class=\"bad\" id=\"result\">That connection is no longer held (decided elsewhere, or its deadline passed).</p>",
        );
    };
    let decided = s
        .hub
        .verdict(Verdict {
            container: box_id,
            request_id: held.event.request_id.clone(),
            dest: held.event.dest.clone(),
            action: form.action.clone(),
            scope: VerdictScope::Once,
            ttl: None,
            decided_by: format!("{} via the activation page", caller.identity.principal),
        })
        .await;
    match decided {
        Ok(_) => Redirect::to(&format!("/activate/{token}")).into_response(),
        Err(e) => page(
            StatusCode::CONFLICT,
            "Verdict refused",
            &format!(
                "<p class=\"bad\" id=\"result\">{}</p>",
                escape(&e.to_string())
            ),
        ),
    }
}
