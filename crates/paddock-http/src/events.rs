//! `/api/v1/events`: the hub's events as JSON text frames, and verdicts
//! sent back on the same socket. Each socket is one hub subscriber with its
//! own bounded queue, like a varlink subscriber.
//!
//! The credential comes in the `Authorization` header, as `?token=`, or in
//! the first frame (`{"type":"auth","token":…}`, within a deadline): a
//! browser treats a refused handshake as final, an in-band refusal it can
//! show. `auth` may be sent again to refresh the credential. The socket
//! closes when its token is revoked, and re-checks its credential
//! periodically (expiry, revocation by another process). Every message kind
//! is looked up in the registry; a caller sees only its projects' events.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use paddock_iam::Surface;
use paddock_iam::registry;
use serde_json::{Value, json};

use crate::auth::{Caller, Named, bearer, caller_for, query_token};
use crate::error::ErrorCode;
use crate::{ApiError, AppState};
use paddock_clearance::VerdictRequest;

/// A verdict is a few hundred bytes; anything far larger is not one.
const MAX_MESSAGE: usize = 64 * 1024;
/// How long a socket without a credential has to send its `auth` frame.
const AUTH_DEADLINE: Duration = Duration::from_secs(10);
/// The client message kinds this socket handles (each registered).
const MESSAGE_KINDS: [&str; 2] = ["auth", "verdict"];
/// Every WebSocket message kind paddock serves: this socket's and the
/// console's (`verdict` is both sockets', one operation).
pub(crate) const ALL_MESSAGE_KINDS: [&str; 3] = ["auth", "hello", "verdict"];
/// The operation of subscribing to the socket.
const SUBSCRIBE: &str = "GET /api/v1/events";
/// Close code for "credential refused or gone" (private range).
const CLOSE_UNAUTHORISED: u16 = 4401;

pub(crate) async fn events(
    State(s): State<AppState>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
    uri: Uri,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    // Admitted at the handshake: keep the credential it came with, so the
    // socket can re-check it like one admitted in-band.
    let caller = caller.map(|Extension(c)| {
        let secret = bearer(&headers)
            .map(str::to_owned)
            .or_else(|| query_token(uri.query()));
        (c, secret)
    });
    Ok(ws
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .on_upgrade(move |socket| serve(socket, s, caller)))
}

type Tx = SplitSink<WebSocket, Message>;
type Rx = SplitStream<WebSocket>;

async fn send(tx: &mut Tx, value: Value) -> bool {
    tx.send(Message::Text(value.to_string().into()))
        .await
        .is_ok()
}

async fn close(tx: &mut Tx, reason: &str) {
    let _ = send(
        tx,
        json!({"type": "error", "error": ErrorCode::Unauthenticated.as_str(), "message": reason}),
    )
    .await;
    let _ = tx
        .send(Message::Close(Some(CloseFrame {
            code: CLOSE_UNAUTHORISED,
            reason: "unauthenticated".into(),
        })))
        .await;
}

/// Authenticates a token sent in a frame, and checks it may subscribe.
async fn admit(s: &AppState, token: Option<&str>) -> Result<Caller, String> {
    let identity = s
        .iam
        .authenticate(token, Surface::WebSocket)
        .await
        .map_err(|e| e.to_string())?;
    let subscribe = registry::bind(Surface::Rest, SUBSCRIBE).map_err(|e| e.to_string())?;
    let caller = caller_for(s.iam.clone(), identity, subscribe);
    caller
        .check(s, Named::Nothing)
        .await
        .map_err(|e| e.message)?;
    Ok(caller)
}

/// Waits for the first frame to be an `auth` frame.
async fn first_frame_auth(s: &AppState, rx: &mut Rx) -> Result<(Caller, String), String> {
    let frame = tokio::time::timeout(AUTH_DEADLINE, rx.next())
        .await
        .map_err(|_| "no credential: send {\"type\":\"auth\",\"token\":…} first".to_owned())?;
    let Some(Ok(Message::Text(text))) = frame else {
        return Err("expected an auth frame".into());
    };
    let value: Value = serde_json::from_str(&text).map_err(|_| "expected an auth frame")?;
    let token = value["token"].as_str().filter(|_| value["type"] == "auth");
    let token = token.ok_or("expected an auth frame")?.to_owned();
    Ok((admit(s, Some(&token)).await?, token))
}

