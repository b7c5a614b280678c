//! `/api/v1/events`: the hub's events as JSON text frames, and verdicts
//! sent back on the same socket. Each socket is one hub subscriber with its
//! own bounded queue, like a varlink subscriber.

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;

use crate::egress::VerdictRequest;
use crate::{ApiError, AppState};

/// A verdict is a few hundred bytes; anything far larger is not one.
const MAX_MESSAGE: usize = 64 * 1024;

pub(crate) async fn events(
    State(s): State<AppState>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let egress = crate::egress_gateway(&s)?.clone();
    Ok(ws
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .on_upgrade(move |socket| serve(socket, egress)))
}

async fn serve(socket: WebSocket, egress: std::sync::Arc<paddock_egress::Egress>) {
    let subscription = egress.hub().subscribe();
    let (mut tx, mut rx) = socket.split();
    loop {
        tokio::select! {
            event = subscription.next() => {
                let Some(event) = event else { break };
                if tx.send(Message::Text(event.json.clone().into())).await.is_err() {
                    break;
                }
            }
            incoming = rx.next() => {
                let text = match incoming {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Binary(_))) => {
                        let reply = json!({"type": "error", "error": "invalid", "message": "send verdicts as JSON text"});
                        if tx.send(Message::Text(reply.to_string().into())).await.is_err() { break }
                        continue;
                    }
                    _ => break,
                };
                let reply = match serde_json::from_str::<VerdictRequest>(&text) {
                    Err(e) => json!({"type": "error", "error": "invalid", "message": e.to_string()}),
                    Ok(req) => {
                        let request_id = req.request_id.clone();
                        match req.into_verdict("websocket").map(|v| egress.hub().verdict(v)) {
                            Ok(Ok(ok)) => json!({"type": "verdict_result", "request_id": request_id, "ok": ok}),
                            Ok(Err(e)) => {
                                let e = crate::egress::verdict_error(e);
                                json!({"type": "error", "request_id": request_id, "error": e.code, "message": e.message})
                            }
                            Err(e) => json!({"type": "error", "request_id": request_id, "error": e.code, "message": e.message}),
                        }
                    }
                };
                if tx.send(Message::Text(reply.to_string().into())).await.is_err() {
                    break;
                }
            }
        }
    }
}
