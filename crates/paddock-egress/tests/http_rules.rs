//! Rules at the HTTP level, end to end on loopback (the harness in
//! `common/`): a read allowed and a push to a protected branch refused,
//! a request held with its method and path until a person decides.

#[allow(dead_code)]
mod common;

use common::*;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use hyper_util::rt::TokioIo;
use paddock_egress::{Action, Scope};
fn http_rule(g: &Gateway, host: &str, request: &str, refs: &[&str], action: Action) {
    g.egress
        .put_http_rule(
            paddock_egress::HttpRuleSpec {
                scope: Scope::Project("p".into()),
                host: host.into(),
                port: Some(g.port()),
                request: request.into(),
                refs: refs.iter().map(|r| r.to_string()).collect(),
                action,
                ttl: None,
            },
            "test",
        )
        .unwrap();
}

fn request(host: &str, port: u16, method: &str, path: &str, body: Vec<u8>) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("host", format!("{host}:{port}"))
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

/// A git push's body: its commands as pkt-lines, a flush, then the pack.
fn push_body(refs: &[&str]) -> Vec<u8> {
    let (old, new) = ("0".repeat(40), "1".repeat(40));
    let mut body = Vec::new();
    for (i, r) in refs.iter().enumerate() {
        let caps = if i == 0 { "\0report-status" } else { "" };
        let line = format!("{old} {new} {r}{caps}\n");
        body.extend_from_slice(format!("{:04x}{line}", line.len() + 4).as_bytes());
    }
    body.extend_from_slice(b"0000PACK-bytes");
    body
}

#[tokio::test]
async fn http_rules_allow_a_read_and_refuse_a_push_to_a_protected_branch() {
    let g = gateway().await;
    let port = g.port();
    // evil.test has no secret: an HTTP rule alone makes the gateway read it.
    http_rule(&g, "evil.test", "GET,HEAD /acme/**", &[], Action::Allow);
    http_rule(
        &g,
        "evil.test",
        "POST /acme/*.git/git-receive-pack",
        &["refs/heads/main"],
        Action::Deny,
    );
    http_rule(&g, "evil.test", "* /**", &[], Action::Deny);
    let (status, _) = g
        .h1(
            "evil.test",
            request("evil.test", port, "GET", "/acme/x.git/info/refs", vec![]),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = g
        .h1(
            "evil.test",
            request("evil.test", port, "DELETE", "/acme/x", vec![]),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = g
        .h1(
            "evil.test",
            request(
                "evil.test",
                port,
                "GET",
                "/acme/%2e%2e/other/secret",
                vec![],
            ),
        )
        .await;
    assert_eq!(status, 403, "normalised to /other/secret: {body}");

    // A push to an agent branch passes the deny (there is no allow for
    // POST, so allow it for the project's push path explicitly).
    http_rule(
        &g,
        "evil.test",
        "POST /acme/*.git/git-receive-pack",
        &[],
        Action::Allow,
    );
    let seen = g.api.seen.lock().unwrap().len();
    let (status, _) = g
        .h1(
            "evil.test",
            request(
                "evil.test",
                port,
                "POST",
                "/acme/x.git/git-receive-pack",
                push_body(&["refs/heads/agent/x"]),
            ),
        )
        .await;
    assert_eq!(status, 200);
    let got = g.api.last().unwrap();
    assert_eq!(
        got.body.unwrap(),
        push_body(&["refs/heads/agent/x"]),
        "the body goes on whole"
    );
    let (status, body) = g
        .h1(
            "evil.test",
            request(
                "evil.test",
                port,
                "POST",
                "/acme/x.git/git-receive-pack",
                push_body(&["refs/heads/agent/x", "refs/heads/main"]),
            ),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("http rule"), "{body}");
    assert_eq!(
        g.api.seen.lock().unwrap().len(),
        seen + 1,
        "the refused push reached nobody"
    );
    let (status, _) = g
        .h1(
            "evil.test",
            request(
                "evil.test",
                port,
                "POST",
                "/acme/x.git/git-receive-pack",
                b"garbage".to_vec(),
            ),
        )
        .await;
    assert_eq!(
        status, 400,
        "a push whose commands cannot be read is refused"
    );
}

#[tokio::test]
async fn an_ask_rule_holds_the_request_with_its_method_and_path() {
    let g = gateway().await;
    let port = g.port();
    http_rule(&g, "other.test", "DELETE /v1/**", &[], Action::Ask);
    let events = g.egress.hub().subscribe();
    let client = {
        let g_proxy = g.proxy;
        let _ = g_proxy;
        g.tls("other.test", "other.test", b"http/1.1")
            .await
            .unwrap()
    };
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(client))
        .await
        .unwrap();
    tokio::spawn(conn);
    let pending = tokio::spawn(send.send_request(request(
        "other.test",
        port,
        "DELETE",
        "/v1/items/7",
        vec![],
    )));
    let held = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let published = events.next().await.unwrap();
            if published.event.kind == "connection_blocked" {
                return published.event.clone();
            }
        }
    })
    .await
    .expect("the request is held");
    assert_eq!(
        held.dossier.get("http_request").map(String::as_str),
        Some("DELETE /v1/items/7")
    );
    assert_eq!(held.dest, "other.test");
    assert!(!pending.is_finished());
    g.egress
        .hub()
        .verdict(paddock_clearance::Verdict {
            container: "b1".into(),
            request_id: held.request_id.clone(),
            dest: held.dest.clone(),
            action: "allow".into(),
            scope: paddock_clearance::VerdictScope::Box,
            ttl: None,
            decided_by: "test".into(),
        })
        .await
        .unwrap();
    let res = pending.await.unwrap().unwrap();
    assert_eq!(res.status(), 200);
    // The box-scoped verdict left a rule for exactly that request.
    let rules = g.egress.http_rules();
    assert!(
        rules
            .iter()
            .any(|r| r.request_text() == "DELETE /v1/items/7" && r.action == Action::Allow),
        "{rules:?}"
    );
}
