//! Activation end to end: the page, the code on the box's stdin, and no
//! secret anywhere else.

use crate::common::activation::send_code;
use crate::common::egress_site::{add_rule, create_box};
use crate::common::{GOOD_CODE, Options, Paddock, URL_SECRET};
use serde_json::json;

fn md5(text: &str) -> String {
    let out = std::process::Command::new("md5sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(text.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn code_goes_from_the_page_to_the_box_and_nowhere_else() {
    let p = Paddock::start(Options::default());
    let (status, created) = p
        .post(
            "/api/v1/boxes",
            json!({"project": "demo", "box_id": "act-1"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["state"], "pending_activation");
    let url = crate::common::activation_url(&created);
    assert!(url.starts_with(&format!("{}/activate/", p.url)), "{url}");
    assert!(!created.to_string().contains(URL_SECRET));

    let page = p.http.get(&url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["cache-control"], "no-store");
    assert_eq!(page.headers()["referrer-policy"], "same-origin");
    let html = page.text().await.unwrap();
    assert!(
        html.contains(URL_SECRET),
        "the page shows the authorize URL"
    );
    assert!(html.contains("https://auth.paddock.test/oauth/authorize?client_id=demo&amp;state="));

    let done = send_code(&p, &url, GOOD_CODE).await;
    assert_eq!(done.status(), 200);
    assert!(done.text().await.unwrap().contains("Signed in"));

    let (_, got) = p.get("/api/v1/boxes/act-1").await;
    assert_eq!(got["state"], "ready");
    let (_, out) = p
        .post(
            "/api/v1/boxes/act-1/exec",
            json!({"command": "cat /tmp/received-code.md5"}),
        )
        .await;
    assert_eq!(
        out["stdout"].as_str().unwrap().trim(),
        md5(GOOD_CODE),
        "the code reached the login's stdin"
    );

    // Single use.
    let again = send_code(&p, &url, GOOD_CODE).await;
    assert_eq!(again.status(), 404);
    // Spent, the link only tells how its login went (until it expires):
    // no form, no authorize URL.
    let again = p.http.get(&url).send().await.unwrap();
    assert_eq!(again.status(), 200);
    let html = again.text().await.unwrap();
    assert!(html.contains("Box activated"), "{html}");
    assert!(
        !html.contains(URL_SECRET) && !html.contains("name=\"code\""),
        "{html}"
    );

    // Nothing secret in any REST answer or in the server's (debug) log.
    let (_, list) = p.get("/api/v1/boxes").await;
    let (_, logs) = p.get("/api/v1/boxes/act-1/logs").await;
    let token = url.rsplit('/').next().unwrap();
    for text in [list.to_string(), got.to_string(), logs.to_string(), p.log()] {
        assert!(!text.contains(URL_SECRET), "authorize URL leaked: {text}");
        assert!(!text.contains(GOOD_CODE), "code leaked: {text}");
        assert!(!text.contains(token), "activation token leaked: {text}");
    }
}

#[tokio::test]
async fn a_wrong_code_fails_the_box_without_echoing_the_code() {
    let p = Paddock::start(Options::default());
    let (_, created) = p
        .post(
            "/api/v1/boxes",
            json!({"project": "demo", "box_id": "act-2"}),
        )
        .await;
    let url = crate::common::activation_url(&created);
    let wrong = "wrong-c0de-xyz";
    let done = send_code(&p, &url, wrong).await;
    assert_eq!(done.status(), 422);
    let html = done.text().await.unwrap();
    assert!(html.contains("exited with 1"), "{html}");
    assert!(
        !html.contains(wrong),
        "the failure page must not echo the code"
    );
    let (_, got) = p.get("/api/v1/boxes/act-2").await;
    assert_eq!(got["state"], "failed");
    let error = got["error"].as_str().unwrap();
    assert!(error.contains("invalid code: [redacted]"), "{error}");
    assert!(!p.log().contains(wrong));
}

#[tokio::test]
async fn bad_links_and_codes_are_refused_without_spending_the_link() {
    let p = Paddock::start(Options::default());
    for bad in [
        "/activate/nope",
        "/activate/",
        &format!("/activate/{}", "x".repeat(300)),
    ] {
        let r = p.http.get(format!("{}{bad}", p.url)).send().await.unwrap();
        assert_eq!(r.status(), 404, "{bad}");
    }
    let (_, created) = p
        .post(
            "/api/v1/boxes",
            json!({"project": "demo", "box_id": "act-3"}),
        )
        .await;
    let url = crate::common::activation_url(&created);
    for code in ["", "two\nlines"] {
        let r = send_code(&p, &url, code).await;
        assert_eq!(r.status(), 400, "{code:?}");
    }
    let r = p.http.post(&url).body("no form here").send().await.unwrap();
    assert_eq!(r.status(), 400);
    // The link still works after the refusals.
    let r = send_code(&p, &url, GOOD_CODE).await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_restart_relaunches_the_login_behind_the_same_link() {
    let mut p = Paddock::start(Options::default());
    let (_, created) = p
        .post(
            "/api/v1/boxes",
            json!({"project": "demo", "box_id": "act-4"}),
        )
        .await;
    let url = crate::common::activation_url(&created);
    p.kill9();
    p.restart();
    let page = p.http.get(&url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let r = send_code(&p, &url, GOOD_CODE).await;
    assert_eq!(r.status(), 200);
    let (_, got) = p.get("/api/v1/boxes/act-4").await;
    assert_eq!(got["state"], "ready");
}

/// A profile whose login trades its code over the network (the fake login
/// fetches `http://idp.test:<port>/token` through the box's proxy).
fn networked_login(upstream_port: u16, destinations: &str) -> Options {
    Options {
        login_profile: false,
        extra_toml: crate::common::networked_login_toml(upstream_port, destinations),
        ..Options::default()
    }
}

/// The loopback address the stand-in provider answers on is refused unless
/// a CIDR rule names it; `ask` makes it wait for a person like any host.
fn ask_for_loopback() -> serde_json::Value {
    json!({"project": "demo", "target": "127.0.0.1/32", "action": "ask"})
}

#[tokio::test(flavor = "multi_thread")]
async fn a_login_held_on_the_network_shows_what_it_waits_for() {
    let idp = crate::common::egress_site::Upstream::start("127.0.0.1:0").await;
    let p = Paddock::start(networked_login(idp.port, ""));
    add_rule(&p, ask_for_loopback()).await;
    let created = create_box(&p, "act-net", "demo").await;
    let url = crate::common::activation_url(&created);

    // The code goes in; the page comes back as soon as the login's token
    // exchange is held, and names it — with the command a person can run,
    // and no button (the link alone decides nothing).
    let answer = send_code(&p, &url, GOOD_CODE).await;
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["refresh"], "3");
    let html = answer.text().await.unwrap();
    assert!(html.contains("waiting for a connection"), "{html}");
    assert!(html.contains(&format!("idp.test:{}", idp.port)), "{html}");
    assert!(
        html.contains(&format!(
            "paddock egress allow idp.test --port {} --box act-net",
            idp.port
        )),
        "{html}"
    );
    assert!(
        !html.contains("value=\"allow\""),
        "no verdict without a signed-in person: {html}"
    );
    let forged = p
        .http
        .post(format!("{url}/verdict"))
        .form(&[("request_id", "x"), ("action", "allow")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403, "the link alone decides nothing");

    // A person allows it elsewhere; the login completes and the page says so.
    let (_, pending) = p.get("/api/v1/egress/pending").await;
    let held = pending["requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["container"] == "act-net")
        .cloned()
        .unwrap_or_else(|| panic!("{pending}"));
    let view: paddock_clearance::PendingView = serde_json::from_value(held.clone()).unwrap();
    assert_eq!(
        (view.proto, view.domain.as_str()),
        (6, "idp.test"),
        "{held}"
    );
    let (s, b) = p
        .post(
            "/api/v1/egress/verdicts",
            json!({"container": "act-net", "request_id": held["request_id"], "dest": held["dest"], "action": "allow", "scope": "once"}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    crate::common::wait_for_state(&p, "act-net", "ready").await;
    let html = p.http.get(&url).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("Box activated"), "{html}");
    assert_eq!(
        idp.connections().len(),
        1,
        "the token exchange reached the provider"
    );
    // The hold is credited to the rule that made it `ask`.
    let (_, log) = p.get("/api/v1/egress/log?box_id=act-net").await;
    let held = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["decision"] == "held")
        .cloned()
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        held["decided_by"].as_str().unwrap().starts_with("rule #"),
        "{held}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_profile_allows_what_its_login_needs_while_it_runs() {
    let idp = crate::common::egress_site::Upstream::start("127.0.0.1:0").await;
    let p = Paddock::start(networked_login(
        idp.port,
        &format!("\"127.0.0.1:{}\"", idp.port),
    ));
    let created = create_box(&p, "act-prof", "demo").await;
    let (_, rules) = p.get("/api/v1/egress/rules").await;
    let image = crate::common::test_image();
    let by_profile = |rules: &serde_json::Value| {
        rules["rules"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["created_by"] == format!("profile:{image}"))
            .count()
    };
    assert_eq!(
        by_profile(&rules),
        1,
        "allowed while the login runs: {rules}"
    );

    let url = crate::common::activation_url(&created);
    let done = send_code(&p, &url, GOOD_CODE).await;
    let status = done.status();
    let html = done.text().await.unwrap();
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Box activated"), "{html}");
    assert_eq!(idp.connections().len(), 1);

    // Recorded as the profile's decision; gone once the login ended.
    crate::common::wait_for(
        "the profile's decision in the log",
        std::time::Duration::from_secs(10),
        || async {
            let (_, log) = p.get("/api/v1/egress/log?box_id=act-prof").await;
            log["entries"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| {
                    e["decision"] == "allowed" && e["decided_by"] == format!("profile:{image}")
                })
                .then_some(())
        },
    )
    .await;
    let (_, rules) = p.get("/api/v1/egress/rules").await;
    assert_eq!(
        by_profile(&rules),
        0,
        "removed when the login ended: {rules}"
    );
}

#[tokio::test]
async fn a_failed_activation_is_reaped_like_an_unactivated_box() {
    // Long enough that the code always arrives first, even on a loaded
    // machine; short enough to wait for.
    let p = Paddock::start(Options {
        ttl_secs: 8,
        ..Options::default()
    });
    let created = create_box(&p, "act-fail", "demo").await;
    let url = crate::common::activation_url(&created);
    let done = send_code(&p, &url, "wrong").await;
    assert_eq!(done.status(), 422);
    let (_, got) = p.get("/api/v1/boxes/act-fail").await;
    assert_eq!(got["state"], "failed", "{got}");
    crate::common::wait_for(
        "the failed box to be reaped",
        std::time::Duration::from_secs(40),
        || async {
            let (status, _) = p.get("/api/v1/boxes/act-fail").await;
            (status == 404).then_some(())
        },
    )
    .await;
    assert_eq!(p.docker_objects(), (vec![], vec![]));
}
