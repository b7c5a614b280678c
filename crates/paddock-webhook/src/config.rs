//! `[[webhooks]]` in paddock.toml: one table per endpoint.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::WebhookError;

/// What the body of a delivery looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// paddock's JSON: the request, its outcome, the console's link.
    Json,
    /// `{"text": …}`, as Slack's (and Mattermost's) incoming webhooks take.
    Slack,
    /// A plain-text message with ntfy's headers (title, click, tags).
    Ntfy,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    /// The signing key: `whsec_<base64>` (Standard Webhooks) or any text.
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    #[serde(default = "default_format")]
    pub format: Format,
    /// Deliveries waiting for this endpoint before the oldest are dropped.
    #[serde(default = "default_queue")]
    pub queue_capacity: usize,
    /// Attempts per delivery before it is given up.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// The first retry's pause; each later one doubles, up to 5 minutes.
    #[serde(default = "default_backoff")]
    pub backoff_ms: u64,
}

fn default_format() -> Format {
    Format::Json
}
fn default_queue() -> usize {
    1000
}
fn default_attempts() -> u32 {
    10
}
fn default_timeout() -> u64 {
    10
}
fn default_backoff() -> u64 {
    1000
}

/// A checked endpoint: its key read, its URL an http(s) URL.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub url: reqwest::Url,
    pub key: Vec<u8>,
    pub format: Format,
    pub queue_capacity: usize,
    pub max_attempts: u32,
    pub timeout: Duration,
    pub backoff: Duration,
}

impl WebhookConfig {
    pub fn check(&self, index: usize) -> Result<Endpoint, WebhookError> {
        let at = |what: String| WebhookError::Config(format!("webhooks[{index}]: {what}"));
        let url = reqwest::Url::parse(&self.url).map_err(|e| at(format!("url: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(at("url must be http:// or https://".into()));
        }
        let key = signing_key(self.secret.as_deref(), self.secret_file.as_deref()).map_err(at)?;
        if self.queue_capacity == 0 || self.max_attempts == 0 {
            return Err(at(
                "queue_capacity and max_attempts must be at least 1".into()
            ));
        }
        Ok(Endpoint {
            url,
            key,
            format: self.format,
            queue_capacity: self.queue_capacity,
            max_attempts: self.max_attempts,
            timeout: Duration::from_secs(self.timeout_secs.max(1)),
            backoff: Duration::from_millis(self.backoff_ms.max(1)),
        })
    }
}

/// The signing key from `secret` or `secret_file` (exactly one), as
/// [`key_of`](crate::key_of) reads it.
pub fn signing_key(
    secret: Option<&str>,
    secret_file: Option<&std::path::Path>,
) -> Result<Vec<u8>, String> {
    let secret = match (secret, secret_file) {
        (Some(s), None) => s.to_owned(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .map_err(|e| format!("secret_file {}: {e}", path.display()))?
            .trim()
            .to_owned(),
        _ => return Err("give secret or secret_file (exactly one)".into()),
    };
    crate::sign::key_of(&secret)
}
