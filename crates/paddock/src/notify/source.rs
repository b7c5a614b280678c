//! Where `paddock notify` hears of held requests and sends verdicts: the
//! clearance socket (varlink, for a person on the machine paddock runs
//! on) or the REST API and its events WebSocket (`--url`, `--token`: for
//! a desktop user who cannot open a root paddock's 0600 socket).

use std::path::PathBuf;

use anyhow::{Context, anyhow};
use futures_util::StreamExt;
use paddock_clearance::varlink::{ClientError, EventStream, PADDOCK, VarlinkClient};
use paddock_clearance::{ClearanceEvent, PendingView, VerdictRequest};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type WebSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// How to reach paddock.
#[derive(Clone)]
pub enum Via {
    Socket(PathBuf),
    Web { base: String, token: String },
}

impl Via {
    pub fn describe(&self) -> String {
        match self {
            Self::Socket(path) => format!("the clearance socket {}", path.display()),
            Self::Web { base, .. } => format!("paddock at {base}"),
        }
    }
}

pub enum Source {
    Socket {
        events: EventStream,
        calls: VarlinkClient,
    },
    Web {
        socket: Box<WebSocket>,
        http: reqwest::Client,
        base: String,
        token: String,
    },
}

impl Source {
    pub async fn connect(via: &Via) -> anyhow::Result<Self> {
        match via {
            Via::Socket(path) => {
                let events = VarlinkClient::connect(path).await?.subscribe().await?;
                let calls = VarlinkClient::connect(path).await?;
                Ok(Self::Socket { events, calls })
            }
            Via::Web { base, token } => {
                let ws_url = format!(
                    "{}/api/v1/events",
                    base.replacen("https://", "wss://", 1)
                        .replacen("http://", "ws://", 1)
                );
                let mut request = ws_url
                    .as_str()
                    .into_client_request()
                    .context("the events WebSocket's address")?;
                request.headers_mut().insert(
                    "authorization",
                    format!("Bearer {token}")
                        .parse()
                        .map_err(|_| anyhow!("the token cannot go in a header"))?,
                );
                let ca_file = std::env::var_os(crate::client::trust::CA_FILE_ENV)
                    .map(std::path::PathBuf::from);
                let connector = crate::client::trust::websocket_connector(ca_file.as_deref())?;
                let socket = crate::client::trust::connect_websocket(request, connector)
                    .await
                    .map_err(|e| anyhow!("cannot open {ws_url}: {e}"))?;
                Ok(Self::Web {
                    socket: Box::new(socket),
                    http: crate::client::trust::http_client(
                        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()),
                        base,
                        ca_file.as_deref(),
                    )?,
                    base: base.clone(),
                    token: token.clone(),
                })
            }
        }
    }

    /// Every request held now.
    pub async fn pending(&mut self) -> anyhow::Result<Vec<PendingView>> {
        let mut reply: Value = match self {
            Self::Socket { calls, .. } => {
                calls.call(&format!("{PADDOCK}.Pending"), json!({})).await?
            }
            Self::Web {
                http, base, token, ..
            } => {
                http.get(format!("{base}/api/v1/egress/pending"))
                    .bearer_auth(token)
                    .send()
                    .await?
                    .error_for_status()?
                    .json()
                    .await?
            }
        };
        serde_json::from_value(reply["requests"].take()).context("a garbled pending list")
    }

    /// The next event; `None` when paddock went away.
    pub async fn next(&mut self) -> anyhow::Result<Option<ClearanceEvent>> {
        match self {
            Self::Socket { events, .. } => match events.next().await {
                Ok(e) => Ok(Some(e)),
                Err(ClientError::Closed) => Ok(None),
                Err(e) => Err(e.into()),
            },
            Self::Web { socket, .. } => loop {
                let Some(frame) = socket.next().await else {
                    return Ok(None);
                };
                let text = match frame? {
                    Message::Text(t) => t,
                    Message::Close(_) => return Ok(None),
                    _ => continue,
                };
                let value: Value = serde_json::from_str(&text)?;
                match value["type"].as_str() {
                    Some("welcome" | "verdict_result") => continue,
                    Some("error") => {
                        return Err(anyhow!(
                            "paddock said: {}",
                            value["message"].as_str().unwrap_or("an error")
                        ));
                    }
                    _ => return Ok(Some(serde_json::from_value(value)?)),
                }
            },
        }
    }

    /// Sends a verdict; paddock's refusal comes back as the error.
    pub async fn verdict(&mut self, verdict: &VerdictRequest) -> anyhow::Result<()> {
        match self {
            Self::Socket { calls, .. } => {
                calls
                    .call(
                        &format!("{PADDOCK}.Verdict"),
                        serde_json::to_value(verdict)?,
                    )
                    .await?;
                Ok(())
            }
            Self::Web {
                http, base, token, ..
            } => {
                let response = http
                    .post(format!("{base}/api/v1/egress/verdicts"))
                    .bearer_auth(token)
                    .json(verdict)
                    .send()
                    .await?;
                if response.status().is_success() {
                    return Ok(());
                }
                let status = response.status();
                let body: Value = response.json().await.unwrap_or_default();
                Err(anyhow!(
                    "{} (HTTP {})",
                    body["error"]["message"].as_str().unwrap_or("refused"),
                    status.as_u16()
                ))
            }
        }
    }
}
