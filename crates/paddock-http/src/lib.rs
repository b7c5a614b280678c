//! The HTTP front-ends over [`paddock_core::BoxService`]: REST under
//! `/api/v1`, MCP at `/mcp`, the activation page and `/healthz`.
//!
//! Handlers translate and delegate; they hold no box logic. Request logs
//! name the matched route template, never the raw path, because activation
//! paths carry a bearer token.

mod activate;
mod auth;
mod console;
mod create_stream;
mod egress;
mod error;
mod events;
mod files;
mod health;
mod http_rules;
mod mcp;
mod mcp_progress;
mod metrics;
mod origin;
mod pages;
mod policy;
mod ports;
#[cfg(test)]
mod registry_tests;
mod rest;
mod routes;
mod secrets;
mod shell;
mod signin;
mod spokes;
mod tokens;
mod upstream;
pub mod version;
mod worldview;

pub use upstream::{GitUpstream, UpstreamPushError};

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use paddock_core::BoxService;
use paddock_iam::Surface;
use tokio_util::sync::CancellationToken;

pub use auth::Caller;
pub use error::{ApiError, ErrorCode};
pub use mcp::tool_names as mcp_tool_names;

#[derive(Clone)]
pub(crate) struct AppState {
    pub boxes: Arc<BoxService>,
    pub egress: Option<Arc<paddock_egress::Egress>>,
    pub vault: Arc<paddock_vault::Vault>,
    pub upstream: Option<Arc<dyn GitUpstream>>,
    /// The clearance hub: events and verdicts, with or without egress.
    pub hub: Arc<paddock_clearance::Hub>,
    pub clearance_socket: Option<Arc<std::path::PathBuf>>,
    pub iam: Arc<paddock_iam::Iam>,
    pub session_recheck: std::time::Duration,
    pub signin: Option<Arc<paddock_iam::SignIn>>,
    pub secure_cookies: bool,
    pub spokes: Option<Arc<paddock_spoke::Enrolment>>,
}

pub(crate) fn egress_gateway(s: &AppState) -> Result<&Arc<paddock_egress::Egress>, ApiError> {
    s.egress.as_ref().ok_or_else(|| ApiError {
        status: axum::http::StatusCode::NOT_FOUND,
        code: error::ErrorCode::EgressDisabled,
        message: "the egress gateway is disabled in this paddock".into(),
    })
}

/// Every module's REST and page routes, by name (the registry tests leave
/// one out on purpose).
/// A module's routes, added to the router under construction.
pub(crate) type Module = fn(routes::Routes) -> routes::Routes;

pub(crate) const MODULES: [(&str, Module); 18] = [
    ("rest", rest::routes),
    ("files", files::routes),
    ("shell", shell::routes),
    ("ports", ports::routes),
    ("egress", egress::routes),
    ("http_rules", http_rules::routes),
    ("secrets", secrets::routes),
    ("policy", policy::routes),
    ("upstream", upstream::routes),
    ("activate", activate::routes),
    ("health", health::routes),
    ("metrics", metrics::routes),
    ("worldview", worldview::routes),
    ("tokens", tokens::routes),
    ("spokes", spokes::routes),
    ("signin", signin::routes),
    ("console", console::routes),
    ("console_links", console::mint_route),
];

/// Settings for the HTTP surface that are not box settings.
#[derive(Clone)]
pub struct HttpOptions {
    /// `Host` header values MCP accepts (DNS-rebinding guard).
    pub allowed_hosts: Vec<String>,
    /// Cancelled at shutdown, ending MCP sessions.
    pub shutdown: CancellationToken,
    /// The egress gateway, when enabled (rules, log, shields).
    pub egress: Option<Arc<paddock_egress::Egress>>,
    /// Projects' secrets (set, listed, removed; never read back).
    pub vault: Arc<paddock_vault::Vault>,
    /// Pushes agent branches to projects' upstreams, when any has one.
    pub upstream: Option<Arc<dyn GitUpstream>>,
    /// The clearance hub (events and verdicts are served from it whether
    /// or not egress is enabled, as its varlink socket is).
    pub hub: Arc<paddock_clearance::Hub>,
    /// The clearance hub's socket, probed by `/healthz`.
    pub clearance_socket: Option<std::path::PathBuf>,
    /// Who may do what; asked on every request.
    pub iam: Arc<paddock_iam::Iam>,
    /// How often a long-lived socket re-checks its credential.
    pub session_recheck: std::time::Duration,
    /// Sign-in for people, when set up: pages then need a session.
    pub signin: Option<Arc<paddock_iam::SignIn>>,
    /// Cookies get `Secure` (paddock is reached over https).
    pub secure_cookies: bool,
    /// Spokes' enrolment and list, when this paddock is a hub for spokes.
    pub spokes: Option<Arc<paddock_spoke::Enrolment>>,
}