async fn serve(socket: WebSocket, s: AppState, caller: Option<(Caller, Option<String>)>) {
    let hub = s.hub.clone();
    let (mut tx, mut rx) = socket.split();
    // The credential is kept only to re-check it; it is never echoed.
    let (mut caller, mut secret) = match caller {
        Some(admitted) => admitted,
        None => match first_frame_auth(&s, &mut rx).await {
            Ok((c, token)) => (c, Some(token)),
            Err(reason) => return close(&mut tx, &reason).await,
        },
    };
    if !send(
        &mut tx,
        json!({"type": "welcome", "principal": caller.principal()}),
    )
    .await
    {
        return;
    }
    let subscription = hub.subscribe();
    let mut revocations = s.iam.revocations();
    let mut recheck = tokio::time::interval(s.session_recheck);
    recheck.tick().await;
    loop {
        tokio::select! {
            event = subscription.next() => {
                let Some(event) = event else { break };
                let project = event.event.dossier.get("project").map_or("", String::as_str);
                // An event of no known project is for callers of every project.
                if caller.sees(project)
                    && tx.send(Message::Text(event.json.clone().into())).await.is_err()
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
            // Every credential is re-checked (expiry, revocation elsewhere);
            // only with IAM off is there none.
            _ = recheck.tick(), if secret.is_some() => {
                if let Some(token) = &secret
                    && let Err(reason) = admit(&s, Some(token)).await
                {
                    return close(&mut tx, &reason).await;
                }
            }
            incoming = rx.next() => {
                let text = match incoming {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Binary(_))) => {
                        let reply = json!({"type": "error", "error": ErrorCode::Invalid.as_str(), "message": "send JSON text"});
                        if !send(&mut tx, reply).await { break }
                        continue;
                    }
                    _ => break,
                };
                let reply = match message(&s, &caller, &text).await {
                    Reply::Send(v) => v,
                    Reply::Reauthenticated(c, token) => {
                        caller = c;
                        secret = Some(token);
                        json!({"type": "welcome", "principal": caller.principal()})
                    }
                    Reply::Close(reason) => return close(&mut tx, &reason).await,
                };
                if !send(&mut tx, reply).await {
                    break;
                }
            }
        }
    }
}

enum Reply {
    Send(Value),
    Reauthenticated(Caller, String),
    Close(String),
}

fn error(request_id: Option<&str>, e: &ApiError) -> Reply {
    Reply::Send(error_frame(request_id, e))
}

fn error_frame(request_id: Option<&str>, e: &ApiError) -> Value {
    json!({"type": "error", "request_id": request_id, "error": e.code.as_str(), "message": e.message})
}

/// A `verdict` frame of either socket (this one or the console's), sent
/// by `caller` acting as the `verdict` operation: checked on the frame's
/// box, handed to the hub, answered as `verdict_result` or `error`.
pub(crate) async fn verdict(s: &AppState, caller: &Caller, mut request: Value) -> Value {
    if let Some(o) = request.as_object_mut() {
        o.remove("type");
    }
    let req: VerdictRequest = match serde_json::from_value(request) {
        Ok(r) => r,
        Err(e) => return error_frame(None, &ApiError::bad_request(e.to_string())),
    };
    let request_id = req.request_id.clone();
    if let Err(e) = caller.check(s, Named::Box(&req.container)).await {
        return error_frame(Some(&request_id), &e);
    }
    let verdict = match req.into_verdict(caller.principal()) {
        Ok(v) => v,
        Err(e) => return error_frame(Some(&request_id), &crate::egress::request_error(e)),
    };
    match s.hub.verdict(verdict).await {
        Ok(ok) => json!({"type": "verdict_result", "request_id": request_id, "ok": ok}),
        Err(e) => error_frame(Some(&request_id), &crate::egress::verdict_error(e)),
    }
}

/// One client frame: its kind (default `verdict`) must be registered.
async fn message(s: &AppState, caller: &Caller, text: &str) -> Reply {
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return error(None, &ApiError::bad_request(e.to_string())),
    };
    let kind = value
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("verdict");
    if !MESSAGE_KINDS.contains(&kind) {
        let e = ApiError::bad_request(format!(
            "unknown message type {kind:?} (known: {MESSAGE_KINDS:?})"
        ));
        return error(None, &e);
    }
    // Every kind was checked against the registry at start-up.
    let op = match registry::bind(Surface::WebSocket, kind) {
        Ok(op) => op,
        Err(e) => return error(None, &crate::auth::forbidden(e.to_string())),
    };
    match op.name {
        "auth" => {
            let token = value["token"].as_str().map(str::to_owned);
            match admit(s, token.as_deref()).await {
                Ok(c) => Reply::Reauthenticated(c, token.unwrap_or_default()),
                Err(reason) => Reply::Close(reason),
            }
        }
        "verdict" => Reply::Send(verdict(s, &caller.acting_as(op), value).await),
        _ => error(
            None,
            &crate::auth::forbidden(format!("{kind:?} has no handler")),
        ),
    }
}
