//! `GET /api/v1/boxes/{id}/shell`: a terminal in a box over a WebSocket
//! (`paddock box shell`). The request is authenticated and authorised
//! like any REST call (bearer header, `box:exec`) before the upgrade, and
//! the command is started before it too, so a box that cannot take one
//! answers with a plain HTTP error.
//!
//! Frames: binary is the terminal's bytes, both ways. Text is control:
//! the client sends `{"resize": [cols, rows]}` or `{"signal": "INT"}`;
//! the server ends with `{"exit_code": N}` (null when unknown) and closes.
//! A client that goes away hangs the terminal up (SIGHUP, then SIGKILL),
//! so nothing it started stays behind; so does the credential that opened
//! it ceasing to hold (its token revoked; a page's session ended), with
//! `{"error"}` and close code 4401 first.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Extension, Path, Query, State};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use paddock_core::{BoxService, InteractiveExec, TerminalSignal};
use serde::Deserialize;
use serde_json::json;
use tokio::io::AsyncWriteExt;

use crate::auth::Caller;
use crate::error::ErrorCode;
use crate::routes::Routes;
use crate::{ApiError, AppState};

/// Keystrokes and pastes arrive in small frames; this is ample.
pub(crate) const MAX_MESSAGE: usize = 256 * 1024;
/// How long a hung-up command gets before it is killed.
const HANGUP_GRACE: Duration = Duration::from_secs(2);

pub(crate) fn routes(routes: Routes) -> Routes {
    routes.bind("GET /api/v1/boxes/{id}/shell", open)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ShellQuery {
    #[serde(default = "default_cols")]
    cols: u16,
    #[serde(default = "default_rows")]
    rows: u16,
    #[serde(default = "default_term")]
    term: String,
    /// A shell command line instead of a login shell.
    #[serde(default)]
    command: Option<String>,
}

fn default_cols() -> u16 {
    80
}
fn default_rows() -> u16 {
    24
}
fn default_term() -> String {
    "xterm-256color".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
enum Control {
    Resize([u16; 2]),
    Signal(String),
}

/// The close code of a terminal whose credential stopped holding.
pub(crate) const CLOSE_UNAUTHORISED: u16 = 4401;

async fn open(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    query: Result<Query<ShellQuery>, QueryRejection>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let exec = s
        .boxes
        .open_terminal(&id, q.command.as_deref(), &q.term, (q.cols, q.rows))
        .await?;
    let boxes = s.boxes.clone();
    let ended = credential_ended(s, caller.identity.principal.clone(), None);
    Ok(ws
        .max_message_size(MAX_MESSAGE)
        .on_upgrade(move |socket| session(socket, exec, boxes, ended)))
}

/// How long a session may have ended before its terminal notices (a
/// revocation is noticed at once).
const SESSION_RECHECK: Duration = Duration::from_secs(5);

/// Resolves, with why, once the credential that opened a terminal no
/// longer holds: its principal's token revoked, or (for a page's
/// terminal) its session ended. A terminal is exec with a person at the
/// keys; it must not outlive their right to it.
pub(crate) async fn credential_ended(
    s: AppState,
    principal: Arc<str>,
    session: Option<String>,
) -> String {
    let mut revocations = s.iam.revocations();
    let mut recheck = tokio::time::interval(SESSION_RECHECK);
    recheck.tick().await;
    loop {
        tokio::select! {
            revoked = revocations.recv() => match revoked {
                Ok(who) if *who == *principal => return "the credential was revoked".into(),
                Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                    return std::future::pending().await;
                }
                _ => {}
            },
            _ = recheck.tick() => {
                if let Some(session) = &session
                    && s.iam.sessions().get(session).is_none()
                {
                    return "the session ended; sign in again".into();
                }
            }
        }
    }
}

/// Bridges a client's socket and a terminal exec until the command ends
/// (then `{"exit_code"}`), the client goes, or `ended` resolves (its
/// credential no longer holds: an error frame and close code 4401) —
/// the last two hang the command up.
pub(crate) async fn session(
    socket: WebSocket,
    exec: InteractiveExec,
    boxes: Arc<BoxService>,
    ended: impl std::future::Future<Output = String>,
) {
    let InteractiveExec {
        exec_id,
        mut output,
        mut input,
    } = exec;
    let (mut to_client, mut from_client) = socket.split();
    let mut ended = std::pin::pin!(ended);
    loop {
        tokio::select! {
            reason = &mut ended => {
                hang_up(&boxes, &exec_id).await;
                let error = json!({"error": {"code": ErrorCode::Unauthenticated.as_str(), "message": reason}});
                let _ = to_client.send(Message::Text(error.to_string().into())).await;
                let _ = to_client
                    .send(Message::Close(Some(CloseFrame {
                        code: CLOSE_UNAUTHORISED,
                        reason: "unauthenticated".into(),
                    })))
                    .await;
                return;
            }
            chunk = output.next() => match chunk {
                Some(Ok(chunk)) => {
                    let bytes = match chunk {
                        paddock_core::Chunk::Stdout(b) | paddock_core::Chunk::Stderr(b) => b,
                    };
                    if to_client.send(Message::Binary(bytes)).await.is_err() {
                        hang_up(&boxes, &exec_id).await;
                        return;
                    }
                }
                // The command ended (or the engine let go of it).
                _ => break,
            },
            message = from_client.next() => match message {
                Some(Ok(Message::Binary(bytes))) => {
                    // A command that stopped reading is not the client's
                    // fault; its end arrives on the output.
                    let _ = input.write_all(&bytes).await;
                    let _ = input.flush().await;
                }
                Some(Ok(Message::Text(text))) => {
                    if let Err(e) = control(&boxes, &exec_id, text.as_str()).await {
                        let error = json!({"error": {"code": e.code.as_str(), "message": e.message}});
                        let _ = to_client.send(Message::Text(error.to_string().into())).await;
                    }
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_)) | Err(_)) | None => {
                    hang_up(&boxes, &exec_id).await;
                    return;
                }
            },
        }
    }
    let exit_code = exit_code(&boxes, &exec_id).await;
    let end = json!({ "exit_code": exit_code });
    let _ = to_client.send(Message::Text(end.to_string().into())).await;
    let _ = to_client.close().await;
}

