//! `[audit]` in paddock.toml: retention, and one `[[audit.sinks]]` table
//! per place the decision log goes.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::ExportError;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Decision log entries older than this many days are pruned (once
    /// every sink has delivered them); absent, the log is kept whole.
    #[serde(default)]
    pub retain_days: Option<u32>,
    #[serde(default)]
    pub sinks: Vec<SinkConfig>,
}

/// What a record looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// paddock's decision log entry, one JSON object per line.
    #[default]
    Jsonl,
    /// OCSF Network Activity (class 4001), one JSON object per line.
    Ocsf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    /// The sink's name: its cursor is kept under it, so renaming a sink
    /// starts it again from the oldest entry kept.
    pub name: String,
    /// A file to append to (rotated), or…
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// …an http(s) endpoint each batch is POSTed to as NDJSON, signed the
    /// Standard Webhooks way.
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub format: Format,
    /// The webhook's signing key: `whsec_<base64>` or any text.
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// A file past this size is rotated (`name.1`, `name.2`, …).
    #[serde(default = "default_rotate_bytes")]
    pub rotate_bytes: u64,
    /// Rotated files kept besides the current one.
    #[serde(default = "default_keep_files")]
    pub keep_files: u32,
    /// Entries per delivery at most.
    #[serde(default = "default_batch")]
    pub batch: u32,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// How often the log is looked at for new entries.
    #[serde(default = "default_poll")]
    pub poll_ms: u64,
}

fn default_rotate_bytes() -> u64 {
    100 * 1024 * 1024
}
fn default_keep_files() -> u32 {
    5
}
fn default_batch() -> u32 {
    500
}
fn default_timeout() -> u64 {
    10
}
fn default_poll() -> u64 {
    1000
}

/// Where a checked sink delivers.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    File {
        path: PathBuf,
        rotate_bytes: u64,
        keep_files: u32,
    },
    Webhook {
        url: reqwest::Url,
        key: Vec<u8>,
        timeout: Duration,
    },
}

/// A sink as the exporter runs it.
#[derive(Debug, Clone)]
pub(crate) struct Sink {
    pub name: String,
    pub target: Target,
    pub format: Format,
    pub batch: u32,
    pub poll: Duration,
}

impl SinkConfig {
    pub(crate) fn check(&self, index: usize) -> Result<Sink, ExportError> {
        let at = |what: String| ExportError::Config(format!("audit.sinks[{index}]: {what}"));
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !name_ok {
            return Err(at(format!(
                "name {:?} must be 1-64 of a-z, A-Z, 0-9, '-', '_', '.'",
                self.name
            )));
        }
        if self.batch == 0 {
            return Err(at("batch must be at least 1".into()));
        }
        let target = match (&self.file, &self.url) {
            (Some(path), None) => {
                if self.secret.is_some() || self.secret_file.is_some() {
                    return Err(at("a file sink takes no secret".into()));
                }
                if self.rotate_bytes < 4096 {
                    return Err(at("rotate_bytes must be at least 4096".into()));
                }
                Target::File {
                    path: path.clone(),
                    rotate_bytes: self.rotate_bytes,
                    keep_files: self.keep_files,
                }
            }
            (None, Some(url)) => {
                let url = reqwest::Url::parse(url).map_err(|e| at(format!("url: {e}")))?;
                if !matches!(url.scheme(), "http" | "https") {
                    return Err(at("url must be http:// or https://".into()));
                }
                let key = paddock_webhook::signing_key(
                    self.secret.as_deref(),
                    self.secret_file.as_deref(),
                )
                .map_err(at)?;
                Target::Webhook {
                    url,
                    key,
                    timeout: Duration::from_secs(self.timeout_secs.max(1)),
                }
            }
            _ => return Err(at("give file or url (exactly one)".into())),
        };
        Ok(Sink {
            name: self.name.clone(),
            target,
            format: self.format,
            batch: self.batch,
            poll: Duration::from_millis(self.poll_ms.clamp(10, 60_000)),
        })
    }
}

impl AuditConfig {
    /// Every sink checked, names unique.
    pub(crate) fn sinks(&self) -> Result<Vec<Sink>, ExportError> {
        let sinks: Vec<Sink> = self
            .sinks
            .iter()
            .enumerate()
            .map(|(i, s)| s.check(i))
            .collect::<Result<_, _>>()?;
        for (i, sink) in sinks.iter().enumerate() {
            if sinks[..i].iter().any(|s| s.name == sink.name) {
                return Err(ExportError::Config(format!(
                    "audit.sinks[{i}]: the name {:?} is taken by another sink",
                    sink.name
                )));
            }
        }
        Ok(sinks)
    }

    /// Checks the section without starting anything (start-up refuses a
    /// bad one before serving).
    pub fn check(&self) -> Result<(), ExportError> {
        if self.retain_days == Some(0) {
            return Err(ExportError::Config(
                "retain_days must be at least 1 (leave it out to keep the log whole)".into(),
            ));
        }
        self.sinks().map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The section as paddock.toml gives it (JSON stands in for TOML: the
    /// shapes are the same).
    fn parse(text: &str) -> AuditConfig {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn bad_sinks_are_refused_with_their_place() {
        for (text, says) in [
            (r#"{"sinks":[{"name":"a"}]}"#, "give file or url"),
            (
                r#"{"sinks":[{"name":"a","file":"/x","url":"http://h"}]}"#,
                "give file or url",
            ),
            (r#"{"sinks":[{"name":"a b","file":"/x"}]}"#, "must be 1-64"),
            (
                r#"{"sinks":[{"name":"a","url":"ftp://h","secret":"0123456789abcdef"}]}"#,
                "http:// or https://",
            ),
            (
                r#"{"sinks":[{"name":"a","url":"http://h"}]}"#,
                "give secret or secret_file",
            ),
            (
                r#"{"sinks":[{"name":"a","url":"http://h","secret":"short"}]}"#,
                "too short",
            ),
            (
                r#"{"sinks":[{"name":"a","file":"/x","secret":"0123456789abcdef"}]}"#,
                "takes no secret",
            ),
            (r#"{"sinks":[{"name":"a","file":"/x","batch":0}]}"#, "batch"),
            (
                r#"{"sinks":[{"name":"a","file":"/x"},{"name":"a","file":"/y"}]}"#,
                "taken by another sink",
            ),
            (r#"{"retain_days":0}"#, "retain_days"),
        ] {
            let error = parse(text).check().unwrap_err().to_string();
            assert!(error.contains(says), "{text}: {error}");
        }
        parse(r#"{"retain_days":30,"sinks":[{"name":"a","file":"/x","format":"ocsf"}]}"#)
            .check()
            .unwrap();
    }
}
