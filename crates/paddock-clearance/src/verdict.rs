//! What a person's verdict says, as a surface received it and as the hub
//! checked it, and why one can be refused.

use std::time::Duration;

use crate::event::ClearanceEvent;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerdictScope {
    /// This held request only.
    Once,
    /// Later connections of the same box to the same destination, too.
    Box,
    /// Every box of the project.
    Project,
}

impl VerdictScope {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "once" => Some(Self::Once),
            "box" => Some(Self::Box),
            "project" => Some(Self::Project),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Once => "once",
            Self::Box => "box",
            Self::Project => "project",
        }
    }
}

/// A verdict as a surface received it; `action` is still unchecked text.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub container: String,
    pub request_id: String,
    pub dest: String,
    pub action: String,
    pub scope: VerdictScope,
    /// How long a `box` or `project` verdict lasts; `None` is until removed.
    pub ttl: Option<Duration>,
    /// Who decided, for the audit log (a surface and, later, a principal).
    pub decided_by: String,
}

/// A verdict that passed the hub's checks.
#[derive(Debug, Clone)]
pub struct CheckedVerdict {
    pub allow: bool,
    pub verdict: Verdict,
    /// The event that announced the request.
    pub event: ClearanceEvent,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerdictError {
    #[error("no held request {request_id}")]
    UnknownRequest { request_id: String },
    /// A late verdict: the request ended (decided elsewhere, or withdrawn)
    /// and the hub still remembers how.
    #[error("request {request_id} was already {how}")]
    AlreadyEnded { request_id: String, how: String },
    #[error(
        "the request was announced for {expected_container} → {expected_dest}, not {got_container} → {got_dest}"
    )]
    VerdictTupleMismatch {
        expected_container: String,
        expected_dest: String,
        got_container: String,
        got_dest: String,
    },
    #[error("action must be allow or deny, not {action:?}")]
    InvalidAction { action: String },
    #[error("applying {action} failed: {stderr}")]
    ApplyFailed { action: String, stderr: String },
}
