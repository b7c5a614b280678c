//! The console as a browser reaches it, for tests that speak HTTP.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::driven::Driven;
use super::{Paddock, python};

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

/// The console driver (`fixtures/console_driver.py`): several Chromiums, one command at a time.
pub struct Browsers(Driven);

impl Browsers {
    pub fn start(p: &Paddock) -> Self {
        let mut cmd = Command::new(python());
        cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/console_driver.py"));
        // Chromium's profiles and temporary files go into the paddock's
        // own directory, removed with it however the test ends (the
        // driver is killed, not asked, when the test fails).
        cmd.env("TMPDIR", p.dir.path());
        let driven = Driven::run(cmd, p);
        driven.line_where("ready", |l| l.starts_with("{\"ok\": \"ready\""));
        Self(driven)
    }

    /// One command's answer; a driver error fails the test with it.
    pub fn ask(&mut self, command: &str) -> Value {
        self.0.type_line(command);
        let line = self.0.line_within(command, Duration::from_secs(90), |l| {
            l.starts_with("{\"ok\"") || l.starts_with("{\"error\"")
        });
        let answer: Value = serde_json::from_str(&line).unwrap();
        assert!(answer.get("error").is_none(), "{command}: {answer}");
        answer["ok"].clone()
    }
}

/// Where to save the console's screenshots for the README, when asked
/// (`PADDOCK_SCREENSHOTS=docs/screenshots`).
pub fn screenshots_dir() -> Option<std::path::PathBuf> {
    let dir = std::path::PathBuf::from(std::env::var_os("PADDOCK_SCREENSHOTS")?);
    std::fs::create_dir_all(&dir).ok()?;
    std::fs::canonicalize(dir).ok()
}

pub async fn console_link(p: &Paddock, token: &str) -> String {
    let response = p
        .client_as(token)
        .post(format!("{}/api/v1/console/links", p.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    body["url"].as_str().unwrap().to_owned()
}

/// A console page's WebSocket, as a client of our own opens one.
pub type PageSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens the page socket at `path` with a session `cookie`, as a page of
/// `origin` would; a refused handshake is its HTTP status.
pub async fn page_socket(
    p: &Paddock,
    path: &str,
    cookie: &str,
    origin: &str,
) -> Result<PageSocket, u16> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = format!("{}{path}", p.url.replacen("http://", "ws://", 1));
    let mut request = url.as_str().into_client_request().unwrap();
    let headers = request.headers_mut();
    headers.insert("cookie", cookie.parse().unwrap());
    headers.insert("origin", origin.parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
        Err(e) => panic!("{e}"),
    }
}

/// The next text frame as JSON, or how the socket ended
/// (`{"closed": code}`, `{"ended": …}`).
pub async fn text_frame(socket: &mut PageSocket) -> Value {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).unwrap(),
            Some(Ok(Message::Close(c))) => {
                return serde_json::json!({"closed": c.map(|c| u16::from(c.code))});
            }
            Some(Ok(_)) => continue,
            other => return serde_json::json!({"ended": format!("{other:?}")}),
        }
    }
}
