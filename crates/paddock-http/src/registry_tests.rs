//! Every operation this crate serves is in the IAM registry, and the
//! registry names nothing that is not served. A route, tool or message
//! kind added without an entry fails here (and would be refused at
//! runtime).

use std::collections::BTreeSet;

use paddock_iam::{Surface, registry};

/// `METHOD /path` of every `.route("/path", get(..).post(..))` in this
/// crate's sources, read from the files themselves so a new module is
/// covered without being listed.
fn served_routes() -> BTreeSet<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut routes = BTreeSet::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") || path.ends_with("registry_tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for (at, _) in text.match_indices(".route(") {
            let call = &text[at + ".route(".len()..];
            let mut depth = 1;
            let end = call
                .char_indices()
                .find(|&(_, c)| {
                    depth += match c {
                        '(' => 1,
                        ')' => -1,
                        _ => 0,
                    };
                    depth == 0
                })
                .map(|(i, _)| i)
                .expect("a closed .route( call");
            let call = &call[..end];
            let route = call.split('"').nth(1).expect("a literal path");
            let handlers = &call[call.find(',').expect("a method router")..];
            let mut found = false;
            for method in ["get", "post", "put", "delete", "patch"] {
                for (i, _) in handlers.match_indices(&format!("{method}(")) {
                    let before = handlers[..i].chars().last().unwrap_or(' ');
                    if !before.is_alphanumeric() && before != '_' {
                        routes.insert(format!("{} {route}", method.to_uppercase()));
                        found = true;
                    }
                }
            }
            assert!(found, "no method found for {route} in {}", path.display());
        }
    }
    routes
}

#[test]
fn every_route_is_registered_and_every_registered_route_is_served() {
    let served = served_routes();
    assert!(served.len() >= 20, "the scan found the routes: {served:?}");
    for route in &served {
        assert!(
            registry::find(Surface::Rest, route).is_some()
                || registry::find(Surface::Page, route).is_some(),
            "{route} is served but not in the registry"
        );
    }
    for op in registry::of(Surface::Rest).chain(registry::of(Surface::Page)) {
        assert!(
            served.contains(op.name) || op.name.ends_with(" /mcp"),
            "{} is registered but not served",
            op.name
        );
    }
}

#[test]
fn every_mcp_tool_is_registered_and_nothing_else() {
    let tools = crate::mcp::tool_names();
    assert_eq!(tools.len(), 6);
    for tool in &tools {
        assert!(
            registry::find(Surface::Mcp, tool).is_some(),
            "tool {tool} is not registered"
        );
    }
    for op in registry::of(Surface::Mcp) {
        assert!(
            tools.iter().any(|t| t == op.name),
            "{} is registered but no tool",
            op.name
        );
    }
}

#[test]
fn every_websocket_message_kind_is_registered_and_nothing_else() {
    let kinds = crate::events::MESSAGE_KINDS;
    for kind in kinds {
        assert!(
            registry::find(Surface::WebSocket, kind).is_some(),
            "{kind} is not registered"
        );
    }
    for op in registry::of(Surface::WebSocket) {
        assert!(
            kinds.contains(&op.name),
            "{} is registered but not handled",
            op.name
        );
    }
}
