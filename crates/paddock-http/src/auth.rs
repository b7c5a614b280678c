//! Per-request IAM for HTTP: find the operation in the registry, take the
//! credential, authenticate, authorise the capability on the resource the
//! path names, and hand the handler a [`Caller`]. Handlers whose resource
//! is in the body finish the check with [`Caller::check`]; listings filter
//! with [`Caller::sees`]. Nothing here knows what any token may do.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use paddock_core::CoreError;
use paddock_iam::registry::{self, Access, Target};
use paddock_iam::{AuthError, Capability, Iam, Identity, Operation, Resource, Surface};

use crate::error::ErrorCode;
use crate::{ApiError, AppState};

/// The authenticated caller of one request.
#[derive(Clone)]
pub struct Caller {
    pub identity: Identity,
    iam: Arc<Iam>,
    capability: Option<Capability>,
}

impl Caller {
    /// Authorises the operation's capability on a resource named in the
    /// body (a project to create in, the box of a verdict, …).
    pub async fn check(&self, resource: Resource) -> Result<(), ApiError> {
        let Some(capability) = self.capability else {
            return Ok(());
        };
        self.check_capability(capability, resource).await
    }

    pub async fn check_capability(
        &self,
        capability: Capability,
        resource: Resource,
    ) -> Result<(), ApiError> {
        self.iam
            .authorise(&self.identity, capability, &resource)
            .await
            .map_err(|denied| {
                tracing::info!(principal = %self.identity.principal, %capability, reason = %denied, "refused");
                forbidden(denied.0)
            })
    }

    /// Whether a listing may show something of this project.
    pub fn sees(&self, project: &str) -> bool {
        !self.iam.enabled() || self.identity.may_see(project)
    }

    pub fn principal(&self) -> &str {
        &self.identity.principal
    }
}

pub(crate) fn forbidden(message: impl Into<String>) -> ApiError {
    ApiError {
        status: StatusCode::FORBIDDEN,
        code: ErrorCode::Forbidden,
        message: message.into(),
    }
}

pub(crate) fn unauthorised(e: &AuthError) -> Response {
    let mut response = ApiError {
        status: StatusCode::UNAUTHORIZED,
        code: ErrorCode::Unauthenticated,
        message: e.to_string(),
    }
    .into_response();
    let challenge = match e {
        AuthError::Missing => r#"Bearer realm="paddock""#,
        _ => r#"Bearer realm="paddock", error="invalid_token""#,
    };
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    response
}

/// The bearer token of `Authorization`, if it is one. Anything else in the
/// header (Basic, garbage) counts as no credential.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// `token=` from a query string (WebSocket clients that cannot set headers).
pub(crate) fn query_token(query: Option<&str>) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == "token" && !v.is_empty()).then(|| v.to_owned())
    })
}

fn operation_name(request: &Request) -> Option<String> {
    // HEAD is GET without a body, and is registered as GET.
    let method = match request.method().as_str() {
        "HEAD" => "GET",
        m => m,
    };
    let path = request.uri().path();
    if path == "/mcp" || path.starts_with("/mcp/") {
        return Some(format!("{method} /mcp"));
    }
    let matched = request.extensions().get::<MatchedPath>()?;
    Some(format!("{method} {}", matched.as_str()))
}

fn find_operation(name: &str) -> Option<&'static Operation> {
    registry::find(Surface::Rest, name).or_else(|| registry::find(Surface::Page, name))
}

/// The surface a credential arriving at this operation is used on.
fn surface_of(op: &Operation) -> Surface {
    if op.name.ends_with(" /mcp") {
        Surface::Mcp
    } else if op.name == "GET /api/v1/events" {
        Surface::WebSocket
    } else {
        op.surface
    }
}

/// `{id}` of a box path: the third segment of `/api/v1/boxes/{id}…`.
fn box_id_in_path(path: &str) -> Option<&str> {
    path.strip_prefix("/api/v1/boxes/")?.split('/').next()
}

