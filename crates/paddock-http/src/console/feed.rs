//! `/console/events`: the console's live feed. A page WebSocket, so its
//! credential is the session cookie (the handshake's guard checked it and
//! the Origin), and its first frame must carry the session's CSRF token
//! (`{"type":"hello","csrf":…}`): a cookie alone, which any page's socket
//! would carry, opens nothing.
//!
//! The feed speaks in requests, not raw events: a `snapshot` of every
//! held request the caller sees (sent after `hello`, and again whenever
//! the socket's queue overflowed, so a console is never left with stale
//! rows), `held` when one is held or gathers another attempt, `ended` when
//! one is decided or withdrawn (saying by whom and how), and `event` for
//! everything else. Verdicts go back as `verdict` frames, as on
//! `/api/v1/events`. The socket closes when the session ends (sign-out,
//! expiry, its token revoked).

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use paddock_clearance::{EventKind, PendingView, Published};
use paddock_iam::{Capability, Resource, Surface, registry};
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::error::ErrorCode;
use crate::{ApiError, AppState};

const MAX_MESSAGE: usize = 64 * 1024;
const HELLO_DEADLINE: Duration = Duration::from_secs(10);
const CLOSE_UNAUTHORISED: u16 = 4401;

type Tx = SplitSink<WebSocket, Message>;
type Rx = SplitStream<WebSocket>;

pub(crate) async fn feed(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let session = page_socket_session(&headers)?;
    Ok(ws
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .on_upgrade(move |socket| serve(socket, s, caller, session))
        .into_response())
}

/// The session of a console page's socket: browsers always name the
/// page's origin on a WebSocket (the origin guard already checked it is
/// ours), so a socket without one is no page's; and a page's socket rides
/// on its session's cookie.
pub(crate) fn page_socket_session(headers: &HeaderMap) -> Result<String, ApiError> {
    if !headers.contains_key(header::ORIGIN) {
        return Err(crate::auth::forbidden(
            "the console's socket is for the console's page (no Origin)",
        ));
    }
    crate::signin::cookie(headers, crate::signin::SESSION_COOKIE)
        .map(str::to_owned)
        .ok_or_else(|| crate::auth::forbidden("the console's socket needs a session"))
}

async fn send(tx: &mut Tx, value: &Value) -> bool {
    tx.send(Message::Text(value.to_string().into()))
        .await
        .is_ok()
}

async fn close(tx: &mut Tx, reason: &str) {
    let frame =
        json!({"type": "error", "error": ErrorCode::Unauthenticated.as_str(), "message": reason});
    let _ = send(tx, &frame).await;
    let _ = tx
        .send(Message::Close(Some(CloseFrame {
            code: CLOSE_UNAUTHORISED,
            reason: "unauthenticated".into(),
        })))
        .await;
}

/// Waits for `hello` with the session's CSRF token.
async fn hello(s: &AppState, rx: &mut Rx, session: &str) -> Result<(), String> {
    let frame = tokio::time::timeout(HELLO_DEADLINE, rx.next())
        .await
        .map_err(|_| "send {\"type\":\"hello\",\"csrf\":…} first".to_owned())?;
    let Some(Ok(Message::Text(text))) = frame else {
        return Err("expected a hello frame".into());
    };
    let value: Value = serde_json::from_str(&text).map_err(|_| "expected a hello frame")?;
    let csrf = value["csrf"]
        .as_str()
        .filter(|_| value["type"] == "hello")
        .ok_or("expected a hello frame")?;
    if !s.iam.sessions().csrf_ok(session, csrf) {
        return Err("the page's session token is not this session's; reload the page".into());
    }
    Ok(())
}

/// Every held request the caller sees, oldest first.
fn snapshot(s: &AppState, caller: &Caller, may_decide: bool) -> Value {
    let requests = crate::egress::visible_pending(s, caller);
    json!({
        "type": "snapshot",
        "requests": requests,
        "may_decide": may_decide,
        "principal": caller.principal(),
    })
}

