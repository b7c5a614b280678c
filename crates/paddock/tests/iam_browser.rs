//! Sign-in driven through Debian's headless Chromium (ChromeDriver and
//! Selenium, `fixtures/browser.py`): a person signs in at the loopback
//! identity provider and lands on the admin page, revokes a token by its
//! button (the form's CSRF token is the page's own), activates a box
//! through the activation link; an address not on the allow-list is shown
//! the refusal and gets no session. Without sign-in, the activation link
//! alone works in a real browser too.

use std::process::Command;

use crate::common::issuer::Issuer;
use crate::common::{Options, Paddock, python};
use serde_json::{Value, json};

fn signin_toml(issuer: &Issuer) -> String {
    format!(
        "[iam.signin]\nissuer = \"{}\"\nclient_id = \"paddock-web\"\nclient_secret = \"web-s3cret\"\n\
         allowed_emails = [\"ada@example.org\"]\n",
        issuer.base
    )
}

fn browse(args: &[&str]) -> Value {
    // Chromium's profile and its own temporary files go where the test
    // removes them, however the run ends.
    let scratch = tempfile::tempdir().unwrap();
    let out = Command::new(python())
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/browser.py"))
        .args(args)
        .env("TMPDIR", scratch.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the browser run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_person_signs_in_with_a_browser_and_uses_the_pages() {
    let issuer = Issuer::start();
    let p = Paddock::start(Options {
        extra_toml: signin_toml(&issuer),
        ..Options::default()
    });
    let (token_id, secret) = p.mint(&["viewer"], None).await;

    let seen = browse(&["admin", &p.url, "ada@example.org", &token_id]);
    assert_eq!(seen["who"], "person:ada@example.org");
    assert!(seen["url"].as_str().unwrap().ends_with("/admin"), "{seen}");
    let session = seen["cookies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "paddock_session")
        .unwrap_or_else(|| panic!("no session cookie: {seen}"));
    assert_eq!(session["httpOnly"], true);
    assert_eq!(session["sameSite"], "Lax");
    assert_eq!(seen["revoked"], true);
    let refused = p
        .client_as(&secret)
        .get(format!("{}/api/v1/boxes", p.url))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401, "revoked from the page");

    let (status, created) = p
        .post(
            "/api/v1/boxes",
            json!({"project": "demo", "box_id": "act-b"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let link = crate::common::activation_url(&created);
    let seen = browse(&[
        "activate",
        &link,
        "ada@example.org",
        crate::common::GOOD_CODE,
    ]);
    assert!(
        seen["result"].as_str().unwrap().contains("Signed in"),
        "{seen}"
    );
    assert_eq!(p.get("/api/v1/boxes/act-b").await.1["state"], "ready");

    let seen = browse(&["refused", &p.url, "eve@elsewhere.example"]);
    assert!(
        seen["result"]
            .as_str()
            .unwrap()
            .contains("may not use this paddock"),
        "{seen}"
    );
    assert!(
        !seen["cookies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "paddock_session"),
        "no session for a refused person: {seen}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_sign_in_the_activation_link_works_in_a_browser() {
    let p = Paddock::start(Options::default());
    let (status, created) = p
        .post(
            "/api/v1/boxes",
            json!({"project": "demo", "box_id": "act-n"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let link = crate::common::activation_url(&created);
    let seen = browse(&["activate", &link, "-", crate::common::GOOD_CODE]);
    assert!(
        seen["result"].as_str().unwrap().contains("Signed in"),
        "{seen}"
    );
    assert_eq!(p.get("/api/v1/boxes/act-n").await.1["state"], "ready");
}
