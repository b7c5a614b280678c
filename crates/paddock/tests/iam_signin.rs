//! Sign-in for people through the loopback identity provider
//! (`fixtures/oidc_issuer.py`), step by step over HTTP: PKCE, state bound
//! to the browser, nonce, verified email, the allow-list, cookie flags,
//! CSRF on every form, sign-out; and the activation page behind it. The
//! whole flow in a real browser is `tests/iam_browser.rs`.

use crate::common::egress_site::{add_rule, create_box};
use crate::common::issuer::Issuer;
use crate::common::{Options, Paddock};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::json;

pub fn signin_toml(issuer: &Issuer) -> String {
    format!(
        "[iam.signin]\nissuer = \"{}\"\nclient_id = \"paddock-web\"\nclient_secret = \"web-s3cret\"\n\
         allowed_emails = [\"ada@example.org\"]\nallowed_domains = [\"paddock.test\"]\n",
        issuer.base
    )
}

use crate::common::raw_http as raw;

fn location(r: &reqwest::Response) -> String {
    r.headers()[LOCATION].to_str().unwrap().to_owned()
}

/// `name=value` and the attributes of the Set-Cookie naming `name`.
fn set_cookie(r: &reqwest::Response, name: &str) -> (String, String) {
    let header = r
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie set"));
    let (pair, attrs) = header.split_once(';').unwrap();
    (pair.to_owned(), attrs.to_owned())
}

/// Walks the whole sign-in as a browser would, returning the session
/// cookie (`paddock_session=…`) and where paddock sent the browser after.
async fn sign_in(p: &Paddock, email: &str, next: &str) -> Result<(String, String), (u16, String)> {
    let http = raw();
    let start = http
        .get(format!("{}/auth/login?next={next}", p.url))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 303);
    let (login_cookie, attrs) = set_cookie(&start, "paddock_login");
    assert!(
        attrs.contains("HttpOnly") && attrs.contains("SameSite=Lax"),
        "{attrs}"
    );
    let authorize = reqwest::Url::parse(&location(&start)).unwrap();
    let params: Vec<(String, String)> = authorize.query_pairs().into_owned().collect();
    let get = |k: &str| {
        params
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(get("code_challenge_method"), "S256");
    assert_eq!(get("response_type"), "code");
    assert!(get("nonce").len() >= 40 && get("state").len() >= 40);
    let mut form = params.clone();
    form.push(("email".into(), email.into()));
    let idp = http
        .post(authorize.join("/authorize").unwrap())
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(idp.status(), 302);
    let back = http
        .get(location(&idp))
        .header(COOKIE, &login_cookie)
        .send()
        .await
        .unwrap();
    if back.status() != 303 {
        let status = back.status().as_u16();
        return Err((status, back.text().await.unwrap()));
    }
    let (session, attrs) = set_cookie(&back, "paddock_session");
    assert!(
        attrs.contains("HttpOnly") && attrs.contains("SameSite=Lax") && attrs.contains("Path=/"),
        "{attrs}"
    );
    assert!(
        !attrs.contains("Secure"),
        "plain http here; Secure only behind https"
    );
    Ok((session, location(&back)))
}

fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    html[at..].split('"').next().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn people_sign_in_and_every_form_needs_their_csrf_token() {
    let issuer = Issuer::start();
    let p = Paddock::start(Options {
        login_profile: false,
        extra_toml: signin_toml(&issuer),
        ..Options::default()
    });
    let http = raw();

    // Not signed in: the admin page sends the browser to the login.
    let r = http.get(format!("{}/admin", p.url)).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/auth/login?next=/admin");

    let (session, next) = sign_in(&p, "ada@example.org", "/admin").await.unwrap();
    assert_eq!(next, "/admin");
    let admin = http
        .get(format!("{}/admin", p.url))
        .header(COOKIE, &session)
        .send()
        .await
        .unwrap();
    assert_eq!(admin.status(), 200);
    let html = admin.text().await.unwrap();
    assert!(html.contains("person:ada@example.org"), "{html}");
    let csrf = csrf_of(&html);

    // A session cookie is for pages: the API still wants a bearer token.
    let api = http
        .get(format!("{}/api/v1/boxes", p.url))
        .header(COOKIE, &session)
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 401);

    // Revoking a token from the page: refused without or with a wrong
    // CSRF token, done with the right one.
    let (id, secret) = p.mint(&["viewer"], None).await;
    let revoke = |csrf: Option<String>| {
        let mut form = vec![];
        if let Some(c) = csrf {
            form.push(("csrf", c));
        }
        http.post(format!("{}/admin/tokens/{id}/revoke", p.url))
            .header(COOKIE, &session)
            .form(&form)
            .send()
    };
    assert_eq!(revoke(None).await.unwrap().status(), 403);
    assert_eq!(revoke(Some("forged".into())).await.unwrap().status(), 403);
    assert_eq!(
        p.client_as(&secret)
            .get(format!("{}/api/v1/boxes", p.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(revoke(Some(csrf.clone())).await.unwrap().status(), 303);
    assert_eq!(
        p.client_as(&secret)
            .get(format!("{}/api/v1/boxes", p.url))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );

    // Signing out needs the token too, then the session is gone.
    let out = http
        .post(format!("{}/auth/logout", p.url))
        .header(COOKIE, &session)
        .form(&[("csrf", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 403);
    let out = http
        .post(format!("{}/auth/logout", p.url))
        .header(COOKIE, &session)
        .form(&[("csrf", csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 200);
    let r = http
        .get(format!("{}/admin", p.url))
        .header(COOKIE, &session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "signed out");

    // A domain on the allow-list is let in; others, unverified addresses
    // and an ID token with another nonce are not.
    assert!(sign_in(&p, "bob@paddock.test", "/admin").await.is_ok());
    let (status, page) = sign_in(&p, "eve@elsewhere.example", "/admin")
        .await
        .unwrap_err();
    assert_eq!(status, 403);
    assert!(page.contains("may not use this paddock"), "{page}");
    let (status, page) = sign_in(&p, "unverified@paddock.test", "/admin")
        .await
        .unwrap_err();
    assert_eq!(status, 403);
    assert!(page.contains("not verified"), "{page}");
    issuer.control(json!({"op": "bad_nonce"})).await;
    let (status, page) = sign_in(&p, "ada@example.org", "/admin").await.unwrap_err();
    assert_eq!(status, 403);
    assert!(page.contains("not for this sign-in"), "{page}");

    // Only paths of this paddock are followed after sign-in.
    let (_, next) = sign_in(&p, "ada@example.org", "//evil.example/x")
        .await
        .unwrap();
    assert_eq!(next, "/admin");

    // The provider rotates its signing key: the first ID token under the
    // new key makes paddock discover again, and sign-in goes on. A second
    // rotation at once is not chased (an unknown key id must not make
    // paddock hammer the provider): that sign-in is refused, safely.
    issuer.control(json!({"op": "rotate", "kid": "k2"})).await;
    let chased = std::time::Instant::now(); // at or before the chase
    assert!(sign_in(&p, "ada@example.org", "/admin").await.is_ok());
    issuer.control(json!({"op": "rotate", "kid": "k3"})).await;
    let second = sign_in(&p, "ada@example.org", "/admin").await;
    // (On a machine so loaded that the second sign-in came 10 s after the
    // first chase, the limit rightly allows another.)
    if chased.elapsed() < std::time::Duration::from_secs(10) {
        let (status, page) = second.unwrap_err();
        assert_eq!(status, 403);
        assert!(page.contains("not valid"), "{page}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sign_in_not_started_by_this_browser_or_replayed_is_refused() {
    let issuer = Issuer::start();
    let p = Paddock::start(Options {
        login_profile: false,
        extra_toml: signin_toml(&issuer),
        ..Options::default()
    });
    let http = raw();
    let start = http
        .get(format!("{}/auth/login", p.url))
        .send()
        .await
        .unwrap();
    let (login_cookie, _) = set_cookie(&start, "paddock_login");
    let authorize = reqwest::Url::parse(&location(&start)).unwrap();
    let mut form: Vec<(String, String)> = authorize.query_pairs().into_owned().collect();
    form.push(("email".into(), "ada@example.org".into()));
    let idp = http
        .post(format!("{}/authorize", issuer.base))
        .form(&form)
        .send()
        .await
        .unwrap();
    let callback = location(&idp);
    // Another browser (no login cookie) cannot finish this sign-in.
    let stolen = http.get(&callback).send().await.unwrap();
    assert_eq!(stolen.status(), 403);
    // The right browser can, once.
    let ok = http
        .get(&callback)
        .header(COOKIE, &login_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 303);
    let replay = http
        .get(&callback)
        .header(COOKIE, &login_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 403);
    // The provider's own refusal is shown, not followed.
    let denied = http
        .get(format!(
            "{}/auth/callback?error=access_denied&state=x",
            p.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 403);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_activation_page_is_for_signed_in_people_and_its_form_needs_their_token() {
    let issuer = Issuer::start();
    let p = Paddock::start(Options {
        extra_toml: signin_toml(&issuer),
        ..Options::default()
    });
    let (status, created) = p
        .post(
            "/api/v1/boxes",
            json!({"project": "demo", "box_id": "act-s"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let url = crate::common::activation_url(&created);
    let path = url.trim_start_matches(&p.url).to_owned();
    let http = raw();
    let r = http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert!(location(&r).starts_with("/auth/login?next=/activate/"));
    let post = http
        .post(&url)
        .form(&[("code", crate::common::GOOD_CODE)])
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 401, "no session, no code");

    let (session, next) = sign_in(&p, "ada@example.org", &path).await.unwrap();
    assert_eq!(next, path);
    let page = http
        .get(&url)
        .header(COOKIE, &session)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let csrf = csrf_of(&page.text().await.unwrap());
    let forged = http
        .post(&url)
        .header(COOKIE, &session)
        .form(&[("code", crate::common::GOOD_CODE), ("csrf", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    let done = http
        .post(&url)
        .header(COOKIE, &session)
        .form(&[("code", crate::common::GOOD_CODE), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 200);
    assert_eq!(p.get("/api/v1/boxes/act-s").await.1["state"], "ready");
}

/// A login held on the network is decided from its activation page by a
/// signed-in person whose capabilities allow verdicts; a signed-in viewer
/// sees what it waits for and cannot decide.
#[tokio::test(flavor = "multi_thread")]
async fn a_signed_in_person_decides_what_a_login_waits_for() {
    let issuer = Issuer::start();
    let idp = crate::common::egress_site::Upstream::start("127.0.0.1:0").await;
    let profile = crate::common::networked_login_toml(idp.port, "");
    for (capabilities, decides) in [("[\"admin\"]", true), ("[\"viewer\"]", false)] {
        let p = Paddock::start(Options {
            login_profile: false,
            extra_toml: format!(
                "{}capabilities = {capabilities}\n{profile}",
                signin_toml(&issuer)
            ),
            ..Options::default()
        });
        add_rule(
            &p,
            json!({"project": "demo", "target": "127.0.0.1/32", "action": "ask"}),
        )
        .await;
        let created = create_box(&p, "act-d", "demo").await;
        let url = crate::common::activation_url(&created);
        let path = url.trim_start_matches(&p.url).to_owned();
        let (session, _) = sign_in(&p, "ada@example.org", &path).await.unwrap();
        let http = raw();
        let html = http
            .get(&url)
            .header(COOKIE, &session)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let csrf = csrf_of(&html);
        let sent = http
            .post(&url)
            .header(COOKIE, &session)
            .form(&[("code", crate::common::GOOD_CODE), ("csrf", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(
            sent.status(),
            303,
            "back to the page once the login is held"
        );
        let html = http
            .get(&url)
            .header(COOKIE, &session)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(html.contains(&format!("idp.test:{}", idp.port)), "{html}");
        assert_eq!(html.contains("value=\"allow\""), decides, "{html}");
        let (_, pending) = p.get("/api/v1/egress/pending").await;
        let request_id = pending["requests"][0]["request_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let verdict = http
            .post(format!("{url}/verdict"))
            .header(COOKIE, &session)
            .form(&[
                ("request_id", request_id.as_str()),
                ("action", "allow"),
                ("csrf", csrf.as_str()),
            ])
            .send()
            .await
            .unwrap();
        if !decides {
            assert_eq!(verdict.status(), 403, "a viewer cannot decide");
            continue;
        }
        assert_eq!(verdict.status(), 303);
        crate::common::wait_for_state(&p, "act-d", "ready").await;
        // The decision log is written in batches: the verdict's entry
        // arrives within a gathering window of the verdict.
        crate::common::wait_for(
            "the verdict in the decision log",
            std::time::Duration::from_secs(10),
            || async {
                let (_, log) = p.get("/api/v1/egress/log?box_id=act-d").await;
                log["entries"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|e| {
                        e["decision"] == "verdict_allow"
                            && e["decided_by"]
                                .as_str()
                                .unwrap()
                                .contains("ada@example.org via the activation page")
                    })
                    .then_some(())
            },
        )
        .await;
    }
}
