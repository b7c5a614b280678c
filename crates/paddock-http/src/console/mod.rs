//! The web console at `/console`: pending requests live (decided from the
//! page over its own WebSocket), boxes, rules, the audit log and tokens.
//!
//! Pages are rendered here; the one script (`assets/console.js`, embedded,
//! no build step) only keeps the pending list live and sends verdicts.
//! Every console response carries a CSP without `unsafe-inline`: scripts,
//! styles and sockets only from paddock itself. A session (OIDC sign-in or
//! a `paddock console` link) is the credential; every form carries the
//! session's CSRF token, and so does the socket's first frame.

mod assets;
mod audit;
mod boxes;
pub(crate) mod feed;
mod link;
mod pending;
mod rules;
mod spokes;
mod terminal;
mod tokens;
mod upstream;

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};

use crate::AppState;
use crate::auth::Caller;
use crate::pages::escape;
use crate::routes::Routes;

pub(crate) use link::mint_route;

pub(crate) fn routes(routes: Routes) -> Routes {
    let routes = routes
        .bind("GET /console/assets/{file}", assets::serve)
        .bind("GET /console/signin", link::signin_page)
        .bind("POST /console/signin", link::redeem)
        .bind("GET /console", pending::page)
        .bind("GET /console/events", feed::feed);
    let routes = boxes::routes(routes);
    let routes = upstream::routes(routes);
    let routes = terminal::routes(routes);
    let routes = rules::routes(routes);
    let routes = audit::routes(routes);
    let routes = spokes::routes(routes);
    tokens::routes(routes)
}

/// The console's CSP: nothing inline, nothing from elsewhere.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The console's sections, in the order the navigation shows them.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Pending,
    Boxes,
    Rules,
    Audit,
    Tokens,
    Spokes,
}

impl Section {
    const ALL: [Section; 6] = [
        Section::Pending,
        Section::Boxes,
        Section::Rules,
        Section::Audit,
        Section::Tokens,
        Section::Spokes,
    ];

    fn title(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Boxes => "Boxes",
            Self::Rules => "Rules",
            Self::Audit => "Audit",
            Self::Tokens => "Tokens",
            Self::Spokes => "Spokes",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Self::Pending => "/console",
            Self::Boxes => "/console/boxes",
            Self::Rules => "/console/rules",
            Self::Audit => "/console/audit",
            Self::Tokens => "/console/tokens",
            Self::Spokes => "/console/spokes",
        }
    }
}

/// What every console page needs to render its frame.
pub(crate) struct Frame<'a> {
    pub caller: &'a Caller,
    /// The session's CSRF token (empty for a bearer caller, who needs none).
    pub csrf: String,
    pub section: Section,
}

impl<'a> Frame<'a> {
    pub(crate) fn new(
        s: &AppState,
        headers: &HeaderMap,
        caller: &'a Caller,
        section: Section,
    ) -> Self {
        Self {
            caller,
            csrf: crate::signin::session_csrf(s, headers).unwrap_or_default(),
            section,
        }
    }

    /// The hidden CSRF field every form of the page carries.
    pub(crate) fn csrf_field(&self) -> String {
        format!(
            "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
            escape(&self.csrf)
        )
    }

    /// The whole page: navigation, who is signed in, and `body`.
    pub(crate) fn render(&self, status: StatusCode, body: &str) -> Response {
        let nav: String = Section::ALL
            .iter()
            .map(|s| {
                let current = if *s == self.section {
                    " aria-current=\"page\""
                } else {
                    ""
                };
                format!("<a href=\"{}\"{current}>{}</a>", s.path(), s.title())
            })
            .collect();
        let html = format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{title} · paddock</title>\
             <link rel=\"stylesheet\" href=\"/console/assets/console.css\">\
             <link rel=\"icon\" href=\"/console/assets/icon.svg\">\
             <script type=\"module\" src=\"/console/assets/console.js\"></script></head>\
             <body data-csrf=\"{csrf}\" data-section=\"{section}\">\
             <header><strong class=\"brand\">paddock</strong><nav>{nav}</nav>\
             <span class=\"who\">signed in as <span id=\"who\">{who}</span></span>\
             <form method=\"post\" action=\"/auth/logout\" class=\"inline\">{field}\
             <button type=\"submit\" class=\"quiet\" id=\"logout\">Sign out</button></form></header>\
             <main><h1>{title}</h1>{body}</main></body></html>",
            title = self.section.title(),
            section = self.section.title().to_lowercase(),
            csrf = escape(&self.csrf),
            who = escape(self.caller.principal()),
            field = self.csrf_field(),
        );
        with_console_headers((status, Html(html)).into_response())
    }
}

/// Headers of every console answer: no caching, no framing, our CSP.
pub(crate) fn with_console_headers(response: Response) -> Response {
    crate::pages::with_page_headers(response, CSP)
}

/// A console page asked for without a session, on a paddock without
/// sign-in: how to get one.
pub(crate) fn no_session() -> Response {
    let mut response = message_page(
        StatusCode::UNAUTHORIZED,
        "Open the console",
        "<p id=\"result\">This paddock has no sign-in set up. Run <code>paddock console</code> \
         on a machine with a token and open the link it prints; the link works once.</p>",
    );
    response.headers_mut().insert(
        axum::http::header::WWW_AUTHENTICATE,
        HeaderValue::from_static(r#"Bearer realm="paddock""#),
    );
    response
}

/// A small page outside the console's frame (sign-in, refusals).
pub(crate) fn message_page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · paddock</title>\
         <link rel=\"stylesheet\" href=\"/console/assets/console.css\">\
             <link rel=\"icon\" href=\"/console/assets/icon.svg\"></head>\
         <body><main class=\"narrow\"><h1>{title}</h1>{body}</main></body></html>",
        title = escape(title)
    );
    with_console_headers((status, Html(html)).into_response())
}

/// A refused or failed console action, shown on a page of its own with
/// the way back.
pub(crate) fn failed(status: StatusCode, message: &str, back: Section) -> Response {
    message_page(
        status,
        "Not done",
        &format!(
            "<p class=\"bad\" id=\"result\">{}</p><p><a href=\"{}\">Back</a></p>",
            escape(message),
            back.path()
        ),
    )
}

/// A form post of the console: a session's must carry its CSRF token
/// (cookies ride along on cross-site requests; bearer tokens do not).
pub(crate) fn form_allowed(s: &AppState, headers: &HeaderMap, caller: &Caller, csrf: &str) -> bool {
    caller.identity.source != paddock_iam::Source::Session
        || crate::signin::session_form(s, headers, Some(csrf)).is_some()
}

/// A button's post: the refusal to send, unless it carries the session's
/// CSRF token.
pub(crate) fn button(
    s: &AppState,
    headers: &HeaderMap,
    caller: &Caller,
    form: Result<axum::extract::Form<CsrfOnly>, axum::extract::rejection::FormRejection>,
) -> Option<Response> {
    let csrf = form
        .map(|axum::extract::Form(f)| f.csrf)
        .unwrap_or_default();
    (!form_allowed(s, headers, caller, &csrf)).then(crate::signin::csrf_refused)
}

/// A form that carries nothing but its CSRF token (a button).
#[derive(serde::Deserialize)]
pub(crate) struct CsrfOnly {
    #[serde(default)]
    pub csrf: String,
}

/// Milliseconds since the epoch as `YYYY-MM-DD HH:MM:SS` UTC.
pub(crate) fn when(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}
