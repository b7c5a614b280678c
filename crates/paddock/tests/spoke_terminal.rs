//! A terminal in a box on a spoke, opened through the hub: the REST
//! shell's WebSocket on the hub, the pseudo-terminal on the spoke's
//! engine, the bytes both ways on the spoke link; a resize reaches the
//! spoke's exec (one it did not know would come back as an error frame),
//! and the command's exit code comes back. (The test image's busybox
//! cannot read a terminal's size, so the size itself is checked by the
//! local terminal's tests.)

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::spokes::{hub_with_a_linked_spoke, until_connected};

type Shell =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Reads the shell's frames into `seen` until it holds `wanted`.
async fn until(shell: &mut Shell, seen: &mut String, wanted: &str) {
    let reading = async {
        while !seen.contains(wanted) {
            match shell.next().await {
                Some(Ok(Message::Binary(bytes))) => seen.push_str(&String::from_utf8_lossy(&bytes)),
                Some(Ok(Message::Text(text))) => seen.push_str(&text),
                Some(Ok(_)) => {}
                other => panic!("the shell ended: {other:?}; so far {seen:?}"),
            }
        }
    };
    if tokio::time::timeout(std::time::Duration::from_secs(20), reading)
        .await
        .is_err()
    {
        panic!("no {wanted:?} within 20 s; so far {seen:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_terminal_in_a_spokes_box_opens_through_the_hub() {
    let (p, _dir, spoke) = hub_with_a_linked_spoke("edge-t", "", "").await;
    until_connected(&p, "edge-t", true).await;
    let (status, created) = p
        .post(
            "/api/v1/boxes",
            json!({"project": "proj", "box_id": "tty", "spoke": "edge-t"}),
        )
        .await;
    assert_eq!(status, 201, "{created}\nspoke log:\n{}", spoke.log());

    let command = "read a; echo got:$a; read b; echo got:$b; exit 3";
    let url = format!(
        "{}/api/v1/boxes/tty/shell?cols=90&rows=33&command={}",
        p.url.replacen("http://", "ws://", 1),
        command
            .replace(' ', "%20")
            .replace(';', "%3B")
            .replace('$', "%24")
    );
    let mut request = url.as_str().into_client_request().unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", p.admin_token).parse().unwrap(),
    );
    let (mut shell, _) = tokio_tungstenite::connect_async(request)
        .await
        .unwrap_or_else(|e| panic!("{e}\nhub:\n{}", p.log()));
    let mut seen = String::new();
    shell
        .send(Message::Text(
            json!({"resize": [100, 40]}).to_string().into(),
        ))
        .await
        .unwrap();
    shell
        .send(Message::Binary(b"first\n".to_vec().into()))
        .await
        .unwrap();
    until(&mut shell, &mut seen, "got:first").await;
    shell
        .send(Message::Binary(b"hello\n".to_vec().into()))
        .await
        .unwrap();
    until(&mut shell, &mut seen, "got:hello").await;
    until(&mut shell, &mut seen, "exit_code").await;
    let end = seen
        .rsplit_once('{')
        .map(|(_, rest)| format!("{{{rest}"))
        .unwrap();
    let end: Value = serde_json::from_str(&end).unwrap_or_else(|e| panic!("{e}: {seen:?}"));
    assert_eq!(end["exit_code"], 3, "{seen:?}");
    assert!(
        !seen.contains("\"error\""),
        "the resize was refused: {seen:?}"
    );

    // The console offers the terminal for the spoke's box too.
    let admin = crate::common::console::session(&p, &p.admin_token).await;
    let page = crate::common::raw_http()
        .get(format!("{}/console/boxes", p.url))
        .header("cookie", &admin.cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("id=\"terminal-tty\""), "{page}");
}
