//! Per-request IAM for HTTP: the guard each route was bound with takes the
//! credential, authenticates, authorises its operation's capability on the
//! resource the path names, and hands the handler a [`Caller`]. Handlers
//! whose resource is in the body finish the check with [`Caller::check`],
//! which resolves the operation's target in [`resolve`], the one place
//! that does; listings filter with [`Caller::sees`]. Nothing here knows
//! what any token may do.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use paddock_core::CoreError;
use paddock_egress::Scope;
use paddock_iam::registry::{Access, Target};
use paddock_iam::{AuthError, Capability, Iam, Identity, Operation, Resource, Surface};

use crate::error::ErrorCode;
use crate::{ApiError, AppState};

/// The authenticated caller of one request, and the registered operation
/// it is performing.
#[derive(Clone)]
pub struct Caller {
    pub identity: Identity,
    iam: Arc<Iam>,
    op: &'static Operation,
}

impl Caller {
    /// The same caller performing another registered operation: an MCP
    /// tool called over the transport, a WebSocket message on its socket.
    pub(crate) fn acting_as(&self, op: &'static Operation) -> Caller {
        Caller {
            identity: self.identity.clone(),
            iam: self.iam.clone(),
            op,
        }
    }

    /// Authorises the operation on what its request names (a project to
    /// create in, the box of a verdict, a rule's scope …), resolved by
    /// [`resolve`]. Operations that need only authentication pass.
    pub(crate) async fn check(&self, s: &AppState, named: Named<'_>) -> Result<(), ApiError> {
        let Access::Requires(capability) = self.op.access else {
            return Ok(());
        };
        let resource = resolve(s, &self.identity, self.op, named)?;
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

    /// Whether the caller may see every project (and so what belongs to
    /// none).
    pub fn sees_every_project(&self) -> bool {
        !self.iam.enabled() || self.identity.projects.is_all()
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
    // Not known to be bad, only not checked now: "try again", not 401 —
    // a client told its token is invalid would throw it away.
    let unchecked = match e {
        AuthError::StoreUnavailable(_) => Some(ErrorCode::StoreUnavailable),
        AuthError::Unavailable(_) => Some(ErrorCode::AuthUnavailable),
        _ => None,
    };
    if let Some(code) = unchecked {
        return ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code,
            message: e.to_string(),
        }
        .into_response();
    }
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
/// The box a path names: REST's `/api/v1/boxes/{id}/…` and a published
/// port's `/ports/{id}/{port}/…`.
fn box_id_in_path(path: &str) -> Option<&str> {
    path.strip_prefix("/api/v1/boxes/")
        .or_else(|| path.strip_prefix("/ports/"))?
        .split('/')
        .next()
}

/// What a request names for its operation's [`Target`]: the path's or
/// body's box, the body's project, a rule's scope.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Named<'a> {
    /// Nothing more than the operation (global and listing targets).
    Nothing,
    Box(&'a str),
    Project(&'a str),
    /// The scope of a rule being added or removed.
    Rule(&'a Scope),
}

/// The one place a registry [`Target`] becomes the [`Resource`] a
/// capability is checked on. A box the caller may not see does not exist
/// for it; an unknown box is left to the handler (or the hub) to refuse;
/// a rule of a box that is gone is for unrestricted callers only. A
/// handler naming something its operation's target does not name is a
/// bug, refused rather than authorised on less.
pub(crate) fn resolve(
    s: &AppState,
    identity: &Identity,
    op: &Operation,
    named: Named<'_>,
) -> Result<Resource, ApiError> {
    let box_resource = |id: &str| match s.boxes.get(id) {
        Ok(view) if !identity.may_see(&view.project) => {
            Err(ApiError::from(CoreError::NotFound(id.to_owned())))
        }
        Ok(view) => Ok(Resource::Box {
            id: id.to_owned(),
            project: view.project,
        }),
        Err(_) => Ok(Resource::Global),
    };
    match (op.target, named) {
        (Target::Global | Target::Listing, Named::Nothing) => Ok(Resource::Global),
        (Target::BoxInPath | Target::BoxInBody, Named::Box(id)) => box_resource(id),
        // A box path that matched no id (it cannot: the route has one).
        (Target::BoxInPath, Named::Nothing) => Ok(Resource::Global),
        (Target::ProjectInBody | Target::ProjectInPath, Named::Project(p)) => {
            Ok(Resource::Project(p.to_owned()))
        }
        (Target::RuleInBody | Target::RuleInPath, Named::Rule(Scope::Project(p))) => {
            Ok(Resource::Project(p.clone()))
        }
        (Target::RuleInBody | Target::RuleInPath, Named::Rule(Scope::Box(id))) => {
            match s.boxes.get(id) {
                Ok(view) => Ok(Resource::Box {
                    id: id.clone(),
                    project: view.project,
                }),
                Err(_) => Ok(Resource::EveryProject),
            }
        }
        (target, named) => {
            tracing::error!(
                operation = op.name,
                ?target,
                ?named,
                "a handler named the wrong kind of resource"
            );
            Err(forbidden(format!(
                "{} cannot be authorised on what the request names",
                op.name
            )))
        }
    }
}

/// The guard in front of every handler, built for its operation when the
/// route is bound ([`crate::routes::Routes::bind`]).
pub(crate) async fn guard(
    s: AppState,
    op: &'static Operation,
    request: Request,
    next: Next,
) -> Response {
    let name = op.name;
    match op.access {
        Access::Public => return next.run(request).await,
        Access::CapabilityUrl if s.signin.is_none() => return next.run(request).await,
        Access::CapabilityUrl | Access::Authenticated | Access::Requires(_) => {}
    }
    // A page request with a session acts as the session's identity (a
    // browser sends no bearer token). Without one: with sign-in set up, a
    // person signs in; the console says how to open it.
    if op.surface == Surface::Page {
        let session = crate::signin::cookie(request.headers(), crate::signin::SESSION_COOKIE)
            .and_then(|id| s.iam.sessions().get(id));
        if let Some((identity, _)) = session {
            return admit(&s, op, request, next, identity).await;
        }
        let is_get = request.method() == axum::http::Method::GET;
        if s.signin.is_some() {
            if is_get {
                let target = request
                    .uri()
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .to_owned();
                return crate::signin::to_login(&target);
            }
            return unauthorised(&AuthError::Rejected("sign in first".into()));
        }
        // A bearer token opens pages too (scripts); a browser without a
        // session is told how to get one.
        if bearer(request.headers()).is_none() && request.uri().path().starts_with("/console") {
            return crate::console::no_session();
        }
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
            crate::metrics::auth_failed(via.as_str());
            return unauthorised(&e);
        }
    };
    admit(&s, op, request, next, identity).await
}

/// Authorises an authenticated caller for the operation on the resource
/// its path names, and passes the request on with its `Caller`.
async fn admit(
    s: &AppState,
    op: &'static Operation,
    mut request: Request,
    next: Next,
    identity: Identity,
) -> Response {
    let named = match op.target {
        Target::BoxInPath => {
            box_id_in_path(request.uri().path()).map_or(Named::Nothing, Named::Box)
        }
        _ => Named::Nothing,
    };
    let caller = Caller {
        identity,
        iam: s.iam.clone(),
        op,
    };
    // Targets in the body are checked by the handler, which reads it; the
    // capability itself is checked here, on paddock as a whole.
    let checked = match op.target {
        Target::Global | Target::Listing | Target::BoxInPath => caller.check(s, named).await,
        _ => match op.access {
            Access::Requires(c) => caller.check_capability(c, Resource::Global).await,
            _ => Ok(()),
        },
    };
    if let Err(e) = checked {
        return e.into_response();
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// Builds a caller for a WebSocket that authenticated in-band.
pub(crate) fn caller_for(iam: Arc<Iam>, identity: Identity, op: &'static Operation) -> Caller {
    Caller { identity, iam, op }
}
