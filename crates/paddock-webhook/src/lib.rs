//! Webhooks: every held request, and how it ended, delivered to the
//! endpoints of `[[webhooks]]` — as paddock's JSON, or as the text chat
//! tools take (Slack-style `{"text"}`, ntfy) — signed the Standard
//! Webhooks way, from a bounded queue per endpoint that never slows the
//! hub, retried with backoff, never following a redirect.

mod config;
mod dispatch;
mod payload;
mod sign;

pub use config::{Endpoint, Format, WebhookConfig, signing_key};
pub use dispatch::{Counters, Webhooks, answered};
pub use payload::{Notice, chat_safe};
pub use sign::{key_of, signature};

#[derive(Debug, Clone, thiserror::Error)]
pub enum WebhookError {
    #[error("{0}")]
    Config(String),
}