/// The HTTP surface. Fails when a handler and the operation registry
/// disagree (a route, tool or message kind without its operation, or an
/// operation nothing serves): paddock does not start half-guarded.
pub fn router(
    boxes: Arc<BoxService>,
    options: HttpOptions,
) -> Result<Router, paddock_iam::RegistryError> {
    let state = AppState {
        boxes,
        egress: options.egress.clone(),
        vault: options.vault.clone(),
        upstream: options.upstream.clone(),
        hub: options.hub.clone(),
        clearance_socket: options.clearance_socket.clone().map(Arc::new),
        iam: options.iam.clone(),
        session_recheck: options.session_recheck,
        signin: options.signin.clone(),
        secure_cookies: options.secure_cookies,
        spokes: options.spokes.clone(),
    };
    paddock_iam::registry::check_served(
        &[Surface::Mcp],
        mcp::tool_names().iter().map(|t| (Surface::Mcp, t.as_str())),
    )?;
    paddock_iam::registry::check_served(
        &[Surface::WebSocket],
        events::ALL_MESSAGE_KINDS.map(|k| (Surface::WebSocket, k)),
    )?;
    metrics::register(&state);
    worldview::started();
    let mut routes = routes::Routes::new(state.clone())
        .bind("GET /api/v1/events", events::events)
        .bind_mcp(mcp::service(state.clone(), &options));
    for (_, module) in MODULES {
        routes = module(routes);
    }
    Ok(routes
        .finish()?
        .fallback(no_such_route)
        .with_state(state)
        .layer(middleware::from_fn_with_state(
            Arc::new(options.allowed_hosts.clone()),
            origin::guard,
        ))
        .layer(middleware::from_fn(version::guard))
        .layer(middleware::from_fn(mcp_session_end))
        .layer(middleware::from_fn(log_request)))
}

/// A client ending its MCP session (DELETE) is told 200: the official
/// Python SDK takes anything else — rmcp's 202 included — for a failure,
/// and says so on every close.
async fn mcp_session_end(request: Request, next: Next) -> Response {
    let ends_session =
        request.method() == axum::http::Method::DELETE && request.uri().path().starts_with("/mcp");
    let mut response = next.run(request).await;
    if ends_session && response.status() == axum::http::StatusCode::ACCEPTED {
        *response.status_mut() = axum::http::StatusCode::OK;
    }
    response
}

/// Every answer of the API is JSON, a miss included. The path is not
/// echoed (an activation path carries its token).
async fn no_such_route() -> error::ApiError {
    error::ApiError {
        status: axum::http::StatusCode::NOT_FOUND,
        code: error::ErrorCode::NotFound,
        message: "no such route; see the README for the API's paths".into(),
    }
}

async fn log_request(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| {
            if request.uri().path().starts_with("/mcp") {
                "/mcp".to_owned()
            } else {
                "(unmatched)".to_owned()
            }
        });
    let method = request.method().clone();
    let started = Instant::now();
    // A span per request, named by the route template (never the raw
    // path: an activation path carries its token); nothing is built when
    // no collector is configured.
    let mut span = paddock_trace::enabled().then(|| {
        let mut span =
            paddock_trace::span(format!("{method} {route}"), paddock_trace::SpanKind::Server);
        span.attr("http.request.method", method.as_str())
            .attr("http.route", route.as_str());
        span
    });
    let context = span.as_ref().and_then(paddock_trace::Span::context);
    let response = paddock_trace::in_span(context, next.run(request)).await;
    let status = response.status().as_u16();
    if let Some(span) = &mut span {
        span.attr("http.response.status_code", status);
        if status >= 500 {
            span.error(format!("answered {status}"));
        }
    }
    tracing::debug!(%method, %route, status, elapsed_ms = started.elapsed().as_millis() as u64, "request");
    response
}
