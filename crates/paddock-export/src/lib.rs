//! Audit export: the egress decision log delivered to the places a team
//! keeps its records — a rotated JSONL file, a SIEM's webhook — as
//! paddock's own records or as OCSF network activity.
//!
//! The decision log in the store is the queue. Each sink keeps a cursor
//! there (the id of the last entry it delivered) and moves it only after
//! a delivery succeeded, so a sink that is down, a crash or a restart
//! loses nothing: the sink goes on after its cursor, and an entry
//! delivered just before a crash may come again (receivers drop it by its
//! id). Retention never prunes what a sink has not delivered.

mod config;
mod exporter;
mod file;
mod record;
mod webhook;

pub use config::{AuditConfig, Format, SinkConfig};
pub use exporter::Exporter;
pub use record::{jsonl, ocsf};

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("audit: {0}")]
    Config(String),
    #[error("audit sink {sink}: {message}")]
    Delivery { sink: String, message: String },
    #[error("audit: the store: {0}")]
    Store(#[from] paddock_store::StoreError),
}

#[cfg(test)]
mod tests;
