//! Feed clients speaking the console's protocol exactly as its page does:
//! a session from a one-time link (`POST /api/v1/console/links`, then the
//! link's exchange for the cookie), the page's CSRF token, the socket
//! `/console/events` with the cookie and the page's Origin, and `hello`
//! first. Each reads every frame until it is dropped.

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// A console session: its cookie and its CSRF token.
pub struct Session {
    pub cookie: String,
    pub csrf: String,
}

/// A link minted with the bench's admin token.
pub async fn link(http: &reqwest::Client, base: &str) -> anyhow::Result<String> {
    let r = http
        .post(format!("{base}/api/v1/console/links"))
        .send()
        .await?;
    if !r.status().is_success() {
        bail!("minting a console link: {}", r.text().await?);
    }
    let body: Value = r.json().await?;
    body["url"]
        .as_str()
        .map(str::to_owned)
        .context("a link without url")
}

/// Opens a session the way the link's page does.
pub async fn session(http: &reqwest::Client, base: &str) -> anyhow::Result<Session> {
    let url = link(http, base).await?;
    let secret = url.split('#').nth(1).context("a link without its secret")?;
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let r = plain
        .post(format!("{base}/console/signin"))
        .form(&[("link", secret)])
        .send()
        .await?;
    let cookie = r
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("paddock_session="))
        .and_then(|v| v.split(';').next())
        .context("the link gave no session cookie")?
        .to_owned();
    let page = plain
        .get(format!("{base}/console"))
        .header(reqwest::header::COOKIE, format!("paddock_session={cookie}"))
        .send()
        .await?
        .text()
        .await?;
    let csrf = page
        .split("data-csrf=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .context("the console page carries no CSRF token")?
        .to_owned();
    Ok(Session { cookie, csrf })
}

/// A feed client reading every frame in a task of its own.
pub async fn feed(base: &str, session: &Session) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let ws = format!("{}/console/events", base.replacen("http://", "ws://", 1));
    let mut request = ws.as_str().into_client_request()?;
    let headers = request.headers_mut();
    headers.insert(
        "cookie",
        format!("paddock_session={}", session.cookie).parse()?,
    );
    headers.insert("origin", base.parse()?);
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await?;
    socket
        .send(Message::Text(
            json!({"type": "hello", "csrf": session.csrf})
                .to_string()
                .into(),
        ))
        .await?;
    // The snapshot first: then it is certainly subscribed.
    match socket.next().await {
        Some(Ok(Message::Text(t))) if t.contains("\"snapshot\"") => {}
        other => bail!("the console's feed answered {other:?}"),
    }
    Ok(tokio::spawn(async move {
        while let Some(Ok(_)) = socket.next().await {}
    }))
}