fn resource_of(
    s: &AppState,
    op: &Operation,
    path: &str,
    identity: &Identity,
) -> Result<Resource, ApiError> {
    if op.target != Target::BoxInPath {
        return Ok(Resource::Global);
    }
    let Some(id) = box_id_in_path(path) else {
        return Ok(Resource::Global);
    };
    match s.boxes.get(id) {
        // A box of a project the caller may not see does not exist for it.
        Ok(view) if !identity.may_see(&view.project) => {
            Err(CoreError::NotFound(id.to_owned()).into())
        }
        Ok(view) => Ok(Resource::Box {
            id: id.to_owned(),
            project: view.project,
        }),
        // Unknown ids reach the handler, which answers 404 itself.
        Err(_) => Ok(Resource::Global),
    }
}

pub(crate) async fn guard(State(s): State<AppState>, request: Request, next: Next) -> Response {
    let Some(name) = operation_name(&request) else {
        // No route matched: the router answers 404 and serves nothing.
        return next.run(request).await;
    };
    let Some(op) = find_operation(&name) else {
        tracing::warn!(operation = %name, "refused an unregistered operation");
        return forbidden(format!("{name} is not a registered operation")).into_response();
    };
    let capability = match op.access {
        Access::Public => return next.run(request).await,
        Access::CapabilityUrl if s.signin.is_none() => return next.run(request).await,
        Access::CapabilityUrl | Access::Authenticated => None,
        Access::Requires(c) => Some(c),
    };
    // With sign-in set up, pages are for signed-in people: their session
    // is the credential (a browser sends no bearer token).
    if op.surface == Surface::Page
        && let Some(signin) = &s.signin
    {
        let session = crate::signin::cookie(request.headers(), crate::signin::SESSION_COOKIE)
            .and_then(|id| signin.session(id));
        let Some((identity, _)) = session else {
            if request.method() == axum::http::Method::GET {
                let target = request
                    .uri()
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .to_owned();
                return crate::signin::to_login(&target);
            }
            return unauthorised(&AuthError::Rejected("sign in first".into()));
        };
        return admit(&s, op, request, next, identity, capability).await;
    }
    let via = surface_of(op);
    let secret = bearer(request.headers()).map(str::to_owned).or_else(|| {
        (via == Surface::WebSocket)
            .then(|| query_token(request.uri().query()))
            .flatten()
    });
    // A WebSocket may authenticate in its first frame instead.
    if secret.is_none() && via == Surface::WebSocket && s.iam.enabled() {
        return next.run(request).await;
    }
    let identity = match s.iam.authenticate(secret.as_deref(), via).await {
        Ok(identity) => identity,
        Err(e) => {
            tracing::info!(operation = %name, reason = %e, "unauthenticated");
            return unauthorised(&e);
        }
    };
    admit(&s, op, request, next, identity, capability).await
}

/// Authorises an authenticated caller for the operation on the resource
/// its path names, and passes the request on with its `Caller`.
async fn admit(
    s: &AppState,
    op: &Operation,
    mut request: Request,
    next: Next,
    identity: Identity,
    capability: Option<Capability>,
) -> Response {
    let resource = match resource_of(s, op, request.uri().path(), &identity) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let caller = Caller {
        identity,
        iam: s.iam.clone(),
        capability,
    };
    if let Some(capability) = capability
        && let Err(e) = caller.check_capability(capability, resource).await
    {
        return e.into_response();
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// Builds a caller for a WebSocket that authenticated in-band.
pub(crate) fn caller_for(iam: Arc<Iam>, identity: Identity) -> Caller {
    Caller {
        identity,
        iam,
        capability: None,
    }
}

/// The resource of a box named in a body: a box the caller may not see is
/// not found; an unknown id is left for the handler (or the hub) to refuse.
pub(crate) fn box_resource(s: &AppState, caller: &Caller, id: &str) -> Result<Resource, ApiError> {
    match s.boxes.get(id) {
        Ok(view) if !caller.sees(&view.project) => Err(CoreError::NotFound(id.to_owned()).into()),
        Ok(view) => Ok(Resource::Box {
            id: id.to_owned(),
            project: view.project,
        }),
        Err(_) => Ok(Resource::Global),
    }
}