/// What the console hears of one hub event, if it may see it.
fn translate(s: &AppState, caller: &Caller, published: &Published) -> Option<Value> {
    let event = &published.event;
    let project = event.dossier.get("project").map_or("", String::as_str);
    if !caller.sees(project) {
        return None;
    }
    let kind = event.kind.as_str();
    if kind == EventKind::ConnectionBlocked.as_str()
        || kind == EventKind::ConnectionHeldAgain.as_str()
    {
        // Gone already (decided in the meantime): its `ended` follows.
        let held = s.hub.pending_request(&event.request_id)?;
        return Some(json!({"type": "held", "request": PendingView::from(&held)}));
    }
    if kind == EventKind::VerdictApplied.as_str() && !event.request_id.is_empty() {
        return Some(json!({
            "type": "ended",
            "request_id": event.request_id,
            "container": event.container,
            "dest": event.dest,
            "domain": event.domain,
            "port": event.port,
            "action": event.action,
            "ok": event.ok,
            "reason": event.reason,
        }));
    }
    Some(json!({"type": "event", "event": event}))
}

async fn serve(socket: WebSocket, s: AppState, caller: Caller, session: String) {
    let (mut tx, mut rx) = socket.split();
    if let Err(reason) = hello(&s, &mut rx, &session).await {
        return close(&mut tx, &reason).await;
    }
    let may_decide = caller
        .check_capability(Capability::EgressVerdict, Resource::Global)
        .await
        .is_ok();
    // Subscribed before the snapshot is taken: nothing falls between.
    let subscription = s.hub.subscribe();
    if !send(&mut tx, &snapshot(&s, &caller, may_decide)).await {
        return;
    }
    let mut dropped = subscription.dropped();
    let mut revocations = s.iam.revocations();
    let mut recheck = tokio::time::interval(s.session_recheck);
    recheck.tick().await;
    loop {
        tokio::select! {
            published = subscription.next() => {
                let Some(published) = published else { break };
                let frame = if subscription.dropped() != dropped {
                    // Events were lost to a slow socket: start over.
                    dropped = subscription.dropped();
                    Some(snapshot(&s, &caller, may_decide))
                } else {
                    translate(&s, &caller, &published)
                };
                if let Some(frame) = frame
                    && !send(&mut tx, &frame).await
                {
                    break;
                }
            }
            revoked = revocations.recv() => {
                if let Ok(principal) = revoked
                    && *principal == *caller.identity.principal
                {
                    return close(&mut tx, "the credential was revoked").await;
                }
            }
            _ = recheck.tick() => {
                if s.iam.sessions().get(&session).is_none() {
                    return close(&mut tx, "the session ended; sign in again").await;
                }
            }
            incoming = rx.next() => {
                let text = match incoming {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Binary(_))) => {
                        if !send(&mut tx, &invalid("send JSON text")).await { break }
                        continue;
                    }
                    _ => break,
                };
                if s.iam.sessions().get(&session).is_none() {
                    return close(&mut tx, "the session ended; sign in again").await;
                }
                let reply = message(&s, &caller, &text).await;
                if !send(&mut tx, &reply).await {
                    break;
                }
            }
        }
    }
}

fn invalid(message: &str) -> Value {
    json!({"type": "error", "error": ErrorCode::Invalid.as_str(), "message": message})
}

/// One frame after `hello`: only `verdict` does anything.
async fn message(s: &AppState, caller: &Caller, text: &str) -> Value {
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return invalid(&e.to_string()),
    };
    let kind = value.get("type").and_then(Value::as_str).unwrap_or("");
    if kind != "verdict" {
        return invalid(&format!(
            "unknown message type {kind:?} (after hello, send verdict)"
        ));
    }
    match registry::bind(Surface::WebSocket, kind) {
        Ok(op) => crate::events::verdict(s, &caller.acting_as(op), value).await,
        Err(e) => {
            let e = ApiError::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, e.to_string());
            json!({"type": "error", "error": e.code.as_str(), "message": e.message})
        }
    }
}
