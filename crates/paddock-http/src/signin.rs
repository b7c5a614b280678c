//! Sign-in pages for people (`[iam.signin]`): `/auth/login` sends the
//! browser to the identity provider, `/auth/callback` makes a session,
//! `/auth/logout` ends it; `/admin` is the admin page (boxes and tokens,
//! with a CSRF-checked revoke form). Cookies are HttpOnly, SameSite=Lax
//! (the provider's redirect back is a top-level navigation) and Secure when
//! paddock's public URL is https.

use std::sync::Arc;

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Extension, Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use paddock_iam::{SignIn, SigninError, safe_next};
use serde::Deserialize;

use crate::AppState;
use crate::auth::Caller;
use crate::pages::{escape, page};
use crate::routes::Routes;

pub(crate) const SESSION_COOKIE: &str = "paddock_session";
const LOGIN_COOKIE: &str = "paddock_login";

pub(crate) fn routes(routes: Routes) -> Routes {
    routes
        .bind("GET /auth/login", login)
        .bind("GET /auth/callback", callback)
        .bind("POST /auth/logout", logout)
        .bind("GET /admin", admin)
        .bind("POST /admin/tokens/{id}/revoke", revoke)
}

/// The value of one cookie of the request.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

fn cookie_text(name: &str, value: &str, path: &str, max_age: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}")
}

fn set_cookie(s: &AppState, name: &str, value: &str, path: &str, max_age: u64) -> HeaderValue {
    HeaderValue::from_str(&cookie_text(name, value, path, max_age, s.secure_cookies))
        .unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

pub(crate) fn redirect(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Where an unsigned-in browser goes: the login, coming back here after.
pub(crate) fn to_login(path_and_query: &str) -> Response {
    let next: String = form_urlencoded(path_and_query);
    redirect(&format!("/auth/login?next={next}"))
}

pub(crate) fn form_urlencoded(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn not_configured() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "Sign-in is not set up",
        "<p class=\"bad\">This paddock has no <code>[iam.signin]</code>; use an API token.</p>",
    )
}

fn refused(e: &SigninError) -> Response {
    let status = match e {
        SigninError::Unavailable(_) => StatusCode::BAD_GATEWAY,
        SigninError::Refused(_) => StatusCode::FORBIDDEN,
        SigninError::Config(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    tracing::info!(reason = %e, "sign-in refused");
    page(
        status,
        "Sign-in refused",
        &format!(
            "<p class=\"bad\" id=\"result\">{}</p><p><a href=\"/auth/login\">Try again</a></p>",
            escape(&e.to_string())
        ),
    )
}

fn signin(s: &AppState) -> Option<&Arc<SignIn>> {
    s.signin.as_ref()
}

#[derive(Deserialize)]
struct LoginQuery {
    next: Option<String>,
}

async fn login(
    State(s): State<AppState>,
    query: Result<Query<LoginQuery>, QueryRejection>,
) -> Response {
    let Some(signin) = signin(&s) else {
        return not_configured();
    };
    let next = query
        .ok()
        .and_then(|Query(q)| q.next)
        .unwrap_or_else(|| "/admin".into());
    match signin.start(&next).await {
        Ok(start) => {
            let mut r = redirect(&start.redirect);
            r.headers_mut().append(
                header::SET_COOKIE,
                set_cookie(&s, LOGIN_COOKIE, &start.state, "/auth", 600),
            );
            r
        }
        Err(e) => refused(&e),
    }
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

async fn callback(
    State(s): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<CallbackQuery>, QueryRejection>,
) -> Response {
    let Some(signin) = signin(&s) else {
        return not_configured();
    };
    let Ok(Query(q)) = query else {
        return refused(&SigninError::Refused(
            "the sign-in answer was malformed".into(),
        ));
    };
    if let Some(error) = q.error {
        return refused(&SigninError::Refused(format!(
            "the identity provider said: {}",
            error.chars().take(100).collect::<String>()
        )));
    }
    let (Some(code), Some(state)) = (q.code, q.state) else {
        return refused(&SigninError::Refused(
            "the sign-in answer carried no code".into(),
        ));
    };
    let signed_in = match signin
        .finish(&code, &state, cookie(&headers, LOGIN_COOKIE))
        .await
    {
        Ok(signed_in) => signed_in,
        Err(e) => return refused(&e),
    };
    let opened = match s
        .iam
        .sessions()
        .open(signed_in.identity, signin.session_ttl())
    {
        Ok(opened) => opened,
        Err(e) => return refused(&SigninError::Refused(e.to_string())),
    };
    tracing::info!(email = %signed_in.email, "signed in");
    let mut r = redirect(&safe_next(&signed_in.next));
    start_session(&s, &mut r, &opened);
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&s, LOGIN_COOKIE, "", "/auth", 0),
    );
    r
}

/// Sets the cookie of a session just opened on the response.
pub(crate) fn start_session(
    s: &AppState,
    response: &mut Response,
    opened: &paddock_iam::OpenedSession,
) {
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(s, SESSION_COOKIE, &opened.id, "/", opened.ttl.as_secs()),
    );
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

/// The session id of a signed-in person's form post whose CSRF token is
/// that session's; `None` for anything else. Every session form uses it.
pub(crate) fn session_form<'a>(
    s: &AppState,
    headers: &'a HeaderMap,
    csrf: Option<&str>,
) -> Option<&'a str> {
    let id = cookie(headers, SESSION_COOKIE)?;
    s.iam.sessions().csrf_ok(id, csrf?).then_some(id)
}

