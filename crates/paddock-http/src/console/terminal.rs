//! `/console/boxes/{id}/terminal`: a shell in the box, in the page — for
//! the person at a phone or a browser, beside `paddock box shell`.
//!
//! The page draws lines, not a full screen: the shell runs with
//! `TERM=dumb`, so programs print plainly (editors and pagers are for
//! `paddock box shell`). Keys typed on the screen go as they are typed;
//! the line below it (what a phone's keyboard fills) goes on Send; Ctrl-C,
//! Ctrl-D, Tab and Up are buttons. The script (`assets/terminal.js`,
//! hand-written, no build step) sets everything as text, never as markup.
//!
//! The socket is the page's, as the live feed's is: the session cookie
//! and the page's Origin at the handshake (whose guard checks `box:exec`
//! on the box, as for `/api/v1/boxes/{id}/shell`), then a first frame
//! with the session's CSRF token and the screen's size. After it the
//! frames are `/api/v1/boxes/{id}/shell`'s: keys and output as binary,
//! `{"resize": [cols, rows]}` and `{"signal": "INT"}` as text, and
//! `{"exit_code": N}` when the shell ends. Signing out (or the session's
//! token being revoked) hangs the shell up and closes the socket (4401).

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::{Frame, Section, failed};
use crate::auth::Caller;
use crate::error::{ErrorCode, classify};
use crate::pages::escape;
use crate::routes::Routes;
use crate::{ApiError, AppState};

const HELLO_DEADLINE: Duration = Duration::from_secs(10);
/// The largest screen a page may ask for.
const MAX_SIDE: u16 = 1000;

pub(crate) fn routes(routes: Routes) -> Routes {
    routes
        .bind("GET /console/boxes/{id}/terminal", page)
        .bind("GET /console/boxes/{id}/terminal/socket", socket)
}

async fn page(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let frame = Frame::new(&s, &headers, &caller, Section::Boxes);
    if let Err(e) = s.boxes.get(&id) {
        return failed(classify(&e).0, &e.to_string(), Section::Boxes);
    }
    let id = escape(&id);
    let key = |name: &str, label: &str| {
        format!("<button type=\"button\" class=\"quiet\" data-key=\"{name}\">{label}</button>")
    };
    frame.render(
        StatusCode::OK,
        &format!(
            "<h2>{id}: terminal</h2>\
             <p id=\"term-status\" class=\"muted\" role=\"status\">connecting…</p>\
             <pre id=\"terminal\" tabindex=\"0\" aria-label=\"the box's terminal\" \
             data-socket=\"/console/boxes/{id}/terminal/socket\"></pre>\
             <form id=\"term-line\" class=\"term-line\">\
             <input id=\"term-keys\" autocomplete=\"off\" autocapitalize=\"off\" spellcheck=\"false\" \
             aria-label=\"a line for the shell\" placeholder=\"a command, then Send\">\
             <button type=\"submit\">Send</button></form>\
             <p class=\"term-buttons\">{}{}{}{}</p>\
             <p><a href=\"/console/boxes\">Back to boxes</a></p>",
            key("ctrl-c", "Ctrl-C"),
            key("ctrl-d", "Ctrl-D"),
            key("tab", "Tab"),
            key("up", "↑"),
        ),
    )
}

async fn socket(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Path(id): Path<String>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let session = super::feed::page_socket_session(&headers)?;
    Ok(ws
        .max_message_size(crate::shell::MAX_MESSAGE)
        .on_upgrade(move |socket| serve(socket, s, caller, id, session))
        .into_response())
}

/// The page's first frame.
#[derive(Deserialize)]
struct Hello {
    #[serde(rename = "type")]
    kind: String,
    csrf: String,
    cols: u16,
    rows: u16,
}

async fn serve(mut socket: WebSocket, s: AppState, caller: Caller, id: String, session: String) {
    let hello = match hello(&s, &mut socket, &session).await {
        Ok(hello) => hello,
        Err(reason) => {
            let frame =
                json!({"error": {"code": ErrorCode::Unauthenticated.as_str(), "message": reason}});
            let _ = socket.send(Message::Text(frame.to_string().into())).await;
            let _ = socket
                .send(Message::Close(Some(CloseFrame {
                    code: crate::shell::CLOSE_UNAUTHORISED,
                    reason: "unauthenticated".into(),
                })))
                .await;
            return;
        }
    };
    let size = (hello.cols.clamp(1, MAX_SIDE), hello.rows.clamp(1, MAX_SIDE));
    match s.boxes.open_terminal(&id, None, "dumb", size).await {
        Ok(exec) => {
            let boxes = s.boxes.clone();
            let ended =
                crate::shell::credential_ended(s, caller.identity.principal.clone(), Some(session));
            crate::shell::session(socket, exec, boxes, ended).await;
        }
        Err(e) => {
            let (_, code) = classify(&e);
            let frame = json!({"error": {"code": code.as_str(), "message": e.to_string()}});
            let _ = socket.send(Message::Text(frame.to_string().into())).await;
            let _ = socket.send(Message::Close(None)).await;
        }
    }
}

/// Waits for the page's hello, with this session's CSRF token.
async fn hello(s: &AppState, socket: &mut WebSocket, session: &str) -> Result<Hello, String> {
    let expected = "send {\"type\":\"hello\",\"csrf\":…,\"cols\":…,\"rows\":…} first";
    let frame = tokio::time::timeout(HELLO_DEADLINE, socket.recv())
        .await
        .map_err(|_| expected.to_owned())?;
    let Some(Ok(Message::Text(text))) = frame else {
        return Err(expected.into());
    };
    let hello: Hello = serde_json::from_str(&text)
        .ok()
        .filter(|h: &Hello| h.kind == "hello")
        .ok_or(expected)?;
    if !s.iam.sessions().csrf_ok(session, &hello.csrf) {
        return Err("the page's session token is not this session's; reload the page".into());
    }
    Ok(hello)
}
