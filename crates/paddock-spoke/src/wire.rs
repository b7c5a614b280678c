//! What hub and spoke say to each other over the spoke link: JSON text
//! frames on a WebSocket over mutual TLS, every one read under a size
//! cap. The hub asks (`Call`, `Verdict`) and the spoke answers under the
//! same `id`; the spoke also tells, unasked, its load and the clearance
//! events of its boxes.

use paddock_clearance::ClearanceEvent;
use paddock_core::remote::{RemoteCall, RemoteFailure, RemoteReply};
use serde::{Deserialize, Serialize};

/// The largest frame either side accepts: an exec's output (1 MiB each
/// of stdout and stderr at the default limit) escaped as JSON fits.
pub const MAX_FRAME: usize = 16 * 1024 * 1024;
/// The WebSocket path on the hub's spoke listener.
pub const CONNECT_PATH: &str = "/spoke/connect";

/// From a spoke.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SpokeMessage {
    /// The first frame: what the spoke is and what it can take.
    Hello {
        version: String,
        max_boxes: u32,
        boxes: u32,
    },
    /// Whenever its load changes.
    Status { boxes: u32 },
    /// The answer to the hub's `Call` of the same `id`.
    Reply {
        id: u64,
        result: Result<RemoteReply, RemoteFailure>,
    },
    /// A clearance event of one of its boxes.
    Event { event: ClearanceEvent },
    /// Whether the hub's `Verdict` of the same `id` was applied.
    VerdictDone {
        id: u64,
        applied: Result<(), String>,
    },
    /// Decisions its gateway took (its own ids), after the last the hub
    /// has; `through_id` is the last of them.
    Audit {
        rows: Vec<paddock_store::AuditRow>,
        through_id: i64,
    },
    /// Bytes on a stream the hub opened (a terminal's output), base64.
    StreamData { stream: u64, data: String },
    /// The stream's end (the terminal's command ended).
    StreamEnd { stream: u64 },
}

/// From the hub.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum HubMessage {
    /// The spoke is connected under `name` (its certificate's).
    Welcome {
        name: String,
        hub_version: String,
        /// The spoke's decision log id the hub has its log through: the
        /// spoke sends what came after.
        #[serde(default)]
        audit_after: i64,
    },
    /// The connection is refused, and why; the hub closes it next.
    Refused { reason: String },
    /// Do this with your boxes; answer with a `Reply` of this `id`.
    Call { id: u64, call: RemoteCall },
    /// A person decided one of your held requests; answer with a
    /// `VerdictDone` of this `id`.
    Verdict { id: u64, verdict: SpokeVerdict },
    /// Bytes on a stream (what a terminal's person types), base64.
    StreamData { stream: u64, data: String },
    /// No more input on the stream (or its reader went).
    StreamEnd { stream: u64 },
}

/// A verdict for a request the spoke holds, under the spoke's own
/// `request_id`.
pub type SpokeVerdict = paddock_clearance::RelayedVerdict;