fn form_session<'a>(
    s: &AppState,
    headers: &'a HeaderMap,
    form: &Result<Form<CsrfForm>, FormRejection>,
) -> Option<&'a str> {
    let csrf = form.as_ref().ok().map(|Form(f)| f.csrf.as_str());
    session_form(s, headers, csrf)
}

pub(crate) fn csrf_refused() -> Response {
    tracing::info!("refused a form without a valid CSRF token");
    page(
        StatusCode::FORBIDDEN,
        "Refused",
        "<p class=\"bad\" id=\"result\">This form has expired or did not come from paddock. Reload the page and try again.</p>",
    )
}

async fn logout(
    State(s): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Response {
    // Without a session there is nothing to end (and nothing to forge).
    if cookie(&headers, SESSION_COOKIE).is_some() {
        let Some(id) = form_session(&s, &headers, &form) else {
            return csrf_refused();
        };
        s.iam.sessions().end(id);
    }
    let mut r = page(
        StatusCode::OK,
        "Signed out",
        "<p id=\"result\">You are signed out.</p>",
    );
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&s, SESSION_COOKIE, "", "/", 0),
    );
    r
}

/// The hidden CSRF field for a page's forms: the session's token (empty
/// without sign-in or a session).
pub(crate) fn csrf_field(s: &AppState, headers: &HeaderMap) -> String {
    session_csrf(s, headers)
        .map(|c| {
            format!(
                "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
                escape(&c)
            )
        })
        .unwrap_or_default()
}

/// The CSRF token of the request's session, if it has one.
pub(crate) fn session_csrf(s: &AppState, headers: &HeaderMap) -> Option<String> {
    let id = cookie(headers, SESSION_COOKIE)?;
    s.iam.sessions().get(id).map(|(_, csrf)| csrf)
}

async fn admin(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
) -> Response {
    let csrf = csrf_field(&s, &headers);
    let mut boxes = String::new();
    for b in s.boxes.list().unwrap_or_default() {
        if caller.sees(&b.project) {
            boxes.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&b.box_id),
                escape(&b.project),
                escape(&format!("{:?}", b.state).to_lowercase())
            ));
        }
    }
    let mut tokens = String::new();
    for t in s
        .iam
        .tokens()
        .and_then(|b| b.list().ok())
        .unwrap_or_default()
    {
        let action = if t.revoked_at.is_some() {
            "revoked".to_owned()
        } else {
            format!(
                "<form method=\"post\" action=\"/admin/tokens/{id}/revoke\">{csrf}\
                 <button type=\"submit\" id=\"revoke-{id}\">Revoke</button></form>",
                id = escape(&t.id)
            )
        };
        tokens.push_str(&format!(
            "<tr id=\"token-{id}\"><td>{id}</td><td>{name}</td><td>{caps}</td><td>{action}</td></tr>",
            id = escape(&t.id),
            name = escape(&t.name),
            caps = escape(&t.capabilities.join(" ")),
        ));
    }
    page(
        StatusCode::OK,
        "paddock",
        &format!(
            "<p>Signed in as <strong id=\"who\">{who}</strong>.</p>\
             <form method=\"post\" action=\"/auth/logout\">{csrf}\
             <button type=\"submit\" id=\"logout\">Sign out</button></form>\
             <h2>Boxes</h2><table>{boxes}</table><h2>Tokens</h2><table>{tokens}</table>",
            who = escape(caller.principal()),
        ),
    )
}

async fn revoke(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Response {
    // Cookies ride along on cross-site requests, bearer tokens do not:
    // only a session's request must prove it came from our page.
    if caller.identity.source == paddock_iam::Source::Session
        && form_session(&s, &headers, &form).is_none()
    {
        return csrf_refused();
    }
    match s.iam.revoke(&id) {
        Ok(_) => redirect("/admin"),
        Err(e) => page(
            StatusCode::NOT_FOUND,
            "Not revoked",
            &format!(
                "<p class=\"bad\" id=\"result\">{}</p>",
                escape(&e.to_string())
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_http_only_lax_and_secure_behind_https() {
        let plain = cookie_text("paddock_session", "v", "/", 60, false);
        assert_eq!(
            plain,
            "paddock_session=v; Path=/; Max-Age=60; HttpOnly; SameSite=Lax"
        );
        assert!(cookie_text("paddock_session", "v", "/", 60, true).ends_with("; Secure"));
    }

    #[test]
    fn cookies_are_read_from_any_cookie_header() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; paddock_session=abc"),
        );
        headers.append(header::COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie(&headers, "paddock_session"), Some("abc"));
        assert_eq!(cookie(&headers, "b"), Some("2"));
        assert_eq!(cookie(&headers, "paddock"), None);
    }

    #[test]
    fn the_way_back_after_login_is_escaped() {
        let r = to_login("/activate/x?y=1&z=<a>");
        assert_eq!(
            r.headers()[header::LOCATION],
            "/auth/login?next=/activate/x%3Fy%3D1%26z%3D%3Ca%3E"
        );
    }
}
