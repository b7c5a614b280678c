//! What front-ends send and receive. Nothing here carries a secret except
//! `CreatedBox::activation_url`, whose token is single-use and is the one
//! thing a chatbot is meant to pass on to its person.

use paddock_store::{BoxRow, BoxState};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBox {
    /// Project the box works on (a-z, 0-9, '-').
    pub project: String,
    /// Docker image; the configured default when absent.
    #[serde(default)]
    pub image: Option<String>,
    /// Id to give the box (a-z, 0-9, '-'); generated when absent.
    #[serde(default)]
    pub box_id: Option<String>,
    /// Free text shown in listings.
    #[serde(default)]
    pub description: Option<String>,
    /// Seconds the box may live; it is destroyed then, with an event.
    /// Absent: until destroyed (or idle past `[boxes]
    /// idle_timeout_secs`).
    #[serde(default)]
    pub ttl_secs: Option<u64>,
    /// OCI runtime to run the box under, as registered with Docker
    /// (`runsc` for gVisor). Absent: the image profile's or `[boxes]
    /// runtime`.
    #[serde(default)]
    pub runtime: Option<String>,
    /// Read-only root filesystem with a writable workspace volume.
    /// Absent: the image profile's or `[boxes] read_only`.
    #[serde(default)]
    pub read_only: Option<bool>,
    /// When to pull the image: `never`, `missing` or `always`. Absent:
    /// the image profile's or `[boxes] pull`.
    #[serde(default)]
    pub pull: Option<crate::config::PullPolicy>,
    /// The spoke to run the box on (`local`: this machine). Absent: the
    /// least loaded of this machine and its connected spokes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spoke: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BoxView {
    pub box_id: String,
    pub project: String,
    pub image: String,
    pub description: String,
    pub state: BoxState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The main process's exit code, when the box is `exited`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    /// RFC 3339.
    pub created_at: String,
    /// When the box's time to live runs out (RFC 3339), if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// The Docker container's name.
    pub container: String,
    /// The OCI runtime, when not the engine's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// The root filesystem is read-only; the workspace volume is not.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
    /// What the box uses now, when it runs and was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<BoxUsage>,
    /// The spoke the box runs on; absent: this machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spoke: Option<String>,
    /// Its spoke is not connected: this is how the box last looked.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unreachable: bool,
    /// A spoke's box: its shield as the spoke's gateway has it (a box of
    /// this machine has its shield added by the surface that shows it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shield: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shield_until_ms: Option<i64>,
}

/// A running box's resource use at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BoxUsage {
    /// CPU time used since the box (re)started, in nanoseconds; two
    /// readings give the CPU share over their interval.
    pub cpu_ns: u64,
    /// Memory in use, without droppable page cache.
    pub memory_bytes: u64,
    pub memory_limit_bytes: u64,
    pub pids: u64,
}

impl From<paddock_docker::Usage> for BoxUsage {
    fn from(u: paddock_docker::Usage) -> Self {
        Self {
            cpu_ns: u.cpu_ns,
            memory_bytes: u.memory_bytes,
            memory_limit_bytes: u.memory_limit_bytes,
            pids: u.pids,
        }
    }
}

/// When a box made (or claimed) at `now_ms` with `ttl_secs` to live
/// expires, in Unix milliseconds.
pub(crate) fn expires_at_ms(now_ms: i64, ttl_secs: Option<u64>) -> Option<i64> {
    ttl_secs
        .map(|t| now_ms.saturating_add(i64::try_from(t).unwrap_or(i64::MAX).saturating_mul(1000)))
}

/// Unix milliseconds as RFC 3339.
fn rfc3339(at_ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at_ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl From<&BoxRow> for BoxView {
    fn from(row: &BoxRow) -> Self {
        Self {
            box_id: row.id.clone(),
            project: row.project.clone(),
            image: row.image.clone(),
            description: row.description.clone(),
            state: row.state,
            error: row.error.clone(),
            exit_code: row.exit_code,
            created_at: rfc3339(row.created_at_ms),
            expires_at: row.expires_at_ms.map(rfc3339),
            container: row
                .container_name
                .clone()
                .unwrap_or_else(|| crate::labels::legacy_container_name(&row.id)),
            runtime: row.runtime.clone(),
            read_only: row.read_only,
            usage: None,
            spoke: None,
            unreachable: false,
            shield: None,
            shield_until_ms: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CreatedBox {
    #[serde(flatten)]
    pub view: BoxView,
    /// Present when the image needs a login: the page the person opens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activation_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ExecResult {
    pub stdout: String,
    pub stderr: String,
    pub exit_code: i64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

pub(crate) use paddock_store::clock::now_ms;
