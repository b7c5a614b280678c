//! `box create` as a person watches it: the create is asked for as a
//! stream (`Accept: application/x-ndjson`), so a pull of the box's image
//! shows as a progress bar on stderr (drawn only on a terminal) while the
//! answer is awaited.

use std::time::Duration;

use anyhow::{Context, bail};
use reqwest::Method;
use serde_json::Value;

use super::http::{ApiFailure, Client};

/// Creates a box from `body`, drawing the pull's progress; returns the
/// created box as the plain request would.
pub async fn create_showing_progress(client: &Client, body: &Value) -> anyhow::Result<Value> {
    let project = body["project"].as_str().unwrap_or_default();
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_message(format!("creating a box for {project}…"));
    bar.enable_steady_tick(Duration::from_millis(100));
    let outcome = read_stream(client, body, &bar).await;
    bar.finish_and_clear();
    outcome
}

async fn read_stream(
    client: &Client,
    body: &Value,
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<Value> {
    let request = client
        .request(Method::POST, "/api/v1/boxes")
        .header(reqwest::header::ACCEPT, "application/x-ndjson")
        .json(body);
    let mut response = client.send(request).await?;
    let mut pending: Vec<u8> = Vec::new();
    while let Some(chunk) = response.chunk().await.context("reading the response")? {
        pending.extend_from_slice(&chunk);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let message: Value =
                serde_json::from_slice(&line).context("paddock answered with unexpected JSON")?;
            if let Some(done) = message.get("created") {
                return Ok(done.clone());
            }
            if let Some(error) = message.get("error") {
                return Err(ApiFailure {
                    status: message["status"].as_u64().unwrap_or(500) as u16,
                    code: error["code"].as_str().unwrap_or_default().to_owned(),
                    message: error["message"].as_str().unwrap_or_default().to_owned(),
                }
                .into());
            }
            if let Some(p) = message.get("progress") {
                show(bar, p);
            }
        }
    }
    bail!("paddock ended the answer before saying how the create went")
}

fn show(bar: &indicatif::ProgressBar, p: &Value) {
    let total = p["bytes_total"].as_u64().unwrap_or(0);
    if total > 0 && bar.length() != Some(total) {
        bar.set_style(
            indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_length(total);
    }
    bar.set_position(p["bytes_done"].as_u64().unwrap_or(0));
    bar.set_message(format!(
        "pulling the image ({}/{} layers)",
        p["layers_done"].as_u64().unwrap_or(0),
        p["layers_total"].as_u64().unwrap_or(0)
    ));
}
