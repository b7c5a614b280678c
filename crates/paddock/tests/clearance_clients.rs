//! The clearance surfaces through clients we did not write: Python's
//! reference `varlink` package, a terminal driven by `pexpect` through a
//! pseudo-terminal, and the `websockets` package; plus a subscriber of
//! another uid, and one that never reads.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::clients::{Streaming, run_fixture};
use crate::common::egress_site::*;
use crate::common::{Options, Paddock};
use serde_json::{Value, json};

fn options() -> Options {
    Options {
        login_profile: false,
        extra_toml: "[egress]\nhold_timeout_secs = 60\n[egress.hosts]\n\"upstream.test\" = [\"127.0.0.1\"]\n".into(),
        ..Options::default()
    }
}

async fn held_setup(p: &Paddock, box_id: &str) {
    create_box(p, box_id, "proj").await;
    add_rule(
        p,
        json!({"project": "proj", "target": "127.0.0.1/32", "action": "ask"}),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn python_varlink_subscribes_and_its_verdicts_are_checked() {
    let upstream = Upstream::start("127.0.0.1:0").await;
    let p = Paddock::start(options());
    held_setup(&p, "vl").await;
    let socket = p.clearance_socket().display().to_string();

    let info = run_fixture(&["varlink_info", &socket]);
    assert_eq!(
        info["described"],
        json!([
            "org.paddock.Clearance1",
            "org.terok.Clearance1",
            "org.varlink.service"
        ])
    );

    let events = Streaming::start(&["varlink_subscribe", &socket]);
    events.until_live(&p, "vl").await;

    let run = exec_later(
        &p,
        "vl",
        &format!("wget -q -O - http://upstream.test:{}/", upstream.port),
    );
    let held = events.next_where("connection_blocked", |e| {
        e["type"] == "connection_blocked" && e["request_id"] != ""
    });
    let id = held["request_id"].as_str().unwrap();
    assert_eq!(
        (held["container"].as_str(), held["dest"].as_str()),
        (Some("vl"), Some("upstream.test"))
    );

    let wrong = run_fixture(&[
        "varlink_verdict",
        &socket,
        "someone-else",
        id,
        "upstream.test",
        "allow",
    ]);
    assert_eq!(wrong["error"], "org.terok.Clearance1.VerdictTupleMismatch");
    assert_eq!(wrong["parameters"]["expected_container"], "vl");
    let wrong_dest = run_fixture(&[
        "varlink_verdict",
        &socket,
        "vl",
        id,
        "elsewhere.test",
        "allow",
    ]);
    assert_eq!(
        wrong_dest["error"],
        "org.terok.Clearance1.VerdictTupleMismatch"
    );
    let unknown = run_fixture(&[
        "varlink_verdict",
        &socket,
        "vl",
        "no-such-request",
        "upstream.test",
        "allow",
    ]);
    assert_eq!(unknown["error"], "org.terok.Clearance1.UnknownRequest");
    let invalid = run_fixture(&[
        "varlink_verdict",
        &socket,
        "vl",
        id,
        "upstream.test",
        "perhaps",
    ]);
    assert_eq!(invalid["error"], "org.terok.Clearance1.InvalidAction");
    assert!(!run.is_finished(), "refused verdicts change nothing");

    let ok = run_fixture(&[
        "varlink_verdict",
        &socket,
        "vl",
        id,
        "upstream.test",
        "allow",
    ]);
    assert_eq!(ok["ok"], true);
    let applied = events.next_where("verdict_applied", |e| e["type"] == "verdict_applied");
    assert_eq!(
        (applied["request_id"].as_str(), applied["ok"].as_bool()),
        (Some(id), Some(true))
    );
    let out = run.await.unwrap();
    assert_eq!(out["exit_code"], 0, "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_peer_of_another_uid_is_refused() {
    let p = Paddock::start(options());
    let socket = p.clearance_socket();
    // The test's own directory lets others through; the hub's must not.
    std::fs::set_permissions(p.dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let connect_as_nobody = |path: &Path| {
        let script = "import socket,sys\n\
            s=socket.socket(socket.AF_UNIX)\n\
            try:\n    s.connect(sys.argv[1])\nexcept OSError as e:\n    print('connect', e.errno); sys.exit(0)\n\
            s.settimeout(10)\n\
            try:\n    s.sendall(b'{\"method\":\"org.varlink.service.GetInfo\"}\\0')\n    print('reply', len(s.recv(4096)))\nexcept OSError as e:\n    print('closed', e.errno)\n";
        let out = Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "/usr/bin/python3",
                "-c",
                script,
            ])
            .arg(path)
            .output()
            .expect("setpriv (util-linux) runs");
        let said = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if said.is_empty() {
            panic!(
                "the client as nobody failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        said
    };
    // The directory (0700) keeps other users out…
    assert_eq!(connect_as_nobody(&socket), "connect 13");
    // …and when someone loosens it, the peer check still does.
    let dir = socket.parent().unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711)).unwrap();
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let answer = connect_as_nobody(&socket);
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    // Closed without a reply: an end of stream, a reset because the call
    // was never read, or a broken pipe because it was closed before.
    assert!(
        ["reply 0", "closed 104", "closed 32"].contains(&answer.as_str()),
        "{answer}"
    );
    assert!(
        p.log()
            .contains("refused a clearance client of another user")
    );
    // The owner is still served.
    let info = run_fixture(&["varlink_info", &socket.display().to_string()]);
    assert!(info["info"]["interfaces"].as_array().unwrap().len() >= 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_subscriber_that_never_reads_does_not_hold_up_another() {
    let p = Paddock::start(options());
    create_box(&p, "busy", "proj").await;
    let socket = p.clearance_socket().display().to_string();
    let silent = Streaming::start(&["silent_subscriber", &socket]);
    silent.next_where("subscription", |v| v["subscribed"] == true);
    let mut reader = Subscriber::connect(&p).await;
    subscribed(&p, &mut reader, "busy").await;

    // Far more than the silent peer's socket and queue can take.
    const CHANGES: usize = 1500;
    let states = ["block", "up"];
    let receive = tokio::spawn(async move {
        // Pokes from `subscribed` may still be queued: the run starts at
        // the first block.
        reader
            .next_where("first change", |e| {
                e.container == "busy" && e.action == "block"
            })
            .await;
        for i in 1..CHANGES {
            let e = reader
                .next_where("shield change", |e| {
                    e.kind == "shield_up" && e.container == "busy"
                })
                .await;
            assert_eq!(e.action, states[i % 2], "event {i} out of order");
        }
    });
    for i in 0..CHANGES {
        let (status, _) = p
            .put("/api/v1/boxes/busy/shield", json!({"state": states[i % 2]}))
            .await;
        assert_eq!(status, 200);
    }
    receive
        .await
        .expect("the reading subscriber saw every event, in order");
    // The hub still answers new clients.
    let info = run_fixture(&["varlink_info", &socket]);
    assert!(info["info"]["interfaces"].is_array());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_terminal_client_allows_a_held_request() {
    let upstream = Upstream::start("127.0.0.1:0").await;
    let mut p = Paddock::start(options());
    held_setup(&p, "tty").await;
    let socket = p.clearance_socket().display().to_string();
    let tui = Streaming::start(&["terminal", crate::common::paddock_bin(), &socket]);
    tui.next_where("ready", |v| v["ready"] == true);

    let run = exec_later(
        &p,
        "tty",
        &format!("wget -q -O - http://upstream.test:{}/", upstream.port),
    );
    tui.next_where("allowed", |v| v["allowed"] == true);
    let out = run.await.unwrap();
    assert_eq!(out["exit_code"], 0, "{out}");
    assert!(out["stdout"].as_str().unwrap().contains(UPSTREAM_BODY));
    assert!(p.stop().success());
    tui.next_where("lost", |v| v["lost"] == true);
    p.restart();
    tui.next_where("reconnected", |v| v["reconnected"] == true);
    let exit = tui.next_where("exit", |v| v.get("exit").is_some());
    assert_eq!(exit["exit"], 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn websocket_events_and_verdicts() {
    let upstream = Upstream::start("127.0.0.1:0").await;
    let p = Paddock::start(options());
    held_setup(&p, "ws").await;
    let url = format!(
        "{}/api/v1/events?token={}",
        p.url.replace("http://", "ws://"),
        p.admin_token
    );
    let ws = Streaming::start(&["websocket", &url]);
    ws.next_where("ready", |v| v["ready"] == true);
    ws.until_live(&p, "ws").await;

    let run = exec_later(
        &p,
        "ws",
        &format!("wget -q -O - http://upstream.test:{}/", upstream.port),
    );
    let refused = ws.next_where("error", |v| v["type"] == "error");
    assert_eq!(refused["error"], "verdict_tuple_mismatch");
    let result = ws.next_where("verdict_result", |v| v["type"] == "verdict_result");
    assert_eq!(result["ok"], true);
    let out = run.await.unwrap();
    assert_eq!(out["exit_code"], 0, "{out}");
}

/// One raw exchange on the hub socket: what came back before it closed
/// (or within a few seconds).
fn raw_varlink(socket: &Path, bytes: &[u8]) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return out,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if out.ends_with(b"\0") {
                    return out;
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_varlink_input_is_refused_and_others_are_still_served() {
    let p = Paddock::start(options());
    let socket = p.clearance_socket();
    let error_of = |reply: &[u8]| -> String {
        let text = String::from_utf8_lossy(reply);
        let v: Value = serde_json::from_str(text.trim_end_matches('\0')).unwrap_or(Value::Null);
        v["error"].as_str().unwrap_or("").to_owned()
    };

    // A half-sent frame stays pending on its own connection…
    let mut half = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    std::io::Write::write_all(&mut half, b"{\"method\":\"org.varlink.servi").unwrap();

    // …while garbage and floods are cut off without a reply…
    assert!(raw_varlink(&socket, b"this is not json\0").is_empty());
    let flood = vec![b'x'; 200 * 1024];
    assert!(raw_varlink(&socket, &flood).is_empty());

    // …and mistakes get varlink's own errors.
    let cases: [(&[u8], &str); 5] = [
        (b"{\"method\":\"org.terok.Clearance1.Subscribe\"}\0", "org.varlink.service.ExpectedMore"),
        (b"{\"method\":\"org.terok.Clearance1.Nope\"}\0", "org.varlink.service.MethodNotFound"),
        (b"{\"method\":\"com.example.Other.Call\"}\0", "org.varlink.service.InterfaceNotFound"),
        (b"{\"method\":\"org.terok.Clearance1.Verdict\",\"parameters\":{\"container\":1}}\0", "org.varlink.service.InvalidParameter"),
        (b"{\"method\":\"org.paddock.Clearance1.Verdict\",\"parameters\":{\"container\":\"b\",\"request_id\":\"r\",\"dest\":\"d\",\"action\":\"allow\",\"scope\":\"forever\"}}\0", "org.paddock.Clearance1.InvalidScope"),
    ];
    for (call, expected) in cases {
        assert_eq!(error_of(&raw_varlink(&socket, call)), expected);
    }
    let info = run_fixture(&["varlink_info", &socket.display().to_string()]);
    assert!(info["info"]["interfaces"].is_array(), "still serving");
    drop(half);
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_of_other_origins_and_rebound_names_are_refused() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let p = Paddock::start(options());
    let addr = p.url.trim_start_matches("http://").to_owned();
    let ask = |host: String, origin: Option<&'static str>| {
        let addr = addr.clone();
        async move {
            let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
            let origin = origin
                .map(|o| format!("Origin: {o}\r\n"))
                .unwrap_or_default();
            let req = format!(
                "GET /api/v1/events HTTP/1.1\r\nHost: {host}\r\n{origin}Connection: Upgrade\r\nUpgrade: websocket\r\n\
                 Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
            );
            s.write_all(req.as_bytes()).await.unwrap();
            let mut buf = vec![0u8; 512];
            let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
                .await
                .unwrap()
                .unwrap();
            String::from_utf8_lossy(&buf[..n])
                .lines()
                .next()
                .unwrap_or("")
                .to_owned()
        }
    };
    assert!(
        ask(addr.clone(), None).await.starts_with("HTTP/1.1 101"),
        "a client of our own"
    );
    assert!(
        ask(addr.clone(), Some("http://evil.example"))
            .await
            .starts_with("HTTP/1.1 403")
    );
    assert!(
        ask("evil.example".into(), Some("http://evil.example"))
            .await
            .starts_with("HTTP/1.1 403")
    );
    let rebound = crate::common::http()
        .get(format!("{}/api/v1/egress/rules", p.url))
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status(), 403);
}

#[test]
fn a_missing_hub_socket_is_one_clear_error() {
    let out = std::process::Command::new(crate::common::paddock_bin())
        .args([
            "clearance",
            "--socket",
            "/nonexistent/paddock/clearance.sock",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot reach the clearance hub at /nonexistent"),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("os error 2").count(),
        1,
        "said once: {stderr}"
    );
}