async fn control(boxes: &BoxService, exec_id: &str, text: &str) -> Result<(), ApiError> {
    let control: Control = serde_json::from_str(text).map_err(|e| {
        ApiError::bad_request(format!(
            "a control frame is {{\"resize\": [cols, rows]}} or {{\"signal\": \"INT\"}}: {e}"
        ))
    })?;
    match control {
        Control::Resize([cols, rows]) => boxes.resize_terminal(exec_id, cols, rows).await?,
        Control::Signal(name) => {
            let signal = TerminalSignal::parse(&name).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "signal {name:?}: one of HUP, INT, QUIT, TERM, KILL"
                ))
            })?;
            boxes.signal_terminal(exec_id, signal).await?;
        }
    }
    Ok(())
}

/// The command's exit code once the engine has it (a moment after its
/// output ends).
async fn exit_code(boxes: &BoxService, exec_id: &str) -> Option<i64> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match boxes.terminal_exit_code(exec_id).await {
            Ok(Some(code)) => return Some(code),
            Ok(None) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            _ => return None,
        }
    }
}

/// The person is gone: SIGHUP, as a closed terminal sends, then SIGKILL
/// for what ignored it.
async fn hang_up(boxes: &BoxService, exec_id: &str) {
    let _ = boxes.signal_terminal(exec_id, TerminalSignal::Hangup).await;
    let deadline = tokio::time::Instant::now() + HANGUP_GRACE;
    while tokio::time::Instant::now() < deadline {
        if !matches!(boxes.terminal_exit_code(exec_id).await, Ok(None)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = boxes.signal_terminal(exec_id, TerminalSignal::Kill).await;
}
