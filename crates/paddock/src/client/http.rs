//! The REST client shared by every command.

use anyhow::{Context, anyhow};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

use paddock_http::version::{API_HEADER, API_VERSION, VERSION_HEADER};

/// The oldest server API this CLI can talk to.
const OLDEST_SERVER_API: u32 = 1;

/// Refuses a server whose API this CLI cannot read, naming both versions.
/// An answer without `paddock-api` is not from a paddock this CLI knows.
pub(crate) fn server_api(response: &reqwest::Response, base: &str) -> anyhow::Result<u32> {
    let header = |name: &reqwest::header::HeaderName| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let mine = env!("CARGO_PKG_VERSION");
    let Some(api) = header(&API_HEADER).and_then(|v| v.parse::<u32>().ok()) else {
        return Err(anyhow!(
            "{base} did not say which paddock API it speaks: it is not paddock, or older than this CLI ({mine}) can talk to"
        ));
    };
    let version = header(&VERSION_HEADER).unwrap_or_else(|| "?".into());
    if api < OLDEST_SERVER_API {
        return Err(anyhow!(
            "paddock at {base} is {version} (API {api}); this CLI ({mine}) needs API {OLDEST_SERVER_API} or later: upgrade the server, or use a CLI of its version"
        ));
    }
    Ok(api)
}

#[derive(clap::Args, Clone)]
pub struct Connection {
    /// paddock's address (http:// or https://).
    #[arg(
        long,
        env = "PADDOCK_URL",
        hide_env_values = true,
        default_value = "http://127.0.0.1:7878",
        global = true
    )]
    pub url: String,
    /// API token.
    #[arg(long, env = "PADDOCK_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// PEM certificates to trust for https:// besides the system's (a
    /// paddock whose certificate a private CA issued).
    #[arg(long, env = "PADDOCK_CA_FILE", global = true)]
    pub ca_file: Option<std::path::PathBuf>,
}

pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    ca_file: Option<std::path::PathBuf>,
}

impl Client {
    pub fn new(conn: &Connection) -> anyhow::Result<Self> {
        let url = conn.url.trim();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(anyhow!(
                "--url / PADDOCK_URL must start with http:// or https:// (got {url:?}), e.g. http://127.0.0.1:7878"
            ));
        }
        let http =
            super::trust::http_client(reqwest::Client::builder(), url, conn.ca_file.as_deref())?;
        Ok(Self {
            http,
            base: conn.url.trim_end_matches('/').to_owned(),
            token: conn.token.clone(),
            ca_file: conn.ca_file.clone(),
        })
    }

    /// The server's address, as given.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// What a WebSocket to this paddock connects with.
    pub fn websocket_connector(&self) -> anyhow::Result<Option<tokio_tungstenite::Connector>> {
        super::trust::websocket_connector(self.ca_file.as_deref())
    }

    /// Sends a request; a non-2xx answer becomes the server's own message.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<T> {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = self.send(request).await?;
        let status = response.status();
        let bytes = response.bytes().await.context("reading the response")?;
        let bytes = if status == StatusCode::NO_CONTENT || bytes.is_empty() {
            "null".into()
        } else {
            bytes
        };
        serde_json::from_slice(&bytes).context("paddock answered with unexpected JSON")
    }

    /// A WebSocket request to `path` (ws:// or wss:// as the base is
    /// http:// or https://), with the token.
    pub fn websocket_request(
        &self,
        path: &str,
    ) -> anyhow::Result<tokio_tungstenite::tungstenite::handshake::client::Request> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let base = self
            .base
            .strip_prefix("http")
            .map(|rest| format!("ws{rest}"))
            .unwrap_or_else(|| self.base.clone());
        let mut request = format!("{base}{path}")
            .into_client_request()
            .context("the WebSocket's address")?;
        if let Some(token) = &self.token {
            request.headers_mut().insert(
                "authorization",
                format!("Bearer {token}")
                    .parse()
                    .map_err(|_| anyhow!("the token cannot go in a header"))?,
            );
        }
        Ok(request)
    }

    /// A request to `path`, with the token and the API this CLI speaks.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header(&API_HEADER, API_VERSION);
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends a request; a 2xx response is handed back unread, anything
    /// else becomes an [`ApiFailure`] carrying the server's code and words.
    pub async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> anyhow::Result<reqwest::Response> {
        let response = request.send().await.map_err(|e| {
            if let Some(tls) = super::trust::tls_failure(&e) {
                anyhow!(
                    "paddock at {} could not be verified over TLS ({tls}): if a private CA issued its certificate, give that CA with --ca-file (PADDOCK_CA_FILE)",
                    self.base
                )
            } else if e.is_connect() {
                anyhow!(
                    "cannot reach paddock at {}: is `paddock serve` running there? (--url / PADDOCK_URL)",
                    self.base
                )
            } else {
                anyhow!("cannot reach paddock at {}: {e}", self.base)
            }
        })?;
        server_api(&response, &self.base)?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let bytes = response.bytes().await.context("reading the response")?;
        let error = serde_json::from_slice::<Value>(&bytes).ok();
        let code = error
            .as_ref()
            .and_then(|v| v["error"]["code"].as_str().map(str::to_owned))
            .unwrap_or_default();
        let mut message = error
            .as_ref()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).trim().to_owned());
        if status == StatusCode::UNAUTHORIZED && self.token.is_none() {
            message.push_str(
                " (give an API token with --token or PADDOCK_TOKEN; `paddock serve` printed the first one)",
            );
        }
        Err(ApiFailure {
            status: status.as_u16(),
            code,
            message,
        }
        .into())
    }
}

/// paddock refused a request: its HTTP status, stable error code and
/// message.
#[derive(Debug, thiserror::Error)]
#[error("{message} (HTTP {status})")]
pub struct ApiFailure {
    pub status: u16,
    pub code: String,
    pub message: String,
}

/// `text` for a URL: unreserved characters as they are, `keep` too (`/`
/// for a path in a query), everything else percent-encoded.
pub(crate) fn percent_encode(text: &str, keep: &[u8]) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ if keep.contains(&b) => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
