//! Every HTTP handler is bound to its registry operation when it is
//! routed: the route is the operation's own name (`METHOD /path`), and the
//! guard in front of it is built for that operation. A handler cannot be
//! served without an operation, and [`Routes::finish`] refuses to build a
//! router while any REST or page operation is left without a handler, so
//! the two cannot drift apart unnoticed: paddock does not start.

use axum::Router;
use axum::extract::Request;
use axum::handler::Handler;
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, on};
use paddock_iam::registry::{self, RegistryError};
use paddock_iam::{Operation, Surface};

use crate::AppState;
use crate::auth;

/// A router under construction whose every route names its operation.
pub(crate) struct Routes {
    state: AppState,
    router: Router<AppState>,
    bound: Vec<&'static Operation>,
    /// The first binding that failed; reported by `finish`.
    error: Option<RegistryError>,
}

/// The REST or page operation called `name`.
fn http_operation(name: &str) -> Result<&'static Operation, RegistryError> {
    registry::find(Surface::Rest, name)
        .or_else(|| registry::find(Surface::Page, name))
        .ok_or_else(|| RegistryError::Unregistered {
            surface: "http",
            name: name.to_owned(),
        })
}

fn method_filter(method: &str) -> Option<MethodFilter> {
    Some(match method {
        "GET" => MethodFilter::GET,
        "POST" => MethodFilter::POST,
        "PUT" => MethodFilter::PUT,
        "DELETE" => MethodFilter::DELETE,
        "PATCH" => MethodFilter::PATCH,
        _ => return None,
    })
}

impl Routes {
    pub(crate) fn new(state: AppState) -> Self {
        Self {
            state,
            router: Router::new(),
            bound: Vec::new(),
            error: None,
        }
    }

    fn fail(&mut self, error: RegistryError) {
        self.error.get_or_insert(error);
    }

    fn record(&mut self, op: &'static Operation) -> bool {
        if self.bound.iter().any(|b| std::ptr::eq(*b, op)) {
            self.fail(RegistryError::BoundTwice {
                surface: op.surface.as_str(),
                name: op.name.to_owned(),
            });
            return false;
        }
        self.bound.push(op);
        true
    }

    /// Serves `handler` as the operation `name` (`"GET /api/v1/boxes"`),
    /// behind the guard that authenticates and authorises for exactly that
    /// operation. HEAD is served by GET, as axum does.
    pub(crate) fn bind<H, T>(mut self, name: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let op = match http_operation(name) {
            Ok(op) => op,
            Err(e) => {
                self.fail(e);
                return self;
            }
        };
        let Some((filter, path)) = name
            .split_once(' ')
            .and_then(|(m, p)| Some((method_filter(m)?, p)))
        else {
            self.fail(RegistryError::Unregistered {
                surface: op.surface.as_str(),
                name: name.to_owned(),
            });
            return self;
        };
        if !self.record(op) {
            return self;
        }
        let state = self.state.clone();
        let guarded = on(filter, handler).route_layer(middleware::from_fn(
            move |request: Request, next: Next| {
                let state = state.clone();
                async move { auth::guard(state, op, request, next).await }
            },
        ));
        self.router = self.router.route(path, guarded);
        self
    }

    /// Serves the MCP transport at `/mcp` (and below), bound to the
    /// registry's `METHOD /mcp` operations; other methods are refused
    /// before the service sees them.
    pub(crate) fn bind_mcp<S>(mut self, service: S) -> Self
    where
        S: tower::Service<Request, Error = std::convert::Infallible> + Clone + Send + Sync,
        S: 'static,
        S::Response: IntoResponse,
        S::Future: Send + 'static,
    {
        let mut by_method: Vec<(Method, &'static Operation)> = Vec::new();
        for method in [Method::GET, Method::POST, Method::DELETE] {
            match http_operation(&format!("{method} /mcp")) {
                Ok(op) if self.record(op) => by_method.push((method, op)),
                Ok(_) => {}
                Err(e) => self.fail(e),
            }
        }
        let state = self.state.clone();
        let guard = middleware::from_fn(move |request: Request, next: Next| {
            let state = state.clone();
            let op = by_method
                .iter()
                .find(|(m, _)| *m == request.method())
                .map(|(_, op)| *op);
            async move {
                match op {
                    Some(op) => auth::guard(state, op, request, next).await,
                    None => unregistered(request.method()),
                }
            }
        });
        let service = tower::Layer::layer(&guard, service);
        self.router = self.router.nest_service("/mcp", service);
        self
    }

    /// The router, once every REST and page operation has its handler.
    pub(crate) fn finish(self) -> Result<Router<AppState>, RegistryError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        for surface in [Surface::Rest, Surface::Page] {
            if let Some(op) =
                registry::of(surface).find(|op| !self.bound.iter().any(|b| std::ptr::eq(*b, *op)))
            {
                return Err(RegistryError::Unbound {
                    surface: surface.as_str(),
                    name: op.name,
                });
            }
        }
        Ok(self.router)
    }
}

fn unregistered(method: &Method) -> Response {
    tracing::warn!(operation = %format!("{method} /mcp"), "refused an unregistered operation");
    auth::forbidden(format!("{method} /mcp is not a registered operation")).into_response()
}
