//! What hubs on one database say to each other: JSON notices on one
//! PostgreSQL channel, each naming its sender (and, for a verdict and its
//! answer, the one hub it is for).

use paddock_clearance::{ClearanceEvent, RelayedVerdict};
use serde::{Deserialize, Serialize};

/// The channel every hub listens on.
pub(crate) const CHANNEL: &str = "paddock_peers";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum PeerMessage {
    /// A hub is (again) listening: the others announce again what they
    /// hold, which it may have missed.
    Resend { from: String },
    /// Every few seconds: a hub whose word stops has its requests
    /// withdrawn at the others.
    Alive { from: String },
    /// `from`'s egress rules changed (each hub's gateway keeps them in
    /// memory): the others read them again.
    RulesChanged { from: String },
    /// A held request's news, from the hub whose gateway holds it.
    Event { from: String, event: ClearanceEvent },
    /// A verdict given at `from` for a request `to` holds, under `to`'s
    /// own request id.
    Verdict {
        from: String,
        to: String,
        ask: u64,
        verdict: RelayedVerdict,
    },
    /// `to`'s verdict `ask`, applied or why not.
    Done {
        from: String,
        to: String,
        ask: u64,
        applied: Result<(), String>,
    },
}

impl PeerMessage {
    pub(crate) fn from(&self) -> &str {
        match self {
            Self::Resend { from }
            | Self::Alive { from }
            | Self::RulesChanged { from }
            | Self::Event { from, .. }
            | Self::Verdict { from, .. }
            | Self::Done { from, .. } => from,
        }
    }
}
