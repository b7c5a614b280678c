//! The console as a browser reaches it, for tests that speak HTTP.

use serde_json::Value;

use super::Paddock;

/// A console session opened the way a browser opens one.
pub struct Session {
    pub cookie: String,
    pub csrf: String,
}

/// A link minted with `token`, traded for the cookie; the CSRF token
/// read from the console page (whose CSP is checked on the way).
pub async fn session(p: &Paddock, token: &str) -> Session {
    let link: Value = p
        .client_as(token)
        .post(format!("{}/api/v1/console/links", p.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = link["url"]
        .as_str()
        .unwrap()
        .split('#')
        .nth(1)
        .unwrap()
        .to_owned();
    let plain = super::raw_http();
    let r = plain
        .post(format!("{}/console/signin", p.url))
        .form(&[("link", secret.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let page = plain
        .get(format!("{}/console", p.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe"),
        "{csp}"
    );
    let html = page.text().await.unwrap();
    let csrf = html
        .split("data-csrf=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    Session { cookie, csrf }
}
