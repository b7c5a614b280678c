//! The console's socket at the protocol level, with a WebSocket client of
//! our own beside the browser test: a cookie alone opens nothing (the
//! first frame must carry the session's CSRF token), a page of another
//! origin is refused at the handshake, a viewer's verdict is refused, and
//! signing out closes the socket. The console pages carry the CSP.

use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::common::console::{PageSocket, page_socket, session, text_frame};
use crate::common::{Options, Paddock};

type Socket = PageSocket;

async fn open(p: &Paddock, cookie: &str, origin: &str) -> Result<Socket, u16> {
    page_socket(p, "/console/events", cookie, origin).await
}

async fn frame(socket: &mut Socket) -> Value {
    text_frame(socket).await
}

async fn send(socket: &mut Socket, value: Value) {
    socket
        .send(Message::Text(value.to_string().into()))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_consoles_socket_wants_its_page_and_its_token() {
    let p = Paddock::start(Options {
        login_profile: false,
        ..Options::default()
    });
    let (_, viewer) = p.mint(&["viewer"], None).await;
    let watching = session(&p, &viewer).await;

    // Another site's page, with the cookie its browser would attach.
    assert_eq!(
        open(&p, &watching.cookie, "https://evil.example")
            .await
            .err(),
        Some(403)
    );
    // The cookie alone: a first frame without the session's token closes.
    let mut socket = open(&p, &watching.cookie, &p.url).await.unwrap();
    send(&mut socket, json!({"type": "hello", "csrf": "forged"})).await;
    let refused = frame(&mut socket).await;
    assert_eq!(refused["error"], "unauthenticated", "{refused}");
    assert_eq!(frame(&mut socket).await["closed"], 4401);

    // With it: a snapshot; a viewer's verdict is refused by the server,
    // not just hidden by the page.
    let mut socket = open(&p, &watching.cookie, &p.url).await.unwrap();
    send(&mut socket, json!({"type": "hello", "csrf": watching.csrf})).await;
    let snapshot = frame(&mut socket).await;
    assert_eq!(snapshot["type"], "snapshot", "{snapshot}");
    assert_eq!(snapshot["may_decide"], false);
    send(
        &mut socket,
        json!({"type": "verdict", "container": "absent", "request_id": "r", "dest": "x.example", "action": "allow"}),
    )
    .await;
    let answer = frame(&mut socket).await;
    assert_eq!(answer["error"], "forbidden", "{answer}");
    send(&mut socket, json!({"type": "auth", "token": viewer})).await;
    let answer = frame(&mut socket).await;
    assert_eq!(
        answer["error"], "invalid",
        "only verdicts after hello: {answer}"
    );

    // Signing out ends the session, and its socket with it.
    let out = crate::common::http()
        .post(format!("{}/auth/logout", p.url))
        .header("cookie", &watching.cookie)
        .header("origin", &p.url)
        .form(&[("csrf", watching.csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 200);
    send(
        &mut socket,
        json!({"type": "verdict", "container": "absent", "request_id": "r", "dest": "x.example", "action": "allow"}),
    )
    .await;
    let answer = frame(&mut socket).await;
    assert_eq!(answer["error"], "unauthenticated", "{answer}");
}
