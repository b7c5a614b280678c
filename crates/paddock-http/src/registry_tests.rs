//! The HTTP surface and the operation registry cannot disagree: the router
//! is built only when every REST route, page, MCP tool and WebSocket
//! message kind is bound to its operation and every operation is served.
//! These tests build the real router and break it on purpose.

use std::sync::Arc;

use paddock_iam::{Iam, IamSettings, RegistryError};
use tokio_util::sync::CancellationToken;

use crate::routes::Routes;
use crate::{AppState, HttpOptions};

fn options() -> HttpOptions {
    HttpOptions {
        allowed_hosts: vec!["localhost".into()],
        shutdown: CancellationToken::new(),
        egress: None,
        upstream: None,
        vault: Arc::new(paddock_vault::Vault::new(
            Arc::new(paddock_store::Store::open_in_memory().unwrap()),
            paddock_vault::VaultKey::from_bytes([0; 32]),
        )),
        hub: paddock_clearance::Hub::new(paddock_clearance::HubConfig {
            queue_capacity: 8,
            ..Default::default()
        }),
        clearance_socket: None,
        iam: Arc::new(Iam::new(IamSettings::default(), Vec::new(), None)),
        session_recheck: std::time::Duration::from_secs(60),
        signin: None,
        secure_cookies: false,
        spokes: None,
    }
}

fn boxes() -> Arc<paddock_core::BoxService> {
    let store = Arc::new(paddock_store::Store::open_in_memory().unwrap());
    // Never asked: nothing here reaches Docker.
    let engine = Arc::new(paddock_docker::Engine::new(Some(
        "unix:///nonexistent/docker.sock".into(),
    )));
    paddock_core::BoxService::new(store, engine, Default::default(), Vec::new()).unwrap()
}

fn state() -> AppState {
    let options = options();
    AppState {
        boxes: boxes(),
        egress: None,
        upstream: None,
        vault: Arc::new(paddock_vault::Vault::new(
            Arc::new(paddock_store::Store::open_in_memory().unwrap()),
            paddock_vault::VaultKey::from_bytes([0; 32]),
        )),
        hub: options.hub,
        clearance_socket: None,
        iam: options.iam,
        session_recheck: options.session_recheck,
        signin: None,
        secure_cookies: false,
        spokes: None,
    }
}

/// Every module's routes, as `router` binds them, but without the ones
/// `skip` names.
fn all_routes_but(state: AppState, skip: &str) -> Routes {
    let mut routes = Routes::new(state.clone());
    if skip != "events" {
        routes = routes.bind("GET /api/v1/events", crate::events::events);
    }
    if skip != "mcp" {
        routes = routes.bind_mcp(crate::mcp::service(state, &options()));
    }
    for (name, module) in crate::MODULES {
        if name != skip {
            routes = module(routes);
        }
    }
    routes
}

async fn ok() -> &'static str {
    "ok"
}

#[tokio::test]
async fn the_router_serves_exactly_the_registered_operations() {
    let _router = crate::router(boxes(), options()).expect("every operation bound once");
    let _routes = all_routes_but(state(), "")
        .finish()
        .expect("the same, built here");
}

#[tokio::test]
async fn a_route_the_registry_does_not_name_stops_the_router() {
    let err = all_routes_but(state(), "")
        .bind("GET /api/v1/debug", ok)
        .finish()
        .unwrap_err();
    assert_eq!(
        err,
        RegistryError::Unregistered {
            surface: "http",
            name: "GET /api/v1/debug".into()
        }
    );
    // A registered path under a method it is not registered for is not it.
    let err = all_routes_but(state(), "")
        .bind("PATCH /api/v1/boxes", ok)
        .finish()
        .unwrap_err();
    assert!(matches!(err, RegistryError::Unregistered { .. }), "{err}");
}

#[tokio::test]
async fn an_operation_nothing_serves_stops_the_router() {
    for (skip, unserved) in [
        ("health", "GET /healthz"),
        ("events", "GET /api/v1/events"),
        ("mcp", "POST /mcp"),
        ("activate", "GET /activate/{token}"),
        ("console", "GET /console/assets/{file}"),
        ("console_links", "POST /api/v1/console/links"),
    ] {
        let err = all_routes_but(state(), skip).finish().unwrap_err();
        let RegistryError::Unbound { name, .. } = err else {
            panic!("without {skip}: {err}");
        };
        // The first operation of the registry left unserved is named.
        assert!(
            name == unserved || skip == "mcp" && name.ends_with(" /mcp"),
            "without {skip}: {name}"
        );
    }
}

#[tokio::test]
async fn a_handler_bound_twice_stops_the_router() {
    let err = all_routes_but(state(), "")
        .bind("GET /healthz", ok)
        .finish()
        .unwrap_err();
    assert_eq!(
        err,
        RegistryError::BoundTwice {
            surface: "rest",
            name: "GET /healthz".into()
        }
    );
}

#[test]
fn mcp_tools_and_message_kinds_are_checked_against_the_registry() {
    use paddock_iam::{Surface, registry};
    let tools = crate::mcp::tool_names();
    assert_eq!(tools.len(), 12, "{tools:?}");
    registry::check_served(
        &[Surface::Mcp],
        tools.iter().map(|t| (Surface::Mcp, t.as_str())),
    )
    .unwrap();
    registry::check_served(
        &[Surface::WebSocket],
        crate::events::ALL_MESSAGE_KINDS.map(|k| (Surface::WebSocket, k)),
    )
    .unwrap();
}
