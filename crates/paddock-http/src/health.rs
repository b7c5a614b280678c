//! `/healthz`: 200 only when every component answers: the store, Docker,
//! the egress gateway's decision log and the clearance hub's socket.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::AppState;
use crate::routes::Routes;

pub(crate) fn routes(routes: Routes) -> Routes {
    routes.bind("GET /healthz", healthz)
}

fn component(r: &Result<(), String>) -> Value {
    match r {
        Ok(()) => json!({"ok": true}),
        Err(e) => json!({"ok": false, "error": e}),
    }
}

/// The hub answers when its socket accepts a connection.
async fn clearance(socket: &std::path::Path) -> Result<(), String> {
    match tokio::time::timeout(
        std::time::Duration::from_secs(1),
        tokio::net::UnixStream::connect(socket),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("{}: {e}", socket.display())),
        Err(_) => Err("no answer within 1 s".into()),
    }
}

/// Every component's health: whether all are up, and each one's answer.
pub(crate) async fn components(s: &AppState) -> (bool, Value) {
    let health = s.boxes.health().await;
    let said = |r: Result<(), paddock_core::Unavailable>| r.map_err(|e| e.0);
    let mut checks: Vec<(&str, Result<(), String>)> = vec![
        ("store", said(health.store)),
        ("docker", said(health.docker)),
    ];
    if let Some(egress) = &s.egress {
        checks.push(("egress", egress.health().await.map_err(|e| e.to_string())));
    }
    if let Some(socket) = &s.clearance_socket {
        checks.push(("clearance", clearance(socket).await));
    }
    let up = checks.iter().all(|(_, r)| r.is_ok());
    let components: serde_json::Map<String, Value> = checks
        .iter()
        .map(|(name, r)| ((*name).to_owned(), component(r)))
        .collect();
    (up, Value::Object(components))
}

async fn healthz(State(s): State<AppState>) -> (StatusCode, Json<Value>) {
    let (up, components) = components(&s).await;
    let down: Vec<&String> = components
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, c)| c["ok"] == false)
        .map(|(name, _)| name)
        .collect();
    let body = json!({
        "status": if up { "ok" } else { "unavailable" },
        "down": down,
        "components": components,
    });
    let status = if up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}
