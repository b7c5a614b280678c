//! `[[webhooks]]` end to end: paddock tells a receiver this test runs on
//! loopback of a real box's held request and of its end (who decided), as
//! a signed JSON delivery the receiver checks with the configured secret.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::common::egress_site::*;
use crate::common::{Options, Paddock, wait_for};

type Received = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

async fn receiver() -> (String, Received) {
    let received: Received = Arc::default();
    let app = Router::new()
        .route(
            "/hook",
            post(
                |State(r): State<Received>, h: HeaderMap, b: Bytes| async move {
                    r.lock().push((h, b));
                    "ok"
                },
            ),
        )
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_hears_of_each_hold_and_how_it_ended() {
    let (url, received) = receiver().await;
    let upstream = Upstream::start("127.0.0.1:0").await;
    let secret = "a-webhook-secret-of-some-length";
    let p = Paddock::start(Options {
        login_profile: false,
        extra_toml: format!(
            "[egress]\nhold_timeout_secs = 120\n[egress.hosts]\n\"upstream.test\" = [\"127.0.0.1\"]\n\
             [[webhooks]]\nurl = \"{url}\"\nsecret = \"{secret}\"\n"
        ),
        ..Options::default()
    });
    create_box(&p, "wh", "proj").await;
    add_rule(
        &p,
        json!({"project": "proj", "target": "127.0.0.1/32", "action": "ask"}),
    )
    .await;
    let run = exec_later(
        &p,
        "wh",
        &format!("wget -q -O - http://upstream.test:{}/", upstream.port),
    );
    let deliveries = |n: usize| {
        let received = received.clone();
        async move {
            let got = received.lock().clone();
            (got.len() >= n).then_some(got)
        }
    };
    let got = wait_for("the hold's delivery", Duration::from_secs(30), || {
        deliveries(1)
    })
    .await;
    let held: Value = serde_json::from_slice(&got[0].1).unwrap();
    assert_eq!(held["type"], "held", "{held}");
    assert_eq!(held["request"]["container"], "wh");
    assert_eq!(held["request"]["domain"], "upstream.test");
    let id = held["request"]["request_id"].as_str().unwrap().to_owned();
    assert_eq!(held["console_url"], format!("{}/console#req-{id}", p.url));
    let h = |name: &str| got[0].0[name].to_str().unwrap().to_owned();
    let key = paddock_webhook::key_of(secret).unwrap();
    let expected = paddock_webhook::signature(
        &key,
        &h("webhook-id"),
        h("webhook-timestamp").parse().unwrap(),
        &got[0].1,
    );
    assert_eq!(Some(h("webhook-signature")), expected);

    let (status, body) = p
        .post(
            "/api/v1/egress/verdicts",
            json!({"container": "wh", "request_id": id, "dest": "upstream.test", "action": "allow", "scope": "once"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(run.await.unwrap()["exit_code"], 0);
    let got = wait_for("the end's delivery", Duration::from_secs(30), || {
        deliveries(2)
    })
    .await;
    let ended: Value = serde_json::from_slice(&got[1].1).unwrap();
    assert_eq!(ended["type"], "ended", "{ended}");
    assert_eq!(ended["outcome"]["action"], "allow");
    assert!(
        ended["outcome"]["reason"]
            .as_str()
            .unwrap()
            .contains("allow by token:"),
        "{ended}"
    );
}
