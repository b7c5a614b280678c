//! Activation end to end: the page, the code on the box's stdin, and no
//! secret anywhere else.

mod common;

use common::{GOOD_CODE, Options, Paddock, URL_SECRET};
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
    let url = common::activation_url(&created);
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

    let done = p
        .http
        .post(&url)
        .form(&[("code", GOOD_CODE)])
        .send()
        .await
        .unwrap();
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
    let again = p
        .http
        .post(&url)
        .form(&[("code", GOOD_CODE)])
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 404);
    let again = p.http.get(&url).send().await.unwrap();
    assert_eq!(again.status(), 404);

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
    let url = common::activation_url(&created);
    let wrong = "wrong-c0de-xyz";
    let done = p
        .http
        .post(&url)
        .form(&[("code", wrong)])
        .send()
        .await
        .unwrap();
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
    let url = common::activation_url(&created);
    for code in ["", "two\nlines"] {
        let r = p
            .http
            .post(&url)
            .form(&[("code", code)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{code:?}");
    }
    let r = p.http.post(&url).body("no form here").send().await.unwrap();
    assert_eq!(r.status(), 400);
    // The link still works after the refusals.
    let r = p
        .http
        .post(&url)
        .form(&[("code", GOOD_CODE)])
        .send()
        .await
        .unwrap();
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
    let url = common::activation_url(&created);
    p.kill9();
    p.restart();
    let page = p.http.get(&url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let r = p
        .http
        .post(&url)
        .form(&[("code", GOOD_CODE)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, got) = p.get("/api/v1/boxes/act-4").await;
    assert_eq!(got["state"], "ready");
}
