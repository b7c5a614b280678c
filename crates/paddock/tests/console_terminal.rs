//! The box terminal in the console: in Debian's headless Chromium, keys
//! typed on the screen and lines sent from the phone-style field run in
//! the box, Ctrl-C interrupts, and the shell's exit code is shown; at the
//! protocol level, with a WebSocket client of our own, the socket wants
//! the page's session token first and then speaks the REST shell's
//! frames; a viewer (no `box:exec`) gets neither page nor socket.

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::common::console::{
    Browsers, PageSocket, console_link, page_socket, screenshots_dir, session, text_frame,
};
use crate::common::egress_site::create_box;
use crate::common::{Options, Paddock};

fn options() -> Options {
    Options {
        login_profile: false,
        ..Options::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_terminal_in_the_console_runs_what_is_typed_in_the_box() {
    let p = Paddock::start(options());
    create_box(&p, "term", "proj").await;
    let mut browsers = Browsers::start(&p);
    let link = console_link(&p, &p.admin_token).await;
    browsers.ask(&format!("open ada {link}"));
    browsers.ask("terminal ada /console/boxes/term/terminal");

    // A line from the field under the screen, as a phone sends it; keys
    // typed on the screen itself, as at a desktop. The answers are what
    // only running them prints (the echoed command line says `$((…))`).
    browsers.ask("line ada echo $((6*7))");
    browsers.ask("screen ada 42");
    browsers.ask("type ada echo $((2+3))x");
    browsers.ask("screen ada 5x");

    // Ctrl-C ends what runs: the next line runs at once.
    browsers.ask("line ada sleep 300");
    browsers.ask("press ada ctrl-c");
    browsers.ask("line ada echo $((1+1))y");
    let screen = browsers.ask("screen ada 2y");
    assert!(
        !screen["screen"].as_str().unwrap().contains('\u{1b}'),
        "escape sequences are not drawn: {screen}"
    );
    if let Some(dir) = screenshots_dir() {
        browsers.ask(&format!(
            "shot ada {}/console-terminal-phone.png 390 760",
            dir.display()
        ));
    }

    browsers.ask("line ada exit 3");
    browsers.ask("termstatus ada exit code 3");
}

type Socket = PageSocket;

async fn open(p: &Paddock, cookie: &str) -> Result<Socket, u16> {
    page_socket(p, "/console/boxes/sock/terminal/socket", cookie, &p.url).await
}

async fn hello(socket: &mut Socket, csrf: &str) {
    let frame = json!({"type": "hello", "csrf": csrf, "cols": 80, "rows": 24});
    socket
        .send(Message::Text(frame.to_string().into()))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_terminals_socket_wants_the_pages_token_and_box_exec() {
    let p = Paddock::start(options());
    create_box(&p, "sock", "proj").await;
    let admin = session(&p, &p.admin_token).await;

    // A cookie alone opens nothing: the first frame must carry the token.
    let mut socket = open(&p, &admin.cookie).await.unwrap();
    hello(&mut socket, "not-the-token").await;
    let refused = text_frame(&mut socket).await;
    assert_eq!(refused["error"]["code"], "unauthenticated", "{refused}");
    assert_eq!(text_frame(&mut socket).await["closed"], 4401);

    // With it, the REST shell's frames: keys in, output out, exit code.
    let mut socket = open(&p, &admin.cookie).await.unwrap();
    hello(&mut socket, &admin.csrf).await;
    socket
        .send(Message::Binary(b"echo $TERM; exit 5\r".to_vec().into()))
        .await
        .unwrap();
    let mut output = Vec::new();
    let end = loop {
        match socket.next().await {
            Some(Ok(Message::Binary(b))) => output.extend_from_slice(&b),
            Some(Ok(Message::Text(t))) => break serde_json::from_str::<Value>(&t).unwrap(),
            other => panic!("{other:?}: {}", String::from_utf8_lossy(&output)),
        }
    };
    assert_eq!(end["exit_code"], 5, "{end}");
    assert!(
        String::from_utf8_lossy(&output).contains("\ndumb"),
        "{}",
        String::from_utf8_lossy(&output)
    );

    // A viewer may look at boxes, not type in them.
    let (_, viewer_token) = p.mint(&["viewer"], None).await;
    let viewer = session(&p, &viewer_token).await;
    let page = crate::common::raw_http()
        .get(format!("{}/console/boxes/sock/terminal", p.url))
        .header("cookie", &viewer.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 403);
    assert_eq!(open(&p, &viewer.cookie).await.err(), Some(403));
    // Nor may anyone without a session, or with a box that is not there.
    assert_eq!(open(&p, "paddock_session=nope").await.err(), Some(401));
}

/// Waits until the box runs `count` (as `grep -c` prints it) of the
/// shell's `sleep 300`.
async fn sleeps_come_to(p: &Paddock, count: &str) {
    crate::common::wait_for(
        &format!("{count:?} sleeps in the box"),
        std::time::Duration::from_secs(20),
        || async {
            let (_, out) = p
                .post(
                    "/api/v1/boxes/sock/exec",
                    json!({"command": "ps -o args | grep -c '^sleep 300' || true"}),
                )
                .await;
            (out["stdout"] == count).then_some(())
        },
    )
    .await;
}

/// Reads until the socket says why it ended: the error frame's message
/// and the close code.
async fn ending(socket: &mut Socket) -> (String, Value) {
    let deadline = std::time::Duration::from_secs(20);
    let mut message = String::new();
    tokio::time::timeout(deadline, async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(t))) => {
                    let frame: Value = serde_json::from_str(&t).unwrap();
                    if let Some(m) = frame["error"]["message"].as_str() {
                        message = m.to_owned();
                    }
                }
                Some(Ok(Message::Close(c))) => {
                    return (message, json!(c.map(|c| u16::from(c.code))));
                }
                Some(Ok(_)) => {}
                other => return (message, json!(format!("{other:?}"))),
            }
        }
    })
    .await
    .expect("the terminal ended within 20 s")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_terminal_ends_with_the_credential_that_opened_it() {
    let p = Paddock::start(options());
    create_box(&p, "sock", "proj").await;

    // A token's shell, over REST: revoking the token hangs it up.
    let (token_id, token) = p.mint(&["admin"], None).await;
    let url = format!(
        "{}/api/v1/boxes/sock/shell?command=sleep%20300",
        p.url.replacen("http://", "ws://", 1)
    );
    let mut request = url.as_str().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (mut shell, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    sleeps_come_to(&p, "1\n").await;
    let revoked = p
        .http
        .delete(format!("{}/api/v1/tokens/{token_id}", p.url))
        .send()
        .await
        .unwrap();
    assert!(revoked.status().is_success(), "{}", revoked.status());
    let (why, code) = ending(&mut shell).await;
    assert_eq!(code, 4401, "{why}");
    assert!(why.contains("revoked"), "{why}");
    sleeps_come_to(&p, "0\n").await;

    // A page's terminal: signing out ends it.
    let admin = session(&p, &p.admin_token).await;
    let mut socket = open(&p, &admin.cookie).await.unwrap();
    hello(&mut socket, &admin.csrf).await;
    let out = crate::common::http()
        .post(format!("{}/auth/logout", p.url))
        .header("cookie", &admin.cookie)
        .header("origin", &p.url)
        .form(&[("csrf", admin.csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 200);
    let (why, code) = ending(&mut socket).await;
    assert_eq!(code, 4401, "{why}");
    assert!(why.contains("session ended"), "{why}");
}
