//! `/healthz`: 200 only when every dependency answers.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz))
}

fn component(r: &Result<(), String>) -> Value {
    match r {
        Ok(()) => json!({"ok": true}),
        Err(e) => json!({"ok": false, "error": e}),
    }
}

async fn healthz(State(s): State<AppState>) -> (StatusCode, Json<Value>) {
    let health = s.boxes.health().await;
    let status = if health.is_up() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut down = Vec::new();
    if health.store.is_err() {
        down.push("store");
    }
    if health.docker.is_err() {
        down.push("docker");
    }
    let body = json!({
        "status": if health.is_up() { "ok" } else { "unavailable" },
        "down": down,
        "components": {"store": component(&health.store), "docker": component(&health.docker)},
    });
    (status, Json(body))
}
