//! The event WebSocket under IAM: the credential in the first frame or the
//! query string, a refresh mid-session, message kinds checked one by one,
//! and the socket closed when its token is revoked or never valid.

use crate::common::clients::Streaming;
use crate::common::{Options, Paddock, all_capabilities_but};
use paddock_iam::{Access, Surface, registry};
use serde_json::json;

fn options() -> Options {
    Options {
        login_profile: false,
        ..Options::default()
    }
}

fn ws_url(p: &Paddock) -> String {
    format!("{}/api/v1/events", p.url.replace("http://", "ws://"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_websocket_authenticates_in_band_refreshes_and_closes_when_revoked() {
    let p = Paddock::start(options());
    let (first_id, first) = p.mint(&["viewer"], None).await;
    let (second_id, second) = p.mint(&["viewer"], None).await;
    let steps = json!([
        {"type": "auth", "token": first},
        {"container": "x", "request_id": "r", "dest": "d", "action": "allow"},
        {"type": "nope"},
        {"type": "auth", "token": second},
    ]);
    let ws = Streaming::start(&["ws_session", &ws_url(&p), &steps.to_string()]);
    let welcome = ws.next_where("welcome", |v| v["type"] == "welcome");
    assert_eq!(welcome["principal"], format!("token:{first_id}"));
    let refused = ws.next_where("an error", |v| v["type"] == "error");
    assert_eq!(
        refused["error"], "forbidden",
        "a viewer decides no egress: {refused}"
    );
    let unknown = ws.next_where("an error", |v| v["type"] == "error");
    assert_eq!(unknown["error"], "invalid", "{unknown}");
    let refreshed = ws.next_where("welcome", |v| v["type"] == "welcome");
    assert_eq!(refreshed["principal"], format!("token:{second_id}"));

    // Revoking the token it no longer uses leaves it open; revoking the
    // one it uses closes it.
    assert_eq!(p.delete(&format!("/api/v1/tokens/{first_id}")).await.0, 200);
    assert_eq!(
        p.delete(&format!("/api/v1/tokens/{second_id}")).await.0,
        200
    );
    let closed = ws.next_where("the close", |v| v.get("closed").is_some());
    assert_eq!(closed["closed"], 4401);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_websocket_with_a_bad_or_no_credential_is_closed() {
    let p = Paddock::start(options());
    let bad = json!([{"type": "auth", "token": "pdk_never-minted"}]);
    let ws = Streaming::start(&["ws_session", &ws_url(&p), &bad.to_string()]);
    let error = ws.next_where("an error", |v| v["type"] == "error");
    assert_eq!(error["error"], "unauthenticated");
    assert_eq!(
        ws.next_where("the close", |v| v.get("closed").is_some())["closed"],
        4401
    );

    let not_auth = json!([{"type": "verdict"}]);
    let ws = Streaming::start(&["ws_session", &ws_url(&p), &not_auth.to_string()]);
    assert_eq!(
        ws.next_where("the close", |v| v.get("closed").is_some())["closed"],
        4401
    );

    // The query string is the other way in, for clients without headers.
    let (_, viewer) = p.mint(&["viewer"], None).await;
    let url = format!("{}?token={viewer}", ws_url(&p));
    let ws = Streaming::start(&["ws_session", &url, "[]"]);
    ws.next_where("welcome", |v| v["type"] == "welcome");
    let (_, no_events) = p.mint(&["box:read"], None).await;
    let url = format!("{}?token={no_events}", ws_url(&p));
    let refused = crate::common::http()
        .get(url.replace("ws://", "http://"))
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403, "a token without events:subscribe");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_socket_admitted_at_the_handshake_rechecks_its_credential() {
    let p = Paddock::start(Options {
        extra_toml: "[iam]\nsession_recheck_secs = 1\n".into(),
        ..options()
    });
    let (id, token) = p.mint(&["viewer"], None).await;
    let url = format!("{}?token={token}", ws_url(&p));
    let ws = Streaming::start(&["ws_session", &url, "[]"]);
    ws.next_where("welcome", |v| v["type"] == "welcome");
    // Revoked by another process (against the store): no broadcast reaches
    // the socket, its periodic re-check does.
    let out = std::process::Command::new(crate::common::paddock_bin())
        .args(["token", "revoke", &id, "--data-dir"])
        .arg(p.dir.path().join("data"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let closed = ws.next_where("the close", |v| v.get("closed").is_some());
    assert_eq!(closed["closed"], 4401);
}

/// Generated from the registry: every WebSocket message kind that needs a
/// capability is refused ("forbidden") to a token one capability short and
/// gets past the check with the full one (here to the hub, which knows no
/// such request).
#[tokio::test(flavor = "multi_thread")]
async fn every_registered_message_kind_refuses_a_token_without_its_capability() {
    let p = Paddock::start(options());
    let mut checked = 0;
    for op in registry::of(Surface::WebSocket) {
        let Access::Requires(capability) = op.access else {
            continue;
        };
        let (_, short) = p.mint(&all_capabilities_but(capability), None).await;
        let (_, full) = p.mint(&["admin"], None).await;
        let message = json!({"type": op.name, "container": "x", "request_id": "r",
                             "dest": "d", "action": "allow"});
        let steps = json!([
            {"type": "auth", "token": short}, message,
            {"type": "auth", "token": full}, message,
        ]);
        let ws = Streaming::start(&["ws_session", &ws_url(&p), &steps.to_string()]);
        ws.next_where("welcome", |v| v["type"] == "welcome");
        let refused = ws.next_where("an error", |v| v["type"] == "error");
        assert_eq!(
            refused["error"], "forbidden",
            "{} without {capability}",
            op.name
        );
        ws.next_where("welcome", |v| v["type"] == "welcome");
        let passed = ws.next_where("an answer", |v| {
            v["type"] == "error" || v["type"] == "verdict_result"
        });
        assert_ne!(
            passed["error"], "forbidden",
            "{} with every capability",
            op.name
        );
        checked += 1;
    }
    assert!(checked >= 1, "no message kind needs a capability");
}

/// The event WebSocket is the hub's, as its varlink socket is: served with
/// egress switched off too (a verdict then meets no held request).
#[tokio::test(flavor = "multi_thread")]
async fn the_event_socket_is_served_without_egress() {
    let p = Paddock::start(Options {
        login_profile: false,
        extra_toml: "[egress]\nenabled = false\n".into(),
        ..Options::default()
    });
    let steps = json!([
        {"type": "auth", "token": p.admin_token},
        {"container": "x", "request_id": "r", "dest": "d", "action": "allow"},
    ]);
    let ws = Streaming::start(&["ws_session", &ws_url(&p), &steps.to_string()]);
    let welcome = ws.next_where("welcome", |v| v["type"] == "welcome");
    assert!(
        welcome["principal"].as_str().unwrap().starts_with("token:"),
        "{welcome}"
    );
    let answer = ws.next_where("an error", |v| v["type"] == "error");
    assert_eq!(answer["error"], "unknown_request", "{answer}");
}
