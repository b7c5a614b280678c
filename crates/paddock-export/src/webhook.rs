//! A webhook sink: each batch POSTed as NDJSON, signed the Standard
//! Webhooks way with an id naming the entries it carries (the same on a
//! retry, so a receiver drops what it already has). Redirects are never
//! followed; only a 2xx is a delivery.

use std::time::Duration;

#[derive(Debug, Clone)]
pub(crate) struct WebhookSink {
    pub http: reqwest::Client,
    pub url: reqwest::Url,
    pub key: Vec<u8>,
    pub timeout: Duration,
}

impl WebhookSink {
    pub(crate) fn client() -> Result<reqwest::Client, String> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("the HTTP client: {e}"))
    }

    pub(crate) async fn post(&self, id: &str, body: Vec<u8>) -> Result<(), String> {
        let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
        let signature = paddock_webhook::signature(&self.key, id, timestamp, &body)
            .ok_or("the signing key is unusable")?;
        let answer = self
            .http
            .post(self.url.clone())
            .timeout(self.timeout)
            .header("content-type", "application/x-ndjson")
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await
            // Without the URL: it may carry a token in its query.
            .map_err(|e| format!("cannot deliver: {}", e.without_url()))?;
        paddock_webhook::answered(answer.status())
    }
}
