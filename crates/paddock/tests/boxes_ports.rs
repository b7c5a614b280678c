//! Published ports on a real box, reached with curl: only with a token,
//! only published ports, HTTP and an upgraded connection passed through,
//! paddock's credential never reaching the box, closed with the box.

use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::egress_site::exec;
use crate::common::{Options, Paddock, wait_for};

fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "-o", "-", "-w", "\n%{http_code}", "--max-time", "20"])
        .args(args)
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

/// A service in the box on `port` that reads the request's head (keeping
/// it in /tmp/head), answers the upgrade with 101 and then echoes. It
/// answers only after the request, as a real server does: an HTTP client
/// may take an answer that comes before its request for a broken
/// connection.
const UPGRADE_SERVER: &str = "nc -ll -p 9000 -e sh -c \"while read -r line; do echo \\\"\\$line\\\" >> /tmp/head; [ \\\"\\$line\\\" = \\\"\\$(printf '\\r')\\\" ] && break; done; printf 'HTTP/1.1 101 Switching Protocols\\r\\nUpgrade: echo\\r\\nConnection: Upgrade\\r\\n\\r\\n'; cat\" >/dev/null 2>&1 &";

#[tokio::test(flavor = "multi_thread")]
async fn a_published_port_is_reached_with_a_token_and_closed_with_its_box() {
    let p = Paddock::start(Options {
        login_profile: false,
        ..Options::default()
    });
    let (status, body) = p
        .post("/api/v1/boxes", json!({"project": "proj", "box_id": "web"}))
        .await;
    assert_eq!(status, 201, "{body}");
    let started = exec(
        &p,
        "web",
        &format!(
            "mkdir -p /www && echo hello-from-box > /www/index.html && httpd -p 8080 -h /www && {UPGRADE_SERVER}"
        ),
    )
    .await;
    assert_eq!(started["exit_code"], 0, "{started}");
    let bearer = format!("Authorization: Bearer {}", p.admin_token);
    let url = format!("{}/ports/web/8080/", p.url);

    // Not published yet: not found, whatever listens.
    let (code, body) = curl(&["-H", &bearer, &url]);
    assert_eq!(code, 404, "{body}");

    let out = p.cli(&["box", "port", "web", "8080"]);
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        printed.starts_with("8080\t") && printed.contains("/ports/web/8080/"),
        "{printed}"
    );

    let reached = wait_for("the box's web server", Duration::from_secs(20), || async {
        let (code, body) = curl(&["-H", &bearer, &url]);
        (code == 200).then_some(body)
    })
    .await;
    assert_eq!(reached, "hello-from-box\n");
    let (code, _) = curl(&[&url]);
    assert_eq!(code, 401, "no token, no port");

    // Nothing listens on a published port: a clear answer.
    let (status, _) = p
        .post("/api/v1/boxes/web/ports", json!({"port": 7777}))
        .await;
    assert_eq!(status, 201);
    let (code, body) = curl(&["-H", &bearer, &format!("{}/ports/web/7777/", p.url)]);
    assert_eq!(code, 502, "{body}");
    assert!(
        body.contains("port_unreachable") && body.contains("nothing answers"),
        "{body}"
    );

    // An upgraded connection (what a WebSocket is) passes both ways,
    // once the box's server listens (it was started in the background).
    let (status, _) = p
        .post("/api/v1/boxes/web/ports", json!({"port": 9000}))
        .await;
    assert_eq!(status, 201);
    wait_for(
        "the box's upgrade server",
        Duration::from_secs(20),
        || async {
            let out = exec(&p, "web", "netstat -ltn | grep -c ':9000 ' || true").await;
            (out["stdout"] != "0\n").then_some(())
        },
    )
    .await;
    let authority = p.url.trim_start_matches("http://").to_owned();
    let token = p.admin_token.clone();
    let echoed = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(&authority).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        write!(
            stream,
            "GET /ports/web/9000/chat HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Bearer {token}\r\n\
             Cookie: paddock_session=secret\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n"
        )
        .unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        stream.write_all(b"ping through paddock\n").unwrap();
        let mut echoed = [0u8; 21];
        stream.read_exact(&mut echoed).unwrap();
        (String::from_utf8_lossy(&head).into_owned(), String::from_utf8_lossy(&echoed).into_owned())
    })
    .await
    .unwrap();
    assert!(echoed.0.starts_with("HTTP/1.1 101"), "{}", echoed.0);
    assert_eq!(echoed.1, "ping through paddock\n");
    let head: Value = exec(&p, "web", "cat /tmp/head").await;
    let head = head["stdout"].as_str().unwrap();
    assert!(head.starts_with("GET /chat HTTP/1.1"), "{head}");
    assert!(
        !head.contains(&p.admin_token)
            && !head.to_ascii_lowercase().contains("authorization")
            && !head.contains("paddock_session"),
        "paddock's credentials reached the box: {head}"
    );

    // Closed with --rm, and with the box.
    let out = p.cli(&["box", "port", "web", "8080", "--rm"]);
    assert!(out.status.success());
    let (code, _) = curl(&["-H", &bearer, &url]);
    assert_eq!(code, 404);
    let (status, _) = p.delete("/api/v1/boxes/web").await;
    assert_eq!(status, 204);
    let (code, _) = curl(&["-H", &bearer, &format!("{}/ports/web/9000/", p.url)]);
    assert_eq!(code, 404);
}
